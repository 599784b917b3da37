/* store_db.c - the key store's SQLite connection: open, pragmas, schema migrations, the
 * master-key check, transactions, the prepared-statement cache and input validation. */
#include "store_int.h"
#include "thread_name.h"

/* How long the syncer lets a lazy call's group wait for a reply that needs a sync anyway
 * (docs/adr/0002-key-store.md, item 10): one sync then covers both. */
#define QS_LAZY_WAIT_MS 100

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The body of the block counters' update trigger: v4 created it, v8 narrowed the columns it
 * fires on (the SQL each migration runs is unchanged by sharing it). */
#define POOL_BLOCK_UPD_BODY                                                                        \
    " WHEN OLD.link IS NOT NEW.link OR OLD.state IS NOT NEW.state OR OLD.lo IS NOT NEW.lo"         \
    " OR OLD.hi IS NOT NEW.hi BEGIN"                                                               \
    " UPDATE pool_counts SET n = n - 1, bytes = bytes - MAX(OLD.hi - OLD.lo, 0)"                   \
    " WHERE link = OLD.link AND kind = 0 AND state = OLD.state;"                                   \
    " INSERT INTO pool_counts(link, kind, state, n, bytes)"                                        \
    " VALUES(NEW.link, 0, NEW.state, 1, MAX(NEW.hi - NEW.lo, 0))"                                  \
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;"     \
    " END;"

/* Ordered migration list: migrations[i] moves the schema from version i to i+1. Never edit a
 * released entry; append a new one. */
static const char *const migrations[] = {
    /* v1: blocks, encrypted segments, requests, keys and per-slave copies */
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE blocks(link TEXT NOT NULL, block_id INTEGER NOT NULL, len INTEGER NOT NULL,"
    " state INTEGER NOT NULL, received_at INTEGER NOT NULL, lo INTEGER NOT NULL,"
    " hi INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY(link, block_id)) WITHOUT ROWID;"
    "CREATE INDEX blocks_by_state ON blocks(link, state, block_id);"
    "CREATE TABLE segments(link TEXT NOT NULL, block_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
    " nonce BLOB NOT NULL, ct BLOB NOT NULL, used_bytes INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(link, block_id, idx),"
    " FOREIGN KEY(link, block_id) REFERENCES blocks(link, block_id));"
    "CREATE TABLE requests(request_id TEXT PRIMARY KEY, link TEXT NOT NULL,"
    " direction INTEGER NOT NULL, state INTEGER NOT NULL, master TEXT NOT NULL,"
    " created INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
    "CREATE INDEX requests_by_state ON requests(direction, state, created);"
    "CREATE TABLE request_slaves(request_id TEXT NOT NULL REFERENCES requests(request_id),"
    " slave TEXT NOT NULL, PRIMARY KEY(request_id, slave));"
    "CREATE TABLE keys(key_id TEXT PRIMARY KEY,"
    " request_id TEXT NOT NULL REFERENCES requests(request_id), seq INTEGER NOT NULL,"
    " link TEXT NOT NULL, block_id INTEGER NOT NULL, off INTEGER NOT NULL,"
    " len INTEGER NOT NULL, state INTEGER NOT NULL, master TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " FOREIGN KEY(link, block_id) REFERENCES blocks(link, block_id));"
    "CREATE INDEX keys_by_range ON keys(link, block_id, off);"
    "CREATE INDEX keys_by_request ON keys(request_id, seq);"
    "CREATE INDEX keys_by_expiry ON keys(state, expires_at);"
    "CREATE TABLE key_slaves(key_id TEXT NOT NULL REFERENCES keys(key_id),"
    " slave TEXT NOT NULL, state INTEGER NOT NULL, PRIMARY KEY(key_id, slave));"
    "CREATE INDEX key_slaves_by_slave ON key_slaves(slave, state);",
    /* v2: audit log */
    "CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,"
    " event TEXT NOT NULL, link TEXT, request_id TEXT, identity TEXT, detail TEXT);"
    "CREATE INDEX audit_by_ts ON audit(ts);",
    /* v3: carving skips used-up blocks without scanning them */
    "CREATE INDEX blocks_with_room ON blocks(link, state, block_id) WHERE hi > lo;",
    /* v4: pool counters per (link, kind, state), kept by triggers in the transaction that
     * changes a row, so pool status reads O(states) rows instead of counting every key ever
     * delivered. kind 0: blocks (n blocks, bytes = uncarved room); kind 1: keys (n keys).
     * A key that ends closes its waiting copies (key_slaves.state 2), so the copies index
     * by (slave, state) holds only live copies as waiting. */
    "CREATE TABLE pool_counts(link TEXT NOT NULL, kind INTEGER NOT NULL, state INTEGER NOT NULL,"
    " n INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY(link, kind, state)) WITHOUT ROWID;"
    "INSERT INTO pool_counts(link, kind, state, n, bytes)"
    " SELECT link, 0, state, COUNT(*), SUM(MAX(hi - lo, 0)) FROM blocks GROUP BY link, state;"
    "INSERT INTO pool_counts(link, kind, state, n, bytes)"
    " SELECT link, 1, state, COUNT(*), 0 FROM keys GROUP BY link, state;"
    "CREATE TRIGGER pool_block_ins AFTER INSERT ON blocks BEGIN"
    " INSERT INTO pool_counts(link, kind, state, n, bytes)"
    " VALUES(NEW.link, 0, NEW.state, 1, MAX(NEW.hi - NEW.lo, 0))"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;"
    " END;"
    "CREATE TRIGGER pool_block_upd AFTER UPDATE OF link, state, lo, hi ON "
    "blocks" POOL_BLOCK_UPD_BODY "CREATE TRIGGER pool_block_del AFTER DELETE ON blocks BEGIN"
    " UPDATE pool_counts SET n = n - 1, bytes = bytes - MAX(OLD.hi - OLD.lo, 0)"
    " WHERE link = OLD.link AND kind = 0 AND state = OLD.state;"
    " END;"
    "CREATE TRIGGER pool_key_ins AFTER INSERT ON keys BEGIN"
    " INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(NEW.link, 1, NEW.state, 1, 0)"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + 1;"
    " END;"
    "CREATE TRIGGER pool_key_upd AFTER UPDATE OF link, state ON keys"
    " WHEN OLD.link IS NOT NEW.link OR OLD.state IS NOT NEW.state BEGIN"
    " UPDATE pool_counts SET n = n - 1 WHERE link = OLD.link AND kind = 1 AND state = OLD.state;"
    " INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(NEW.link, 1, NEW.state, 1, 0)"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + 1;"
    " END;"
    "CREATE TRIGGER pool_key_del AFTER DELETE ON keys BEGIN"
    " UPDATE pool_counts SET n = n - 1 WHERE link = OLD.link AND kind = 1 AND state = OLD.state;"
    " END;"
    "CREATE TRIGGER key_copies_close AFTER UPDATE OF state ON keys"
    " WHEN NEW.state NOT IN (0, 1) BEGIN"
    " UPDATE key_slaves SET state = 2 WHERE key_id = NEW.key_id AND state = 0;"
    " END;"
    "UPDATE key_slaves SET state = 2 WHERE state = 0 AND key_id IN"
    " (SELECT key_id FROM keys WHERE state NOT IN (0, 1));",
    /* v5: leases and notices (docs/adr/0002-key-store.md, "Leases and notices"). Per block the
     * agreed bounds (LOW owns [32, lease_lo), HIGH [lease_hi, len)) and this end's pending ask;
     * existing blocks lease nothing beyond what is carved (lease_lo = lo, lease_hi = hi, never
     * below lease_lo). Requests get noticed (0: outgoing, the peer has yet to hear of it; old
     * rows are noticed). Partial indexes: un-noticed requests per link, blocks with room a side
     * owns (LOW: lease_lo > lo; HIGH: hi > lease_hi), blocks with an ask. */
    "ALTER TABLE blocks ADD lease_lo INTEGER NOT NULL DEFAULT 32;"
    "ALTER TABLE blocks ADD lease_hi INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blocks ADD lease_ask INTEGER;"
    "UPDATE blocks SET lease_lo = lo, lease_hi = MAX(lo, hi);"
    "ALTER TABLE requests ADD noticed INTEGER NOT NULL DEFAULT 1;"
    "CREATE INDEX requests_unnoticed ON requests(link, created) WHERE noticed = 0;"
    "CREATE INDEX blocks_low_owned ON blocks(link, block_id) WHERE lease_lo > lo;"
    "CREATE INDEX blocks_high_owned ON blocks(link, block_id) WHERE hi > lease_hi;"
    "CREATE INDEX blocks_with_ask ON blocks(link, block_id) WHERE lease_ask IS NOT NULL;",
    /* v6: runs of keys (docs/adr/0003-request-records.md): keys seq .. seq+n-1 of a request,
     * key i the range [off + i*len, off + (i+1)*len) of one block, its ID id_prefix || be16(i).
     * n_done keys are DELIVERED (at the slave end: bit i of fetched set, the run's one slave
     * fetched key i), the other n - n_done are in state (RESERVED while the run lives, then
     * EXPIRED or BURNED; DELIVERED runs have n_done = n). The master end fills neither slave
     * nor fetched. pool_counts counts both parts (triggers, as for keys). */
    "CREATE TABLE runs(request_id TEXT NOT NULL REFERENCES requests(request_id),"
    " seq INTEGER NOT NULL, id_prefix BLOB NOT NULL UNIQUE, link TEXT NOT NULL,"
    " block_id INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL, n INTEGER NOT NULL,"
    " state INTEGER NOT NULL, n_done INTEGER NOT NULL, master TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL, slave TEXT, fetched BLOB, PRIMARY KEY(request_id, seq),"
    " FOREIGN KEY(link, block_id) REFERENCES blocks(link, block_id)) WITHOUT ROWID;"
    "CREATE INDEX runs_by_range ON runs(link, block_id, off);"
    "CREATE INDEX runs_live ON runs(slave, expires_at) WHERE state = 1;"
    "CREATE INDEX runs_live_by_expiry ON runs(expires_at) WHERE state = 1;"
    "CREATE TRIGGER pool_run_ins AFTER INSERT ON runs BEGIN"
    " INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(NEW.link, 1, 2, NEW.n_done, 0)"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + excluded.n;"
    " INSERT INTO pool_counts(link, kind, state, n, bytes)"
    " VALUES(NEW.link, 1, NEW.state, NEW.n - NEW.n_done, 0)"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + excluded.n;"
    " END;"
    "CREATE TRIGGER pool_run_upd AFTER UPDATE OF link, state, n, n_done ON runs"
    " WHEN OLD.link IS NOT NEW.link OR OLD.state IS NOT NEW.state OR OLD.n IS NOT NEW.n"
    " OR OLD.n_done IS NOT NEW.n_done BEGIN"
    " UPDATE pool_counts SET n = n - OLD.n_done WHERE link = OLD.link AND kind = 1 AND state = 2;"
    " UPDATE pool_counts SET n = n - (OLD.n - OLD.n_done) WHERE link = OLD.link AND kind = 1"
    " AND state = OLD.state;"
    " INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(NEW.link, 1, 2, NEW.n_done, 0)"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + excluded.n;"
    " INSERT INTO pool_counts(link, kind, state, n, bytes)"
    " VALUES(NEW.link, 1, NEW.state, NEW.n - NEW.n_done, 0)"
    " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + excluded.n;"
    " END;"
    "CREATE TRIGGER pool_run_del AFTER DELETE ON runs BEGIN"
    " UPDATE pool_counts SET n = n - OLD.n_done WHERE link = OLD.link AND kind = 1 AND state = 2;"
    " UPDATE pool_counts SET n = n - (OLD.n - OLD.n_done) WHERE link = OLD.link AND kind = 1"
    " AND state = OLD.state;"
    " END;"
    /* Per-key views for operators and tests (the code never reads them): run_keys expands
     * every run into its keys (h: the ID's 32 hex digits; bit: key x fetched by the run's
     * slave), key_view is keys plus run keys, copy_view key_slaves plus the run keys' copies
     * (0 waiting, 1 fetched, 2 closed). A scan: fine for audits, not for the request path. */
    "CREATE VIEW run_keys AS WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i"
    " WHERE x < 4095) SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4)"
    " || '-' || substr(h, 17, 4) || '-' || substr(h, 21, 12) AS key_id, request_id, seq, link,"
    " block_id, off, len, CASE WHEN bit THEN 2 ELSE state END AS state, master, expires_at,"
    " slave, bit, state AS run_state FROM (SELECT request_id, seq + x AS seq, link, block_id,"
    " off + x * len AS off, len, state, master, expires_at, slave,"
    " lower(hex(id_prefix)) || printf('%04x', x) AS h, CASE WHEN fetched IS NULL THEN 0 ELSE"
    " (((instr('0123456789ABCDEF', substr(hex(substr(fetched, x / 8 + 1, 1)), 1, 1)) - 1) * 16"
    " + instr('0123456789ABCDEF', substr(hex(substr(fetched, x / 8 + 1, 1)), 2, 1)) - 1)"
    " >> (x % 8)) & 1 END AS bit FROM runs JOIN i ON i.x < runs.n);"
    "CREATE VIEW key_view AS SELECT key_id, request_id, seq, link, block_id, off, len, state,"
    " master, expires_at FROM keys UNION ALL SELECT key_id, request_id, seq, link, block_id, off,"
    " len, state, master, expires_at FROM run_keys;"
    "CREATE VIEW copy_view AS SELECT key_id, slave, state FROM key_slaves UNION ALL"
    " SELECT key_id, slave, CASE WHEN bit THEN 1 WHEN run_state = 1 THEN 0 ELSE 2 END"
    " FROM run_keys WHERE slave IS NOT NULL;",
    /* v7: the segment size of each block (docs/adr/0003-request-records.md, "Left" 4): blocks
     * stored from now on are cut into segments of QK_SEG_BYTES (4 KiB), fewer rows to read and
     * delete per byte; the blocks already stored keep their 1 KiB segments (nothing is
     * re-encrypted). */
    "ALTER TABLE blocks ADD seg_bytes INTEGER NOT NULL DEFAULT 1024;",
    /* v8: the pool counters of runs kept by the store's code, written once per transaction
     * (store_counts.c; docs/adr/0002-key-store.md "Pool counters"): the triggers that kept them
     * per row go. Runs are never deleted, so pool_run_del stays as it is (it never fires). */
    "DROP TRIGGER IF EXISTS pool_run_ins;"
    "DROP TRIGGER IF EXISTS pool_run_upd;"
    /* and requests are looked up by state only while PENDING (the old synchronous path and
     * relay decisions): the index holds those alone, so the DONE rows a lease carve or a
     * notice writes, one per key pair at each end, add no index entry */
    "DROP INDEX IF EXISTS requests_by_state;"
    "CREATE INDEX IF NOT EXISTS requests_pending ON requests(direction, created) WHERE state = 0;"
    /* and a block's counters follow an UPDATE that sets its link or state (as before, with the
     * cursors it moves in the same statement); one that sets only cursors counts its change in
     * code (qs_set_cursor: a carve) or names state = state to have the trigger count it */
    "DROP TRIGGER IF EXISTS pool_block_upd;"
    "CREATE TRIGGER pool_block_upd AFTER UPDATE OF link, state ON blocks" POOL_BLOCK_UPD_BODY
    /* and an outgoing request carved from a lease for one slave names it in its own row
     * (requests.slave), without request_slaves rows: one insert fewer per key pair at the
     * master; NULL: the slaves are in request_slaves, as before */
    "ALTER TABLE requests ADD slave TEXT;",
};
#define QS_NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- errors, statements, binding -------------------------------------------------------- */

int qs_db_err(qk_store *s, qk_err *err, const char *what)
{
    return qk_err_set(err, QK_ESTORAGE, "store: %s: %s", what,
                      s && s->db ? sqlite3_errmsg(s->db) : "no database");
}

/* The cache slot of sql: callers pass string literals, so the same pointer finds it at once;
 * equal text from another pointer is found by the second pass. */
static size_t qs_stmt_find(const qk_store *s, const char *sql)
{
    for (size_t i = 0; i < s->nstmts; i++)
        if (s->stmts[i].sql == sql)
            return i;
    for (size_t i = 0; i < s->nstmts; i++)
        if (strcmp(s->stmts[i].sql, sql) == 0)
            return i;
    return s->nstmts;
}

sqlite3_stmt *qs_prep(qk_store *s, const char *sql, qk_err *err)
{
    size_t i = qs_stmt_find(s, sql);
    if (i < s->nstmts) {
        sqlite3_stmt *st = s->stmts[i].st;
        s->stmts[i].used = true;
        /* reset reports the previous step's error, which was handled then */
        (void)sqlite3_reset(st);
        if (sqlite3_clear_bindings(st) != SQLITE_OK) {
            qs_db_err(s, err, "clear bindings");
            return NULL;
        }
        return st;
    }
    if (s->nstmts >= QS_STMT_CACHE) {
        qk_err_set(err, QK_ESTORAGE, "store: statement cache full");
        return NULL;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        qs_db_err(s, err, "prepare");
        return NULL;
    }
    s->stmts[s->nstmts].sql = sql;
    s->stmts[s->nstmts].st = st;
    s->stmts[s->nstmts].used = true;
    s->nstmts++;
    return st;
}

int qs_bindf(qk_store *s, sqlite3_stmt *st, qk_err *err, const char *fmt, ...)
{
    va_list ap;
    int rc = SQLITE_OK;
    int idx = 1;
    va_start(ap, fmt);
    for (const char *f = fmt; *f && rc == SQLITE_OK; f++, idx++) {
        switch (*f) {
        case 't': {
            const char *t = va_arg(ap, const char *);
            rc = t ? sqlite3_bind_text(st, idx, t, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
            break;
        }
        case 'I':
            rc = sqlite3_bind_int64(st, idx, va_arg(ap, int64_t));
            break;
        case 'i':
            rc = sqlite3_bind_int(st, idx, va_arg(ap, int));
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = n > INT_MAX ? SQLITE_TOOBIG : sqlite3_bind_blob(st, idx, p, (int)n, SQLITE_STATIC);
            break;
        }
        default:
            rc = SQLITE_MISUSE;
        }
    }
    va_end(ap);
    return rc == SQLITE_OK ? 0 : qs_db_err(s, err, "bind");
}

int qs_step(qk_store *s, sqlite3_stmt *st, qk_err *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return qk_err_set(err, QK_EEXIST, "store: constraint: %s", sqlite3_errmsg(s->db));
    return qs_db_err(s, err, "step");
}

int qs_step_done(qk_store *s, sqlite3_stmt *st, qk_err *err)
{
    int rc = qs_step(s, st, err);
    if (rc == 1)
        return qk_err_set(err, QK_ESTORAGE, "store: statement returned a row");
    return rc;
}

static int qs_exec(qk_store *s, const char *sql, qk_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        qk_err_set(err, QK_ESTORAGE, "store: %s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return QK_ESTORAGE;
    }
    return 0;
}

/* ---- transactions ----------------------------------------------------------------------- */

/* The transaction-control statements of every call, prepared once (sqlite3_exec would parse
 * and compile each of them again on every call: two or three per store call). */
static const char *const qs_ctl_sql[QS_CTL_N] = {
    [QS_CTL_BEGIN] = "BEGIN IMMEDIATE",   [QS_CTL_SAVEPOINT] = "SAVEPOINT qs_call",
    [QS_CTL_RELEASE] = "RELEASE qs_call", [QS_CTL_ROLLBACK_TO] = "ROLLBACK TO qs_call",
    [QS_CTL_COMMIT] = "COMMIT",           [QS_CTL_ROLLBACK] = "ROLLBACK",
};

/* Run control statement c (under mu): 0, or QK_ESTORAGE with SQLite's reason. */
static int qs_ctl(qk_store *s, qs_ctl_op c, qk_err *err)
{
    if (!s->ctl[c] && sqlite3_prepare_v3(s->db, qs_ctl_sql[c], -1, SQLITE_PREPARE_PERSISTENT,
                                         &s->ctl[c], NULL) != SQLITE_OK)
        return qs_db_err(s, err, qs_ctl_sql[c]);
    int rc = sqlite3_step(s->ctl[c]);
    int rrc = sqlite3_reset(s->ctl[c]);
    if (rc != SQLITE_DONE || rrc != SQLITE_OK)
        return qs_db_err(s, err, qs_ctl_sql[c]);
    return 0;
}

int qs_begin(qk_store *s, qk_err *err)
{
    if (!s)
        return qk_err_set(err, QK_EINVAL, "store: no store");
    if (pthread_mutex_lock(&s->mu) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: lock failed");
    int rc = 0;
    if (!s->group_open) {
        rc = qs_ctl(s, QS_CTL_BEGIN, err);
        if (!rc) {
            s->group_open = true;
            s->group_calls = 0;
            (void)pthread_mutex_lock(&s->smu);
            s->group_seq = s->commit_seq + 1;
            (void)pthread_mutex_unlock(&s->smu);
        }
    }
    if (!rc && (rc = qs_ctl(s, QS_CTL_SAVEPOINT, err)) != 0 && s->group_calls == 0) {
        (void)qs_ctl(s, QS_CTL_ROLLBACK, NULL);
        s->group_open = false;
    }
    if (rc != 0) {
        (void)pthread_mutex_unlock(&s->mu);
        return rc;
    }
    s->op_changes = sqlite3_total_changes64(s->db);
    s->zq_mark = s->zq_n; /* this call's deferred zeroings start here */
    qs_count_call_begin(s);
    return 0;
}

int (*qs_test_fdatasync)(int fd) = NULL;

int qs_fdatasync(int fd)
{
    return qs_test_fdatasync ? qs_test_fdatasync(fd) : fdatasync(fd);
}
unsigned qs_lazy_wait_ms = QS_LAZY_WAIT_MS;

/* Whether group number seq failed (its COMMIT, or SQLite rolled it back). Under smu. */
static bool qs_group_failed(const qk_store *s, uint64_t seq)
{
    for (size_t i = 0; i < s->nfailed && i < QS_FAILED_GROUPS; i++)
        if (s->failed[i] == seq)
            return true;
    return false;
}

/* Whether waiter w's barrier holds: its number committed, and its durable number synced (0:
 * none, docs/adr/0002-key-store.md "Replies at commit"). Under smu; a failed group is
 * checked before (its number counts as committed). */
static bool qs_waiter_ready(const qk_store *s, const qk_inline_waiter *w)
{
    return w->seq <= s->commit_seq && w->sync_seq <= s->synced_seq;
}

/* Take the waiters whose barriers hold off the list: *ok those now committed or durable as
 * they asked, the return value those that failed (a failed group's, or all of them after a
 * failed sync). Call with smu held; complete them with qk_inline_complete after releasing
 * it. */
static qk_inline_waiter *qs_waiters_take(qk_store *s, qk_inline_waiter **ok)
{
    qk_inline_waiter *bad = NULL, **pp = &s->waiters;
    *ok = NULL;
    while (*pp) {
        qk_inline_waiter *w = *pp;
        bool failed = s->sync_errno || qs_group_failed(s, w->seq) ||
                      (w->sync_seq && qs_group_failed(s, w->sync_seq));
        if (failed || qs_waiter_ready(s, w)) {
            *pp = w->next;
            w->next = failed ? bad : *ok;
            *(failed ? &bad : ok) = w;
        } else {
            pp = &w->next;
        }
    }
    return bad;
}

/* What the store keeps in memory of rows (segments, runs) no longer matches them once a call
 * that changed them is undone or a group lost: the rows went back, the copies did not. */
static void qs_mem_drop(qk_store *s)
{
    qs_segc_drop_all(s);
    qs_runc_drop_all(s);
}

/* The open group is gone (its COMMIT failed, or SQLite rolled it back): its number is spent
 * and failed, and the replies waiting for it fail. Under mu; not under smu. */
static void qs_group_lost(qk_store *s)
{
    qk_inline_waiter *ok, *bad;
    qs_noteq_reset(s);        /* its carves are gone: their notices must not go */
    qs_known_reset(s);        /* and the runs of its notices */
    qs_count_reset(s);        /* and its counter changes */
    s->zq_n = s->zq_mark = 0; /* and its takes: nothing of them reached the database */
    qs_mem_drop(s);           /* and the rows held in memory (segments, runs) */
    (void)pthread_mutex_lock(&s->smu);
    s->failed[s->nfailed % QS_FAILED_GROUPS] = s->group_seq;
    s->nfailed++;
    if (s->commit_seq < s->group_seq)
        s->commit_seq = s->group_seq;
    bad = qs_waiters_take(s, &ok);
    (void)pthread_mutex_unlock(&s->smu);
    s->group_open = false;
    s->group_calls = 0;
    qk_inline_complete(ok, 0);
    qk_inline_complete(bad, QK_ESTORAGE);
}

/* COMMIT the open group (under mu). 0, or QK_ESTORAGE: it was rolled back and every call in
 * it fails. The group's number becomes commit_seq whether or not it appended frames. */
static int qs_group_commit(qk_store *s, qk_err *err)
{
    if (!s->group_open)
        return 0;
    int rc = qs_zero_flush(s, err); /* the group's takes zeroed before it commits */
    if (!rc)
        rc = qs_count_flush(s, err); /* and its counter changes written */
    if (!rc)
        rc = qs_ctl(s, QS_CTL_COMMIT, err);
    if (rc != 0) {
        (void)qs_ctl(s, QS_CTL_ROLLBACK, NULL);
        qs_group_lost(s);
        return rc;
    }
    (void)pthread_mutex_lock(&s->smu);
    if (s->commit_seq < s->group_seq)
        s->commit_seq = s->group_seq;
    (void)pthread_mutex_unlock(&s->smu);
    s->group_open = false;
    s->group_calls = 0;
    return 0;
}

/* COMMIT the open group if its number is <= seq (takes mu; call without mu and smu). */
static void qs_commit_upto(qk_store *s, uint64_t seq)
{
    (void)pthread_mutex_lock(&s->mu);
    if (s->group_open && s->group_seq <= seq)
        (void)qs_group_commit(s, NULL);
    (void)pthread_mutex_unlock(&s->mu);
}

/* Complete the waiters whose barriers hold now (takes smu). */
static void qs_waiters_complete(qk_store *s)
{
    qk_inline_waiter *ok, *bad;
    (void)pthread_mutex_lock(&s->smu);
    bad = qs_waiters_take(s, &ok);
    (void)pthread_mutex_unlock(&s->smu);
    qk_inline_complete(ok, 0);
    qk_inline_complete(bad, QK_ESTORAGE);
}

/* Durability barrier (group commit). Commits run with synchronous=NORMAL: COMMIT appends WAL
 * frames without syncing. Before a writing call reports success it waits here, without mu,
 * until the WAL file has been fdatasync'ed past its commit. Whoever finds nobody syncing
 * becomes the syncer for everything committed so far; the others wait on scond. fdatasync
 * covers every write to the inode through any descriptor, and the commits <= target had
 * returned from COMMIT (their write(2)s done) before target was read. A number still open as
 * the group transaction is committed first. A failed sync is sticky: after an fdatasync error
 * the kernel may have dropped the dirty pages, so no later sync can vouch for them; every
 * barrier fails until the store is reopened. A failed group fails only its own number.
 * Replies of inline handlers (qk_inline.h) wait in s->waiters instead: every call that
 * returns from here completes those that are now durable, or failed. */
static int qs_sync_wait(qk_store *s, uint64_t seq, qk_err *err)
{
    int e = 0;
    qk_inline_waiter *ok, *bad;
    (void)pthread_mutex_lock(&s->smu);
    while (s->synced_seq < seq && !s->sync_errno && !qs_group_failed(s, seq)) {
        if (s->commit_seq < seq) { /* seq is the open group's: commit it (mu before smu) */
            (void)pthread_mutex_unlock(&s->smu);
            qs_commit_upto(s, seq);
            (void)pthread_mutex_lock(&s->smu);
            if (s->commit_seq < seq && !qs_group_failed(s, seq)) {
                e = EINVAL; /* no such number: never issued */
                break;
            }
            continue;
        }
        if (s->syncing) {
            (void)pthread_cond_wait(&s->scond, &s->smu);
            continue;
        }
        s->syncing = true;
        uint64_t target = s->commit_seq;
        (void)pthread_mutex_unlock(&s->smu);
        int r = qs_fdatasync(s->wal_fd);
        int saved = r != 0 ? (errno ? errno : EIO) : 0;
        (void)pthread_mutex_lock(&s->smu);
        s->syncing = false;
        if (saved)
            s->sync_errno = saved;
        else if (target > s->synced_seq)
            s->synced_seq = target;
        (void)pthread_cond_broadcast(&s->scond);
    }
    bool lost = qs_group_failed(s, seq);
    if (!e && s->synced_seq < seq)
        e = s->sync_errno;
    bad = qs_waiters_take(s, &ok); /* whoever gets here completes what is durable or failed */
    (void)pthread_mutex_unlock(&s->smu);
    qk_inline_complete(ok, 0);
    qk_inline_complete(bad, QK_ESTORAGE);
    if (lost)
        return qk_err_set(err, QK_ESTORAGE, "store: the group commit failed (nothing of it kept)");
    if (e)
        return qk_err_set(err, QK_ESTORAGE, "store: WAL sync failed (reopen the store): %s",
                          strerror(e));
    return 0;
}

/* Wake the syncer for the waiters queued (qk_inline_kick): they were linked under smu, which
 * the syncer holds from its look at the list until it waits, so the signal is not lost. */
static void qs_syncer_kick(void *arg)
{
    qk_store *s = arg;
    (void)pthread_mutex_lock(&s->smu);
    (void)pthread_cond_signal(&s->wcond);
    (void)pthread_mutex_unlock(&s->smu);
}

/* qk_inline_await_fn for the store (owner = the store): a reply of an inline handler waits
 * for its commits without a thread of its own. */
static int qs_await(void *owner, uint64_t seq, qk_inline_waiter *w)
{
    qk_store *s = owner;
    int rc;
    (void)pthread_mutex_lock(&s->smu);
    w->seq = seq; /* w->sync_seq: set by the envelope (0 or <= seq) */
    if (w->sync_seq > seq)
        w->sync_seq = seq;
    if (s->sync_errno || qs_group_failed(s, seq) ||
        (w->sync_seq && qs_group_failed(s, w->sync_seq))) {
        rc = QK_ESTORAGE;
    } else if (qs_waiter_ready(s, w)) {
        rc = 1;
    } else if (!s->syncer_on || s->syncer_stop) {
        rc = 2; /* nobody would sync for it: the caller waits (below) */
    } else {
        w->next = s->waiters;
        s->waiters = w;
        rc = 0;
    }
    (void)pthread_mutex_unlock(&s->smu);
    if (rc == 0) /* the syncer, once this pump turn has queued its replies (one COMMIT) */
        qk_inline_kick(qs_syncer_kick, s);
    if (rc == 2) /* the store is closing: commit and sync here (short, and only then) */
        rc = qs_sync_wait(s, seq, NULL) == 0 ? 1 : QK_ESTORAGE;
    return rc;
}

struct timespec qs_deadline_us(uint64_t us)
{
    struct timespec dl = {0, 0};
    (void)clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(us / 1000000u);
    dl.tv_nsec += (long)(us % 1000000u) * 1000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    return dl;
}

/* The syncer thread: commits and syncs for the replies of inline handlers, so that they
 * complete without any request thread blocking in COMMIT or fdatasync, and syncs after lazy
 * calls (qs_lazy), so that their group does not stay open.
 * - A reply that needs only its COMMIT (docs/adr/0002-key-store.md, "Replies at commit") gets
 *   it at once, without a sync.
 * - A reply that must be durable gets a sync, which covers every commit before it (group
 *   commit): under load one sync completes many replies at once.
 * - A lazy call first lingers up to qs_lazy_wait_ms for a reply that needs a sync anyway (at
 *   one connection the next request joins the group the mark left open, and one sync covers
 *   both); replies at commit served meanwhile do not end the linger. */
static void *qs_syncer_main(void *arg)
{
    QK_THREAD_NAME("qk-store-sync");
    qk_store *s = arg;
    struct timespec lazy_dl = {0, 0};
    bool lingering = false;
    (void)pthread_mutex_lock(&s->smu);
    for (;;) {
        while (!s->waiters && !s->lazy_seq && !s->syncer_stop)
            (void)pthread_cond_wait(&s->wcond, &s->smu);
        if (!s->waiters && !s->lazy_seq)
            break; /* stopping, and nothing waits */
        uint64_t commit_to = 0, target = 0;
        for (qk_inline_waiter *w = s->waiters; w; w = w->next) {
            if (w->seq > commit_to)
                commit_to = w->seq;
            if (w->sync_seq > target)
                target = w->sync_seq;
        }
        if (commit_to > target) { /* replies at commit: COMMIT, no sync now ... */
            (void)pthread_mutex_unlock(&s->smu);
            qs_commit_upto(s, commit_to);
            qs_waiters_complete(s);
            (void)pthread_mutex_lock(&s->smu);
            /* ... but within qs_lazy_wait_ms, as for a lazy call: what a power loss can undo
             * stays short, and so does the WAL a checkpoint must sync under the store's mutex */
            if (s->lazy_seq < s->commit_seq && s->synced_seq < s->commit_seq)
                s->lazy_seq = s->commit_seq;
            continue;
        }
        if (!target && s->lazy_seq > s->synced_seq && !s->syncer_stop) { /* lazy alone */
            if (!lingering) {
                lazy_dl = qs_deadline_us((uint64_t)qs_lazy_wait_ms * 1000u);
                lingering = true;
            }
            if (pthread_cond_timedwait(&s->wcond, &s->smu, &lazy_dl) != ETIMEDOUT)
                continue; /* a reply, a stop, or another lazy call: look again */
        }
        /* A sync for replies waits (bounded) for the fetches a notice batch makes likely, so
         * that they join this group instead of needing a sync of their own after it. */
        struct timespec join_until;
        if (target && !s->syncer_stop && qs_join_hold(s, &join_until)) {
            (void)pthread_cond_timedwait(&s->wcond, &s->smu, &join_until);
            continue; /* the last fetch came, the time is up, or something else: look again */
        }
        lingering = false;
        if (s->lazy_seq > target)
            target = s->lazy_seq;
        (void)pthread_mutex_unlock(&s->smu);
        (void)qs_sync_wait(s, target, NULL); /* completes the waiters it covers, or all */
        (void)pthread_mutex_lock(&s->smu);
        if (s->lazy_seq <= target) /* synced, failed or lost: tried once, as a barrier is */
            s->lazy_seq = 0;
    }
    (void)pthread_mutex_unlock(&s->smu);
    return NULL;
}

/* WAL hook: called by SQLite after a COMMIT that appended frames, with mu held. Setting it
 * replaces the default auto-checkpoint hook; the checkpointer decides (store_ckpt.c). */
static int qs_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    qs_ckpt_after_commit(arg, db, name, pages);
    return SQLITE_OK;
}

void qs_lazy(qk_store *s)
{
    s->call_lazy = true;
}

void qs_recoverable(qk_store *s)
{
    s->call_recoverable = true;
}

/* Whether the current call may leave its changes in the open group: a lazy call (qs_lazy), or
 * an inline handler that allows it (qk_inline.group_commit), whose reply can wait for this
 * store's barrier; while the syncer runs and the group has room. Under mu. */
static bool qs_may_group(qk_store *s, bool lazy)
{
    qk_inline *ic = qk_inline_current();
    if (!lazy &&
        (!ic || !ic->group_commit || (ic->owner && (ic->owner != s || ic->await != qs_await))))
        return false;
    if (s->wal_fd < 0 || s->group_calls >= QS_GROUP_MAX)
        return false;
    (void)pthread_mutex_lock(&s->smu);
    bool on = s->syncer_on && !s->syncer_stop && !s->sync_errno;
    (void)pthread_mutex_unlock(&s->smu);
    return on;
}

int qs_end(qk_store *s, int rc, bool commit, qk_err *err)
{
    bool lazy = s->call_lazy;
    s->call_lazy = false;
    bool recoverable = s->call_recoverable;
    s->call_recoverable = false;
    for (size_t i = 0; i < s->nstmts; i++) /* those this call used: none is left running */
        if (s->stmts[i].used) {
            (void)sqlite3_reset(s->stmts[i].st);
            s->stmts[i].used = false;
        }
    sodium_memzero(s->scratch, QK_SEG_BYTES);
    sodium_memzero(s->vkey, QK_BLOCK_VKEY_LEN);
    /* SQLite rolls the whole transaction back on some errors (SQLITE_FULL, SQLITE_IOERR,
     * SQLITE_NOMEM): the group's earlier calls are gone with it. */
    if (sqlite3_get_autocommit(s->db)) {
        qs_noteq_call_end(s, false);
        qs_known_call_end(s, false);
        qs_join_call_end(s, false);
        s->zq_n = s->zq_mark = 0;
        qs_mem_drop(s);
        qs_count_reset(s);
        if (s->group_calls > 0)
            qs_group_lost(s);
        s->group_open = false;
        (void)pthread_mutex_unlock(&s->mu);
        return rc ? rc : qk_err_set(err, QK_ESTORAGE, "store: the transaction was rolled back");
    }
    /* This call's savepoint: kept (merged into the transaction) or undone. */
    bool changed = sqlite3_total_changes64(s->db) != s->op_changes || s->zq_n > s->zq_mark;
    if (!commit) {
        s->zq_n = s->zq_mark; /* the call's takes are undone with it, */
        /* and whatever it changed of the rows held in memory. A call that changed no row and
         * took no byte (a read, the notifier's notices_pending; a fetch refused because its
         * key is not known yet) left them as the rows are, and keeps them: dropping them at
         * every such call emptied the caches a hundred times a second at load. A storage
         * error drops them whatever it wrote (it may be a copy that no longer matched its
         * row, run_update). */
        if (changed || rc == QK_ESTORAGE)
            qs_mem_drop(s);
    }
    if ((!commit && qs_ctl(s, QS_CTL_ROLLBACK_TO, NULL) != 0) ||
        qs_ctl(s, QS_CTL_RELEASE, NULL) != 0) {
        qs_noteq_call_end(s, false);
        qs_known_call_end(s, false);
        qs_join_call_end(s, false);
        (void)qs_ctl(s, QS_CTL_ROLLBACK, NULL);
        qs_group_lost(s);
        (void)pthread_mutex_unlock(&s->mu);
        return rc ? rc
                  : qk_err_set(err, QK_ESTORAGE, "store: savepoint: %s", sqlite3_errmsg(s->db));
    }
    qs_count_call_end(s, commit); /* an undone call takes its counter changes back */
    bool wrote = commit && changed;
    if (wrote)
        s->group_calls++;
    /* Then the transaction: left open for the group (the reply waits for its commit), or
     * committed with every call in it, or rolled back when no call changed anything. Numbers
     * follow WAL order: a group gets commit_seq + 1 and nothing else commits while it is open.
     * A successful call may have read commits (or this group's changes) that are not synced
     * yet: it waits for them too, so nothing it reports can be lost (usually already synced or
     * in an fdatasync under way: no sync of its own). */
    uint64_t seq = 0;
    if (s->group_calls > 0 && qs_may_group(s, lazy)) {
        if (rc == 0 || wrote) /* a refusal that wrote (e.g. a burn) waits for it too */
            seq = s->group_seq;
    } else if (s->group_calls > 0) {
        qk_err cerr;
        uint64_t gseq = s->group_seq;
        if (qs_group_commit(s, &cerr) != 0) {
            if (err && rc == 0)
                *err = cerr;
            rc = QK_ESTORAGE;
        } else if (rc == 0 || wrote) {
            seq = gseq;
        }
    } else {
        bool rolled = qs_ctl(s, QS_CTL_ROLLBACK, NULL) == 0;
        s->group_open = false;
        s->zq_n = s->zq_mark = 0;
        qs_count_reset(s);
        if (!rolled && rc == 0)
            rc = qk_err_set(err, QK_ESTORAGE, "store: rollback failed");
        if (rc == 0) {
            (void)pthread_mutex_lock(&s->smu);
            seq = s->commit_seq;
            (void)pthread_mutex_unlock(&s->smu);
        }
    }
    qs_noteq_call_end(s, rc == 0 && commit); /* its carve kept: the notice may go */
    qs_known_call_end(s, rc == 0 && commit); /* its notices' runs kept: key_known may say so */
    qs_join_call_end(s, rc == 0 && commit);  /* ... and their fetches are expected */
    (void)pthread_mutex_unlock(&s->mu);
    if (lazy && seq && s->wal_fd >= 0) { /* nobody waits: the syncer syncs it soon */
        (void)pthread_mutex_lock(&s->smu);
        if (s->lazy_seq < seq && s->synced_seq < seq) {
            s->lazy_seq = seq;
            (void)pthread_cond_signal(&s->wcond);
        }
        (void)pthread_mutex_unlock(&s->smu);
        seq = 0;
    }
    /* An inline handler's call does not wait: its reply waits for the barrier instead, for
     * the COMMIT alone when what the call wrote is undone safely by the power-loss recovery or
     * when it wrote nothing ("Replies at commit"). Any other call waits for the sync, except
     * one that wrote nothing and whose reader needs no more than the COMMIT (qs_recoverable:
     * the notifier's read of the carves it tells the peer about). */
    bool durable = !s->reply_at_commit || (wrote && !recoverable);
    if (seq && s->wal_fd >= 0 && !qk_inline_barrier(qs_await, s, seq, durable) &&
        !(s->reply_at_commit && !wrote && recoverable)) {
        int src = qs_sync_wait(s, seq, rc == 0 ? err : NULL);
        if (rc == 0)
            rc = src;
    }
    return rc;
}

/* ---- validation and small helpers ------------------------------------------------------- */

int qs_check_text(const char *v, size_t max, bool optional, const char *what, qk_err *err)
{
    if (!v)
        return optional ? 0 : qk_err_set(err, QK_EINVAL, "store: %s missing", what);
    size_t n = strnlen(v, max + 1);
    if (n > max)
        return qk_err_set(err, QK_EINVAL, "store: %s longer than %zu", what, max);
    if (n == 0 && !optional)
        return qk_err_set(err, QK_EINVAL, "store: %s empty", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return qk_err_set(err, QK_EINVAL, "store: %s has a control character", what);
    }
    return 0;
}

int qs_check_id(const char *v, const char *what, qk_err *err)
{
    return qs_check_text(v, QK_STORE_ID_MAX, false, what, err);
}

uint64_t qs_now(void)
{
    time_t t = time(NULL);
    return t < 0 ? 0 : (uint64_t)t;
}

int64_t qs_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

int qs_audit_insert(qk_store *s, const char *event, const char *link, const char *request_id,
                    const char *identity, const char *detail, qk_err *err)
{
    int rc = qs_check_text(event, QS_EVENT_MAX, false, "audit event", err);
    if (!rc)
        rc = qs_check_text(link, QK_STORE_ID_MAX, true, "audit link", err);
    if (!rc)
        rc = qs_check_text(request_id, QK_STORE_ID_MAX, true, "audit request_id", err);
    if (!rc)
        rc = qs_check_text(identity, QK_STORE_ID_MAX, true, "audit identity", err);
    if (!rc)
        rc = qs_check_text(detail, QS_DETAIL_MAX, true, "audit detail", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = qs_prep(s,
                               "INSERT INTO audit(ts, event, link, request_id, identity, detail)"
                               " VALUES(?, ?, ?, ?, ?, ?)",
                               err);
    if (!st)
        return QK_ESTORAGE;
    rc =
        qs_bindf(s, st, err, "Ittttt", qs_i64(qs_now()), event, link, request_id, identity, detail);
    return rc ? rc : qs_step_done(s, st, err);
}

/* ---- open / migrate / close ------------------------------------------------------------- */

static int qs_read_version(qk_store *s, int *version, qk_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT version FROM schema_version", -1, &st, NULL) != SQLITE_OK)
        return qs_db_err(s, err, "read schema version");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        rc = qk_err_set(err, QK_ESTORAGE, "store: schema_version row missing");
    }
    sqlite3_finalize(st);
    return rc;
}

static int qs_migrate(qk_store *s, qk_err *err)
{
    int rc = qs_exec(s,
                     "BEGIN IMMEDIATE;"
                     "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
                     "INSERT INTO schema_version(version) SELECT 0 WHERE NOT EXISTS"
                     " (SELECT 1 FROM schema_version);"
                     "COMMIT;",
                     err);
    if (rc)
        return rc;
    int version = 0;
    if ((rc = qs_read_version(s, &version, err)) != 0)
        return rc;
    if (version < 0 || version > QS_NMIGRATIONS)
        return qk_err_set(err, QK_ESTORAGE, "store: schema version %d unknown (newest %d)", version,
                          QS_NMIGRATIONS);
    for (int v = version; v < QS_NMIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "UPDATE schema_version SET version = %d;", v + 1);
        rc = qs_exec(s, "BEGIN IMMEDIATE", err);
        if (!rc)
            rc = qs_exec(s, migrations[v], err);
        if (!rc)
            rc = qs_exec(s, bump, err);
        if (!rc)
            rc = qs_exec(s, "COMMIT", err);
        if (rc) {
            (void)qs_exec(s, "ROLLBACK", NULL);
            return qk_err_prefix(err, "migration to v%d", v + 1);
        }
    }
    return 0;
}

/* Refuse a database created under another master key; record the check on first open. */
static int qs_master_key_check(qk_store *s, qk_err *err)
{
    uint8_t want[QK_CHECK_LEN];
    qs_master_check(s->mk, want);
    int rc = qs_begin(s, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = qs_prep(s, "SELECT value FROM meta WHERE name = 'master_check'", err);
    rc = st ? qs_step(s, st, err) : QK_ESTORAGE;
    if (rc == 1) {
        const void *have = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (!have || n != QK_CHECK_LEN || sodium_memcmp(have, want, QK_CHECK_LEN) != 0)
            rc = qk_err_set(err, QK_EMISMATCH,
                            "store: database was created under another master key");
        else
            rc = 0;
    } else if (rc == 0) {
        st = qs_prep(s, "INSERT INTO meta(name, value) VALUES('master_check', ?)", err);
        rc = st ? qs_bindf(s, st, err, "b", want, sizeof want) : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    return qs_end(s, rc, rc == 0, err);
}

unsigned qs_busy_ms = QS_BUSY_MS;

/* The locking (qk_store_opts.shared_lock) is the VFS's (qk_store_open_with): with the default,
 * "unix-excl" takes the database file's lock once, at the first read, for as long as a
 * connection of this process has the file open, and keeps the WAL index and its locks in this
 * process's memory: no shared-memory file, no fcntl(2) per transaction. A lock held elsewhere
 * (another qkd-kmed, a reader in shared mode) makes that first read wait qs_busy_ms, then fail:
 * the store is in use. */
static int qs_configure(qk_store *s, qk_err *err)
{
    if (sqlite3_busy_timeout(s->db, (int)qs_busy_ms) != SQLITE_OK)
        return qs_db_err(s, err, "busy_timeout");
    if (sqlite3_extended_result_codes(s->db, 1) != SQLITE_OK)
        return qs_db_err(s, err, "extended result codes");
    int rc = qs_exec(s,
                     "PRAGMA secure_delete = ON;"
                     "PRAGMA foreign_keys = ON;"
                     "PRAGMA synchronous = FULL;"
                     "PRAGMA temp_store = MEMORY;",
                     err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
        return qs_db_err(s, err, "journal_mode");
    rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    rc = mode && strcmp((const char *)mode, "wal") == 0
             ? 0
             : qk_err_set(err, QK_ESTORAGE, "store: cannot enable WAL journal mode: %s",
                          sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc;
}

/* An open that failed because another connection holds the file's lock says so (else SQLite's
 * "database is locked" would not name the cause). */
static int qs_open_busy(qk_store *s, const char *path, int rc, qk_err *err)
{
    int e = s->db ? sqlite3_extended_errcode(s->db) & 0xff : SQLITE_OK;
    if (rc == 0 || (e != SQLITE_BUSY && e != SQLITE_LOCKED))
        return rc;
    return qk_err_set(err, QK_ESTORAGE,
                      "store: %s is in use by another process or connection (another qkd-kmed "
                      "on this data_dir, or a program reading the file); waited %u ms",
                      path, qs_busy_ms);
}

/* Whether the keys table holds any row (s->keys_any), once at open, before any other call. */
static int qs_keys_any_load(qk_store *s, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s, "SELECT EXISTS(SELECT 1 FROM keys)", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_step(s, st, err);
    if (rc == 1) {
        s->keys_any = sqlite3_column_int(st, 0) != 0;
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: EXISTS returned no row");
    }
    (void)sqlite3_reset(st);
    return rc;
}

/* Switch to group commit once the schema and the master-key check are committed (those ran
 * with synchronous=FULL). The WAL file exists from the first transaction in WAL mode and
 * SQLite keeps that inode while this connection is open: checkpoints rewind or truncate it
 * in place, and only the last connection's close deletes it (test_store_group.c checks
 * that a TRUNCATE checkpoint keeps the inode). */
static int qs_group_commit_on(qk_store *s, const char *path, const char *vfs, qk_err *err)
{
    char wal[PATH_MAX];
    if ((size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal)
        return qk_err_set(err, QK_ESTORAGE, "store: path too long");
    s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (s->wal_fd < 0)
        return qk_err_set(err, QK_ESTORAGE, "store: cannot open %s: %s", wal, strerror(errno));
    s->db_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->db_fd < 0)
        return qk_err_set(err, QK_ESTORAGE, "store: cannot open %s: %s", path, strerror(errno));
    (void)sqlite3_wal_hook(s->db, qs_wal_hook, s);
    int rc = qs_exec(s, "PRAGMA synchronous = NORMAL", err);
    if (rc != 0)
        return rc;
    int e = s->wcond_ok ? pthread_create(&s->syncer, NULL, qs_syncer_main, s) : EINVAL;
    if (e != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: cannot start the syncer thread: %s",
                          strerror(e));
    s->syncer_on = true;
    return qs_ckpt_start(s, path, vfs, err);
}

/* One open store per file in this process too: "unix-excl" keeps other processes out, but lets
 * connections of this process share the file, and the copies the store keeps in memory are
 * right only while it is the file's one writer (docs/adr/0002-key-store.md item 12). */
static pthread_mutex_t qs_claims_mu = PTHREAD_MUTEX_INITIALIZER;
static qk_store *qs_claims;

static int qs_claim(qk_store *s, const char *path, qk_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: cannot stat %s: %s", path, strerror(errno));
    int rc = 0;
    (void)pthread_mutex_lock(&qs_claims_mu);
    for (qk_store *o = qs_claims; o && !rc; o = o->claim_next)
        if (o->claim_dev == st.st_dev && o->claim_ino == st.st_ino)
            rc = qk_err_set(err, QK_ESTORAGE,
                            "store: %s is in use by another process or connection (a store of "
                            "this process has it open)",
                            path);
    if (!rc) {
        s->claim_dev = st.st_dev;
        s->claim_ino = st.st_ino;
        s->claimed = true;
        s->claim_next = qs_claims;
        qs_claims = s;
    }
    (void)pthread_mutex_unlock(&qs_claims_mu);
    return rc;
}

static void qs_unclaim(qk_store *s)
{
    (void)pthread_mutex_lock(&qs_claims_mu);
    for (qk_store **q = &qs_claims; s->claimed && *q; q = &(*q)->claim_next)
        if (*q == s) {
            *q = s->claim_next;
            break;
        }
    s->claimed = false;
    (void)pthread_mutex_unlock(&qs_claims_mu);
}

/* Create the file with mode 0600 before SQLite does (its -wal/-shm files copy the mode), when
 * it is missing. An existing file is not opened: closing a descriptor of a file drops every
 * POSIX lock this process holds on it (fcntl(2)), the lock of a store open on it included. */
static int qs_precreate(const char *path, qk_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0)
        return qk_err_set(err, QK_ESTORAGE, "store: cannot open %s: %s", path, strerror(errno));
    if (close(fd) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: close %s: %s", path, strerror(errno));
    return 0;
}

/* Process-wide SQLite set-up, once, before the first connection: no memory statistics (they
 * take a global mutex on every allocation SQLite makes; the store never reads them). Fails
 * harmlessly (SQLITE_MISUSE) when something else initialised SQLite first. */
static pthread_once_t qs_sqlite_once = PTHREAD_ONCE_INIT;
static void qs_sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int qk_store_open(const char *path, const uint8_t master_key[QK_MASTER_KEY_LEN], qk_store **out,
                  qk_err *err)
{
    return qk_store_open_with(path, master_key, NULL, out, err);
}

int qk_store_open_with(const char *path, const uint8_t master_key[QK_MASTER_KEY_LEN],
                       const qk_store_opts *opts, qk_store **out, qk_err *err)
{
    if (!path || !*path || !master_key || !out)
        return qk_err_set(err, QK_EINVAL, "store: open needs a path, a master key and out");
    *out = NULL;
    if (sodium_init() < 0)
        return qk_err_set(err, QK_ESTORAGE, "store: libsodium init failed");
    qk_store *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    s->wal_fd = -1;
    s->db_fd = -1;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return qk_err_set(err, QK_ENOMEM, "store: mutex init failed");
    }
    if (pthread_mutex_init(&s->smu, NULL) != 0) {
        (void)pthread_mutex_destroy(&s->mu);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "store: mutex init failed");
    }
    if (pthread_cond_init(&s->scond, NULL) != 0) {
        (void)pthread_mutex_destroy(&s->smu);
        (void)pthread_mutex_destroy(&s->mu);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "store: condvar init failed");
    }
    pthread_condattr_t ca; /* the syncer's linger is timed on the monotonic clock */
    s->wcond_ok = pthread_condattr_init(&ca) == 0;
    if (s->wcond_ok) {
        s->wcond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                      pthread_cond_init(&s->wcond, &ca) == 0;
        (void)pthread_condattr_destroy(&ca);
    }
    qs_known_open(s);
    qs_runc_open(s);
    s->secret = sodium_malloc(QK_MASTER_KEY_LEN + QK_SEG_BYTES + QK_BLOCK_VKEY_LEN +
                              (size_t)QS_SEGC_SLOTS * QK_SEG_BYTES);
    if (!s->secret) {
        qk_store_close(s);
        return qk_err_set(err, QK_ENOMEM, "store: secure allocation failed");
    }
    s->mk = s->secret;
    s->scratch = s->mk + QK_MASTER_KEY_LEN;
    s->vkey = s->scratch + QK_SEG_BYTES;
    s->segc_pt = s->vkey + QK_BLOCK_VKEY_LEN;
    memcpy(s->mk, master_key, QK_MASTER_KEY_LEN);
    sodium_memzero(s->scratch,
                   QK_SEG_BYTES + QK_BLOCK_VKEY_LEN + (size_t)QS_SEGC_SLOTS * QK_SEG_BYTES);

    (void)pthread_once(&qs_sqlite_once, qs_sqlite_setup);
    /* NOMUTEX: every use of the connection is under s->mu already, so SQLite's own mutex
     * around each API call (FULLMUTEX) would only be taken and released again. */
    int rc = qs_precreate(path, err);
    /* One write per commit of WAL frames (store_walbuf.c), over SQLite's own VFS if it is
     * missing; "unix-excl" unless the lock is shared (qs_configure). */
    bool shared = opts && opts->shared_lock;
    const char *vfs = shared
                          ? (qs_walbuf_vfs() == SQLITE_OK ? QS_WALBUF_VFS : NULL)
                          : (qs_walbuf_vfs_excl() == SQLITE_OK ? QS_WALBUF_VFS_EXCL : "unix-excl");
    s->time_ordered_ids = opts && opts->time_ordered_ids;
    if (!rc)
        rc = qs_claim(s, path, err);
    if (!rc && sqlite3_open_v2(path, &s->db,
                               SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                               vfs) != SQLITE_OK)
        rc = qs_db_err(s, err, "open");
    if (!rc)
        rc = qs_configure(s, err);
    if (!rc)
        rc = qs_migrate(s, err);
    if (!rc)
        rc = qs_master_key_check(s, err);
    if (!rc)
        rc = qs_keys_any_load(s, err);
    if (!rc)
        rc = qs_recover_open(s, opts && opts->reply_at_commit, err);
    if (!rc)
        rc = qs_group_commit_on(s, path, vfs, err);
    rc = qs_open_busy(s, path, rc, err);
    if (rc) {
        qk_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void qk_store_close(qk_store *s)
{
    if (!s)
        return;
    if (s->syncer_on) {
        /* Replies still waiting are completed first (a last sync), then the thread ends. */
        (void)pthread_mutex_lock(&s->smu);
        s->syncer_stop = true;
        (void)pthread_cond_signal(&s->wcond);
        (void)pthread_mutex_unlock(&s->smu);
        (void)pthread_join(s->syncer, NULL);
        s->syncer_on = false;
    }
    (void)pthread_mutex_lock(&s->mu); /* no commit runs the WAL hook meanwhile */
    qs_ckpt_stop(s);
    (void)pthread_mutex_unlock(&s->mu);
    if (s->db) { /* a group left open (no reply waited for it yet): commit and sync it */
        (void)pthread_mutex_lock(&s->mu);
        uint64_t g = s->group_open ? s->group_seq : 0;
        if (g)
            (void)qs_group_commit(s, NULL);
        (void)pthread_mutex_unlock(&s->mu);
        if (g && s->wal_fd >= 0)
            (void)qs_sync_wait(s, g, NULL);
    }
    if (s->db)
        qs_recover_close(s);
    for (size_t i = 0; i < s->nstmts; i++)
        sqlite3_finalize(s->stmts[i].st);
    s->nstmts = 0;
    for (size_t i = 0; i < QS_CTL_N; i++)
        sqlite3_finalize(s->ctl[i]);
    if (s->db)
        (void)sqlite3_close(s->db); /* all statements are finalized, so this cannot be BUSY */
    if (s->secret)
        sodium_free(s->secret); /* wipes */
    if (s->wal_fd >= 0)
        (void)close(s->wal_fd);
    if (s->db_fd >= 0)
        (void)close(s->db_fd); /* after the connection's close: its lock is gone by now */
    (void)pthread_cond_destroy(&s->scond);
    if (s->wcond_ok)
        (void)pthread_cond_destroy(&s->wcond);
    qs_noteq_reset(s);
    qs_known_close(s);
    qs_runc_close(s);
    qs_unclaim(s);
    (void)pthread_mutex_destroy(&s->smu);
    (void)pthread_mutex_destroy(&s->mu);
    free(s);
}

int qk_store_schema_version(qk_store *s)
{
    if (!s)
        return QK_EINVAL;
    if (pthread_mutex_lock(&s->mu) != 0)
        return QK_ESTORAGE;
    int version = 0;
    int rc = qs_read_version(s, &version, NULL);
    (void)pthread_mutex_unlock(&s->mu);
    return rc ? rc : version;
}
