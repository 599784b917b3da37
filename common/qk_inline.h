/* qk_inline.h - a request handler running inline on an event-loop thread (the TLS front end's
 * pump, docs/adr/0001-tls-front-end.md "Inline handlers"), and what lower layers do about it.
 *
 * A handler declared `inline_first` (http_envelope.h) runs on the pump thread that parsed its
 * request, inside qk_inline_begin/qk_inline_end. Code below it must then never block:
 * - before a network call or a bounded wait (a lease exchange with the peer KME, a fetch that
 *   waits for its notice) it calls qk_inline_must_defer(): when that returns true it returns
 *   at once, having changed nothing; the envelope discards the reply and runs the handler again
 *   from the start on the listener's worker pool, where waiting is allowed;
 * - a store call that would wait for its commit to reach stable storage (group commit) records
 *   the barrier with qk_inline_barrier() instead of waiting; the envelope then holds the reply,
 *   with the connection suspended, until the barrier completes (qk_inline_waiter.done), so no
 *   reply ever reports a state that a crash could still undo.
 * - code that would wait for an event (a fetch for a notice that has not arrived) records the
 *   event with qk_inline_wait_event() instead; the envelope drops the reply, holds the
 *   connection suspended, and runs the handler again inline when the event's owner completes
 *   the waiter (or at the deadline), with qk_inline_rerun_deadline() telling the rerun how long
 *   the wait may still go on.
 * Outside an inline handler (workers, background threads) every function here is a no-op that
 * answers "not inline", and callers block as they always did. */
#ifndef QK_INLINE_H
#define QK_INLINE_H

#include <stdbool.h>
#include <stdint.h>

/* One reply waiting for a barrier. Owned by the envelope; the barrier's owner links it into
 * its own list and calls done exactly once, on any thread, with 0 (durable) or an error code
 * (the state may be lost: the reply must not be sent). done must not call back into the
 * barrier's owner. */
typedef struct qk_inline_waiter {
    struct qk_inline_waiter *next;
    uint64_t seq;       /* barriers: the number that must be committed (set by await) */
    uint64_t sync_seq;  /* barriers: the number that must also be durable, 0 none (set by the
                         * envelope from qk_inline.sync_seq before it calls await) */
    double deadline_ms; /* event waits: the owner completes the waiter by then (qk_now_ms) */
    void (*done)(struct qk_inline_waiter *w, int err);
} qk_inline_waiter;

/* The pump's turn (docs/adr/0001-tls-front-end.md, "A commit per turn"): between
 * qk_inline_turn_begin and qk_inline_turn_end the calling thread handles one batch of ready
 * connections. qk_inline_kick(fn, arg) inside a turn runs fn(arg) once, at the turn's end (a
 * barrier's owner wakes whoever completes its waiters there, so that one commit covers every
 * reply of the turn); outside a turn, or with QK_INLINE_KICKS distinct kicks already pending,
 * it runs fn(arg) at once. Turns do not nest. */
#define QK_INLINE_KICKS 4
void qk_inline_turn_begin(void);
void qk_inline_turn_end(void);
void qk_inline_kick(void (*fn)(void *arg), void *arg);

/* Complete every waiter of the list w (linked by next) with err, unlinking each before its done
 * runs (done may free it). For owners, outside their own locks. */
void qk_inline_complete(qk_inline_waiter *w, int err);

/* The barrier owner's wait: 1 when seq is already durable (done is not called), 0 when w was
 * queued (done comes later), or a negative error (the owner can no longer vouch for seq; done
 * is not called). */
typedef int (*qk_inline_await_fn)(void *owner, uint64_t seq, qk_inline_waiter *w);

typedef struct {
    bool would_block;         /* set by qk_inline_must_defer: run again on a worker */
    qk_inline_await_fn await; /* the barrier to wait for before replying, or NULL */
    void *owner;              /* its owner (the store) */
    uint64_t seq;             /* the highest sequence number recorded for that owner */
    uint64_t sync_seq;        /* the highest of those that must be durable, not only done */
    /* An event to wait for before running the handler again (qk_inline_wait_event). */
    qk_inline_await_fn ev_await;
    void *ev_owner;
    uint64_t ev_seq;
    double ev_deadline_ms;
    double rerun_deadline_ms; /* in: the deadline of the wait this run follows; 0: none */
    /* in: the handler's store calls may leave their changes in the store's open group
     * transaction, committed later for many calls at once (kms/store_db.c; their barrier
     * then covers that commit). Set by the envelope from qk_http_handler.group_commit. */
    bool group_commit;
} qk_inline;

/* Start and end an inline handler on the calling thread (c is zeroed by begin, then
 * rerun_deadline_ms set: 0 on a first run). Not nested. */
void qk_inline_begin(qk_inline *c, double rerun_deadline_ms);
void qk_inline_end(void);
/* The calling thread's inline context, or NULL when it is not running an inline handler. */
qk_inline *qk_inline_current(void);
/* True (and the request marked to run again on a worker) when the calling thread runs an
 * inline handler; false elsewhere: the caller may then block. */
bool qk_inline_must_defer(void);
/* Let the running inline handler's store writes join the group transaction for this request
 * alone (as qk_http_handler.group_commit does for every request of a handler): for a route
 * whose caller takes a failed group's 500 as a transient failure and sends again. No-op when
 * not inline. */
void qk_inline_allow_group(void);
/* Record a barrier the reply must wait for: number seq done at the owner (for the store:
 * committed), and with durable also on stable storage. True when recorded (the caller skips
 * its own wait), false when the calling thread is not inline or already waits for another
 * owner's barrier (the caller then waits itself, as outside). */
bool qk_inline_barrier(qk_inline_await_fn await, void *owner, uint64_t seq, bool durable);
/* Instead of waiting for an event until deadline_ms (qk_now_ms clock): true when recorded on an
 * inline handler (the caller returns QK_EAGAIN having changed nothing; the handler runs again
 * inline once await's owner completes the waiter, err 0 for the event or QK_ETIMEOUT at the
 * deadline; await returns 1 when the event already happened since seq, and the rerun follows at
 * once). False outside an inline handler (the caller waits itself). */
bool qk_inline_wait_event(qk_inline_await_fn await, void *owner, uint64_t seq, double deadline_ms);
/* On a rerun after qk_inline_wait_event: that wait's deadline (the rerun must not wait past
 * it); 0 on a first run or outside an inline handler. */
double qk_inline_rerun_deadline(void);

#endif
