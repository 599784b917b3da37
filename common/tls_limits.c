/* tls_limits.c - the connection budgets of the TLS front end (tls_internal.h): a counter per
 * source address (connections that have not finished the TLS handshake) and per authenticated
 * identity (connections after it), shared by a listener's pump threads. See
 * docs/adr/0001-tls-front-end.md, "Limits and deadlines". */
#include "tls_internal.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUDGET_BUCKETS 1024 /* a power of two */

typedef struct budget_node {
    struct budget_node *next;
    unsigned count;
    size_t len;
    unsigned char key[];
} budget_node;

struct qk_budget {
    pthread_mutex_t lock;
    budget_node *buckets[BUDGET_BUCKETS];
};

/* FNV-1a, 32 bits (the FNV parameters of draft-eastlake-fnv, section 2). */
static unsigned bucket_of(const unsigned char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h & (BUDGET_BUCKETS - 1);
}

qk_budget *qk_budget_new(void)
{
    qk_budget *b = calloc(1, sizeof *b);
    if (b && pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

void qk_budget_free(qk_budget *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < BUDGET_BUCKETS; i++) {
        while (b->buckets[i]) {
            budget_node *n = b->buckets[i];
            b->buckets[i] = n->next;
            free(n);
        }
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* The node of key in its bucket, and the link that points to it. Called with the lock held. */
static budget_node **find(qk_budget *b, const unsigned char *key, size_t len)
{
    budget_node **pp = &b->buckets[bucket_of(key, len)];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->key, key, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

int qk_budget_acquire(qk_budget *b, const void *key, size_t len, unsigned limit)
{
    if (!b || !key || len == 0 || len > QK_BUDGET_KEY_MAX || limit == 0)
        return -1;
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    budget_node **pp = find(b, key, len);
    if (*pp) {
        if ((*pp)->count >= limit)
            rc = -1;
        else
            (*pp)->count++;
    } else {
        budget_node *n = malloc(sizeof *n + len);
        if (!n) {
            rc = -1;
        } else {
            n->next = NULL;
            n->count = 1;
            n->len = len;
            memcpy(n->key, key, len);
            *pp = n;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void qk_budget_release(qk_budget *b, const void *key, size_t len)
{
    if (!b || !key || len == 0 || len > QK_BUDGET_KEY_MAX)
        return;
    pthread_mutex_lock(&b->lock);
    budget_node **pp = find(b, key, len);
    budget_node *n = *pp;
    if (n && --n->count == 0) {
        *pp = n->next;
        free(n);
    }
    pthread_mutex_unlock(&b->lock);
}

unsigned qk_budget_count(qk_budget *b, const void *key, size_t len)
{
    if (!b || !key || len == 0 || len > QK_BUDGET_KEY_MAX)
        return 0;
    pthread_mutex_lock(&b->lock);
    budget_node *n = *find(b, key, len);
    unsigned count = n ? n->count : 0;
    pthread_mutex_unlock(&b->lock);
    return count;
}

size_t qk_budget_source_key(const struct sockaddr_storage *ss, unsigned char out[17])
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        out[0] = 4;
        memcpy(out + 1, &a->sin_addr, 4);
        return 5;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            out[0] = 4;
            memcpy(out + 1, a->sin6_addr.s6_addr + 12, 4);
            return 5;
        }
        out[0] = 6;
        memcpy(out + 1, &a->sin6_addr, 16);
        return 17;
    }
    return 0;
}

size_t qk_budget_identity_key(const qk_peer_identity *id, unsigned char out[QK_BUDGET_KEY_MAX])
{
    if (!id || id->kind == QK_ID_NONE)
        return 0;
    size_t n = strnlen(id->id, QK_IDENTITY_MAX);
    out[0] = (unsigned char)id->kind;
    memcpy(out + 1, id->id, n);
    return n + 1;
}
