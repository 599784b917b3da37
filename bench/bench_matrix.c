/* bench_matrix.c - `qkd-bench report`: merge the JSON reports of a matrix of runs (KME cells
 * and nginx baseline cells) into one JSON file and one Markdown table, each KME cell with its
 * ratio to the baseline cell of the same scenario, connections, key size and keys per request,
 * plus the targets marked met or missed. */
#include "bench_cmd.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MAX_CELLS     256
#define MAX_JSON_FILE (1u << 20)
#define CPU_TARGET_MS 0.2 /* issue 13: CPU per key pair, both KMEs together */

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "qkd-bench: cannot open %s\n", path);
        return NULL;
    }
    char *buf = malloc(MAX_JSON_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_JSON_FILE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    cJSON *j = NULL;
    if (buf && !bad && n <= MAX_JSON_FILE)
        j = cJSON_ParseWithLength(buf, n);
    free(buf);
    const cJSON *tool = j ? cJSON_GetObjectItemCaseSensitive(j, "tool") : NULL;
    if (!cJSON_IsString(tool) || strcmp(tool->valuestring, "qkd-bench") != 0) {
        fprintf(stderr, "qkd-bench: %s is not a qkd-bench JSON report\n", path);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double lat(const cJSON *cell, const char *type, const char *q)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(cell, "latency_ms");
    return num(cJSON_GetObjectItemCaseSensitive(l, type), q);
}

static bool same_cell(const cJSON *a, const cJSON *b)
{
    return strcmp(str(a, "scenario"), str(b, "scenario")) == 0 &&
           num(a, "connections") == num(b, "connections") &&
           num(a, "size_bits") == num(b, "size_bits") && num(a, "number") == num(b, "number");
}

static const cJSON *baseline_of(cJSON *const *cells, size_t n, const cJSON *kme)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(str(cells[i], "target"), "nginx") == 0 && same_cell(cells[i], kme))
            return cells[i];
    return NULL;
}

/* A KME cell's request rate over its nginx cell's (the matrix's ratio), or -1 when it has no
 * baseline with a rate. */
static double nginx_ratio(cJSON *const *cells, size_t n, const cJSON *kme)
{
    const cJSON *b = strcmp(str(kme, "target"), "kme") == 0 ? baseline_of(cells, n, kme) : NULL;
    if (!b || num(b, "ok_requests_per_s") <= 0)
        return -1;
    return num(kme, "ok_requests_per_s") / num(b, "ok_requests_per_s");
}

/* The two request types of a scenario (master side, slave side). */
static void req_types(const cJSON *cell, const char **a, const char **b)
{
    const char *sc = str(cell, "scenario");
    if (strcmp(sc, "skip") == 0) {
        *a = "skip_key";
        *b = "skip_key_by_id";
    } else if (strcmp(sc, "status") == 0) {
        *a = "etsi_status";
        *b = NULL;
    } else {
        *a = "etsi_enc_keys";
        *b = "etsi_dec_keys";
    }
}

static void lat_cell(FILE *f, const cJSON *cell, const char *type)
{
    if (!type || lat(cell, type, "count") == 0) {
        fprintf(f, " - |");
        return;
    }
    fprintf(f, " %.2f / %.2f / %.2f / %.1f |", lat(cell, type, "p50"), lat(cell, type, "p90"),
            lat(cell, type, "p99"), lat(cell, type, "max"));
}

static bool has(const cJSON *o, const char *k)
{
    return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* CPU per key pair of a KME cell (both KMEs' user + system time over the measured phase,
 * qkd-bench run --cpu-pids, over the keys delivered at both ends); false when not measured. */
static bool cpu_per_pair(const cJSON *c, double *ms)
{
    if (strcmp(str(c, "target"), "kme") != 0 || !has(c, "cpu_s") || num(c, "keys") <= 0)
        return false;
    *ms = num(c, "cpu_ms_per_key");
    return true;
}

/* The KME cells with the highest and lowest CPU per key pair (-1 when none was measured). */
static void cpu_extremes(cJSON *const *cells, size_t n, long *worst, long *best)
{
    *worst = *best = -1;
    for (size_t i = 0; i < n; i++) {
        double ms, w, b;
        if (!cpu_per_pair(cells[i], &ms))
            continue;
        if (*worst < 0 || (cpu_per_pair(cells[*worst], &w) && ms > w))
            *worst = (long)i;
        if (*best < 0 || (cpu_per_pair(cells[*best], &b) && ms < b))
            *best = (long)i;
    }
}

/* "etsi 64 conns 256 bits x1" */
static void cell_name(char *buf, size_t cap, const cJSON *c)
{
    snprintf(buf, cap, "%s %.0f conns %.0f bits x%.0f", str(c, "scenario"), num(c, "connections"),
             num(c, "size_bits"), num(c, "number"));
}

static void cpu_col(FILE *f, const cJSON *c)
{
    double ms;
    if (!cpu_per_pair(c, &ms))
        fprintf(f, " - |");
    else if (num(c, "number") > 1)
        fprintf(f, " %.3f (%.2f per request pair) |", ms, num(c, "cpu_ms_per_operation"));
    else
        fprintf(f, " %.3f |", ms);
}

static void md_row(FILE *f, const cJSON *c, const cJSON *base)
{
    const char *ta, *tb;
    req_types(c, &ta, &tb);
    double rps = num(c, "ok_requests_per_s");
    double brps = base ? num(base, "ok_requests_per_s") : 0;
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(c, "errors");
    fprintf(f, "| %s | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f |", str(c, "scenario"),
            num(c, "connections"), num(c, "size_bits"), num(c, "number"), num(c, "keys_per_s"),
            num(c, "key_bits_per_s") / 1e6, rps);
    if (brps > 0)
        fprintf(f, " %.0f | **%.2f** |", brps, rps / brps);
    else
        fprintf(f, " - | - |");
    cpu_col(f, c);
    lat_cell(f, c, ta);
    lat_cell(f, c, tb);
    fprintf(f, " %.0f", num(errs, "total"));
    const cJSON *e;
    bool first = true;
    cJSON_ArrayForEach(e, errs)
    {
        if (strcmp(e->string, "total") != 0 && cJSON_IsNumber(e)) {
            fprintf(f, "%s%s=%.0f", first ? " (" : ", ", e->string, e->valuedouble);
            first = false;
        }
    }
    fprintf(f, "%s |\n", first ? "" : ")");
}

/* A KME cell of the targets: api, conns connections, 256-bit keys, one per request. */
static bool target_cell(const cJSON *c, const char *api, double conns)
{
    return strcmp(str(c, "target"), "kme") == 0 && strcmp(str(c, "scenario"), api) == 0 &&
           num(c, "connections") == conns && num(c, "size_bits") == 256 && num(c, "number") == 1;
}

/* The targets, from the cells that exist. */
static void md_targets(FILE *f, cJSON *const *cells, size_t n)
{
    fprintf(f, "\n### Targets (issue 13)\n\n| target | measured | met |\n|---|---|---|\n");
    /* p99 of a key pair (enc at A, then dec at B): <= 20 ms at 64 connections, <= 2 ms at 1. */
    static const struct {
        const char *api, *op;
        double conns, p99_ms;
    } pair_targets[] = {{"etsi", "etsi_key_pair", 64, 20},
                        {"etsi", "etsi_key_pair", 1, 2},
                        {"skip", "skip_key_pair", 64, 20},
                        {"skip", "skip_key_pair", 1, 2}};
    for (size_t t = 0; t < sizeof pair_targets / sizeof pair_targets[0]; t++)
        for (size_t i = 0; i < n; i++) {
            const cJSON *c = cells[i];
            if (!target_cell(c, pair_targets[t].api, pair_targets[t].conns))
                continue;
            double p99 = lat(c, pair_targets[t].op, "p99");
            fprintf(f,
                    "| %s key pair p99 <= %.0f ms at %.0f connection(s), 256-bit keys | %.0f "
                    "pairs/s, p99 %.2f ms",
                    pair_targets[t].api, pair_targets[t].p99_ms, pair_targets[t].conns,
                    num(c, "keys_per_s"), p99);
            /* the same pairs from nginx, which does no key work: the harness's own tail */
            const cJSON *b = baseline_of(cells, n, c);
            if (b && lat(b, pair_targets[t].op, "count") > 0)
                fprintf(f, " (nginx in the same cell: %.0f pairs/s, p99 %.2f ms)",
                        num(b, "keys_per_s"), lat(b, pair_targets[t].op, "p99"));
            fprintf(f, " | %s |\n", p99 <= pair_targets[t].p99_ms ? "yes" : "no");
        }
    /* The request rate and the CPU per pair at 64 connections, 256-bit keys, one per request,
     * per API: the rate target is for these cells (the rows below add every cell). */
    static const char *const apis[] = {"etsi", "skip"};
    for (size_t t = 0; t < sizeof apis / sizeof apis[0]; t++)
        for (size_t i = 0; i < n; i++) {
            const cJSON *c = cells[i];
            if (!target_cell(c, apis[t], 64))
                continue;
            double r = nginx_ratio(cells, n, c);
            if (r >= 0) {
                const cJSON *b = baseline_of(cells, n, c);
                fprintf(f,
                        "| %s request rate >= 0.5 x nginx at 64 connections, 256-bit keys | "
                        "ratio %.2f (%.0f / %.0f requests/s) | %s |\n",
                        apis[t], r, num(c, "ok_requests_per_s"), num(b, "ok_requests_per_s"),
                        r >= 0.5 ? "yes" : "no");
            }
            if (has(c, "cpu_s") && num(c, "keys") > 0)
                fprintf(f,
                        "| %s CPU per key pair, both KMEs, <= %.1f ms at 64 connections, 256-bit "
                        "keys | %.3f ms | %s |\n",
                        apis[t], CPU_TARGET_MS, num(c, "cpu_ms_per_key"),
                        num(c, "cpu_ms_per_key") <= CPU_TARGET_MS ? "yes" : "no");
        }
    double worst = -1, best_bits = 0;
    const cJSON *best = NULL;
    bool have_4096 = false;
    for (size_t i = 0; i < n; i++) {
        const cJSON *c = cells[i];
        if (strcmp(str(c, "target"), "kme") != 0)
            continue;
        double r = nginx_ratio(cells, n, c);
        if (r >= 0 && (worst < 0 || r < worst))
            worst = r;
        if (num(c, "size_bits") == 4096) {
            have_4096 = true;
            if (num(c, "key_bits_per_s") > best_bits) {
                best_bits = num(c, "key_bits_per_s");
                best = c;
            }
        }
    }
    if (worst >= 0)
        fprintf(f, "| request rate >= 0.5 x nginx (every cell) | lowest ratio %.2f | %s |\n", worst,
                worst >= 0.5 ? "yes" : "no");
    if (have_4096) {
        fprintf(f, "| 4096-bit keys: >= 1 Gbit/s of key material | best %.1f Mbit/s",
                best_bits / 1e6);
        /* nginx serving the same bodies over the same TLS: what the machine and the load
         * generator allow, each pair's keys counted once as in the KME cell */
        const cJSON *b = best ? baseline_of(cells, n, best) : NULL;
        if (b && has(b, "key_bits_per_s"))
            fprintf(f, " (nginx in the same cell: %.1f Mbit/s)", num(b, "key_bits_per_s") / 1e6);
        fprintf(f, " | %s |\n", best_bits >= 1e9 ? "yes" : "no");
    }
    long wi, bi;
    cpu_extremes(cells, n, &wi, &bi);
    if (wi < 0) {
        fprintf(f, "| CPU per key pair, both KMEs, <= %.1f ms (every cell) | not measured | - |\n",
                CPU_TARGET_MS);
        return;
    }
    char wn[96], bn[96];
    cell_name(wn, sizeof wn, cells[wi]);
    cell_name(bn, sizeof bn, cells[bi]);
    fprintf(f,
            "| CPU per key pair, both KMEs, <= %.1f ms (every cell) | worst %.3f ms (%s), best "
            "%.3f ms (%s) | %s |\n",
            CPU_TARGET_MS, num(cells[wi], "cpu_ms_per_key"), wn, num(cells[bi], "cpu_ms_per_key"),
            bn, num(cells[wi], "cpu_ms_per_key") <= CPU_TARGET_MS ? "yes" : "no");
}

static int write_md(const char *path, cJSON *const *cells, size_t n, const char *date,
                    const char *command)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "qkd-bench: cannot write %s\n", path);
        return -1;
    }
    fprintf(f,
            "# qkd-bench results %s\n\nCommand: `%s`  \nMachine: %ld CPU(s); load generator, "
            "both KMEs (and nginx for the baseline) on the same machine, TLS on loopback.\n\n"
            "req/s counts requests answered 200. Ratio = KME req/s over nginx req/s for the same "
            "requests, connections and "
            "body size, measured in the same run. CPU/pair = user + system time of both KMEs "
            "over the measured phase (/proc/PID/stat) per key delivered at both ends; the load "
            "generator and the simulator are not counted. Latency: p50 / p90 / p99 / max in ms "
            "for the "
            "request at KME A (enc_keys, SKIP /key) and at KME B (dec_keys, /key/{keyId}).\n\n"
            "| API | conns | key bits | keys/req | keys/s | key Mbit/s | req/s | nginx req/s | "
            "ratio | CPU/pair (ms) | at A (ms) | at B (ms) | errors |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            date, command, sysconf(_SC_NPROCESSORS_ONLN));
    for (size_t i = 0; i < n; i++)
        if (strcmp(str(cells[i], "target"), "kme") == 0)
            md_row(f, cells[i], baseline_of(cells, n, cells[i]));
    fprintf(f, "\nBaseline cells (nginx, fixed bodies, same TLS 1.3 TLS_AES_256_GCM_SHA384 with "
               "client certificates; CPU/req: user + system time of nginx's workers per "
               "request):\n\n| scenario | conns | key bits | keys/req | req/s | CPU/req (ms) | "
               "at A (ms) | at B (ms) | errors |\n|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const cJSON *c = cells[i];
        if (strcmp(str(c, "target"), "nginx") != 0)
            continue;
        const char *ta, *tb;
        req_types(c, &ta, &tb);
        fprintf(f, "| %s | %.0f | %.0f | %.0f | %.0f |", str(c, "scenario"), num(c, "connections"),
                num(c, "size_bits"), num(c, "number"), num(c, "ok_requests_per_s"));
        if (has(c, "cpu_s") && num(c, "requests") > 0)
            fprintf(f, " %.3f |", num(c, "cpu_ms_per_request"));
        else
            fprintf(f, " - |");
        lat_cell(f, c, ta);
        lat_cell(f, c, tb);
        fprintf(f, " %.0f |\n", num(cJSON_GetObjectItemCaseSensitive(c, "errors"), "total"));
    }
    md_targets(f, cells, n);
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0 || rc) {
        fprintf(stderr, "qkd-bench: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* "cpu_ms_per_key_pair": {target, worst, worst_cell, best, best_cell, met}, when measured. */
static bool add_cpu_target(cJSON *root, cJSON *const *cells, size_t n)
{
    long wi, bi;
    cpu_extremes(cells, n, &wi, &bi);
    if (wi < 0)
        return true;
    char wn[96], bn[96];
    cell_name(wn, sizeof wn, cells[wi]);
    cell_name(bn, sizeof bn, cells[bi]);
    double w = num(cells[wi], "cpu_ms_per_key"), b = num(cells[bi], "cpu_ms_per_key");
    cJSON *t = cJSON_AddObjectToObject(root, "cpu_ms_per_key_pair");
    return t && cJSON_AddNumberToObject(t, "target", CPU_TARGET_MS) &&
           cJSON_AddNumberToObject(t, "worst", w) && cJSON_AddStringToObject(t, "worst_cell", wn) &&
           cJSON_AddNumberToObject(t, "best", b) && cJSON_AddStringToObject(t, "best_cell", bn) &&
           cJSON_AddBoolToObject(t, "met", w <= CPU_TARGET_MS);
}

static int write_json(const char *path, cJSON *const *cells, size_t n, const char *date,
                      const char *command)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "cells") : NULL;
    bool ok = arr && cJSON_AddStringToObject(root, "tool", "qkd-bench") &&
              cJSON_AddStringToObject(root, "date", date) &&
              cJSON_AddStringToObject(root, "command", command) &&
              cJSON_AddNumberToObject(root, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *c = cJSON_Duplicate(cells[i], 1);
        double r = nginx_ratio(cells, n, cells[i]);
        if (c && r >= 0)
            ok = cJSON_AddNumberToObject(c, "ratio_to_nginx", r) != NULL;
        ok = ok && c && cJSON_AddItemToArray(arr, c);
    }
    ok = ok && add_cpu_target(root, cells, n);
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = (f && fprintf(f, "%s\n", text) >= 0) ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "qkd-bench: cannot write %s\n", path);
    free(text);
    return rc;
}

static void report_usage(FILE *f)
{
    fputs("usage: qkd-bench report [--md FILE] [--json FILE] [--date D] [--command TEXT] "
          "CELL.json...\n"
          "Merge the JSON reports of runs (qkd-bench run --json) into one Markdown table and\n"
          "one JSON file (at least one of --md and --json).\n"
          "  --md FILE       write the Markdown table to FILE\n"
          "  --json FILE     write the merged JSON to FILE\n"
          "  --date D        the date in the title (default today, UTC)\n"
          "  --command TEXT  the command named as the source (default \"make bench\")\n"
          "  -h, --help      this text\n"
          "Exit status: 0 written, 1 failure, 2 usage. See qkd-bench(1).\n",
          f);
}

int bench_report_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"md", required_argument, NULL, 'm'},   {"json", required_argument, NULL, 'j'},
        {"date", required_argument, NULL, 'd'}, {"command", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *md = NULL, *js = NULL, *date = NULL, *command = "make bench";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            report_usage(stdout);
            return 0;
        case 'm':
            md = optarg;
            break;
        case 'j':
            js = optarg;
            break;
        case 'd':
            date = optarg;
            break;
        case 'c':
            command = optarg;
            break;
        default:
            report_usage(stderr);
            return 2;
        }
    }
    size_t n = (size_t)(argc - optind);
    if ((!md && !js) || n == 0 || n > MAX_CELLS) {
        report_usage(stderr);
        return 2;
    }
    char today[32];
    if (!date) {
        time_t now = time(NULL);
        struct tm tm;
        if (!gmtime_r(&now, &tm) || strftime(today, sizeof today, "%Y-%m-%d", &tm) == 0)
            snprintf(today, sizeof today, "unknown");
        date = today;
    }
    cJSON *cells[MAX_CELLS];
    size_t got = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        cells[got] = read_json(argv[optind + (int)i]);
        if (!cells[got]) {
            rc = 1;
            break;
        }
        got++;
    }
    if (rc == 0 && md && write_md(md, cells, got, date, command) != 0)
        rc = 1;
    if (rc == 0 && js && write_json(js, cells, got, date, command) != 0)
        rc = 1;
    for (size_t i = 0; i < got; i++)
        cJSON_Delete(cells[i]);
    return rc;
}
