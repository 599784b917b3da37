/* relay_msg.c - the relay codec (relay_msg.h): each message's encoder beside its decoder. */
#include "relay_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "json_util.h"
#include "secbuf.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const side_names[] = {[QK_SIDE_LOW] = "low", [QK_SIDE_HIGH] = "high"};
static const char *const status_names[] = {
    [QK_RELAY_STORED] = "stored", [QK_RELAY_REFUSED] = "refused"};
static const char *const reason_names[QK_RELAY_REASON_COUNT] = {
    [QK_RELAY_REASON_NONE] = NULL,           [QK_RELAY_REASON_MAC] = "mac",
    [QK_RELAY_REASON_NO_KEY] = "no-key",     [QK_RELAY_REASON_LINK_DOWN] = "link-down",
    [QK_RELAY_REASON_EXPIRED] = "expired",   [QK_RELAY_REASON_HOP_KEY] = "hop-key",
    [QK_RELAY_REASON_EXISTS] = "exists",     [QK_RELAY_REASON_BAD_REQUEST] = "bad-request",
    [QK_RELAY_REASON_INTERNAL] = "internal", [QK_RELAY_REASON_LIMIT] = "limit",
};

const char *qk_relay_reason_name(qk_relay_reason r)
{
    return (int)r >= 0 && (size_t)r < N_OF(reason_names) ? reason_names[r] : NULL;
}

/* ---- checks of a filled message (the decoder's and the encoder's) -------------------------- */

static int id_ok(const char *s, size_t cap, const char *what, qk_err *err)
{
    return qk_peer_id_check(s, strnlen(s, cap), what, err) == 0 ? 0 : QK_EINVAL;
}

/* A relay request ID: an ID of at most QK_RELAY_ID_MAX characters. */
static int request_id_ok(const char *s, size_t cap, qk_err *err)
{
    if (id_ok(s, cap, "request_id", err) != 0)
        return QK_EINVAL;
    if (strnlen(s, cap) > QK_RELAY_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "request_id: at most %d characters", QK_RELAY_ID_MAX);
    return 0;
}

static int path_ok(const qk_peer_id *path, size_t n, uint32_t hop, qk_err *err)
{
    if (n < 2 || n > QK_RELAY_PATH_MAX)
        return qk_err_set(err, QK_EINVAL, "path: 2..%d nodes", QK_RELAY_PATH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (id_ok(path[i], sizeof path[i], "path", err) != 0)
            return QK_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(path[i], path[j]) == 0)
                return qk_err_set(err, QK_EINVAL, "path: a node appears twice");
    }
    if (hop > n - 2)
        return qk_err_set(err, QK_EINVAL, "hop: must be 0..%zu", n - 2);
    return 0;
}

/* A canonical key ID: a UUID in lower case (what qk_uuid_format writes). */
static bool key_id_ok(const char *s)
{
    qk_uuid u;
    char norm[QK_UUID_STR_LEN + 1];
    if (strnlen(s, QK_KEY_ID_LEN + 1) != QK_KEY_ID_LEN || qk_uuid_parse(s, QK_KEY_ID_LEN, &u) != 0)
        return false;
    qk_uuid_format(&u, norm);
    return strcmp(norm, s) == 0;
}

static uint32_t keys_max(const qk_peer_msg_limits *lim)
{
    return lim->max_keys_per_request < QK_RELAY_KEYS_MAX ? lim->max_keys_per_request
                                                         : QK_RELAY_KEYS_MAX;
}

static size_t slaves_max(const qk_peer_msg_limits *lim)
{
    size_t n = (size_t)lim->max_sae_id_count + 1;
    return n < QK_PEER_SLAVES_MAX ? n : QK_PEER_SLAVES_MAX;
}

int qk_relay_msg_check(const qk_relay_msg *m, const qk_peer_msg_limits *lim, qk_err *err)
{
    if (request_id_ok(m->request_id, sizeof m->request_id, err) ||
        path_ok(m->path, m->npath, m->hop, err) ||
        id_ok(m->master, sizeof m->master, "master", err))
        return QK_EINVAL;
    if (m->nslaves < 1 || m->nslaves > slaves_max(lim))
        return qk_err_set(err, QK_EINVAL, "slaves: 1..%zu entries", slaves_max(lim));
    for (size_t i = 0; i < m->nslaves; i++)
        if (id_ok(m->slaves[i], sizeof m->slaves[i], "slaves", err))
            return QK_EINVAL;
    if (m->expires_at > QK_RELAY_TIME_MAX || m->deadline_ms > QK_RELAY_TIME_MAX)
        return qk_err_set(err, QK_EINVAL, "expires_at, deadline_ms: must be below 2^53");
    if (m->nkeys < 1 || m->nkeys > keys_max(lim))
        return qk_err_set(err, QK_EINVAL, "keys: 1..%" PRIu32 " entries", keys_max(lim));
    uint64_t total = 0;
    for (size_t i = 0; i < m->nkeys; i++) {
        const qk_relay_key *k = &m->keys[i];
        if (!key_id_ok(k->key_id))
            return qk_err_set(err, QK_EINVAL, "keys: key_ID must be a lower-case UUID");
        if (k->length < 1 || k->length > lim->max_size_bits / 8)
            return qk_err_set(err, QK_EINVAL, "keys: length must be 1..%" PRIu32 " bytes",
                              lim->max_size_bits / 8);
        for (size_t j = 0; j < i; j++)
            if (strcmp(k->key_id, m->keys[j].key_id) == 0)
                return qk_err_set(err, QK_EINVAL, "keys: a key_ID appears twice");
        total += k->length;
    }
    if (total > QK_RELAY_DATA_MAX)
        return qk_err_set(err, QK_EINVAL, "keys: more than %u bytes in all", QK_RELAY_DATA_MAX);
    if (id_ok(m->link, sizeof m->link, "hop_key.link", err))
        return QK_EINVAL;
    if (m->side != QK_SIDE_LOW && m->side != QK_SIDE_HIGH)
        return qk_err_set(err, QK_EINVAL, "hop_key.side: must be low or high");
    if (m->nhop_keys < 2 || m->nhop_keys > QK_RELAY_HOP_KEYS_MAX)
        return qk_err_set(err, QK_EINVAL, "hop_key.keys: 2..%d entries", QK_RELAY_HOP_KEYS_MAX);
    uint64_t pad = 0;
    for (size_t i = 0; i < m->nhop_keys; i++) {
        const qk_key_ref *k = &m->hop_keys[i];
        if (!key_id_ok(k->key_id))
            return qk_err_set(err, QK_EINVAL, "hop_key.keys: key_ID must be a lower-case UUID");
        if (k->block_id > QK_RELAY_TIME_MAX)
            return qk_err_set(err, QK_EINVAL, "hop_key.keys: block_id must be below 2^53");
        if (k->offset < QK_BLOCK_VKEY_LEN || k->length < 1 ||
            (uint64_t)k->offset + k->length > QK_BLOCK_MAX_BYTES)
            return qk_err_set(err, QK_EINVAL,
                              "hop_key.keys: the range must lie in a block, past "
                              "its verification key");
        if (i == 0 && k->length != QK_RELAY_MAC_KEY_LEN)
            return qk_err_set(err, QK_EINVAL, "hop_key.keys: the first (MAC key) must be %d bytes",
                              QK_RELAY_MAC_KEY_LEN);
        for (size_t j = 0; j < i; j++)
            if (strcmp(k->key_id, m->hop_keys[j].key_id) == 0)
                return qk_err_set(err, QK_EINVAL, "hop_key.keys: a key_ID appears twice");
        if (i > 0)
            pad += k->length;
    }
    if (pad != total)
        return qk_err_set(err, QK_EINVAL, "hop_key.keys: the pad must be as long as the keys");
    if (m->ct_len != total || !m->ct)
        return qk_err_set(err, QK_EINVAL, "ct: must be as long as the keys");
    return 0;
}

/* ---- JSON pieces ---------------------------------------------------------------------------- */

/* An integer with all its digits (cJSON would print a double with 15 significant digits; RFC
 * 8259 section 6 leaves larger integers to the implementation). */
static bool put_uint(cJSON *o, const char *name, uint64_t v)
{
    char d[24];
    snprintf(d, sizeof d, "%" PRIu64, v);
    return o && cJSON_AddRawToObject(o, name, d) != NULL;
}

static bool put_str(cJSON *o, const char *name, const char *s)
{
    return o && s && cJSON_AddStringToObject(o, name, s) != NULL;
}

static bool put_ids(cJSON *o, const char *name, const qk_peer_id *ids, size_t n)
{
    cJSON *a = o ? cJSON_AddArrayToObject(o, name) : NULL;
    for (size_t i = 0; a && i < n; i++) {
        cJSON *e = cJSON_CreateString(ids[i]);
        if (!e || !cJSON_AddItemToArray(a, e)) {
            cJSON_Delete(e);
            return false;
        }
    }
    return a != NULL;
}

/* An object appended to array a. */
static cJSON *put_entry(cJSON *a)
{
    cJSON *e = a ? cJSON_CreateObject() : NULL;
    if (e && !cJSON_AddItemToArray(a, e)) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

static int print_out(cJSON *o, bool ok, char **out, qk_err *err)
{
    *out = ok && o ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    return *out ? 0 : qk_err_set(err, QK_ENOMEM, "out of memory encoding a relay message");
}

static cJSON *begin(const char *request_id)
{
    cJSON *o = cJSON_CreateObject();
    if (o && (!put_uint(o, "v", QK_RELAY_VERSION) || !put_str(o, "request_id", request_id))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Parse the body (at most max bytes) into an object and check its version. */
static int open_versioned(const char *body, size_t len, size_t max, cJSON **o, qk_err *err)
{
    *o = qk_json_parse(body, len, max, err);
    if (!*o)
        return err && err->code ? err->code : QK_EINVAL;
    if (!cJSON_IsObject(*o))
        return qk_err_set(err, QK_EINVAL, "the body must be a JSON object");
    int64_t v = 0;
    if (qk_json_get_int(*o, "v", true, 0, INT64_MAX, &v, NULL, err) != 0)
        return QK_EINVAL;
    if (v != QK_RELAY_VERSION)
        return qk_err_set(err, QK_EINVAL, "v: version %" PRId64 " not supported (this KME: %d)", v,
                          QK_RELAY_VERSION);
    return 0;
}

/* open_versioned, then the request ID. */
static int open_body(const char *body, size_t len, cJSON **o, qk_peer_id request_id, qk_err *err)
{
    int rc = open_versioned(body, len, QK_RELAY_MSG_MAX, o, err);
    if (rc != 0)
        return rc;
    const char *s;
    if (qk_json_get_string(*o, "request_id", true, &s, NULL, err) != 0 ||
        qk_peer_id_check(s, strlen(s), "request_id", err) != 0)
        return QK_EINVAL;
    if (strlen(s) > QK_RELAY_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "request_id: at most %d characters", QK_RELAY_ID_MAX);
    memcpy(request_id, s, strlen(s) + 1);
    return 0;
}

static int get_u64(const cJSON *o, const char *name, uint64_t max, uint64_t *out, qk_err *err)
{
    int64_t v = 0;
    if (qk_json_get_int(o, name, true, 0, (int64_t)max, &v, NULL, err) != 0)
        return QK_EINVAL;
    *out = (uint64_t)v;
    return 0;
}

/* An array member of 0..max entries, counted before any is read. */
static int get_list(const cJSON *o, const char *name, size_t max, const cJSON **out, size_t *n,
                    qk_err *err)
{
    if (qk_json_get_array(o, name, true, out, err) != 0)
        return QK_EINVAL;
    *n = 0;
    for (const cJSON *e = (*out)->child; e; e = e->next)
        if (++*n > max)
            return qk_err_set(err, QK_EINVAL, "%s: at most %zu entries", name, max);
    return 0;
}

/* An array of IDs (their checks come later, in qk_relay_msg_check / path_ok). */
static int get_ids(const cJSON *o, const char *name, size_t max, qk_peer_id *ids, size_t *n,
                   qk_err *err)
{
    const cJSON *a;
    if (get_list(o, name, max, &a, n, err) != 0)
        return QK_EINVAL;
    size_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) ||
            qk_peer_id_check(e->valuestring, strlen(e->valuestring), name, err) != 0)
            return qk_err_set(err, QK_EINVAL, "%s: entries must be IDs", name);
        memcpy(ids[i], e->valuestring, strlen(e->valuestring) + 1);
    }
    return 0;
}

/* key_ID: a UUID in any case, kept in lower case. */
static int get_key_id(const cJSON *o, const char *what, char out[QK_KEY_ID_LEN + 1], qk_err *err)
{
    const char *s;
    qk_uuid u;
    if (qk_json_get_string(o, "key_ID", true, &s, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(s) != QK_KEY_ID_LEN || qk_uuid_parse(s, QK_KEY_ID_LEN, &u) != 0)
        return qk_err_set(err, QK_EINVAL, "%s: key_ID must be a UUID", what);
    qk_uuid_format(&u, out);
    return 0;
}

/* ---- the hop message ------------------------------------------------------------------------ */

int qk_relay_msg_encode(const qk_relay_msg *m, const qk_peer_msg_limits *lim, char **out,
                        qk_err *err)
{
    *out = NULL;
    if (qk_relay_msg_check(m, lim, err) != 0)
        return QK_EINVAL;
    size_t b64_len = qk_base64_encoded_len(m->ct_len) + 1;
    char *b64 = malloc(b64_len);
    char tag_hex[2 * QK_RELAY_TAG_LEN + 1];
    if (!b64)
        return qk_err_set(err, QK_ENOMEM, "out of memory encoding a relay message");
    qk_base64_encode(m->ct, m->ct_len, b64, b64_len);
    qk_hex_encode(m->tag, QK_RELAY_TAG_LEN, tag_hex, sizeof tag_hex);

    cJSON *o = begin(m->request_id);
    bool ok = put_ids(o, "path", m->path, m->npath) && put_uint(o, "hop", m->hop) &&
              put_str(o, "master", m->master) && put_ids(o, "slaves", m->slaves, m->nslaves) &&
              put_uint(o, "expires_at", m->expires_at) &&
              put_uint(o, "deadline_ms", m->deadline_ms);
    cJSON *keys = ok ? cJSON_AddArrayToObject(o, "keys") : NULL;
    ok = ok && keys;
    for (size_t i = 0; ok && i < m->nkeys; i++) {
        cJSON *e = put_entry(keys);
        ok = put_str(e, "key_ID", m->keys[i].key_id) && put_uint(e, "length", m->keys[i].length);
    }
    cJSON *hk = ok ? cJSON_AddObjectToObject(o, "hop_key") : NULL;
    ok = ok && put_str(hk, "link", m->link) && put_str(hk, "side", side_names[m->side]);
    cJSON *hkeys = ok ? cJSON_AddArrayToObject(hk, "keys") : NULL;
    ok = ok && hkeys;
    for (size_t i = 0; ok && i < m->nhop_keys; i++) {
        const qk_key_ref *k = &m->hop_keys[i];
        cJSON *e = put_entry(hkeys);
        ok = put_str(e, "key_ID", k->key_id) && put_uint(e, "block_id", k->block_id) &&
             put_uint(e, "offset", k->offset) && put_uint(e, "length", k->length);
    }
    ok = ok && put_str(o, "ct", b64) && put_str(o, "tag", tag_hex);
    free(b64);
    return print_out(o, ok, out, err);
}

static int decode_keys(const cJSON *o, const qk_peer_msg_limits *lim, qk_relay_msg *m, qk_err *err)
{
    const cJSON *a;
    if (get_list(o, "keys", keys_max(lim), &a, &m->nkeys, err) != 0)
        return QK_EINVAL;
    size_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        uint64_t len;
        if (!cJSON_IsObject(e))
            return qk_err_set(err, QK_EINVAL, "keys: entries must be objects");
        if (get_key_id(e, "keys", m->keys[i].key_id, err) ||
            get_u64(e, "length", lim->max_size_bits / 8, &len, err))
            return QK_EINVAL;
        m->keys[i].length = (uint32_t)len;
    }
    return 0;
}

static int decode_hop_key(const cJSON *o, qk_relay_msg *m, qk_err *err)
{
    const cJSON *hk = cJSON_GetObjectItemCaseSensitive(o, "hop_key");
    if (!cJSON_IsObject(hk))
        return qk_err_set(err, QK_EINVAL, "hop_key: must be an object");
    const char *s;
    if (qk_json_get_string(hk, "link", true, &s, NULL, err) != 0 ||
        qk_peer_id_check(s, strlen(s), "hop_key.link", err) != 0)
        return QK_EINVAL;
    memcpy(m->link, s, strlen(s) + 1);
    if (qk_json_get_string(hk, "side", true, &s, NULL, err) != 0)
        return QK_EINVAL;
    if (strcmp(s, "low") == 0)
        m->side = QK_SIDE_LOW;
    else if (strcmp(s, "high") == 0)
        m->side = QK_SIDE_HIGH;
    else
        return qk_err_set(err, QK_EINVAL, "hop_key.side: must be low or high");
    const cJSON *a;
    if (get_list(hk, "keys", QK_RELAY_HOP_KEYS_MAX, &a, &m->nhop_keys, err) != 0)
        return QK_EINVAL;
    size_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        qk_key_ref *k = &m->hop_keys[i];
        uint64_t off, len;
        if (!cJSON_IsObject(e))
            return qk_err_set(err, QK_EINVAL, "hop_key.keys: entries must be objects");
        if (get_key_id(e, "hop_key.keys", k->key_id, err) ||
            get_u64(e, "block_id", QK_RELAY_TIME_MAX, &k->block_id, err) ||
            get_u64(e, "offset", QK_BLOCK_MAX_BYTES - 1, &off, err) ||
            get_u64(e, "length", QK_BLOCK_MAX_BYTES, &len, err))
            return QK_EINVAL;
        k->offset = (uint32_t)off;
        k->length = (uint32_t)len;
    }
    return 0;
}

/* ct (base64, exactly the keys' total length) and tag (32 hex digits). */
static int decode_ct_tag(const cJSON *o, qk_relay_msg *m, qk_err *err)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->nkeys; i++)
        total += m->keys[i].length;
    if (total > QK_RELAY_DATA_MAX)
        return qk_err_set(err, QK_EINVAL, "keys: more than %u bytes in all", QK_RELAY_DATA_MAX);
    const char *s;
    size_t got = 0;
    if (qk_json_get_string(o, "ct", true, &s, NULL, err) != 0)
        return QK_EINVAL;
    size_t slen = strlen(s);
    if (slen != qk_base64_encoded_len((size_t)total))
        return qk_err_set(err, QK_EINVAL, "ct: must be the keys' %" PRIu64 " bytes in base64",
                          total);
    m->ct = malloc(total ? (size_t)total : 1);
    if (!m->ct)
        return qk_err_set(err, QK_ENOMEM, "out of memory decoding a relay message");
    if (qk_base64_decode(s, slen, m->ct, (size_t)total, &got) != 0 || got != total)
        return qk_err_set(err, QK_EINVAL, "ct: must be the keys' %" PRIu64 " bytes in base64",
                          total);
    m->ct_len = (size_t)total;
    if (qk_json_get_string(o, "tag", true, &s, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(s) != 2 * QK_RELAY_TAG_LEN ||
        qk_hex_decode(s, 2 * QK_RELAY_TAG_LEN, m->tag, QK_RELAY_TAG_LEN, &got) != 0 ||
        got != QK_RELAY_TAG_LEN)
        return qk_err_set(err, QK_EINVAL, "tag: must be %d hex digits", 2 * QK_RELAY_TAG_LEN);
    return 0;
}

int qk_relay_msg_decode(const char *body, size_t len, const qk_peer_msg_limits *lim,
                        qk_relay_msg *m, qk_err *err)
{
    memset(m, 0, sizeof *m);
    cJSON *o = NULL;
    uint64_t hop = 0;
    const char *s;
    int rc = open_body(body, len, &o, m->request_id, err);
    if (rc == 0 && (get_ids(o, "path", QK_RELAY_PATH_MAX, m->path, &m->npath, err) ||
                    get_u64(o, "hop", QK_RELAY_PATH_MAX - 2, &hop, err) ||
                    qk_json_get_string(o, "master", true, &s, NULL, err) ||
                    qk_peer_id_check(s, strlen(s), "master", err)))
        rc = QK_EINVAL;
    if (rc == 0) {
        m->hop = (uint32_t)hop;
        memcpy(m->master, s, strlen(s) + 1);
        if (get_ids(o, "slaves", slaves_max(lim), m->slaves, &m->nslaves, err) ||
            get_u64(o, "expires_at", QK_RELAY_TIME_MAX, &m->expires_at, err) ||
            get_u64(o, "deadline_ms", QK_RELAY_TIME_MAX, &m->deadline_ms, err) ||
            decode_keys(o, lim, m, err) || decode_hop_key(o, m, err))
            rc = QK_EINVAL;
    }
    if (rc == 0)
        rc = decode_ct_tag(o, m, err);
    if (rc == 0)
        rc = qk_relay_msg_check(m, lim, err);
    cJSON_Delete(o);
    if (rc != 0)
        qk_relay_msg_free(m);
    return rc;
}

void qk_relay_msg_free(qk_relay_msg *m)
{
    qk_wipe_free(m->ct, m->ct_len);
    memset(m, 0, sizeof *m);
}

/* ---- associated data ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t cap, len;
    bool full;
} ad_buf;

static void ad_bytes(ad_buf *b, const void *p, size_t n)
{
    if (b->full || n > b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void ad_be(ad_buf *b, uint64_t v, size_t width)
{
    uint8_t x[8];
    for (size_t i = 0; i < width; i++)
        x[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    ad_bytes(b, x, width);
}

static void ad_str(ad_buf *b, const char *s)
{
    size_t n = strlen(s);
    ad_be(b, n, 2);
    ad_bytes(b, s, n);
}

int qk_relay_msg_ad(const qk_relay_msg *m, const qk_peer_msg_limits *lim, uint8_t *ad, size_t cap,
                    size_t *ad_len, qk_err *err)
{
    *ad_len = 0;
    if (qk_relay_msg_check(m, lim, err) != 0)
        return QK_EINVAL;
    static const char label[] = "qkd-kms relay v1";
    ad_buf b = {.p = ad, .cap = cap};
    ad_bytes(&b, label, sizeof label - 1);
    ad_str(&b, m->request_id);
    ad_be(&b, m->npath, 2);
    for (size_t i = 0; i < m->npath; i++)
        ad_str(&b, m->path[i]);
    ad_be(&b, m->hop, 4);
    ad_str(&b, m->master);
    ad_be(&b, m->nslaves, 2);
    for (size_t i = 0; i < m->nslaves; i++)
        ad_str(&b, m->slaves[i]);
    ad_be(&b, m->expires_at, 8);
    ad_be(&b, m->deadline_ms, 8);
    ad_be(&b, m->nkeys, 2);
    for (size_t i = 0; i < m->nkeys; i++) {
        ad_str(&b, m->keys[i].key_id);
        ad_be(&b, m->keys[i].length, 4);
    }
    ad_str(&b, m->link);
    ad_be(&b, (uint64_t)m->side, 1);
    ad_be(&b, m->nhop_keys, 2);
    for (size_t i = 0; i < m->nhop_keys; i++) {
        const qk_key_ref *k = &m->hop_keys[i];
        ad_str(&b, k->key_id);
        ad_be(&b, k->block_id, 8);
        ad_be(&b, k->offset, 4);
        ad_be(&b, k->length, 4);
    }
    if (b.full)
        return qk_err_set(err, QK_ELIMIT, "relay: associated data above %zu bytes", cap);
    *ad_len = b.len;
    return 0;
}

/* ---- the answer ----------------------------------------------------------------------------- */

static int answer_check(const qk_relay_answer *a, qk_err *err)
{
    if (request_id_ok(a->request_id, sizeof a->request_id, err))
        return QK_EINVAL;
    if (a->status == QK_RELAY_STORED) {
        if (a->reason != QK_RELAY_REASON_NONE || a->hop != 0)
            return qk_err_set(err, QK_EINVAL, "reason, hop: only in a refusal");
        return 0;
    }
    if (a->status != QK_RELAY_REFUSED)
        return qk_err_set(err, QK_EINVAL, "status: must be stored or refused");
    if (!qk_relay_reason_name(a->reason))
        return qk_err_set(err, QK_EINVAL, "reason: a refusal names one");
    if (a->hop > QK_RELAY_PATH_MAX - 1)
        return qk_err_set(err, QK_EINVAL, "hop: must be 0..%d", QK_RELAY_PATH_MAX - 1);
    return 0;
}

int qk_relay_answer_encode(const qk_relay_answer *a, char **out, qk_err *err)
{
    *out = NULL;
    if (answer_check(a, err) != 0)
        return QK_EINVAL;
    cJSON *o = begin(a->request_id);
    bool ok = put_str(o, "status", status_names[a->status]);
    if (a->status == QK_RELAY_REFUSED)
        ok = ok && put_str(o, "reason", qk_relay_reason_name(a->reason)) &&
             put_uint(o, "hop", a->hop);
    return print_out(o, ok, out, err);
}

/* The index of s in names[0..n), or -1. */
static int index_of(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

int qk_relay_answer_decode(const char *body, size_t len, qk_relay_answer *a, qk_err *err)
{
    memset(a, 0, sizeof *a);
    cJSON *o = NULL;
    const char *s;
    int rc = open_body(body, len, &o, a->request_id, err);
    if (rc == 0 && qk_json_get_string(o, "status", true, &s, NULL, err) != 0)
        rc = QK_EINVAL;
    int st = rc == 0 ? index_of(s, status_names, N_OF(status_names)) : -1;
    if (rc == 0 && st < 0)
        rc = qk_err_set(err, QK_EINVAL, "status: must be stored or refused");
    if (rc == 0 && st == QK_RELAY_REFUSED) {
        a->status = QK_RELAY_REFUSED;
        uint64_t hop = 0;
        int r = -1;
        if (qk_json_get_string(o, "reason", true, &s, NULL, err) != 0)
            rc = QK_EINVAL;
        else if ((r = index_of(s, reason_names, N_OF(reason_names))) < 0)
            rc = qk_err_set(err, QK_EINVAL, "reason: unknown");
        else if (get_u64(o, "hop", QK_RELAY_PATH_MAX - 1, &hop, err) != 0)
            rc = QK_EINVAL;
        a->reason = (qk_relay_reason)(r < 0 ? 0 : r);
        a->hop = (uint32_t)hop;
    }
    if (rc == 0)
        rc = answer_check(a, err);
    cJSON_Delete(o);
    if (rc != 0)
        memset(a, 0, sizeof *a);
    return rc;
}

/* ---- burn ----------------------------------------------------------------------------------- */

/* The burn and commit messages: request_id, path, hop, and for a commit "verb": "commit" (so
 * that a commit never reads as a burn's body posted elsewhere, nor a burn as a commit). */
static int path_msg_encode(const qk_relay_burn_msg *m, const char *verb, char **out, qk_err *err)
{
    *out = NULL;
    if (request_id_ok(m->request_id, sizeof m->request_id, err) ||
        path_ok(m->path, m->npath, m->hop, err))
        return QK_EINVAL;
    cJSON *o = begin(m->request_id);
    bool ok = put_ids(o, "path", m->path, m->npath) && put_uint(o, "hop", m->hop) &&
              (!verb || put_str(o, "verb", verb));
    return print_out(o, ok, out, err);
}

static int path_msg_decode(const char *body, size_t len, const char *verb, qk_relay_burn_msg *m,
                           qk_err *err)
{
    memset(m, 0, sizeof *m);
    cJSON *o = NULL;
    uint64_t hop = 0;
    int rc = open_body(body, len, &o, m->request_id, err);
    if (rc == 0 && (get_ids(o, "path", QK_RELAY_PATH_MAX, m->path, &m->npath, err) ||
                    get_u64(o, "hop", QK_RELAY_PATH_MAX - 2, &hop, err)))
        rc = QK_EINVAL;
    if (rc == 0 && verb) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "verb");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, verb) != 0)
            rc = qk_err_set(err, QK_EINVAL, "verb: want \"%s\"", verb);
    }
    m->hop = (uint32_t)hop;
    if (rc == 0)
        rc = path_ok(m->path, m->npath, m->hop, err);
    cJSON_Delete(o);
    if (rc != 0)
        memset(m, 0, sizeof *m);
    return rc;
}

int qk_relay_burn_encode(const qk_relay_burn_msg *m, char **out, qk_err *err)
{
    return path_msg_encode(m, NULL, out, err);
}

int qk_relay_burn_decode(const char *body, size_t len, qk_relay_burn_msg *m, qk_err *err)
{
    return path_msg_decode(body, len, NULL, m, err);
}

int qk_relay_commit_encode(const qk_relay_commit_msg *m, char **out, qk_err *err)
{
    return path_msg_encode(m, "commit", out, err);
}

int qk_relay_commit_decode(const char *body, size_t len, qk_relay_commit_msg *m, qk_err *err)
{
    return path_msg_decode(body, len, "commit", m, err);
}

/* ---- topology ------------------------------------------------------------------------------- */

int qk_topo_msg_check(const qk_topo_msg *m, qk_err *err)
{
    if (m->n < 1 || m->n > QK_ROUTE_NODES_MAX)
        return qk_err_set(err, QK_EINVAL, "reports: 1..%d entries", QK_ROUTE_NODES_MAX);
    for (size_t i = 0; i < m->n; i++) {
        const qk_topo_report *r = &m->reports[i];
        if (id_ok(r->node, sizeof r->node, "node", err))
            return QK_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->node, m->reports[j].node) == 0)
                return qk_err_set(err, QK_EINVAL, "reports: a node appears twice");
        if (r->seq > QK_RELAY_TIME_MAX)
            return qk_err_set(err, QK_EINVAL, "seq: must be below 2^53");
        if (r->nlinks > QK_TOPO_REPORT_LINKS_MAX)
            return qk_err_set(err, QK_EINVAL, "links: at most %d entries",
                              QK_TOPO_REPORT_LINKS_MAX);
        for (size_t j = 0; j < r->nlinks; j++) {
            const qk_topo_report_link *l = &r->links[j];
            if (id_ok(l->peer, sizeof l->peer, "peer", err))
                return QK_EINVAL;
            if (strcmp(l->peer, r->node) == 0)
                return qk_err_set(err, QK_EINVAL, "links: a node's link to itself");
            for (size_t k = 0; k < j; k++)
                if (strcmp(l->peer, r->links[k].peer) == 0)
                    return qk_err_set(err, QK_EINVAL, "links: a peer appears twice");
            if (l->available > QK_RELAY_TIME_MAX || l->rate > QK_RELAY_TIME_MAX)
                return qk_err_set(err, QK_EINVAL, "available, rate: must be below 2^53");
        }
    }
    return 0;
}

int qk_topo_msg_encode(const qk_topo_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    if (qk_topo_msg_check(m, err) != 0)
        return QK_EINVAL;
    cJSON *o = cJSON_CreateObject();
    bool ok = put_uint(o, "v", QK_RELAY_VERSION);
    cJSON *reports = ok ? cJSON_AddArrayToObject(o, "reports") : NULL;
    ok = ok && reports;
    for (size_t i = 0; ok && i < m->n; i++) {
        const qk_topo_report *r = &m->reports[i];
        cJSON *e = put_entry(reports);
        ok = put_str(e, "node", r->node) && put_uint(e, "seq", r->seq);
        cJSON *links = ok ? cJSON_AddArrayToObject(e, "links") : NULL;
        ok = ok && links;
        for (size_t j = 0; ok && j < r->nlinks; j++) {
            const qk_topo_report_link *l = &r->links[j];
            cJSON *le = put_entry(links);
            ok = put_str(le, "peer", l->peer) && cJSON_AddBoolToObject(le, "up", l->up) &&
                 put_uint(le, "available", l->available) && put_uint(le, "rate", l->rate);
        }
    }
    return print_out(o, ok, out, err);
}

/* One ID member copied into out. */
static int get_id_into(const cJSON *o, const char *name, char *out, qk_err *err)
{
    const char *s;
    if (qk_json_get_string(o, name, true, &s, NULL, err) != 0 ||
        qk_peer_id_check(s, strlen(s), name, err) != 0)
        return QK_EINVAL;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int decode_report(const cJSON *e, qk_topo_report *r, qk_err *err)
{
    const cJSON *links;
    if (!cJSON_IsObject(e))
        return qk_err_set(err, QK_EINVAL, "reports: entries must be objects");
    if (get_id_into(e, "node", r->node, err) ||
        get_u64(e, "seq", QK_RELAY_TIME_MAX, &r->seq, err) ||
        get_list(e, "links", QK_TOPO_REPORT_LINKS_MAX, &links, &r->nlinks, err))
        return QK_EINVAL;
    size_t j = 0;
    for (const cJSON *le = links->child; le; le = le->next, j++) {
        qk_topo_report_link *l = &r->links[j];
        if (!cJSON_IsObject(le))
            return qk_err_set(err, QK_EINVAL, "links: entries must be objects");
        if (get_id_into(le, "peer", l->peer, err) ||
            qk_json_get_bool(le, "up", true, &l->up, NULL, err) ||
            get_u64(le, "available", QK_RELAY_TIME_MAX, &l->available, err) ||
            get_u64(le, "rate", QK_RELAY_TIME_MAX, &l->rate, err))
            return QK_EINVAL;
    }
    return 0;
}

int qk_topo_msg_decode(const char *body, size_t len, qk_topo_msg *m, qk_err *err)
{
    memset(m, 0, sizeof *m);
    const cJSON *reports;
    cJSON *o = NULL;
    int rc = open_versioned(body, len, QK_TOPO_MSG_MAX, &o, err);
    if (rc == 0 && get_list(o, "reports", QK_ROUTE_NODES_MAX, &reports, &m->n, err) != 0)
        rc = QK_EINVAL;
    size_t i = 0;
    for (const cJSON *e = rc == 0 ? reports->child : NULL; rc == 0 && e; e = e->next, i++)
        rc = decode_report(e, &m->reports[i], err);
    if (rc == 0)
        rc = qk_topo_msg_check(m, err);
    cJSON_Delete(o);
    if (rc != 0)
        memset(m, 0, sizeof *m);
    return rc;
}
