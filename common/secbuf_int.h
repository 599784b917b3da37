/* secbuf_int.h - introspection of the per-thread secure-buffer cache, for the unit tests
 * (not part of the secbuf.h API). */
#ifndef QK_SECBUF_INT_H
#define QK_SECBUF_INT_H

#include <stddef.h>

/* Buffers cached on the calling thread for the size class of n-byte requests; 0 for sizes
 * that are never cached. */
size_t qk_secure_cached(size_t n);
/* The bound of that count (0 for sizes that are never cached). */
size_t qk_secure_cache_bound(size_t n);

/* Buffers of that class in the shared depot (every thread), and the depot's bound. */
size_t qk_secure_depot(size_t n);
size_t qk_secure_depot_bound(size_t n);

#endif
