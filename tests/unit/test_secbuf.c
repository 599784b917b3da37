/* test_secbuf.c - secure buffers, wiping and private secret files. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secbuf.h"

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

int suite_secbuf(void)
{
    CU_pSuite s = CU_add_suite("secbuf", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "alloc/free", test_alloc_free) ||
        !CU_add_test(s, "wipe, compare, random", test_wipe_and_compare) ||
        !CU_add_test(s, "read secret file", test_read_file))
        return -1;
    return 0;
}
