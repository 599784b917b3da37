/* bench_hist.c - log-linear latency histogram (see bench_hist.h). */
#include "bench_hist.h"

/* Bucket index of a value: values below BENCH_HIST_SUB us get one bucket each; above, each
 * power of two [2^p, 2^(p+1)) is split into BENCH_HIST_SUB equal buckets. */
static unsigned bucket_of(uint64_t us)
{
    if (us < BENCH_HIST_SUB)
        return (unsigned)us;
    unsigned p = 63u - (unsigned)__builtin_clzll(us); /* us >= 32, so p >= 5 */
    unsigned shift = p - 5u;                          /* 2^5 == BENCH_HIST_SUB */
    unsigned idx = (p - 4u) * BENCH_HIST_SUB + (unsigned)((us >> shift) - BENCH_HIST_SUB);
    return idx < BENCH_HIST_N ? idx : BENCH_HIST_N - 1;
}

/* Middle of a bucket, in us. */
static double bucket_mid(unsigned idx)
{
    if (idx < BENCH_HIST_SUB)
        return (double)idx;
    unsigned p = idx / BENCH_HIST_SUB + 4u;
    unsigned sub = idx % BENCH_HIST_SUB;
    double width = (double)(1ull << (p - 5u));
    return ((double)(BENCH_HIST_SUB + sub) + 0.5) * width;
}

void bench_hist_record(bench_hist *h, uint64_t us)
{
    h->bucket[bucket_of(us)]++;
    h->count++;
    h->sum_us += (double)us;
    if (us > h->max_us)
        h->max_us = us;
}

void bench_hist_merge(bench_hist *into, const bench_hist *from)
{
    for (unsigned i = 0; i < BENCH_HIST_N; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum_us += from->sum_us;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

double bench_hist_quantile(const bench_hist *h, double q)
{
    if (h->count == 0)
        return 0.0;
    if (q < 0.0)
        q = 0.0;
    if (q > 1.0)
        q = 1.0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_N; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            double v = bucket_mid(i);
            return v > (double)h->max_us ? (double)h->max_us : v;
        }
    }
    return (double)h->max_us;
}

double bench_hist_mean(const bench_hist *h)
{
    return h->count ? h->sum_us / (double)h->count : 0.0;
}
