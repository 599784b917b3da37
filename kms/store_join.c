/* store_join.c - a notice's fetches join its sync (docs/adr/0002-key-store.md, "A notice's
 * fetches join its sync").
 *
 * At the slave's KME a notice batch is committed and its reply to the master's KME waits for
 * the WAL sync; the slaves' fetches of the batch's keys come a moment later: the ones that
 * arrived before the notice wait for it (kms_notice_wait.c) and run again as soon as it is
 * applied, the others are on their way (the master SAE had its keys when the notice left).
 * Synced at once, the batch's group holds only the notice, and each fetch needs a sync of its
 * own after it: two syncs per key pair at one connection. Here the runs a kept notice call
 * recorded are *expected*, and the syncer holds a sync that has replies to make durable until
 * every expected run has been fetched (the fetch then joins the open group, and one sync
 * covers both) or until qs_join_wait_us after the first expectation, whichever comes first.
 *
 * Bounds: at most QS_JOIN_MAX runs are expected at a time (more are not waited for), the hold
 * ends qs_join_wait_us after the first expectation however many batches come meanwhile, and
 * whatever is still expected then is forgotten. A fetch that never comes (a slave that does not
 * ask, a refused fetch) costs the batch's replies that wait, not a key. Nothing here touches key
 * material: prefixes are key IDs' first 14 bytes. */
#include "store_int.h"

#include <string.h>
#include <time.h>

unsigned qs_join_wait_us = QS_JOIN_WAIT_US;

void qs_join_stage(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN])
{
    qs_join *j = &s->join;
    if (j->nstage >= QS_JOIN_MAX)
        return;
    memcpy(j->stage[j->nstage++], prefix, QS_RUN_PREFIX_LEN);
}

void qs_join_call_end(qk_store *s, bool kept)
{
    qs_join *j = &s->join;
    if (j->nstage == 0)
        return;
    if (kept && qs_join_wait_us > 0) {
        (void)pthread_mutex_lock(&s->smu);
        if (j->nwant == 0) /* the first expectation: the hold ends qs_join_wait_us from now */
            j->until = qs_deadline_us(qs_join_wait_us);
        for (size_t i = 0; i < j->nstage && j->nwant < QS_JOIN_MAX; i++)
            memcpy(j->want[j->nwant++], j->stage[i], QS_RUN_PREFIX_LEN);
        atomic_store_explicit(&j->pending, j->nwant, memory_order_relaxed);
        (void)pthread_mutex_unlock(&s->smu);
    }
    j->nstage = 0;
}

void qs_join_met(qk_store *s, const char *key_id)
{
    qs_join *j = &s->join;
    if (atomic_load_explicit(&j->pending, memory_order_relaxed) == 0)
        return;
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint32_t idx = 0;
    if (qs_run_parse_id(key_id, prefix, &idx) != 0)
        return;
    (void)pthread_mutex_lock(&s->smu);
    for (size_t i = 0; i < j->nwant; i++) {
        if (memcmp(j->want[i], prefix, QS_RUN_PREFIX_LEN) != 0)
            continue;
        if (i != --j->nwant) /* the last one moves into its place */
            memcpy(j->want[i], j->want[j->nwant], QS_RUN_PREFIX_LEN);
        atomic_store_explicit(&j->pending, j->nwant, memory_order_relaxed);
        if (j->nwant == 0) /* the last one: a held sync may go (after this call's release) */
            (void)pthread_cond_signal(&s->wcond);
        break;
    }
    (void)pthread_mutex_unlock(&s->smu);
}

bool qs_join_hold(qk_store *s, struct timespec *until)
{
    qs_join *j = &s->join;
    if (j->nwant == 0)
        return false;
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec < j->until.tv_sec ||
        (now.tv_sec == j->until.tv_sec && now.tv_nsec < j->until.tv_nsec)) {
        *until = j->until;
        return true;
    }
    j->nwant = 0; /* their time is up: forgotten */
    atomic_store_explicit(&j->pending, 0, memory_order_relaxed);
    return false;
}
