/* sync.c - inventory exchange, restart reconciliation and expiry on a background thread. */
#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "log.h"
#include "secbuf.h"
#include "thread_name.h"

#define STALE_REQUESTS_MAX      4096 /* outgoing requests reconciled after a restart */
#define RECONCILE_PER_TICK      16
#define MIN_TICK_GAP_MS         50 /* wake-ups closer than this are merged */
#define EXPIRE_EVERY_TICKS      5
#define STALE_CHECK_EVERY_TICKS 5  /* about once a second at the default 200 ms tick */
#define BACKOFF_TICKS           10 /* after a failed call, leave the peer alone for a while */

struct qk_sync {
    qk_kms *kms;
    unsigned tick_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool woken;
    char (*stale)[QK_STORE_ID_MAX + 1];
    size_t nstale;
    unsigned *backoff; /* per link: ticks to skip */
    uint64_t ticks;
};

void qk_sync_notify(void *sync)
{
    qk_sync *s = sync;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->woken = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void peer_failed(qk_sync *s, size_t li, const char *what, const qk_err *err)
{
    qk_link *l = qk_kms_link_at(s->kms, li);
    qk_metrics_peer_error(qk_kms_metrics(s->kms));
    if (s->backoff[li] == 0)
        QK_WARN("sync: peer %s: %s: %s", l->cfg->peer, what, err->msg);
    s->backoff[li] = BACKOFF_TICKS;
}

/* ---- inventory -------------------------------------------------------------------------- */

uint64_t qk_sync_pending_grace_s(const qk_link_cfg *l)
{
    return l && l->pending_grace_s ? l->pending_grace_s : QK_CFG_DEFAULT_PENDING_GRACE_S;
}

static void apply(qk_store *st, const char *link, uint64_t id, qk_inv_status v, bool stale)
{
    qk_err err;
    qk_block_state to;
    switch (v) {
    case QK_INV_MATCH:
        to = QK_BLOCK_CONFIRMED;
        break;
    case QK_INV_MISMATCH:
    case QK_INV_BURNED:
        to = QK_BLOCK_BURNED;
        QK_WARN("link %s: block %llu %s at the peer: burned", link, (unsigned long long)id,
                v == QK_INV_MISMATCH ? "differs" : "was burned");
        break;
    default:
        if (!stale)
            return;
        to = QK_BLOCK_BURNED;
        QK_WARN("link %s: block %llu still unknown at the peer after the pending grace: burned",
                link, (unsigned long long)id);
        break;
    }
    if (qk_store_block_set_state(st, link, id, to, &err) != 0)
        QK_WARN("link %s: block %llu: %s", link, (unsigned long long)id, err.msg);
}

/* One inventory call for up to QK_PEER_INVENTORY_MAX PENDING blocks of link li (received
 * before before_s, 0 = any). stale: blocks the peer does not know are burned. */
static void inventory(qk_sync *s, size_t li, uint64_t before_s, bool stale)
{
    qk_link *l = qk_kms_link_at(s->kms, li);
    qk_store *st = qk_kms_store(s->kms);
    const char *link = l->cfg->link_id;
    uint64_t ids[QK_PEER_INVENTORY_MAX];
    qk_inv_status out[QK_PEER_INVENTORY_MAX];
    size_t n = 0;
    qk_err err;
    if (qk_store_blocks_in_state(st, link, QK_BLOCK_PENDING, before_s, ids, QK_PEER_INVENTORY_MAX,
                                 &n, &err) != 0) {
        QK_ERROR("sync: link %s: %s", link, err.msg);
        return;
    }
    qk_peer_inventory_msg q; /* the blocks still PENDING, with their digests */
    memset(&q, 0, sizeof q);
    snprintf(q.link, sizeof q.link, "%s", link);
    for (size_t i = 0; i < n; i++) {
        qk_block_state bs;
        qk_peer_inv_block *b = &q.blocks[q.n];
        if (qk_store_block_digest(st, link, ids[i], b->digest, &bs, &err) == 0 &&
            bs == QK_BLOCK_PENDING) {
            b->block_id = ids[i];
            q.n++;
        }
    }
    if (q.n > 0 && qk_peer_inventory(l->client, &q, out, &err) != 0)
        peer_failed(s, li, "inventory", &err);
    else
        for (size_t i = 0; i < q.n; i++)
            apply(st, link, q.blocks[i].block_id, out[i], stale);
    qk_wipe(q.blocks, sizeof q.blocks);
}

/* ---- reconciliation --------------------------------------------------------------------- */

static void reconcile(qk_sync *s)
{
    qk_kms *k = s->kms;
    size_t done = 0;
    while (s->nstale > 0 && done < RECONCILE_PER_TICK) {
        const char *id = s->stale[s->nstale - 1];
        bool all = true;
        for (size_t li = 0; li < qk_kms_link_count(k); li++) {
            qk_err err;
            if (s->backoff[li] > 0) {
                all = false;
                continue;
            }
            if (qk_peer_burn(qk_kms_link_at(k, li)->client, id, &err) != 0) {
                peer_failed(s, li, "burn of an unanswered request", &err);
                all = false;
            }
        }
        if (!all)
            return; /* try again on a later tick */
        qk_err err;
        if (qk_store_burn(qk_kms_store(k), id, &err) != 0)
            QK_ERROR("sync: burn %s: %s", id, err.msg);
        else
            QK_INFO("sync: request %s left pending by a previous run: burned", id);
        s->nstale--;
        done++;
    }
}

/* ---- the thread ------------------------------------------------------------------------- */

static void tick(qk_sync *s)
{
    qk_kms *k = s->kms;
    s->ticks++;
    reconcile(s);
    uint64_t now = qk_now_s();
    for (size_t li = 0; li < qk_kms_link_count(k); li++) {
        if (s->backoff[li] > 0) {
            s->backoff[li]--;
            continue;
        }
        inventory(s, li, 0, false);
        uint64_t grace = qk_sync_pending_grace_s(qk_kms_link_at(k, li)->cfg);
        if (s->ticks % STALE_CHECK_EVERY_TICKS == 0 && now > grace && s->backoff[li] == 0)
            inventory(s, li, now - grace, true);
    }
    if (s->ticks % EXPIRE_EVERY_TICKS == 0) {
        size_t n = 0;
        qk_err err;
        if (qk_store_expire(qk_kms_store(k), now, &n, &err) != 0)
            QK_ERROR("sync: expire: %s", err.msg);
        else if (n > 0)
            QK_INFO("sync: %zu unclaimed keys expired and burned", n);
    }
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *run(void *arg)
{
    QK_THREAD_NAME("qk-peer-sync");
    qk_sync *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        deadline_in(&ts, s->tick_ms);
        while (!s->stop && !s->woken) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
                break;
        }
        if (s->stop)
            break;
        s->woken = false;
        pthread_mutex_unlock(&s->mu);
        tick(s);
        pthread_mutex_lock(&s->mu);
        /* Merge bursts of wake-ups: wait at least MIN_TICK_GAP_MS before the next tick. */
        deadline_in(&ts, MIN_TICK_GAP_MS);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int qk_sync_start(qk_kms *k, unsigned tick_ms, qk_sync **out, qk_err *err)
{
    *out = NULL;
    qk_sync *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    s->kms = k;
    s->tick_ms = tick_ms ? tick_ms : 200;
    s->stale = calloc(STALE_REQUESTS_MAX, sizeof *s->stale);
    s->backoff = calloc(qk_kms_link_count(k) + 1, sizeof *s->backoff);
    if (!s->stale || !s->backoff) {
        free(s->stale);
        free(s->backoff);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    int rc =
        qk_store_pending_requests(qk_kms_store(k), s->stale, STALE_REQUESTS_MAX, &s->nstale, err);
    if (rc != 0) {
        free(s->stale);
        free(s->backoff);
        free(s);
        return rc;
    }
    if (s->nstale > 0)
        QK_INFO("sync: %zu outgoing requests left pending by a previous run", s->nstale);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&s->mu, NULL) == 0;
    if (ok && pthread_cond_init(&s->cv, &ca) != 0) {
        pthread_mutex_destroy(&s->mu);
        ok = false;
    }
    pthread_condattr_destroy(&ca);
    if (ok && pthread_create(&s->thread, NULL, run, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        ok = false;
    }
    if (!ok) {
        free(s->stale);
        free(s->backoff);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "cannot start the sync thread");
    }
    *out = s;
    return 0;
}

void qk_sync_stop(qk_sync *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->stale);
    free(s->backoff);
    free(s);
}
