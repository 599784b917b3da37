/* test_store_peer.c - two stores simulating the two KMEs of a link: carve at A, reserve_in
 * at B, commit at A, fetch at B; check mismatch burns; collisions; idempotency; tombstones;
 * unknown and pending blocks; cursor movement after incoming reservations. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "store_fixture.h"

#define LINK       "KME_A~KME_B"
#define FAR_FUTURE 4000000000ull
#define BL         132 /* block length: 100 carvable bytes */

static sf_dir DA, DB;
static qk_store *A, *B;
static uint8_t blk[2][BL];

/* Two KMEs holding the same confirmed blocks 1 and 2. */
static void pair(void)
{
    CU_ASSERT_FATAL(sf_dir_make(&DA, "kmeA") == 0);
    CU_ASSERT_FATAL(sf_dir_make(&DB, "kmeB") == 0);
    A = sf_open(DA.path, 1);
    B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(A && B);
    randombytes_buf(blk, sizeof blk);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_FATAL(sf_put_confirmed(A, LINK, (uint64_t)i + 1, blk[i], BL) == 0);
        CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, (uint64_t)i + 1, blk[i], BL) == 0);
    }
}

static void unpair(void)
{
    qk_store_close(A);
    qk_store_close(B);
    A = B = NULL;
    sf_dir_remove(&DA);
    sf_dir_remove(&DB);
}

static qk_reservation resv(const char *req, const char **sl)
{
    return sf_resv(req, LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
}

static void test_roundtrip(void)
{
    pair();
    const char *sl[2];
    qk_reservation r = resv("req-1", sl);
    qk_key_ref refs[3];
    uint8_t mat[96], got[96];
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 3, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[2].block_id, 1);
    CU_ASSERT_EQUAL(refs[2].offset, 96);
    CU_ASSERT_EQUAL_FATAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 3, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(A, "req-1", false, &err), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(A, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, 3);
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, 3);
    CU_ASSERT_EQUAL(ps.bytes_available, 4 + 100); /* block 1: 4 left; block 2 untouched */
    uint64_t n = 0;
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, "saeA", "saeB", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 3);
    const char *ids[3] = {refs[0].key_id, refs[1].key_id, refs[2].key_id};
    qk_fetched_key out[3];
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 3, out, got, sizeof got, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat, sizeof mat), 0);
    CU_ASSERT_EQUAL(memcmp(got, blk[0] + 32, sizeof got), 0);
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 1, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    /* B (high side) now carves from the back of the newest block */
    qk_reservation r2 = resv("req-2", sl);
    CU_ASSERT_EQUAL(qk_store_carve(B, &r2, QK_SIDE_HIGH, 1, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[0].block_id, 2);
    CU_ASSERT_EQUAL(refs[0].offset, BL - 32);
    CU_ASSERT_EQUAL(qk_store_reserve_in(A, &r2, QK_SIDE_HIGH, refs, 1, &err), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(A, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.bytes_available, 4 + 100 - 32);
    unpair();
}

static void test_mismatch_burns_block(void)
{
    pair();
    const char *sl[2];
    qk_reservation r = resv("req-m", sl);
    qk_key_ref refs[2];
    uint8_t mat[100];
    qk_err err = {0, ""};
    /* B holds a different block 3 (one byte differs inside the carved range) */
    uint8_t x[BL];
    randombytes_buf(x, sizeof x);
    CU_ASSERT_EQUAL_FATAL(sf_put_confirmed(A, LINK, 3, x, BL), 0);
    x[40] ^= 0x80;
    CU_ASSERT_EQUAL_FATAL(sf_put_confirmed(B, LINK, 3, x, BL), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_HIGH, 1, 100, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[0].block_id, 3);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_HIGH, refs, 1, &err), QK_EMISMATCH);
    uint8_t dg[QK_CHECK_LEN];
    qk_block_state st = QK_BLOCK_PENDING;
    CU_ASSERT_EQUAL(qk_store_block_digest(B, LINK, 3, dg, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_BURNED);
    int rs = 0;
    CU_ASSERT_EQUAL(qk_store_request_state(B, "req-m", &rs, &err), QK_ENOTFOUND);
    /* a forged check on a good block is refused the same way */
    qk_reservation r2 = resv("req-f", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r2, QK_SIDE_LOW, 1, 32, refs, mat, &err), 0);
    refs[0].check[0] ^= 1;
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r2, QK_SIDE_LOW, refs, 1, &err), QK_EMISMATCH);
    CU_ASSERT_EQUAL(qk_store_block_digest(B, LINK, refs[0].block_id, dg, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_BURNED);
    /* block 2 is untouched at B */
    CU_ASSERT_EQUAL(qk_store_block_digest(B, LINK, 2, dg, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_CONFIRMED);
    unpair();
}

static void test_collision_in_last_block(void)
{
    pair();
    const char *sl[2];
    qk_key_ref ra[1], rb[1];
    uint8_t ma[60], mb[60];
    qk_err err = {0, ""};
    /* both ends carve 60 bytes of block 1 (the only one with room) from opposite ends */
    CU_ASSERT_EQUAL(qk_store_block_set_state(A, LINK, 2, QK_BLOCK_BURNED, &err), 0);
    CU_ASSERT_EQUAL(qk_store_block_set_state(B, LINK, 2, QK_BLOCK_BURNED, &err), 0);
    qk_reservation r1 = resv("from-a", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r1, QK_SIDE_LOW, 1, 60, ra, ma, &err), 0);
    const char *sl2[2];
    qk_reservation r2 = resv("from-b", sl2);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(B, &r2, QK_SIDE_HIGH, 1, 60, rb, mb, &err), 0);
    CU_ASSERT_EQUAL(ra[0].offset, 32);
    CU_ASSERT_EQUAL(rb[0].offset, 72);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r1, QK_SIDE_LOW, ra, 1, &err), QK_ECOLLISION);
    CU_ASSERT_EQUAL(qk_store_reserve_in(A, &r2, QK_SIDE_HIGH, rb, 1, &err), QK_ECOLLISION);
    int rs = 0;
    CU_ASSERT_EQUAL(qk_store_request_state(B, "from-a", &rs, &err), QK_ENOTFOUND);
    /* the block is not burned by a collision */
    uint8_t dg[QK_CHECK_LEN];
    qk_block_state st = QK_BLOCK_PENDING;
    CU_ASSERT_EQUAL(qk_store_block_digest(B, LINK, 1, dg, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_CONFIRMED);
    /* both burn; nothing of the overlap is reused */
    CU_ASSERT_EQUAL(qk_store_burn(A, "from-a", &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(B, "from-b", &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(A, "from-b", &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(B, "from-a", &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r1, QK_SIDE_LOW, ra, 1, &err), QK_EINVAL);
    unpair();
}

static void test_overlap_within_request(void)
{
    pair();
    const char *sl[2];
    qk_reservation r = resv("self", sl);
    qk_key_ref refs[2];
    uint8_t mat[64];
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 2, 32, refs, mat, &err), 0);
    refs[1].offset = refs[0].offset + 16; /* a peer bug: overlapping ranges */
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 2, &err), QK_ECOLLISION);
    unpair();
}

static void test_idempotent_reserve(void)
{
    pair();
    const char *sl[2];
    qk_reservation r = resv("idem", sl);
    qk_key_ref refs[2];
    uint8_t mat[64];
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 2, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 2, &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 2, &err), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, 2);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 1, &err), QK_EEXIST);
    /* an outgoing request id at B cannot be reused by the peer */
    qk_reservation rb = resv("mine", sl);
    qk_key_ref mine[1];
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(B, &rb, QK_SIDE_HIGH, 1, 8, mine, mat, &err), 0);
    qk_reservation ra = resv("mine", sl);
    qk_key_ref other[1];
    qk_reservation rx = resv("x", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &rx, QK_SIDE_LOW, 1, 8, other, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &ra, QK_SIDE_LOW, other, 1, &err), QK_EEXIST);
    /* the same key id under another request is refused */
    qk_reservation r3 = resv("idem-2", sl);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r3, QK_SIDE_LOW, refs, 1, &err), QK_ECOLLISION);
    unpair();
}

static void test_burn_then_reserve_refused(void)
{
    pair();
    const char *sl[2];
    qk_reservation r = resv("late", sl);
    qk_key_ref refs[1];
    uint8_t mat[32];
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 1, 32, refs, mat, &err), 0);
    /* A gave up (timeout) and burned at both ends before B saw the reserve */
    CU_ASSERT_EQUAL(qk_store_burn(A, "late", &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(B, "late", &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 1, &err), QK_EINVAL);
    /* and after a successful reserve, a burn at B zeroes and refuses fetches */
    qk_reservation r2 = resv("late-2", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r2, QK_SIDE_LOW, 1, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r2, QK_SIDE_LOW, refs, 1, &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(B, "late-2", &err), 0);
    const char *ids[1] = {refs[0].key_id};
    qk_fetched_key out[1];
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", NULL, ids, 1, out, mat, sizeof mat, &err),
                    QK_ENOTFOUND);
    unpair();
}

static void test_unknown_and_pending_blocks(void)
{
    pair();
    const char *sl[2];
    qk_err err = {0, ""};
    uint8_t x[BL];
    randombytes_buf(x, sizeof x);
    CU_ASSERT_EQUAL_FATAL(sf_put_confirmed(A, LINK, 7, x, BL), 0);
    qk_reservation r = resv("unk", sl);
    qk_key_ref refs[1];
    uint8_t mat[32];
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_HIGH, 1, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[0].block_id, 7);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_HIGH, refs, 1, &err), QK_ENOTFOUND);
    /* B receives block 7 late: still pending there; a matching check confirms it */
    qk_put_result res;
    CU_ASSERT_EQUAL(qk_store_block_put(B, LINK, 7, x, BL, &res, &err), 0);
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r, QK_SIDE_HIGH, refs, 1, &err), 0);
    uint8_t dg[QK_CHECK_LEN];
    qk_block_state st = QK_BLOCK_PENDING;
    CU_ASSERT_EQUAL(qk_store_block_digest(B, LINK, 7, dg, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_CONFIRMED);
    /* both ends computed the same digest for block 7 */
    uint8_t da[QK_CHECK_LEN];
    CU_ASSERT_EQUAL(qk_store_block_digest(A, LINK, 7, da, &st, &err), 0);
    CU_ASSERT_EQUAL(memcmp(da, dg, sizeof da), 0);
    /* ranges touching the verification key or beyond the block are refused */
    qk_reservation r2 = resv("bad-range", sl);
    qk_key_ref bad = refs[0];
    bad.offset = 16;
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r2, QK_SIDE_HIGH, &bad, 1, &err), QK_EINVAL);
    bad.offset = BL - 8;
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r2, QK_SIDE_HIGH, &bad, 1, &err), QK_EINVAL);
    snprintf(bad.key_id, sizeof bad.key_id, "not-a-uuid");
    CU_ASSERT_EQUAL(qk_store_reserve_in(B, &r2, QK_SIDE_HIGH, &bad, 1, &err), QK_EINVAL);
    unpair();
}

/* Pool counters (migration v4) equal a COUNT(*) recount after carve, commit, burn,
 * reserve_in, fetch, expire and a block burn, after reopening, and after migrating a
 * database that the previous schema (v3) left. */
static void both_match(const char *when)
{
    int a = sf_counts_match(A, DA.path, LINK, "saeB");
    int b = sf_counts_match(B, DB.path, LINK, "saeB");
    if (a || b)
        fprintf(stderr, "counters differ %s\n", when);
    CU_ASSERT_EQUAL(a, 0);
    CU_ASSERT_EQUAL(b, 0);
}

static void reopen_both(void)
{
    qk_store_close(A);
    qk_store_close(B);
    A = sf_open(DA.path, 1);
    B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(A && B);
}

static void test_counters_match_recount(void)
{
    pair();
    both_match("after blocks");
    const char *sl[2];
    qk_key_ref refs[3];
    uint8_t mat[48], got[48];
    qk_err err = {0, ""};
    qk_reservation r = resv("c-1", sl); /* delivered at A, reserved at B, one fetched */
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 3, 16, refs, mat, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 3, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(A, "c-1", false, &err), 0);
    const char *ids[1] = {refs[0].key_id};
    qk_fetched_key out[1];
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 1, out, got, sizeof got, &err), 0);
    both_match("after fetch");
    r = resv("c-2", sl); /* burned at A */
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 1, 16, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(A, "c-2", &err), 0);
    r = resv("c-3", sl); /* pending at A */
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 2, 16, refs, mat, &err), 0);
    both_match("after burn");
    uint64_t now = (uint64_t)time(NULL);
    r = sf_resv("c-4", LINK, "saeA", sl, "saeB", NULL, now + 10); /* expires at B */
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 1, 16, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[0].block_id, 2);
    CU_ASSERT_EQUAL_FATAL(qk_store_reserve_in(B, &r, QK_SIDE_LOW, refs, 1, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(A, "c-4", false, &err), 0);
    size_t nexp = 0;
    CU_ASSERT_EQUAL(qk_store_expire(B, now + 100, &nexp, &err), 0);
    CU_ASSERT_EQUAL(nexp, 1);
    both_match("after expire");
    r = resv("c-5", sl); /* reserved at B, then its block burns there */
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_HIGH, 1, 16, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(refs[0].block_id, 2);
    CU_ASSERT_EQUAL_FATAL(qk_store_reserve_in(B, &r, QK_SIDE_HIGH, refs, 1, &err), 0);
    uint8_t x[BL];
    randombytes_buf(x, sizeof x);
    qk_put_result pr = QK_PUT_NEW;
    CU_ASSERT_EQUAL(qk_store_block_put(A, LINK, 9, x, sizeof x, &pr, &err), 0); /* pending */
    CU_ASSERT_EQUAL(qk_store_block_set_state(B, LINK, 2, QK_BLOCK_BURNED, &err), 0);
    both_match("after block burn");
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(B, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, 2);
    CU_ASSERT_EQUAL(ps.keys_delivered, 1);
    CU_ASSERT_EQUAL(ps.keys_expired, 1);
    CU_ASSERT_EQUAL(ps.keys_burned, 1);
    CU_ASSERT_EQUAL(ps.blocks_burned, 1);
    uint64_t n = 9;
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, "saeA", "saeB", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 2);
    reopen_both();
    both_match("after reopen");
    qk_store_close(A);
    qk_store_close(B);
    A = B = NULL;
    CU_ASSERT_FATAL(sf_downgrade_v3(DA.path, 1) == 0);
    CU_ASSERT_FATAL(sf_downgrade_v3(DB.path, 2) == 0);
    A = sf_open(DA.path, 1);
    B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(A && B);
    CU_ASSERT_EQUAL(qk_store_schema_version(A), 8);
    both_match("after migrating v3");
    CU_ASSERT_EQUAL(qk_store_count_reserved(B, NULL, "saeB", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 2);
    /* the migrated counters keep counting */
    ids[0] = refs[0].key_id; /* burned with block 2 */
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeB", "saeA", ids, 1, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    r = resv("c-6", sl);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(A, &r, QK_SIDE_LOW, 1, 4, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(A, "c-6", true, &err), 0);
    both_match("after carving on the migrated store");
    unpair();
}

int suite_store_peer(void)
{
    CU_pSuite s = CU_add_suite("store_peer", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        void (*fn)(void);
    } t[] = {
        {"carve at A, reserve at B, fetch identical bytes", test_roundtrip},
        {"check mismatch burns the block", test_mismatch_burns_block},
        {"collision in the last block", test_collision_in_last_block},
        {"overlap inside one request", test_overlap_within_request},
        {"idempotent reserve_in", test_idempotent_reserve},
        {"burned request id refused", test_burn_then_reserve_refused},
        {"unknown and pending blocks", test_unknown_and_pending_blocks},
        {"pool counters equal a recount (and after migrating v3)", test_counters_match_recount},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!CU_add_test(s, t[i].name, t[i].fn))
            return -1;
    return 0;
}
