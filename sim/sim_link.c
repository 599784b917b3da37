/* sim_link.c - the per-link generator thread: model -> schedule -> blocks -> both KMEs. */
#include "sim_link.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"

#define MAX_WAIT_MS     200.0 /* the loop re-checks faults and the clock at least this often */
#define PROGRESS_MS     10000.0
#define MAX_BLOCKS_LOOP 64 /* blocks emitted before the loop checks stop and telemetry again */

struct qk_sim_link {
    const qk_sim_link_cfg *cfg;
    const qk_sim_config *global;
    qk_blockids *ids;
    qk_device_end end[2];
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool faults_changed;
    qk_link_status st; /* under mu */
    uint8_t *buf[2];   /* secure memory, wiped after each delivery */
};

static void mono_deadline(struct timespec *ts, double ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    long long ns = (long long)ts->tv_nsec + (long long)(ms * 1e6);
    ts->tv_sec += (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
}

/* Wait up to ms for stop or a fault change; returns true when stopping. */
static bool wait_ms(qk_sim_link *l, double ms)
{
    struct timespec ts;
    mono_deadline(&ts, ms > 0 ? ms : 0);
    pthread_mutex_lock(&l->mu);
    while (!l->stop && !l->faults_changed) {
        int rc = pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (rc == ETIMEDOUT)
            break;
    }
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* Evaluate the model under the current faults into st (mu held). */
static void evaluate(qk_sim_link *l)
{
    qk_model_params p = l->cfg->params;
    p.extra_loss_db += l->st.faults.loss_db;
    p.eve_fraction = l->st.faults.eve_fraction;
    qk_model_point pt;
    memset(&pt, 0, sizeof pt);
    if (qk_model_eval(&p, l->cfg->distance_km, l->cfg->kind, l->cfg->optimise_mu, &pt) != 0) {
        pt.aborted = true;
        pt.qber = 0.5;
    }
    l->st.qber = isfinite(pt.qber) ? pt.qber : 0.5;
    l->st.model_rate_bps = pt.aborted || !(pt.rate_bps > 0) ? 0.0 : pt.rate_bps;
    if (l->st.faults.down) {
        l->st.state = "down";
        l->st.rate_bps = 0.0;
    } else if (pt.aborted || l->st.model_rate_bps <= 0.0) {
        l->st.state = "aborted";
        l->st.rate_bps = 0.0;
    } else {
        l->st.state = "up";
        l->st.rate_bps = l->st.model_rate_bps * l->cfg->time_scale;
    }
}

static void send_telemetry(qk_sim_link *l)
{
    qk_telemetry t;
    pthread_mutex_lock(&l->mu);
    t.state = l->st.state;
    t.qber = l->st.qber;
    t.rate_bps = l->st.rate_bps;
    t.delivered_bits = l->st.delivered_bits;
    pthread_mutex_unlock(&l->mu);
    for (int e = 0; e < 2; e++)
        if (qk_device_post_telemetry(&l->end[e], &t) != 0)
            QK_DEBUG("link %s end %c: %s", l->cfg->id, 'a' + e, l->end[e].last_error);
}

/* Emit one block: a fresh ID, fresh CSPRNG bytes, delivered to both ends under the faults. */
static void emit_block(qk_sim_link *l)
{
    qk_err err;
    qk_err_clear(&err);
    uint64_t id = qk_blockids_next(l->ids, l->cfg->id, &err);
    if (id == 0) {
        QK_ERROR("link %s: no block ID: %s", l->cfg->id, err.msg);
        return;
    }
    pthread_mutex_lock(&l->mu);
    qk_faults f = l->st.faults;
    pthread_mutex_unlock(&l->mu);
    size_t len = (size_t)l->cfg->block_bytes;
    qk_random(l->buf[0], len);
    if (f.corrupt != QK_END_NONE)
        qk_random(l->buf[1], len);
    if (f.delay_ms > 0 && wait_ms(l, f.delay_ms)) {
        qk_wipe(l->buf[0], len);
        qk_wipe(l->buf[1], len);
        return;
    }
    qk_dev_result r[2] = {QK_DEV_REFUSED, QK_DEV_REFUSED};
    for (int e = 0; e < 2; e++) {
        if (f.drop == (qk_end)e)
            continue;
        const uint8_t *bytes = f.corrupt == (qk_end)e ? l->buf[1] : l->buf[0];
        r[e] = qk_device_put_block(&l->end[e], id, bytes, len);
        if (r[e] != QK_DEV_NEW && r[e] != QK_DEV_DUPLICATE)
            QK_WARN("link %s block %" PRIu64 " end %c: %s", l->cfg->id, id, 'a' + e,
                    l->end[e].last_error);
    }
    qk_wipe(l->buf[0], len);
    qk_wipe(l->buf[1], len);
    bool ok[2];
    for (int e = 0; e < 2; e++)
        ok[e] = r[e] == QK_DEV_NEW || r[e] == QK_DEV_DUPLICATE;
    pthread_mutex_lock(&l->mu);
    for (int e = 0; e < 2; e++) { /* the device ends are the link thread's: copy under mu */
        l->st.ends[e].ok = l->end[e].ok;
        l->st.ends[e].conflicts = l->end[e].conflicts;
        l->st.ends[e].refused = l->end[e].refused;
        l->st.ends[e].unreachable = l->end[e].unreachable;
        memcpy(l->st.ends[e].last_error, l->end[e].last_error, sizeof l->st.ends[e].last_error);
    }
    l->st.blocks++;
    l->st.last_block_id = id;
    if (f.drop != QK_END_NONE)
        l->st.dropped_blocks++;
    else if (f.corrupt != QK_END_NONE)
        l->st.corrupted_blocks++;
    else if (ok[0] && ok[1])
        l->st.delivered_bits += (uint64_t)len * 8u;
    else
        l->st.failed_blocks++;
    pthread_mutex_unlock(&l->mu);
}

static void log_progress(qk_sim_link *l)
{
    pthread_mutex_lock(&l->mu);
    qk_link_status s = l->st;
    pthread_mutex_unlock(&l->mu);
    QK_INFO("link %s: state=%s qber=%.4f rate_bps=%.1f blocks=%" PRIu64 " delivered_bits=%" PRIu64
            " last_block=%" PRIu64 " dropped=%" PRIu64 " corrupted=%" PRIu64 " failed=%" PRIu64,
            s.id, s.state, s.qber, s.rate_bps, s.blocks, s.delivered_bits, s.last_block_id,
            s.dropped_blocks, s.corrupted_blocks, s.failed_blocks);
}

static void *run(void *arg)
{
    qk_sim_link *l = arg;
    qk_sched sched;
    double now = qk_now_ms();
    qk_sched_init(&sched, l->cfg->block_bytes, now);
    double next_tel = now, next_progress = now + PROGRESS_MS;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        bool stop = l->stop;
        if (l->faults_changed) {
            l->faults_changed = false;
            evaluate(l);
            next_tel = 0; /* report the change at once */
            QK_INFO("link %s: faults changed: state=%s qber=%.4f rate_bps=%.1f", l->cfg->id,
                    l->st.state, l->st.qber, l->st.rate_bps);
        }
        double rate = l->st.rate_bps;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        now = qk_now_ms();
        qk_sched_advance(&sched, rate, now);
        if (now >= next_tel) {
            send_telemetry(l);
            next_tel = qk_now_ms() + (double)l->global->telemetry_ms;
        }
        if (now >= next_progress) {
            log_progress(l);
            next_progress = now + PROGRESS_MS;
        }
        int n = 0;
        while (n < MAX_BLOCKS_LOOP && qk_sched_take(&sched)) {
            emit_block(l);
            n++;
            qk_sched_advance(&sched, rate, qk_now_ms());
            if (qk_now_ms() >= next_tel)
                break;
        }
        pthread_mutex_lock(&l->mu);
        l->st.lost_bits = sched.lost_bits;
        pthread_mutex_unlock(&l->mu);
        if (n > 0)
            continue;
        double w = qk_sched_wait_ms(&sched, rate, MAX_WAIT_MS);
        double to_tel = next_tel - qk_now_ms();
        if (to_tel < w)
            w = to_tel;
        if (w > 0 && wait_ms(l, w))
            break;
    }
    return NULL;
}

int qk_sim_link_start(const qk_sim_link_cfg *cfg, const qk_sim_config *global, qk_blockids *ids,
                      qk_sim_link **out, qk_err *err)
{
    *out = NULL;
    qk_sim_link *l = calloc(1, sizeof *l);
    if (!l)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    l->cfg = cfg;
    l->global = global;
    l->ids = ids;
    snprintf(l->st.id, sizeof l->st.id, "%s", cfg->id);
    l->st.time_scale = cfg->time_scale;
    l->st.distance_km = cfg->distance_km;
    qk_faults_clear(&l->st.faults);
    for (int e = 0; e < 2; e++)
        snprintf(l->st.ends[e].url, sizeof l->st.ends[e].url, "%s", cfg->url[e]);
    pthread_condattr_t ca;
    bool sync_ok = pthread_mutex_init(&l->mu, NULL) == 0;
    if (sync_ok) {
        sync_ok = pthread_condattr_init(&ca) == 0 &&
                  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&l->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (!sync_ok)
            pthread_mutex_destroy(&l->mu);
    }
    if (!sync_ok) {
        free(l);
        return qk_err_set(err, QK_ENOMEM, "mutex/condition");
    }
    qk_device_opts o = {
        .ca = cfg->creds.ca,
        .cert = cfg->creds.cert,
        .key = cfg->creds.key,
        .timeout_ms = (long)global->timeout_ms,
        .connect_timeout_ms = (long)global->connect_timeout_ms,
        .retries = (unsigned)global->retries,
        .verify_host = global->verify_host,
    };
    l->buf[0] = qk_secure_alloc(cfg->block_bytes);
    l->buf[1] = qk_secure_alloc(cfg->block_bytes);
    int rc = 0;
    if (!l->buf[0] || !l->buf[1])
        rc = qk_err_set(err, QK_ENOMEM, "out of secure memory");
    for (int e = 0; e < 2 && rc == 0; e++)
        rc = qk_device_end_init(&l->end[e], &o, cfg->url[e], cfg->id, err);
    pthread_mutex_lock(&l->mu);
    evaluate(l);
    pthread_mutex_unlock(&l->mu);
    if (rc == 0 && pthread_create(&l->thread, NULL, run, l) != 0)
        rc = qk_err_set(err, QK_EIO, "cannot start the link thread");
    if (rc != 0) {
        qk_sim_link_stop(l);
        return qk_err_prefix(err, "link %s", cfg->id);
    }
    l->started = true;
    QK_INFO("link %s: started: a=%s b=%s distance=%.1f km preset=%s model_rate_bps=%.1f "
            "time_scale=%g qber=%.4f block_bytes=%" PRIu64,
            cfg->id, cfg->url[0], cfg->url[1], cfg->distance_km, cfg->preset, l->st.model_rate_bps,
            cfg->time_scale, l->st.qber, cfg->block_bytes);
    *out = l;
    return 0;
}

void qk_sim_link_stop(qk_sim_link *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        log_progress(l);
    }
    for (int e = 0; e < 2; e++)
        qk_device_end_free(&l->end[e]);
    qk_secure_free(l->buf[0]);
    qk_secure_free(l->buf[1]);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

const char *qk_sim_link_id(const qk_sim_link *l)
{
    return l->cfg->id;
}

void qk_sim_link_status(qk_sim_link *l, qk_link_status *st)
{
    pthread_mutex_lock(&l->mu);
    *st = l->st;
    pthread_mutex_unlock(&l->mu);
}

int qk_sim_link_fault(qk_sim_link *l, const char *name, const char *value, qk_err *err)
{
    pthread_mutex_lock(&l->mu);
    int rc = qk_fault_apply(&l->st.faults, name, value, err);
    if (rc == 0) {
        evaluate(l);
        l->faults_changed = true;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (rc == 0)
        QK_INFO("link %s: fault %s%s%s", l->cfg->id, name, value ? " " : "", value ? value : "");
    return rc;
}

char *qk_link_status_json(const qk_link_status *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *f = cJSON_CreateObject();
    cJSON *ends = cJSON_CreateArray();
    if (!o || !f || !ends) {
        cJSON_Delete(o);
        cJSON_Delete(f);
        cJSON_Delete(ends);
        return NULL;
    }
    cJSON_AddItemToObject(o, "faults", f);
    bool ok = cJSON_AddStringToObject(o, "id", st->id) &&
              cJSON_AddStringToObject(o, "state", st->state) &&
              cJSON_AddNumberToObject(o, "qber", st->qber) &&
              cJSON_AddNumberToObject(o, "rate_bps", st->rate_bps) &&
              cJSON_AddNumberToObject(o, "model_rate_bps", st->model_rate_bps) &&
              cJSON_AddNumberToObject(o, "time_scale", st->time_scale) &&
              cJSON_AddNumberToObject(o, "distance_km", st->distance_km) &&
              cJSON_AddNumberToObject(o, "blocks", (double)st->blocks) &&
              cJSON_AddNumberToObject(o, "delivered_bits", (double)st->delivered_bits) &&
              cJSON_AddNumberToObject(o, "last_block_id", (double)st->last_block_id) &&
              cJSON_AddNumberToObject(o, "dropped_blocks", (double)st->dropped_blocks) &&
              cJSON_AddNumberToObject(o, "corrupted_blocks", (double)st->corrupted_blocks) &&
              cJSON_AddNumberToObject(o, "failed_blocks", (double)st->failed_blocks) &&
              cJSON_AddNumberToObject(o, "lost_bits", floor(st->lost_bits)) &&
              cJSON_AddBoolToObject(f, "down", st->faults.down) &&
              cJSON_AddNumberToObject(f, "eve", st->faults.eve_fraction) &&
              cJSON_AddNumberToObject(f, "loss_db", st->faults.loss_db) &&
              cJSON_AddStringToObject(f, "drop", qk_end_name(st->faults.drop)) &&
              cJSON_AddStringToObject(f, "corrupt", qk_end_name(st->faults.corrupt)) &&
              cJSON_AddNumberToObject(f, "delay_ms", st->faults.delay_ms);
    cJSON_AddItemToObject(o, "ends", ends);
    for (int e = 0; e < 2 && ok; e++) {
        cJSON *x = cJSON_CreateObject();
        ok = x && cJSON_AddItemToArray(ends, x) &&
             cJSON_AddStringToObject(x, "url", st->ends[e].url) &&
             cJSON_AddNumberToObject(x, "ok", (double)st->ends[e].ok) &&
             cJSON_AddNumberToObject(x, "conflicts", (double)st->ends[e].conflicts) &&
             cJSON_AddNumberToObject(x, "refused", (double)st->ends[e].refused) &&
             cJSON_AddNumberToObject(x, "unreachable", (double)st->ends[e].unreachable) &&
             cJSON_AddStringToObject(x, "last_error", st->ends[e].last_error);
        if (!x)
            break;
    }
    char *s = ok ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    return s;
}
