/* store_status.c - pool status per link, reserved-key counts, and the audit log. */
#include "store_int.h"

#include <pthread.h>
#include <string.h>

/* *v plus a change not written yet (store_counts.c); below zero the counters disagree. */
static int add_pending(uint64_t *v, int64_t d, qk_err *err)
{
    if (d < 0 && (uint64_t)-d > *v)
        return qk_err_set(err, QK_ESTORAGE, "store: negative pool counter");
    *v = (uint64_t)((int64_t)*v + d);
    return 0;
}

/* Reads the pool_counts rows of the link (at most 3 block, 5 key and 2 refusal states): one
 * read-only statement, so it sees one consistent snapshot without taking the write lock. */
int qk_store_pool_status(qk_store *s, const char *link, qk_pool_status *stt, qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (!s || !stt)
        return qk_err_set(err, QK_EINVAL, "store: pool_status needs a store and an output");
    memset(stt, 0, sizeof *stt);
    if (pthread_mutex_lock(&s->mu) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: lock failed");
    uint64_t blocks[3] = {0, 0, 0};
    uint64_t keys[5] = {0, 0, 0, 0, 0};
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT kind, state, n, bytes FROM pool_counts WHERE link = ?"
                               " LIMIT 16",
                               err);
    rc = st ? qs_bindf(s, st, err, "t", link) : QK_ESTORAGE;
    while (!rc) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = 0;
        int kind = sqlite3_column_int(st, 0);
        int state = sqlite3_column_int(st, 1);
        sqlite3_int64 n = sqlite3_column_int64(st, 2);
        sqlite3_int64 bytes = sqlite3_column_int64(st, 3);
        if (n < 0 || bytes < 0) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: negative pool counter");
        } else if (kind == QS_COUNT_BLOCKS && state >= 0 && state < 3) {
            blocks[state] = (uint64_t)n;
            if (state == QK_BLOCK_CONFIRMED)
                stt->bytes_available = (uint64_t)bytes;
        } else if (kind == QS_COUNT_KEYS && state >= 0 && state < 5) {
            keys[state] = (uint64_t)n;
        } else if (kind == QS_COUNT_REFUSED && state == QS_REFUSED_FULL) {
            stt->blocks_refused_full = (uint64_t)n;
            stt->bytes_refused_full = (uint64_t)bytes;
        } else if (kind == QS_COUNT_REFUSED && state == QS_REFUSED_LAST) {
            stt->full = n > 0;
        }
        if (!rc && kind == QS_COUNT_BLOCKS &&
            (state == QK_BLOCK_PENDING || state == QK_BLOCK_CONFIRMED))
            stt->bytes_held += (uint64_t)bytes;
    }
    if (st)
        (void)sqlite3_reset(st); /* ends the statement's read transaction */
    /* and the open transaction's changes not written yet (store_counts.c): the carves' bytes,
     * the runs' keys */
    for (int state = 0; !rc && state < 3; state++) {
        int64_t dn = 0, db = 0;
        qs_count_pending(s, link, QS_COUNT_BLOCKS, state, &dn, &db);
        if (state == QK_BLOCK_CONFIRMED)
            rc = add_pending(&stt->bytes_available, db, err);
        if (!rc && state != QK_BLOCK_BURNED)
            rc = add_pending(&stt->bytes_held, db, err);
    }
    for (int state = 0; !rc && state < 5; state++) {
        int64_t dn = 0, db = 0;
        qs_count_pending(s, link, QS_COUNT_KEYS, state, &dn, &db);
        rc = add_pending(&keys[state], dn, err);
    }
    (void)pthread_mutex_unlock(&s->mu);
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
    return rc;
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
    if (!s)
        return qk_err_set(err, QK_EINVAL, "store: no store");
    if (pthread_mutex_lock(&s->mu) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: lock failed");
    /* Walks key_slaves_by_slave over this slave's waiting copies only (a key that ends closes
     * its copies, migration v4), then one keys primary-key probe each. CROSS JOIN keeps that
     * order: left to itself the planner walks every reserved key (keys_by_expiry) and scans
     * the slave's copies for each. Read-only, one statement: one consistent snapshot without
     * the write lock. */
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT COUNT(*) FROM key_slaves c INDEXED BY key_slaves_by_slave"
                               " CROSS JOIN keys k ON k.key_id = c.key_id WHERE c.slave = ?"
                               " AND c.state = ? AND k.state = ? AND k.expires_at > ?"
                               " AND (? IS NULL OR k.master = ?)",
                               err);
    uint64_t now = qs_now();
    rc = st ? qs_bindf(s, st, err, "tiiItt", slave, QS_COPY_WAITING, QS_KEY_RESERVED, qs_i64(now),
                       master, master)
            : QK_ESTORAGE;
    if (!rc && (rc = qs_step(s, st, err)) == 1) {
        sqlite3_int64 c = sqlite3_column_int64(st, 0);
        *n = c > 0 ? (uint64_t)c : 0;
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no count row");
    }
    if (st)
        (void)sqlite3_reset(st);
    /* plus the keys of live runs (docs/adr/0003-request-records.md); the same snapshot: the
     * lock keeps writers out between the two statements */
    uint64_t in_runs = 0;
    if (!rc)
        rc = qs_runs_count_reserved(s, master, slave, now, &in_runs, err);
    if (!rc)
        *n += in_runs;
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
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
