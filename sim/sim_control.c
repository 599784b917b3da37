/* sim_control.c - loopback control API of qkd-sim (status, fault injection). */
#include "sim_control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_envelope.h"
#include "json_util.h"
#include "tls_server.h"

#define CONTROL_MAX_BODY 4096
#define LINKS_PREFIX     "/v1/links/"

/* The control API's request handler (common/http_envelope.h): the envelope collects the body
 * within CONTROL_MAX_BODY (past it: 413) and writes the request log line. */
typedef struct {
    qk_http_handler super; /* first: the envelope calls on_req with &super */
    qk_sim_link *const *links;
    size_t nlinks;
} control_handler;

struct qk_sim_control {
    control_handler h; /* must outlive the listener */
    qk_tls_server *srv;
};

char *qk_sim_status_json(qk_sim_link *const *links, size_t nlinks)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    len = (size_t)snprintf(out, cap, "{\"links\":[");
    for (size_t i = 0; i < nlinks; i++) {
        qk_link_status st;
        qk_sim_link_status(links[i], &st);
        char *j = qk_link_status_json(&st);
        if (!j) {
            free(out);
            return NULL;
        }
        size_t need = len + strlen(j) + 8;
        if (need > cap) {
            char *n = realloc(out, need * 2);
            if (!n) {
                free(j);
                free(out);
                return NULL;
            }
            out = n;
            cap = need * 2;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", j);
        free(j);
    }
    if (len + 4 > cap) {
        char *n = realloc(out, len + 4);
        if (!n) {
            free(out);
            return NULL;
        }
        out = n;
        cap = len + 4;
    }
    snprintf(out + len, cap - len, "]}");
    return out;
}

/* Takes a malloc'ed LINK / status JSON; NULL (out of memory) answers 500. */
static void reply_owned(qk_http_reply *rep, char *json)
{
    if (json)
        qk_http_reply_take(rep, 200, "application/json", json, strlen(json));
    else
        qk_http_reply_message(rep, 500, "out of memory");
}

static void reply_not_allowed(qk_http_reply *rep, const char *allow)
{
    qk_http_reply_message(rep, 405, "method not allowed");
    qk_http_reply_allow(rep, allow);
}

static qk_sim_link *find_link(const control_handler *h, const char *id, size_t len)
{
    for (size_t i = 0; i < h->nlinks; i++) {
        const char *lid = qk_sim_link_id(h->links[i]);
        if (strlen(lid) == len && memcmp(lid, id, len) == 0)
            return h->links[i];
    }
    return NULL;
}

static char *link_json(qk_sim_link *l)
{
    qk_link_status st;
    qk_sim_link_status(l, &st);
    return qk_link_status_json(&st);
}

static void do_fault(qk_http_reply *rep, qk_sim_link *l, const qk_http_request *req)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = qk_json_parse(req->body, req->body_len, CONTROL_MAX_BODY, &err);
    const char *name = NULL, *value = NULL;
    if (!j || !cJSON_IsObject(j) || qk_json_get_string(j, "fault", true, &name, NULL, &err) != 0 ||
        qk_json_get_string(j, "value", false, &value, NULL, &err) != 0) {
        cJSON_Delete(j);
        qk_http_reply_message(rep, 400,
                              err.msg[0] ? err.msg : "expected {\"fault\":..., \"value\":...}");
        return;
    }
    int rc = qk_sim_link_fault(l, name, value, &err);
    if (rc == 0)
        qk_http_reply_detail(rep, "fault %s", name);
    cJSON_Delete(j);
    if (rc != 0)
        qk_http_reply_message(rep, 400, err.msg);
    else
        reply_owned(rep, link_json(l));
}

static void control_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    control_handler *h = (control_handler *)self;
    const char *url = req->path;
    bool get = strcmp(req->method, "GET") == 0;
    if (strcmp(url, "/v1/status") == 0) {
        if (!get)
            reply_not_allowed(rep, "GET");
        else
            reply_owned(rep, qk_sim_status_json(h->links, h->nlinks));
        return;
    }
    if (strncmp(url, LINKS_PREFIX, strlen(LINKS_PREFIX)) == 0) {
        const char *id = url + strlen(LINKS_PREFIX);
        const char *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        qk_sim_link *l = find_link(h, id, idlen);
        if (!l) {
            qk_http_reply_message(rep, 404, "unknown link");
            return;
        }
        if (!slash) {
            if (!get)
                reply_not_allowed(rep, "GET");
            else
                reply_owned(rep, link_json(l));
            return;
        }
        if (strcmp(slash, "/fault") == 0) {
            if (strcmp(req->method, "POST") != 0)
                reply_not_allowed(rep, "POST");
            else
                do_fault(rep, l, req);
            return;
        }
    }
    qk_http_reply_message(rep, 404, "unknown path");
}

static void control_configure(control_handler *h, qk_sim_link *const *links, size_t nlinks)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = control_on_req;
    h->links = links;
    h->nlinks = nlinks;
}

int qk_sim_control_start(const char *host, uint16_t port, qk_sim_link *const *links, size_t nlinks,
                         qk_sim_control **out, qk_err *err)
{
    *out = NULL;
    if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0)
        return qk_err_set(err, QK_EINVAL, "the control API binds a loopback address only");
    qk_sim_control *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    control_configure(&s->h, links, nlinks);
    qk_listener_config lc = {
        .name = "control",
        .bind_addr = host,
        .port = port,
        .tls = {.mode = QK_TLS_MODE_NONE},
        .handler = &s->h.super,
        .max_connections = 64,
        .threads = 1,
        .max_body = CONTROL_MAX_BODY,
    };
    int rc = qk_tls_server_start(&lc, &s->srv, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint16_t qk_sim_control_port(const qk_sim_control *c)
{
    return qk_tls_server_port(c->srv);
}

void qk_sim_control_stop(qk_sim_control *c)
{
    if (!c)
        return;
    qk_tls_server_stop(c->srv);
    free(c);
}
