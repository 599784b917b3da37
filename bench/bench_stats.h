/* bench_stats.h - what one worker measured: a latency histogram per request type and per
 * operation (a key pair is one operation of two requests), counters, errors by kind. Each
 * worker owns one bench_stats (no locking); the runner merges them at the end. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdint.h>

#include "bench_hist.h"

typedef enum {
    BENCH_RQ_ETSI_ENC,    /* ETSI 014 enc_keys at KME A */
    BENCH_RQ_ETSI_DEC,    /* ETSI 014 dec_keys of the same IDs at KME B */
    BENCH_RQ_ETSI_STATUS, /* ETSI 014 status at KME A */
    BENCH_RQ_SKIP_KEY,    /* SKIP GET /key at KME A */
    BENCH_RQ_SKIP_KEY_ID, /* SKIP GET /key/{keyId} at KME B */
    BENCH_OP_ETSI_PAIR,   /* enc + dec, whole operation */
    BENCH_OP_SKIP_PAIR,   /* key + key-by-id, whole operation */
    BENCH_NTYPES
} bench_type;

/* Error kinds. HTTP statuses are kept apart (http_503 ...) in a per-status array. */
typedef enum {
    BENCH_ERR_TLS,       /* handshake, certificate or PSK failure */
    BENCH_ERR_CONNECT,   /* connect, reset, I/O */
    BENCH_ERR_TIMEOUT,   /* whole-request timeout */
    BENCH_ERR_HTTP,      /* any HTTP status but 200 (see http[]) */
    BENCH_ERR_MALFORMED, /* an answer that does not parse as the API's, or too large */
    BENCH_ERR_MISMATCH,  /* the two KMEs handed out different bytes or IDs for one key */
    BENCH_ERR_INTERNAL,  /* out of memory or another local failure */
    BENCH_NERR
} bench_err;

#define BENCH_HTTP_MAX 600

typedef struct {
    bench_hist hist[BENCH_NTYPES];
    uint64_t requests;             /* requests answered or failed, measured phase only */
    uint64_t requests_ok;          /* of those, answered 200 */
    uint64_t ops;                  /* operations completed without error */
    uint64_t keys;                 /* keys delivered at both ends (pairs) or at KME A */
    uint64_t key_bits;             /* bits of those keys (each key counted once) */
    uint64_t err[BENCH_NERR];      /* errors by kind */
    uint64_t http[BENCH_HTTP_MAX]; /* HTTP errors by status */
} bench_stats;

const char *bench_type_name(bench_type t);
const char *bench_err_name(bench_err e);
void bench_stats_merge(bench_stats *into, const bench_stats *from);
uint64_t bench_stats_errors(const bench_stats *s);
/* Record an HTTP error status (also counts BENCH_ERR_HTTP). */
void bench_stats_http_error(bench_stats *s, long status);

#endif
