/* bench_opts.h - the load generator's options (qkd-bench run). */
#ifndef BENCH_OPTS_H
#define BENCH_OPTS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "bench_cpu.h"

typedef enum {
    BENCH_SC_ETSI,   /* ETSI 014 key pairs: enc_keys at KME A, dec_keys of the IDs at KME B */
    BENCH_SC_SKIP,   /* SKIP key pairs: GET /key at KME A, GET /key/{keyId} at KME B */
    BENCH_SC_STATUS, /* ETSI 014 status polling at KME A */
    BENCH_SC_MIXED,  /* 45 % ETSI pairs, 45 % SKIP pairs, 10 % status, per operation */
} bench_scenario;

#define BENCH_MAX_CONNS  256 /* per side and API */
#define BENCH_MAX_NUMBER 128 /* keys per ETSI request (the lab's max_keys_per_request) */
#define BENCH_MAX_BITS   8192

typedef struct {
    const char *lab_dir;      /* DIR holding lab.json (required) */
    const char *baseline_url; /* nginx base URL: load it instead of the KMEs (same requests) */
    const char *kme_a;        /* KME IDs; default: the two ends of the manifest's first link */
    const char *kme_b;
    bench_scenario scenario;
    unsigned connections; /* keep-alive connections per side (and per API), 1..256 */
    unsigned size_bits;   /* key size, multiple of 8 */
    unsigned number;      /* keys per ETSI enc_keys request */
    double warmup_s;      /* excluded from the results */
    double duration_s;    /* measured phase (when count is 0) */
    uint64_t count;       /* fixed number of measured operations instead of a duration */
    long timeout_ms;      /* whole request */
    const char *json_out; /* write the JSON report here ("-" = stdout) */
    const char *label;    /* free text copied into the report */
    bool quiet;           /* no progress lines */
    bench_cpu_pids cpu;   /* processes whose CPU time the measured phase reports (may be 0) */
} bench_opts;

const char *bench_scenario_name(bench_scenario s);
/* Parse `qkd-bench run` options (argv[0] is "run"). 0, or -1 with a message on stderr. */
int bench_opts_parse(int argc, char **argv, bench_opts *o);
/* An option's decimal integer in lo..hi; 0, or -1 with a message on stderr naming --name. */
int bench_parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
void bench_opts_usage(FILE *f);

#endif
