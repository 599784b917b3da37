/* dash_http.c - qkd-dash's HTTP routes, a handler on the request envelope
 * (common/http_envelope.h): the embedded page, the JSON the page reads, and the fault controls
 * proxied to the simulator's control API (sim/sim_control.h). docs/dashboard.md lists them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash_http.h"
#include "json_util.h"

#define LINKS_PREFIX    "/api/links/"
#define FAULT_VALUE_MAX 32

/* The faults the page may set: those of the simulator (sim/sim_fault.h). */
static const char *const FAULTS[] = {"down",    "up",   "eve",   "loss",
                                     "corrupt", "drop", "delay", "clear"};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return "application/octet-stream";
}

static bool serve_asset(const char *path, qk_http_reply *rep)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < dash_nassets; i++)
        if (strcmp(dash_assets[i].path, path) == 0) {
            if (qk_http_reply_set(rep, 200, content_type(path), (const char *)dash_assets[i].data,
                                  dash_assets[i].len) != 0)
                qk_http_reply_message(rep, 500, "out of memory");
            return true;
        }
    return false;
}

/* A state-changing request must be JSON (a cross-site form or a "simple" fetch cannot send that
 * without a CORS preflight, which qkd-dash never answers: Fetch standard, "CORS-safelisted
 * request-header"), and an Origin, when sent, must name the Host it was sent to. */
static const char *refuse_cross_site(const qk_http_request *req)
{
    const char *ct = qk_http_header(req, "Content-Type");
    if (!ct || strncmp(ct, "application/json", 16) != 0)
        return "Content-Type must be application/json";
    const char *origin = qk_http_header(req, "Origin"), *host = qk_http_header(req, "Host");
    if (origin) {
        const char *o = strstr(origin, "://");
        if (!o || !host || strcmp(o + 3, host) != 0)
            return "cross-origin request refused";
    }
    return NULL;
}

static dash_link *find_link(dash_state *st, const char *id, size_t len)
{
    for (size_t i = 0; i < st->nlinks; i++)
        if (strlen(st->links[i].id) == len && memcmp(st->links[i].id, id, len) == 0)
            return &st->links[i];
    return NULL;
}

/* POST /api/links/{id}/fault {"fault": NAME, "value": "..."}: checked here, rebuilt, sent to
 * the simulator's POST /v1/links/{id}/fault; its status and body are the answer. */
static void do_fault(dash_handler *h, dash_link *l, const qk_http_request *req, qk_http_reply *rep)
{
    const char *why = refuse_cross_site(req);
    if (why) {
        qk_http_reply_message(rep, 403, why);
        return;
    }
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = qk_json_parse(req->body, req->body_len, DASH_MAX_BODY, &err);
    const char *name = NULL, *value = NULL;
    if (!j || !cJSON_IsObject(j) || qk_json_get_string(j, "fault", true, &name, NULL, &err) != 0 ||
        qk_json_get_string(j, "value", false, &value, NULL, &err) != 0) {
        cJSON_Delete(j);
        qk_http_reply_message(rep, 400,
                              err.msg[0] ? err.msg : "expected {\"fault\":..., \"value\":...}");
        return;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof FAULTS / sizeof FAULTS[0]; i++)
        known |= strcmp(name, FAULTS[i]) == 0;
    if (!known || (value && strlen(value) > FAULT_VALUE_MAX)) {
        cJSON_Delete(j);
        qk_http_reply_message(rep, 400, known ? "value too long" : "unknown fault");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    bool ok = out && cJSON_AddStringToObject(out, "fault", name) &&
              (!value || cJSON_AddStringToObject(out, "value", value));
    char *body = ok ? qk_json_print(out) : NULL;
    cJSON_Delete(out);
    char fault[16], val[FAULT_VALUE_MAX + 1];
    snprintf(fault, sizeof fault, "%s", name);
    snprintf(val, sizeof val, "%s", value ? value : "");
    cJSON_Delete(j);
    if (!body) {
        qk_http_reply_message(rep, 500, "out of memory");
        return;
    }
    char url[DASH_URL_MAX + DASH_ID_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/links/%s/fault", h->st->sim_url, l->id);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    qk_http_response r = {0};
    pthread_mutex_lock(&h->sim_mu);
    int rc = qk_http_call(h->sim_client, "POST", url, body, strlen(body), hdr, &r, &err);
    pthread_mutex_unlock(&h->sim_mu);
    free(body);
    if (rc != 0) {
        qk_http_reply_message(rep, 502, "the simulator's control API did not answer");
        qk_http_response_free(&r);
        return;
    }
    if (r.status == 200)
        dash_event_add(h->st, "control", l->id, "fault %s%s%s set from the dashboard", fault,
                       val[0] ? " " : "", val);
    unsigned status = r.status >= 200 && r.status < 600 ? (unsigned)r.status : 502;
    if (qk_http_reply_set(rep, status, "application/json", r.body, r.body_len) != 0)
        qk_http_reply_message(rep, 500, "out of memory");
    else
        qk_http_reply_detail(rep, "fault %s %s -> %u", l->id, fault, status);
    qk_http_response_free(&r);
}

static void dash_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    dash_handler *h = (dash_handler *)self;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    const char *p = req->path;
    if (strncmp(p, LINKS_PREFIX, strlen(LINKS_PREFIX)) == 0) {
        const char *id = p + strlen(LINKS_PREFIX), *slash = strchr(id, '/');
        dash_link *l = slash ? find_link(h->st, id, (size_t)(slash - id)) : NULL;
        if (!l || strcmp(slash, "/fault") != 0) {
            qk_http_reply_message(rep, 404, l ? "unknown path" : "unknown link");
        } else if (strcmp(req->method, "POST") != 0) {
            qk_http_reply_not_allowed(rep, "POST");
        } else {
            do_fault(h, l, req, rep);
        }
        return;
    }
    if (!get) {
        qk_http_reply_not_allowed(rep, "GET, HEAD");
        return;
    }
    if (strcmp(p, "/api/state") == 0) {
        qk_http_reply_json_take(rep, dash_state_json(h->st));
    } else if (strcmp(p, "/api/history") == 0) {
        const char *since = qk_http_query(req, "since");
        double s = since ? strtod(since, NULL) : 0;
        qk_http_reply_json_take(rep, dash_history_json(h->st, s > 0 ? s : 0));
    } else if (strcmp(p, "/api/model") == 0) {
        qk_http_reply_json_take(rep, dash_models_json(h->st));
    } else if (strcmp(p, "/healthz") == 0) {
        qk_http_reply_set(rep, 200, "text/plain; charset=utf-8", "ok\n", 3);
    } else if (!serve_asset(p, rep)) {
        qk_http_reply_message(rep, 404, "unknown path");
    }
}

void dash_handler_configure(dash_handler *h, dash_state *st, qk_http_client *sim_client)
{
    memset(&h->super, 0, sizeof h->super);
    h->super.on_req = dash_on_req;
    h->st = st;
    h->sim_client = sim_client;
}
