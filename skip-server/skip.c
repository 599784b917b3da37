/* skip.c - the SKIP (draft-cisco-skip-02) access handler (see skip-server/README.md): routes
 * /capabilities, /key, /key/{keyId} and /entropy onto the KME core (kms/core.h). Errors carry a
 * JSON {"message": ...}; keys and entropy are built and sent from secure memory; one request line
 * is logged per request (key IDs, never key bytes). A failed request consumes nothing. */
#include "skip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

typedef struct {
    const qk_skip_options *o;
    struct MHD_Connection *c;
    const char *method;
    const char *url;
    const char *client; /* authenticated identity, NULL when anonymous */
    unsigned status;
    char key_id[QK_UUID_HEX_LEN + 1]; /* for the log line */
    char detail[200];
} skip_ctx;

static enum MHD_Result reply_error(skip_ctx *x, unsigned status, const char *msg, const char *allow)
{
    x->status = status;
    if (!x->detail[0])
        snprintf(x->detail, sizeof x->detail, "%s", msg);
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o && cJSON_AddStringToObject(o, "message", msg))
        text = qk_json_print(o);
    cJSON_Delete(o);
    if (!text)
        return MHD_NO;
    enum MHD_Result ret = qk_reply(x->c, status, "application/json", text, strlen(text),
                                   allow ? "Allow" : NULL, allow);
    free(text);
    return ret;
}

static enum MHD_Result fail(skip_ctx *x, unsigned status, const char *msg)
{
    return reply_error(x, status, msg, NULL);
}

/* Send a body that holds secrets (key, entropy) and wipe our copy. */
static enum MHD_Result reply_secret(skip_ctx *x, char *json, size_t len)
{
    x->status = 200;
    enum MHD_Result ret = qk_reply_json_secret(x->c, 200, json, len);
    qk_secure_free(json);
    return ret;
}

/* Map a core error. The public message is fixed; the internal one goes to the log. */
static enum MHD_Result fail_core(skip_ctx *x, const qk_err *err, bool fetch)
{
    const char *msg = err->msg[0] ? err->msg : qk_status_name(err->code);
    unsigned status;
    const char *pub;
    switch (err->code) {
    case QK_EINVAL:
    case QK_ELIMIT:
        status = 400;
        pub = msg;
        break;
    case QK_ENOTFOUND:
    case QK_EUNAUTH: /* a key bound to another pair of KMEs is not found for this one */
        status = 400;
        pub = "key not found";
        break;
    case QK_ENOKEY:
        status = 503;
        pub = "not enough key material available";
        break;
    case QK_EPEER:
        status = 503;
        pub = "the remote system's KME is not reachable or refused the key";
        break;
    default:
        status = 500;
        pub = fetch ? "internal error while reading or zeroizing the key"
                    : "internal error while generating the key";
        break;
    }
    snprintf(x->detail, sizeof x->detail, "%.60s: %s (%.120s)", pub, qk_status_name(err->code),
             msg);
    return fail(x, status, pub);
}

/* The one value of a query parameter: absent -> *v NULL (returns 0); repeated -> 400 queued
 * (returns 1, *ret set). */
static int query_one(skip_ctx *x, const char *name, const char **v, enum MHD_Result *ret)
{
    *v = NULL;
    unsigned n = qk_query_count(x->c, name);
    if (n == 0)
        return 0;
    if (n > 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "query parameter %s is repeated", name);
        *ret = fail(x, 400, msg);
        return 1;
    }
    *v = MHD_lookup_connection_value(x->c, MHD_GET_ARGUMENT_KIND, name);
    if (!*v)
        *v = "";
    return 0;
}

/* remoteSystemID: present, well-formed, offered (globs, or this KME in loopback pair mode),
 * linked, and allowed for this client. On success *remote is the value (returns 0); otherwise
 * an error is queued (returns 1). */
static int check_remote(skip_ctx *x, const char *client_globs, const char **remote,
                        enum MHD_Result *ret)
{
    const char *r;
    if (query_one(x, "remoteSystemID", &r, ret))
        return 1;
    if (!r) {
        *ret = fail(x, 400, "remoteSystemID query parameter is required");
        return 1;
    }
    if (!qk_skip_system_id_valid(r)) {
        *ret = fail(x, 400, "malformed remoteSystemID");
        return 1;
    }
    const char *self = qk_kms_node_id(x->o->kms);
    bool is_self = strcmp(r, self) == 0;
    if (is_self ? !x->o->loopback_pair : !qk_skip_globs_match(x->o->remote_system_ids, r)) {
        *ret = fail(x, 400, "unknown remoteSystemID");
        return 1;
    }
    if (!is_self && !qk_kms_knows_kme(x->o->kms, r)) {
        *ret = fail(x, 400, "unknown remoteSystemID: no key link to that system");
        return 1;
    }
    if (!qk_skip_globs_match(client_globs, r)) {
        snprintf(x->detail, sizeof x->detail, "client %.64s may not use remote system %s",
                 x->client ? x->client : "(anonymous)", r);
        *ret = fail(x, 403, "this client is not authorized for that remoteSystemID");
        return 1;
    }
    *remote = r;
    return 0;
}

static enum MHD_Result do_capabilities(skip_ctx *x)
{
    const qk_skip_options *o = x->o;
    char *text = qk_skip_capabilities_json(o->entropy, o->algorithm, qk_kms_node_id(o->kms),
                                           o->remote_system_ids, o->loopback_pair);
    if (!text)
        return fail(x, 500, "internal error");
    x->status = 200;
    enum MHD_Result ret = qk_reply_json(x->c, 200, text);
    free(text);
    return ret;
}

static enum MHD_Result do_new_key(skip_ctx *x, const char *client_globs)
{
    enum MHD_Result ret = MHD_NO;
    const char *remote = NULL, *size_s = NULL;
    if (check_remote(x, client_globs, &remote, &ret) || query_one(x, "size", &size_s, &ret))
        return ret;
    const qk_key_limits *lim = qk_kms_limits(x->o->kms);
    uint32_t bits = lim->default_size_bits;
    qk_err err;
    qk_err_clear(&err);
    if (size_s && qk_skip_parse_bits("size", size_s, lim->min_size_bits, lim->max_size_bits, &bits,
                                     &err) != 0)
        return fail(x, 400, err.msg);
    char master[QK_SKIP_IDENTITY_MAX], slave[QK_SKIP_IDENTITY_MAX];
    if (qk_skip_identity(qk_kms_node_id(x->o->kms), master, sizeof master) != 0 ||
        qk_skip_identity(remote, slave, sizeof slave) != 0)
        return fail(x, 500, "internal error");
    const char *slaves[1] = {slave};
    qk_key_request req = {
        .requester = master,
        .target_kme = remote,
        .slaves = slaves,
        .nslaves = 1,
        .number = 1,
        .size_bits = bits,
    };
    qk_key_batch b;
    memset(&b, 0, sizeof b);
    if (qk_kms_reserve(x->o->kms, &req, &b, &err) != 0)
        return fail_core(x, &err, false);
    char *json = NULL;
    size_t len = 0;
    if (b.n != 1 || qk_skip_key_json(b.ids[0], b.keys[0], b.lens[0], &json, &len) != 0) {
        /* The key was consumed here and reserved at the peer; it expires there unclaimed. */
        qk_key_batch_free(&b);
        return fail(x, 500, "internal error while generating the key");
    }
    if (qk_skip_key_id_of(b.ids[0], x->key_id) != 0)
        x->key_id[0] = '\0';
    qk_key_batch_free(&b);
    return reply_secret(x, json, len);
}

static enum MHD_Result do_fetch(skip_ctx *x, const char *client_globs, const char *key_id_text)
{
    enum MHD_Result ret = MHD_NO;
    const char *remote = NULL;
    if (check_remote(x, client_globs, &remote, &ret))
        return ret;
    qk_err err;
    qk_err_clear(&err);
    char id[QK_KEY_ID_LEN + 1];
    if (qk_skip_parse_key_id(key_id_text, id, &err) != 0)
        return fail(x, 400, err.msg);
    snprintf(x->key_id, sizeof x->key_id, "%.32s", key_id_text);
    char caller[QK_SKIP_IDENTITY_MAX], master[QK_SKIP_IDENTITY_MAX];
    if (qk_skip_identity(qk_kms_node_id(x->o->kms), caller, sizeof caller) != 0 ||
        qk_skip_identity(remote, master, sizeof master) != 0)
        return fail(x, 500, "internal error");
    const char *ids[1] = {id};
    qk_key_batch b;
    memset(&b, 0, sizeof b);
    if (qk_kms_fetch(x->o->kms, caller, master, ids, 1, &b, &err) != 0)
        return fail_core(x, &err, true);
    char *json = NULL;
    size_t len = 0;
    int rc = b.n == 1 ? qk_skip_key_json(b.ids[0], b.keys[0], b.lens[0], &json, &len) : -1;
    qk_key_batch_free(&b);
    if (rc != 0)
        return fail(x, 500, "internal error while reading or zeroizing the key");
    return reply_secret(x, json, len);
}

/* n bytes from the kernel CSPRNG without blocking; -1 if it is not available (not seeded). */
static int entropy_read(uint8_t *p, size_t n)
{
    size_t got = 0;
    for (int tries = 0; got < n && tries < 64; tries++) {
        ssize_t r = getrandom(p + got, n - got, GRND_NONBLOCK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    return got == n ? 0 : -1;
}

static enum MHD_Result do_entropy(skip_ctx *x)
{
    enum MHD_Result ret = MHD_NO;
    const char *s = NULL;
    if (query_one(x, "minentropy", &s, &ret))
        return ret;
    uint32_t bits = 256;
    qk_err err;
    qk_err_clear(&err);
    if (s && qk_skip_parse_bits("minentropy", s, 8, x->o->max_entropy_bits, &bits, &err) != 0)
        return fail(x, 400, err.msg);
    if (!x->o->entropy)
        return fail(x, 503, "no entropy source available");
    size_t n = bits / 8;
    uint8_t *rnd = qk_secure_alloc(n);
    if (!rnd)
        return fail(x, 500, "internal error");
    char *json = NULL;
    size_t len = 0;
    if (entropy_read(rnd, n) != 0) {
        qk_secure_free(rnd);
        return fail(x, 503, "the entropy source cannot serve now");
    }
    int rc = qk_skip_entropy_json(rnd, n, bits, &json, &len);
    qk_secure_free(rnd);
    if (rc != 0)
        return fail(x, 500, "internal error");
    return reply_secret(x, json, len);
}

static enum MHD_Result dispatch(skip_ctx *x, bool too_large)
{
    char key_id[QK_SKIP_KEY_ID_HEX_MAX + 2];
    qk_skip_route route = qk_skip_parse_path(x->url, key_id, sizeof key_id);
    if (route == QK_SKIP_ROUTE_NONE)
        return fail(x, 404, "unknown path");
    if (strcmp(x->method, MHD_HTTP_METHOD_GET) != 0)
        return reply_error(x, 405, "only GET is supported", "GET");
    if (too_large)
        return fail(x, 400, "request body too large");
    const qk_skip_options *o = x->o;
    const char *globs =
        qk_skip_client_globs(o->clients, o->nclients, o->default_client_remote_systems, x->client);
    if (!globs) {
        snprintf(x->detail, sizeof x->detail, "client %.64s has no [skip_client] rule",
                 x->client ? x->client : "(anonymous)");
        return fail(x, 403, "this client is not authorized for SKIP");
    }
    switch (route) {
    case QK_SKIP_ROUTE_CAPABILITIES:
        return do_capabilities(x);
    case QK_SKIP_ROUTE_KEY:
        return do_new_key(x, globs);
    case QK_SKIP_ROUTE_KEY_ID:
        return do_fetch(x, globs, key_id);
    case QK_SKIP_ROUTE_ENTROPY:
        return do_entropy(x);
    default:
        return fail(x, 404, "unknown path");
    }
}

enum MHD_Result qk_skip_handler(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    (void)version;
    qk_req *r = NULL;
    int st = qk_req_collect(con_cls, QK_SKIP_MAX_BODY, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st != QK_REQ_DONE || !r)
        return MHD_NO;
    skip_ctx x;
    memset(&x, 0, sizeof x);
    x.o = cls;
    x.c = c;
    x.method = method ? method : "";
    x.url = url ? url : "";
    const qk_peer_identity *pid = qk_conn_identity(c);
    if (pid && pid->kind != QK_ID_NONE && pid->id[0])
        x.client = pid->id;
    enum MHD_Result ret;
    if (!x.o || !x.o->kms)
        ret = fail(&x, 500, "internal error");
    else
        ret = dispatch(&x, r->too_large);
    qk_request_log lg = {
        .listener = "skip",
        .method = x.method,
        .path = x.url,
        .identity = x.client,
        .status = (int)x.status,
        .latency_ms = qk_now_ms() - r->t_start_ms,
        .key_ids = x.key_id[0] ? x.key_id : NULL,
        .detail = x.status != 200 && x.detail[0] ? x.detail : NULL,
    };
    qk_log_request(&lg);
    return ret;
}
