/* store_blocks.c - blocks from the device feed: put (new / duplicate / conflict), keyed digest,
 * state changes (confirm, burn), listing, local CSPRNG refill, burning and retiring. */
#include "store_int.h"

#include <string.h>

static int check_block_args(const char *link, uint64_t block_id, size_t len, qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (block_id > (uint64_t)INT64_MAX)
        return qk_err_set(err, QK_EINVAL, "store: block id too large");
    if (len <= QK_BLOCK_VKEY_LEN || len > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "store: block length %zu outside (%d, %u]", len,
                          QK_BLOCK_VKEY_LEN, QK_BLOCK_MAX_BYTES);
    return 0;
}

int qs_block_get(qk_store *s, const char *link, uint64_t block_id, qs_block_row *b, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT len, lo, hi, state, lease_lo, lease_hi, lease_ask"
                               " FROM blocks WHERE link = ? AND block_id = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tI", link, qs_i64(block_id));
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        sqlite3_int64 len = sqlite3_column_int64(st, 0);
        sqlite3_int64 lo = sqlite3_column_int64(st, 1);
        sqlite3_int64 hi = sqlite3_column_int64(st, 2);
        b->state = sqlite3_column_int(st, 3);
        sqlite3_int64 llo = sqlite3_column_int64(st, 4);
        sqlite3_int64 lhi = sqlite3_column_int64(st, 5);
        b->has_ask = sqlite3_column_type(st, 6) != SQLITE_NULL;
        sqlite3_int64 ask = b->has_ask ? sqlite3_column_int64(st, 6) : 0;
        if (len < 0 || lo < 0 || hi < 0 || len > (sqlite3_int64)QK_BLOCK_MAX_BYTES || llo < 0 ||
            lhi < 0 || ask < 0)
            rc = qk_err_set(err, QK_ESTORAGE, "store: malformed block row");
        b->len = (uint64_t)len;
        b->lo = (uint64_t)lo;
        b->hi = (uint64_t)hi;
        b->lease_lo = (uint64_t)llo;
        b->lease_hi = (uint64_t)lhi;
        b->ask = (uint64_t)ask;
        (void)sqlite3_reset(st);
    }
    return rc;
}

int qs_block_insert(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                    size_t len, int state, qk_err *err)
{
    uint8_t digest[QK_CHECK_LEN];
    qs_block_digest(link, block_id, bytes, len, digest);
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT INTO blocks(link, block_id, len, state, received_at, lo,"
                               " hi, digest, lease_lo, lease_hi, seg_bytes)"
                               " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    /* nothing leased yet: lease_lo = QK_BLOCK_VKEY_LEN, lease_hi = len */
    int rc = qs_bindf(s, st, err, "tIIiIIIbIIi", link, qs_i64(block_id), (int64_t)len, state,
                      qs_i64(qs_now()), (int64_t)QK_BLOCK_VKEY_LEN, (int64_t)len, digest,
                      sizeof digest, (int64_t)QK_BLOCK_VKEY_LEN, (int64_t)len, QK_SEG_BYTES);
    if (!rc)
        rc = qs_step_done(s, st, err);
    return rc ? rc : qs_seg_write_block(s, link, block_id, bytes, len, err);
}

int qs_block_burn(qk_store *s, const char *link, uint64_t block_id, const char *why, qk_err *err)
{
    sqlite3_stmt *st =
        qs_prep(s, "UPDATE blocks SET state = ? WHERE link = ? AND block_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "itI", QK_BLOCK_BURNED, link, qs_i64(block_id));
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (!rc)
        rc = qs_block_wipe(s, link, block_id, err);
    if (rc)
        return rc;
    st = qs_prep(s, "UPDATE keys SET state = ? WHERE link = ? AND block_id = ? AND state IN (?, ?)",
                 err);
    if (!st)
        return QK_ESTORAGE;
    rc = qs_bindf(s, st, err, "itIii", QS_KEY_BURNED, link, qs_i64(block_id), QS_KEY_PENDING,
                  QS_KEY_RESERVED);
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (!rc)
        rc = qs_runs_burn_block(s, link, block_id, err);
    if (rc)
        return rc;
    char detail[96];
    snprintf(detail, sizeof detail, "block %llu: %s", (unsigned long long)block_id, why);
    return qs_audit_insert(s, "block_burned", link, NULL, NULL, detail, err);
}

int qs_block_maybe_retire(qk_store *s, const char *link, uint64_t block_id, qk_err *err)
{
    qs_block_row b;
    int rc = qs_block_get(s, link, block_id, &b, err);
    if (rc <= 0)
        return rc;
    if (b.hi > b.lo)
        return 0; /* uncarved room left */
    /* A leased block keeps its material: the peer may still notice keys it carved in its lease
     * (they are recorded only when the notice arrives), and their slaves need the bytes. */
    if (b.lease_lo > QK_BLOCK_VKEY_LEN || b.lease_hi < b.len)
        return 0;
    if (s->keys_any) {
        sqlite3_stmt *st = qs_prep(s,
                                   "SELECT 1 FROM keys WHERE link = ? AND block_id = ?"
                                   " AND state IN (?, ?) LIMIT 1",
                                   err);
        if (!st)
            return QK_ESTORAGE;
        rc = qs_bindf(s, st, err, "tIii", link, qs_i64(block_id), QS_KEY_PENDING, QS_KEY_RESERVED);
        if (!rc)
            rc = qs_step(s, st, err);
        if (rc != 0)
            return rc < 0 ? rc : 0; /* a live key still needs the verification key */
    }
    if ((rc = qs_runs_live_in_block(s, link, block_id, err)) != 0)
        return rc < 0 ? rc : 0; /* so does a live run */
    return qs_block_wipe(s, link, block_id, err);
}

/* Uncarved bytes of the link's pending and confirmed blocks (pool_counts, kept by triggers). */
static int held_bytes(qk_store *s, const char *link, uint64_t *out, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT COALESCE(SUM(bytes), 0) FROM pool_counts"
                               " WHERE link = ? AND kind = ? AND state IN (?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc =
        qs_bindf(s, st, err, "tiii", link, QS_COUNT_BLOCKS, QK_BLOCK_PENDING, QK_BLOCK_CONFIRMED);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        (void)sqlite3_reset(st);
        int64_t dn, db; /* and this transaction's carves, not counted in the table yet */
        for (int state = QK_BLOCK_PENDING; state <= QK_BLOCK_CONFIRMED; state++) {
            qs_count_pending(s, link, QS_COUNT_BLOCKS, state, &dn, &db);
            v += db;
        }
        if (v < 0)
            return qk_err_set(err, QK_ESTORAGE, "store: negative pool counter");
        *out = (uint64_t)v;
        return 0;
    }
    return rc ? rc : qk_err_set(err, QK_ESTORAGE, "store: no pool sum");
}

/* The link's refusal counters: a refusal adds one block of len bytes and sets the "last refused"
 * flag; a stored block clears the flag (one UPDATE that changes nothing when it is clear). */
static int note_refusal(qk_store *s, const char *link, bool refused, size_t len, qk_err *err)
{
    sqlite3_stmt *st;
    int rc;
    if (!refused) {
        st = qs_prep(s,
                     "UPDATE pool_counts SET n = 0 WHERE link = ? AND kind = ? AND state = ?"
                     " AND n <> 0",
                     err);
        rc =
            st ? qs_bindf(s, st, err, "tii", link, QS_COUNT_REFUSED, QS_REFUSED_LAST) : QK_ESTORAGE;
        return rc ? rc : qs_step_done(s, st, err);
    }
    st = qs_prep(s,
                 "INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(?, ?, ?, 1, ?)"
                 " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + 1,"
                 " bytes = bytes + excluded.bytes",
                 err);
    rc = st ? qs_bindf(s, st, err, "tiiI", link, QS_COUNT_REFUSED, QS_REFUSED_FULL, (int64_t)len)
            : QK_ESTORAGE;
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (rc)
        return rc;
    st = qs_prep(s,
                 "INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(?, ?, ?, 1, 0)"
                 " ON CONFLICT(link, kind, state) DO UPDATE SET n = 1",
                 err);
    rc = st ? qs_bindf(s, st, err, "tii", link, QS_COUNT_REFUSED, QS_REFUSED_LAST) : QK_ESTORAGE;
    return rc ? rc : qs_step_done(s, st, err);
}

int qk_store_block_put(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                       size_t len, qk_put_result *res, qk_err *err)
{
    return qk_store_block_put_capped(s, link, block_id, bytes, len, 0, res, err);
}

int qk_store_block_put_capped(qk_store *s, const char *link, uint64_t block_id,
                              const uint8_t *bytes, size_t len, uint64_t max_pool_bytes,
                              qk_put_result *res, qk_err *err)
{
    int rc = check_block_args(link, block_id, len, err);
    if (rc)
        return rc;
    if (!bytes || !res)
        return qk_err_set(err, QK_EINVAL, "store: block_put needs bytes and res");
    uint8_t digest[QK_CHECK_LEN];
    qs_block_digest(link, block_id, bytes, len, digest);
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    sqlite3_stmt *st = qs_prep(s, "SELECT digest FROM blocks WHERE link = ? AND block_id = ?", err);
    rc = st ? qs_bindf(s, st, err, "tI", link, qs_i64(block_id)) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        const void *have = sqlite3_column_blob(st, 0);
        bool same = have && sqlite3_column_bytes(st, 0) == QK_CHECK_LEN &&
                    sodium_memcmp(have, digest, QK_CHECK_LEN) == 0;
        (void)sqlite3_reset(st);
        if (same) {
            *res = QK_PUT_DUPLICATE;
            rc = 0;
        } else {
            *res = QK_PUT_CONFLICT;
            rc = qs_block_burn(s, link, block_id, "conflicting re-delivery", err);
        }
    } else if (rc == 0) {
        uint64_t held = 0;
        if (max_pool_bytes > 0)
            rc = held_bytes(s, link, &held, err);
        bool full = max_pool_bytes > 0 && held + (len - QK_BLOCK_VKEY_LEN) > max_pool_bytes;
        *res = full ? QK_PUT_FULL : QK_PUT_NEW;
        if (!rc && !full)
            rc = qs_block_insert(s, link, block_id, bytes, len, QK_BLOCK_PENDING, err);
        if (!rc && max_pool_bytes > 0)
            rc = note_refusal(s, link, full, len, err);
    }
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_block_digest(qk_store *s, const char *link, uint64_t block_id,
                          uint8_t digest[QK_CHECK_LEN], qk_block_state *state, qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (!digest)
        return qk_err_set(err, QK_EINVAL, "store: block_digest needs an output");
    if (block_id > (uint64_t)INT64_MAX)
        return qk_err_set(err, QK_ENOTFOUND, "store: unknown block");
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    sqlite3_stmt *st =
        qs_prep(s, "SELECT digest, state FROM blocks WHERE link = ? AND block_id = ?", err);
    rc = st ? qs_bindf(s, st, err, "tI", link, qs_i64(block_id)) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 0) {
        rc = qk_err_set(err, QK_ENOTFOUND, "store: block %llu unknown on link %s",
                        (unsigned long long)block_id, link);
    } else if (rc == 1) {
        const void *d = sqlite3_column_blob(st, 0);
        if (!d || sqlite3_column_bytes(st, 0) != QK_CHECK_LEN) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: malformed block digest");
        } else {
            memcpy(digest, d, QK_CHECK_LEN);
            if (state)
                *state = (qk_block_state)sqlite3_column_int(st, 1);
            rc = 0;
        }
    }
    return qs_end(s, rc, false, err);
}

int qk_store_block_set_state(qk_store *s, const char *link, uint64_t block_id, qk_block_state st,
                             qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (st != QK_BLOCK_PENDING && st != QK_BLOCK_CONFIRMED && st != QK_BLOCK_BURNED)
        return qk_err_set(err, QK_EINVAL, "store: bad block state %d", (int)st);
    if (block_id > (uint64_t)INT64_MAX)
        return qk_err_set(err, QK_ENOTFOUND, "store: unknown block");
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    qs_block_row b;
    rc = qs_block_get(s, link, block_id, &b, err);
    if (rc == 0) {
        rc = qk_err_set(err, QK_ENOTFOUND, "store: block %llu unknown on link %s",
                        (unsigned long long)block_id, link);
    } else if (rc == 1) {
        rc = 0;
        if (st == QK_BLOCK_BURNED) {
            if (b.state != QK_BLOCK_BURNED)
                rc = qs_block_burn(s, link, block_id, "set burned", err);
        } else if (b.state == (int)st) {
            rc = 0; /* idempotent */
        } else if (st == QK_BLOCK_PENDING || b.state == QK_BLOCK_BURNED) {
            rc = qk_err_set(err, QK_EINVAL, "store: block %llu cannot go from state %d to %d",
                            (unsigned long long)block_id, b.state, (int)st);
        } else {
            sqlite3_stmt *q =
                qs_prep(s, "UPDATE blocks SET state = ? WHERE link = ? AND block_id = ?", err);
            rc = q ? qs_bindf(s, q, err, "itI", (int)st, link, qs_i64(block_id)) : QK_ESTORAGE;
            if (!rc)
                rc = qs_step_done(s, q, err);
        }
    }
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_blocks_in_state(qk_store *s, const char *link, qk_block_state st, uint64_t before_s,
                             uint64_t *ids, size_t cap, size_t *n, qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (!n || (cap && !ids))
        return qk_err_set(err, QK_EINVAL, "store: blocks_in_state needs ids and n");
    *n = 0;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    sqlite3_stmt *q = qs_prep(s,
                              "SELECT block_id FROM blocks WHERE link = ? AND state = ?"
                              " AND (? = 0 OR received_at < ?) ORDER BY block_id LIMIT ?",
                              err);
    rc = q ? qs_bindf(s, q, err, "tiIII", link, (int)st, qs_i64(before_s), qs_i64(before_s),
                      qs_i64(cap))
           : QK_ESTORAGE;
    while (!rc && *n < cap) {
        rc = qs_step(s, q, err);
        if (rc != 1)
            break;
        ids[(*n)++] = (uint64_t)sqlite3_column_int64(q, 0);
        rc = 0;
    }
    return qs_end(s, rc, false, err);
}

int qk_store_local_refill(qk_store *s, size_t len, qk_err *err)
{
    int rc = check_block_args(QK_LOCAL_LINK, 0, len, err);
    if (rc)
        return rc;
    uint8_t *bytes = sodium_malloc(len);
    if (!bytes)
        return qk_err_set(err, QK_ENOMEM, "store: secure allocation of %zu bytes failed", len);
    randombytes_buf(bytes, len);
    if ((rc = qs_begin(s, err)) != 0) {
        sodium_free(bytes);
        return rc;
    }
    sqlite3_stmt *q =
        qs_prep(s, "SELECT COALESCE(MAX(block_id), 0) FROM blocks WHERE link = ?", err);
    rc = q ? qs_bindf(s, q, err, "t", QK_LOCAL_LINK) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, q, err);
    if (rc == 1) {
        sqlite3_int64 last = sqlite3_column_int64(q, 0);
        (void)sqlite3_reset(q);
        if (last < 0 || last == INT64_MAX)
            rc = qk_err_set(err, QK_ESTORAGE, "store: local block ids exhausted");
        else
            rc = qs_block_insert(s, QK_LOCAL_LINK, (uint64_t)last + 1, bytes, len,
                                 QK_BLOCK_CONFIRMED, err);
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no max block id");
    }
    sodium_free(bytes);
    return qs_end(s, rc, rc == 0, err);
}
