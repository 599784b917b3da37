/* test_kms_reserve.c - the core's reservation (kms/kms.c) on a real qk_kms without links:
 * max_key_count is enforced once, in qk_kms_reserve, for ETSI 014-shaped (SAE pair, multicast)
 * and SKIP-shaped ("skip:KME" pair, loopback) same-KME requests alike (QK_EQUOTA naming the
 * slave and what it holds); the requested size and number are honoured; fetching frees quota;
 * concurrent requests cannot overshoot; the peer side (qk_kms_reserve_in) refuses a
 * reservation over the quota and records nothing; qk_kms_quota_ok at its edges. And the remote
 * path on a linked pair (kf_pair: two KMEs, real peer listeners on 127.0.0.1): the requested
 * size and number are carved here inside a lease the peer granted (the peer's pool moves by
 * the lease, not per key) and noticed to the peer, where every slave (multicast) fetches
 * exactly the bytes the master got; a fetch that arrives before the notice waits for it; the
 * master's KME keeps max_key_count from the peer's reported counts (QK_EQUOTA, nothing
 * carved) and a slave's fetches free room again; requests left un-noticed by a stopped KME
 * are noticed after its restart; with the peer down, requests are served from the lease
 * until it runs out (then QK_EPEER). */
#include <CUnit/CUnit.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "store_int.h"
#include "kms_fixture.h"
#include "kms_int.h"
#include "qk_inline.h"
#include "peer_msg.h"

#define NODE       KF_NODE
#define LINK       "KME_A~KME_B"
#define MAX_KEYS   KF_MAX_COUNT
#define FAR_FUTURE 4000000000ull

static kf_kme F;
static qk_kms *K;

static void kme_open(void)
{
    CU_ASSERT_FATAL(kf_open(&F, NULL) == 0);
    K = F.kms;
}

static void kme_close(void)
{
    kf_close(&F);
    K = NULL;
}

static int reserve(const char *master, const char *const *slaves, size_t nslaves, size_t number,
                   uint32_t bits, qk_key_batch *b, qk_err *err)
{
    qk_key_request req = {
        .requester = master,
        .target_kme = NODE,
        .slaves = slaves,
        .nslaves = nslaves,
        .number = number,
        .size_bits = bits,
    };
    memset(b, 0, sizeof *b);
    qk_err_clear(err);
    return qk_kms_reserve(K, &req, b, err);
}

static uint64_t held(const char *master, const char *slave)
{
    uint64_t n = UINT64_MAX;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_kms_stored_count(K, master, slave, &n, &err), 0);
    return n;
}

/* ETSI 014: SAE pairs, the requested number and size, multicast, fetching frees quota. */
static void test_etsi_pair_quota(void)
{
    kme_open();
    const char *one[1] = {"SAE_A2"};
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(reserve("SAE_A1", one, 1, 3, 512, &b, &err), 0);
    CU_ASSERT_EQUAL(b.n, 3);
    for (size_t i = 0; i < b.n; i++) {
        CU_ASSERT_EQUAL(b.lens[i], 64); /* 512 bits */
        CU_ASSERT_EQUAL(strlen(b.ids[i]), QK_KEY_ID_LEN);
    }
    char first[QK_KEY_ID_LEN + 1];
    memcpy(first, b.ids[0], sizeof first);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(held("SAE_A1", "SAE_A2"), 3);

    /* 3 + 3 > 5: refused, nothing consumed, the message names the slave and its count */
    CU_ASSERT_EQUAL(reserve("SAE_A1", one, 1, 3, 512, &b, &err), QK_EQUOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "SAE_A2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "3 keys stored"));
    CU_ASSERT_PTR_NULL(b.material);
    CU_ASSERT_EQUAL(held("SAE_A1", "SAE_A2"), 3);
    /* up to the quota exactly */
    CU_ASSERT_EQUAL(reserve("SAE_A1", one, 1, 2, 64, &b, &err), 0);
    CU_ASSERT_EQUAL(b.n == 2 ? b.lens[1] : 0, 8);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(reserve("SAE_A1", one, 1, 1, 256, &b, &err), QK_EQUOTA);
    /* another pair has its own quota */
    const char *other[1] = {"SAE_A3"};
    CU_ASSERT_EQUAL(reserve("SAE_A1", other, 1, 1, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    /* multicast: refused when any of its pairs is full */
    const char *multi[2] = {"SAE_A3", "SAE_A2"};
    CU_ASSERT_EQUAL(reserve("SAE_A1", multi, 2, 1, 256, &b, &err), QK_EQUOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "SAE_A2"));
    CU_ASSERT_EQUAL(held("SAE_A1", "SAE_A3"), 1);
    /* the slave fetches one key: one more fits */
    const char *ids[1] = {first};
    CU_ASSERT_EQUAL(qk_kms_fetch(K, "SAE_A2", "SAE_A1", ids, 1, &b, &err), 0);
    CU_ASSERT_EQUAL(b.n == 1 ? b.lens[0] : 0, 64);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(reserve("SAE_A1", multi, 2, 1, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(held("SAE_A1", "SAE_A2"), MAX_KEYS);
    kme_close();
}

/* SKIP: one key per request between "skip:" identities; the loopback pair (this KME as its own
 * remote system) draws from the local pool and is held to max_key_count like any pair. */
static void test_skip_pair_quota(void)
{
    kme_open();
    const char *self[1] = {"skip:" NODE};
    qk_key_batch b;
    qk_err err;
    for (int i = 0; i < MAX_KEYS; i++) {
        uint32_t bits = i == 0 ? 128 : 256;
        CU_ASSERT_EQUAL_FATAL(reserve("skip:" NODE, self, 1, 1, bits, &b, &err), 0);
        CU_ASSERT_EQUAL(b.n, 1);
        CU_ASSERT_EQUAL(b.lens[0], bits / 8);
        qk_key_batch_free(&b);
    }
    CU_ASSERT_EQUAL(reserve("skip:" NODE, self, 1, 1, 256, &b, &err), QK_EQUOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "skip:" NODE));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "5 keys stored"));
    CU_ASSERT_EQUAL(held("skip:" NODE, "skip:" NODE), MAX_KEYS);
    /* the ETSI pairs of the same KME are not affected */
    const char *sae[1] = {"SAE_A2"};
    CU_ASSERT_EQUAL(reserve("SAE_A1", sae, 1, 1, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    /* bad requests stay QK_EINVAL, checked before the quota */
    CU_ASSERT_EQUAL(reserve("skip:" NODE, self, 1, 1, 260, &b, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(reserve("skip:" NODE, self, 1, 11, 256, &b, &err), QK_EINVAL);
    kme_close();
}

/* Many threads, one pair: exactly max_key_count single-key requests succeed. */
static void *racer(void *arg)
{
    int *ok = arg;
    const char *one[1] = {"SAE_A2"};
    for (int i = 0; i < 4; i++) {
        qk_key_batch b;
        qk_err err;
        if (reserve("SAE_A1", one, 1, 1, 256, &b, &err) == 0)
            (*ok)++;
        qk_key_batch_free(&b);
    }
    return NULL;
}

static void test_concurrent_quota(void)
{
    kme_open();
    pthread_t t[4];
    int ok[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, racer, &ok[i]) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(ok[0] + ok[1] + ok[2] + ok[3], MAX_KEYS);
    CU_ASSERT_EQUAL(held("SAE_A1", "SAE_A2"), MAX_KEYS);
    kme_close();
}

/* The peer side: a peer KME carved keys for our slave; the quota is ours to enforce. */
static void test_reserve_in_quota(void)
{
    kme_open();
    sf_dir DB;
    CU_ASSERT_FATAL(sf_dir_make(&DB, "kmsB") == 0);
    qk_store *B = sf_open(DB.path, 2);
    CU_ASSERT_FATAL(B != NULL);
    uint8_t blk[QK_BLOCK_VKEY_LEN + 512];
    randombytes_buf(blk, sizeof blk);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(K), LINK, 1, blk, sizeof blk) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(B, LINK, 1, blk, sizeof blk) == 0);
    const char *sl[2];
    qk_key_ref refs[4];
    uint8_t mat[4 * 32];
    qk_err err = {0, ""};

    qk_reservation r1 = sf_resv("req-1", LINK, "SAE_B1", sl, "SAE_A2", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(B, &r1, QK_SIDE_HIGH, 4, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_kms_reserve_in(K, &r1, QK_SIDE_HIGH, refs, 4, &err), 0);
    CU_ASSERT_EQUAL(held("SAE_B1", "SAE_A2"), 4);

    qk_reservation r2 = sf_resv("req-2", LINK, "SAE_B1", sl, "SAE_A2", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(B, &r2, QK_SIDE_HIGH, 2, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_kms_reserve_in(K, &r2, QK_SIDE_HIGH, refs, 2, &err), QK_EQUOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "SAE_B1 -> SAE_A2: 4 keys stored"));
    int state = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(qk_kms_store(K), "req-2", &state, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(held("SAE_B1", "SAE_A2"), 4);
    /* one more still fits */
    qk_reservation r3 = sf_resv("req-3", LINK, "SAE_B1", sl, "SAE_A2", NULL, FAR_FUTURE);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(B, &r3, QK_SIDE_HIGH, 1, 32, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_kms_reserve_in(K, &r3, QK_SIDE_HIGH, refs, 1, &err), 0);
    CU_ASSERT_EQUAL(held("SAE_B1", "SAE_A2"), MAX_KEYS);
    sodium_memzero(mat, sizeof mat);
    qk_store_close(B);
    sf_dir_remove(&DB);
    kme_close();
}

/* ---- the remote path: a linked pair ----------------------------------------------------- */

static kf_pair P;

/* The pair, with one identical confirmed block (id 1) at both ends. */
enum { PAIR_BLOCK = QK_BLOCK_VKEY_LEN + 16384 }; /* leases of KF_LEASE_BYTES, not all of it */
static uint8_t pair_blk[PAIR_BLOCK];

static void pair_open(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    randombytes_buf(pair_blk, sizeof pair_blk);
    CU_ASSERT_FATAL(
        sf_put_confirmed(qk_kms_store(P.a.kms), KF_LINK, 1, pair_blk, sizeof pair_blk) == 0);
    CU_ASSERT_FATAL(
        sf_put_confirmed(qk_kms_store(P.b.kms), KF_LINK, 1, pair_blk, sizeof pair_blk) == 0);
}

static void pair_close(void)
{
    kf_pair_close(&P);
    sodium_memzero(pair_blk, sizeof pair_blk);
}

/* SAE_A1 at KF_NODE asks for keys shared with slaves at KF_PEER. */
static int reserve_at_b(const char *const *slaves, size_t nslaves, size_t number, uint32_t bits,
                        qk_key_batch *b, qk_err *err)
{
    qk_key_request req = {
        .requester = "SAE_A1",
        .target_kme = KF_PEER,
        .slaves = slaves,
        .nslaves = nslaves,
        .number = number,
        .size_bits = bits,
    };
    memset(b, 0, sizeof *b);
    qk_err_clear(err);
    return qk_kms_reserve(P.a.kms, &req, b, err);
}

/* Slave `slave` fetches the keys of batch m at KF_PEER: 0 when every key comes back with the
 * master's ID, length and bytes; else the failing status, or -1 for different keys. */
static int fetch_at_b(const char *slave, const qk_key_batch *m)
{
    const char *ids[16];
    CU_ASSERT_FATAL(m->n >= 1 && m->n <= 16);
    for (size_t i = 0; i < m->n; i++)
        ids[i] = m->ids[i];
    qk_key_batch got;
    qk_err err = {0, ""};
    int rc = qk_kms_fetch(P.b.kms, slave, "SAE_A1", ids, m->n, &got, &err);
    if (rc != 0)
        return rc;
    CU_ASSERT_EQUAL_FATAL(got.n, m->n);
    for (size_t i = 0; i < m->n && rc == 0; i++)
        if (strcmp(got.ids[i], m->ids[i]) != 0 || got.lens[i] != m->lens[i] ||
            memcmp(got.keys[i], m->keys[i], m->lens[i]) != 0)
            rc = -1;
    qk_key_batch_free(&got);
    return rc;
}

static uint64_t held_at_b(const char *slave)
{
    uint64_t n = UINT64_MAX;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_kms_stored_count(P.b.kms, "SAE_A1", slave, &n, &err), 0);
    return n;
}

/* Wait (at most 10 s) until A has no un-noticed request left: the peer answered them all. */
static void settle(void)
{
    for (int i = 0; i < 1000; i++) {
        qk_notice v[1];
        size_t n = 1;
        qk_err err = {0, ""};
        memset(v, 0, sizeof v);
        CU_ASSERT_EQUAL_FATAL(
            qk_store_notices_pending(qk_kms_store(P.a.kms), KF_LINK, v, 1, &n, &err), 0);
        qk_notice_free(v, n);
        if (n == 0)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_FAIL("notices still pending after 10 s");
}

static qk_pool_status pool(qk_kms *k, const char *peer)
{
    qk_pool_status ps;
    qk_err err = {0, ""};
    memset(&ps, 0xff, sizeof ps);
    CU_ASSERT_EQUAL(qk_kms_pool_status(k, peer, &ps, &err), 0);
    return ps;
}

/* The requested size and number, never the default (256 bits): the master's keys are the next
 * bytes of the LOW end of the shared block, and the slave fetches the same bytes at the peer. */
static void test_remote_size_and_number(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b;
    qk_err err;
    size_t off = QK_BLOCK_VKEY_LEN;
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 3, 512, &b, &err), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, 3);
    for (size_t i = 0; i < b.n; i++, off += 64) {
        CU_ASSERT_EQUAL(b.lens[i], 64);
        CU_ASSERT_EQUAL(memcmp(b.keys[i], pair_blk + off, 64), 0);
    }
    settle();
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), 3);
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), 0);
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), QK_ENOTFOUND); /* once */
    qk_key_batch_free(&b);

    /* the smallest size: one key of 8 bytes, right after the first three */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 1, 64, &b, &err), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, 1);
    CU_ASSERT_EQUAL(b.lens[0], 8);
    CU_ASSERT_EQUAL(memcmp(b.keys[0], pair_blk + off, 8), 0);
    off += 8;
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);

    /* the largest size, max_key_count keys in one request */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, MAX_KEYS, 1024, &b, &err), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, MAX_KEYS);
    for (size_t i = 0; i < b.n; i++, off += 128) {
        CU_ASSERT_EQUAL(b.lens[i], 128);
        CU_ASSERT_EQUAL(memcmp(b.keys[i], pair_blk + off, 128), 0);
    }
    settle();
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), MAX_KEYS);
    qk_pool_status pa = pool(P.a.kms, KF_PEER), pb = pool(P.b.kms, KF_NODE);
    CU_ASSERT_EQUAL(pa.keys_delivered, 3 + 1 + MAX_KEYS); /* the master's copies */
    CU_ASSERT_EQUAL(pb.keys_delivered, 3 + 1);
    CU_ASSERT_EQUAL(pb.keys_reserved, MAX_KEYS);
    /* every key came from the one lease the first request asked (KF_LEASE_BYTES, less than
     * half the block): the peer's pool moved by the lease, A's by the keys */
    CU_ASSERT_EQUAL(pa.bytes_available, PAIR_BLOCK - off);
    CU_ASSERT_EQUAL(pb.bytes_available, PAIR_BLOCK - QK_BLOCK_VKEY_LEN - KF_LEASE_BYTES);
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);

    /* out of range sizes and numbers are refused before anything is carved */
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 1, 1032, &b, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 1, 100, &b, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 11, 256, &b, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(pool(P.a.kms, KF_PEER).bytes_available, PAIR_BLOCK - off);
    pair_close();
}

/* Multicast: one reservation at the peer for every slave; each fetches the same bytes once; an
 * SAE that is not a slave is refused; more slaves than 1 + max_sae_id_count are refused. */
static void test_remote_multicast(void)
{
    pair_open();
    const char *three[3] = {"SAE_B1", "SAE_B2", "SAE_B3"};
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(three, 3, 2, 128, &b, &err), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, 2);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(b.lens[i], 16);
        CU_ASSERT_EQUAL(memcmp(b.keys[i], pair_blk + QK_BLOCK_VKEY_LEN + i * 16, 16), 0);
    }
    settle();
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(held_at_b(three[i]), 2);
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B4", &b), QK_EUNAUTH);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(fetch_at_b(three[i], &b), 0);
        CU_ASSERT_EQUAL(fetch_at_b(three[i], &b), QK_ENOTFOUND);
        CU_ASSERT_EQUAL(held_at_b(three[i]), 0);
    }
    qk_key_batch_free(&b);
    const char *four[4] = {"SAE_B1", "SAE_B2", "SAE_B3", "SAE_B4"};
    CU_ASSERT_EQUAL(reserve_at_b(four, 4, 1, 128, &b, &err), QK_EINVAL);
    /* slaves at two KMEs (no target KME) without the relay ([relay] enabled = no here) */
    const char *two_kmes[2] = {"SAE_B1", "SAE_A2"};
    qk_key_request across = {
        .requester = "SAE_A1", .slaves = two_kmes, .nslaves = 2, .number = 1, .size_bits = 128};
    CU_ASSERT_EQUAL(qk_kms_reserve(P.a.kms, &across, &b, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "need the relay"));
    pair_close();
}

/* max_key_count of a remote pair: the keys are held at the peer, which reports its counts in
 * every notices answer; the master's KME refuses a request above the reported count plus what
 * it sent since (QK_EQUOTA here, as for a same-KME pair, naming the peer and the quota,
 * nothing carved); up to the quota exactly works; when the slave fetched, a refused request
 * refreshes the count (the pair's last notice sent again) and fits. */
static void test_remote_quota(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b, first;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 3, 256, &first, &err), 0);
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 3, 256, &b, &err), QK_EQUOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "peer KME " KF_PEER ": "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_key_count"));
    CU_ASSERT_PTR_NULL(b.material);
    CU_ASSERT_EQUAL(pool(P.a.kms, KF_PEER).keys_delivered, 3); /* nothing carved */
    CU_ASSERT_EQUAL(pool(P.a.kms, KF_PEER).keys_burned, 0);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 2, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    settle();
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), MAX_KEYS);
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 1, 256, &b, &err), QK_EQUOTA);
    /* another slave of the same master has its own quota */
    const char *other[1] = {"SAE_B2"};
    CU_ASSERT_EQUAL(reserve_at_b(other, 1, 1, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    /* the slave fetches the first three: room for three again, not four */
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &first), 0);
    qk_key_batch_free(&first);
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), 2);
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 4, 256, &b, &err), QK_EQUOTA);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 3, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    settle();
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), MAX_KEYS);
    pair_close();
}

/* Notices as runs (docs/adr/0003-request-records.md, "Wire"): A sends key lists until B's
 * answer says it takes runs, then runs; when B answers a runs batch 400 (B restarted as an
 * older KME: played by the codec's keys_only hook), A sends the same batch again as key lists
 * at once: nothing is refused or burned, and B's slave gets every key; once B says so again,
 * runs again. */
static void test_notices_as_runs(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b;
    qk_err err;
    atomic_store(&qk_peer_msg_test_runs_in, 0);
    /* the first notice goes as keys (A has heard nothing yet), its answer says "runs" */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 4, 256, &b, &err), 0);
    settle();
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(atomic_load(&qk_peer_msg_test_runs_in), 0);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 4, 256, &b, &err), 0);
    settle();
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(atomic_load(&qk_peer_msg_test_runs_in), 1);
    /* B "downgraded": the runs batch is answered 400, sent again as keys, taken */
    atomic_store(&qk_peer_msg_test_keys_only, true);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 3, 256, &b, &err), 0);
    settle();
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 2, 256, &b, &err), 0);
    settle();
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(atomic_load(&qk_peer_msg_test_runs_in), 1);
    qk_pool_status ps = pool(P.a.kms, KF_PEER);
    CU_ASSERT_EQUAL(ps.keys_burned, 0);
    /* B "upgraded" again: one answer with "runs", then runs */
    atomic_store(&qk_peer_msg_test_keys_only, false);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 2, 256, &b, &err), 0);
        settle();
        CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
        qk_key_batch_free(&b);
    }
    CU_ASSERT_EQUAL(atomic_load(&qk_peer_msg_test_runs_in), 2);
    pair_close();
}

/* Keys A delivered while B's peer listener was down: B learns them when the notice arrives; a
 * slave's fetch that comes first waits for it (bounded by notice_wait) and then succeeds. */
typedef struct {
    const qk_key_batch *m;
    int rc;
    double ms;
} fetcher;

static void *fetch_thread(void *arg)
{
    fetcher *f = arg;
    double t0 = qk_now_ms();
    f->rc = fetch_at_b("SAE_B1", f->m);
    f->ms = qk_now_ms() - t0;
    return NULL;
}

/* Hand A's pending notices to B's core, as B's peer API would (A cannot reach B). */
static void deliver_notices(void)
{
    qk_notice v[8];
    size_t n = 0;
    qk_err err = {0, ""};
    memset(v, 0, sizeof v);
    CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(qk_kms_store(P.a.kms), KF_LINK, v, 8, &n, &err),
                          0);
    CU_ASSERT_FATAL(n >= 1);
    qk_peer_notices_msg m = {.side = QK_SIDE_LOW, .notices = v, .n = n};
    snprintf(m.link, sizeof m.link, "%s", KF_LINK);
    qk_peer_notices_answer a;
    CU_ASSERT_EQUAL(qk_kms_notices_in(P.b.kms, &m, &a, &err), 0);
    CU_ASSERT_EQUAL(a.n, n);
    for (size_t i = 0; i < a.n; i++)
        CU_ASSERT_EQUAL(a.r[i].status, 0);
    qk_peer_notices_answer_free(&a);
    qk_notice_free(v, n);
}

static void test_fetch_waits_for_notice(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 1, 256, &b, &err), 0); /* leases */
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    kf_pair_b_down(&P);
    /* served from the lease: no call to B */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 2, 256, &b, &err), 0);
    fetcher f = {&b, -1, 0};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fetch_thread, &f) == 0);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    deliver_notices();
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(f.rc, 0);
    CU_ASSERT(f.ms >= 250 && f.ms < 1900); /* it waited for the notice, not for notice_wait */
    qk_key_batch_free(&b);
    /* a key ID B never learns: not found after notice_wait (2 s) */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 1, 256, &b, &err), 0);
    double t0 = qk_now_ms();
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), QK_ENOTFOUND);
    CU_ASSERT(qk_now_ms() - t0 >= 1900);
    qk_key_batch_free(&b);
    pair_close();
}

/* ---- inline handlers (common/qk_inline.h) ----------------------------------------------- */

static atomic_int iw_done, iw_err;

static void iw_cb(qk_inline_waiter *w, int err)
{
    (void)w;
    atomic_store(&iw_err, err);
    atomic_fetch_add(&iw_done, 1);
}

/* Wait (bounded) for the barrier an inline call recorded: 0 once durable, else the error. */
static int await_barrier(const qk_inline *ic)
{
    CU_ASSERT_FATAL(ic->await != NULL);
    atomic_store(&iw_done, 0);
    qk_inline_waiter w = {.done = iw_cb};
    int r = ic->await(ic->owner, ic->seq, &w);
    if (r != 0)
        return r == 1 ? 0 : r;
    for (int i = 0; i < 500 && atomic_load(&iw_done) == 0; i++) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&iw_done) ? atomic_load(&iw_err) : -1;
}

/* Run as an inline handler would: a request that needs a lease exchange or a notice wait says
 * so at once (QK_EAGAIN, would_block) and changes nothing, so that running it again on a worker
 * is safe; one the lease covers is served with the store's barrier recorded, not waited for. */

/* Store calls that opened a savepoint (every transaction of a store call does) so far. */
static int savepoints(qk_kms *k)
{
    qk_store *st = qk_kms_store(k);
    (void)pthread_mutex_lock(&st->mu);
    int n = st->ctl[QS_CTL_SAVEPOINT]
                ? sqlite3_stmt_status(st->ctl[QS_CTL_SAVEPOINT], SQLITE_STMTSTATUS_RUN, 0)
                : 0;
    (void)pthread_mutex_unlock(&st->mu);
    return n;
}

static void test_inline_defers(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b;
    qk_err err;
    qk_pool_status a0 = pool(P.a.kms, KF_PEER), b0 = pool(P.b.kms, KF_NODE);
    qk_inline ic;
    qk_inline_begin(&ic, 0);
    double t0 = qk_now_ms();
    int rc = reserve_at_b(one, 1, 1, 256, &b, &err); /* no lease yet */
    qk_inline_end();
    CU_ASSERT_EQUAL(rc, QK_EAGAIN);
    CU_ASSERT_TRUE(ic.would_block);
    CU_ASSERT(qk_now_ms() - t0 < 500);
    qk_pool_status a1 = pool(P.a.kms, KF_PEER), b1 = pool(P.b.kms, KF_NODE);
    CU_ASSERT_EQUAL(a1.bytes_available, a0.bytes_available); /* nothing leased or carved */
    CU_ASSERT_EQUAL(b1.bytes_available, b0.bytes_available);
    CU_ASSERT_EQUAL(a1.keys_delivered, a0.keys_delivered);
    /* On a worker: leases, served. */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 1, 256, &b, &err), 0);
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &b), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), 0); /* the refused inline try was not counted */
    /* Inside the lease: served inline, the barrier recorded. */
    kf_pair_b_down(&P);
    qk_inline_begin(&ic, 0);
    rc = reserve_at_b(one, 1, 2, 256, &b, &err);
    qk_inline_end();
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_FALSE(ic.would_block);
    CU_ASSERT_PTR_EQUAL(ic.owner, qk_kms_store(P.a.kms));
    CU_ASSERT_EQUAL(await_barrier(&ic), 0);
    /* B has no notice yet: an inline fetch records the wait for the next batch of notices (no
     * thread blocks) with notice_wait's deadline, and returns at once. */
    const char *ids[2] = {b.ids[0], b.ids[1]};
    qk_key_batch got;
    int tx0 = savepoints(P.b.kms);
    qk_inline_begin(&ic, 0);
    t0 = qk_now_ms();
    rc = qk_kms_fetch(P.b.kms, "SAE_B1", "SAE_A1", ids, 2, &got, &err);
    qk_inline_end();
    CU_ASSERT_EQUAL(rc, QK_EAGAIN);
    CU_ASSERT_EQUAL(savepoints(P.b.kms), tx0); /* one read saw the key unknown: no transaction */
    CU_ASSERT_FALSE(ic.would_block);
    CU_ASSERT(ic.ev_await == qk_kms_notice_await);
    CU_ASSERT_PTR_EQUAL(ic.ev_owner, P.b.kms);
    CU_ASSERT(ic.ev_deadline_ms >= t0 + 1900 && ic.ev_deadline_ms <= qk_now_ms() + 2100);
    CU_ASSERT(qk_now_ms() - t0 < 500);
    /* The waiter is completed by the next batch (err 0), not by its deadline. */
    atomic_store(&iw_done, 0);
    qk_inline_waiter w = {.done = iw_cb, .deadline_ms = ic.ev_deadline_ms};
    CU_ASSERT_EQUAL_FATAL(ic.ev_await(ic.ev_owner, ic.ev_seq, &w), 0);
    /* A rerun whose wait's deadline passed answers not found at once, without waiting. */
    qk_inline ic2;
    qk_inline_begin(&ic2, 1);
    rc = qk_kms_fetch(P.b.kms, "SAE_B1", "SAE_A1", ids, 2, &got, &err);
    qk_inline_end();
    CU_ASSERT_EQUAL(rc, QK_ENOTFOUND);
    CU_ASSERT(ic2.ev_await == NULL);
    t0 = qk_now_ms();
    deliver_notices();
    for (int i = 0; i < 500 && atomic_load(&iw_done) == 0; i++) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(atomic_load(&iw_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&iw_err), 0);
    CU_ASSERT(qk_now_ms() - t0 < 1000);
    /* A seen generation older than the current one: the event already happened. */
    qk_inline_waiter w2 = {.done = iw_cb, .deadline_ms = qk_now_ms() + 2000};
    CU_ASSERT_EQUAL(ic.ev_await(ic.ev_owner, ic.ev_seq, &w2), 1);
    qk_inline_begin(&ic, 0);
    rc = qk_kms_fetch(P.b.kms, "SAE_B1", "SAE_A1", ids, 2, &got, &err);
    qk_inline_end();
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_FALSE(ic.would_block);
    CU_ASSERT_PTR_EQUAL(ic.owner, qk_kms_store(P.b.kms));
    CU_ASSERT_EQUAL(await_barrier(&ic), 0);
    CU_ASSERT_EQUAL(got.n, 2);
    CU_ASSERT_EQUAL(memcmp(got.keys[0], b.keys[0], 32), 0);
    qk_key_batch_free(&got);
    /* Fetched already: no notice will come, so no wait for one: one more look at once (it may
     * have been noticed since the lookup), then not found, without waiting either time. */
    t0 = qk_now_ms();
    qk_inline_begin(&ic, 0);
    rc = qk_kms_fetch(P.b.kms, "SAE_B1", "SAE_A1", ids, 2, &got, &err);
    qk_inline_end();
    CU_ASSERT_EQUAL(rc, QK_EAGAIN);
    CU_ASSERT(ic.ev_await == qk_kms_look_again);
    qk_inline_waiter wl = {.done = iw_cb};
    CU_ASSERT_EQUAL(ic.ev_await(ic.ev_owner, ic.ev_seq, &wl), 1);
    qk_inline_begin(&ic2, ic.ev_deadline_ms); /* the rerun */
    rc = qk_kms_fetch(P.b.kms, "SAE_B1", "SAE_A1", ids, 2, &got, &err);
    qk_inline_end();
    CU_ASSERT_EQUAL(rc, QK_ENOTFOUND);
    CU_ASSERT(ic2.ev_await == NULL);
    CU_ASSERT(qk_now_ms() - t0 < 500);
    qk_key_batch_free(&b);
    /* A wait no batch ends is completed at its deadline (QK_ETIMEOUT), within ~0.1 s. */
    atomic_store(&iw_done, 0);
    double dl = qk_now_ms() + 300;
    qk_inline_waiter w3 = {.done = iw_cb, .deadline_ms = dl};
    CU_ASSERT_EQUAL_FATAL(qk_kms_notice_await(P.b.kms, qk_kms_notice_gen(P.b.kms), &w3), 0);
    for (int i = 0; i < 1000 && atomic_load(&iw_done) == 0; i++) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(atomic_load(&iw_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&iw_err), QK_ETIMEOUT);
    CU_ASSERT(qk_now_ms() >= dl && qk_now_ms() < dl + 150);
    /* Quiescing (before the listeners stop) completes a waiter with a far deadline at once,
     * and no fetch waits again. */
    atomic_store(&iw_done, 0);
    qk_inline_waiter w5 = {.done = iw_cb, .deadline_ms = qk_now_ms() + 60000};
    CU_ASSERT_EQUAL_FATAL(qk_kms_notice_await(P.b.kms, qk_kms_notice_gen(P.b.kms), &w5), 0);
    t0 = qk_now_ms();
    qk_kms_quiesce(P.b.kms);
    CU_ASSERT_EQUAL(atomic_load(&iw_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&iw_err), QK_ETIMEOUT);
    CU_ASSERT(qk_now_ms() - t0 < 1000);
    qk_inline_waiter w6 = {.done = iw_cb, .deadline_ms = qk_now_ms() + 60000};
    CU_ASSERT(qk_kms_notice_await(P.b.kms, qk_kms_notice_gen(P.b.kms), &w6) < 0);
    /* Closing completes the waiters left (here: A's, one with a far deadline). */
    atomic_store(&iw_done, 0);
    qk_inline_waiter w4 = {.done = iw_cb, .deadline_ms = qk_now_ms() + 60000};
    CU_ASSERT_EQUAL_FATAL(qk_kms_notice_await(P.a.kms, qk_kms_notice_gen(P.a.kms), &w4), 0);
    pair_close();
    CU_ASSERT_EQUAL(atomic_load(&iw_done), 1);
    CU_ASSERT_EQUAL(atomic_load(&iw_err), QK_ETIMEOUT);
}

/* Leases follow demand ([hot_path] lease_demand): the first lease asks lease_bytes (nothing
 * carved yet); once that lease is carved within a second, the next asks lease_demand's worth of
 * that rate - more than lease_bytes, and at most half of the block's unleased room, as any ask.
 * With lease_demand 0 (the fixture's) every lease asks lease_bytes: test_remote_size_and_number. */
static void test_lease_follows_demand(void)
{
    pair_open();
    P.a.cfg->lease_demand_ms = QK_CFG_LEASE_DEMAND_MS_MAX; /* 10 s of the rate */
    static const char *const slaves[3] = {"SAE_B1", "SAE_B2", "SAE_B3"};
    qk_key_batch b;
    qk_err err;
    uint64_t avail0 = pool(P.b.kms, KF_NODE).bytes_available;
    /* two requests of 4 x 128 bytes: the first lease (KF_LEASE_BYTES), used up */
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(reserve_at_b(&slaves[i], 1, 4, 1024, &b, &err), 0);
        qk_key_batch_free(&b);
    }
    uint64_t avail1 = pool(P.b.kms, KF_NODE).bytes_available;
    CU_ASSERT_EQUAL(avail0 - avail1, KF_LEASE_BYTES);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(&slaves[2], 1, 1, 1024, &b, &err), 0);
    qk_key_batch_free(&b);
    uint64_t leased = avail1 - pool(P.b.kms, KF_NODE).bytes_available;
    /* 1024 bytes carved within two seconds read as at least 512 bytes/s: 10 s of it is 5120 */
    CU_ASSERT(leased >= 5 * KF_LEASE_BYTES);
    CU_ASSERT(leased <= (PAIR_BLOCK - QK_BLOCK_VKEY_LEN - KF_LEASE_BYTES) / 2);
    pair_close();
}

/* A KME stopped with un-noticed requests (its peer unreachable) notices them after its restart;
 * while the peer is down, requests are served from the lease until it runs out (QK_EPEER). */
static void test_restart_notices(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b, kept;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 1, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    settle();
    kf_pair_b_down(&P);
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 2, 512, &kept, &err), 0);
    CU_ASSERT_FATAL(kf_reopen(&P.a) == 0);
    P.ha.kms = P.a.kms;
    CU_ASSERT_EQUAL(pool(P.a.kms, KF_PEER).keys_delivered, 3);
    /* the lease (KF_LEASE_BYTES) runs out: 32 + 128 bytes used, 3 x 256 more fit, then no
     * lease can be asked */
    int ok = 0, rc = 0;
    static const char *const slaves[8] = {"SAE_B2", "SAE_B3", "SAE_B4", "SAE_B5",
                                          "SAE_B6", "SAE_B7", "SAE_B8", "SAE_B9"};
    qk_peer_fail why = QK_PEER_FAIL_COUNT;
    for (int i = 0; i < 8 && rc == 0; i++) {
        rc = reserve_at_b(&slaves[i], 1, 2, 1024, &b, &err);
        if (rc == 0)
            ok++;
        why = b.peer_fail;
        qk_key_batch_free(&b);
    }
    CU_ASSERT_EQUAL(ok, 3);
    CU_ASSERT_EQUAL(rc, QK_EPEER);
    CU_ASSERT_EQUAL(why, QK_PEER_FAIL_UNREACHABLE); /* no listener: connection refused */
    CU_ASSERT_FATAL(kf_pair_b_up(&P) == 0);
    settle(); /* the restarted notifier sends what the first run left */
    CU_ASSERT_EQUAL(fetch_at_b("SAE_B1", &kept), 0);
    qk_key_batch_free(&kept);
    CU_ASSERT_EQUAL(held_at_b("SAE_B2"), 2);
    CU_ASSERT_EQUAL(held_at_b("SAE_B4"), 2);
    pair_close();
}

/* A fake peer KME: every request is answered with one status and body. */
typedef struct {
    qk_http_handler super;
    unsigned status;
    const char *body;
} fake_peer;

static void fake_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    const fake_peer *f = (const fake_peer *)self;
    (void)req;
    qk_http_reply_json(rep, f->status, f->body);
}

/* Issue 17 item 6: the peer's reason for failing a lease reaches the request's error
 * (qk_key_batch.peer_fail with QK_EPEER; the handlers tell the SAE): no listener
 * (unreachable), an error status without a reason (unreachable, e.g. a proxy or a busy
 * pool), the peer's store failed (storage), a limit, another refusal. */
static void test_peer_reasons(void)
{
    static const struct {
        unsigned status;
        const char *body;
        qk_peer_fail why;
    } cases[] = {
        {0, NULL, QK_PEER_FAIL_UNREACHABLE},
        {503, "{\"message\":\"busy\"}", QK_PEER_FAIL_UNREACHABLE},
        {500, "{\"message\":\"store error\",\"reason\":\"storage\"}", QK_PEER_FAIL_STORAGE},
        {409, "{\"message\":\"full\",\"reason\":\"limit\"}", QK_PEER_FAIL_LIMIT},
        {500, "{\"message\":\"oops\",\"reason\":\"internal\"}", QK_PEER_FAIL_REFUSED},
        {403, "{\"message\":\"no\",\"reason\":\"forbidden\"}", QK_PEER_FAIL_REFUSED},
    };
    pair_open();
    kf_pair_b_down(&P);
    const char *one[1] = {"SAE_B1"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fake_peer f = {.super = {.on_req = fake_on_req}, cases[c].status, cases[c].body};
        if (cases[c].body)
            CU_ASSERT_FATAL(kf_pair_b_fake(&P, &f.super) == 0);
        qk_key_batch b;
        qk_err err;
        int rc = reserve_at_b(one, 1, 1, 256, &b, &err);
        CU_ASSERT_EQUAL(rc, QK_EPEER);
        CU_ASSERT_EQUAL(b.peer_fail, cases[c].why);
        CU_ASSERT_PTR_NULL(b.material);
        if (rc != QK_EPEER || b.peer_fail != cases[c].why)
            fprintf(stderr, "\n  case %zu: rc %d, reason %s: %s\n", c, rc,
                    qk_peer_fail_name(b.peer_fail), err.msg);
        qk_key_batch_free(&b);
        kf_pair_b_down(&P);
    }
    pair_close();
}

/* The reason of a failed peer call from its status, and the names the metrics use. */
static void test_peer_fail_of(void)
{
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_EIO), QK_PEER_FAIL_UNREACHABLE);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_ETIMEOUT), QK_PEER_FAIL_UNREACHABLE);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_ETLS), QK_PEER_FAIL_UNREACHABLE);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_ESTORAGE), QK_PEER_FAIL_STORAGE);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_EQUOTA), QK_PEER_FAIL_LIMIT);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_ELIMIT), QK_PEER_FAIL_LIMIT);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_EMISMATCH), QK_PEER_FAIL_MISMATCH);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_EPEER), QK_PEER_FAIL_REFUSED);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_ECOLLISION), QK_PEER_FAIL_REFUSED);
    CU_ASSERT_EQUAL(qk_peer_fail_of(QK_ENOTFOUND), QK_PEER_FAIL_REFUSED);
    static const char *const names[QK_PEER_FAIL_COUNT] = {"unreachable", "storage", "limit",
                                                          "mismatch", "refused"};
    for (int i = 0; i < QK_PEER_FAIL_COUNT; i++)
        CU_ASSERT_STRING_EQUAL(qk_peer_fail_name((qk_peer_fail)i), names[i]);
    CU_ASSERT_STRING_EQUAL(qk_peer_fail_name(QK_PEER_FAIL_COUNT), "unreachable");
}

static void test_quota_ok(void)
{
    const qk_key_limits lim = {.max_key_count = 20};
    CU_ASSERT_TRUE(qk_kms_quota_ok(&lim, 0, 1));
    CU_ASSERT_TRUE(qk_kms_quota_ok(&lim, 0, 20));
    CU_ASSERT_FALSE(qk_kms_quota_ok(&lim, 0, 21));
    CU_ASSERT_TRUE(qk_kms_quota_ok(&lim, 15, 5));
    CU_ASSERT_FALSE(qk_kms_quota_ok(&lim, 15, 6));
    CU_ASSERT_FALSE(qk_kms_quota_ok(&lim, 20, 1));
    CU_ASSERT_FALSE(qk_kms_quota_ok(&lim, 30, 1));
    CU_ASSERT_FALSE(qk_kms_quota_ok(&lim, UINT64_MAX, 1));
    CU_ASSERT_FALSE(qk_kms_quota_ok(&lim, 1, SIZE_MAX));
}

int suite_kms_reserve(void)
{
    CU_pSuite s = CU_add_suite("kms_reserve", NULL, NULL);
    if (!s || !CU_add_test(s, "etsi_pair_quota", test_etsi_pair_quota) ||
        !CU_add_test(s, "skip_pair_quota", test_skip_pair_quota) ||
        !CU_add_test(s, "concurrent_quota", test_concurrent_quota) ||
        !CU_add_test(s, "reserve_in_quota", test_reserve_in_quota) ||
        !CU_add_test(s, "quota_ok", test_quota_ok) ||
        !CU_add_test(s, "remote_size_and_number", test_remote_size_and_number) ||
        !CU_add_test(s, "remote_multicast", test_remote_multicast) ||
        !CU_add_test(s, "remote_quota", test_remote_quota) ||
        !CU_add_test(s, "fetch_waits_for_notice", test_fetch_waits_for_notice) ||
        !CU_add_test(s, "restart_notices", test_restart_notices) ||
        !CU_add_test(s, "lease_follows_demand", test_lease_follows_demand) ||
        !CU_add_test(s, "peer_reasons", test_peer_reasons) ||
        !CU_add_test(s, "peer_fail_of", test_peer_fail_of) ||
        !CU_add_test(s, "inline_defers", test_inline_defers) ||
        !CU_add_test(s, "notices_as_runs", test_notices_as_runs))
        return -1;
    return 0;
}
