/* tls_server.c - the TLS front end: accept, non-blocking OpenSSL handshakes in per-thread epoll
 * loops, and HTTP/1.1 read from and written to the TLS stream on the same thread (http1.h).
 *
 * Threads: `threads` pump threads share the listening socket (EPOLLEXCLUSIVE); each owns the
 * connections it accepted. A request goes TLS -> http1 parser -> envelope -> response head and
 * body -> TLS on one thread, with no socketpair, no second HTTP library and no thread hop.
 * Handlers that may block run on the listener's worker pool (http_envelope.h) with their
 * connection suspended: the pump leaves a suspended connection alone until the envelope's
 * resume callback puts it on the pump's resume list and wakes the pump, so a handler that
 * blocks for seconds stalls neither the pump nor other clients. One request at a time per
 * connection: bytes a client pipelines wait in the connection's input buffer (backpressure).
 * Plaintext listeners take the same path without TLS.
 *
 * Limits and deadlines (issue 17): a budget of pending connections per source address and of
 * authenticated ones per identity (tls_limits.c), the oldest idle keep-alive connection of the
 * accepting pump closed when the listener is full, total deadlines for the handshake plus
 * request headers and for the body, an idle timeout between requests and for a response the
 * client does not read. See docs/adr/0001-tls-front-end.md. */
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "http1.h"
#include "http_util.h"
#include "log.h"
#include "qk_inline.h"
#include "secbuf.h"
#include "thread_name.h"

#define PUMP_BUF          16384
#define MAX_EVENTS        64
#define ACCEPT_BATCH      64
#define PUMP_ROUNDS       64 /* per wake-up and connection, for fairness */
#define MAX_THREADS       64
#define ACCEPT_BACKOFF_MS 100
#define DRAIN_TIMEOUT_MS  5000 /* graceful stop: in-flight requests and their responses */
#define DRAIN_POLL_MS     10
#define LINGER_MS         1000 /* a refused client: read and drop its bytes this long, then close */
#define LINGER_READS      16   /* reads per wake-up while lingering */
#define MAX_WORKERS       1024
#define QUEUE_PER_WORKER  64 /* requests waiting per worker before 503 (4 x 16) */
/* Workers per pump thread by default: the KME's handlers wait on the peer KME and the store,
 * and with 2 per pump the ETSI 014 bench at 64 connections lost a third of its key pairs
 * (docs/adr/0001-tls-front-end.md, measured behaviour). */
#define WORKERS_PER_PUMP   8
#define PENDING_PER_SOURCE 256   /* default max_pending_per_source */
#define HEADER_TIMEOUT_MS  10000 /* default header_timeout: handshake + request headers */
#define BODY_TIMEOUT_MS    60000 /* default body_timeout */
#define SWEEP_MIN_MS       10    /* deadlines are checked at most this often per pump */
/* listen(2) backlog (the kernel caps it at net.core.somaxconn): a flood's connections wait
 * there until the pump accepts and refuses them; a short queue overflows, and a legitimate
 * client's SYN dropped with it waits for its retransmission (1 s, RFC 6298 2.1). */
#define LISTEN_BACKLOG 4096

enum { EP_LISTEN, EP_WAKE, EP_TCP };

/* Where a handed-off connection is in its current request (the deadlines of issue 17):
 * HEAD: waiting for a request's headers (deadline: the first request's from accept, a later
 * request's from its first byte); BODY: headers done, body coming (its own deadline); BUSY:
 * the handler (no deadline of ours) and the response (the idle timeout while the client reads
 * nothing); IDLE: keep-alive between requests, on the pump's idle list (the idle timeout). */
enum { RQ_HEAD, RQ_BODY, RQ_BUSY, RQ_IDLE };
/* What a connection's deadline_ms bounds. */
enum { DL_NONE, DL_HANDSHAKE, DL_HEADER, DL_BODY, DL_LINGER, DL_IDLE, DL_WRITE };

typedef struct qk_http_conn conn;
typedef struct {
    conn *c;
    int kind;
} endpoint;

typedef struct pump_thread pump_thread;

struct qk_http_conn {
    conn *prev, *next;         /* the thread's live list */
    conn *lru_prev, *lru_next; /* the thread's idle keep-alive list (in_lru) */
    conn *zombie_next;
    conn *ready_next;
    conn *resume_next; /* the thread's resume list (pump_thread.resumes, under rlock) */
    pump_thread *t;
    endpoint tcp_ep;
    int tcp_fd;
    SSL *ssl;
    qk_tls_hs_state hs;
    uint64_t deadline_ms; /* 0: none */
    uint64_t accept_ms;
    int rq;      /* RQ_*: once handed off */
    int dl_kind; /* DL_*: what deadline_ms bounds */
    bool in_lru, src_held, id_held;
    unsigned char src_key[17];
    unsigned char id_key[QK_BUDGET_KEY_MAX];
    size_t src_len, id_len;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint32_t tcp_mask;
    bool handshaking, dead, in_ready, lingering, io_error;
    bool tls_eof; /* the client closed its side (close_notify or EOF) */
    bool tcp_want_r, tcp_want_w;
    /* Worth a read: epoll reported the socket readable since the last read, the last read
     * filled the buffer, or TLS wanted to write before it could read. The socket is
     * level-triggered, so bytes a short read left behind are reported again: no read that can
     * only answer EAGAIN (each was a system call per request). */
    bool tcp_rd;
    bool write_retry; /* the last write wanted to be retried: out_buf must not change (TLS) */

    /* HTTP (http1.h), one request at a time. */
    qk_peer_identity id; /* the authenticated caller (never changed after the hand-off) */
    bool suspended;      /* the envelope holds the request (a worker, a barrier or an event) */
    bool counted;        /* the request is counted in the listener's inflight */
    bool close_after;    /* close once the response is out */
    bool head_only;      /* a HEAD request: the response's body is not sent */
    bool too_large;      /* the body passed max_body: wiped, the rest dropped */
    bool resp_live;      /* a response is being written (head in out_buf, body in resp) */
    size_t head_len, head_scan;
    uint64_t body_left; /* Content-Length bytes still to come */
    qk_http1_chunked chunk;
    char *body; /* NUL-terminated; body_cap bytes, wiped before it is freed */
    size_t body_len, body_cap;
    double t_start_ms;
    qk_http_env env;
    qk_http_reply resp; /* the reply being written; its body from resp_off on */
    size_t resp_off;
    qk_http1_response resp_head; /* its head, while not yet in out_buf (head_due) */
    bool head_due;
    qk_http1_head h;
    size_t in_len, in_off;   /* client -> parser */
    size_t out_len, out_off; /* responses -> client */
    unsigned char in_buf[PUMP_BUF];
    unsigned char out_buf[PUMP_BUF];
    char head[QK_H1_HEAD_MAX]; /* the request head, parsed in place */
};

struct pump_thread {
    qk_tls_server *srv;
    pthread_t tid;
    bool started;
    int epfd, wake_fd;
    endpoint listen_ep, wake_ep;
    /* Resumes from workers (Dekker-style: each side stores its flag, then reads the other's,
     * so a resume is never missed and the eventfd is written only to a thread that waits). */
    atomic_bool polling; /* in (or about to enter) epoll_wait */
    atomic_bool resumed; /* a connection of ours is on the resume list */
    pthread_mutex_t rlock;
    bool rlock_ok;
    conn *resumes; /* connections whose suspended request can continue (rlock) */
    bool listen_in_epoll;
    uint64_t listen_retry_ms;
    conn *conns;
    conn *lru_head, *lru_tail; /* idle keep-alive connections, oldest first */
    conn *zombies;
    conn *ready;
    uint64_t next_deadline_ms;
    time_t date_s; /* the Date field of this second (RFC 9110 6.6.1) */
    char date[30];
    atomic_bool drained; /* draining: every response handed to us has been sent */
};

struct qk_tls_server {
    char name[32];
    qk_tls_mode mode;
    SSL_CTX *ctx;       /* NULL for plaintext (NONE) listeners */
    qk_http_pool *pool; /* the workers of handlers that may block */
    int listen_fd;
    uint16_t port;
    unsigned max_conn, hs_timeout_ms, idle_timeout_s, nthreads, nworkers, queue_max;
    unsigned max_pending_src, max_per_id, header_timeout_ms, body_timeout_ms;
    qk_budget *sources;    /* connections before the handshake, per source address */
    qk_budget *identities; /* authenticated connections, per identity */
    pump_thread *threads;
    atomic_bool stop;
    atomic_bool draining;          /* graceful stop: accept nothing new, finish what is in flight */
    atomic_uint_fast64_t inflight; /* requests started whose response is not out yet */
    qk_http_front front;           /* the request envelope's handler, name and body limit */
    atomic_uint_fast64_t accepted, hs_ok, hs_failed, refused, active;
    atomic_uint_fast64_t psk13_sha384, psk13_sha256;
    atomic_uint_fast64_t refused_source, refused_identity, evicted_idle;
    atomic_uint_fast64_t timeout_header, timeout_body;
};

static const qk_peer_identity no_identity = {.kind = QK_ID_NONE};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void peer_str(const conn *c, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (c->peer.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c->peer;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (c->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->peer;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, cap, "%s:%u", host, port);
}

/* ---- connections --------------------------------------------------------------------------- */

static void set_deadline(conn *c, uint64_t when, int kind)
{
    c->deadline_ms = when;
    c->dl_kind = when ? kind : DL_NONE;
    if (when && when < c->t->next_deadline_ms)
        c->t->next_deadline_ms = when;
}

/* The idle keep-alive list of a pump: appended at the tail, the oldest at the head. */
static void lru_push(conn *c)
{
    pump_thread *t = c->t;
    c->lru_next = NULL;
    c->lru_prev = t->lru_tail;
    if (t->lru_tail)
        t->lru_tail->lru_next = c;
    else
        t->lru_head = c;
    t->lru_tail = c;
    c->in_lru = true;
}

static void lru_remove(conn *c)
{
    if (!c->in_lru)
        return;
    pump_thread *t = c->t;
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        t->lru_head = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        t->lru_tail = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
    c->in_lru = false;
}

/* The connection no longer waits for its handshake (or, plaintext, its first headers). */
static void src_release(conn *c)
{
    if (c->src_held) {
        qk_budget_release(c->t->srv->sources, c->src_key, c->src_len);
        c->src_held = false;
    }
}

/* A request's head has arrived: the body's own deadline starts. */
static void rq_headers_done(conn *c)
{
    src_release(c); /* plaintext: the first headers end the "pending" phase */
    lru_remove(c);
    c->rq = RQ_BODY;
    set_deadline(c, now_ms() + c->t->srv->body_timeout_ms, DL_BODY);
}

/* The body is complete: the handler and the response (no deadline until the response). */
static void rq_body_done(conn *c)
{
    c->rq = RQ_BUSY;
    set_deadline(c, 0, DL_NONE);
}

/* The response has gone: idle keep-alive (the idle timeout), or the next request's headers
 * when the client already sent bytes of it (pipelining). */
static void rq_completed(conn *c)
{
    if (c->in_off < c->in_len) {
        c->rq = RQ_HEAD;
        set_deadline(c, now_ms() + c->t->srv->header_timeout_ms, DL_HEADER);
        return;
    }
    c->rq = RQ_IDLE;
    set_deadline(c, now_ms() + (uint64_t)c->t->srv->idle_timeout_s * 1000u, DL_IDLE);
    if (!c->in_lru)
        lru_push(c);
}

/* Bytes of a request arrived from the client. */
static void rq_client_bytes(conn *c)
{
    if (c->rq == RQ_IDLE) {
        lru_remove(c);
        c->rq = RQ_HEAD;
        set_deadline(c, now_ms() + c->t->srv->header_timeout_ms, DL_HEADER);
    }
}

/* The request body collected so far, wiped (a request may carry key material: relay hops). */
static void body_free(conn *c)
{
    qk_wipe_free(c->body, c->body_cap);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
}

/* The request is over (answered, or its connection closed): uncount it. */
static void rq_uncount(conn *c)
{
    if (c->counted) {
        c->counted = false;
        atomic_fetch_sub(&c->t->srv->inflight, 1);
    }
}

static void conn_close(conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    pump_thread *t = c->t;
    qk_tls_server *s = t->srv;
    lru_remove(c);
    src_release(c);
    if (c->id_held) {
        qk_budget_release(s->identities, c->id_key, c->id_len);
        c->id_held = false;
    }
    if (c->ssl && !c->handshaking && !c->lingering && !c->io_error && c->out_len == 0) {
        /* Orderly end: best-effort close_notify on the non-blocking socket. */
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
    if (c->tcp_fd >= 0) {
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->tcp_fd, NULL);
        close(c->tcp_fd);
        c->tcp_fd = -1;
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    rq_uncount(c);
    qk_http_reply_clear(&c->resp); /* a response not (wholly) sent: wiped */
    c->resp_live = false;
    atomic_fetch_sub(&s->active, 1);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->suspended)
        return; /* the envelope holds the request (its head and body): freed when resumed */
    qk_http_envelope_drop(&c->env);
    c->zombie_next = t->zombies;
    t->zombies = c;
}

static void free_zombies(pump_thread *t)
{
    while (t->zombies) {
        conn *c = t->zombies;
        t->zombies = c->zombie_next;
        body_free(c);
        qk_wipe_free(c, sizeof *c); /* plaintext may hold key material */
    }
}

static int ep_set(pump_thread *t, int fd, endpoint *ep, uint32_t *cur, uint32_t want, bool add)
{
    if (!add && *cur == want)
        return 0;
    struct epoll_event ev = {.events = want, .data.ptr = ep};
    if (epoll_ctl(t->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0)
        return -1;
    *cur = want;
    return 0;
}

/* A refused handshake: the alert OpenSSL wrote must reach the client. Closing a socket with
 * unread input sends a TCP RST (RFC 1122 4.2.2.13), and a client that receives it may lose the
 * alert still queued for it (a TLS 1.3 client sends its request right after its Finished, so
 * there often is unread input). So: send FIN, read and drop what the client sends until it
 * closes or LINGER_MS pass (the "lingering close" of RFC 9112 9.6), then close. */
static void conn_linger(conn *c)
{
    c->handshaking = false;
    c->lingering = true;
    c->tcp_want_r = true;
    c->tcp_want_w = false;
    if (shutdown(c->tcp_fd, SHUT_WR) != 0 ||
        ep_set(c->t, c->tcp_fd, &c->tcp_ep, &c->tcp_mask, EPOLLIN, false) != 0) {
        conn_close(c);
        return;
    }
    set_deadline(c, now_ms() + LINGER_MS, DL_LINGER);
}

static void conn_linger_read(conn *c)
{
    unsigned char sink[4096];
    for (int i = 0; i < LINGER_READS; i++) {
        ssize_t n = read(c->tcp_fd, sink, sizeof sink);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close(c); /* the client closed (or reset): done */
        return;
    }
}

static void conn_update_events(conn *c)
{
    uint32_t tm = (c->tcp_want_r ? EPOLLIN : 0) | (c->tcp_want_w ? EPOLLOUT : 0);
    if (ep_set(c->t, c->tcp_fd, &c->tcp_ep, &c->tcp_mask, tm, false) != 0)
        conn_close(c);
}

static void mark_ready(conn *c)
{
    if (!c->in_ready) {
        c->in_ready = true;
        c->ready_next = c->t->ready;
        c->t->ready = c;
    }
}

/* The client side of a connection: TLS, or the TCP socket itself on a plaintext listener. */
enum { IO_OK, IO_WANT_READ, IO_WANT_WRITE, IO_EOF, IO_ERROR };

static int io_result_ssl(conn *c, int n)
{
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        return IO_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return IO_WANT_WRITE;
    return e == SSL_ERROR_ZERO_RETURN ? IO_EOF : IO_ERROR;
}

static int io_result_sock(ssize_t n, int want)
{
    if (n == 0)
        return IO_EOF;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? want : IO_ERROR;
}

static int io_read(conn *c, void *buf, size_t cap, size_t *got)
{
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, (int)cap);
        if (n > 0) {
            *got = (size_t)n;
            return IO_OK;
        }
        return io_result_ssl(c, n);
    }
    ssize_t n = recv(c->tcp_fd, buf, cap, 0);
    if (n > 0) {
        *got = (size_t)n;
        return IO_OK;
    }
    return io_result_sock(n, IO_WANT_READ);
}

static int io_write(conn *c, const void *buf, size_t len, size_t *put)
{
    if (c->ssl) {
        ERR_clear_error();
        /* Pitfall 7: after WANT_*, the retry uses the same buffer and length. */
        int n = SSL_write(c->ssl, buf, (int)len);
        if (n > 0) {
            *put = (size_t)n;
            return IO_OK;
        }
        return io_result_ssl(c, n);
    }
    ssize_t n = send(c->tcp_fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
        *put = (size_t)n;
        return IO_OK;
    }
    return n == 0 ? IO_WANT_WRITE : io_result_sock(n, IO_WANT_WRITE);
}

/* Whether a read from the client side may find something: epoll said so, or TLS holds
 * records read ahead (SSL_has_pending: buffered, not yet processed). */
static bool tcp_readable(const conn *c)
{
    return c->tcp_rd || (c->ssl && SSL_has_pending(c->ssl));
}

/* ---- HTTP/1.1 on the connection ------------------------------------------------------------ */

static const char shutting_down[] = "server is shutting down";

/* The Date field (RFC 9110 6.6.1) of this second. */
static const char *pump_date(pump_thread *t)
{
    time_t now = time(NULL);
    if (now != t->date_s || !t->date[0]) {
        qk_http1_date(now, t->date);
        t->date_s = now;
    }
    return t->date;
}

/* Room at the end of out_buf: bytes already written are dropped from its front. Never while a
 * TLS write waits to be retried (it must see the same buffer and length). */
static size_t out_room(conn *c)
{
    if (c->write_retry)
        return 0;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    } else if (c->out_off > 0) {
        memmove(c->out_buf, c->out_buf + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return sizeof c->out_buf - c->out_len;
}

static void conn_finish(conn *c);

/* Start writing the reply (taken from *rep: wiped and freed once written). Its head goes
 * into out_buf with the next resp_fill, behind what out_buf still holds (a 100 Continue). */
static void resp_start(conn *c, qk_http_reply *rep)
{
    qk_tls_server *s = c->t->srv;
    if (c->tls_eof)
        c->close_after = true;
    c->resp = *rep;
    memset(rep, 0, sizeof *rep);
    c->resp_head = (qk_http1_response){
        .status = c->resp.status,
        .content_type = c->resp.content_type,
        .allow = c->resp.allow,
        .no_store = c->resp.secret,
        .retry_after = c->resp.retry_after,
        .content_length = c->resp.len,
        .close = c->close_after,
        .keep_alive_10 = c->h.minor == 0 && !c->close_after,
        .date = pump_date(c->t),
    };
    c->head_due = true;
    c->resp_off = c->head_only ? c->resp.len : 0; /* HEAD: the fields of the answer only */
    c->resp_live = true;
    set_deadline(c, now_ms() + (uint64_t)s->idle_timeout_s * 1000u, DL_WRITE);
}

/* Put the response head, then the next piece of its body, behind what out_buf holds; true if
 * anything moved. *fail is set when the head cannot fit even in an empty buffer. */
static bool resp_fill(conn *c, bool *fail)
{
    if (!c->resp_live)
        return false;
    size_t room = out_room(c);
    if (room == 0)
        return false;
    if (c->head_due) {
        size_t h = qk_http1_write_head((char *)c->out_buf + c->out_len, room, &c->resp_head);
        if (h == 0) {
            *fail = c->out_len == 0; /* else: after what out_buf holds has gone */
            return false;
        }
        c->head_due = false;
        c->out_len += h;
        room -= h;
    }
    if (c->resp_off >= c->resp.len || room == 0)
        return true;
    size_t n = c->resp.len - c->resp_off;
    if (n > room)
        n = room;
    memcpy(c->out_buf + c->out_len, c->resp.body + c->resp_off, n);
    c->out_len += n;
    c->resp_off += n;
    return true;
}

/* The response is out: the next request, or the end of the connection. */
static void resp_done(conn *c)
{
    qk_http_reply_clear(&c->resp);
    c->resp_live = false;
    c->resp_off = 0;
    rq_uncount(c);
    body_free(c);
    qk_wipe(c->head, c->head_len);
    c->head_len = c->head_scan = 0;
    c->too_large = c->head_only = false;
    c->body_left = 0;
    memset(&c->chunk, 0, sizeof c->chunk);
    memset(&c->h, 0, sizeof c->h);
    if (c->close_after) {
        conn_finish(c);
        return;
    }
    rq_completed(c);
}

/* A request begins (its head is complete, or cannot be): counted in flight until its response
 * is out. */
static void rq_begin(conn *c)
{
    rq_headers_done(c);
    if (!c->counted) {
        c->counted = true;
        atomic_fetch_add(&c->t->srv->inflight, 1);
    }
    c->t_start_ms = qk_now_ms();
}

/* An answer of the front end itself (a malformed request, a stop): logged like the envelope's,
 * and the connection closes after it. */
static void front_error(conn *c, unsigned status, const char *msg)
{
    qk_tls_server *s = c->t->srv;
    qk_http_handler *h = s->front.handler;
    rq_body_done(c); /* nothing more is read of this request */
    c->close_after = true;
    qk_http_reply rep;
    memset(&rep, 0, sizeof rep);
    qk_http_reply_message(&rep, status, msg);
    double ms = qk_now_ms() - c->t_start_ms;
    if (h && h->observe)
        h->observe(h->observe_cls, s->name, (int)status, ms);
    qk_request_log line = {
        .listener = s->name,
        .method = c->h.method ? c->h.method : "-",
        .path = c->h.path ? c->h.path : "-",
        .identity = c->id.id[0] ? c->id.id : NULL,
        .status = (int)status,
        .latency_ms = ms,
        .detail = msg,
    };
    qk_log_request(&line);
    resp_start(c, &rep);
}

static const char *head_error_msg(unsigned status)
{
    switch (status) {
    case 414:
        return "request line too long";
    case 431:
        return "request header fields too large";
    case 501:
        return "transfer coding not implemented (only chunked)";
    case 505:
        return "HTTP version not supported";
    default:
        return "malformed request";
    }
}

/* The body is complete: hand the request to the envelope. */
static void rq_body_complete(conn *c)
{
    qk_tls_server *s = c->t->srv;
    rq_body_done(c);
    if (c->too_large && c->body)
        qk_wipe(c->body, c->body_cap); /* what arrived of it is never shown to the handler */
    qk_http_request req = {
        .listener = s->front.listener,
        .method = c->h.method,
        .path = c->h.path,
        .caller = &c->id,
        .body = c->body && !c->too_large ? c->body : "",
        .body_len = c->too_large ? 0 : c->body_len,
        .t_start_ms = c->t_start_ms,
        .head = &c->h,
    };
    qk_http_reply rep;
    if (qk_http_envelope_start(&s->front, c, &c->env, &req, c->too_large, &rep) == 1)
        resp_start(c, &rep);
    else
        c->suspended = true; /* the envelope's resume callback brings it back */
}

/* Keep n body bytes (within max_body; past it the body is wiped and the rest dropped). */
static int body_append(conn *c, const char *p, size_t n)
{
    size_t max_body = qk_http_front_max_body(&c->t->srv->front);
    if (c->too_large || n == 0)
        return 0;
    if (n > max_body - c->body_len) {
        c->too_large = true;
        if (c->body)
            qk_wipe(c->body, c->body_cap);
        c->body_len = 0;
        return 0;
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap * 2 : 1024;
        if (c->h.has_length && c->h.content_length < max_body)
            cap = (size_t)c->h.content_length + 1; /* the whole body at once */
        while (cap < c->body_len + n + 1)
            cap *= 2;
        if (cap > max_body + 1)
            cap = max_body + 1;
        char *nb = malloc(cap);
        if (!nb)
            return -1;
        size_t len = c->body_len;
        if (len)
            memcpy(nb, c->body, len);
        body_free(c); /* the old buffer wiped, never realloc'ed */
        c->body = nb;
        c->body_cap = cap;
        c->body_len = len;
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return 0;
}

/* A complete head is in head[0..head_len): parse it and start reading the body. */
static void rq_start(conn *c)
{
    qk_tls_server *s = c->t->srv;
    rq_begin(c);
    int st = qk_http1_parse_head(c->head, c->head_len, &c->h);
    if (st != 0) {
        memset(&c->h, 0, sizeof c->h);
        front_error(c, (unsigned)st, head_error_msg((unsigned)st));
        return;
    }
    c->head_only = strcmp(c->h.method, "HEAD") == 0;
    if (!c->h.keep_alive)
        c->close_after = true;
    if (atomic_load(&s->draining)) {
        front_error(c, 503, shutting_down); /* nothing new begins during a stop */
        return;
    }
    c->body_left = c->h.has_length ? c->h.content_length : 0;
    bool body = c->h.chunked || c->body_left > 0;
    if (c->h.has_length && c->h.content_length > qk_http_front_max_body(&s->front)) {
        c->too_large = true;
        if (c->h.expect_continue) {
            /* The client waits for a go-ahead: answer without reading the body, and close
             * (RFC 9110 10.1.1). */
            c->close_after = true;
            c->body_left = 0;
            rq_body_complete(c);
            return;
        }
    }
    if (body && c->h.expect_continue && c->h.minor >= 1) {
        static const char go_ahead[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (out_room(c) >= sizeof go_ahead - 1) {
            memcpy(c->out_buf + c->out_len, go_ahead, sizeof go_ahead - 1);
            c->out_len += sizeof go_ahead - 1;
        }
    }
    if (!body)
        rq_body_complete(c);
}

/* Move what arrived of a head into head[]; true if anything moved or the head is done. */
static bool head_feed(conn *c)
{
    size_t avail = c->in_len - c->in_off, room = sizeof c->head - c->head_len;
    size_t n = avail < room ? avail : room;
    memcpy(c->head + c->head_len, c->in_buf + c->in_off, n);
    c->in_off += n;
    c->head_len += n;
    unsigned status = 0;
    size_t end = qk_http1_head_scan(c->head, c->head_len, &c->head_scan, &status);
    if (end > 0) {
        size_t extra = c->head_len - end; /* the body's (or the next request's) bytes */
        c->in_off -= extra;
        qk_wipe(c->head + end, extra);
        c->head_len = end;
        rq_start(c);
        return true;
    }
    if (status) {
        rq_begin(c);
        front_error(c, status, head_error_msg(status));
        return true;
    }
    return n > 0;
}

/* Body bytes: Content-Length or chunked. */
static void body_feed(conn *c)
{
    char *p = (char *)c->in_buf + c->in_off;
    size_t avail = c->in_len - c->in_off;
    size_t used = avail, data = 0;
    int r = 0;
    if (c->h.chunked) {
        r = qk_http1_chunked_decode(&c->chunk, p, avail, &used, &data);
        if (r != 0 && r != 1) {
            c->in_off = c->in_len;
            front_error(c, 400, "malformed chunked body");
            return;
        }
    } else {
        if (used > c->body_left)
            used = (size_t)c->body_left;
        data = used;
        c->body_left -= used;
        r = c->body_left == 0;
    }
    c->in_off += used;
    if (body_append(c, p, data) != 0) {
        c->in_off = c->in_len;
        front_error(c, 503, "out of memory, retry later");
        return;
    }
    if (r == 1)
        rq_body_complete(c);
}

/* Feed the parser what the client sent; true if anything moved. */
static bool rq_advance(conn *c)
{
    bool progress = false;
    while (!c->dead && !c->lingering && c->in_off < c->in_len) {
        if (c->rq == RQ_IDLE)
            rq_client_bytes(c);
        if (c->rq == RQ_HEAD) {
            if (!head_feed(c))
                break;
        } else if (c->rq == RQ_BODY) {
            body_feed(c);
        } else {
            break; /* one request at a time: the rest waits */
        }
        progress = true;
    }
    return progress;
}

/* After a response with Connection: close: close_notify, then the lingering close (the
 * client may still be sending; closing with unread input would reset the connection and could
 * lose the response, RFC 9112 9.6). */
static void conn_finish(conn *c)
{
    if (c->ssl) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl); /* best effort on the non-blocking socket */
        ERR_clear_error();
    }
    lru_remove(c);
    conn_linger(c);
}

/* Move bytes both ways until nothing moves; returns with epoll interest updated or the
 * connection closed. */
static void conn_pump(conn *c)
{
    qk_tls_server *s = c->t->srv;
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        c->tcp_want_r = c->tcp_want_w = false;

        /* Client -> parser. Read only when the parser took everything and wants more (one
         * request at a time: pipelined bytes wait, backpressure), and only what is there:
         * reported by epoll, or records TLS holds already (read-ahead). */
        bool refill = !c->tls_eof && c->in_off == c->in_len && c->rq != RQ_BUSY;
        if (!refill) {
            /* Nothing is read now, but the interest in reading stays until epoll reports
             * something (a client rarely sends during its answer): two epoll_ctl calls per
             * request saved. Level-triggered, so a report while busy drops it (tcp_rd) until
             * the answer is out, and the next read finds what was reported. */
            c->tcp_want_r = !c->tls_eof && !c->tcp_rd;
        } else if (!tcp_readable(c)) {
            c->tcp_want_r = true;
        } else {
            size_t got = 0;
            c->tcp_rd = false;
            int e = io_read(c, c->in_buf, sizeof c->in_buf, &got);
            if (e == IO_OK) {
                c->in_len = got;
                c->in_off = 0;
                c->tcp_rd = got == sizeof c->in_buf; /* a full buffer: more may be waiting */
                progress = true;
                rq_client_bytes(c);
            } else if (e == IO_WANT_READ) {
                c->tcp_want_r = true;
            } else if (e == IO_WANT_WRITE) {
                c->tcp_want_w = true;
                c->tcp_rd = true; /* retried once the socket is writable */
            } else if (e == IO_EOF) {
                c->tls_eof = true;
                progress = true;
            } else {
                qk_log(QK_LOG_DEBUG, "tls listener=%s: read error, closing", s->name);
                c->io_error = true;
                conn_close(c);
                return;
            }
        }
        if (rq_advance(c))
            progress = true;
        if (c->dead || c->lingering)
            return;
        if (c->in_len > 0 && c->in_off == c->in_len) {
            qk_wipe(c->in_buf, c->in_len);
            c->in_len = c->in_off = 0;
        }

        /* Responses -> client. */
        bool fail = false;
        if (resp_fill(c, &fail))
            progress = true;
        if (fail) {
            qk_log(QK_LOG_WARN, "tls listener=%s: a response head does not fit, closing", s->name);
            conn_close(c);
            return;
        }
        if (c->out_off < c->out_len) {
            size_t put = 0;
            int e = io_write(c, c->out_buf + c->out_off, c->out_len - c->out_off, &put);
            c->write_retry = e == IO_WANT_WRITE || e == IO_WANT_READ;
            if (e == IO_OK) {
                c->out_off += put;
                progress = true;
                if (c->out_off == c->out_len) {
                    qk_wipe(c->out_buf, c->out_len);
                    c->out_len = c->out_off = 0;
                }
                if (c->resp_live) /* the client reads: its idle timeout starts again */
                    set_deadline(c, now_ms() + (uint64_t)s->idle_timeout_s * 1000u, DL_WRITE);
            } else if (e == IO_WANT_WRITE) {
                c->tcp_want_w = true;
            } else if (e == IO_WANT_READ) {
                c->tcp_want_r = true;
            } else {
                qk_log(QK_LOG_DEBUG, "tls listener=%s: write error, closing", s->name);
                c->io_error = true;
                conn_close(c);
                return;
            }
        }
        if (c->resp_live && !c->head_due && c->resp_off >= c->resp.len && c->out_len == 0) {
            resp_done(c);
            if (c->dead || c->lingering)
                return;
            progress = true;
        }
        /* The client closed its side and nothing of it is left to answer. */
        if (c->tls_eof && c->rq != RQ_BUSY && c->in_off == c->in_len) {
            conn_close(c);
            return;
        }
        if (!progress) {
            conn_update_events(c);
            return;
        }
    }
    /* Still busy after PUMP_ROUNDS: let the other connections run, come back soon. */
    conn_update_events(c);
    if (!c->dead)
        mark_ready(c);
}

/* Start HTTP on an authenticated (or plaintext) connection. The first request's headers are
 * due by accept + header_timeout. */
static void conn_handoff(conn *c, qk_peer_identity *id)
{
    qk_tls_server *s = c->t->srv;
    c->handshaking = false;
    c->rq = RQ_HEAD;
    set_deadline(c, c->accept_ms + s->header_timeout_ms, DL_HEADER);
    c->id = *id;
    qk_wipe(id, sizeof *id);
    /* Pitfall 6: a TLS 1.3 request may have arrived with the end of the handshake. */
    c->tcp_rd = true;
    conn_pump(c);
}

/* Count an authenticated connection against its identity's budget; -1: over it (the caller
 * refuses the connection). Anonymous clients (server-cert mode) have no budget. */
static int identity_acquire(conn *c, const qk_peer_identity *id)
{
    qk_tls_server *s = c->t->srv;
    size_t len = qk_budget_identity_key(id, c->id_key);
    if (len == 0)
        return 0;
    if (qk_budget_acquire(s->identities, c->id_key, len, s->max_per_id) != 0)
        return -1;
    c->id_len = len;
    c->id_held = true;
    return 0;
}

static void conn_handshake(conn *c)
{
    qk_tls_server *s = c->t->srv;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        c->tcp_want_r = e == SSL_ERROR_WANT_READ;
        c->tcp_want_w = e == SSL_ERROR_WANT_WRITE;
        if (c->tcp_want_r || c->tcp_want_w) {
            conn_update_events(c);
            return;
        }
        char who[80];
        peer_str(c, who, sizeof who);
        unsigned long ec = ERR_peek_error();
        const char *why = ec ? ERR_reason_error_string(ec) : NULL;
        qk_log(QK_LOG_INFO, "tls listener=%s peer=%s: handshake failed: %s", s->name, who,
               why ? why : (e == SSL_ERROR_SYSCALL ? "connection closed" : "error"));
        atomic_fetch_add(&s->hs_failed, 1);
        conn_linger(c);
        return;
    }
    qk_peer_identity id;
    if (qk_tls_policy_identity(c->ssl, &id) != 0) {
        char who[80];
        peer_str(c, who, sizeof who);
        qk_log(QK_LOG_INFO, "tls listener=%s peer=%s: refused: client not authenticated", s->name,
               who);
        atomic_fetch_add(&s->hs_failed, 1);
        conn_linger(c);
        return;
    }
    atomic_fetch_add(&s->hs_ok, 1);
    src_release(c);
    if (identity_acquire(c, &id) != 0) {
        char who[80];
        peer_str(c, who, sizeof who);
        qk_log(QK_LOG_INFO,
               "tls listener=%s peer=%s: refused: identity %s holds %u connections "
               "(max_connections_per_identity)",
               s->name, who, id.id, s->max_per_id);
        atomic_fetch_add(&s->refused_identity, 1);
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl); /* best effort close_notify */
        ERR_clear_error();
        qk_wipe(&id, sizeof id);
        conn_linger(c);
        return;
    }
    if (id.kind == QK_ID_PSK && c->hs.psk_hash >= 0 && SSL_version(c->ssl) >= TLS1_3_VERSION) {
        /* Which hash the TLS 1.3 PSK was bound to, and whether auto mode chose it. */
        atomic_fetch_add(c->hs.psk_hash == QK_PSK_SHA256 ? &s->psk13_sha256 : &s->psk13_sha384, 1);
        char who[80];
        peer_str(c, who, sizeof who);
        qk_log(QK_LOG_INFO, "tls listener=%s peer=%s: psk identity=%s hash=%s%s cipher=%s", s->name,
               who, id.id, qk_psk_hash_name((qk_psk_hash)c->hs.psk_hash),
               c->hs.psk_auto ? " (auto)" : "", id.cipher);
    }
    conn_handoff(c, &id);
}

static void conn_event(conn *c, int kind, uint32_t events)
{
    if (c->dead)
        return;
    if (kind == EP_TCP && (events & (EPOLLERR | EPOLLHUP))) {
        conn_close(c); /* reset or fully closed: nothing more can be delivered */
        return;
    }
    if (events & EPOLLIN)
        c->tcp_rd = true;
    if (c->lingering)
        conn_linger_read(c);
    else if (c->handshaking)
        conn_handshake(c);
    else
        conn_pump(c);
}

/* ---- accept and the thread loop ------------------------------------------------------------ */

static void accept_batch(pump_thread *t)
{
    qk_tls_server *s = t->srv;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd =
            accept4(s->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE and friends: back off instead of spinning on the listener. */
                qk_log(QK_LOG_WARN, "tls listener=%s: accept: %s", s->name, strerror(errno));
                if (t->listen_in_epoll &&
                    epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL) == 0) {
                    t->listen_in_epoll = false;
                    t->listen_retry_ms = now_ms() + ACCEPT_BACKOFF_MS;
                    if (t->listen_retry_ms < t->next_deadline_ms)
                        t->next_deadline_ms = t->listen_retry_ms;
                }
            }
            return;
        }
        atomic_fetch_add(&s->accepted, 1);
        /* Pitfall 3: the limits apply before the handshake costs anything. A full listener
         * with no idle connection to close refuses at once; then the source address's budget
         * of pending handshakes, so that a flood from one address neither takes the listener
         * nor evicts anyone's idle connection; then the room, made if need be. */
        if (!t->lru_head && atomic_load(&s->active) >= s->max_conn) {
            atomic_fetch_add(&s->refused, 1);
            close(fd);
            continue;
        }
        unsigned char skey[17];
        size_t slen = qk_budget_source_key(&peer, skey);
        if (slen && qk_budget_acquire(s->sources, skey, slen, s->max_pending_src) != 0) {
            atomic_fetch_add(&s->refused_source, 1);
            close(fd);
            continue;
        }
        if (atomic_fetch_add(&s->active, 1) >= s->max_conn) {
            if (t->lru_head) {
                /* Full: the oldest idle keep-alive connection of this pump makes room. */
                atomic_fetch_add(&s->evicted_idle, 1);
                conn_close(t->lru_head);
            } else {
                atomic_fetch_sub(&s->active, 1);
                atomic_fetch_add(&s->refused, 1);
                if (slen)
                    qk_budget_release(s->sources, skey, slen);
                close(fd);
                continue;
            }
        }
        conn *c = calloc(1, sizeof *c);
        SSL *ssl = c && s->ctx ? SSL_new(s->ctx) : NULL;
        if (!c || (s->ctx && (!ssl || SSL_set_fd(ssl, fd) != 1))) {
            SSL_free(ssl);
            free(c);
            close(fd);
            atomic_fetch_sub(&s->active, 1);
            if (slen)
                qk_budget_release(s->sources, skey, slen);
            qk_log(QK_LOG_WARN, "tls listener=%s: out of memory for a connection", s->name);
            ERR_clear_error();
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->t = t;
        c->tcp_ep = (endpoint){c, EP_TCP};
        c->tcp_fd = fd;
        c->ssl = ssl;
        memcpy(c->src_key, skey, slen);
        c->src_len = slen;
        c->src_held = slen > 0;
        memcpy(&c->peer, &peer, plen <= sizeof peer ? plen : sizeof peer);
        c->peer_len = plen <= sizeof peer ? plen : sizeof peer;
        c->next = t->conns;
        if (t->conns)
            t->conns->prev = c;
        t->conns = c;
        c->accept_ms = now_ms();
        if (ep_set(t, fd, &c->tcp_ep, &c->tcp_mask, EPOLLIN, true) != 0) {
            conn_close(c);
            continue;
        }
        if (!ssl) {
            qk_peer_identity anonymous = no_identity; /* plaintext listener */
            conn_handoff(c, &anonymous);
            continue;
        }
        qk_tls_hs_state_init(&c->hs);
        SSL_set_app_data(ssl, &c->hs);
        SSL_set_accept_state(ssl);
        c->handshaking = true;
        unsigned hs_ms =
            s->hs_timeout_ms < s->header_timeout_ms ? s->hs_timeout_ms : s->header_timeout_ms;
        set_deadline(c, c->accept_ms + hs_ms, DL_HANDSHAKE);
    }
}

/* Close a connection whose deadline has passed, with a log line and a counter for the
 * handshake, header and body deadlines (lingering and draining end quietly). */
static void deadline_passed(conn *c)
{
    qk_tls_server *s = c->t->srv;
    const char *what = NULL;
    if (c->dl_kind == DL_HANDSHAKE) {
        what = "handshake timeout";
        atomic_fetch_add(&s->hs_failed, 1);
    } else if (c->dl_kind == DL_HEADER) {
        what = "request headers not complete by the deadline (header_timeout)";
        atomic_fetch_add(&s->timeout_header, 1);
    } else if (c->dl_kind == DL_BODY) {
        what = "request body not complete by the deadline (body_timeout)";
        atomic_fetch_add(&s->timeout_body, 1);
    }
    if (what) {
        char who[80];
        peer_str(c, who, sizeof who);
        qk_log(QK_LOG_INFO, "tls listener=%s peer=%s: %s, closing", s->name, who, what);
    }
    conn_close(c);
}

static void sweep_deadlines(pump_thread *t, uint64_t now)
{
    qk_tls_server *s = t->srv;
    uint64_t next = UINT64_MAX;
    if (!t->listen_in_epoll && !atomic_load(&s->stop)) {
        if (now >= t->listen_retry_ms) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->listen_ep};
            if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) == 0)
                t->listen_in_epoll = true;
            else
                t->listen_retry_ms = now + ACCEPT_BACKOFF_MS;
        }
        if (!t->listen_in_epoll)
            next = t->listen_retry_ms;
    }
    conn *c = t->conns;
    while (c) {
        conn *nx = c->next;
        if (c->deadline_ms && now >= c->deadline_ms) {
            deadline_passed(c);
        } else if (c->deadline_ms && c->deadline_ms < next) {
            next = c->deadline_ms;
        }
        c = nx;
    }
    /* A flood's deadlines follow each other closely: one walk per SWEEP_MIN_MS at most. */
    if (next != UINT64_MAX && next < now + SWEEP_MIN_MS)
        next = now + SWEEP_MIN_MS;
    t->next_deadline_ms = next;
}

/* Graceful stop, once per loop turn: accept nothing new, drop handshakes, and report drained
 * when no request is in flight and every response byte has gone out. */
static void drain_step(pump_thread *t)
{
    qk_tls_server *s = t->srv;
    if (t->listen_in_epoll) {
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->listen_fd, NULL);
        t->listen_in_epoll = false;
    }
    t->listen_retry_ms = UINT64_MAX; /* never re-armed while draining */
    bool flushed = atomic_load(&s->inflight) == 0;
    conn *c = t->conns;
    while (c) {
        conn *nx = c->next;
        if (c->handshaking)
            conn_close(c);
        else if (c->out_len > 0 || c->resp_live)
            flushed = false; /* a response (or its head) not out yet */
        c = nx;
    }
    atomic_store(&t->drained, flushed);
}

static void thread_wake(pump_thread *t)
{
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        qk_log(QK_LOG_DEBUG, "tls: wake write: %s", strerror(errno));
}

/* qk_http_front.resume (any thread): a suspended request of connection c can continue; its
 * pump takes it from the resume list. */
static void front_resume(void *cls, qk_http_conn *c)
{
    (void)cls;
    pump_thread *t = c->t;
    pthread_mutex_lock(&t->rlock);
    c->resume_next = t->resumes;
    t->resumes = c;
    pthread_mutex_unlock(&t->rlock);
    /* Only the first resume since the pump last took its list wakes it: a later one finds
     * `resumed` set, so the pump has been woken already (the first found it polling), or will
     * see the flag before its next epoll_wait (loop_timeout), and takes the whole list then.
     * A store sync completes many replies at once: one eventfd write, not one per reply. */
    if (!atomic_exchange(&t->resumed, true) && atomic_load(&t->polling))
        thread_wake(t);
}

/* The resumed connections: each gets the reply the envelope stored (or runs its handler
 * again), and a connection that closed meanwhile is freed now. */
static void run_resumes(pump_thread *t)
{
    if (!atomic_exchange(&t->resumed, false))
        return;
    pthread_mutex_lock(&t->rlock);
    conn *r = t->resumes;
    t->resumes = NULL;
    pthread_mutex_unlock(&t->rlock);
    while (r) {
        conn *c = r;
        r = c->resume_next;
        c->resume_next = NULL;
        c->suspended = false;
        qk_http_reply rep;
        int done = qk_http_envelope_resume(&t->srv->front, c, &c->env, &rep);
        if (!done) {
            c->suspended = true; /* waiting again (an event, then a run on a worker) */
        } else if (c->dead) {
            qk_http_reply_clear(&rep); /* the client has gone: nobody to answer */
            qk_http_envelope_drop(&c->env);
            c->zombie_next = t->zombies;
            t->zombies = c;
        } else {
            resp_start(c, &rep);
            if (!c->dead)
                conn_pump(c);
        }
    }
}

/* The epoll_wait timeout: deadlines, drain polling, or none when work is ready. */
static int loop_timeout(pump_thread *t)
{
    qk_tls_server *s = t->srv;
    int timeout = atomic_load(&s->draining) ? DRAIN_POLL_MS : 1000;
    if (t->ready || atomic_load(&t->resumed))
        return 0;
    uint64_t now = now_ms();
    if (t->next_deadline_ms != UINT64_MAX) {
        uint64_t d = t->next_deadline_ms > now ? t->next_deadline_ms - now : 0;
        if (d < (uint64_t)timeout)
            timeout = (int)d;
    }
    return timeout;
}

static void *pump_main(void *arg)
{
    QK_THREAD_NAME("qk-pump");
    pump_thread *t = arg;
    qk_tls_server *s = t->srv;
    struct epoll_event evs[MAX_EVENTS];
    qk_log_hold(true); /* request lines: one write per loop turn, flushed before each wait */
    while (!atomic_load(&s->stop)) {
        qk_log_flush();
        atomic_store(&t->polling, true);
        int timeout = loop_timeout(t);
        int n = epoll_wait(t->epfd, evs, MAX_EVENTS, timeout);
        atomic_store(&t->polling, false);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            qk_log(QK_LOG_ERROR, "tls listener=%s: epoll_wait: %s", s->name, strerror(errno));
            break;
        }
        qk_inline_turn_begin(); /* the turn's replies: one commit (qk_inline_kick) */
        for (int i = 0; i < n; i++) {
            endpoint *ep = evs[i].data.ptr;
            if (ep->kind == EP_LISTEN) {
                accept_batch(t);
            } else if (ep->kind == EP_WAKE) {
                uint64_t v;
                if (read(t->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    qk_log(QK_LOG_DEBUG, "tls: wake read: %s", strerror(errno));
            } else {
                conn_event(ep->c, ep->kind, evs[i].events);
            }
        }
        run_resumes(t);
        conn *r = t->ready;
        t->ready = NULL;
        while (r) {
            conn *nx = r->ready_next;
            r->in_ready = false;
            if (!r->dead)
                conn_pump(r);
            r = nx;
        }
        qk_inline_turn_end();
        qk_http_pool_kick(s->pool); /* the requests this turn queued */
        uint64_t now = now_ms();
        if (now >= t->next_deadline_ms)
            sweep_deadlines(t, now);
        if (atomic_load(&s->draining))
            drain_step(t);
        free_zombies(t);
    }
    run_resumes(t); /* connections the stopped pool resumed are suspended no more */
    while (t->conns)
        conn_close(t->conns);
    t->ready = NULL;
    free_zombies(t);
    qk_log_hold(false);
    return NULL;
}

/* ---- start / stop -------------------------------------------------------------------------- */

static int make_listener(const qk_listener_config *cfg, int *out_fd, uint16_t *out_port,
                         qk_err *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    const char *addr = cfg->bind_addr ? cfg->bind_addr : "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(cfg->port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(cfg->port);
        len = sizeof *a6;
    } else {
        return qk_err_set(err, QK_EINVAL, "listener %s: bad bind address '%s'",
                          cfg->name ? cfg->name : "?", addr);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qk_err_set(err, QK_EIO, "socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return qk_err_set(err, QK_EIO, "listener %s: bind %s port %u: %s",
                          cfg->name ? cfg->name : "?", addr, (unsigned)cfg->port, strerror(e));
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        int e = errno;
        close(fd);
        return qk_err_set(err, QK_EIO, "getsockname: %s", strerror(e));
    }
    *out_port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    *out_fd = fd;
    return 0;
}

static int start_threads(qk_tls_server *s, qk_err *err)
{
    s->threads = calloc(s->nthreads, sizeof *s->threads);
    if (!s->threads)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    for (unsigned i = 0; i < s->nthreads; i++)
        s->threads[i].epfd = s->threads[i].wake_fd = -1; /* a failed start closes only these */
    for (unsigned i = 0; i < s->nthreads; i++) {
        pump_thread *t = &s->threads[i];
        t->srv = s;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        t->listen_ep = (endpoint){NULL, EP_LISTEN};
        t->wake_ep = (endpoint){NULL, EP_WAKE};
        t->next_deadline_ms = UINT64_MAX;
        atomic_init(&t->drained, false);
        atomic_init(&t->polling, false);
        atomic_init(&t->resumed, false);
        if (t->epfd < 0 || t->wake_fd < 0)
            return qk_err_set(err, QK_EIO, "epoll/eventfd: %s", strerror(errno));
        t->rlock_ok = pthread_mutex_init(&t->rlock, NULL) == 0;
        if (!t->rlock_ok)
            return qk_err_set(err, QK_EIO, "listener %s: mutex", s->name);
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->listen_ep};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &t->wake_ep};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) != 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &wev) != 0)
            return qk_err_set(err, QK_EIO, "epoll_ctl: %s", strerror(errno));
        t->listen_in_epoll = true;
        int rc = pthread_create(&t->tid, NULL, pump_main, t);
        if (rc != 0)
            return qk_err_set(err, QK_EIO, "pthread_create: %s", strerror(rc));
        t->started = true;
    }
    return 0;
}

int qk_tls_server_check(const qk_listener_config *cfg, qk_err *err)
{
    if (!cfg)
        return qk_err_set(err, QK_EINVAL, "qk_tls_server_check: bad arguments");
    if (cfg->tls.mode == QK_TLS_MODE_NONE)
        return 0;
    SSL_CTX *ctx = qk_tls_policy_ctx_new(&cfg->tls, err);
    if (!ctx)
        return err ? err->code : QK_ETLS;
    qk_tls_policy_ctx_free(ctx);
    return 0;
}

int qk_tls_server_start(const qk_listener_config *cfg, qk_tls_server **out, qk_err *err)
{
    if (!cfg || !out || !cfg->handler)
        return qk_err_set(err, QK_EINVAL, "qk_tls_server_start: bad arguments");
    *out = NULL;
    /* Pitfall 5: writes to closed sockets must not kill us. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
    qk_tls_server *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    snprintf(s->name, sizeof s->name, "%s", cfg->name ? cfg->name : "listener");
    s->mode = cfg->tls.mode;
    s->listen_fd = -1;
    s->max_conn = cfg->max_connections ? cfg->max_connections : 1024;
    s->hs_timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : 10000;
    s->header_timeout_ms = cfg->header_timeout_ms ? cfg->header_timeout_ms : HEADER_TIMEOUT_MS;
    s->body_timeout_ms = cfg->body_timeout_ms ? cfg->body_timeout_ms : BODY_TIMEOUT_MS;
    /* Default: 256, but at most 3/4 of a small listener (qkd-sim's control API, the bridge's
     * channel), so that one address always leaves room for others. */
    unsigned src_default = s->max_conn - s->max_conn / 4;
    if (src_default > PENDING_PER_SOURCE)
        src_default = PENDING_PER_SOURCE;
    s->max_pending_src = cfg->max_pending_per_source ? cfg->max_pending_per_source
                         : src_default > 0           ? src_default
                                                     : 1;
    s->max_per_id = cfg->max_per_identity ? cfg->max_per_identity
                    : s->max_conn > 1     ? s->max_conn / 2
                                          : 1;
    s->idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : 60;
    s->nthreads = cfg->threads ? cfg->threads : 2;
    if (s->nthreads > MAX_THREADS)
        s->nthreads = MAX_THREADS;
    s->nworkers = cfg->workers ? cfg->workers : WORKERS_PER_PUMP * s->nthreads;
    if (s->nworkers > MAX_WORKERS)
        s->nworkers = MAX_WORKERS;
    s->queue_max = cfg->queue_max ? cfg->queue_max : QUEUE_PER_WORKER * s->nworkers;
    if (s->queue_max > 65536)
        s->queue_max = 65536;
    atomic_init(&s->stop, false);
    atomic_init(&s->draining, false);
    atomic_init(&s->inflight, 0);
    s->front = (qk_http_front){cfg->handler, s->name, cfg->max_body, NULL, NULL, NULL};

    int rc = 0;
    s->sources = qk_budget_new();
    s->identities = qk_budget_new();
    if (!s->sources || !s->identities)
        rc = qk_err_set(err, QK_ENOMEM, "out of memory");
    if (rc == 0 && s->mode != QK_TLS_MODE_NONE) {
        s->ctx = qk_tls_policy_ctx_new(&cfg->tls, err);
        if (!s->ctx)
            rc = err ? err->code : QK_ETLS;
    }
    if (rc == 0)
        rc = make_listener(cfg, &s->listen_fd, &s->port, err);
    if (rc == 0)
        rc = qk_http_pool_start(s->name, s->nworkers, s->queue_max, &s->pool, err);
    if (rc == 0) {
        s->front.pool = s->pool;
        s->front.resume = front_resume;
        s->front.resume_cls = s;
        rc = start_threads(s, err);
    }
    if (rc != 0) {
        if (err)
            qk_err_prefix(err, "listener %s", s->name);
        qk_tls_server_stop(s);
        return rc;
    }
    qk_log(QK_LOG_INFO, "listener=%s listening on %s port %u", s->name,
           cfg->bind_addr ? cfg->bind_addr : "127.0.0.1", (unsigned)s->port);
    *out = s;
    return 0;
}

uint16_t qk_tls_server_port(const qk_tls_server *s)
{
    return s ? s->port : 0;
}

/* Let in-flight requests finish and their responses leave (bounded by DRAIN_TIMEOUT_MS), so
 * that a key a handler has delivered is not lost to a SIGTERM. */
static void drain(qk_tls_server *s)
{
    atomic_store(&s->draining, true);
    bool threads_running = s->threads && s->nthreads > 0 && s->threads[0].started;
    for (unsigned waited = 0; waited < DRAIN_TIMEOUT_MS; waited += DRAIN_POLL_MS) {
        bool done = atomic_load(&s->inflight) == 0;
        if (done && threads_running) {
            for (unsigned i = 0; i < s->nthreads; i++) {
                pump_thread *t = &s->threads[i];
                if (!t->started)
                    continue;
                thread_wake(t);
                if (!atomic_load(&t->drained))
                    done = false;
            }
        }
        if (done)
            return;
        struct timespec ts = {0, DRAIN_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    qk_log(QK_LOG_WARN, "listener=%s: stop: %llu request(s) still in flight after %d ms", s->name,
           (unsigned long long)atomic_load(&s->inflight), DRAIN_TIMEOUT_MS);
}

void qk_tls_server_stop(qk_tls_server *s)
{
    if (!s)
        return;
    drain(s);
    /* Workers finish what runs, answer what waits with 503 and resume every suspended
     * connection; the pumps, still running, process those before they stop. */
    qk_http_pool_stop(s->pool);
    atomic_store(&s->stop, true);
    if (s->threads) {
        for (unsigned i = 0; i < s->nthreads; i++) {
            pump_thread *t = &s->threads[i];
            if (t->started) {
                thread_wake(t);
                pthread_join(t->tid, NULL);
            }
            if (t->rlock_ok)
                pthread_mutex_destroy(&t->rlock);
            if (t->epfd >= 0)
                close(t->epfd);
            if (t->wake_fd >= 0)
                close(t->wake_fd);
        }
        free(s->threads);
    }
    qk_http_pool_free(s->pool); /* no pump calls the envelope any more */
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    qk_budget_free(s->sources);
    qk_budget_free(s->identities);
    qk_tls_policy_ctx_free(s->ctx);
    free(s);
}

void qk_tls_server_get_stats(const qk_tls_server *s, qk_tls_server_stats *st)
{
    if (!st)
        return;
    memset(st, 0, sizeof *st);
    if (!s)
        return;
    qk_tls_server *m = (qk_tls_server *)s; /* atomics are read-only here */
    st->accepted = atomic_load(&m->accepted);
    st->handshakes_ok = atomic_load(&m->hs_ok);
    st->handshakes_failed = atomic_load(&m->hs_failed);
    st->refused_limit = atomic_load(&m->refused);
    st->active = atomic_load(&m->active);
    st->psk13_sha384 = atomic_load(&m->psk13_sha384);
    st->psk13_sha256 = atomic_load(&m->psk13_sha256);
    st->refused_source = atomic_load(&m->refused_source);
    st->refused_identity = atomic_load(&m->refused_identity);
    st->evicted_idle = atomic_load(&m->evicted_idle);
    st->timeout_header = atomic_load(&m->timeout_header);
    st->timeout_body = atomic_load(&m->timeout_body);
}
