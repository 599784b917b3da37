/* test_sync.c - the sync thread (peer/sync.c) between two linked KMEs (kf_pair: real peer
 * listeners on 127.0.0.1). The inventory exchange of B's PENDING blocks with A (docs/qkd-kmed.md,
 * "How the KME uses its peers"): a block both ends hold equal is confirmed at both; a block
 * whose digest differs is burned at A (which compares) and, on A's "mismatch", at B; a block
 * A burned is burned at B; a block A does not hold stays pending at B (asked again later), and
 * once it is older than the link's pending_grace it is burned at B, within about a second of
 * the grace (the twin dropped on its way to A); a twin that reaches A late is burned there by
 * A's own inventory (B answers "burned"); a twin that arrives within the grace is confirmed.
 * Every wait is on a block state, bounded. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kms_fixture.h"
#include "sync.h"

#define WAIT_MS 15000 /* the sync thread ticks every 20 ms here; generous for a loaded machine */

static kf_pair P;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wait until none of the blocks ids[n] is PENDING at st (true), or WAIT_MS passed (false). */
static bool wait_settled(qk_store *st, const uint64_t *ids, size_t n)
{
    double end = now_ms() + WAIT_MS;
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < n; i++)
            pending += kf_block_state(st, ids[i]) == QK_BLOCK_PENDING;
        if (pending == 0)
            return true;
        if (now_ms() > end)
            return false;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

enum { BL = QK_BLOCK_VKEY_LEN + 300 };

static void test_inventory_both_ends(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t same[BL], mine[BL], theirs[BL], gone[BL], only_b[BL];
    randombytes_buf(same, BL);
    randombytes_buf(mine, BL);
    memcpy(theirs, mine, BL);
    theirs[BL / 2] ^= 0x10; /* same verification key, one bit of material differs */
    randombytes_buf(gone, BL);
    randombytes_buf(only_b, BL);
    kf_put_pending(a, 1, same, BL);
    kf_put_pending(a, 2, mine, BL);
    kf_put_pending(a, 3, gone, BL);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_block_set_state(a, KF_LINK, 3, QK_BLOCK_BURNED, &err), 0);
    kf_put_pending(b, 1, same, BL);
    kf_put_pending(b, 2, theirs, BL);
    kf_put_pending(b, 3, gone, BL);
    kf_put_pending(b, 4, only_b, BL);

    qk_sync *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_sync_start(P.b.kms, 20, &s, &err), 0);
    qk_sync_notify(s);
    static const uint64_t answered[3] = {1, 2, 3};
    bool settled = wait_settled(b, answered, 3);
    qk_sync_stop(s);
    CU_ASSERT_TRUE(settled);
    /* equal: confirmed at both ends */
    CU_ASSERT_EQUAL(kf_block_state(a, 1), QK_BLOCK_CONFIRMED);
    CU_ASSERT_EQUAL(kf_block_state(b, 1), QK_BLOCK_CONFIRMED);
    /* different: burned at both ends */
    CU_ASSERT_EQUAL(kf_block_state(a, 2), QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(kf_block_state(b, 2), QK_BLOCK_BURNED);
    /* burned at A: burned at B */
    CU_ASSERT_EQUAL(kf_block_state(a, 3), QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(kf_block_state(b, 3), QK_BLOCK_BURNED);
    /* not held at A: still pending at B (A may receive it later), still unknown at A */
    CU_ASSERT_EQUAL(kf_block_state(a, 4), -1);
    CU_ASSERT_EQUAL(kf_block_state(b, 4), QK_BLOCK_PENDING);
    /* only the matched block can be carved, at either end */
    qk_pool_status pa, pb;
    CU_ASSERT_EQUAL(qk_store_pool_status(a, KF_LINK, &pa, &err), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(b, KF_LINK, &pb, &err), 0);
    CU_ASSERT_EQUAL(pa.bytes_available, BL - QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL(pb.bytes_available, BL - QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL(pa.blocks_burned, 2);
    CU_ASSERT_EQUAL(pb.blocks_burned, 2);
    sodium_memzero(same, BL);
    sodium_memzero(mine, BL);
    sodium_memzero(theirs, BL);
    kf_pair_close(&P);
}

/* Make block id of B look received long ago (older than the default pending_grace). */
static int age_block(uint64_t id)
{
    return kf_block_sql(&P.b,
                        "UPDATE blocks SET received_at = received_at - ?1 WHERE link = ?2"
                        " AND block_id = ?3",
                        2 * QK_CFG_DEFAULT_PENDING_GRACE_S, id);
}

/* A block the peer never reported holding is burned once it is stale; a fresh one is kept. */
static void test_stale_unknown_block_burned(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t old[BL], fresh[BL];
    randombytes_buf(old, BL);
    randombytes_buf(fresh, BL);
    kf_put_pending(b, 8, old, BL);
    kf_put_pending(b, 9, fresh, BL);
    CU_ASSERT_EQUAL_FATAL(age_block(8), 0);
    qk_err err = {0, ""};
    qk_sync *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_sync_start(P.b.kms, 20, &s, &err), 0);
    qk_sync_notify(s);
    static const uint64_t stale[1] = {8};
    bool settled = wait_settled(b, stale, 1);
    qk_sync_stop(s);
    CU_ASSERT_TRUE(settled);
    CU_ASSERT_EQUAL(kf_block_state(b, 8), QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(kf_block_state(b, 9), QK_BLOCK_PENDING);
    CU_ASSERT_EQUAL(kf_block_state(a, 8), -1);
    sodium_memzero(old, BL);
    sodium_memzero(fresh, BL);
    kf_pair_close(&P);
}

/* Drop toward A with pending_grace = 1 s at both ends: B burns its block within a few seconds
 * (not before the grace); a twin that reaches A 300 ms late is confirmed at both ends; the
 * dropped block's twin reaching A after the burn is burned at A by A's inventory. */
static void test_dropped_twin_burned_within_seconds(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    P.a.cfg->links[0].pending_grace_s = 1;
    P.b.cfg->links[0].pending_grace_s = 1;
    CU_ASSERT_EQUAL(qk_sync_pending_grace_s(&P.b.cfg->links[0]), 1);
    CU_ASSERT_EQUAL(qk_sync_pending_grace_s(NULL), QK_CFG_DEFAULT_PENDING_GRACE_S);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t dropped[BL], late[BL];
    randombytes_buf(dropped, BL);
    randombytes_buf(late, BL);
    qk_err err = {0, ""};
    qk_sync *sb = NULL, *sa = NULL;
    double t0 = now_ms();
    kf_put_pending(b, 20, dropped, BL);
    kf_put_pending(b, 21, late, BL);
    CU_ASSERT_EQUAL_FATAL(qk_sync_start(P.b.kms, 20, &sb, &err), 0);
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    kf_put_pending(a, 21, late, BL); /* within the grace: confirmed, not burned */
    static const uint64_t both[2] = {20, 21};
    bool settled = wait_settled(b, both, 2);
    double took = now_ms() - t0;
    CU_ASSERT_TRUE(settled);
    CU_ASSERT_EQUAL(kf_block_state(b, 20), QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(kf_block_state(a, 20), -1);
    CU_ASSERT_EQUAL(kf_block_state(b, 21), QK_BLOCK_CONFIRMED);
    CU_ASSERT_EQUAL(kf_block_state(a, 21), QK_BLOCK_CONFIRMED);
    CU_ASSERT(took >= 1000.0); /* never before the grace */
    CU_ASSERT(took < 5000.0);  /* within seconds, not minutes */
    /* the burned block's bytes never count as available key material */
    qk_pool_status pb;
    CU_ASSERT_EQUAL(qk_store_pool_status(b, KF_LINK, &pb, &err), 0);
    CU_ASSERT_EQUAL(pb.bytes_available, BL - QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL(pb.blocks_burned, 1);
    /* the dropped twin reaches A after all: A's inventory hears "burned" and burns it */
    kf_put_pending(a, 20, dropped, BL);
    CU_ASSERT_EQUAL_FATAL(qk_sync_start(P.a.kms, 20, &sa, &err), 0);
    qk_sync_notify(sa);
    static const uint64_t twin[1] = {20};
    settled = wait_settled(a, twin, 1);
    qk_sync_stop(sa);
    qk_sync_stop(sb);
    CU_ASSERT_TRUE(settled);
    CU_ASSERT_EQUAL(kf_block_state(a, 20), QK_BLOCK_BURNED);
    sodium_memzero(dropped, BL);
    sodium_memzero(late, BL);
    kf_pair_close(&P);
}

int suite_sync(void)
{
    CU_pSuite s = CU_add_suite("sync", NULL, NULL);
    if (!s || !CU_add_test(s, "inventory settles both ends", test_inventory_both_ends) ||
        !CU_add_test(s, "stale unknown block burned", test_stale_unknown_block_burned) ||
        !CU_add_test(s, "dropped twin burned within seconds",
                     test_dropped_twin_burned_within_seconds))
        return -1;
    return 0;
}
