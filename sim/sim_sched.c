/* sim_sched.c - rate -> block schedule arithmetic. */
#include "sim_sched.h"

void qk_sched_init(qk_sched *s, uint64_t block_bytes, double now_ms)
{
    s->credit_bits = 0.0;
    s->last_ms = now_ms;
    s->block_bits = (double)block_bytes * 8.0;
    s->lost_bits = 0.0;
}

void qk_sched_advance(qk_sched *s, double rate_bps, double now_ms)
{
    double dt = now_ms - s->last_ms;
    if (dt <= 0.0)
        return;
    s->last_ms = now_ms;
    if (!(rate_bps > 0.0))
        return;
    s->credit_bits += rate_bps * dt / 1000.0;
    double cap = s->block_bits * QK_SCHED_MAX_BACKLOG;
    if (s->credit_bits > cap) {
        s->lost_bits += s->credit_bits - cap;
        s->credit_bits = cap;
    }
}

int qk_sched_take(qk_sched *s)
{
    if (s->block_bits <= 0.0 || s->credit_bits < s->block_bits)
        return 0;
    s->credit_bits -= s->block_bits;
    return 1;
}

double qk_sched_wait_ms(const qk_sched *s, double rate_bps, double max_ms)
{
    if (s->credit_bits >= s->block_bits)
        return 0.0;
    if (!(rate_bps > 0.0))
        return max_ms;
    double ms = (s->block_bits - s->credit_bits) * 1000.0 / rate_bps;
    return ms < max_ms ? ms : max_ms;
}
