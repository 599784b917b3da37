/* kms_lease.c - leases: the ranges of a link's blocks this end may carve as master, agreed with
 * the peer ahead of demand (docs/adr/0002-key-store.md, "Leases and notices"). The asking end
 * records its ask durably (qk_store_lease_ask), sends it (POST /peer/v1/lease) and records the
 * answer (qk_store_lease_done); the peer grants in qk_kms_lease_in. */
#include <string.h>

#include "http_util.h"
#include "kms_int.h"
#include "log.h"

#define LEASE_ASKS 3  /* asks per qk_kms_lease_more (a refused one is asked again) */
#define REASK_MAX  16 /* leftover asks re-sent per call */

uint64_t qk_kms_lease_gen(qk_kms *k, size_t i)
{
    /* Atomic, not under lease_mu: that lock is held across a lease exchange with the peer,
     * and an inline handler (qk_inline.h) reads this before it knows whether it must lease. */
    return atomic_load(&k->hot[i].lease_gen);
}

static qk_lease_result lease_result_of(int rc)
{
    switch (rc) {
    case 0:
        return QK_LEASE_GRANTED;
    case QK_ECOLLISION:
    case QK_EINVAL: /* 400: a range the peer's block cannot hold */
        return QK_LEASE_REFUSED;
    case QK_ENOTFOUND:
        return QK_LEASE_UNKNOWN_BLOCK;
    default:
        return QK_LEASE_ERROR;
    }
}

/* Send one recorded ask to the peer and record the answer. Call with lease_mu held. 0 granted,
 * QK_ECOLLISION refused (ask cleared), QK_EINVAL refused as a bad request (400: e.g. a range
 * the peer's block cannot hold; ask cleared, as a refusal: the peer changed nothing, so
 * clearing it only gives up room, never takes any; asking the same range again would be
 * refused again), QK_ENOTFOUND (the block is burned here as at the peer), else
 * QK_EPEER for a transport error or another refusal (the ask stays, to be asked again), or a
 * store error here. *why: the peer's reason of any answer but a grant (qk_peer_fail_of), also
 * counted in the metrics, except a collision (asked again at once). */
static int exchange(qk_kms *k, size_t i, const qk_lease *ls, qk_peer_fail *why, qk_err *err)
{
    qk_link *l = &k->links[i];
    const char *link = l->cfg->link_id;
    qk_err perr;
    qk_err_clear(&perr);
    int prc = qk_peer_lease(l->client, link, l->side, ls, &perr);
    qk_metrics_lease(k->metrics, lease_result_of(prc));
    *why = qk_peer_fail_of(prc);
    if (prc != 0 && prc != QK_ECOLLISION)
        qk_metrics_peer_failure(k->metrics, *why);
    if (prc != 0 && prc != QK_ECOLLISION && prc != QK_EINVAL && prc != QK_ENOTFOUND) {
        qk_metrics_peer_error(k->metrics);
        return qk_err_set(err, QK_EPEER, "peer KME %s %s: %s", l->cfg->peer,
                          *why == QK_PEER_FAIL_UNREACHABLE ? "unreachable" : "refused a lease",
                          perr.msg[0] ? perr.msg : qk_status_name(prc));
    }
    int rc = qk_store_lease_done(k->store, link, l->side, ls->block_id, prc == 0, err);
    if (rc != 0)
        return rc;
    if (prc == 0) {
        k->hot[i].lease_gen++;
        QK_DEBUG("link %s: lease [%u, %u) of block %llu granted", link, ls->from, ls->to,
                 (unsigned long long)ls->block_id);
        return 0;
    }
    if (prc == QK_EINVAL) {
        /* Logged once per block: the next ask computes the same range from the same view. */
        if (!k->hot[i].bad_seen || k->hot[i].bad_block != ls->block_id)
            QK_WARN("link %s: lease [%u, %u) of block %llu refused by %s as a bad request (%s): "
                    "the two ends' blocks differ?",
                    link, ls->from, ls->to, (unsigned long long)ls->block_id, l->cfg->peer,
                    perr.msg);
        k->hot[i].bad_block = ls->block_id;
        k->hot[i].bad_seen = true;
        return qk_err_set(err, QK_EINVAL, "peer KME %s refused a lease as a bad request: %s",
                          l->cfg->peer, perr.msg);
    }
    if (prc == QK_ECOLLISION) {
        QK_INFO("link %s: lease [%u, %u) of block %llu refused by %s: %s", link, ls->from, ls->to,
                (unsigned long long)ls->block_id, l->cfg->peer, perr.msg);
        return qk_err_set(err, QK_ECOLLISION, "peer KME %s refused a lease: %s", l->cfg->peer,
                          perr.msg);
    }
    /* The peer does not hold the block (or burned it): it must never be carved here either. */
    qk_err e;
    if (qk_store_block_set_state(k->store, link, ls->block_id, QK_BLOCK_BURNED, &e) != 0)
        QK_WARN("link %s: cannot burn block %llu: %s", link, (unsigned long long)ls->block_id,
                e.msg);
    else
        QK_WARN("link %s: block %llu burned (lease: %s at the peer)", link,
                (unsigned long long)ls->block_id, qk_status_name(prc));
    return qk_err_set(err, prc, "peer KME %s: block %llu %s", l->cfg->peer,
                      (unsigned long long)ls->block_id, qk_status_name(prc));
}

/* The link's carve rate now (bytes per second). */
static uint64_t carve_rate(qk_kms *k, size_t i)
{
    qk_hot_link *h = &k->hot[i];
    double now = qk_now_ms();
    pthread_mutex_lock(&h->mu);
    uint64_t rate = qk_carve_meter_rate(&h->carved, now);
    pthread_mutex_unlock(&h->mu);
    return rate;
}

uint64_t qk_kms_lease_ask_bytes(qk_kms *k, size_t i)
{
    uint32_t d = k->cfg->lease_demand_ms;
    return qk_lease_ask_bytes(k->cfg->lease_bytes, d ? carve_rate(k, i) : 0, d);
}

uint64_t qk_kms_lease_low_mark(qk_kms *k, size_t i)
{
    uint32_t d = k->cfg->lease_demand_ms, low = k->cfg->lease_low_water;
    return qk_lease_low_mark(low, d && low ? carve_rate(k, i) : 0, d);
}

void qk_kms_lease_carved(qk_kms *k, size_t i, uint64_t bytes)
{
    qk_hot_link *h = &k->hot[i];
    double now = qk_now_ms();
    pthread_mutex_lock(&h->mu);
    qk_carve_meter_add(&h->carved, now, bytes);
    pthread_mutex_unlock(&h->mu);
}

int qk_kms_lease_more(qk_kms *k, size_t i, uint64_t want, uint64_t seen, bool *asked,
                      qk_peer_fail *why, qk_err *err)
{
    qk_peer_fail last = QK_PEER_FAIL_UNREACHABLE;
    qk_hot_link *h = &k->hot[i];
    qk_link *l = &k->links[i];
    uint32_t w = want > QK_BLOCK_MAX_BYTES ? QK_BLOCK_MAX_BYTES : (uint32_t)want;
    pthread_mutex_lock(&h->lease_mu);
    int rc = 0;
    if (asked)
        *asked = h->lease_gen == seen;
    if (h->lease_gen == seen) {
        /* A refused or burned block leaves the view changed: ask again from the new one. */
        rc = QK_EPEER;
        int burned = 0; /* blocks this call burned on the peer's word */
        for (int a = 0; a < LEASE_ASKS; a++) {
            qk_lease ls;
            rc = qk_store_lease_ask(k->store, l->cfg->link_id, l->side, w, &ls, err);
            if (rc == 0)
                rc = exchange(k, i, &ls, &last, err);
            burned += rc == QK_ENOTFOUND;
            if (rc != QK_ECOLLISION && rc != QK_ENOTFOUND)
                break;
        }
        if (rc == QK_ENOKEY && burned) /* no block left because the peer's answer burned it */
            rc = qk_err_set(err, QK_EPEER, "peer KME %s: %d block(s) burned (last: %s), none left",
                            l->cfg->peer, burned, qk_peer_fail_name(last));
        else if (rc == QK_ECOLLISION || rc == QK_ENOTFOUND)
            rc = qk_err_set(err, QK_EPEER, "peer KME %s refused %d leases (last: %s)", l->cfg->peer,
                            LEASE_ASKS, qk_status_name(rc));
        else if (rc == QK_EINVAL) /* not the SAE's bad request: the peer's */
            rc = qk_err_set(err, QK_EPEER, "peer KME %s refused a lease as a bad request",
                            l->cfg->peer);
    }
    pthread_mutex_unlock(&h->lease_mu);
    if (why)
        *why = rc == QK_EPEER ? last : QK_PEER_FAIL_UNREACHABLE;
    return rc;
}

int qk_kms_lease_reask(qk_kms *k, size_t i, qk_err *err)
{
    qk_hot_link *h = &k->hot[i];
    qk_link *l = &k->links[i];
    qk_lease asks[REASK_MAX];
    size_t n = 0;
    pthread_mutex_lock(&h->lease_mu);
    int rc = qk_store_lease_asks(k->store, l->cfg->link_id, l->side, asks, REASK_MAX, &n, err);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        qk_peer_fail why;
        rc = exchange(k, i, &asks[j], &why, err);
        if (rc == QK_ECOLLISION || rc == QK_EINVAL || rc == QK_ENOTFOUND)
            rc = 0; /* answered: the ask is settled */
    }
    pthread_mutex_unlock(&h->lease_mu);
    return rc;
}

int qk_kms_lease_in(qk_kms *k, const char *link, qk_side side, const qk_lease *l, qk_err *err)
{
    int rc = qk_store_lease_in(k->store, link, side, l, err);
    if (rc == 0) /* the range left this end's pool (counted again when an ask is repeated) */
        qk_metrics_key_bytes(k->metrics, link, QK_KEY_CONSUMED, l->to - l->from);
    else if (rc == QK_ECOLLISION)
        QK_INFO("link %s: lease [%u, %u) of block %llu refused: %s", link, l->from, l->to,
                (unsigned long long)l->block_id, err->msg);
    return rc;
}
