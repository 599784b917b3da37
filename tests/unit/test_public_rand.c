/* test_public_rand.c - the per-thread generator for public values (common/public_rand.h):
 * distinct draws across refills, a stream of its own for each thread and for a forked child,
 * a fresh kernel key after 1 MiB. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "public_rand.h"
#include "public_rand_int.h"

#define DRAWS 2000

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* 2,000 draws of 16 bytes (many buffer refills, draws that straddle them): all distinct, and
 * the byte values spread out (each of the 256 values within a wide band of its mean). */
static void test_distinct_and_spread(void)
{
    uint8_t(*d)[16] = calloc(DRAWS, 16);
    CU_ASSERT_FATAL(d != NULL);
    unsigned hist[256] = {0};
    for (int i = 0; i < DRAWS; i++) {
        qk_random_public(d[i], i % 7 == 0 ? 5 : 16); /* odd sizes shift the draws across refills */
        if (i % 7 == 0)
            qk_random_public(d[i] + 5, 11);
        for (int k = 0; k < 16; k++)
            hist[d[i][k]]++;
    }
    qsort(d, DRAWS, 16, cmp16);
    int dup = 0;
    for (int i = 1; i < DRAWS; i++)
        dup += memcmp(d[i - 1], d[i], 16) == 0;
    CU_ASSERT_EQUAL(dup, 0);
    /* 32,000 bytes: 125 per value on average; a fair source stays within 60..200 */
    for (int v = 0; v < 256; v++)
        CU_ASSERT(hist[v] >= 60 && hist[v] <= 200);
    free(d);
    /* NULL and 0 are no-ops */
    qk_random_public(NULL, 16);
    uint8_t z[4] = {0};
    qk_random_public(z, 0);
    CU_ASSERT(z[0] == 0 && z[1] == 0 && z[2] == 0 && z[3] == 0);
}

/* After a fork the child must not replay the parent's stream: both draw right after the fork,
 * from the state the parent had; the child's bytes differ from the parent's. */
static void test_fork_child_differs(void)
{
    uint8_t warm[8], parent[32], child[32];
    qk_random_public(warm, sizeof warm); /* the parent's state is in use before the fork */
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        qk_random_public(child, sizeof child);
        ssize_t w = write(p[1], child, sizeof child);
        _exit(w == (ssize_t)sizeof child ? 0 : 1);
    }
    close(p[1]);
    qk_random_public(parent, sizeof parent);
    size_t got = 0;
    while (got < sizeof child) {
        ssize_t r = read(p[0], child + got, sizeof child - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(p[0]);
    int st = 0;
    CU_ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT_EQUAL(got, sizeof child);
    CU_ASSERT(memcmp(parent, child, sizeof child) != 0);
}

static void *draw_thread(void *arg)
{
    qk_random_public(arg, 32);
    return NULL;
}

/* Each thread seeds its own generator: two threads' first draws differ. */
static void test_threads_differ(void)
{
    uint8_t a[32], b[32];
    pthread_t ta, tb;
    CU_ASSERT_FATAL(pthread_create(&ta, NULL, draw_thread, a) == 0);
    CU_ASSERT_FATAL(pthread_create(&tb, NULL, draw_thread, b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT(memcmp(a, b, sizeof a) != 0);
}

/* A fresh kernel key after 1 MiB served: one more seed once that much was drawn. */
static void test_reseed_after_1mib(void)
{
    uint8_t one[1];
    qk_random_public(one, 1); /* seeded */
    unsigned before = qk_public_rand_seeds();
    uint8_t *buf = malloc(64 * 1024);
    CU_ASSERT_FATAL(buf != NULL);
    for (int i = 0; i < 16; i++)
        qk_random_public(buf, 64 * 1024);
    free(buf);
    qk_random_public(one, 1);
    CU_ASSERT(qk_public_rand_seeds() >= before + 1);
    CU_ASSERT(qk_public_rand_seeds() <= before + 2);
}

int suite_public_rand(void)
{
    CU_pSuite s = CU_add_suite("public_rand", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "distinct draws across refills, spread bytes", test_distinct_and_spread) ||
        !CU_add_test(s, "a forked child does not replay the parent", test_fork_child_differs) ||
        !CU_add_test(s, "each thread has its own stream", test_threads_differ) ||
        !CU_add_test(s, "a fresh kernel key after 1 MiB", test_reseed_after_1mib))
        return -1;
    return 0;
}
