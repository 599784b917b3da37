/* conn-flood - a bounded, single-process epoll client for the front end's limits and deadlines
 * (tests/integration/front_end_limits.sh, issue 17 items 2 and 3).
 *
 *   conn-flood --port P --mode tcp|hello|tls|slow [options]
 *
 * Modes (each opens --count connections, at most --concurrency connecting or handshaking at
 * once, then holds what stays open until --hold seconds have passed since the start):
 *   tcp    connect and send nothing (a raw TCP flood)
 *   hello  connect and send one TLS ClientHello (built once, in memory), never finish
 *   tls    finish the TLS handshake (--cert/--key for mutual TLS); with --request PATH send one
 *          GET and read its answer, then hold the connection idle (keep-alive)
 *   slow   send --text byte by byte, one every --interval-ms (the first --prefix bytes at once),
 *          over TLS when --tls (or --cert) is given, else plain TCP; record when the server
 *          closes the connection
 * Output, one line: mode=M opened=N refused=N established=N answered=N open=N closed=N
 * first_close_ms=N last_close_ms=N (closed: by the server while held; the times count from
 * each connection's connect). Exit 0, or 2 for a usage error. Bounded: --count <= 20000,
 * --hold <= 300 s, every wait is an epoll_wait with a timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_COUNT 20000
#define MAX_HOLD  300

enum { M_TCP, M_HELLO, M_TLS, M_SLOW };
enum { S_CONNECTING, S_HANDSHAKE, S_REQUEST, S_HOLD, S_DONE };

typedef struct {
    int fd;
    SSL *ssl;
    int state;
    double t_open;
    size_t sent;     /* slow: bytes of --text sent */
    double next_tx;  /* slow: when the next byte goes */
    char resp[4096]; /* tls --request: the answer's head */
    size_t resp_len;
} cl;

static struct {
    const char *host, *source, *cert, *key, *ca, *request, *text, *sni;
    int port, mode, count, concurrency, hold_s, interval_ms, prefix;
    bool tls;
} o = {.host = "127.0.0.1", .count = 1, .concurrency = 64, .hold_s = 10, .interval_ms = 1000};

static unsigned char hello[4096];
static size_t hello_len;
static int opened, refused, established, answered, closed, inflight;
static double first_close = -1, last_close = -1;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: conn-flood --port P --mode tcp|hello|tls|slow [--host ADDR] [--source ADDR]\n"
            "       [--count N] [--concurrency N] [--hold S] [--cert F --key F] [--ca F]\n"
            "       [--request PATH] [--tls] [--text STR] [--prefix N] [--interval-ms N]\n");
    exit(2);
}

static int parse_int(const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return (int)v;
}

/* A ClientHello as a real client sends it, taken from a memory BIO. */
static int build_hello(SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!ssl || !rb || !wb)
        return -1;
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    (void)SSL_do_handshake(ssl);
    int n = BIO_read(wb, hello, sizeof hello);
    SSL_free(ssl);
    if (n <= 0)
        return -1;
    hello_len = (size_t)n;
    return 0;
}

static void cl_closed(cl *c, bool by_server)
{
    if (c->state == S_DONE)
        return;
    if (c->state == S_CONNECTING || c->state == S_HANDSHAKE)
        inflight--;
    if (by_server) {
        if (c->state == S_HOLD || c->state == S_REQUEST) {
            double t = now_ms() - c->t_open;
            closed++;
            if (first_close < 0 || t < first_close)
                first_close = t;
            if (t > last_close)
                last_close = t;
        } else {
            refused++;
        }
    }
    c->state = S_DONE;
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
}

static int cl_open(int ep, cl *c, const struct sockaddr_in *dst, const struct sockaddr_in *src,
                   SSL_CTX *ctx)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src && bind(c->fd, (const struct sockaddr *)src, sizeof *src) != 0) {
        close(c->fd);
        return -1;
    }
    if (connect(c->fd, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        return -1;
    }
    if (ctx && (o.mode == M_TLS || (o.mode == M_SLOW && o.tls))) {
        c->ssl = SSL_new(ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
            return -1;
        SSL_set_connect_state(c->ssl);
        if (o.sni)
            SSL_set_tlsext_host_name(c->ssl, o.sni);
    }
    c->state = S_CONNECTING;
    c->t_open = now_ms();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        return -1;
    opened++;
    inflight++;
    return 0;
}

static void set_events(int ep, cl *c, uint32_t events)
{
    struct epoll_event ev = {.events = events | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        cl_closed(c, false);
}

/* Read and drop what the server sends; true when it closed. */
static bool drained_eof(cl *c)
{
    char buf[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0)
                continue;
            int e = SSL_get_error(c->ssl, r);
            return !(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
        }
        n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EINTR));
    }
    return false;
}

static bool send_all(cl *c, const void *buf, size_t len)
{
    if (c->ssl) {
        ERR_clear_error();
        return SSL_write(c->ssl, buf, (int)len) == (int)len;
    }
    return send(c->fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* tls --request: read the answer's head and its Content-Length body; then hold. */
static void read_answer(int ep, cl *c)
{
    for (;;) {
        if (c->resp_len >= sizeof c->resp - 1) {
            cl_closed(c, false);
            return;
        }
        ERR_clear_error();
        int r = SSL_read(c->ssl, c->resp + c->resp_len, (int)(sizeof c->resp - 1 - c->resp_len));
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                cl_closed(c, true);
            return;
        }
        c->resp_len += (size_t)r;
        c->resp[c->resp_len] = '\0';
        char *end = strstr(c->resp, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl_hdr = strcasestr(c->resp, "content-length:");
        size_t body = cl_hdr ? strtoul(cl_hdr + 15, NULL, 10) : 0;
        if (c->resp_len < (size_t)(end + 4 - c->resp) + body)
            continue;
        if (strncmp(c->resp, "HTTP/1.1 200", 12) == 0)
            answered++;
        c->state = S_HOLD;
        set_events(ep, c, EPOLLIN);
        return;
    }
}

static void on_event(int ep, cl *c, uint32_t ev)
{
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if ((ev & (EPOLLERR | EPOLLHUP)) ||
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            cl_closed(c, true);
            return;
        }
        if (o.mode == M_HELLO && !send_all(c, hello, hello_len)) {
            cl_closed(c, true);
            return;
        }
        if (c->ssl && o.mode != M_HELLO) {
            c->state = S_HANDSHAKE;
        } else {
            inflight--;
            c->state = S_HOLD;
            c->next_tx = now_ms();
            set_events(ep, c, EPOLLIN);
            return;
        }
    }
    if (c->state == S_HANDSHAKE) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                set_events(ep, c, EPOLLIN);
            else if (e == SSL_ERROR_WANT_WRITE)
                set_events(ep, c, EPOLLOUT);
            else
                cl_closed(c, true);
            return;
        }
        inflight--;
        established++;
        c->next_tx = now_ms();
        if (o.mode == M_TLS && o.request) {
            char req[512];
            int n =
                snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", o.request, o.host);
            if (n < 0 || (size_t)n >= sizeof req || !send_all(c, req, (size_t)n)) {
                cl_closed(c, false);
                return;
            }
            c->state = S_REQUEST;
            set_events(ep, c, EPOLLIN);
        } else {
            c->state = S_HOLD;
            set_events(ep, c, EPOLLIN);
        }
        /* TLS 1.3: the server's tickets or its close may be in already; fall through. */
    }
    if (c->state == S_REQUEST) {
        read_answer(ep, c);
        return;
    }
    if (c->state == S_HOLD && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        if (drained_eof(c))
            cl_closed(c, true);
    }
}

/* slow: the next byte of --text on every held connection whose time has come. */
static void slow_tick(cl *cls, int n)
{
    size_t text_len = strlen(o.text);
    double now = now_ms();
    for (int i = 0; i < n; i++) {
        cl *c = &cls[i];
        if (c->state != S_HOLD || c->sent >= text_len || now < c->next_tx)
            continue;
        size_t k = c->sent == 0 && o.prefix > 0 ? (size_t)o.prefix : 1;
        if (k > text_len - c->sent)
            k = text_len - c->sent;
        if (!send_all(c, o.text + c->sent, k)) {
            cl_closed(c, true);
            continue;
        }
        c->sent += k;
        c->next_tx = now + o.interval_ms;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},    {"mode", 1, 0, 'm'},
        {"source", 1, 0, 's'},      {"count", 1, 0, 'n'},   {"concurrency", 1, 0, 'c'},
        {"hold", 1, 0, 'h'},        {"cert", 1, 0, 'C'},    {"key", 1, 0, 'K'},
        {"ca", 1, 0, 'A'},          {"request", 1, 0, 'r'}, {"text", 1, 0, 't'},
        {"interval-ms", 1, 0, 'i'}, {"prefix", 1, 0, 'P'},  {"tls", 0, 0, 'T'},
        {"sni", 1, 0, 'S'},         {0, 0, 0, 0},
    };
    int ch;
    const char *mode = NULL;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            o.host = optarg;
            break;
        case 'p':
            o.port = parse_int(optarg, 1, 65535);
            break;
        case 'm':
            mode = optarg;
            break;
        case 's':
            o.source = optarg;
            break;
        case 'n':
            o.count = parse_int(optarg, 1, MAX_COUNT);
            break;
        case 'c':
            o.concurrency = parse_int(optarg, 1, MAX_COUNT);
            break;
        case 'h':
            o.hold_s = parse_int(optarg, 1, MAX_HOLD);
            break;
        case 'C':
            o.cert = optarg;
            break;
        case 'K':
            o.key = optarg;
            break;
        case 'A':
            o.ca = optarg;
            break;
        case 'r':
            o.request = optarg;
            break;
        case 't':
            o.text = optarg;
            break;
        case 'i':
            o.interval_ms = parse_int(optarg, 1, 60000);
            break;
        case 'P':
            o.prefix = parse_int(optarg, 0, 65536);
            break;
        case 'T':
            o.tls = true;
            break;
        case 'S':
            o.sni = optarg;
            break;
        default:
            usage();
        }
    }
    if (!mode || !o.port || optind != argc)
        usage();
    o.mode = !strcmp(mode, "tcp")     ? M_TCP
             : !strcmp(mode, "hello") ? M_HELLO
             : !strcmp(mode, "tls")   ? M_TLS
             : !strcmp(mode, "slow")  ? M_SLOW
                                      : -1;
    if (o.mode < 0 || (o.mode == M_SLOW && (!o.text || !*o.text)) || (!o.cert != !o.key))
        usage();
    if (o.cert)
        o.tls = true;
    /* A server that closes first must not kill us: SSL_write uses write(2) (EPIPE instead). */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "conn-flood: signal: cannot ignore SIGPIPE\n");
        return 1;
    }

    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, o.host, &dst.sin_addr) != 1 ||
        (o.source && inet_pton(AF_INET, o.source, &src.sin_addr) != 1))
        usage();

    SSL_CTX *ctx = NULL;
    if (o.mode == M_HELLO || o.mode == M_TLS || o.tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx ||
            (o.cert && (SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
                        SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1)) ||
            (o.ca && SSL_CTX_load_verify_locations(ctx, o.ca, NULL) != 1)) {
            fprintf(stderr, "conn-flood: TLS setup failed\n");
            return 1;
        }
        SSL_CTX_set_verify(ctx, o.ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        if (o.mode == M_HELLO && build_hello(ctx) != 0) {
            fprintf(stderr, "conn-flood: no ClientHello\n");
            return 1;
        }
    }
    cl *cls = calloc((size_t)o.count, sizeof *cls);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cls || ep < 0) {
        fprintf(stderr, "conn-flood: out of resources\n");
        return 1;
    }
    double t0 = now_ms(), end = t0 + o.hold_s * 1000.0;
    int next = 0, failed_open = 0;
    struct epoll_event evs[256];
    while (now_ms() < end) {
        while (next < o.count && inflight < o.concurrency) {
            if (cl_open(ep, &cls[next], &dst, o.source ? &src : NULL, ctx) != 0) {
                failed_open++;
                cls[next].state = S_DONE;
                if (cls[next].fd >= 0)
                    close(cls[next].fd);
                cls[next].fd = -1;
            }
            next++;
        }
        int timeout = o.mode == M_SLOW ? 20 : 100;
        int n = epoll_wait(ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            cl *c = evs[i].data.ptr;
            if (c->state != S_DONE)
                on_event(ep, c, evs[i].events);
        }
        if (o.mode == M_SLOW)
            slow_tick(cls, next);
        if (next == o.count && o.mode == M_SLOW) {
            int live = 0;
            for (int i = 0; i < next; i++)
                live += cls[i].state != S_DONE;
            if (live == 0)
                break; /* every slow client has been cut: no need to wait longer */
        }
    }
    int open_now = 0;
    for (int i = 0; i < next; i++) {
        if (cls[i].state == S_HOLD || cls[i].state == S_REQUEST)
            open_now++;
        if (cls[i].state != S_DONE)
            cl_closed(&cls[i], false);
    }
    printf("mode=%s opened=%d failed_open=%d refused=%d established=%d answered=%d open=%d "
           "closed=%d first_close_ms=%.0f last_close_ms=%.0f\n",
           mode, opened, failed_open, refused, established, answered, open_now, closed, first_close,
           last_close);
    free(cls);
    close(ep);
    SSL_CTX_free(ctx);
    return 0;
}
