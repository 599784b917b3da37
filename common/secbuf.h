/* secbuf.h - secret memory on libsodium: guarded allocations wiped on free. */
#ifndef QK_SECBUF_H
#define QK_SECBUF_H

#include <stddef.h>
#include <stdint.h>

/* Call once at start-up (idempotent, thread-safe). Returns 0 or -1. */
int qk_secure_init(void);

/* sodium_malloc'ed buffer (guard pages, mlock where allowed); NULL on failure. n may be 0. */
void *qk_secure_alloc(size_t n);
/* Wipes and frees; NULL is a no-op. */
void qk_secure_free(void *p);
/* sodium_memzero. */
void qk_wipe(void *p, size_t n);
/* Wipe the n bytes at p, then free(3) p (a malloc'ed buffer that held secrets); NULL is a
 * no-op. */
void qk_wipe_free(void *p, size_t n);
/* CSPRNG (randombytes_buf). */
void qk_random(void *p, size_t n);
/* Constant-time compare: 0 if equal. */
int qk_memcmp_ct(const void *a, const void *b, size_t n);

/* Read a whole secret file into a secure buffer (e.g. master key, PSK file). Refuses files
 * that are group/world readable when require_private is non-zero. Returns buffer or NULL
 * (errno set; EPERM for bad mode, EFBIG above max_len). *len receives the size. */
uint8_t *qk_secure_read_file(const char *path, size_t max_len, int require_private, size_t *len);

#endif
