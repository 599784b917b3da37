/* sync.h - the background synchronisation with the peer KMEs: one thread that, every tick
 * (default 200 ms) and when woken (a new block arrived), does a bounded amount of work:
 *  - inventory exchange of PENDING blocks per link (<= 256 per call): match -> CONFIRMED,
 *    mismatch or burned at the peer -> BURNED, unknown -> asked again later; about once a
 *    second, the blocks received more than the link's pending_grace ago (kmed.conf [link],
 *    default 20 s) are asked again on their own and those the peer still answers "unknown"
 *    are burned (the twin was dropped on the way to the peer; should it arrive later, the
 *    peer's own inventory finds it burned here and burns it there);
 *  - reconciliation of outgoing requests left PENDING by a previous run (they were never
 *    answered): burned at every peer, then locally;
 *  - expiry of unclaimed reservations (qk_store_expire).
 * Peer errors are counted in the metrics and never fatal. */
#ifndef QK_SYNC_H
#define QK_SYNC_H

#include "kms.h"

typedef struct qk_sync qk_sync;

/* Snapshot the outgoing requests left PENDING (so call it before any listener can create new
 * ones), then start the thread. tick_ms 0 = 200. */
int qk_sync_start(qk_kms *k, unsigned tick_ms, qk_sync **out, qk_err *err);
/* The link's pending_grace in seconds (its default when the config leaves it 0). */
uint64_t qk_sync_pending_grace_s(const qk_link_cfg *l);
/* Wake the thread now (never blocks; usable as the qk_kms block hook with arg = the qk_sync). */
void qk_sync_notify(void *sync);
/* Stop and join the thread (it finishes the current peer call, bounded by its timeout). */
void qk_sync_stop(qk_sync *s);

#endif
