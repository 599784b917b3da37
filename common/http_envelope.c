/* http_envelope.c - the request envelope (http_envelope.h): body collection within max_body,
 * the caller, one on_req call per complete request, the reply, the log line and the metrics. */
#include "http_envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

static const char fallback_error[] = "{\"message\":\"internal error\"}";

/* ---- replies --------------------------------------------------------------------------- */

static void body_drop(qk_http_reply *rep)
{
    if (rep->body) {
        if (rep->secret)
            qk_secure_free(rep->body);
        else
            free(rep->body);
    }
    rep->body = NULL;
    rep->len = 0;
    rep->secret = false;
    rep->content_type = NULL;
}

void qk_http_reply_clear(qk_http_reply *rep)
{
    if (!rep)
        return;
    body_drop(rep);
    free(rep->key_ids);
    memset(rep, 0, sizeof *rep);
}

void qk_http_reply_take(qk_http_reply *rep, unsigned status, const char *content_type, char *body,
                        size_t len)
{
    body_drop(rep);
    rep->status = status;
    rep->content_type = body ? content_type : NULL;
    rep->body = body;
    rep->len = body ? len : 0;
}

void qk_http_reply_json_take(qk_http_reply *rep, char *json)
{
    if (json)
        qk_http_reply_take(rep, 200, "application/json", json, strlen(json));
    else
        qk_http_reply_message(rep, 500, "out of memory");
}

void qk_http_reply_secret(qk_http_reply *rep, unsigned status, char *json, size_t len)
{
    body_drop(rep);
    rep->status = status;
    rep->content_type = json ? "application/json" : NULL;
    rep->body = json;
    rep->len = json ? len : 0;
    rep->secret = json != NULL;
}

int qk_http_reply_set(qk_http_reply *rep, unsigned status, const char *content_type,
                      const char *body, size_t len)
{
    char *copy = NULL;
    if (body && len) {
        copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, body, len);
            copy[len] = '\0';
        }
    }
    qk_http_reply_take(rep, status, content_type, copy, copy ? len : 0);
    return body && len && !copy ? -1 : 0;
}

int qk_http_reply_json(qk_http_reply *rep, unsigned status, const char *json)
{
    const char *j = json ? json : "{}";
    return qk_http_reply_set(rep, status, "application/json", j, strlen(j));
}

int qk_http_reply_error(qk_http_reply *rep, unsigned status, const char *reason, const char *msg)
{
    const char *m = msg ? msg : "error";
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (o && cJSON_AddStringToObject(o, "message", m) &&
        (!reason || cJSON_AddStringToObject(o, "reason", reason)))
        body = qk_json_print(o);
    cJSON_Delete(o);
    qk_http_reply_detail(rep, "%s", m);
    if (!body) {
        qk_http_reply_take(rep, status, NULL, NULL, 0);
        return -1;
    }
    qk_http_reply_take(rep, status, "application/json", body, strlen(body));
    return 0;
}

int qk_http_reply_message(qk_http_reply *rep, unsigned status, const char *msg)
{
    return qk_http_reply_error(rep, status, NULL, msg);
}

void qk_http_reply_allow(qk_http_reply *rep, const char *allow)
{
    snprintf(rep->allow, sizeof rep->allow, "%s", allow ? allow : "");
}

void qk_http_reply_not_allowed(qk_http_reply *rep, const char *allow)
{
    qk_http_reply_message(rep, 405, "method not allowed");
    qk_http_reply_allow(rep, allow);
}

void qk_http_reply_detail(qk_http_reply *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->detail, sizeof rep->detail, fmt, ap);
    va_end(ap);
}

void qk_http_reply_key_ids(qk_http_reply *rep, char *ids)
{
    free(rep->key_ids);
    rep->key_ids = ids;
}

/* ---- queries --------------------------------------------------------------------------- */

unsigned qk_http_query_count(const qk_http_request *req, const char *name)
{
    return req && req->conn ? qk_query_count(req->conn, name) : 0;
}

const char *qk_http_query(const qk_http_request *req, const char *name)
{
    if (!req || !req->conn || !name)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- the envelope ---------------------------------------------------------------------- */

static void run_handler(qk_http_handler *h, const qk_http_request *req, qk_http_reply *rep)
{
    if (h && h->on_req)
        h->on_req(h, req, rep);
    if (rep->status < 100 || rep->status > 599) {
        qk_http_reply_set(rep, 500, "application/json", fallback_error, sizeof fallback_error - 1);
        qk_http_reply_detail(rep, "the handler set no reply");
    }
}

void qk_http_handler_call(qk_http_handler *h, const qk_http_request *req, qk_http_reply *rep)
{
    memset(rep, 0, sizeof *rep);
    run_handler(h, req, rep);
}

static void secret_free_cb(void *p)
{
    qk_secure_free(p); /* sodium_free zeroes the buffer before releasing it */
}

/* Queue the reply; a secret body moves into the response (freed by libmicrohttpd). */
static enum MHD_Result send_reply(struct MHD_Connection *c, qk_http_reply *rep)
{
    struct MHD_Response *resp;
    bool secret = rep->secret;
    if (secret) {
        resp =
            MHD_create_response_from_buffer_with_free_callback(rep->len, rep->body, secret_free_cb);
        if (resp) {
            rep->body = NULL; /* owned by the response now */
            rep->len = 0;
            rep->secret = false;
        }
    } else {
        resp = MHD_create_response_from_buffer(rep->len, rep->body ? rep->body : (void *)"",
                                               MHD_RESPMEM_MUST_COPY);
    }
    if (!resp)
        return MHD_NO;
    enum MHD_Result rc = MHD_YES;
    const char *ctype = rep->content_type;
    if (ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
        rc = MHD_NO;
    if (rc == MHD_YES && rep->allow[0] &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow) != MHD_YES)
        rc = MHD_NO;
    /* Keys must never be stored by a cache on the way. */
    if (rc == MHD_YES && secret &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
        rc = MHD_NO;
    if (rc == MHD_YES)
        rc = MHD_queue_response(c, rep->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result qk_http_envelope_access(void *cls, struct MHD_Connection *c, const char *url,
                                        const char *method, const char *version,
                                        const char *upload_data, size_t *upload_data_size,
                                        void **con_cls)
{
    (void)version;
    const qk_http_front *f = cls;
    if (!f)
        return MHD_NO;
    size_t max_body = f->max_body ? f->max_body : QK_HTTP_DEFAULT_MAX_BODY;
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, max_body, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st != QK_REQ_DONE || !r)
        return MHD_NO;

    static const qk_peer_identity anonymous = {.kind = QK_ID_NONE};
    const qk_peer_identity *caller = qk_conn_identity(c);
    qk_http_request req = {
        .listener = f->listener ? f->listener : "http",
        .method = method ? method : "",
        .path = url ? url : "",
        .caller = caller ? caller : &anonymous,
        .body = r->body ? r->body : "",
        .body_len = r->body ? r->body_len : 0,
        .t_start_ms = r->t_start_ms,
        .conn = c,
    };
    qk_http_reply rep;
    memset(&rep, 0, sizeof rep);
    qk_http_handler *h = f->handler;
    if (r->too_large) {
        /* What arrived of an oversized body is wiped now, never shown to the handler. */
        qk_wipe(r->body, r->body_len);
        r->body_len = 0;
        unsigned status = h && h->too_large_status ? h->too_large_status : 413;
        char msg[96];
        snprintf(msg, sizeof msg, "request body too large (limit %zu bytes)", max_body);
        qk_http_reply_message(&rep, status, msg);
    } else {
        run_handler(h, &req, &rep);
    }
    if (!rep.body && rep.status >= 400) /* out of memory building an error: still a body */
        qk_http_reply_set(&rep, rep.status, "application/json", fallback_error,
                          sizeof fallback_error - 1);
    enum MHD_Result ret = send_reply(c, &rep);
    double ms = qk_now_ms() - r->t_start_ms;
    if (h && h->observe)
        h->observe(h->observe_cls, req.listener, (int)rep.status, ms);
    qk_request_log line = {
        .listener = req.listener,
        .method = req.method,
        .path = req.path,
        .identity = req.caller->id[0] ? req.caller->id : NULL,
        .status = (int)rep.status,
        .latency_ms = ms,
        .key_ids = rep.key_ids,
        .detail = rep.detail[0] ? rep.detail : NULL,
    };
    qk_log_request(&line);
    qk_http_reply_clear(&rep);
    return ret;
}

void qk_http_envelope_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                enum MHD_RequestTerminationCode toe)
{
    qk_req_completed(cls, c, con_cls, toe);
}
