/* sim_control.c - loopback control API of qkd-sim (status, fault injection). */
#include "sim_control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "tls_server.h"

#define CONTROL_MAX_BODY 4096
#define LINKS_PREFIX     "/v1/links/"

struct qk_sim_control {
    qk_tls_server *srv;
    qk_sim_link *const *links;
    size_t nlinks;
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

static enum MHD_Result reply(struct MHD_Connection *c, const char *method, const char *url,
                             unsigned status, const char *json, const char *allow)
{
    QK_INFO("event=request listener=control method=%s path=%s status=%u", method, url, status);
    return qk_reply(c, status, "application/json", json, strlen(json), allow ? "Allow" : NULL,
                    allow);
}

static enum MHD_Result reply_msg(struct MHD_Connection *c, const char *method, const char *url,
                                 unsigned status, const char *msg, const char *allow)
{
    char *j = qk_json_message(msg);
    if (!j)
        return MHD_NO;
    enum MHD_Result r = reply(c, method, url, status, j, allow);
    free(j);
    return r;
}

static enum MHD_Result reply_owned(struct MHD_Connection *c, const char *method, const char *url,
                                   char *json)
{
    if (!json)
        return reply_msg(c, method, url, 500, "out of memory", NULL);
    enum MHD_Result r = reply(c, method, url, 200, json, NULL);
    free(json);
    return r;
}

static qk_sim_link *find_link(qk_sim_control *s, const char *id, size_t len)
{
    for (size_t i = 0; i < s->nlinks; i++) {
        const char *lid = qk_sim_link_id(s->links[i]);
        if (strlen(lid) == len && memcmp(lid, id, len) == 0)
            return s->links[i];
    }
    return NULL;
}

static char *link_json(qk_sim_link *l)
{
    qk_link_status st;
    qk_sim_link_status(l, &st);
    return qk_link_status_json(&st);
}

static enum MHD_Result do_fault(struct MHD_Connection *c, const char *method, const char *url,
                                qk_sim_link *l, const qk_req *r)
{
    qk_err err;
    qk_err_clear(&err);
    if (r->too_large)
        return reply_msg(c, method, url, 413, "body too large", NULL);
    cJSON *j = qk_json_parse(r->body, r->body_len, CONTROL_MAX_BODY, &err);
    const char *name = NULL, *value = NULL;
    if (!j || !cJSON_IsObject(j) || qk_json_get_string(j, "fault", true, &name, NULL, &err) != 0 ||
        qk_json_get_string(j, "value", false, &value, NULL, &err) != 0) {
        cJSON_Delete(j);
        return reply_msg(c, method, url, 400,
                         err.msg[0] ? err.msg : "expected {\"fault\":..., \"value\":...}", NULL);
    }
    int rc = qk_sim_link_fault(l, name, value, &err);
    cJSON_Delete(j);
    if (rc != 0)
        return reply_msg(c, method, url, 400, err.msg, NULL);
    return reply_owned(c, method, url, link_json(l));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, CONTROL_MAX_BODY, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st == QK_REQ_ERROR)
        return MHD_NO;
    qk_sim_control *s = cls;
    bool get = strcmp(method, "GET") == 0;
    if (strcmp(url, "/v1/status") == 0) {
        if (!get)
            return reply_msg(c, method, url, 405, "method not allowed", "GET");
        return reply_owned(c, method, url, qk_sim_status_json(s->links, s->nlinks));
    }
    if (strncmp(url, LINKS_PREFIX, strlen(LINKS_PREFIX)) == 0) {
        const char *id = url + strlen(LINKS_PREFIX);
        const char *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        qk_sim_link *l = find_link(s, id, idlen);
        if (!l)
            return reply_msg(c, method, url, 404, "unknown link", NULL);
        if (!slash) {
            if (!get)
                return reply_msg(c, method, url, 405, "method not allowed", "GET");
            return reply_owned(c, method, url, link_json(l));
        }
        if (strcmp(slash, "/fault") == 0) {
            if (strcmp(method, "POST") != 0)
                return reply_msg(c, method, url, 405, "method not allowed", "POST");
            return do_fault(c, method, url, l, r);
        }
    }
    return reply_msg(c, method, url, 404, "unknown path", NULL);
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
    s->links = links;
    s->nlinks = nlinks;
    qk_listener_config lc = {
        .name = "control",
        .bind_addr = host,
        .port = port,
        .tls = {.mode = QK_TLS_MODE_NONE},
        .handler = handler,
        .handler_cls = s,
        .completed = qk_req_completed,
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
