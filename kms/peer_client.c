/* peer_client.c - the peer API client with a bounded per-peer pool of HTTP clients. */
#include "peer_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "json_util.h"

#define POOL_CAP          16
#define URL_MAX           1024
#define RESPONSE_JSON_MAX (1024 * 1024)

struct qk_peer_client {
    char base_url[URL_MAX];
    qk_http_tls tls;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qk_http_client *idle[POOL_CAP];
    size_t nidle;
    size_t total; /* idle + in use */
    size_t max;
};

int qk_peer_client_new(const char *base_url, const qk_http_tls *tls, size_t pool_max,
                       qk_peer_client **out, qk_err *err)
{
    *out = NULL;
    if (pool_max < 1 || pool_max > POOL_CAP)
        return qk_err_set(err, QK_EINVAL, "peer client pool size must be 1..%d", POOL_CAP);
    qk_peer_client *pc = calloc(1, sizeof *pc);
    if (!pc)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof pc->base_url) {
        free(pc);
        return qk_err_set(err, QK_EINVAL, "bad peer URL");
    }
    memcpy(pc->base_url, base_url, n);
    pc->base_url[n] = '\0';
    pc->tls = *tls;
    pc->tls.psk = NULL;
    pc->tls.psk_len = 0;
    pc->max = pool_max;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        free(pc);
        return qk_err_set(err, QK_ENOMEM, "condattr init failed");
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc1 = pthread_mutex_init(&pc->mu, NULL);
    int rc2 = rc1 == 0 ? pthread_cond_init(&pc->cv, &ca) : -1;
    pthread_condattr_destroy(&ca);
    if (rc1 != 0 || rc2 != 0) {
        if (rc1 == 0)
            pthread_mutex_destroy(&pc->mu);
        free(pc);
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    }
    *out = pc;
    return 0;
}

void qk_peer_client_free(qk_peer_client *pc)
{
    if (!pc)
        return;
    for (size_t i = 0; i < pc->nidle; i++)
        qk_http_client_free(pc->idle[i]);
    pthread_cond_destroy(&pc->cv);
    pthread_mutex_destroy(&pc->mu);
    free(pc);
}

static int acquire(qk_peer_client *pc, qk_http_client **out, qk_err *err)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    long wait_ms = pc->tls.timeout_ms > 0 ? pc->tls.timeout_ms : 10000;
    dl.tv_sec += wait_ms / 1000;
    dl.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pc->mu);
    while (pc->nidle == 0 && pc->total >= pc->max) {
        int rc = pthread_cond_timedwait(&pc->cv, &pc->mu, &dl);
        if (rc == ETIMEDOUT && pc->nidle == 0 && pc->total >= pc->max) {
            pthread_mutex_unlock(&pc->mu);
            return qk_err_set(err, QK_ETIMEOUT, "every connection to the peer is busy");
        }
    }
    if (pc->nidle > 0) {
        *out = pc->idle[--pc->nidle];
        pthread_mutex_unlock(&pc->mu);
        return 0;
    }
    pc->total++;
    pthread_mutex_unlock(&pc->mu);
    qk_http_client *c = qk_http_client_new(&pc->tls, err);
    if (!c) {
        pthread_mutex_lock(&pc->mu);
        pc->total--;
        pthread_cond_signal(&pc->cv);
        pthread_mutex_unlock(&pc->mu);
        return err && err->code ? err->code : QK_EIO;
    }
    *out = c;
    return 0;
}

/* Keep a client that worked; drop one whose connection may be broken. */
static void release(qk_peer_client *pc, qk_http_client *c, bool keep)
{
    pthread_mutex_lock(&pc->mu);
    if (keep && pc->nidle < POOL_CAP) {
        pc->idle[pc->nidle++] = c;
        c = NULL;
    } else {
        pc->total--;
    }
    pthread_cond_signal(&pc->cv);
    pthread_mutex_unlock(&pc->mu);
    qk_http_client_free(c);
}

int qk_peer_call(qk_peer_client *pc, const char *method, const char *path, const char *body,
                 long *status, cJSON **json, qk_err *err)
{
    *status = 0;
    if (json)
        *json = NULL;
    char url[URL_MAX + 256];
    int un = snprintf(url, sizeof url, "%s%s", pc->base_url, path);
    if (un < 0 || (size_t)un >= sizeof url)
        return qk_err_set(err, QK_EINVAL, "peer URL too long");
    qk_http_client *c = NULL;
    int rc = acquire(pc, &c, err);
    if (rc != 0)
        return rc;
    static const char *const json_headers[] = {"Content-Type: application/json",
                                               "Accept: application/json", NULL};
    qk_http_response resp;
    memset(&resp, 0, sizeof resp);
    rc = qk_http_request(c, method, url, body, body ? strlen(body) : 0, json_headers, &resp, err);
    release(pc, c, rc == 0);
    if (rc != 0)
        return rc;
    *status = resp.status;
    if (json && resp.body && resp.body_len > 0) {
        qk_err jerr;
        *json = qk_json_parse(resp.body, resp.body_len, RESPONSE_JSON_MAX, &jerr);
    }
    qk_http_response_free(&resp);
    return 0;
}

static const char *reason_of(const cJSON *j)
{
    const cJSON *r = j ? cJSON_GetObjectItemCaseSensitive(j, "reason") : NULL;
    return cJSON_IsString(r) ? r->valuestring : "";
}

static int build_reserve(const qk_reservation *r, qk_side side, const qk_key_ref *refs, size_t n,
                         char **out)
{
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return QK_ENOMEM;
    cJSON *sarr = cJSON_AddArrayToObject(o, "slaves");
    cJSON *karr = cJSON_AddArrayToObject(o, "keys");
    if (!sarr || !karr || !cJSON_AddStringToObject(o, "request_id", r->request_id) ||
        !cJSON_AddStringToObject(o, "link", r->link) ||
        !cJSON_AddStringToObject(o, "side", side == QK_SIDE_LOW ? "low" : "high") ||
        !cJSON_AddStringToObject(o, "master", r->master) ||
        !cJSON_AddNumberToObject(o, "expires_at", (double)r->expires_at))
        goto fail;
    for (size_t i = 0; i < r->nslaves; i++) {
        cJSON *s = cJSON_CreateString(r->slaves[i]);
        if (!s || !cJSON_AddItemToArray(sarr, s)) {
            cJSON_Delete(s);
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char hex[2 * QK_CHECK_LEN + 1];
        qk_hex_encode(refs[i].check, QK_CHECK_LEN, hex, sizeof hex);
        cJSON *k = cJSON_CreateObject();
        if (!k || !cJSON_AddItemToArray(karr, k)) {
            cJSON_Delete(k);
            goto fail;
        }
        if (!cJSON_AddStringToObject(k, "key_ID", refs[i].key_id) ||
            !cJSON_AddNumberToObject(k, "block_id", (double)refs[i].block_id) ||
            !cJSON_AddNumberToObject(k, "offset", refs[i].offset) ||
            !cJSON_AddNumberToObject(k, "length", refs[i].length) ||
            !cJSON_AddStringToObject(k, "check", hex))
            goto fail;
    }
    *out = qk_json_print(o);
    cJSON_Delete(o);
    return *out ? 0 : QK_ENOMEM;
fail:
    cJSON_Delete(o);
    return QK_ENOMEM;
}

int qk_peer_reserve(qk_peer_client *pc, const qk_reservation *r, qk_side side,
                    const qk_key_ref *refs, size_t n, qk_err *err)
{
    char *body = NULL;
    if (build_reserve(r, side, refs, n, &body) != 0)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    long status = 0;
    cJSON *j = NULL;
    int rc = qk_peer_call(pc, "POST", "/peer/v1/reserve", body, &status, &j, err);
    free(body);
    if (rc != 0)
        return rc;
    const char *reason = reason_of(j);
    if (status == 200)
        rc = 0;
    else if (status == 409 && strcmp(reason, "collision") == 0)
        rc = qk_err_set(err, QK_ECOLLISION, "peer refused: collision");
    else if (status == 409 && strcmp(reason, "mismatch") == 0)
        rc = qk_err_set(err, QK_EMISMATCH, "peer refused: material mismatch");
    else if (status == 404)
        rc = qk_err_set(err, QK_ENOTFOUND, "peer refused: unknown block");
    else if (status == 409 && strcmp(reason, "limit") == 0)
        rc = qk_err_set(err, QK_ELIMIT, "peer refused: max_key_count reached for the SAE pair");
    else if (status == 409 || status == 400)
        rc = qk_err_set(err, QK_EINVAL, "peer refused: %s (HTTP %ld)",
                        reason[0] ? reason : "bad-request", status);
    else
        rc = qk_err_set(err, QK_EPEER, "peer answered HTTP %ld", status);
    cJSON_Delete(j);
    return rc;
}

int qk_peer_burn(qk_peer_client *pc, const char *request_id, qk_err *err)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "request_id", request_id)) {
        cJSON_Delete(o);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    char *body = qk_json_print(o);
    cJSON_Delete(o);
    if (!body)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    long status = 0;
    int rc = qk_peer_call(pc, "POST", "/peer/v1/burn", body, &status, NULL, err);
    free(body);
    if (rc != 0)
        return rc;
    if (status != 200)
        return qk_err_set(err, QK_EPEER, "peer answered HTTP %ld to burn", status);
    return 0;
}

static qk_inv_status parse_inv_status(const char *s)
{
    if (strcmp(s, "match") == 0)
        return QK_INV_MATCH;
    if (strcmp(s, "mismatch") == 0)
        return QK_INV_MISMATCH;
    if (strcmp(s, "burned") == 0)
        return QK_INV_BURNED;
    return QK_INV_UNKNOWN;
}

int qk_peer_inventory(qk_peer_client *pc, const char *link, const uint64_t *ids,
                      const uint8_t (*digests)[QK_CHECK_LEN], size_t n, qk_inv_status *out,
                      qk_err *err)
{
    if (n > QK_PEER_INVENTORY_MAX)
        return qk_err_set(err, QK_EINVAL, "too many blocks for one inventory call");
    for (size_t i = 0; i < n; i++)
        out[i] = QK_INV_UNKNOWN;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    if (!o || !arr || !cJSON_AddStringToObject(o, "link", link)) {
        cJSON_Delete(o);
        cJSON_Delete(arr);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    cJSON_AddItemToObject(o, "blocks", arr);
    for (size_t i = 0; i < n; i++) {
        char hex[2 * QK_CHECK_LEN + 1];
        qk_hex_encode(digests[i], QK_CHECK_LEN, hex, sizeof hex);
        cJSON *b = cJSON_CreateObject();
        if (!b || !cJSON_AddItemToArray(arr, b) ||
            !cJSON_AddNumberToObject(b, "block_id", (double)ids[i]) ||
            !cJSON_AddStringToObject(b, "digest", hex)) {
            cJSON_Delete(o);
            return qk_err_set(err, QK_ENOMEM, "out of memory");
        }
    }
    char *body = qk_json_print(o);
    cJSON_Delete(o);
    if (!body)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    long status = 0;
    cJSON *j = NULL;
    int rc = qk_peer_call(pc, "POST", "/peer/v1/inventory", body, &status, &j, err);
    free(body);
    if (rc != 0)
        return rc;
    const cJSON *blocks = j ? cJSON_GetObjectItemCaseSensitive(j, "blocks") : NULL;
    if (status != 200 || !cJSON_IsArray(blocks)) {
        cJSON_Delete(j);
        return qk_err_set(err, QK_EPEER, "peer answered HTTP %ld to inventory", status);
    }
    const cJSON *b;
    size_t seen = 0;
    cJSON_ArrayForEach(b, blocks)
    {
        if (++seen > n)
            break;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "block_id");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "status");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(st) || id->valuedouble < 0 ||
            id->valuedouble > (double)QK_PEER_BLOCK_ID_MAX)
            continue;
        uint64_t bid = (uint64_t)id->valuedouble;
        for (size_t i = 0; i < n; i++)
            if (ids[i] == bid)
                out[i] = parse_inv_status(st->valuestring);
    }
    cJSON_Delete(j);
    return 0;
}
