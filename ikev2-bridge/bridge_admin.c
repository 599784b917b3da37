/* bridge_admin.c - the admin listener (plain HTTP, loopback by default): GET /status (JSON),
 * GET /metrics (Prometheus text), GET /healthz, POST /rotate (rotation on demand). The request
 * envelope (common/http_envelope.h) collects the body within ADMIN_MAX_BODY (past it: 413) and
 * writes the request log line; the handler only routes. */
#include <stdlib.h>
#include <string.h>

#include "bridge_daemon.h"
#include "http_envelope.h"
#include "tls_server.h"

#define ADMIN_MAX_BODY 1024

typedef struct {
    qk_http_handler super; /* first: the envelope calls on_req with &super */
    bridge *b;
} admin_handler;

struct bridge_admin {
    admin_handler h; /* must outlive the listener */
    qk_tls_server *srv;
};

static bool is_admin_path(const char *path)
{
    return strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0 ||
           strcmp(path, "/healthz") == 0 || strcmp(path, "/rotate") == 0;
}

static void admin_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    admin_handler *h = (admin_handler *)self;
    const char *path = req->path;
    bool get = strcmp(req->method, "GET") == 0;
    if (strcmp(path, "/healthz") == 0 && get) {
        qk_http_reply_set(rep, 200, "text/plain; charset=utf-8", "ok\n", 3);
    } else if (strcmp(path, "/status") == 0 && get) {
        char *s = bridge_status_json(h->b);
        if (s)
            qk_http_reply_take(rep, 200, "application/json", s, strlen(s));
        else
            qk_http_reply_message(rep, 500, "cannot render status");
    } else if (strcmp(path, "/metrics") == 0 && get) {
        char *s = bridge_metrics_text(h->b);
        if (s)
            qk_http_reply_take(rep, 200, "text/plain; version=0.0.4; charset=utf-8", s, strlen(s));
        else
            qk_http_reply_message(rep, 500, "cannot render metrics");
    } else if (strcmp(path, "/rotate") == 0 && strcmp(req->method, "POST") == 0) {
        bridge_request_rotation(h->b);
        qk_http_reply_json(rep, 202, "{\"status\":\"rotation requested\"}");
    } else if (is_admin_path(path)) {
        qk_http_reply_message(rep, 405, "method not allowed");
    } else {
        qk_http_reply_message(rep, 404, "unknown path");
    }
}

static void admin_configure(admin_handler *h, bridge *b)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = admin_on_req;
    h->b = b;
}

int bridge_admin_start(bridge *b, const qkb_config *cfg, bridge_admin **out, qk_err *err)
{
    bridge_admin *a = calloc(1, sizeof *a);
    if (!a)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    admin_configure(&a->h, b);
    qk_listener_config lc = {.name = "admin",
                             .bind_addr = cfg->admin_host,
                             .port = cfg->admin_port,
                             .tls = {.mode = QK_TLS_MODE_NONE},
                             .handler = &a->h.super,
                             .max_connections = 16,
                             .threads = 1,
                             .max_body = ADMIN_MAX_BODY};
    int rc = qk_tls_server_start(&lc, &a->srv, err);
    if (rc) {
        free(a);
        return qk_err_prefix(err, "admin listener");
    }
    *out = a;
    return 0;
}

uint16_t bridge_admin_listen_port(const bridge_admin *a)
{
    return a ? qk_tls_server_port(a->srv) : 0;
}

void bridge_admin_stop(bridge_admin *a)
{
    if (!a)
        return;
    qk_tls_server_stop(a->srv);
    free(a);
}
