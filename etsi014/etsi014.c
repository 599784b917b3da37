/* etsi014.c - the ETSI GS QKD 014 V1.1.1 handler (see etsi014/README.md): routes status,
 * enc_keys and dec_keys onto the KME core (kms/core.h). The request envelope (common/
 * http_envelope.h) hands it a complete request with the authenticated caller and writes the
 * request log line. Errors are 400/401/503 (clause 5 defines no other answers) with a JSON
 * {"message": ...}; key containers are built and sent from secure memory; the log names key
 * IDs, never key bytes. */
#include "etsi014.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etsi014_parse.h"
#include "json_util.h"
#include "kms_topo.h"
#include "relay_crypto.h"
#include "secbuf.h"

typedef struct {
    qk_kms *k;
    const qk_http_request *req;
    qk_http_reply *rep;
    const char *caller; /* the SAE ID: the authenticated identity */
} etsi_call;

/* {"message": msg[, "details": details]} (details is consumed). */
static void fail_full(etsi_call *x, unsigned status, const char *msg, cJSON *details)
{
    if (!details) {
        qk_http_reply_message(x->rep, status, msg);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o && cJSON_AddStringToObject(o, "message", msg)) {
        cJSON_AddItemToObject(o, "details", details);
        details = NULL;
        text = qk_json_print(o);
    }
    cJSON_Delete(o);
    cJSON_Delete(details);
    qk_http_reply_take(x->rep, status, text ? "application/json" : NULL, text,
                       text ? strlen(text) : 0);
    qk_http_reply_detail(x->rep, "%s", msg);
}

static void fail(etsi_call *x, unsigned status, const char *msg)
{
    qk_http_reply_message(x->rep, status, msg);
}

/* "method not allowed" is 400 with an Allow header: clause 5 has no 405. */
static void fail_method(etsi_call *x, const char *allow)
{
    fail(x, 400, "method not allowed");
    qk_http_reply_allow(x->rep, allow);
}

/* Map a core error to the ETSI answer; the internal message goes to the log only when it may
 * describe server internals. why: the peer's reason of a QK_EPEER (qk_key_batch.peer_fail):
 * "not reachable", or "refused the keys (storage|limit|mismatch|refused)" (issue 17). */
static void fail_core(etsi_call *x, const qk_err *err, bool fetch, qk_peer_fail why)
{
    const char *msg = err->msg[0] ? err->msg : qk_status_name(err->code);
    const char *pub;
    char refused[96];
    switch (err->code) {
    case QK_EINVAL:
    case QK_ELIMIT:
        fail(x, 400, msg);
        return;
    case QK_ENOTFOUND:
        fail(x, 400, fetch ? QK_ETSI_MSG_NOT_FOUND : msg);
        return;
    case QK_EUNAUTH:
        fail(x, 401,
             fetch ? "the calling SAE is not a slave SAE of one or more keys"
                   : "the calling SAE is not authorized");
        return;
    case QK_EQUOTA:
        /* The pair holds max_key_count keys not yet fetched: a server-side condition that
         * clears when the slave fetches, i.e. 503 (clause 5.1 status codes), not 400. */
        fail(x, 503, QK_ETSI_MSG_QUOTA);
        qk_http_reply_detail(x->rep, "max_key_count reached: %.170s", msg);
        return;
    case QK_ENOKEY:
        pub = "not enough key material available";
        break;
    case QK_EPEER:
        pub = "the KME of the slave SAE is not reachable";
        if (why != QK_PEER_FAIL_UNREACHABLE) {
            snprintf(refused, sizeof refused, "the KME of the slave SAE refused the keys (%s)",
                     qk_peer_fail_name(why));
            pub = refused;
        }
        break;
    default:
        pub = "error on server side";
        break;
    }
    fail(x, 503, pub);
    qk_http_reply_detail(x->rep, "%s: %s (%.120s)", pub, qk_status_name(err->code), msg);
}

/* Send a key container (the reply owns the secure buffer) and name the key IDs for the log. */
static void reply_keys(etsi_call *x, const qk_key_batch *b)
{
    char *json = NULL;
    size_t len = 0;
    if (qk_etsi_key_container(b, &json, &len) != 0) {
        fail(x, 503, "error on server side");
        return;
    }
    qk_http_reply_secret(x->rep, 200, json, len);
    qk_http_reply_key_ids(x->rep, qk_etsi_key_id_list(b));
}

/* stored_key_count for a slave at a KME the relay reaches (docs/adr/0004-key-relay.md,
 * "Capacity reported to SAEs"): the keys of the default size that one relay each could deliver
 * over the best path now, floor(bottleneck / (key_size/8 + 32)), at most max_key_count; 0
 * without a route. */
static uint64_t relay_key_count(etsi_call *x, const qk_key_limits *lim, const char *target)
{
    uint64_t per_key = lim->default_size_bits / 8 + QK_RELAY_MAC_KEY_LEN;
    qk_kms_path *p = malloc(sizeof *p);
    qk_err err = {0};
    uint64_t n = 0;
    if (p && qk_kms_topo_route(x->k, target, per_key, p, &err) == 0)
        n = p->bottleneck / per_key;
    free(p);
    return n < lim->max_key_count ? n : lim->max_key_count;
}

static void do_status(etsi_call *x, const char *slave)
{
    if (strcmp(slave, x->caller) == 0) {
        fail(x, 400, "slave_SAE_ID must differ from the calling SAE ID");
        return;
    }
    const char *target = NULL;
    if (qk_kms_sae_home(x->k, slave, &target) != 0 || !target) {
        fail(x, 400, "unknown slave_SAE_ID");
        return;
    }
    if (!qk_kms_reaches_kme(x->k, target)) {
        fail(x, 400, "the KME of the slave SAE is not linked to this KME");
        return;
    }
    const qk_key_limits *lim = qk_kms_limits(x->k);
    bool local = strcmp(target, qk_kms_node_id(x->k)) == 0;
    bool relayed = !local && !qk_kms_knows_kme(x->k, target);
    uint64_t outstanding = 0;
    qk_pool_status ps;
    memset(&ps, 0, sizeof ps);
    qk_err err = {0};
    if (qk_kms_stored_count(x->k, x->caller, slave, &outstanding, &err) != 0 ||
        (!local && !relayed && qk_kms_pool_status(x->k, target, &ps, &err) != 0)) {
        fail_core(x, &err, false, QK_PEER_FAIL_UNREACHABLE);
        return;
    }
    uint64_t stored = relayed
                          ? relay_key_count(x, lim, target)
                          : qk_etsi_stored_key_count(lim, local, outstanding, ps.bytes_available);
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
    if (!text) {
        fail(x, 503, "error on server side");
        return;
    }
    qk_http_reply_take(x->rep, 200, "application/json", text, strlen(text));
}

/* A GET query integer: absent is fine, repeated or non-numeric is 400. Returns 0, or -1 when
 * the error reply is set. */
static int query_int(etsi_call *x, const char *name, bool *has, int64_t *v)
{
    unsigned cnt = qk_http_query_count(x->req, name);
    *has = false;
    char msg[96];
    if (cnt == 0)
        return 0;
    if (cnt > 1) {
        snprintf(msg, sizeof msg, "query parameter %s is repeated", name);
        fail(x, 400, msg);
        return -1;
    }
    if (qk_etsi_parse_int(qk_http_query(x->req, name), v) != 0) {
        snprintf(msg, sizeof msg, "%s shall be an integer", name);
        fail(x, 400, msg);
        return -1;
    }
    *has = true;
    return 0;
}

/* The slaves (path slave, then additional_slave_SAE_IDs) must all be registered at KMEs this
 * KME reaches: itself, a linked peer or a KME the relay reaches. *target: their KME, or NULL
 * when they are on several (multicast across KMEs: docs/adr/0004-key-relay.md, "Multicast").
 * Returns 0, or -1 with the error reply set. */
static int slaves_kme(etsi_call *x, const char *const *slaves, size_t nslaves, const char **target)
{
    *target = NULL;
    bool several = false;
    for (size_t i = 0; i < nslaves; i++) {
        const char *home = NULL;
        if (qk_kms_sae_home(x->k, slaves[i], &home) != 0 || !home) {
            fail(x, 400,
                 i == 0 ? "unknown slave_SAE_ID" : "unknown SAE ID in additional_slave_SAE_IDs");
            return -1;
        }
        if (!qk_kms_reaches_kme(x->k, home)) {
            fail(x, 400, "the KME of the slave SAE is not linked to this KME");
            return -1;
        }
        if (!*target)
            *target = home;
        else if (strcmp(*target, home) != 0)
            several = true;
    }
    if (several && !qk_kms_relay_on(x->k)) {
        fail(x, 400, "the slave SAEs are at several KMEs: that needs the relay ([relay] enabled)");
        return -1;
    }
    if (several)
        *target = NULL;
    return 0;
}

static void do_enc(etsi_call *x, const char *slave, bool post)
{
    qk_err err = {0};
    qk_etsi_key_req *kr = calloc(1, sizeof *kr);
    if (!kr) {
        fail(x, 503, "error on server side");
        return;
    }
    if (post) {
        cJSON *details = NULL;
        if (qk_etsi_parse_key_request(x->req->body, x->req->body_len, kr, &details, &err) != 0) {
            fail_full(x, 400, err.msg, details);
            goto out;
        }
    } else if (query_int(x, "number", &kr->has_number, &kr->number) != 0 ||
               query_int(x, "size", &kr->has_size, &kr->size) != 0) {
        goto out;
    }
    size_t number = 0;
    uint32_t size_bits = 0;
    if (qk_etsi_check_key_req(kr, qk_kms_limits(x->k), x->caller, slave, &number, &size_bits,
                              &err) != 0) {
        fail(x, 400, err.msg);
        goto out;
    }
    const char *slaves[1 + QK_ETSI_MAX_ADD];
    size_t nslaves = 0;
    slaves[nslaves++] = slave;
    for (size_t i = 0; i < kr->nadd && nslaves < 1 + QK_ETSI_MAX_ADD; i++)
        slaves[nslaves++] = kr->add[i];
    const char *target = NULL;
    if (slaves_kme(x, slaves, nslaves, &target) != 0)
        goto out;
    /* The core checks max_key_count (QK_EQUOTA) with the reservation. */
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
    if (qk_kms_reserve(x->k, &req, &b, &err) != 0) {
        if (err.code == QK_EPEER && b.relay_why[0]) { /* a relay: say why (ADR 0004) */
            fail(x, 503, b.relay_why);
            qk_http_reply_detail(x->rep, "relay: %.200s", err.msg);
        } else {
            fail_core(x, &err, false, b.peer_fail);
        }
        goto out;
    }
    reply_keys(x, &b);
    qk_key_batch_free(&b);
out:
    free(kr);
}

/* The key IDs of a dec_keys request: the POST body, or exactly one GET key_ID. *ids is
 * malloc'ed. Returns 0, or -1 with the error reply set. */
static int dec_ids(etsi_call *x, bool post, char (**ids)[QK_KEY_ID_LEN + 1], size_t *n)
{
    qk_err err = {0};
    if (post) {
        if (qk_etsi_parse_key_ids(x->req->body, x->req->body_len, QK_ETSI_MAX_IDS, ids, n, &err) !=
            0) {
            fail(x, 400, err.msg);
            return -1;
        }
        return 0;
    }
    unsigned cnt = qk_http_query_count(x->req, "key_ID");
    if (cnt != 1) {
        fail(x, 400,
             cnt == 0 ? "key_ID query parameter is required"
                      : "GET accepts exactly one key_ID; use POST for several");
        return -1;
    }
    const char *s = qk_http_query(x->req, "key_ID");
    *ids = calloc(1, sizeof **ids);
    if (!*ids) {
        fail(x, 503, "error on server side");
        return -1;
    }
    if (!s || qk_etsi_norm_key_id(s, strlen(s), (*ids)[0]) != 0) {
        free(*ids);
        *ids = NULL;
        fail(x, 400, "key_ID is not a UUID");
        return -1;
    }
    *n = 1;
    return 0;
}

static void do_dec(etsi_call *x, const char *master, bool post)
{
    if (strcmp(master, x->caller) == 0) {
        fail(x, 400, "master_SAE_ID must differ from the calling SAE ID");
        return;
    }
    char(*ids)[QK_KEY_ID_LEN + 1] = NULL;
    size_t n = 0;
    if (dec_ids(x, post, &ids, &n) != 0)
        return;
    const char **ptrs = calloc(n, sizeof *ptrs);
    if (!ptrs) {
        free(ids);
        fail(x, 503, "error on server side");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ptrs[i] = ids[i];
    qk_err err = {0};
    qk_key_batch b;
    memset(&b, 0, sizeof b);
    if (qk_kms_fetch(x->k, x->caller, master, ptrs, n, &b, &err) != 0) {
        fail_core(x, &err, true, QK_PEER_FAIL_UNREACHABLE);
    } else {
        reply_keys(x, &b);
        qk_key_batch_free(&b);
    }
    free(ptrs);
    free(ids);
}

static void dispatch(etsi_call *x)
{
    qk_err err = {0};
    const char *home = NULL;
    if (qk_kms_sae_home(x->k, x->caller, &home) != 0 || !home ||
        strcmp(home, qk_kms_node_id(x->k)) != 0) {
        fail(x, 401, "the calling SAE is not registered at this KME");
        return;
    }
    if (!qk_kms_sae_cert_ok(x->k, x->caller, x->req->caller->fp_hex)) {
        fail(x, 401, "the client certificate is not the one bound to the calling SAE");
        return;
    }
    qk_etsi_route route;
    char id[QK_ETSI_SAE_ID_MAX + 1];
    if (qk_etsi_parse_path(x->req->path, &route, id, sizeof id, &err) != 0) {
        fail(x, 400, err.msg);
        return;
    }
    bool get = strcmp(x->req->method, "GET") == 0;
    bool post = strcmp(x->req->method, "POST") == 0;
    switch (route) {
    case QK_ETSI_ROUTE_STATUS:
        if (!get)
            fail_method(x, "GET");
        else
            do_status(x, id);
        return;
    case QK_ETSI_ROUTE_ENC:
        if (!get && !post)
            fail_method(x, "GET, POST");
        else
            do_enc(x, id, post);
        return;
    case QK_ETSI_ROUTE_DEC:
        if (!get && !post)
            fail_method(x, "GET, POST");
        else
            do_dec(x, id, post);
        return;
    default:
        fail(x, 400, "unknown resource");
        return;
    }
}

static void etsi014_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    qk_etsi014_handler *h = (qk_etsi014_handler *)self;
    etsi_call x = {.k = h->kms, .req = req, .rep = rep};
    const qk_peer_identity *pid = req->caller;
    const char *why = NULL;
    if (!x.k) {
        fail(&x, 503, "error on server side");
    } else if (pid->kind == QK_ID_NONE || pid->id[0] == '\0' ||
               strnlen(pid->id, sizeof pid->id) > QK_ETSI_SAE_ID_MAX) {
        fail(&x, 401, "the calling SAE is not authenticated");
    } else if (!qk_role_allows(pid->kind == QK_ID_CERT, pid->role, QK_ROLE_SAE, h->role_marker,
                               &why)) {
        /* Only SAE certificates here (docs/qkd-kmed.md "Roles"), whatever their CN. */
        fail(&x, 401, why);
    } else {
        x.caller = pid->id;
        dispatch(&x);
    }
}

void qk_etsi014_configure(qk_etsi014_handler *h, qk_kms *kms)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = etsi014_on_req;
    /* Clause 5 answers only 200, 400, 401 and 503: an oversized body is a bad request. */
    h->super.too_large_status = 400;
    /* Served from the store without waiting (leases, notices): on the pump, with the reply
     * held for the store's sync; a lease exchange or a notice wait runs on a worker
     * (common/qk_inline.h). */
    h->super.inline_first = true;
    h->super.group_commit = true; /* SAE requests: one commit for many (kms/store_db.c) */
    h->kms = kms;
    h->role_marker = QK_ROLE_MARKER_OPTIONAL;
}
