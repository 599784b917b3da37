/* skip.h - SKIP (draft-cisco-skip-02) request handling on top of the KME core (kms/core.h),
 * served on the `skip` listener. The client identity is the authenticated connection identity
 * (PSK identity or certificate CN, from qk_conn_identity()), never a header. See
 * skip-server/README.md. */
#ifndef QK_SKIP_H
#define QK_SKIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>
#include "core.h"
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

#define QK_SKIP_MAX_BODY 4096 /* GET requests carry no body; a larger one is refused (400) */

/* libmicrohttpd access handler; cls is a const qk_skip_options *. Pair it with
 * qk_req_completed (or qk_api_completed_count) as the listener's completed callback. */
enum MHD_Result qk_skip_handler(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);

#endif
