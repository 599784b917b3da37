/* sim_sched.h - rate -> block schedule arithmetic (pure): a link earns key bits at
 * rate_bps * time_scale and emits a block each time it has earned block_bytes * 8 bits.
 * Earned bits that could not be emitted (delivery stalled) are capped at a few blocks, so a
 * stalled link does not burst when it recovers; the excess is counted as lost. */
#ifndef QK_SIM_SCHED_H
#define QK_SIM_SCHED_H

#include <stdint.h>

#define QK_SCHED_MAX_BACKLOG 4 /* blocks of credit kept while delivery lags */

typedef struct {
    double credit_bits; /* earned and not yet emitted */
    double last_ms;     /* time of the last advance */
    double block_bits;
    double lost_bits; /* credit dropped above the backlog cap */
} qk_sched;

void qk_sched_init(qk_sched *s, uint64_t block_bytes, double now_ms);
/* Earn bits for the time since the last call at rate_bps (already scaled; <= 0 earns
 * nothing). Time going backwards earns nothing. */
void qk_sched_advance(qk_sched *s, double rate_bps, double now_ms);
/* Take one block if one is due: returns 1 and debits the credit, else 0. */
int qk_sched_take(qk_sched *s);
/* Milliseconds until the next block is due at rate_bps; capped at max_ms (also when the
 * rate is 0). */
double qk_sched_wait_ms(const qk_sched *s, double rate_bps, double max_ms);

#endif
