/* etsi014.h - ETSI GS QKD 014 V1.1.1 request handling on top of the KME core (kms/core.h).
 * Served on the `etsi014` listener (mutual TLS) through the request envelope (common/
 * http_envelope.h): the SAE ID is the authenticated caller of the request. */
#ifndef QK_ETSI014_H
#define QK_ETSI014_H

#include "core.h"
#include "http_envelope.h"

/* The handler (h2o style: qk_http_handler first). */
typedef struct {
    qk_http_handler super;
    qk_kms *kms; /* borrowed; must outlive the listener */
    /* An unmarked client certificate: accepted (optional, set by configure) or refused
     * (docs/qkd-kmed.md "Roles"; [listener etsi014] role_marker). Set by the caller. */
    qk_role_marker role_marker;
} qk_etsi014_handler;

/* Fill in h: on_req, too_large_status 400 (clause 5 defines no 413), role_marker optional.
 * observe is left for the caller (the daemon's metrics). */
void qk_etsi014_configure(qk_etsi014_handler *h, qk_kms *kms);

#endif
