/* public_rand.h - random bytes for values that are published or need only to be unique:
 * UUIDs (key, request and relay IDs) and AEAD nonces. Never for key material, PSKs or master
 * keys: those come from qk_random (secbuf.h), the kernel's generator.
 *
 * A per-thread ChaCha20 generator with fast key erasure (D. J. Bernstein, "Fast-key-erasure
 * random-number generators", 2017): each refill of the thread's buffer runs ChaCha20 under the
 * current key, takes the first 32 bytes of the stream as the next key and serves the rest,
 * wiping each byte as it is served. The key comes from the kernel (getrandom, through
 * libsodium's randombytes_buf) at the thread's first call, after every 1 MiB served, and after
 * a fork (a child never repeats its parent's stream). Unlike randombytes_buf, which is one
 * getrandom(2) system call per call, a call costs no system call. */
#ifndef QK_PUBLIC_RAND_H
#define QK_PUBLIC_RAND_H

#include <stddef.h>

/* n random bytes into p (NULL or 0: nothing). qk_secure_init() must have run. */
void qk_random_public(void *p, size_t n);

#endif
