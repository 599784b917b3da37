/* device_source.c - the ETSI GS QKD 014 device source (device_source.h): answer checks, the
 * puller thread of each pulling link, the dec_keys fetch of the other end, the qkd_device_*
 * metrics. ETSI GS QKD 014 V1.1.1: Status (clause 6.1), Key request (6.2), Key container
 * (6.3), Key IDs (6.4); the API paths of clause 5 (/api/v1/keys/{SAE_ID}/status, /enc_keys,
 * /dec_keys). */
#include "device_source.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "http_util.h"
#include "http_client.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "thread_name.h"

/* ---- answer checks ------------------------------------------------------------------------ */

static int get_limit(const cJSON *o, const char *name, uint32_t *out, qk_err *err)
{
    int64_t v = 0;
    if (qk_json_get_int(o, name, true, 1, UINT32_MAX, &v, NULL, err) != 0)
        return QK_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int get_sae(const cJSON *o, const char *name, char out[QK_STORE_ID_MAX + 1], qk_err *err)
{
    const char *s = NULL;
    bool present = false;
    out[0] = '\0';
    if (qk_json_get_string(o, name, false, &s, &present, err) != 0)
        return QK_EINVAL;
    if (!present)
        return 0;
    if (qk_peer_id_check(s, strlen(s), name, err) != 0)
        return QK_EINVAL;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int qk_device_status_parse(const char *body, size_t len, qk_device_status *st, qk_err *err)
{
    memset(st, 0, sizeof *st);
    cJSON *o = qk_json_parse(body, len, 64 * 1024, err);
    if (!o)
        return QK_EINVAL;
    int rc = 0;
    if (!cJSON_IsObject(o))
        rc = qk_err_set(err, QK_EINVAL, "status: not a JSON object");
    else if (get_limit(o, "max_key_per_request", &st->max_key_per_request, err) ||
             get_limit(o, "max_key_size", &st->max_key_size, err) ||
             get_limit(o, "min_key_size", &st->min_key_size, err) ||
             get_sae(o, "master_SAE_ID", st->master_sae, err) ||
             get_sae(o, "slave_SAE_ID", st->slave_sae, err))
        rc = QK_EINVAL;
    else if (st->min_key_size > st->max_key_size)
        rc = qk_err_set(err, QK_EINVAL, "status: min_key_size above max_key_size");
    cJSON_Delete(o);
    if (rc != 0)
        memset(st, 0, sizeof *st);
    return rc;
}

/* One entry of "keys": its normalised ID into id, its bytes into out (exactly key_bytes). */
static int parse_key(const cJSON *e, uint32_t key_bytes, char id[QK_KEY_ID_LEN + 1], uint8_t *out,
                     qk_err *err)
{
    const char *kid, *key;
    qk_uuid u;
    size_t got = 0;
    if (!cJSON_IsObject(e))
        return qk_err_set(err, QK_EINVAL, "keys: entries must be objects");
    if (qk_json_get_string(e, "key_ID", true, &kid, NULL, err) != 0 ||
        qk_json_get_string(e, "key", true, &key, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(kid) != QK_KEY_ID_LEN || qk_uuid_parse(kid, QK_KEY_ID_LEN, &u) != 0)
        return qk_err_set(err, QK_EINVAL, "keys: key_ID must be a UUID");
    qk_uuid_format(&u, id);
    size_t klen = strlen(key);
    if (klen != qk_base64_encoded_len(key_bytes))
        return qk_err_set(err, QK_EINVAL, "keys: key %s is not %u bytes", id, key_bytes);
    if (qk_base64_decode(key, klen, out, key_bytes, &got) != 0 || got != key_bytes)
        return qk_err_set(err, QK_EINVAL, "keys: key %s is not %u bytes of base64", id, key_bytes);
    return 0;
}

static int parse_keys(const cJSON *o, size_t cap, uint32_t key_bytes,
                      const char (*want)[QK_KEY_ID_LEN + 1], size_t nwant,
                      char (*ids)[QK_KEY_ID_LEN + 1], uint8_t *bytes, size_t *n, qk_err *err)
{
    const cJSON *keys;
    if (!cJSON_IsObject(o))
        return qk_err_set(err, QK_EINVAL, "answer: not a JSON object");
    if (qk_json_get_array(o, "keys", true, &keys, err) != 0)
        return QK_EINVAL;
    size_t count = 0;
    for (const cJSON *e = keys->child; e && count <= cap; e = e->next)
        count++;
    size_t lo = want ? nwant : 1, hi = want ? nwant : cap;
    if (count < lo || count > hi)
        return qk_err_set(err, QK_EINVAL, "keys: %zu..%zu entries expected, got %s%zu", lo, hi,
                          count > cap ? "more than " : "", count > cap ? cap : count);
    bool *seen = calloc(count, sizeof *seen);
    if (!seen)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    int rc = 0;
    size_t i = 0;
    for (const cJSON *e = keys->child; e && rc == 0; e = e->next, i++) {
        char id[QK_KEY_ID_LEN + 1];
        size_t slot = i;
        /* a dec_keys answer: find the slot of this ID among those asked for */
        rc = parse_key(e, key_bytes, id, bytes + i * key_bytes, err);
        if (rc == 0 && want) {
            slot = nwant;
            for (size_t j = 0; j < nwant; j++)
                if (strcmp(want[j], id) == 0)
                    slot = j;
            if (slot == nwant)
                rc = qk_err_set(err, QK_EINVAL, "keys: %s was not asked for", id);
        }
        if (rc == 0 && seen[slot])
            rc = qk_err_set(err, QK_EINVAL, "keys: %s appears twice", id);
        if (rc == 0 && !want)
            for (size_t j = 0; j < i && rc == 0; j++)
                if (strcmp(ids[j], id) == 0)
                    rc = qk_err_set(err, QK_EINVAL, "keys: %s appears twice", id);
        if (rc == 0) {
            seen[slot] = true;
            memcpy(ids[slot], id, sizeof id);
        }
    }
    free(seen);
    if (rc == 0 && want) {
        /* the keys arrived in the device's order: put them in the order asked for */
        uint8_t *tmp = qk_secure_alloc(count * key_bytes);
        if (!tmp)
            return qk_err_set(err, QK_ENOMEM, "out of memory");
        i = 0;
        for (const cJSON *e = keys->child; e; e = e->next, i++) {
            const char *kid = cJSON_GetObjectItemCaseSensitive(e, "key_ID")->valuestring;
            qk_uuid u;
            char id[QK_KEY_ID_LEN + 1];
            (void)qk_uuid_parse(kid, QK_KEY_ID_LEN, &u); /* checked above */
            qk_uuid_format(&u, id);
            for (size_t j = 0; j < nwant; j++)
                if (strcmp(want[j], id) == 0)
                    memcpy(tmp + j * key_bytes, bytes + i * key_bytes, key_bytes);
        }
        memcpy(bytes, tmp, count * key_bytes);
        qk_secure_free(tmp);
    }
    if (rc == 0)
        *n = count;
    return rc;
}

int qk_device_keys_parse(const char *body, size_t len, size_t cap, uint32_t key_bytes,
                         const char (*want)[QK_KEY_ID_LEN + 1], size_t nwant,
                         char (*ids)[QK_KEY_ID_LEN + 1], uint8_t *bytes, size_t *n, qk_err *err)
{
    *n = 0;
    int rc = QK_EINVAL;
    cJSON *o = NULL;
    if (cap < 1 || key_bytes < 1 || (want && (nwant < 1 || nwant > cap)))
        qk_err_set(err, QK_EINVAL, "keys: bad request shape");
    else if ((o = qk_json_parse(body, len, QK_DEVICE_ANSWER_MAX, err)) != NULL)
        rc = parse_keys(o, cap, key_bytes, want, nwant, ids, bytes, n, err);
    qk_json_delete_wiped(o);
    if (rc != 0) {
        qk_wipe(bytes, cap * key_bytes);
        *n = 0;
    }
    return rc;
}

uint64_t qk_device_backoff_next(uint64_t cur_ms, uint64_t base_ms)
{
    uint64_t next = cur_ms ? cur_ms * 2 : base_ms;
    return next > QK_DEVICE_BACKOFF_MAX_MS ? QK_DEVICE_BACKOFF_MAX_MS : next;
}

uint64_t qk_device_next_block_id(uint64_t last, uint64_t now_ms)
{
    uint64_t id = now_ms > last ? now_ms : last + 1;
    return id > QK_PEER_BLOCK_ID_MAX ? QK_PEER_BLOCK_ID_MAX : id;
}

/* ---- one source per etsi014 link --------------------------------------------------------- */

/* The reasons of qkd_device_errors_total. */
typedef enum {
    ERR_UNAVAILABLE = 0, /* the device answered 503 (or another 5xx) */
    ERR_TIMEOUT,         /* no answer within QK_DEVICE_TIMEOUT_MS */
    ERR_TLS,             /* handshake or certificate failure */
    ERR_CONNECT,         /* refused, unreachable, other transport errors */
    ERR_MALFORMED,       /* an answer that does not pass the checks */
    ERR_REFUSED,         /* a 4xx answer */
    ERR_STATUS,          /* the device's limits leave no usable request */
    ERR_PEER,            /* the peer KME could not be told (transport, unexpected answer) */
    ERR_STORE,           /* the block could not be stored here */
    ERR_COUNT
} err_reason;

static const char *const reason_names[ERR_COUNT] = {
    "unavailable", "timeout", "tls", "connect", "malformed", "refused", "status", "peer", "store"};

enum { PULL_OK = 0, PULL_SHORT, PULL_ERROR, PULL_COUNT };
static const char *const pull_names[PULL_COUNT] = {"ok", "short", "error"};

typedef struct {
    qk_device_sources *owner;
    qk_link *link;
    char base[QK_CFG_URL_MAX]; /* device_url without a trailing '/' */
    qk_http_tls tls;
    /* the pulling end */
    pthread_t thread;
    bool started;
    qk_http_client *pull_http; /* the puller thread's only */
    uint64_t last_block_id;
    qk_peer_device_keys_msg *unsent; /* a stored block the peer was not told of yet */
    uint64_t unsent_since_ms;        /* monotonic */
    /* the fetching end: handler threads take turns */
    pthread_mutex_t fetch_mu;
    qk_http_client *fetch_http;
    /* metrics */
    atomic_uint_fast64_t pulls[PULL_COUNT];
    atomic_uint_fast64_t errors[ERR_COUNT];
    atomic_uint_fast64_t keys;
    atomic_uint_fast64_t burned;
    atomic_uint_fast64_t backoff_ms;
} source;

struct qk_device_sources {
    qk_kms *kms;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on stop */
    bool stopping;
    size_t n;
    source *src; /* n */
};

static void count_error(source *s, err_reason r)
{
    atomic_fetch_add(&s->errors[r], 1);
}

/* The metrics reason of a failed device call (rc: qk_http_call's, or 0 with an HTTP status). */
static err_reason call_reason(int rc, long status)
{
    switch (rc) {
    case 0:
        return status >= 500 ? ERR_UNAVAILABLE : status >= 400 ? ERR_REFUSED : ERR_MALFORMED;
    case QK_ETIMEOUT:
        return ERR_TIMEOUT;
    case QK_ETLS:
        return ERR_TLS;
    default:
        return ERR_CONNECT;
    }
}

/* One call to the device: path below base ("/api/v1/keys/SAE/status"). 0 with *resp (any HTTP
 * status) or a transport error. */
static int device_call(source *s, qk_http_client **hc, const char *method, const char *path,
                       const char *body, qk_http_response *resp, qk_err *err)
{
    memset(resp, 0, sizeof *resp);
    char url[QK_CFG_URL_MAX + 128];
    int un = snprintf(url, sizeof url, "%s%s", s->base, path);
    if (un < 0 || (size_t)un >= sizeof url)
        return qk_err_set(err, QK_EINVAL, "device URL too long");
    if (!*hc && !(*hc = qk_http_client_new(&s->tls, err)))
        return err->code ? err->code : QK_EIO;
    static const char *const json_headers[] = {"Content-Type: application/json",
                                               "Accept: application/json", NULL};
    int rc = qk_http_call(*hc, method, url, body, body ? strlen(body) : 0, json_headers, resp, err);
    if (rc != 0) { /* a broken connection is not reused */
        qk_http_client_free(*hc);
        *hc = NULL;
    }
    return rc;
}

static int keys_path(const source *s, const char *what, char *out, size_t cap)
{
    int n = snprintf(out, cap, "/api/v1/keys/%s/%s", s->link->cfg->device_peer_sae, what);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Store a block built from a device's keys (PENDING: the inventory confirms it later). */
static int store_block(source *s, uint64_t block_id, const uint8_t *bytes, size_t len,
                       qk_put_result *res, qk_err *err)
{
    qk_kms *k = s->owner->kms;
    const qk_link_cfg *c = s->link->cfg;
    int rc = qk_store_block_put_capped(qk_kms_store(k), c->link_id, block_id, bytes, len,
                                       c->max_pool_bytes, res, err);
    if (rc == 0 && *res == QK_PUT_NEW) {
        qk_metrics_key_bytes(qk_kms_metrics(k), c->link_id, QK_KEY_RECEIVED, len);
        qk_kms_block_added(k);
    }
    return rc;
}

/* ---- the pulling end ------------------------------------------------------------------- */

/* What one pull asks for, from the configuration capped by the device's status. */
typedef struct {
    uint32_t number;
    uint32_t size_bits;
} pull_shape;

static int get_status(source *s, pull_shape *shape, qk_err *err)
{
    const qk_link_cfg *c = s->link->cfg;
    char path[QK_CFG_ID_MAX + 64];
    if (keys_path(s, "status", path, sizeof path) != 0)
        return qk_err_set(err, QK_EINVAL, "device path too long");
    qk_http_response resp;
    int rc = device_call(s, &s->pull_http, "GET", path, NULL, &resp, err);
    if (rc != 0 || resp.status != 200) {
        count_error(s, call_reason(rc, resp.status));
        if (rc == 0)
            qk_err_set(err, QK_EPEER, "status: HTTP %ld", resp.status);
        qk_http_response_free(&resp);
        return rc ? rc : QK_EPEER;
    }
    qk_device_status st;
    rc = qk_device_status_parse(resp.body, resp.body_len, &st, err);
    qk_http_response_free(&resp);
    if (rc != 0) {
        count_error(s, ERR_MALFORMED);
        return rc;
    }
    if (st.master_sae[0] && strcmp(st.master_sae, c->device_sae) != 0) {
        count_error(s, ERR_STATUS);
        return qk_err_set(err, QK_EINVAL, "status: the device knows this KME as %s, not %s",
                          st.master_sae, c->device_sae);
    }
    uint32_t size = c->device_key_size < st.max_key_size ? c->device_key_size : st.max_key_size;
    size -= size % 8;
    shape->size_bits = size;
    shape->number =
        c->device_batch < st.max_key_per_request ? c->device_batch : st.max_key_per_request;
    uint64_t bytes = (uint64_t)shape->number * (size / 8);
    if (size < 8 || size < st.min_key_size || bytes <= QK_BLOCK_VKEY_LEN) {
        count_error(s, ERR_STATUS);
        return qk_err_set(err, QK_EINVAL,
                          "status: %u keys of %u bits (max_key_per_request %u, key sizes %u..%u) "
                          "make no block",
                          shape->number, size, st.max_key_per_request, st.min_key_size,
                          st.max_key_size);
    }
    return 0;
}

/* Burn a block the peer could not build: counted; the inventory would burn it anyway. */
static void burn_block(source *s, uint64_t block_id)
{
    qk_err err;
    qk_err_clear(&err);
    if (qk_store_block_set_state(qk_kms_store(s->owner->kms), s->link->cfg->link_id, block_id,
                                 QK_BLOCK_BURNED, &err) != 0)
        QK_ERROR("link %s: burn block %" PRIu64 ": %s", s->link->cfg->link_id, block_id, err.msg);
    atomic_fetch_add(&s->burned, 1);
}

static uint64_t now_ms_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Tell the peer the keys of a stored block; burn it when the peer cannot build it. */
static int notify_peer(source *s, qk_peer_device_keys_msg *m, qk_err *err)
{
    int rc = qk_peer_device_keys(s->link->client, m, err);
    if (rc == 0)
        return 0;
    count_error(s, ERR_PEER);
    if (rc == QK_ENOTFOUND || rc == QK_EINVAL) {
        /* the peer answered: it does not hold (and will not build) this block */
        QK_WARN("link %s: block %" PRIu64 " burned: %s", m->link, m->block_id, err->msg);
        burn_block(s, m->block_id);
    }
    /* else a transport error: the peer may hold it; the inventory confirms or burns it */
    return rc;
}

/* enc_keys, the block, the peer. 0 or an error (counted). */
static int pull_keys(source *s, const pull_shape *shape, qk_err *err)
{
    const qk_link_cfg *c = s->link->cfg;
    char path[QK_CFG_ID_MAX + 64];
    char req[96];
    if (keys_path(s, "enc_keys", path, sizeof path) != 0)
        return qk_err_set(err, QK_EINVAL, "device path too long");
    snprintf(req, sizeof req, "{\"number\":%u,\"size\":%u}", shape->number, shape->size_bits);
    qk_peer_device_keys_msg *m = calloc(1, sizeof *m);
    uint32_t kb = shape->size_bits / 8;
    uint8_t *bytes = qk_secure_alloc((size_t)shape->number * kb);
    if (!m || !bytes) {
        free(m);
        qk_secure_free(bytes);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    qk_http_response resp;
    int rc = device_call(s, &s->pull_http, "POST", path, req, &resp, err);
    if (rc != 0 || resp.status != 200) {
        count_error(s, call_reason(rc, resp.status));
        if (rc == 0)
            rc = qk_err_set(err, QK_EPEER, "enc_keys: HTTP %ld", resp.status);
        goto out;
    }
    rc = qk_device_keys_parse(resp.body, resp.body_len, shape->number, kb, NULL, 0, m->key_ids,
                              bytes, &m->n, err);
    if (rc != 0) {
        count_error(s, ERR_MALFORMED);
        qk_err_prefix(err, "enc_keys");
        goto out;
    }
    if ((uint64_t)m->n * kb <= QK_BLOCK_VKEY_LEN) {
        /* a shortfall too small for a block: the keys are dropped (their IDs expire at the
         * device of the peer) */
        count_error(s, ERR_MALFORMED);
        rc = qk_err_set(err, QK_EINVAL, "enc_keys: %zu key(s) of %u bits make no block", m->n,
                        shape->size_bits);
        goto out;
    }
    snprintf(m->link, sizeof m->link, "%s", c->link_id);
    m->key_size = shape->size_bits;
    m->block_id = s->last_block_id = qk_device_next_block_id(s->last_block_id, now_ms_wall());
    qk_put_result res = QK_PUT_NEW;
    rc = store_block(s, m->block_id, bytes, m->n * kb, &res, err);
    qk_wipe(bytes, (size_t)shape->number * kb);
    if (rc != 0 || res != QK_PUT_NEW) {
        count_error(s, ERR_STORE);
        if (rc == 0)
            rc = qk_err_set(err, QK_ELIMIT, "block %" PRIu64 " not stored (%s)", m->block_id,
                            res == QK_PUT_FULL ? "pool full" : "block ID in use");
        goto out;
    }
    atomic_fetch_add(&s->keys, m->n);
    rc = notify_peer(s, m, err);
    if (rc == 0) {
        atomic_fetch_add(&s->pulls[m->n < shape->number ? PULL_SHORT : PULL_OK], 1);
    } else if (rc != QK_ENOTFOUND && rc != QK_EINVAL) {
        /* The peer was not reached: the keys stay taken at the device, so the same notice is
         * retried before any new pull (retry_unsent). */
        s->unsent = m;
        s->unsent_since_ms = (uint64_t)qk_now_ms();
        m = NULL;
    }
out:
    qk_http_response_free(&resp);
    qk_secure_free(bytes);
    free(m);
    return rc;
}

/* Whether the pool is below device_target_bytes (a store error reads as "no": no pull). */
static bool below_target(source *s)
{
    qk_pool_status st;
    qk_err err;
    qk_err_clear(&err);
    if (qk_store_pool_status(qk_kms_store(s->owner->kms), s->link->cfg->link_id, &st, &err) != 0) {
        QK_ERROR("link %s: pool status: %s", s->link->cfg->link_id, err.msg);
        return false;
    }
    return st.bytes_held < s->link->cfg->device_target_bytes;
}

/* Wait ms or until stop; true when stopping. */
static bool pause_ms(qk_device_sources *ds, uint64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(ms / 1000);
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ds->mu);
    while (!ds->stopping && pthread_cond_timedwait(&ds->cv, &ds->mu, &dl) != ETIMEDOUT)
        ;
    bool stop = ds->stopping;
    pthread_mutex_unlock(&ds->mu);
    return stop;
}

static bool stopping(qk_device_sources *ds)
{
    pthread_mutex_lock(&ds->mu);
    bool stop = ds->stopping;
    pthread_mutex_unlock(&ds->mu);
    return stop;
}

/* Retry the notice of a stored block the peer was not told of. 0 when none is left (sent, or
 * given up and burned here), else the transport error (the caller backs off). */
static int retry_unsent(source *s, qk_err *err)
{
    qk_peer_device_keys_msg *m = s->unsent;
    if (!m)
        return 0;
    int rc = notify_peer(s, m, err);
    if (rc == 0) {
        atomic_fetch_add(&s->pulls[PULL_OK], 1);
    } else if (rc != QK_ENOTFOUND && rc != QK_EINVAL) {
        if ((uint64_t)qk_now_ms() - s->unsent_since_ms < QK_DEVICE_NOTICE_RETRY_MS)
            return qk_err_prefix(err, "notice of block %" PRIu64 " (retried)", m->block_id);
        QK_WARN("link %s: block %" PRIu64 " burned: the peer was not reached for %d s", m->link,
                m->block_id, QK_DEVICE_NOTICE_RETRY_MS / 1000);
        burn_block(s, m->block_id);
    }
    free(s->unsent);
    s->unsent = NULL;
    return 0;
}

/* One thread per pulling link: a single pull in flight at a time. */
static void *pull_main(void *arg)
{
    QK_THREAD_NAME("qk-device-pull");
    source *s = arg;
    const qk_link_cfg *c = s->link->cfg;
    bool have_status = false;
    pull_shape shape = {0};
    uint64_t backoff = 0;
    while (!stopping(s->owner)) {
        uint64_t wait = c->device_interval_ms;
        /* An unsent notice is retried whatever the pool level: the device's keys wait for it. */
        if (s->unsent || below_target(s)) {
            qk_err err;
            qk_err_clear(&err);
            int rc = retry_unsent(s, &err);
            if (rc == 0 && !have_status) {
                rc = get_status(s, &shape, &err);
                have_status = rc == 0;
            }
            if (rc == 0)
                rc = pull_keys(s, &shape, &err);
            if (rc != 0) {
                atomic_fetch_add(&s->pulls[PULL_ERROR], 1);
                backoff = qk_device_backoff_next(backoff, c->device_interval_ms);
                have_status = false; /* status again after an error */
                wait = backoff;
                QK_WARN("link %s: device pull: %s (next in %" PRIu64 " ms)", c->link_id, err.msg,
                        backoff);
            } else {
                backoff = 0;
            }
            atomic_store(&s->backoff_ms, backoff);
        }
        if (pause_ms(s->owner, wait))
            break;
    }
    return NULL;
}

/* ---- the fetching end -------------------------------------------------------------------- */

int qk_device_sources_fetch(qk_device_sources *ds, qk_link *link, const qk_peer_device_keys_msg *m,
                            qk_err *err)
{
    source *s = NULL;
    for (size_t i = 0; ds && i < ds->n; i++)
        if (ds->src[i].link == link)
            s = &ds->src[i];
    if (!s)
        return qk_err_set(err, QK_EINVAL, "link %s does not take keys from an ETSI 014 device",
                          link->cfg->link_id);
    if (link->cfg->device_pull)
        return qk_err_set(err, QK_EINVAL, "link %s: this end pulls from its device itself",
                          link->cfg->link_id);
    uint32_t kb = m->key_size / 8;
    size_t len = m->n * (size_t)kb;
    /* {"key_IDs":[{"key_ID":"..."}, ..]} (clause 6.4) */
    size_t cap = 32 + m->n * (QK_KEY_ID_LEN + 16);
    char *req = malloc(cap);
    char(*ids)[QK_KEY_ID_LEN + 1] = calloc(m->n, sizeof *ids);
    uint8_t *bytes = qk_secure_alloc(len);
    int rc = 0;
    if (!req || !ids || !bytes) {
        rc = qk_err_set(err, QK_ENOMEM, "out of memory");
        goto out;
    }
    size_t off = (size_t)snprintf(req, cap, "{\"key_IDs\":[");
    for (size_t i = 0; i < m->n; i++)
        off += (size_t)snprintf(req + off, cap - off, "%s{\"key_ID\":\"%s\"}", i ? "," : "",
                                m->key_ids[i]);
    snprintf(req + off, cap - off, "]}");
    char path[QK_CFG_ID_MAX + 64];
    if (keys_path(s, "dec_keys", path, sizeof path) != 0) {
        rc = qk_err_set(err, QK_EINVAL, "device path too long");
        goto out;
    }
    qk_http_response resp;
    pthread_mutex_lock(&s->fetch_mu);
    rc = device_call(s, &s->fetch_http, "POST", path, req, &resp, err);
    pthread_mutex_unlock(&s->fetch_mu);
    if (rc != 0 || resp.status != 200) {
        err_reason r = call_reason(rc, resp.status);
        count_error(s, r);
        if (rc == 0)
            qk_err_set(err, QK_EPEER, "dec_keys: HTTP %ld", resp.status);
        rc = r == ERR_REFUSED ? QK_ENOTFOUND : QK_EPEER;
        err->code = rc;
        qk_http_response_free(&resp);
        goto out;
    }
    size_t n = 0;
    rc = qk_device_keys_parse(resp.body, resp.body_len, m->n, kb,
                              (const char(*)[QK_KEY_ID_LEN + 1]) m->key_ids, m->n, ids, bytes, &n,
                              err);
    qk_http_response_free(&resp);
    if (rc != 0) {
        count_error(s, ERR_MALFORMED);
        qk_err_prefix(err, "dec_keys");
        rc = err->code = QK_ENOTFOUND;
        goto out;
    }
    qk_put_result res = QK_PUT_NEW;
    rc = store_block(s, m->block_id, bytes, len, &res, err);
    if (rc != 0) {
        count_error(s, ERR_STORE);
        rc = err->code = QK_ESTORAGE;
    } else if (res == QK_PUT_NEW || res == QK_PUT_DUPLICATE) {
        if (res == QK_PUT_NEW)
            atomic_fetch_add(&s->keys, n);
    } else {
        count_error(s, ERR_STORE);
        rc = qk_err_set(err, QK_ENOTFOUND, "block %" PRIu64 " not stored (%s)", m->block_id,
                        res == QK_PUT_FULL ? "pool full" : "block ID in use: burned");
    }
out:
    qk_secure_free(bytes);
    free(ids);
    free(req);
    return rc;
}

/* ---- start, stop, metrics ---------------------------------------------------------------- */

static int source_init(qk_device_sources *ds, source *s, qk_link *link, qk_err *err)
{
    const qk_link_cfg *c = link->cfg;
    s->owner = ds;
    s->link = link;
    size_t n = strlen(c->device_url);
    while (n > 0 && c->device_url[n - 1] == '/')
        n--;
    memcpy(s->base, c->device_url, n);
    s->base[n] = '\0';
    s->tls = (qk_http_tls){
        .ca_file = c->device_ca,
        .cert_file = c->device_cert,
        .key_file = c->device_key,
        .connect_timeout_ms = QK_DEVICE_CONNECT_TIMEOUT_MS,
        .timeout_ms = QK_DEVICE_TIMEOUT_MS,
        .max_response = QK_DEVICE_ANSWER_MAX,
        .verify_host = true,
    };
    for (int i = 0; i < PULL_COUNT; i++)
        atomic_init(&s->pulls[i], 0);
    for (int i = 0; i < ERR_COUNT; i++)
        atomic_init(&s->errors[i], 0);
    atomic_init(&s->keys, 0);
    atomic_init(&s->burned, 0);
    atomic_init(&s->backoff_ms, 0);
    if (pthread_mutex_init(&s->fetch_mu, NULL) != 0)
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    return 0;
}

int qk_device_sources_start(qk_kms *k, qk_device_sources **out, qk_err *err)
{
    *out = NULL;
    qk_device_sources *ds = calloc(1, sizeof *ds);
    if (!ds)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    ds->kms = k;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        free(ds);
        return qk_err_set(err, QK_ENOMEM, "condattr init failed");
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc1 = pthread_mutex_init(&ds->mu, NULL);
    int rc2 = rc1 == 0 ? pthread_cond_init(&ds->cv, &ca) : -1;
    pthread_condattr_destroy(&ca);
    if (rc1 != 0 || rc2 != 0) {
        if (rc1 == 0)
            pthread_mutex_destroy(&ds->mu);
        free(ds);
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    }
    size_t nl = qk_kms_link_count(k), n = 0;
    ds->src = calloc(nl ? nl : 1, sizeof *ds->src);
    if (!ds->src) {
        qk_device_sources_stop(ds);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nl; i++) {
        qk_link *l = qk_kms_link_at(k, i);
        if (l->cfg->source != QK_SOURCE_ETSI014)
            continue;
        if (source_init(ds, &ds->src[n], l, err) != 0) {
            qk_device_sources_stop(ds);
            return QK_ENOMEM;
        }
        ds->n = ++n;
    }
    for (size_t i = 0; i < ds->n; i++) {
        source *s = &ds->src[i];
        if (!s->link->cfg->device_pull)
            continue;
        if (pthread_create(&s->thread, NULL, pull_main, s) != 0) {
            qk_device_sources_stop(ds);
            return qk_err_set(err, QK_ENOMEM, "cannot start the device puller thread");
        }
        s->started = true;
        QK_INFO("link %s: pulling keys from the ETSI 014 device %s", s->link->cfg->link_id,
                s->base);
    }
    *out = ds;
    return 0;
}

void qk_device_sources_stop(qk_device_sources *ds)
{
    if (!ds)
        return;
    pthread_mutex_lock(&ds->mu);
    ds->stopping = true;
    pthread_cond_broadcast(&ds->cv);
    pthread_mutex_unlock(&ds->mu);
    /* A puller is in a pause (woken above) or in one call bounded by QK_DEVICE_TIMEOUT_MS or
     * the peer client's timeout: each join returns within that bound. */
    for (size_t i = 0; i < ds->n; i++) {
        source *s = &ds->src[i];
        if (s->started)
            pthread_join(s->thread, NULL);
        /* An unsent notice's block stays PENDING here: the inventory burns it at both ends. */
        free(s->unsent);
        qk_http_client_free(s->pull_http);
        qk_http_client_free(s->fetch_http);
        pthread_mutex_destroy(&s->fetch_mu);
    }
    free(ds->src);
    pthread_cond_destroy(&ds->cv);
    pthread_mutex_destroy(&ds->mu);
    free(ds);
}

static int family(FILE *f, const char *name, const char *type, const char *help)
{
    return fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0 ? -1 : 0;
}

int qk_device_sources_write_metrics(void *arg, FILE *f)
{
    qk_device_sources *ds = arg;
    if (!ds || ds->n == 0)
        return 0;
    int bad = family(f, "qkd_device_pulls_total", "counter",
                     "Pulls from the link's ETSI 014 device by result (ok, short: fewer keys "
                     "than asked, error).");
    for (size_t i = 0; i < ds->n; i++)
        for (int r = 0; r < PULL_COUNT; r++)
            bad |= fprintf(f, "qkd_device_pulls_total{link=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                           ds->src[i].link->cfg->link_id, pull_names[r],
                           (uint64_t)atomic_load(&ds->src[i].pulls[r])) < 0;
    bad |= family(f, "qkd_device_keys_total", "counter",
                  "Keys stored from the link's ETSI 014 device (enc_keys or dec_keys).");
    for (size_t i = 0; i < ds->n; i++)
        bad |= fprintf(f, "qkd_device_keys_total{link=\"%s\"} %" PRIu64 "\n",
                       ds->src[i].link->cfg->link_id, (uint64_t)atomic_load(&ds->src[i].keys)) < 0;
    bad |= family(f, "qkd_device_errors_total", "counter",
                  "Failed calls to the link's ETSI 014 device (or to the peer about its keys) "
                  "by reason.");
    for (size_t i = 0; i < ds->n; i++)
        for (int r = 0; r < ERR_COUNT; r++)
            bad |= fprintf(f, "qkd_device_errors_total{link=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                           ds->src[i].link->cfg->link_id, reason_names[r],
                           (uint64_t)atomic_load(&ds->src[i].errors[r])) < 0;
    bad |= family(f, "qkd_device_backoff_seconds", "gauge",
                  "The pause before the next pull after device errors (0: none).");
    for (size_t i = 0; i < ds->n; i++)
        bad |= fprintf(f, "qkd_device_backoff_seconds{link=\"%s\"} %.3f\n",
                       ds->src[i].link->cfg->link_id,
                       (double)atomic_load(&ds->src[i].backoff_ms) / 1000.0) < 0;
    bad |= family(f, "qkd_device_burned_total", "counter",
                  "Blocks pulled from the device and burned because the peer could not fetch "
                  "the same keys from its own device.");
    for (size_t i = 0; i < ds->n; i++)
        bad |=
            fprintf(f, "qkd_device_burned_total{link=\"%s\"} %" PRIu64 "\n",
                    ds->src[i].link->cfg->link_id, (uint64_t)atomic_load(&ds->src[i].burned)) < 0;
    return bad ? -1 : 0;
}
