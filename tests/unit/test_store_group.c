/* test_store_group.c - group commit in the key store (kms/store_db.c qs_end): concurrent
 * writers all succeed and their data survives a reopen, fewer WAL syncs than commits, no call
 * returns before a sync that started after it began, a blocked sync holds its callers back,
 * a failed fdatasync fails the waiting calls (and every later one until reopen), the WAL
 * file the store syncs keeps its inode across a TRUNCATE checkpoint, and inline calls that
 * allow it share one group transaction (one COMMIT; a failed one fails only that group; the
 * replies of one pump turn wake the syncer once, at the turn's end), and
 * a lazy call (marking notices done) returns before its sync, which the syncer does itself;
 * the checkpointer copies the WAL off the store's mutex, and a failed sync of it is sticky. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_fixture.h"
#include "qk_inline.h"
#include "store_int.h"

#define LINK       "KME_A~KME_B"
#define FAR_FUTURE 4000000000ull

enum { GT = 8, GR = 25, GK = 2, GL = 16, BL = 32 + 1000, NB = 8 };

static sf_dir D;
static qk_store *S;
static atomic_int sync_started, sync_done, sync_fail, sync_block;

/* Counting hook: numbers each sync, syncs for real, lingers 1 ms so that commits pile up. */
static int hook(int fd)
{
    atomic_fetch_add(&sync_started, 1);
    while (atomic_load(&sync_block))
        sf_sleep_ms(1);
    int r = fdatasync(fd);
    sf_sleep_ms(1);
    if (atomic_load(&sync_fail)) {
        errno = EIO;
        r = -1;
    }
    atomic_fetch_add(&sync_done, 1);
    return r;
}

enum { CK_BLOCKS = 120 }; /* the checkpointer's tests: 3 750 carves of GK keys of GL bytes */

/* A new store in D (shared, as the suites open it, or with qkd-kmed's default lock) holding n
 * random confirmed blocks of BL bytes. */
static void open_with_blocks(const char *name, bool shared, size_t n)
{
    CU_ASSERT_FATAL(sf_dir_make(&D, name) == 0);
    S = shared ? sf_open(D.path, 1) : sf_open_default(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    static uint8_t b[CK_BLOCKS * BL];
    CU_ASSERT_FATAL(n <= CK_BLOCKS);
    randombytes_buf(b, n * BL);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 1 + i, b + i * BL, BL) == 0);
}

static void fresh(void)
{
    open_with_blocks("group", true, NB);
    atomic_store(&sync_started, 0);
    atomic_store(&sync_done, 0);
    atomic_store(&sync_fail, 0);
    atomic_store(&sync_block, 0);
    qs_test_fdatasync = hook;
}

static void done(void)
{
    qs_test_fdatasync = NULL;
    qk_store_close(S);
    S = NULL;
    sf_dir_remove(&D);
}

/* Close the store (syncing for real again) and open it anew, as after a restart. */
static void reopen(void)
{
    qs_test_fdatasync = NULL;
    qk_store_close(S);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
}

static int carve_commit(const char *req, int side, int *late)
{
    const char *sl[2];
    qk_reservation r = sf_resv(req, LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
    qk_key_ref refs[GK];
    uint8_t mat[GK * GL];
    qk_err err = {0, ""};
    /* A sync that started after the call began must have finished before it returns (syncs
     * run one at a time, so "done > started-before" means such a sync completed). */
    int before = atomic_load(&sync_started);
    int rc = qk_store_carve(S, &r, side ? QK_SIDE_HIGH : QK_SIDE_LOW, GK, GL, refs, mat, &err);
    if (rc == 0 && atomic_load(&sync_done) <= before)
        (*late)++;
    if (rc == 0) {
        before = atomic_load(&sync_started);
        rc = qk_store_commit(S, req, false, &err);
        if (rc == 0 && atomic_load(&sync_done) <= before)
            (*late)++;
    }
    return rc;
}

static int g_fail[GT], g_late[GT];

static void *g_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < GR; i++) {
        char req[32];
        snprintf(req, sizeof req, "g%d-%d", id, i);
        if (carve_commit(req, id % 2, &g_late[id]) != 0)
            g_fail[id]++;
    }
    return NULL;
}

static void run_threads(void)
{
    pthread_t th[GT];
    memset(g_fail, 0, sizeof g_fail);
    memset(g_late, 0, sizeof g_late);
    for (int i = 0; i < GT; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, g_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < GT; i++)
        CU_ASSERT(pthread_join(th[i], NULL) == 0);
}

static void test_concurrent_commits_durable(void)
{
    fresh();
    atomic_store(&sync_started, 0);
    atomic_store(&sync_done, 0);
    run_threads();
    for (int i = 0; i < GT; i++) {
        CU_ASSERT_EQUAL(g_fail[i], 0);
        CU_ASSERT_EQUAL(g_late[i], 0);
    }
    int commits = GT * GR * 2, syncs = atomic_load(&sync_done);
    printf("\n    group commit: %d writing calls, %d WAL syncs\n", commits, syncs);
    CU_ASSERT(syncs > 0);
    CU_ASSERT(syncs < commits);
    reopen();
    qk_pool_status ps;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, (uint64_t)GT * GR * GK);
    CU_ASSERT_EQUAL(ps.bytes_available, (uint64_t)NB * 1000 - GT * GR * GK * GL);
    done();
}

static void test_sync_failure_fails_waiters(void)
{
    fresh();
    atomic_store(&sync_fail, 1);
    run_threads();
    for (int i = 0; i < GT; i++)
        CU_ASSERT_EQUAL(g_fail[i], GR); /* every call, concurrent or later */
    CU_ASSERT(atomic_load(&sync_done) >= 1);
    /* Sticky: a good sync later cannot vouch for pages an earlier failure may have lost. */
    atomic_store(&sync_fail, 0);
    int late = 0;
    CU_ASSERT_EQUAL(carve_commit("after", 0, &late), QK_ESTORAGE);
    reopen();
    CU_ASSERT_EQUAL(carve_commit("reopened", 0, &late), 0);
    done();
}

static atomic_int blocked_rc;

static void *one_call(void *arg)
{
    int late = 0;
    atomic_store(&blocked_rc, carve_commit("blocked", 0, &late) == 0 ? 1 : 2);
    return NULL;
}

static void test_blocked_sync_holds_caller(void)
{
    fresh();
    atomic_store(&blocked_rc, 0);
    atomic_store(&sync_block, 1);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, one_call, NULL) == 0);
    sf_sleep_ms(200);
    CU_ASSERT_EQUAL(atomic_load(&blocked_rc), 0); /* committed, but not synced: no answer */
    CU_ASSERT(atomic_load(&sync_started) >= 1);
    /* The store mutex is free meanwhile: a read runs while the writer waits for its sync. */
    qk_pool_status ps;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    atomic_store(&sync_block, 0);
    CU_ASSERT(pthread_join(th, NULL) == 0);
    CU_ASSERT_EQUAL(atomic_load(&blocked_rc), 1);
    done();
}

/* ---- inline handlers (common/qk_inline.h): a barrier instead of a wait ---------------- */

static atomic_int w_done, w_err;

static void w_cb(qk_inline_waiter *w, int err)
{
    (void)w;
    atomic_store(&w_err, err);
    atomic_fetch_add(&w_done, 1);
}

/* A waiter for the barrier ic recorded, as the envelope fills it (common/http_envelope.c). */
static qk_inline_waiter waiter_for(const qk_inline *ic)
{
    return (qk_inline_waiter){.done = w_cb, .sync_seq = ic->sync_seq};
}

/* A fresh store with its WAL sync blocked, the waiter's counters reset, and one carve and
 * commit made as an inline handler makes them (ic gets the barrier). The carve's late count. */
static int inline_carve(const char *req, int fail, qk_inline *ic, int *rc)
{
    fresh();
    atomic_store(&w_done, 0);
    atomic_store(&w_err, -99);
    atomic_store(&sync_block, 1);
    atomic_store(&sync_fail, fail);
    int late = 0;
    qk_inline_begin(ic, 0);
    *rc = carve_commit(req, 0, &late);
    qk_inline_end();
    return late;
}

/* Carve and commit on this thread as an inline handler would: neither call waits for a sync
 * (the hook is blocked, yet both return), the barrier is recorded, and the store's syncer
 * completes the waiter only once a sync covering both commits finished. */
static void test_inline_barrier(void)
{
    qk_inline ic;
    int rc;
    int late = inline_carve("inline", 0, &ic, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(late, 2);          /* both returned with no sync done: no wait */
    CU_ASSERT_PTR_EQUAL(ic.owner, S);  /* the barrier is the store's ... */
    CU_ASSERT_FATAL(ic.await != NULL); /* ... */
    CU_ASSERT(ic.seq >= 2);            /* ... at the later commit */
    qk_inline_waiter w = waiter_for(&ic);
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w), 0); /* queued */
    sf_sleep_ms(100);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 0);   /* the sync is blocked: not complete */
    CU_ASSERT(atomic_load(&sync_started) >= 1); /* the syncer thread started one for it */
    atomic_store(&sync_block, 0);
    for (int i = 0; i < 200 && atomic_load(&w_done) == 0; i++)
        sf_sleep_ms(5);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    CU_ASSERT(atomic_load(&sync_done) >= 1);
    /* Now durable: a second wait on the same number completes at once, without queueing. */
    qk_inline_waiter w2 = waiter_for(&ic);
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w2), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    /* Outside an inline handler the same calls wait as before. */
    late = 0;
    CU_ASSERT_EQUAL(carve_commit("outside", 1, &late), 0);
    CU_ASSERT_EQUAL(late, 0);
    done();
}

/* A failed sync completes the waiting reply with an error (its state may be lost), and a
 * later wait is refused at once (sticky). */
static void test_inline_barrier_sync_fails(void)
{
    qk_inline ic;
    int rc;
    (void)inline_carve("inline-fail", 1, &ic, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    qk_inline_waiter w = waiter_for(&ic);
    CU_ASSERT_FATAL(ic.await != NULL);
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w), 0);
    atomic_store(&sync_block, 0);
    for (int i = 0; i < 200 && atomic_load(&w_done) == 0; i++)
        sf_sleep_ms(5);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), QK_ESTORAGE);
    qk_inline_waiter w2 = waiter_for(&ic);
    CU_ASSERT(ic.await(ic.owner, ic.seq, &w2) < 0);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    done();
}

static void *unblock_later(void *arg)
{
    (void)arg;
    sf_sleep_ms(150);
    atomic_store(&sync_block, 0);
    return NULL;
}

/* Closing the store completes a reply that still waits (a last sync), not leaves it hanging. */
static void test_inline_barrier_close(void)
{
    qk_inline ic;
    int rc;
    (void)inline_carve("inline-close", 0, &ic, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    qk_inline_waiter w = waiter_for(&ic);
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w), 0);
    pthread_t th; /* lets the blocked sync go on while the close below waits */
    CU_ASSERT_FATAL(pthread_create(&th, NULL, unblock_later, NULL) == 0);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 0);
    done(); /* close: joins the syncer after it completed the waiter */
    CU_ASSERT(pthread_join(th, NULL) == 0);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
}

/* ---- group transactions (qk_inline.group_commit): many inline calls, one COMMIT -------- */

/* The count sql selects, bound to id, as the store sees it (committed or in the open group:
 * the same connection). */
static int count_of(const char *sql, const char *id)
{
    sqlite3_stmt *st = NULL;
    int n = -1;
    (void)pthread_mutex_lock(&S->mu);
    if (sqlite3_prepare_v2(S->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    (void)pthread_mutex_unlock(&S->mu);
    return n;
}

/* Rows of requests with this ID. */
static int count_requests(const char *id)
{
    return count_of("SELECT count(*) FROM requests WHERE request_id = ?", id);
}

static bool group_open(void)
{
    (void)pthread_mutex_lock(&S->mu);
    bool open = S->group_open && !sqlite3_get_autocommit(S->db);
    (void)pthread_mutex_unlock(&S->mu);
    return open;
}

/* carve_commit as an inline handler that allows group commit; ic gets the barrier. */
static int group_carve(const char *req, int side, qk_inline *ic, int *late)
{
    qk_inline_begin(ic, 0);
    ic->group_commit = true;
    int rc = carve_commit(req, side, late);
    qk_inline_end();
    return rc;
}

static void wait_done(int n)
{
    for (int i = 0; i < 400 && atomic_load(&w_done) < n; i++)
        sf_sleep_ms(5);
}

/* Two inline requests share one open transaction: neither call waits, both barriers name the
 * same group, nothing is committed until a reply waits; then one COMMIT and a sync complete
 * both replies, and both requests survive a reopen. */
static void test_group_shared(void)
{
    fresh();
    atomic_store(&w_done, 0);
    atomic_store(&w_err, -99);
    atomic_store(&sync_block, 1);
    qk_inline ic1, ic2;
    int late = 0;
    CU_ASSERT_EQUAL(group_carve("grp-1", 0, &ic1, &late), 0);
    CU_ASSERT_EQUAL(group_carve("grp-2", 1, &ic2, &late), 0);
    CU_ASSERT_EQUAL(late, 4); /* four calls, none waited */
    CU_ASSERT_FATAL(ic1.await != NULL && ic2.await != NULL);
    CU_ASSERT_EQUAL(ic1.seq, ic2.seq); /* one group, one number */
    CU_ASSERT(group_open());           /* nothing committed yet */
    CU_ASSERT_EQUAL(count_requests("grp-1"), 1);
    qk_inline_waiter w1 = waiter_for(&ic1), w2 = waiter_for(&ic2);
    CU_ASSERT_EQUAL(ic1.await(ic1.owner, ic1.seq, &w1), 0);
    CU_ASSERT_EQUAL(ic2.await(ic2.owner, ic2.seq, &w2), 0);
    for (int i = 0; i < 200 && group_open(); i++)
        sf_sleep_ms(5);
    CU_ASSERT(!group_open()); /* the syncer committed the group before its (blocked) sync */
    CU_ASSERT_EQUAL(atomic_load(&w_done), 0);
    atomic_store(&sync_block, 0);
    wait_done(2);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 2);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    reopen();
    CU_ASSERT_EQUAL(count_requests("grp-1"), 1);
    CU_ASSERT_EQUAL(count_requests("grp-2"), 1);
    done();
}

/* Replies queued during a pump's turn (qk_inline_turn_begin .. _end, as tls_server.c runs
 * them) wake the syncer once, at the turn's end: until then the group stays open, so a later
 * request of the same turn joins it; then one COMMIT completes both replies. */
static void test_group_turn(void)
{
    fresh();
    atomic_store(&w_done, 0);
    atomic_store(&w_err, -99);
    atomic_store(&sync_block, 0);
    qk_inline ic1, ic2;
    int late = 0;
    qk_inline_turn_begin();
    CU_ASSERT_EQUAL(group_carve("turn-1", 0, &ic1, &late), 0);
    CU_ASSERT_FATAL(ic1.await != NULL);
    qk_inline_waiter w1 = waiter_for(&ic1);
    CU_ASSERT_EQUAL(ic1.await(ic1.owner, ic1.seq, &w1), 0);
    sf_sleep_ms(100);
    CU_ASSERT(group_open()); /* the syncer was not woken inside the turn */
    CU_ASSERT_EQUAL(atomic_load(&w_done), 0);
    CU_ASSERT_EQUAL(group_carve("turn-2", 1, &ic2, &late), 0);
    CU_ASSERT_FATAL(ic2.await != NULL);
    CU_ASSERT_EQUAL(ic2.seq, ic1.seq); /* the turn's second request joined the same group */
    qk_inline_waiter w2 = waiter_for(&ic2);
    CU_ASSERT_EQUAL(ic2.await(ic2.owner, ic2.seq, &w2), 0);
    qk_inline_turn_end();
    wait_done(2);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 2);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    CU_ASSERT(!group_open());
    reopen();
    CU_ASSERT_EQUAL(count_requests("turn-1"), 1);
    CU_ASSERT_EQUAL(count_requests("turn-2"), 1);
    done();
}

/* A group whose COMMIT fails (a foreign key checked only at COMMIT) fails every reply of the
 * group and keeps none of its changes; a wait on its number later is refused at once, and
 * the store goes on: the next call commits. */
static void test_group_commit_fails(void)
{
    fresh();
    atomic_store(&w_done, 0);
    atomic_store(&w_err, -99);
    qk_inline ic1, ic2;
    int late = 0;
    CU_ASSERT_EQUAL(group_carve("grp-a", 0, &ic1, &late), 0);
    qk_err err = {0, ""};
    qk_inline_begin(&ic2, 0);
    ic2.group_commit = true;
    CU_ASSERT_FATAL(qs_begin(S, &err) == 0);
    CU_ASSERT_EQUAL(sqlite3_exec(S->db,
                                 "PRAGMA defer_foreign_keys = ON;"
                                 "INSERT INTO key_slaves(key_id, slave, state)"
                                 " VALUES('no-such-key', 'saeB', 0)",
                                 NULL, NULL, NULL),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(qs_end(S, 0, true, &err), 0); /* kept in the group: the check comes later */
    qk_inline_end();
    CU_ASSERT_EQUAL(ic1.seq, ic2.seq);
    qk_inline_waiter w1 = waiter_for(&ic1);
    CU_ASSERT_EQUAL(ic1.await(ic1.owner, ic1.seq, &w1), 0);
    wait_done(1);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), QK_ESTORAGE);
    CU_ASSERT_EQUAL(count_requests("grp-a"), 0); /* rolled back with the group */
    qk_inline_waiter w2 = waiter_for(&ic2);
    CU_ASSERT(ic2.await(ic2.owner, ic2.seq, &w2) < 0); /* late waiter of the failed group */
    CU_ASSERT_EQUAL(carve_commit("after", 1, &late), 0);
    CU_ASSERT_EQUAL(count_requests("after"), 1);
    done();
}

/* A call that is not inline commits the open group with its own change and waits for the
 * sync, so the group's replies are then durable at once. */
static void test_group_closed_by_blocking_call(void)
{
    fresh();
    qk_inline ic;
    int late = 0;
    CU_ASSERT_EQUAL(group_carve("grp-x", 0, &ic, &late), 0);
    CU_ASSERT(group_open());
    late = 0;
    CU_ASSERT_EQUAL(carve_commit("outside", 1, &late), 0);
    CU_ASSERT_EQUAL(late, 0); /* it waited for a sync */
    CU_ASSERT(!group_open());
    qk_inline_waiter w = waiter_for(&ic);
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w), 1); /* durable already */
    done();
}

/* ---- lazy calls (qs_lazy): qk_store_notices_done ---------------------------------------- */

static int count_noticed(const char *id)
{
    return count_of("SELECT count(*) FROM requests WHERE request_id = ? AND noticed = 1", id);
}

static atomic_int lazy_rc;
static void *lazy_main(void *arg)
{
    const char *ids[] = {arg};
    qk_err err = {0, ""};
    atomic_store(&lazy_rc, qk_store_notices_done(S, ids, 1, &err) == 0 ? 1 : -1);
    return NULL;
}

/* A fresh store holding one committed request `id`, un-noticed, as a request carved from a
 * lease stands until its notice is answered. */
static void carve_unnoticed(const char *id)
{
    fresh();
    int late = 0;
    CU_ASSERT_EQUAL_FATAL(carve_commit(id, 0, &late), 0);
    (void)pthread_mutex_lock(&S->mu);
    CU_ASSERT_EQUAL(sqlite3_exec(S->db, "UPDATE requests SET noticed = 0", NULL, NULL, NULL),
                    SQLITE_OK);
    (void)pthread_mutex_unlock(&S->mu);
}

/* Marking requests noticed does not wait for the WAL sync (a lost mark only sends the notice
 * again): with every sync blocked the call returns, its change is visible at once, and the
 * syncer commits and syncs it on its own soon after, with no reply waiting; it survives a
 * reopen. */
static void test_lazy_notices_done(void)
{
    carve_unnoticed("lazy-1");
    CU_ASSERT_EQUAL(count_noticed("lazy-1"), 0);
    atomic_store(&lazy_rc, 0);
    atomic_store(&sync_block, 1);
    int started = atomic_load(&sync_started);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, lazy_main, "lazy-1") == 0);
    for (int i = 0; i < 400 && atomic_load(&lazy_rc) == 0; i++)
        sf_sleep_ms(5);
    CU_ASSERT_EQUAL(atomic_load(&lazy_rc), 1); /* returned while no sync could finish */
    CU_ASSERT_EQUAL(count_noticed("lazy-1"), 1);
    for (int i = 0; i < 400 && atomic_load(&sync_started) == started; i++)
        sf_sleep_ms(5);
    CU_ASSERT(atomic_load(&sync_started) > started); /* the syncer took it up by itself */
    CU_ASSERT(!group_open());                        /* committed before that sync */
    int done_before = atomic_load(&sync_done);
    atomic_store(&sync_block, 0);
    CU_ASSERT(pthread_join(th, NULL) == 0);
    for (int i = 0; i < 400 && atomic_load(&sync_done) == done_before; i++)
        sf_sleep_ms(5);
    CU_ASSERT(atomic_load(&sync_done) > done_before);
    reopen();
    CU_ASSERT_EQUAL(count_noticed("lazy-1"), 1);
    done();
}

/* A lazy call alone does not start a sync at once: the syncer lingers (qs_lazy_wait_ms) for a
 * reply that needs one anyway. An inline request in that time joins the group the mark left
 * open, and one sync covers both; both survive a reopen. */
static void test_lazy_rides_with_reply(void)
{
    carve_unnoticed("lazy-2");
    int late = 0;
    unsigned saved = qs_lazy_wait_ms;
    qs_lazy_wait_ms = 10000;
    atomic_store(&w_done, 0);
    atomic_store(&w_err, -99);
    int started = atomic_load(&sync_started);
    const char *ids[] = {"lazy-2"};
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_notices_done(S, ids, 1, &err), 0);
    sf_sleep_ms(100);
    CU_ASSERT_EQUAL(atomic_load(&sync_started), started); /* lingering: no sync yet */
    CU_ASSERT(group_open());                              /* the mark waits in the group */
    qk_inline ic;
    CU_ASSERT_EQUAL(group_carve("grp-3", 1, &ic, &late), 0);
    CU_ASSERT_FATAL(ic.await != NULL);
    qk_inline_waiter w = waiter_for(&ic);
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w), 0);
    wait_done(1);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    CU_ASSERT_EQUAL(atomic_load(&sync_started), started + 1); /* one sync for both */
    qs_lazy_wait_ms = saved;
    reopen();
    CU_ASSERT_EQUAL(count_noticed("lazy-2"), 1);
    CU_ASSERT_EQUAL(count_requests("grp-3"), 1);
    done();
}

static void test_wal_inode_kept(void)
{
    fresh();
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", D.path);
    struct stat a, b;
    CU_ASSERT_FATAL(stat(wal, &a) == 0);
    CU_ASSERT_EQUAL(fstat(S->wal_fd, &b), 0);
    CU_ASSERT_EQUAL(a.st_ino, b.st_ino);
    /* Another connection checkpoints with TRUNCATE and closes: the file stays, same inode. */
    sqlite3 *db = NULL;
    CU_ASSERT_FATAL(sqlite3_open(D.path, &db) == SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_close(db), SQLITE_OK);
    CU_ASSERT_FATAL(stat(wal, &b) == 0);
    CU_ASSERT_EQUAL(a.st_ino, b.st_ino);
    CU_ASSERT_EQUAL(b.st_size, 0);
    int late = 0;
    CU_ASSERT_EQUAL(carve_commit("after-ckpt", 0, &late), 0);
    CU_ASSERT_EQUAL(late, 0);
    CU_ASSERT_FATAL(stat(wal, &b) == 0);
    CU_ASSERT_EQUAL(a.st_ino, b.st_ino);
    CU_ASSERT(b.st_size > 0); /* the commit went to the file the store syncs */
    done();
}

/* ---- the checkpointer (kms/store_ckpt.c) ------------------------------------------------ */

static atomic_int db_syncs, db_sync_fail, in_db_sync;
static int db_sync_ms, db_slow_syncs; /* the first db_slow_syncs take db_sync_ms longer */

/* The database file's syncs (the checkpointer's, after a round) are slowed or failed here; the
 * WAL's go through as usual. */
static int ckpt_hook(int fd)
{
    if (!S || fd != S->db_fd)
        return fdatasync(fd);
    int k = atomic_fetch_add(&db_syncs, 1);
    atomic_store(&in_db_sync, 1);
    if (k < db_slow_syncs)
        sf_sleep_ms(db_sync_ms);
    int r = fdatasync(fd);
    atomic_store(&in_db_sync, 0);
    if (atomic_load(&db_sync_fail)) {
        errno = EIO;
        r = -1;
    }
    return r;
}

static unsigned ck_saved[3];

/* A store opened as qkd-kmed opens it (the default lock), with its blocks, small checkpoint
 * thresholds and the hook above. */
static void ckpt_fresh(int delay_ms, int slow_syncs, int fail)
{
    ck_saved[0] = qs_ckpt_start_frames;
    ck_saved[1] = qs_ckpt_tail_frames;
    ck_saved[2] = qs_ckpt_force_frames;
    qs_ckpt_start_frames = 200;
    qs_ckpt_tail_frames = 40;
    qs_ckpt_force_frames = 1000000;
    open_with_blocks("ckpt", false, CK_BLOCKS);
    atomic_store(&db_syncs, 0);
    atomic_store(&db_sync_fail, fail);
    atomic_store(&in_db_sync, 0);
    db_sync_ms = delay_ms;
    db_slow_syncs = slow_syncs;
    qs_test_fdatasync = ckpt_hook;
}

static void ckpt_done(void)
{
    qs_test_fdatasync = NULL;
    qk_store_close(S);
    S = NULL;
    qs_ckpt_start_frames = ck_saved[0];
    qs_ckpt_tail_frames = ck_saved[1];
    qs_ckpt_force_frames = ck_saved[2];
}

/* The checkpointer copies the WAL and syncs the database file off the store's mutex: while its
 * first two syncs take 400 ms more, carves and commits go on in a few ms; the writer then
 * copies the last frames itself and the WAL restarts from its start (the file does not grow
 * however much more is committed), and everything is there after a reopen. */
static int ck_carves(int from, int count, int *during, double *worst)
{
    int late = 0;
    for (int i = from; i < from + count; i++) {
        char req[32];
        snprintf(req, sizeof req, "ck-%d", i);
        bool slow_sync = atomic_load(&in_db_sync) != 0;
        double t0 = sf_now_ms();
        if (carve_commit(req, i % 2, &late) != 0)
            return -1;
        double t = sf_now_ms() - t0;
        if (slow_sync && atomic_load(&in_db_sync)) { /* the sync ran all along this call */
            (*during)++;
            if (t > *worst)
                *worst = t;
        }
    }
    return 0;
}

static off_t wal_size(void)
{
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", D.path);
    struct stat st;
    return stat(wal, &st) == 0 ? st.st_size : -1;
}

static void test_ckpt_off_the_mutex(void)
{
    ckpt_fresh(400, 2, 0);
    int n = 0, during = 0;
    double worst = 0;
    unsigned long rounds = 0, tails = 0, forced = 0;
    while (n < 2000) { /* the two slow rounds, then the writer's last step */
        CU_ASSERT_EQUAL_FATAL(ck_carves(n, 20, &during, &worst), 0);
        n += 20;
        qs_ckpt_counts(S, &rounds, &tails, &forced);
        if (atomic_load(&db_syncs) > 2 && tails >= 1)
            break;
    }
    CU_ASSERT(rounds >= 2);
    CU_ASSERT(tails >= 1);
    CU_ASSERT(during >= 5);   /* calls completed while a round's sync was under way, */
    CU_ASSERT(worst < 200.0); /* none of them waiting for it */
    off_t mark = wal_size();
    unsigned long tails_mark = tails;
    CU_ASSERT_EQUAL_FATAL(ck_carves(n, 800, &during, &worst), 0); /* ~40 frames each */
    n += 800;
    qs_ckpt_counts(S, &rounds, &tails, &forced);
    off_t end = wal_size();
    printf("\n    checkpointer: %d carves, %lu rounds, %lu last steps, WAL %lld -> %lld bytes\n", n,
           rounds, tails, (long long)mark, (long long)end);
    CU_ASSERT(tails >= tails_mark + 2); /* the WAL restarted again and again, */
    CU_ASSERT(end <= mark + (off_t)(2 * 200) * (4096 + 24)); /* and did not grow */
    CU_ASSERT_EQUAL(forced, 0);
    qs_test_fdatasync = NULL;
    qk_store_close(S);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    CU_ASSERT_EQUAL(sf_counts_match(S, D.path, LINK, NULL), 0);
    qk_pool_status ps;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, (uint64_t)n * GK);
    ckpt_done();
    sf_dir_remove(&D);
}

/* A failed sync of the database file after a round is sticky, as a failed WAL sync is: the
 * kernel may have dropped the pages, so every later call fails until the store is reopened. */
static void test_ckpt_sync_failure_sticky(void)
{
    ckpt_fresh(0, 0, 1);
    int late = 0, n = 0, rc = 0;
    for (; n < 2000 && rc == 0; n++) {
        char req[32];
        snprintf(req, sizeof req, "cf-%d", n);
        rc = carve_commit(req, n % 2, &late);
    }
    CU_ASSERT_EQUAL(rc, QK_ESTORAGE);
    CU_ASSERT(atomic_load(&db_syncs) >= 1);
    CU_ASSERT_EQUAL(carve_commit("cf-after", 0, &late), QK_ESTORAGE);
    qs_test_fdatasync = NULL;
    qk_store_close(S);
    S = sf_open_default(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    CU_ASSERT_EQUAL(carve_commit("cf-reopened", 0, &late), 0);
    ckpt_done();
    sf_dir_remove(&D);
}

int suite_store_group(void)
{
    CU_pSuite s = CU_add_suite("store_group", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        void (*fn)(void);
    } t[] = {
        {"concurrent commits: fewer syncs, durable, reopen", test_concurrent_commits_durable},
        {"fdatasync failure fails the waiting calls", test_sync_failure_fails_waiters},
        {"a blocked sync holds its caller back", test_blocked_sync_holds_caller},
        {"WAL inode kept across TRUNCATE checkpoint", test_wal_inode_kept},
        {"inline: commits record a barrier, the syncer completes it", test_inline_barrier},
        {"inline: a failed sync fails the waiting reply", test_inline_barrier_sync_fails},
        {"inline: closing the store completes a waiting reply", test_inline_barrier_close},
        {"group: two inline requests, one COMMIT, both durable", test_group_shared},
        {"group: a pump turn's replies wake the syncer at its end", test_group_turn},
        {"group: a failed COMMIT fails every reply of the group", test_group_commit_fails},
        {"group: a blocking call commits the open group", test_group_closed_by_blocking_call},
        {"lazy: notices_done returns before its sync, synced soon", test_lazy_notices_done},
        {"lazy: the mark waits for the next reply's sync", test_lazy_rides_with_reply},
        {"checkpointer: rounds off the mutex, the writer's last step", test_ckpt_off_the_mutex},
        {"checkpointer: a failed database sync is sticky", test_ckpt_sync_failure_sticky},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!CU_add_test(s, t[i].name, t[i].fn))
            return -1;
    return 0;
}
