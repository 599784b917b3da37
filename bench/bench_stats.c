/* bench_stats.c - names, merging and error counting for bench_stats. */
#include "bench_stats.h"

static const char *const type_names[BENCH_NTYPES] = {
    [BENCH_RQ_ETSI_ENC] = "etsi_enc_keys",     [BENCH_RQ_ETSI_DEC] = "etsi_dec_keys",
    [BENCH_RQ_ETSI_STATUS] = "etsi_status",    [BENCH_RQ_SKIP_KEY] = "skip_key",
    [BENCH_RQ_SKIP_KEY_ID] = "skip_key_by_id", [BENCH_OP_ETSI_PAIR] = "etsi_key_pair",
    [BENCH_OP_SKIP_PAIR] = "skip_key_pair",
};

static const char *const err_names[BENCH_NERR] = {
    [BENCH_ERR_TLS] = "tls",
    [BENCH_ERR_CONNECT] = "connect",
    [BENCH_ERR_TIMEOUT] = "timeout",
    [BENCH_ERR_HTTP] = "http",
    [BENCH_ERR_MALFORMED] = "malformed",
    [BENCH_ERR_MISMATCH] = "mismatch",
    [BENCH_ERR_INTERNAL] = "internal",
};

const char *bench_type_name(bench_type t)
{
    return (unsigned)t < BENCH_NTYPES ? type_names[t] : "?";
}

const char *bench_err_name(bench_err e)
{
    return (unsigned)e < BENCH_NERR ? err_names[e] : "?";
}

void bench_stats_merge(bench_stats *into, const bench_stats *from)
{
    for (unsigned t = 0; t < BENCH_NTYPES; t++)
        bench_hist_merge(&into->hist[t], &from->hist[t]);
    into->requests += from->requests;
    into->requests_ok += from->requests_ok;
    into->ops += from->ops;
    into->keys += from->keys;
    into->key_bits += from->key_bits;
    for (unsigned e = 0; e < BENCH_NERR; e++)
        into->err[e] += from->err[e];
    for (unsigned s = 0; s < BENCH_HTTP_MAX; s++)
        into->http[s] += from->http[s];
}

uint64_t bench_stats_errors(const bench_stats *s)
{
    uint64_t n = 0;
    for (unsigned e = 0; e < BENCH_NERR; e++)
        n += s->err[e];
    return n;
}

void bench_stats_http_error(bench_stats *s, long status)
{
    s->err[BENCH_ERR_HTTP]++;
    if (status >= 0 && status < BENCH_HTTP_MAX)
        s->http[status]++;
}
