/* store_runs.c - runs of keys: one record for the keys of a request carved as one contiguous
 * range of one block, their key IDs derived from the record (docs/adr/0003-request-records.md).
 * Key i of a run: range [off + i*len, off + (i+1)*len), ID = the run's 14-byte prefix (random,
 * with the RFC 9562 section 5.4 version and variant bits; or, with `[store] key_ids =
 * time-ordered`, the first 14 bytes of a section 5.7 version-7 UUID) followed by be16(i). At the
 * slave end a run has one slave and a bitmap of the keys it fetched: the per-key state stays exact.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* The partial indexes runs_live and runs_live_by_expiry (migration v6) hold live runs,
 * "WHERE state = 1": a query must spell the literal for the planner to use them. */
_Static_assert(QS_KEY_RESERVED == 1, "runs_live indexes are on state = 1");

#define QS_RUN_COLS                                                                                \
    "request_id, seq, id_prefix, link, block_id, off, len, n, state, n_done, master,"              \
    " expires_at, slave, fetched"

void qs_run_new_prefix(const qk_store *s, uint8_t prefix[QS_RUN_PREFIX_LEN])
{
    qk_uuid u;
    if (s->time_ordered_ids)
        qk_uuid_v7(&u); /* unix_ts_ms, version 7, 12 + 62 CSPRNG bits, variant 10 */
    else
        qk_uuid_v4(&u); /* CSPRNG bits, version 4, variant 10 */
    memcpy(prefix, u.b, QS_RUN_PREFIX_LEN);
}

uint32_t qs_run_prefix_hash(const uint8_t prefix[QS_RUN_PREFIX_LEN])
{
    _Static_assert(QS_RUN_PREFIX_LEN >= 14, "bytes 10..13 of a prefix");
    return (uint32_t)prefix[10] << 24 | (uint32_t)prefix[11] << 16 | (uint32_t)prefix[12] << 8 |
           prefix[13];
}

/* A run's ID is a version-4 UUID (random prefix) or a version-7 one (time-ordered prefix). */
static bool run_id_version(const qk_uuid *u)
{
    return qk_uuid_is_v4(u) || ((u->b[6] >> 4) == 7 && (u->b[8] & 0xc0) == 0x80);
}

void qs_run_key_id(const uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t i, char out[QK_KEY_ID_LEN + 1])
{
    qk_uuid u;
    memcpy(u.b, prefix, QS_RUN_PREFIX_LEN);
    u.b[14] = (uint8_t)(i >> 8);
    u.b[15] = (uint8_t)i;
    qk_uuid_format(&u, out);
}

int qs_run_parse_id(const char *key_id, uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t *idx)
{
    /* Only the canonical text of a version-4 or version-7 UUID can name a run key (the keys
     * table compares IDs as text too: an upper-case spelling is another, unknown, ID). */
    qk_uuid u;
    char canon[QK_KEY_ID_LEN + 1];
    size_t len = strnlen(key_id, QK_KEY_ID_LEN + 1);
    if (len != QK_KEY_ID_LEN || qk_uuid_parse(key_id, len, &u) != 0 || !run_id_version(&u))
        return -1;
    qk_uuid_format(&u, canon);
    if (strcmp(canon, key_id) != 0)
        return -1;
    memcpy(prefix, u.b, QS_RUN_PREFIX_LEN);
    *idx = (uint32_t)u.b[14] << 8 | u.b[15];
    return 0;
}

static size_t map_len(uint32_t n)
{
    return ((size_t)n + 7) / 8;
}

static bool bit_get(const uint8_t *m, uint32_t i)
{
    return (m[i / 8] >> (i % 8)) & 1u;
}

int qs_run_insert(qk_store *s, const qs_run_row *run, qk_err *err)
{
    if (run->n < 1 || run->n > QS_RUN_MAX_KEYS || run->n_done > run->n)
        return qk_err_set(err, QK_EINVAL, "store: run of %u keys", run->n);
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT INTO runs(" QS_RUN_COLS ")"
                               " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tIbtIIIIiItItb", run->request_id, (int64_t)run->seq, run->prefix,
                      (size_t)QS_RUN_PREFIX_LEN, run->link, qs_i64(run->block_id),
                      (int64_t)run->off, (int64_t)run->len, (int64_t)run->n, run->state,
                      (int64_t)run->n_done, run->master, qs_i64(run->expires_at),
                      run->has_slave ? run->slave : NULL, run->has_slave ? run->fetched : NULL,
                      run->has_slave ? map_len(run->n) : (size_t)0);
    if (!rc)
        rc = qs_step_done(s, st, err);
    /* the counters (store_counts.c): n_done keys DELIVERED, the others in the run's state */
    if (!rc)
        rc = qs_count_add(s, run->link, QS_COUNT_KEYS, QS_KEY_DELIVERED, run->n_done, 0, err);
    if (!rc)
        rc = qs_count_add(s, run->link, QS_COUNT_KEYS, run->state, run->n - run->n_done, 0, err);
    if (!rc)
        qs_runc_put(s, run); /* a notice's run: its fetch finds it in memory */
    return rc;
}

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
    sqlite3_int64 done = sqlite3_column_int64(st, 9);
    const unsigned char *master = sqlite3_column_text(st, 10);
    sqlite3_int64 exp = sqlite3_column_int64(st, 11);
    const unsigned char *slave = sqlite3_column_text(st, 12);
    const void *map = sqlite3_column_blob(st, 13);
    int maplen = sqlite3_column_bytes(st, 13);
    if (!req || !link || !master || !pre || prelen != QS_RUN_PREFIX_LEN || seq < 0 ||
        seq >= QS_MAX_KEYS || v[0] < 0 || v[1] < QK_BLOCK_VKEY_LEN || v[2] < 1 || v[3] < 1 ||
        v[3] > QS_RUN_MAX_KEYS || v[1] + v[2] * v[3] > (sqlite3_int64)QK_BLOCK_MAX_BYTES ||
        done < 0 || done > v[3] || (slave && (!map || (size_t)maplen != map_len((uint32_t)v[3]))))
        return qk_err_set(err, QK_ESTORAGE, "store: malformed run row");
    snprintf(r->request_id, sizeof r->request_id, "%s", (const char *)req);
    snprintf(r->link, sizeof r->link, "%s", (const char *)link);
    snprintf(r->master, sizeof r->master, "%s", (const char *)master);
    memcpy(r->prefix, pre, QS_RUN_PREFIX_LEN);
    r->seq = (uint32_t)seq;
    r->block_id = (uint64_t)v[0];
    r->off = (uint32_t)v[1];
    r->len = (uint32_t)v[2];
    r->n = (uint32_t)v[3];
    r->state = sqlite3_column_int(st, 8);
    r->n_done = (uint32_t)done;
    r->expires_at = exp > 0 ? (uint64_t)exp : 0;
    r->has_slave = slave != NULL;
    snprintf(r->slave, sizeof r->slave, "%s", slave ? (const char *)slave : "");
    memset(r->fetched, 0, sizeof r->fetched);
    if (slave)
        memcpy(r->fetched, map, (size_t)maplen);
    return 0;
}

int qs_run_find(qk_store *s, const char *key_id, qs_run_row *run, uint32_t *idx, qk_err *err)
{
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint32_t i = 0;
    if (qs_run_parse_id(key_id, prefix, &i) != 0)
        return 0;
    if (!qs_runc_get(s, prefix, run)) {
        sqlite3_stmt *st = qs_prep(s, "SELECT " QS_RUN_COLS " FROM runs WHERE id_prefix = ?", err);
        if (!st)
            return QK_ESTORAGE;
        int rc = qs_bindf(s, st, err, "b", prefix, (size_t)QS_RUN_PREFIX_LEN);
        if (!rc)
            rc = qs_step(s, st, err);
        if (rc != 1)
            return rc;
        rc = run_row_read(st, run, err);
        (void)sqlite3_reset(st);
        if (rc)
            return rc;
        qs_runc_put(s, run);
    }
    if (i >= run->n)
        return 0;
    *idx = i;
    return 1;
}

int qs_run_prefix_taken(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], qk_err *err)
{
    /* the UNIQUE index on id_prefix answers alone (it holds the primary key, not the row) */
    sqlite3_stmt *st = qs_prep(s, "SELECT 1 FROM runs WHERE id_prefix = ?", err);
    int rc = st ? qs_bindf(s, st, err, "b", prefix, (size_t)QS_RUN_PREFIX_LEN) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1)
        (void)sqlite3_reset(st);
    return rc;
}

int qs_run_recorded(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                    qk_err *err)
{
    /* Runs never overlap each other: the one starting last before off+len decides. */
    return qs_last_range_overlaps(s,
                                  "SELECT off + len * n FROM runs WHERE link = ? AND block_id = ?"
                                  " AND off < ? ORDER BY off DESC LIMIT 1",
                                  link, block_id, off, len, err);
}

int qs_run_prefix_in_keys(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], qk_err *err)
{
    if (!s->keys_any)
        return 0;
    /* the IDs under a prefix are the text range [id(0), id(0xffff)]: one primary-key probe */
    char lo[QK_KEY_ID_LEN + 1], hi[QK_KEY_ID_LEN + 1];
    qs_run_key_id(prefix, 0, lo);
    qs_run_key_id(prefix, 0xffff, hi);
    sqlite3_stmt *st =
        qs_prep(s, "SELECT 1 FROM keys WHERE key_id >= ? AND key_id <= ? LIMIT 1", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tt", lo, hi);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1)
        (void)sqlite3_reset(st);
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
    qs_run_row *run = malloc(sizeof *run);
    if (!run)
        rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
    while (!rc) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        if ((rc = run_row_read(st, run, err)) != 0)
            break;
        /* runs of a request are numbered without gaps: seq is the count so far */
        if (run->seq != got || run->n > QS_MAX_KEYS - got) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: runs of request %s out of sequence",
                            request_id);
            break;
        }
        qk_key_ref *nv = realloc(v, (got + run->n) * sizeof *v);
        if (!nv) {
            rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
            break;
        }
        v = nv;
        for (uint32_t i = 0; i < run->n; i++) {
            qk_key_ref *k = &v[got + i];
            memset(k, 0, sizeof *k);
            qs_run_key_id(run->prefix, i, k->key_id);
            k->block_id = run->block_id;
            k->offset = run->off + i * run->len;
            k->length = run->len;
        }
        got += run->n;
    }
    (void)sqlite3_reset(st);
    free(run);
    if (rc) {
        free(v);
        return rc;
    }
    *refs = v;
    *n = got;
    return 0;
}

/* Write back a run's state, n_done and bitmap; it was in state old_state with old_done keys
 * delivered (the counters move by the difference). The row must still hold that state and
 * count: a run read from memory (store_runcache.c) that did not match its row fails here. */
static int run_update(qk_store *s, const qs_run_row *run, int old_state, uint32_t old_done,
                      qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "UPDATE runs SET state = ?, n_done = ?, fetched = ?"
                               " WHERE request_id = ? AND seq = ? AND state = ? AND n_done = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc =
        qs_bindf(s, st, err, "iIbtIiI", run->state, (int64_t)run->n_done,
                 run->has_slave ? run->fetched : NULL, run->has_slave ? map_len(run->n) : (size_t)0,
                 run->request_id, (int64_t)run->seq, old_state, (int64_t)old_done);
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (!rc && sqlite3_changes(s->db) != 1)
        rc = qk_err_set(err, QK_ESTORAGE, "store: run %s/%u vanished or changed", run->request_id,
                        run->seq);
    if (!rc)
        qs_runc_put(s, run);
    else
        qs_runc_drop_all(s); /* a copy that did not match its row, or an error: none is kept */
    const char *l = run->link;
    int64_t was = (int64_t)run->n - old_done, is = (int64_t)run->n - run->n_done;
    if (!rc)
        rc = qs_count_add(s, l, QS_COUNT_KEYS, QS_KEY_DELIVERED,
                          (int64_t)run->n_done - (int64_t)old_done, 0, err);
    if (!rc && old_state != run->state) {
        rc = qs_count_add(s, l, QS_COUNT_KEYS, old_state, -was, 0, err);
        if (!rc)
            rc = qs_count_add(s, l, QS_COUNT_KEYS, run->state, is, 0, err);
    } else if (!rc) {
        rc = qs_count_add(s, l, QS_COUNT_KEYS, run->state, is - was, 0, err);
    }
    return rc;
}

int qs_run_take(qk_store *s, qs_run_row *run, uint32_t idx, uint32_t cnt, uint8_t *out, qk_err *err)
{
    if (!run->has_slave || run->state != QS_KEY_RESERVED || cnt < 1 || idx >= run->n ||
        cnt > run->n - idx)
        return qk_err_set(err, QK_ENOTFOUND, "store: keys %u+%u of a run not live", idx, cnt);
    for (uint32_t i = idx; i < idx + cnt; i++) {
        if (bit_get(run->fetched, i))
            return qk_err_set(err, QK_ENOTFOUND, "store: key %u of a run already fetched", i);
        run->fetched[i / 8] = (uint8_t)(run->fetched[i / 8] | (1u << (i % 8)));
    }
    int old_state = run->state;
    uint32_t old_done = run->n_done;
    run->n_done += cnt;
    if (run->n_done == run->n)
        run->state = QS_KEY_DELIVERED;
    int rc = run_update(s, run, old_state, old_done, err);
    if (!rc)
        rc = qs_range_take(s, run->link, run->block_id, run->off + idx * run->len, cnt * run->len,
                           out, err);
    return rc ? rc : qs_block_maybe_retire(s, run->link, run->block_id, err);
}

/* End a live run: the keys not fetched move to state (burned or expired), their ranges zeroed
 * (contiguous ones at once). *n += keys ended. */
static int run_end(qk_store *s, qs_run_row *run, int state, size_t *n, qk_err *err)
{
    int rc = 0;
    for (uint32_t i = 0; !rc && i < run->n;) {
        if (run->has_slave && bit_get(run->fetched, i)) {
            i++;
            continue;
        }
        uint32_t j = i + 1;
        while (j < run->n && !(run->has_slave && bit_get(run->fetched, j)))
            j++;
        rc = qs_range_zero(s, run->link, run->block_id, run->off + i * run->len, (j - i) * run->len,
                           err);
        i = j;
    }
    if (rc)
        return rc;
    *n += run->n - run->n_done;
    int old_state = run->state;
    run->state = state;
    rc = run_update(s, run, old_state, run->n_done, err);
    return rc ? rc : qs_block_maybe_retire(s, run->link, run->block_id, err);
}

/* Load up to cap live runs selected by st (already bound) into a malloc'ed array. */
static int runs_load(qk_store *s, sqlite3_stmt *st, size_t cap, qs_run_row **out, size_t *n,
                     qk_err *err)
{
    *out = NULL;
    *n = 0;
    qs_run_row *v = NULL;
    int rc = 0;
    while (!rc && *n < cap) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        qs_run_row *nv = realloc(v, (*n + 1) * sizeof *v);
        if (!nv) {
            rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
            break;
        }
        v = nv;
        if ((rc = run_row_read(st, &v[*n], err)) == 0)
            (*n)++;
    }
    (void)sqlite3_reset(st);
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

static int runs_end_all(qk_store *s, sqlite3_stmt *st, size_t cap, int state, size_t *n,
                        qk_err *err)
{
    qs_run_row *v = NULL;
    size_t nv = 0;
    int rc = runs_load(s, st, cap, &v, &nv, err);
    for (size_t i = 0; !rc && i < nv; i++)
        rc = run_end(s, &v[i], state, n, err);
    free(v);
    return rc;
}

int qs_runs_burn_request(qk_store *s, const char *request_id, size_t *n, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT " QS_RUN_COLS " FROM runs WHERE request_id = ?"
                               " AND state = ? LIMIT ?",
                               err);
    int rc = st ? qs_bindf(s, st, err, "tiI", request_id, QS_KEY_RESERVED, (int64_t)QS_MAX_KEYS)
                : QK_ESTORAGE;
    return rc ? rc : runs_end_all(s, st, QS_MAX_KEYS, QS_KEY_BURNED, n, err);
}

int qs_runs_expire(qk_store *s, uint64_t now, size_t cap, size_t *n, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT " QS_RUN_COLS " FROM runs INDEXED BY runs_live_by_expiry"
                               " WHERE state = 1 AND expires_at <= ? LIMIT ?",
                               err);
    int rc = st ? qs_bindf(s, st, err, "II", qs_i64(now), qs_i64(cap)) : QK_ESTORAGE;
    return rc ? rc : runs_end_all(s, st, cap, QS_KEY_EXPIRED, n, err);
}

int qs_runs_live_in_block(qk_store *s, const char *link, uint64_t block_id, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT 1 FROM runs WHERE link = ? AND block_id = ? AND state = ?"
                               " LIMIT 1",
                               err);
    int rc =
        st ? qs_bindf(s, st, err, "tIi", link, qs_i64(block_id), QS_KEY_RESERVED) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1)
        (void)sqlite3_reset(st);
    return rc;
}

int qs_runs_burn_block(qk_store *s, const char *link, uint64_t block_id, qk_err *err)
{
    /* the keys that move (the counters follow them), then the runs */
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT COALESCE(SUM(n - n_done), 0) FROM runs"
                               " WHERE link = ? AND block_id = ? AND state = ?",
                               err);
    int rc =
        st ? qs_bindf(s, st, err, "tIi", link, qs_i64(block_id), QS_KEY_RESERVED) : QK_ESTORAGE;
    int64_t moved = 0;
    if (!rc && (rc = qs_step(s, st, err)) == 1) {
        moved = sqlite3_column_int64(st, 0);
        (void)sqlite3_reset(st);
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no sum row");
    }
    if (!rc)
        st = qs_prep(s, "UPDATE runs SET state = ? WHERE link = ? AND block_id = ? AND state = ?",
                     err);
    if (!rc)
        rc = st ? qs_bindf(s, st, err, "itIi", QS_KEY_BURNED, link, qs_i64(block_id),
                           QS_KEY_RESERVED)
                : QK_ESTORAGE;
    if (!rc)
        rc = qs_step_done(s, st, err);
    qs_runc_drop_all(s); /* runs changed behind their copies */
    if (!rc)
        rc = qs_count_add(s, link, QS_COUNT_KEYS, QS_KEY_RESERVED, -moved, 0, err);
    return rc ? rc : qs_count_add(s, link, QS_COUNT_KEYS, QS_KEY_BURNED, moved, 0, err);
}

int qs_runs_count_reserved(qk_store *s, const char *master, const char *slave, uint64_t now,
                           uint64_t *n, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT COALESCE(SUM(n - n_done), 0) FROM runs INDEXED BY runs_live"
                               " WHERE slave = ? AND state = 1 AND expires_at > ?"
                               " AND (? IS NULL OR master = ?)",
                               err);
    int rc = st ? qs_bindf(s, st, err, "tItt", slave, qs_i64(now), master, master) : QK_ESTORAGE;
    if (!rc && (rc = qs_step(s, st, err)) == 1) {
        sqlite3_int64 c = sqlite3_column_int64(st, 0);
        *n = c > 0 ? (uint64_t)c : 0;
        (void)sqlite3_reset(st);
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no count row");
    }
    return rc;
}
