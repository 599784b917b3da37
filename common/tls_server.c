/* tls_server.c - the TLS front end: accept, non-blocking OpenSSL handshakes in per-thread epoll
 * loops, hand-off of the plaintext to libmicrohttpd over a socketpair, and the byte pump
 * between the SSL object and our end of the pair.
 *
 * Threads: `threads` pump threads share the listening socket (EPOLLEXCLUSIVE); each owns the
 * connections it accepted and one libmicrohttpd daemon in external mode (no thread of its own:
 * MHD_USE_EPOLL, its epoll fd sits in the pump's epoll set and the pump calls MHD_run), so a
 * request goes TLS -> pair -> MHD_run -> envelope -> pair -> TLS on one thread. Handlers that
 * may block run on the listener's worker pool (http_envelope.h) with their connection
 * suspended, so a handler that blocks for seconds stalls neither the pump nor other clients.
 * The identity of a connection travels from the pump to libmicrohttpd through a table keyed
 * by the libmicrohttpd-side fd (with a generation number, because fd numbers are reused), and
 * is moved into the socket context in the STARTED notification. Plaintext listeners take the
 * same path without TLS.
 *
 * Limits and deadlines (issue 17): a budget of pending connections per source address and of
 * authenticated ones per identity (tls_limits.c), the oldest idle keep-alive connection of the
 * accepting pump closed when the listener is full, and total deadlines for the handshake plus
 * request headers and for the body, whose phases the access and completed callbacks of
 * libmicrohttpd report. See docs/adr/0001-tls-front-end.md. */
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
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"
#include "secbuf.h"

#define PUMP_BUF          16384
#define MAX_EVENTS        64
#define ACCEPT_BATCH      64
#define PUMP_ROUNDS       64 /* per wake-up and connection, for fairness */
#define ID_BUCKETS        256
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
#define MHD_RUNS_PER_STEP  4     /* MHD_run calls per step while libmicrohttpd has work at once */
/* listen(2) backlog (the kernel caps it at net.core.somaxconn): a flood's connections wait
 * there until the pump accepts and refuses them; a short queue overflows, and a legitimate
 * client's SYN dropped with it waits for its retransmission (1 s, RFC 6298 2.1). */
#define LISTEN_BACKLOG 4096

enum { EP_LISTEN, EP_WAKE, EP_TCP, EP_PAIR, EP_MHD };

/* Where a handed-off connection is in its current request (the deadlines of issue 17):
 * HEAD: waiting for a request's headers (deadline: the first request's from accept, a later
 * request's from its first byte); BODY: headers done, body coming (its own deadline); BUSY:
 * the handler and the response (no deadline of ours); IDLE: keep-alive between requests, on
 * the pump's idle list (libmicrohttpd's idle timeout applies). */
enum { RQ_HEAD, RQ_BODY, RQ_BUSY, RQ_IDLE };
/* What a connection's deadline_ms bounds. */
enum { DL_NONE, DL_HANDSHAKE, DL_HEADER, DL_BODY, DL_LINGER, DL_DRAIN };

struct conn;
typedef struct {
    struct conn *c;
    int kind;
} endpoint;

typedef struct pump_thread pump_thread;

typedef struct conn_ctx conn_ctx;

typedef struct conn {
    struct conn *prev, *next;         /* the thread's live list */
    struct conn *lru_prev, *lru_next; /* the thread's idle keep-alive list (in_lru) */
    struct conn *zombie_next;
    struct conn *ready_next;
    pump_thread *t;
    endpoint tcp_ep, pair_ep;
    int tcp_fd, pair_fd, mhd_fd;
    SSL *ssl;
    qk_tls_hs_state hs;
    uint64_t gen;
    uint64_t deadline_ms; /* 0: none */
    uint64_t accept_ms;
    conn_ctx *ctx; /* libmicrohttpd's socket context of this connection, or NULL */
    int rq;        /* RQ_*: once handed to libmicrohttpd */
    int dl_kind;   /* DL_*: what deadline_ms bounds */
    bool in_lru, early_bytes, src_held, id_held;
    unsigned char src_key[17];
    unsigned char id_key[QK_BUDGET_KEY_MAX];
    size_t src_len, id_len;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint32_t tcp_mask, pair_mask;
    bool handshaking, dead, in_ready, lingering;
    bool pair_in_epoll, pair_hup;
    bool tls_eof, shut_sent, mhd_gone, mhd_eof, entry_live;
    bool tcp_want_r, tcp_want_w, pair_want_r, pair_want_w;
    /* Worth a read: epoll reported the socket (or the pair) readable since the last read, the
     * last read filled the buffer, or TLS wanted to write before it could read. Both are
     * level-triggered, so bytes a short read left behind are reported again: no read that can
     * only answer EAGAIN (each was a system call per request). */
    bool tcp_rd, pair_rd;
    size_t in_len, in_off;   /* TLS -> libmicrohttpd */
    size_t out_len, out_off; /* libmicrohttpd -> TLS */
    unsigned char in_buf[PUMP_BUF];
    unsigned char out_buf[PUMP_BUF];
} conn;

struct pump_thread {
    qk_tls_server *srv;
    pthread_t tid;
    bool started;
    int epfd, wake_fd;
    endpoint listen_ep, wake_ep, mhd_ep;
    struct MHD_Daemon *mhd; /* this thread's daemon, external mode (TLS listeners) */
    bool mhd_due;           /* run it before the next wait: its fd or a pair has news */
    /* Wake-ups from workers (Dekker-style: each side stores its flag, then reads the other's,
     * so a resume is never missed and the eventfd is written only to a thread that waits). */
    atomic_bool polling; /* in (or about to enter) epoll_wait */
    atomic_bool resumed; /* a worker resumed a connection of our daemon */
    bool listen_in_epoll;
    uint64_t listen_retry_ms;
    conn *conns;
    conn *lru_head, *lru_tail; /* idle keep-alive connections, oldest first */
    conn *zombies;
    conn *ready;
    uint64_t next_deadline_ms;
    atomic_bool drained; /* draining: every response handed to us has been sent */
};

/* libmicrohttpd's socket context of a connection: the identity (read by workers through
 * qk_conn_identity, never changed after the hand-off) and the pump's connection (pump thread
 * only; NULL once either side has closed). */
struct conn_ctx {
    qk_peer_identity id;
    conn *c;
};

typedef struct id_node {
    struct id_node *next;
    int fd;
    uint64_t gen;
    conn_ctx *ctx;
} id_node;

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
    atomic_uint_fast64_t inflight; /* requests libmicrohttpd has started and not completed */
    qk_http_front front;           /* the request envelope's handler, name and body limit */
    atomic_uint_fast64_t accepted, hs_ok, hs_failed, refused, active;
    atomic_uint_fast64_t psk13_sha384, psk13_sha256;
    atomic_uint_fast64_t refused_source, refused_identity, evicted_idle;
    atomic_uint_fast64_t timeout_header, timeout_body;
    atomic_uint_fast64_t next_gen;
    pthread_mutex_t id_lock;
    id_node *buckets[ID_BUCKETS];
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

/* ---- identity hand-off table --------------------------------------------------------------- */

static void ctx_free(conn_ctx *ctx)
{
    if (ctx) {
        if (ctx->c)
            ctx->c->ctx = NULL;
        qk_wipe(ctx, sizeof *ctx);
        free(ctx);
    }
}

/* Store the socket context (identity and connection) for the libmicrohttpd-side fd, in front
 * of any older entry on the same fd number. An older one can exist only for a moment: when
 * MHD_add_connection fails it closes the fd, and another pump may reuse the number before the
 * failed connection's conn_close removes its own entry (by generation, on its own thread; the
 * entry's connection is that thread's, so no other thread may free it). id_take takes the
 * newest. */
static int id_put(qk_tls_server *s, int fd, uint64_t gen, const qk_peer_identity *id, conn *c)
{
    id_node *n = malloc(sizeof *n);
    conn_ctx *ctx = malloc(sizeof *ctx);
    if (!n || !ctx) {
        free(n);
        free(ctx);
        return -1;
    }
    ctx->id = *id;
    ctx->c = c;
    c->ctx = ctx;
    n->fd = fd;
    n->gen = gen;
    n->ctx = ctx;
    pthread_mutex_lock(&s->id_lock);
    id_node **pp = &s->buckets[(unsigned)fd % ID_BUCKETS];
    n->next = *pp;
    *pp = n;
    pthread_mutex_unlock(&s->id_lock);
    return 0;
}

/* Take the entry for fd (STARTED notification); NULL if none. */
static conn_ctx *id_take(qk_tls_server *s, int fd)
{
    conn_ctx *id = NULL;
    pthread_mutex_lock(&s->id_lock);
    for (id_node **q = &s->buckets[(unsigned)fd % ID_BUCKETS]; *q; q = &(*q)->next) {
        if ((*q)->fd == fd) {
            id_node *n = *q;
            *q = n->next;
            id = n->ctx;
            free(n);
            break;
        }
    }
    pthread_mutex_unlock(&s->id_lock);
    return id;
}

/* Drop the entry for fd only if it still belongs to generation gen. */
static void id_remove(qk_tls_server *s, int fd, uint64_t gen)
{
    pthread_mutex_lock(&s->id_lock);
    for (id_node **q = &s->buckets[(unsigned)fd % ID_BUCKETS]; *q; q = &(*q)->next) {
        if ((*q)->fd == fd && (*q)->gen == gen) {
            id_node *n = *q;
            *q = n->next;
            ctx_free(n->ctx);
            free(n);
            break;
        }
    }
    pthread_mutex_unlock(&s->id_lock);
}

static void id_clear_all(qk_tls_server *s)
{
    for (size_t b = 0; b < ID_BUCKETS; b++) {
        while (s->buckets[b]) {
            id_node *n = s->buckets[b];
            s->buckets[b] = n->next;
            ctx_free(n->ctx);
            free(n);
        }
    }
}

const qk_peer_identity *qk_conn_identity(struct MHD_Connection *c)
{
    if (!c)
        return &no_identity;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!ci || !ci->socket_context)
        return &no_identity;
    return &((const conn_ctx *)ci->socket_context)->id;
}

/* ---- libmicrohttpd callbacks --------------------------------------------------------------- */

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    qk_tls_server *s = cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* Pitfall 1: on AF_UNIX pairs TCP_NODELAY/TCP_CORK fail (EOPNOTSUPP); not news. */
    if (strstr(buf, "TCP_NODELAY") || strstr(buf, "TCP_CORK") || strstr(buf, "TCP_NOPUSH") ||
        strstr(buf, "Failed to push the data"))
        return;
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    qk_log(QK_LOG_WARN, "mhd listener=%s: %s", s ? s->name : "?", buf);
}

static void mhd_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    qk_tls_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? id_take(s, ci->connect_fd) : NULL;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        ctx_free(*socket_context);
        *socket_context = NULL;
    }
}

/* The pump's connection behind a libmicrohttpd connection (pump thread only), or NULL. */
static conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const conn_ctx *ctx = ci ? ci->socket_context : NULL;
    return ctx ? ctx->c : NULL;
}

static void rq_headers_done(conn *c);
static void rq_body_done(conn *c);
static void rq_completed(conn *c);

/* Request accounting for the graceful stop. On its first call for a request the access handler
 * wrapper gives the request a small record and counts it in flight; the user's handler gets a
 * pointer to the record's own con_cls slot, so it sees the usual protocol. A request that
 * starts once the server is draining is refused with 503 and never reaches the user's handler,
 * so nothing new (a key delivery) can begin while the stop waits for what is in flight.
 * libmicrohttpd calls the completed callback exactly for requests whose handler ran, when the
 * response has been handed to the socket (or failed): that ends the count. */
typedef struct {
    void *user_cls; /* the user's handler's *con_cls */
    bool refused;   /* started while draining */
} req_rec;

static enum MHD_Result mhd_access(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    qk_tls_server *s = cls;
    req_rec *r = *con_cls;
    conn *pc = conn_of(c);
    if (pc) {
        /* The first call of a request comes when its headers are complete (microhttpd.h,
         * MHD_AccessHandlerCallback); a later call with no data, when its body is. */
        if (!r)
            rq_headers_done(pc);
        else if (*upload_data_size == 0)
            rq_body_done(pc);
    }
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO; /* out of memory: close the connection */
        r->refused = atomic_load(&s->draining);
        atomic_fetch_add(&s->inflight, 1);
        *con_cls = r;
    }
    if (r->refused) {
        if (*upload_data_size) {
            *upload_data_size = 0; /* discard any body */
            return MHD_YES;
        }
        static const char body[] = "{\"message\":\"server is shutting down\"}";
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        enum MHD_Result ret = MHD_NO;
        if (MHD_add_response_header(resp, "Content-Type", "application/json") == MHD_YES &&
            MHD_add_response_header(resp, "Connection", "close") == MHD_YES)
            ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return qk_http_envelope_access(&s->front, c, url, method, version, upload_data,
                                   upload_data_size, &r->user_cls);
}

static void mhd_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                  enum MHD_RequestTerminationCode toe)
{
    qk_tls_server *s = cls;
    req_rec *r = *con_cls;
    conn *pc = conn_of(c);
    if (pc)
        rq_completed(pc);
    if (!r)
        return; /* never counted */
    if (!r->refused)
        qk_http_envelope_completed(NULL, c, &r->user_cls, toe);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
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

/* A request's headers have arrived (libmicrohttpd calls the access handler): the body's own
 * deadline starts. */
static void rq_headers_done(conn *c)
{
    src_release(c); /* plaintext: the first headers end the "pending" phase */
    lru_remove(c);
    c->rq = RQ_BODY;
    set_deadline(c, now_ms() + c->t->srv->body_timeout_ms, DL_BODY);
}

static void rq_body_done(conn *c)
{
    if (c->rq != RQ_BODY)
        return; /* called again after a resume: nothing new */
    c->rq = RQ_BUSY;
    set_deadline(c, 0, DL_NONE);
}

/* The response has gone (or failed): idle keep-alive, or the next request's headers when the
 * client already sent bytes of it (pipelining). */
static void rq_completed(conn *c)
{
    if (c->early_bytes) {
        c->early_bytes = false;
        c->rq = RQ_HEAD;
        set_deadline(c, now_ms() + c->t->srv->header_timeout_ms, DL_HEADER);
        return;
    }
    c->rq = RQ_IDLE;
    set_deadline(c, 0, DL_NONE);
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
    } else if (c->rq == RQ_BUSY) {
        c->early_bytes = true;
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
    if (c->ctx) {
        c->ctx->c = NULL; /* libmicrohttpd may close its side later */
        c->ctx = NULL;
    }
    if (c->ssl && !c->handshaking && c->mhd_eof && c->out_len == 0) {
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
    if (c->pair_fd >= 0) {
        if (c->pair_in_epoll)
            epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->pair_fd, NULL);
        close(c->pair_fd);
        c->pair_fd = -1;
    }
    if (c->entry_live)
        id_remove(s, c->mhd_fd, c->gen); /* only if libmicrohttpd never took it */
    SSL_free(c->ssl);
    c->ssl = NULL;
    atomic_fetch_sub(&s->active, 1);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->zombie_next = t->zombies;
    t->zombies = c;
}

static void free_zombies(pump_thread *t)
{
    while (t->zombies) {
        conn *c = t->zombies;
        t->zombies = c->zombie_next;
        qk_wipe(c, sizeof *c); /* plaintext may hold key material */
        free(c);
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
    if (ep_set(c->t, c->tcp_fd, &c->tcp_ep, &c->tcp_mask, tm, false) != 0) {
        conn_close(c);
        return;
    }
    if (!c->pair_in_epoll)
        return;
    if (c->mhd_eof || c->pair_hup) {
        /* Pitfall 4: a hung-up pair cannot be masked; drop it and finish draining. */
        epoll_ctl(c->t->epfd, EPOLL_CTL_DEL, c->pair_fd, NULL);
        c->pair_in_epoll = false;
        return;
    }
    uint32_t pm = (c->pair_want_r ? EPOLLIN : 0) | (c->pair_want_w ? EPOLLOUT : 0);
    if (ep_set(c->t, c->pair_fd, &c->pair_ep, &c->pair_mask, pm, false) != 0)
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

/* Move bytes both ways until nothing moves; returns with epoll interest updated or the
 * connection closed. */
static void conn_pump(conn *c)
{
    qk_tls_server *s = c->t->srv;
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        c->tcp_want_r = c->tcp_want_w = c->pair_want_r = c->pair_want_w = false;

        /* TLS -> libmicrohttpd. Refill only when empty (pitfall 7: backpressure); read only
         * what is there: reported by epoll, or records TLS holds already (read-ahead). */
        bool refill = !c->tls_eof && !c->mhd_gone && c->in_len == 0;
        if (refill && !tcp_readable(c)) {
            c->tcp_want_r = true;
        } else if (refill) {
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
                c->tls_eof = true; /* close_notify (or EOF): half-close toward MHD */
                progress = true;
            } else {
                qk_log(QK_LOG_DEBUG, "tls listener=%s: read error, closing", s->name);
                conn_close(c);
                return;
            }
        }
        if (c->in_off < c->in_len) {
            if (c->mhd_gone) {
                c->in_off = c->in_len;
            } else {
                ssize_t w =
                    send(c->pair_fd, c->in_buf + c->in_off, c->in_len - c->in_off, MSG_NOSIGNAL);
                if (w > 0) {
                    c->in_off += (size_t)w;
                    progress = true;
                    c->t->mhd_due = true;
                } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    c->pair_want_w = true;
                } else if (w < 0 && errno == EINTR) {
                    progress = true;
                } else {
                    c->mhd_gone = true; /* pitfall 5: EPIPE/ECONNRESET: MHD closed its end */
                    c->in_off = c->in_len;
                    progress = true;
                }
            }
            if (c->in_off == c->in_len) {
                qk_wipe(c->in_buf, c->in_len);
                c->in_len = c->in_off = 0;
            }
        }
        /* Pitfall 8: client close_notify -> SHUT_WR toward MHD, which still answers. */
        if (c->tls_eof && c->in_len == 0 && !c->shut_sent && !c->mhd_gone) {
            shutdown(c->pair_fd, SHUT_WR);
            c->shut_sent = true;
            progress = true;
            c->t->mhd_due = true;
        }

        /* libmicrohttpd -> TLS. */
        bool fetch = !c->mhd_eof && c->out_len == 0;
        if (fetch && !c->pair_rd) {
            c->pair_want_r = true;
        } else if (fetch) {
            c->pair_rd = false;
            ssize_t r = recv(c->pair_fd, c->out_buf, sizeof c->out_buf, 0);
            if (r > 0) {
                c->out_len = (size_t)r;
                c->out_off = 0;
                /* A full buffer: more may wait. A hung-up pair has left epoll (pitfall 4):
                 * read it until its end. */
                c->pair_rd = (size_t)r == sizeof c->out_buf || c->pair_hup;
                progress = true;
            } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !c->pair_hup) {
                c->pair_want_r = true;
            } else if (r < 0 && errno == EINTR) {
                progress = true;
            } else {
                c->mhd_eof = true; /* 0, ECONNRESET: MHD is done with this connection */
                c->mhd_gone = true;
                progress = true;
                /* libmicrohttpd is done: what it wrote drains within the idle timeout. */
                lru_remove(c);
                if (c->dl_kind != DL_DRAIN)
                    set_deadline(c, now_ms() + (uint64_t)s->idle_timeout_s * 1000u, DL_DRAIN);
            }
        }
        if (c->out_off < c->out_len) {
            size_t put = 0;
            int e = io_write(c, c->out_buf + c->out_off, c->out_len - c->out_off, &put);
            if (e == IO_OK) {
                c->out_off += put;
                progress = true;
                if (c->out_off == c->out_len) {
                    qk_wipe(c->out_buf, c->out_len);
                    c->out_len = c->out_off = 0;
                }
            } else if (e == IO_WANT_WRITE) {
                c->tcp_want_w = true;
            } else if (e == IO_WANT_READ) {
                c->tcp_want_r = true;
            } else {
                qk_log(QK_LOG_DEBUG, "tls listener=%s: write error, closing", s->name);
                conn_close(c);
                return;
            }
        }
        if (c->mhd_eof && c->out_len == 0) {
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

/* Hand an authenticated (or plaintext) connection to this pump's libmicrohttpd daemon over a
 * socketpair; the identity travels in the fd + generation table. The first request's headers
 * are due by accept + header_timeout. */
static void conn_handoff(conn *c, qk_peer_identity *id)
{
    qk_tls_server *s = c->t->srv;
    c->handshaking = false;
    c->rq = RQ_HEAD;
    set_deadline(c, c->accept_ms + s->header_timeout_ms, DL_HEADER);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        qk_log(QK_LOG_WARN, "tls listener=%s: socketpair: %s", s->name, strerror(errno));
        conn_close(c);
        return;
    }
    int fl = fcntl(sv[0], F_GETFL);
    if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) != 0) {
        close(sv[0]);
        close(sv[1]);
        conn_close(c);
        return;
    }
    c->pair_fd = sv[0];
    c->mhd_fd = sv[1];
    c->gen = atomic_fetch_add(&s->next_gen, 1);
    if (id_put(s, c->mhd_fd, c->gen, id, c) != 0) {
        close(sv[1]);
        c->mhd_fd = -1;
        conn_close(c);
        return;
    }
    c->entry_live = true;
    qk_wipe(id, sizeof *id);
    if (ep_set(c->t, c->pair_fd, &c->pair_ep, &c->pair_mask, EPOLLIN, true) != 0) {
        close(sv[1]);
        conn_close(c);
        return;
    }
    c->pair_in_epoll = true;
    c->t->mhd_due = true;
    if (MHD_add_connection(c->t->mhd, c->mhd_fd, (const struct sockaddr *)&c->peer, c->peer_len) !=
        MHD_YES) {
        /* libmicrohttpd closed the fd already. */
        qk_log(QK_LOG_WARN, "tls listener=%s: libmicrohttpd refused the connection: %s", s->name,
               strerror(errno));
        conn_close(c);
        return;
    }
    /* Pitfall 6: a TLS 1.3 request may have arrived with the end of the handshake. */
    c->tcp_rd = c->pair_rd = true;
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
    if (kind == EP_PAIR && (events & (EPOLLHUP | EPOLLERR)))
        c->pair_hup = true;
    if (kind == EP_TCP && (events & EPOLLIN))
        c->tcp_rd = true;
    if (kind == EP_PAIR && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        c->pair_rd = true;
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
        c->pair_ep = (endpoint){c, EP_PAIR};
        c->tcp_fd = fd;
        c->pair_fd = c->mhd_fd = -1;
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
 * when no request is in flight and every byte libmicrohttpd wrote has gone out over TLS. */
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
        if (c->handshaking) {
            conn_close(c);
        } else if (c->out_len > 0) {
            flushed = false;
        } else if (c->pair_fd >= 0 && !c->mhd_eof) {
            int pending = 0;
            if (ioctl(c->pair_fd, FIONREAD, &pending) != 0 || pending > 0) {
                flushed = false;
                c->pair_rd = true;
                mark_ready(c); /* pump it even without an epoll event */
            }
        }
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

/* qk_http_front.wake: a worker resumed a connection of daemon d; its pump must run it. */
static void pump_wake(void *cls, struct MHD_Daemon *d)
{
    qk_tls_server *s = cls;
    for (unsigned i = 0; i < s->nthreads; i++) {
        pump_thread *t = &s->threads[i];
        if (t->mhd == d) {
            atomic_store(&t->resumed, true);
            if (atomic_load(&t->polling))
                thread_wake(t);
            return;
        }
    }
}

/* Let this thread's daemon do its work: read requests from the pairs, call the envelope
 * (and, for a resumed connection, send the reply a worker stored), write responses, time out
 * idle connections. Its answers reach the pump as EPOLLIN on the pairs. */
static void mhd_step(pump_thread *t)
{
    t->mhd_due = false;
    /* A resumed connection takes libmicrohttpd several runs (the stored reply, then the reset
     * for the next request), and it asks for them with a zero timeout: run it again at once,
     * a bounded number of times, instead of one more turn of our loop each (an epoll_wait of
     * ours that can only find nothing new). */
    for (int i = 0; i < MHD_RUNS_PER_STEP; i++) {
        if (MHD_run(t->mhd) != MHD_YES) {
            qk_log(QK_LOG_DEBUG, "tls listener=%s: MHD_run failed", t->srv->name);
            break;
        }
        MHD_UNSIGNED_LONG_LONG mt = 1;
        if (MHD_get_timeout(t->mhd, &mt) != MHD_YES || mt != 0)
            break;
    }
    qk_http_pool_kick(t->srv->pool); /* the requests this run queued */
}

/* The epoll_wait timeout: ours (deadlines, drain polling) or sooner if the daemon asks. */
static int loop_timeout(pump_thread *t)
{
    qk_tls_server *s = t->srv;
    int timeout = atomic_load(&s->draining) ? DRAIN_POLL_MS : 1000;
    if (t->ready || t->mhd_due)
        return 0;
    uint64_t now = now_ms();
    if (t->next_deadline_ms != UINT64_MAX) {
        uint64_t d = t->next_deadline_ms > now ? t->next_deadline_ms - now : 0;
        if (d < (uint64_t)timeout)
            timeout = (int)d;
    }
    MHD_UNSIGNED_LONG_LONG mt = 0;
    if (MHD_get_timeout(t->mhd, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)timeout)
        timeout = (int)mt;
    return timeout;
}

static void *pump_main(void *arg)
{
    pump_thread *t = arg;
    qk_tls_server *s = t->srv;
    struct epoll_event evs[MAX_EVENTS];
    qk_log_hold(true); /* request lines: one write per loop turn, flushed before each wait */
    while (!atomic_load(&s->stop)) {
        qk_log_flush();
        atomic_store(&t->polling, true);
        if (atomic_exchange(&t->resumed, false))
            t->mhd_due = true;
        int timeout = loop_timeout(t);
        int n = epoll_wait(t->epfd, evs, MAX_EVENTS, timeout);
        atomic_store(&t->polling, false);
        if (atomic_exchange(&t->resumed, false))
            t->mhd_due = true;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            qk_log(QK_LOG_ERROR, "tls listener=%s: epoll_wait: %s", s->name, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            endpoint *ep = evs[i].data.ptr;
            if (ep->kind == EP_LISTEN) {
                accept_batch(t);
            } else if (ep->kind == EP_WAKE) {
                uint64_t v;
                if (read(t->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    qk_log(QK_LOG_DEBUG, "tls: wake read: %s", strerror(errno));
            } else if (ep->kind == EP_MHD) {
                t->mhd_due = true; /* requests, responses or a resumed connection */
            } else {
                conn_event(ep->c, ep->kind, evs[i].events);
            }
        }
        conn *r = t->ready;
        t->ready = NULL;
        while (r) {
            conn *nx = r->ready_next;
            r->in_ready = false;
            if (!r->dead)
                conn_pump(r);
            r = nx;
        }
        /* Also at the daemon's own timeout (n == 0): idle connections. */
        if (t->mhd_due || n == 0)
            mhd_step(t);
        uint64_t now = now_ms();
        if (now >= t->next_deadline_ms)
            sweep_deadlines(t, now);
        if (atomic_load(&s->draining))
            drain_step(t);
        free_zombies(t);
    }
    mhd_step(t); /* connections the stopped pool resumed are suspended no more */
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

/* A pump thread's daemon: external mode (MHD_USE_EPOLL without an internal thread), no
 * listening socket, suspend/resume (with its inter-thread channel, so that a worker's
 * MHD_resume_connection wakes the daemon's epoll fd, which is in the pump's epoll set). */
static int start_thread_mhd(qk_tls_server *s, pump_thread *t, qk_err *err)
{
    unsigned flags =
        MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned mhd_limit = s->max_conn * 2 + 16; /* the real limit is ours, before handshakes */
    t->mhd = MHD_start_daemon(flags, 0, NULL, NULL, mhd_access, s, MHD_OPTION_EXTERNAL_LOGGER,
                              mhd_logger, s, MHD_OPTION_NOTIFY_CONNECTION, mhd_notify, s,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->idle_timeout_s,
                              MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_NOTIFY_COMPLETED,
                              mhd_request_completed, s, MHD_OPTION_END);
    if (!t->mhd)
        return qk_err_set(err, QK_EIO, "listener %s: libmicrohttpd did not start", s->name);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(t->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di || di->epoll_fd < 0)
        return qk_err_set(err, QK_EIO, "listener %s: libmicrohttpd has no epoll fd", s->name);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &t->mhd_ep};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, di->epoll_fd, &ev) != 0)
        return qk_err_set(err, QK_EIO, "epoll_ctl: %s", strerror(errno));
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
        t->mhd_ep = (endpoint){NULL, EP_MHD};
        t->next_deadline_ms = UINT64_MAX;
        atomic_init(&t->drained, false);
        atomic_init(&t->polling, false);
        atomic_init(&t->resumed, false);
        if (t->epfd < 0 || t->wake_fd < 0)
            return qk_err_set(err, QK_EIO, "epoll/eventfd: %s", strerror(errno));
        int rc = start_thread_mhd(s, t, err);
        if (rc != 0)
            return rc;
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &t->listen_ep};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &t->wake_ep};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) != 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &wev) != 0)
            return qk_err_set(err, QK_EIO, "epoll_ctl: %s", strerror(errno));
        t->listen_in_epoll = true;
        rc = pthread_create(&t->tid, NULL, pump_main, t);
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
    /* Pitfall 5: writes to closed sockets (SSL_write on TCP, the pair) must not kill us. */
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
    atomic_init(&s->next_gen, 1);
    pthread_mutex_init(&s->id_lock, NULL);

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
        s->front.wake = pump_wake;
        s->front.wake_cls = s;
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
            if (t->mhd)
                MHD_stop_daemon(t->mhd);
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
    id_clear_all(s);
    qk_budget_free(s->sources);
    qk_budget_free(s->identities);
    pthread_mutex_destroy(&s->id_lock);
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
