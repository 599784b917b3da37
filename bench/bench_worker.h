/* bench_worker.h - one load-generating worker: its keep-alive clients (one per side and API),
 * its request URLs and its secure key buffers; one call runs one operation of the scenario
 * (an ETSI or SKIP key pair, or a status poll) and records it into a bench_stats. */
#ifndef BENCH_WORKER_H
#define BENCH_WORKER_H

#include <stdint.h>

#include "bench_opts.h"
#include "bench_parse.h"
#include "bench_stats.h"
#include "bench_target.h"
#include "http_client.h"

#define BENCH_URL_MAX 1024

typedef struct {
    const bench_opts *o;
    qk_http_client *etsi[2]; /* NULL when the scenario does not use the API */
    qk_http_client *skip[2];
    char enc_url[BENCH_URL_MAX];    /* enc_keys at A (query included) */
    char dec_url[BENCH_URL_MAX];    /* dec_keys at B (no query) */
    char status_url[BENCH_URL_MAX]; /* status at A */
    char skip_key_url[BENCH_URL_MAX];
    char skip_id_base[BENCH_URL_MAX]; /* "<B>/key/" */
    char skip_id_query[256];          /* "?remoteSystemID=<A>" */
    size_t klen;                      /* bytes per key */
    uint8_t *ka, *kb;                 /* secure: number * klen each */
    bench_key_id *ida, *idb;          /* number each */
    char *dec_body;                   /* POST body for number > 1 */
    size_t dec_cap;
    uint64_t rng;
} bench_worker;

/* Clients and buffers for the scenario. 0, or -1 with a message on stderr. */
int bench_worker_init(bench_worker *w, const bench_target *t, const bench_opts *o, unsigned index);
void bench_worker_free(bench_worker *w);
/* Run one operation and record it into st. Returns 0 when it succeeded. */
int bench_worker_op(bench_worker *w, bench_stats *st);

#endif
