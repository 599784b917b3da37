/* tls-identity-stress - N threads, each with its own qk_http_client and its own identity (PSK
 * identities from a PSK file, client certificates from a directory), each doing M keep-alive
 * requests to tls-test-server and checking that every response names its own identity.
 * PSK threads alternate between TLS 1.3 and TLS 1.2.
 *
 * --hold-ms MS keeps every connection open MS ms after its last request (max 600000), so that
 * a test can look at the server while N keep-alive connections are open.
 *
 * Usage: tls-identity-stress --port P [--host H] [--threads N] [--requests M]
 *        [--psk-file F] [--ca F] [--cert-dir D --cert CN ...] [--hold-ms MS]
 * Prints totals; exits 0 only when every request succeeded with the right identity. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "http_client.h"
#include "secbuf.h"
#include "tls_server.h"

#define MAX_CERTS 64

typedef struct {
    int index;
    const char *kind; /* "psk" or "cert" */
    const char *identity;
    qk_http_tls tls;
    char cert[4096], key[4096];
} worker;

static const char *g_host = "127.0.0.1";
static unsigned g_port, g_requests = 100, g_hold_ms;
static atomic_ulong g_ok, g_mismatch, g_errors;

static void *run(void *arg)
{
    worker *w = arg;
    qk_err err;
    qk_err_clear(&err);
    qk_http_client *c = qk_http_client_new(&w->tls, &err);
    if (!c) {
        fprintf(stderr, "thread %d: %s\n", w->index, err.msg);
        atomic_fetch_add(&g_errors, g_requests);
        return NULL;
    }
    char want_id[QK_IDENTITY_MAX + 16], want_kind[32], url[256], want_path[128];
    snprintf(want_id, sizeof want_id, "\"id\":\"%s\"", w->identity);
    snprintf(want_kind, sizeof want_kind, "\"kind\":\"%s\"", w->kind);
    for (unsigned i = 0; i < g_requests; i++) {
        snprintf(url, sizeof url, "https://%s:%u/t/%d/%u", g_host, g_port, w->index, i);
        snprintf(want_path, sizeof want_path, "\"path\":\"/t/%d/%u\"", w->index, i);
        qk_http_response r;
        if (qk_http_call(c, "GET", url, NULL, 0, NULL, &r, &err) != 0) {
            if (atomic_fetch_add(&g_errors, 1) < 10)
                fprintf(stderr, "thread %d request %u: %s\n", w->index, i, err.msg);
            continue;
        }
        if (r.status != 200 || !strstr(r.body, want_id) || !strstr(r.body, want_kind) ||
            !strstr(r.body, want_path)) {
            if (atomic_fetch_add(&g_mismatch, 1) < 10)
                fprintf(stderr, "thread %d (%s %s) request %u: MISMATCH status=%ld body=%s",
                        w->index, w->kind, w->identity, i, r.status, r.body);
        } else {
            atomic_fetch_add(&g_ok, 1);
        }
        qk_http_response_free(&r);
    }
    if (g_hold_ms) {
        struct timespec ts = {(time_t)(g_hold_ms / 1000), (long)(g_hold_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    qk_http_client_free(c);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: tls-identity-stress --port P [--host H] [--threads N] "
                    "[--requests M] [--psk-file F] [--ca F] [--cert-dir D --cert CN ...] "
                    "[--hold-ms MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},     {"host", required_argument, NULL, 'h'},
        {"threads", required_argument, NULL, 't'},  {"requests", required_argument, NULL, 'r'},
        {"psk-file", required_argument, NULL, 'k'}, {"ca", required_argument, NULL, 'a'},
        {"cert-dir", required_argument, NULL, 'd'}, {"cert", required_argument, NULL, 'c'},
        {"hold-ms", required_argument, NULL, 'H'},  {NULL, 0, NULL, 0}};
    unsigned nthreads = 16;
    const char *psk_file = NULL, *ca = NULL, *cert_dir = ".";
    const char *certs[MAX_CERTS];
    size_t ncerts = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            g_port = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            g_host = optarg;
            break;
        case 't':
            nthreads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            g_requests = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            psk_file = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'd':
            cert_dir = optarg;
            break;
        case 'H':
            g_hold_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'c':
            if (ncerts == MAX_CERTS)
                usage();
            certs[ncerts++] = optarg;
            break;
        default:
            usage();
        }
    }
    if (!g_port || g_port > 65535 || nthreads == 0 || nthreads > 1024 || g_requests == 0 ||
        g_requests > 1000000 || g_hold_ms > 600000 || optind != argc)
        usage();
    if (qk_secure_init() != 0 || qk_http_global_init() != 0) {
        fprintf(stderr, "init failed\n");
        return 2;
    }
    qk_psk_table psks = {NULL, 0};
    qk_err err;
    qk_err_clear(&err);
    if (psk_file && qk_psk_table_load(psk_file, &psks, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    size_t nid = psks.n + ncerts;
    if (nid == 0) {
        fprintf(stderr, "no identities: give --psk-file and/or --cert\n");
        return 2;
    }
    worker *ws = calloc(nthreads, sizeof *ws);
    pthread_t *tids = calloc(nthreads, sizeof *tids);
    if (!ws || !tids)
        return 2;
    for (unsigned i = 0; i < nthreads; i++) {
        worker *w = &ws[i];
        size_t slot = i % nid;
        w->index = (int)i;
        w->tls.timeout_ms = 20000;
        w->tls.verify_host = true;
        if (slot < psks.n) {
            const qk_psk_entry *e = &psks.entries[slot];
            w->kind = "psk";
            w->identity = e->identity;
            w->tls.psk_identity = e->identity;
            w->tls.psk = e->key;
            w->tls.psk_len = e->key_len;
            w->tls.psk_sha256 = e->hash == QK_PSK_SHA256;
            /* Alternate versions; SHA-256 entries stay on TLS 1.3 to exercise that path. */
            if ((i / nid) % 2 == 1 && e->hash == QK_PSK_SHA384)
                w->tls.max_version = TLS1_2_VERSION;
        } else {
            const char *cn = certs[slot - psks.n];
            w->kind = "cert";
            w->identity = cn;
            snprintf(w->cert, sizeof w->cert, "%s/%s.crt", cert_dir, cn);
            snprintf(w->key, sizeof w->key, "%s/%s.key", cert_dir, cn);
            w->tls.cert_file = w->cert;
            w->tls.key_file = w->key;
            w->tls.ca_file = ca;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned started = 0;
    for (; started < nthreads; started++) {
        if (pthread_create(&tids[started], NULL, run, &ws[started]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            atomic_fetch_add(&g_errors, 1);
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    unsigned long ok = atomic_load(&g_ok), bad = atomic_load(&g_mismatch),
                  errs = atomic_load(&g_errors);
    printf("threads=%u identities=%zu requests=%lu ok=%lu mismatches=%lu errors=%lu "
           "elapsed=%.2fs rate=%.0f/s\n",
           nthreads, nid, (unsigned long)nthreads * g_requests, ok, bad, errs, secs,
           secs > 0 ? (double)ok / secs : 0.0);
    free(ws);
    free(tids);
    qk_psk_table_free(&psks);
    qk_http_global_cleanup();
    return (bad == 0 && errs == 0 && ok == (unsigned long)nthreads * g_requests) ? 0 : 1;
}
