/* kms_int.h - what kms.c, kms_lease.c and kms_notify.c share inside the qk_kms object: its
 * members and the per-link state of the hot path (leases asked ahead of demand, the notifier
 * thread, the estimate of what the peer holds per (master, slave) pair). Not for the zones. */
#ifndef QK_KMS_INT_H
#define QK_KMS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "kms.h"
#include "lease_size.h"
#include "qk_inline.h"

#define QK_HELD_MAX 512 /* (master, slave) pairs whose peer count a link remembers */

/* What the peer of a link holds for one (master, slave) pair, as far as this end knows: the
 * count the peer last reported in a notices answer, plus the keys of requests carved here
 * since and not yet answered (an over-estimate: the slave's fetches only lower the truth).
 * last: the pair's last answered notice, sent again (idempotent at the peer) to refresh
 * `reported` when the estimate refuses a request (kms_held.c). */
typedef struct {
    char master[QK_STORE_ID_MAX + 1];
    char slave[QK_STORE_ID_MAX + 1];
    uint64_t reported;
    uint64_t inflight;
    uint64_t answers; /* answers taken for the pair: a refresh older than one is dropped */
    bool probing;     /* a refresh is on its way */
    qk_notice last;
} qk_held;

/* Hot-path state of one link (index i of qk_kms.links). */
typedef struct {
    qk_kms *kms;
    /* One lease exchange at a time per link (request threads and the notifier); lease_gen counts
     * the granted ones, so a thread that waited knows another one already leased. */
    pthread_mutex_t lease_mu;
    _Atomic uint64_t lease_gen; /* written under lease_mu; read without it (never blocks) */
    uint64_t bad_block;         /* the last block whose ask the peer answered 400 (logged once) */
    bool bad_seen;
    /* The notifier thread: woken by a committed request, by qk_kms_close, or every 200 ms.
     * demand: this end served a request on the link since it started (it leases ahead only
     * then: an idle side takes none of the peer's room). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken, stop, started, demand;
    pthread_t thread;
    /* Bytes carved here as master on the link (under mu): sizes the leases (lease_size.h). */
    qk_carve_meter carved;
    /* The held estimate (QK_HELD_MAX pairs; guarded by held_mu). */
    pthread_mutex_t held_mu;
    qk_held *held;
    size_t nheld;
} qk_hot_link;

struct qk_kms {
    const qk_kmed_config *cfg;
    qk_metrics *metrics;
    qk_store *store;
    qk_key_limits limits;
    qk_link *links;
    qk_hot_link *hot; /* one per link */
    size_t nlinks;
    pthread_mutex_t refill_mu; /* one local refill at a time */
    /* Serialises the max_key_count check with the reservation it admits, for every reservation
     * whose keys are held here (same-KME requests of ETSI and SKIP alike, and reservations a
     * peer KME makes for our slaves over /peer/v1/reserve): concurrent requests cannot
     * overshoot a pair together. */
    pthread_mutex_t quota_mu;
    /* Broadcast after every applied batch of notices: fetches waiting for a key ID not yet
     * known here (notice_gen counts the batches). Set up by qk_kms_hot_start (hot_ready). */
    bool hot_ready;
    pthread_mutex_t notice_mu;
    pthread_cond_t notice_cv;
    uint64_t notice_gen;
    /* Inline fetches waiting for a notice (kms_notice_wait.c; under notice_mu): completed by
     * the next batch, or at their deadline by the deadline thread (waits on nwait_cv until
     * nwait_next, the earliest deadline it knows; 0: none). */
    qk_inline_waiter *nwait;
    pthread_cond_t nwait_cv;
    pthread_t nwait_tid;
    double nwait_next;
    bool nwait_on, nwait_stop, nwait_cv_ok;
    void (*block_hook)(void *);
    void *block_hook_arg;
    /* The topology view and its refresh thread (kms_topo.c; NULL until qk_kms_topo_start). */
    struct qk_kms_topo *topo;
    /* The relay's commit resender (kms_relay.c): a thread that sends again the relay-commits
     * the slaves' KME has not acknowledged (after a failure, or a restart); woken by
     * relay_cv, else every second. */
    pthread_mutex_t relay_mu;
    pthread_cond_t relay_cv;
    pthread_t relay_tid;
    bool relay_on, relay_stop, relay_woken;
    qk_relay_unacked *relay_undecided; /* found at start: burned along their paths */
    size_t relay_nundecided;
};

/* ---- kms.c ------------------------------------------------------------------------------ */
/* max_key_count holds per (master, slave) pair at the KME that stores the keys for the slave
 * (ETSI GS QKD 014 V1.1.1 clause 6.1: "Maximum number of stored keys"): refuse `n` more keys
 * for any of the pairs (master, slaves[i]) that would go above it. Call with quota_mu held.
 * 0, QK_EQUOTA (err names the pair), or a store error. */
int qk_kms_quota_check(qk_kms *k, const char *master, const char *const *slaves, size_t nslaves,
                       size_t n, qk_err *err);

/* ---- kms_lease.c ------------------------------------------------------------------------ */
/* lease_gen of link i (under its lease_mu). */
uint64_t qk_kms_lease_gen(qk_kms *k, size_t i);
/* Lease at least `want` more bytes on link i (up to 3 asks: a refused one is asked again
 * from the new view), unless another thread leased since the caller read lease_gen `seen`
 * (then 0 at once: carve again). 0 = a lease was granted (or another thread's was); QK_ENOKEY
 * (no confirmed block with unleased room), QK_EPEER (the peer is unreachable, refused every
 * ask, burned the last block with room (unknown block), or answered one 400 -
 * cleared like a refusal, not asked again in this call; an
 * unanswered ask stays recorded and is asked again later), or a store error. *asked (if not
 * NULL) tells whether this call exchanged asks with the peer itself; after QK_EPEER, *why (if
 * not NULL) the peer's reason (core.h). */
int qk_kms_lease_more(qk_kms *k, size_t i, uint64_t want, uint64_t seen, bool *asked,
                      qk_peer_fail *why, qk_err *err);
/* Bytes a lease of link i asks for, and the granted room below which the notifier leases
 * ahead, from lease_bytes, lease_low_water and lease_demand and the link's carve meter
 * (lease_size.h). */
uint64_t qk_kms_lease_ask_bytes(qk_kms *k, size_t i);
uint64_t qk_kms_lease_low_mark(qk_kms *k, size_t i);
/* Count `bytes` carved here as master on link i. */
void qk_kms_lease_carved(qk_kms *k, size_t i, uint64_t bytes);
/* Ask again what a previous run (or a failed call) left asked on link i. 0, or the first
 * failure (the asks not answered stay). */
int qk_kms_lease_reask(qk_kms *k, size_t i, qk_err *err);

/* ---- kms.c ------------------------------------------------------------------------------ */
/* A zeroed batch of n keys with material_len bytes of secure material (ids, lens, keys
 * allocated; the caller fills them). */
int qk_kms_batch_alloc(qk_key_batch *b, size_t n, size_t material_len, qk_err *err);
/* What to carve: n keys of len bytes (qk_store_carve_owned); or, with max_pieces > 0, a head
 * key of len bytes then `total` bytes in 1..max_pieces pieces (qk_store_carve_owned_pieces;
 * *nrefs receives the key count). */
typedef struct {
    size_t n;
    uint32_t len;
    uint32_t total;
    size_t max_pieces;
    size_t *nrefs;
} qk_carve_spec;
/* Carve c for r inside this end's granted leases on link i (committed at once, un-noticed),
 * leasing synchronously when they run out (at most 3 exchanges of its own; QK_EAGAIN on an
 * inline handler instead); the bytes counted consumed on the link. After QK_EPEER, *why is the
 * peer's reason. The caller wakes the link's notifier. */
int qk_kms_carve_leased(qk_kms *k, size_t i, const qk_reservation *r, const qk_carve_spec *c,
                        qk_key_ref *refs, uint8_t *material, qk_peer_fail *why, qk_err *err);

/* ---- kms_held.c ------------------------------------------------------------------------- */
/* Admit n more keys for every (master, slave) pair of r at the peer of link i against
 * max_key_count (the held estimate), counting them in flight: 0, or QK_EQUOTA naming the
 * pair. A refused request first refreshes the estimate (one synchronous notices call).
 * qk_kms_held_undo takes them back when the request failed. */
int qk_kms_held_admit(qk_kms *k, size_t i, const qk_reservation *r, size_t n, qk_err *err);
void qk_kms_held_undo(qk_kms *k, size_t i, const qk_reservation *r, size_t n);
/* The peer answered notice v with res: its keys are no longer in flight; take the counts. */
void qk_kms_held_answer(qk_kms *k, size_t i, const qk_notice *v, const qk_peer_notice_result *res);
/* Free link i's table (at close). */
void qk_kms_held_free(qk_hot_link *h);

/* ---- kms_notify.c ----------------------------------------------------------------------- */
/* Start (open) and stop/join (close) the notifier threads and their state. */
int qk_kms_hot_start(qk_kms *k, qk_err *err);
void qk_kms_hot_stop(qk_kms *k);
/* A condition variable on CLOCK_MONOTONIC (0, or -1), and the monotonic time ms from now,
 * for pthread_cond_timedwait on it. */
int qk_kms_cond_init_mono(pthread_cond_t *cv);
struct timespec qk_kms_deadline_in(uint64_t ms);
/* Wake link i's notifier (a request was committed). */
void qk_kms_notify_wake(qk_kms *k, size_t i);
/* Wait (bounded by notice_wait) until none of ids is unknown here: each applied notice batch
 * wakes it. Returns at once when every key ID is known or the wait is 0. */
void qk_kms_notice_wait(qk_kms *k, const char *const *ids, size_t n);

/* ---- kms_notice_wait.c ------------------------------------------------------------------ */
/* Every one of ids is known here (fetched, burned or waiting: a notice for it came), or the
 * store failed: a not-found fetch then has no notice to wait for. */
bool qk_kms_ids_known(qk_kms *k, const char *const *ids, size_t n);
/* The count of applied notice batches (read before a lookup that may have to wait). */
uint64_t qk_kms_notice_gen(qk_kms *k);
/* qk_inline_await_fn (owner = the qk_kms): an inline fetch waits for the next batch after
 * `seen`, or until w->deadline_ms. */
int qk_kms_notice_await(void *owner, uint64_t seen, qk_inline_waiter *w);
/* qk_inline_await_fn of an event that has happened: the handler runs again at once. */
int qk_kms_look_again(void *owner, uint64_t seen, qk_inline_waiter *w);
/* A batch of notices was applied: count it, wake the threads waiting (notice_cv) and complete
 * every inline waiter. */
void qk_kms_notice_batch_done(qk_kms *k);
/* Start (after notice_mu) and stop (completes every waiter left) the deadline thread. */
int qk_kms_nwait_start(qk_kms *k, qk_err *err);
void qk_kms_nwait_stop(qk_kms *k);

#endif
