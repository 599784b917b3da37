/* kms_notify.c - notices (docs/adr/0002-key-store.md, "Leases and notices"): one notifier
 * thread per link tells the peer, in batches over the peer client's kept-alive connections,
 * which requests this end carved from its leases (POST /peer/v1/notices), burns at both ends
 * what the peer refuses, keeps the peer's held counts for the max_key_count estimate, and
 * leases ahead of demand. The peer side (qk_kms_notices_in) applies a batch and wakes the
 * fetches waiting for its key IDs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "kms_int.h"
#include "log.h"
#include "thread_name.h"

#define TICK_MS           200  /* the notifier's period when nobody wakes it */
#define BACKOFF_MIN_MS    100  /* after a failed peer call, doubling ... */
#define BACKOFF_MAX_MS    5000 /* ... up to this */
#define BATCHES_PER_CYCLE 64   /* then the thread looks at its stop flag again */
#define LEASE_AHEAD_MIN   4096 /* bytes: the store takes a meeting block this small whole */
#define PAIRS_MAX         1024 /* (master, slave) counts one notices batch remembers */

/* ---- time ------------------------------------------------------------------------------- */

int qk_kms_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(cv, &ca) == 0
                 ? 0
                 : -1;
    pthread_condattr_destroy(&ca);
    return rc;
}

struct timespec qk_kms_deadline_in(uint64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* ---- sending notices -------------------------------------------------------------------- */

/* The peer answered the batch v[n]: burn the refused requests at both ends, then mark the
 * batch noticed (a crash in between sends the refused ones again: refused again, burned
 * again). */
static int apply_answer(qk_kms *k, size_t i, qk_notice *v, size_t n,
                        const qk_peer_notices_answer *a, qk_err *err)
{
    qk_link *l = &k->links[i];
    const char **ids = calloc(n, sizeof *ids);
    if (!ids)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    uint64_t refused = 0;
    for (size_t j = 0; j < n; j++) {
        const qk_peer_notice_result *res = &a->r[j];
        ids[j] = v[j].request_id;
        qk_kms_held_answer(k, i, &v[j], res);
        if (res->status == 0)
            continue;
        refused++;
        qk_peer_fail why = qk_peer_fail_of(res->status);
        qk_metrics_peer_failure(k->metrics, why);
        QK_WARN("request %s: the notice of its %zu keys was refused by %s (%s, %s): burned at "
                "both ends (its master already has them; its slaves never will)",
                v[j].request_id, v[j].nkeys, l->cfg->peer, qk_peer_fail_name(why),
                qk_status_name(res->status));
        qk_err e;
        if (qk_peer_burn(l->client, v[j].request_id, &e) != 0)
            QK_WARN("request %s: burn at peer %s failed: %s", v[j].request_id, l->cfg->peer, e.msg);
        if (qk_store_burn(k->store, v[j].request_id, &e) != 0)
            QK_ERROR("request %s: local burn failed: %s", v[j].request_id, e.msg);
    }
    int rc = qk_store_notices_done(k->store, ids, n, err);
    free(ids);
    qk_metrics_notices(k->metrics, n, refused);
    return rc;
}

/* The answer of one notice the peer refused with status st (a 400 for it alone). */
static int refused_answer(const qk_notice *v, int st, qk_peer_notices_answer *a, qk_err *err)
{
    a->r = calloc(1, sizeof *a->r);
    if (!a->r)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    snprintf(a->r[0].request_id, sizeof a->r[0].request_id, "%s", v->request_id);
    a->r[0].status = st;
    a->n = 1;
    return 0;
}

/* Send every pending notice of link i (batches of notice_batch, fewer when a body would be too
 * large, one at a time after a batch answered 400). 0, or the first failure (what was not
 * answered stays pending). *runs: the peer takes notices as runs (docs/adr/0003-request-
 * records.md, "Wire"): false until one of its answers says so, and after each answer what that
 * answer says (a peer restarted as an older version answers without it). A batch sent as runs
 * and answered 400 is sent again as key lists before anything is concluded from the 400 (an
 * older peer that has not answered since cannot decode runs). */
static int send_notices(qk_kms *k, size_t i, bool *runs, qk_err *err)
{
    qk_link *l = &k->links[i];
    size_t cap = k->cfg->notice_batch;
    qk_notice *v = calloc(cap, sizeof *v);
    if (!v)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    int rc = 0;
    for (int b = 0; b < BATCHES_PER_CYCLE; b++) {
        size_t n = 0;
        rc = qk_store_notices_pending(k->store, l->cfg->link_id, v, cap, &n, err);
        if (rc != 0 || n == 0)
            break;
        qk_peer_notices_msg m = {.side = l->side, .notices = v, .n = n, .runs = *runs};
        snprintf(m.link, sizeof m.link, "%s", l->cfg->link_id);
        qk_peer_notices_answer a = {NULL, 0, false};
        qk_err perr;
        qk_err_clear(&perr);
        int prc = qk_peer_notices(l->client, &m, &a, &perr);
        if (prc == QK_EINVAL && m.runs) {
            QK_INFO("link %s: the peer refused notices as runs (%s): key lists from now on",
                    l->cfg->link_id, perr.msg);
            *runs = false;
            qk_notice_free(v, n);
            continue;
        }
        if (prc == 0)
            *runs = a.runs;
        if (prc == QK_ELIMIT && n > 1) {
            qk_notice_free(v, n);
            cap = n / 2;
            continue;
        }
        if (prc == QK_EINVAL && n > 1) {
            /* 400 for the batch: one notice may break the peer's decode of all of them (e.g.
             * its [keys] limits are smaller than ours); send them one at a time. */
            qk_notice_free(v, n);
            cap = 1;
            continue;
        }
        if (prc == QK_EINVAL) {
            /* This notice alone is answered 400: it will never be taken. Refused, as if the
             * peer had answered so (burned at both ends, counted, logged by apply_answer). */
            QK_DEBUG("link %s: notice of request %s: %s", l->cfg->link_id, v[0].request_id,
                     perr.msg);
            rc = refused_answer(&v[0], QK_EINVAL, &a, err);
            prc = rc;
        }
        if (rc != 0) {
            qk_notice_free(v, n);
            break;
        }
        if (prc != 0) {
            qk_notice_free(v, n);
            qk_metrics_peer_error(k->metrics);
            qk_metrics_peer_failure(k->metrics, qk_peer_fail_of(prc));
            rc = qk_err_set(err, QK_EPEER, "notices to %s (%s): %s", l->cfg->peer,
                            qk_peer_fail_name(qk_peer_fail_of(prc)),
                            perr.msg[0] ? perr.msg : qk_status_name(prc));
            break;
        }
        rc = apply_answer(k, i, v, n, &a, err);
        qk_peer_notices_answer_free(&a);
        qk_notice_free(v, n);
        if (rc != 0 || n < cap)
            break;
    }
    free(v);
    return rc;
}

/* Lease ahead: when the granted, uncarved room of this end on link i is below its low mark
 * (lease_low_water, or more under sustained demand: qk_kms_lease_low_mark), ask for up to a
 * lease's size more (qk_kms_lease_ask_bytes) - once this end has served a request on the link, and
 * only while it owns less than the link's unleased room (bytes_available is this end's view of the
 * uncarved room: its own leased room plus the unleased one), so that leasing ahead never takes more
 * than about half of a link's material from a peer that has not asked yet (requests still
 * lease what they need). No confirmed block with room left is not a failure. */
static int lease_ahead(qk_kms *k, size_t i, qk_err *err)
{
    qk_hot_link *h = &k->hot[i];
    qk_link *l = &k->links[i];
    pthread_mutex_lock(&h->mu);
    bool demand = h->demand;
    pthread_mutex_unlock(&h->mu);
    if (!demand)
        return 0;
    uint64_t seen = qk_kms_lease_gen(k, i), room = 0;
    int rc = qk_store_lease_room(k->store, l->cfg->link_id, l->side, &room, err);
    if (rc != 0 || room >= qk_kms_lease_low_mark(k, i))
        return rc;
    qk_pool_status st;
    rc = qk_store_pool_status(k->store, l->cfg->link_id, &st, err);
    if (rc != 0)
        return rc;
    uint64_t unleased = st.bytes_available > room ? st.bytes_available - room : 0;
    if (room >= unleased)
        return 0;
    /* At most half of the difference, so that after the ask this end still holds no more than
     * the rest; nothing when that is below the store's smallest half-ask (it would take a
     * small last block whole and leave the peer nothing to serve from). */
    uint64_t want = (unleased - room) / 2, most = qk_kms_lease_ask_bytes(k, i);
    if (want > most)
        want = most;
    if (want < LEASE_AHEAD_MIN)
        return 0;
    rc = qk_kms_lease_more(k, i, want, seen, NULL, NULL, err);
    return rc == QK_ENOKEY ? 0 : rc;
}

/* The notifier's memory between rounds. Leasing ahead has a backoff of its own: it only saves
 * a request a synchronous ask, so a refused or failed ask must never hold the notices back (a
 * fetch waits for its notice only notice_wait). */
typedef struct {
    bool reask;             /* leftover asks to send first (after a start or a failure) */
    bool peer_runs;         /* the peer's last notices answer: it takes notices as runs */
    double lease_next_ms;   /* no leasing ahead before this (qk_now_ms) */
    uint64_t lease_backoff; /* ms, doubling from BACKOFF_MIN_MS after each failure */
} notify_state;

/* One round: leftover asks, notices, lease ahead. Fails only when the notices could not be
 * sent (the caller backs off). */
static int cycle(qk_kms *k, size_t i, notify_state *ns, qk_err *err)
{
    if (ns->reask) {
        int rc = qk_kms_lease_reask(k, i, err);
        if (rc != 0)
            return rc;
        ns->reask = false;
    }
    int rc = send_notices(k, i, &ns->peer_runs, err);
    if (rc != 0) {
        ns->reask = true;
        return rc;
    }
    if (qk_now_ms() < ns->lease_next_ms)
        return 0;
    qk_err lerr;
    qk_err_clear(&lerr);
    if (lease_ahead(k, i, &lerr) == 0) {
        ns->lease_backoff = 0;
        return 0;
    }
    if (ns->lease_backoff == 0)
        QK_WARN("link %s: leasing ahead: %s (retrying)", k->links[i].cfg->link_id, lerr.msg);
    ns->lease_backoff = ns->lease_backoff ? ns->lease_backoff * 2 : BACKOFF_MIN_MS;
    if (ns->lease_backoff > BACKOFF_MAX_MS)
        ns->lease_backoff = BACKOFF_MAX_MS;
    ns->lease_next_ms = qk_now_ms() + (double)ns->lease_backoff;
    ns->reask = true;
    return 0;
}

static void *notifier(void *arg)
{
    QK_THREAD_NAME("qk-notifier");
    qk_hot_link *h = arg;
    qk_kms *k = h->kms;
    size_t i = (size_t)(h - k->hot);
    notify_state ns = {.reask = true};
    uint64_t backoff = 0;
    qk_err err;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        /* During a backoff only the stop flag ends the wait; else a wake-up or the tick. */
        struct timespec dl = qk_kms_deadline_in(backoff ? backoff : TICK_MS);
        while (!h->stop && (backoff || !h->woken) &&
               pthread_cond_timedwait(&h->cv, &h->mu, &dl) != ETIMEDOUT)
            ;
        if (h->stop)
            break;
        h->woken = false;
        pthread_mutex_unlock(&h->mu);
        qk_err_clear(&err);
        if (cycle(k, i, &ns, &err) == 0) {
            backoff = 0;
        } else {
            if (backoff == 0)
                QK_WARN("link %s: %s (retrying)", k->links[i].cfg->link_id, err.msg);
            backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    /* A clean stop sends what is left once, unless the peer is failing (a restart sends it). */
    if (backoff == 0 && send_notices(k, i, &ns.peer_runs, &err) != 0)
        QK_INFO("link %s: notices left for the next start: %s", k->links[i].cfg->link_id, err.msg);
    return NULL;
}

void qk_kms_notify_wake(qk_kms *k, size_t i)
{
    qk_hot_link *h = &k->hot[i];
    pthread_mutex_lock(&h->mu);
    h->woken = h->demand = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---- the peer side ---------------------------------------------------------------------- */

/* Fill held[] with the keys held here for each (master, slave) of v, reusing what this batch
 * already counted (pairs[npairs], at most cap). */
static int fill_held(qk_kms *k, const qk_notice *v, qk_peer_notice_result *res, qk_peer_held *pairs,
                     size_t *npairs, size_t cap, qk_err *err)
{
    res->held = calloc(v->nslaves ? v->nslaves : 1, sizeof *res->held);
    if (!res->held)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    for (size_t j = 0; j < v->nslaves; j++) {
        const qk_peer_held *p = NULL;
        for (size_t q = 0; q < *npairs && !p; q++)
            if (strcmp(pairs[q].master, v->master) == 0 &&
                strcmp(pairs[q].slave, v->slaves[j]) == 0)
                p = &pairs[q];
        qk_peer_held cur;
        if (!p) {
            snprintf(cur.master, sizeof cur.master, "%s", v->master);
            snprintf(cur.slave, sizeof cur.slave, "%s", v->slaves[j]);
            int rc = qk_store_count_reserved(k->store, v->master, v->slaves[j], &cur.count, err);
            if (rc != 0)
                return rc;
            if (*npairs < cap)
                pairs[(*npairs)++] = cur;
            p = &cur;
        }
        res->held[res->nheld++] = *p;
    }
    return 0;
}

int qk_kms_notices_in(qk_kms *k, const qk_peer_notices_msg *m, qk_peer_notices_answer *a,
                      qk_err *err)
{
    memset(a, 0, sizeof *a);
    int *results = calloc(m->n ? m->n : 1, sizeof *results);
    a->r = calloc(m->n ? m->n : 1, sizeof *a->r);
    size_t cap = 0; /* distinct pairs remembered (more are counted again) */
    for (size_t i = 0; i < m->n && cap < PAIRS_MAX; i++)
        cap += m->notices[i].nslaves;
    if (cap > PAIRS_MAX)
        cap = PAIRS_MAX;
    qk_peer_held *pairs = calloc(cap ? cap : 1, sizeof *pairs);
    int rc = results && a->r && pairs ? 0 : qk_err_set(err, QK_ENOMEM, "out of memory");
    if (rc == 0)
        rc = qk_store_notice_in(k->store, m->link, m->side, m->notices, m->n, results, err);
    size_t npairs = 0;
    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        const qk_notice *v = &m->notices[i];
        qk_peer_notice_result *res = &a->r[i];
        a->n = i + 1;
        snprintf(res->request_id, sizeof res->request_id, "%s", v->request_id);
        res->status = results[i];
        if (results[i] != 0)
            QK_WARN("link %s: notice of request %s refused: %s", m->link, v->request_id,
                    qk_status_name(results[i]));
        rc = fill_held(k, v, res, pairs, &npairs, cap, err);
    }
    free(pairs);
    free(results);
    if (rc != 0) {
        qk_peer_notices_answer_free(a);
        return rc;
    }
    a->runs = true; /* this end decodes notices as runs (peer_msg.h) */
    qk_kms_notice_batch_done(k);
    return 0;
}

void qk_kms_notice_wait(qk_kms *k, const char *const *ids, size_t n)
{
    struct timespec dl = qk_kms_deadline_in(k->cfg->notice_wait_ms);
    for (;;) {
        pthread_mutex_lock(&k->notice_mu);
        uint64_t gen = k->notice_gen;
        pthread_mutex_unlock(&k->notice_mu);
        if (qk_kms_ids_known(k, ids, n))
            return;
        int wrc = 0;
        pthread_mutex_lock(&k->notice_mu);
        while (gen == k->notice_gen && wrc != ETIMEDOUT)
            wrc = pthread_cond_timedwait(&k->notice_cv, &k->notice_mu, &dl);
        pthread_mutex_unlock(&k->notice_mu);
        if (wrc == ETIMEDOUT)
            return;
    }
}

/* ---- start and stop --------------------------------------------------------------------- */

static int hot_link_init(qk_kms *k, qk_hot_link *h, qk_err *err)
{
    h->kms = k;
    if (pthread_mutex_init(&h->lease_mu, NULL) != 0)
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    if (pthread_mutex_init(&h->held_mu, NULL) != 0) {
        pthread_mutex_destroy(&h->lease_mu);
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    }
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        pthread_mutex_destroy(&h->held_mu);
        pthread_mutex_destroy(&h->lease_mu);
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    }
    bool cv_ok = qk_kms_cond_init_mono(&h->cv) == 0;
    h->held = cv_ok ? calloc(QK_HELD_MAX, sizeof *h->held) : NULL;
    if (!h->held) { /* h->held set: everything above is initialised (qk_kms_hot_stop) */
        if (cv_ok)
            pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->held_mu);
        pthread_mutex_destroy(&h->lease_mu);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    return 0;
}

int qk_kms_hot_start(qk_kms *k, qk_err *err)
{
    if (pthread_mutex_init(&k->notice_mu, NULL) != 0)
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    if (qk_kms_cond_init_mono(&k->notice_cv) != 0) {
        pthread_mutex_destroy(&k->notice_mu);
        return qk_err_set(err, QK_ENOMEM, "cond init failed");
    }
    k->hot_ready = true;
    if (k->nlinks == 0)
        return 0;
    if (qk_kms_nwait_start(k, err) != 0)
        return QK_ENOMEM;
    k->hot = calloc(k->nlinks, sizeof *k->hot);
    if (!k->hot)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    for (size_t i = 0; i < k->nlinks; i++) {
        qk_hot_link *h = &k->hot[i];
        if (hot_link_init(k, h, err) != 0)
            return QK_ENOMEM;
        int prc = pthread_create(&h->thread, NULL, notifier, h);
        if (prc != 0)
            return qk_err_set(err, QK_ENOMEM, "cannot start the notifier of link %s: %s",
                              k->links[i].cfg->link_id, strerror(prc));
        h->started = true;
    }
    return 0;
}

void qk_kms_hot_stop(qk_kms *k)
{
    if (!k->hot_ready)
        return;
    for (size_t i = 0; k->hot && i < k->nlinks; i++) {
        qk_hot_link *h = &k->hot[i];
        if (!h->started)
            continue;
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        /* bounded: the thread ends after at most one round of peer calls ([peer_client]
         * timeouts) and one last batch */
        pthread_join(h->thread, NULL);
    }
    for (size_t i = 0; k->hot && i < k->nlinks; i++) {
        qk_hot_link *h = &k->hot[i];
        if (!h->held)
            continue; /* never initialised */
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->held_mu);
        pthread_mutex_destroy(&h->lease_mu);
        qk_kms_held_free(h);
    }
    free(k->hot);
    k->hot = NULL;
    qk_kms_nwait_stop(k);
    pthread_cond_destroy(&k->notice_cv);
    pthread_mutex_destroy(&k->notice_mu);
    k->hot_ready = false;
}
