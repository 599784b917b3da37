/* fuzz_http1.c - libFuzzer target for the HTTP/1.1 request parser (common/http1.c), the bytes
 * the front end reads from any client before it knows who it is:
 *   - the head scan fed at once, in two pieces split at a point chosen from the input, and
 *     (for short inputs) one byte at a time: the same head length or status every time;
 *   - a head it found, copied into a buffer of exactly its size and parsed: on success every
 *     string is non-NULL, inside the buffer and NUL-terminated there, the counts within their
 *     limits, never both chunked and a Content-Length, HTTP/1.0 or 1.1; on failure a status
 *     of the documented list and the buffer untouched (validated before anything is written);
 *   - the rest of the input (the whole input when no head was found) through the chunked
 *     decoder at once and in three pieces split at two points derived from the input: the
 *     same result, decoded bytes and bytes used, and out_len <= consumed <= len every call;
 *   - a response head with a Content-Type taken from the input: well-formed, or refused when
 *     the value holds a control character.
 * Build and run: `make fuzz-run-fuzz_http1 FUZZ_SECONDS=600` (common/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http1.h"

#define MAX_INPUT     (QK_H1_HEAD_MAX + 8192)
#define BYTEWISE_MAX  2048 /* inputs fed one byte at a time to the head scan */
#define CONTENT_T_MAX 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a of the input: the split points. */
static uint64_t input_hash(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ULL;
    return h;
}

/* The head scan fed in two pieces split at cut (the caller's *scanned kept): its result. */
static size_t scan_split(const char *in, size_t size, size_t cut, unsigned *st)
{
    size_t scanned = 0;
    *st = 777;
    size_t h = qk_http1_head_scan(in, cut, &scanned, st);
    if (h || *st)
        return h;
    REQUIRE(scanned <= cut);
    return qk_http1_head_scan(in, size, &scanned, st);
}

static void check_scan(const char *in, size_t size, uint64_t hash, size_t *head)
{
    size_t scanned = 0;
    unsigned st = 777;
    size_t h = qk_http1_head_scan(in, size, &scanned, &st);
    REQUIRE(h <= size && h <= QK_H1_HEAD_MAX);
    if (h) {
        REQUIRE(st == 0 || st == 777);
        REQUIRE(in[h - 1] == '\n');
    } else if (st) {
        REQUIRE((st == 414 || st == 431) && size >= QK_H1_HEAD_MAX);
    } else {
        REQUIRE(size < QK_H1_HEAD_MAX);
    }
    unsigned st_once = h ? 0 : st;

    unsigned st2;
    size_t h2 = scan_split(in, size, (size_t)(hash % (size + 1)), &st2);
    REQUIRE(h2 == h);
    REQUIRE((h2 ? 0 : st2) == st_once);

    if (size <= BYTEWISE_MAX) {
        scanned = 0;
        size_t h3 = 0;
        unsigned st3 = 0;
        for (size_t k = 0; k <= size && !h3 && !st3; k++) {
            h3 = qk_http1_head_scan(in, k, &scanned, &st3);
            REQUIRE(h3 || scanned == k); /* never goes back */
            if (h3)
                REQUIRE(h3 == k); /* found when its last byte arrives */
        }
        REQUIRE(h3 == h && (h3 ? 0 : st3) == st_once);
    }
    *head = h;
}

/* s points into buf[0..n) and is NUL-terminated there. */
static void require_in(const char *buf, size_t n, const char *s)
{
    REQUIRE(s != NULL && s >= buf && s < buf + n);
    REQUIRE(memchr(s, '\0', (size_t)(buf + n - s)) != NULL);
}

static void check_parse(const char *in, size_t h)
{
    char *buf = malloc(h), *orig = malloc(h);
    REQUIRE(buf && orig);
    memcpy(buf, in, h);
    memcpy(orig, in, h);
    static qk_http1_head out;
    memset(&out, 0xa5, sizeof out);
    int rc = qk_http1_parse_head(buf, h, &out);
    if (rc == 0) {
        require_in(buf, h, out.method);
        require_in(buf, h, out.path);
        REQUIRE(out.method[0] != '\0' && out.path[0] != '\0');
        REQUIRE(out.path[0] == '/' || strcmp(out.path, "*") == 0);
        REQUIRE(out.minor <= 1);
        REQUIRE(out.nfields <= QK_H1_FIELDS_MAX && out.nargs <= QK_H1_ARGS_MAX);
        REQUIRE(!(out.chunked && out.has_length));
        REQUIRE(out.has_length || out.content_length == 0);
        REQUIRE(out.content_length < 1000000000000000000ULL);
        REQUIRE(!out.expect_continue || out.minor == 1);
        REQUIRE(!out.chunked || out.minor == 1);
        for (unsigned i = 0; i < out.nfields; i++) {
            require_in(buf, h, out.fields[i].name);
            require_in(buf, h, out.fields[i].value);
            REQUIRE(out.fields[i].name[0] != '\0');
            REQUIRE(qk_http1_field_get(&out, out.fields[i].name) != NULL);
            size_t vl = strlen(out.fields[i].value);
            for (size_t j = 0; j < vl; j++) {
                unsigned char c = (unsigned char)out.fields[i].value[j];
                REQUIRE(c == '\t' || (c >= 0x20 && c != 0x7f));
            }
            REQUIRE(vl == 0 ||
                    (out.fields[i].value[0] != ' ' && out.fields[i].value[0] != '\t' &&
                     out.fields[i].value[vl - 1] != ' ' && out.fields[i].value[vl - 1] != '\t'));
        }
        for (unsigned i = 0; i < out.nargs; i++) {
            require_in(buf, h, out.args[i].name);
            require_in(buf, h, out.args[i].value);
            REQUIRE(qk_http1_arg_count(&out, out.args[i].name) >= 1);
            REQUIRE(qk_http1_arg(&out, out.args[i].name) != NULL);
        }
        REQUIRE(out.minor == 1 ? qk_http1_field_get(&out, "host") != NULL : 1);
    } else {
        REQUIRE(rc == 400 || rc == 431 || rc == 501 || rc == 505);
        REQUIRE(memcmp(buf, orig, h) == 0); /* validated before anything was written */
    }
    /* the same again on a fresh copy */
    memcpy(buf, orig, h);
    REQUIRE(qk_http1_parse_head(buf, h, &out) == rc);
    free(buf);
    free(orig);
}

/* Decode in[0..n) in pieces at the cuts (0 <= c1 <= c2 <= n), each call given its new bytes
 * only; the decoded bytes into dec. */
static int decode_pieces(const char *in, size_t n, size_t c1, size_t c2, char *dec, size_t *dec_n,
                         size_t *used)
{
    char *work = malloc(n ? n : 1);
    REQUIRE(work);
    memcpy(work, in, n);
    qk_http1_chunked st;
    memset(&st, 0, sizeof st);
    size_t cuts[4] = {0, c1, c2, n};
    int rc = 0;
    *dec_n = 0;
    *used = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        size_t len = cuts[k + 1] - cuts[k], consumed = 777777, out_len = 777777;
        rc = qk_http1_chunked_decode(&st, work + cuts[k], len, &consumed, &out_len);
        REQUIRE(rc == 0 || rc == 1 || rc == 400);
        REQUIRE(out_len <= consumed && consumed <= len);
        if (rc == 0)
            REQUIRE(consumed == len);
        memcpy(dec + *dec_n, work + cuts[k], out_len);
        *dec_n += out_len;
        *used += consumed;
    }
    free(work);
    return rc;
}

static void check_chunked(const char *in, size_t n, uint64_t hash)
{
    char *a = malloc(n ? n : 1), *b = malloc(n ? n : 1);
    REQUIRE(a && b);
    size_t an, aused, bn, bused;
    int ra = decode_pieces(in, n, n, n, a, &an, &aused);
    size_t c1 = (size_t)((hash >> 7) % (n + 1));
    size_t c2 = c1 + (size_t)((hash >> 31) % (n - c1 + 1));
    int rb = decode_pieces(in, n, c1, c2, b, &bn, &bused);
    REQUIRE(ra == rb);
    REQUIRE(an == bn && aused == bused);
    REQUIRE(memcmp(a, b, an) == 0);
    REQUIRE(an <= aused && aused <= n);
    if (ra == 1)
        REQUIRE(aused >= 3 && in[aused - 1] == '\n'); /* through the final line end */
    free(a);
    free(b);
}

/* A response head whose Content-Type is the first line of the input. */
static void check_write(const char *in, size_t n, uint64_t hash)
{
    char ct[CONTENT_T_MAX + 1];
    size_t l = strnlen(in, n < CONTENT_T_MAX ? n : CONTENT_T_MAX);
    memcpy(ct, in, l);
    ct[l] = '\0';
    bool ctl = false;
    for (size_t i = 0; i < l; i++)
        if (((unsigned char)ct[i] < 0x20 && ct[i] != '\t') || ct[i] == 0x7f)
            ctl = true;
    char date[30];
    qk_http1_date((time_t)(hash % 253402300800ULL), date);
    REQUIRE(strlen(date) == 29 && memcmp(date + 25, " GMT", 4) == 0);
    qk_http1_response r = {.status = 100 + (unsigned)(hash % 500),
                           .content_type = ct,
                           .allow = (hash & 1) ? "GET, POST" : NULL,
                           .no_store = (hash & 2) != 0,
                           .retry_after = (unsigned)(hash >> 60),
                           .content_length = hash >> 3,
                           .close = (hash & 4) != 0,
                           .keep_alive_10 = (hash & 8) != 0,
                           .date = date};
    char out[1024];
    size_t cap = (size_t)((hash >> 20) % sizeof out);
    size_t w = qk_http1_write_head(out, cap, &r);
    if (ctl) {
        REQUIRE(w == 0);
        return;
    }
    REQUIRE(w <= cap);
    if (w) {
        REQUIRE(w >= 13 && memcmp(out, "HTTP/1.1 ", 9) == 0);
        REQUIRE(memcmp(out + w - 4, "\r\n\r\n", 4) == 0);
        REQUIRE(memmem(out, w, "\r\n\r\n", 4) == out + w - 4); /* one empty line */
        REQUIRE(qk_http1_write_head(out, w, &r) == w);         /* exactly enough */
        REQUIRE(qk_http1_write_head(out, w - 1, &r) == 0);     /* one byte short */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    const char *in = (const char *)data;
    uint64_t hash = input_hash(data, size);
    size_t head = 0;
    check_scan(in, size, hash, &head);
    if (head)
        check_parse(in, head);
    check_chunked(in + head, size - head, hash);
    if (head)
        check_chunked(in, size, hash); /* the whole input too */
    check_write(in, size, hash);
    return 0;
}
