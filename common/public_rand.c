/* public_rand.c - the per-thread fast-key-erasure ChaCha20 generator of public_rand.h. */
#include "public_rand.h"
#include "public_rand_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#define PR_KEY    crypto_stream_chacha20_KEYBYTES /* 32 */
#define PR_BUF    256                             /* bytes served per refill */
#define PR_RESEED (1u << 20)                      /* bytes served before a fresh kernel key */

typedef struct {
    uint8_t key[PR_KEY];
    uint8_t buf[PR_BUF];
    size_t left;       /* unserved bytes at the end of buf */
    size_t since_seed; /* bytes served since the kernel key */
    unsigned fork_gen; /* fork_gen when seeded */
    unsigned seeds;    /* kernel keys taken by this thread (qk_public_rand_seeds) */
    bool seeded;
} pr_state;

static _Thread_local pr_state pr;
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void atfork_register(void)
{
    (void)pthread_atfork(NULL, NULL, on_fork_child); /* fails only for want of memory */
}

static void reseed(pr_state *s)
{
    pthread_once(&atfork_once, atfork_register);
    randombytes_buf(s->key, sizeof s->key);
    sodium_memzero(s->buf, sizeof s->buf);
    s->left = 0;
    s->since_seed = 0;
    s->fork_gen = atomic_load(&fork_gen);
    s->seeded = true;
    s->seeds++;
}

/* ChaCha20 under the current key (zero nonce: every key is used once): the first 32 bytes
 * replace the key, the rest fill the buffer. */
static void refill(pr_state *s)
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    uint8_t block[PR_KEY + PR_BUF];
    (void)crypto_stream_chacha20(block, sizeof block, nonce, s->key);
    memcpy(s->key, block, PR_KEY);
    memcpy(s->buf, block + PR_KEY, PR_BUF);
    sodium_memzero(block, sizeof block);
    s->left = PR_BUF;
}

void qk_random_public(void *p, size_t n)
{
    if (!p || n == 0)
        return;
    pr_state *s = &pr;
    if (!s->seeded || s->fork_gen != atomic_load(&fork_gen) || s->since_seed >= PR_RESEED)
        reseed(s);
    uint8_t *out = p;
    while (n > 0) {
        if (s->left == 0)
            refill(s);
        size_t take = n < s->left ? n : s->left;
        uint8_t *from = s->buf + (PR_BUF - s->left);
        memcpy(out, from, take);
        sodium_memzero(from, take); /* served bytes never stay behind */
        s->left -= take;
        s->since_seed += take;
        out += take;
        n -= take;
    }
}

unsigned qk_public_rand_seeds(void)
{
    return pr.seeds;
}
