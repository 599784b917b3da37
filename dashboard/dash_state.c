/* dash_state.c - what qkd-dash knows of a lab: the manifest (DIR/lab.json, docs/lab.md), the
 * model curve of each preset, and one poll of the KMEs' /metrics and the simulator's status that
 * updates the current state, the history rings and the event list. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dash.h"
#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "qkdclient.h"
#include "secbuf.h"

#define MANIFEST_MAX     (1u << 20)
#define MODEL_OUT_MAX    (4u << 20)
#define MODEL_TIMEOUT_MS 20000
#define RATE_WINDOW      10 /* samples over which the delivered rate is measured */

static double epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int find_kme(const dash_state *st, const char *id)
{
    for (size_t i = 0; i < st->nkmes; i++)
        if (strcmp(st->kmes[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* Bounded copy (truncates; IDs and URLs were checked against the caps on load). */
static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The link model settings that client/'s manifest reader does not keep: preset, distance and
 * time scale of each link. The text holds the SKIP PSKs: the psk_hex strings are wiped before
 * the tree is freed, and the caller wipes the text. */
static int load_link_params(dash_state *st, const char *text, size_t len, qk_err *err)
{
    cJSON *m = qk_json_parse(text, len, MANIFEST_MAX, err);
    if (!m)
        return QK_EINVAL;
    const cJSON *links = cJSON_GetObjectItemCaseSensitive(m, "links"), *l;
    cJSON_ArrayForEach(l, links)
    {
        const char *id = qk_json_str_or(l, "id", "");
        for (size_t i = 0; i < st->nlinks; i++) {
            dash_link *dl = &st->links[i];
            if (strcmp(dl->id, id) != 0)
                continue;
            copy(dl->preset, sizeof dl->preset, qk_json_str_or(l, "preset", "gys"));
            dl->distance_km = qk_json_num_or(l, "distance_km", 0);
            dl->time_scale = qk_json_num_or(l, "time_scale", 1);
        }
    }
    const cJSON *k, *c;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(m, "kmes"))
    {
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(k, "skip_clients"))
        {
            cJSON *p = cJSON_GetObjectItemCaseSensitive(c, "psk_hex");
            if (cJSON_IsString(p) && p->valuestring)
                qk_wipe(p->valuestring, strlen(p->valuestring));
        }
    }
    cJSON_Delete(m);
    return 0;
}

static int read_manifest(const char *path, char **text, size_t *len, qk_err *err)
{
    *text = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return qk_err_set(err, QK_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(MANIFEST_MAX + 1);
    size_t n = buf ? fread(buf, 1, MANIFEST_MAX + 1, f) : 0;
    fclose(f);
    if (!buf)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    if (n > MANIFEST_MAX) {
        qk_wipe(buf, n);
        free(buf);
        return qk_err_set(err, QK_EINVAL, "%s: larger than 1 MiB", path);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

int dash_state_load(dash_state *st, const char *lab_dir, qk_err *err)
{
    copy(st->lab_dir, sizeof st->lab_dir, lab_dir);
    qkc_lab lab;
    qkc_error e = {0};
    if (qkc_lab_load(lab_dir, &lab, &e) != 0)
        return qk_err_set(err, QK_EINVAL, "%s", e.msg);
    int rc = 0;
    if (lab.n_kmes > DASH_MAX_KMES || lab.n_links > DASH_MAX_LINKS)
        rc = qk_err_set(err, QK_EINVAL, "lab.json: more than %d KMEs or %d links", DASH_MAX_KMES,
                        DASH_MAX_LINKS);
    else if (!lab.sim_url || strlen(lab.sim_url) >= DASH_URL_MAX)
        rc = qk_err_set(err, QK_EINVAL, "lab.json: no usable sim_url");
    else
        copy(st->sim_url, sizeof st->sim_url, lab.sim_url);
    for (size_t i = 0; rc == 0 && i < lab.n_kmes; i++) {
        dash_kme *k = &st->kmes[st->nkmes++];
        copy(k->id, sizeof k->id, lab.kmes[i].id);
        if (!lab.kmes[i].admin_url || strlen(lab.kmes[i].admin_url) >= DASH_URL_MAX)
            rc = qk_err_set(err, QK_EINVAL, "lab.json: KME %s has no usable admin_url", k->id);
        else
            copy(k->admin_url, sizeof k->admin_url, lab.kmes[i].admin_url);
    }
    for (size_t i = 0; rc == 0 && i < lab.n_links; i++) {
        dash_link *l = &st->links[st->nlinks++];
        copy(l->id, sizeof l->id, lab.links[i].id);
        for (int e2 = 0; e2 < 2; e2++) {
            l->end[e2] = find_kme(st, lab.links[i].kmes[e2]);
            l->pool_bits[e2] = -1;
            l->burned[e2] = -1;
            l->kme_link_up[e2] = -1;
        }
        if (l->end[0] < 0 || l->end[1] < 0)
            rc = qk_err_set(err, QK_EINVAL, "lab.json: link %s names an unknown KME", l->id);
        copy(l->state, sizeof l->state, "down");
        copy(l->f_corrupt, sizeof l->f_corrupt, "none");
        copy(l->f_drop, sizeof l->f_drop, "none");
    }
    qkc_lab_free(&lab);
    if (rc != 0)
        return rc;
    char path[1100], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/lab.json", lab_dir);
    if (read_manifest(path, &text, &len, err) != 0)
        return err->code;
    rc = load_link_params(st, text, len, err);
    qk_wipe(text, len);
    free(text);
    return rc;
}

/* Run argv (no shell), its stdout into a malloc'ed buffer of at most MODEL_OUT_MAX bytes,
 * within MODEL_TIMEOUT_MS. 0 when it exits 0. */
static int run_capture(char *const argv[], char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (dup2(fd[1], 1) < 0 || (devnull >= 0 && dup2(devnull, 2) < 0))
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    char *buf = malloc(MODEL_OUT_MAX + 1);
    size_t n = 0;
    double end = qk_now_ms() + MODEL_TIMEOUT_MS;
    bool ok = buf != NULL;
    while (ok) {
        int left = (int)(end - qk_now_ms());
        struct pollfd p = {.fd = fd[0], .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            ok = false;
            break;
        }
        ssize_t r = read(fd[0], buf + n, MODEL_OUT_MAX - n);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (n += (size_t)r) >= MODEL_OUT_MAX)
            ok = false;
    }
    close(fd[0]);
    if (!ok)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* The sim's default rate kind (docs/qkd-sim.md: rate_kind = decoy_vw), which qkd-lab keeps. */
static int load_model(dash_model *m, const char *qkd_sim, const char *preset)
{
    char *argv[] = {(char *)qkd_sim, "model",  "--preset", (char *)preset, "--distance",
                    "0:200:1",       "--kind", "decoy-vw", "--json",       NULL};
    char *out = NULL;
    size_t len = 0;
    if (run_capture(argv, &out, &len) != 0)
        return -1;
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = qk_json_parse(out, len, MODEL_OUT_MAX, &err);
    free(out);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "curves"), 0), *p;
    if (!c0) {
        cJSON_Delete(j);
        return -1;
    }
    copy(m->preset, sizeof m->preset, preset);
    m->max_distance_km = qk_json_num_or(c0, "max_distance_km", 0);
    m->n = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(c0, "points"))
    {
        if (m->n >= DASH_MAX_MODEL_PTS)
            break;
        m->d_km[m->n] = (float)qk_json_num_or(p, "distance_km", 0);
        m->rate_bps[m->n] = (float)qk_json_num_or(p, "rate_bps", 0);
        m->qber[m->n] = (float)qk_json_num_or(p, "qber", 0);
        m->n++;
    }
    cJSON_Delete(j);
    return m->n ? 0 : -1;
}

void dash_state_load_models(dash_state *st, const char *qkd_sim)
{
    for (size_t i = 0; i < st->nlinks; i++) {
        const char *preset = st->links[i].preset;
        bool have = false;
        for (size_t m = 0; m < st->nmodels; m++)
            have |= strcmp(st->models[m].preset, preset) == 0;
        if (have || st->nmodels >= DASH_MAX_LINKS)
            continue;
        if (load_model(&st->models[st->nmodels], qkd_sim, preset) == 0)
            st->nmodels++;
        else
            QK_WARN("model curve of preset %s: %s model failed", preset, qkd_sim);
    }
}

/* ---- events ------------------------------------------------------------------------------- */

static void event_locked(dash_state *st, const char *kind, const char *subject, const char *fmt,
                         va_list ap)
{
    dash_event *e = &st->events[st->nevents % DASH_MAX_EVENTS];
    e->seq = ++st->nevents;
    e->t_ms = epoch_ms();
    copy(e->kind, sizeof e->kind, kind);
    copy(e->subject, sizeof e->subject, subject);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    QK_INFO("event %s %s: %s", e->kind, e->subject, e->text);
}

static void event_l(dash_state *st, const char *kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void event_l(dash_state *st, const char *kind, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    event_locked(st, kind, subject, fmt, ap);
    va_end(ap);
}

void dash_event_add(dash_state *st, const char *kind, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&st->mu);
    event_locked(st, kind, subject, fmt, ap);
    pthread_mutex_unlock(&st->mu);
    va_end(ap);
}

/* ---- one poll ----------------------------------------------------------------------------- */

/* What one KME's /metrics said, gathered outside the lock. */
typedef struct {
    bool ok;
    dash_api api[DASH_MAX_LISTENERS];
    size_t napi;
    dash_errs errs[DASH_MAX_ERRS];
    size_t nerrs;
    double peer_errors;
    double pool[DASH_MAX_LINKS], burned[DASH_MAX_LINKS];
    int up[DASH_MAX_LINKS];
} kme_sample;

static void req_fn(void *cls, const char *labels, size_t len, double v)
{
    kme_sample *s = cls;
    char lis[32], status[16];
    if (dash_prom_label(labels, len, "listener", lis, sizeof lis) != 0 ||
        dash_prom_label(labels, len, "status", status, sizeof status) != 0)
        return;
    size_t i = 0;
    while (i < s->napi && strcmp(s->api[i].name, lis) != 0)
        i++;
    if (i == s->napi && s->napi < DASH_MAX_LISTENERS)
        copy(s->api[s->napi++].name, sizeof s->api[0].name, lis);
    if (i < s->napi)
        s->api[i].total += v;
    int code = atoi(status);
    if (code < 400 && code != 0)
        return;
    for (i = 0; i < s->nerrs; i++)
        if (s->errs[i].status == code && strcmp(s->errs[i].listener, lis) == 0)
            break;
    if (i == s->nerrs && s->nerrs < DASH_MAX_ERRS) {
        copy(s->errs[i].listener, sizeof s->errs[i].listener, lis);
        s->errs[i].status = code;
        s->nerrs++;
    }
    if (i < s->nerrs)
        s->errs[i].total += v;
}

static void sample_kme(const dash_state *st, size_t k, qk_http_client *c, kme_sample *s)
{
    memset(s, 0, sizeof *s);
    char url[DASH_URL_MAX + 16];
    snprintf(url, sizeof url, "%s/metrics", st->kmes[k].admin_url);
    qk_http_response r = {0};
    qk_err err;
    qk_err_clear(&err);
    if (qk_http_call(c, "GET", url, NULL, 0, NULL, &r, &err) != 0 || r.status != 200) {
        qk_http_response_free(&r);
        return;
    }
    s->ok = true;
    dash_prom_each(r.body, "qkd_requests_total", req_fn, s);
    s->peer_errors = dash_prom_sum(r.body, "qkd_peer_errors_total", NULL);
    for (size_t i = 0; i < st->nlinks; i++) {
        char lf[DASH_ID_MAX + 8];
        snprintf(lf, sizeof lf, "link=\"%s\"", st->links[i].id);
        const char *by_link[] = {lf, NULL}, *burned[] = {lf, "state=\"burned\"", NULL};
        /* qkd_pool_bytes (bytes, the base unit Prometheus asks for), or the older
         * qkd_pool_bits of a KME built before it. */
        double bytes = dash_prom_sum(r.body, "qkd_pool_bytes", by_link);
        s->pool[i] = bytes >= 0 ? bytes * 8 : dash_prom_sum(r.body, "qkd_pool_bits", by_link);
        s->burned[i] = dash_prom_sum(r.body, "qkd_blocks", burned);
        double up = dash_prom_sum(r.body, "qkd_link_up", by_link);
        s->up[i] = up < 0 ? -1 : up > 0.5;
    }
    qk_http_response_free(&r);
}

/* The simulator's status of link l into the state (lock held). */
static void take_sim_link(dash_state *st, dash_link *l, const cJSON *j)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "faults");
    char was[sizeof l->state];
    copy(was, sizeof was, l->state);
    bool was_down = l->f_down;
    double was_eve = l->f_eve, was_loss = l->f_loss_db, was_delay = l->f_delay_ms;
    char was_corrupt[8], was_drop[8];
    copy(was_corrupt, sizeof was_corrupt, l->f_corrupt);
    copy(was_drop, sizeof was_drop, l->f_drop);

    l->qber = qk_json_num_or(j, "qber", 0);
    l->rate_bps = qk_json_num_or(j, "rate_bps", 0);
    l->model_rate_bps = qk_json_num_or(j, "model_rate_bps", 0);
    l->delivered_bits = qk_json_num_or(j, "delivered_bits", 0);
    l->f_down = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "down"));
    l->f_eve = qk_json_num_or(f, "eve", 0);
    l->f_loss_db = qk_json_num_or(f, "loss_db", 0);
    l->f_delay_ms = qk_json_num_or(f, "delay_ms", 0);
    copy(l->f_corrupt, sizeof l->f_corrupt, qk_json_str_or(f, "corrupt", "none"));
    copy(l->f_drop, sizeof l->f_drop, qk_json_str_or(f, "drop", "none"));
    const char *state = qk_json_str_or(j, "state", "down");
    if (strcmp(state, "up") == 0 && strcmp(l->f_corrupt, "none") != 0)
        state = "corrupting";
    copy(l->state, sizeof l->state, state);
    l->sim_ok = true;
    if (st->nsamples == 0)
        return; /* the first poll only learns */
    if (was_down != l->f_down)
        event_l(st, "fault", l->id, "down %s", l->f_down ? "set" : "cleared");
    if (was_eve != l->f_eve)
        event_l(st, "fault", l->id, "eve %g%s", l->f_eve, l->f_eve == 0 ? " (cleared)" : "");
    if (was_loss != l->f_loss_db)
        event_l(st, "fault", l->id, "loss %g dB%s", l->f_loss_db,
                l->f_loss_db == 0 ? " (cleared)" : "");
    if (was_delay != l->f_delay_ms)
        event_l(st, "fault", l->id, "delay %g ms", l->f_delay_ms);
    if (strcmp(was_corrupt, l->f_corrupt) != 0)
        event_l(st, "fault", l->id, "corrupt %s", l->f_corrupt);
    if (strcmp(was_drop, l->f_drop) != 0)
        event_l(st, "fault", l->id, "drop %s", l->f_drop);
    if (strcmp(was, l->state) != 0)
        event_l(st, "state", l->id, "%s -> %s (QBER %.2f %%)", was, l->state, l->qber * 100);
}

static void take_kme(dash_state *st, size_t k, const kme_sample *s, double dt_s)
{
    dash_kme *km = &st->kmes[k];
    bool primed = st->nsamples > 0;
    if (!s->ok) {
        if (km->reachable && primed)
            event_l(st, "kme", km->id, "admin /metrics unreachable");
        km->reachable = false;
        for (size_t a = 0; a < km->napi; a++)
            km->api[a].rate = 0;
        return;
    }
    if (!km->reachable && primed)
        event_l(st, "kme", km->id, "admin /metrics reachable");
    km->reachable = true;
    for (size_t a = 0; a < s->napi; a++) {
        double prev = -1;
        for (size_t b = 0; b < km->napi; b++)
            if (strcmp(km->api[b].name, s->api[a].name) == 0)
                prev = km->api[b].total;
        dash_api *dst = NULL;
        for (size_t b = 0; b < km->napi && !dst; b++)
            if (strcmp(km->api[b].name, s->api[a].name) == 0)
                dst = &km->api[b];
        if (!dst && km->napi < DASH_MAX_LISTENERS)
            dst = &km->api[km->napi++];
        if (!dst)
            continue;
        *dst = s->api[a];
        dst->rate = (prev >= 0 && dt_s > 0 && s->api[a].total >= prev)
                        ? (s->api[a].total - prev) / dt_s
                        : 0;
    }
    if (primed && s->peer_errors > km->peer_errors)
        event_l(st, "peer-error", km->id, "%g failed call(s) to a peer KME (total %g)",
                s->peer_errors - km->peer_errors, s->peer_errors);
    km->peer_errors = s->peer_errors;
    memcpy(km->errs, s->errs, sizeof km->errs);
    km->nerrs = s->nerrs;
    for (size_t i = 0; i < st->nlinks; i++) {
        dash_link *l = &st->links[i];
        for (int e = 0; e < 2; e++) {
            if ((size_t)l->end[e] != k)
                continue;
            if (primed && l->burned[e] >= 0 && s->burned[i] > l->burned[e])
                event_l(st, "burned", l->id, "%s burned %g block(s)", km->id,
                        s->burned[i] - l->burned[e]);
            l->pool_bits[e] = s->pool[i];
            l->burned[e] = s->burned[i];
            l->kme_link_up[e] = s->up[i];
        }
    }
}

void dash_poll_once(dash_state *st, qk_http_client *const *clients)
{
    /* Gather without the lock: a slow KME must not stall the page. */
    kme_sample *ks = calloc(st->nkmes, sizeof *ks);
    if (!ks)
        return;
    for (size_t k = 0; k < st->nkmes; k++)
        sample_kme(st, k, clients[k], &ks[k]);
    char url[DASH_URL_MAX + 16];
    snprintf(url, sizeof url, "%s/v1/status", st->sim_url);
    qk_http_response r = {0};
    qk_err err;
    qk_err_clear(&err);
    cJSON *sim = NULL;
    if (qk_http_call(clients[st->nkmes], "GET", url, NULL, 0, NULL, &r, &err) == 0 &&
        r.status == 200)
        sim = qk_json_parse(r.body, r.body_len, 1u << 20, &err);
    qk_http_response_free(&r);

    pthread_mutex_lock(&st->mu);
    double now = qk_now_ms();
    double dt_s = st->last_poll_ms > 0 ? (now - st->last_poll_ms) / 1000.0 : 0;
    st->last_poll_ms = now;
    bool primed = st->nsamples > 0;
    if (!sim && st->sim_reachable && primed)
        event_l(st, "sim", "qkd-sim", "control API unreachable: every link reads as down");
    if (sim && !st->sim_reachable && primed)
        event_l(st, "sim", "qkd-sim", "control API reachable");
    st->sim_reachable = sim != NULL;
    for (size_t i = 0; i < st->nlinks; i++) {
        dash_link *l = &st->links[i];
        const cJSON *x, *found = NULL;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(sim, "links"))
        {
            if (strcmp(qk_json_str_or(x, "id", ""), l->id) == 0)
                found = x;
        }
        if (found) {
            take_sim_link(st, l, found);
        } else {
            /* Stale telemetry reads as down, never frozen at the last rate. */
            if (primed && strcmp(l->state, "down") != 0)
                event_l(st, "state", l->id, "%s -> down (no status from the simulator)", l->state);
            copy(l->state, sizeof l->state, "down");
            l->sim_ok = false;
            l->rate_bps = 0;
        }
    }
    cJSON_Delete(sim);
    for (size_t k = 0; k < st->nkmes; k++)
        take_kme(st, k, &ks[k], dt_s);
    free(ks);

    /* One history sample. The delivered rate is measured over RATE_WINDOW samples: blocks
     * arrive whole, so one poll interval alone would swing between 0 and a block. */
    size_t idx = (size_t)(st->nsamples % DASH_HIST);
    st->t[idx] = floor(epoch_ms()); /* whole ms: what /api/history serves and takes back */
    for (size_t i = 0; i < st->nlinks; i++) {
        dash_link *l = &st->links[i];
        size_t back = st->nsamples < RATE_WINDOW ? (size_t)st->nsamples : RATE_WINDOW;
        l->delivered_rate_bps = 0;
        if (back > 0) {
            size_t j = (size_t)((st->nsamples - back) % DASH_HIST);
            double dts = (st->t[idx] - st->t[j]) / 1000.0;
            double db = l->delivered_bits - l->h_bits[j];
            if (dts > 0 && db >= 0 && l->sim_ok)
                l->delivered_rate_bps = db / dts;
        }
        l->h_bits[idx] = l->delivered_bits;
        l->h_pool[0][idx] = (float)l->pool_bits[0];
        l->h_pool[1][idx] = (float)l->pool_bits[1];
        l->h_rate[idx] = (float)l->delivered_rate_bps;
        l->h_qber[idx] = (float)l->qber;
    }
    for (size_t k = 0; k < st->nkmes; k++) {
        double sum = 0;
        for (size_t a = 0; a < st->kmes[k].napi; a++)
            sum += st->kmes[k].api[a].rate;
        st->kmes[k].req_rate[idx] = (float)sum;
    }
    st->nsamples++;
    pthread_mutex_unlock(&st->mu);
}

/* ---- JSON --------------------------------------------------------------------------------- */

/* A number with 6 significant digits (short JSON; the page shows 3); from 1e5 up, the nearest
 * integer (counters, times and pool sizes stay exact). */
static cJSON *num(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    if (fabs(v) >= 1e5)
        return cJSON_CreateNumber(round(v));
    char b[32];
    snprintf(b, sizeof b, "%.6g", v);
    return cJSON_CreateNumber(strtod(b, NULL));
}

static void add_num(cJSON *o, const char *k, double v)
{
    cJSON_AddItemToObject(o, k, num(v));
}

static cJSON *pair(double a, double b)
{
    cJSON *x = cJSON_CreateArray();
    cJSON_AddItemToArray(x, num(a));
    cJSON_AddItemToArray(x, num(b));
    return x;
}

static char *finish(cJSON *o)
{
    char *s = o ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static cJSON *kme_json(const dash_kme *k)
{
    cJSON *o = cJSON_CreateObject(), *apis = cJSON_CreateArray(), *errs = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "id", k->id);
    cJSON_AddStringToObject(o, "admin_url", k->admin_url);
    cJSON_AddBoolToObject(o, "reachable", k->reachable);
    for (size_t a = 0; a < k->napi; a++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "api", k->api[a].name);
        add_num(x, "total", k->api[a].total);
        add_num(x, "rate", k->api[a].rate);
        cJSON_AddItemToArray(apis, x);
    }
    for (size_t e = 0; e < k->nerrs; e++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "api", k->errs[e].listener);
        cJSON_AddNumberToObject(x, "status", k->errs[e].status);
        add_num(x, "total", k->errs[e].total);
        cJSON_AddItemToArray(errs, x);
    }
    cJSON_AddItemToObject(o, "requests", apis);
    cJSON_AddItemToObject(o, "errors", errs);
    add_num(o, "peer_errors", k->peer_errors < 0 ? 0 : k->peer_errors);
    return o;
}

static cJSON *link_json(const dash_state *st, const dash_link *l)
{
    cJSON *o = cJSON_CreateObject(), *ends = cJSON_CreateArray(), *f = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", l->id);
    for (int e = 0; e < 2; e++)
        cJSON_AddItemToArray(ends, cJSON_CreateString(st->kmes[l->end[e]].id));
    cJSON_AddItemToObject(o, "kmes", ends);
    cJSON_AddStringToObject(o, "preset", l->preset);
    add_num(o, "distance_km", l->distance_km);
    add_num(o, "time_scale", l->time_scale);
    cJSON_AddStringToObject(o, "state", l->state);
    add_num(o, "qber", l->qber);
    add_num(o, "rate_bps", l->rate_bps);
    add_num(o, "model_rate_bps", l->model_rate_bps);
    add_num(o, "delivered_bits", l->delivered_bits);
    add_num(o, "delivered_rate_bps", l->delivered_rate_bps);
    cJSON_AddBoolToObject(f, "down", l->f_down);
    add_num(f, "eve", l->f_eve);
    add_num(f, "loss_db", l->f_loss_db);
    cJSON_AddStringToObject(f, "corrupt", l->f_corrupt);
    cJSON_AddStringToObject(f, "drop", l->f_drop);
    add_num(f, "delay_ms", l->f_delay_ms);
    cJSON_AddItemToObject(o, "faults", f);
    cJSON_AddItemToObject(o, "pool_bits", pair(l->pool_bits[0], l->pool_bits[1]));
    cJSON_AddItemToObject(o, "burned_blocks", pair(l->burned[0], l->burned[1]));
    cJSON_AddItemToObject(o, "kme_link_up", pair(l->kme_link_up[0], l->kme_link_up[1]));
    return o;
}

#define STATE_EVENTS 50

char *dash_state_json(dash_state *st)
{
    cJSON *o = cJSON_CreateObject(), *kmes = cJSON_CreateArray(), *links = cJSON_CreateArray(),
          *ev = cJSON_CreateArray();
    if (!o || !kmes || !links || !ev) {
        cJSON_Delete(o);
        cJSON_Delete(kmes);
        cJSON_Delete(links);
        cJSON_Delete(ev);
        return NULL;
    }
    pthread_mutex_lock(&st->mu);
    add_num(o, "time_ms", epoch_ms());
    cJSON_AddNumberToObject(o, "poll_ms", st->poll_ms);
    cJSON_AddNumberToObject(o, "samples", (double)st->nsamples);
    cJSON_AddStringToObject(o, "lab_dir", st->lab_dir);
    cJSON_AddStringToObject(o, "sim_url", st->sim_url);
    cJSON_AddBoolToObject(o, "sim_reachable", st->sim_reachable);
    for (size_t k = 0; k < st->nkmes; k++)
        cJSON_AddItemToArray(kmes, kme_json(&st->kmes[k]));
    for (size_t i = 0; i < st->nlinks; i++)
        cJSON_AddItemToArray(links, link_json(st, &st->links[i]));
    uint64_t first = st->nevents > STATE_EVENTS ? st->nevents - STATE_EVENTS : 0;
    for (uint64_t s = st->nevents; s > first; s--) {
        const dash_event *e = &st->events[(s - 1) % DASH_MAX_EVENTS];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "seq", (double)e->seq);
        cJSON_AddNumberToObject(x, "t_ms", floor(e->t_ms));
        cJSON_AddStringToObject(x, "kind", e->kind);
        cJSON_AddStringToObject(x, "subject", e->subject);
        cJSON_AddStringToObject(x, "text", e->text);
        cJSON_AddItemToArray(ev, x);
    }
    pthread_mutex_unlock(&st->mu);
    cJSON_AddItemToObject(o, "kmes", kmes);
    cJSON_AddItemToObject(o, "links", links);
    cJSON_AddItemToObject(o, "events", ev);
    return finish(o);
}

static cJSON *series(const float *ring, uint64_t from, uint64_t to)
{
    cJSON *a = cJSON_CreateArray();
    for (uint64_t s = from; a && s < to; s++)
        cJSON_AddItemToArray(a, num(ring[s % DASH_HIST]));
    return a;
}

char *dash_history_json(dash_state *st, double since_ms)
{
    cJSON *o = cJSON_CreateObject(), *t = cJSON_CreateArray(), *links = cJSON_CreateObject(),
          *kmes = cJSON_CreateObject();
    if (!o || !t || !links || !kmes) {
        cJSON_Delete(o);
        cJSON_Delete(t);
        cJSON_Delete(links);
        cJSON_Delete(kmes);
        return NULL;
    }
    pthread_mutex_lock(&st->mu);
    uint64_t to = st->nsamples, from = to > DASH_HIST ? to - DASH_HIST : 0;
    while (from < to && st->t[from % DASH_HIST] <= since_ms)
        from++;
    for (uint64_t s = from; s < to; s++)
        cJSON_AddItemToArray(t, cJSON_CreateNumber(floor(st->t[s % DASH_HIST])));
    for (size_t i = 0; i < st->nlinks; i++) {
        const dash_link *l = &st->links[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToObject(x, "pool_a", series(l->h_pool[0], from, to));
        cJSON_AddItemToObject(x, "pool_b", series(l->h_pool[1], from, to));
        cJSON_AddItemToObject(x, "rate", series(l->h_rate, from, to));
        cJSON_AddItemToObject(x, "qber", series(l->h_qber, from, to));
        cJSON_AddItemToObject(links, l->id, x);
    }
    for (size_t k = 0; k < st->nkmes; k++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToObject(x, "req_rate", series(st->kmes[k].req_rate, from, to));
        cJSON_AddItemToObject(kmes, st->kmes[k].id, x);
    }
    pthread_mutex_unlock(&st->mu);
    cJSON_AddItemToObject(o, "t", t);
    cJSON_AddItemToObject(o, "links", links);
    cJSON_AddItemToObject(o, "kmes", kmes);
    return finish(o);
}

char *dash_models_json(dash_state *st)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!o || !arr) {
        cJSON_Delete(o);
        cJSON_Delete(arr);
        return NULL;
    }
    pthread_mutex_lock(&st->mu);
    for (size_t m = 0; m < st->nmodels; m++) {
        const dash_model *md = &st->models[m];
        cJSON *x = cJSON_CreateObject(), *pts = cJSON_CreateArray();
        cJSON_AddStringToObject(x, "preset", md->preset);
        cJSON_AddStringToObject(x, "kind", "decoy-vw");
        add_num(x, "max_distance_km", md->max_distance_km);
        for (size_t p = 0; p < md->n; p++) {
            cJSON *pt = pair(md->d_km[p], md->rate_bps[p]);
            cJSON_AddItemToArray(pt, num(md->qber[p]));
            cJSON_AddItemToArray(pts, pt);
        }
        cJSON_AddItemToObject(x, "points", pts);
        cJSON_AddItemToArray(arr, x);
    }
    pthread_mutex_unlock(&st->mu);
    cJSON_AddItemToObject(o, "models", arr);
    return finish(o);
}
