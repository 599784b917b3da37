/* device_api.c - PUT key blocks (copied to secure memory, wiped after the store call) and
 * POST link telemetry (kept in memory per link for /metrics). */
#include "device_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_reply.h"
#include "json_util.h"
#include "kms.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

#define PREFIX             "/device/v1/links/"
#define TELEMETRY_MAX_BODY 4096

typedef struct {
    qk_api_call call;
    qk_kms *kms;
    qk_link *link;
    qk_req *req;
} device_ctx;

static bool parse_block_id(const char *s, uint64_t *out)
{
    if (!*s || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (QK_PEER_BLOCK_ID_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static enum MHD_Result put_block(device_ctx *d, uint64_t block_id)
{
    qk_req *r = d->req;
    if (r->body_len <= QK_BLOCK_VKEY_LEN)
        return qk_api_error(&d->call, 400, "bad-request", "block must be 33 bytes .. 4 MiB");
    uint8_t *bytes = qk_secure_alloc(r->body_len);
    if (!bytes) {
        qk_wipe(r->body, r->body_len);
        return qk_api_error(&d->call, 500, "internal", "out of secure memory");
    }
    size_t len = r->body_len;
    memcpy(bytes, r->body, len);
    qk_wipe(r->body, r->body_len);
    qk_put_result res = QK_PUT_NEW;
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_store_block_put(qk_kms_store(d->kms), d->link->cfg->link_id, block_id, bytes, len,
                                &res, &err);
    qk_secure_free(bytes);
    if (rc != 0) {
        QK_ERROR("link %s: block %llu: %s", d->link->cfg->link_id, (unsigned long long)block_id,
                 err.msg);
        return qk_api_error(&d->call, 500, "internal", "store error");
    }
    switch (res) {
    case QK_PUT_NEW:
        qk_kms_block_added(d->kms);
        return qk_api_reply(&d->call, 201, "application/json", "{\"status\":\"new\"}", NULL, NULL,
                            NULL);
    case QK_PUT_DUPLICATE:
        return qk_api_reply(&d->call, 200, "application/json", "{\"status\":\"duplicate\"}", NULL,
                            NULL, NULL);
    case QK_PUT_CONFLICT:
        break;
    }
    QK_WARN("link %s: block %llu pushed again with other bytes: burned", d->link->cfg->link_id,
            (unsigned long long)block_id);
    return qk_api_error(&d->call, 409, "conflict",
                        "block ID already holds other bytes: the block is burned");
}

static enum MHD_Result post_telemetry(device_ctx *d)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *o = qk_json_parse(d->req->body, d->req->body_len, TELEMETRY_MAX_BODY, &err);
    if (!o)
        return qk_api_error(&d->call, 400, "bad-request", err.msg);
    qk_link_telemetry t;
    qk_link_get_telemetry(d->link, &t);
    const char *state;
    int64_t bits = 0;
    bool has_bits = false;
    const cJSON *qber = cJSON_GetObjectItemCaseSensitive(o, "qber");
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(o, "rate_bps");
    enum MHD_Result res;
    if (!cJSON_IsObject(o) || qk_json_get_string(o, "state", true, &state, NULL, &err) != 0 ||
        qk_json_get_int(o, "delivered_bits", false, 0, INT64_MAX, &bits, &has_bits, &err) != 0) {
        res = qk_api_error(&d->call, 400, "bad-request", err.code ? err.msg : "not an object");
        goto out;
    }
    size_t sl = strlen(state);
    bool state_ok = sl >= 1 && sl < sizeof t.state;
    for (size_t i = 0; state_ok && i < sl; i++)
        state_ok = state[i] > 0x20 && state[i] < 0x7f;
    if (!state_ok) {
        res = qk_api_error(&d->call, 400, "bad-request", "state: 1..31 printable characters");
        goto out;
    }
    if ((qber && (!cJSON_IsNumber(qber) || !(qber->valuedouble >= 0 && qber->valuedouble <= 1))) ||
        (rate &&
         (!cJSON_IsNumber(rate) || !(rate->valuedouble >= 0 && rate->valuedouble < 1e15)))) {
        res = qk_api_error(&d->call, 400, "bad-request",
                           "qber must be a number in [0, 1], rate_bps a number >= 0");
        goto out;
    }
    memcpy(t.state, state, sl + 1);
    if (qber)
        t.qber = qber->valuedouble;
    if (rate)
        t.rate_bps = rate->valuedouble;
    if (has_bits)
        t.delivered_bits = (uint64_t)bits;
    t.updated_at = qk_now_s();
    qk_link_set_telemetry(d->link, &t);
    res = qk_api_reply(&d->call, 204, NULL, NULL, NULL, NULL, NULL);
out:
    cJSON_Delete(o);
    return res;
}

enum MHD_Result qk_device_api_handler(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, QK_DEVICE_API_MAX_BODY, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st == QK_REQ_ERROR)
        return MHD_NO;
    qk_kms *k = cls;
    const qk_peer_identity *id = qk_conn_identity(c);
    device_ctx d = {
        .call = {.listener = "device",
                 .metrics = qk_kms_metrics(k),
                 .conn = c,
                 .method = method,
                 .url = url,
                 .identity = id ? id->id : NULL,
                 .req = r},
        .kms = k,
        .req = r,
    };
    if (strncmp(url, PREFIX, strlen(PREFIX)) != 0)
        return qk_api_error(&d.call, 404, "not-found", "unknown path");
    /* {link_id}/blocks/{block_id} or {link_id}/telemetry */
    const char *rest = url + strlen(PREFIX);
    const char *slash = strchr(rest, '/');
    char link_id[QK_STORE_ID_MAX + 1];
    if (!slash || slash == rest || (size_t)(slash - rest) > QK_STORE_ID_MAX)
        return qk_api_error(&d.call, 404, "not-found", "unknown path");
    memcpy(link_id, rest, (size_t)(slash - rest));
    link_id[slash - rest] = '\0';
    d.link = qk_kms_link_by_id(k, link_id);
    if (!d.link)
        return qk_api_error(&d.call, 404, "not-found", "unknown link");
    if (!id || id->kind != QK_ID_CERT || strcmp(id->id, d.link->cfg->device_identity) != 0)
        return qk_api_error(&d.call, 403, "forbidden", "caller is not this link's device");
    if (r->too_large) {
        qk_wipe(r->body, r->body_len);
        return qk_api_error(&d.call, 413, "bad-request", "body too large");
    }
    const char *what = slash + 1;
    if (strncmp(what, "blocks/", 7) == 0) {
        uint64_t block_id;
        if (!parse_block_id(what + 7, &block_id))
            return qk_api_error(&d.call, 404, "not-found", "bad block ID (decimal, < 2^53)");
        if (strcmp(method, "PUT") != 0) {
            qk_wipe(r->body, r->body_len);
            return qk_api_bad_method(&d.call, "PUT");
        }
        return put_block(&d, block_id);
    }
    if (strcmp(what, "telemetry") == 0) {
        if (strcmp(method, "POST") != 0)
            return qk_api_bad_method(&d.call, "POST");
        if (r->body_len > TELEMETRY_MAX_BODY)
            return qk_api_error(&d.call, 413, "bad-request", "telemetry body too large");
        return post_telemetry(&d);
    }
    return qk_api_error(&d.call, 404, "not-found", "unknown path");
}
