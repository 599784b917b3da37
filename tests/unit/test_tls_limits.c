/* test_tls_limits.c - the front end's connection budgets (common/tls_limits.c): counting up to a
 * limit per key, refusal at it, release, keys of source addresses (IPv4, IPv6, IPv4-mapped) and
 * of identities, and many threads acquiring and releasing at once. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tls_internal.h"

static void test_limit_and_release(void)
{
    qk_budget *b = qk_budget_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    const char a[] = "alpha", z[] = "zeta";
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(qk_budget_acquire(b, a, sizeof a, 3), 0);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, a, sizeof a, 3), -1); /* at the limit */
    CU_ASSERT_EQUAL(qk_budget_count(b, a, sizeof a), 3);       /* nothing counted */
    CU_ASSERT_EQUAL(qk_budget_acquire(b, z, sizeof z, 3), 0);  /* another key: its own */
    CU_ASSERT_EQUAL(qk_budget_count(b, z, sizeof z), 1);
    qk_budget_release(b, a, sizeof a);
    CU_ASSERT_EQUAL(qk_budget_count(b, a, sizeof a), 2);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, a, sizeof a, 3), 0); /* room again */
    CU_ASSERT_EQUAL(qk_budget_acquire(b, a, sizeof a, 4), 0); /* the limit is per call */
    for (int i = 0; i < 4; i++)
        qk_budget_release(b, a, sizeof a);
    CU_ASSERT_EQUAL(qk_budget_count(b, a, sizeof a), 0);
    qk_budget_release(b, a, sizeof a); /* not counted: ignored, never below zero */
    CU_ASSERT_EQUAL(qk_budget_count(b, a, sizeof a), 0);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, a, sizeof a, 1), 0);
    /* A prefix of a key is another key. */
    CU_ASSERT_EQUAL(qk_budget_count(b, a, sizeof a - 1), 0);
    /* Bad arguments are refused. */
    CU_ASSERT_EQUAL(qk_budget_acquire(b, a, 0, 3), -1);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, a, sizeof a, 0), -1);
    unsigned char big[QK_BUDGET_KEY_MAX + 1];
    memset(big, 'x', sizeof big);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, big, sizeof big, 3), -1);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, big, QK_BUDGET_KEY_MAX, 1), 0);
    CU_ASSERT_EQUAL(qk_budget_acquire(NULL, a, sizeof a, 3), -1);
    qk_budget_free(b);
    qk_budget_free(NULL);
}

/* Many keys in few buckets: the chains keep them apart. */
static void test_many_keys(void)
{
    qk_budget *b = qk_budget_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        CU_ASSERT_EQUAL(qk_budget_acquire(b, key, (size_t)n, 2), 0);
        CU_ASSERT_EQUAL(qk_budget_acquire(b, key, (size_t)n, 2), 0);
    }
    int full = 0;
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        full += qk_budget_acquire(b, key, (size_t)n, 2) == -1 && qk_budget_count(b, key, n) == 2;
        if (i % 2)
            qk_budget_release(b, key, (size_t)n);
    }
    CU_ASSERT_EQUAL(full, 5000);
    CU_ASSERT_EQUAL(qk_budget_count(b, "k1", 2), 1);
    CU_ASSERT_EQUAL(qk_budget_count(b, "k2", 2), 2);
    qk_budget_free(b); /* frees what is still counted */
}

static void test_source_keys(void)
{
    struct sockaddr_storage ss;
    unsigned char k1[17], k2[17];
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(1000);
    CU_ASSERT_EQUAL(inet_pton(AF_INET, "192.0.2.7", &a4->sin_addr), 1);
    CU_ASSERT_EQUAL(qk_budget_source_key(&ss, k1), 5);
    a4->sin_port = htons(2000); /* another port: the same source */
    CU_ASSERT_EQUAL(qk_budget_source_key(&ss, k2), 5);
    CU_ASSERT_EQUAL(memcmp(k1, k2, 5), 0);

    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    a6->sin6_family = AF_INET6;
    CU_ASSERT_EQUAL(inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6->sin6_addr), 1);
    CU_ASSERT_EQUAL(qk_budget_source_key(&ss, k2), 5); /* IPv4-mapped: the IPv4 source */
    CU_ASSERT_EQUAL(memcmp(k1, k2, 5), 0);
    CU_ASSERT_EQUAL(inet_pton(AF_INET6, "2001:db8::7", &a6->sin6_addr), 1);
    CU_ASSERT_EQUAL(qk_budget_source_key(&ss, k2), 17);
    CU_ASSERT_EQUAL(k2[0], 6);
    CU_ASSERT_EQUAL(memcmp(k2 + 1, &a6->sin6_addr, 16), 0);

    ss.ss_family = AF_UNIX; /* no source budget */
    CU_ASSERT_EQUAL(qk_budget_source_key(&ss, k2), 0);
}

static void test_identity_keys(void)
{
    qk_peer_identity id;
    unsigned char k1[QK_BUDGET_KEY_MAX], k2[QK_BUDGET_KEY_MAX];
    memset(&id, 0, sizeof id);
    CU_ASSERT_EQUAL(qk_budget_identity_key(&id, k1), 0); /* anonymous */
    CU_ASSERT_EQUAL(qk_budget_identity_key(NULL, k1), 0);
    id.kind = QK_ID_CERT;
    snprintf(id.id, sizeof id.id, "SAE_A1");
    CU_ASSERT_EQUAL(qk_budget_identity_key(&id, k1), 7);
    id.kind = QK_ID_PSK; /* a PSK identity of the same name is another client */
    CU_ASSERT_EQUAL(qk_budget_identity_key(&id, k2), 7);
    CU_ASSERT_NOT_EQUAL(memcmp(k1, k2, 7), 0);
    CU_ASSERT_EQUAL(memcmp(k1 + 1, k2 + 1, 6), 0);
    memset(id.id, 'n', sizeof id.id); /* no NUL: bounded by the field */
    CU_ASSERT_EQUAL(qk_budget_identity_key(&id, k1), QK_BUDGET_KEY_MAX);
}

#define RACE_THREADS 4
#define RACE_ROUNDS  20000

typedef struct {
    qk_budget *b;
    int over; /* acquisitions that found the key full */
} race_arg;

static void *race(void *p)
{
    race_arg *a = p;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        if (qk_budget_acquire(a->b, "k", 1, 2) == 0)
            qk_budget_release(a->b, "k", 1);
        else
            a->over++;
    }
    return NULL;
}

/* Four threads on one key with limit 2: the count never passes the limit, ends at zero. */
static void test_threads(void)
{
    qk_budget *b = qk_budget_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pthread_t t[RACE_THREADS];
    race_arg a[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        a[i] = (race_arg){b, 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race, &a[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(qk_budget_count(b, "k", 1), 0);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, "k", 1, 2), 0);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, "k", 1, 2), 0);
    CU_ASSERT_EQUAL(qk_budget_acquire(b, "k", 1, 2), -1);
    qk_budget_free(b);
}

int suite_tls_limits(void)
{
    CU_pSuite s = CU_add_suite("tls_limits", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "limit, refusal, release", test_limit_and_release) ||
        !CU_add_test(s, "many keys", test_many_keys) ||
        !CU_add_test(s, "source address keys", test_source_keys) ||
        !CU_add_test(s, "identity keys", test_identity_keys) ||
        !CU_add_test(s, "threads", test_threads))
        return -1;
    return 0;
}
