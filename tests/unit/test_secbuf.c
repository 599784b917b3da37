/* test_secbuf.c - secure buffers, wiping and private secret files. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secbuf.h"
#include "secbuf_int.h"

static char dir[64];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-secbuf-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write n bytes to dir/name with the given mode; returns 0 or -1. */
static int write_file(const char *name, const void *data, size_t n, mode_t mode, char *path,
                      size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = n ? write(fd, data, n) : 0;
    int rc = (w == (ssize_t)n && fchmod(fd, mode) == 0) ? 0 : -1;
    close(fd);
    return rc;
}

static void test_alloc_free(void)
{
    CU_ASSERT_EQUAL(qk_secure_init(), 0);
    CU_ASSERT_EQUAL(qk_secure_init(), 0); /* idempotent */
    uint8_t *p = qk_secure_alloc(100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 0xa5, 100);
    CU_ASSERT_EQUAL(p[99], 0xa5);
    qk_secure_free(p);
    void *z = qk_secure_alloc(0);
    CU_ASSERT_PTR_NOT_NULL(z);
    qk_secure_free(z);
    qk_secure_free(NULL); /* no-op */
}

static void test_wipe_and_compare(void)
{
    uint8_t a[32], b[32];
    memset(a, 0x5a, sizeof a);
    qk_wipe(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++)
        CU_ASSERT_EQUAL(a[i], 0);
    qk_random(a, sizeof a);
    memcpy(b, a, sizeof a);
    CU_ASSERT_EQUAL(qk_memcmp_ct(a, b, sizeof a), 0);
    b[31] ^= 1;
    CU_ASSERT_NOT_EQUAL(qk_memcmp_ct(a, b, sizeof a), 0);
    /* Two random draws of 32 bytes colliding would mean a broken RNG. */
    qk_random(b, sizeof b);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
}

static void test_read_file(void)
{
    char path[128];
    const char secret[] = "0123456789abcdef0123456789abcdef";
    size_t len = 99;
    CU_ASSERT_EQUAL_FATAL(write_file("key600", secret, 32, 0600, path, sizeof path), 0);
    uint8_t *buf = qk_secure_read_file(path, 64, 1, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_EQUAL(len, 32);
    CU_ASSERT(memcmp(buf, secret, 32) == 0);
    qk_secure_free(buf);

    /* exactly max_len is fine, one less is EFBIG */
    buf = qk_secure_read_file(path, 32, 1, &len);
    CU_ASSERT_PTR_NOT_NULL(buf);
    qk_secure_free(buf);
    errno = 0;
    CU_ASSERT_PTR_NULL(qk_secure_read_file(path, 31, 1, &len));
    CU_ASSERT_EQUAL(errno, EFBIG);

    /* mode 0644 refused when private is required, accepted otherwise */
    CU_ASSERT_EQUAL_FATAL(write_file("key644", secret, 32, 0644, path, sizeof path), 0);
    errno = 0;
    CU_ASSERT_PTR_NULL(qk_secure_read_file(path, 64, 1, &len));
    CU_ASSERT_EQUAL(errno, EPERM);
    buf = qk_secure_read_file(path, 64, 0, &len);
    CU_ASSERT_PTR_NOT_NULL(buf);
    CU_ASSERT_EQUAL(len, 32);
    qk_secure_free(buf);

    CU_ASSERT_EQUAL_FATAL(write_file("key640", secret, 32, 0640, path, sizeof path), 0);
    errno = 0;
    CU_ASSERT_PTR_NULL(qk_secure_read_file(path, 64, 1, &len));
    CU_ASSERT_EQUAL(errno, EPERM);

    /* empty file: a valid buffer with length 0 */
    CU_ASSERT_EQUAL_FATAL(write_file("empty", "", 0, 0600, path, sizeof path), 0);
    len = 99;
    buf = qk_secure_read_file(path, 64, 1, &len);
    CU_ASSERT_PTR_NOT_NULL(buf);
    CU_ASSERT_EQUAL(len, 0);
    qk_secure_free(buf);

    /* missing file and a directory */
    snprintf(path, sizeof path, "%s/missing", dir);
    errno = 0;
    CU_ASSERT_PTR_NULL(qk_secure_read_file(path, 64, 1, &len));
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_PTR_NULL(qk_secure_read_file(dir, 64, 0, &len));
}

/* ---- the per-thread cache of released buffers ---------------------------------------- */

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static void test_reuse_is_wiped(void)
{
    static const size_t sizes[] = {0, 1, 32, 64, 65, 200, 1000, 4096, 10000, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i] ? sizes[i] : 1;
        uint8_t *p = qk_secure_alloc(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memset(p, 0xa5, n);
        size_t before = qk_secure_cached(n);
        qk_secure_free(p);
        CU_ASSERT_EQUAL(qk_secure_cached(n), before + 1);
        uint8_t *q = qk_secure_alloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        CU_ASSERT_PTR_EQUAL(q, p); /* the same buffer came back from the cache ... */
        CU_ASSERT(all_zero(q, n)); /* ... wiped */
        CU_ASSERT_EQUAL(qk_secure_cached(n), before);
        memset(q, 0x5a, n); /* the whole request is writable */
        qk_secure_free(q);
    }
    /* above the largest class: never cached */
    uint8_t *big = qk_secure_alloc(1048577);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 1, 1048577);
    size_t in_depot = qk_secure_depot(1048577);
    qk_secure_free(big);
    CU_ASSERT_EQUAL(qk_secure_cached(1048577), 0);
    CU_ASSERT_EQUAL(qk_secure_cache_bound(1048577), 0);
    CU_ASSERT_EQUAL(qk_secure_depot_bound(1048577), 0);
    CU_ASSERT_EQUAL(qk_secure_depot(1048577), in_depot);
}

/* Bulk sizes (65537 B to 1 MiB) are kept in the shared depot only, never in a thread cache: a
 * freed one comes back to the next allocation of its class, wiped, from the depot. */
static void test_bulk_sizes_in_depot(void)
{
    static const size_t sizes[] = {65537, 200000, 262144, 262145, 1000000, 1048576};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        CU_ASSERT_EQUAL(qk_secure_cache_bound(n), 0);
        CU_ASSERT(qk_secure_depot_bound(n) > 0);
        uint8_t *p = qk_secure_alloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memset(p, 0xc3, n); /* the whole request is writable */
        size_t before = qk_secure_depot(n);
        qk_secure_free(p);
        CU_ASSERT_EQUAL(qk_secure_cached(n), 0);
        CU_ASSERT_EQUAL(qk_secure_depot(n), before + 1);
        /* the next allocation of the class (here a smaller one) takes the same buffer back,
         * every byte the first caller wrote wiped */
        size_t m = n > 262144 ? 262145 : 65537;
        uint8_t *q = qk_secure_alloc(m);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        CU_ASSERT_PTR_EQUAL(q, p);
        CU_ASSERT_EQUAL(qk_secure_depot(n), before);
        CU_ASSERT(all_zero(q, n));
        memset(q, 0x3c, m);
        qk_secure_free(q);
        uint8_t *r = qk_secure_alloc(n);
        CU_ASSERT_PTR_EQUAL_FATAL(r, p);
        CU_ASSERT(all_zero(r, n));
        qk_secure_free(r);
    }
}

/* The answer class of a bulk request (256 KiB) keeps a 64-connection burst: 64 answers made
 * at once and freed at once all go back to the depot, and the next burst takes every one of
 * them from there (no sodium_malloc); one more than the bound goes to the system. */
static void test_bulk_burst_kept(void)
{
    enum { BURST = 64 };
    const size_t n = 100000; /* about the JSON of 128 keys of 4096 bits */
    size_t bound = qk_secure_depot_bound(n);
    CU_ASSERT_FATAL(bound >= BURST && bound < 2 * BURST);
    uint8_t *p[2 * BURST];
    size_t start = qk_secure_depot(n);
    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < BURST; i++) {
            p[i] = qk_secure_alloc(n);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
            memset(p[i], 0xa5, n);
        }
        CU_ASSERT_EQUAL(qk_secure_depot(n), start > BURST ? start - BURST : 0);
        for (size_t i = 0; i < BURST; i++)
            qk_secure_free(p[i]);
        CU_ASSERT_EQUAL(qk_secure_depot(n), start > BURST ? start : BURST);
    }
    for (size_t i = 0; i < bound + 1; i++) {
        p[i] = qk_secure_alloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
    }
    for (size_t i = 0; i < bound + 1; i++)
        qk_secure_free(p[i]);
    CU_ASSERT_EQUAL(qk_secure_depot(n), bound);
}

static void test_cache_bound(void)
{
    enum { N = 40 };
    const size_t sizes[] = {100, 16384, 65536};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t bound = qk_secure_cache_bound(sizes[k]);
        CU_ASSERT(bound > 0 && bound < N);
        void *p[N];
        for (int i = 0; i < N; i++) {
            p[i] = qk_secure_alloc(sizes[k]);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
        }
        for (int i = 0; i < N; i++)
            qk_secure_free(p[i]);
        CU_ASSERT_EQUAL(qk_secure_cached(sizes[k]), bound);
        for (int i = 0; i < N; i++)
            p[i] = qk_secure_alloc(sizes[k]);
        CU_ASSERT_EQUAL(qk_secure_cached(sizes[k]), 0);
        for (int i = 0; i < N; i++)
            qk_secure_free(p[i]);
        CU_ASSERT_EQUAL(qk_secure_cached(sizes[k]), bound);
    }
}

/* Buffers freed on another thread than their maker's go through the shared depot: a thread
 * whose cache is empty takes them back (wiped) instead of mapping new ones, and the depot holds
 * at most its bound. */
#define XN       200
#define SB_DRAIN 256
static void *x_alloc_main(void *arg)
{
    uint8_t **p = arg;
    for (int i = 0; i < XN; i++) {
        p[i] = qk_secure_alloc(3000);
        if (p[i])
            memset(p[i], 0x77, 3000);
    }
    return NULL;
}

static int x_in(uint8_t *const *set, uint8_t *q)
{
    for (int i = 0; i < XN; i++)
        if (set[i] == q)
            return 1;
    return 0;
}

static void test_depot_across_threads(void)
{
    size_t cache = qk_secure_cache_bound(3000), depot = qk_secure_depot_bound(3000);
    CU_ASSERT_FATAL(cache > 0 && depot > 0 && cache + depot < XN);
    static uint8_t *p[XN];
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, x_alloc_main, p), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_join(t, NULL), 0);
    /* Empty this thread's cache and the depot for the class, so what follows is ours. */
    void *drain[SB_DRAIN];
    size_t nd = 0;
    while (nd < SB_DRAIN && (qk_secure_cached(3000) > 0 || qk_secure_depot(3000) > 0))
        drain[nd++] = qk_secure_alloc(3000);
    CU_ASSERT_EQUAL(qk_secure_cached(3000), 0);
    CU_ASSERT_EQUAL(qk_secure_depot(3000), 0);
    for (int i = 0; i < XN; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
        qk_secure_free(p[i]); /* made on the other thread, freed here */
    }
    CU_ASSERT_EQUAL(qk_secure_cached(3000), cache);
    CU_ASSERT_EQUAL(qk_secure_depot(3000), depot); /* bounded: the rest went to the system */
    /* A fresh thread takes from the depot: the same buffers, wiped. */
    static uint8_t *q[XN];
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, x_alloc_main, q), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_join(t, NULL), 0);
    size_t reused = 0;
    for (int i = 0; i < XN; i++)
        reused += q[i] && x_in(p, q[i]);
    CU_ASSERT(reused >= depot);
    CU_ASSERT_EQUAL(qk_secure_depot(3000), 0);
    /* wiped on the way: check one taken from the depot before the thread overwrote it */
    uint8_t *r = NULL;
    for (int i = 0; i < XN; i++)
        qk_secure_free(q[i]);
    for (size_t i = 0; i < cache + 1; i++) { /* past this thread's cache: from the depot */
        uint8_t *v = qk_secure_alloc(3000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT(all_zero(v, 3000));
        if (r)
            qk_secure_free(r);
        r = v;
    }
    qk_secure_free(r);
    for (size_t i = 0; i < nd; i++)
        qk_secure_free(drain[i]);
}

static void test_double_free_aborts(void)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        void *p = qk_secure_alloc(32);
        qk_secure_free(p);
        qk_secure_free(p);
        _exit(0); /* not reached */
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

#define TH     8
#define ROUNDS 2000

static void *th_main(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    static const size_t sizes[] = {16, 64, 300, 1024, 5000, 40000};
    uint8_t *held[4] = {NULL, NULL, NULL, NULL};
    size_t len[4] = {0, 0, 0, 0};
    uint8_t tag[4] = {0, 0, 0, 0};
    uintptr_t bad = 0;
    for (unsigned r = 0; r < ROUNDS && !bad; r++) {
        unsigned slot = r % 4;
        if (held[slot]) { /* verify, then release */
            for (size_t i = 0; i < len[slot]; i++)
                if (held[slot][i] != tag[slot])
                    bad = 1;
            qk_secure_free(held[slot]);
        }
        len[slot] = sizes[(r + id) % (sizeof sizes / sizeof sizes[0])];
        held[slot] = qk_secure_alloc(len[slot]);
        if (!held[slot] || !all_zero(held[slot], len[slot])) {
            bad = 1;
            break;
        }
        tag[slot] = (uint8_t)(id * 31 + r) | 1;
        memset(held[slot], tag[slot], len[slot]);
    }
    for (int i = 0; i < 4; i++)
        qk_secure_free(held[i]);
    return (void *)bad;
}

static void test_threads(void)
{
    pthread_t t[TH];
    for (uintptr_t i = 0; i < TH; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, th_main, (void *)i), 0);
    for (int i = 0; i < TH; i++) {
        void *bad = (void *)1;
        CU_ASSERT_EQUAL(pthread_join(t[i], &bad), 0);
        CU_ASSERT_PTR_NULL(bad);
    }
}

int suite_secbuf(void)
{
    CU_pSuite s = CU_add_suite("secbuf", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "alloc/free", test_alloc_free) ||
        !CU_add_test(s, "wipe, compare, random", test_wipe_and_compare) ||
        !CU_add_test(s, "read secret file", test_read_file) ||
        !CU_add_test(s, "released buffers come back wiped", test_reuse_is_wiped) ||
        !CU_add_test(s, "bulk sizes go through the depot alone", test_bulk_sizes_in_depot) ||
        !CU_add_test(s, "a burst of 64 bulk answers stays in the depot", test_bulk_burst_kept) ||
        !CU_add_test(s, "buffers freed on another thread go through the depot",
                     test_depot_across_threads) ||
        !CU_add_test(s, "the cache stays bounded", test_cache_bound) ||
        !CU_add_test(s, "double free aborts", test_double_free_aborts) ||
        !CU_add_test(s, "threads alloc and free concurrently", test_threads))
        return -1;
    return 0;
}
