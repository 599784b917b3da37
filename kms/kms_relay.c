/* kms_relay.c - trusted-node key relay (docs/adr/0004-key-relay.md): the coordinator at the
 * master KME, the forwarder at an intermediate node and the pending store at the slaves' KME.
 *
 * Each hop: the sender carves, inside its granted leases on the hop's link, one request
 * "R/NN" (master = itself, slave = the next node) of a 32-byte MAC key and an L-byte pad in
 * 1..16 pieces, each inside one block (qk_store_carve_owned_pieces); it seals the end-to-end key K
 * with them (relay_crypto.h) and POSTs /peer/v1/relay; the receiver applies the hop key as a
 * notice, fetches it once as the slave, opens, and either stores K PENDING (the slaves' KME) or
 * forwards. Each node answers its caller after its next hop answered; a node that refuses, or sees
 * its next hop refuse or fail, burns its own hop request. The master KME commits only on "stored"
 * before the deadline (a synced audit record: the decision), then sends relay-commit along the
 * path; on anything else it burns the request (a tombstone) and sends relay-burn along the path. K
 * lives in secure buffers only, is wiped after use and never logged. */
#include "kms_relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "http_util.h"
#include "kms_int.h"
#include "kms_topo.h"
#include "log.h"
#include "relay_crypto.h"
#include "secbuf.h"
#include "thread_name.h"

#define RELAY_TIMEOUT_DEFAULT_MS 5000
#define RELAY_TRIES_DEFAULT      3
#define RELAY_HOPS_DEFAULT       8
#define PATH_TEXT_MAX            (QK_RELAY_PATH_MAX * (QK_STORE_ID_MAX + 1))

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t relay_timeout_ms(const qk_kms *k)
{
    return k->cfg->relay.timeout_ms ? k->cfg->relay.timeout_ms : RELAY_TIMEOUT_DEFAULT_MS;
}

/* The store request of hop `hop` of relay request rid: "rid/NN" (fits QK_STORE_ID_MAX:
 * QK_RELAY_ID_MAX leaves room for it). */
static void hop_id(char out[QK_STORE_ID_MAX + 1], const char *rid, uint32_t hop)
{
    size_t n = strnlen(rid, QK_RELAY_ID_MAX);
    memcpy(out, rid, n);
    out[n] = '/';
    out[n + 1] = (char)('0' + hop / 10 % 10);
    out[n + 2] = (char)('0' + hop % 10);
    out[n + 3] = '\0';
}

/* The hop request's expiry at both ends of the hop: the second after the relay's deadline (the
 * receiver builds the same notice from the message). */
static uint64_t hop_expiry(uint64_t deadline_ms)
{
    return deadline_ms / 1000u + 1u;
}

/* "KME_A>KME_B>KME_C" (truncated past out's size). */
static void path_text(const qk_peer_id *path, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        int w = snprintf(out + o, cap - o, "%s%s", i ? ">" : "", path[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static void refuse(qk_relay_answer *a, qk_relay_reason why, uint32_t hop)
{
    a->status = QK_RELAY_REFUSED;
    a->reason = why;
    a->hop = hop;
}

static void burn_quiet(qk_kms *k, const char *id)
{
    qk_err e;
    qk_err_clear(&e);
    if (qk_store_burn(k->store, id, &e) != 0)
        QK_ERROR("relay: burn %s: %s", id, e.msg);
}

/* ---- sending one hop -------------------------------------------------------------------- */

/* Carve this node's hop key on the link to path[me+1], seal K with it into m (hop = me; link,
 * side, hop_keys, ct and tag filled), POST it and fill *a with the answer. A refusal, a
 * transport error or an answer that is not one burns the hop request here. K is m->ct_len
 * bytes. */
static void send_hop(qk_kms *k, qk_relay_msg *m, uint32_t me, const uint8_t *key,
                     const qk_peer_msg_limits *lim, qk_relay_answer *a)
{
    qk_err err;
    qk_err_clear(&err);
    refuse(a, QK_RELAY_REASON_INTERNAL, me); /* until the next node answers */
    const char *next = m->path[me + 1];
    qk_link *l = qk_kms_link_by_peer(k, next);
    if (!l) {
        QK_WARN("relay %s: %s is not a neighbour of this KME", m->request_id, next);
        refuse(a, QK_RELAY_REASON_LINK_DOWN, me);
        return;
    }
    size_t li = (size_t)(l - k->links);
    char hid[QK_STORE_ID_MAX + 1];
    hop_id(hid, m->request_id, me);
    const char *slaves[1] = {next};
    qk_reservation r = {
        .request_id = hid,
        .link = l->cfg->link_id,
        .master = k->cfg->node_id,
        .slaves = slaves,
        .nslaves = 1,
        .expires_at = hop_expiry(m->deadline_ms),
    };
    size_t nrefs = 0;
    qk_carve_spec spec = {.len = QK_RELAY_MAC_KEY_LEN,
                          .total = (uint32_t)m->ct_len,
                          .max_pieces = QK_RELAY_HOP_KEYS_MAX - 1,
                          .nrefs = &nrefs};
    size_t hk_len = QK_RELAY_MAC_KEY_LEN + m->ct_len;
    uint8_t *hk = qk_secure_alloc(hk_len);
    uint8_t *ad = malloc(QK_RELAY_AD_MAX);
    uint8_t *ct = malloc(m->ct_len);
    char *body = NULL;
    bool carved = false;
    if (!hk || !ad || !ct) {
        refuse(a, QK_RELAY_REASON_INTERNAL, me);
        goto out;
    }
    qk_peer_fail why = QK_PEER_FAIL_UNREACHABLE;
    int rc = qk_kms_carve_leased(k, li, &r, &spec, m->hop_keys, hk, &why, &err);
    if (rc != 0) {
        QK_WARN("relay %s: no key for hop %u on link %s: %s", m->request_id, me, r.link, err.msg);
        refuse(a,
               rc == QK_ENOKEY || rc == QK_EPEER ? QK_RELAY_REASON_NO_KEY
                                                 : QK_RELAY_REASON_INTERNAL,
               me);
        goto out;
    }
    carved = true;
    qk_metrics_relay_bytes(k->metrics, r.link, hk_len);
    m->hop = me;
    snprintf(m->link, sizeof m->link, "%s", r.link);
    m->side = l->side;
    m->nhop_keys = nrefs;
    m->ct = ct;
    size_t ad_len = 0;
    qk_relay_hop_key hop = {.pad = hk + QK_RELAY_MAC_KEY_LEN, .pad_len = m->ct_len, .mac_key = hk};
    rc = qk_relay_msg_ad(m, lim, ad, QK_RELAY_AD_MAX, &ad_len, &err);
    if (rc == 0)
        rc = qk_relay_seal(key, m->ct_len, &hop, ad, ad_len, ct, m->tag, &err);
    if (rc == 0)
        rc = qk_relay_msg_encode(m, lim, &body, &err);
    m->ct = NULL;
    if (rc != 0) {
        QK_ERROR("relay %s: hop %u: %s", m->request_id, me, err.msg);
        refuse(a, QK_RELAY_REASON_INTERNAL, me);
        goto out;
    }
    rc = qk_peer_relay(l->client, body, m->request_id, a, &err);
    if (rc != 0) {
        QK_WARN("relay %s: hop %u to %s: %s", m->request_id, me, next, err.msg);
        refuse(a, QK_RELAY_REASON_LINK_DOWN, me);
    }
out:
    if (a->status != QK_RELAY_STORED && carved)
        burn_quiet(k, hid);
    snprintf(a->request_id, sizeof a->request_id, "%s", m->request_id);
    qk_secure_free(hk);
    qk_wipe_free(ct, m->ct_len);
    free(ad);
    qk_wipe_free(body, body ? strlen(body) : 0);
}

/* Pass a burn or a commit on to path[me+1] (best effort: logged). */
static int pass_on(qk_kms *k, const qk_relay_burn_msg *m, uint32_t me, bool commit, qk_err *err)
{
    qk_link *l = qk_kms_link_by_peer(k, m->path[me + 1]);
    if (!l)
        return qk_err_set(err, QK_EPEER, "%s is not a neighbour", m->path[me + 1]);
    qk_relay_burn_msg next = *m;
    next.hop = me;
    int rc = commit ? qk_peer_relay_commit(l->client, &next, err)
                    : qk_peer_relay_burn(l->client, &next, err);
    if (rc != 0)
        QK_WARN("relay %s: relay-%s to %s: %s", m->request_id, commit ? "commit" : "burn",
                m->path[me + 1], err->msg);
    return rc;
}

/* ---- configuration ---------------------------------------------------------------------- */

/* Whether id names a KME of cfg: this node, a linked peer, a [topology] node, an SAE's home. */
static bool is_kme_id(const qk_kmed_config *cfg, const char *id)
{
    if (strcmp(id, cfg->node_id) == 0 || qk_kmed_config_link_by_peer(cfg, id))
        return true;
    for (size_t i = 0; i < cfg->topology.nlinks; i++)
        if (strcmp(id, cfg->topology.links[i].a) == 0 || strcmp(id, cfg->topology.links[i].b) == 0)
            return true;
    for (size_t i = 0; i < cfg->nsaes; i++)
        if (strcmp(id, cfg->saes[i].kme) == 0)
            return true;
    return false;
}

int qk_kms_relay_check_ids(const qk_kmed_config *cfg, qk_err *err)
{
    for (size_t i = 0; i < cfg->nlinks; i++)
        if (strcmp(cfg->links[i].link_id, QK_RELAY_LINK) == 0)
            return qk_err_set(err, QK_EINVAL,
                              "[link %s]: the link ID \"%s\" is reserved for relayed keys",
                              cfg->links[i].peer, QK_RELAY_LINK);
    for (size_t i = 0; i < cfg->nsaes; i++)
        if (is_kme_id(cfg, cfg->saes[i].id))
            return qk_err_set(err, QK_EINVAL,
                              "[sae %s]: an SAE ID may not be a KME ID (a relay's hop keys are "
                              "bound to KME IDs)",
                              cfg->saes[i].id);
    return 0;
}

/* ---- the master KME --------------------------------------------------------------------- */

bool qk_kms_relay_reaches(qk_kms *k, const char *kme_id)
{
    if (!kme_id || !k->cfg->relay.enabled || qk_kms_knows_kme(k, kme_id))
        return false;
    return qk_kms_topo_knows(k, kme_id);
}

/* One destination KME of a relayed request and how its relay went. */
typedef struct {
    const char *kme;
    const char *slaves[QK_PEER_SLAVES_MAX];
    size_t nslaves;
    char rid[QK_UUID_STR_LEN + 1]; /* the relay request of the try that stored ("" none) */
    qk_peer_id path[QK_RELAY_PATH_MAX];
    size_t npath;
    bool stored;
} relay_dest;

/* The keys of the request as they travel. */
typedef struct {
    const qk_key_request *req;
    const qk_key_batch *b;
    uint64_t expires_at, deadline_ms;
    qk_peer_msg_limits lim;
} relay_job;

static void fill_msg(qk_relay_msg *m, const relay_job *j, const relay_dest *d)
{
    memset(m, 0, sizeof *m);
    snprintf(m->request_id, sizeof m->request_id, "%s", d->rid);
    m->npath = d->npath;
    memcpy(m->path, d->path, sizeof d->path);
    snprintf(m->master, sizeof m->master, "%s", j->req->requester);
    m->nslaves = d->nslaves;
    for (size_t i = 0; i < d->nslaves; i++)
        snprintf(m->slaves[i], sizeof m->slaves[i], "%s", d->slaves[i]);
    m->expires_at = j->expires_at;
    m->deadline_ms = j->deadline_ms;
    m->nkeys = j->b->n;
    m->ct_len = 0;
    for (size_t i = 0; i < j->b->n; i++) {
        memcpy(m->keys[i].key_id, j->b->ids[i], sizeof m->keys[i].key_id);
        m->keys[i].length = j->b->lens[i];
        m->ct_len += j->b->lens[i];
    }
}

/* Whether a refusal is about one link or node, so that another path may work (ADR 0004). */
static bool retryable(qk_relay_reason r)
{
    return r == QK_RELAY_REASON_NO_KEY || r == QK_RELAY_REASON_LINK_DOWN ||
           r == QK_RELAY_REASON_EXPIRED;
}

/* The link a refusal names: the hop after the refusing node (no key, link down, deadline at an
 * intermediate node), or the hop into it (anything about the message it received). */
static void hold_down_for(qk_kms *k, const relay_dest *d, const qk_relay_answer *a)
{
    uint32_t h = a->hop;
    bool after = a->reason == QK_RELAY_REASON_NO_KEY || a->reason == QK_RELAY_REASON_LINK_DOWN ||
                 a->reason == QK_RELAY_REASON_EXPIRED;
    if (after && h + 1 < d->npath)
        qk_kms_topo_hold_down(k, d->path[h], d->path[h + 1]);
    else if (!after && h >= 1 && h < d->npath)
        qk_kms_topo_hold_down(k, d->path[h - 1], d->path[h]);
}

/* Burn a relay request that was sent (the decision), and tell the path. */
static void burn_dest(qk_kms *k, const relay_dest *d)
{
    if (!d->rid[0])
        return;
    burn_quiet(k, d->rid);
    if (d->npath < 2)
        return; /* slaves at this KME: burned in the store */
    qk_relay_burn_msg bm;
    memset(&bm, 0, sizeof bm);
    snprintf(bm.request_id, sizeof bm.request_id, "%s", d->rid);
    bm.npath = d->npath;
    memcpy(bm.path, d->path, sizeof d->path);
    qk_err e;
    qk_err_clear(&e);
    (void)pass_on(k, &bm, 0, false, &e);
}

/* Relay to one remote destination, retrying on another path within the deadline. 0 stored;
 * else QK_EPEER with why set for the SAE (the tries' requests burned). */
static int relay_dest_run(qk_kms *k, const relay_job *j, relay_dest *d, const uint8_t *key,
                          qk_relay_result *res, char *why, size_t why_cap)
{
    uint32_t tries = k->cfg->relay.max_tries ? k->cfg->relay.max_tries : RELAY_TRIES_DEFAULT;
    qk_relay_msg *m = malloc(sizeof *m);
    if (!m) {
        snprintf(why, why_cap, "relay to %s: out of memory", d->kme);
        *res = QK_RELAY_RES_ERROR;
        return QK_EPEER;
    }
    uint64_t need = (uint64_t)QK_RELAY_MAC_KEY_LEN;
    for (size_t i = 0; i < j->b->n; i++)
        need += j->b->lens[i];
    int rc = QK_EPEER;
    *res = QK_RELAY_RES_ERROR;
    for (uint32_t t = 0; t < tries; t++) {
        if (wall_ms() >= j->deadline_ms) {
            snprintf(why, why_cap, "relay to %s: deadline passed after %u tries", d->kme, t);
            *res = QK_RELAY_RES_EXPIRED;
            break;
        }
        qk_kms_path p;
        qk_err err;
        qk_err_clear(&err);
        if (qk_kms_knows_kme(k, d->kme)) { /* a neighbour: its link, as a direct request */
            memset(&p, 0, sizeof p);
            p.n = 2;
            snprintf(p.ids[0], sizeof p.ids[0], "%s", k->cfg->node_id);
            snprintf(p.ids[1], sizeof p.ids[1], "%s", d->kme);
        } else if (qk_kms_topo_route(k, d->kme, need, &p, &err) != 0) {
            if (t == 0) {
                snprintf(why, why_cap, "no route to %s: %.120s", d->kme, err.msg);
                *res = QK_RELAY_RES_NO_ROUTE;
            } /* else: why still tells the last try's failure, which no other path avoids */
            break;
        }
        d->npath = p.n < QK_RELAY_PATH_MAX ? p.n : QK_RELAY_PATH_MAX;
        for (size_t i = 0; i < d->npath; i++)
            snprintf(d->path[i], sizeof d->path[i], "%s", p.ids[i]);
        qk_uuid u;
        qk_uuid_v4(&u);
        qk_uuid_format(&u, d->rid);
        fill_msg(m, j, d);
        char ptext[PATH_TEXT_MAX];
        path_text(d->path, d->npath, ptext, sizeof ptext);
        qk_metrics_relay_route(k->metrics, ptext);
        /* durable before anything is carved: a crash before the decision leaves it pending,
         * and the restart's reconciliation burns it (qk_store_pending_requests) */
        if (qk_store_relay_begin(k->store, d->rid, j->req->requester, j->expires_at, ptext, &err) !=
            0) {
            snprintf(why, why_cap, "relay to %s: %.120s", d->kme, err.msg);
            *res = QK_RELAY_RES_ERROR;
            d->rid[0] = '\0';
            break;
        }
        qk_relay_answer a;
        memset(&a, 0, sizeof a);
        send_hop(k, m, 0, key, &j->lim, &a);
        if (a.status == QK_RELAY_STORED && wall_ms() < j->deadline_ms) {
            d->stored = true;
            *res = QK_RELAY_RES_COMMITTED;
            rc = 0;
            break;
        }
        const char *rname = a.status == QK_RELAY_STORED      ? "expired"
                            : qk_relay_reason_name(a.reason) ? qk_relay_reason_name(a.reason)
                                                             : "internal";
        snprintf(why, why_cap, "relay to %s refused: %s at hop %u (%s)", d->kme, rname, a.hop,
                 d->path[a.hop < d->npath ? a.hop : 0]);
        QK_INFO("relay %s: path %s: refused: %s at hop %u", d->rid, ptext, rname, a.hop);
        *res = a.reason == QK_RELAY_REASON_LINK_DOWN ? QK_RELAY_RES_UNREACHABLE
               : a.status == QK_RELAY_STORED || a.reason == QK_RELAY_REASON_EXPIRED
                   ? QK_RELAY_RES_EXPIRED
                   : QK_RELAY_RES_REFUSED;
        burn_dest(k, d);
        d->rid[0] = '\0';
        if (a.status == QK_RELAY_STORED || !retryable(a.reason))
            break;
        hold_down_for(k, d, &a);
    }
    free(m);
    return rc;
}

/* The destinations: req->target_kme with every slave, or (target NULL) the slaves grouped by
 * home KME. 0, or QK_EINVAL naming an unknown slave or KME. */
static int group_slaves(qk_kms *k, const qk_key_request *req, relay_dest *d, size_t cap, size_t *nd,
                        qk_err *err)
{
    *nd = 0;
    if (req->target_kme) {
        if (req->nslaves > QK_PEER_SLAVES_MAX)
            return qk_err_set(err, QK_EINVAL, "too many slaves");
        memset(&d[0], 0, sizeof d[0]);
        d[0].kme = req->target_kme;
        for (size_t i = 0; i < req->nslaves; i++)
            d[0].slaves[d[0].nslaves++] = req->slaves[i];
        *nd = 1;
        return 0;
    }
    for (size_t i = 0; i < req->nslaves; i++) {
        const char *home = NULL;
        if (qk_kms_sae_home(k, req->slaves[i], &home) != 0 || !home)
            return qk_err_set(err, QK_EINVAL, "unknown slave SAE %s", req->slaves[i]);
        if (strcmp(home, k->cfg->node_id) != 0 && !qk_kms_knows_kme(k, home) &&
            !qk_kms_relay_reaches(k, home))
            return qk_err_set(err, QK_EINVAL, "the KME %s of slave SAE %s is not reachable", home,
                              req->slaves[i]);
        size_t j = 0;
        while (j < *nd && strcmp(d[j].kme, home) != 0)
            j++;
        if (j == *nd) {
            if (*nd == cap)
                return qk_err_set(err, QK_EINVAL, "too many destination KMEs");
            memset(&d[j], 0, sizeof d[j]);
            d[j].kme = home;
            (*nd)++;
        }
        if (d[j].nslaves < QK_PEER_SLAVES_MAX)
            d[j].slaves[d[j].nslaves++] = req->slaves[i];
    }
    return 0;
}

/* Slaves at this KME: K stored pending like a relayed request's, committed with the others. */
static int store_local(qk_kms *k, const relay_job *j, relay_dest *d, qk_err *err)
{
    qk_uuid u;
    qk_uuid_v4(&u);
    qk_uuid_format(&u, d->rid);
    qk_reservation r = {
        .request_id = d->rid,
        .link = QK_RELAY_LINK,
        .master = j->req->requester,
        .slaves = d->slaves,
        .nslaves = d->nslaves,
        .expires_at = j->expires_at,
    };
    pthread_mutex_lock(&k->quota_mu);
    int rc = qk_kms_quota_check(k, r.master, d->slaves, d->nslaves, j->b->n, err);
    if (rc == 0)
        rc = qk_store_relay_put(k->store, &r, j->b->n, (const char(*)[QK_KEY_ID_LEN + 1]) j->b->ids,
                                j->b->lens, j->b->material, err);
    pthread_mutex_unlock(&k->quota_mu);
    d->stored = rc == 0;
    d->npath = 1;
    snprintf(d->path[0], sizeof d->path[0], "%s", k->cfg->node_id);
    if (rc != 0)
        d->rid[0] = '\0';
    return rc;
}

/* The decision: one synced store transaction committing every remote destination's request
 * (the slaves at this KME are committed after it, from their pending store). */
static int decide(qk_kms *k, const relay_dest *d, size_t nd, qk_err *err)
{
    const char *ids[1 + QK_PEER_SLAVES_MAX];
    size_t n = 0;
    for (size_t i = 0; i < nd && n < sizeof ids / sizeof ids[0]; i++)
        if (d[i].npath >= 2)
            ids[n++] = d[i].rid;
    return n ? qk_store_relay_decide(k->store, ids, n, err) : 0;
}

static void relay_wake(qk_kms *k)
{
    if (!k->relay_on)
        return;
    pthread_mutex_lock(&k->relay_mu);
    k->relay_woken = true;
    pthread_cond_signal(&k->relay_cv);
    pthread_mutex_unlock(&k->relay_mu);
}

/* Send relay-commit of request rid along path (from this KME, path[0]); 0 when the next node
 * took it (the slaves' KME then acknowledged it): the request leaves the resend list. */
static int send_commit(qk_kms *k, const char *rid, const qk_peer_id *path, size_t npath)
{
    qk_relay_commit_msg cm;
    memset(&cm, 0, sizeof cm);
    snprintf(cm.request_id, sizeof cm.request_id, "%s", rid);
    cm.npath = npath;
    memcpy(cm.path, path, npath * sizeof path[0]);
    qk_err e;
    qk_err_clear(&e);
    int rc = pass_on(k, &cm, 0, true, &e);
    if (rc == 0 && qk_store_relay_acked(k->store, rid, &e) != 0)
        QK_ERROR("relay %s: %s", rid, e.msg);
    return rc;
}

static void commit_dest(qk_kms *k, const relay_dest *d)
{
    qk_err e;
    qk_err_clear(&e);
    if (d->npath < 2) {
        if (qk_store_relay_commit(k->store, d->rid, &e) != 0)
            QK_ERROR("relay %s: local commit: %s", d->rid, e.msg);
        else if (k->hot_ready)
            qk_kms_notice_batch_done(k);
        return;
    }
    if (send_commit(k, d->rid, d->path, d->npath) != 0)
        relay_wake(k); /* sent again until acknowledged or the keys expire */
}

/* ---- the commit resender ---------------------------------------------------------------- */

#define RESEND_BATCH 16
#define RESEND_MS    1000
#define RESEND_UNDECIDED                                                                           \
    64 /* undecided relay requests burned after a restart (the store's cap)                        \
        */

/* "A>B>C" into path; the number of nodes, 0 when it is not a path. */
static size_t parse_path(const char *text, qk_peer_id *path)
{
    size_t n = 0;
    const char *p = text;
    while (*p && n < QK_RELAY_PATH_MAX) {
        const char *e = strchr(p, '>');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len < 1 || len > QK_STORE_ID_MAX)
            return 0;
        memcpy(path[n], p, len);
        path[n][len] = '\0';
        n++;
        if (!e)
            return n >= 2 ? n : 0;
        p = e + 1;
    }
    return 0;
}

static void resend_round(qk_kms *k)
{
    qk_relay_unacked *u = malloc(RESEND_BATCH * sizeof *u);
    size_t n = 0;
    qk_err err;
    qk_err_clear(&err);
    if (!u || qk_store_relay_unacked(k->store, qk_now_s(), u, RESEND_BATCH, &n, &err) != 0) {
        if (u)
            QK_ERROR("relay: commits to resend: %s", err.msg);
        free(u);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        qk_peer_id path[QK_RELAY_PATH_MAX];
        size_t np = parse_path(u[i].path, path);
        if (np < 2 || strcmp(path[0], k->cfg->node_id) != 0) {
            QK_ERROR("relay %s: no path recorded (\"%s\"): its commit is not sent again",
                     u[i].request_id, u[i].path);
            (void)qk_store_relay_acked(k->store, u[i].request_id, &err);
            continue;
        }
        if (send_commit(k, u[i].request_id, path, np) == 0)
            QK_INFO("relay %s: path %s: commit sent again and taken", u[i].request_id, u[i].path);
    }
    free(u);
}

/* Relay requests a crash left without a decision: burned here and along their paths. */
static void burn_undecided(qk_kms *k)
{
    for (size_t i = 0; i < k->relay_nundecided; i++) {
        const qk_relay_unacked *u = &k->relay_undecided[i];
        burn_quiet(k, u->request_id);
        qk_relay_burn_msg bm;
        memset(&bm, 0, sizeof bm);
        snprintf(bm.request_id, sizeof bm.request_id, "%s", u->request_id);
        bm.npath = parse_path(u->path, bm.path);
        qk_err e;
        qk_err_clear(&e);
        if (bm.npath >= 2 && strcmp(bm.path[0], k->cfg->node_id) == 0)
            (void)pass_on(k, &bm, 0, false, &e);
        QK_INFO("relay %s: path %s: no decision before the restart: burned", u->request_id,
                u->path);
    }
    free(k->relay_undecided);
    k->relay_undecided = NULL;
    k->relay_nundecided = 0;
}

static void *resender(void *arg)
{
    QK_THREAD_NAME("qk-relay-resend");
    qk_kms *k = arg;
    burn_undecided(k);
    pthread_mutex_lock(&k->relay_mu);
    while (!k->relay_stop) {
        struct timespec dl = qk_kms_deadline_in(RESEND_MS);
        while (!k->relay_stop && !k->relay_woken &&
               pthread_cond_timedwait(&k->relay_cv, &k->relay_mu, &dl) == 0)
            ;
        k->relay_woken = false;
        if (k->relay_stop)
            break;
        pthread_mutex_unlock(&k->relay_mu);
        resend_round(k);
        pthread_mutex_lock(&k->relay_mu);
    }
    pthread_mutex_unlock(&k->relay_mu);
    return NULL;
}

int qk_kms_relay_start(qk_kms *k, qk_err *err)
{
    if (k->nlinks == 0)
        return 0;
    if (pthread_mutex_init(&k->relay_mu, NULL) != 0)
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    if (qk_kms_cond_init_mono(&k->relay_cv) != 0) {
        pthread_mutex_destroy(&k->relay_mu);
        return qk_err_set(err, QK_ENOMEM, "condvar init failed");
    }
    k->relay_stop = k->relay_woken = false;
    /* before the listeners start: every undecided relay request is one of a previous run */
    k->relay_undecided = malloc(RESEND_UNDECIDED * sizeof *k->relay_undecided);
    k->relay_nundecided = 0;
    if (k->relay_undecided &&
        qk_store_relay_undecided(k->store, k->relay_undecided, RESEND_UNDECIDED,
                                 &k->relay_nundecided, err) != 0)
        QK_ERROR("relay: undecided requests: %s", err->msg);
    if (pthread_create(&k->relay_tid, NULL, resender, k) != 0) {
        free(k->relay_undecided);
        k->relay_undecided = NULL;
        pthread_cond_destroy(&k->relay_cv);
        pthread_mutex_destroy(&k->relay_mu);
        return qk_err_set(err, QK_ENOMEM, "relay thread: cannot start");
    }
    k->relay_on = true;
    return 0;
}

void qk_kms_relay_stop(qk_kms *k)
{
    if (!k->relay_on)
        return;
    pthread_mutex_lock(&k->relay_mu);
    k->relay_stop = true;
    pthread_cond_signal(&k->relay_cv);
    pthread_mutex_unlock(&k->relay_mu);
    pthread_join(k->relay_tid, NULL);
    pthread_cond_destroy(&k->relay_cv);
    pthread_mutex_destroy(&k->relay_mu);
    k->relay_on = false;
}

int qk_kms_relay_reserve(qk_kms *k, const qk_key_request *req, qk_key_batch *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    uint32_t len = req->size_bits / 8;
    if (req->number * (uint64_t)len > QK_RELAY_DATA_MAX || req->number > QK_RELAY_KEYS_MAX)
        return qk_err_set(err, QK_EINVAL, "a relayed request holds at most %u keys and %u bytes",
                          QK_RELAY_KEYS_MAX, QK_RELAY_DATA_MAX);
    if (qk_inline_must_defer()) /* the relay waits for the path: not on a pump */
        return qk_err_set(err, QK_EAGAIN, "relay: run again on a worker");
    size_t cap = 1 + (size_t)QK_PEER_SLAVES_MAX;
    relay_dest *d = calloc(cap, sizeof *d);
    if (!d)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    size_t nd = 0;
    int rc = group_slaves(k, req, d, cap, &nd, err);
    if (rc == 0)
        rc = qk_kms_batch_alloc(out, req->number, req->number * (size_t)len, err);
    if (rc != 0) {
        free(d);
        return rc;
    }
    qk_random(out->material, req->number * (size_t)len);
    for (size_t i = 0; i < out->n; i++) {
        qk_uuid u;
        qk_uuid_v4(&u);
        qk_uuid_format(&u, out->ids[i]);
        out->lens[i] = len;
        out->keys[i] = out->material + i * len;
    }
    relay_job j = {
        .req = req,
        .b = out,
        .expires_at = qk_now_s() + k->limits.reservation_lifetime_s,
        .deadline_ms = wall_ms() + relay_timeout_ms(k),
        .lim = qk_peer_msg_limits_of(&k->limits),
    };
    char why[256] = "";
    qk_relay_result res = QK_RELAY_RES_COMMITTED;
    for (size_t i = 0; rc == 0 && i < nd; i++) {
        if (strcmp(d[i].kme, k->cfg->node_id) == 0) {
            rc = store_local(k, &j, &d[i], err);
            if (rc != 0)
                res = rc == QK_EQUOTA ? QK_RELAY_RES_REFUSED : QK_RELAY_RES_ERROR;
        } else if (relay_dest_run(k, &j, &d[i], out->material, &res, why, sizeof why) != 0) {
            rc = qk_err_set(err, QK_EPEER, "%s", why);
        }
    }
    if (rc == 0 && wall_ms() >= j.deadline_ms) {
        snprintf(why, sizeof why, "relay: deadline passed before the commit");
        res = QK_RELAY_RES_EXPIRED;
        rc = qk_err_set(err, QK_EPEER, "%s", why);
    }
    if (rc == 0) {
        rc = decide(k, d, nd, err);
        if (rc != 0)
            res = QK_RELAY_RES_ERROR;
    }
    for (size_t i = 0; i < nd; i++) {
        char ptext[PATH_TEXT_MAX];
        path_text(d[i].path, d[i].npath, ptext, sizeof ptext);
        if (rc == 0) {
            commit_dest(k, &d[i]);
            QK_INFO("relay %s: path %s: committed: %zu keys of %u bytes for %s", d[i].rid, ptext,
                    out->n, len, d[i].kme);
        } else {
            burn_dest(k, &d[i]);
        }
    }
    if (rc != 0)
        QK_INFO("relay for %s: %zu destination KMEs: failed: %s", req->requester, nd,
                why[0] ? why : err->msg);
    qk_metrics_relay_request(k->metrics, res);
    free(d);
    if (rc != 0) {
        qk_key_batch_free(out);
        out->peer_fail = QK_PEER_FAIL_REFUSED;
        /* a longer reason is cut: it is a message for the SAE */
        if (snprintf(out->relay_why, sizeof out->relay_why, "%s", why[0] ? why : "relay failed") >=
            (int)sizeof out->relay_why)
            out->relay_why[sizeof out->relay_why - 1] = '\0';
    }
    return rc;
}

/* ---- the peer side ---------------------------------------------------------------------- */

/* The path names the caller (the neighbour of link `from`) at hop and this KME after it. */
static int path_check(qk_kms *k, qk_link *from, const qk_peer_id *path, size_t npath, uint32_t hop,
                      qk_err *err)
{
    if ((size_t)hop + 1 >= npath || strcmp(path[hop], from->cfg->peer) != 0 ||
        strcmp(path[hop + 1], k->cfg->node_id) != 0)
        return qk_err_set(err, QK_EINVAL, "path: hop %u is not from %s to %s", hop, from->cfg->peer,
                          k->cfg->node_id);
    return 0;
}

/* Take the hop key of m (a notice of the sender's request "R/hop", then a fetch as the slave):
 * hk receives the MAC key and the pad. */
static qk_relay_reason take_hop_key(qk_kms *k, const qk_relay_msg *m, uint8_t *hk, size_t hk_len)
{
    char hid[QK_STORE_ID_MAX + 1];
    hop_id(hid, m->request_id, m->hop);
    char slave[1][QK_STORE_ID_MAX + 1];
    snprintf(slave[0], sizeof slave[0], "%s", k->cfg->node_id);
    qk_key_ref keys[QK_RELAY_HOP_KEYS_MAX];
    memcpy(keys, m->hop_keys, sizeof keys);
    qk_notice v;
    memset(&v, 0, sizeof v);
    snprintf(v.request_id, sizeof v.request_id, "%s", hid);
    snprintf(v.master, sizeof v.master, "%s", m->path[m->hop]);
    v.slaves = slave;
    v.nslaves = 1;
    v.expires_at = hop_expiry(m->deadline_ms);
    v.keys = keys;
    v.nkeys = m->nhop_keys;
    int res = 0;
    qk_err err;
    qk_err_clear(&err);
    if (qk_store_notice_in(k->store, m->link, m->side, &v, 1, &res, &err) != 0) {
        QK_ERROR("relay %s: hop key: %s", m->request_id, err.msg);
        return QK_RELAY_REASON_INTERNAL;
    }
    if (res != 0) {
        QK_WARN("relay %s: hop key refused (%s)", m->request_id, qk_status_name(res));
        return QK_RELAY_REASON_HOP_KEY;
    }
    const char *ids[QK_RELAY_HOP_KEYS_MAX];
    qk_fetched_key fk[QK_RELAY_HOP_KEYS_MAX];
    for (size_t i = 0; i < m->nhop_keys; i++)
        ids[i] = keys[i].key_id;
    int rc = qk_store_fetch(k->store, k->cfg->node_id, m->path[m->hop], ids, m->nhop_keys, fk, hk,
                            hk_len, &err);
    if (rc == QK_ENOTFOUND || rc == QK_EUNAUTH) {
        QK_WARN("relay %s: hop key used or unknown: %s", m->request_id, err.msg);
        return QK_RELAY_REASON_HOP_KEY;
    }
    if (rc != 0) {
        QK_ERROR("relay %s: hop key: %s", m->request_id, err.msg);
        return QK_RELAY_REASON_INTERNAL;
    }
    return QK_RELAY_REASON_NONE;
}

/* The slaves' KME: K pending for the slaves. */
static qk_relay_reason store_pending(qk_kms *k, const qk_relay_msg *m, const uint8_t *key)
{
    const char *slaves[QK_PEER_SLAVES_MAX];
    char(*ids)[QK_KEY_ID_LEN + 1] = calloc(m->nkeys, sizeof *ids);
    uint32_t *lens = calloc(m->nkeys, sizeof *lens);
    if (!ids || !lens) {
        free(ids);
        free(lens);
        return QK_RELAY_REASON_INTERNAL;
    }
    for (size_t i = 0; i < m->nslaves; i++)
        slaves[i] = m->slaves[i];
    for (size_t i = 0; i < m->nkeys; i++) {
        memcpy(ids[i], m->keys[i].key_id, sizeof ids[i]);
        lens[i] = m->keys[i].length;
    }
    qk_reservation r = {
        .request_id = m->request_id,
        .link = QK_RELAY_LINK,
        .master = m->master,
        .slaves = slaves,
        .nslaves = m->nslaves,
        .expires_at = m->expires_at,
    };
    qk_err err;
    qk_err_clear(&err);
    pthread_mutex_lock(&k->quota_mu);
    int rc = qk_kms_quota_check(k, m->master, slaves, m->nslaves, m->nkeys, &err);
    if (rc == 0)
        rc = qk_store_relay_put(k->store, &r, m->nkeys, (const char(*)[QK_KEY_ID_LEN + 1]) ids,
                                lens, key, &err);
    pthread_mutex_unlock(&k->quota_mu);
    free(ids);
    free(lens);
    if (rc == QK_EQUOTA) {
        QK_WARN("relay %s: %s", m->request_id, err.msg);
        return QK_RELAY_REASON_LIMIT;
    }
    if (rc == QK_EEXIST) {
        QK_WARN("relay %s: %s", m->request_id, err.msg);
        return QK_RELAY_REASON_EXISTS;
    }
    if (rc != 0) {
        QK_ERROR("relay %s: store: %s", m->request_id, err.msg);
        return QK_RELAY_REASON_INTERNAL;
    }
    return QK_RELAY_REASON_NONE;
}

void qk_kms_relay_in(qk_kms *k, qk_link *from, qk_relay_msg *m, qk_relay_answer *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->request_id, sizeof a->request_id, "%s", m->request_id);
    a->status = QK_RELAY_STORED;
    uint32_t me = m->hop + 1;
    qk_err err;
    qk_err_clear(&err);
    qk_side peer_side = from->side == QK_SIDE_LOW ? QK_SIDE_HIGH : QK_SIDE_LOW;
    if (path_check(k, from, m->path, m->npath, m->hop, &err) != 0 ||
        strcmp(m->link, from->cfg->link_id) != 0 || m->side != peer_side) {
        QK_WARN("relay %s from %s: %s", m->request_id, from->cfg->peer,
                err.msg[0] ? err.msg : "hop_key: not the caller's link and side");
        refuse(a, QK_RELAY_REASON_BAD_REQUEST, me);
        return;
    }
    if (wall_ms() >= m->deadline_ms) {
        refuse(a, QK_RELAY_REASON_EXPIRED, me);
        return;
    }
    size_t hk_len = QK_RELAY_MAC_KEY_LEN + m->ct_len;
    uint8_t *hk = qk_secure_alloc(hk_len);
    uint8_t *key = qk_secure_alloc(m->ct_len);
    uint8_t *ad = malloc(QK_RELAY_AD_MAX);
    qk_peer_msg_limits lim = qk_peer_msg_limits_of(&k->limits);
    qk_relay_reason why = QK_RELAY_REASON_NONE;
    if (!hk || !key || !ad)
        why = QK_RELAY_REASON_INTERNAL;
    if (why == QK_RELAY_REASON_NONE)
        why = take_hop_key(k, m, hk, hk_len);
    size_t ad_len = 0;
    if (why == QK_RELAY_REASON_NONE &&
        qk_relay_msg_ad(m, &lim, ad, QK_RELAY_AD_MAX, &ad_len, &err) != 0)
        why = QK_RELAY_REASON_BAD_REQUEST;
    if (why == QK_RELAY_REASON_NONE) {
        qk_relay_hop_key hop = {
            .pad = hk + QK_RELAY_MAC_KEY_LEN, .pad_len = m->ct_len, .mac_key = hk};
        int rc = qk_relay_open(m->ct, m->ct_len, m->tag, &hop, ad, ad_len, key, &err);
        if (rc == QK_EMISMATCH) {
            QK_WARN("relay %s: hop %u from %s: the tag does not verify (altered in flight)",
                    m->request_id, m->hop, from->cfg->peer);
            why = QK_RELAY_REASON_MAC;
        } else if (rc != 0) {
            why = QK_RELAY_REASON_BAD_REQUEST;
        }
    }
    qk_secure_free(hk);
    hk = NULL;
    if (m->ct)
        qk_wipe(m->ct, m->ct_len);
    if (why == QK_RELAY_REASON_NONE && me + 1 == m->npath) {
        why = store_pending(k, m, key);
    } else if (why == QK_RELAY_REASON_NONE) {
        uint8_t *ct_in = m->ct;
        m->ct = NULL;
        send_hop(k, m, me, key, &lim, a); /* a: the answer of the rest of the path */
        m->ct = ct_in;
    }
    if (why != QK_RELAY_REASON_NONE)
        refuse(a, why, me);
    qk_secure_free(key);
    free(ad);
}

int qk_kms_relay_burn_in(qk_kms *k, qk_link *from, const qk_relay_burn_msg *m, qk_err *err)
{
    int rc = path_check(k, from, m->path, m->npath, m->hop, err);
    if (rc != 0)
        return rc;
    uint32_t me = m->hop + 1;
    char hid[QK_STORE_ID_MAX + 1];
    /* what came in (the hop key, if not fetched), what went out, and K at the slaves' KME */
    hop_id(hid, m->request_id, m->hop);
    rc = qk_store_burn(k->store, hid, err);
    if (rc == 0 && me + 1 < m->npath) {
        hop_id(hid, m->request_id, me);
        rc = qk_store_burn(k->store, hid, err);
    }
    if (rc == 0 && me + 1 == m->npath)
        rc = qk_store_burn(k->store, m->request_id, err);
    if (rc != 0)
        return rc;
    QK_INFO("relay %s: burned at hop %u", m->request_id, me);
    if (me + 1 < m->npath) {
        qk_err e;
        qk_err_clear(&e);
        (void)pass_on(k, m, me, false, &e);
    }
    return 0;
}

int qk_kms_relay_commit_in(qk_kms *k, qk_link *from, const qk_relay_commit_msg *m, qk_err *err)
{
    int rc = path_check(k, from, m->path, m->npath, m->hop, err);
    if (rc != 0)
        return rc;
    uint32_t me = m->hop + 1;
    if (me + 1 < m->npath)
        return pass_on(k, m, me, true, err);
    rc = qk_store_relay_commit(k->store, m->request_id, err);
    if (rc == 0) {
        if (k->hot_ready)
            qk_kms_notice_batch_done(k); /* fetches waiting for these keys look again */
        char ptext[PATH_TEXT_MAX];
        path_text(m->path, m->npath, ptext, sizeof ptext);
        QK_INFO("relay %s: path %s: committed, the keys are the slaves' now", m->request_id, ptext);
    }
    return rc;
}
