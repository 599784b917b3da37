/* bench_run.h - runs the workers: warm-up (excluded), then a measured phase of fixed duration
 * or fixed operation count, with a progress line on stderr every second; merges what the
 * workers measured. SIGINT ends the measured phase early (the report says so). */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include <stdbool.h>

#include "bench_opts.h"
#include "bench_stats.h"
#include "bench_target.h"

typedef struct {
    bench_stats total; /* measured phase only */
    double measured_s; /* from the start of the measured phase until the last worker stopped */
    double warmup_s;   /* actual warm-up length */
    uint64_t warmup_ops;
    unsigned workers;
    bool interrupted;
    bool cpu_measured; /* --cpu-pids given and sampled at both ends of the measured phase */
    double cpu_s;      /* their user + system seconds over the measured phase */
} bench_result;

/* 0, or -1 when the workers could not be set up (message on stderr). res is heap-sized:
 * allocate it (bench_result_new) rather than putting it on the stack. */
int bench_run(const bench_target *t, const bench_opts *o, bench_result *res);
bench_result *bench_result_new(void);
void bench_result_free(bench_result *r);

#endif
