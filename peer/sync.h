/* sync.h - the background synchronisation with the peer KMEs: one thread that, every tick
 * (default 200 ms) and when woken (a new block arrived), does a bounded amount of work:
 *  - inventory exchange of PENDING blocks per link (<= 256 per call): match -> CONFIRMED,
 *    mismatch or burned at the peer -> BURNED, unknown -> asked again later; a block still
 *    unknown at the peer after QK_SYNC_STALE_BLOCK_S is burned;
 *  - reconciliation of outgoing requests left PENDING by a previous run (they were never
 *    answered): burned at every peer, then locally;
 *  - expiry of unclaimed reservations (qk_store_expire).
 * Peer errors are counted in the metrics and never fatal. */
#ifndef QK_SYNC_H
#define QK_SYNC_H

#include "kms.h"

#define QK_SYNC_STALE_BLOCK_S 600

typedef struct qk_sync qk_sync;

/* Snapshot the outgoing requests left PENDING (so call it before any listener can create new
 * ones), then start the thread. tick_ms 0 = 200. */
int qk_sync_start(qk_kms *k, unsigned tick_ms, qk_sync **out, qk_err *err);
/* Wake the thread now (never blocks; usable as the qk_kms block hook with arg = the qk_sync). */
void qk_sync_notify(void *sync);
/* Stop and join the thread (it finishes the current peer call, bounded by its timeout). */
void qk_sync_stop(qk_sync *s);

#endif
