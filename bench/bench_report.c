/* bench_report.c - text and JSON reports of one run. */
#include "bench_report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

/* Milliseconds of CPU per unit (0 when there was none). */
static double ms_per(double cpu_s, uint64_t n)
{
    return n ? cpu_s * 1e3 / (double)n : 0.0;
}

static const char *target_name(const bench_opts *o)
{
    return o->baseline_url ? "nginx" : "kme";
}

void bench_report_text(FILE *f, const bench_opts *o, const bench_result *r)
{
    const bench_stats *s = &r->total;
    double sec = r->measured_s;
    fprintf(f,
            "qkd-bench: %s against %s, %u connection(s) per side, %u-bit keys, %u per request; "
            "%.2f s measured (%.1f s warm-up excluded)%s\n",
            bench_scenario_name(o->scenario), target_name(o), o->connections, o->size_bits,
            o->number, sec, r->warmup_s, r->interrupted ? ", interrupted" : "");
    fprintf(f, "  operations %12" PRIu64 "  %10.1f/s\n", s->ops, per_s(s->ops, sec));
    fprintf(f, "  keys       %12" PRIu64 "  %10.1f/s  %.3f Mbit/s of key material\n", s->keys,
            per_s(s->keys, sec), per_s(s->key_bits, sec) / 1e6);
    fprintf(f, "  requests   %12" PRIu64 "  %10.1f/s  (%.1f/s answered 200)\n", s->requests,
            per_s(s->requests, sec), per_s(s->requests_ok, sec));
    if (r->cpu_measured)
        fprintf(f,
                "  cpu        %12.3f s of %u process(es): %.4f ms per operation, %.4f ms per key, "
                "%.4f ms per request\n",
                r->cpu_s, o->cpu.n, ms_per(r->cpu_s, s->ops), ms_per(r->cpu_s, s->keys),
                ms_per(r->cpu_s, s->requests));
    fprintf(f, "  errors     %12" PRIu64, bench_stats_errors(s));
    for (unsigned e = 0; e < BENCH_NERR; e++)
        if (e != BENCH_ERR_HTTP && s->err[e])
            fprintf(f, "  %s=%" PRIu64, bench_err_name((bench_err)e), s->err[e]);
    for (unsigned c = 0; c < BENCH_HTTP_MAX; c++)
        if (s->http[c])
            fprintf(f, "  http_%u=%" PRIu64, c, s->http[c]);
    fprintf(f, "\n  latency (ms)     %10s %8s %8s %8s %8s\n", "count", "p50", "p90", "p99", "max");
    for (unsigned t = 0; t < BENCH_NTYPES; t++) {
        const bench_hist *h = &s->hist[t];
        if (!h->count)
            continue;
        fprintf(f, "  %-16s %10" PRIu64 " %8.3f %8.3f %8.3f %8.3f\n", bench_type_name(t), h->count,
                bench_hist_quantile(h, 0.50) / 1e3, bench_hist_quantile(h, 0.90) / 1e3,
                bench_hist_quantile(h, 0.99) / 1e3, (double)h->max_us / 1e3);
    }
}

static bool add_num(cJSON *o, const char *k, double v)
{
    return cJSON_AddNumberToObject(o, k, v) != NULL;
}

static bool add_latency(cJSON *root, const bench_stats *s)
{
    cJSON *lat = cJSON_AddObjectToObject(root, "latency_ms");
    if (!lat)
        return false;
    for (unsigned t = 0; t < BENCH_NTYPES; t++) {
        const bench_hist *h = &s->hist[t];
        if (!h->count)
            continue;
        cJSON *e = cJSON_AddObjectToObject(lat, bench_type_name(t));
        if (!e || !add_num(e, "count", (double)h->count) ||
            !add_num(e, "p50", bench_hist_quantile(h, 0.50) / 1e3) ||
            !add_num(e, "p90", bench_hist_quantile(h, 0.90) / 1e3) ||
            !add_num(e, "p99", bench_hist_quantile(h, 0.99) / 1e3) ||
            !add_num(e, "max", (double)h->max_us / 1e3) ||
            !add_num(e, "mean", bench_hist_mean(h) / 1e3))
            return false;
    }
    return true;
}

static bool add_errors(cJSON *root, const bench_stats *s)
{
    cJSON *err = cJSON_AddObjectToObject(root, "errors");
    if (!err || !add_num(err, "total", (double)bench_stats_errors(s)))
        return false;
    for (unsigned e = 0; e < BENCH_NERR; e++)
        if (e != BENCH_ERR_HTTP && s->err[e] &&
            !add_num(err, bench_err_name((bench_err)e), (double)s->err[e]))
            return false;
    for (unsigned c = 0; c < BENCH_HTTP_MAX; c++) {
        char name[16];
        snprintf(name, sizeof name, "http_%u", c);
        if (s->http[c] && !add_num(err, name, (double)s->http[c]))
            return false;
    }
    return true;
}

/* The --cpu-pids processes' CPU time over the measured phase, in total and per unit. */
static bool add_cpu(cJSON *root, const bench_opts *o, const bench_result *r)
{
    const bench_stats *s = &r->total;
    return add_num(root, "cpu_s", r->cpu_s) && add_num(root, "cpu_processes", o->cpu.n) &&
           add_num(root, "cpu_ms_per_operation", ms_per(r->cpu_s, s->ops)) &&
           add_num(root, "cpu_ms_per_key", ms_per(r->cpu_s, s->keys)) &&
           add_num(root, "cpu_ms_per_request", ms_per(r->cpu_s, s->requests));
}

cJSON *bench_report_json(const bench_opts *o, const bench_result *r)
{
    const bench_stats *s = &r->total;
    double sec = r->measured_s;
    cJSON *j = cJSON_CreateObject();
    bool ok =
        j && cJSON_AddStringToObject(j, "tool", "qkd-bench") && add_num(j, "format", 1) &&
        cJSON_AddStringToObject(j, "label", o->label ? o->label : "") &&
        cJSON_AddStringToObject(j, "target", target_name(o)) &&
        cJSON_AddStringToObject(j, "scenario", bench_scenario_name(o->scenario)) &&
        add_num(j, "connections", o->connections) && add_num(j, "size_bits", o->size_bits) &&
        add_num(j, "number", o->number) && add_num(j, "warmup_s", r->warmup_s) &&
        add_num(j, "measured_s", sec) && cJSON_AddBoolToObject(j, "interrupted", r->interrupted) &&
        add_num(j, "operations", (double)s->ops) &&
        add_num(j, "operations_per_s", per_s(s->ops, sec)) && add_num(j, "keys", (double)s->keys) &&
        add_num(j, "keys_per_s", per_s(s->keys, sec)) &&
        add_num(j, "key_bits_per_s", per_s(s->key_bits, sec)) &&
        add_num(j, "requests", (double)s->requests) &&
        add_num(j, "requests_per_s", per_s(s->requests, sec)) &&
        add_num(j, "ok_requests_per_s", per_s(s->requests_ok, sec)) && add_errors(j, s) &&
        add_latency(j, s) && (!r->cpu_measured || add_cpu(j, o, r));
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int bench_write_json(const char *path, const cJSON *j)
{
    char *text = cJSON_Print(j);
    if (!text) {
        fprintf(stderr, "qkd-bench: out of memory\n");
        return -1;
    }
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        rc = printf("%s\n", text) < 0 ? -1 : 0;
    } else {
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, "%s\n", text) < 0)
            rc = -1;
        if (f && fclose(f) != 0)
            rc = -1;
        if (rc)
            fprintf(stderr, "qkd-bench: cannot write %s\n", path);
    }
    free(text);
    return rc;
}
