/* skip.c - the SKIP (draft-cisco-skip-02) handler (see skip-server/README.md): routes
 * /capabilities, /key, /key/{keyId} and /entropy onto the KME core (kms/core.h). The request
 * envelope (common/http_envelope.h) hands it a complete request with the authenticated client
 * and writes the request log line (the keyId, never key bytes). Errors carry a JSON
 * {"message": ...}; keys and entropy are built and sent from secure memory. A failed request
 * consumes nothing. */
#include "skip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "secbuf.h"

typedef struct {
    const qk_skip_options *o;
    const qk_http_request *req;
    qk_http_reply *rep;
    const char *client; /* authenticated identity, NULL when anonymous */
} skip_call;

static void fail(skip_call *x, unsigned status, const char *msg)
{
    qk_http_reply_message(x->rep, status, msg);
}

/* Map a core error. The public message is fixed; the internal one goes to the log. */
static void fail_core(skip_call *x, const qk_err *err, bool fetch, qk_peer_fail why)
{
    const char *msg = err->msg[0] ? err->msg : qk_status_name(err->code);
    unsigned status;
    const char *pub;
    char refused[96];
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
    case QK_EQUOTA:
        /* The draft has no quota answer: a pair holding max_key_count keys its peer has not
         * fetched yet cannot get more now, which is "not enough key material" (503) until the
         * peer fetches - retryable, unlike a 4xx. */
        status = 503;
        pub = "not enough key material available";
        break;
    case QK_EPEER:
        status = 503;
        /* why: the peer's reason (qk_key_batch.peer_fail; issue 17) */
        pub = "the remote system's KME is not reachable";
        if (why != QK_PEER_FAIL_UNREACHABLE) {
            snprintf(refused, sizeof refused, "the remote system's KME refused the key (%s)",
                     qk_peer_fail_name(why));
            pub = refused;
        }
        break;
    default:
        status = 500;
        pub = fetch ? "internal error while reading or zeroizing the key"
                    : "internal error while generating the key";
        break;
    }
    fail(x, status, pub);
    qk_http_reply_detail(x->rep, "%.60s: %s (%.120s)", pub, qk_status_name(err->code), msg);
}

/* The one value of a query parameter: absent -> *v NULL (returns 0); repeated -> 400 set
 * (returns -1). */
static int query_one(skip_call *x, const char *name, const char **v)
{
    *v = NULL;
    unsigned n = qk_http_query_count(x->req, name);
    if (n == 0)
        return 0;
    if (n > 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "query parameter %s is repeated", name);
        fail(x, 400, msg);
        return -1;
    }
    *v = qk_http_query(x->req, name);
    if (!*v)
        *v = "";
    return 0;
}

/* remoteSystemID: present, well-formed, offered (globs, or this KME in loopback pair mode),
 * linked, and allowed for this client. On success *remote is the value (returns 0); otherwise
 * the error reply is set (returns -1). */
static int check_remote(skip_call *x, const char *client_globs, const char **remote)
{
    const char *r;
    if (query_one(x, "remoteSystemID", &r) != 0)
        return -1;
    if (!r) {
        fail(x, 400, "remoteSystemID query parameter is required");
        return -1;
    }
    if (!qk_skip_system_id_valid(r)) {
        fail(x, 400, "malformed remoteSystemID");
        return -1;
    }
    const char *self = qk_kms_node_id(x->o->kms);
    bool is_self = strcmp(r, self) == 0;
    if (is_self ? !x->o->loopback_pair : !qk_skip_globs_match(x->o->remote_system_ids, r)) {
        fail(x, 400, "unknown remoteSystemID");
        return -1;
    }
    if (!is_self && !qk_kms_reaches_kme(x->o->kms, r)) { /* a neighbour, or through the relay */
        fail(x, 400, "unknown remoteSystemID: no key link to that system");
        return -1;
    }
    if (!qk_skip_globs_match(client_globs, r)) {
        fail(x, 403, "this client is not authorized for that remoteSystemID");
        qk_http_reply_detail(x->rep, "client %.64s may not use remote system %s",
                             x->client ? x->client : "(anonymous)", r);
        return -1;
    }
    *remote = r;
    return 0;
}

static void do_capabilities(skip_call *x)
{
    const qk_skip_options *o = x->o;
    char *text = qk_skip_capabilities_json(o->entropy, o->algorithm, qk_kms_node_id(o->kms),
                                           o->remote_system_ids, o->loopback_pair);
    if (!text) {
        fail(x, 500, "internal error");
        return;
    }
    qk_http_reply_take(x->rep, 200, "application/json", text, strlen(text));
}

/* The key's SKIP keyId (32 hex digits) for the log line; nothing when it cannot be made. */
static void log_key_id(skip_call *x, const char *key_id_hex)
{
    char *ids = strdup(key_id_hex);
    if (ids)
        qk_http_reply_key_ids(x->rep, ids);
}

static void do_new_key(skip_call *x, const char *client_globs)
{
    const char *remote = NULL, *size_s = NULL;
    if (check_remote(x, client_globs, &remote) != 0 || query_one(x, "size", &size_s) != 0)
        return;
    const qk_key_limits *lim = qk_kms_limits(x->o->kms);
    uint32_t bits = lim->default_size_bits;
    qk_err err;
    qk_err_clear(&err);
    if (size_s && qk_skip_parse_bits("size", size_s, lim->min_size_bits, lim->max_size_bits, &bits,
                                     &err) != 0) {
        fail(x, 400, err.msg);
        return;
    }
    char master[QK_SKIP_IDENTITY_MAX], slave[QK_SKIP_IDENTITY_MAX];
    if (qk_skip_identity(qk_kms_node_id(x->o->kms), master, sizeof master) != 0 ||
        qk_skip_identity(remote, slave, sizeof slave) != 0) {
        fail(x, 500, "internal error");
        return;
    }
    /* The core checks every quota (max_key_count: QK_EQUOTA) with the reservation. */
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
    if (qk_kms_reserve(x->o->kms, &req, &b, &err) != 0) {
        if (err.code == QK_EPEER && b.relay_why[0]) { /* a relay: say why (ADR 0004) */
            fail(x, 503, b.relay_why);
            qk_http_reply_detail(x->rep, "relay: %.200s", err.msg);
        } else {
            fail_core(x, &err, false, b.peer_fail);
        }
        return;
    }
    char *json = NULL;
    size_t len = 0;
    if (b.n != 1 || qk_skip_key_json(b.ids[0], b.keys[0], b.lens[0], &json, &len) != 0) {
        /* The key was consumed here and reserved at the peer; it expires there unclaimed. */
        qk_key_batch_free(&b);
        fail(x, 500, "internal error while generating the key");
        return;
    }
    char key_id[QK_UUID_HEX_LEN + 1];
    bool named = qk_skip_key_id_of(b.ids[0], key_id) == 0;
    qk_key_batch_free(&b);
    qk_http_reply_secret(x->rep, 200, json, len); /* the reply owns json now */
    if (named)
        log_key_id(x, key_id);
}

static void do_fetch(skip_call *x, const char *client_globs, const char *key_id_text)
{
    const char *remote = NULL;
    if (check_remote(x, client_globs, &remote) != 0)
        return;
    qk_err err;
    qk_err_clear(&err);
    char id[QK_KEY_ID_LEN + 1];
    if (qk_skip_parse_key_id(key_id_text, id, &err) != 0) {
        fail(x, 400, err.msg);
        return;
    }
    char key_id[QK_UUID_HEX_LEN + 1];
    snprintf(key_id, sizeof key_id, "%.32s", key_id_text);
    char caller[QK_SKIP_IDENTITY_MAX], master[QK_SKIP_IDENTITY_MAX];
    if (qk_skip_identity(qk_kms_node_id(x->o->kms), caller, sizeof caller) != 0 ||
        qk_skip_identity(remote, master, sizeof master) != 0) {
        fail(x, 500, "internal error");
    } else {
        const char *ids[1] = {id};
        qk_key_batch b;
        memset(&b, 0, sizeof b);
        char *json = NULL;
        size_t len = 0;
        if (qk_kms_fetch(x->o->kms, caller, master, ids, 1, &b, &err) != 0) {
            fail_core(x, &err, true, QK_PEER_FAIL_UNREACHABLE);
        } else {
            int rc = b.n == 1 ? qk_skip_key_json(b.ids[0], b.keys[0], b.lens[0], &json, &len) : -1;
            qk_key_batch_free(&b);
            if (rc != 0)
                fail(x, 500, "internal error while reading or zeroizing the key");
            else
                qk_http_reply_secret(x->rep, 200, json, len); /* the reply owns json now */
        }
    }
    log_key_id(x, key_id);
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

static void do_entropy(skip_call *x)
{
    const char *s = NULL;
    if (query_one(x, "minentropy", &s) != 0)
        return;
    uint32_t bits = 256;
    qk_err err;
    qk_err_clear(&err);
    if (s && qk_skip_parse_bits("minentropy", s, 8, x->o->max_entropy_bits, &bits, &err) != 0) {
        fail(x, 400, err.msg);
        return;
    }
    if (!x->o->entropy) {
        fail(x, 503, "no entropy source available");
        return;
    }
    size_t n = bits / 8;
    uint8_t *rnd = qk_secure_alloc(n);
    if (!rnd) {
        fail(x, 500, "internal error");
        return;
    }
    if (entropy_read(rnd, n) != 0) {
        qk_secure_free(rnd);
        fail(x, 503, "the entropy source cannot serve now");
        return;
    }
    char *json = NULL;
    size_t len = 0;
    int rc = qk_skip_entropy_json(rnd, n, bits, &json, &len);
    qk_secure_free(rnd);
    if (rc != 0)
        fail(x, 500, "internal error");
    else
        qk_http_reply_secret(x->rep, 200, json, len); /* the reply owns json now */
}

static void dispatch(skip_call *x)
{
    char key_id[QK_SKIP_KEY_ID_HEX_MAX + 2];
    qk_skip_route route = qk_skip_parse_path(x->req->path, key_id, sizeof key_id);
    if (route == QK_SKIP_ROUTE_NONE) {
        fail(x, 404, "unknown path");
        return;
    }
    if (strcmp(x->req->method, "GET") != 0) {
        fail(x, 405, "only GET is supported");
        qk_http_reply_allow(x->rep, "GET");
        return;
    }
    const qk_skip_options *o = x->o;
    const char *globs =
        qk_skip_client_globs(o->clients, o->nclients, o->default_client_remote_systems, x->client);
    if (!globs) {
        fail(x, 403, "this client is not authorized for SKIP");
        qk_http_reply_detail(x->rep, "client %.64s has no [skip_client] rule",
                             x->client ? x->client : "(anonymous)");
        return;
    }
    switch (route) {
    case QK_SKIP_ROUTE_CAPABILITIES:
        do_capabilities(x);
        return;
    case QK_SKIP_ROUTE_KEY:
        do_new_key(x, globs);
        return;
    case QK_SKIP_ROUTE_KEY_ID:
        do_fetch(x, globs, key_id);
        return;
    case QK_SKIP_ROUTE_ENTROPY:
        do_entropy(x);
        return;
    default:
        fail(x, 404, "unknown path");
        return;
    }
}

static void skip_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    qk_skip_handler *h = (qk_skip_handler *)self;
    skip_call x = {.o = &h->opts, .req = req, .rep = rep};
    if (req->caller->kind != QK_ID_NONE && req->caller->id[0])
        x.client = req->caller->id;
    const char *why = NULL;
    if (!x.o->kms) {
        fail(&x, 500, "internal error");
    } else if (!qk_role_allows(req->caller->kind == QK_ID_CERT, req->caller->role, QK_ROLE_SAE,
                               h->role_marker, &why)) {
        /* Only SAE certificates here (docs/qkd-kmed.md "Roles"), whatever their CN. */
        fail(&x, 403, why);
    } else {
        dispatch(&x);
    }
}

void qk_skip_configure(qk_skip_handler *h, const qk_skip_options *o)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = skip_on_req;
    /* A SKIP request is a GET without a body: an oversized one is a bad request (400), as
     * this listener answered before the envelope. */
    h->super.too_large_status = 400;
    h->super.inline_first = true; /* as ETSI 014's: see etsi014.c, common/qk_inline.h */
    h->opts = *o;
    h->role_marker = QK_ROLE_MARKER_OPTIONAL;
}
