/* etsi014.h - ETSI GS QKD 014 V1.1.1 request handling on top of the KME core (kms/core.h).
 * Served on the `etsi014` listener (mutual TLS; the SAE ID is the authenticated client
 * identity from qk_conn_identity()). */
#ifndef QK_ETSI014_H
#define QK_ETSI014_H

#include <microhttpd.h>
#include "core.h"

/* libmicrohttpd access handler; cls is the qk_kms *. Pair it with qk_req_completed
 * (common/http_util.h) as the listener's completed callback. */
enum MHD_Result qk_etsi014_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls);

#endif
