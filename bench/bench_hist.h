/* bench_hist.h - latency histogram with bounded memory: log-linear buckets (32 per power of
 * two, so a reported percentile is within about 3 % of the true value), 1 us .. ~4.5 min.
 * Not thread-safe: each worker owns its histograms; bench_hist_merge adds them up. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB    32 /* buckets per power of two */
#define BENCH_HIST_POWERS 28 /* 2^28 us is about 4.5 minutes: anything above is clamped */
#define BENCH_HIST_N      (BENCH_HIST_SUB * BENCH_HIST_POWERS)

typedef struct {
    uint64_t bucket[BENCH_HIST_N];
    uint64_t count;
    uint64_t max_us;
    double sum_us;
} bench_hist;

void bench_hist_record(bench_hist *h, uint64_t us);
void bench_hist_merge(bench_hist *into, const bench_hist *from);
/* The value (us) at or below which a fraction q (0..1) of the samples lie; 0 when empty. */
double bench_hist_quantile(const bench_hist *h, double q);
double bench_hist_mean(const bench_hist *h);

#endif
