/* admin.c - /healthz, /metrics (the Prometheus text of the pools, the link telemetry, the
 * topology view and the request counters of kms/metrics.c) and /routes (the topology view and
 * routes as JSON, kms/kms_topo.h). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_util.h"
#include "kms_topo.h"
#include "log.h"

#define QK_STR_(x) #x
#define QK_STR(x)  QK_STR_(x)

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct {
    const char *link;
    qk_pool_status st;
    bool ok;
} pool_row;

/* One family's HELP and TYPE lines (the Prometheus text exposition format 0.0.4). */
static int family(FILE *f, const char *name, const char *type, const char *help)
{
    return fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
}

/* The pool cap of each device-fed link (kmed.conf max_pool_bytes; the local link has none):
 * what it bounds, the cap, whether the link is full, and the blocks refused for it. rows[i] is
 * link i. */
static int write_pool_cap(qk_kms *k, const pool_row *rows, size_t n, FILE *f)
{
    int bad = family(f, "qkd_pool_held_bytes", "gauge",
                     "Uncarved key material in pending and confirmed blocks (what "
                     "max_pool_bytes bounds), per link, in bytes.");
    for (size_t i = 0; i < n; i++)
        if (rows[i].ok)
            bad |= fprintf(f, "qkd_pool_held_bytes{link=\"%s\"} %llu\n", rows[i].link,
                           (unsigned long long)rows[i].st.bytes_held) < 0;
    bad |= family(f, "qkd_pool_max_bytes", "gauge", "The pool cap of each link (max_pool_bytes).");
    for (size_t i = 0; i < n; i++)
        bad |= fprintf(f, "qkd_pool_max_bytes{link=\"%s\"} %llu\n", rows[i].link,
                       (unsigned long long)qk_kms_link_at(k, i)->cfg->max_pool_bytes) < 0;
    bad |= family(f, "qkd_pool_full", "gauge",
                  "1 while the last new block the device offered was refused for the pool cap.");
    for (size_t i = 0; i < n; i++)
        if (rows[i].ok)
            bad |= fprintf(f, "qkd_pool_full{link=\"%s\"} %d\n", rows[i].link,
                           rows[i].st.full ? 1 : 0) < 0;
    bad |= family(f, "qkd_blocks_refused_total", "counter",
                  "New blocks the device API refused, per link and reason (full: 507).");
    for (size_t i = 0; i < n; i++)
        if (rows[i].ok)
            bad |= fprintf(f, "qkd_blocks_refused_total{link=\"%s\",reason=\"full\"} %llu\n",
                           rows[i].link, (unsigned long long)rows[i].st.blocks_refused_full) < 0;
    return bad;
}

static int write_pools(qk_kms *k, FILE *f)
{
    size_t n = qk_kms_link_count(k) + 1;
    pool_row *rows = calloc(n, sizeof *rows);
    if (!rows)
        return -1;
    for (size_t i = 0; i < n; i++) {
        qk_err err;
        rows[i].link = i == 0 ? QK_LOCAL_LINK : qk_kms_link_at(k, i - 1)->cfg->link_id;
        rows[i].ok = qk_store_pool_status(qk_kms_store(k), rows[i].link, &rows[i].st, &err) == 0;
        if (!rows[i].ok)
            QK_WARN("metrics: pool status of %s: %s", rows[i].link, err.msg);
    }
    int bad = family(f, "qkd_pool_bytes", "gauge",
                     "Uncarved key material in confirmed blocks, per link, in bytes.");
    for (size_t i = 0; i < n; i++)
        if (rows[i].ok)
            bad |= fprintf(f, "qkd_pool_bytes{link=\"%s\"} %llu\n", rows[i].link,
                           (unsigned long long)rows[i].st.bytes_available) < 0;
    bad |= family(f, "qkd_blocks", "gauge", "Key blocks per link and state.");
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].ok)
            continue;
        const qk_pool_status *s = &rows[i].st;
        bad |= fprintf(f,
                       "qkd_blocks{link=\"%s\",state=\"pending\"} %llu\n"
                       "qkd_blocks{link=\"%s\",state=\"confirmed\"} %llu\n"
                       "qkd_blocks{link=\"%s\",state=\"burned\"} %llu\n",
                       rows[i].link, (unsigned long long)s->blocks_pending, rows[i].link,
                       (unsigned long long)s->blocks_confirmed, rows[i].link,
                       (unsigned long long)s->blocks_burned) < 0;
    }
    bad |= family(f, "qkd_keys", "gauge", "Keys carved from each link's pool, by state.");
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].ok)
            continue;
        const qk_pool_status *s = &rows[i].st;
        const struct {
            const char *state;
            uint64_t n;
        } keys[] = {{"pending", s->keys_pending},
                    {"reserved", s->keys_reserved},
                    {"delivered", s->keys_delivered},
                    {"burned", s->keys_burned},
                    {"expired", s->keys_expired}};
        for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
            bad |= fprintf(f, "qkd_keys{link=\"%s\",state=\"%s\"} %llu\n", rows[i].link,
                           keys[j].state, (unsigned long long)keys[j].n) < 0;
    }
    bad |= write_pool_cap(k, rows + 1, n - 1, f);
    free(rows);
    return bad ? -1 : 0;
}

void qk_admin_link_view_of(const qk_link_telemetry *t, uint64_t now_s, uint64_t stale_s,
                           qk_admin_link_view *v)
{
    memset(v, 0, sizeof *v);
    v->reported = t->updated_at != 0;
    /* A clock that went back makes the report look recent: the next reports set it right. */
    uint64_t age = v->reported && now_s > t->updated_at ? now_s - t->updated_at : 0;
    v->age_s = (double)age;
    v->stale = !v->reported || age > stale_s;
    v->up = !v->stale && strcmp(t->state, "up") == 0;
    v->qber = t->qber;
    v->rate_bps = v->stale ? 0.0 : t->rate_bps;
    v->delivered_bytes = t->delivered_bits / 8;
}

static double view_qber(const qk_admin_link_view *v)
{
    return v->qber;
}

static double view_rate(const qk_admin_link_view *v)
{
    return v->rate_bps;
}

static double view_up(const qk_admin_link_view *v)
{
    return v->up;
}

static double view_stale(const qk_admin_link_view *v)
{
    return v->stale;
}

static double view_age(const qk_admin_link_view *v)
{
    return v->age_s;
}

static double view_delivered(const qk_admin_link_view *v)
{
    return (double)v->delivered_bytes;
}

/* The families of the device telemetry, one sample per link (gauges %.6g: 0 and 1 print as
 * "0" and "1"; the counter %.17g, exact up to 2^53). `when` says which links have a sample. */
enum { EVERY_LINK, REPORTED, FRESH };
static const struct {
    const char *name, *type, *help;
    int when;
    double (*value)(const qk_admin_link_view *v);
} TELEMETRY[] = {
    {"qkd_link_up", "gauge",
     "1 when the device's last report, at most telemetry_stale (kmed.conf [link]) old, said "
     "\"up\"; 0 otherwise.",
     EVERY_LINK, view_up},
    {"qkd_link_telemetry_stale", "gauge",
     "1 when the device never reported or not for more than telemetry_stale (kmed.conf [link]).",
     EVERY_LINK, view_stale},
    {"qkd_link_telemetry_age_seconds", "gauge", "Seconds since the device's last report.", REPORTED,
     view_age},
    {"qkd_link_qber", "gauge", "Quantum bit error rate of the device's last fresh report (0..1).",
     FRESH, view_qber},
    {"qkd_link_rate_bps", "gauge",
     "Secret-key rate of the device's last report, in bits per second; 0 when stale.", REPORTED,
     view_rate},
    {"qkd_link_delivered_bytes_total", "counter",
     "Key bytes the device reports delivered on the link (its own running count).", REPORTED,
     view_delivered},
};

static int write_telemetry(qk_kms *k, FILE *f)
{
    size_t n = qk_kms_link_count(k);
    qk_admin_link_view *views = calloc(n ? n : 1, sizeof *views);
    if (!views)
        return -1;
    uint64_t now = qk_now_s();
    for (size_t i = 0; i < n; i++) {
        qk_link_telemetry t;
        qk_link *l = qk_kms_link_at(k, i);
        qk_link_get_telemetry(l, &t);
        qk_admin_link_view_of(&t, now, l->cfg->telemetry_stale_s, &views[i]);
    }
    int bad = 0;
    for (size_t m = 0; m < sizeof TELEMETRY / sizeof TELEMETRY[0]; m++) {
        const char *name = TELEMETRY[m].name;
        bad |= family(f, name, TELEMETRY[m].type, TELEMETRY[m].help);
        for (size_t i = 0; i < n; i++) {
            const qk_admin_link_view *v = &views[i];
            if ((TELEMETRY[m].when == REPORTED && !v->reported) ||
                (TELEMETRY[m].when == FRESH && v->stale))
                continue;
            bool counter = strcmp(TELEMETRY[m].type, "counter") == 0;
            bad |= fprintf(f, counter ? "%s{link=\"%s\"} %.17g\n" : "%s{link=\"%s\"} %.6g\n", name,
                           qk_kms_link_at(k, i)->cfg->link_id, TELEMETRY[m].value(v)) < 0;
        }
    }
    free(views);
    return bad ? -1 : 0;
}

/* The topology view in numbers (docs/qkd-kmed.md "Relay and routing"). No sample when the
 * view cannot be built (the reason is logged). */
static int write_topology(qk_kms *k, FILE *f)
{
    qk_kms_topo_stat st;
    qk_err err;
    if (qk_kms_topo_stats(k, &st, &err) != 0) {
        QK_WARN("metrics: topology: %s", err.msg);
        return 0;
    }
    int bad = family(f, "qkd_topology_nodes", "gauge",
                     "KMEs in this KME's view of the network (itself included).");
    bad |= fprintf(f, "qkd_topology_nodes %zu\n", st.nodes) < 0;
    bad |= family(f, "qkd_topology_links", "gauge",
                  "Links in this KME's view of the network, by state (up, down, held_down: "
                  "down for hold_down after a failed relay).");
    bad |= fprintf(f,
                   "qkd_topology_links{state=\"up\"} %zu\nqkd_topology_links{state=\"down\"} "
                   "%zu\nqkd_topology_links{state=\"held_down\"} %zu\n",
                   st.links_up, st.links_down, st.links_held_down) < 0;
    return bad;
}

char *qk_admin_render_metrics(qk_kms *k, size_t *len)
{
    char *buf = NULL;
    *len = 0;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    int bad = write_pools(k, f);
    bad |= write_telemetry(k, f);
    bad |= write_topology(k, f);
    bad |= qk_metrics_write(qk_kms_metrics(k), f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void admin_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    qk_admin_handler *h = (qk_admin_handler *)self;
    bool healthz = strcmp(req->path, "/healthz") == 0;
    bool routes = strcmp(req->path, "/routes") == 0;
    if (!healthz && !routes && strcmp(req->path, "/metrics") != 0) {
        qk_http_reply_message(rep, 404, "unknown path");
        return;
    }
    /* HEAD: the front end sends the headers of the GET answer without its body. */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        qk_http_reply_not_allowed(rep, "GET, HEAD");
        return;
    }
    if (healthz) {
        static const char ok[] = "ok\n";
        qk_http_reply_set(rep, 200, "text/plain; charset=utf-8", ok, sizeof ok - 1);
        return;
    }
    if (routes) {
        char *json = NULL;
        size_t jlen = 0;
        qk_err err;
        if (qk_kms_topo_json(h->kms, &json, &jlen, &err) != 0) {
            QK_WARN("routes: %s", err.msg);
            qk_http_reply_message(rep, 500, "cannot build the topology view");
            return;
        }
        qk_http_reply_take(rep, 200, "application/json", json, jlen);
        return;
    }
    size_t len = 0;
    char *body = qk_admin_render_metrics(h->kms, &len);
    if (!body) {
        qk_http_reply_message(rep, 500, "cannot render metrics");
        return;
    }
    qk_http_reply_take(rep, 200, PROM_TYPE, body, len);
}

void qk_admin_configure(qk_admin_handler *h, qk_kms *kms)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = admin_on_req;
    h->kms = kms;
}
