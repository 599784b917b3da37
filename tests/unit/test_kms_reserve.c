/* test_kms_reserve.c - the core's reservation (kms/kms.c) on a real qk_kms without links:
 * max_key_count is enforced once, in qk_kms_reserve, for ETSI 014-shaped (SAE pair, multicast)
 * and SKIP-shaped ("skip:KME" pair, loopback) same-KME requests alike (QK_EQUOTA naming the
 * slave and what it holds); the requested size and number are honoured; fetching frees quota;
 * concurrent requests cannot overshoot; the peer side (qk_kms_reserve_in) refuses a
 * reservation over the quota and records nothing; qk_kms_quota_ok at its edges. */
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
        !CU_add_test(s, "quota_ok", test_quota_ok))
        return -1;
    return 0;
}
