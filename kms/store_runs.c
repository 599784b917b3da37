/* store_runs.c - runs of keys: one record for the keys of a request carved as one contiguous
 * range of one block, their key IDs derived from the record (docs/adr/0003-request-records.md).
 * Key i of a run: range [off + i*len, off + (i+1)*len), ID = the run's 14-byte prefix (random,
 * with the RFC 9562 section 5.4 version and variant bits) followed by be16(i). */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

void qs_run_new_prefix(uint8_t prefix[QS_RUN_PREFIX_LEN])
{
    qk_uuid u;
    qk_uuid_v4(&u); /* CSPRNG bits, version 4, variant 10 */
    memcpy(prefix, u.b, QS_RUN_PREFIX_LEN);
}

void qs_run_key_id(const uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t i, char out[QK_KEY_ID_LEN + 1])
{
    qk_uuid u;
    memcpy(u.b, prefix, QS_RUN_PREFIX_LEN);
    u.b[14] = (uint8_t)(i >> 8);
    u.b[15] = (uint8_t)i;
    qk_uuid_format(&u, out);
}

int qs_run_insert(qk_store *s, const qs_run_row *run, qk_err *err)
{
    if (run->n < 1 || run->n > QS_RUN_MAX_KEYS)
        return qk_err_set(err, QK_EINVAL, "store: run of %u keys", run->n);
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT INTO runs(request_id, seq, id_prefix, link, block_id, off,"
                               " len, n, state) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tIbtIIIIi", run->request_id, (int64_t)run->seq, run->prefix,
                      (size_t)QS_RUN_PREFIX_LEN, run->link, qs_i64(run->block_id),
                      (int64_t)run->off, (int64_t)run->len, (int64_t)run->n, run->state);
    return rc ? rc : qs_step_done(s, st, err);
}

/* Columns request_id, seq, id_prefix, link, block_id, off, len, n, state of the current row. */
#define QS_RUN_COLS "request_id, seq, id_prefix, link, block_id, off, len, n, state"

static int run_row_read(sqlite3_stmt *st, qs_run_row *r, qk_err *err)
{
    const unsigned char *req = sqlite3_column_text(st, 0);
    sqlite3_int64 seq = sqlite3_column_int64(st, 1);
    const void *pre = sqlite3_column_blob(st, 2);
    int prelen = sqlite3_column_bytes(st, 2);
    const unsigned char *link = sqlite3_column_text(st, 3);
    sqlite3_int64 v[4];
    for (int i = 0; i < 4; i++)
        v[i] = sqlite3_column_int64(st, 4 + i);
    if (!req || !link || !pre || prelen != QS_RUN_PREFIX_LEN || seq < 0 || seq >= QS_MAX_KEYS ||
        v[0] < 0 || v[1] < QK_BLOCK_VKEY_LEN || v[2] < 1 || v[3] < 1 || v[3] > QS_RUN_MAX_KEYS ||
        v[1] + v[2] * v[3] > (sqlite3_int64)QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_ESTORAGE, "store: malformed run row");
    snprintf(r->request_id, sizeof r->request_id, "%s", (const char *)req);
    snprintf(r->link, sizeof r->link, "%s", (const char *)link);
    memcpy(r->prefix, pre, QS_RUN_PREFIX_LEN);
    r->seq = (uint32_t)seq;
    r->block_id = (uint64_t)v[0];
    r->off = (uint32_t)v[1];
    r->len = (uint32_t)v[2];
    r->n = (uint32_t)v[3];
    r->state = sqlite3_column_int(st, 8);
    return 0;
}

int qs_run_find(qk_store *s, const char *key_id, qs_run_row *run, uint32_t *idx, qk_err *err)
{
    /* Only the canonical text of a version-4 UUID can name a run key (the keys table compares
     * IDs as text too: an upper-case spelling is another, unknown, ID). */
    qk_uuid u;
    char canon[QK_KEY_ID_LEN + 1];
    size_t len = strnlen(key_id, QK_KEY_ID_LEN + 1);
    if (len != QK_KEY_ID_LEN || qk_uuid_parse(key_id, len, &u) != 0 || !qk_uuid_is_v4(&u))
        return 0;
    qk_uuid_format(&u, canon);
    if (strcmp(canon, key_id) != 0)
        return 0;
    sqlite3_stmt *st = qs_prep(s, "SELECT " QS_RUN_COLS " FROM runs WHERE id_prefix = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "b", u.b, (size_t)QS_RUN_PREFIX_LEN);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc != 1)
        return rc;
    rc = run_row_read(st, run, err);
    (void)sqlite3_reset(st);
    if (rc)
        return rc;
    uint32_t i = (uint32_t)u.b[14] << 8 | u.b[15];
    if (i >= run->n)
        return 0;
    *idx = i;
    return 1;
}

int qs_run_recorded(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                    qk_err *err)
{
    /* Runs never overlap each other: the one starting last before off+len decides. */
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT off + len * n FROM runs WHERE link = ? AND block_id = ?"
                               " AND off < ? ORDER BY off DESC LIMIT 1",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tII", link, qs_i64(block_id), (int64_t)off + len);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        sqlite3_int64 end = sqlite3_column_int64(st, 0);
        (void)sqlite3_reset(st);
        rc = end > (sqlite3_int64)off ? 1 : 0;
    }
    return rc;
}

int qs_run_load_refs(qk_store *s, const char *request_id, qk_key_ref **refs, size_t *n, qk_err *err)
{
    *refs = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT " QS_RUN_COLS " FROM runs WHERE request_id = ?"
                               " ORDER BY seq LIMIT ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tI", request_id, (int64_t)QS_MAX_KEYS);
    qk_key_ref *v = NULL;
    size_t got = 0;
    while (!rc) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        qs_run_row run;
        if ((rc = run_row_read(st, &run, err)) != 0)
            break;
        /* runs of a request are numbered without gaps: seq is the count so far */
        if (run.seq != got || run.n > QS_MAX_KEYS - got) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: runs of request %s out of sequence",
                            request_id);
            break;
        }
        qk_key_ref *nv = realloc(v, (got + run.n) * sizeof *v);
        if (!nv) {
            rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
            break;
        }
        v = nv;
        for (uint32_t i = 0; i < run.n; i++) {
            qk_key_ref *k = &v[got + i];
            memset(k, 0, sizeof *k);
            qs_run_key_id(run.prefix, i, k->key_id);
            k->block_id = run.block_id;
            k->offset = run.off + i * run.len;
            k->length = run.len;
        }
        got += run.n;
    }
    (void)sqlite3_reset(st);
    if (rc) {
        free(v);
        return rc;
    }
    *refs = v;
    *n = got;
    return 0;
}
