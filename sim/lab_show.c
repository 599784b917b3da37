/* lab_show.c - `qkd-lab status`: the lab's processes, each KME's pool and link state (its admin
 * /metrics) and the simulator's links (its control API), as text or as one JSON object, once
 * or every N seconds until SIGINT/SIGTERM (docs/lab.md, "Status"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "json_util.h"
#include "lab_cmds.h"
#include "lab_proc.h"

#define MANIFEST_MAX    (1u << 20)
#define WATCH_MAX_S     3600u
#define WATCH_STEP_MS   100 /* the watch loop looks at the stop flag this often */
#define WATCH_MAX_COUNT 1000000ul

typedef struct {
    char dir[QK_LAB_PATH_MAX];
    bool json;
    unsigned watch_s;    /* 0: once */
    unsigned long count; /* with watch: stop after this many refreshes (0: until a signal) */
} status_opts;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static cJSON *load_manifest(const char *dir)
{
    char p[QK_LAB_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/lab.json", dir);
    FILE *f = fopen(p, "r");
    if (!f) {
        fprintf(stderr, "qkd-lab status: %s: %s\n", p, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MANIFEST_MAX);
    size_t n = buf ? fread(buf, 1, MANIFEST_MAX, f) : 0;
    fclose(f);
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = buf ? qk_json_parse(buf, n, MANIFEST_MAX - 1, &err) : NULL;
    if (buf) {
        memset(buf, 0, n); /* it holds the SKIP PSKs */
        free(buf);
    }
    if (!j)
        fprintf(stderr, "qkd-lab status: %s: %s\n", p, err.msg[0] ? err.msg : "unreadable");
    return j;
}

/* GET base + path; the body (malloc'ed) or NULL. */
static char *get_text(const char *base, const char *path)
{
    char url[512], *body = NULL;
    qk_err err;
    qk_err_clear(&err);
    if (!base || snprintf(url, sizeof url, "%s%s", base, path) >= (int)sizeof url ||
        qk_lab_http_get(url, &body, &err) != 0)
        return NULL;
    return body;
}

/* Add name: the metric's sum over the samples matching filter, or null when it has none. */
static bool add_metric(cJSON *o, const char *name, const char *metrics, const char *metric,
                       const char *filter, bool as_bool)
{
    double v = metrics ? qk_lab_metric(metrics, metric, filter) : -1;
    if (v < 0)
        return cJSON_AddNullToObject(o, name) != NULL;
    if (as_bool)
        return cJSON_AddBoolToObject(o, name, v > 0) != NULL;
    return cJSON_AddNumberToObject(o, name, v) != NULL;
}

#define ROUTE_HOPS_MAX 15 /* a relay path: at most 16 KMEs (docs/adr/0004-key-relay.md) */

int qk_lab_route_text(const cJSON *route, char *out, size_t cap)
{
    if (!out || cap == 0)
        return -1;
    out[0] = '\0';
    const char *to = qk_json_str_or(route, "to", "?");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(route, "path");
    size_t o = 0;
    int n;
    if (!cJSON_IsArray(path)) {
        n = snprintf(out, cap, "%.128s: no route (%.256s)", to,
                     qk_json_str_or(route, "reason", "no reason given"));
        return n < 0 || (size_t)n >= cap ? -1 : 0;
    }
    int hops = cJSON_GetArraySize(path) - 1;
    if (hops < 1 || hops > ROUTE_HOPS_MAX)
        return -1;
    n = snprintf(out, cap, "%.128s:", to);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    o = (size_t)n;
    const cJSON *e;
    bool first = true;
    cJSON_ArrayForEach(e, path)
    {
        if (!cJSON_IsString(e))
            return -1;
        n = snprintf(out + o, cap - o, "%s%.128s", first ? " " : " > ", e->valuestring);
        if (n < 0 || (size_t)n >= cap - o)
            return -1;
        o += (size_t)n;
        first = false;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(route, "bottleneck");
    if (cJSON_IsNumber(b))
        n = snprintf(out + o, cap - o, " (%d hop%s, bottleneck %.0f bytes)", hops,
                     hops == 1 ? "" : "s", b->valuedouble);
    else
        n = snprintf(out + o, cap - o, " (%d hop%s)", hops, hops == 1 ? "" : "s");
    return n < 0 || (size_t)n >= cap - o ? -1 : 0;
}

/* Add "routes": the routes of the KME's topology view (its admin GET /routes, docs/qkd-kmed.md:
 * {"node","links":[...],"routes":[{"to","path":[IDs],"bottleneck"} | {"to","path":null,
 * "reason"}]}), and "routes_error": null, or why there are none (not running, no answer, a KME
 * without GET /routes, an answer that is not such an object): then "routes" is null. */
static bool add_routes(cJSON *o, const char *admin, bool alive)
{
    char why[160] = "", url[512];
    cJSON *routes = NULL;
    if (!alive) {
        snprintf(why, sizeof why, "not running");
    } else if (!admin || snprintf(url, sizeof url, "%s/routes", admin) >= (int)sizeof url) {
        snprintf(why, sizeof why, "no admin URL");
    } else {
        char *body = NULL;
        qk_err err;
        qk_err_clear(&err);
        if (qk_lab_http_get(url, &body, &err) != 0) {
            /* An older KME answers 404: its admin listener has no GET /routes. */
            snprintf(why, sizeof why, "%.150s",
                     strstr(err.msg, "HTTP 404") ? "no GET /routes: an older KME" : err.msg);
        } else {
            cJSON *j = qk_json_parse(body, strlen(body), MANIFEST_MAX, &err);
            cJSON *r = j ? cJSON_DetachItemFromObjectCaseSensitive(j, "routes") : NULL;
            if (cJSON_IsArray(r)) {
                routes = r;
            } else {
                cJSON_Delete(r);
                snprintf(why, sizeof why, "GET /routes: not a topology view");
            }
            cJSON_Delete(j);
        }
        free(body);
    }
    if (routes)
        return cJSON_AddItemToObject(o, "routes", routes) &&
               cJSON_AddNullToObject(o, "routes_error");
    return cJSON_AddNullToObject(o, "routes") && cJSON_AddStringToObject(o, "routes_error", why);
}

/* {"id","pid","running","admin_url","links":[{"id","pool_bytes","up","stale","qber",
 * "rate_bps"}],"routes","routes_error"} of one KME; the links are those of lab.json that end at
 * this KME. */
static cJSON *kme_json(const cJSON *kme, const cJSON *links, const char *dir, int *down)
{
    const char *id = qk_json_str_or(kme, "id", "?"),
               *admin = qk_json_str_or(kme, "admin_url", NULL);
    pid_t pid = (pid_t)qk_json_num_or(kme, "pid", 0);
    bool alive = qk_lab_pid_alive(pid, dir);
    *down += !alive;
    char *metrics = alive ? get_text(admin, "/metrics") : NULL;
    cJSON *o = cJSON_CreateObject(), *ls = cJSON_CreateArray();
    bool ok = o && ls && cJSON_AddStringToObject(o, "id", id) &&
              cJSON_AddNumberToObject(o, "pid", (double)pid) &&
              cJSON_AddBoolToObject(o, "running", alive) &&
              (admin ? cJSON_AddStringToObject(o, "admin_url", admin)
                     : cJSON_AddNullToObject(o, "admin_url")) &&
              cJSON_AddBoolToObject(o, "metrics", metrics != NULL);
    if (ok)
        cJSON_AddItemToObject(o, "links", ls);
    else
        cJSON_Delete(ls);
    const cJSON *l;
    cJSON_ArrayForEach(l, links)
    {
        if (!ok)
            break;
        const char *lid = qk_json_str_or(l, "id", NULL);
        const cJSON *e;
        bool mine = false;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(l, "kmes")) mine |=
            cJSON_IsString(e) && !strcmp(e->valuestring, id);
        if (!mine || !lid)
            continue;
        char filter[128];
        snprintf(filter, sizeof filter, "link=\"%s\"", lid);
        cJSON *x = cJSON_CreateObject();
        ok = x && cJSON_AddItemToArray(ls, x) && cJSON_AddStringToObject(x, "id", lid) &&
             add_metric(x, "pool_bytes", metrics, "qkd_pool_bytes", filter, false) &&
             add_metric(x, "up", metrics, "qkd_link_up", filter, true) &&
             add_metric(x, "stale", metrics, "qkd_link_telemetry_stale", filter, true) &&
             add_metric(x, "qber", metrics, "qkd_link_qber", filter, false) &&
             add_metric(x, "rate_bps", metrics, "qkd_link_rate_bps", filter, false);
    }
    free(metrics);
    ok = ok && add_routes(o, admin, alive);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* {"pid","running","url","links":[...]}: links are the simulator's own link objects
 * (GET /v1/status, docs/qkd-sim.md), null when it did not answer. */
static cJSON *sim_json(const cJSON *m, const char *dir, int *down)
{
    const char *url = qk_json_str_or(m, "sim_url", NULL);
    pid_t pid = (pid_t)qk_json_num_or(m, "sim_pid", 0);
    bool alive = qk_lab_pid_alive(pid, dir);
    *down += pid > 0 && !alive; /* pid 0: no simulator, every link is device-fed */
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "pid", (double)pid) ||
        !cJSON_AddBoolToObject(o, "running", alive) ||
        !(url ? cJSON_AddStringToObject(o, "url", url) : cJSON_AddNullToObject(o, "url"))) {
        cJSON_Delete(o);
        return NULL;
    }
    char *body = alive ? get_text(url, "/v1/status") : NULL;
    qk_err err;
    qk_err_clear(&err);
    cJSON *st = body ? qk_json_parse(body, strlen(body), MANIFEST_MAX, &err) : NULL;
    free(body);
    cJSON *links = st ? cJSON_DetachItemFromObjectCaseSensitive(st, "links") : NULL;
    cJSON_Delete(st);
    if (links && cJSON_IsArray(links)) {
        cJSON_AddItemToObject(o, "links", links);
    } else {
        cJSON_Delete(links);
        if (!cJSON_AddNullToObject(o, "links")) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* The whole status: {"dir","time","kmes":[...],"sim":{...},"not_running":N}. */
static cJSON *snapshot(const char *dir, const cJSON *m, int *down)
{
    *down = 0;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(ts, sizeof ts, "?");
    cJSON *o = cJSON_CreateObject(), *kmes = cJSON_CreateArray();
    bool ok = o && kmes && cJSON_AddStringToObject(o, "dir", dir) &&
              cJSON_AddStringToObject(o, "time", ts);
    if (ok)
        cJSON_AddItemToObject(o, "kmes", kmes);
    else
        cJSON_Delete(kmes);
    const cJSON *links = cJSON_GetObjectItemCaseSensitive(m, "links"), *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(m, "kmes"))
    {
        cJSON *x = ok ? kme_json(k, links, dir, down) : NULL;
        ok = x && cJSON_AddItemToArray(kmes, x);
    }
    cJSON *sim = ok ? sim_json(m, dir, down) : NULL;
    ok = sim && cJSON_AddItemToObject(o, "sim", sim) &&
         cJSON_AddNumberToObject(o, "not_running", *down);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void print_text(const cJSON *s)
{
    printf("lab %s (%s)\n", qk_json_str_or(s, "dir", "?"), qk_json_str_or(s, "time", "?"));
    const cJSON *k, *l;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(s, "kmes"))
    {
        bool run = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "running"));
        printf("%-10s pid %-7d %-8s", qk_json_str_or(k, "id", "?"),
               (int)qk_json_num_or(k, "pid", 0), run ? "running" : "STOPPED");
        cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(k, "links"))
        {
            const cJSON *up = cJSON_GetObjectItemCaseSensitive(l, "up");
            bool stale = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "stale"));
            printf("  %s: pool %.0f bits, link %s", qk_json_str_or(l, "id", "?"),
                   qk_json_num_or(l, "pool_bytes", 0) * 8,
                   !cJSON_IsBool(up)  ? "?"
                   : cJSON_IsTrue(up) ? "up"
                   : stale            ? "down (no telemetry)"
                                      : "down");
        }
        printf("\n");
        const cJSON *r, *routes = cJSON_GetObjectItemCaseSensitive(k, "routes");
        if (!cJSON_IsArray(routes)) {
            if (run)
                printf("  routes: unknown (%s)\n", qk_json_str_or(k, "routes_error", "?"));
            continue;
        }
        cJSON_ArrayForEach(r, routes)
        {
            char line[QK_LAB_ROUTE_TEXT_MAX];
            if (qk_lab_route_text(r, line, sizeof line) == 0)
                printf("  route to %s\n", line);
            else
                printf("  route to %s: ? (an answer this qkd-lab cannot read)\n",
                       qk_json_str_or(r, "to", "?"));
        }
    }
    const cJSON *sim = cJSON_GetObjectItemCaseSensitive(s, "sim");
    bool run = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sim, "running"));
    printf("%-10s pid %-7d %-8s %s\n", "qkd-sim", (int)qk_json_num_or(sim, "pid", 0),
           run ? "running" : "STOPPED", qk_json_str_or(sim, "url", ""));
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(sim, "links"))
    {
        printf("  link %-20s %-8s qber %.4f  rate %.1f bit/s  delivered %.0f bits\n",
               qk_json_str_or(l, "id", "?"), qk_json_str_or(l, "state", "?"),
               qk_json_num_or(l, "qber", 0), qk_json_num_or(l, "rate_bps", 0),
               qk_json_num_or(l, "delivered_bits", 0));
    }
    int down = (int)qk_json_num_or(s, "not_running", 0);
    if (down)
        printf("%d process(es) not running\n", down);
}

/* One refresh: print the status; 0 when every process runs, 1 otherwise. */
static int show_once(const status_opts *o)
{
    cJSON *m = load_manifest(o->dir);
    if (!m)
        return 1;
    int down = 0;
    cJSON *s = snapshot(o->dir, m, &down);
    cJSON_Delete(m);
    if (!s) {
        fprintf(stderr, "qkd-lab status: out of memory\n");
        return 1;
    }
    if (o->json) {
        char *t = cJSON_PrintUnformatted(s);
        if (t)
            printf("%s\n", t);
        free(t);
    } else {
        print_text(s);
    }
    cJSON_Delete(s);
    fflush(stdout);
    return down ? 1 : 0;
}

static int usage(FILE *f, int rc)
{
    fprintf(f, "usage: qkd-lab status --dir DIR [--json] [--watch N [--count M]]\n"
               "Show the lab's processes, each KME's pools and link states (admin /metrics)\n"
               "and the simulator's links. --json: one JSON object per refresh (qkd-lab(1)).\n"
               "--watch N: refresh every N s (1..3600) until SIGINT/SIGTERM (exit 0), or M\n"
               "times (then the exit status of the last one).\n"
               "Exit 0 when every process runs, 1 otherwise, 2 on bad usage.\n");
    return rc;
}

static int parse_opts(int argc, char **argv, status_opts *o)
{
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},   {"json", no_argument, NULL, 'j'},
        {"watch", required_argument, NULL, 'w'}, {"count", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    const char *d = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        if (ch == 'w' || ch == 'c') {
            errno = 0;
            v = optarg[0] >= '0' && optarg[0] <= '9' ? strtoul(optarg, &end, 10) : 0;
            if (errno || !end || *end || v == 0 ||
                v > (ch == 'w' ? WATCH_MAX_S : WATCH_MAX_COUNT)) {
                fprintf(stderr, "qkd-lab status: --%s: expected 1..%lu\n",
                        ch == 'w' ? "watch" : "count",
                        ch == 'w' ? (unsigned long)WATCH_MAX_S : WATCH_MAX_COUNT);
                return 2;
            }
        }
        if (ch == 'd')
            d = optarg;
        else if (ch == 'j')
            o->json = true;
        else if (ch == 'w')
            o->watch_s = (unsigned)v;
        else if (ch == 'c')
            o->count = v;
        else
            return usage(ch == 'h' ? stdout : stderr, ch == 'h' ? 0 : 2);
    }
    if (!d || optind != argc || (o->count && !o->watch_s))
        return usage(stderr, 2);
    qk_err err;
    qk_err_clear(&err);
    if (qk_lab_abs_dir(d, o->dir, sizeof o->dir, &err) != 0) {
        fprintf(stderr, "qkd-lab status: %s\n", err.msg);
        return 1;
    }
    return -1;
}

/* Sleep ms in WATCH_STEP_MS steps; true when a stop signal came. */
static bool sleep_or_stop(unsigned ms)
{
    for (unsigned t = 0; t < ms && !stop_requested; t += WATCH_STEP_MS) {
        struct timespec ts = {0, WATCH_STEP_MS * 1000000L};
        (void)nanosleep(&ts, NULL); /* EINTR: the flag is looked at next */
    }
    return stop_requested;
}

int qk_lab_cmd_status(int argc, char **argv)
{
    status_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (qk_http_global_init() != 0)
        return 1;
    if (!o.watch_s) {
        rc = show_once(&o);
        qk_http_global_cleanup();
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    stop_requested = 0;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        fprintf(stderr, "qkd-lab status: sigaction: %s\n", strerror(errno));
        qk_http_global_cleanup();
        return 1;
    }
    bool tty = !o.json && isatty(STDOUT_FILENO);
    for (unsigned long n = 1;; n++) {
        if (tty)
            printf("\033[H\033[2J"); /* ECMA-48 CUP + ED: redraw from the top */
        else if (!o.json && n > 1)
            printf("\n");
        rc = show_once(&o);
        if ((o.count && n >= o.count) || sleep_or_stop(o.watch_s * 1000u))
            break;
    }
    qk_http_global_cleanup();
    return stop_requested ? 0 : rc;
}
