/* qk-feeder.c - test device feed: pushes identical CSPRNG key blocks to the device API of two
 * KMEs (PUT /device/v1/links/{link}/blocks/{id}, mTLS with the device certificate), with
 * optional faults: a block sent with different bytes to B only, or a block not sent to B.
 *
 *   qk-feeder --a-url https://127.0.0.1:P1 [--b-url https://127.0.0.1:P2] --link LINK
 *             --ca CA --cert CERT --key KEY [--blocks N] [--block-bytes B] [--start-id ID]
 *             [--corrupt-b-block ID]... [--drop-b-block ID]... [--interval-ms MS]
 *             [--keep-going] [--no-verify-host] [--timeout-ms MS] [--quiet]
 *
 * Exit 0 when every block got 200/201 from every side it was sent to (with --keep-going:
 * always 0 unless the arguments are bad); 1 otherwise; 2 on usage errors. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "qk_err.h"
#include "secbuf.h"

#define MAX_FAULTS      64
#define MAX_BLOCK_BYTES (4u * 1024u * 1024u)
#define MIN_BLOCK_BYTES 33u
#define MAX_RETRIES     3

typedef struct {
    const char *a_url, *b_url, *link, *ca, *cert, *key;
    uint64_t blocks, block_bytes, start_id;
    uint64_t corrupt[MAX_FAULTS], drop[MAX_FAULTS];
    size_t ncorrupt, ndrop;
    long interval_ms, timeout_ms;
    bool keep_going, verify_host, quiet;
} opts;

typedef struct {
    uint64_t created, duplicate, conflict, other, transport;
} side_stats;

static void usage(FILE *f)
{
    fprintf(f, "usage: qk-feeder --a-url URL [--b-url URL] --link LINK --ca CA --cert CERT "
               "--key KEY\n"
               "  [--blocks N (10)] [--block-bytes B (65536)] [--start-id ID (1)]\n"
               "  [--corrupt-b-block ID]... [--drop-b-block ID]... [--interval-ms MS]\n"
               "  [--keep-going] [--no-verify-host] [--timeout-ms MS] [--quiet]\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end)
        return -1;
    *out = v;
    return 0;
}

static bool in_list(const uint64_t *l, size_t n, uint64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (l[i] == v)
            return true;
    return false;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    enum {
        O_A = 1000,
        O_B,
        O_LINK,
        O_CA,
        O_CERT,
        O_KEY,
        O_BLOCKS,
        O_BYTES,
        O_START,
        O_CORRUPT,
        O_DROP,
        O_INTERVAL,
        O_KEEP,
        O_NOVERIFY,
        O_TIMEOUT,
        O_QUIET,
        O_HELP
    };
    static const struct option lo[] = {
        {"a-url", required_argument, NULL, O_A},
        {"b-url", required_argument, NULL, O_B},
        {"link", required_argument, NULL, O_LINK},
        {"ca", required_argument, NULL, O_CA},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"blocks", required_argument, NULL, O_BLOCKS},
        {"block-bytes", required_argument, NULL, O_BYTES},
        {"start-id", required_argument, NULL, O_START},
        {"corrupt-b-block", required_argument, NULL, O_CORRUPT},
        {"drop-b-block", required_argument, NULL, O_DROP},
        {"interval-ms", required_argument, NULL, O_INTERVAL},
        {"keep-going", no_argument, NULL, O_KEEP},
        {"no-verify-host", no_argument, NULL, O_NOVERIFY},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->blocks = 10;
    o->block_bytes = 65536;
    o->start_id = 1;
    o->verify_host = true;
    o->timeout_ms = 10000;
    int ch;
    uint64_t v;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_A:
            o->a_url = optarg;
            break;
        case O_B:
            o->b_url = optarg;
            break;
        case O_LINK:
            o->link = optarg;
            break;
        case O_CA:
            o->ca = optarg;
            break;
        case O_CERT:
            o->cert = optarg;
            break;
        case O_KEY:
            o->key = optarg;
            break;
        case O_BLOCKS:
            if (parse_u64(optarg, &o->blocks) != 0 || o->blocks > 100000000)
                return -1;
            break;
        case O_BYTES:
            if (parse_u64(optarg, &o->block_bytes) != 0 || o->block_bytes < MIN_BLOCK_BYTES ||
                o->block_bytes > MAX_BLOCK_BYTES)
                return -1;
            break;
        case O_START:
            if (parse_u64(optarg, &o->start_id) != 0)
                return -1;
            break;
        case O_CORRUPT:
            if (parse_u64(optarg, &v) != 0 || o->ncorrupt >= MAX_FAULTS)
                return -1;
            o->corrupt[o->ncorrupt++] = v;
            break;
        case O_DROP:
            if (parse_u64(optarg, &v) != 0 || o->ndrop >= MAX_FAULTS)
                return -1;
            o->drop[o->ndrop++] = v;
            break;
        case O_INTERVAL:
            if (parse_u64(optarg, &v) != 0 || v > 600000)
                return -1;
            o->interval_ms = (long)v;
            break;
        case O_TIMEOUT:
            if (parse_u64(optarg, &v) != 0 || v < 100 || v > 600000)
                return -1;
            o->timeout_ms = (long)v;
            break;
        case O_KEEP:
            o->keep_going = true;
            break;
        case O_NOVERIFY:
            o->verify_host = false;
            break;
        case O_QUIET:
            o->quiet = true;
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc || !o->a_url || !o->link || !o->ca || !o->cert || !o->key)
        return -1;
    if (strlen(o->link) > 128 || strpbrk(o->link, "/?# \t\r\n%"))
        return -1;
    return 0;
}

/* PUT one block; retries transport errors a few times. Returns the HTTP status or 0. */
static long put_block(qk_http_client *c, const opts *o, const char *base, uint64_t id,
                      const uint8_t *bytes, size_t len, side_stats *st)
{
    char url[1024];
    int n = snprintf(url, sizeof url, "%s/device/v1/links/%s/blocks/%" PRIu64, base, o->link, id);
    if (n < 0 || (size_t)n >= sizeof url) {
        st->other++;
        return 0;
    }
    static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
    for (int attempt = 0; attempt <= MAX_RETRIES; attempt++) {
        qk_http_response resp;
        memset(&resp, 0, sizeof resp);
        qk_err err = {0};
        int rc = qk_http_call(c, "PUT", url, (const char *)bytes, len, hdrs, &resp, &err);
        if (rc == 0) {
            long s = resp.status;
            qk_http_response_free(&resp);
            if (s == 201)
                st->created++;
            else if (s == 200)
                st->duplicate++;
            else if (s == 409)
                st->conflict++;
            else
                st->other++;
            if (s != 200 && s != 201 && !o->quiet)
                fprintf(stderr, "qk-feeder: block %" PRIu64 " -> %s: HTTP %ld\n", id, base, s);
            return s;
        }
        qk_http_response_free(&resp);
        if (!o->quiet)
            fprintf(stderr, "qk-feeder: block %" PRIu64 " -> %s: %s (%s)%s\n", id, base,
                    qk_status_name(rc), err.msg, attempt < MAX_RETRIES ? ", retrying" : "");
        if (attempt < MAX_RETRIES)
            sleep_ms(200L * (attempt + 1));
    }
    st->transport++;
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    if (qk_secure_init() != 0 || qk_http_global_init() != 0) {
        fprintf(stderr, "qk-feeder: initialisation failed\n");
        return 1;
    }
    qk_http_tls tls = {
        .ca_file = o.ca,
        .cert_file = o.cert,
        .key_file = o.key,
        .timeout_ms = o.timeout_ms,
        .connect_timeout_ms = 2000,
        .verify_host = o.verify_host,
    };
    qk_err err = {0};
    qk_http_client *ca = qk_http_client_new(&tls, &err);
    qk_http_client *cb = (ca && o.b_url) ? qk_http_client_new(&tls, &err) : NULL;
    uint8_t *buf = qk_secure_alloc(o.block_bytes);
    uint8_t *bbuf = qk_secure_alloc(o.block_bytes);
    if (!ca || (o.b_url && !cb) || !buf || !bbuf) {
        fprintf(stderr, "qk-feeder: setup failed: %s\n", err.msg[0] ? err.msg : "out of memory");
        qk_http_client_free(ca);
        qk_http_client_free(cb);
        qk_secure_free(buf);
        qk_secure_free(bbuf);
        return 1;
    }
    side_stats sa = {0}, sb = {0};
    uint64_t step = o.blocks >= 10 ? o.blocks / 10 : 1;
    uint64_t sent_corrupt = 0, sent_drop = 0;
    for (uint64_t i = 0; i < o.blocks; i++) {
        uint64_t id = o.start_id + i;
        qk_random(buf, o.block_bytes);
        put_block(ca, &o, o.a_url, id, buf, o.block_bytes, &sa);
        if (cb) {
            if (in_list(o.drop, o.ndrop, id)) {
                sent_drop++;
                if (!o.quiet)
                    printf("qk-feeder: block %" PRIu64 " not sent to B (drop)\n", id);
            } else if (in_list(o.corrupt, o.ncorrupt, id)) {
                qk_random(bbuf, o.block_bytes);
                put_block(cb, &o, o.b_url, id, bbuf, o.block_bytes, &sb);
                sent_corrupt++;
                if (!o.quiet)
                    printf("qk-feeder: block %" PRIu64 " sent to B with different bytes\n", id);
            } else {
                put_block(cb, &o, o.b_url, id, buf, o.block_bytes, &sb);
            }
        }
        if (!o.quiet && ((i + 1) % step == 0 || i + 1 == o.blocks)) {
            printf("qk-feeder: %" PRIu64 "/%" PRIu64 " blocks (last id %" PRIu64 ")\n", i + 1,
                   o.blocks, id);
            fflush(stdout);
        }
        if (o.interval_ms > 0 && i + 1 < o.blocks)
            sleep_ms(o.interval_ms);
    }
    qk_wipe(buf, o.block_bytes);
    qk_wipe(bbuf, o.block_bytes);
    qk_secure_free(buf);
    qk_secure_free(bbuf);
    qk_http_client_free(ca);
    qk_http_client_free(cb);
    qk_http_global_cleanup();
    printf("qk-feeder: done blocks=%" PRIu64 " a_created=%" PRIu64 " a_duplicate=%" PRIu64
           " a_conflict=%" PRIu64 " a_other=%" PRIu64 " a_transport=%" PRIu64 " b_created=%" PRIu64
           " b_duplicate=%" PRIu64 " b_conflict=%" PRIu64 " b_other=%" PRIu64
           " b_transport=%" PRIu64 " corrupted=%" PRIu64 " dropped=%" PRIu64 "\n",
           o.blocks, sa.created, sa.duplicate, sa.conflict, sa.other, sa.transport, sb.created,
           sb.duplicate, sb.conflict, sb.other, sb.transport, sent_corrupt, sent_drop);
    bool bad = sa.conflict + sa.other + sa.transport + sb.conflict + sb.other + sb.transport > 0;
    return (bad && !o.keep_going) ? 1 : 0;
}
