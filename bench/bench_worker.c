/* bench_worker.c - the operations of the load generator (see bench_worker.h). */
#include "bench_worker.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench_clock.h"
#include "qkdclient.h"
#include "secbuf.h"

static uint64_t now_us(void)
{
    return bench_now_ns() / 1000u;
}

static qk_http_client *client_for(const bench_endpoint *e, const bench_opts *o)
{
    qk_http_tls tls = {
        .ca_file = e->ca,
        .cert_file = e->cert,
        .key_file = e->key,
        .psk_identity = e->psk_identity,
        .psk = e->psk,
        .psk_len = e->psk_len,
        .tls13_suites = "TLS_AES_256_GCM_SHA384",
        .connect_timeout_ms = 3000,
        .timeout_ms = o->timeout_ms,
        .max_response = 4u << 20,
        .verify_host = true,
    };
    qk_err err;
    qk_err_clear(&err);
    qk_http_client *c = qk_http_client_new(&tls, &err);
    if (!c)
        fprintf(stderr, "qkd-bench: client for %s: %s\n", e->url, err.msg);
    return c;
}

/* An snprintf result that fits in cap. */
static bool fits(int n, size_t cap)
{
    return n >= 0 && (size_t)n < cap;
}

static int build_urls(bench_worker *w, const bench_target *t)
{
    char sae_a[512] = "", sae_b[512] = "", kme_a[512] = "", kme_b[512] = "";
    if (qkc_url_append_encoded(sae_a, sizeof sae_a, t->sae_id[0]) != 0 ||
        qkc_url_append_encoded(sae_b, sizeof sae_b, t->sae_id[1]) != 0 ||
        qkc_url_append_encoded(kme_a, sizeof kme_a, t->kme_id[0]) != 0 ||
        qkc_url_append_encoded(kme_b, sizeof kme_b, t->kme_id[1]) != 0)
        return -1;
    const bench_opts *o = w->o;
    bool ok =
        fits(snprintf(w->status_url, sizeof w->status_url, "%s/api/v1/keys/%s/status",
                      t->etsi[0].url, sae_b),
             sizeof w->status_url) &&
        fits(snprintf(w->dec_url, sizeof w->dec_url, "%s/api/v1/keys/%s/dec_keys", t->etsi[1].url,
                      sae_a),
             sizeof w->dec_url) &&
        fits(snprintf(w->enc_url, sizeof w->enc_url, "%s/api/v1/keys/%s/enc_keys?number=%u&size=%u",
                      t->etsi[0].url, sae_b, o->number, o->size_bits),
             sizeof w->enc_url);
    if (ok && t->skip[0].url && t->skip[1].url)
        ok = fits(snprintf(w->skip_key_url, sizeof w->skip_key_url,
                           "%s/key?remoteSystemID=%s&size=%u", t->skip[0].url, kme_b, o->size_bits),
                  sizeof w->skip_key_url) &&
             fits(snprintf(w->skip_id_base, sizeof w->skip_id_base, "%s/key/", t->skip[1].url),
                  sizeof w->skip_id_base) &&
             fits(snprintf(w->skip_id_query, sizeof w->skip_id_query, "?remoteSystemID=%s", kme_a),
                  sizeof w->skip_id_query);
    return ok ? 0 : -1;
}

int bench_worker_init(bench_worker *w, const bench_target *t, const bench_opts *o, unsigned index)
{
    memset(w, 0, sizeof *w);
    w->o = o;
    w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)index * 0xBF58476D1CE4E5B9ull) ^ now_us();
    bool etsi = o->scenario != BENCH_SC_SKIP;
    bool skip = o->scenario == BENCH_SC_SKIP || o->scenario == BENCH_SC_MIXED;
    if (build_urls(w, t) != 0) {
        fprintf(stderr, "qkd-bench: an ID or URL is too long\n");
        return -1;
    }
    if (skip && !t->skip[0].url) {
        fprintf(stderr, "qkd-bench: the lab runs without SKIP\n");
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if ((etsi && !(w->etsi[i] = client_for(&t->etsi[i], o))) ||
            (skip && !(w->skip[i] = client_for(&t->skip[i], o))))
            goto fail;
    }
    w->klen = o->size_bits / 8;
    size_t n = o->number;
    w->ka = qk_secure_alloc(n * w->klen);
    w->kb = qk_secure_alloc(n * w->klen);
    w->ida = calloc(n, sizeof *w->ida);
    w->idb = calloc(n, sizeof *w->idb);
    w->dec_cap = 32 + n * (BENCH_ID_MAX + 16);
    w->dec_body = malloc(w->dec_cap);
    if (!w->ka || !w->kb || !w->ida || !w->idb || !w->dec_body) {
        fprintf(stderr, "qkd-bench: out of memory\n");
        goto fail;
    }
    return 0;
fail:
    bench_worker_free(w);
    return -1;
}

void bench_worker_free(bench_worker *w)
{
    for (int i = 0; i < 2; i++) {
        qk_http_client_free(w->etsi[i]);
        qk_http_client_free(w->skip[i]);
    }
    qk_secure_free(w->ka);
    qk_secure_free(w->kb);
    free(w->ida);
    free(w->idb);
    free(w->dec_body);
    memset(w, 0, sizeof *w);
}

/* One request. Returns 0 for an HTTP 200 (resp to be freed by the caller), else -1 with the
 * error counted. The latency of answered requests goes into hist[type]. */
static int request(qk_http_client *c, const char *method, const char *url, const char *body,
                   bench_stats *st, bench_type type, qk_http_response *resp)
{
    static const char *const json_hdr[] = {"Content-Type: application/json", NULL};
    qk_err err;
    qk_err_clear(&err);
    uint64_t t0 = now_us();
    int rc = qk_http_call(c, method, url, body, body ? strlen(body) : 0, body ? json_hdr : NULL,
                          resp, &err);
    uint64_t dt = now_us() - t0;
    st->requests++;
    if (rc != 0) {
        bench_err k = rc == QK_ETLS       ? BENCH_ERR_TLS
                      : rc == QK_ETIMEOUT ? BENCH_ERR_TIMEOUT
                      : rc == QK_EIO      ? BENCH_ERR_CONNECT
                      : rc == QK_ELIMIT   ? BENCH_ERR_MALFORMED
                                          : BENCH_ERR_INTERNAL;
        st->err[k]++;
        qk_http_response_free(resp);
        bench_nap_ms(20); /* a refused or broken connection must not turn into a busy loop */
        return -1;
    }
    bench_hist_record(&st->hist[type], dt);
    if (resp->status != 200) {
        bench_stats_http_error(st, resp->status);
        qk_http_response_free(resp);
        bench_nap_ms(5);
        return -1;
    }
    st->requests_ok++;
    return 0;
}

/* Body of a dec_keys POST for n IDs. */
static int dec_body(bench_worker *w, size_t n)
{
    size_t pos = 0;
    int k = snprintf(w->dec_body, w->dec_cap, "{\"key_IDs\":[");
    for (size_t i = 0; k > 0 && (size_t)k < w->dec_cap - pos && i < n; i++) {
        pos += (size_t)k;
        k = snprintf(w->dec_body + pos, w->dec_cap - pos, "%s{\"key_ID\":\"%s\"}", i ? "," : "",
                     w->ida[i]);
    }
    if (k < 0 || (size_t)k >= w->dec_cap - pos)
        return -1;
    pos += (size_t)k;
    k = snprintf(w->dec_body + pos, w->dec_cap - pos, "]}");
    return (k < 0 || (size_t)k >= w->dec_cap - pos) ? -1 : 0;
}

/* Same IDs and same bytes at both ends (keys compared in constant time). */
static size_t mismatches(const bench_worker *w, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = strcasecmp(w->ida[i], w->idb[i]) == 0 ? i : n;
        for (size_t m = 0; j == n && m < n; m++)
            if (strcasecmp(w->ida[i], w->idb[m]) == 0)
                j = m;
        if (j == n || qk_memcmp_ct(w->ka + i * w->klen, w->kb + j * w->klen, w->klen) != 0)
            bad++;
    }
    return bad;
}

static void count_pair(bench_worker *w, bench_stats *st, bench_type op, size_t n, uint64_t t0)
{
    bench_hist_record(&st->hist[op], now_us() - t0);
    st->ops++;
    st->keys += n;
    st->key_bits += (uint64_t)n * w->o->size_bits;
}

static int etsi_pair(bench_worker *w, bench_stats *st)
{
    size_t n = w->o->number, total = n * w->klen;
    qk_http_response r;
    uint64_t t0 = now_us();
    int rc = -1;
    if (request(w->etsi[0], "GET", w->enc_url, NULL, st, BENCH_RQ_ETSI_ENC, &r) != 0)
        return -1;
    int prc = bench_parse_etsi_keys(r.body, r.body_len, n, w->klen, w->ida, w->ka);
    qk_http_response_free(&r);
    if (prc != 0) {
        st->err[BENCH_ERR_MALFORMED]++;
        goto out;
    }
    char url[2 * BENCH_URL_MAX];
    const char *body = NULL;
    if (n == 1) {
        if (!fits(snprintf(url, sizeof url, "%s?key_ID=%s", w->dec_url, w->ida[0]), sizeof url))
            goto internal;
    } else {
        if (!fits(snprintf(url, sizeof url, "%s", w->dec_url), sizeof url) || dec_body(w, n) != 0)
            goto internal;
        body = w->dec_body;
    }
    if (request(w->etsi[1], body ? "POST" : "GET", url, body, st, BENCH_RQ_ETSI_DEC, &r) != 0)
        goto out;
    prc = bench_parse_etsi_keys(r.body, r.body_len, n, w->klen, w->idb, w->kb);
    qk_http_response_free(&r);
    if (prc != 0) {
        st->err[BENCH_ERR_MALFORMED]++;
        goto out;
    }
    if (mismatches(w, n) != 0) {
        st->err[BENCH_ERR_MISMATCH]++;
        goto out;
    }
    count_pair(w, st, BENCH_OP_ETSI_PAIR, n, t0);
    rc = 0;
    goto out;
internal:
    st->err[BENCH_ERR_INTERNAL]++;
out:
    qk_wipe(w->ka, total);
    qk_wipe(w->kb, total);
    return rc;
}

static int skip_pair(bench_worker *w, bench_stats *st)
{
    qk_http_response r;
    uint64_t t0 = now_us();
    int rc = -1;
    if (request(w->skip[0], "GET", w->skip_key_url, NULL, st, BENCH_RQ_SKIP_KEY, &r) != 0)
        return -1;
    int prc = bench_parse_skip_key(r.body, r.body_len, w->klen, w->ida[0], w->ka);
    qk_http_response_free(&r);
    char url[2 * BENCH_URL_MAX + 256];
    int n = prc == 0
                ? snprintf(url, sizeof url, "%s%s%s", w->skip_id_base, w->ida[0], w->skip_id_query)
                : -1;
    if (prc != 0) {
        st->err[BENCH_ERR_MALFORMED]++;
        goto out;
    }
    if (n < 0 || (size_t)n >= sizeof url) {
        st->err[BENCH_ERR_INTERNAL]++;
        goto out;
    }
    if (request(w->skip[1], "GET", url, NULL, st, BENCH_RQ_SKIP_KEY_ID, &r) != 0)
        goto out;
    prc = bench_parse_skip_key(r.body, r.body_len, w->klen, w->idb[0], w->kb);
    qk_http_response_free(&r);
    if (prc != 0) {
        st->err[BENCH_ERR_MALFORMED]++;
        goto out;
    }
    if (mismatches(w, 1) != 0) {
        st->err[BENCH_ERR_MISMATCH]++;
        goto out;
    }
    count_pair(w, st, BENCH_OP_SKIP_PAIR, 1, t0);
    rc = 0;
out:
    qk_wipe(w->ka, w->klen);
    qk_wipe(w->kb, w->klen);
    return rc;
}

static int status_poll(bench_worker *w, bench_stats *st)
{
    qk_http_response r;
    if (request(w->etsi[0], "GET", w->status_url, NULL, st, BENCH_RQ_ETSI_STATUS, &r) != 0)
        return -1;
    int prc = bench_parse_object(r.body, r.body_len);
    qk_http_response_free(&r);
    if (prc != 0) {
        st->err[BENCH_ERR_MALFORMED]++;
        return -1;
    }
    st->ops++;
    return 0;
}

/* xorshift64*: the mixed scenario's choice, per worker. */
static unsigned next_percent(bench_worker *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (unsigned)(((w->rng * 0x2545F4914F6CDD1Dull) >> 32) % 100u);
}

int bench_worker_op(bench_worker *w, bench_stats *st)
{
    switch (w->o->scenario) {
    case BENCH_SC_ETSI:
        return etsi_pair(w, st);
    case BENCH_SC_SKIP:
        return skip_pair(w, st);
    case BENCH_SC_STATUS:
        return status_poll(w, st);
    case BENCH_SC_MIXED: {
        unsigned p = next_percent(w);
        return p < 45 ? etsi_pair(w, st) : p < 90 ? skip_pair(w, st) : status_poll(w, st);
    }
    }
    return -1;
}
