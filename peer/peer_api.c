/* peer_api.c - the peer API on the request envelope: reserve, burn, inventory, request state,
 * health, device-keys, lease and notices. Requests are decoded and answers encoded with
 * kms/peer_msg.h; the envelope writes the request log line and counts the answer. */
#include "peer_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "kms_relay.h"
#include "peer_msg.h"
#include "qk_inline.h"
#include "relay_msg.h"
#include "secbuf.h"

#define PREFIX "/peer/v1/"

/* Every configured link can be named in a health answer. */
_Static_assert(QK_PEER_LINKS_MAX >= QK_CFG_MAX_LINKS, "health answer holds every link");
/* Every body the listener accepts by default can be decoded. */
_Static_assert(QK_PEER_API_MAX_BODY <= QK_PEER_MSG_MAX, "decoders read every default body");

/* One request: the caller's link and where the answer goes. */
typedef struct {
    qk_kms *kms;
    qk_device_sources *devices;
    qk_link *link;
    const qk_http_request *req;
    qk_http_reply *rep;
    const char *id; /* the request ID of request/{id} */
} peer_call;

/* {"message","reason"} (reason NONE: message only); the log line's detail is the message. */
static void reply_error(peer_call *p, unsigned status, qk_peer_reason reason, const char *msg)
{
    qk_peer_error_msg e = {.reason = reason};
    snprintf(e.message, sizeof e.message, "%s", msg);
    char *body = NULL;
    qk_err err;
    if (qk_peer_error_encode(&e, &body, &err) == 0)
        qk_http_reply_take(p->rep, status, "application/json", body, strlen(body));
    else
        qk_http_reply_take(p->rep, status, NULL, NULL, 0); /* the envelope's fallback body */
    qk_http_reply_detail(p->rep, "%s", e.message);
}

/* 500 for a failure of the core: reason "storage" when the store failed (QK_ESTORAGE: e.g. a
 * full disk), so that the asking KME can tell its SAE why (issue 17), else "internal". */
static void store_failed(peer_call *p, const qk_err *err)
{
    bool storage = err->code == QK_ESTORAGE;
    reply_error(p, 500, storage ? QK_PEER_REASON_STORAGE : QK_PEER_REASON_INTERNAL,
                storage ? "store error" : "internal error");
}

static void bad_request(peer_call *p, const char *msg)
{
    reply_error(p, 400, QK_PEER_REASON_BAD_REQUEST, msg);
}

static void bad_method(peer_call *p, const char *allow)
{
    reply_error(p, 405, QK_PEER_REASON_NONE, "method not allowed");
    qk_http_reply_allow(p->rep, allow);
}

/* 200 with an encoded answer (enc_rc: the encoder's result), or 500. */
static void reply_ok(peer_call *p, int enc_rc, char *body)
{
    if (enc_rc != 0) {
        free(body);
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "out of memory");
        return;
    }
    qk_http_reply_take(p->rep, 200, "application/json", body, strlen(body));
}

/* A decoding error: 500 when out of memory, else 400. */
static void bad_body(peer_call *p, const qk_err *err)
{
    if (err->code == QK_ENOMEM)
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, err->msg);
    else
        bad_request(p, err->msg);
}

/* A body naming a link must name the caller's (403 otherwise). */
static bool link_ok(peer_call *p, const char *link)
{
    if (strcmp(link, p->link->cfg->link_id) == 0)
        return true;
    char msg[QK_STORE_ID_MAX + 64];
    snprintf(msg, sizeof msg, "link %s is not the caller's link", link);
    reply_error(p, 403, QK_PEER_REASON_FORBIDDEN, msg);
    return false;
}

/* A body's side must be the caller's side of the link: the other end than this node (400
 * otherwise). */
static bool side_ok(peer_call *p, qk_side side)
{
    qk_side expect = p->link->side == QK_SIDE_LOW ? QK_SIDE_HIGH : QK_SIDE_LOW;
    if (side == expect)
        return true;
    char msg[64];
    snprintf(msg, sizeof msg, "side: the caller is the %s side of this link",
             expect == QK_SIDE_LOW ? "low" : "high");
    bad_request(p, msg);
    return false;
}

/* ---- reserve ---------------------------------------------------------------------------- */

static void do_reserve(peer_call *p)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_msg_limits lim = qk_peer_msg_limits_of(qk_kms_limits(p->kms));
    qk_peer_reserve_msg *m = malloc(sizeof *m);
    if (!m) {
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "out of memory");
        return;
    }
    if (qk_peer_reserve_decode(p->req->body, p->req->body_len, &lim, m, &err) != 0) {
        bad_body(p, &err);
        free(m);
        return;
    }
    /* The caller carves from the other end of the link than this node. */
    if (!link_ok(p, m->link) || !side_ok(p, m->side))
        goto out;
    qk_reservation r;
    const char *slaves[QK_PEER_SLAVES_MAX];
    qk_peer_reserve_msg_get(m, &r, slaves);
    /* max_key_count is checked by the core, under the lock it reserves with. */
    int rc = qk_kms_reserve_in(p->kms, &r, m->side, m->keys, m->nkeys, &err);
    switch (rc) {
    case 0: {
        char *body = NULL;
        qk_peer_result_msg res = {.status = QK_PEER_RESERVED};
        rc = qk_peer_result_encode(&res, &body, &err);
        reply_ok(p, rc, body);
        break;
    }
    case QK_ECOLLISION:
    case QK_EEXIST:
        reply_error(p, 409, QK_PEER_REASON_COLLISION, err.msg);
        break;
    case QK_EMISMATCH:
        QK_WARN("link %s: reserve %s: material mismatch, blocks burned", m->link, m->request_id);
        reply_error(p, 409, QK_PEER_REASON_MISMATCH, err.msg);
        break;
    case QK_EINVAL:
        reply_error(p, 409, QK_PEER_REASON_BURNED, err.msg);
        break;
    case QK_ENOTFOUND:
        reply_error(p, 404, QK_PEER_REASON_UNKNOWN_BLOCK, err.msg);
        break;
    case QK_EQUOTA:
    case QK_ELIMIT:
        reply_error(p, 409, QK_PEER_REASON_LIMIT, err.msg);
        break;
    default:
        QK_ERROR("reserve %s: %s", m->request_id, err.msg);
        store_failed(p, &err);
        break;
    }
out:
    qk_peer_reserve_msg_free(m);
    free(m);
}

/* ---- lease and notices (docs/adr/0002-key-store.md, "Leases and notices") ---------------- */

static void do_lease(peer_call *p)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_lease_msg m;
    if (qk_peer_lease_decode(p->req->body, p->req->body_len, &m, &err) != 0) {
        bad_body(p, &err);
        return;
    }
    if (!link_ok(p, m.link) || !side_ok(p, m.side))
        return;
    int rc = qk_kms_lease_in(p->kms, m.link, m.side, &m.lease, &err);
    switch (rc) {
    case 0: {
        char *body = NULL;
        qk_peer_result_msg res = {.status = QK_PEER_GRANTED};
        rc = qk_peer_result_encode(&res, &body, &err);
        reply_ok(p, rc, body);
        break;
    }
    case QK_ECOLLISION:
        reply_error(p, 409, QK_PEER_REASON_COLLISION, err.msg);
        break;
    case QK_ENOTFOUND:
        reply_error(p, 404, QK_PEER_REASON_UNKNOWN_BLOCK, err.msg);
        break;
    case QK_EINVAL:
        bad_request(p, err.msg);
        break;
    default:
        QK_ERROR("link %s: lease of block %llu: %s", m.link, (unsigned long long)m.lease.block_id,
                 err.msg);
        store_failed(p, &err);
        break;
    }
}

static void do_notices(peer_call *p)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_msg_limits lim = qk_peer_msg_limits_of(qk_kms_limits(p->kms));
    qk_peer_notices_msg m;
    qk_peer_notices_answer a = {0};
    if (qk_peer_notices_decode(p->req->body, p->req->body_len, &lim, &m, &err) != 0) {
        bad_body(p, &err); /* everything is validated before anything is acted on */
        return;
    }
    if (!link_ok(p, m.link) || !side_ok(p, m.side)) {
        qk_peer_notices_msg_free(&m);
        return;
    }
    /* One commit with the SAE requests around it: the peer's notifier takes a failed group's
     * 500 as a transport failure and sends the batch again (kms/kms_notify.c). */
    qk_inline_allow_group();
    int rc = qk_kms_notices_in(p->kms, &m, &a, &err);
    if (rc != 0) {
        QK_ERROR("link %s: %zu notices: %s", m.link, m.n, err.msg);
        store_failed(p, &err);
    } else {
        /* the core logs each refused notice */
        char *body = NULL;
        rc = qk_peer_notices_answer_encode(&a, &body, &err);
        reply_ok(p, rc, body);
    }
    qk_peer_notices_answer_free(&a);
    qk_peer_notices_msg_free(&m);
}

/* ---- burn, request state, health -------------------------------------------------------- */

static void do_burn(peer_call *p)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_burn_msg m;
    if (qk_peer_burn_decode(p->req->body, p->req->body_len, &m, &err) != 0) {
        bad_body(p, &err);
        return;
    }
    if (qk_store_burn(qk_kms_store(p->kms), m.request_id, &err) != 0) {
        QK_ERROR("burn %s: %s", m.request_id, err.msg);
        store_failed(p, &err);
        return;
    }
    char *body = NULL;
    qk_peer_result_msg res = {.status = QK_PEER_BURNED};
    int rc = qk_peer_result_encode(&res, &body, &err);
    reply_ok(p, rc, body);
}

static void do_request_state(peer_call *p)
{
    const char *id = p->id;
    qk_err err;
    qk_err_clear(&err);
    if (strchr(id, '/') || qk_peer_id_check(id, strlen(id), "request ID", &err) != 0) {
        bad_request(p, "bad request ID");
        return;
    }
    int state = 0;
    int rc = qk_store_request_state(qk_kms_store(p->kms), id, &state, &err);
    if (rc == QK_ENOTFOUND) {
        reply_error(p, 404, QK_PEER_REASON_NOT_FOUND, "unknown request");
        return;
    }
    if (rc != 0) {
        QK_ERROR("request %s: %s", id, err.msg);
        store_failed(p, &err);
        return;
    }
    qk_peer_state_msg s = {.state = state == 0   ? QK_PEER_REQ_PENDING
                                    : state == 1 ? QK_PEER_REQ_RESERVED
                                                 : QK_PEER_REQ_BURNED};
    char *body = NULL;
    rc = qk_peer_state_encode(&s, &body, &err);
    reply_ok(p, rc, body);
}

static void do_health(peer_call *p)
{
    qk_peer_health_msg *h = calloc(1, sizeof *h);
    if (!h) {
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "out of memory");
        return;
    }
    snprintf(h->node_id, sizeof h->node_id, "%s", qk_kms_node_id(p->kms));
    size_t n = qk_kms_link_count(p->kms);
    for (size_t i = 0; i < n && h->nlinks < QK_PEER_LINKS_MAX; i++)
        snprintf(h->links[h->nlinks++], sizeof h->links[0], "%s",
                 qk_kms_link_at(p->kms, i)->cfg->link_id);
    char *body = NULL;
    qk_err err;
    int rc = qk_peer_health_encode(h, &body, &err);
    free(h);
    reply_ok(p, rc, body);
}

/* ---- inventory -------------------------------------------------------------------------- */

/* One block of an inventory. A store error sets *failed: the whole call is answered 500, never
 * "unknown" for a block this end may hold (the asker burns a block the peer answers "unknown"
 * for once it is older than its pending_grace: peer/sync.h). */
static qk_inv_status inventory_one(peer_call *p, uint64_t bid, const uint8_t digest[QK_CHECK_LEN],
                                   bool *failed)
{
    qk_store *st = qk_kms_store(p->kms);
    const char *link = p->link->cfg->link_id;
    uint8_t mine[QK_CHECK_LEN];
    qk_block_state state;
    qk_err err;
    int rc = qk_store_block_digest(st, link, bid, mine, &state, &err);
    if (rc == QK_ENOTFOUND)
        return QK_INV_UNKNOWN;
    if (rc != 0) {
        QK_ERROR("inventory: block %llu: %s", (unsigned long long)bid, err.msg);
        *failed = true;
        return QK_INV_UNKNOWN;
    }
    if (state == QK_BLOCK_BURNED)
        return QK_INV_BURNED;
    bool same = qk_memcmp_ct(mine, digest, QK_CHECK_LEN) == 0;
    qk_wipe(mine, sizeof mine);
    if (same) {
        if (state == QK_BLOCK_PENDING &&
            qk_store_block_set_state(st, link, bid, QK_BLOCK_CONFIRMED, &err) != 0) {
            QK_ERROR("inventory: confirm block %llu: %s", (unsigned long long)bid, err.msg);
            *failed = true;
            return QK_INV_UNKNOWN;
        }
        return QK_INV_MATCH;
    }
    QK_WARN("link %s: block %llu differs from the peer's: burned", link, (unsigned long long)bid);
    if (qk_store_block_set_state(st, link, bid, QK_BLOCK_BURNED, &err) != 0)
        QK_ERROR("inventory: burn block %llu: %s", (unsigned long long)bid, err.msg);
    return QK_INV_MISMATCH;
}

static void do_inventory(peer_call *p)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_inventory_msg *q = malloc(sizeof *q);
    qk_peer_inventory_answer *a = malloc(sizeof *a);
    if (!q || !a) {
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "out of memory");
    } else if (qk_peer_inventory_decode(p->req->body, p->req->body_len, q, &err) != 0) {
        bad_body(p, &err); /* everything is validated before anything is acted on */
    } else if (link_ok(p, q->link)) {
        memset(a, 0, sizeof *a);
        bool failed = false;
        for (size_t i = 0; i < q->n && !failed; i++) {
            a->blocks[i].block_id = q->blocks[i].block_id;
            a->blocks[i].status =
                inventory_one(p, q->blocks[i].block_id, q->blocks[i].digest, &failed);
        }
        a->n = q->n;
        char *body = NULL;
        if (failed) {
            reply_error(p, 500, QK_PEER_REASON_INTERNAL, "store error (asked again later)");
        } else {
            int rc = qk_peer_inventory_answer_encode(a, &body, &err);
            reply_ok(p, rc, body);
        }
    }
    free(q);
    free(a);
}

/* ---- device-keys: the pulling end of an ETSI 014 device link names its keys ------------ */

static void do_device_keys(peer_call *p)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_device_keys_msg *m = malloc(sizeof *m);
    if (!m) {
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "out of memory");
        return;
    }
    if (qk_peer_device_keys_decode(p->req->body, p->req->body_len, m, &err) != 0) {
        bad_body(p, &err); /* everything is validated before anything is acted on */
    } else if (link_ok(p, m->link)) {
        int rc = qk_device_sources_fetch(p->devices, p->link, m, &err);
        char *body = NULL;
        qk_peer_result_msg res = {.status = QK_PEER_STORED};
        switch (rc) {
        case 0:
            rc = qk_peer_result_encode(&res, &body, &err);
            reply_ok(p, rc, body);
            break;
        case QK_EINVAL: /* not an etsi014 link, or this end pulls itself */
            reply_error(p, 409, QK_PEER_REASON_SOURCE, err.msg);
            break;
        case QK_ENOTFOUND:
            QK_WARN("link %s: device keys of block %llu: %s", m->link,
                    (unsigned long long)m->block_id, err.msg);
            reply_error(p, 409, QK_PEER_REASON_DEVICE, err.msg);
            break;
        case QK_EPEER:
            QK_WARN("link %s: device keys of block %llu: %s", m->link,
                    (unsigned long long)m->block_id, err.msg);
            reply_error(p, 503, QK_PEER_REASON_DEVICE_DOWN, err.msg);
            break;
        default:
            QK_ERROR("link %s: device keys of block %llu: %s", m->link,
                     (unsigned long long)m->block_id, err.msg);
            store_failed(p, &err);
            break;
        }
    }
    qk_wipe_free(m, sizeof *m);
}

/* ---- trusted-node key relay (docs/adr/0004-key-relay.md) ------------------------------- */

/* The relay calls block on the network (the next hop, the store's sync): never on a pump
 * (common/qk_inline.h). */
static bool on_worker(void)
{
    return !qk_inline_must_defer();
}

/* The answer of POST /peer/v1/relay: 200 stored, 409 refused, 400 for a message that fails its
 * checks (reason bad-request). */
static void reply_relay(peer_call *p, const qk_relay_answer *a)
{
    char *body = NULL;
    qk_err err;
    qk_err_clear(&err);
    if (qk_relay_answer_encode(a, &body, &err) != 0) {
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "relay answer");
        return;
    }
    unsigned status = a->status == QK_RELAY_STORED               ? 200
                      : a->reason == QK_RELAY_REASON_BAD_REQUEST ? 400
                                                                 : 409;
    qk_http_reply_take(p->rep, status, "application/json", body, strlen(body));
    if (a->status != QK_RELAY_STORED)
        qk_http_reply_detail(p->rep, "relay %s refused: %s at hop %u", a->request_id,
                             qk_relay_reason_name(a->reason), a->hop);
}

static void do_relay(peer_call *p)
{
    if (!on_worker())
        return;
    qk_err err;
    qk_err_clear(&err);
    qk_peer_msg_limits lim = qk_peer_msg_limits_of(qk_kms_limits(p->kms));
    qk_relay_msg *m = malloc(sizeof *m);
    if (!m) {
        reply_error(p, 500, QK_PEER_REASON_INTERNAL, "out of memory");
        return;
    }
    qk_relay_answer a;
    memset(&a, 0, sizeof a);
    if (qk_relay_msg_decode(p->req->body, p->req->body_len, &lim, m, &err) != 0) {
        if (err.code == QK_ENOMEM) {
            reply_error(p, 500, QK_PEER_REASON_INTERNAL, err.msg);
        } else {
            /* the request ID may not have decoded: answer with a placeholder one */
            snprintf(a.request_id, sizeof a.request_id, "%s", "unknown");
            a.status = QK_RELAY_REFUSED;
            a.reason = QK_RELAY_REASON_BAD_REQUEST;
            reply_relay(p, &a);
            qk_http_reply_detail(p->rep, "relay: %s", err.msg);
        }
        free(m);
        return;
    }
    qk_kms_relay_in(p->kms, p->link, m, &a);
    reply_relay(p, &a);
    qk_relay_msg_free(m);
    free(m);
}

/* relay-burn and relay-commit: 200 {"status":"burned"|"reserved"}. */
static void relay_path_call(peer_call *p, bool commit)
{
    if (!on_worker())
        return;
    qk_err err;
    qk_err_clear(&err);
    qk_relay_burn_msg m;
    int rc = commit ? qk_relay_commit_decode(p->req->body, p->req->body_len, &m, &err)
                    : qk_relay_burn_decode(p->req->body, p->req->body_len, &m, &err);
    if (rc != 0) {
        bad_body(p, &err);
        return;
    }
    rc = commit ? qk_kms_relay_commit_in(p->kms, p->link, &m, &err)
                : qk_kms_relay_burn_in(p->kms, p->link, &m, &err);
    switch (rc) {
    case 0: {
        char *body = NULL;
        qk_peer_result_msg res = {.status = commit ? QK_PEER_RESERVED : QK_PEER_BURNED};
        rc = qk_peer_result_encode(&res, &body, &err);
        reply_ok(p, rc, body);
        break;
    }
    case QK_EINVAL:
        reply_error(p, commit ? 409 : 400,
                    commit ? QK_PEER_REASON_BURNED : QK_PEER_REASON_BAD_REQUEST, err.msg);
        break;
    case QK_ENOTFOUND:
        reply_error(p, 404, QK_PEER_REASON_NOT_FOUND, err.msg);
        break;
    case QK_EPEER:
        reply_error(p, 502, QK_PEER_REASON_INTERNAL, err.msg);
        break;
    default:
        QK_ERROR("relay-%s %s: %s", commit ? "commit" : "burn", m.request_id, err.msg);
        store_failed(p, &err);
        break;
    }
}

static void do_relay_burn(peer_call *p)
{
    relay_path_call(p, false);
}

static void do_relay_commit(peer_call *p)
{
    relay_path_call(p, true);
}

/* ---- routing ---------------------------------------------------------------------------- */

#include "peer_topology.h" /* GET /peer/v1/topology (ADR 0004) */
static void do_topology(peer_call *p)
{
    qk_peer_topology_reply(p->kms, p->rep);
}

static const struct {
    const char *path; /* below PREFIX */
    bool with_id;     /* path is followed by a request ID */
    const char *method;
    void (*fn)(peer_call *p);
} routes[] = {
    {"reserve", false, "POST", do_reserve},       {"burn", false, "POST", do_burn},
    {"inventory", false, "POST", do_inventory},   {"request/", true, "GET", do_request_state},
    {"health", false, "GET", do_health},          {"device-keys", false, "POST", do_device_keys},
    {"lease", false, "POST", do_lease},           {"notices", false, "POST", do_notices},
    {"topology", false, "GET", do_topology},      {"relay", false, "POST", do_relay},
    {"relay-burn", false, "POST", do_relay_burn}, {"relay-commit", false, "POST", do_relay_commit},
};

static void peer_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    qk_peer_api_handler *h = (qk_peer_api_handler *)self;
    peer_call p = {.kms = h->kms, .devices = h->devices, .req = req, .rep = rep};
    const char *why = NULL;
    /* Only peer KME certificates here (docs/qkd-kmed.md "Roles"), whatever their CN. */
    if (req->caller->kind == QK_ID_CERT &&
        !qk_role_allows(true, req->caller->role, QK_ROLE_KME, h->role_marker, &why)) {
        reply_error(&p, 403, QK_PEER_REASON_FORBIDDEN, why);
        return;
    }
    if (req->caller->kind == QK_ID_CERT)
        p.link = qk_kms_link_by_peer(h->kms, req->caller->id);
    if (!p.link) {
        reply_error(&p, 403, QK_PEER_REASON_FORBIDDEN, "caller is not a linked peer KME");
        return;
    }
    const char *rest =
        strncmp(req->path, PREFIX, strlen(PREFIX)) == 0 ? req->path + strlen(PREFIX) : NULL;
    for (size_t i = 0; rest && i < sizeof routes / sizeof routes[0]; i++) {
        size_t n = strlen(routes[i].path);
        if (routes[i].with_id ? strncmp(rest, routes[i].path, n) != 0
                              : strcmp(rest, routes[i].path) != 0)
            continue;
        p.id = rest + n;
        if (strcmp(req->method, routes[i].method) != 0)
            bad_method(&p, routes[i].method);
        else
            routes[i].fn(&p);
        return;
    }
    reply_error(&p, 404, QK_PEER_REASON_NOT_FOUND, "unknown path");
}

void qk_peer_api_configure(qk_peer_api_handler *h, qk_kms *kms)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = peer_on_req;
    /* Every route is store work (leases, notices, inventory, burns): on the pump, the reply
     * held for the store's sync (common/qk_inline.h). */
    h->super.inline_first = true;
    h->kms = kms;
}
