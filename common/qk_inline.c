/* qk_inline.c - the inline handler context (qk_inline.h): one thread-local pointer. */
#include "qk_inline.h"

#include <string.h>

static _Thread_local qk_inline *cur;

void qk_inline_begin(qk_inline *c)
{
    memset(c, 0, sizeof *c);
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

bool qk_inline_barrier(qk_inline_await_fn await, void *owner, uint64_t seq)
{
    if (!cur || !await || (cur->owner && (cur->owner != owner || cur->await != await)))
        return false;
    cur->await = await;
    cur->owner = owner;
    if (seq > cur->seq)
        cur->seq = seq;
    return true;
}
