/* store_fixture.c - helpers shared by the key-store unit suites. */
#include "store_fixture.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h" /* qs_seg_open, qs_seg_seal: segments as the store writes them */

int sf_dir_make(sf_dir *d, const char *name)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/qk-%s-XXXXXX", name);
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->path, sizeof d->path, "%s/keys.db", d->dir);
    return 0;
}

void sf_dir_remove(sf_dir *d)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", d->path, suffix[i]);
        (void)unlink(p);
    }
    (void)rmdir(d->dir);
}

void sf_master(uint8_t mk[QK_MASTER_KEY_LEN], uint8_t seed)
{
    for (size_t i = 0; i < QK_MASTER_KEY_LEN; i++)
        mk[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
}

qk_store *sf_open_opts(const char *path, uint8_t seed, const qk_store_opts *opts)
{
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, seed);
    qk_store *s = NULL;
    qk_err err = {0, ""};
    int rc = qk_store_open_with(path, mk, opts, &s, &err);
    if (rc != 0)
        fprintf(stderr, "qk_store_open(%s): %s\n", path, err.msg);
    return rc == 0 ? s : NULL;
}

qk_store *sf_open(const char *path, uint8_t seed)
{
    /* shared: the suites read the file through connections of their own while it is open */
    qk_store_opts opts = {.shared_lock = true};
    return sf_open_opts(path, seed, &opts);
}

qk_store *sf_open_default(const char *path, uint8_t seed)
{
    return sf_open_opts(path, seed, NULL);
}

int sf_put_confirmed(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                     size_t len)
{
    qk_put_result res = QK_PUT_CONFLICT;
    qk_err err = {0, ""};
    int rc = qk_store_block_put(s, link, block_id, bytes, len, &res, &err);
    if (rc == 0 && res != QK_PUT_NEW)
        rc = QK_EEXIST;
    if (rc == 0)
        rc = qk_store_block_set_state(s, link, block_id, QK_BLOCK_CONFIRMED, &err);
    if (rc != 0)
        fprintf(stderr, "put block %llu: %s\n", (unsigned long long)block_id, err.msg);
    return rc;
}

qk_reservation sf_resv(const char *request_id, const char *link, const char *master,
                       const char **slaves, const char *slave1, const char *slave2,
                       uint64_t expires_at)
{
    slaves[0] = slave1;
    slaves[1] = slave2;
    qk_reservation r = {request_id, link, master, slaves, slave2 ? 2u : 1u, expires_at};
    return r;
}

uint8_t *sf_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
            *len = fread(buf, 1, (size_t)n, f);
        }
    }
    fclose(f);
    return buf;
}

/* One integer from sql with an optional text parameter; -1 on error. */
static long long sf_query(sqlite3 *db, const char *sql, const char *param)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        (!param || sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC) == SQLITE_OK) &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "sf_query: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

#define SF_RECOUNT                                                                                 \
    "SELECT * FROM (SELECT link, 0 AS kind, state, COUNT(*) AS n, SUM(MAX(hi - lo, 0)) AS bytes "  \
    "FROM blocks"                                                                                  \
    " GROUP BY link, state UNION ALL SELECT link, 1, state, SUM(c), 0 FROM (SELECT link, state,"   \
    " COUNT(*) AS c FROM keys GROUP BY link, state UNION ALL SELECT link, 2, SUM(n_done)"          \
    " FROM runs GROUP BY link UNION ALL SELECT link, state, SUM(n - n_done) FROM runs"             \
    " GROUP BY link, state) GROUP BY link, state HAVING SUM(c) <> 0)"
/* Kinds 0 (blocks) and 1 (keys); kind 2 counts refusals, which leave no row to recount. */
#define SF_COUNTERS                                                                                \
    "SELECT link, kind, state, n, bytes FROM pool_counts WHERE n <> 0 AND kind IN (0, 1)"

/* Keys of runs by state, recounted from the fetched bitmaps (not from n_done): for link (NULL:
 * any) into keys[5]; the live, unexpired keys waiting for slave (NULL: none) into *waiting.
 * 0 or -1. */
static int sf_runs_recount(sqlite3 *db, const char *link, const char *slave, long long keys[5],
                           long long *waiting)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT link, n, state, slave, fetched, expires_at FROM runs", -1,
                           &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sf_runs_recount: %s\n", sqlite3_errmsg(db));
        return -1;
    }
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *l = (const char *)sqlite3_column_text(st, 0);
        long long n = sqlite3_column_int64(st, 1);
        int state = sqlite3_column_int(st, 2);
        const char *sl = (const char *)sqlite3_column_text(st, 3);
        const unsigned char *map = sqlite3_column_blob(st, 4);
        long long maplen = sqlite3_column_bytes(st, 4);
        long long exp = sqlite3_column_int64(st, 5);
        if (!l || state < 0 || state > 4 || n < 1 || (map && maplen * 8 < n)) {
            rc = -1;
            break;
        }
        long long done = 0;
        for (long long i = 0; i < n; i++)
            done += map ? (map[i / 8] >> (i % 8)) & 1 : 1; /* master end: delivered whole */
        if (!link || strcmp(l, link) == 0) {
            keys[2] += done;
            keys[state] += n - done;
        }
        if (slave && sl && strcmp(sl, slave) == 0 && state == 1 && exp > (long long)time(NULL))
            *waiting += n - done;
    }
    sqlite3_finalize(st);
    return rc;
}

int sf_counts_match(qk_store *s, const char *path, const char *link, const char *slave)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    int rc = 0;
    long long extra =
        sf_query(db, "SELECT COUNT(*) FROM (" SF_RECOUNT " EXCEPT " SF_COUNTERS ")", NULL);
    long long stale =
        sf_query(db, "SELECT COUNT(*) FROM (" SF_COUNTERS " EXCEPT " SF_RECOUNT ")", NULL);
    if (extra != 0 || stale != 0) {
        fprintf(stderr, "sf_counts_match: %lld recounted rows missing, %lld counters wrong\n",
                extra, stale);
        rc = -1;
    }
    static const char *const key_sql[5] = {
        "SELECT COUNT(*) FROM keys WHERE link = ? AND state = 0",
        "SELECT COUNT(*) FROM keys WHERE link = ? AND state = 1",
        "SELECT COUNT(*) FROM keys WHERE link = ? AND state = 2",
        "SELECT COUNT(*) FROM keys WHERE link = ? AND state = 3",
        "SELECT COUNT(*) FROM keys WHERE link = ? AND state = 4",
    };
    qk_pool_status ps;
    qk_err err = {0, ""};
    if (qk_store_pool_status(s, link, &ps, &err) != 0) {
        fprintf(stderr, "sf_counts_match: pool_status: %s\n", err.msg);
        rc = -1;
    } else {
        long long want[9] = {
            sf_query(db, "SELECT COUNT(*) FROM blocks WHERE link = ? AND state = 0", link),
            sf_query(db, "SELECT COUNT(*) FROM blocks WHERE link = ? AND state = 1", link),
            sf_query(db, "SELECT COUNT(*) FROM blocks WHERE link = ? AND state = 2", link),
            sf_query(db, key_sql[0], link),
            sf_query(db, key_sql[1], link),
            sf_query(db, key_sql[2], link),
            sf_query(db, key_sql[3], link),
            sf_query(db, key_sql[4], link),
            sf_query(db,
                     "SELECT COALESCE(SUM(hi - lo), 0) FROM blocks WHERE link = ? AND state = 1"
                     " AND hi > lo",
                     link),
        };
        long long in_runs[5] = {0, 0, 0, 0, 0}, unused = 0;
        if (sf_runs_recount(db, link, NULL, in_runs, &unused) != 0)
            rc = -1;
        for (int i = 0; i < 5; i++)
            want[3 + i] += in_runs[i];
        uint64_t have[9] = {ps.blocks_pending, ps.blocks_confirmed, ps.blocks_burned,
                            ps.keys_pending,   ps.keys_reserved,    ps.keys_delivered,
                            ps.keys_burned,    ps.keys_expired,     ps.bytes_available};
        for (int i = 0; i < 9; i++) {
            if (want[i] < 0 || (uint64_t)want[i] != have[i]) {
                fprintf(stderr, "sf_counts_match: field %d: recount %lld, status %llu\n", i,
                        want[i], (unsigned long long)have[i]);
                rc = -1;
            }
        }
    }
    if (slave) {
        uint64_t n = 0;
        sqlite3_stmt *st = NULL;
        long long want = -1;
        if (sqlite3_prepare_v2(db,
                               "SELECT COUNT(*) FROM key_slaves c JOIN keys k USING(key_id)"
                               " WHERE c.slave = ? AND c.state <> 1 AND k.state = 1"
                               " AND k.expires_at > ?",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_bind_text(st, 1, slave, -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL)) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            want = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        long long in_runs[5] = {0, 0, 0, 0, 0}, waiting = 0;
        if (want >= 0 && sf_runs_recount(db, NULL, slave, in_runs, &waiting) == 0)
            want += waiting;
        else
            want = -1;
        if (qk_store_count_reserved(s, NULL, slave, &n, &err) != 0 || want < 0 ||
            (uint64_t)want != n) {
            fprintf(stderr, "sf_counts_match: reserved for %s: recount %lld, store %llu\n", slave,
                    want, (unsigned long long)n);
            rc = -1;
        }
    }
    sqlite3_close(db);
    return rc;
}

/* Run sql on the closed database at path; 0 or -1 (prints the error as who). */
static int exec_on(const char *path, const char *sql, const char *who)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", who, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Reseal the segments of one block row by row as QK_SEG_BYTES_V1 pieces (db in a transaction). */
static int split_block(sqlite3 *db, const uint8_t *mk, const char *link, sqlite3_int64 bid)
{
    sqlite3_stmt *rd = NULL, *del = NULL, *ins = NULL;
    uint8_t *plain = sodium_malloc(QK_SEG_BYTES);
    int rc = plain &&
                     sqlite3_prepare_v2(db,
                                        "SELECT idx, nonce, ct FROM segments WHERE link = ?"
                                        " AND block_id = ? ORDER BY idx",
                                        -1, &rd, NULL) == SQLITE_OK &&
                     sqlite3_prepare_v2(db,
                                        "INSERT INTO segments(link, block_id, idx, nonce, ct,"
                                        " used_bytes) VALUES(?, ?, ?, ?, ?, 0)",
                                        -1, &ins, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    enum { IN_ROW = QK_SEG_BYTES / QK_SEG_BYTES_V1 };
    /* collect the rows first: they are replaced below */
    struct {
        uint32_t idx;
        uint8_t nonce[QS_NONCE_LEN];
        uint8_t ct[QK_SEG_BYTES + QS_TAG_LEN];
        size_t clen;
    } *rows = calloc(QK_BLOCK_MAX_BYTES / QK_SEG_BYTES, sizeof *rows);
    size_t n = 0;
    if (!rows)
        rc = -1;
    sqlite3_bind_text(rd, 1, link, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(rd, 2, bid);
    while (rc == 0 && sqlite3_step(rd) == SQLITE_ROW && n < QK_BLOCK_MAX_BYTES / QK_SEG_BYTES) {
        size_t clen = (size_t)sqlite3_column_bytes(rd, 2);
        if (sqlite3_column_bytes(rd, 1) != (int)QS_NONCE_LEN || clen > sizeof rows[n].ct) {
            rc = -1;
            break;
        }
        rows[n].idx = (uint32_t)sqlite3_column_int(rd, 0);
        memcpy(rows[n].nonce, sqlite3_column_blob(rd, 1), QS_NONCE_LEN);
        memcpy(rows[n].ct, sqlite3_column_blob(rd, 2), clen);
        rows[n++].clen = clen;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM segments WHERE block_id = %lld", (long long)bid);
    if (rc == 0 && sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (qs_seg_open(mk, link, (uint64_t)bid, rows[i].idx, rows[i].nonce, rows[i].ct,
                        rows[i].clen, plain) != 0) {
            rc = -1;
            break;
        }
        size_t plen = rows[i].clen - QS_TAG_LEN;
        for (size_t k = 0; rc == 0 && k * QK_SEG_BYTES_V1 < plen; k++) {
            size_t m = plen - k * QK_SEG_BYTES_V1;
            m = m < QK_SEG_BYTES_V1 ? m : QK_SEG_BYTES_V1;
            uint32_t idx = rows[i].idx * IN_ROW + (uint32_t)k;
            uint8_t nonce[QS_NONCE_LEN], ct[QK_SEG_BYTES_V1 + QS_TAG_LEN];
            qs_seg_seal(mk, link, (uint64_t)bid, idx, plain + k * QK_SEG_BYTES_V1, m, nonce, ct);
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, link, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 2, bid);
            sqlite3_bind_int(ins, 3, (int)idx);
            sqlite3_bind_blob(ins, 4, nonce, sizeof nonce, SQLITE_TRANSIENT);
            sqlite3_bind_blob(ins, 5, ct, (int)(m + QS_TAG_LEN), SQLITE_TRANSIENT);
            if (sqlite3_step(ins) != SQLITE_DONE)
                rc = -1;
        }
        sodium_memzero(plain, QK_SEG_BYTES);
    }
    free(rows);
    sqlite3_finalize(rd);
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    sodium_free(plain);
    return rc;
}

/* v8 -> v7: a request's inline slave back into request_slaves, requests_by_state back (the
 * run counters' triggers are not put back: see sf_downgrade_v6). */
static int sf_downgrade_v7(const char *path)
{
    return exec_on(path,
                   "BEGIN IMMEDIATE;"
                   "INSERT INTO request_slaves(request_id, slave)"
                   " SELECT request_id, slave FROM requests WHERE slave IS NOT NULL;"
                   "ALTER TABLE requests DROP COLUMN slave;"
                   "DROP INDEX requests_pending;"
                   "CREATE INDEX requests_by_state ON requests(direction, state, created);"
                   "UPDATE schema_version SET version = 7;"
                   "COMMIT;",
                   "sf_downgrade_v7");
}

int sf_downgrade_v6(const char *path, uint8_t seed)
{
    if (sf_downgrade_v7(path) != 0)
        return -1;
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, seed);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
                     sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                     sqlite3_prepare_v2(db, "SELECT link, block_id FROM blocks WHERE seg_bytes = ?",
                                        -1, &st, NULL) == SQLITE_OK &&
                     sqlite3_bind_int(st, 1, QK_SEG_BYTES) == SQLITE_OK
                 ? 0
                 : -1;
    char link[QK_STORE_ID_MAX + 1];
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        snprintf(link, sizeof link, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = split_block(db, mk, link, sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_exec(db,
                                "ALTER TABLE blocks DROP COLUMN seg_bytes;"
                                "UPDATE schema_version SET version = 6; COMMIT;",
                                NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "sf_downgrade_v6: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    sodium_memzero(mk, sizeof mk);
    return rc;
}

int sf_downgrade_v5(const char *path, uint8_t seed)
{
    if (sf_downgrade_v6(path, seed) != 0)
        return -1;
    /* a v5 store has no runs: refuse to drop keys (the counters would disagree) */
    sqlite3 *db = NULL;
    long long nruns = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
        nruns = sf_query(db, "SELECT COUNT(*) FROM runs", NULL);
    sqlite3_close(db);
    if (nruns != 0) {
        fprintf(stderr, "sf_downgrade_v5: %lld runs\n", nruns);
        return -1;
    }
    return exec_on(path,
                   "BEGIN IMMEDIATE;"
                   "DROP VIEW copy_view; DROP VIEW key_view; DROP VIEW run_keys;"
                   "DROP TRIGGER IF EXISTS pool_run_ins; DROP TRIGGER IF EXISTS pool_run_upd;"
                   "DROP TRIGGER pool_run_del; DROP TABLE runs;"
                   "UPDATE schema_version SET version = 5;"
                   "COMMIT;",
                   "sf_downgrade_v5");
}

int sf_downgrade_v4(const char *path, uint8_t seed)
{
    if (sf_downgrade_v5(path, seed) != 0)
        return -1;
    return exec_on(path,
                   "BEGIN IMMEDIATE;"
                   "DROP INDEX requests_unnoticed; DROP INDEX blocks_low_owned;"
                   "DROP INDEX blocks_high_owned; DROP INDEX blocks_with_ask;"
                   "ALTER TABLE blocks DROP COLUMN lease_lo;"
                   "ALTER TABLE blocks DROP COLUMN lease_hi;"
                   "ALTER TABLE blocks DROP COLUMN lease_ask;"
                   "ALTER TABLE requests DROP COLUMN noticed;"
                   "UPDATE schema_version SET version = 4;"
                   "COMMIT;",
                   "sf_downgrade_v4");
}

int sf_downgrade_v3(const char *path, uint8_t seed)
{
    if (sf_downgrade_v4(path, seed) != 0)
        return -1;
    return exec_on(path,
                   "BEGIN IMMEDIATE;"
                   "DROP TRIGGER pool_block_ins; DROP TRIGGER pool_block_upd;"
                   "DROP TRIGGER pool_block_del; DROP TRIGGER pool_key_ins;"
                   "DROP TRIGGER pool_key_upd; DROP TRIGGER pool_key_del;"
                   "DROP TRIGGER key_copies_close; DROP TABLE pool_counts;"
                   "UPDATE key_slaves SET state = 0 WHERE state = 2;"
                   "UPDATE schema_version SET version = 3;"
                   "COMMIT;",
                   "sf_downgrade_v3");
}

void sf_sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

double sf_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}
