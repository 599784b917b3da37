/* sim_control.c - loopback control API of qkd-sim (status, fault injection, /metrics). */
#include "sim_control.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_envelope.h"
#include "json_util.h"
#include "tls_server.h"

#define CONTROL_MAX_BODY 4096
#define LINKS_PREFIX     "/v1/links/"

/* The control API's request handler (common/http_envelope.h): the envelope collects the body
 * within CONTROL_MAX_BODY (past it: 413) and writes the request log line. */
typedef struct {
    qk_http_handler super; /* first: the envelope calls on_req with &super */
    qk_sim_link *const *links;
    size_t nlinks;
} control_handler;

struct qk_sim_control {
    control_handler h; /* must outlive the listener */
    qk_tls_server *srv;
};

char *qk_sim_status_json(qk_sim_link *const *links, size_t nlinks)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    len = (size_t)snprintf(out, cap, "{\"links\":[");
    for (size_t i = 0; i < nlinks; i++) {
        qk_link_status st;
        qk_sim_link_status(links[i], &st);
        char *j = qk_link_status_json(&st);
        if (!j) {
            free(out);
            return NULL;
        }
        size_t need = len + strlen(j) + 8;
        if (need > cap) {
            char *n = realloc(out, need * 2);
            if (!n) {
                free(j);
                free(out);
                return NULL;
            }
            out = n;
            cap = need * 2;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", j);
        free(j);
    }
    if (len + 4 > cap) {
        char *n = realloc(out, len + 4);
        if (!n) {
            free(out);
            return NULL;
        }
        out = n;
        cap = len + 4;
    }
    snprintf(out + len, cap - len, "]}");
    return out;
}

/* ---- GET /metrics ------------------------------------------------------------------------ */

/* One family: a gauge or counter with one sample per link (or per link and label value). */
typedef struct {
    const char *name, *type, *help;
    const char *label;         /* extra label name, or NULL */
    const char *const *values; /* its values (NULL-terminated) */
    double (*value)(const qk_link_status *st, size_t i);
} sim_family;

static const char *const STATES[] = {"up", "down", "aborted", NULL};
static const char *const RESULTS[] = {"delivered", "dropped", "corrupted", "failed", NULL};
static const char *const ENDS[] = {"a", "b", NULL};
static const char *const END_RESULTS[] = {"a/ok",          "a/conflict",    "a/refused",
                                          "a/unreachable", "b/ok",          "b/conflict",
                                          "b/refused",     "b/unreachable", NULL};

static double m_state(const qk_link_status *st, size_t i)
{
    return strcmp(st->state, STATES[i]) == 0;
}

static double m_qber(const qk_link_status *st, size_t i)
{
    return st->qber;
}

static double m_rate(const qk_link_status *st, size_t i)
{
    return st->rate_bps;
}

static double m_model_rate(const qk_link_status *st, size_t i)
{
    return st->model_rate_bps;
}

static double m_time_scale(const qk_link_status *st, size_t i)
{
    return st->time_scale;
}

static double m_distance(const qk_link_status *st, size_t i)
{
    return st->distance_km * 1000.0;
}

static double m_blocks(const qk_link_status *st, size_t i)
{
    /* every emitted block is counted once: dropped, corrupted, failed or delivered */
    uint64_t other = st->dropped_blocks + st->corrupted_blocks + st->failed_blocks;
    const uint64_t v[] = {st->blocks > other ? st->blocks - other : 0, st->dropped_blocks,
                          st->corrupted_blocks, st->failed_blocks};
    return (double)v[i];
}

static double m_delivered(const qk_link_status *st, size_t i)
{
    return (double)(st->delivered_bits / 8);
}

static double m_lost(const qk_link_status *st, size_t i)
{
    return floor(st->lost_bits / 8.0);
}

static double m_end(const qk_link_status *st, size_t i)
{
    size_t e = i / 4; /* END_RESULTS: four answers of end a, then of end b */
    const uint64_t v[] = {st->ends[e].ok, st->ends[e].conflicts, st->ends[e].refused,
                          st->ends[e].unreachable};
    return (double)v[i % 4];
}

static double m_down(const qk_link_status *st, size_t i)
{
    return st->faults.down;
}

static double m_eve(const qk_link_status *st, size_t i)
{
    return st->faults.eve_fraction;
}

static double m_loss(const qk_link_status *st, size_t i)
{
    return st->faults.loss_db;
}

static double m_drop(const qk_link_status *st, size_t i)
{
    return st->faults.drop == (qk_end)i;
}

static double m_corrupt(const qk_link_status *st, size_t i)
{
    return st->faults.corrupt == (qk_end)i;
}

static double m_delay(const qk_link_status *st, size_t i)
{
    return st->faults.delay_ms / 1000.0;
}

static const sim_family FAMILIES[] = {
    /* m_state(st, 0) is the state "up" */
    {"qkd_sim_link_up", "gauge", "1 when the link produces key (state up).", NULL, NULL, m_state},
    {"qkd_sim_link_state", "gauge", "1 for the link's current state.", "state", STATES, m_state},
    {"qkd_sim_link_qber", "gauge", "Quantum bit error rate of the model (0..1).", NULL, NULL,
     m_qber},
    {"qkd_sim_link_rate_bps", "gauge",
     "Delivered secret-key rate in bits per second (model rate x time scale; 0 when not up).", NULL,
     NULL, m_rate},
    {"qkd_sim_link_model_rate_bps", "gauge",
     "Secret-key rate of the model in bits per second (unscaled).", NULL, NULL, m_model_rate},
    {"qkd_sim_link_time_scale", "gauge", "Factor from the model rate to the delivered rate.", NULL,
     NULL, m_time_scale},
    {"qkd_sim_link_distance_meters", "gauge", "Fibre length of the link.", NULL, NULL, m_distance},
    {"qkd_sim_link_blocks_total", "counter", "Key blocks emitted, by what became of them.",
     "result", RESULTS, m_blocks},
    {"qkd_sim_link_delivered_bytes_total", "counter",
     "Key bytes delivered to both ends (blocks both KMEs accepted).", NULL, NULL, m_delivered},
    {"qkd_sim_link_lost_bytes_total", "counter",
     "Key bytes earned but not emitted because delivery lagged.", NULL, NULL, m_lost},
    {"qkd_sim_link_deliveries_total", "counter",
     "Block deliveries per end (a, b) and answer (ok, conflict, refused, unreachable).",
     "end/result", END_RESULTS, m_end},
    {"qkd_sim_link_fault_down", "gauge", "1 while the down fault is set.", NULL, NULL, m_down},
    {"qkd_sim_link_fault_eve_ratio", "gauge", "Intercept-resend fraction of the eve fault.", NULL,
     NULL, m_eve},
    {"qkd_sim_link_fault_loss_decibels", "gauge", "Extra channel loss of the loss fault.", NULL,
     NULL, m_loss},
    {"qkd_sim_link_fault_drop", "gauge", "1 when blocks are not sent to this end.", "end", ENDS,
     m_drop},
    {"qkd_sim_link_fault_corrupt", "gauge", "1 when this end gets other bytes.", "end", ENDS,
     m_corrupt},
    {"qkd_sim_link_fault_delay_seconds", "gauge", "Wait before each delivery.", NULL, NULL,
     m_delay},
};

/* The labels of value v of family fam: ",state=\"up\"" or, for "end/result" values "a/ok",
 * ",end=\"a\",result=\"ok\"". */
static int write_labels(FILE *f, const sim_family *fam, const char *v)
{
    if (!fam->label)
        return 0;
    const char *slash = strchr(fam->label, '/');
    if (!slash)
        return fprintf(f, ",%s=\"%s\"", fam->label, v) < 0;
    const char *vs = strchr(v, '/');
    return fprintf(f, ",%.*s=\"%.*s\",%s=\"%s\"", (int)(slash - fam->label), fam->label,
                   (int)(vs - v), v, slash + 1, vs + 1) < 0;
}

int qk_sim_metrics_write(const qk_link_status *st, size_t n, FILE *f)
{
    int bad = 0;
    for (size_t k = 0; k < sizeof FAMILIES / sizeof FAMILIES[0]; k++) {
        const sim_family *fam = &FAMILIES[k];
        bool counter = strcmp(fam->type, "counter") == 0;
        bad |= fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                       fam->type) < 0;
        for (size_t l = 0; l < n; l++) {
            size_t nv = 1;
            if (fam->values)
                for (nv = 0; fam->values[nv]; nv++)
                    ;
            for (size_t i = 0; i < nv; i++) {
                bad |= fprintf(f, "%s{link=\"%s\"", fam->name, st[l].id) < 0;
                if (fam->values)
                    bad |= write_labels(f, fam, fam->values[i]);
                double v = fam->value(&st[l], i);
                bad |= fprintf(f, counter ? "} %.17g\n" : "} %.6g\n", v) < 0;
            }
        }
    }
    return bad ? -1 : 0;
}

static char *metrics_text(qk_sim_link *const *links, size_t nlinks, size_t *len)
{
    qk_link_status *st = calloc(nlinks ? nlinks : 1, sizeof *st);
    if (!st)
        return NULL;
    for (size_t i = 0; i < nlinks; i++)
        qk_sim_link_status(links[i], &st[i]);
    char *buf = NULL;
    *len = 0;
    FILE *f = open_memstream(&buf, len);
    int bad = !f || qk_sim_metrics_write(st, nlinks, f) != 0;
    free(st);
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

static qk_sim_link *find_link(const control_handler *h, const char *id, size_t len)
{
    for (size_t i = 0; i < h->nlinks; i++) {
        const char *lid = qk_sim_link_id(h->links[i]);
        if (strlen(lid) == len && memcmp(lid, id, len) == 0)
            return h->links[i];
    }
    return NULL;
}

static char *link_json(qk_sim_link *l)
{
    qk_link_status st;
    qk_sim_link_status(l, &st);
    return qk_link_status_json(&st);
}

static void do_fault(qk_http_reply *rep, qk_sim_link *l, const qk_http_request *req)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = qk_json_parse(req->body, req->body_len, CONTROL_MAX_BODY, &err);
    const char *name = NULL, *value = NULL;
    if (!j || !cJSON_IsObject(j) || qk_json_get_string(j, "fault", true, &name, NULL, &err) != 0 ||
        qk_json_get_string(j, "value", false, &value, NULL, &err) != 0) {
        cJSON_Delete(j);
        qk_http_reply_message(rep, 400,
                              err.msg[0] ? err.msg : "expected {\"fault\":..., \"value\":...}");
        return;
    }
    int rc = qk_sim_link_fault(l, name, value, &err);
    if (rc == 0)
        qk_http_reply_detail(rep, "fault %s", name);
    cJSON_Delete(j);
    if (rc != 0)
        qk_http_reply_message(rep, 400, err.msg);
    else
        qk_http_reply_json_take(rep, link_json(l));
}

static void control_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    control_handler *h = (control_handler *)self;
    const char *url = req->path;
    bool get = strcmp(req->method, "GET") == 0;
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *text = get ? metrics_text(h->links, h->nlinks, &len) : NULL;
        if (!get)
            qk_http_reply_not_allowed(rep, "GET");
        else if (!text)
            qk_http_reply_message(rep, 500, "cannot render metrics");
        else
            qk_http_reply_take(rep, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        return;
    }
    if (strcmp(url, "/v1/status") == 0) {
        if (!get)
            qk_http_reply_not_allowed(rep, "GET");
        else
            qk_http_reply_json_take(rep, qk_sim_status_json(h->links, h->nlinks));
        return;
    }
    if (strncmp(url, LINKS_PREFIX, strlen(LINKS_PREFIX)) == 0) {
        const char *id = url + strlen(LINKS_PREFIX);
        const char *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        qk_sim_link *l = find_link(h, id, idlen);
        if (!l) {
            qk_http_reply_message(rep, 404, "unknown link");
            return;
        }
        if (!slash) {
            if (!get)
                qk_http_reply_not_allowed(rep, "GET");
            else
                qk_http_reply_json_take(rep, link_json(l));
            return;
        }
        if (strcmp(slash, "/fault") == 0) {
            if (strcmp(req->method, "POST") != 0)
                qk_http_reply_not_allowed(rep, "POST");
            else
                do_fault(rep, l, req);
            return;
        }
    }
    qk_http_reply_message(rep, 404, "unknown path");
}

static void control_configure(control_handler *h, qk_sim_link *const *links, size_t nlinks)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = control_on_req;
    h->links = links;
    h->nlinks = nlinks;
}

int qk_sim_control_start(const char *host, uint16_t port, qk_sim_link *const *links, size_t nlinks,
                         qk_sim_control **out, qk_err *err)
{
    *out = NULL;
    if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0)
        return qk_err_set(err, QK_EINVAL, "the control API binds a loopback address only");
    qk_sim_control *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    control_configure(&s->h, links, nlinks);
    qk_listener_config lc = {
        .name = "control",
        .bind_addr = host,
        .port = port,
        .tls = {.mode = QK_TLS_MODE_NONE},
        .handler = &s->h.super,
        .max_connections = 64,
        .threads = 1,
        .max_body = CONTROL_MAX_BODY,
    };
    int rc = qk_tls_server_start(&lc, &s->srv, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint16_t qk_sim_control_port(const qk_sim_control *c)
{
    return qk_tls_server_port(c->srv);
}

void qk_sim_control_stop(qk_sim_control *c)
{
    if (!c)
        return;
    qk_tls_server_stop(c->srv);
    free(c);
}
