/* sim_device.c - device API client: blocks and telemetry to one KME. */
#include "sim_device.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "log.h"

#define DOWN_BACKOFF_MS 2000.0

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int qk_device_end_init(qk_device_end *e, const qk_device_opts *o, const char *base_url,
                       const char *link_id, qk_err *err)
{
    memset(e, 0, sizeof *e);
    int n1 = snprintf(e->base, sizeof e->base, "%s", base_url);
    int n2 = snprintf(e->link, sizeof e->link, "%s", link_id);
    if (n1 < 0 || (size_t)n1 >= sizeof e->base || n2 < 0 || (size_t)n2 >= sizeof e->link)
        return qk_err_set(err, QK_EINVAL, "device URL or link ID too long");
    qk_http_tls tls = {
        .ca_file = o->ca,
        .cert_file = o->cert,
        .key_file = o->key,
        .timeout_ms = o->timeout_ms,
        .connect_timeout_ms = o->connect_timeout_ms,
        .verify_host = o->verify_host,
    };
    e->retries = o->retries;
    e->http = qk_http_client_new(&tls, err);
    return e->http ? 0 : (err->code ? err->code : QK_EIO);
}

void qk_device_end_free(qk_device_end *e)
{
    qk_http_client_free(e->http);
    e->http = NULL;
}

qk_dev_result qk_device_put_block(qk_device_end *e, uint64_t block_id, const uint8_t *bytes,
                                  size_t len)
{
    char url[768];
    int n = snprintf(url, sizeof url, "%s/device/v1/links/%s/blocks/%" PRIu64, e->base, e->link,
                     block_id);
    if (n < 0 || (size_t)n >= sizeof url) {
        e->refused++;
        return QK_DEV_REFUSED;
    }
    static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
    /* A KME that failed recently gets one attempt, so a dead end does not stall the link. */
    unsigned attempts = qk_now_ms() < e->down_until_ms ? 1 : e->retries + 1;
    for (unsigned a = 0; a < attempts; a++) {
        qk_http_response resp;
        memset(&resp, 0, sizeof resp);
        qk_err err;
        qk_err_clear(&err);
        int rc = qk_http_call(e->http, "PUT", url, (const char *)bytes, len, hdrs, &resp, &err);
        long st = resp.status;
        qk_http_response_free(&resp);
        if (rc == 0) {
            e->down_until_ms = 0;
            if (st == 201 || st == 200) {
                e->ok++;
                return st == 201 ? QK_DEV_NEW : QK_DEV_DUPLICATE;
            }
            snprintf(e->last_error, sizeof e->last_error, "block %" PRIu64 ": HTTP %ld", block_id,
                     st);
            if (st == 409) {
                e->conflicts++;
                return QK_DEV_CONFLICT;
            }
            e->refused++;
            return QK_DEV_REFUSED;
        }
        snprintf(e->last_error, sizeof e->last_error, "%s: %.120s", qk_status_name(rc), err.msg);
        if (a + 1 < attempts)
            sleep_ms(100L * (long)(a + 1));
    }
    e->down_until_ms = qk_now_ms() + DOWN_BACKOFF_MS;
    e->unreachable++;
    return QK_DEV_UNREACHABLE;
}

int qk_telemetry_json(const qk_telemetry *t, char *buf, size_t cap)
{
    double q = t->qber;
    if (!(q >= 0.0))
        q = 0.0;
    if (q > 1.0)
        q = 1.0;
    double r = t->rate_bps > 0.0 && isfinite(t->rate_bps) ? t->rate_bps : 0.0;
    int n = snprintf(buf, cap,
                     "{\"state\":\"%s\",\"qber\":%.6g,\"rate_bps\":%.6g,\"delivered_bits\":%" PRIu64
                     "}",
                     t->state, q, r, t->delivered_bits);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int qk_device_post_telemetry(qk_device_end *e, const qk_telemetry *t)
{
    char url[768], body[256];
    int n = snprintf(url, sizeof url, "%s/device/v1/links/%s/telemetry", e->base, e->link);
    int len = qk_telemetry_json(t, body, sizeof body);
    if (n < 0 || (size_t)n >= sizeof url || len < 0)
        return -1;
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    qk_http_response resp;
    memset(&resp, 0, sizeof resp);
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_http_call(e->http, "POST", url, body, (size_t)len, hdrs, &resp, &err);
    long st = resp.status;
    qk_http_response_free(&resp);
    if (rc != 0) {
        snprintf(e->last_error, sizeof e->last_error, "telemetry: %s: %.120s", qk_status_name(rc),
                 err.msg);
        return -1;
    }
    if (st != 204) {
        snprintf(e->last_error, sizeof e->last_error, "telemetry: HTTP %ld", st);
        return -1;
    }
    return 0;
}
