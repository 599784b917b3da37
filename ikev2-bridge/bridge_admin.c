/* bridge_admin.c - the admin listener (plain HTTP, loopback by default): GET /status (JSON),
 * GET /metrics (Prometheus text), GET /healthz, POST /rotate (rotation on demand). */
#include <stdlib.h>
#include <string.h>

#include "bridge_daemon.h"
#include "http_util.h"
#include "tls_server.h"

#define ADMIN_MAX_BODY 1024

static enum MHD_Result admin_handler(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
    bridge *b = cls;
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, ADMIN_MAX_BODY, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st == QK_REQ_ERROR)
        return MHD_NO;
    bool get = strcmp(method, "GET") == 0;
    if (strcmp(url, "/healthz") == 0 && get)
        return qk_reply(c, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL, NULL);
    if (strcmp(url, "/status") == 0 && get) {
        char *s = bridge_status_json(b);
        enum MHD_Result res =
            s ? qk_reply_json(c, 200, s) : qk_reply_message(c, 500, "cannot render status");
        free(s);
        return res;
    }
    if (strcmp(url, "/metrics") == 0 && get) {
        char *s = bridge_metrics_text(b);
        enum MHD_Result res = s ? qk_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", s,
                                           strlen(s), NULL, NULL)
                                : qk_reply_message(c, 500, "cannot render metrics");
        free(s);
        return res;
    }
    if (strcmp(url, "/rotate") == 0 && strcmp(method, "POST") == 0) {
        bridge_request_rotation(b);
        return qk_reply_json(c, 202, "{\"status\":\"rotation requested\"}");
    }
    if (strcmp(url, "/status") == 0 || strcmp(url, "/metrics") == 0 ||
        strcmp(url, "/healthz") == 0 || strcmp(url, "/rotate") == 0)
        return qk_reply_message(c, 405, "method not allowed");
    return qk_reply_message(c, 404, "unknown path");
}

int bridge_admin_start(bridge *b, const qkb_config *cfg, qk_tls_server **out, qk_err *err)
{
    qk_listener_config lc = {.name = "admin",
                             .bind_addr = cfg->admin_host,
                             .port = cfg->admin_port,
                             .tls = {.mode = QK_TLS_MODE_NONE},
                             .handler = admin_handler,
                             .handler_cls = b,
                             .completed = qk_req_completed,
                             .max_connections = 16,
                             .threads = 1,
                             .max_body = ADMIN_MAX_BODY};
    int rc = qk_tls_server_start(&lc, out, err);
    return rc ? qk_err_prefix(err, "admin listener") : 0;
}
