/* peer_api.c - the peer API: reserve, burn, inventory, request state, health. */
#include "peer_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_reply.h"
#include "codec.h"
#include "json_util.h"
#include "kms.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

#define PREFIX       "/peer/v1/"
#define BLOCK_ID_MAX QK_PEER_BLOCK_ID_MAX

typedef struct {
    qk_api_call call;
    qk_kms *kms;
    qk_link *link; /* the caller's link */
    const qk_req *req;
} peer_ctx;

static enum MHD_Result bad_request(peer_ctx *p, const char *msg)
{
    return qk_api_error(&p->call, 400, "bad-request", msg);
}

static cJSON *parse_body(peer_ctx *p, qk_err *err)
{
    return qk_json_parse(p->req->body, p->req->body_len, QK_PEER_API_MAX_BODY, err);
}

/* A string member of 1..max printable characters. */
static int get_id(const cJSON *o, const char *name, size_t max, const char **out, qk_err *err)
{
    if (qk_json_get_string(o, name, true, out, NULL, err) != 0)
        return QK_EINVAL;
    size_t n = strlen(*out);
    if (n < 1 || n > max)
        return qk_err_set(err, QK_EINVAL, "%s: must be 1..%zu characters", name, max);
    for (const char *s = *out; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return qk_err_set(err, QK_EINVAL, "%s: control characters not allowed", name);
    return 0;
}

static int get_hex32(const cJSON *o, const char *name, uint8_t out[QK_CHECK_LEN], qk_err *err)
{
    const char *s;
    size_t got = 0;
    if (qk_json_get_string(o, name, true, &s, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(s) != 2 * QK_CHECK_LEN ||
        qk_hex_decode(s, 2 * QK_CHECK_LEN, out, QK_CHECK_LEN, &got) != 0 || got != QK_CHECK_LEN)
        return qk_err_set(err, QK_EINVAL, "%s: must be %d hex digits", name, 2 * QK_CHECK_LEN);
    return 0;
}

static bool link_ok(peer_ctx *p, const cJSON *o, qk_err *err)
{
    const char *link;
    if (get_id(o, "link", QK_STORE_ID_MAX, &link, err) != 0)
        return false;
    if (strcmp(link, p->link->cfg->link_id) != 0) {
        qk_err_set(err, QK_EUNAUTH, "link %s is not the caller's link", link);
        return false;
    }
    return true;
}

/* ---- reserve ---------------------------------------------------------------------------- */

typedef struct {
    qk_reservation r;
    const char *slaves[65];
    qk_key_ref *refs;
    size_t n;
    qk_side side;
} reserve_in;

static int parse_keys(peer_ctx *p, const cJSON *keys, reserve_in *in, qk_err *err)
{
    const qk_key_limits *lim = qk_kms_limits(p->kms);
    int size = cJSON_GetArraySize(keys);
    if (size < 1 || (unsigned)size > lim->max_keys_per_request)
        return qk_err_set(err, QK_EINVAL, "keys: 1..%u entries", lim->max_keys_per_request);
    in->refs = calloc((size_t)size, sizeof *in->refs);
    if (!in->refs)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        qk_key_ref *ref = &in->refs[in->n];
        const char *id;
        int64_t bid, off, len;
        qk_uuid u;
        if (!cJSON_IsObject(k))
            return qk_err_set(err, QK_EINVAL, "keys: entries must be objects");
        if (qk_json_get_string(k, "key_ID", true, &id, NULL, err) != 0)
            return QK_EINVAL;
        if (strlen(id) != QK_KEY_ID_LEN || qk_uuid_parse(id, QK_KEY_ID_LEN, &u) != 0)
            return qk_err_set(err, QK_EINVAL, "key_ID: must be a UUID");
        qk_uuid_format(&u, ref->key_id);
        if (qk_json_get_int(k, "block_id", true, 0, (int64_t)BLOCK_ID_MAX, &bid, NULL, err) ||
            qk_json_get_int(k, "offset", true, 0, QK_BLOCK_MAX_BYTES, &off, NULL, err) ||
            qk_json_get_int(k, "length", true, 1, lim->max_size_bits / 8, &len, NULL, err) ||
            get_hex32(k, "check", ref->check, err))
            return QK_EINVAL;
        ref->block_id = (uint64_t)bid;
        ref->offset = (uint32_t)off;
        ref->length = (uint32_t)len;
        in->n++;
    }
    return 0;
}

static int parse_reserve(peer_ctx *p, const cJSON *o, reserve_in *in, qk_err *err)
{
    const qk_key_limits *lim = qk_kms_limits(p->kms);
    const char *side;
    int64_t exp;
    const cJSON *slaves, *keys;
    if (get_id(o, "request_id", QK_STORE_ID_MAX, &in->r.request_id, err) != 0 ||
        get_id(o, "master", QK_STORE_ID_MAX, &in->r.master, err) != 0 ||
        qk_json_get_string(o, "side", true, &side, NULL, err) != 0 ||
        qk_json_get_int(o, "expires_at", true, 0, (int64_t)BLOCK_ID_MAX, &exp, NULL, err) != 0 ||
        qk_json_get_array(o, "slaves", true, &slaves, err) != 0 ||
        qk_json_get_array(o, "keys", true, &keys, err) != 0)
        return QK_EINVAL;
    in->r.link = p->link->cfg->link_id;
    in->r.expires_at = (uint64_t)exp;
    /* The caller carves from the other end of the link than this node. */
    qk_side expect = p->link->side == QK_SIDE_LOW ? QK_SIDE_HIGH : QK_SIDE_LOW;
    if (strcmp(side, "low") == 0)
        in->side = QK_SIDE_LOW;
    else if (strcmp(side, "high") == 0)
        in->side = QK_SIDE_HIGH;
    else
        return qk_err_set(err, QK_EINVAL, "side: must be low or high");
    if (in->side != expect)
        return qk_err_set(err, QK_EINVAL, "side: the caller is the %s side of this link",
                          expect == QK_SIDE_LOW ? "low" : "high");
    int ns = cJSON_GetArraySize(slaves);
    if (ns < 1 || (unsigned)ns > 1 + lim->max_sae_id_count || ns > 65)
        return qk_err_set(err, QK_EINVAL, "slaves: 1..%u entries", 1 + lim->max_sae_id_count);
    const cJSON *s;
    cJSON_ArrayForEach(s, slaves)
    {
        if (!cJSON_IsString(s) || !s->valuestring[0] || strlen(s->valuestring) > QK_STORE_ID_MAX)
            return qk_err_set(err, QK_EINVAL, "slaves: entries must be identities");
        in->slaves[in->r.nslaves++] = s->valuestring;
    }
    in->r.slaves = in->slaves;
    return parse_keys(p, keys, in, err);
}

/* max_key_count holds per SAE pair at the KME that stores the keys, i.e. here for keys a peer
 * reserves for slaves of ours: refuse a reservation that would take any of its (master, slave)
 * pairs above the limit. The check and the reservation run under one lock so that concurrent
 * reservations cannot overshoot together. */
static pthread_mutex_t quota_lock = PTHREAD_MUTEX_INITIALIZER;

static int quota_ok(peer_ctx *p, const qk_reservation *r, size_t n, qk_err *err)
{
    uint64_t max = qk_kms_limits(p->kms)->max_key_count;
    for (size_t i = 0; i < r->nslaves; i++) {
        uint64_t held = 0;
        int rc = qk_kms_stored_count(p->kms, r->master, r->slaves[i], &held, err);
        if (rc != 0)
            return rc;
        if (held + n > max)
            return qk_err_set(
                err, QK_ELIMIT,
                "%s -> %s: %llu keys stored, %zu more would exceed max_key_count %llu", r->master,
                r->slaves[i], (unsigned long long)held, n, (unsigned long long)max);
    }
    return 0;
}

static enum MHD_Result do_reserve(peer_ctx *p)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *o = parse_body(p, &err);
    if (!o)
        return bad_request(p, err.msg);
    reserve_in in;
    memset(&in, 0, sizeof in);
    enum MHD_Result res;
    if (!link_ok(p, o, &err)) {
        res = err.code == QK_EUNAUTH ? qk_api_error(&p->call, 403, "forbidden", err.msg)
                                     : bad_request(p, err.msg);
        goto out;
    }
    if (parse_reserve(p, o, &in, &err) != 0) {
        res = err.code == QK_ENOMEM ? qk_api_error(&p->call, 500, "internal", err.msg)
                                    : bad_request(p, err.msg);
        goto out;
    }
    pthread_mutex_lock(&quota_lock);
    int rc = quota_ok(p, &in.r, in.n, &err);
    if (rc == 0)
        rc = qk_store_reserve_in(qk_kms_store(p->kms), &in.r, in.side, in.refs, in.n, &err);
    pthread_mutex_unlock(&quota_lock);
    switch (rc) {
    case 0:
        res = qk_api_reply(&p->call, 200, "application/json", "{\"status\":\"reserved\"}", NULL,
                           NULL, NULL);
        break;
    case QK_ECOLLISION:
    case QK_EEXIST:
        res = qk_api_error(&p->call, 409, "collision", err.msg);
        break;
    case QK_EMISMATCH:
        QK_WARN("link %s: reserve %s: material mismatch, blocks burned", p->link->cfg->link_id,
                in.r.request_id);
        res = qk_api_error(&p->call, 409, "mismatch", err.msg);
        break;
    case QK_EINVAL:
        res = qk_api_error(&p->call, 409, "burned", err.msg);
        break;
    case QK_ENOTFOUND:
        res = qk_api_error(&p->call, 404, "unknown-block", err.msg);
        break;
    case QK_ELIMIT:
        res = qk_api_error(&p->call, 409, "limit", err.msg);
        break;
    default:
        QK_ERROR("reserve %s: %s", in.r.request_id, err.msg);
        res = qk_api_error(&p->call, 500, "internal", "store error");
        break;
    }
out:
    free(in.refs);
    cJSON_Delete(o);
    return res;
}

/* ---- burn, request state, health -------------------------------------------------------- */

static enum MHD_Result do_burn(peer_ctx *p)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *o = parse_body(p, &err);
    if (!o)
        return bad_request(p, err.msg);
    const char *id;
    enum MHD_Result res;
    if (get_id(o, "request_id", QK_STORE_ID_MAX, &id, &err) != 0) {
        res = bad_request(p, err.msg);
    } else if (qk_store_burn(qk_kms_store(p->kms), id, &err) != 0) {
        QK_ERROR("burn %s: %s", id, err.msg);
        res = qk_api_error(&p->call, 500, "internal", "store error");
    } else {
        res = qk_api_reply(&p->call, 200, "application/json", "{\"status\":\"burned\"}", NULL, NULL,
                           NULL);
    }
    cJSON_Delete(o);
    return res;
}

static enum MHD_Result do_request_state(peer_ctx *p, const char *id)
{
    if (!id[0] || strlen(id) > QK_STORE_ID_MAX || strchr(id, '/'))
        return bad_request(p, "bad request ID");
    qk_err err;
    int state = 0;
    int rc = qk_store_request_state(qk_kms_store(p->kms), id, &state, &err);
    if (rc == QK_ENOTFOUND)
        return qk_api_error(&p->call, 404, "not-found", "unknown request");
    if (rc != 0)
        return qk_api_error(&p->call, 500, "internal", "store error");
    const char *body = state == 0   ? "{\"state\":\"pending\"}"
                       : state == 1 ? "{\"state\":\"reserved\"}"
                                    : "{\"state\":\"burned\"}";
    return qk_api_reply(&p->call, 200, "application/json", body, NULL, NULL, NULL);
}

static enum MHD_Result do_health(peer_ctx *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *links = o ? cJSON_AddArrayToObject(o, "links") : NULL;
    bool ok = links && cJSON_AddStringToObject(o, "node_id", qk_kms_node_id(p->kms));
    for (size_t i = 0; ok && i < qk_kms_link_count(p->kms); i++) {
        cJSON *s = cJSON_CreateString(qk_kms_link_at(p->kms, i)->cfg->link_id);
        ok = s && cJSON_AddItemToArray(links, s);
        if (!ok)
            cJSON_Delete(s);
    }
    char *body = ok ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    if (!body)
        return qk_api_error(&p->call, 500, "internal", "out of memory");
    enum MHD_Result res = qk_api_reply(&p->call, 200, "application/json", body, NULL, NULL, NULL);
    free(body);
    return res;
}

/* ---- inventory -------------------------------------------------------------------------- */

static const char *inventory_one(peer_ctx *p, uint64_t bid, const uint8_t digest[QK_CHECK_LEN])
{
    qk_store *st = qk_kms_store(p->kms);
    const char *link = p->link->cfg->link_id;
    uint8_t mine[QK_CHECK_LEN];
    qk_block_state state;
    qk_err err;
    int rc = qk_store_block_digest(st, link, bid, mine, &state, &err);
    if (rc == QK_ENOTFOUND)
        return "unknown";
    if (rc != 0) {
        QK_ERROR("inventory: block %llu: %s", (unsigned long long)bid, err.msg);
        return "unknown";
    }
    if (state == QK_BLOCK_BURNED)
        return "burned";
    bool same = qk_memcmp_ct(mine, digest, QK_CHECK_LEN) == 0;
    qk_wipe(mine, sizeof mine);
    if (same) {
        if (state == QK_BLOCK_PENDING &&
            qk_store_block_set_state(st, link, bid, QK_BLOCK_CONFIRMED, &err) != 0) {
            QK_ERROR("inventory: confirm block %llu: %s", (unsigned long long)bid, err.msg);
            return "unknown";
        }
        return "match";
    }
    QK_WARN("link %s: block %llu differs from the peer's: burned", link, (unsigned long long)bid);
    if (qk_store_block_set_state(st, link, bid, QK_BLOCK_BURNED, &err) != 0)
        QK_ERROR("inventory: burn block %llu: %s", (unsigned long long)bid, err.msg);
    return "mismatch";
}

static enum MHD_Result do_inventory(peer_ctx *p)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *o = parse_body(p, &err);
    if (!o)
        return bad_request(p, err.msg);
    enum MHD_Result res;
    cJSON *ans = NULL;
    const cJSON *blocks;
    if (!link_ok(p, o, &err)) {
        res = err.code == QK_EUNAUTH ? qk_api_error(&p->call, 403, "forbidden", err.msg)
                                     : bad_request(p, err.msg);
        goto out;
    }
    if (qk_json_get_array(o, "blocks", true, &blocks, &err) != 0 ||
        cJSON_GetArraySize(blocks) > QK_PEER_INVENTORY_MAX) {
        res = bad_request(p, err.code ? err.msg : "blocks: at most 256 entries");
        goto out;
    }
    /* Validate everything before acting on anything. */
    const cJSON *b;
    cJSON_ArrayForEach(b, blocks)
    {
        int64_t bid;
        uint8_t d[QK_CHECK_LEN];
        if (!cJSON_IsObject(b) ||
            qk_json_get_int(b, "block_id", true, 0, (int64_t)BLOCK_ID_MAX, &bid, NULL, &err) ||
            get_hex32(b, "digest", d, &err)) {
            res = bad_request(p, err.code ? err.msg : "blocks: entries must be objects");
            goto out;
        }
    }
    ans = cJSON_CreateObject();
    cJSON *arr = ans ? cJSON_AddArrayToObject(ans, "blocks") : NULL;
    if (!arr) {
        res = qk_api_error(&p->call, 500, "internal", "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(b, blocks)
    {
        int64_t bid = 0;
        uint8_t d[QK_CHECK_LEN];
        qk_json_get_int(b, "block_id", true, 0, (int64_t)BLOCK_ID_MAX, &bid, NULL, &err);
        get_hex32(b, "digest", d, &err);
        const char *status = inventory_one(p, (uint64_t)bid, d);
        cJSON *e = cJSON_CreateObject();
        if (e && !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            e = NULL;
        }
        if (!e || !cJSON_AddNumberToObject(e, "block_id", (double)bid) ||
            !cJSON_AddStringToObject(e, "status", status)) {
            res = qk_api_error(&p->call, 500, "internal", "out of memory");
            goto out;
        }
    }
    char *body = qk_json_print(ans);
    if (!body) {
        res = qk_api_error(&p->call, 500, "internal", "out of memory");
        goto out;
    }
    res = qk_api_reply(&p->call, 200, "application/json", body, NULL, NULL, NULL);
    free(body);
out:
    cJSON_Delete(ans);
    cJSON_Delete(o);
    return res;
}

/* ---- routing ---------------------------------------------------------------------------- */

enum MHD_Result qk_peer_api_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, QK_PEER_API_MAX_BODY, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st == QK_REQ_ERROR)
        return MHD_NO;
    qk_kms *k = cls;
    const qk_peer_identity *id = qk_conn_identity(c);
    peer_ctx p = {
        .call = {.listener = "peer",
                 .metrics = qk_kms_metrics(k),
                 .conn = c,
                 .method = method,
                 .url = url,
                 .identity = id ? id->id : NULL,
                 .req = r},
        .kms = k,
        .req = r,
    };
    p.link = id && id->kind == QK_ID_CERT ? qk_kms_link_by_peer(k, id->id) : NULL;
    if (!p.link)
        return qk_api_error(&p.call, 403, "forbidden", "caller is not a linked peer KME");
    if (r->too_large)
        return qk_api_error(&p.call, 413, "bad-request", "body too large");
    if (strncmp(url, PREFIX, strlen(PREFIX)) != 0)
        return qk_api_error(&p.call, 404, "not-found", "unknown path");
    const char *rest = url + strlen(PREFIX);
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    if (strcmp(rest, "reserve") == 0)
        return post ? do_reserve(&p) : qk_api_bad_method(&p.call, "POST");
    if (strcmp(rest, "burn") == 0)
        return post ? do_burn(&p) : qk_api_bad_method(&p.call, "POST");
    if (strcmp(rest, "inventory") == 0)
        return post ? do_inventory(&p) : qk_api_bad_method(&p.call, "POST");
    if (strcmp(rest, "health") == 0)
        return get ? do_health(&p) : qk_api_bad_method(&p.call, "GET");
    if (strncmp(rest, "request/", 8) == 0)
        return get ? do_request_state(&p, rest + 8) : qk_api_bad_method(&p.call, "GET");
    return qk_api_error(&p.call, 404, "not-found", "unknown path");
}
