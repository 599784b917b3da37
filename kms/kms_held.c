/* kms_held.c - max_key_count for slaves at a peer KME (ETSI GS QKD 014 V1.1.1 clause 6.1,
 * "Maximum number of stored keys"): the peer holds the keys, but no longer sees a request
 * before its keys are delivered here, so this end admits a request against an estimate of what
 * the peer holds per (master, slave) pair: the count the peer reported in its last notices
 * answer for the pair, plus the keys sent since and not yet answered. It only over-estimates
 * (the slave's fetches lower the truth), so a pair is never taken above the quota by requests
 * admitted here; when the estimate refuses a request, the pair's last answered notice is sent
 * again (the peer applies it idempotently and answers the current count) and the request is
 * admitted on the fresh count: at most one such call per refused request, the round trip every
 * request cost before leases, and one at a time per pair (others refused meanwhile are refused
 * on the estimate). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms_int.h"
#include "qk_inline.h"
#include "log.h"

static int notice_copy(qk_notice *dst, const qk_notice *src)
{
    qk_notice c = *src;
    c.slaves = malloc((src->nslaves ? src->nslaves : 1) * sizeof *c.slaves);
    c.keys = malloc((src->nkeys ? src->nkeys : 1) * sizeof *c.keys);
    if (!c.slaves || !c.keys) {
        free(c.slaves);
        free(c.keys);
        return -1;
    }
    memcpy(c.slaves, src->slaves, src->nslaves * sizeof *c.slaves);
    memcpy(c.keys, src->keys, src->nkeys * sizeof *c.keys);
    qk_notice_free(dst, 1);
    *dst = c;
    return 0;
}

/* The entry of (master, slave); created when asked (evicting one with nothing in flight when
 * the table is full), NULL when absent or the table is full of in-flight pairs. Call with
 * held_mu held. */
static qk_held *held_find(qk_hot_link *h, const char *master, const char *slave, bool create)
{
    for (size_t j = 0; j < h->nheld; j++)
        if (strcmp(h->held[j].master, master) == 0 && strcmp(h->held[j].slave, slave) == 0)
            return &h->held[j];
    if (!create || strlen(master) > QK_STORE_ID_MAX || strlen(slave) > QK_STORE_ID_MAX)
        return NULL;
    qk_held *e = NULL;
    if (h->nheld < QK_HELD_MAX)
        e = &h->held[h->nheld++];
    for (size_t j = 0; !e && j < h->nheld; j++)
        if (h->held[j].inflight == 0 && !h->held[j].probing)
            e = &h->held[j];
    if (!e)
        return NULL;
    qk_notice_free(&e->last, 1);
    memset(e, 0, sizeof *e);
    memcpy(e->master, master, strlen(master) + 1);
    memcpy(e->slave, slave, strlen(slave) + 1);
    return e;
}

static void held_sub(qk_held *e, uint64_t n)
{
    if (e)
        e->inflight -= n < e->inflight ? n : e->inflight;
}

/* Take the counts of res (answers: the pair's answer count when the call was made; a count
 * taken from an older call than the last answer is dropped). Returns how many were dropped.
 * Call with held_mu held. */
static size_t take_counts(qk_hot_link *h, const qk_peer_notice_result *res, const uint64_t *answers)
{
    size_t dropped = 0;
    for (size_t j = 0; j < res->nheld; j++) {
        qk_held *e = held_find(h, res->held[j].master, res->held[j].slave, true);
        if (e && answers && e->answers != *answers)
            dropped++;
        else if (e)
            e->reported = res->held[j].count;
    }
    return dropped;
}

void qk_kms_held_answer(qk_kms *k, size_t i, const qk_notice *v, const qk_peer_notice_result *res)
{
    qk_hot_link *h = &k->hot[i];
    pthread_mutex_lock(&h->held_mu);
    for (size_t j = 0; j < v->nslaves; j++) {
        qk_held *e = held_find(h, v->master, v->slaves[j], true);
        if (!e)
            continue;
        held_sub(e, v->nkeys);
        e->answers++;
        if (res->status == 0 && notice_copy(&e->last, v) != 0)
            qk_notice_free(&e->last, 1); /* out of memory: no refresh for this pair */
    }
    take_counts(h, res, NULL);
    pthread_mutex_unlock(&h->held_mu);
}

/* Send e's last notice again (held_mu released around the call) and take the count the peer
 * answers, unless an answer came in meanwhile. Call with held_mu held and e->probing set.
 * Returns whether a fresh count was taken. */
static bool refresh(qk_kms *k, size_t i, qk_held *e)
{
    qk_hot_link *h = &k->hot[i];
    qk_link *l = &k->links[i];
    char master[QK_STORE_ID_MAX + 1], slave[QK_STORE_ID_MAX + 1];
    memcpy(master, e->master, sizeof master);
    memcpy(slave, e->slave, sizeof slave);
    uint64_t answers = e->answers;
    qk_notice probe;
    memset(&probe, 0, sizeof probe);
    int rc = notice_copy(&probe, &e->last);
    pthread_mutex_unlock(&h->held_mu);
    qk_peer_notices_answer a = {NULL, 0, false};
    if (rc == 0) {
        qk_peer_notices_msg m = {.side = l->side, .notices = &probe, .n = 1};
        snprintf(m.link, sizeof m.link, "%s", l->cfg->link_id);
        qk_err err;
        rc = qk_peer_notices(l->client, &m, &a, &err);
        if (rc != 0) {
            qk_metrics_peer_error(k->metrics);
            qk_metrics_peer_failure(k->metrics, qk_peer_fail_of(rc));
            QK_DEBUG("link %s: held count refresh: %s", l->cfg->link_id, err.msg);
        }
    }
    qk_notice_free(&probe, 1);
    pthread_mutex_lock(&h->held_mu);
    bool took = rc == 0 && a.n == 1 && take_counts(h, &a.r[0], &answers) == 0;
    qk_peer_notices_answer_free(&a);
    qk_held *now = held_find(h, master, slave, false);
    if (now)
        now->probing = false;
    return took;
}

/* The first slave of r whose pair cannot take n more keys (its entry in *over), or -1. Counts
 * the keys in flight when every pair can. Call with held_mu held. */
static long admit_locked(qk_kms *k, qk_hot_link *h, const qk_reservation *r, size_t n,
                         qk_held **over)
{
    for (size_t j = 0; j < r->nslaves; j++) {
        qk_held *e = held_find(h, r->master, r->slaves[j], true);
        if (e && !qk_kms_quota_ok(&k->limits, e->reported + e->inflight, n)) {
            *over = e;
            return (long)j;
        }
    }
    for (size_t j = 0; j < r->nslaves; j++) {
        qk_held *e = held_find(h, r->master, r->slaves[j], true);
        if (e)
            e->inflight += n;
    }
    return -1;
}

int qk_kms_held_admit(qk_kms *k, size_t i, const qk_reservation *r, size_t n, qk_err *err)
{
    qk_hot_link *h = &k->hot[i];
    pthread_mutex_lock(&h->held_mu);
    qk_held *e = NULL;
    long j = admit_locked(k, h, r, n, &e);
    /* a refresh whose count an answer overtook is tried once more */
    bool defer = j >= 0 && e->last.nkeys > 0 && !e->probing && qk_inline_must_defer();
    for (int tries = 0; !defer && j >= 0 && tries < 2 && e->last.nkeys > 0 && !e->probing;
         tries++) {
        e->probing = true;
        bool took = refresh(k, i, e);
        j = admit_locked(k, h, r, n, &e);
        if (took)
            break;
    }
    int rc = 0;
    if (defer) /* the refresh is a call to the peer: not on a pump */
        rc = qk_err_set(err, QK_EAGAIN, "held count refresh: run again on a worker");
    else if (j >= 0) /* the peer's limit: the SAE is told max_key_count, as for a same-KME pair */
        rc = qk_err_set(err, QK_EQUOTA,
                        "peer KME %s: %s -> %s: %llu keys stored there or on their way, %zu more "
                        "would exceed max_key_count %llu",
                        k->links[i].cfg->peer, r->master, r->slaves[j],
                        (unsigned long long)(e->reported + e->inflight), n,
                        (unsigned long long)k->limits.max_key_count);
    pthread_mutex_unlock(&h->held_mu);
    return rc;
}

void qk_kms_held_undo(qk_kms *k, size_t i, const qk_reservation *r, size_t n)
{
    qk_hot_link *h = &k->hot[i];
    pthread_mutex_lock(&h->held_mu);
    for (size_t j = 0; j < r->nslaves; j++)
        held_sub(held_find(h, r->master, r->slaves[j], false), n);
    pthread_mutex_unlock(&h->held_mu);
}

void qk_kms_held_free(qk_hot_link *h)
{
    for (size_t j = 0; h->held && j < h->nheld; j++)
        qk_notice_free(&h->held[j].last, 1);
    free(h->held);
    h->held = NULL;
    h->nheld = 0;
}
