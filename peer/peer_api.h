/* peer_api.h - the handler of the `peer` listener: /peer/v1/... (docs/qkd-kmed.md, "Peer API")
 * on the request envelope (common/http_envelope.h). The caller is the client-certificate CN,
 * which must be the node ID of a linked peer; a body naming a link must name that peer's link.
 * Bodies are read and answers written with the peer-message codec (kms/peer_msg.h); store and
 * core errors map to the documented statuses and reasons. */
#ifndef QK_PEER_API_H
#define QK_PEER_API_H

#include "device_source.h"
#include "http_envelope.h"
#include "kms.h"

/* The listener's default max_body: a reserve of max_keys_per_request (<= 10000) keys fits. */
#define QK_PEER_API_MAX_BODY (2u * 1024u * 1024u)

typedef struct {
    qk_http_handler super; /* first: the envelope calls on_req with &super */
    qk_kms *kms;
    /* the ETSI 014 device sources (kms/device_source.h) that POST /peer/v1/device-keys fetches
     * through; NULL: every device-keys notice is refused (409 source). Set by the caller. */
    qk_device_sources *devices;
    /* An unmarked client certificate: refused (required, the zero value) or accepted
     * (docs/qkd-kmed.md "Roles"; [listener peer] role_marker). Set by the caller. */
    qk_role_marker role_marker;
} qk_peer_api_handler;

/* Fill h in (on_req; observe left NULL, devices NULL, for the caller to set). h must outlive
 * the listener. */
void qk_peer_api_configure(qk_peer_api_handler *h, qk_kms *kms);

#endif
