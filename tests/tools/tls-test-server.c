/* tls-test-server - a listener on the TLS front end whose handler answers every request with
 * JSON {"kind":..., "id":..., "path":..., "body_len":..., "requests":N, ...stats}. "requests"
 * counts the HTTP requests the handler has seen, so a test can prove that a refused handshake
 * never reached HTTP. A path /sleep/MS makes the handler block MS milliseconds (max 10000),
 * after logging "handler: sleeping MS ms";
 * /big/N answers N bytes of 'x' (max 64 MiB). The handler runs behind the request envelope
 * (common/http_envelope.h) with a 64 MiB body limit: a larger upload is answered 413 there.
 *
 * --workers N and --queue N size the worker pool of handlers that may block (default 8 x
 * threads, 64 x workers); --inline declares the handler never_blocks (it then runs on the pump
 * thread: for measuring the front end alone, never with /sleep).
 *
 * Usage: tls-test-server --mode mtls|psk|server-cert|psk-or-mtls|none [--cert F --key F]
 *        [--ca F] [--psk-file F] [--port N] [--port-file F] [--max-conn N]
 *        [--handshake-timeout-ms N] [--threads N] [--workers N] [--queue N] [--inline]
 *        [--log-level L] [--fp-map SHA256FP=ID ...]
 * Stops cleanly on SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "secbuf.h"
#include "tls_internal.h"
#include "tls_server.h"

static atomic_uint_fast64_t g_requests;
static qk_tls_server *g_srv;

/* Uploads up to this size are counted (the 20 MiB pump test); /big answers at most as much. */
#define TEST_MAX_BODY (64u * 1024u * 1024u)

static void json_str(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static const char *kind_name(qk_id_kind k)
{
    return k == QK_ID_PSK ? "psk" : k == QK_ID_CERT ? "cert" : "none";
}

static void on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    (void)self;
    uint64_t n = atomic_fetch_add(&g_requests, 1) + 1;
    const char *url = req->path;
    if (strncmp(url, "/sleep/", 7) == 0) {
        long ms = strtol(url + 7, NULL, 10);
        if (ms > 0 && ms <= 10000) {
            /* Tests wait for this line: the request is in the handler (on a worker). */
            qk_log(QK_LOG_INFO, "handler: sleeping %ld ms", ms);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (strncmp(url, "/big/", 5) == 0) { /* N bytes of 'x' (max 64 MiB), no Content-Type */
        long sz = strtol(url + 5, NULL, 10);
        if (sz < 0 || sz > (long)TEST_MAX_BODY)
            sz = 0;
        char *b = malloc((size_t)sz + 1);
        if (!b) {
            qk_http_reply_message(rep, 500, "out of memory");
            return;
        }
        memset(b, 'x', (size_t)sz);
        qk_http_reply_take(rep, 200, NULL, b, (size_t)sz);
        return;
    }
    const qk_peer_identity *id = req->caller;
    qk_tls_server_stats ss;
    qk_tls_server_get_stats(g_srv, &ss);
    char eid[2 * QK_IDENTITY_MAX * 3], epath[1024], body[4096];
    json_str(eid, sizeof eid, id->id);
    json_str(epath, sizeof epath, url);
    int len =
        snprintf(body, sizeof body,
                 "{\"kind\":\"%s\",\"id\":\"%s\",\"path\":\"%s\",\"body_len\":%zu,"
                 "\"fp\":\"%s\",\"requests\":%llu,\"tls_version\":\"%s\",\"cipher\":\"%s\","
                 "\"accepted\":%llu,\"handshakes_ok\":%llu,\"handshakes_failed\":%llu,"
                 "\"refused_limit\":%llu,\"active\":%llu}\n",
                 kind_name(id->kind), eid, epath, req->body_len, id->fp_hex, (unsigned long long)n,
                 id->tls_version, id->cipher, (unsigned long long)ss.accepted,
                 (unsigned long long)ss.handshakes_ok, (unsigned long long)ss.handshakes_failed,
                 (unsigned long long)ss.refused_limit, (unsigned long long)ss.active);
    if (len < 0 || (size_t)len >= sizeof body) {
        qk_http_reply_message(rep, 500, "reply too long");
        return;
    }
    qk_http_reply_set(rep, 200, "application/json", body, (size_t)len);
}

static int parse_mode(const char *s, qk_tls_mode *m)
{
    static const struct {
        const char *n;
        qk_tls_mode m;
    } t[] = {{"mtls", QK_TLS_MODE_MTLS},
             {"psk", QK_TLS_MODE_PSK},
             {"server-cert", QK_TLS_MODE_SERVER_CERT},
             {"psk-or-mtls", QK_TLS_MODE_PSK_OR_MTLS},
             {"none", QK_TLS_MODE_NONE}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(s, t[i].n) == 0) {
            *m = t[i].m;
            return 0;
        }
    }
    return -1;
}

static unsigned parse_uint(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > 65535u * 16) {
        fprintf(stderr, "bad %s: %s\n", what, s);
        exit(2);
    }
    return (unsigned)v;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tls-test-server --mode mtls|psk|server-cert|psk-or-mtls|none [--cert F]\n"
            "  [--key F] [--ca F] [--psk-file F] [--port N] [--port-file F] [--max-conn N]\n"
            "  [--handshake-timeout-ms N] [--threads N] [--workers N] [--queue N] [--inline]\n"
            "  [--log-level debug|info|warn|error]\n"
            "  [--fp-map SHA256FP=ID ...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"mode", required_argument, NULL, 'm'},
                                         {"cert", required_argument, NULL, 'c'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"ca", required_argument, NULL, 'a'},
                                         {"psk-file", required_argument, NULL, 'p'},
                                         {"port", required_argument, NULL, 'P'},
                                         {"port-file", required_argument, NULL, 'f'},
                                         {"max-conn", required_argument, NULL, 'n'},
                                         {"handshake-timeout-ms", required_argument, NULL, 't'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"workers", required_argument, NULL, 'W'},
                                         {"queue", required_argument, NULL, 'Q'},
                                         {"inline", no_argument, NULL, 'I'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"fp-map", required_argument, NULL, 'F'},
                                         {NULL, 0, NULL, 0}};
    qk_listener_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "test";
    cfg.bind_addr = "127.0.0.1";
    static qk_http_handler h = {.on_req = on_req};
    cfg.handler = &h;
    cfg.max_body = TEST_MAX_BODY;
    const char *psk_file = NULL, *port_file = NULL;
    qk_log_level lvl = QK_LOG_INFO;
    static qk_fp_entry fps[16];
    static qk_fp_map fpmap = {fps, 0};
    int mode_set = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm':
            if (parse_mode(optarg, &cfg.tls.mode) != 0)
                usage();
            mode_set = 1;
            break;
        case 'c':
            cfg.tls.cert_file = optarg;
            break;
        case 'k':
            cfg.tls.key_file = optarg;
            break;
        case 'a':
            cfg.tls.ca_file = optarg;
            break;
        case 'p':
            psk_file = optarg;
            break;
        case 'P':
            cfg.port = (uint16_t)parse_uint(optarg, "port");
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'n':
            cfg.max_connections = parse_uint(optarg, "max-conn");
            break;
        case 't':
            cfg.handshake_timeout_ms = parse_uint(optarg, "handshake timeout");
            break;
        case 'T':
            cfg.threads = parse_uint(optarg, "threads");
            break;
        case 'W':
            cfg.workers = parse_uint(optarg, "workers");
            break;
        case 'Q':
            cfg.queue_max = parse_uint(optarg, "queue");
            break;
        case 'I':
            h.never_blocks = true;
            break;
        case 'F': {
            char *eq = strchr(optarg, '=');
            if (!eq || fpmap.n == sizeof fps / sizeof fps[0])
                usage();
            *eq = '\0';
            if (qk_tls_fp_parse(optarg, fps[fpmap.n].fp) != 0 ||
                strlen(eq + 1) >= sizeof fps[0].identity)
                usage();
            snprintf(fps[fpmap.n].identity, sizeof fps[0].identity, "%s", eq + 1);
            fpmap.n++;
            cfg.tls.fp_map = &fpmap;
            break;
        }
        case 'l':
            if (qk_log_level_parse(optarg, &lvl) != 0)
                usage();
            break;
        default:
            usage();
        }
    }
    if (!mode_set || optind != argc)
        usage();
    if (qk_secure_init() != 0 || qk_log_open(NULL, lvl, "tls-test-server") != 0) {
        fprintf(stderr, "init failed\n");
        return 1;
    }
    qk_psk_table psks = {NULL, 0};
    qk_err err;
    qk_err_clear(&err);
    if (psk_file) {
        if (qk_psk_table_load(psk_file, &psks, &err) != 0) {
            fprintf(stderr, "tls-test-server: %s\n", err.msg);
            return 1;
        }
        cfg.tls.psks = &psks;
    }
    /* Block the stop signals in every thread; main waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (qk_tls_server_start(&cfg, &g_srv, &err) != 0) {
        fprintf(stderr, "tls-test-server: %s\n", err.msg);
        qk_psk_table_free(&psks);
        return 1;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", (unsigned)qk_tls_server_port(g_srv)) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "tls-test-server: cannot write %s\n", port_file);
            qk_tls_server_stop(g_srv);
            qk_psk_table_free(&psks);
            return 1;
        }
    }
    int sig = 0;
    sigwait(&set, &sig);
    qk_tls_server_stats ss;
    qk_tls_server_get_stats(g_srv, &ss);
    qk_tls_server_stop(g_srv);
    qk_log(QK_LOG_INFO,
           "stopped on signal %d: requests=%llu accepted=%llu handshakes_ok=%llu "
           "handshakes_failed=%llu refused_limit=%llu",
           sig, (unsigned long long)atomic_load(&g_requests), (unsigned long long)ss.accepted,
           (unsigned long long)ss.handshakes_ok, (unsigned long long)ss.handshakes_failed,
           (unsigned long long)ss.refused_limit);
    qk_psk_table_free(&psks);
    qk_log_close();
    return 0;
}
