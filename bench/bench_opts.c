/* bench_opts.c - command line of `qkd-bench run`. */
#include "bench_opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const scenario_names[] = {
    [BENCH_SC_ETSI] = "etsi",
    [BENCH_SC_SKIP] = "skip",
    [BENCH_SC_STATUS] = "status",
    [BENCH_SC_MIXED] = "mixed",
};

const char *bench_scenario_name(bench_scenario s)
{
    return (unsigned)s <= BENCH_SC_MIXED ? scenario_names[s] : "?";
}

void bench_opts_usage(FILE *f)
{
    fprintf(f,
            "usage: qkd-bench run --lab DIR [--scenario etsi|skip|status|mixed] [--connections N]\n"
            "         [--size BITS] [--number K] [--warmup S] [--duration S | --count N]\n"
            "         [--kme-a ID --kme-b ID] [--baseline URL] [--timeout-ms MS] [--json FILE]\n"
            "         [--label TEXT] [--cpu-pids PIDS] [--quiet]\n"
            "Drives N keep-alive TLS connections per side (mTLS for ETSI 014, TLS-PSK for SKIP)\n"
            "against the KMEs of DIR/lab.json and reports keys/s, key bits/s, requests/s,\n"
            "latency p50/p90/p99/max per request type and errors by kind.\n"
            "  --scenario S     etsi (key pairs: enc_keys at A, dec_keys at B), skip (GET /key at\n"
            "                   A, GET /key/{keyId} at B), status (ETSI status at A), mixed\n"
            "                   (45%% etsi, 45%% skip, 10%% status); default etsi\n"
            "  --connections N  connections per side and API, 1..%d (default 16); one thread\n"
            "                   drives one connection per side\n"
            "  --size BITS      key size (default 256); --number K keys per ETSI request (1)\n"
            "  --warmup S       warm-up, excluded (default 1); --duration S measured (default 5)\n"
            "  --count N        stop after N measured operations instead\n"
            "  --baseline URL   send the same requests to URL (nginx serving fixed bodies of\n"
            "                   the same size) with the SAE certificates: the baseline\n"
            "  --kme-a ID, --kme-b ID  the two KMEs (default: the ends of the first link)\n"
            "  --timeout-ms MS  per request, 100..600000 (default 10000)\n"
            "  --json FILE      also write the report as JSON (\"-\" = stdout)\n"
            "  --label TEXT     the run's name in the JSON report (\"label\")\n"
            "  --cpu-pids PIDS  report the CPU time (user + system, /proc/PID/stat) that these\n"
            "                   processes (PID,PID,..., at most %d: the KMEs, nginx's workers)\n"
            "                   spent during the measured phase, per operation and per key\n"
            "  --quiet          no progress line on stderr\n"
            "  -h, --help       this text\n"
            "Exit status: 0 (errors are counted, not fatal), 1 failure, 2 usage.\n"
            "See qkd-bench(1).\n",
            BENCH_MAX_CONNS, BENCH_MAX_CPU_PIDS);
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "qkd-bench: --%s: expected a number in %g..%g\n", name, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int bench_parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (!s || *s == '-' || *s == '\0')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "qkd-bench: --%s: expected an integer in %llu..%llu\n", name,
            (unsigned long long)lo, (unsigned long long)hi);
    return -1;
}

static int parse_scenario(const char *s, bench_scenario *out)
{
    for (unsigned i = 0; i <= BENCH_SC_MIXED; i++)
        if (strcmp(s, scenario_names[i]) == 0) {
            *out = (bench_scenario)i;
            return 0;
        }
    fprintf(stderr, "qkd-bench: --scenario: etsi, skip, status or mixed\n");
    return -1;
}

int bench_opts_parse(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){.scenario = BENCH_SC_ETSI,
                      .connections = 16,
                      .size_bits = 256,
                      .number = 1,
                      .warmup_s = 1.0,
                      .duration_s = 5.0,
                      .timeout_ms = 10000};
    static const struct option lo[] = {
        {"lab", required_argument, NULL, 'l'},      {"baseline", required_argument, NULL, 'B'},
        {"kme-a", required_argument, NULL, 'a'},    {"kme-b", required_argument, NULL, 'b'},
        {"scenario", required_argument, NULL, 's'}, {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 'z'},     {"number", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},   {"duration", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'N'},    {"timeout-ms", required_argument, NULL, 't'},
        {"json", required_argument, NULL, 'j'},     {"label", required_argument, NULL, 'L'},
        {"cpu-pids", required_argument, NULL, 'P'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    uint64_t v = 0;
    while ((c = getopt_long(argc, argv, "l:c:d:qh", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'l':
            o->lab_dir = optarg;
            break;
        case 'B':
            o->baseline_url = optarg;
            break;
        case 'a':
            o->kme_a = optarg;
            break;
        case 'b':
            o->kme_b = optarg;
            break;
        case 's':
            rc = parse_scenario(optarg, &o->scenario);
            break;
        case 'c':
            rc = bench_parse_u64("connections", optarg, 1, BENCH_MAX_CONNS, &v);
            o->connections = (unsigned)v;
            break;
        case 'z':
            rc = bench_parse_u64("size", optarg, 8, BENCH_MAX_BITS, &v);
            o->size_bits = (unsigned)v;
            if (!rc && v % 8 != 0) {
                fprintf(stderr, "qkd-bench: --size: a multiple of 8\n");
                rc = -1;
            }
            break;
        case 'n':
            rc = bench_parse_u64("number", optarg, 1, BENCH_MAX_NUMBER, &v);
            o->number = (unsigned)v;
            break;
        case 'w':
            rc = parse_double("warmup", optarg, 0, 3600, &o->warmup_s);
            break;
        case 'd':
            rc = parse_double("duration", optarg, 0.1, 86400, &o->duration_s);
            break;
        case 'N':
            rc = bench_parse_u64("count", optarg, 1, UINT64_C(1) << 40, &o->count);
            break;
        case 't':
            rc = bench_parse_u64("timeout-ms", optarg, 100, 600000, &v);
            o->timeout_ms = (long)v;
            break;
        case 'j':
            o->json_out = optarg;
            break;
        case 'L':
            o->label = optarg;
            break;
        case 'P':
            rc = bench_cpu_parse_pids(optarg, &o->cpu);
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            bench_opts_usage(stdout);
            exit(0);
        default:
            return -1;
        }
        if (rc)
            return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "qkd-bench: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (!o->lab_dir) {
        fprintf(stderr, "qkd-bench: --lab DIR is required\n");
        return -1;
    }
    if ((o->kme_a == NULL) != (o->kme_b == NULL)) {
        fprintf(stderr, "qkd-bench: --kme-a and --kme-b go together\n");
        return -1;
    }
    if (o->scenario == BENCH_SC_SKIP && o->number != 1) {
        fprintf(stderr, "qkd-bench: SKIP serves one key per request (--number 1)\n");
        return -1;
    }
    return 0;
}
