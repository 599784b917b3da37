/* bench_body.c - fixed answer files for the nginx baseline. */
#include "bench_body.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_opts.h"
#include "codec.h"
#include "secbuf.h"

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    FILE *f = fopen(path, "w");
    int rc = (f && fputs(text, f) >= 0) ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "qkd-bench: cannot write %s\n", path);
    return rc;
}

/* A bounded text buffer: appends stop at the first one that does not fit (bad is set). */
typedef struct {
    char *buf;
    size_t cap, len;
    bool bad;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    if (t->bad)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->cap - t->len)
        t->bad = true;
    else
        t->len += (size_t)n;
}

/* Random bytes (nobody's key) as base64 or hex. */
static void put_random(text *t, uint8_t *rnd, size_t n, bool hex)
{
    if (t->bad)
        return;
    qk_random(rnd, n);
    size_t w = hex ? qk_hex_encode(rnd, n, t->buf + t->len, t->cap - t->len)
                   : qk_base64_encode(rnd, n, t->buf + t->len, t->cap - t->len);
    if (w == 0)
        t->bad = true;
    t->len += w;
}

static int put_file(const char *dir, const char *name, const text *t)
{
    if (t->bad) {
        fprintf(stderr, "qkd-bench: %s does not fit its buffer\n", name);
        return -1;
    }
    return write_file(dir, name, t->buf);
}

int bench_body_write(const char *dir, unsigned size_bits, unsigned number)
{
    size_t klen = size_bits / 8;
    size_t cap = 64 + (size_t)number * (96 + qk_base64_encoded_len(klen)) + 2 * klen + 512;
    text t = {.buf = malloc(cap), .cap = cap};
    uint8_t *rnd = malloc(klen);
    int rc = -1;
    if (!t.buf || !rnd) {
        fprintf(stderr, "qkd-bench: out of memory\n");
        goto out;
    }
    char id[QK_UUID_STR_LEN + 1];
    qk_uuid u;
    put(&t, "{\"keys\":[");
    for (unsigned i = 0; i < number; i++) {
        qk_uuid_v4(&u);
        qk_uuid_format(&u, id);
        put(&t, "%s{\"key_ID\":\"%s\",\"key\":\"", i ? "," : "", id);
        put_random(&t, rnd, klen, false);
        put(&t, "\"}");
    }
    put(&t, "]}");
    if (put_file(dir, "etsi.json", &t) != 0)
        goto out;
    t.len = 0;
    qk_uuid_v4(&u);
    qk_uuid_format_hex(&u, id);
    put(&t, "{\"keyId\":\"%s\",\"key\":\"", id);
    put_random(&t, rnd, klen, true);
    put(&t, "\"}");
    if (put_file(dir, "skip.json", &t) != 0)
        goto out;
    t.len = 0;
    put(&t,
        "{\"source_KME_ID\":\"KME_A\",\"target_KME_ID\":\"KME_B\",\"master_SAE_ID\":\"SAE_A1\","
        "\"slave_SAE_ID\":\"SAE_B1\",\"key_size\":%u,\"stored_key_count\":100000,"
        "\"max_key_count\":100000,\"max_key_per_request\":128,\"max_key_size\":8192,"
        "\"min_key_size\":64,\"max_SAE_ID_count\":4}",
        size_bits);
    rc = put_file(dir, "status.json", &t);
out:
    free(t.buf);
    free(rnd);
    return rc;
}

static void body_usage(FILE *f)
{
    fputs("usage: qkd-bench body --dir DIR [--size BITS] [--number K]\n"
          "Write the nginx baseline's fixed answers into DIR (etsi.json, skip.json, status.json):\n"
          "shaped and sized like the KME's, random bytes that are nobody's key.\n"
          "  --dir DIR      where to write them\n"
          "  --size BITS    key size, a multiple of 8 (default 256)\n"
          "  --number K     keys per ETSI answer (default 1)\n"
          "  -h, --help     this text\n"
          "Exit status: 0 written, 1 failure, 2 usage. See qkd-bench(1).\n",
          f);
}

int bench_body_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 's'},
        {"number", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    long size = 256, number = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'h':
            body_usage(stdout);
            return 0;
        case 'd':
            dir = optarg;
            break;
        case 's':
            size = strtol(optarg, &end, 10);
            break;
        case 'n':
            number = strtol(optarg, &end, 10);
            break;
        default:
            body_usage(stderr);
            return 2;
        }
        if (end && *end)
            size = -1;
    }
    if (!dir || optind != argc || size < 8 || size > BENCH_MAX_BITS || size % 8 || number < 1 ||
        number > BENCH_MAX_NUMBER) {
        body_usage(stderr);
        return 2;
    }
    return bench_body_write(dir, (unsigned)size, (unsigned)number) == 0 ? 0 : 1;
}
