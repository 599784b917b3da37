/* admin.h - the admin listener (plain HTTP on loopback): GET /healthz -> "ok", GET /metrics
 * -> Prometheus text (pool, blocks, keys, link telemetry, requests, latency, peer errors). */
#ifndef QK_ADMIN_H
#define QK_ADMIN_H

#include <microhttpd.h>

/* libmicrohttpd access handler; cls is the qk_kms *. Pair with qk_req_completed. */
enum MHD_Result qk_admin_handler(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls);

#endif
