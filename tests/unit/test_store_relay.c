/* test_store_relay.c - the store's part of trusted-node key relay (docs/adr/0004-key-relay.md):
 * a hop key (a MAC key, then the pad in pieces, each inside one block) carved inside the lease
 * (one transaction: all or nothing),
 * applied at the receiver as a notice and fetched once (a replay finds it fetched; the
 * notifier's later notice of the same request is answered reserved again); at the slaves'
 * KME a pending relayed request that no slave can fetch, stored encrypted, idempotent, then
 * committed (fetchable once per slave), burned, or expired. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_fixture.h"

#define LINK       "KME_A~KME_B"
#define FAR_FUTURE 4000000000ull
#define BLEN       (QK_BLOCK_VKEY_LEN + 8192)

static sf_dir DA, DB;
static qk_store *A, *B;
static uint8_t blk[BLEN];

/* A (LOW) and B (HIGH) hold the same confirmed block 1; A leased `lease` bytes of it. */
static void pair(uint32_t lease)
{
    CU_ASSERT_FATAL(sf_dir_make(&DA, "relayA") == 0);
    CU_ASSERT_FATAL(sf_dir_make(&DB, "relayB") == 0);
    A = sf_open(DA.path, 1);
    B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(A && B);
    randombytes_buf(blk, sizeof blk);
    CU_ASSERT_FATAL(sf_put_confirmed(A, LINK, 1, blk, sizeof blk) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, 1, blk, sizeof blk) == 0);
    qk_lease l;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_ask(A, LINK, QK_SIDE_LOW, lease, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &l, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, l.block_id, true, &err), 0);
}

static void unpair(void)
{
    qk_store_close(A);
    qk_store_close(B);
    A = B = NULL;
    sf_dir_remove(&DA);
    sf_dir_remove(&DB);
}

static uint64_t available(qk_store *s)
{
    qk_pool_status st;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_pool_status(s, LINK, &st, &err), 0);
    return st.bytes_available;
}

/* The notice the receiver builds from a relay message's hop key. */
static qk_notice hop_notice(const char *id, qk_key_ref *keys, size_t n,
                            char (*slave)[QK_STORE_ID_MAX + 1])
{
    qk_notice v;
    memset(&v, 0, sizeof v);
    snprintf(v.request_id, sizeof v.request_id, "%s", id);
    snprintf(v.master, sizeof v.master, "KME_A");
    snprintf(slave[0], sizeof slave[0], "KME_B");
    v.slaves = slave;
    v.nslaves = 1;
    v.expires_at = FAR_FUTURE;
    v.keys = keys;
    v.nkeys = n;
    return v;
}

static void test_hop_key(void)
{
    pair(1000);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_reservation r = sf_resv("R/00", LINK, "KME_A", sl, "KME_B", NULL, FAR_FUTURE);
    uint32_t lens[2] = {32, 107};
    qk_key_ref refs[17];
    size_t n = 0;
    uint8_t mat[139], got[139];
    uint64_t before = available(A);
    /* more than the lease: nothing carved, nothing recorded */
    static uint8_t big[32 + 1000];
    CU_ASSERT_EQUAL(
        qk_store_carve_owned_pieces(A, &r, QK_SIDE_LOW, 32, 1000, 16, refs, &n, big, &err),
        QK_ENOKEY);
    CU_ASSERT_EQUAL(available(A), before);
    CU_ASSERT_EQUAL(qk_store_carve_owned_pieces(A, &r, QK_SIDE_LOW, 32, 0, 16, refs, &n, got, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL_FATAL(
        qk_store_carve_owned_pieces(A, &r, QK_SIDE_LOW, 32, 107, 16, refs, &n, mat, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 2); /* the pad fits one block: one piece */
    CU_ASSERT_EQUAL(available(A), before - 139);
    size_t off = 0;
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(refs[i].length, lens[i]);
        CU_ASSERT_EQUAL(refs[i].block_id, 1);
        CU_ASSERT_EQUAL(memcmp(mat + off, blk + refs[i].offset, lens[i]), 0);
        off += lens[i];
    }
    qk_key_ref again[17];
    CU_ASSERT_EQUAL(
        qk_store_carve_owned_pieces(A, &r, QK_SIDE_LOW, 32, 107, 16, again, &n, got, &err),
        QK_EEXIST);
    /* the receiver applies the hop key as a notice and fetches it once */
    char slave[1][QK_STORE_ID_MAX + 1];
    qk_notice v = hop_notice("R/00", refs, 2, slave);
    int res = 9;
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL_FATAL(res, 0);
    const char *ids[2] = {refs[0].key_id, refs[1].key_id};
    qk_fetched_key out[2];
    CU_ASSERT_EQUAL(qk_store_fetch(B, "saeX", "KME_A", ids, 2, out, got, sizeof got, &err),
                    QK_EUNAUTH); /* only the next node */
    CU_ASSERT_EQUAL_FATAL(qk_store_fetch(B, "KME_B", "KME_A", ids, 2, out, got, sizeof got, &err),
                          0);
    CU_ASSERT_EQUAL(memcmp(got, mat, sizeof mat), 0);
    /* a replayed relay message: the notice again is fine, its keys are gone */
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, 0);
    CU_ASSERT_EQUAL(qk_store_fetch(B, "KME_B", "KME_A", ids, 2, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    /* the relay message was the hop request's notice: the notifier has none to send (its
     * pieces may be longer than a notice's keys may be: relay_batch.sh) */
    qk_notice pend[2];
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(A, LINK, pend, 2, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    qk_notice_free(pend, n);
    /* a range forged outside A's lease is refused */
    qk_key_ref forged = refs[1];
    forged.offset = 4000;
    snprintf(forged.key_id, sizeof forged.key_id, "%s", "6a1f4c1e-0d8e-4b4f-9a55-6f1d2b3c4d5e");
    qk_notice f = hop_notice("R2/00", &forged, 1, slave);
    CU_ASSERT_EQUAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &f, 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_EINVAL);
    unpair();
}

/* A pad larger than any one block's owned room is carved in pieces, each inside one block; the
 * receiver takes them as one notice and gets the same bytes. */
static void test_pad_in_pieces(void)
{
    CU_ASSERT_FATAL(sf_dir_make(&DA, "relayA") == 0);
    CU_ASSERT_FATAL(sf_dir_make(&DB, "relayB") == 0);
    A = sf_open(DA.path, 1);
    B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(A && B);
    enum { SMALL = QK_BLOCK_VKEY_LEN + 512 };
    static uint8_t b3[3][SMALL];
    qk_err err = {0, ""};
    for (int i = 0; i < 3; i++) {
        randombytes_buf(b3[i], SMALL);
        CU_ASSERT_FATAL(sf_put_confirmed(A, LINK, (uint64_t)i + 1, b3[i], SMALL) == 0);
        CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, (uint64_t)i + 1, b3[i], SMALL) == 0);
    }
    for (int i = 0; i < 6; i++) { /* leases on every block */
        qk_lease l;
        if (qk_store_lease_ask(A, LINK, QK_SIDE_LOW, 512, &l, &err) != 0)
            break;
        CU_ASSERT_EQUAL_FATAL(qk_store_lease_in(B, LINK, QK_SIDE_LOW, &l, &err), 0);
        CU_ASSERT_EQUAL_FATAL(qk_store_lease_done(A, LINK, QK_SIDE_LOW, l.block_id, true, &err), 0);
    }
    uint64_t room = 0;
    CU_ASSERT_EQUAL_FATAL(qk_store_lease_room(A, LINK, QK_SIDE_LOW, &room, &err), 0);
    CU_ASSERT_FATAL(room > 512 + 32); /* more than one block can hold */
    uint32_t total = (uint32_t)room - 32;
    const char *sl[2];
    qk_reservation r = sf_resv("P/00", LINK, "KME_A", sl, "KME_B", NULL, FAR_FUTURE);
    qk_key_ref refs[17];
    size_t n = 0;
    uint8_t *mat = malloc(room), *got = malloc(room);
    CU_ASSERT_FATAL(mat && got);
    /* one piece cannot hold it: nothing carved */
    CU_ASSERT_EQUAL(
        qk_store_carve_owned_pieces(A, &r, QK_SIDE_LOW, 32, total, 1, refs, &n, mat, &err),
        QK_ENOKEY);
    uint64_t still = 0;
    CU_ASSERT_EQUAL(qk_store_lease_room(A, LINK, QK_SIDE_LOW, &still, &err), 0);
    CU_ASSERT_EQUAL(still, room);
    CU_ASSERT_EQUAL_FATAL(
        qk_store_carve_owned_pieces(A, &r, QK_SIDE_LOW, 32, total, 16, refs, &n, mat, &err), 0);
    CU_ASSERT_FATAL(n >= 3 && n <= 17);
    CU_ASSERT_EQUAL(refs[0].length, 32);
    size_t off = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_FATAL(refs[i].block_id >= 1 && refs[i].block_id <= 3);
        CU_ASSERT(refs[i].offset + refs[i].length <= SMALL);
        CU_ASSERT_EQUAL(
            memcmp(mat + off, b3[refs[i].block_id - 1] + refs[i].offset, refs[i].length), 0);
        off += refs[i].length;
        if (i > 0)
            sum += refs[i].length;
    }
    CU_ASSERT_EQUAL(sum, total);
    CU_ASSERT_EQUAL(qk_store_lease_room(A, LINK, QK_SIDE_LOW, &still, &err), 0);
    CU_ASSERT_EQUAL(still, 0);
    char slave[1][QK_STORE_ID_MAX + 1];
    qk_notice v = hop_notice("P/00", refs, n, slave);
    int res = 9;
    CU_ASSERT_EQUAL_FATAL(qk_store_notice_in(B, LINK, QK_SIDE_LOW, &v, 1, &res, &err), 0);
    CU_ASSERT_EQUAL_FATAL(res, 0);
    const char *ids[17];
    qk_fetched_key out[17];
    for (size_t i = 0; i < n; i++)
        ids[i] = refs[i].key_id;
    CU_ASSERT_EQUAL_FATAL(qk_store_fetch(B, "KME_B", "KME_A", ids, n, out, got, room, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat, room), 0);
    free(mat);
    free(got);
    unpair();
}

/* ---- the slaves' KME ----------------------------------------------------------------------- */

static const char IDS[2][QK_KEY_ID_LEN + 1] = {"0f6b1e0a-5c8e-4d2a-8b3c-1d2e3f405162",
                                               "1a2b3c4d-5e6f-4a1b-9c2d-3e4f50617283"};

static int fetch_one(qk_store *s, const char *slave, const char *id, uint8_t *buf, size_t cap)
{
    qk_fetched_key out[1];
    qk_err err = {0, ""};
    const char *ids[1] = {id};
    return qk_store_fetch(s, slave, "saeA", ids, 1, out, buf, cap, &err);
}

static void test_pending_commit(void)
{
    sf_dir d;
    CU_ASSERT_FATAL(sf_dir_make(&d, "relayC") == 0);
    qk_store *s = sf_open(d.path, 3);
    CU_ASSERT_FATAL(s != NULL);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_reservation r = sf_resv("R1", "ignored", "saeA", sl, "saeC", "saeD", FAR_FUTURE);
    uint32_t lens[2] = {32, 16};
    uint8_t k[48], got[48];
    memset(k, 0xa5, sizeof k); /* a pattern to look for in the database file */
    CU_ASSERT_EQUAL_FATAL(qk_store_relay_put(s, &r, 2, IDS, lens, k, &err), 0);
    /* pending: no slave can fetch, the fetch wait sees the keys as not known yet */
    CU_ASSERT_EQUAL(fetch_one(s, "saeC", IDS[0], got, sizeof got), QK_ENOTFOUND);
    bool known = true;
    CU_ASSERT_EQUAL(qk_store_key_known(s, IDS[0], &known, &err), 0);
    CU_ASSERT_FALSE(known);
    uint64_t held = 9;
    CU_ASSERT_EQUAL(qk_store_count_reserved(s, "saeA", "saeC", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 0);
    /* idempotent; other keys under the same ID, or a known key ID, are refused */
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &r, 2, IDS, lens, k, &err), 0);
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &r, 1, IDS, lens, k, &err), QK_EEXIST);
    qk_reservation r2 = sf_resv("R2", "ignored", "saeA", sl, "saeC", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &r2, 1, &IDS[1], lens, k, &err), QK_EEXIST);
    CU_ASSERT_EQUAL(qk_store_relay_commit(s, "R9", &err), QK_ENOTFOUND);
    /* encrypted at rest, and survives a restart */
    qk_store_close(s);
    size_t flen = 0;
    uint8_t *file = sf_read_file(d.path, &flen);
    CU_ASSERT_FATAL(file != NULL);
    bool found = false;
    for (size_t i = 0; i + 16 <= flen && !found; i++)
        found = memcmp(file + i, k, 16) == 0;
    CU_ASSERT_FALSE(found);
    free(file);
    s = sf_open(d.path, 3);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL_FATAL(qk_store_relay_commit(s, "R1", &err), 0);
    CU_ASSERT_EQUAL(qk_store_relay_commit(s, "R1", &err), 0); /* idempotent */
    CU_ASSERT_EQUAL(qk_store_key_known(s, IDS[0], &known, &err), 0);
    CU_ASSERT_TRUE(known);
    CU_ASSERT_EQUAL(qk_store_count_reserved(s, "saeA", "saeC", &held, &err), 0);
    CU_ASSERT_EQUAL(held, 2);
    CU_ASSERT_EQUAL(fetch_one(s, "saeB", IDS[0], got, sizeof got), QK_EUNAUTH);
    CU_ASSERT_EQUAL_FATAL(fetch_one(s, "saeC", IDS[0], got, sizeof got), 0);
    CU_ASSERT_EQUAL(memcmp(got, k, 32), 0);
    CU_ASSERT_EQUAL(fetch_one(s, "saeC", IDS[0], got, sizeof got), QK_ENOTFOUND); /* once */
    CU_ASSERT_EQUAL_FATAL(fetch_one(s, "saeD", IDS[1], got, sizeof got), 0);
    CU_ASSERT_EQUAL(memcmp(got, k + 32, 16), 0);
    /* a burn after the commit changes nothing for what was fetched, ends the rest */
    CU_ASSERT_EQUAL(qk_store_burn(s, "R1", &err), 0);
    CU_ASSERT_EQUAL(fetch_one(s, "saeD", IDS[0], got, sizeof got), QK_ENOTFOUND);
    qk_store_close(s);
    sf_dir_remove(&d);
}

static void test_pending_burn_expire(void)
{
    sf_dir d;
    CU_ASSERT_FATAL(sf_dir_make(&d, "relayD") == 0);
    qk_store *s = sf_open(d.path, 3);
    CU_ASSERT_FATAL(s != NULL);
    qk_err err = {0, ""};
    const char *sl[2];
    uint32_t lens[1] = {32};
    uint8_t k[32], got[32];
    randombytes_buf(k, sizeof k);
    /* burned before the commit: never fetchable, the commit refused, a replay refused */
    qk_reservation r = sf_resv("RB", "x", "saeA", sl, "saeC", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL_FATAL(qk_store_relay_put(s, &r, 1, IDS, lens, k, &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(s, "RB", &err), 0);
    CU_ASSERT_EQUAL(qk_store_relay_commit(s, "RB", &err), QK_EINVAL);
    CU_ASSERT_EQUAL(fetch_one(s, "saeC", IDS[0], got, sizeof got), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &r, 1, IDS, lens, k, &err), 0); /* same: no change */
    CU_ASSERT_EQUAL(qk_store_relay_commit(s, "RB", &err), QK_EINVAL);
    /* a burn that arrives before the relay (tombstone): the relay is refused */
    CU_ASSERT_EQUAL(qk_store_burn(s, "RT", &err), 0);
    qk_reservation rt = sf_resv("RT", "x", "saeA", sl, "saeC", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &rt, 1, &IDS[1], lens, k, &err), QK_EEXIST);
    /* expired while pending: burned, the late commit refused */
    qk_reservation re = sf_resv("RE", "x", "saeA", sl, "saeC", NULL, 1000);
    CU_ASSERT_EQUAL_FATAL(qk_store_relay_put(s, &re, 1, &IDS[1], lens, k, &err), 0);
    size_t n = 0;
    CU_ASSERT_EQUAL(qk_store_expire(s, 2000, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(qk_store_relay_commit(s, "RE", &err), QK_EINVAL);
    CU_ASSERT_EQUAL(fetch_one(s, "saeC", IDS[1], got, sizeof got), QK_ENOTFOUND);
    /* bad arguments */
    uint32_t zero[1] = {0};
    qk_reservation rz = sf_resv("RZ", "x", "saeA", sl, "saeC", NULL, FAR_FUTURE);
    static const char ZID[1][QK_KEY_ID_LEN + 1] = {"2b3c4d5e-6f70-4182-a3b4-c5d6e7f80910"};
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &rz, 1, ZID, zero, k, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_relay_put(s, &rz, 0, ZID, lens, k, &err), QK_EINVAL);
    qk_store_close(s);
    sf_dir_remove(&d);
}

/* The master KME's record: undecided relays are pending outgoing requests (what the restart
 * reconciliation burns); the decision commits all of them or none; a burned one is decided. */
static void test_master_record(void)
{
    sf_dir d;
    CU_ASSERT_FATAL(sf_dir_make(&d, "relayM") == 0);
    qk_store *s = sf_open(d.path, 4);
    CU_ASSERT_FATAL(s != NULL);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_relay_begin(s, "RA", "saeA", FAR_FUTURE, "A>B>C", &err), 0);
    CU_ASSERT_EQUAL(qk_store_relay_begin(s, "RB", "saeA", FAR_FUTURE, "A>D", &err), 0);
    CU_ASSERT_EQUAL(qk_store_relay_begin(s, "RC", "saeA", FAR_FUTURE, "A>B", &err), 0);
    CU_ASSERT_EQUAL(qk_store_relay_begin(s, "RA", "saeA", FAR_FUTURE, "A>B>C", &err), QK_EEXIST);
    char ids[4][QK_STORE_ID_MAX + 1];
    size_t n = 0;
    CU_ASSERT_EQUAL(qk_store_pending_requests(s, ids, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 3);
    /* RC burned: a decision naming it changes nothing */
    CU_ASSERT_EQUAL(qk_store_burn(s, "RC", &err), 0);
    const char *all[3] = {"RA", "RB", "RC"};
    CU_ASSERT_EQUAL(qk_store_relay_decide(s, all, 3, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_pending_requests(s, ids, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(qk_store_relay_decide(s, all, 2, &err), 0);
    CU_ASSERT_EQUAL(qk_store_pending_requests(s, ids, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(qk_store_relay_decide(s, all, 1, &err), QK_EINVAL); /* decided once */
    const char *unknown[1] = {"RZ"};
    CU_ASSERT_EQUAL(qk_store_relay_decide(s, unknown, 1, &err), QK_ENOTFOUND);
    int state = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(s, "RA", &state, &err), 0);
    CU_ASSERT_EQUAL(state, 1);
    qk_store_close(s);
    sf_dir_remove(&d);
}

int suite_store_relay(void)
{
    CU_pSuite s = CU_add_suite("store_relay", NULL, NULL);
    if (!s)
        return -1;
    return (CU_add_test(s, "hop key carved by length, its notice the relay, fetched once",
                        test_hop_key) &&
            CU_add_test(s, "a pad carved in pieces across blocks", test_pad_in_pieces) &&
            CU_add_test(s, "pending relay: encrypted, idempotent, commit", test_pending_commit) &&
            CU_add_test(s, "pending relay: burn, tombstone, expiry", test_pending_burn_expire) &&
            CU_add_test(s, "the master's record: begin, decide, burn", test_master_record))
               ? 0
               : -1;
}
