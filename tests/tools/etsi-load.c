/* etsi-load.c - ETSI GS QKD 014 load and consistency client for two KMEs.
 *
 * Each worker thread keeps two keep-alive clients: the master SAE's (mTLS) at the master KME
 * and the slave SAE's at the other KME. Per iteration it POSTs enc_keys (number K, size S) at
 * the master KME, then POSTs dec_keys for every returned key ID at the slave KME and compares
 * the bytes; every --recheck-every iterations it asks for one of those keys a second time and
 * expects 400. --direction both runs A->B and B->A workers at the same time.
 *
 *   etsi-load --a-url URL --a-sae ID --a-cert F --a-key F --b-url URL --b-sae ID --b-cert F
 *             --b-key F --ca F [--threads T] [--pairs N] [--number K] [--size BITS]
 *             [--direction ab|ba|both] [--out FILE] [--tolerate-errors] [--recheck-every M]
 *             [--timeout-ms MS] [--no-verify-host] [--quiet] [--duration-s S]
 *   etsi-load ... --verify FILE [--verify FILE]... [--verify-sample M]
 *       re-checks recorded keys: every "pending" key (delivered to the master, not yet fetched
 *       at the slave) must now be fetchable exactly once with the recorded SHA-256; every M-th
 *       "fetched" key must be refused (400). Key IDs and key hashes must all be distinct.
 *
 * --out lines: `DIR KEY_ID SHA256HEX fetched|pending` (DIR = AB or BA; never key bytes).
 * Prints one summary line; exits 1 on any mismatch, double delivery, duplicate key ID or key
 * material, lost key, or (without --tolerate-errors) any error; 2 on usage errors. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "codec.h"
#include "http_client.h"
#include "qkdclient.h"
#include "qk_err.h"
#include "secbuf.h"

#define MAX_THREADS      64
#define MAX_VERIFY_FILES 16
#define MAX_NUMBER       1024
#define MAX_SIZE_BITS    65536
#define ID_LEN           36

typedef struct {
    const char *url, *sae, *cert, *key;
} endpoint;

typedef struct {
    endpoint a, b;
    const char *ca, *out;
    unsigned threads;
    uint64_t pairs;
    unsigned number, size_bits;
    bool ab, ba, tolerate, verify_host, quiet;
    unsigned recheck_every;
    long timeout_ms;
    const char *verify[MAX_VERIFY_FILES];
    size_t nverify;
    unsigned verify_sample;
    double duration_s;    /* stop after this many seconds (0 = run all pairs) */
    const char *lost_out; /* --verify: write "DIR KEY_ID" of unfetchable pending keys */
} opts;

typedef struct {
    char id[ID_LEN + 1];
    uint8_t sha[32];
    char dir[3];
    bool fetched;
} record;

static struct {
    pthread_mutex_t mu;
    uint64_t enc_req, dec_req, recheck_req, keys, fetched, mismatches, doubles, bad_answers;
    uint64_t status[600]; /* errors by HTTP status; [0] = transport */
    record *recs;
    size_t nrecs, cap;
    bool fatal;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER};

static opts O;
static struct timespec T0;

static double elapsed_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - T0.tv_sec) + (double)(t.tv_nsec - T0.tv_nsec) / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: etsi-load --a-url URL --a-sae ID --a-cert F --a-key F --b-url URL --b-sae ID\n"
            "  --b-cert F --b-key F --ca F [--threads T (2)] [--pairs N (10)] [--number K (1)]\n"
            "  [--size BITS (256)] [--direction ab|ba|both (ab)] [--out FILE]\n"
            "  [--tolerate-errors] [--recheck-every M (10, 0=never)] [--timeout-ms MS]\n"
            "  [--no-verify-host] [--quiet] [--duration-s S] [--verify FILE]...\n"
            "  [--verify-sample M (1)] [--lost-out FILE]\n");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static void count_error(long status)
{
    pthread_mutex_lock(&G.mu);
    G.status[(status >= 100 && status < 600) ? status : 0]++;
    if (!O.tolerate)
        G.fatal = true;
    pthread_mutex_unlock(&G.mu);
}

static void count_bad(const char *what)
{
    fprintf(stderr, "etsi-load: %s\n", what);
    pthread_mutex_lock(&G.mu);
    G.bad_answers++;
    G.fatal = true;
    pthread_mutex_unlock(&G.mu);
}

static int add_record(const char *dir, const char *id, const uint8_t sha[32], bool fetched)
{
    pthread_mutex_lock(&G.mu);
    if (G.nrecs == G.cap) {
        size_t nc = G.cap ? G.cap * 2 : 1024;
        record *nr = realloc(G.recs, nc * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&G.mu);
            return -1;
        }
        G.recs = nr;
        G.cap = nc;
    }
    record *r = &G.recs[G.nrecs++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    memcpy(r->sha, sha, 32);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    r->fetched = fetched;
    pthread_mutex_unlock(&G.mu);
    return 0;
}

/* URL-encode an SAE ID for a path segment (libqkdclient's encoder). */
static int enc_segment(const char *in, char *out, size_t cap)
{
    if (cap == 0)
        return -1;
    out[0] = '\0';
    return qkc_url_append_encoded(out, cap, in);
}

static int api_url(char *url, size_t cap, const char *base, const char *sae, const char *op)
{
    char seg[512];
    if (enc_segment(sae, seg, sizeof seg) != 0)
        return -1;
    int n = snprintf(url, cap, "%s/api/v1/keys/%s/%s", base, seg, op);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static qk_http_client *new_client(const endpoint *e)
{
    qk_http_tls tls = {
        .ca_file = O.ca,
        .cert_file = e->cert,
        .key_file = e->key,
        .timeout_ms = O.timeout_ms,
        .connect_timeout_ms = 2000,
        .verify_host = O.verify_host,
    };
    qk_err err = {0};
    qk_http_client *c = qk_http_client_new(&tls, &err);
    if (!c)
        fprintf(stderr, "etsi-load: client for %s: %s\n", e->sae, err.msg);
    return c;
}

/* Issue a request; returns the status (0 = transport error). resp must be freed. */
static long do_req(qk_http_client *c, const char *method, const char *url, const char *body,
                   qk_http_response *resp)
{
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    memset(resp, 0, sizeof *resp);
    qk_err err = {0};
    int rc =
        qk_http_call(c, method, url, body, body ? strlen(body) : 0, body ? hdrs : NULL, resp, &err);
    if (rc != 0) {
        if (!O.quiet)
            fprintf(stderr, "etsi-load: %s %s: %s (%s)\n", method, url, qk_status_name(rc),
                    err.msg);
        return 0;
    }
    return resp->status;
}

/* Wipe every string in a parsed key container before freeing it. */
static void wipe_json(cJSON *j)
{
    for (cJSON *c = j; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring)
            qk_wipe(c->valuestring, strlen(c->valuestring));
        if (c->child)
            wipe_json(c->child);
    }
}

typedef struct {
    char (*ids)[ID_LEN + 1];
    uint8_t *material; /* secure, n * klen */
    size_t n, klen;
} keyset;

/* Parse a key container expecting `want` keys of klen bytes each into ks (ks->ids/material
 * preallocated for want keys). Returns 0 or -1 (message printed). */
static int parse_container(const qk_http_response *resp, size_t want, keyset *ks)
{
    cJSON *root = cJSON_ParseWithLength(resp->body, resp->body_len);
    int rc = -1;
    const cJSON *keys = root ? cJSON_GetObjectItemCaseSensitive(root, "keys") : NULL;
    if (!cJSON_IsArray(keys) || (size_t)cJSON_GetArraySize(keys) != want) {
        count_bad("key container malformed or with the wrong number of keys");
        goto out;
    }
    size_t i = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "key_ID");
        const cJSON *kb = cJSON_GetObjectItemCaseSensitive(k, "key");
        qk_uuid u;
        if (!cJSON_IsString(id) || !cJSON_IsString(kb) ||
            strlen(id->valuestring) != QK_UUID_STR_LEN ||
            qk_uuid_parse(id->valuestring, QK_UUID_STR_LEN, &u) != 0) {
            count_bad("key container entry malformed");
            goto out;
        }
        memcpy(ks->ids[i], id->valuestring, ID_LEN + 1);
        size_t got = 0;
        if (qk_base64_decode(kb->valuestring, strlen(kb->valuestring), ks->material + i * ks->klen,
                             ks->klen, &got) != 0 ||
            got != ks->klen) {
            count_bad("key is not valid base64 of the requested size");
            goto out;
        }
        i++;
    }
    ks->n = i;
    rc = 0;
out:
    if (root) {
        wipe_json(root);
        cJSON_Delete(root);
    }
    return rc;
}

typedef struct {
    const endpoint *m, *s;
    const char *dir;
} work;

static void *worker(void *arg)
{
    const work *w = arg;
    qk_http_client *cm = new_client(w->m);
    qk_http_client *cs = new_client(w->s);
    size_t klen = O.size_bits / 8;
    keyset mk = {calloc(O.number, ID_LEN + 1), qk_secure_alloc(O.number * klen), 0, klen};
    keyset sk = {calloc(O.number, ID_LEN + 1), qk_secure_alloc(O.number * klen), 0, klen};
    size_t dec_cap = 32 + (size_t)O.number * (ID_LEN + 16);
    char *dec_body = malloc(dec_cap);
    char enc_url[1024], dec_url[1024], body[128];
    if (!cm || !cs || !mk.ids || !mk.material || !sk.ids || !sk.material || !dec_body ||
        api_url(enc_url, sizeof enc_url, w->m->url, w->s->sae, "enc_keys") != 0 ||
        api_url(dec_url, sizeof dec_url, w->s->url, w->m->sae, "dec_keys") != 0) {
        count_bad("worker setup failed");
        goto out;
    }
    snprintf(body, sizeof body, "{\"number\":%u,\"size\":%u}", O.number, O.size_bits);
    for (uint64_t it = 0; it < O.pairs; it++) {
        if (G.fatal || (O.duration_s > 0 && elapsed_s() >= O.duration_s))
            break;
        qk_http_response resp;
        long st = do_req(cm, "POST", enc_url, body, &resp);
        pthread_mutex_lock(&G.mu);
        G.enc_req++;
        pthread_mutex_unlock(&G.mu);
        if (st != 200) {
            if (!O.quiet && st)
                fprintf(stderr, "etsi-load: %s enc_keys: HTTP %ld %.200s\n", w->dir, st,
                        resp.body ? resp.body : "");
            qk_http_response_free(&resp);
            count_error(st);
            sleep_ms(st == 0 ? 200 : 20);
            continue;
        }
        int prc = parse_container(&resp, O.number, &mk);
        qk_http_response_free(&resp);
        if (prc != 0)
            break;
        uint8_t sha[MAX_NUMBER][32];
        for (size_t i = 0; i < mk.n; i++)
            crypto_hash_sha256(sha[i], mk.material + i * klen, klen);
        pthread_mutex_lock(&G.mu);
        G.keys += mk.n;
        pthread_mutex_unlock(&G.mu);

        /* fetch them at the slave KME */
        size_t pos = (size_t)snprintf(dec_body, dec_cap, "{\"key_IDs\":[");
        for (size_t i = 0; i < mk.n; i++)
            pos += (size_t)snprintf(dec_body + pos, dec_cap - pos, "%s{\"key_ID\":\"%s\"}",
                                    i ? "," : "", mk.ids[i]);
        snprintf(dec_body + pos, dec_cap - pos, "]}");
        st = do_req(cs, "POST", dec_url, dec_body, &resp);
        pthread_mutex_lock(&G.mu);
        G.dec_req++;
        pthread_mutex_unlock(&G.mu);
        bool fetched = false;
        if (st != 200) {
            if (!O.quiet && st)
                fprintf(stderr, "etsi-load: %s dec_keys: HTTP %ld %.200s\n", w->dir, st,
                        resp.body ? resp.body : "");
            qk_http_response_free(&resp);
            count_error(st);
        } else {
            prc = parse_container(&resp, mk.n, &sk);
            qk_http_response_free(&resp);
            if (prc != 0)
                break;
            fetched = true;
            uint64_t mism = 0;
            for (size_t i = 0; i < mk.n; i++) {
                size_t j = 0;
                while (j < sk.n && strcmp(sk.ids[j], mk.ids[i]) != 0)
                    j++;
                if (j == sk.n ||
                    qk_memcmp_ct(sk.material + j * klen, mk.material + i * klen, klen) != 0)
                    mism++;
            }
            if (mism) {
                fprintf(stderr, "etsi-load: %s: %" PRIu64 " keys differ between the KMEs\n", w->dir,
                        mism);
                pthread_mutex_lock(&G.mu);
                G.mismatches += mism;
                G.fatal = true;
                pthread_mutex_unlock(&G.mu);
            }
            pthread_mutex_lock(&G.mu);
            G.fetched += mk.n;
            pthread_mutex_unlock(&G.mu);
            qk_wipe(sk.material, O.number * klen);
        }
        for (size_t i = 0; i < mk.n; i++)
            if (add_record(w->dir, mk.ids[i], sha[i], fetched) != 0) {
                count_bad("out of memory");
                break;
            }
        if (fetched && O.recheck_every && it % O.recheck_every == 0) {
            char url[1200];
            snprintf(url, sizeof url, "%s?key_ID=%s", dec_url, mk.ids[0]);
            st = do_req(cs, "GET", url, NULL, &resp);
            qk_http_response_free(&resp);
            pthread_mutex_lock(&G.mu);
            G.recheck_req++;
            if (st == 200) {
                G.doubles++;
                G.fatal = true;
            }
            pthread_mutex_unlock(&G.mu);
            if (st == 200)
                fprintf(stderr, "etsi-load: %s: key %s delivered twice at the slave\n", w->dir,
                        mk.ids[0]);
            else if (st != 400)
                count_error(st);
        }
        qk_wipe(mk.material, O.number * klen);
    }
out:
    qk_http_client_free(cm);
    qk_http_client_free(cs);
    free(mk.ids);
    free(sk.ids);
    qk_secure_free(mk.material);
    qk_secure_free(sk.material);
    free(dec_body);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const record *)a)->id, ((const record *)b)->id);
}

static int cmp_sha(const void *a, const void *b)
{
    return memcmp(((const record *)a)->sha, ((const record *)b)->sha, 32);
}

/* Duplicate key IDs or duplicate key material across all records: both mean a key was handed
 * out twice. */
static uint64_t count_duplicates(void)
{
    uint64_t d = 0;
    if (G.nrecs < 2)
        return 0;
    qsort(G.recs, G.nrecs, sizeof *G.recs, cmp_id);
    for (size_t i = 1; i < G.nrecs; i++)
        if (strcmp(G.recs[i].id, G.recs[i - 1].id) == 0) {
            fprintf(stderr, "etsi-load: key ID %s delivered twice (%s, %s)\n", G.recs[i].id,
                    G.recs[i - 1].dir, G.recs[i].dir);
            d++;
        }
    qsort(G.recs, G.nrecs, sizeof *G.recs, cmp_sha);
    for (size_t i = 1; i < G.nrecs; i++)
        if (memcmp(G.recs[i].sha, G.recs[i - 1].sha, 32) == 0) {
            fprintf(stderr, "etsi-load: keys %s and %s hold the same material\n", G.recs[i - 1].id,
                    G.recs[i].id);
            d++;
        }
    return d;
}

static int write_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "etsi-load: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < G.nrecs; i++) {
        char hex[65];
        qk_hex_encode(G.recs[i].sha, 32, hex, sizeof hex);
        fprintf(f, "%s %s %s %s\n", G.recs[i].dir, G.recs[i].id, hex,
                G.recs[i].fetched ? "fetched" : "pending");
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "etsi-load: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int load_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "etsi-load: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256];
    unsigned long ln = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char dir[8], id[64], hex[80], state[16];
        uint8_t sha[32];
        size_t sl = 0;
        if (sscanf(line, "%7s %63s %79s %15s", dir, id, hex, state) != 4 ||
            (strcmp(dir, "AB") != 0 && strcmp(dir, "BA") != 0) || strlen(id) != ID_LEN ||
            qk_hex_decode(hex, strlen(hex), sha, sizeof sha, &sl) != 0 || sl != 32 ||
            (strcmp(state, "fetched") != 0 && strcmp(state, "pending") != 0)) {
            fprintf(stderr, "etsi-load: %s:%lu: malformed line\n", path, ln);
            rc = -1;
            break;
        }
        if (add_record(dir, id, sha, strcmp(state, "fetched") == 0) != 0) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* --verify: fetch pending keys (must succeed once, same hash), re-fetch fetched ones (must
 * fail with 400). */
static int verify(void)
{
    FILE *lost_f = NULL;
    if (O.lost_out && !(lost_f = fopen(O.lost_out, "w"))) {
        fprintf(stderr, "etsi-load: %s: %s\n", O.lost_out, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < O.nverify; i++)
        if (load_file(O.verify[i]) != 0)
            return 1;
    qk_http_client *ca = new_client(&O.a), *cb = new_client(&O.b);
    uint64_t recovered = 0, lost = 0, refused = 0, doubles = 0, errors = 0, pending = 0;
    uint64_t fetched_seen = 0;
    uint8_t *buf = qk_secure_alloc(MAX_SIZE_BITS / 8);
    if (!ca || !cb || !buf) {
        qk_http_client_free(ca);
        qk_http_client_free(cb);
        qk_secure_free(buf);
        return 1;
    }
    for (size_t i = 0; i < G.nrecs; i++) {
        record *r = &G.recs[i];
        bool ab = strcmp(r->dir, "AB") == 0;
        const endpoint *m = ab ? &O.a : &O.b, *s = ab ? &O.b : &O.a;
        qk_http_client *c = ab ? cb : ca;
        if (r->fetched && (fetched_seen++ % O.verify_sample) != 0)
            continue;
        char url[1200];
        if (api_url(url, sizeof url, s->url, m->sae, "dec_keys") != 0) {
            errors++;
            continue;
        }
        size_t ul = strlen(url);
        snprintf(url + ul, sizeof url - ul, "?key_ID=%s", r->id);
        for (int pass = r->fetched ? 1 : 0; pass < 2; pass++) {
            qk_http_response resp;
            long st = do_req(c, "GET", url, NULL, &resp);
            if (pass == 0) {
                pending++;
                bool ok = false;
                if (st == 200) {
                    cJSON *root = cJSON_ParseWithLength(resp.body, resp.body_len);
                    const cJSON *k0 =
                        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "keys"), 0);
                    const cJSON *kb = cJSON_GetObjectItemCaseSensitive(k0, "key");
                    size_t got = 0;
                    uint8_t sha[32];
                    if (cJSON_IsString(kb) &&
                        qk_base64_decode(kb->valuestring, strlen(kb->valuestring), buf,
                                         MAX_SIZE_BITS / 8, &got) == 0) {
                        crypto_hash_sha256(sha, buf, got);
                        ok = memcmp(sha, r->sha, 32) == 0;
                        qk_wipe(buf, got);
                    }
                    if (root) {
                        wipe_json(root);
                        cJSON_Delete(root);
                    }
                }
                if (ok) {
                    recovered++;
                } else {
                    lost++;
                    fprintf(stderr, "etsi-load: pending key %s (%s) not fetchable: HTTP %ld\n",
                            r->id, r->dir, st);
                    if (lost_f)
                        fprintf(lost_f, "%s %s\n", r->dir, r->id);
                }
            } else if (st == 200) {
                doubles++;
                fprintf(stderr, "etsi-load: key %s (%s) delivered twice at the slave\n", r->id,
                        r->dir);
            } else if (st == 400) {
                refused++;
            } else {
                errors++;
                fprintf(stderr, "etsi-load: re-fetch of %s: HTTP %ld\n", r->id, st);
            }
            qk_http_response_free(&resp);
        }
    }
    qk_secure_free(buf);
    qk_http_client_free(ca);
    qk_http_client_free(cb);
    if (lost_f && fclose(lost_f) != 0)
        errors++;
    uint64_t dups = count_duplicates();
    printf("etsi-load: verify records=%zu pending=%" PRIu64 " recovered=%" PRIu64 " lost=%" PRIu64
           " refetch_refused=%" PRIu64 " double=%" PRIu64 " duplicates=%" PRIu64 " errors=%" PRIu64
           "\n",
           G.nrecs, pending, recovered, lost, refused, doubles, dups, errors);
    return (lost || doubles || dups || errors) ? 1 : 0;
}

static int parse_opts(int argc, char **argv)
{
    enum {
        O_AURL = 1000,
        O_ASAE,
        O_ACERT,
        O_AKEY,
        O_BURL,
        O_BSAE,
        O_BCERT,
        O_BKEY,
        O_CA,
        O_THREADS,
        O_PAIRS,
        O_NUMBER,
        O_SIZE,
        O_DIR,
        O_OUT,
        O_TOL,
        O_RECHECK,
        O_TIMEOUT,
        O_NOVERIFY,
        O_QUIET,
        O_VERIFY,
        O_SAMPLE,
        O_DURATION,
        O_LOSTOUT,
        O_HELP
    };
    static const struct option lo[] = {
        {"a-url", required_argument, NULL, O_AURL},
        {"a-sae", required_argument, NULL, O_ASAE},
        {"a-cert", required_argument, NULL, O_ACERT},
        {"a-key", required_argument, NULL, O_AKEY},
        {"b-url", required_argument, NULL, O_BURL},
        {"b-sae", required_argument, NULL, O_BSAE},
        {"b-cert", required_argument, NULL, O_BCERT},
        {"b-key", required_argument, NULL, O_BKEY},
        {"ca", required_argument, NULL, O_CA},
        {"threads", required_argument, NULL, O_THREADS},
        {"pairs", required_argument, NULL, O_PAIRS},
        {"number", required_argument, NULL, O_NUMBER},
        {"size", required_argument, NULL, O_SIZE},
        {"direction", required_argument, NULL, O_DIR},
        {"out", required_argument, NULL, O_OUT},
        {"tolerate-errors", no_argument, NULL, O_TOL},
        {"recheck-every", required_argument, NULL, O_RECHECK},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"no-verify-host", no_argument, NULL, O_NOVERIFY},
        {"quiet", no_argument, NULL, O_QUIET},
        {"verify", required_argument, NULL, O_VERIFY},
        {"verify-sample", required_argument, NULL, O_SAMPLE},
        {"duration-s", required_argument, NULL, O_DURATION},
        {"lost-out", required_argument, NULL, O_LOSTOUT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    O.threads = 2;
    O.pairs = 10;
    O.number = 1;
    O.size_bits = 256;
    O.ab = true;
    O.verify_host = true;
    O.recheck_every = 10;
    O.timeout_ms = 10000;
    O.verify_sample = 1;
    int ch;
    uint64_t v;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_AURL:
            O.a.url = optarg;
            break;
        case O_ASAE:
            O.a.sae = optarg;
            break;
        case O_ACERT:
            O.a.cert = optarg;
            break;
        case O_AKEY:
            O.a.key = optarg;
            break;
        case O_BURL:
            O.b.url = optarg;
            break;
        case O_BSAE:
            O.b.sae = optarg;
            break;
        case O_BCERT:
            O.b.cert = optarg;
            break;
        case O_BKEY:
            O.b.key = optarg;
            break;
        case O_CA:
            O.ca = optarg;
            break;
        case O_OUT:
            O.out = optarg;
            break;
        case O_TOL:
            O.tolerate = true;
            break;
        case O_NOVERIFY:
            O.verify_host = false;
            break;
        case O_QUIET:
            O.quiet = true;
            break;
        case O_THREADS:
            if (parse_u64(optarg, MAX_THREADS, &v) != 0 || v == 0)
                return -1;
            O.threads = (unsigned)v;
            break;
        case O_PAIRS:
            if (parse_u64(optarg, 100000000, &O.pairs) != 0)
                return -1;
            break;
        case O_NUMBER:
            if (parse_u64(optarg, MAX_NUMBER, &v) != 0 || v == 0)
                return -1;
            O.number = (unsigned)v;
            break;
        case O_SIZE:
            if (parse_u64(optarg, MAX_SIZE_BITS, &v) != 0 || v == 0 || v % 8)
                return -1;
            O.size_bits = (unsigned)v;
            break;
        case O_DIR:
            O.ab = strcmp(optarg, "ab") == 0 || strcmp(optarg, "both") == 0;
            O.ba = strcmp(optarg, "ba") == 0 || strcmp(optarg, "both") == 0;
            if (!O.ab && !O.ba)
                return -1;
            break;
        case O_RECHECK:
            if (parse_u64(optarg, 1000000, &v) != 0)
                return -1;
            O.recheck_every = (unsigned)v;
            break;
        case O_TIMEOUT:
            if (parse_u64(optarg, 600000, &v) != 0 || v < 100)
                return -1;
            O.timeout_ms = (long)v;
            break;
        case O_VERIFY:
            if (O.nverify >= MAX_VERIFY_FILES)
                return -1;
            O.verify[O.nverify++] = optarg;
            break;
        case O_SAMPLE:
            if (parse_u64(optarg, 1000000, &v) != 0 || v == 0)
                return -1;
            O.verify_sample = (unsigned)v;
            break;
        case O_LOSTOUT:
            O.lost_out = optarg;
            break;
        case O_DURATION:
            if (parse_u64(optarg, 86400, &v) != 0)
                return -1;
            O.duration_s = (double)v;
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc || !O.ca || !O.a.url || !O.a.sae || !O.a.cert || !O.a.key || !O.b.url ||
        !O.b.sae || !O.b.cert || !O.b.key)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_opts(argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    if (qk_secure_init() != 0 || qk_http_global_init() != 0) {
        fprintf(stderr, "etsi-load: initialisation failed\n");
        return 1;
    }
    if (O.nverify) {
        int rc = verify();
        free(G.recs);
        qk_http_global_cleanup();
        return rc;
    }
    pthread_t th[2 * MAX_THREADS];
    work w[2 * MAX_THREADS];
    size_t nt = 0;
    clock_gettime(CLOCK_MONOTONIC, &T0);
    for (unsigned i = 0; i < O.threads; i++) {
        if (O.ab)
            w[nt++] = (work){&O.a, &O.b, "AB"};
        if (O.ba)
            w[nt++] = (work){&O.b, &O.a, "BA"};
    }
    size_t started = 0;
    for (size_t i = 0; i < nt; i++) {
        if (pthread_create(&th[i], NULL, worker, &w[i]) != 0) {
            fprintf(stderr, "etsi-load: cannot start thread\n");
            G.fatal = true;
            break;
        }
        started++;
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = elapsed_s();
    int rc = 0;
    if (O.out && write_out(O.out) != 0)
        rc = 1;
    uint64_t dups = count_duplicates();
    uint64_t errs = 0;
    char errtxt[512] = "";
    size_t ep = 0;
    for (int s = 0; s < 600; s++)
        if (G.status[s]) {
            errs += G.status[s];
            char name[16];
            if (s)
                snprintf(name, sizeof name, "%d", s);
            else
                snprintf(name, sizeof name, "transport");
            int n = snprintf(errtxt + ep, sizeof errtxt - ep, "%s%s:%" PRIu64, ep ? "," : "", name,
                             G.status[s]);
            if (n > 0 && (size_t)n < sizeof errtxt - ep)
                ep += (size_t)n;
        }
    printf("etsi-load: requests enc=%" PRIu64 " dec=%" PRIu64 " recheck=%" PRIu64 " keys=%" PRIu64
           " fetched=%" PRIu64 " pending=%" PRIu64 " mismatches=%" PRIu64 " double=%" PRIu64
           " duplicates=%" PRIu64 " bad_answers=%" PRIu64 " errors=%" PRIu64
           " by_status={%s} seconds=%.2f keys_per_s=%.0f\n",
           G.enc_req, G.dec_req, G.recheck_req, G.keys, G.fetched, G.keys - G.fetched, G.mismatches,
           G.doubles, dups, G.bad_answers, errs, errtxt, secs,
           secs > 0 ? (double)G.keys / secs : 0.0);
    if (G.mismatches || G.doubles || dups || G.bad_answers || (errs && !O.tolerate))
        rc = 1;
    free(G.recs);
    qk_http_global_cleanup();
    return rc;
}
