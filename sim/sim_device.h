/* sim_device.h - client of a KME's device API (docs/qkd-kmed.md): PUT key blocks and POST
 * link telemetry over mTLS with the device certificate, bounded timeouts and retries. One
 * qk_device_end per KME end of a link; use it from one thread. */
#ifndef QK_SIM_DEVICE_H
#define QK_SIM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_client.h"
#include "qk_err.h"

typedef struct {
    const char *ca, *cert, *key;
    long timeout_ms, connect_timeout_ms;
    unsigned retries; /* extra attempts after a transport error */
    bool verify_host;
} qk_device_opts;

typedef enum {
    QK_DEV_NEW = 0,    /* 201 */
    QK_DEV_DUPLICATE,  /* 200: the KME already holds these bytes */
    QK_DEV_CONFLICT,   /* 409: same ID with other bytes (burned by the KME) */
    QK_DEV_REFUSED,    /* another HTTP status */
    QK_DEV_UNREACHABLE /* transport error after every retry */
} qk_dev_result;

typedef struct {
    qk_http_client *http;
    char base[512];
    char link[80];
    unsigned retries;
    double down_until_ms; /* after a transport failure: one attempt only until then */
    uint64_t ok, conflicts, refused, unreachable;
    char last_error[160];
} qk_device_end;

int qk_device_end_init(qk_device_end *e, const qk_device_opts *o, const char *base_url,
                       const char *link_id, qk_err *err);
void qk_device_end_free(qk_device_end *e);

/* PUT /device/v1/links/{link}/blocks/{id}. Never logs the bytes. */
qk_dev_result qk_device_put_block(qk_device_end *e, uint64_t block_id, const uint8_t *bytes,
                                  size_t len);

typedef struct {
    const char *state; /* "up", "down", "aborted" */
    double qber, rate_bps;
    uint64_t delivered_bits;
} qk_telemetry;

/* POST /device/v1/links/{link}/telemetry (one attempt). Returns 0 on 204. */
int qk_device_post_telemetry(qk_device_end *e, const qk_telemetry *t);
/* The JSON body of a telemetry report into buf; returns its length or -1. */
int qk_telemetry_json(const qk_telemetry *t, char *buf, size_t cap);

#endif
