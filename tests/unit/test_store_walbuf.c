/* test_store_walbuf.c - the store's VFS (kms/store_walbuf.c): WAL frames gathered per commit are
 * in the file before the commit is visible to another connection (sqlite3 on the data
 * directory), a failed write at the commit fails the COMMIT, and a transaction larger than
 * the buffer, a checkpoint and a reopen round-trip.
 * (The writes saved are counted with strace in docs/adr/0002-key-store.md.) */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

static char dir[64];
static char path[128];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-walbuf-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    return qs_walbuf_vfs() == SQLITE_OK ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static sqlite3 *open_db(const char *vfs)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static long long one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* PRAGMA integrity_check answers the single row "ok" for a sound database. */
static bool integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    return ok;
}

static void clean(void)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* The store's settings: WAL, synchronous NORMAL (no sync at a commit, so only the VFS's own
 * flushes, at the commit frame and at the barrier, put the frames in the file before another
 * connection may read them). */
static sqlite3 *open_store_like(void)
{
    sqlite3 *db = open_db(QS_WALBUF_VFS);
    if (db && (exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                        "PRAGMA wal_autocheckpoint = 0;") != SQLITE_OK)) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* Every commit is visible, whole, to a second connection on the default VFS right after it
 * returns: a pair of counters that must always sum to 1000, and a growing row count. */
static void test_commit_visible_to_other_connection(void)
{
    clean();
    sqlite3 *w = open_store_like();
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT_FATAL(exec(w, "CREATE TABLE c(a INTEGER, b INTEGER); INSERT INTO c VALUES(1000, 0);"
                            "CREATE TABLE r(i INTEGER PRIMARY KEY, v BLOB);") == SQLITE_OK);
    sqlite3 *r = open_db(NULL);
    CU_ASSERT_FATAL(r != NULL);
    int bad = 0;
    for (int i = 1; i <= 200; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "BEGIN; UPDATE c SET a = a - 1, b = b + 1;"
                 " INSERT INTO r(i, v) VALUES(%d, randomblob(3000)); COMMIT;",
                 i);
        CU_ASSERT_EQUAL_FATAL(exec(w, sql), SQLITE_OK);
        if (one_int(r, "SELECT a + b FROM c") != 1000 || one_int(r, "SELECT b FROM c") != i ||
            one_int(r, "SELECT count(*) FROM r") != i ||
            one_int(r, "SELECT sum(length(v)) FROM r") != 3000LL * i)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(integrity_ok(r));
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A transaction of ~8 MiB (more than the 512 KiB buffer, flushed in pieces) and a checkpoint
 * round-trip, also after a reopen on the default VFS. */
static void test_large_transaction_and_checkpoint(void)
{
    clean();
    sqlite3 *w = open_store_like();
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT_FATAL(exec(w, "CREATE TABLE big(i INTEGER PRIMARY KEY, v BLOB);") == SQLITE_OK);
    CU_ASSERT_EQUAL(exec(w, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                            " WHERE i < 2000) INSERT INTO big SELECT i, randomblob(4000) FROM n;"
                            " COMMIT;"),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(one_int(w, "SELECT count(*) FROM big"), 2000);
    CU_ASSERT_EQUAL(exec(w, "PRAGMA wal_checkpoint(TRUNCATE);"), SQLITE_OK);
    CU_ASSERT_EQUAL(exec(w, "UPDATE big SET v = zeroblob(10) WHERE i % 2 = 0;"), SQLITE_OK);
    sqlite3_close(w);
    sqlite3 *r = open_db(NULL);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(one_int(r, "SELECT count(*) FROM big"), 2000);
    CU_ASSERT_EQUAL(one_int(r, "SELECT sum(length(v)) FROM big"), 1000LL * 4000 + 1000LL * 10);
    CU_ASSERT(integrity_ok(r));
    sqlite3_close(r);
}

/* A WAL write that fails at the commit fails the COMMIT (as it did unbuffered), and nothing of
 * it becomes visible: the file size limit (RLIMIT_FSIZE) stops the WAL from growing, a commit of
 * a few pages (well within the buffer, so only the commit's own write can fail) is refused, and
 * another connection still reads the state before it. */
static void test_failed_commit_write_fails_commit(void)
{
    clean();
    sqlite3 *w = open_store_like();
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT_FATAL(exec(w, "CREATE TABLE t(i INTEGER PRIMARY KEY, v BLOB);"
                            "INSERT INTO t VALUES(1, randomblob(100));") == SQLITE_OK);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat st;
    CU_ASSERT_FATAL(stat(wal, &st) == 0);
    struct rlimit old, lim;
    CU_ASSERT_FATAL(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct sigaction ign, prev;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    CU_ASSERT_FATAL(sigaction(SIGXFSZ, &ign, &prev) == 0); /* EFBIG instead of the signal */
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size; /* the WAL may not grow */
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = exec(w, "INSERT INTO t VALUES(2, randomblob(5000));");
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &old) == 0);
    sigaction(SIGXFSZ, &prev, NULL);
    CU_ASSERT_NOT_EQUAL(rc, SQLITE_OK);
    sqlite3 *r = open_db(NULL);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_EQUAL(one_int(r, "SELECT count(*) FROM t"), 1);
    sqlite3_close(r);
    /* the limit gone, the writer goes on */
    CU_ASSERT_EQUAL(exec(w, "INSERT INTO t VALUES(3, randomblob(5000));"), SQLITE_OK);
    CU_ASSERT_EQUAL(one_int(w, "SELECT count(*) FROM t"), 2);
    sqlite3_close(w);
}

int suite_store_walbuf(void)
{
    CU_pSuite s = CU_add_suite("store_walbuf", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "each commit is whole and visible to another connection",
                     test_commit_visible_to_other_connection) ||
        !CU_add_test(s, "a transaction larger than the buffer, a checkpoint, a reopen",
                     test_large_transaction_and_checkpoint) ||
        !CU_add_test(s, "a failed write at the commit fails the COMMIT",
                     test_failed_commit_write_fails_commit))
        return -1;
    return 0;
}
