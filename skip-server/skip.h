/* skip.h - SKIP (draft-cisco-skip-02) request handling on top of the KME core (kms/core.h),
 * served on the `skip` listener through the request envelope (common/http_envelope.h). The
 * client identity is the request's authenticated caller (PSK identity or certificate CN),
 * never a header. See skip-server/README.md. */
#ifndef QK_SKIP_H
#define QK_SKIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core.h"
#include "http_envelope.h"
#include "skip_parse.h"

/* Everything the handler needs; strings and rules are borrowed and must outlive the listener. */
typedef struct {
    qk_kms *kms;
    const char *remote_system_ids; /* glob list: capabilities' remoteSystemID and what may be
                                      asked for (it must also be a linked peer) */
    bool loopback_pair;            /* test aid: this KME's own ID is a remote system (local pool) */
    const char *algorithm;         /* capabilities' algorithm */
    bool entropy;                  /* serve /entropy */
    uint32_t max_entropy_bits;     /* largest minentropy */
    const char *default_client_remote_systems; /* glob list for clients without a rule and for
                                                  anonymous clients; NULL/"" = refused */
    const qk_skip_client_rule *clients;
    size_t nclients;
} qk_skip_options;

/* The handler (h2o style: qk_http_handler first). */
typedef struct {
    qk_http_handler super;
    qk_skip_options opts;
    /* An unmarked client certificate: accepted (optional, set by configure) or refused
     * (docs/qkd-kmed.md "Roles"; [listener skip] role_marker). PSK clients have no
     * certificate: the listener's PSK file gives their role. Set by the caller. */
    qk_role_marker role_marker;
} qk_skip_handler;

/* Fill in h from a copy of *o (the strings and rules it points to stay borrowed): on_req,
 * too_large_status 400 (the body limit is the listener's max_body, enforced by the envelope).
 * observe is left for the caller (the daemon's metrics). */
void qk_skip_configure(qk_skip_handler *h, const qk_skip_options *o);

#endif
