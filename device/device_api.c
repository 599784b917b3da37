/* device_api.c - PUT key blocks (stored from the request body, which the envelope wipes when
 * the request completes) and POST link telemetry (kept in memory per link for /metrics). */
#include "device_api.h"

#include <string.h>

#include "device_parse.h"
#include "http_util.h"
#include "log.h"

/* The pool-full warning, at the 1st, 2nd, 4th, 8th ... refusal on the link (the request log line
 * records each one): a device that keeps pushing into a full pool cannot flood the log. */
static void full_warning(qk_kms *k, const qk_link *link)
{
    qk_pool_status st;
    qk_err err;
    qk_err_clear(&err);
    if (qk_store_pool_status(qk_kms_store(k), link->cfg->link_id, &st, &err) != 0)
        return;
    uint64_t n = st.blocks_refused_full;
    if (n > 0 && (n & (n - 1)) == 0)
        QK_WARN("link %s: pool full (%llu bytes held, max_pool_bytes %llu): %llu block(s) "
                "refused so far",
                link->cfg->link_id, (unsigned long long)st.bytes_held,
                (unsigned long long)link->cfg->max_pool_bytes, (unsigned long long)n);
}

/* A block body goes to the store as it is: the only copy of the bytes outside the store is
 * the envelope's request buffer, wiped when the request completes (http_envelope.h). */
static void put_block(qk_kms *k, qk_link *link, uint64_t block_id, const qk_http_request *req,
                      qk_http_reply *rep)
{
    qk_err err;
    qk_err_clear(&err);
    if (qk_device_check_block(req->body_len, &err) != 0) {
        qk_http_reply_error(rep, 400, "bad-request", err.msg);
        return;
    }
    const char *link_id = link->cfg->link_id;
    qk_put_result res = QK_PUT_NEW;
    if (qk_store_block_put_capped(qk_kms_store(k), link_id, block_id, (const uint8_t *)req->body,
                                  req->body_len, link->cfg->max_pool_bytes, &res, &err) != 0) {
        QK_ERROR("link %s: block %llu: %s", link_id, (unsigned long long)block_id, err.msg);
        qk_http_reply_error(rep, 500, "internal", "store error");
        return;
    }
    switch (res) {
    case QK_PUT_NEW:
        qk_metrics_key_bytes(qk_kms_metrics(k), link_id, QK_KEY_RECEIVED, req->body_len);
        qk_kms_block_added(k);
        qk_http_reply_json(rep, 201, "{\"status\":\"new\"}");
        return;
    case QK_PUT_DUPLICATE:
        qk_http_reply_json(rep, 200, "{\"status\":\"duplicate\"}");
        return;
    case QK_PUT_FULL:
        /* 507 Insufficient Storage (RFC 4918 section 11.5): the KME cannot store the block until
         * keys are taken; 409 already means "same ID, other bytes". */
        full_warning(k, link);
        qk_http_reply_error(rep, 507, "full",
                            "the link's key pool is full (max_pool_bytes): block not stored");
        return;
    case QK_PUT_CONFLICT:
        break;
    }
    QK_WARN("link %s: block %llu pushed again with other bytes: burned", link_id,
            (unsigned long long)block_id);
    qk_http_reply_error(rep, 409, "conflict",
                        "block ID already holds other bytes: the block is burned");
}

static void post_telemetry(qk_link *link, const qk_http_request *req, qk_http_reply *rep)
{
    if (req->body_len > QK_DEVICE_TELEMETRY_MAX) {
        qk_http_reply_error(rep, 413, "bad-request", "telemetry body too large");
        return;
    }
    qk_device_telemetry in;
    qk_err err;
    qk_err_clear(&err);
    if (qk_device_parse_telemetry(req->body, req->body_len, &in, &err) != 0) {
        qk_http_reply_error(rep, 400, "bad-request", err.msg);
        return;
    }
    /* Members the device left out keep their last value. */
    qk_link_telemetry t;
    qk_link_get_telemetry(link, &t);
    _Static_assert(sizeof t.state == sizeof in.state, "telemetry state sizes differ");
    memcpy(t.state, in.state, sizeof t.state);
    if (in.has_qber)
        t.qber = in.qber;
    if (in.has_rate)
        t.rate_bps = in.rate_bps;
    if (in.has_bits)
        t.delivered_bits = in.delivered_bits;
    t.updated_at = qk_now_s();
    qk_link_set_telemetry(link, &t);
    qk_http_reply_take(rep, 204, NULL, NULL, 0);
}

static void device_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    qk_device_api_handler *h = (qk_device_api_handler *)self;
    qk_device_path p;
    (void)qk_device_parse_path(req->path, &p); /* a NONE route is answered below */
    if (!p.link_id[0]) {
        qk_http_reply_error(rep, 404, "not-found", p.error);
        return;
    }
    qk_link *link = qk_kms_link_by_id(h->kms, p.link_id);
    if (!link) {
        qk_http_reply_error(rep, 404, "not-found", QK_DEVICE_MSG_UNKNOWN_LINK);
        return;
    }
    /* A link fed from its device's ETSI 014 interface takes no pushed blocks (docs/qkd-kmed.md,
     * "Key sources"); checked before the caller, whom such a link need not name. */
    if (p.route == QK_DEVICE_ROUTE_BLOCK && link->cfg->source == QK_SOURCE_ETSI014) {
        qk_http_reply_error(rep, 409, "source",
                            "the link's key source is its device's ETSI 014 API: no pushed blocks");
        return;
    }
    const qk_peer_identity *id = req->caller;
    const char *why = NULL;
    /* Only device certificates here (docs/qkd-kmed.md "Roles"), whatever their CN. */
    if (id->kind == QK_ID_CERT &&
        !qk_role_allows(true, id->role, QK_ROLE_DEVICE, h->role_marker, &why)) {
        qk_http_reply_error(rep, 403, "forbidden", why);
        return;
    }
    if (id->kind != QK_ID_CERT || strcmp(id->id, link->cfg->device_identity) != 0) {
        qk_http_reply_error(rep, 403, "forbidden", "caller is not this link's device");
        return;
    }
    switch (p.route) {
    case QK_DEVICE_ROUTE_BLOCK:
        if (strcmp(req->method, "PUT") != 0)
            qk_http_reply_not_allowed(rep, "PUT");
        else
            put_block(h->kms, link, p.block_id, req, rep);
        return;
    case QK_DEVICE_ROUTE_TELEMETRY:
        if (strcmp(req->method, "POST") != 0)
            qk_http_reply_not_allowed(rep, "POST");
        else
            post_telemetry(link, req, rep);
        return;
    case QK_DEVICE_ROUTE_NONE:
        break;
    }
    qk_http_reply_error(rep, 404, "not-found", p.error);
}

void qk_device_api_configure(qk_device_api_handler *h, qk_kms *kms)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = device_on_req;
    h->kms = kms;
}
