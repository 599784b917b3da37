/* bench_run.c - worker threads, phases and progress of one benchmark run. */
#include "bench_run.h"
#include "bench_clock.h"
#include "bench_cpu.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_worker.h"

enum { PH_WARMUP, PH_MEASURE, PH_STOP };

typedef struct {
    const bench_target *t;
    const bench_opts *o;
    atomic_int phase;
    atomic_uint ready, failed;
    atomic_uint_fast64_t claimed;     /* measured operations started (count mode) */
    atomic_uint_fast64_t finished;    /* measured operations finished (count mode) */
    atomic_uint_fast64_t ops, errors; /* progress, both phases */
} shared;

typedef struct {
    shared *sh;
    unsigned index;
    bench_stats *measured; /* heap */
    bench_stats *warm;     /* heap, discarded except for its operation count */
} slot;

static volatile sig_atomic_t g_interrupt;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupt = 1;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_interrupt)
        ;
}

static void *worker_main(void *arg)
{
    slot *sl = arg;
    shared *sh = sl->sh;
    bench_worker w;
    if (bench_worker_init(&w, sh->t, sh->o, sl->index) != 0) {
        atomic_fetch_add(&sh->failed, 1);
        return NULL;
    }
    atomic_fetch_add(&sh->ready, 1);
    uint64_t count = sh->o->count;
    for (;;) {
        int ph = atomic_load(&sh->phase);
        if (ph == PH_STOP)
            break;
        if (ph == PH_MEASURE && count && atomic_fetch_add(&sh->claimed, 1) >= count)
            break;
        bench_stats *st = ph == PH_MEASURE ? sl->measured : sl->warm;
        int rc = bench_worker_op(&w, st);
        atomic_fetch_add(&sh->ops, 1);
        if (rc != 0)
            atomic_fetch_add(&sh->errors, 1);
        if (ph == PH_MEASURE && count && atomic_fetch_add(&sh->finished, 1) + 1 >= count)
            atomic_store(&sh->phase, PH_STOP);
    }
    bench_worker_free(&w);
    return NULL;
}

/* Wait until `until` (seconds, absolute), the phase ends or SIGINT, printing one progress
 * line per second. Polls every 20 ms so that a fixed-count run ends on time. */
static void progress(shared *sh, const char *what, double start, double until, bool quiet)
{
    double last_t = bench_now_s();
    uint64_t last_ops = atomic_load(&sh->ops);
    while (!g_interrupt && atomic_load(&sh->phase) != PH_STOP) {
        double t = bench_now_s();
        if (t >= until)
            break;
        nap(until - t < 0.02 ? until - t : 0.02);
        double t2 = bench_now_s();
        if (t2 - last_t < 1.0)
            continue;
        uint64_t ops = atomic_load(&sh->ops);
        if (!quiet)
            fprintf(stderr,
                    "[qkd-bench] %s %.1f s: %" PRIu64 " operations/s, %" PRIu64
                    " operations and %" PRIu64 " errors so far\n",
                    what, t2 - start, (uint64_t)((double)(ops - last_ops) / (t2 - last_t)),
                    (uint64_t)ops, (uint64_t)atomic_load(&sh->errors));
        last_t = t2;
        last_ops = ops;
    }
}

bench_result *bench_result_new(void)
{
    return calloc(1, sizeof(bench_result));
}

void bench_result_free(bench_result *r)
{
    free(r);
}

int bench_run(const bench_target *t, const bench_opts *o, bench_result *res)
{
    memset(res, 0, sizeof *res);
    unsigned n = o->connections;
    shared sh = {.t = t, .o = o};
    atomic_init(&sh.phase, PH_WARMUP);
    pthread_t *th = calloc(n, sizeof *th);
    slot *sl = calloc(n, sizeof *sl);
    int rc = -1;
    unsigned started = 0;
    double m0 = 0, cpu0 = 0;
    if (o->cpu.n && bench_cpu_sample(&o->cpu, &cpu0) != 0)
        goto out; /* a wrong PID fails before the load starts */
    if (!th || !sl)
        goto out;
    for (unsigned i = 0; i < n; i++) {
        sl[i] = (slot){.sh = &sh, .index = i};
        sl[i].measured = calloc(1, sizeof(bench_stats));
        sl[i].warm = calloc(1, sizeof(bench_stats));
        if (!sl[i].measured || !sl[i].warm)
            goto stop;
    }
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    g_interrupt = 0;
    if (sigaction(SIGINT, &sa, &old) != 0)
        goto stop;
    for (; started < n; started++)
        if (pthread_create(&th[started], NULL, worker_main, &sl[started]) != 0) {
            fprintf(stderr, "qkd-bench: cannot start worker %u\n", started);
            goto stop_sig;
        }
    while (atomic_load(&sh.ready) + atomic_load(&sh.failed) < n && !g_interrupt)
        nap(0.01);
    if (atomic_load(&sh.failed) > 0) {
        fprintf(stderr, "qkd-bench: %u of %u workers could not start\n", atomic_load(&sh.failed),
                n);
        goto stop_sig;
    }
    if (!o->quiet)
        fprintf(stderr, "[qkd-bench] %s, %u connection(s) per side, %u-bit keys: warm-up %.1f s\n",
                bench_scenario_name(o->scenario), n, o->size_bits, o->warmup_s);
    double w0 = bench_now_s();
    progress(&sh, "warm-up", w0, w0 + o->warmup_s, o->quiet);
    if (o->cpu.n && bench_cpu_sample(&o->cpu, &cpu0) != 0)
        goto stop_sig;
    m0 = bench_now_s();
    res->warmup_s = m0 - w0;
    res->warmup_ops = atomic_load(&sh.ops);
    atomic_store(&sh.phase, PH_MEASURE);
    progress(&sh, "measure", m0, o->count ? 1e300 : m0 + o->duration_s, o->quiet);
    res->interrupted = g_interrupt != 0;
    rc = 0;
stop_sig:
    atomic_store(&sh.phase, PH_STOP);
    for (unsigned i = 0; i < started; i++)
        if (pthread_join(th[i], NULL) != 0)
            rc = -1; /* cannot happen for a joinable thread; never merge half-finished stats */
    if (rc == 0) {
        res->measured_s = bench_now_s() - m0;
        double cpu1 = 0;
        if (o->cpu.n && bench_cpu_sample(&o->cpu, &cpu1) == 0) {
            res->cpu_measured = true;
            res->cpu_s = cpu1 - cpu0;
        } else if (o->cpu.n) {
            fprintf(stderr, "qkd-bench: CPU time not reported (a process ended?)\n");
        }
        res->workers = n;
        for (unsigned i = 0; i < n; i++)
            bench_stats_merge(&res->total, sl[i].measured);
    }
    (void)sigaction(SIGINT, &old, NULL); /* restoring a handler read back from the kernel */
    goto out;
stop:
    fprintf(stderr, "qkd-bench: out of memory\n");
out:
    for (unsigned i = 0; sl && i < n; i++) {
        free(sl[i].measured);
        free(sl[i].warm);
    }
    free(sl);
    free(th);
    return rc;
}
