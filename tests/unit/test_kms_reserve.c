/* test_kms_reserve.c - the core's reservation (kms/kms.c) on a real qk_kms without links:
 * max_key_count is enforced once, in qk_kms_reserve, for ETSI 014-shaped (SAE pair, multicast)
 * and SKIP-shaped ("skip:KME" pair, loopback) same-KME requests alike (QK_EQUOTA naming the
 * slave and what it holds); the requested size and number are honoured; fetching frees quota;
 * concurrent requests cannot overshoot; the peer side (qk_kms_reserve_in) refuses a
 * reservation over the quota and records nothing; qk_kms_quota_ok at its edges. And the remote
 * path on a linked pair (kf_pair: two KMEs, real peer listeners on 127.0.0.1): the requested
 * size and number are carved here and reserved at the peer, where every slave (multicast)
 * fetches exactly the bytes the master got; the peer's max_key_count refuses (QK_ENOKEY here)
 * and the refused carve is burned at both ends. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms_fixture.h"

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
enum { PAIR_BLOCK = QK_BLOCK_VKEY_LEN + 4096 };
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
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), MAX_KEYS);
    qk_pool_status pa = pool(P.a.kms, KF_PEER), pb = pool(P.b.kms, KF_NODE);
    CU_ASSERT_EQUAL(pa.keys_delivered, 3 + 1 + MAX_KEYS); /* the master's copies */
    CU_ASSERT_EQUAL(pb.keys_delivered, 3 + 1);
    CU_ASSERT_EQUAL(pb.keys_reserved, MAX_KEYS);
    CU_ASSERT_EQUAL(pa.bytes_available, PAIR_BLOCK - off);
    CU_ASSERT_EQUAL(pb.bytes_available, PAIR_BLOCK - off);
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
    pair_close();
}

/* max_key_count of a remote pair is the peer's to enforce: a request over it is refused there
 * (QK_ENOKEY here, naming the peer and the quota), nothing is held for the slave, the carve is
 * burned at both ends; up to the quota exactly still works. */
static void test_remote_quota(void)
{
    pair_open();
    const char *one[1] = {"SAE_B1"};
    qk_key_batch b;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 3, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(reserve_at_b(one, 1, 3, 256, &b, &err), QK_ENOKEY);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "peer KME " KF_PEER ": "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_key_count"));
    CU_ASSERT_PTR_NULL(b.material);
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), 3);
    CU_ASSERT_EQUAL(pool(P.a.kms, KF_PEER).keys_burned, 3);
    CU_ASSERT_EQUAL(pool(P.b.kms, KF_NODE).keys_burned, 0); /* never reserved there */
    CU_ASSERT_EQUAL_FATAL(reserve_at_b(one, 1, 2, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    CU_ASSERT_EQUAL(held_at_b("SAE_B1"), MAX_KEYS);
    /* another slave of the same master has its own quota */
    const char *other[1] = {"SAE_B2"};
    CU_ASSERT_EQUAL(reserve_at_b(other, 1, 1, 256, &b, &err), 0);
    qk_key_batch_free(&b);
    pair_close();
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
        !CU_add_test(s, "remote_quota", test_remote_quota))
        return -1;
    return 0;
}
