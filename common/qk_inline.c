/* qk_inline.c - the inline handler context (qk_inline.h): one thread-local pointer. */
#include "qk_inline.h"

#include <string.h>

static _Thread_local qk_inline *cur;

typedef struct {
    void (*fn)(void *arg);
    void *arg;
} kick;

static _Thread_local bool in_turn;
static _Thread_local kick kicks[QK_INLINE_KICKS];
static _Thread_local size_t nkicks;

void qk_inline_begin(qk_inline *c, double rerun_deadline_ms)
{
    memset(c, 0, sizeof *c);
    c->rerun_deadline_ms = rerun_deadline_ms;
    cur = c;
}

void qk_inline_end(void)
{
    cur = NULL;
}

qk_inline *qk_inline_current(void)
{
    return cur;
}

bool qk_inline_must_defer(void)
{
    if (!cur)
        return false;
    cur->would_block = true;
    return true;
}

void qk_inline_allow_group(void)
{
    if (cur)
        cur->group_commit = true;
}

bool qk_inline_barrier(qk_inline_await_fn await, void *owner, uint64_t seq, bool durable)
{
    if (!cur || !await || (cur->owner && (cur->owner != owner || cur->await != await)))
        return false;
    cur->await = await;
    cur->owner = owner;
    if (seq > cur->seq)
        cur->seq = seq;
    if (durable && seq > cur->sync_seq)
        cur->sync_seq = seq;
    return true;
}

bool qk_inline_wait_event(qk_inline_await_fn await, void *owner, uint64_t seq, double deadline_ms)
{
    if (!cur || !await)
        return false;
    cur->ev_await = await;
    cur->ev_owner = owner;
    cur->ev_seq = seq;
    cur->ev_deadline_ms = deadline_ms;
    return true;
}

double qk_inline_rerun_deadline(void)
{
    return cur ? cur->rerun_deadline_ms : 0;
}

void qk_inline_complete(qk_inline_waiter *w, int err)
{
    while (w) {
        qk_inline_waiter *next = w->next;
        w->next = NULL;
        w->done(w, err);
        w = next;
    }
}

void qk_inline_turn_begin(void)
{
    in_turn = true;
}

void qk_inline_turn_end(void)
{
    in_turn = false;
    size_t n = nkicks;
    nkicks = 0;
    for (size_t i = 0; i < n; i++)
        kicks[i].fn(kicks[i].arg);
}

void qk_inline_kick(void (*fn)(void *arg), void *arg)
{
    if (!fn)
        return;
    for (size_t i = 0; in_turn && i < nkicks; i++)
        if (kicks[i].fn == fn && kicks[i].arg == arg)
            return; /* already pending for this turn */
    if (!in_turn || nkicks == QK_INLINE_KICKS) {
        fn(arg);
        return;
    }
    kicks[nkicks].fn = fn;
    kicks[nkicks].arg = arg;
    nkicks++;
}
