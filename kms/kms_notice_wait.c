/* kms_notice_wait.c - fetches on a pump thread that wait for a notice without a thread
 * (common/qk_inline.h, ADR 0001 "Inline first").
 *
 * A dec_keys or key-by-ID often reaches the slave's KME before the master's notice does. A
 * worker thread would wait on notice_cv (qk_kms_notice_wait). An inline fetch instead records
 * the event "the next batch of notices" with the notice generation it saw before its store
 * lookup; its connection stays suspended in k->nwait until qk_kms_notices_in applies a batch
 * (every waiter then runs its handler again, inline, and either finds its keys or waits for the
 * next batch) or until its deadline (notice_wait from the first try), which a small thread
 * enforces. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "kms_int.h"
#include "qk_inline.h"
#include "thread_name.h"

#define IDLE_WAKE_MS 1000 /* the deadline thread's longest sleep */

uint64_t qk_kms_notice_gen(qk_kms *k)
{
    pthread_mutex_lock(&k->notice_mu);
    uint64_t g = k->notice_gen;
    pthread_mutex_unlock(&k->notice_mu);
    return g;
}

bool qk_kms_ids_known(qk_kms *k, const char *const *ids, size_t n)
{
    bool known = true;
    for (size_t j = 0; j < n && known; j++) {
        qk_err err;
        if (qk_store_key_known(k->store, ids[j], &known, &err) != 0)
            return true; /* the fetch answers the store error: nothing to wait for */
    }
    return known;
}

int qk_kms_notice_await(void *owner, uint64_t seen, qk_inline_waiter *w)
{
    qk_kms *k = owner;
    int rc = 0;
    pthread_mutex_lock(&k->notice_mu);
    if (!k->nwait_on || k->nwait_stop) {
        rc = QK_ETIMEOUT; /* stopping: the rerun must not wait again */
    } else if (k->notice_gen != seen) {
        rc = 1; /* a batch came in since the lookup: look again at once */
    } else {
        w->next = k->nwait;
        k->nwait = w;
        if (k->nwait_next == 0 || w->deadline_ms < k->nwait_next)
            pthread_cond_signal(&k->nwait_cv); /* an earlier deadline than the thread's */
    }
    pthread_mutex_unlock(&k->notice_mu);
    return rc;
}

int qk_kms_look_again(void *owner, uint64_t seen, qk_inline_waiter *w)
{
    (void)owner;
    (void)seen;
    (void)w;
    return 1;
}

void qk_kms_notice_batch_done(qk_kms *k)
{
    pthread_mutex_lock(&k->notice_mu);
    k->notice_gen++;
    pthread_cond_broadcast(&k->notice_cv);
    qk_inline_waiter *w = k->nwait;
    k->nwait = NULL;
    pthread_mutex_unlock(&k->notice_mu);
    qk_inline_complete(w, 0);
}

/* The waiters whose deadline passed, off the list (notice_mu held); *next gets the earliest
 * deadline left (0: none). */
static qk_inline_waiter *take_expired(qk_kms *k, double now, double *next)
{
    qk_inline_waiter *out = NULL, **pp = &k->nwait;
    *next = 0;
    while (*pp) {
        qk_inline_waiter *w = *pp;
        if (w->deadline_ms <= now) {
            *pp = w->next;
            w->next = out;
            out = w;
        } else {
            if (*next == 0 || w->deadline_ms < *next)
                *next = w->deadline_ms;
            pp = &w->next;
        }
    }
    return out;
}

static void *deadline_main(void *arg)
{
    QK_THREAD_NAME("qk-notice-wait");
    qk_kms *k = arg;
    pthread_mutex_lock(&k->notice_mu);
    while (!k->nwait_stop) {
        double next;
        qk_inline_waiter *late = take_expired(k, qk_now_ms(), &next);
        if (late) {
            pthread_mutex_unlock(&k->notice_mu);
            qk_inline_complete(late, QK_ETIMEOUT);
            pthread_mutex_lock(&k->notice_mu);
            continue;
        }
        k->nwait_next = next;
        double wait = next ? next - qk_now_ms() : IDLE_WAKE_MS;
        if (wait > IDLE_WAKE_MS)
            wait = IDLE_WAKE_MS;
        /* + 1 ms: wake past the deadline, not before */
        struct timespec dl = qk_kms_deadline_in((uint64_t)(wait > 0 ? wait : 0) + 1);
        (void)pthread_cond_timedwait(&k->nwait_cv, &k->notice_mu, &dl);
        k->nwait_next = 0;
    }
    qk_inline_waiter *all = k->nwait;
    k->nwait = NULL;
    pthread_mutex_unlock(&k->notice_mu);
    qk_inline_complete(all, QK_ETIMEOUT);
    return NULL;
}

int qk_kms_nwait_start(qk_kms *k, qk_err *err)
{
    if (qk_kms_cond_init_mono(&k->nwait_cv) != 0)
        return qk_err_set(err, QK_ENOMEM, "cond init failed");
    k->nwait_cv_ok = true;
    int prc = pthread_create(&k->nwait_tid, NULL, deadline_main, k);
    if (prc != 0)
        return qk_err_set(err, QK_ENOMEM, "cannot start the notice deadline thread: %s",
                          strerror(prc));
    pthread_mutex_lock(&k->notice_mu);
    k->nwait_on = true;
    pthread_mutex_unlock(&k->notice_mu);
    return 0;
}

void qk_kms_nwait_stop(qk_kms *k)
{
    if (!k->nwait_cv_ok)
        return;
    pthread_mutex_lock(&k->notice_mu);
    bool on = k->nwait_on;
    k->nwait_stop = true;
    pthread_cond_signal(&k->nwait_cv);
    pthread_mutex_unlock(&k->notice_mu);
    if (on)
        pthread_join(k->nwait_tid, NULL); /* completes every waiter left (QK_ETIMEOUT) */
    pthread_mutex_lock(&k->notice_mu);
    k->nwait_on = false;
    pthread_mutex_unlock(&k->notice_mu);
    pthread_cond_destroy(&k->nwait_cv);
    k->nwait_cv_ok = false;
}
