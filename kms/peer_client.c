/* peer_client.c - the peer API client with a bounded per-peer pool of HTTP clients. */
#include "peer_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_CAP 16
#define URL_MAX  1024

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

/* One call: method + path (e.g. "/peer/v1/burn") + JSON body (may be NULL). 0 when an HTTP
 * answer arrived (*resp holds it: free with qk_http_response_free), else a transport error. */
static int call(qk_peer_client *pc, const char *method, const char *path, const char *body,
                qk_http_response *resp, qk_err *err)
{
    memset(resp, 0, sizeof *resp);
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
    rc = qk_http_call(c, method, url, body, body ? strlen(body) : 0, json_headers, resp, err);
    release(pc, c, rc == 0);
    return rc;
}

/* POST an encoded request (freed here). */
static int post(qk_peer_client *pc, const char *path, int enc_rc, char *body,
                qk_http_response *resp, qk_err *err)
{
    memset(resp, 0, sizeof *resp);
    if (enc_rc != 0)
        return enc_rc;
    int rc = call(pc, "POST", path, body, resp, err);
    free(body);
    return rc;
}

/* A 200 answer of burn, device-keys or lease must say so: {"status": want}. */
static int expect_result(const qk_http_response *resp, qk_peer_result want, const char *what,
                         qk_err *err)
{
    qk_peer_result_msg res;
    qk_err derr;
    qk_err_clear(&derr);
    if (qk_peer_result_decode(resp->body, resp->body_len, &res, &derr) != 0)
        return qk_err_set(err, QK_EPEER, "peer answered %s with a bad body: %s", what, derr.msg);
    if (res.status != want)
        return qk_err_set(err, QK_EPEER, "peer answered %s with another status", what);
    return 0;
}

/* The reason of an error answer ({"message","reason"}); QK_PEER_REASON_NONE when the body has
 * none or is not an error body (e.g. from a proxy). */
static qk_peer_reason error_reason(const qk_http_response *resp)
{
    qk_peer_error_msg e;
    qk_err derr;
    if (qk_peer_error_decode(resp->body, resp->body_len, &e, &derr) != 0)
        return QK_PEER_REASON_NONE;
    return e.reason;
}

/* A refusal the caller has no specific answer for (issue 17: the asking KME tells its SAE why):
 * the peer's store failed (QK_ESTORAGE), a limit at the peer (QK_EQUOTA), an error status
 * without a reason of ours, which our peer's handlers always give except in the 503 of a full
 * worker pool (QK_EIO: as good as unreachable), else QK_EPEER. */
static int refusal(qk_err *err, long status, qk_peer_reason why, const char *what)
{
    const char *reason = qk_peer_reason_name(why);
    if (why == QK_PEER_REASON_STORAGE)
        return qk_err_set(err, QK_ESTORAGE, "peer's store failed on %s (HTTP %ld)", what, status);
    if (why == QK_PEER_REASON_LIMIT)
        return qk_err_set(err, QK_EQUOTA, "peer refused %s: limit (HTTP %ld)", what, status);
    if (why == QK_PEER_REASON_NONE && status >= 500)
        return qk_err_set(err, QK_EIO, "peer answered HTTP %ld to %s without a reason", status,
                          what);
    return qk_err_set(err, QK_EPEER, "peer answered HTTP %ld to %s (%s)", status, what,
                      reason ? reason : "no reason");
}

const char *qk_peer_fail_name(qk_peer_fail f)
{
    static const char *const names[QK_PEER_FAIL_COUNT] = {
        [QK_PEER_FAIL_UNREACHABLE] = "unreachable",
        [QK_PEER_FAIL_STORAGE] = "storage",
        [QK_PEER_FAIL_LIMIT] = "limit",
        [QK_PEER_FAIL_MISMATCH] = "mismatch",
        [QK_PEER_FAIL_REFUSED] = "refused",
    };
    return f >= 0 && f < QK_PEER_FAIL_COUNT ? names[f] : names[QK_PEER_FAIL_UNREACHABLE];
}

qk_peer_fail qk_peer_fail_of(int status)
{
    switch (status) {
    case QK_EIO:
    case QK_ETIMEOUT:
    case QK_ETLS:
        return QK_PEER_FAIL_UNREACHABLE;
    case QK_ESTORAGE:
        return QK_PEER_FAIL_STORAGE;
    case QK_EQUOTA:
    case QK_ELIMIT:
        return QK_PEER_FAIL_LIMIT;
    case QK_EMISMATCH:
        return QK_PEER_FAIL_MISMATCH;
    default:
        return QK_PEER_FAIL_REFUSED;
    }
}

/* POST an encoded request whose 200 answer is {"status": want}. 0 when it was; 1 when the peer
 * answered an error: *status and *reason set (QK_PEER_REASON_NONE when the body has none, e.g.
 * from a proxy); else a transport error or QK_EPEER (a 200 with another body). */
#define PEER_REFUSED 1
static int post_result(qk_peer_client *pc, const char *path, int enc_rc, char *body,
                       qk_peer_result want, const char *what, long *status, qk_peer_reason *reason,
                       qk_err *err)
{
    qk_http_response resp;
    int rc = post(pc, path, enc_rc, body, &resp, err);
    if (rc != 0)
        return rc;
    *status = resp.status;
    if (resp.status == 200) {
        rc = expect_result(&resp, want, what, err);
    } else {
        *reason = error_reason(&resp);
        rc = PEER_REFUSED;
    }
    qk_http_response_free(&resp);
    return rc;
}

int qk_peer_burn(qk_peer_client *pc, const char *request_id, qk_err *err)
{
    qk_peer_burn_msg m;
    memset(&m, 0, sizeof m);
    size_t len = strlen(request_id);
    if (len > QK_STORE_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "request ID too long");
    memcpy(m.request_id, request_id, len + 1);
    char *body = NULL;
    int rc = qk_peer_burn_encode(&m, &body, err);
    long status = 0;
    qk_peer_reason why = QK_PEER_REASON_NONE;
    rc = post_result(pc, "/peer/v1/burn", rc, body, QK_PEER_BURNED, "burn", &status, &why, err);
    if (rc == PEER_REFUSED)
        rc = qk_err_set(err, QK_EPEER, "peer answered HTTP %ld to burn", status);
    return rc;
}

int qk_peer_inventory(qk_peer_client *pc, const qk_peer_inventory_msg *q, qk_inv_status *out,
                      qk_err *err)
{
    if (q->n > QK_PEER_INVENTORY_MAX)
        return qk_err_set(err, QK_EINVAL, "too many blocks for one inventory call");
    for (size_t i = 0; i < q->n; i++)
        out[i] = QK_INV_UNKNOWN;
    char *body = NULL;
    int rc = qk_peer_inventory_encode(q, &body, err);
    qk_http_response resp;
    rc = post(pc, "/peer/v1/inventory", rc, body, &resp, err);
    if (rc != 0)
        return rc;
    if (resp.status != 200) {
        rc = qk_err_set(err, QK_EPEER, "peer answered HTTP %ld to inventory", resp.status);
        qk_http_response_free(&resp);
        return rc;
    }
    qk_peer_inventory_answer *a = malloc(sizeof *a);
    qk_err derr;
    qk_err_clear(&derr);
    if (!a)
        rc = qk_err_set(err, QK_ENOMEM, "out of memory");
    else if (qk_peer_inventory_answer_decode(resp.body, resp.body_len, a, &derr) != 0)
        rc = qk_err_set(err, QK_EPEER, "peer answered inventory with a bad body: %s", derr.msg);
    qk_http_response_free(&resp);
    /* Answers are matched by block ID; only as many as were asked are read. */
    for (size_t j = 0; rc == 0 && j < a->n && j < q->n; j++)
        for (size_t i = 0; i < q->n; i++)
            if (q->blocks[i].block_id == a->blocks[j].block_id)
                out[i] = a->blocks[j].status;
    free(a);
    return rc;
}

int qk_peer_device_keys(qk_peer_client *pc, const qk_peer_device_keys_msg *m, qk_err *err)
{
    char *body = NULL;
    int rc = qk_peer_device_keys_encode(m, &body, err);
    long status = 0;
    qk_peer_reason why = QK_PEER_REASON_NONE;
    rc = post_result(pc, "/peer/v1/device-keys", rc, body, QK_PEER_STORED, "device-keys", &status,
                     &why, err);
    if (rc != PEER_REFUSED)
        return rc;
    const char *reason = qk_peer_reason_name(why);
    if (status == 409 && why == QK_PEER_REASON_DEVICE)
        return qk_err_set(err, QK_ENOTFOUND, "peer's device did not give the keys");
    if (status == 503 && why == QK_PEER_REASON_DEVICE_DOWN)
        return qk_err_set(err, QK_ENOTFOUND, "peer's device is down");
    if (status == 409 || status == 400)
        return qk_err_set(err, QK_EINVAL, "peer refused device keys: %s (HTTP %ld)",
                          reason ? reason : "bad-request", status);
    return qk_err_set(err, QK_EPEER, "peer answered HTTP %ld to device-keys", status);
}

int qk_peer_lease(qk_peer_client *pc, const char *link, qk_side side, const qk_lease *l,
                  qk_err *err)
{
    qk_peer_lease_msg m = {.side = side, .lease = *l};
    size_t len = strlen(link);
    if (len >= sizeof m.link)
        return qk_err_set(err, QK_EINVAL, "link ID too long");
    memcpy(m.link, link, len + 1);
    char *body = NULL;
    int rc = qk_peer_lease_encode(&m, &body, err);
    long status = 0;
    qk_peer_reason why = QK_PEER_REASON_NONE;
    rc = post_result(pc, "/peer/v1/lease", rc, body, QK_PEER_GRANTED, "lease", &status, &why, err);
    if (rc != PEER_REFUSED)
        return rc;
    if (status == 409 && why == QK_PEER_REASON_COLLISION)
        return qk_err_set(err, QK_ECOLLISION, "peer refused the lease: collision");
    if (status == 404 && why == QK_PEER_REASON_UNKNOWN_BLOCK)
        return qk_err_set(err, QK_ENOTFOUND, "peer refused the lease: unknown block");
    if (status == 400)
        return qk_err_set(err, QK_EINVAL, "peer refused the lease: bad request");
    return refusal(err, status, why, "lease");
}

/* The answer must hold one result per notice, in order, each naming its notice. */
static int notices_match(const qk_peer_notices_msg *m, const qk_peer_notices_answer *a, qk_err *err)
{
    if (a->n != m->n)
        return qk_err_set(err, QK_EPEER, "peer answered %zu notices with %zu results", m->n, a->n);
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->r[i].request_id, m->notices[i].request_id) != 0)
            return qk_err_set(err, QK_EPEER, "peer answered notice %zu with another request", i);
    return 0;
}

int qk_peer_notices(qk_peer_client *pc, const qk_peer_notices_msg *m, qk_peer_notices_answer *a,
                    qk_err *err)
{
    memset(a, 0, sizeof *a);
    char *body = NULL;
    int rc = qk_peer_notices_encode(m, &body, err);
    qk_http_response resp;
    rc = post(pc, "/peer/v1/notices", rc, body, &resp, err);
    if (rc != 0)
        return rc;
    qk_err derr;
    qk_err_clear(&derr);
    if (resp.status == 413) {
        rc = qk_err_set(err, QK_ELIMIT, "peer refused %zu notices as too large (HTTP 413)", m->n);
    } else if (resp.status == 400) {
        const char *reason = qk_peer_reason_name(error_reason(&resp));
        rc = qk_err_set(err, QK_EINVAL, "peer refused %zu notices as a bad request (%s)", m->n,
                        reason ? reason : "no reason");
    } else if (resp.status != 200) {
        rc = refusal(err, resp.status, error_reason(&resp), "notices");
    } else if (qk_peer_notices_answer_decode(resp.body, resp.body_len, a, &derr) != 0) {
        rc = qk_err_set(err, QK_EPEER, "peer answered notices with a bad body: %s", derr.msg);
    } else if ((rc = notices_match(m, a, err)) != 0) {
        qk_peer_notices_answer_free(a);
    }
    qk_http_response_free(&resp);
    return rc;
}

/* ---- trusted-node key relay ----------------------------------------------------------------- */

int qk_peer_relay(qk_peer_client *pc, const char *body, const char *want_id, qk_relay_answer *a,
                  qk_err *err)
{
    memset(a, 0, sizeof *a);
    qk_http_response resp;
    int rc = call(pc, "POST", "/peer/v1/relay", body, &resp, err);
    if (rc != 0)
        return rc;
    if (resp.status != 200 && resp.status != 409 && resp.status != 400) {
        rc = refusal(err, resp.status, error_reason(&resp), "relay");
    } else {
        qk_err derr;
        qk_err_clear(&derr);
        if (qk_relay_answer_decode(resp.body, resp.body_len, a, &derr) != 0)
            rc = qk_err_set(err, QK_EPEER, "peer answered relay (HTTP %ld) with a bad body: %s",
                            resp.status, derr.msg);
        else if (strcmp(a->request_id, want_id) != 0 ||
                 (resp.status == 200) != (a->status == QK_RELAY_STORED))
            rc = qk_err_set(err, QK_EPEER, "peer answered relay with another request or status");
        if (rc != 0)
            memset(a, 0, sizeof *a);
    }
    qk_http_response_free(&resp);
    return rc;
}

/* The burn and commit calls: 200 with {"status": want}, else the refusal. */
static int relay_path_call(qk_peer_client *pc, const char *path, int enc_rc, char *body,
                           qk_peer_result want, const char *what, qk_err *err)
{
    long status = 0;
    qk_peer_reason why = QK_PEER_REASON_NONE;
    int rc = post_result(pc, path, enc_rc, body, want, what, &status, &why, err);
    return rc == PEER_REFUSED ? refusal(err, status, why, what) : rc;
}

int qk_peer_relay_burn(qk_peer_client *pc, const qk_relay_burn_msg *m, qk_err *err)
{
    char *body = NULL;
    int enc = qk_relay_burn_encode(m, &body, err);
    return relay_path_call(pc, "/peer/v1/relay-burn", enc, body, QK_PEER_BURNED, "relay-burn", err);
}

int qk_peer_relay_commit(qk_peer_client *pc, const qk_relay_commit_msg *m, qk_err *err)
{
    char *body = NULL;
    int enc = qk_relay_commit_encode(m, &body, err);
    return relay_path_call(pc, "/peer/v1/relay-commit", enc, body, QK_PEER_RESERVED, "relay-commit",
                           err);
}

int qk_peer_topology(qk_peer_client *pc, qk_topo_msg *m, qk_err *err)
{
    qk_http_response resp;
    int rc = call(pc, "GET", "/peer/v1/topology", NULL, &resp, err);
    if (rc != 0)
        return rc;
    qk_err derr;
    qk_err_clear(&derr);
    if (resp.status != 200)
        rc = refusal(err, resp.status, error_reason(&resp), "topology");
    else if (qk_topo_msg_decode(resp.body, resp.body_len, m, &derr) != 0)
        rc = qk_err_set(err, QK_EPEER, "peer answered topology with a bad body: %s", derr.msg);
    qk_http_response_free(&resp);
    return rc;
}
