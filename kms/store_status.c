/* store_status.c - pool status per link, reserved-key counts, and the audit log. */
#include "store_int.h"

#include <string.h>

static int count_by_state(qk_store *s, const char *sql, const char *link, uint64_t *by_state,
                          int nstates, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s, sql, err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "t", link);
    for (int guard = 0; !rc && guard <= nstates; guard++) { /* at most one row per state */
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = 0;
        int state = sqlite3_column_int(st, 0);
        sqlite3_int64 c = sqlite3_column_int64(st, 1);
        if (state >= 0 && state < nstates && c > 0)
            by_state[state] = (uint64_t)c;
    }
    return rc;
}

int qk_store_pool_status(qk_store *s, const char *link, qk_pool_status *stt, qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (!stt)
        return qk_err_set(err, QK_EINVAL, "store: pool_status needs an output");
    memset(stt, 0, sizeof *stt);
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    uint64_t blocks[3] = {0, 0, 0};
    uint64_t keys[5] = {0, 0, 0, 0, 0};
    rc = count_by_state(s, "SELECT state, COUNT(*) FROM blocks WHERE link = ? GROUP BY state", link,
                        blocks, 3, err);
    if (!rc)
        rc = count_by_state(s, "SELECT state, COUNT(*) FROM keys WHERE link = ? GROUP BY state",
                            link, keys, 5, err);
    sqlite3_stmt *st = rc ? NULL
                          : qs_prep(s,
                                    "SELECT COALESCE(SUM(hi - lo), 0) FROM blocks"
                                    " WHERE link = ? AND state = ? AND hi > lo",
                                    err);
    if (!rc && !st)
        rc = QK_ESTORAGE;
    if (!rc)
        rc = qs_bindf(s, st, err, "ti", link, QK_BLOCK_CONFIRMED);
    if (!rc && (rc = qs_step(s, st, err)) == 1) {
        sqlite3_int64 b = sqlite3_column_int64(st, 0);
        stt->bytes_available = b > 0 ? (uint64_t)b : 0;
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no sum row");
    }
    stt->blocks_pending = blocks[QK_BLOCK_PENDING];
    stt->blocks_confirmed = blocks[QK_BLOCK_CONFIRMED];
    stt->blocks_burned = blocks[QK_BLOCK_BURNED];
    stt->keys_pending = keys[QS_KEY_PENDING];
    stt->keys_reserved = keys[QS_KEY_RESERVED];
    stt->keys_delivered = keys[QS_KEY_DELIVERED];
    stt->keys_burned = keys[QS_KEY_BURNED];
    stt->keys_expired = keys[QS_KEY_EXPIRED];
    if (rc)
        memset(stt, 0, sizeof *stt);
    return qs_end(s, rc, false, err);
}

int qk_store_count_reserved(qk_store *s, const char *master, const char *slave, uint64_t *n,
                            qk_err *err)
{
    int rc = qs_check_id(slave, "slave", err);
    if (!rc && master)
        rc = qs_check_id(master, "master", err);
    if (rc)
        return rc;
    if (!n)
        return qk_err_set(err, QK_EINVAL, "store: count_reserved needs an output");
    *n = 0;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT COUNT(*) FROM key_slaves c JOIN keys k"
                               " ON k.key_id = c.key_id WHERE c.slave = ? AND c.state = ?"
                               " AND k.state = ? AND k.expires_at > ?"
                               " AND (? IS NULL OR k.master = ?)",
                               err);
    rc = st ? qs_bindf(s, st, err, "tiiItt", slave, QS_COPY_WAITING, QS_KEY_RESERVED,
                       qs_i64(qs_now()), master, master)
            : QK_ESTORAGE;
    if (!rc && (rc = qs_step(s, st, err)) == 1) {
        sqlite3_int64 c = sqlite3_column_int64(st, 0);
        *n = c > 0 ? (uint64_t)c : 0;
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no count row");
    }
    return qs_end(s, rc, false, err);
}

int qk_store_audit(qk_store *s, const char *event, const char *link, const char *request_id,
                   const char *identity, const char *detail, qk_err *err)
{
    int rc = qs_begin(s, err);
    if (rc)
        return rc;
    rc = qs_audit_insert(s, event, link, request_id, identity, detail, err);
    return qs_end(s, rc, rc == 0, err);
}
