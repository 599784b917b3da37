/* store_keys.c - outgoing reservations: carving keys from opposite ends of the confirmed
 * block sequence, commit, burn (with tombstones), request state and the pending list, plus
 * the key helpers shared with reserve_in, fetch and expire. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* ---- shared helpers --------------------------------------------------------------------- */

int qs_check_reservation(const qk_reservation *r, qk_err *err)
{
    if (!r)
        return qk_err_set(err, QK_EINVAL, "store: no reservation");
    int rc = qs_check_id(r->request_id, "request_id", err);
    if (!rc)
        rc = qs_check_id(r->link, "link", err);
    if (!rc)
        rc = qs_check_id(r->master, "master", err);
    if (rc)
        return rc;
    if (!r->slaves || r->nslaves < 1 || r->nslaves > QS_MAX_SLAVES)
        return qk_err_set(err, QK_EINVAL, "store: need 1..%d slaves", QS_MAX_SLAVES);
    for (size_t i = 0; i < r->nslaves; i++) {
        if ((rc = qs_check_id(r->slaves[i], "slave", err)) != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->slaves[i], r->slaves[j]) == 0)
                return qk_err_set(err, QK_EINVAL, "store: slave %s listed twice", r->slaves[i]);
    }
    return 0;
}

int qs_insert_request(qk_store *s, const qk_reservation *r, int direction, int state, qk_err *err)
{
    return qs_insert_request_noticed(s, r, direction, state, true, false, err);
}

int qs_insert_request_noticed(qk_store *s, const qk_reservation *r, int direction, int state,
                              bool noticed, bool slave_inline, qk_err *err)
{
    /* one slave named in the row itself (schema v8): no request_slaves row */
    const char *one = slave_inline && r->nslaves == 1 ? r->slaves[0] : NULL;
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT INTO requests(request_id, link, direction, state, master,"
                               " created, expires_at, noticed, slave)"
                               " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "ttiitIIit", r->request_id, r->link, direction, state, r->master,
                      qs_i64(qs_now()), qs_i64(r->expires_at), noticed ? 1 : 0, one);
    if (!rc)
        rc = qs_step_done(s, st, err);
    for (size_t i = 0; !rc && !one && i < r->nslaves; i++) {
        st = qs_prep(s, "INSERT INTO request_slaves(request_id, slave) VALUES(?, ?)", err);
        rc = st ? qs_bindf(s, st, err, "tt", r->request_id, r->slaves[i]) : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    return rc;
}

int qs_request_get(qk_store *s, const char *request_id, int *dir, int *state, qk_err *err)
{
    sqlite3_stmt *st =
        qs_prep(s, "SELECT direction, state FROM requests WHERE request_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "t", request_id);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        if (dir)
            *dir = sqlite3_column_int(st, 0);
        if (state)
            *state = sqlite3_column_int(st, 1);
        (void)sqlite3_reset(st);
    }
    return rc;
}

static int request_set_state(qk_store *s, const char *request_id, int state, qk_err *err)
{
    if (state != QS_REQ_DONE)
        qs_noteq_reset(s); /* it may be queued for its notice: the table answers again */
    sqlite3_stmt *st = qs_prep(s, "UPDATE requests SET state = ? WHERE request_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "it", state, request_id);
    return rc ? rc : qs_step_done(s, st, err);
}

int qs_key_row_read(sqlite3_stmt *st, qs_key_row *k, qk_err *err)
{
    const unsigned char *id = sqlite3_column_text(st, 0);
    const unsigned char *link = sqlite3_column_text(st, 1);
    sqlite3_int64 bid = sqlite3_column_int64(st, 2);
    sqlite3_int64 off = sqlite3_column_int64(st, 3);
    sqlite3_int64 len = sqlite3_column_int64(st, 4);
    if (!id || !link || bid < 0 || off < 0 || len < 0 || off > UINT32_MAX || len > UINT32_MAX)
        return qk_err_set(err, QK_ESTORAGE, "store: malformed key row");
    snprintf(k->key_id, sizeof k->key_id, "%s", (const char *)id);
    snprintf(k->link, sizeof k->link, "%s", (const char *)link);
    k->block_id = (uint64_t)bid;
    k->off = (uint32_t)off;
    k->len = (uint32_t)len;
    k->state = sqlite3_column_int(st, 5);
    k->run = false;
    return 0;
}

int qs_load_request_keys(qk_store *s, const char *request_id, qs_key_row **rows, size_t *n,
                         qk_err *err)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT key_id, link, block_id, off, len, state FROM keys"
                               " WHERE request_id = ? ORDER BY seq LIMIT ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    /* Grown as rows arrive (most requests hold one key): a QS_MAX_KEYS array up front
     * would be half a megabyte cleared per call. */
    size_t cap = 4;
    qs_key_row *v = malloc(cap * sizeof *v);
    if (!v)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    int rc = qs_bindf(s, st, err, "tI", request_id, (int64_t)QS_MAX_KEYS);
    while (!rc && *n < QS_MAX_KEYS) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = 0;
        if (*n == cap) {
            size_t ncap = cap * 2 < QS_MAX_KEYS ? cap * 2 : QS_MAX_KEYS;
            qs_key_row *nv = realloc(v, ncap * sizeof *v);
            if (!nv) {
                rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((rc = qs_key_row_read(st, &v[*n], err)) != 0)
            break;
        (*n)++;
    }
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *rows = v;
    return 0;
}

int qs_key_finish(qk_store *s, const qs_key_row *k, int state, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s, "UPDATE keys SET state = ? WHERE key_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "it", state, k->key_id);
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (!rc)
        rc = qs_range_zero(s, k->link, k->block_id, k->off, k->len, err);
    return rc ? rc : qs_block_maybe_retire(s, k->link, k->block_id, err);
}

int qs_key_add_copies(qk_store *s, const char *key_id, const char *request_id, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT OR IGNORE INTO key_slaves(key_id, slave, state)"
                               " SELECT ?, slave, ? FROM request_slaves WHERE request_id = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tit", key_id, QS_COPY_WAITING, request_id);
    return rc ? rc : qs_step_done(s, st, err);
}

/* ---- carve ------------------------------------------------------------------------------ */

/* Pick the block to carve len bytes from: the oldest (LOW) or newest (HIGH) confirmed block
 * with room. 1 found, 0 none, <0 error. */
static int carve_pick(qk_store *s, const char *link, qk_side side, uint32_t len, uint64_t *block_id,
                      uint64_t *lo, uint64_t *hi, qk_err *err)
{
    static const char low_sql[] = "SELECT block_id, lo, hi FROM blocks INDEXED BY blocks_with_room"
                                  " WHERE link = ? AND state = ? AND hi > lo AND hi - lo >= ?"
                                  " ORDER BY block_id ASC LIMIT 1";
    static const char high_sql[] = "SELECT block_id, lo, hi FROM blocks INDEXED BY blocks_with_room"
                                   " WHERE link = ? AND state = ? AND hi > lo AND hi - lo >= ?"
                                   " ORDER BY block_id DESC LIMIT 1";
    sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? low_sql : high_sql, err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tiI", link, QK_BLOCK_CONFIRMED, (int64_t)len);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        sqlite3_int64 b = sqlite3_column_int64(st, 0);
        sqlite3_int64 l = sqlite3_column_int64(st, 1);
        sqlite3_int64 h = sqlite3_column_int64(st, 2);
        (void)sqlite3_reset(st);
        if (b < 0 || l < QK_BLOCK_VKEY_LEN || h < l || h > (sqlite3_int64)QK_BLOCK_MAX_BYTES)
            return qk_err_set(err, QK_ESTORAGE, "store: malformed block cursors");
        *block_id = (uint64_t)b;
        *lo = (uint64_t)l;
        *hi = (uint64_t)h;
    }
    return rc;
}

int qs_last_range_overlaps(qk_store *s, const char *sql, const char *link, uint64_t block_id,
                           uint32_t off, uint32_t len, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s, sql, err);
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

int qs_range_recorded(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                      qk_err *err)
{
    /* Recorded ranges never overlap each other, so if any of them overlaps [off, off+len),
     * the one starting last before off+len does: one index probe instead of a scan. */
    int rc = !s->keys_any ? 0
                          : qs_last_range_overlaps(s,
                                                   "SELECT off + len FROM keys WHERE link = ? AND"
                                                   " block_id = ? AND off < ? ORDER BY off DESC"
                                                   " LIMIT 1",
                                                   link, block_id, off, len, err);
    /* runs (docs/adr/0003-request-records.md) never overlap keys: probe them separately */
    return rc == 0 ? qs_run_recorded(s, link, block_id, off, len, err) : rc;
}

int qs_set_cursors(qk_store *s, const char *link, uint64_t block_id, uint64_t lo, uint64_t hi,
                   qk_err *err)
{
    sqlite3_stmt *st = /* state named: the counters' trigger fires (schema v8) */
        qs_prep(s,
                "UPDATE blocks SET lo = ?, hi = ?, state = state WHERE link = ? AND block_id = ?",
                err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "IItI", (int64_t)lo, (int64_t)hi, link, qs_i64(block_id));
    return rc ? rc : qs_step_done(s, st, err);
}

int qs_set_cursor(qk_store *s, const char *link, uint64_t block_id, qk_side side, uint64_t at,
                  const qs_block_row *was, qk_err *err)
{
    static const char *const sql[2][2] = {
        /* was known: the change is counted here; not known: the trigger counts it */
        {"UPDATE blocks SET lo = ? WHERE link = ? AND block_id = ?",
         "UPDATE blocks SET hi = ? WHERE link = ? AND block_id = ?"},
        {"UPDATE blocks SET lo = ?, state = state WHERE link = ? AND block_id = ?",
         "UPDATE blocks SET hi = ?, state = state WHERE link = ? AND block_id = ?"}};
    sqlite3_stmt *st = qs_prep(s, sql[was == NULL][side == QK_SIDE_HIGH], err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "ItI", (int64_t)at, link, qs_i64(block_id));
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (!rc && sqlite3_changes(s->db) != 1)
        rc = qk_err_set(err, QK_ESTORAGE, "store: block %llu vanished",
                        (unsigned long long)block_id);
    if (rc || !was)
        return rc;
    uint64_t lo = side == QK_SIDE_LOW ? at : was->lo, hi = side == QK_SIDE_HIGH ? at : was->hi;
    int64_t before = was->hi > was->lo ? (int64_t)(was->hi - was->lo) : 0;
    int64_t after = hi > lo ? (int64_t)(hi - lo) : 0;
    return qs_count_add(s, link, QS_COUNT_BLOCKS, was->state, 0, after - before, err);
}

/* Check value of material already read out: keyed with the block's verification key. */
static int material_check(qk_store *s, const char *link, uint64_t block_id, uint32_t off,
                          uint32_t len, const uint8_t *mat, uint8_t check[QK_CHECK_LEN],
                          qk_err *err)
{
    int rc = qs_range_read(s, link, block_id, 0, QK_BLOCK_VKEY_LEN, s->vkey, err);
    if (rc)
        return rc;
    crypto_generichash_state h;
    qs_check_begin(&h, s->vkey, link, block_id, off, len);
    sodium_memzero(s->vkey, QK_BLOCK_VKEY_LEN);
    if (crypto_generichash_update(&h, mat, len) != 0 ||
        crypto_generichash_final(&h, check, QK_CHECK_LEN) != 0)
        rc = qk_err_set(err, QK_ESTORAGE, "store: hash failed");
    sodium_memzero(&h, sizeof h);
    return rc;
}

int qs_insert_key(qk_store *s, const qk_reservation *r, const qk_key_ref *k, size_t seq, int state,
                  qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT INTO keys(key_id, request_id, seq, link, block_id, off,"
                               " len, state, master, expires_at)"
                               " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    s->keys_any = true; /* before the row exists: a rolled-back insert only costs probes */
    int rc = qs_bindf(s, st, err, "ttItIIIitI", k->key_id, r->request_id, (int64_t)seq, r->link,
                      qs_i64(k->block_id), (int64_t)k->offset, (int64_t)k->length, state, r->master,
                      qs_i64(r->expires_at));
    return rc ? rc : qs_step_done(s, st, err);
}

static int carve_one(qk_store *s, const qk_reservation *r, qk_side side, uint32_t len, size_t seq,
                     qk_key_ref *ref, uint8_t *mat, qk_err *err)
{
    uint64_t bid = 0, lo = 0, hi = 0;
    int rc = carve_pick(s, r->link, side, len, &bid, &lo, &hi, err);
    if (rc == 0)
        return qk_err_set(err, QK_ENOKEY, "store: link %s has no confirmed room for key %zu",
                          r->link, seq + 1);
    if (rc < 0)
        return rc;
    uint64_t off = side == QK_SIDE_LOW ? lo : hi - len;
    if (side == QK_SIDE_LOW)
        lo += len;
    else
        hi -= len;
    rc = qs_range_recorded(s, r->link, bid, (uint32_t)off, len, err);
    if (rc == 1)
        return qk_err_set(err, QK_ESTORAGE, "store: cursor of block %llu points at used bytes",
                          (unsigned long long)bid);
    if (!rc)
        rc = qs_set_cursors(s, r->link, bid, lo, hi, err);
    if (!rc)
        rc = qs_range_read(s, r->link, bid, (uint32_t)off, len, mat, err);
    if (!rc)
        rc = material_check(s, r->link, bid, (uint32_t)off, len, mat, ref->check, err);
    if (rc)
        return rc;
    qk_uuid u;
    qk_uuid_v4(&u);
    qk_uuid_format(&u, ref->key_id);
    ref->block_id = bid;
    ref->offset = (uint32_t)off;
    ref->length = len;
    return qs_insert_key(s, r, ref, seq, QS_KEY_PENDING, err);
}

int qs_check_carve(const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                   const qk_key_ref *refs, const uint8_t *material, qk_err *err)
{
    int rc = qs_check_reservation(r, err);
    if (rc)
        return rc;
    if (side != QK_SIDE_LOW && side != QK_SIDE_HIGH)
        return qk_err_set(err, QK_EINVAL, "store: bad side");
    if (n < 1 || n > QS_MAX_KEYS)
        return qk_err_set(err, QK_EINVAL, "store: key count %zu outside 1..%d", n, QS_MAX_KEYS);
    if (len < 1 || len > QK_BLOCK_MAX_BYTES - QK_BLOCK_VKEY_LEN)
        return qk_err_set(err, QK_EINVAL, "store: key length %u out of range", len);
    if (!refs || !material)
        return qk_err_set(err, QK_EINVAL, "store: carve needs refs and material");
    return 0;
}

int qk_store_carve(qk_store *s, const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                   qk_key_ref *refs, uint8_t *material, qk_err *err)
{
    int rc = qs_check_carve(r, side, n, len, refs, material, err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    rc = qs_request_get(s, r->request_id, NULL, NULL, err);
    if (rc == 1)
        rc = qk_err_set(err, QK_EEXIST, "store: request %s already known", r->request_id);
    if (!rc)
        rc = qs_insert_request(s, r, QS_DIR_OUT, QS_REQ_PENDING, err);
    for (size_t i = 0; !rc && i < n; i++)
        rc = carve_one(s, r, side, len, i, &refs[i], material + i * (size_t)len, err);
    if (rc) {
        sodium_memzero(material, n * (size_t)len);
        sodium_memzero(refs, n * sizeof *refs);
    }
    return qs_end(s, rc, rc == 0, err);
}

/* ---- commit / burn ---------------------------------------------------------------------- */

int qk_store_commit(qk_store *s, const char *request_id, bool keep_for_slaves, qk_err *err)
{
    int rc = qs_check_id(request_id, "request_id", err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    int dir = 0, state = 0;
    qs_key_row *keys = NULL;
    size_t nk = 0;
    rc = qs_request_get(s, request_id, &dir, &state, err);
    if (rc == 0)
        rc = qk_err_set(err, QK_ENOTFOUND, "store: request %s unknown", request_id);
    else if (rc == 1 && dir != QS_DIR_OUT)
        rc = qk_err_set(err, QK_EINVAL, "store: request %s is not an outgoing one", request_id);
    else if (rc == 1 && state == QS_REQ_BURNED)
        rc = qk_err_set(err, QK_EINVAL, "store: request %s was burned", request_id);
    else if (rc == 1 && state == QS_REQ_DONE)
        rc = 0; /* idempotent */
    else if (rc == 1) {
        rc = qs_load_request_keys(s, request_id, &keys, &nk, err);
        for (size_t i = 0; !rc && i < nk; i++) {
            if (keys[i].state != QS_KEY_PENDING)
                continue; /* burned with its block meanwhile */
            if (!keep_for_slaves) {
                rc = qs_key_finish(s, &keys[i], QS_KEY_DELIVERED, err);
                continue;
            }
            sqlite3_stmt *st = qs_prep(s, "UPDATE keys SET state = ? WHERE key_id = ?", err);
            rc = st ? qs_bindf(s, st, err, "it", QS_KEY_RESERVED, keys[i].key_id) : QK_ESTORAGE;
            if (!rc)
                rc = qs_step_done(s, st, err);
            if (!rc)
                rc = qs_key_add_copies(s, keys[i].key_id, request_id, err);
        }
        if (!rc)
            rc = request_set_state(s, request_id, QS_REQ_DONE, err);
    }
    free(keys);
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_burn(qk_store *s, const char *request_id, qk_err *err)
{
    int rc = qs_check_id(request_id, "request_id", err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    int state = 0;
    qs_key_row *keys = NULL;
    size_t nk = 0;
    rc = qs_request_get(s, request_id, NULL, &state, err);
    if (rc == 0) {
        sqlite3_stmt *st = qs_prep(s,
                                   "INSERT INTO requests(request_id, link, direction, state,"
                                   " master, created, expires_at) VALUES(?, '', ?, ?, '', ?, 0)",
                                   err);
        rc = st ? qs_bindf(s, st, err, "tiiI", request_id, QS_DIR_TOMB, QS_REQ_BURNED,
                           qs_i64(qs_now()))
                : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    } else if (rc == 1 && state != QS_REQ_BURNED) {
        rc = qs_load_request_keys(s, request_id, &keys, &nk, err);
        for (size_t i = 0; !rc && i < nk; i++)
            if (keys[i].state == QS_KEY_PENDING || keys[i].state == QS_KEY_RESERVED)
                rc = qs_key_finish(s, &keys[i], QS_KEY_BURNED, err);
        size_t nrun = 0;
        if (!rc)
            rc = qs_runs_burn_request(s, request_id, &nrun, err);
        if (!rc)
            rc = request_set_state(s, request_id, QS_REQ_BURNED, err);
        if (!rc)
            rc = qs_audit_insert(s, "request_burned", nk ? keys[0].link : NULL, request_id, NULL,
                                 NULL, err);
    } else if (rc == 1) {
        rc = 0; /* already burned */
    }
    free(keys);
    return qs_end(s, rc, rc == 0, err);
}

/* ---- request state / pending list ------------------------------------------------------- */

int qk_store_request_state(qk_store *s, const char *request_id, int *state, qk_err *err)
{
    int rc = qs_check_id(request_id, "request_id", err);
    if (rc)
        return rc;
    if (!state)
        return qk_err_set(err, QK_EINVAL, "store: request_state needs an output");
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    rc = qs_request_get(s, request_id, NULL, state, err);
    if (rc == 0)
        rc = qk_err_set(err, QK_ENOTFOUND, "store: request %s unknown", request_id);
    else if (rc == 1)
        rc = 0;
    return qs_end(s, rc, false, err);
}

int qk_store_pending_requests(qk_store *s, char (*ids)[QK_STORE_ID_MAX + 1], size_t cap, size_t *n,
                              qk_err *err)
{
    if (!n || (cap && !ids))
        return qk_err_set(err, QK_EINVAL, "store: pending_requests needs ids and n");
    *n = 0;
    int rc = qs_begin(s, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT request_id FROM requests INDEXED BY requests_pending"
                               " WHERE direction = ? AND state = 0 ORDER BY created, request_id"
                               " LIMIT ?",
                               err);
    rc = st ? qs_bindf(s, st, err, "iI", QS_DIR_OUT, qs_i64(cap)) : QK_ESTORAGE;
    while (!rc && *n < cap) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        const unsigned char *id = sqlite3_column_text(st, 0);
        snprintf(ids[*n], QK_STORE_ID_MAX + 1, "%s", id ? (const char *)id : "");
        (*n)++;
        rc = 0;
    }
    return qs_end(s, rc, false, err);
}
