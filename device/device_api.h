/* device_api.h - the device API (docs/qkd-kmed.md, "Device API"): the QKD device (or the
 * simulator) pushes key blocks and link telemetry. The caller is the client-certificate CN,
 * which must be the link's configured device_identity. A request-envelope handler
 * (common/http_envelope.h); the parsing is in device_parse.h. */
#ifndef QK_DEVICE_API_H
#define QK_DEVICE_API_H

#include "http_envelope.h"
#include "kms.h"
#include "store.h"

/* The device listener's default max_body: the largest block. */
#define QK_DEVICE_API_MAX_BODY QK_BLOCK_MAX_BYTES

typedef struct {
    qk_http_handler super; /* first: on_req gets &super */
    qk_kms *kms;
    /* An unmarked client certificate: refused (required, the zero value) or accepted
     * (docs/qkd-kmed.md "Roles"; [listener device] role_marker). Set by the caller. */
    qk_role_marker role_marker;
} qk_device_api_handler;

/* Fill in h to serve the device listener on kms (borrowed; must outlive the listener). */
void qk_device_api_configure(qk_device_api_handler *h, qk_kms *kms);

#endif
