/* etsi014.c - the ETSI GS QKD 014 V1.1.1 access handler (see etsi014/README.md): routes
 * status, enc_keys and dec_keys onto the KME core (kms/core.h). Errors are 400/401/503 with a
 * JSON {"message": ...}; key containers are built and sent from secure memory; one request
 * line is logged per request (key IDs, never key bytes). */
#include "etsi014.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etsi014_parse.h"
#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

/* Serializes the max_key_count check and the reservation of same-KME requests, so that
 * concurrent requests cannot overshoot a pair's quota (remote requests hold their keys at the
 * slave's KME: nothing is counted here to race on). */
static pthread_mutex_t quota_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    qk_kms *k;
    struct MHD_Connection *c;
    const char *method;
    const char *url;
    const char *caller;
    const char *fp_hex; /* the client certificate's SHA-256 (hex) */
    qk_req *r;
    unsigned status;
    char *key_ids; /* malloc'ed, for the log line */
    char detail[200];
} etsi_ctx;

static enum MHD_Result fail_full(etsi_ctx *x, unsigned status, const char *msg, cJSON *details,
                                 const char *allow)
{
    x->status = status;
    snprintf(x->detail, sizeof x->detail, "%s", msg);
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o && cJSON_AddStringToObject(o, "message", msg)) {
        if (details) {
            cJSON_AddItemToObject(o, "details", details);
            details = NULL;
        }
        text = qk_json_print(o);
    }
    cJSON_Delete(o);
    cJSON_Delete(details);
    if (!text)
        return MHD_NO;
    enum MHD_Result ret = qk_reply(x->c, status, "application/json", text, strlen(text),
                                   allow ? "Allow" : NULL, allow);
    free(text);
    return ret;
}

static enum MHD_Result fail(etsi_ctx *x, unsigned status, const char *msg)
{
    return fail_full(x, status, msg, NULL, NULL);
}

/* Map a core error to the ETSI answer; the internal message goes to the log only when it may
 * describe server internals. */
static enum MHD_Result fail_core(etsi_ctx *x, const qk_err *err, bool fetch)
{
    const char *msg = err->msg[0] ? err->msg : qk_status_name(err->code);
    switch (err->code) {
    case QK_EINVAL:
    case QK_ELIMIT:
        return fail(x, 400, msg);
    case QK_ENOTFOUND:
        return fail(x, 400, fetch ? QK_ETSI_MSG_NOT_FOUND : msg);
    case QK_EUNAUTH:
        return fail(x, 401,
                    fetch ? "the calling SAE is not a slave SAE of one or more keys"
                          : "the calling SAE is not authorized");
    default:
        break;
    }
    const char *pub;
    switch (err->code) {
    case QK_ENOKEY:
        pub = "not enough key material available";
        break;
    case QK_EPEER:
        pub = "the KME of the slave SAE is not reachable";
        break;
    default:
        pub = "error on server side";
        break;
    }
    enum MHD_Result ret = fail(x, 503, pub);
    snprintf(x->detail, sizeof x->detail, "%s: %s (%.120s)", pub, qk_status_name(err->code), msg);
    return ret;
}

/* Send a key container and remember the key IDs for the log. */
static enum MHD_Result reply_keys(etsi_ctx *x, const qk_key_batch *b)
{
    char *json = NULL;
    size_t len = 0;
    if (qk_etsi_key_container(b, &json, &len) != 0)
        return fail(x, 503, "error on server side");
    x->key_ids = qk_etsi_key_id_list(b);
    x->status = 200;
    enum MHD_Result ret = qk_reply_json_secret(x->c, 200, json, len);
    qk_secure_free(json);
    return ret;
}

static enum MHD_Result do_status(etsi_ctx *x, const char *slave)
{
    if (strcmp(slave, x->caller) == 0)
        return fail(x, 400, "slave_SAE_ID must differ from the calling SAE ID");
    const char *target = NULL;
    if (qk_kms_sae_home(x->k, slave, &target) != 0 || !target)
        return fail(x, 400, "unknown slave_SAE_ID");
    if (!qk_kms_knows_kme(x->k, target))
        return fail(x, 400, "the KME of the slave SAE is not linked to this KME");
    const qk_key_limits *lim = qk_kms_limits(x->k);
    bool local = strcmp(target, qk_kms_node_id(x->k)) == 0;
    uint64_t outstanding = 0;
    qk_pool_status ps;
    memset(&ps, 0, sizeof ps);
    qk_err err = {0};
    if (qk_kms_stored_count(x->k, x->caller, slave, &outstanding, &err) != 0 ||
        (!local && qk_kms_pool_status(x->k, target, &ps, &err) != 0))
        return fail_core(x, &err, false);
    uint64_t stored = qk_etsi_stored_key_count(lim, local, outstanding, ps.bytes_available);
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "source_KME_ID", qk_kms_node_id(x->k)) &&
              cJSON_AddStringToObject(o, "target_KME_ID", target) &&
              cJSON_AddStringToObject(o, "master_SAE_ID", x->caller) &&
              cJSON_AddStringToObject(o, "slave_SAE_ID", slave) &&
              cJSON_AddNumberToObject(o, "key_size", lim->default_size_bits) &&
              cJSON_AddNumberToObject(o, "stored_key_count", (double)stored) &&
              cJSON_AddNumberToObject(o, "max_key_count", (double)lim->max_key_count) &&
              cJSON_AddNumberToObject(o, "max_key_per_request", lim->max_keys_per_request) &&
              cJSON_AddNumberToObject(o, "max_key_size", lim->max_size_bits) &&
              cJSON_AddNumberToObject(o, "min_key_size", lim->min_size_bits) &&
              cJSON_AddNumberToObject(o, "max_SAE_ID_count", lim->max_sae_id_count);
    char *text = ok ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return fail(x, 503, "error on server side");
    x->status = 200;
    enum MHD_Result ret = qk_reply_json(x->c, 200, text);
    free(text);
    return ret;
}

/* A GET query integer: absent is fine, repeated or non-numeric is 400. Returns 0, or 1 when
 * an error reply was queued (*ret set). */
static int query_int(etsi_ctx *x, const char *name, bool *has, int64_t *v, enum MHD_Result *ret)
{
    unsigned cnt = qk_query_count(x->c, name);
    *has = false;
    char msg[96];
    if (cnt == 0)
        return 0;
    if (cnt > 1) {
        snprintf(msg, sizeof msg, "query parameter %s is repeated", name);
        *ret = fail(x, 400, msg);
        return 1;
    }
    const char *s = MHD_lookup_connection_value(x->c, MHD_GET_ARGUMENT_KIND, name);
    if (qk_etsi_parse_int(s, v) != 0) {
        snprintf(msg, sizeof msg, "%s shall be an integer", name);
        *ret = fail(x, 400, msg);
        return 1;
    }
    *has = true;
    return 0;
}

/* The max_key_count check for every (caller, slave) pair, then the reservation. */
static enum MHD_Result reserve_keys(etsi_ctx *x, const char *target, const char *const *slaves,
                                    size_t nslaves, size_t number, uint32_t size_bits)
{
    qk_err err = {0};
    for (size_t i = 0; i < nslaves; i++) {
        uint64_t outstanding = 0;
        if (qk_kms_stored_count(x->k, x->caller, slaves[i], &outstanding, &err) != 0)
            return fail_core(x, &err, false);
        if (!qk_etsi_quota_ok(qk_kms_limits(x->k), outstanding, number)) {
            enum MHD_Result ret = fail(x, 503, QK_ETSI_MSG_QUOTA);
            snprintf(x->detail, sizeof x->detail, "%s (%s holds %llu)", QK_ETSI_MSG_QUOTA,
                     slaves[i], (unsigned long long)outstanding);
            return ret;
        }
    }
    qk_key_request req = {
        .requester = x->caller,
        .target_kme = target,
        .slaves = slaves,
        .nslaves = nslaves,
        .number = number,
        .size_bits = size_bits,
    };
    qk_key_batch b;
    memset(&b, 0, sizeof b);
    if (qk_kms_reserve(x->k, &req, &b, &err) != 0)
        return fail_core(x, &err, false);
    enum MHD_Result ret = reply_keys(x, &b);
    qk_key_batch_free(&b);
    return ret;
}

static enum MHD_Result do_enc(etsi_ctx *x, const char *slave, bool post)
{
    enum MHD_Result ret = MHD_NO;
    qk_err err = {0};
    qk_etsi_key_req *kr = calloc(1, sizeof *kr);
    if (!kr)
        return fail(x, 503, "error on server side");
    if (post) {
        cJSON *details = NULL;
        if (qk_etsi_parse_key_request(x->r->body, x->r->body_len, kr, &details, &err) != 0) {
            ret = fail_full(x, 400, err.msg, details, NULL);
            goto out;
        }
    } else if (query_int(x, "number", &kr->has_number, &kr->number, &ret) ||
               query_int(x, "size", &kr->has_size, &kr->size, &ret)) {
        goto out;
    }
    size_t number = 0;
    uint32_t size_bits = 0;
    if (qk_etsi_check_key_req(kr, qk_kms_limits(x->k), x->caller, slave, &number, &size_bits,
                              &err) != 0) {
        ret = fail(x, 400, err.msg);
        goto out;
    }
    const char *slaves[1 + QK_ETSI_MAX_ADD];
    size_t nslaves = 0;
    slaves[nslaves++] = slave;
    for (size_t i = 0; i < kr->nadd && nslaves < 1 + QK_ETSI_MAX_ADD; i++)
        slaves[nslaves++] = kr->add[i];
    const char *target = NULL;
    for (size_t i = 0; i < nslaves; i++) {
        const char *home = NULL;
        if (qk_kms_sae_home(x->k, slaves[i], &home) != 0 || !home) {
            ret = fail(x, 400,
                       i == 0 ? "unknown slave_SAE_ID"
                              : "unknown SAE ID in additional_slave_SAE_IDs");
            goto out;
        }
        if (!target)
            target = home;
        else if (strcmp(target, home) != 0) {
            ret = fail(x, 400, "all slave SAEs shall be attached to the same KME");
            goto out;
        }
    }
    if (!qk_kms_knows_kme(x->k, target)) {
        ret = fail(x, 400, "the KME of the slave SAE is not linked to this KME");
        goto out;
    }
    bool local = strcmp(target, qk_kms_node_id(x->k)) == 0;
    if (local)
        pthread_mutex_lock(&quota_mu);
    ret = reserve_keys(x, target, slaves, nslaves, number, size_bits);
    if (local)
        pthread_mutex_unlock(&quota_mu);
out:
    free(kr);
    return ret;
}

static enum MHD_Result do_dec(etsi_ctx *x, const char *master, bool post)
{
    if (strcmp(master, x->caller) == 0)
        return fail(x, 400, "master_SAE_ID must differ from the calling SAE ID");
    qk_err err = {0};
    char(*ids)[QK_KEY_ID_LEN + 1] = NULL;
    size_t n = 0;
    if (post) {
        if (qk_etsi_parse_key_ids(x->r->body, x->r->body_len, QK_ETSI_MAX_IDS, &ids, &n, &err) != 0)
            return fail(x, 400, err.msg);
    } else {
        unsigned cnt = qk_query_count(x->c, "key_ID");
        if (cnt == 0)
            return fail(x, 400, "key_ID query parameter is required");
        if (cnt > 1)
            return fail(x, 400, "GET accepts exactly one key_ID; use POST for several");
        const char *s = MHD_lookup_connection_value(x->c, MHD_GET_ARGUMENT_KIND, "key_ID");
        ids = calloc(1, sizeof *ids);
        if (!ids)
            return fail(x, 503, "error on server side");
        if (!s || qk_etsi_norm_key_id(s, strlen(s), ids[0]) != 0) {
            free(ids);
            return fail(x, 400, "key_ID is not a UUID");
        }
        n = 1;
    }
    enum MHD_Result ret;
    const char **ptrs = calloc(n, sizeof *ptrs);
    if (!ptrs) {
        free(ids);
        return fail(x, 503, "error on server side");
    }
    for (size_t i = 0; i < n; i++)
        ptrs[i] = ids[i];
    qk_key_batch b;
    memset(&b, 0, sizeof b);
    if (qk_kms_fetch(x->k, x->caller, master, ptrs, n, &b, &err) != 0) {
        ret = fail_core(x, &err, true);
    } else {
        ret = reply_keys(x, &b);
        qk_key_batch_free(&b);
    }
    free(ptrs);
    free(ids);
    return ret;
}

static enum MHD_Result dispatch(etsi_ctx *x)
{
    qk_err err = {0};
    const char *home = NULL;
    if (qk_kms_sae_home(x->k, x->caller, &home) != 0 || !home ||
        strcmp(home, qk_kms_node_id(x->k)) != 0)
        return fail(x, 401, "the calling SAE is not registered at this KME");
    if (!qk_kms_sae_cert_ok(x->k, x->caller, x->fp_hex))
        return fail(x, 401, "the client certificate is not the one bound to the calling SAE");
    if (x->r->too_large)
        return fail(x, 400, "request body too large");
    qk_etsi_route route;
    char id[QK_ETSI_SAE_ID_MAX + 1];
    if (qk_etsi_parse_path(x->url, &route, id, sizeof id, &err) != 0)
        return fail(x, 400, err.msg);
    bool get = strcmp(x->method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(x->method, MHD_HTTP_METHOD_POST) == 0;
    switch (route) {
    case QK_ETSI_ROUTE_STATUS:
        if (!get)
            return fail_full(x, 400, "method not allowed", NULL, "GET");
        return do_status(x, id);
    case QK_ETSI_ROUTE_ENC:
        if (!get && !post)
            return fail_full(x, 400, "method not allowed", NULL, "GET, POST");
        return do_enc(x, id, post);
    case QK_ETSI_ROUTE_DEC:
        if (!get && !post)
            return fail_full(x, 400, "method not allowed", NULL, "GET, POST");
        return do_dec(x, id, post);
    default:
        return fail(x, 400, "unknown resource");
    }
}

enum MHD_Result qk_etsi014_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, QK_ETSI_MAX_BODY, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st != QK_REQ_DONE || !r)
        return MHD_NO;
    etsi_ctx x;
    memset(&x, 0, sizeof x);
    x.k = cls;
    x.c = c;
    x.method = method ? method : "";
    x.url = url ? url : "";
    x.r = r;
    const qk_peer_identity *pid = qk_conn_identity(c);
    enum MHD_Result ret;
    if (!x.k) {
        ret = fail(&x, 503, "error on server side");
    } else if (!pid || pid->kind == QK_ID_NONE || pid->id[0] == '\0' ||
               strnlen(pid->id, sizeof pid->id) > QK_ETSI_SAE_ID_MAX) {
        ret = fail(&x, 401, "the calling SAE is not authenticated");
    } else {
        x.caller = pid->id;
        x.fp_hex = pid->fp_hex;
        ret = dispatch(&x);
    }
    qk_request_log lg = {
        .listener = "etsi014",
        .method = x.method,
        .path = x.url,
        .identity = x.caller ? x.caller : (pid && pid->id[0] ? pid->id : NULL),
        .status = (int)x.status,
        .latency_ms = qk_now_ms() - r->t_start_ms,
        .key_ids = x.key_ids,
        .detail = x.status != 200 && x.detail[0] ? x.detail : NULL,
    };
    qk_log_request(&lg);
    free(x.key_ids);
    return ret;
}
