/* peer_msg.c - the peer-message codec (peer_msg.h): each message's encoder beside its decoder. */
#include "peer_msg.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "json_util.h"

#define DIGEST_HEX_LEN (2 * QK_CHECK_LEN)

/* ---- shared pieces ---------------------------------------------------------------------- */

static const char *const side_names[] = {[QK_SIDE_LOW] = "low", [QK_SIDE_HIGH] = "high"};
static const char *const result_names[] = {[QK_PEER_RESERVED] = "reserved",
                                           [QK_PEER_BURNED] = "burned",
                                           [QK_PEER_STORED] = "stored",
                                           [QK_PEER_GRANTED] = "granted"};
static const char *const inv_names[] = {[QK_INV_UNKNOWN] = "unknown",
                                        [QK_INV_MATCH] = "match",
                                        [QK_INV_MISMATCH] = "mismatch",
                                        [QK_INV_BURNED] = "burned"};
static const char *const state_names[] = {[QK_PEER_REQ_PENDING] = "pending",
                                          [QK_PEER_REQ_RESERVED] = "reserved",
                                          [QK_PEER_REQ_BURNED] = "burned"};
static const char *const reason_names[QK_PEER_REASON_COUNT] = {
    [QK_PEER_REASON_NONE] = NULL,
    [QK_PEER_REASON_COLLISION] = "collision",
    [QK_PEER_REASON_MISMATCH] = "mismatch",
    [QK_PEER_REASON_UNKNOWN_BLOCK] = "unknown-block",
    [QK_PEER_REASON_BURNED] = "burned",
    [QK_PEER_REASON_LIMIT] = "limit",
    [QK_PEER_REASON_BAD_REQUEST] = "bad-request",
    [QK_PEER_REASON_FORBIDDEN] = "forbidden",
    [QK_PEER_REASON_NOT_FOUND] = "not-found",
    [QK_PEER_REASON_INTERNAL] = "internal",
    [QK_PEER_REASON_SOURCE] = "source",
    [QK_PEER_REASON_DEVICE] = "device",
    [QK_PEER_REASON_DEVICE_DOWN] = "device-down",
    [QK_PEER_REASON_STORAGE] = "storage",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The name of enumeration value v in names[n], or NULL when out of range. */
static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : NULL;
}

const char *qk_peer_reason_name(qk_peer_reason r)
{
    return name_of(reason_names, COUNT(reason_names), (int)r);
}

qk_peer_msg_limits qk_peer_msg_limits_of(const qk_key_limits *kl)
{
    qk_peer_msg_limits l = {
        .max_keys_per_request = kl->max_keys_per_request,
        .max_size_bits = kl->max_size_bits,
        .max_sae_id_count = kl->max_sae_id_count,
    };
    return l;
}

int qk_peer_id_check(const char *s, size_t len, const char *what, qk_err *err)
{
    if (len < 1 || len > QK_STORE_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "%s: must be 1..%d characters", what, QK_STORE_ID_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return qk_err_set(err, QK_EINVAL, "%s: control characters not allowed", what);
    return 0;
}

/* Copy an ID that passed qk_peer_id_check (or fails it here). */
static int id_copy(qk_peer_id out, const char *s, const char *what, qk_err *err)
{
    size_t n = strlen(s);
    int rc = qk_peer_id_check(s, n, what, err);
    if (rc == 0)
        memcpy(out, s, n + 1);
    return rc;
}

/* The top-level value of a body: a JSON object. */
static cJSON *parse_object(const char *body, size_t len, qk_err *err)
{
    cJSON *o = qk_json_parse(body, len, QK_PEER_MSG_MAX, err);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        qk_err_set(err, QK_EINVAL, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

static int get_id(const cJSON *o, const char *name, qk_peer_id out, qk_err *err)
{
    const char *s;
    if (qk_json_get_string(o, name, true, &s, NULL, err) != 0)
        return QK_EINVAL;
    return id_copy(out, s, name, err);
}

static int get_uint(const cJSON *o, const char *name, uint64_t min, uint64_t max, uint64_t *out,
                    qk_err *err)
{
    int64_t v = 0;
    if (qk_json_get_int(o, name, true, (int64_t)min, (int64_t)max, &v, NULL, err) != 0)
        return QK_EINVAL;
    *out = (uint64_t)v;
    return 0;
}

static int get_hex32(const cJSON *o, const char *name, uint8_t out[QK_CHECK_LEN], qk_err *err)
{
    const char *s;
    size_t got = 0;
    if (qk_json_get_string(o, name, true, &s, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(s) != DIGEST_HEX_LEN ||
        qk_hex_decode(s, DIGEST_HEX_LEN, out, QK_CHECK_LEN, &got) != 0 || got != QK_CHECK_LEN)
        return qk_err_set(err, QK_EINVAL, "%s: must be %d hex digits", name, DIGEST_HEX_LEN);
    return 0;
}

/* A string member that must be one of names[n] (NULL entries never match). */
static int get_enum(const cJSON *o, const char *name, const char *const *names, size_t n, int *out,
                    qk_err *err)
{
    const char *s;
    if (qk_json_get_string(o, name, true, &s, NULL, err) != 0)
        return QK_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        if (names[i]) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", names[i]);
            used += w > 0 ? (size_t)w : 0;
        }
    return qk_err_set(err, QK_EINVAL, "%s: must be one of %s", name, list);
}

/* An array member with min..max entries (counted before any entry is read). */
static int get_array(const cJSON *o, const char *name, size_t min, size_t max, const cJSON **out,
                     size_t *count, qk_err *err)
{
    if (qk_json_get_array(o, name, true, out, err) != 0)
        return QK_EINVAL;
    size_t n = 0;
    for (const cJSON *e = (*out)->child; e; e = e->next)
        if (++n > max)
            break;
    if (n < min || n > max)
        return qk_err_set(err, QK_EINVAL, "%s: %zu..%zu entries", name, min, max);
    *count = n;
    return 0;
}

/* Start a decode: zero the output, parse the body into *o. */
static int decode_begin(const char *body, size_t len, void *m, size_t size, cJSON **o, qk_err *err)
{
    memset(m, 0, size);
    *o = parse_object(body, len, err);
    return *o ? 0 : (err && err->code ? err->code : QK_EINVAL);
}

/* Finish a decode: on failure the output is zeroed again. */
static int decode_end(int rc, cJSON *o, void *m, size_t size)
{
    cJSON_Delete(o);
    if (rc != 0)
        memset(m, 0, size);
    return rc;
}

static cJSON *add_string(cJSON *o, const char *name, const char *s)
{
    return o && s ? cJSON_AddStringToObject(o, name, s) : NULL;
}

/* An integer written with all its digits: cJSON prints a double with 15 significant digits
 * ("%1.15g" when that reads back within its epsilon), so 2^53-1 would travel as
 * 9.00719925474099e+15; block IDs up to 2^53-1 must arrive exact (RFC 8259 section 6). */
static cJSON *add_number(cJSON *o, const char *name, uint64_t v)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, v);
    return o ? cJSON_AddRawToObject(o, name, digits) : NULL;
}

static cJSON *add_hex32(cJSON *o, const char *name, const uint8_t b[QK_CHECK_LEN])
{
    char hex[DIGEST_HEX_LEN + 1];
    qk_hex_encode(b, QK_CHECK_LEN, hex, sizeof hex);
    return add_string(o, name, hex);
}

/* An object appended to array a, or NULL. */
static cJSON *add_object(cJSON *a)
{
    cJSON *e = a ? cJSON_CreateObject() : NULL;
    if (e && !cJSON_AddItemToArray(a, e)) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

static bool add_array_string(cJSON *a, const char *s)
{
    cJSON *e = a ? cJSON_CreateString(s) : NULL;
    if (e && !cJSON_AddItemToArray(a, e)) {
        cJSON_Delete(e);
        return false;
    }
    return e != NULL;
}

/* The members of one key ref: the reserve form (with_check) or the notice form. */
static bool add_key(cJSON *keys, const qk_key_ref *k, bool with_check)
{
    cJSON *e = add_object(keys);
    return add_string(e, "key_ID", k->key_id) && add_number(e, "block_id", k->block_id) &&
           add_number(e, "offset", k->offset) && add_number(e, "length", k->length) &&
           (!with_check || add_hex32(e, "check", k->check));
}

/* Finish an encode: print o (ok: everything was added) into *out and free it. */
static int encode_end(cJSON *o, bool ok, char **out, qk_err *err)
{
    *out = ok && o ? qk_json_print(o) : NULL;
    cJSON_Delete(o);
    return *out ? 0 : qk_err_set(err, QK_ENOMEM, "out of memory encoding a peer message");
}

/* A message holding one enumerated string member. */
static int encode_enum(const char *member, const char *const *names, size_t n, int v, char **out,
                       qk_err *err)
{
    *out = NULL;
    const char *s = name_of(names, n, v);
    if (!s)
        return qk_err_set(err, QK_EINVAL, "%s: value %d out of range", member, v);
    cJSON *o = cJSON_CreateObject();
    return encode_end(o, add_string(o, member, s) != NULL, out, err);
}

static int decode_enum(const char *body, size_t len, const char *member, const char *const *names,
                       size_t n, int *v, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, v, sizeof *v, &o, err);
    if (rc == 0)
        rc = get_enum(o, member, names, n, v, err);
    return decode_end(rc, o, v, sizeof *v);
}

/* ---- reserve ---------------------------------------------------------------------------- */

int qk_peer_reserve_msg_set(qk_peer_reserve_msg *m, const qk_reservation *r, qk_side side,
                            const qk_key_ref *refs, size_t n, qk_err *err)
{
    memset(m, 0, sizeof *m);
    if (r->nslaves < 1 || r->nslaves > QK_PEER_SLAVES_MAX)
        return qk_err_set(err, QK_EINVAL, "slaves: 1..%d entries", QK_PEER_SLAVES_MAX);
    if (id_copy(m->request_id, r->request_id, "request_id", err) ||
        id_copy(m->link, r->link, "link", err) || id_copy(m->master, r->master, "master", err))
        return QK_EINVAL;
    for (size_t i = 0; i < r->nslaves; i++)
        if (id_copy(m->slaves[i], r->slaves[i], "slaves", err) != 0)
            return QK_EINVAL;
    m->nslaves = r->nslaves;
    m->side = side;
    m->expires_at = r->expires_at;
    m->keys = refs;
    m->nkeys = n;
    return 0;
}

void qk_peer_reserve_msg_get(const qk_peer_reserve_msg *m, qk_reservation *r,
                             const char *slaves[QK_PEER_SLAVES_MAX])
{
    size_t ns = m->nslaves <= QK_PEER_SLAVES_MAX ? m->nslaves : QK_PEER_SLAVES_MAX;
    for (size_t i = 0; i < ns; i++)
        slaves[i] = m->slaves[i];
    *r = (qk_reservation){
        .request_id = m->request_id,
        .link = m->link,
        .master = m->master,
        .slaves = slaves,
        .nslaves = ns,
        .expires_at = m->expires_at,
    };
}

int qk_peer_reserve_encode(const qk_peer_reserve_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    const char *side = name_of(side_names, COUNT(side_names), (int)m->side);
    if (!side || m->nslaves > QK_PEER_SLAVES_MAX || (m->nkeys && !m->keys))
        return qk_err_set(err, QK_EINVAL, "reserve: side or counts out of range");
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "request_id", m->request_id) && add_string(o, "link", m->link) &&
              add_string(o, "side", side) && add_string(o, "master", m->master);
    cJSON *slaves = ok ? cJSON_AddArrayToObject(o, "slaves") : NULL;
    ok = slaves != NULL;
    for (size_t i = 0; ok && i < m->nslaves; i++)
        ok = add_array_string(slaves, m->slaves[i]);
    ok = ok && add_number(o, "expires_at", m->expires_at);
    cJSON *keys = ok ? cJSON_AddArrayToObject(o, "keys") : NULL;
    ok = keys != NULL;
    for (size_t i = 0; ok && i < m->nkeys; i++)
        ok = add_key(keys, &m->keys[i], true);
    return encode_end(o, ok, out, err);
}

/* One entry of "keys": the ranges are validated here, the overlap with what is recorded is
 * the store's to check. with_check: the entry carries its 64-hex "check" (reserve; a notice's
 * keys have none: the lease's check covered them, and k->check stays zero). */
static int decode_key(const cJSON *e, const qk_peer_msg_limits *lim, bool with_check, qk_key_ref *k,
                      qk_err *err)
{
    const char *id;
    qk_uuid u;
    uint64_t bid, off, len;
    if (!cJSON_IsObject(e))
        return qk_err_set(err, QK_EINVAL, "keys: entries must be objects");
    if (qk_json_get_string(e, "key_ID", true, &id, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(id) != QK_KEY_ID_LEN || qk_uuid_parse(id, QK_KEY_ID_LEN, &u) != 0)
        return qk_err_set(err, QK_EINVAL, "key_ID: must be a UUID");
    qk_uuid_format(&u, k->key_id); /* normalised: lower case */
    if (get_uint(e, "block_id", 0, QK_PEER_BLOCK_ID_MAX, &bid, err) ||
        get_uint(e, "offset", 0, QK_BLOCK_MAX_BYTES - 1, &off, err) ||
        get_uint(e, "length", 1, lim->max_size_bits / 8, &len, err) ||
        (with_check && get_hex32(e, "check", k->check, err)))
        return QK_EINVAL;
    if (off + len > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "keys: offset + length beyond the largest block");
    k->block_id = bid;
    k->offset = (uint32_t)off;
    k->length = (uint32_t)len;
    return 0;
}

/* Slaves per reservation or notice: the slave and up to max_sae_id_count more. */
static size_t max_slaves(const qk_peer_msg_limits *lim)
{
    size_t n = 1 + (size_t)lim->max_sae_id_count;
    return n < QK_PEER_SLAVES_MAX ? n : QK_PEER_SLAVES_MAX;
}

/* The entries of a "slaves" array already counted by get_array (out has room for them). */
static int decode_slaves(const cJSON *slaves, qk_peer_id *out, qk_err *err)
{
    size_t i = 0;
    for (const cJSON *s = slaves->child; s; s = s->next, i++) {
        if (!cJSON_IsString(s) || !s->valuestring)
            return qk_err_set(err, QK_EINVAL, "slaves: entries must be identities");
        if (id_copy(out[i], s->valuestring, "slaves", err) != 0)
            return QK_EINVAL;
    }
    return 0;
}

/* A "keys" array (counted by get_array, n entries) into a new array *out of n refs. */
static int decode_keys(const cJSON *keys, size_t n, const qk_peer_msg_limits *lim, bool with_check,
                       qk_key_ref **out, qk_err *err)
{
    qk_key_ref *refs = calloc(n, sizeof *refs);
    if (!refs)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    *out = refs; /* owned by the caller's message from here */
    size_t i = 0;
    for (const cJSON *e = keys->child; e; e = e->next, i++) {
        int rc = decode_key(e, lim, with_check, &refs[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int decode_reserve(const cJSON *o, const qk_peer_msg_limits *lim, qk_peer_reserve_msg *m,
                          qk_err *err)
{
    int side = 0;
    const cJSON *slaves, *keys;
    if (get_id(o, "request_id", m->request_id, err) || get_id(o, "link", m->link, err) ||
        get_enum(o, "side", side_names, COUNT(side_names), &side, err) ||
        get_id(o, "master", m->master, err) ||
        get_uint(o, "expires_at", 0, QK_PEER_BLOCK_ID_MAX, &m->expires_at, err) ||
        get_array(o, "slaves", 1, max_slaves(lim), &slaves, &m->nslaves, err) ||
        get_array(o, "keys", 1, lim->max_keys_per_request, &keys, &m->nkeys, err))
        return QK_EINVAL;
    m->side = (qk_side)side;
    if (decode_slaves(slaves, m->slaves, err) != 0)
        return QK_EINVAL;
    qk_key_ref *refs = NULL;
    int rc = decode_keys(keys, m->nkeys, lim, true, &refs, err);
    m->keys = refs;
    return rc;
}

int qk_peer_reserve_decode(const char *body, size_t len, const qk_peer_msg_limits *lim,
                           qk_peer_reserve_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc != 0)
        return rc;
    rc = decode_reserve(o, lim, m, err);
    if (rc != 0)
        qk_peer_reserve_msg_free(m);
    return decode_end(rc, o, m, sizeof *m);
}

void qk_peer_reserve_msg_free(qk_peer_reserve_msg *m)
{
    if (!m)
        return;
    free((void *)m->keys); /* a decoded message owns its keys */
    m->keys = NULL;
    m->nkeys = 0;
}

/* ---- reserve and burn answers ------------------------------------------------------------ */

int qk_peer_result_encode(const qk_peer_result_msg *m, char **out, qk_err *err)
{
    return encode_enum("status", result_names, COUNT(result_names), (int)m->status, out, err);
}

int qk_peer_result_decode(const char *body, size_t len, qk_peer_result_msg *m, qk_err *err)
{
    int v = 0;
    int rc = decode_enum(body, len, "status", result_names, COUNT(result_names), &v, err);
    m->status = (qk_peer_result)v;
    return rc;
}

/* ---- burn ------------------------------------------------------------------------------- */

int qk_peer_burn_encode(const qk_peer_burn_msg *m, char **out, qk_err *err)
{
    cJSON *o = cJSON_CreateObject();
    return encode_end(o, add_string(o, "request_id", m->request_id) != NULL, out, err);
}

int qk_peer_burn_decode(const char *body, size_t len, qk_peer_burn_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc == 0)
        rc = get_id(o, "request_id", m->request_id, err);
    return decode_end(rc, o, m, sizeof *m);
}

/* ---- device-keys ------------------------------------------------------------------------ */

int qk_peer_device_keys_check(const qk_peer_device_keys_msg *m, qk_err *err)
{
    if (qk_peer_id_check(m->link, strnlen(m->link, sizeof m->link), "link", err) != 0)
        return QK_EINVAL;
    if (m->block_id > QK_PEER_BLOCK_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "block_id: must be below 2^53");
    if (m->key_size < 8 || m->key_size > QK_PEER_DEVICE_KEY_BITS_MAX || m->key_size % 8 != 0)
        return qk_err_set(err, QK_EINVAL, "key_size: a multiple of 8 in 8..%d",
                          QK_PEER_DEVICE_KEY_BITS_MAX);
    if (m->n < 1 || m->n > QK_PEER_DEVICE_KEYS_MAX)
        return qk_err_set(err, QK_EINVAL, "key_IDs: 1..%d entries", QK_PEER_DEVICE_KEYS_MAX);
    uint64_t bytes = (uint64_t)m->n * (m->key_size / 8);
    if (bytes <= QK_BLOCK_VKEY_LEN || bytes > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "key_IDs: the block (%llu bytes) must hold %d..%d bytes",
                          (unsigned long long)bytes, QK_BLOCK_VKEY_LEN + 1, QK_BLOCK_MAX_BYTES);
    for (size_t i = 0; i < m->n; i++) {
        qk_uuid u;
        char norm[QK_KEY_ID_LEN + 1];
        if (strnlen(m->key_ids[i], sizeof m->key_ids[i]) != QK_KEY_ID_LEN ||
            qk_uuid_parse(m->key_ids[i], QK_KEY_ID_LEN, &u) != 0)
            return qk_err_set(err, QK_EINVAL, "key_IDs: entries must be UUIDs");
        qk_uuid_format(&u, norm);
        if (strcmp(norm, m->key_ids[i]) != 0)
            return qk_err_set(err, QK_EINVAL, "key_IDs: UUIDs must be in lower case");
        /* n <= QK_PEER_DEVICE_KEYS_MAX: the quadratic scan is bounded (at most ~5e5 compares) */
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->key_ids[i], m->key_ids[j]) == 0)
                return qk_err_set(err, QK_EINVAL, "key_IDs: %s appears twice", m->key_ids[i]);
    }
    return 0;
}

int qk_peer_device_keys_encode(const qk_peer_device_keys_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    if (qk_peer_device_keys_check(m, err) != 0)
        return QK_EINVAL;
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "link", m->link) && add_number(o, "block_id", m->block_id);
    cJSON *ids = ok ? cJSON_AddArrayToObject(o, "key_IDs") : NULL;
    ok = ids != NULL;
    for (size_t i = 0; ok && i < m->n; i++)
        ok = add_array_string(ids, m->key_ids[i]);
    ok = ok && add_number(o, "key_size", m->key_size);
    return encode_end(o, ok, out, err);
}

static int decode_device_keys(const cJSON *o, qk_peer_device_keys_msg *m, qk_err *err)
{
    const cJSON *ids;
    uint64_t size;
    if (get_id(o, "link", m->link, err) ||
        get_uint(o, "block_id", 0, QK_PEER_BLOCK_ID_MAX, &m->block_id, err) ||
        get_uint(o, "key_size", 8, QK_PEER_DEVICE_KEY_BITS_MAX, &size, err) ||
        get_array(o, "key_IDs", 1, QK_PEER_DEVICE_KEYS_MAX, &ids, &m->n, err))
        return QK_EINVAL;
    m->key_size = (uint32_t)size;
    size_t i = 0;
    for (const cJSON *e = ids->child; e; e = e->next, i++) {
        qk_uuid u;
        if (!cJSON_IsString(e) || !e->valuestring || strlen(e->valuestring) != QK_KEY_ID_LEN ||
            qk_uuid_parse(e->valuestring, QK_KEY_ID_LEN, &u) != 0)
            return qk_err_set(err, QK_EINVAL, "key_IDs: entries must be UUIDs");
        qk_uuid_format(&u, m->key_ids[i]); /* normalised: lower case */
    }
    return qk_peer_device_keys_check(m, err);
}

int qk_peer_device_keys_decode(const char *body, size_t len, qk_peer_device_keys_msg *m,
                               qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc == 0)
        rc = decode_device_keys(o, m, err);
    return decode_end(rc, o, m, sizeof *m);
}

/* ---- inventory -------------------------------------------------------------------------- */

int qk_peer_inventory_encode(const qk_peer_inventory_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    if (m->n > QK_PEER_INVENTORY_MAX)
        return qk_err_set(err, QK_EINVAL, "inventory: at most %d blocks", QK_PEER_INVENTORY_MAX);
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "link", m->link);
    cJSON *blocks = ok ? cJSON_AddArrayToObject(o, "blocks") : NULL;
    ok = blocks != NULL;
    for (size_t i = 0; ok && i < m->n; i++) {
        cJSON *e = add_object(blocks);
        ok = add_number(e, "block_id", m->blocks[i].block_id) &&
             add_hex32(e, "digest", m->blocks[i].digest);
    }
    return encode_end(o, ok, out, err);
}

int qk_peer_inventory_decode(const char *body, size_t len, qk_peer_inventory_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc != 0)
        return rc;
    const cJSON *blocks;
    if (get_id(o, "link", m->link, err) ||
        get_array(o, "blocks", 0, QK_PEER_INVENTORY_MAX, &blocks, &m->n, err))
        return decode_end(QK_EINVAL, o, m, sizeof *m);
    size_t i = 0;
    for (const cJSON *e = blocks->child; e && rc == 0; e = e->next, i++) {
        if (!cJSON_IsObject(e))
            rc = qk_err_set(err, QK_EINVAL, "blocks: entries must be objects");
        else if (get_uint(e, "block_id", 0, QK_PEER_BLOCK_ID_MAX, &m->blocks[i].block_id, err) ||
                 get_hex32(e, "digest", m->blocks[i].digest, err))
            rc = QK_EINVAL;
    }
    return decode_end(rc, o, m, sizeof *m);
}

int qk_peer_inventory_answer_encode(const qk_peer_inventory_answer *m, char **out, qk_err *err)
{
    *out = NULL;
    if (m->n > QK_PEER_INVENTORY_MAX)
        return qk_err_set(err, QK_EINVAL, "inventory: at most %d blocks", QK_PEER_INVENTORY_MAX);
    cJSON *o = cJSON_CreateObject();
    cJSON *blocks = o ? cJSON_AddArrayToObject(o, "blocks") : NULL;
    bool ok = blocks != NULL;
    for (size_t i = 0; ok && i < m->n; i++) {
        const char *st = name_of(inv_names, COUNT(inv_names), (int)m->blocks[i].status);
        if (!st) {
            cJSON_Delete(o);
            return qk_err_set(err, QK_EINVAL, "inventory: status out of range");
        }
        cJSON *e = add_object(blocks);
        ok = add_number(e, "block_id", m->blocks[i].block_id) && add_string(e, "status", st);
    }
    return encode_end(o, ok, out, err);
}

int qk_peer_inventory_answer_decode(const char *body, size_t len, qk_peer_inventory_answer *m,
                                    qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc != 0)
        return rc;
    const cJSON *blocks;
    if (get_array(o, "blocks", 0, QK_PEER_INVENTORY_MAX, &blocks, &m->n, err))
        return decode_end(QK_EINVAL, o, m, sizeof *m);
    size_t i = 0;
    for (const cJSON *e = blocks->child; e && rc == 0; e = e->next, i++) {
        int st = 0;
        if (!cJSON_IsObject(e))
            rc = qk_err_set(err, QK_EINVAL, "blocks: entries must be objects");
        else if (get_uint(e, "block_id", 0, QK_PEER_BLOCK_ID_MAX, &m->blocks[i].block_id, err) ||
                 get_enum(e, "status", inv_names, COUNT(inv_names), &st, err))
            rc = QK_EINVAL;
        m->blocks[i].status = (qk_inv_status)st;
    }
    return decode_end(rc, o, m, sizeof *m);
}

/* ---- request state ---------------------------------------------------------------------- */

int qk_peer_state_encode(const qk_peer_state_msg *m, char **out, qk_err *err)
{
    return encode_enum("state", state_names, COUNT(state_names), (int)m->state, out, err);
}

int qk_peer_state_decode(const char *body, size_t len, qk_peer_state_msg *m, qk_err *err)
{
    int v = 0;
    int rc = decode_enum(body, len, "state", state_names, COUNT(state_names), &v, err);
    m->state = (qk_peer_req_state)v;
    return rc;
}

/* ---- health ----------------------------------------------------------------------------- */

int qk_peer_health_encode(const qk_peer_health_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    if (m->nlinks > QK_PEER_LINKS_MAX)
        return qk_err_set(err, QK_EINVAL, "health: at most %d links", QK_PEER_LINKS_MAX);
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "node_id", m->node_id);
    cJSON *links = ok ? cJSON_AddArrayToObject(o, "links") : NULL;
    ok = links != NULL;
    for (size_t i = 0; ok && i < m->nlinks; i++)
        ok = add_array_string(links, m->links[i]);
    return encode_end(o, ok, out, err);
}

int qk_peer_health_decode(const char *body, size_t len, qk_peer_health_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc != 0)
        return rc;
    const cJSON *links;
    if (get_id(o, "node_id", m->node_id, err) ||
        get_array(o, "links", 0, QK_PEER_LINKS_MAX, &links, &m->nlinks, err))
        return decode_end(QK_EINVAL, o, m, sizeof *m);
    size_t i = 0;
    for (const cJSON *e = links->child; e && rc == 0; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring)
            rc = qk_err_set(err, QK_EINVAL, "links: entries must be link IDs");
        else
            rc = id_copy(m->links[i], e->valuestring, "links", err);
    }
    return decode_end(rc, o, m, sizeof *m);
}

/* ---- lease ------------------------------------------------------------------------------ */

int qk_peer_lease_check(const qk_peer_lease_msg *m, qk_err *err)
{
    const qk_lease *l = &m->lease;
    if (qk_peer_id_check(m->link, strnlen(m->link, sizeof m->link), "link", err) != 0)
        return QK_EINVAL;
    if (!name_of(side_names, COUNT(side_names), (int)m->side))
        return qk_err_set(err, QK_EINVAL, "side: must be low or high");
    if (l->block_id > QK_PEER_BLOCK_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "block_id: must be below 2^53");
    if (l->from < QK_BLOCK_VKEY_LEN || l->from >= l->to || l->to > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "from, to: need %d <= from < to <= %d", QK_BLOCK_VKEY_LEN,
                          QK_BLOCK_MAX_BYTES);
    return 0;
}

int qk_peer_lease_encode(const qk_peer_lease_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    if (qk_peer_lease_check(m, err) != 0)
        return QK_EINVAL;
    const qk_lease *l = &m->lease;
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "link", m->link) &&
              add_string(o, "side", name_of(side_names, COUNT(side_names), (int)m->side)) &&
              add_number(o, "block_id", l->block_id) && add_number(o, "from", l->from) &&
              add_number(o, "to", l->to);
    return encode_end(o, ok, out, err);
}

static int decode_lease(const cJSON *o, qk_peer_lease_msg *m, qk_err *err)
{
    int side = 0;
    uint64_t from, to;
    if (get_id(o, "link", m->link, err) ||
        get_enum(o, "side", side_names, COUNT(side_names), &side, err) ||
        get_uint(o, "block_id", 0, QK_PEER_BLOCK_ID_MAX, &m->lease.block_id, err) ||
        get_uint(o, "from", QK_BLOCK_VKEY_LEN, QK_BLOCK_MAX_BYTES - 1, &from, err) ||
        get_uint(o, "to", QK_BLOCK_VKEY_LEN + 1, QK_BLOCK_MAX_BYTES, &to, err))
        return QK_EINVAL;
    /* "check": sent by KMEs of earlier versions (a keyed hash over the range); still
     * well-formed or refused, and not needed: both ends lease only from blocks whose digests
     * matched (peer_msg.h). */
    uint8_t check[QK_CHECK_LEN];
    if (cJSON_GetObjectItemCaseSensitive(o, "check") && get_hex32(o, "check", check, err))
        return QK_EINVAL;
    m->side = (qk_side)side;
    m->lease.from = (uint32_t)from;
    m->lease.to = (uint32_t)to;
    return qk_peer_lease_check(m, err); /* from < to */
}

int qk_peer_lease_decode(const char *body, size_t len, qk_peer_lease_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc == 0)
        rc = decode_lease(o, m, err);
    return decode_end(rc, o, m, sizeof *m);
}

/* ---- notices ---------------------------------------------------------------------------- */

_Atomic bool qk_peer_msg_test_keys_only;
_Atomic unsigned long qk_peer_msg_test_runs_in;

/* Runs (peer_msg.h): the length of the run of keys starting at k[0] - keys k[i] whose ID is
 * k[0]'s prefix followed by the index i in 4 lower-case hex digits (k[0] ends in "0000"), in
 * the same block, of one length, each right after the one before - or 0 when k[0] cannot
 * start a run. */
static size_t run_len(const qk_key_ref *k, size_t n)
{
    char id[QK_KEY_ID_LEN + 1];
    memcpy(id, k[0].key_id, QK_PEER_RUN_PREFIX_LEN);
    size_t i = 0;
    for (; i < n && i <= 0xffff; i++) {
        snprintf(id + QK_PEER_RUN_PREFIX_LEN, sizeof id - QK_PEER_RUN_PREFIX_LEN, "%04zx", i);
        if (strcmp(k[i].key_id, id) != 0 || k[i].block_id != k[0].block_id ||
            k[i].length != k[0].length ||
            (uint64_t)k[i].offset != (uint64_t)k[0].offset + (uint64_t)i * k[0].length)
            break;
    }
    return i;
}

/* Whether the n keys all fall into runs (then add_runs writes them). */
static bool runs_fit(const qk_key_ref *k, size_t n)
{
    for (size_t i = 0, r; i < n; i += r)
        if ((r = run_len(k + i, n - i)) == 0)
            return false;
    return true;
}

static bool add_runs(cJSON *e, const qk_key_ref *k, size_t n)
{
    cJSON *runs = cJSON_AddArrayToObject(e, "runs");
    bool ok = runs != NULL;
    char prefix[QK_PEER_RUN_PREFIX_LEN + 1];
    for (size_t i = 0, r = 0; ok && i < n; i += r) {
        r = run_len(k + i, n - i);
        cJSON *o = add_object(runs);
        memcpy(prefix, k[i].key_id, QK_PEER_RUN_PREFIX_LEN);
        prefix[QK_PEER_RUN_PREFIX_LEN] = '\0';
        ok = r > 0 && add_string(o, "prefix", prefix) && add_number(o, "block_id", k[i].block_id) &&
             add_number(o, "offset", k[i].offset) && add_number(o, "length", k[i].length) &&
             add_number(o, "count", r);
    }
    return ok;
}

int qk_peer_notices_encode(const qk_peer_notices_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    const char *side = name_of(side_names, COUNT(side_names), (int)m->side);
    if (!side || m->n < 1 || m->n > QK_PEER_NOTICES_MAX || !m->notices)
        return qk_err_set(err, QK_EINVAL, "notices: side or count out of range");
    for (size_t i = 0; i < m->n; i++) {
        const qk_notice *v = &m->notices[i];
        if (v->nslaves < 1 || v->nslaves > QK_PEER_SLAVES_MAX || !v->slaves || v->nkeys < 1 ||
            !v->keys)
            return qk_err_set(err, QK_EINVAL, "notices: request %zu: counts out of range", i);
    }
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "link", m->link) && add_string(o, "side", side);
    cJSON *list = ok ? cJSON_AddArrayToObject(o, "notices") : NULL;
    ok = list != NULL;
    for (size_t i = 0; ok && i < m->n; i++) {
        const qk_notice *v = &m->notices[i];
        cJSON *e = add_object(list);
        ok = add_string(e, "request_id", v->request_id) && add_string(e, "master", v->master);
        cJSON *slaves = ok ? cJSON_AddArrayToObject(e, "slaves") : NULL;
        ok = slaves != NULL;
        for (size_t j = 0; ok && j < v->nslaves; j++)
            ok = add_array_string(slaves, v->slaves[j]);
        ok = ok && add_number(e, "expires_at", v->expires_at);
        if (ok && m->runs && runs_fit(v->keys, v->nkeys)) {
            ok = add_runs(e, v->keys, v->nkeys);
            continue;
        }
        cJSON *keys = ok ? cJSON_AddArrayToObject(e, "keys") : NULL;
        ok = keys != NULL;
        for (size_t j = 0; ok && j < v->nkeys; j++)
            ok = add_key(keys, &v->keys[j], false);
    }
    int rc = encode_end(o, ok, out, err);
    if (rc == 0 && strlen(*out) > QK_PEER_MSG_MAX) {
        free(*out);
        *out = NULL;
        return qk_err_set(err, QK_ELIMIT, "notices: %zu requests exceed %u bytes", m->n,
                          QK_PEER_MSG_MAX);
    }
    return rc;
}

/* One entry of "runs": its members checked and its count added to *total (the keys of the
 * notice so far, at most max_keys_per_request); with keys, its keys written to keys[*total ..]
 * with the checks decode_key runs on a "keys" entry (a UUID key ID, the range inside a block). */
static int decode_run(const cJSON *e, const qk_peer_msg_limits *lim, qk_key_ref *keys,
                      size_t *total, qk_err *err)
{
    const char *prefix;
    uint64_t bid, off, len, count;
    if (!cJSON_IsObject(e))
        return qk_err_set(err, QK_EINVAL, "runs: entries must be objects");
    if (qk_json_get_string(e, "prefix", true, &prefix, NULL, err) != 0)
        return QK_EINVAL;
    if (strlen(prefix) != QK_PEER_RUN_PREFIX_LEN)
        return qk_err_set(err, QK_EINVAL, "prefix: must be %d characters", QK_PEER_RUN_PREFIX_LEN);
    if (*total >= lim->max_keys_per_request)
        return qk_err_set(err, QK_EINVAL, "runs: more than %u keys", lim->max_keys_per_request);
    if (get_uint(e, "block_id", 0, QK_PEER_BLOCK_ID_MAX, &bid, err) ||
        get_uint(e, "offset", 0, QK_BLOCK_MAX_BYTES - 1, &off, err) ||
        get_uint(e, "length", 1, lim->max_size_bits / 8, &len, err) ||
        get_uint(e, "count", 1, lim->max_keys_per_request - *total, &count, err))
        return QK_EINVAL;
    if (off + count * len > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "runs: offset + count * length beyond the largest block");
    char id[QK_KEY_ID_LEN + 1];
    for (uint64_t i = 0; keys && i < count; i++) {
        qk_key_ref *k = &keys[*total + i];
        qk_uuid u;
        snprintf(id, sizeof id, "%s%04" PRIx64, prefix, i);
        if (qk_uuid_parse(id, QK_KEY_ID_LEN, &u) != 0)
            return qk_err_set(err, QK_EINVAL, "prefix: the key IDs must be UUIDs");
        qk_uuid_format(&u, k->key_id); /* normalised: lower case */
        k->block_id = bid;
        k->offset = (uint32_t)(off + i * len);
        k->length = (uint32_t)len;
    }
    *total += count;
    return 0;
}

/* The "runs" of a notice (already counted) into v's keys: counted first, then expanded. */
static int decode_runs(const cJSON *runs, const qk_peer_msg_limits *lim, qk_notice *v, qk_err *err)
{
    size_t total = 0;
    for (const cJSON *e = runs->child; e; e = e->next)
        if (decode_run(e, lim, NULL, &total, err) != 0)
            return QK_EINVAL;
    v->keys = calloc(total, sizeof *v->keys);
    if (!v->keys)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    v->nkeys = total;
    size_t at = 0;
    for (const cJSON *e = runs->child; e; e = e->next)
        if (decode_run(e, lim, v->keys, &at, err) != 0)
            return QK_EINVAL;
    return 0;
}

/* One entry of "notices" into v (its slaves and keys allocated here, owned by the message);
 * *as_runs set when it came as runs. */
static int decode_notice(const cJSON *e, const qk_peer_msg_limits *lim, qk_notice *v, bool *as_runs,
                         qk_err *err)
{
    const cJSON *slaves, *keys, *runs;
    size_t nruns = 0;
    if (!cJSON_IsObject(e))
        return qk_err_set(err, QK_EINVAL, "notices: entries must be objects");
    if (get_id(e, "request_id", v->request_id, err) || get_id(e, "master", v->master, err) ||
        get_uint(e, "expires_at", 0, QK_PEER_BLOCK_ID_MAX, &v->expires_at, err) ||
        get_array(e, "slaves", 1, max_slaves(lim), &slaves, &v->nslaves, err) ||
        qk_json_get_array(e, "runs", false, &runs, err) != 0)
        return QK_EINVAL;
    if (atomic_load(&qk_peer_msg_test_keys_only))
        runs = NULL; /* an older KME reads "keys" only */
    if (runs && cJSON_GetObjectItemCaseSensitive(e, "keys"))
        return qk_err_set(err, QK_EINVAL, "notices: keys or runs, not both");
    if (runs ? get_array(e, "runs", 1, lim->max_keys_per_request, &runs, &nruns, err)
             : get_array(e, "keys", 1, lim->max_keys_per_request, &keys, &v->nkeys, err))
        return QK_EINVAL;
    v->slaves = calloc(v->nslaves, sizeof *v->slaves);
    if (!v->slaves)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    if (decode_slaves(slaves, v->slaves, err) != 0)
        return QK_EINVAL;
    *as_runs = *as_runs || runs != NULL;
    if (!runs)
        return decode_keys(keys, v->nkeys, lim, false, &v->keys, err);
    atomic_fetch_add(&qk_peer_msg_test_runs_in, 1);
    return decode_runs(runs, lim, v, err);
}

static int decode_notices(const cJSON *o, const qk_peer_msg_limits *lim, qk_peer_notices_msg *m,
                          qk_err *err)
{
    int side = 0;
    const cJSON *list;
    size_t n = 0;
    if (get_id(o, "link", m->link, err) ||
        get_enum(o, "side", side_names, COUNT(side_names), &side, err) ||
        get_array(o, "notices", 1, QK_PEER_NOTICES_MAX, &list, &n, err))
        return QK_EINVAL;
    m->side = (qk_side)side;
    m->notices = calloc(n, sizeof *m->notices);
    if (!m->notices)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    m->n = n; /* from here qk_peer_notices_msg_free frees what was filled */
    size_t i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        int rc = decode_notice(e, lim, &m->notices[i], &m->runs, err);
        if (rc != 0)
            return rc;
        /* n <= QK_PEER_NOTICES_MAX: the quadratic scan is bounded (~5e5 compares) */
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->notices[i].request_id, m->notices[j].request_id) == 0)
                return qk_err_set(err, QK_EINVAL, "notices: request_id %s appears twice",
                                  m->notices[i].request_id);
    }
    return 0;
}

int qk_peer_notices_decode(const char *body, size_t len, const qk_peer_msg_limits *lim,
                           qk_peer_notices_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc != 0)
        return rc;
    rc = decode_notices(o, lim, m, err);
    if (rc != 0)
        qk_peer_notices_msg_free(m);
    return decode_end(rc, o, m, sizeof *m);
}

void qk_peer_notices_msg_free(qk_peer_notices_msg *m)
{
    if (!m)
        return;
    qk_notice_free(m->notices, m->n);
    free(m->notices);
    memset(m, 0, sizeof *m);
}

/* The answer's result and reason. A refusal's status travels as a reason (one name per
 * status; the first pair of a status is the one written, every pair's name is read). */
static const char *const notice_result_names[] = {"reserved", "refused"};
static const struct {
    int status;
    qk_peer_reason reason;
} notice_reasons[] = {
    {QK_ECOLLISION, QK_PEER_REASON_COLLISION},
    {QK_EEXIST, QK_PEER_REASON_COLLISION},
    {QK_EINVAL, QK_PEER_REASON_BAD_REQUEST},
    {QK_EINVAL, QK_PEER_REASON_BURNED},
    {QK_ENOTFOUND, QK_PEER_REASON_UNKNOWN_BLOCK},
    {QK_EMISMATCH, QK_PEER_REASON_MISMATCH},
    {QK_EQUOTA, QK_PEER_REASON_LIMIT},
    {QK_ELIMIT, QK_PEER_REASON_LIMIT},
};

static qk_peer_reason reason_of_status(int status)
{
    for (size_t i = 0; i < COUNT(notice_reasons); i++)
        if (notice_reasons[i].status == status)
            return notice_reasons[i].reason;
    return QK_PEER_REASON_INTERNAL;
}

static int status_of_reason(qk_peer_reason r)
{
    for (size_t i = 0; i < COUNT(notice_reasons); i++)
        if (notice_reasons[i].reason == r)
            return notice_reasons[i].status;
    return QK_EPEER; /* internal, or a reason no notice has */
}

int qk_peer_notices_answer_encode(const qk_peer_notices_answer *a, char **out, qk_err *err)
{
    *out = NULL;
    if (a->n > QK_PEER_NOTICES_MAX || (a->n && !a->r))
        return qk_err_set(err, QK_EINVAL, "notices answer: at most %d results",
                          QK_PEER_NOTICES_MAX);
    for (size_t i = 0; i < a->n; i++) {
        const qk_peer_notice_result *r = &a->r[i];
        if (r->nheld > QK_PEER_SLAVES_MAX || (r->nheld && !r->held))
            return qk_err_set(err, QK_EINVAL, "notices answer: at most %d held counts",
                              QK_PEER_SLAVES_MAX);
        for (size_t j = 0; j < r->nheld; j++)
            if (r->held[j].count > QK_PEER_BLOCK_ID_MAX)
                return qk_err_set(err, QK_EINVAL, "notices answer: count beyond 2^53");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *list = o ? cJSON_AddArrayToObject(o, "results") : NULL;
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < a->n; i++) {
        const qk_peer_notice_result *r = &a->r[i];
        cJSON *e = add_object(list);
        ok = add_string(e, "request_id", r->request_id) &&
             add_string(e, "result", notice_result_names[r->status != 0]);
        if (ok && r->status != 0)
            ok = add_string(e, "reason", qk_peer_reason_name(reason_of_status(r->status)));
        cJSON *held = ok ? cJSON_AddArrayToObject(e, "held") : NULL;
        ok = held != NULL;
        for (size_t j = 0; ok && j < r->nheld; j++) {
            cJSON *h = add_object(held);
            ok = add_string(h, "master", r->held[j].master) &&
                 add_string(h, "slave", r->held[j].slave) &&
                 add_number(h, "count", r->held[j].count);
        }
    }
    if (ok && a->runs && !atomic_load(&qk_peer_msg_test_keys_only))
        ok = cJSON_AddTrueToObject(o, "runs") != NULL;
    return encode_end(o, ok, out, err);
}

static int decode_notice_result(const cJSON *e, qk_peer_notice_result *r, qk_err *err)
{
    int result = 0, reason = 0;
    const cJSON *held;
    if (!cJSON_IsObject(e))
        return qk_err_set(err, QK_EINVAL, "results: entries must be objects");
    if (get_id(e, "request_id", r->request_id, err) ||
        get_enum(e, "result", notice_result_names, COUNT(notice_result_names), &result, err) ||
        (result && get_enum(e, "reason", reason_names, COUNT(reason_names), &reason, err)) ||
        get_array(e, "held", 0, QK_PEER_SLAVES_MAX, &held, &r->nheld, err))
        return QK_EINVAL;
    r->status = result ? status_of_reason((qk_peer_reason)reason) : 0;
    if (r->nheld == 0)
        return 0;
    r->held = calloc(r->nheld, sizeof *r->held);
    if (!r->held)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    size_t i = 0;
    for (const cJSON *h = held->child; h; h = h->next, i++) {
        if (!cJSON_IsObject(h))
            return qk_err_set(err, QK_EINVAL, "held: entries must be objects");
        if (get_id(h, "master", r->held[i].master, err) ||
            get_id(h, "slave", r->held[i].slave, err) ||
            get_uint(h, "count", 0, QK_PEER_BLOCK_ID_MAX, &r->held[i].count, err))
            return QK_EINVAL;
    }
    return 0;
}

int qk_peer_notices_answer_decode(const char *body, size_t len, qk_peer_notices_answer *a,
                                  qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, a, sizeof *a, &o, err);
    if (rc != 0)
        return rc;
    const cJSON *list;
    size_t n = 0;
    if (get_array(o, "results", 0, QK_PEER_NOTICES_MAX, &list, &n, err) != 0 ||
        qk_json_get_bool(o, "runs", false, &a->runs, NULL, err) != 0)
        rc = QK_EINVAL;
    else if (n && !(a->r = calloc(n, sizeof *a->r)))
        rc = qk_err_set(err, QK_ENOMEM, "out of memory");
    else
        a->n = n; /* from here qk_peer_notices_answer_free frees what was filled */
    size_t i = 0;
    for (const cJSON *e = rc == 0 ? list->child : NULL; e && rc == 0; e = e->next, i++)
        rc = decode_notice_result(e, &a->r[i], err);
    if (rc != 0)
        qk_peer_notices_answer_free(a);
    return decode_end(rc, o, a, sizeof *a);
}

void qk_peer_notices_answer_free(qk_peer_notices_answer *a)
{
    if (!a)
        return;
    for (size_t i = 0; a->r && i < a->n; i++)
        free(a->r[i].held);
    free(a->r);
    memset(a, 0, sizeof *a);
}

/* ---- errors ----------------------------------------------------------------------------- */

int qk_peer_error_encode(const qk_peer_error_msg *m, char **out, qk_err *err)
{
    *out = NULL;
    const char *reason = qk_peer_reason_name(m->reason);
    if (m->reason != QK_PEER_REASON_NONE && !reason)
        return qk_err_set(err, QK_EINVAL, "reason: value %d out of range", (int)m->reason);
    cJSON *o = cJSON_CreateObject();
    bool ok = add_string(o, "message", m->message) != NULL;
    if (ok && reason)
        ok = add_string(o, "reason", reason) != NULL;
    return encode_end(o, ok, out, err);
}

int qk_peer_error_decode(const char *body, size_t len, qk_peer_error_msg *m, qk_err *err)
{
    cJSON *o;
    int rc = decode_begin(body, len, m, sizeof *m, &o, err);
    if (rc != 0)
        return rc;
    const char *msg;
    bool has_reason = false;
    int reason = 0;
    if (qk_json_get_string(o, "message", true, &msg, NULL, err) != 0 ||
        qk_json_get_string(o, "reason", false, NULL, &has_reason, err) != 0)
        rc = QK_EINVAL;
    else if (strlen(msg) > QK_PEER_MESSAGE_MAX)
        rc = qk_err_set(err, QK_EINVAL, "message: at most %d characters", QK_PEER_MESSAGE_MAX);
    else if (has_reason)
        rc = get_enum(o, "reason", reason_names, COUNT(reason_names), &reason, err);
    if (rc == 0) {
        memcpy(m->message, msg, strlen(msg) + 1);
        m->reason = (qk_peer_reason)reason;
    }
    return decode_end(rc, o, m, sizeof *m);
}
