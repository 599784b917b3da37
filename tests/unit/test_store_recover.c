/* test_store_recover.c - replies at commit (docs/adr/0002-key-store.md, "Replies at commit"):
 * an inline carve from a lease is answered once its group is committed, with the WAL sync
 * blocked, while a call that must be durable still waits for the sync; with this boot's ID
 * unknown or the option off (qk_store_opts) every reply waits for the sync as before; and the open
 * after a power loss (another boot, no clean close) zeroes and closes the uncarved room of the
 * leases this end holds, while a clean close or a crash in the same boot keeps it. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qk_inline.h"
#include "store.h"
#include "store_fixture.h"
#include "store_int.h"

#define LINK       "KME_A~KME_B"
#define FAR_FUTURE 4000000000ull
#define BLEN       (QK_BLOCK_VKEY_LEN + 4096)

static sf_dir D;
static qk_store *S;
static uint8_t blk[2][BLEN];
static atomic_int sync_block, syncs_done, w_done, w_err;

static int hook(int fd)
{
    while (atomic_load(&sync_block))
        sf_sleep_ms(1);
    int r = fdatasync(fd);
    atomic_fetch_add(&syncs_done, 1);
    return r;
}

/* Open D's store with replies at commit asked for (g_on) or not. */
static bool g_on = true;
static qk_store *open_store(void)
{
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, 1);
    qk_store *s = NULL;
    qk_err err = {0, ""};
    qk_store_opts o = {.reply_at_commit = g_on, .shared_lock = true}; /* sf_counts_match reads */
    if (qk_store_open_with(D.path, mk, &o, &s, &err) != 0)
        fprintf(stderr, "qk_store_open_with(%s): %s\n", D.path, err.msg);
    return s;
}

static void w_cb(qk_inline_waiter *w, int err)
{
    (void)w;
    atomic_store(&w_err, err);
    atomic_fetch_add(&w_done, 1);
}

static void wait_done(int n)
{
    for (int i = 0; i < 400 && atomic_load(&w_done) < n; i++)
        sf_sleep_ms(5);
}

/* A store (this end is LOW) with two confirmed blocks, opened in boot "boot". */
static void fresh(const char *boot)
{
    qs_test_boot_id = boot;
    CU_ASSERT_FATAL(sf_dir_make(&D, "recover") == 0);
    S = open_store();
    CU_ASSERT_FATAL(S != NULL);
    for (size_t i = 0; i < 2; i++) {
        randombytes_buf(blk[i], BLEN);
        CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 1 + i, blk[i], BLEN) == 0);
    }
    atomic_store(&sync_block, 0);
    atomic_store(&syncs_done, 0);
    atomic_store(&w_done, 0);
    atomic_store(&w_err, -99);
}

static void done(void)
{
    qs_test_fdatasync = NULL;
    qk_store_close(S);
    S = NULL;
    sf_dir_remove(&D);
    qs_test_boot_id = NULL;
    g_on = true;
}

/* This end asks for want bytes and records the peer's grant (the peer's side of it does not
 * matter here). */
static qk_lease lease(uint32_t want)
{
    qk_lease l;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(S, LINK, QK_SIDE_LOW, want, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_done(S, LINK, QK_SIDE_LOW, l.block_id, true, &err), 0);
    return l;
}

static uint64_t room(void)
{
    uint64_t n = 0;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_lease_room(S, LINK, QK_SIDE_LOW, &n, &err), 0);
    return n;
}

/* n keys of 32 bytes carved from the lease, as an inline handler that groups (ic gets the
 * barrier) or, with ic NULL, as any other caller. */
static int carve(const char *req, size_t n, qk_inline *ic, uint8_t *mat)
{
    const char *sl[2];
    qk_reservation r = sf_resv(req, LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
    qk_key_ref refs[8];
    qk_err err = {0, ""};
    if (ic) {
        qk_inline_begin(ic, 0);
        ic->group_commit = true;
    }
    int rc = qk_store_carve_owned(S, &r, QK_SIDE_LOW, n, 32, refs, mat, &err);
    if (ic)
        qk_inline_end();
    return rc;
}

static bool group_open(void)
{
    (void)pthread_mutex_lock(&S->mu);
    bool open = S->group_open;
    (void)pthread_mutex_unlock(&S->mu);
    return open;
}

/* The carve's reply is complete once the syncer committed its group, with every sync blocked;
 * a call of the next group that must be durable (a burn) waits for the sync. */
static void test_reply_at_commit(void)
{
    fresh("boot-1");
    CU_ASSERT_FATAL(qk_store_replies_at_commit(S));
    qk_lease l = lease(512);
    qs_test_fdatasync = hook;
    atomic_store(&sync_block, 1);
    int synced = atomic_load(&syncs_done);
    qk_inline ic;
    uint8_t mat[8 * 32];
    CU_ASSERT_EQUAL_FATAL(carve("c-1", 2, &ic, mat), 0);
    CU_ASSERT_EQUAL(memcmp(mat, blk[0] + l.from, 64), 0);
    CU_ASSERT_FATAL(ic.await != NULL);
    CU_ASSERT(ic.seq > 0);
    CU_ASSERT_EQUAL(ic.sync_seq, 0); /* nothing of it needs the sync */
    CU_ASSERT(group_open());
    qk_inline_waiter w = {.done = w_cb, .sync_seq = ic.sync_seq};
    CU_ASSERT_EQUAL(ic.await(ic.owner, ic.seq, &w), 0); /* queued: the group is not committed */
    wait_done(1);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    CU_ASSERT(!group_open());                          /* committed ... */
    CU_ASSERT_EQUAL(atomic_load(&syncs_done), synced); /* ... and not synced */
    /* A burn in an inline group must be durable before its reply. */
    qk_inline ic2;
    qk_inline_begin(&ic2, 0);
    ic2.group_commit = true;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_burn(S, "c-1", &err), 0);
    qk_inline_end();
    CU_ASSERT_FATAL(ic2.await != NULL);
    CU_ASSERT_EQUAL(ic2.sync_seq, ic2.seq);
    qk_inline_waiter w2 = {.done = w_cb, .sync_seq = ic2.sync_seq};
    CU_ASSERT_EQUAL(ic2.await(ic2.owner, ic2.seq, &w2), 0);
    sf_sleep_ms(100);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1); /* the sync is blocked: still waiting */
    atomic_store(&sync_block, 0);
    wait_done(2);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 2);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    CU_ASSERT(atomic_load(&syncs_done) > synced);
    done();
    /* This boot's ID unknown, or replies at commit not asked for (the default): the carve's
     * barrier is a sync. */
    for (int off = 0; off < 2; off++) {
        g_on = off == 0;
        fresh(off == 0 ? "" : "boot-1");
        CU_ASSERT_FATAL(!qk_store_replies_at_commit(S));
        (void)lease(512);
        qk_inline ic3;
        CU_ASSERT_EQUAL_FATAL(carve("c-3", 1, &ic3, mat), 0);
        CU_ASSERT_FATAL(ic3.await != NULL);
        CU_ASSERT_EQUAL(ic3.sync_seq, ic3.seq);
        done();
    }
}

static void *unblock_later(void *arg)
{
    (void)arg;
    sf_sleep_ms(999);
    atomic_store(&sync_block, 0);
    return NULL;
}

/* The notifier's read of the carves to tell the peer about needs their COMMIT, not their sync:
 * with every sync blocked it returns (having committed the open group) and lists the carve. A
 * read that is not marked so still waits for the sync. */
static void test_notices_read_at_commit(void)
{
    fresh("boot-1");
    (void)lease(512);
    qs_test_fdatasync = hook;
    atomic_store(&sync_block, 1);
    uint8_t mat[8 * 32];
    qk_inline ic;
    CU_ASSERT_EQUAL_FATAL(carve("n-1", 1, &ic, mat), 0);
    CU_ASSERT(group_open());
    pthread_t th; /* the sync goes on later, whatever happens here */
    CU_ASSERT_FATAL(pthread_create(&th, NULL, unblock_later, NULL) == 0);
    qk_notice v[4];
    size_t n = 0;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_notices_pending(S, LINK, v, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(atomic_load(&sync_block), 1); /* returned with the sync still blocked */
    CU_ASSERT(!group_open());
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(v[0].request_id, "n-1");
    qk_notice_free(v, n);
    /* A burn is not: it waits for its sync. */
    CU_ASSERT_EQUAL(qk_store_burn(S, "n-1", &err), 0);
    CU_ASSERT_EQUAL(atomic_load(&sync_block), 0);
    CU_ASSERT(pthread_join(th, NULL) == 0);
    done();
}

/* A lazy call (a notice marked done) lingers for a reply that needs a sync anyway; replies at
 * commit served meanwhile neither sync nor end the linger, and the linger's end syncs once. */
static void test_lazy_linger_kept(void)
{
    fresh("boot-1");
    (void)lease(512);
    uint8_t mat[8 * 32];
    CU_ASSERT_EQUAL_FATAL(carve("z-1", 1, NULL, mat), 0);
    qs_test_fdatasync = hook;
    unsigned saved = qs_lazy_wait_ms;
    qs_lazy_wait_ms = 3000;
    int synced = atomic_load(&syncs_done);
    const char *ids[] = {"z-1"};
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_notices_done(S, ids, 1, &err), 0);
    qk_inline ic;
    CU_ASSERT_EQUAL_FATAL(carve("z-2", 1, &ic, mat), 0);
    CU_ASSERT_FATAL(ic.await != NULL);
    qk_inline_waiter w = {.done = w_cb, .sync_seq = ic.sync_seq};
    int r = ic.await(ic.owner, ic.seq, &w);
    CU_ASSERT_EQUAL(r, 0);
    wait_done(1);
    CU_ASSERT_EQUAL(atomic_load(&w_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&w_err), 0);
    CU_ASSERT_EQUAL(atomic_load(&syncs_done), synced); /* no sync yet: still lingering */
    for (int i = 0; i < 1200 && atomic_load(&syncs_done) == synced; i++)
        sf_sleep_ms(5);
    CU_ASSERT_EQUAL(atomic_load(&syncs_done), synced + 1); /* the linger's end: one sync */
    qs_lazy_wait_ms = saved;
    done();
}

/* Close S as a crash would leave it: without the clean mark. Then open it in boot "boot". */
static void crash_reopen(const char *boot)
{
    qk_store_close(S);
    sqlite3 *db = NULL;
    CU_ASSERT_FATAL(sqlite3_open(D.path, &db) == SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db, "DELETE FROM meta WHERE name = 'clean'", NULL, NULL, NULL),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_changes(db), 1); /* the close had marked it */
    sqlite3_close(db);
    qs_test_boot_id = boot;
    S = open_store();
    CU_ASSERT_FATAL(S != NULL);
}

static void clean_reopen(const char *boot)
{
    qk_store_close(S);
    qs_test_boot_id = boot;
    S = open_store();
    CU_ASSERT_FATAL(S != NULL);
}

/* The block row's cursor lo and the number of power-loss audit lines. */
static long long cursor_lo(uint64_t block_id)
{
    qk_store_close(S); /* read the file as it is, then open again (clean, same boot) */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long lo = -1;
    CU_ASSERT_FATAL(sqlite3_open(D.path, &db) == SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT lo FROM blocks WHERE link = ? AND block_id = ?", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, LINK, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int64(st, 2, (sqlite3_int64)block_id) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        lo = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    S = open_store();
    CU_ASSERT_FATAL(S != NULL);
    return lo;
}

/* Whether [off, off + len) of block 1 reads as zeroes. */
static bool zeroed(uint32_t off, uint32_t len)
{
    uint8_t buf[4096];
    qk_err err = {0, ""};
    CU_ASSERT_FATAL(len <= sizeof buf);
    CU_ASSERT_FATAL(qs_begin(S, &err) == 0);
    int rc = qs_range_read(S, LINK, 1, off, len, buf, &err);
    (void)qs_end(S, rc, false, &err);
    CU_ASSERT_EQUAL(rc, 0);
    bool z = true;
    for (uint32_t i = 0; i < len; i++)
        z = z && buf[i] == 0;
    return z;
}

static void test_power_loss_recovery(void)
{
    fresh("boot-1");
    qk_lease l = lease(1024);
    uint8_t mat[8 * 32];
    CU_ASSERT_EQUAL_FATAL(carve("p-1", 4, NULL, mat), 0);
    CU_ASSERT_EQUAL(room(), 1024 - 128);
    uint64_t blocks = 9, bytes = 9;
    /* A clean close, then another boot: nothing to recover. */
    clean_reopen("boot-2");
    CU_ASSERT_EQUAL(qk_store_recovery(S, &blocks, &bytes), 0);
    CU_ASSERT_EQUAL(blocks, 0);
    CU_ASSERT_EQUAL(bytes, 0);
    CU_ASSERT_EQUAL(room(), 1024 - 128);
    /* A crash in the same boot (the page cache kept every commit): nothing to recover. */
    crash_reopen("boot-2");
    CU_ASSERT_EQUAL(qk_store_recovery(S, NULL, NULL), 0);
    CU_ASSERT_EQUAL(room(), 1024 - 128);
    CU_ASSERT(!zeroed(l.from + 128, 32));
    CU_ASSERT_EQUAL(memcmp(mat, blk[0] + l.from, 128), 0);
    /* A crash, then another boot: the lease's uncarved room is zeroed and closed. */
    crash_reopen("boot-3");
    CU_ASSERT_EQUAL(qk_store_recovery(S, &blocks, &bytes), 1);
    CU_ASSERT_EQUAL(blocks, 1);
    CU_ASSERT_EQUAL(bytes, 1024 - 128);
    CU_ASSERT_EQUAL(room(), 0);
    CU_ASSERT(zeroed(l.from + 128, 1024 - 128));
    CU_ASSERT_EQUAL(cursor_lo(1), l.to);
    CU_ASSERT_EQUAL(sf_counts_match(S, D.path, LINK, "saeB"), 0);
    /* The next lease starts past the burned room; a carve works again. */
    qk_lease l2 = lease(256);
    CU_ASSERT(l2.from >= l.to);
    CU_ASSERT_EQUAL(carve("p-2", 1, NULL, mat), 0);
    CU_ASSERT_EQUAL(memcmp(mat, blk[0] + l2.from, 32), 0);
    /* Recovered once: a crash in this boot recovers nothing more. */
    crash_reopen("boot-3");
    CU_ASSERT_EQUAL(qk_store_recovery(S, NULL, NULL), 0);
    CU_ASSERT_EQUAL(room(), 256 - 32);
    /* A boot that cannot be read counts as another boot after a crash ... */
    crash_reopen("");
    CU_ASSERT_EQUAL(qk_store_recovery(S, NULL, NULL), 1);
    CU_ASSERT_EQUAL(room(), 0);
    CU_ASSERT(!qk_store_replies_at_commit(S));
    /* ... and an open in an unknown boot records none: it replied after syncs only. */
    (void)lease(128);
    crash_reopen("boot-4");
    CU_ASSERT_EQUAL(qk_store_recovery(S, NULL, NULL), 0);
    CU_ASSERT_EQUAL(room(), 128);
    /* Replies at commit turned off: the open after a power loss still recovers (the last run
     * may have replied at commit), and records no boot, so the next one does not. */
    g_on = false;
    crash_reopen("boot-5");
    CU_ASSERT_EQUAL(qk_store_recovery(S, NULL, NULL), 1);
    CU_ASSERT(!qk_store_replies_at_commit(S));
    (void)lease(128);
    crash_reopen("boot-6");
    CU_ASSERT_EQUAL(qk_store_recovery(S, NULL, NULL), 0);
    CU_ASSERT_EQUAL(room(), 128);
    done();
}

int suite_store_recover(void)
{
    CU_pSuite s = CU_add_suite("store_recover", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "an inline carve's reply waits for the commit, not the sync",
                     test_reply_at_commit) ||
        !CU_add_test(s, "the notifier reads carves at their commit", test_notices_read_at_commit) ||
        !CU_add_test(s, "replies at commit do not end a lazy call's linger",
                     test_lazy_linger_kept) ||
        !CU_add_test(s, "after a power loss the unused lease room is burned",
                     test_power_loss_recovery))
        return -1;
    return 0;
}
