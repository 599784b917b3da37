/* secbuf.c - secret memory on libsodium: guarded allocations wiped on free, recycled
 * through a small per-thread cache. */
#include "secbuf.h"
#include "secbuf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int qk_secure_init(void)
{
    /* sodium_init is itself idempotent and thread-safe: 0 first time, 1 afterwards. */
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- secure allocations with a per-thread cache --------------------------------------
 *
 * sodium_malloc and sodium_free cost several system calls each (mmap, mprotect, mlock,
 * munlock, munmap), which showed up as 20-24 % of a KME's CPU in the benchmark. Requests of up
 * to 1 MiB are therefore rounded up to a size class, and a released buffer goes, wiped, into a
 * small cache of the releasing thread, still mapped, guarded and locked as sodium_malloc left
 * it; the next allocation of that class on that thread takes it from there. A 16-byte header
 * in front of the caller's bytes (inside the same sodium allocation) records the class, the
 * bytes asked for and whether the buffer is live, so qk_secure_free(p) stays the only free call
 * and a second free of the same pointer aborts instead of caching the buffer twice. A cached
 * buffer is all zero: it was zeroed when mapped, and a free wipes the bytes its caller asked
 * for (the only ones the caller may write), rounded up to 64. The thread's cache is released
 * (sodium_free) by a pthread key destructor when the thread exits.
 *
 * Buffers often die on another thread than the one that made them (a worker builds a response
 * body, the pump thread frees it once sent), so the thread caches alone would drain on one side
 * and overflow on the other, and every such buffer would cost an mmap and an munmap again (with
 * the TLB shootdowns of the mprotect and munmap across cores). A shared depot per class, under
 * one mutex, takes what a full thread cache cannot keep and feeds an empty one; only past the
 * depot's bound is a buffer released to the system.
 *
 * The two largest classes (bulk requests: 128 keys of up to 8192 bits, and their JSON answers)
 * live in the depot alone: a thread cache of them would lock megabytes per thread. Without
 * them, every bulk request mapped and unmapped its buffers, and the munmap's TLB shootdowns
 * across cores were 13-18 % of both KMEs' CPU in the bulk benchmark cell. */

#define SB_MAGIC_LIVE 0x51b5ec01u
#define SB_MAGIC_FREE 0x51b5ecf0u
#define SB_UNCACHED   0xffffu
#define SB_NCLASS     8

typedef struct {
    uint32_t magic;
    uint32_t cls;  /* index into sb_class_size, or SB_UNCACHED */
    uint64_t used; /* bytes the caller asked for (at most the class size) */
} sb_hdr;
_Static_assert(sizeof(sb_hdr) == 16, "header keeps the caller's bytes 16-byte aligned");

static const size_t sb_class_size[SB_NCLASS] = {64, 256, 1024, 4096, 16384, 65536, 262144, 1048576};
/* Cached buffers per class and thread: ~0.7 MiB of locked pages per thread at most. */
static const unsigned sb_class_max[SB_NCLASS] = {16, 16, 16, 16, 8, 4, 0, 0};
#define SB_CACHE_MAX 16
/* The shared depot per class: ~26 MiB of locked pages at most for the whole process. The
 * 256 KiB class (the JSON answer of a bulk request) keeps 64: under 64 concurrent bulk
 * requests a KME holds about one answer per connection, made and freed in bursts (one sync
 * completes many replies at once), and a depot of 8 sent most of them back to sodium_malloc
 * (its fill and page faults: 12-14 % of each KME in the bulk benchmark cell). Past
 * RLIMIT_MEMLOCK, sodium_malloc's mlock fails silently; the pages stay out of core dumps. */
static const unsigned sb_depot_max[SB_NCLASS] = {64, 64, 64, 64, 32, 16, 64, 8};
#define SB_DEPOT_MAX 64

static struct {
    pthread_mutex_t mu;
    sb_hdr *slot[SB_NCLASS][SB_DEPOT_MAX];
    unsigned n[SB_NCLASS];
} sb_depot = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A wiped buffer of class cls from the depot, or NULL. */
static sb_hdr *sb_depot_take(int cls)
{
    sb_hdr *h = NULL;
    if (pthread_mutex_lock(&sb_depot.mu) != 0)
        return NULL;
    if (sb_depot.n[cls] > 0) {
        h = sb_depot.slot[cls][--sb_depot.n[cls]];
        sb_depot.slot[cls][sb_depot.n[cls]] = NULL;
    }
    (void)pthread_mutex_unlock(&sb_depot.mu);
    return h;
}

/* Keep a wiped buffer in the depot: 0, or -1 when the depot is full (the caller frees it). */
static int sb_depot_put(int cls, sb_hdr *h)
{
    int rc = -1;
    if (pthread_mutex_lock(&sb_depot.mu) != 0)
        return -1;
    if (sb_depot.n[cls] < sb_depot_max[cls]) {
        sb_depot.slot[cls][sb_depot.n[cls]++] = h;
        rc = 0;
    }
    (void)pthread_mutex_unlock(&sb_depot.mu);
    return rc;
}

typedef struct {
    sb_hdr *slot[SB_NCLASS][SB_CACHE_MAX];
    unsigned n[SB_NCLASS];
    int registered; /* the key destructor will run for this thread */
    int dead;       /* the destructor ran: release directly from now on */
} sb_cache;

static _Thread_local sb_cache sb_tls;
static pthread_key_t sb_key;
static pthread_once_t sb_once = PTHREAD_ONCE_INIT;
static int sb_key_ok;

static void sb_release(sb_cache *c)
{
    for (int i = 0; i < SB_NCLASS; i++) {
        while (c->n[i] > 0)
            sodium_free(c->slot[i][--c->n[i]]); /* wipes again and unmaps */
    }
}

static void sb_thread_exit(void *arg)
{
    sb_cache *c = arg;
    sb_release(c);
    c->dead = 1;
}

static void sb_key_init(void)
{
    sb_key_ok = pthread_key_create(&sb_key, sb_thread_exit) == 0;
}

/* This thread's cache, or NULL when it cannot be released at thread exit. */
static sb_cache *sb_cache_get(void)
{
    sb_cache *c = &sb_tls;
    if (c->dead)
        return NULL;
    if (!c->registered) {
        if (pthread_once(&sb_once, sb_key_init) != 0 || !sb_key_ok ||
            pthread_setspecific(sb_key, c) != 0)
            return NULL;
        c->registered = 1;
    }
    return c;
}

static int sb_class_of(size_t n)
{
    for (int i = 0; i < SB_NCLASS; i++)
        if (n <= sb_class_size[i])
            return i;
    return -1;
}

void *qk_secure_alloc(size_t n)
{
    /* A zero-byte request still gets a real guarded allocation so that the result can
     * always be passed to qk_secure_free. */
    if (n > SIZE_MAX - 2 * sizeof(sb_hdr))
        return NULL;
    int cls = sb_class_of(n);
    sb_cache *c = cls >= 0 ? sb_cache_get() : NULL;
    sb_hdr *h = NULL;
    if (c && c->n[cls] > 0) {
        h = c->slot[cls][--c->n[cls]];
        c->slot[cls][c->n[cls]] = NULL;
    } else if (cls >= 0 && (h = sb_depot_take(cls)) != NULL) {
        /* wiped when it went in, as in a thread cache */
    } else {
        /* sodium_malloc puts the region right before its end guard page, so its alignment
         * follows the size: keep the size a multiple of the header's 16 bytes. */
        size_t size = cls >= 0 ? sb_class_size[cls] : (n + 15) & ~(size_t)15;
        h = sodium_malloc(sizeof *h + size);
        if (!h)
            return NULL;
        h->cls = cls >= 0 ? (uint32_t)cls : SB_UNCACHED;
        sodium_memzero(h + 1, size); /* sodium fills with 0xdb; cached buffers come back zeroed */
    }
    h->used = n;
    h->magic = SB_MAGIC_LIVE;
    return h + 1;
}

void qk_secure_free(void *p)
{
    if (!p)
        return;
    sb_hdr *h = (sb_hdr *)p - 1;
    if (h->magic != SB_MAGIC_LIVE)
        abort(); /* double free or not from qk_secure_alloc: never cache such a pointer */
    h->magic = SB_MAGIC_FREE;
    uint32_t cls = h->cls;
    if (cls >= SB_NCLASS || h->used > sb_class_size[cls]) {
        sodium_free(h); /* sodium_free zeroes the whole region before unmapping it */
        return;
    }
    /* What the caller asked for, rounded up to 64 bytes (at least 64: a slip of a few bytes
     * past the end is wiped too); the rest of the class is zero still. */
    size_t w = ((size_t)h->used + 63) & ~(size_t)63;
    w = w == 0 ? 64 : w;
    sodium_memzero(p, w < sb_class_size[cls] ? w : sb_class_size[cls]);
    sb_cache *c = sb_cache_get();
    if (c && c->n[cls] < sb_class_max[cls]) {
        c->slot[cls][c->n[cls]++] = h;
        return;
    }
    if (sb_depot_put((int)cls, h) != 0)
        sodium_free(h);
}

size_t qk_secure_cached(size_t n)
{
    int cls = sb_class_of(n);
    return cls >= 0 ? sb_tls.n[cls] : 0;
}

size_t qk_secure_depot(size_t n)
{
    int cls = sb_class_of(n);
    if (cls < 0 || pthread_mutex_lock(&sb_depot.mu) != 0)
        return 0;
    size_t v = sb_depot.n[cls];
    (void)pthread_mutex_unlock(&sb_depot.mu);
    return v;
}

size_t qk_secure_depot_bound(size_t n)
{
    int cls = sb_class_of(n);
    return cls >= 0 ? sb_depot_max[cls] : 0;
}

size_t qk_secure_cache_bound(size_t n)
{
    int cls = sb_class_of(n);
    return cls >= 0 ? sb_class_max[cls] : 0;
}

void qk_wipe(void *p, size_t n)
{
    if (p && n)
        sodium_memzero(p, n);
}

void qk_wipe_free(void *p, size_t n)
{
    qk_wipe(p, n);
    free(p);
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
