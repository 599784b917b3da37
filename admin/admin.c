/* admin.c - /healthz and /metrics (the Prometheus text of the pools, the link telemetry and
 * the request counters of kms/metrics.c). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct {
    const char *link;
    qk_pool_status st;
    bool ok;
} pool_row;

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
    int bad = fprintf(f, "# HELP qkd_pool_bits Uncarved confirmed key material per link.\n"
                         "# TYPE qkd_pool_bits gauge\n") < 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].ok)
            bad |= fprintf(f, "qkd_pool_bits{link=\"%s\"} %llu\n", rows[i].link,
                           (unsigned long long)rows[i].st.bytes_available * 8) < 0;
    bad |= fprintf(f, "# HELP qkd_blocks Key blocks per link and state.\n"
                      "# TYPE qkd_blocks gauge\n") < 0;
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
    qk_pool_status sum;
    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].ok)
            continue;
        sum.keys_pending += rows[i].st.keys_pending;
        sum.keys_reserved += rows[i].st.keys_reserved;
        sum.keys_delivered += rows[i].st.keys_delivered;
        sum.keys_burned += rows[i].st.keys_burned;
        sum.keys_expired += rows[i].st.keys_expired;
    }
    free(rows);
    bad |= fprintf(f,
                   "# HELP qkd_keys_total Keys by state (all links).\n"
                   "# TYPE qkd_keys_total gauge\n"
                   "qkd_keys_total{state=\"pending\"} %llu\n"
                   "qkd_keys_total{state=\"reserved\"} %llu\n"
                   "qkd_keys_total{state=\"delivered\"} %llu\n"
                   "qkd_keys_total{state=\"burned\"} %llu\n"
                   "qkd_keys_total{state=\"expired\"} %llu\n",
                   (unsigned long long)sum.keys_pending, (unsigned long long)sum.keys_reserved,
                   (unsigned long long)sum.keys_delivered, (unsigned long long)sum.keys_burned,
                   (unsigned long long)sum.keys_expired) < 0;
    return bad ? -1 : 0;
}

static double tele_qber(const qk_link_telemetry *t)
{
    return t->qber;
}

static double tele_rate(const qk_link_telemetry *t)
{
    return t->rate_bps;
}

static double tele_up(const qk_link_telemetry *t)
{
    return strcmp(t->state, "up") == 0;
}

/* The gauges of the device telemetry, one sample per link that has reported (%.6g: 0 and 1
 * print as "0" and "1"). */
static const struct {
    const char *name, *help;
    double (*value)(const qk_link_telemetry *t);
} TELEMETRY[] = {
    {"qkd_link_qber", "Last QBER reported by the link's device.", tele_qber},
    {"qkd_link_rate_bps", "Last secret-key rate reported by the device.", tele_rate},
    {"qkd_link_up", "1 when the device last reported state \"up\".", tele_up},
};

static int write_telemetry(qk_kms *k, FILE *f)
{
    int bad = 0;
    for (size_t m = 0; m < sizeof TELEMETRY / sizeof TELEMETRY[0]; m++) {
        const char *name = TELEMETRY[m].name;
        bad |= fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, TELEMETRY[m].help, name) < 0;
        for (size_t i = 0; i < qk_kms_link_count(k); i++) {
            qk_link *l = qk_kms_link_at(k, i);
            qk_link_telemetry t;
            qk_link_get_telemetry(l, &t);
            if (t.updated_at)
                bad |= fprintf(f, "%s{link=\"%s\"} %.6g\n", name, l->cfg->link_id,
                               TELEMETRY[m].value(&t)) < 0;
        }
    }
    return bad ? -1 : 0;
}

/* The Prometheus text of every family; malloc'ed (length in *len), or NULL. */
static char *render_metrics(qk_kms *k, size_t *len)
{
    char *buf = NULL;
    *len = 0;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    int bad = write_pools(k, f);
    bad |= write_telemetry(k, f);
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
    if (!healthz && strcmp(req->path, "/metrics") != 0) {
        qk_http_reply_message(rep, 404, "unknown path");
        return;
    }
    /* HEAD: libmicrohttpd sends the headers of the GET answer without its body. */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        qk_http_reply_message(rep, 405, "method not allowed");
        qk_http_reply_allow(rep, "GET, HEAD");
        return;
    }
    if (healthz) {
        static const char ok[] = "ok\n";
        qk_http_reply_set(rep, 200, "text/plain; charset=utf-8", ok, sizeof ok - 1);
        return;
    }
    size_t len = 0;
    char *body = render_metrics(h->kms, &len);
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
