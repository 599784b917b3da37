/* test_store_lease.c - leases and notices on two stores simulating the two KMEs of a link
 * (A is the LOW side, B the HIGH side): ask / grant / refuse / idempotent / re-ask after
 * reopen; asks from one view never overlap and racing asks are never both granted over each
 * other (plus a randomized interleaving that carves everything owned at both ends and checks
 * the ranges are disjoint); a lease reads no material; carve_owned stays inside the granted
 * lease; notices from A applied at B give B's slave the bytes A's master got; notices outside
 * the lease, on unknown blocks, with burned or known IDs; notices_done; key_known; a leased
 * block keeps its material for later notices; tails are closed; migration from v4; the
 * notices from memory (store_noteq.c) and when the table answers instead. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "qk_inline.h"
#include "store.h"
#include "store_fixture.h"
#include "store_int.h"

#define LINK       "KME_A~KME_B"
#define FAR_FUTURE 4000000000ull
#define BIG        (32 + 16384) /* block length: 16 KiB carvable */
#define VK         QK_BLOCK_VKEY_LEN

static sf_dir DA, DB;
static qk_store *A, *B;
static uint8_t *blk[4];
static size_t blen[4];

/* A carves time-ordered key IDs ([store] key_ids = time-ordered) in the next pair() */
static bool a_time_ids;

/* Two KMEs holding the same confirmed blocks 1..nb of length len. */
static void pair(size_t nb, size_t len)
{
    CU_ASSERT_FATAL(nb <= 4);
    CU_ASSERT_FATAL(sf_dir_make(&DA, "leaseA") == 0);
    CU_ASSERT_FATAL(sf_dir_make(&DB, "leaseB") == 0);
    qk_store_opts ao = {.shared_lock = true, .time_ordered_ids = a_time_ids};
    A = sf_open_opts(DA.path, 1, &ao);
    B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(A && B);
    for (size_t i = 0; i < nb; i++) {
        blk[i] = malloc(len);
        blen[i] = len;
        CU_ASSERT_FATAL(blk[i] != NULL);
        randombytes_buf(blk[i], len);
        CU_ASSERT_FATAL(sf_put_confirmed(A, LINK, i + 1, blk[i], len) == 0);
        CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, i + 1, blk[i], len) == 0);
    }
}

static void unpair(void)
{
    qk_store_close(A);
    qk_store_close(B);
    A = B = NULL;
    sf_dir_remove(&DA);
    sf_dir_remove(&DB);
    for (size_t i = 0; i < 4; i++) {
        free(blk[i]);
        blk[i] = NULL;
    }
}

static qk_store *reopen(qk_store *s, const sf_dir *d, uint8_t seed)
{
    qk_store_close(s);
    qk_store *n = sf_open(d->path, seed);
    CU_ASSERT_FATAL(n != NULL);
    return n;
}

typedef struct {
    long long lease_lo, lease_hi, ask, lo, hi; /* ask -1: none */
    int state;
} bounds;

/* The block row as stored (a second, read-only connection: the store runs in WAL mode). */
static bounds row(const sf_dir *d, uint64_t block_id)
{
    bounds b = {-1, -1, -1, -1, -1, -1};
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    CU_ASSERT_FATAL(sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    CU_ASSERT_FATAL(sqlite3_prepare_v2(db,
                                       "SELECT lease_lo, lease_hi, COALESCE(lease_ask, -1), lo,"
                                       " hi, state FROM blocks WHERE link = ? AND block_id = ?",
                                       -1, &st, NULL) == SQLITE_OK);
    sqlite3_bind_text(st, 1, LINK, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)block_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        b.lease_lo = sqlite3_column_int64(st, 0);
        b.lease_hi = sqlite3_column_int64(st, 1);
        b.ask = sqlite3_column_int64(st, 2);
        b.lo = sqlite3_column_int64(st, 3);
        b.hi = sqlite3_column_int64(st, 4);
        b.state = sqlite3_column_int(st, 5);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return b;
}

static uint64_t room(qk_store *s, qk_side side)
{
    uint64_t n = 0;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_lease_room(s, LINK, side, &n, &err), 0);
    return n;
}

/* A asks (LOW) for want bytes, B grants, A records the grant. */
static qk_lease lease_a(uint32_t want)
{
    qk_lease l;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, want, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, l.block_id, true, &err), 0);
    return l;
}

static qk_lease lease_b(uint32_t want)
{
    qk_lease l;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, want, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_done(B, LINK, QK_SIDE_HIGH, l.block_id, true, &err), 0);
    return l;
}

static qk_reservation resv(const char *req, const char **sl)
{
    return sf_resv(req, LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
}

/* ---- asks and grants -------------------------------------------------------------------- */

static void test_ask_grant(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    qk_lease l;
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 1000, &l, &err), 0);
    CU_ASSERT_EQUAL(l.block_id, 1); /* LOW: the oldest block */
    CU_ASSERT_EQUAL(l.from, VK);
    CU_ASSERT_EQUAL(l.to, VK + 1000);
    CU_ASSERT_EQUAL(row(&DA, 1).ask, VK + 1000);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0); /* asked is not granted */
    /* the same ask again while it is pending */
    qk_lease again;
    CU_ASSERT_EQUAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 50, &again, &err), 0);
    CU_ASSERT_EQUAL(memcmp(&again, &l, sizeof l), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &l, &err), 0);
    bounds b = row(&DB, 1);
    CU_ASSERT_EQUAL(b.lease_lo, VK + 1000);
    CU_ASSERT_EQUAL(b.lo, VK + 1000); /* the mirror cursor moved past the lease */
    CU_ASSERT_EQUAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, 1, true, &err), 0);
    b = row(&DA, 1);
    CU_ASSERT_EQUAL(b.lease_lo, VK + 1000);
    CU_ASSERT_EQUAL(b.ask, -1);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 1000);
    CU_ASSERT_EQUAL(room(B, QK_SIDE_HIGH), 0);
    /* idempotent: granted again (the bytes may be carved by now) */
    CU_ASSERT_EQUAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &l, &err), 0);
    CU_ASSERT_EQUAL(row(&DB, 1).state, QK_BLOCK_CONFIRMED);
    CU_ASSERT_EQUAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, 1, true, &err), 0); /* again */
    /* the next ask extends the same block: all of its room, since HIGH starts at block 2 */
    qk_lease l2 = lease_a(1000000);
    CU_ASSERT_EQUAL(l2.block_id, 1);
    CU_ASSERT_EQUAL(l2.from, VK + 1000);
    CU_ASSERT_EQUAL(l2.to, BIG);
    /* HIGH takes the newest block from the back */
    qk_lease h = lease_b(2000);
    CU_ASSERT_EQUAL(h.block_id, 2);
    CU_ASSERT_EQUAL(h.from, BIG - 2000);
    CU_ASSERT_EQUAL(h.to, BIG);
    CU_ASSERT_EQUAL(room(B, QK_SIDE_HIGH), 2000);
    CU_ASSERT_EQUAL(row(&DA, 2).hi, BIG - 2000);
    /* in the last block with room (where the sides meet) at most half of the room */
    qk_lease h2 = lease_b(1000000);
    CU_ASSERT_EQUAL(h2.block_id, 2);
    CU_ASSERT_EQUAL(h2.to, BIG - 2000);
    CU_ASSERT_EQUAL(h2.from, BIG - 2000 - (16384 - 2000) / 2);
    /* bad input */
    qk_lease bad = h;
    bad.from = 8;
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &bad, &err), QK_EINVAL);
    bad = h;
    bad.to = bad.from;
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &bad, &err), QK_EINVAL);
    bad = h;
    bad.block_id = 99;
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &bad, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(qk_store_lease_ask(A, QK_LOCAL_LINK, QK_SIDE_LOW, 10, &l, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_lease_ask(A, "KME_A~KME_C", QK_SIDE_LOW, 10, &l, &err), QK_ENOKEY);
    unpair();
}

/* One 4 KiB block (a slow link's device block): the first end to ask takes half of it, not
 * all, so the other end's first request finds room too. */
static void test_small_block_shared(void)
{
    pair(1, 4096);
    qk_err err = {0, ""};
    qk_lease la, lb;
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 65536, &la, &err), 0);
    CU_ASSERT_EQUAL(la.from, VK);
    CU_ASSERT_EQUAL(la.to, VK + (4096 - VK) / 2);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &la, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, 1, true, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, 65536, &lb, &err), 0);
    CU_ASSERT(lb.to == 4096 && lb.from >= la.to && lb.from < 4096);
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &lb, &err), 0);
    unpair();
}

static void test_refused_and_racing(void)
{
    /* a small block: room 100 < the minimum, so each side asks for all of it */
    pair(1, 132);
    qk_err err = {0, ""};
    qk_lease la, lb;
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 500, &la, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, 500, &lb, &err), 0);
    CU_ASSERT_EQUAL(la.to, 132);
    CU_ASSERT_EQUAL(lb.from, VK);
    /* each reaches into the other's ask: both refused, neither end changes */
    CU_ASSERT_EQUAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &la, &err), QK_ECOLLISION);
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &lb, &err), QK_ECOLLISION);
    CU_ASSERT_EQUAL(row(&DA, 1).lease_lo, VK);
    CU_ASSERT_EQUAL(row(&DB, 1).lease_hi, 132);
    CU_ASSERT_EQUAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, 1, false, &err), 0);
    CU_ASSERT_EQUAL(qk_store_lease_done(B, LINK, QK_SIDE_HIGH, 1, false, &err), 0);
    CU_ASSERT_EQUAL(row(&DA, 1).ask, -1);
    CU_ASSERT_EQUAL(row(&DA, 1).lease_lo, VK); /* refused: bound unchanged */
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0);
    /* in turn: A is granted everything, then B has nothing left to ask for */
    lease_a(500);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 100);
    CU_ASSERT_EQUAL(qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, 500, &lb, &err), QK_ENOKEY);
    /* an ask of B that reaches into A's granted lease is refused at A */
    lb.block_id = 1;
    lb.from = 100;
    lb.to = 132;
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &lb, &err), QK_ECOLLISION);
    unpair();
}

/* Two asks from the same view on a large block do not overlap and both are granted. */
static void test_same_view_asks(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    qk_lease la, lb;
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 1u << 20, &la, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, 1u << 20, &lb, &err), 0);
    CU_ASSERT(la.to <= lb.from);
    CU_ASSERT_EQUAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &la, &err), 0);
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &lb, &err), 0);
    CU_ASSERT_EQUAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, 1, true, &err), 0);
    CU_ASSERT_EQUAL(qk_store_lease_done(B, LINK, QK_SIDE_HIGH, 1, true, &err), 0);
    bounds a = row(&DA, 1), b = row(&DB, 1);
    CU_ASSERT(a.lease_lo <= a.lease_hi && b.lease_lo <= b.lease_hi);
    CU_ASSERT_EQUAL(a.lease_lo, b.lease_lo);
    CU_ASSERT_EQUAL(a.lease_hi, b.lease_hi);
    unpair();
}

/* Carve every owned byte of one side as 1-byte keys; marks them in used[]. Returns the count,
 * or -1 when a byte was already marked (handed out twice). */
static long carve_all(qk_store *s, qk_side side, uint8_t *used, size_t len, int *seq)
{
    uint64_t n = room(s, side);
    long total = 0;
    while (n > 0) {
        size_t k = n > 4096 ? 4096 : (size_t)n;
        char id[32];
        snprintf(id, sizeof id, "%c-%d", side == QK_SIDE_LOW ? 'a' : 'b', (*seq)++);
        const char *sl[2];
        qk_reservation r = resv(id, sl);
        qk_key_ref *refs = calloc(k, sizeof *refs);
        uint8_t *mat = malloc(k);
        qk_err err = {0, ""};
        CU_ASSERT_FATAL(refs && mat);
        int rc = qk_store_carve_owned(s, &r, side, k, 1, refs, mat, &err);
        CU_ASSERT_EQUAL(rc, 0);
        for (size_t i = 0; rc == 0 && i < k; i++) {
            CU_ASSERT_FATAL(refs[i].block_id >= 1 && refs[i].block_id <= 4 && refs[i].offset < len);
            size_t at = (size_t)(refs[i].block_id - 1) * len + refs[i].offset;
            if (used[at])
                total = -1000000;
            used[at] = 1;
        }
        free(refs);
        free(mat);
        if (rc)
            return -1;
        total += (long)k;
        n -= k;
    }
    return total < 0 ? -1 : total;
}

/* Random interleavings of asks, deliveries (possibly repeated) and answers on one to three
 * blocks: the bounds stay ordered at both ends, the two granted leases never overlap, and
 * carving all that each side owns never hands out a byte twice. */
static void test_random_interleavings(void)
{
    for (int round = 0; round < 40; round++) {
        size_t len = 33 + randombytes_uniform(6000);
        size_t nb = 1 + randombytes_uniform(3);
        pair(nb, len);
        qk_err err = {0, ""};
        int seq = 0;
        for (int step = 0; step < 12; step++) {
            qk_lease la, lb;
            uint32_t wa = 1 + randombytes_uniform(3000), wb = 1 + randombytes_uniform(3000);
            int ra = qk_store_lease_ask(A, LINK, QK_SIDE_LOW, wa, &la, &err);
            int rb = qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, wb, &lb, &err);
            CU_ASSERT(ra == 0 || ra == QK_ENOKEY);
            CU_ASSERT(rb == 0 || rb == QK_ENOKEY);
            int ga = -100, gb = -100;
            bool a_first = randombytes_uniform(2) == 0;
            for (int k = 0; k < 2; k++) {
                if ((k == 0) == a_first && ra == 0)
                    ga = qk_store_lease_in(B, LINK, QK_SIDE_LOW, &la, &err);
                if ((k == 0) != a_first && rb == 0)
                    gb = qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &lb, &err);
            }
            CU_ASSERT(ga == -100 || ga == 0 || ga == QK_ECOLLISION);
            CU_ASSERT(gb == -100 || gb == 0 || gb == QK_ECOLLISION);
            /* sometimes the answer is lost: the ask stays and is repeated next step */
            if (ra == 0 && randombytes_uniform(4) != 0)
                CU_ASSERT_EQUAL(
                    qk_store_lease_done(A, LINK, QK_SIDE_LOW, la.block_id, ga == 0, &err), 0);
            if (rb == 0 && randombytes_uniform(4) != 0)
                CU_ASSERT_EQUAL(
                    qk_store_lease_done(B, LINK, QK_SIDE_HIGH, lb.block_id, gb == 0, &err), 0);
            for (uint64_t id = 1; id <= nb; id++) {
                bounds a = row(&DA, id), b = row(&DB, id);
                CU_ASSERT(a.lease_lo <= a.lease_hi);
                CU_ASSERT(b.lease_lo <= b.lease_hi);
                CU_ASSERT(a.lease_lo <= b.lease_hi); /* A's grant never crosses B's */
                CU_ASSERT(a.lease_lo <= b.lease_lo && b.lease_hi >= a.lease_hi);
            }
        }
        uint8_t *used = calloc(nb * len, 1);
        CU_ASSERT_FATAL(used != NULL);
        long carved_a = carve_all(A, QK_SIDE_LOW, used, len, &seq);
        long carved_b = carve_all(B, QK_SIDE_HIGH, used, len, &seq);
        CU_ASSERT(carved_a >= 0 && carved_b >= 0);
        for (size_t b = 0; b < nb; b++)
            for (size_t i = 0; i < VK; i++)
                CU_ASSERT_EQUAL(used[b * len + i], 0);
        free(used);
        unpair();
    }
}

/* Delete every segment of block_id (the block's material) behind the store's back. */
static void drop_material(const sf_dir *d, uint64_t block_id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    CU_ASSERT_FATAL(sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
    CU_ASSERT_FATAL(sqlite3_prepare_v2(db, "DELETE FROM segments WHERE link = ? AND block_id = ?",
                                       -1, &st, NULL) == SQLITE_OK);
    sqlite3_bind_text(st, 1, LINK, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)block_id);
    CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_DONE);
    CU_ASSERT(sqlite3_changes(db) > 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A lease reads no material (docs/adr/0002-key-store.md, "Leases and notices"): the block
 * digest compared the bytes of both ends once, and only confirmed blocks are asked from, so
 * an ask and a grant only move bounds - they succeed with the block's segments gone at both
 * ends. A block still pending at the asker is never asked from; one still pending at the
 * grantor (its inventory answer not yet heard) is confirmed by the grant. */
static void test_lease_reads_no_material(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    drop_material(&DA, 1);
    drop_material(&DB, 1);
    qk_lease l = lease_a(1000);
    CU_ASSERT_EQUAL(l.block_id, 1);
    CU_ASSERT_EQUAL(row(&DA, 1).lease_lo, VK + 1000);
    CU_ASSERT_EQUAL(row(&DB, 1).lease_lo, VK + 1000);
    CU_ASSERT_EQUAL(row(&DB, 1).lo, VK + 1000);
    /* block 2: pending at A (the asker), confirmed at B */
    uint8_t *x = malloc(BIG);
    CU_ASSERT_FATAL(x != NULL);
    randombytes_buf(x, BIG);
    qk_put_result res = QK_PUT_CONFLICT;
    CU_ASSERT_EQUAL_FATAL(qk_store_block_put(A, LINK, 2, x, BIG, &res, &err), 0);
    CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, 2, x, BIG) == 0);
    /* A's LOW asks stay in block 1 (its only confirmed block); B's HIGH ask takes block 2 */
    qk_lease hb;
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(B, LINK, QK_SIDE_HIGH, 500, &hb, &err), 0);
    CU_ASSERT_EQUAL(hb.block_id, 2);
    CU_ASSERT_EQUAL(hb.to, BIG);
    CU_ASSERT_EQUAL(row(&DA, 2).state, QK_BLOCK_PENDING);
    CU_ASSERT_EQUAL(qk_store_lease_in(A, LINK, QK_SIDE_HIGH, &hb, &err), 0);
    CU_ASSERT_EQUAL(row(&DA, 2).state, QK_BLOCK_CONFIRMED);
    CU_ASSERT_EQUAL(row(&DA, 2).lease_hi, hb.from);
    CU_ASSERT_EQUAL(qk_store_lease_done(B, LINK, QK_SIDE_HIGH, 2, true, &err), 0);
    /* a block burned at the grantor is refused */
    CU_ASSERT_EQUAL(qk_store_block_set_state(B, LINK, 1, QK_BLOCK_BURNED, &err), 0);
    qk_lease more = {1, VK + 1000, VK + 2000};
    CU_ASSERT_EQUAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &more, &err), QK_ENOTFOUND);
    sodium_memzero(x, BIG);
    free(x);
    unpair();
}

static void test_reask_after_reopen(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    qk_lease l, got[4];
    size_t n = 9;
    CU_ASSERT_EQUAL(qk_store_lease_asks(A, LINK, QK_SIDE_LOW, got, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 700, &l, &err), 0);
    /* the peer grants, and A crashes before it hears the answer */
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &l, &err), 0);
    A = reopen(A, &DA, 1);
    CU_ASSERT_EQUAL(qk_store_lease_asks(A, LINK, QK_SIDE_LOW, got, 4, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(memcmp(&got[0], &l, sizeof l), 0); /* the same range */
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0);
    /* asked again: granted again (idempotent), then the bound is A's */
    CU_ASSERT_EQUAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &got[0], &err), 0);
    CU_ASSERT_EQUAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, got[0].block_id, true, &err), 0);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 700);
    CU_ASSERT_EQUAL(qk_store_lease_asks(A, LINK, QK_SIDE_LOW, got, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    /* an ask the peer never saw is asked again after a restart and refused or granted then */
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 300, &l, &err), 0);
    A = reopen(A, &DA, 1);
    CU_ASSERT_EQUAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 9999, &got[0], &err), 0);
    CU_ASSERT_EQUAL(memcmp(&got[0], &l, sizeof l), 0);
    unpair();
}

/* ---- carve_owned ------------------------------------------------------------------------ */

static void test_carve_owned_stays_inside(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_reservation r = resv("o-0", sl);
    qk_key_ref refs[8];
    uint8_t mat[8 * 64];
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), QK_ENOKEY);
    qk_lease l = lease_a(8 * 64);
    CU_ASSERT_EQUAL(l.to - l.from, 8 * 64);
    r = resv("o-1", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 5, 64, refs, mat, &err), 0);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(refs[i].block_id, 1);
        CU_ASSERT_EQUAL(refs[i].offset, l.from + (uint32_t)i * 64);
        CU_ASSERT_EQUAL(refs[i].length, 64);
    }
    CU_ASSERT_EQUAL(memcmp(mat, blk[0] + l.from, 5 * 64), 0);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 3 * 64);
    int st = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(A, "o-1", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 1); /* committed at once */
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(A, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, 5);
    /* the rest of the lease is 3 keys: 4 do not fit, nothing recorded */
    r = resv("o-2", sl);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 4, 64, refs, mat, &err), QK_ENOKEY);
    CU_ASSERT_EQUAL(qk_store_request_state(A, "o-2", &st, &err), QK_ENOTFOUND);
    for (size_t i = 0; i < 4 * 64; i++)
        CU_ASSERT_EQUAL_FATAL(mat[i], 0); /* wiped on failure */
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 3, 64, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[2].offset + refs[2].length, l.to); /* filled exactly */
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0);
    r = resv("o-3", sl);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 1, refs, mat, &err), QK_ENOKEY);
    r = resv("o-1", sl);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 1, refs, mat, &err), QK_EEXIST);
    /* HIGH at B: from the back of its lease, a request may span blocks */
    qk_lease h1 = lease_b(100); /* block 2 */
    CU_ASSERT_EQUAL(h1.block_id, 2);
    r = resv("o-4", sl);
    CU_ASSERT_EQUAL(qk_store_carve_owned(B, &r, QK_SIDE_HIGH, 4, 32, refs, mat, &err), QK_ENOKEY);
    qk_lease h2 = lease_b(100); /* block 2 again: B's lease grows to 200 bytes */
    CU_ASSERT_EQUAL(h2.to, h1.from);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(B, &r, QK_SIDE_HIGH, 6, 32, refs, mat, &err), 0);
    for (int i = 0; i < 6; i++) {
        CU_ASSERT(refs[i].offset >= h2.from && refs[i].offset + 32 <= h1.to);
        CU_ASSERT_EQUAL(memcmp(mat + i * 32, blk[1] + refs[i].offset, 32), 0);
    }
    CU_ASSERT_EQUAL(qk_store_lease_room(B, LINK, QK_SIDE_HIGH, &(uint64_t){0}, &err), 0);
    CU_ASSERT_EQUAL(room(B, QK_SIDE_HIGH), 200 - 6 * 32);
    /* the local link has no leases */
    r = sf_resv("o-5", QK_LOCAL_LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 1, refs, mat, &err), QK_EINVAL);
    unpair();
}

/* A lease's last bytes, too short for the keys asked for, in a block with nothing left to
 * lease, are zeroed and closed (the block leaves the owned-room index). */
static void test_tail_closed(void)
{
    pair(1, 132);
    qk_err err = {0, ""};
    lease_a(1000); /* all 100 bytes */
    const char *sl[2];
    qk_reservation r = resv("t-1", sl);
    qk_key_ref refs[3];
    uint8_t mat[96];
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 3, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0); /* the 4-byte tail is closed */
    CU_ASSERT_EQUAL(row(&DA, 1).lo, 132);
    unpair();
    /* a short tail where more can be leased stays open: ENOKEY, and the next lease extends it */
    pair(1, BIG);
    qk_lease l = lease_a(100);
    r = resv("t-2", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 3, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 4);
    r = resv("t-3", sl);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), QK_ENOKEY);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 4);
    qk_lease l2 = lease_a(28);
    CU_ASSERT_EQUAL(l2.from, l.to);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[0].offset, l.to - 4);
    CU_ASSERT_EQUAL(memcmp(mat, blk[0] + l.to - 4, 32), 0);
    unpair();
}

/* A tail no carve left (here: room for a 20-byte key, then asked for 32-byte keys) waits for
 * the periodic sweep: still open after the next carve, closed within QS_TAIL_EVERY calls. */
static void test_tail_closed_later(void)
{
    pair(1, 132);
    blk[1] = malloc(BIG); /* a second, larger block the 32-byte keys come from */
    blen[1] = BIG;
    CU_ASSERT_FATAL(blk[1] != NULL);
    randombytes_buf(blk[1], BIG);
    CU_ASSERT_FATAL(sf_put_confirmed(A, LINK, 2, blk[1], BIG) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, 2, blk[1], BIG) == 0);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(lease_a(1000).block_id, 1); /* all of block 1's 100 bytes */
    const char *sl[2];
    qk_key_ref refs[4];
    uint8_t mat[128];
    qk_reservation r = resv("tl-0", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 4, 20, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 20); /* room for one more 20-byte key: no tail */
    qk_lease l = lease_a(4000);
    CU_ASSERT_EQUAL_FATAL(l.block_id, 2);
    uint64_t from2 = l.to - l.from;
    for (int i = 1; i <= QS_TAIL_EVERY; i++) {
        char id[32];
        snprintf(id, sizeof id, "tl-%d", i);
        r = resv(id, sl);
        CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), 0);
        CU_ASSERT_EQUAL(refs[0].block_id, 2);
        if (i == 1) /* block 1's 20 bytes are a tail for 32-byte keys, not swept yet */
            CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 20 + from2 - 32);
    }
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), from2 - (uint64_t)QS_TAIL_EVERY * 32);
    CU_ASSERT_EQUAL(row(&DA, 1).lo, 132); /* closed: zeroed and the cursor at its end */
    unpair();
}

/* ---- notices ---------------------------------------------------------------------------- */

static void test_notices_roundtrip(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_key_ref refs[4];
    uint8_t mat[4 * 32], got[4 * 32];
    lease_a(1000);
    qk_reservation r1 = sf_resv("n-1", LINK, "saeA", sl, "saeB", "saeC", FAR_FUTURE);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r1, QK_SIDE_LOW, 3, 32, refs, mat, &err), 0);
    qk_reservation r2 = resv("n-2", sl);
    CU_ASSERT_EQUAL_FATAL(
        qk_store_carve_owned(A, &r2, QK_SIDE_LOW, 1, 32, &refs[3], mat + 96, &err), 0);
    bool known = true;
    CU_ASSERT_EQUAL(qk_store_key_known(B, refs[0].key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    CU_ASSERT_EQUAL(qk_store_key_known(A, refs[0].key_id, &known, &err), 0);
    CU_ASSERT_TRUE(known);
    /* un-noticed requests survive a restart */
    A = reopen(A, &DA, 1);
    qk_notice v[4];
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 4, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(v[0].request_id, "n-1"); /* oldest first */
    CU_ASSERT_STRING_EQUAL(v[0].master, "saeA");
    CU_ASSERT_EQUAL(v[0].nslaves, 2);
    CU_ASSERT_STRING_EQUAL(v[0].slaves[0], "saeB");
    CU_ASSERT_STRING_EQUAL(v[0].slaves[1], "saeC");
    CU_ASSERT_EQUAL(v[0].expires_at, FAR_FUTURE);
    CU_ASSERT_EQUAL_FATAL(v[0].nkeys, 3);
    CU_ASSERT_STRING_EQUAL(v[0].keys[1].key_id, refs[1].key_id);
    CU_ASSERT_EQUAL(v[0].keys[1].offset, refs[1].offset);
    CU_ASSERT_STRING_EQUAL(v[1].request_id, "n-2");
    CU_ASSERT_EQUAL(v[1].nkeys, 1);
    CU_ASSERT_EQUAL(v[1].nslaves, 1); /* one slave: named in the request's row (v8) */
    CU_ASSERT_STRING_EQUAL(v[1].slaves[0], "saeB");
    int res[4] = {9, 9, 9, 9};
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 2, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], 0);
    CU_ASSERT_EQUAL(res[1], 0);
    /* idempotent */
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 2, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], 0);
    CU_ASSERT_EQUAL(res[1], 0);
    CU_ASSERT_EQUAL(qk_store_key_known(B, refs[0].key_id, &known, &err), 0);
    CU_ASSERT_TRUE(known);
    uint64_t held = 0;
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, "saeA", "saeB", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 4);
    /* B's slaves get the bytes A's master got */
    const char *ids[3] = {refs[0].key_id, refs[1].key_id, refs[2].key_id};
    qk_fetched_key out[3];
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 3, out, got, sizeof got, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat, 96), 0);
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeC", "saeA", ids, 3, out, got, sizeof got, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat, 96), 0);
    ids[0] = refs[3].key_id;
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 1, out, got, sizeof got, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat + 96, 32), 0);
    /* done: nothing pending any more */
    const char *done[2] = {"n-1", "n-2"};
    CU_ASSERT_EQUAL(qk_store_notices_done(A, done, 2, &err), 0);
    CU_ASSERT_EQUAL(qk_store_notices_done(A, done, 2, &err), 0); /* idempotent */
    qk_notice_free(v, n);
    CU_ASSERT_EQUAL(qk_store_notices_pending(A, LINK, v, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    unpair();
}

static long long count_on(const sf_dir *d, const char *sql);

/* The pending notices of A as request IDs joined by spaces, each with its slave and key
 * counts ("n-1:2/3 n-2:1/1"). */
static void pending_ids(char *out, size_t cap)
{
    qk_notice v[8];
    size_t n = 0;
    qk_err err = {0, ""};
    out[0] = '\0';
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 8, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s:%zu/%zu", i ? " " : "", v[i].request_id, v[i].nslaves,
                 v[i].nkeys);
    }
    qk_notice_free(v, n);
}

static void carve_a(const char *req, size_t n, qk_key_ref *refs, int want)
{
    const char *sl[2];
    uint8_t mat[4 * 32];
    qk_err err = {0, ""};
    qk_reservation r = sf_resv(req, LINK, "saeA", sl, "saeB", "saeC", FAR_FUTURE);
    CU_ASSERT_FATAL(n <= 4);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, n, 32, refs, mat, &err), want);
}

/* Notices from memory (store_noteq.c): once the table has answered a link's pending list in
 * full, the carves' own copies answer it (the rows deleted behind the store's back do not
 * change them); they stay until notices_done; a failed carve adds nothing; a burn makes the
 * table answer again (the burned request is not sent); so does every reopen. */
static void test_notices_from_memory(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    qk_key_ref refs[4], m2;
    char got[256];
    lease_a(768);                 /* 24 keys */
    pending_ids(got, sizeof got); /* the table: nothing pending, the queue answers from now on */
    CU_ASSERT_STRING_EQUAL(got, "");
    carve_a("m-1", 3, refs, 0);
    carve_a("m-2", 1, &m2, 0);
    carve_a("m-1", 1, refs, QK_EEXIST); /* refused: nothing queued */
    carve_a("m-3", 4, refs, 0);
    carve_a("m-4", 4, refs, 0);
    carve_a("m-5", 4, refs, 0);
    carve_a("m-6", 4, refs, 0);
    carve_a("m-7", 4, refs, 0);
    carve_a("m-8", 4, refs, QK_ENOKEY); /* past the lease: nothing queued */
    CU_ASSERT_EQUAL(count_on(&DA, "DELETE FROM request_slaves WHERE request_id LIKE 'm-%'"), 14);
    pending_ids(got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, "m-1:2/3 m-2:2/1 m-3:2/4 m-4:2/4 m-5:2/4 m-6:2/4 m-7:2/4");
    qk_notice v[2];
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 2, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(v[0].master, "saeA");
    CU_ASSERT_STRING_EQUAL(v[0].slaves[1], "saeC");
    CU_ASSERT_EQUAL(v[0].expires_at, FAR_FUTURE);
    CU_ASSERT_STRING_EQUAL(v[1].keys[0].key_id, m2.key_id);
    CU_ASSERT_EQUAL(v[1].keys[0].offset, m2.offset);
    CU_ASSERT_EQUAL(v[1].keys[0].length, 32);
    qk_notice_free(v, n);
    /* not sent (no done): the same again; then done, out of order */
    const char *done[3] = {"m-2", "m-1", "m-6"};
    CU_ASSERT_EQUAL(qk_store_notices_done(A, done, 3, &err), 0);
    pending_ids(got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, "m-3:2/4 m-4:2/4 m-5:2/4 m-7:2/4");
    carve_a("m-9", 1, refs, QK_ENOKEY);
    /* a burn: the table answers, without the burned request (and without the deleted slaves) */
    CU_ASSERT_EQUAL(qk_store_burn(A, "m-4", &err), 0);
    pending_ids(got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, "m-3:0/4 m-5:0/4 m-7:0/4");
    lease_a(32);
    carve_a("m-10", 1, refs, 0);
    pending_ids(got, sizeof got); /* queued again by the last full read */
    CU_ASSERT_STRING_EQUAL(got, "m-3:0/4 m-5:0/4 m-7:0/4 m-10:2/1");
    A = reopen(A, &DA, 1);
    CU_ASSERT_EQUAL(count_on(&DA, "DELETE FROM request_slaves WHERE request_id = 'm-10'"), 2);
    pending_ids(got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, "m-3:0/4 m-5:0/4 m-7:0/4 m-10:0/1");
    unpair();
}

/* A full queue lets the table answer for the link until a read returns all of its pending
 * notices within the bound again. */
static void test_notices_queue_full(void)
{
    size_t saved = qs_noteq_max;
    qs_noteq_max = 2;
    pair(1, BIG);
    qk_err err = {0, ""};
    qk_key_ref refs[4];
    char got[256];
    lease_a(1000);
    pending_ids(got, sizeof got);
    carve_a("f-1", 1, refs, 0);
    carve_a("f-2", 1, refs, 0);
    carve_a("f-3", 1, refs, 0); /* the third: the table answers */
    CU_ASSERT_EQUAL(count_on(&DA, "DELETE FROM request_slaves WHERE request_id = 'f-1'"), 2);
    pending_ids(got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, "f-1:0/1 f-2:2/1 f-3:2/1");
    const char *done[2] = {"f-1", "f-2"};
    CU_ASSERT_EQUAL(qk_store_notices_done(A, done, 2, &err), 0);
    pending_ids(got, sizeof got); /* one left: within the bound, queued */
    CU_ASSERT_STRING_EQUAL(got, "f-3:2/1");
    carve_a("f-4", 1, refs, 0);
    CU_ASSERT_EQUAL(count_on(&DA, "DELETE FROM request_slaves WHERE request_id LIKE 'f-%'"), 6);
    pending_ids(got, sizeof got);
    CU_ASSERT_STRING_EQUAL(got, "f-3:2/1 f-4:2/1");
    qs_noteq_max = saved;
    unpair();
}

/* A notice copied from a carve, with its first key moved (or renamed, or its request). */
static qk_notice notice_of(const char *id, const char (*slave)[QK_STORE_ID_MAX + 1],
                           qk_key_ref *keys, size_t nk)
{
    qk_notice v;
    memset(&v, 0, sizeof v);
    snprintf(v.request_id, sizeof v.request_id, "%s", id);
    snprintf(v.master, sizeof v.master, "saeA");
    v.slaves = (char(*)[QK_STORE_ID_MAX + 1]) slave;
    v.nslaves = 1;
    v.expires_at = FAR_FUTURE;
    v.keys = keys;
    v.nkeys = nk;
    return v;
}

static void test_notices_refused(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    static const char slave[1][QK_STORE_ID_MAX + 1] = {"saeB"};
    qk_key_ref refs[2], k;
    uint8_t mat[64];
    qk_lease l = lease_a(64);
    qk_reservation r = resv("x-1", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 2, 32, refs, mat, &err), 0);
    qk_notice v[6];
    int res[6];
    /* 0: just past A's granted lease at B */
    k = refs[1];
    k.offset = l.to;
    snprintf(k.key_id, sizeof k.key_id, "%s", "11111111-1111-4111-8111-111111111111");
    qk_key_ref k0 = k;
    v[0] = notice_of("x-out", slave, &k0, 1);
    /* 1: unknown block */
    qk_key_ref k1 = refs[0];
    k1.block_id = 77;
    v[1] = notice_of("x-unknown", slave, &k1, 1);
    /* 2: the real notice */
    v[2] = notice_of("x-1", slave, refs, 2);
    /* 3: the same range again under another request and key ID: collision */
    qk_key_ref k3 = refs[0];
    snprintf(k3.key_id, sizeof k3.key_id, "%s", "22222222-2222-4222-8222-222222222222");
    v[3] = notice_of("x-again", slave, &k3, 1);
    /* 4: a burned (tombstoned) request ID */
    CU_ASSERT_EQUAL(qk_store_burn(B, "x-burned", &err), 0);
    v[4] = notice_of("x-burned", slave, &k0, 1);
    /* 5: B's own side of the link (a HIGH notice for a range A holds) */
    v[5] = notice_of("x-high", slave, &k3, 1);
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 5, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], QK_EINVAL);
    CU_ASSERT_EQUAL(res[1], QK_ENOTFOUND);
    CU_ASSERT_EQUAL(res[2], 0);
    CU_ASSERT_EQUAL(res[3], QK_ECOLLISION);
    CU_ASSERT_EQUAL(res[4], QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_HIGH, &v[5], 1, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], QK_EINVAL); /* outside HIGH's lease (none) */
    /* a refused notice changes nothing */
    bool known = true;
    CU_ASSERT_EQUAL(qk_store_key_known(B, k0.key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k3.key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    int st = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(B, "x-out", &st, &err), QK_ENOTFOUND);
    /* the same request ID with other keys */
    v[2].nkeys = 1;
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v[2], 1, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], QK_EEXIST);
    /* key_known of nonsense is false, not an error */
    CU_ASSERT_EQUAL(qk_store_key_known(B, "no such key", &known, &err), 0);
    CU_ASSERT_FALSE(known);
    CU_ASSERT_EQUAL(qk_store_key_known(B, NULL, &known, &err), QK_EINVAL);
    unpair();
}

/* The slave fetching all noticed keys of a block leased whole to the peer must not retire
 * (wipe) it: the peer may still notice keys it carved there. */
static void test_leased_block_keeps_material(void)
{
    pair(1, 132);
    qk_err err = {0, ""};
    const char *sl[2];
    lease_a(1000); /* all of block 1: at B the cursors meet */
    qk_key_ref refs[2];
    uint8_t mat[64], got[32];
    qk_notice v[1];
    size_t n = 0;
    int res[1];
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof id, "k-%d", i);
        qk_reservation r = resv(id, sl);
        CU_ASSERT_EQUAL_FATAL(
            qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, &refs[i], mat + 32 * i, &err), 0);
        CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 1, &n, &err), 0);
        CU_ASSERT_EQUAL_FATAL(n, 1);
        CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 1, res, &err), 0);
        CU_ASSERT_EQUAL(res[0], 0);
        const char *done[1] = {v[0].request_id};
        CU_ASSERT_EQUAL(qk_store_notices_done(A, done, 1, &err), 0);
        qk_notice_free(v, n);
        const char *ids[1] = {refs[i].key_id};
        qk_fetched_key out[1];
        CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 1, out, got, sizeof got, &err), 0);
        CU_ASSERT_EQUAL(memcmp(got, mat + 32 * i, 32), 0);
    }
    unpair();
}

/* reserve_in (the synchronous path, kept for old peers) refuses a range this end leased. */
static void test_reserve_in_respects_leases(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_lease l = lease_a(500);
    qk_key_ref k;
    memset(&k, 0, sizeof k);
    snprintf(k.key_id, sizeof k.key_id, "%s", "33333333-3333-4333-8333-333333333333");
    k.block_id = 1;
    k.offset = l.from + 100;
    k.length = 32;
    qk_reservation r = resv("old-1", sl);
    CU_ASSERT_EQUAL(qk_store_reserve_in(A, &r, QK_SIDE_HIGH, &k, 1, &err), QK_ECOLLISION);
    CU_ASSERT_EQUAL(row(&DA, 1).state, QK_BLOCK_CONFIRMED); /* refused before the check */
    /* and B's own synchronous carve does not reach into A's lease either */
    qk_key_ref refs[1];
    uint8_t mat[32];
    r = resv("old-2", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(B, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), 0);
    CU_ASSERT(refs[0].offset >= l.to);
    unpair();
}

/* v4 -> v5: existing blocks lease nothing beyond what is carved, old requests are noticed. */
static void test_migration_v4(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_reservation r = resv("m-1", sl);
    qk_key_ref refs[2];
    uint8_t mat[64];
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 2, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 2, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_commit(A, "m-1", false, &err), 0);
    qk_store_close(A);
    A = NULL;
    CU_ASSERT_FATAL(sf_downgrade_v4(DA.path, 1) == 0);
    A = sf_open(DA.path, 1);
    CU_ASSERT_FATAL(A != NULL);
    CU_ASSERT_EQUAL(qk_store_schema_version(A), 8);
    bounds b = row(&DA, 1);
    CU_ASSERT_EQUAL(b.lease_lo, VK + 64);
    CU_ASSERT_EQUAL(b.lease_hi, BIG);
    CU_ASSERT_EQUAL(b.ask, -1);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 0);
    qk_notice v[2];
    size_t n = 9;
    CU_ASSERT_EQUAL(qk_store_notices_pending(A, LINK, v, 2, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(sf_counts_match(A, DA.path, LINK, NULL), 0);
    /* leasing continues after the carved range, and B agrees */
    qk_lease l = lease_a(100);
    CU_ASSERT_EQUAL(l.from, VK + 64);
    unpair();
}

/* ---- runs (docs/adr/0003-request-records.md) --------------------------------------------- */

/* One integer from sql on the store's file (a second connection); -1 on error. */
static long long count_on(const sf_dir *d, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(d->path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_DONE)
            v = sqlite3_changes(db);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The millisecond a version-7 key ID carries (RFC 9562 section 5.7). */
static uint64_t id_ms(const qk_uuid *u)
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | u->b[i];
    return ms;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    CU_ASSERT_FATAL(clock_gettime(CLOCK_REALTIME, &ts) == 0);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* carve_owned writes one run per block and no key row; key IDs are canonical version-4 UUIDs
 * (a_time_ids: version 7, the carve's millisecond), the run's prefix then the index; IDs are
 * known exactly (not past the run's end, not in another spelling); the counters stay exact; the
 * notice carries the derived IDs, the slave (random IDs of its own) records them as runs and
 * fetches the master's bytes; an incoming key ID equal to a run key is refused; a range a run
 * holds is never carved again even with a cursor moved back. */
static void test_runs_one_record(void)
{
    uint64_t t0 = now_ms();
    pair(2, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_key_ref refs[8], r2[2];
    uint8_t mat[8 * 64], got[8 * 64];
    qk_lease l = lease_a(8 * 64 + 2 * 32);
    qk_reservation r = resv("run-1", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 8, 64, refs, mat, &err), 0);
    r = resv("run-2", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 2, 32, r2, mat, &err), 0);
    uint64_t t1 = now_ms();
    CU_ASSERT_EQUAL(count_on(&DA, "SELECT COUNT(*) FROM keys"), 0);
    CU_ASSERT_EQUAL(count_on(&DA, "SELECT COUNT(*) FROM runs"), 2);
    CU_ASSERT_EQUAL(count_on(&DA, "SELECT n FROM runs WHERE request_id = 'run-1'"), 8);
    for (int i = 0; i < 8; i++) {
        qk_uuid u;
        char canon[QK_KEY_ID_LEN + 1], suffix[5];
        CU_ASSERT_EQUAL_FATAL(qk_uuid_parse(refs[i].key_id, QK_KEY_ID_LEN, &u), 0);
        if (a_time_ids) {
            CU_ASSERT_EQUAL(u.b[6] >> 4, 7);
            CU_ASSERT_EQUAL(u.b[8] & 0xc0, 0x80);
            CU_ASSERT(id_ms(&u) >= t0 && id_ms(&u) <= t1);
        } else {
            CU_ASSERT(qk_uuid_is_v4(&u));
        }
        qk_uuid_format(&u, canon);
        CU_ASSERT_STRING_EQUAL(canon, refs[i].key_id);
        CU_ASSERT_EQUAL(memcmp(refs[i].key_id, refs[0].key_id, QK_KEY_ID_LEN - 4), 0);
        snprintf(suffix, sizeof suffix, "%04x", (unsigned)i);
        CU_ASSERT_STRING_EQUAL(refs[i].key_id + QK_KEY_ID_LEN - 4, suffix);
        CU_ASSERT_EQUAL(refs[i].offset, l.from + (uint32_t)i * 64);
        bool known = false;
        CU_ASSERT_EQUAL(qk_store_key_known(A, refs[i].key_id, &known, &err), 0);
        CU_ASSERT_TRUE(known);
    }
    /* another run, another prefix: random bits, and a time-ordered one not earlier */
    CU_ASSERT_NOT_EQUAL(memcmp(r2[0].key_id + 19, refs[0].key_id + 19, QK_KEY_ID_LEN - 4 - 19), 0);
    if (a_time_ids)
        CU_ASSERT(memcmp(r2[0].key_id, refs[0].key_id, 13) >= 0); /* "xxxxxxxx-xxxx": the ms */
    char id[QK_KEY_ID_LEN + 1];
    bool known = true;
    memcpy(id, refs[0].key_id, sizeof id);
    memcpy(id + QK_KEY_ID_LEN - 4, "0008", 4); /* past the run's end */
    CU_ASSERT_EQUAL(qk_store_key_known(A, id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    memcpy(id, refs[0].key_id, sizeof id);
    for (char *c = id; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    if (strcmp(id, refs[0].key_id) != 0) { /* another spelling is another ID */
        CU_ASSERT_EQUAL(qk_store_key_known(A, id, &known, &err), 0);
        CU_ASSERT_FALSE(known);
    }
    CU_ASSERT_EQUAL(sf_counts_match(A, DA.path, LINK, NULL), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(A, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, 10);
    /* the notice expands the runs; the slave gets the master's bytes */
    qk_notice v[2];
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 2, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_EQUAL_FATAL(v[0].nkeys, 8);
    for (int i = 0; i < 8; i++) {
        CU_ASSERT_STRING_EQUAL(v[0].keys[i].key_id, refs[i].key_id);
        CU_ASSERT_EQUAL(v[0].keys[i].offset, refs[i].offset);
        CU_ASSERT_EQUAL(v[0].keys[i].length, 64);
    }
    int res[2] = {9, 9};
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 2, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], 0);
    CU_ASSERT_EQUAL(res[1], 0);
    qk_notice_free(v, n);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs"), 2); /* runs there too */
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM keys"), 0);
    const char *ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = refs[i].key_id;
    qk_fetched_key out[8];
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 8, out, got, sizeof got, &err), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got, blk[0] + l.from, 8 * 64), 0);
    /* a peer's key ID equal to a run key here is refused (inside B's own lease) */
    qk_lease h = lease_b(64);
    static const char slave[1][QK_STORE_ID_MAX + 1] = {"saeB"};
    qk_key_ref k = {{0}, h.block_id, h.from, 32, {0}};
    memcpy(k.key_id, refs[3].key_id, sizeof k.key_id);
    qk_notice vb = notice_of("run-peer", slave, &k, 1);
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(A, LINK, QK_SIDE_HIGH, &vb, 1, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], QK_EEXIST);
    /* a cursor moved back over the runs: the run records stop a second hand-out */
    CU_ASSERT_EQUAL(count_on(&DA, "UPDATE blocks SET lo = lease_lo - 64 WHERE block_id = 1"), 1);
    CU_ASSERT_EQUAL(room(A, QK_SIDE_LOW), 64);
    r = resv("run-3", sl);
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), QK_ESTORAGE);
    /* reopened with the other form of IDs, A still knows every run key it carved */
    qk_store_close(A);
    qk_store_opts ao = {.shared_lock = true, .time_ordered_ids = !a_time_ids};
    A = sf_open_opts(DA.path, 1, &ao);
    CU_ASSERT_PTR_NOT_NULL_FATAL(A);
    known = false;
    CU_ASSERT_EQUAL(qk_store_key_known(A, r2[1].key_id, &known, &err), 0);
    CU_ASSERT_TRUE(known);
    unpair();
}

/* The same with [store] key_ids = time-ordered at the master's end. */
static void test_runs_time_ordered(void)
{
    a_time_ids = true;
    test_runs_one_record();
    a_time_ids = false;
}

/* v5 -> v6: a request carve_owned recorded per key under v5 and not yet noticed is noticed
 * with its keys after the migration. */
static void test_migration_v5(void)
{
    pair(1, BIG);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_key_ref refs[3];
    uint8_t mat[3 * 32];
    lease_a(3 * 32);
    qk_reservation r = resv("m5-1", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 3, 32, refs, mat, &err), 0);
    qk_store_close(A);
    A = NULL;
    /* what v5 wrote: a key row per key, no run */
    CU_ASSERT_EQUAL_FATAL(
        count_on(&DA, "WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x < 2),"
                      " h(request_id, x, k, link, block_id, off, len) AS (SELECT request_id, x,"
                      " lower(hex(id_prefix)) || printf('%04x', x), link, block_id, off + x * len,"
                      " len FROM runs, i)"
                      " INSERT INTO keys(key_id, request_id, seq, link, block_id, off, len, state,"
                      " master, expires_at) SELECT substr(k, 1, 8) || '-' || substr(k, 9, 4) ||"
                      " '-' || substr(k, 13, 4) || '-' || substr(k, 17, 4) || '-' ||"
                      " substr(k, 21, 12), request_id, x, link, block_id, off, len, 2, 'saeA', 0"
                      " FROM h"),
        3);
    CU_ASSERT_EQUAL_FATAL(count_on(&DA, "DELETE FROM runs"), 1);
    CU_ASSERT_FATAL(sf_downgrade_v5(DA.path, 1) == 0);
    A = sf_open(DA.path, 1);
    CU_ASSERT_FATAL(A != NULL);
    CU_ASSERT_EQUAL(qk_store_schema_version(A), 8);
    CU_ASSERT_EQUAL(sf_counts_match(A, DA.path, LINK, NULL), 0);
    qk_notice v[2];
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 2, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL_FATAL(v[0].nkeys, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_STRING_EQUAL(v[0].keys[i].key_id, refs[i].key_id);
        CU_ASSERT_EQUAL(v[0].keys[i].offset, refs[i].offset);
    }
    qk_notice_free(v, n);
    unpair();
}

/* Carve n keys of len at A for one slave, notice them at B (asserting the result). */
static void carve_notice(const char *req, size_t n, uint32_t len, qk_key_ref *refs, uint8_t *mat)
{
    qk_err err = {0, ""};
    const char *sl[2];
    qk_reservation r = resv(req, sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, n, len, refs, mat, &err), 0);
    static const char slave[1][QK_STORE_ID_MAX + 1] = {"saeB"};
    qk_notice v = notice_of(req, slave, refs, n);
    int res = 9;
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL_FATAL(res, 0);
}

static int fetch_b(const char *caller, const char *master, const char **ids, size_t n, uint8_t *got,
                   size_t cap)
{
    qk_fetched_key out[16];
    qk_err err = {0, ""};
    CU_ASSERT_FATAL(n <= 16);
    return qk_store_fetch(B, caller, master, ids, n, out, got, cap, &err);
}

/* The slave end records a one-slave notice of runs as runs (no key row) and keeps each key's
 * state exact: fetched once, by its slave and master only, all or nothing; count_reserved and
 * the pool counters follow each key; burn, expiry and a burned block end the keys not fetched;
 * a repeated notice is idempotent, one with other keys or a known prefix is refused. */
static void test_runs_slave_end(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    qk_key_ref k1[8], k2[2], k3[3];
    uint8_t m1[8 * 64], m2[2 * 32], m3[3 * 32], got[8 * 64];
    lease_a(8 * 64 + 2 * 32 + 3 * 32 + 64);
    carve_notice("s-1", 8, 64, k1, m1);
    carve_notice("s-2", 2, 32, k2, m2);
    carve_notice("s-3", 3, 32, k3, m3);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM keys"), 0);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs WHERE slave = 'saeB'"), 3);
    uint64_t held = 0;
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, "saeA", "saeB", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 13);
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, "saeX", "saeB", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    /* keys 0 and 2 of s-1: the master's bytes */
    const char *ids[4] = {k1[0].key_id, k1[2].key_id};
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got, m1, 64), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got + 64, m1 + 128, 64), 0);
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, NULL, "saeB", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 11);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    /* once only; only its slave; only under its master; past the run's end nothing */
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), QK_ENOTFOUND);
    ids[0] = k1[1].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeC", "saeA", ids, 1, got, sizeof got), QK_EUNAUTH);
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeX", ids, 1, got, sizeof got), QK_ENOTFOUND);
    char past[QK_KEY_ID_LEN + 1];
    memcpy(past, k1[0].key_id, sizeof past);
    memcpy(past + QK_KEY_ID_LEN - 4, "0008", 4);
    ids[0] = past;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), QK_ENOTFOUND);
    /* the same after a live key of the run in one call (the run is read once per call) */
    ids[0] = k1[1].key_id;
    ids[1] = past;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), QK_ENOTFOUND);
    ids[1] = k1[0].key_id; /* fetched above */
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), QK_ENOTFOUND);
    ids[1] = k1[3].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeC", "saeA", ids, 2, got, sizeof got), QK_EUNAUTH);
    /* all or nothing: an ID twice in one call fails the call, the key stays */
    ids[0] = k1[1].key_id;
    ids[1] = k1[3].key_id;
    ids[2] = k1[1].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 3, got, sizeof got), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got, m1 + 64, 64), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got + 64, m1 + 192, 64), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    /* idempotent repeat; other keys under the same request ID refused */
    static const char slave[1][QK_STORE_ID_MAX + 1] = {"saeB"};
    qk_notice v = notice_of("s-1", slave, k1, 8);
    int res = 9;
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, 0);
    v.nkeys = 7;
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_EEXIST);
    /* a run reusing a known prefix over fresh bytes is refused */
    qk_lease l = lease_a(128);
    qk_key_ref dup[2] = {k1[0], k1[1]};
    dup[0].block_id = dup[1].block_id = l.block_id;
    dup[0].offset = l.from;
    dup[1].offset = l.from + 64;
    v = notice_of("s-dup", slave, dup, 2);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_EEXIST);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs"), 3);
    /* a run whose prefix a key row's ID (recorded per key: two slaves) already uses */
    static const char two[2][QK_STORE_ID_MAX + 1] = {"saeB", "saeC"};
    qk_key_ref one = {"0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b0001", l.block_id, l.from, 32, {0}};
    v = notice_of("s-two", two, &one, 1);
    v.nslaves = 2;
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, 0);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM keys"), 1);
    qk_key_ref pre[2] = {
        {"0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b0000", l.block_id, l.from + 32, 32, {0}},
        {"0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b0001", l.block_id, l.from + 64, 32, {0}}};
    v = notice_of("s-pre", slave, pre, 2);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_EEXIST);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs"), 3);
    /* burn s-2: its keys end burned */
    CU_ASSERT_EQUAL(qk_store_burn(B, "s-2", &err), 0);
    ids[0] = k2[0].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), QK_ENOTFOUND);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_burned, 2);
    CU_ASSERT_EQUAL(ps.keys_delivered, 4);
    CU_ASSERT_EQUAL(ps.keys_reserved, 4 + 3 + 1); /* s-two, per key */
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    /* expiry: the 4 keys of s-1 not fetched, s-3's 3 and s-two's */
    size_t n = 0;
    CU_ASSERT_EQUAL(qk_store_expire(B, FAR_FUTURE - 1, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(qk_store_expire(B, FAR_FUTURE, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_expired, 8);
    CU_ASSERT_EQUAL(ps.keys_delivered, 4);
    CU_ASSERT_EQUAL(ps.keys_reserved, 0);
    int st = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(B, "s-3", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 2);
    ids[0] = k1[5].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    unpair();
}

/* A burned block ends the live runs in it; a block fully fetched by runs is kept while the peer
 * leases it (as for key rows). */
/* key_known answers a run a notice recorded from memory (store_known.c): with the run's row
 * deleted behind the store's back it still says known, not past the run's end, not after a
 * reopen; a call that failed after recording a run (its savepoint undone) and a group SQLite
 * rolled back leave nothing known. A notice recorded as runs gets no request_slaves rows at the
 * slave end (the runs name their slave); the master keeps its own. */
static void test_known_from_memory(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    static const char slave[1][QK_STORE_ID_MAX + 1] = {"saeB"};
    const char *sl[2];
    qk_key_ref k1[3], k2[1], k3[1], k4[1];
    uint8_t m1[3 * 32], m2[32], m3[32], m4[32];
    bool known = false;
    lease_a(4096);
    carve_notice("k-1", 3, 32, k1, m1);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM requests WHERE request_id = 'k-1'"), 1);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM request_slaves"), 0);
    /* the master names a request's one slave in its own row (v8), no request_slaves row */
    CU_ASSERT_EQUAL(count_on(&DA, "SELECT COUNT(*) FROM request_slaves WHERE request_id = 'k-1'"),
                    0);
    CU_ASSERT_EQUAL(count_on(&DA, "SELECT COUNT(*) FROM requests WHERE request_id = 'k-1'"
                                  " AND slave = 'saeB'"),
                    1);
    /* v8: requests are indexed by state only while PENDING */
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND"
                                  " tbl_name = 'requests' AND sql LIKE '%WHERE state = 0'"),
                    1);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND"
                                  " tbl_name = 'requests' AND sql LIKE '%(direction, state%'"),
                    0);
    CU_ASSERT_EQUAL(count_on(&DB, "DELETE FROM runs WHERE request_id = 'k-1'"), 1);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k1[2].key_id, &known, &err), 0);
    CU_ASSERT_TRUE(known); /* from memory: the table has no such run any more */
    char past[QK_KEY_ID_LEN + 1];
    memcpy(past, k1[0].key_id, sizeof past);
    memcpy(past + QK_KEY_ID_LEN - 4, "0003", 4);
    CU_ASSERT_EQUAL(qk_store_key_known(B, past, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    B = reopen(B, &DB, 2);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k1[0].key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known); /* a new open starts empty; the table answers */
    /* runs that fail to record: k-ab's insert aborts (the call fails, k-2 before it in the same
     * call is undone with it); k-rb's rolls back the transaction of an inline group whose
     * first call (k-3) was kept */
    CU_ASSERT_EQUAL(count_on(&DB,
                             "CREATE TRIGGER t_ab BEFORE INSERT ON runs WHEN"
                             " NEW.request_id = 'k-ab' BEGIN SELECT RAISE(ABORT, 'test'); END"),
                    0);
    CU_ASSERT_EQUAL(count_on(&DB, "CREATE TRIGGER t_rb BEFORE INSERT ON runs WHEN"
                                  " NEW.request_id = 'k-rb' BEGIN SELECT RAISE(ROLLBACK, 'test');"
                                  " END"),
                    0);
    qk_reservation r = resv("k-2", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, k2, m2, &err), 0);
    r = resv("k-ab", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, k3, m3, &err), 0);
    qk_notice v[2] = {notice_of("k-2", slave, k2, 1), notice_of("k-ab", slave, k3, 1)};
    int res[2] = {9, 9};
    CU_ASSERT_NOT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 2, res, &err), 0);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k2[0].key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    /* the counters (written at the COMMIT, store_counts.c) took the undone call's change back */
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    uint64_t reserved = ps.keys_reserved;
    r = resv("k-3", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, k3, m3, &err), 0);
    r = resv("k-rb", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, k4, m4, &err), 0);
    qk_inline ic;
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    v[0] = notice_of("k-3", slave, k3, 1);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 1, res, &err), 0);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k3[0].key_id, &known, &err), 0);
    CU_ASSERT_TRUE(known); /* kept in the open group: the table would show it too */
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, reserved + 1); /* the counter change not written yet */
    v[0] = notice_of("k-rb", slave, k4, 1);
    CU_ASSERT_NOT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 1, res, &err), 0);
    qk_inline_end();
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM requests WHERE request_id = 'k-3'"), 0);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k3[0].key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, reserved); /* the lost group's counter changes dropped */
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    /* the same notices again, the triggers gone: recorded and known */
    CU_ASSERT_EQUAL(count_on(&DB, "DROP TRIGGER t_rb"), 0);
    v[1] = notice_of("k-rb", slave, k4, 1);
    v[0] = notice_of("k-3", slave, k3, 1);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, 2, res, &err), 0);
    CU_ASSERT_EQUAL(res[0], 0);
    CU_ASSERT_EQUAL(res[1], 0);
    CU_ASSERT_EQUAL(qk_store_key_known(B, k4[0].key_id, &known, &err), 0);
    CU_ASSERT_TRUE(known);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM request_slaves"), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    unpair();
}

/* The pool counters of runs (store_counts.c, schema v8: no triggers): more changes in one call
 * than the call's log holds are written at once and still undone with the call; more counter
 * rows than the table holds likewise; inserts, fetches, burns, expiry and a burned block keep
 * pool_counts equal to a recount after every step (sf_counts_match). */
static void test_run_counters(void)
{
    enum { N = QS_COUNT_LOG + 6, X = 4 }; /* X more for the groups below */
    pair(2, BIG);
    qk_err err = {0, ""};
    static const char slave[1][QK_STORE_ID_MAX + 1] = {"saeB"};
    const char *sl[2];
    qk_key_ref *k = calloc(N + X, sizeof *k);
    uint8_t *m = malloc((N + X) * 32), got[64];
    qk_notice *v = calloc(N + X, sizeof *v);
    int *res = calloc(N + X, sizeof *res);
    CU_ASSERT_FATAL(k && m && v && res);
    lease_a((N + X + 1) * 32 + 256);
    char id[N + X][16];
    for (int i = 0; i < N + X; i++) {
        snprintf(id[i], sizeof id[i], "c-%d", i);
        qk_reservation r = resv(id[i], sl);
        CU_ASSERT_EQUAL_FATAL(
            qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, &k[i], m + 32 * i, &err), 0);
        v[i] = notice_of(id[i], slave, &k[i], 1);
    }
    CU_ASSERT_EQUAL(sf_counts_match(A, DA.path, LINK, NULL), 0);
    /* a carve's cursor move is counted in code (qs_set_cursor): inside an open group
     * pool_status sees it, and the COMMIT writes it */
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(A, LINK, &ps, &err), 0);
    uint64_t avail = ps.bytes_available, held = ps.bytes_held;
    qk_inline ica;
    qk_inline_begin(&ica, 0);
    ica.group_commit = true;
    qk_reservation ra = resv("c-a", sl);
    qk_key_ref ka;
    uint8_t ma[32];
    CU_ASSERT_EQUAL(qk_store_carve_owned(A, &ra, QK_SIDE_LOW, 1, 32, &ka, ma, &err), 0);
    /* the pool cap sees the carve too: a block that fits only once the 32 bytes are gone */
    uint8_t nb[64];
    randombytes_buf(nb, sizeof nb);
    qk_put_result put = QK_PUT_FULL;
    CU_ASSERT_EQUAL(qk_store_block_put_capped(A, LINK, 9, nb, sizeof nb,
                                              held - 32 + sizeof nb - QK_BLOCK_VKEY_LEN, &put,
                                              &err),
                    0);
    CU_ASSERT_EQUAL(put, QK_PUT_NEW);
    qk_inline_end();
    CU_ASSERT_EQUAL(qk_store_pool_status(A, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.bytes_available, avail - 32);
    CU_ASSERT_EQUAL(ps.bytes_held, held - 32 + sizeof nb - QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL_FATAL(qs_begin(A, &err), 0);
    CU_ASSERT_EQUAL(qs_end(A, 0, true, &err), 0);
    CU_ASSERT_EQUAL(sf_counts_match(A, DA.path, LINK, NULL), 0);
    /* one call of N notices, the last one's run insert aborting: all undone */
    char sql[160];
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER t_ab BEFORE INSERT ON runs WHEN NEW.request_id = 'c-%d'"
             " BEGIN SELECT RAISE(ABORT, 't'); END",
             N);
    CU_ASSERT_EQUAL(count_on(&DB, sql), 0);
    snprintf(v[N - 1].request_id, sizeof v[N - 1].request_id, "c-%d", N);
    CU_ASSERT_NOT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, N, res, &err), 0);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs"), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, 0);
    CU_ASSERT_EQUAL(count_on(&DB, "DROP TRIGGER t_ab"), 0);
    /* the same call without the trigger: N runs, the counters agree */
    snprintf(v[N - 1].request_id, sizeof v[N - 1].request_id, "%s", id[N - 1]);
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, N, res, &err), 0);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs"), N);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, N);
    /* fetch, burn, expire: each step agrees with a recount */
    const char *ids[1] = {k[0].key_id};
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got, m, 32), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(qk_store_burn(B, id[1], &err), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(count_on(&DB, "UPDATE runs SET expires_at = 1 WHERE request_id = 'c-2'"), 1);
    size_t ended = 0;
    CU_ASSERT_EQUAL(qk_store_expire(B, 1000, &ended, &err), 0);
    CU_ASSERT_EQUAL(ended, 1);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, N - 3);
    CU_ASSERT_EQUAL(ps.keys_delivered, 1);
    CU_ASSERT_EQUAL(ps.keys_burned, 1);
    CU_ASSERT_EQUAL(ps.keys_expired, 1);
    /* inside one group: a kept call, then an undone one (its change taken back from the sums
     * the group's COMMIT writes) */
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER t_ab2 BEFORE INSERT ON runs WHEN NEW.request_id = '%s'"
             " BEGIN SELECT RAISE(ABORT, 't'); END",
             id[N + 2]);
    CU_ASSERT_EQUAL(count_on(&DB, sql), 0);
    qk_inline ic;
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v[N], 1, res, &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v[N + 1], 2, res, &err), 0);
    qk_inline_end();
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0); /* the group still open */
    CU_ASSERT_EQUAL(ps.keys_reserved, N - 3 + 1);
    CU_ASSERT_EQUAL_FATAL(qs_begin(B, &err), 0); /* a call not inline commits the group */
    CU_ASSERT_EQUAL(qs_end(B, 0, true, &err), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    /* a group whose counters cannot be written is lost, and its changes with it */
    CU_ASSERT_EQUAL(count_on(&DB, "CREATE TRIGGER t_pc BEFORE UPDATE ON pool_counts"
                                  " BEGIN SELECT RAISE(ABORT, 't'); END"),
                    0);
    CU_ASSERT_NOT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v[N + 1], 1, res, &err), 0);
    CU_ASSERT_EQUAL(count_on(&DB, "DROP TRIGGER t_pc"), 0);
    CU_ASSERT_EQUAL(count_on(&DB, "SELECT COUNT(*) FROM runs"), N + 1);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v[N + 1], 1, res, &err), 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, N - 3 + 2);
    free(k);
    free(m);
    free(v);
    free(res);
    unpair();
}

/* A pair whose request req put a run of four 32-byte keys (k, their bytes m) at B, the first
 * fetched by its slave (its bytes checked); ids[0] names it, got has room for all four. */
typedef struct {
    qk_key_ref k[4];
    uint8_t m[4 * 32], got[4 * 32];
    const char *ids[1];
} four_keys;

static void four_keys_first_fetched(const char *req, four_keys *f)
{
    pair(2, BIG);
    lease_a(4 * 32);
    carve_notice(req, 4, 32, f->k, f->m);
    f->ids[0] = f->k[0].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f->ids, 1, f->got, sizeof f->got), 0);
    CU_ASSERT_EQUAL(memcmp(f->got, f->m, 32), 0);
}

/* The slave end's runs in memory (store_runcache.c) stay what the table holds: a take undone
 * with its call (its run's copy already written through) leaves the key fetchable, with its
 * bytes; a run row changed behind the store's back (n_done and the bitmap, as a second
 * delivery would leave them) makes the fetch of a key the copy still calls live fail, and
 * nothing is delivered. (A block burned under held runs: test_runs_block_burned.) */
static void test_runs_in_memory(void)
{
    qk_err err = {0, ""};
    four_keys f;
    four_keys_first_fetched("c-1", &f);
    /* key 1 taken in a call that is then undone */
    qs_run_row run;
    uint32_t idx = 0;
    CU_ASSERT_EQUAL_FATAL(qs_begin(B, &err), 0);
    int rc = qs_run_find(B, f.k[1].key_id, &run, &idx, &err);
    CU_ASSERT_EQUAL(rc, 1);
    if (rc == 1)
        rc = qs_run_take(B, &run, idx, 1, f.got, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(qs_end(B, QK_EINVAL, false, &err), QK_EINVAL);
    memset(f.got, 0, sizeof f.got);
    f.ids[0] = f.k[1].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), 0);
    CU_ASSERT_EQUAL(memcmp(f.got, f.m + 32, 32), 0);
    /* key 3 marked fetched behind the store's back: its fetch fails, nothing delivered */
    CU_ASSERT_EQUAL(count_on(&DB, "UPDATE runs SET n_done = n_done + 1,"
                                  " fetched = X'0b' WHERE request_id = 'c-1'"),
                    1);
    memset(f.got, 0, sizeof f.got);
    f.ids[0] = f.k[3].key_id;
    CU_ASSERT_NOT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), 0);
    uint8_t acc = 0;
    for (size_t i = 0; i < 32; i++)
        acc |= f.got[i];
    CU_ASSERT_EQUAL(acc, 0);
    /* key 2, still live in the row, is fetched once the copy was dropped */
    f.ids[0] = f.k[2].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), 0);
    CU_ASSERT_EQUAL(memcmp(f.got, f.m + 64, 32), 0);
    unpair();
}

/* The copies stay across a call that changes nothing: a fetch refused because its key is not
 * known, a read of the pending notices. Shown by a row changed behind the store's back after
 * those calls: the fetch of a live key still goes by its copy, whose state no longer matches
 * the row, and fails delivering nothing (a dropped copy would have read the row and served
 * the key). The failure drops the copy, and the next fetch serves the key from the row. */
static void test_runs_in_memory_kept(void)
{
    qk_err err = {0, ""};
    four_keys f;
    four_keys_first_fetched("k-1", &f);
    f.ids[0] = "4f1c2b7a-9d3e-4a5b-8c6d-7e8f9a0b1c2d"; /* well formed, never issued */
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), QK_ENOTFOUND);
    qk_notice pend[4];
    size_t np = 9;
    CU_ASSERT_EQUAL(qk_store_notices_pending(B, LINK, pend, 4, &np, &err), 0);
    CU_ASSERT_EQUAL(np, 0);
    /* key 3 marked fetched behind the store's back */
    CU_ASSERT_EQUAL(count_on(&DB, "UPDATE runs SET n_done = n_done + 1,"
                                  " fetched = X'09' WHERE request_id = 'k-1'"),
                    1);
    memset(f.got, 0, sizeof f.got);
    f.ids[0] = f.k[2].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), QK_ESTORAGE);
    uint8_t acc = 0;
    for (size_t i = 0; i < 32; i++)
        acc |= f.got[i];
    CU_ASSERT_EQUAL(acc, 0);
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), 0);
    CU_ASSERT_EQUAL(memcmp(f.got, f.m + 64, 32), 0);
    f.ids[0] = f.k[3].key_id; /* the row's word: fetched */
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), QK_ENOTFOUND);
    unpair();
}

static void test_runs_block_burned(void)
{
    qk_err err = {0, ""};
    four_keys f;
    four_keys_first_fetched("b-1", &f);
    CU_ASSERT_EQUAL(qk_store_block_set_state(B, LINK, f.k[0].block_id, QK_BLOCK_BURNED, &err), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_burned, 3);
    CU_ASSERT_EQUAL(ps.keys_delivered, 1);
    CU_ASSERT_EQUAL(ps.keys_reserved, 0);
    f.ids[0] = f.k[1].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", f.ids, 1, f.got, sizeof f.got), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    unpair();
}

/* Adjacent keys of a run fetched in one call are read and consumed as one range, with the
 * same per-key answers: bytes, once only, all or nothing. */
static void test_runs_fetch_adjacent(void)
{
    pair(2, BIG);
    qk_err err = {0, ""};
    qk_key_ref k[6];
    uint8_t m[6 * 32], got[6 * 32];
    lease_a(6 * 32);
    carve_notice("a-1", 6, 32, k, m);
    const char *ids[3] = {k[1].key_id, k[2].key_id, k[3].key_id};
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 3, got, sizeof got), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got, m + 32, 3 * 32), 0);
    /* the per-key views (migration v6) show each key as a key row would */
    for (int i = 0; i < 6; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT state * 10 + (off = %u) FROM key_view WHERE key_id = '%s'", k[i].offset,
                 k[i].key_id);
        CU_ASSERT_EQUAL(count_on(&DA, sql), 2 * 10 + 1);
        CU_ASSERT_EQUAL(count_on(&DB, sql), (i >= 1 && i <= 3 ? 2 : 1) * 10 + 1);
        snprintf(sql, sizeof sql,
                 "SELECT state FROM copy_view WHERE key_id = '%s' AND slave = 'saeB'", k[i].key_id);
        CU_ASSERT_EQUAL(count_on(&DB, sql), i >= 1 && i <= 3 ? 1 : 0);
    }
    ids[0] = k[2].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), QK_ENOTFOUND);
    /* 4 then 5: 5 already fetched, so the pair fails and 4 stays */
    ids[0] = k[5].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 1, got, sizeof got), 0);
    ids[0] = k[4].key_id;
    ids[1] = k[5].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), QK_ENOTFOUND);
    uint64_t held = 0;
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, "saeA", "saeB", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 2); /* keys 0 and 4 */
    /* 0 with 1 (fetched): adjacent, refused */
    ids[0] = k[0].key_id;
    ids[1] = k[1].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), QK_ENOTFOUND);
    ids[1] = k[4].key_id;
    CU_ASSERT_EQUAL(fetch_b("saeB", "saeA", ids, 2, got, sizeof got), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got, m, 32), 0);
    CU_ASSERT_EQUAL(sodium_memcmp(got + 32, m + 4 * 32, 32), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, 6);
    CU_ASSERT_EQUAL(ps.keys_reserved, 0);
    CU_ASSERT_EQUAL(sf_counts_match(B, DB.path, LINK, "saeB"), 0);
    unpair();
}

/* ---- a notice's fetches join its sync (store_join.c) ------------------------------------ */

static atomic_int j_syncs, j_done;

static int j_hook(int fd)
{
    atomic_fetch_add(&j_syncs, 1);
    return fdatasync(fd);
}

static void j_cb(qk_inline_waiter *w, int err)
{
    (void)w;
    if (err == 0)
        atomic_fetch_add(&j_done, 1);
}

/* Wait up to ms for n completed replies. */
static bool j_wait(int n, int ms)
{
    double end = sf_now_ms() + ms;
    while (atomic_load(&j_done) < n && sf_now_ms() < end)
        sf_sleep_ms(2);
    return atomic_load(&j_done) >= n;
}

/* A store call at B as an inline handler makes it (group commit), then its reply's wait on
 * B's barrier, as the envelope does: queued for the syncer, or counted done when the sync
 * that covers it has already happened. */
static void j_reply(const qk_inline *ic, qk_inline_waiter *w)
{
    CU_ASSERT_FATAL(ic->await != NULL);
    *w = (qk_inline_waiter){.done = j_cb, .sync_seq = ic->sync_seq};
    int a = ic->await(ic->owner, ic->seq, w);
    CU_ASSERT(a == 0 || a == 1);
    if (a == 1)
        atomic_fetch_add(&j_done, 1);
}

static void j_notice_in(qk_notice *v, size_t n, qk_inline_waiter *w)
{
    qk_inline ic;
    int res[4] = {9, 9, 9, 9};
    qk_err err = {0, ""};
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, v, n, res, &err), 0);
    qk_inline_end();
    CU_ASSERT_EQUAL(res[0], 0);
    j_reply(&ic, w);
}

static int j_fetch(const char *id, qk_inline_waiter *w)
{
    qk_inline ic;
    qk_fetched_key out[1];
    uint8_t got[32];
    qk_err err = {0, ""};
    const char *ids[1] = {id};
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    int rc = qk_store_fetch(B, "saeB", "saeA", ids, 1, out, got, sizeof got, &err);
    qk_inline_end();
    sodium_memzero(got, sizeof got);
    if (rc == 0)
        j_reply(&ic, w);
    return rc;
}

/* One key carved at A for one slave (a run) and its notice, ready for B; the sync hook counts
 * from here. */
static void j_setup(const char *req, qk_key_ref *ref, qk_notice *v)
{
    pair(1, BIG);
    lease_a(1000);
    const char *sl[2];
    uint8_t mat[32];
    qk_err err = {0, ""};
    qk_reservation r = resv(req, sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve_owned(A, &r, QK_SIDE_LOW, 1, 32, ref, mat, &err), 0);
    sodium_memzero(mat, sizeof mat);
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, v, 1, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    atomic_store(&j_syncs, 0);
    atomic_store(&j_done, 0);
    qs_test_fdatasync = j_hook;
}

static void j_teardown(qk_notice *v)
{
    qs_test_fdatasync = NULL;
    qs_join_wait_us = QS_JOIN_WAIT_US;
    qk_notice_free(v, 1);
    unpair();
}

/* The slave's fetch of a noticed key joins the notice's sync: the notice's reply waits (its
 * sync is held) until the fetch came, then one sync covers both; the delivery is durable (a
 * second fetch after a reopen is refused). A notice already applied expects nothing: its
 * reply does not wait. */
static void test_join_fetch(void)
{
    qk_key_ref ref;
    qk_notice v[1];
    j_setup("j-1", &ref, v);
    qs_join_wait_us = 3000000; /* 3 s: far longer than anything below may take */
    qk_inline_waiter wn, wf;
    j_notice_in(v, 1, &wn);
    sf_sleep_ms(200);
    CU_ASSERT_EQUAL(atomic_load(&j_done), 0); /* held for the fetch */
    CU_ASSERT_EQUAL(atomic_load(&j_syncs), 0);
    double t0 = sf_now_ms();
    CU_ASSERT_EQUAL_FATAL(j_fetch(ref.key_id, &wf), 0);
    CU_ASSERT(j_wait(2, 2000));
    CU_ASSERT(sf_now_ms() - t0 < 1500);        /* the fetch ended the hold, not its time */
    CU_ASSERT_EQUAL(atomic_load(&j_syncs), 1); /* one sync for the notice and the fetch */
    /* the same notice again: known, nothing recorded, nothing expected */
    atomic_store(&j_done, 0);
    t0 = sf_now_ms();
    j_notice_in(v, 1, &wn);
    CU_ASSERT(j_wait(1, 2000));
    CU_ASSERT(sf_now_ms() - t0 < 1500);
    qs_test_fdatasync = NULL;
    B = reopen(B, &DB, 2);
    qk_inline_waiter w2;
    CU_ASSERT_EQUAL(j_fetch(ref.key_id, &w2), QK_ENOTFOUND); /* delivered once, durably */
    j_teardown(v);
}

/* Without the fetch, the notice's reply waits qs_join_wait_us from the notice, then its sync
 * goes alone; the fetch that comes later gets a sync of its own. */
static void test_join_times_out(void)
{
    qk_key_ref ref;
    qk_notice v[1];
    j_setup("j-2", &ref, v);
    qs_join_wait_us = 300000; /* 300 ms */
    qk_inline_waiter wn, wf;
    double t0 = sf_now_ms();
    j_notice_in(v, 1, &wn);
    sf_sleep_ms(100);
    CU_ASSERT_EQUAL(atomic_load(&j_done), 0);
    CU_ASSERT(j_wait(1, 3000));
    CU_ASSERT(sf_now_ms() - t0 >= 250);
    CU_ASSERT_EQUAL(atomic_load(&j_syncs), 1);
    CU_ASSERT_EQUAL_FATAL(j_fetch(ref.key_id, &wf), 0);
    CU_ASSERT(j_wait(2, 1000)); /* nothing expected any more: no hold */
    CU_ASSERT_EQUAL(atomic_load(&j_syncs), 2);
    j_teardown(v);
}

int suite_store_lease(void)
{
    CU_pSuite s = CU_add_suite("store_lease", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        void (*fn)(void);
    } t[] = {
        {"ask, grant, idempotent grant, half the room", test_ask_grant},
        {"a 4 KiB block is shared, not taken whole by the first ask", test_small_block_shared},
        {"racing asks refused, never both granted", test_refused_and_racing},
        {"asks from one view do not overlap", test_same_view_asks},
        {"random interleavings never hand out a byte twice", test_random_interleavings},
        {"a lease reads no material; a grant confirms a pending block",
         test_lease_reads_no_material},
        {"leftover ask asked again after reopen", test_reask_after_reopen},
        {"carve_owned stays inside the granted lease", test_carve_owned_stays_inside},
        {"a tail too short for the keys is closed", test_tail_closed},
        {"a tail no carve left is closed by the periodic sweep", test_tail_closed_later},
        {"notices: pending, notice_in, fetch the same bytes, done", test_notices_roundtrip},
        {"notices refused change nothing", test_notices_refused},
        {"notices from memory: the carves' copies, done, burn, reopen", test_notices_from_memory},
        {"notices from memory: a full queue lets the table answer", test_notices_queue_full},
        {"a leased block keeps its material for later notices", test_leased_block_keeps_material},
        {"reserve_in and carve respect leases", test_reserve_in_respects_leases},
        {"migration from v4", test_migration_v4},
        {"carve_owned: one run record per block, derived key IDs", test_runs_one_record},
        {"carve_owned: time-ordered key IDs (version 7)", test_runs_time_ordered},
        {"migration from v5: per-key requests still noticed", test_migration_v5},
        {"slave end: runs with exact per-key state", test_runs_slave_end},
        {"key_known from memory; no slave rows for runs at the slave", test_known_from_memory},
        {"runs in memory match the table at the slave end", test_runs_in_memory},
        {"runs in memory kept across a call that changes nothing", test_runs_in_memory_kept},
        {"run counters written per transaction agree with a recount", test_run_counters},
        {"slave end: a burned block ends its live runs", test_runs_block_burned},
        {"slave end: adjacent keys fetched as one range", test_runs_fetch_adjacent},
        {"join: a notice's sync waits for the fetch of its keys", test_join_fetch},
        {"join: without the fetch the notice's sync goes at the wait's end", test_join_times_out},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!CU_add_test(s, t[i].name, t[i].fn))
            return -1;
    return 0;
}
