/* admin.h - the admin listener (plain HTTP on loopback): GET /healthz -> "ok", GET /metrics
 * -> Prometheus text (pool, blocks, keys, link telemetry, requests, latency, peer errors).
 * A request-envelope handler (common/http_envelope.h). */
#ifndef QK_ADMIN_H
#define QK_ADMIN_H

#include "http_envelope.h"
#include "kms.h"

/* The admin listener's default max_body: its routes take no body. */
#define QK_ADMIN_MAX_BODY 4096

typedef struct {
    qk_http_handler super; /* first: on_req gets &super */
    qk_kms *kms;
} qk_admin_handler;

/* Fill in h to serve the admin listener on kms (borrowed; must outlive the listener). */
void qk_admin_configure(qk_admin_handler *h, qk_kms *kms);

#endif
