/* secbuf.c - secret memory on libsodium: guarded allocations wiped on free. */
#include "secbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

int qk_secure_init(void)
{
    /* sodium_init is itself idempotent and thread-safe: 0 first time, 1 afterwards. */
    return sodium_init() < 0 ? -1 : 0;
}

void *qk_secure_alloc(size_t n)
{
    /* A zero-byte request still gets a real (1-byte) guarded allocation so that the
     * result can always be passed to qk_secure_free. */
    return sodium_malloc(n ? n : 1);
}

void qk_secure_free(void *p)
{
    if (p)
        sodium_free(p); /* sodium_free zeroes the whole region before unmapping it */
}

void qk_wipe(void *p, size_t n)
{
    if (p && n)
        sodium_memzero(p, n);
}

void qk_random(void *p, size_t n)
{
    if (p && n)
        randombytes_buf(p, n);
}

int qk_memcmp_ct(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return 0;
    return sodium_memcmp(a, b, n) == 0 ? 0 : -1;
}

/* Read until EOF or cap bytes; returns bytes read or -1 (errno set). */
static ssize_t read_all(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

uint8_t *qk_secure_read_file(const char *path, size_t max_len, int require_private, size_t *len)
{
    if (len)
        *len = 0;
    if (!path || !len || max_len >= (size_t)SSIZE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    /* Any group or world permission bit on a secret file is refused. */
    if (require_private && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        close(fd);
        errno = EPERM;
        return NULL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max_len) {
        close(fd);
        errno = EFBIG;
        return NULL;
    }
    /* One spare byte detects a file that grew after fstat. */
    size_t cap = (size_t)st.st_size + 1;
    uint8_t *buf = qk_secure_alloc(cap);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    ssize_t got = read_all(fd, buf, cap);
    int e = errno;
    close(fd);
    if (got < 0) {
        qk_secure_free(buf);
        errno = e;
        return NULL;
    }
    if ((size_t)got > (size_t)st.st_size) {
        qk_secure_free(buf);
        errno = (size_t)got > max_len ? EFBIG : EAGAIN; /* changed while reading */
        return NULL;
    }
    *len = (size_t)got;
    return buf;
}
