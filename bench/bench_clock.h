/* bench_clock.h - the monotonic clock and a short sleep, shared by the qkd-bench commands. */
#ifndef QK_BENCH_CLOCK_H
#define QK_BENCH_CLOCK_H

#include <stdint.h>

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC in nanoseconds */
double bench_now_s(void);    /* the same in seconds */
void bench_nap_ms(long ms);  /* sleep ms milliseconds, resumed after signals */

#endif
