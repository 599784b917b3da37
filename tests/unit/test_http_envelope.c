/* test_http_envelope.c - the request envelope (common/http_envelope.h).
 *
 * Without a connection: every qk_http_reply_* helper, qk_http_reply_clear and
 * qk_http_handler_call (a reply left at status 0 becomes 500).
 *
 * Through real listeners (qk_tls_server, QK_TLS_MODE_NONE on 127.0.0.1, ephemeral ports, raw
 * sockets so that every byte of the request is under the test's control): a body of exactly
 * max_body reaches on_req intact, one byte more is answered by the envelope (413 with a JSON
 * {"message"} body, or the handler's too_large_status) and on_req is never called; the observer
 * sees every answered request once, with its status and listener name; repeated query
 * parameters are counted; the Allow and Cache-Control: no-store headers are sent; the request
 * log line carries the key IDs and the detail, never the key bytes.
 *
 * How these could pass by accident, and what prevents it: the over-limit requests go to a
 * handler that would answer 200 and count the call, so a missing check shows as a 200 and a
 * moved call counter; the at-limit body is a byte pattern holding NULs that on_req compares
 * byte for byte (an off-by-one limit, a truncated or a strlen-measured body fail); the
 * too_large_status listener uses the default limit (64 KiB), so both the default and the status
 * are checked; the observer's record is compared entry by entry against the requests sent. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http_envelope.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

/* ---- the reply helpers, without a connection --------------------------------------------- */

/* For string asserts on fields that a broken helper may leave NULL (strcmp would crash). */
static const char *str(const char *s)
{
    return s ? s : "(null)";
}

static bool reply_is_empty(const qk_http_reply *rep)
{
    qk_http_reply zero;
    memset(&zero, 0, sizeof zero);
    return memcmp(rep, &zero, sizeof zero) == 0;
}

static void test_reply_helpers(void)
{
    qk_http_reply rep;
    memset(&rep, 0, sizeof rep);

    char src[] = "{\"a\":1}";
    CU_ASSERT_EQUAL(qk_http_reply_json(&rep, 201, src), 0);
    CU_ASSERT_EQUAL(rep.status, 201);
    CU_ASSERT_STRING_EQUAL(str(rep.content_type), "application/json");
    CU_ASSERT_EQUAL(rep.len, strlen(src));
    CU_ASSERT_FALSE(rep.secret);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep.body);
    CU_ASSERT_PTR_NOT_EQUAL(rep.body, src); /* a copy */
    src[2] = 'X';
    CU_ASSERT_EQUAL(memcmp(rep.body, "{\"a\":1}", rep.len), 0);
    CU_ASSERT_EQUAL(qk_http_reply_json(&rep, 200, NULL), 0); /* replaces; NULL is {} */
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_EQUAL(rep.len, 2);
    CU_ASSERT_EQUAL(memcmp(rep.body, "{}", 2), 0);

    CU_ASSERT_EQUAL(qk_http_reply_message(&rep, 404, "no \"such\" path"), 0);
    CU_ASSERT_EQUAL(rep.status, 404);
    CU_ASSERT_STRING_EQUAL(str(rep.content_type), "application/json");
    CU_ASSERT_STRING_EQUAL(str(rep.body), "{\"message\":\"no \\\"such\\\" path\"}");
    CU_ASSERT_EQUAL(rep.len, strlen(rep.body));
    CU_ASSERT_STRING_EQUAL(rep.detail, "no \"such\" path");

    CU_ASSERT_EQUAL(qk_http_reply_error(&rep, 400, "bad_size", "size out of range"), 0);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(str(rep.body),
                           "{\"message\":\"size out of range\",\"reason\":\"bad_size\"}");
    CU_ASSERT_STRING_EQUAL(rep.detail, "size out of range");
    CU_ASSERT_EQUAL(qk_http_reply_error(&rep, 503, NULL, "busy"), 0);
    CU_ASSERT_STRING_EQUAL(str(rep.body), "{\"message\":\"busy\"}");

    CU_ASSERT_EQUAL(qk_http_reply_set(&rep, 204, "text/plain", NULL, 0), 0);
    CU_ASSERT_EQUAL(rep.status, 204);
    CU_ASSERT_PTR_NULL(rep.body);
    CU_ASSERT_PTR_NULL(rep.content_type); /* no body, no Content-Type */
    CU_ASSERT_EQUAL(rep.len, 0);
    CU_ASSERT_EQUAL(qk_http_reply_set(&rep, 200, "text/plain", "a\0b", 3), 0); /* binary-safe */
    CU_ASSERT_EQUAL(rep.len, 3);
    CU_ASSERT_EQUAL(memcmp(rep.body, "a\0b", 3), 0);

    char *owned = malloc(5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(owned);
    memcpy(owned, "hello", 5);
    qk_http_reply_take(&rep, 202, "application/octet-stream", owned, 5);
    CU_ASSERT_PTR_EQUAL(rep.body, owned); /* taken, not copied */
    CU_ASSERT_EQUAL(rep.len, 5);
    CU_ASSERT_STRING_EQUAL(str(rep.content_type), "application/octet-stream");
    CU_ASSERT_FALSE(rep.secret);

    const char key_json[] = "{\"key\":\"c2VjcmV0\"}";
    char *sec = qk_secure_alloc(sizeof key_json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    memcpy(sec, key_json, sizeof key_json);
    qk_http_reply_secret(&rep, 200, sec, strlen(key_json)); /* frees the taken body */
    CU_ASSERT_PTR_EQUAL(rep.body, sec);
    CU_ASSERT_TRUE(rep.secret);
    CU_ASSERT_STRING_EQUAL(str(rep.content_type), "application/json");
    CU_ASSERT_EQUAL(rep.len, strlen(key_json));
    CU_ASSERT_EQUAL(qk_http_reply_message(&rep, 500, "oops"), 0); /* frees the secret one */
    CU_ASSERT_FALSE(rep.secret);
    qk_http_reply_secret(&rep, 200, NULL, 10);
    CU_ASSERT_PTR_NULL(rep.body);
    CU_ASSERT_FALSE(rep.secret);
    CU_ASSERT_EQUAL(rep.len, 0);

    qk_http_reply_allow(&rep, "GET, POST");
    CU_ASSERT_STRING_EQUAL(rep.allow, "GET, POST");
    char longer[2 * QK_HTTP_ALLOW_MAX];
    memset(longer, 'A', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    qk_http_reply_allow(&rep, longer);
    CU_ASSERT_EQUAL(strlen(rep.allow), QK_HTTP_ALLOW_MAX - 1);
    qk_http_reply_allow(&rep, NULL);
    CU_ASSERT_STRING_EQUAL(rep.allow, "");

    qk_http_reply_detail(&rep, "key %d of %s", 3, "KME_B");
    CU_ASSERT_STRING_EQUAL(rep.detail, "key 3 of KME_B");
    char wide[2 * QK_HTTP_DETAIL_MAX];
    memset(wide, 'd', sizeof wide - 1);
    wide[sizeof wide - 1] = '\0';
    qk_http_reply_detail(&rep, "%s", wide);
    CU_ASSERT_EQUAL(strlen(rep.detail), QK_HTTP_DETAIL_MAX - 1);

    char *ids = strdup("id-1,id-2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
    qk_http_reply_key_ids(&rep, ids);
    CU_ASSERT_PTR_EQUAL(rep.key_ids, ids);
    char *ids2 = strdup("id-3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ids2);
    qk_http_reply_key_ids(&rep, ids2); /* frees the first list */
    CU_ASSERT_STRING_EQUAL(str(rep.key_ids), "id-3");
    qk_http_reply_clear(&rep);
}

static void test_reply_clear(void)
{
    qk_http_reply rep;
    memset(&rep, 0, sizeof rep);
    char *sec = qk_secure_alloc(16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    memcpy(sec, "{\"key\":\"AAAA\"}", 15);
    qk_http_reply_secret(&rep, 200, sec, 14);
    qk_http_reply_allow(&rep, "GET");
    qk_http_reply_detail(&rep, "two keys");
    char *ids = strdup("a,b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
    qk_http_reply_key_ids(&rep, ids);
    CU_ASSERT_FALSE(reply_is_empty(&rep));
    /* The secret body goes back through qk_secure_free (zeroed before release), the key IDs
     * are freed (a leak shows in the sanitizer build), and the reply is the start state. */
    qk_http_reply_clear(&rep);
    CU_ASSERT_TRUE(reply_is_empty(&rep));
    qk_http_reply_clear(&rep); /* twice is harmless */
    CU_ASSERT_TRUE(reply_is_empty(&rep));
    qk_http_reply_clear(NULL);

    CU_ASSERT_EQUAL(qk_http_reply_json(&rep, 200, "{\"x\":true}"), 0);
    qk_http_reply_clear(&rep);
    CU_ASSERT_TRUE(reply_is_empty(&rep));
}

typedef struct {
    qk_http_handler super;
    unsigned set_status; /* 0: leave the reply alone */
    unsigned calls;
    unsigned query_count; /* what the query helpers saw */
    bool query_value;
} call_handler;

static void call_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    call_handler *h = (call_handler *)self;
    h->calls++;
    h->query_count = qk_http_query_count(req, "a");
    h->query_value = qk_http_query(req, "a") != NULL;
    if (h->set_status)
        qk_http_reply_message(rep, h->set_status, "set by the handler");
}

static void test_handler_call(void)
{
    static const qk_peer_identity anon = {.kind = QK_ID_NONE};
    qk_http_request req = {.listener = "unit",
                           .method = "GET",
                           .path = "/x?a=1",
                           .caller = &anon,
                           .body = "",
                           .body_len = 0};
    call_handler h = {.super = {.on_req = call_on_req}, .set_status = 0};
    qk_http_reply rep;
    memset(&rep, 0xa5, sizeof rep); /* handler_call starts from a clean reply */
    qk_http_handler_call(&h.super, &req, &rep);
    CU_ASSERT_EQUAL(h.calls, 1);
    CU_ASSERT_EQUAL(rep.status, 500);
    CU_ASSERT_STRING_EQUAL(str(rep.content_type), "application/json");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep.body);
    CU_ASSERT_EQUAL(memcmp(rep.body, "{\"message\":\"internal error\"}", rep.len), 0);
    CU_ASSERT_EQUAL(rep.len, strlen("{\"message\":\"internal error\"}"));
    CU_ASSERT_NOT_EQUAL(rep.detail[0], '\0');
    CU_ASSERT_EQUAL(h.query_count, 0); /* no connection: the query helpers see nothing */
    CU_ASSERT_FALSE(h.query_value);
    qk_http_reply_clear(&rep);

    /* Statuses outside 100..599 are not sent either. */
    const unsigned bad[] = {99, 600, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h.set_status = bad[i];
        qk_http_handler_call(&h.super, &req, &rep);
        CU_ASSERT_EQUAL(rep.status, 500);
        CU_ASSERT_STRING_EQUAL(str(rep.content_type), "application/json");
        qk_http_reply_clear(&rep);
    }
    /* A reply the handler set passes unchanged. */
    h.set_status = 418;
    qk_http_handler_call(&h.super, &req, &rep);
    CU_ASSERT_EQUAL(rep.status, 418);
    CU_ASSERT_STRING_EQUAL(str(rep.body), "{\"message\":\"set by the handler\"}");
    CU_ASSERT_STRING_EQUAL(rep.detail, "set by the handler");
    qk_http_reply_clear(&rep);
    /* A handler without on_req: 500 as well. */
    qk_http_handler none = {0};
    qk_http_handler_call(&none, &req, &rep);
    CU_ASSERT_EQUAL(rep.status, 500);
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(h.calls, 1 + sizeof bad / sizeof bad[0] + 1);
}

/* ---- real listeners ------------------------------------------------------------------------ */

#define MAXB         1000u  /* the "envtest" listener's max_body */
#define DEFAULT_MAXB 65536u /* QK_HTTP_DEFAULT_MAX_BODY: the "strict" listener uses max_body 0 */
#define OBS_MAX      256
#define SECRET_B64   "c2VjcmV0"
#define BIG_BODY     (16u * 1024u * 1024u) /* more than loopback's socket buffers hold */

typedef struct {
    qk_http_handler super;
} env_handler;

/* What on_req and the observer saw (written from the listeners' threads). */
static struct {
    pthread_mutex_t mu;
    unsigned calls;    /* on_req calls, every listener */
    size_t body_len;   /* last /echo */
    bool body_same;    /* last /echo body equals the pattern of body_len bytes */
    bool body_nul;     /* ... and is NUL-terminated */
    char listener[32]; /* last request's listener */
    unsigned observed; /* observer calls */
    int obs_status[OBS_MAX];
    char obs_listener[OBS_MAX][32];
    double obs_latency[OBS_MAX];
} g_seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static qk_tls_server *g_srv, *g_strict;
static env_handler g_env, g_env_strict;
static uint16_t g_port, g_strict_port;
static qk_log_level g_saved_level;

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)((i * 7u + i / 256u) % 251u); /* holds NULs, no period of 256 */
}

static bool is_pattern(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != pattern_byte(i))
            return false;
    return true;
}

static void nap_ms(long ms);

static void env_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    (void)self;
    pthread_mutex_lock(&g_seen.mu);
    g_seen.calls++;
    snprintf(g_seen.listener, sizeof g_seen.listener, "%s", req->listener);
    if (strcmp(req->path, "/echo") == 0) {
        g_seen.body_len = req->body_len;
        g_seen.body_same = is_pattern(req->body, req->body_len);
        g_seen.body_nul = req->body[req->body_len] == '\0';
    }
    pthread_mutex_unlock(&g_seen.mu);

    if (strcmp(req->path, "/echo") == 0) {
        char j[64];
        snprintf(j, sizeof j, "{\"len\":%zu}", req->body_len);
        qk_http_reply_json(rep, 200, j);
    } else if (strcmp(req->path, "/count") == 0) {
        const char *a = qk_http_query(req, "a");
        const char *c = qk_http_query(req, "c");
        char j[160];
        snprintf(j, sizeof j,
                 "{\"a\":%u,\"b\":%u,\"ab\":%u,\"c\":%u,\"first_a\":\"%s\",\"c_null\":%s}",
                 qk_http_query_count(req, "a"), qk_http_query_count(req, "b"),
                 qk_http_query_count(req, "ab"), qk_http_query_count(req, "c"), a ? a : "",
                 c ? "false" : "true");
        qk_http_reply_json(rep, 200, j);
    } else if (strcmp(req->path, "/secret") == 0) {
        static const char body[] = "{\"key\":\"" SECRET_B64 "\"}";
        char *sec = qk_secure_alloc(sizeof body);
        char *ids = strdup("kid-1,kid-2");
        if (!sec || !ids) {
            qk_secure_free(sec);
            free(ids);
            qk_http_reply_message(rep, 500, "out of memory");
            return;
        }
        memcpy(sec, body, sizeof body);
        qk_http_reply_secret(rep, 200, sec, sizeof body - 1);
        qk_http_reply_key_ids(rep, ids);
        qk_http_reply_detail(rep, "two keys for the test");
    } else if (strcmp(req->path, "/allow") == 0) {
        qk_http_reply_message(rep, 405, "only GET and POST");
        qk_http_reply_allow(rep, "GET, POST");
    } else if (strcmp(req->path, "/big") == 0) {
        char *big = malloc(BIG_BODY);
        if (!big) {
            qk_http_reply_message(rep, 500, "out of memory");
            return;
        }
        memset(big, 'x', BIG_BODY);
        qk_http_reply_take(rep, 200, "application/octet-stream", big, BIG_BODY);
    } else if (strcmp(req->path, "/slow") == 0) {
        nap_ms(300); /* on a worker, its connection suspended */
        qk_http_reply_json(rep, 200, "{\"slow\":true}");
    } else if (strcmp(req->path, "/nothing") == 0) {
        /* no reply at all: the envelope answers 500 */
    } else {
        qk_http_reply_message(rep, 404, "no such path");
    }
}

static void env_observe(void *cls, const char *listener, int status, double latency_ms)
{
    (void)cls;
    pthread_mutex_lock(&g_seen.mu);
    if (g_seen.observed < OBS_MAX) {
        g_seen.obs_status[g_seen.observed] = status;
        snprintf(g_seen.obs_listener[g_seen.observed], sizeof g_seen.obs_listener[0], "%s",
                 listener ? listener : "(null)");
        g_seen.obs_latency[g_seen.observed] = latency_ms;
    }
    g_seen.observed++;
    pthread_mutex_unlock(&g_seen.mu);
}

static unsigned seen_calls(void)
{
    pthread_mutex_lock(&g_seen.mu);
    unsigned n = g_seen.calls;
    pthread_mutex_unlock(&g_seen.mu);
    return n;
}

static unsigned seen_observed(void)
{
    pthread_mutex_lock(&g_seen.mu);
    unsigned n = g_seen.observed;
    pthread_mutex_unlock(&g_seen.mu);
    return n;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The observer runs on the listener's thread once the reply is queued: wait (bounded) until
 * it has seen `want` requests, then a little longer so that a second call would show. */
static unsigned wait_observed(unsigned want)
{
    for (int i = 0; i < 200 && seen_observed() < want; i++)
        nap_ms(10);
    nap_ms(30);
    return seen_observed();
}

static int start_listener(const char *name, env_handler *h, unsigned too_large_status,
                          size_t max_body, qk_tls_server **srv, uint16_t *port)
{
    memset(h, 0, sizeof *h);
    h->super.on_req = env_on_req;
    h->super.too_large_status = too_large_status;
    h->super.observe = env_observe;
    qk_listener_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.bind_addr = "127.0.0.1";
    cfg.tls.mode = QK_TLS_MODE_NONE;
    cfg.handler = &h->super;
    cfg.max_body = max_body;
    cfg.idle_timeout_s = 10;
    qk_err err;
    qk_err_clear(&err);
    if (qk_tls_server_start(&cfg, srv, &err) != 0) {
        fprintf(stderr, "listener %s: %s\n", name, err.msg);
        return -1;
    }
    *port = qk_tls_server_port(*srv);
    return 0;
}

static int setup(void)
{
    g_saved_level = qk_log_get_level();
    qk_log_set_level(QK_LOG_WARN); /* no request line per test request in the test output */
    if (start_listener("envtest", &g_env, 0, MAXB, &g_srv, &g_port) != 0 ||
        start_listener("strict", &g_env_strict, 400, 0, &g_strict, &g_strict_port) != 0) {
        qk_tls_server_stop(g_srv);
        g_srv = NULL;
        qk_log_set_level(g_saved_level);
        return -1;
    }
    return 0;
}

static int teardown(void)
{
    qk_tls_server_stop(g_srv);
    qk_tls_server_stop(g_strict);
    g_srv = g_strict = NULL;
    qk_log_set_level(g_saved_level);
    return 0;
}

/* A response read off the socket. */
typedef struct {
    int status;
    char head[4096]; /* status line and headers, NUL-terminated */
    char body[4096]; /* NUL-terminated (the test bodies are text) */
    size_t body_len;
} raw_resp;

/* A TCP connection to 127.0.0.1:port with 5 s send and receive timeouts: *fd is the socket
 * (-1 when none could be made); 0 when connected, else -1 (close *fd anyway). */
static int connect_local(uint16_t port, int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    return connect(*fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -1;
}

/* Send head then body (len bytes; in chunks of `chunk` bytes with chunked transfer coding when
 * chunk > 0), read until the server closes. 0, or -1 on a socket error or a malformed answer. */
static int raw_request(uint16_t port, const char *head, const char *body, size_t len, size_t chunk,
                       raw_resp *out)
{
    memset(out, 0, sizeof *out);
    int fd = -1;
    int rc = connect_local(port, &fd);
    if (fd < 0)
        return -1;
    /* the pieces to send: head, then the body as is or as chunks */
    size_t off = 0;
    bool head_sent = false, last_sent = chunk == 0;
    while (rc == 0 && (!head_sent || off < len || !last_sent)) {
        char frame[64];
        const char *p;
        size_t n;
        if (!head_sent) {
            p = head, n = strlen(head), head_sent = true;
        } else if (chunk == 0) {
            p = body + off, n = len - off, off = len;
        } else if (off < len) {
            size_t c = len - off < chunk ? len - off : chunk;
            int h = snprintf(frame, sizeof frame, "%zx\r\n", c);
            if (h < 0 || send(fd, frame, (size_t)h, MSG_NOSIGNAL) != h ||
                send(fd, body + off, c, MSG_NOSIGNAL) != (ssize_t)c) {
                rc = -1;
                break;
            }
            off += c;
            p = "\r\n", n = 2;
        } else {
            p = "0\r\n\r\n", n = 5, last_sent = true;
        }
        while (rc == 0 && n > 0) {
            ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
            if (w <= 0)
                rc = -1;
            else
                p += w, n -= (size_t)w;
        }
    }
    static char buf[16384];
    size_t got = 0;
    while (rc == 0 && got + 1 < sizeof buf) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n < 0)
            rc = -1;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (rc != 0)
        return -1;
    buf[got] = '\0';
    const char *end = strstr(buf, "\r\n\r\n");
    if (!end || (size_t)(end - buf) >= sizeof out->head ||
        sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1)
        return -1;
    memcpy(out->head, buf, (size_t)(end - buf) + 2); /* keep the last header's CRLF */
    out->head[(end - buf) + 2] = '\0';
    out->body_len = got - (size_t)(end + 4 - buf);
    if (out->body_len >= sizeof out->body)
        return -1;
    memcpy(out->body, end + 4, out->body_len);
    out->body[out->body_len] = '\0';
    return 0;
}

/* The value of header `name` (case-insensitive name), or NULL. */
static const char *header(const raw_resp *r, const char *name, char *val, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *h = strcasestr(r->head, pat);
    if (!h)
        return NULL;
    h += strlen(pat);
    h += strspn(h, " ");
    size_t n = strcspn(h, "\r\n");
    snprintf(val, cap, "%.*s", (int)n, h);
    return val;
}

static int post(uint16_t port, const char *path, const char *body, size_t len, size_t chunk,
                raw_resp *out)
{
    char head[256];
    if (chunk)
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 path);
    else
        snprintf(head, sizeof head, "POST %s HTTP/1.0\r\nContent-Length: %zu\r\n\r\n", path, len);
    return raw_request(port, head, body, len, chunk, out);
}

static int get(uint16_t port, const char *target, raw_resp *out)
{
    char head[512];
    snprintf(head, sizeof head, "GET %s HTTP/1.0\r\n\r\n", target);
    return raw_request(port, head, NULL, 0, 0, out);
}

static char *pattern(size_t n)
{
    char *b = malloc(n ? n : 1);
    for (size_t i = 0; b && i < n; i++)
        b[i] = (char)pattern_byte(i);
    return b;
}

/* The reply to an oversized body: `status`, application/json, {"message": non-empty string}. */
static void assert_too_large(const raw_resp *r, int status)
{
    char v[128];
    CU_ASSERT_EQUAL(r->status, status);
    CU_ASSERT_PTR_NOT_NULL(header(r, "Content-Type", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, "application/json");
    qk_err err;
    cJSON *j = qk_json_parse(r->body, r->body_len, sizeof r->body, &err);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    CU_ASSERT_TRUE(cJSON_IsObject(j) && cJSON_IsString(m) && m->valuestring[0] != '\0');
    cJSON_Delete(j);
}

/* One POST /echo of n pattern bytes that must reach on_req whole. */
static void assert_reaches(uint16_t port, size_t n, size_t chunk)
{
    char *b = pattern(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pthread_mutex_lock(&g_seen.mu);
    g_seen.body_len = (size_t)-1;
    g_seen.body_same = g_seen.body_nul = false;
    pthread_mutex_unlock(&g_seen.mu);
    unsigned calls = seen_calls();
    raw_resp r;
    CU_ASSERT_EQUAL_FATAL(post(port, "/echo", b, n, chunk, &r), 0);
    free(b);
    char want[64];
    snprintf(want, sizeof want, "{\"len\":%zu}", n);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, want);
    CU_ASSERT_EQUAL(seen_calls(), calls + 1);
    pthread_mutex_lock(&g_seen.mu);
    CU_ASSERT_EQUAL(g_seen.body_len, n);
    CU_ASSERT_TRUE(g_seen.body_same);
    CU_ASSERT_TRUE(g_seen.body_nul);
    pthread_mutex_unlock(&g_seen.mu);
}

/* One POST /echo of n pattern bytes that the envelope must answer without calling on_req. */
static void assert_refused(uint16_t port, size_t n, size_t chunk, int status)
{
    char *b = pattern(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    unsigned calls = seen_calls();
    raw_resp r;
    CU_ASSERT_EQUAL_FATAL(post(port, "/echo", b, n, chunk, &r), 0);
    free(b);
    assert_too_large(&r, status);
    CU_ASSERT_EQUAL(seen_calls(), calls); /* on_req never saw it */
}

static void test_body_limit(void)
{
    assert_reaches(g_port, MAXB, 0); /* exactly max_body */
    assert_reaches(g_port, MAXB - 1, 0);
    assert_reaches(g_port, 0, 0);
    assert_refused(g_port, MAXB + 1, 0, 413); /* one byte more */
    assert_refused(g_port, 20 * MAXB, 0, 413);
    /* The same in pieces (chunked transfer coding): the limit holds across calls. */
    assert_reaches(g_port, MAXB, 97);
    assert_refused(g_port, MAXB + 1, 97, 413);
    assert_refused(g_port, MAXB + 1, MAXB + 1, 413);
    /* The listener still serves after refusals. */
    assert_reaches(g_port, MAXB, 0);
}

static void test_too_large_status(void)
{
    /* "strict": too_large_status 400, max_body 0 = the default limit */
    assert_reaches(g_strict_port, DEFAULT_MAXB, 0);
    assert_refused(g_strict_port, DEFAULT_MAXB + 1, 0, 400);
    assert_refused(g_strict_port, DEFAULT_MAXB + 1, 4096, 400);
    /* the other listener keeps its 413 */
    assert_refused(g_port, MAXB + 1, 0, 413);
}

static void test_observer(void)
{
    unsigned obs0 = wait_observed(seen_observed());
    static const struct {
        bool strict;
        const char *target;
        size_t post_len; /* 0: GET */
        int status;
    } seq[] = {
        {false, "/count?a=1", 0, 200},
        {false, "/nothing", 0, 500},
        {false, "/allow", 0, 405},
        {false, "/nope", 0, 404},
        {false, "/echo", MAXB + 1, 413},
        {true, "/count", 0, 200},
        {true, "/echo", DEFAULT_MAXB + 1, 400},
        {false, "/secret", 0, 200},
    };
    const size_t n = sizeof seq / sizeof seq[0];
    for (size_t i = 0; i < n; i++) {
        uint16_t port = seq[i].strict ? g_strict_port : g_port;
        raw_resp r;
        int rc;
        if (seq[i].post_len) {
            char *b = pattern(seq[i].post_len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
            rc = post(port, seq[i].target, b, seq[i].post_len, 0, &r);
            free(b);
        } else {
            rc = get(port, seq[i].target, &r);
        }
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(r.status, seq[i].status);
        /* one observation per request, before the next one starts */
        CU_ASSERT_EQUAL(wait_observed(obs0 + (unsigned)i + 1), obs0 + i + 1);
    }
    CU_ASSERT_EQUAL(wait_observed(obs0 + (unsigned)n), obs0 + n);
    CU_ASSERT_FATAL(obs0 + n <= OBS_MAX);
    pthread_mutex_lock(&g_seen.mu);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(g_seen.obs_status[obs0 + i], seq[i].status);
        CU_ASSERT_STRING_EQUAL(g_seen.obs_listener[obs0 + i], seq[i].strict ? "strict" : "envtest");
        CU_ASSERT_TRUE(g_seen.obs_latency[obs0 + i] >= 0.0 &&
                       g_seen.obs_latency[obs0 + i] < 5000.0);
    }
    pthread_mutex_unlock(&g_seen.mu);
    /* The 500 of a handler that set no reply is JSON too. */
    raw_resp r;
    CU_ASSERT_EQUAL_FATAL(get(g_port, "/nothing", &r), 0);
    CU_ASSERT_EQUAL(r.status, 500);
    CU_ASSERT_STRING_EQUAL(r.body, "{\"message\":\"internal error\"}");
}

static void test_query(void)
{
    raw_resp r;
    CU_ASSERT_EQUAL_FATAL(get(g_port, "/count?a=1&b=2&a=3&ab=4", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body,
                           "{\"a\":2,\"b\":1,\"ab\":1,\"c\":0,\"first_a\":\"1\",\"c_null\":true}");
    CU_ASSERT_EQUAL_FATAL(get(g_port, "/count?c=&c=x&c=y", &r), 0);
    CU_ASSERT_STRING_EQUAL(r.body,
                           "{\"a\":0,\"b\":0,\"ab\":0,\"c\":3,\"first_a\":\"\",\"c_null\":false}");
    CU_ASSERT_EQUAL_FATAL(get(g_port, "/count", &r), 0);
    CU_ASSERT_STRING_EQUAL(r.body,
                           "{\"a\":0,\"b\":0,\"ab\":0,\"c\":0,\"first_a\":\"\",\"c_null\":true}");
    pthread_mutex_lock(&g_seen.mu);
    CU_ASSERT_STRING_EQUAL(g_seen.listener, "envtest"); /* req->listener is the listener's name */
    pthread_mutex_unlock(&g_seen.mu);
}

static void test_headers(void)
{
    raw_resp r;
    char v[128];
    CU_ASSERT_EQUAL_FATAL(get(g_port, "/allow", &r), 0);
    CU_ASSERT_EQUAL(r.status, 405);
    CU_ASSERT_PTR_NOT_NULL(header(&r, "Allow", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, "GET, POST");
    CU_ASSERT_PTR_NOT_NULL(header(&r, "Content-Type", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, "application/json");
    CU_ASSERT_STRING_EQUAL(r.body, "{\"message\":\"only GET and POST\"}");
    CU_ASSERT_PTR_NULL(header(&r, "Cache-Control", v, sizeof v)); /* not a secret */

    CU_ASSERT_EQUAL_FATAL(get(g_port, "/secret", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(header(&r, "Cache-Control", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, "no-store");
    CU_ASSERT_PTR_NOT_NULL(header(&r, "Content-Type", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, "application/json");
    CU_ASSERT_STRING_EQUAL(r.body, "{\"key\":\"" SECRET_B64 "\"}");
    CU_ASSERT_PTR_NULL(header(&r, "Allow", v, sizeof v));

    CU_ASSERT_EQUAL_FATAL(get(g_port, "/count", &r), 0);
    CU_ASSERT_PTR_NULL(header(&r, "Cache-Control", v, sizeof v));
    CU_ASSERT_PTR_NULL(header(&r, "Allow", v, sizeof v));
}

/* The start of file p, NUL-terminated ("" when unreadable). */
static const char *read_text(const char *p, char *buf, size_t cap)
{
    FILE *f = fopen(p, "r");
    size_t len = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    return buf;
}

/* The one request line: listener, path, status, key IDs and detail; never the key bytes. */
static void test_log_line(void)
{
    char path[] = "/tmp/qk-envlog.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "unit-envelope"), 0);
    raw_resp r;
    int rc = get(g_port, "/secret", &r);
    char text[4096];
    /* The line is written once the reply is queued: wait for it (bounded), then a little
     * longer so that a second line would show. */
    for (int i = 0; i < 200 && !strchr(read_text(path, text, sizeof text), '\n'); i++)
        nap_ms(10);
    nap_ms(30);
    read_text(path, text, sizeof text);
    CU_ASSERT_EQUAL(qk_log_open(NULL, QK_LOG_WARN, NULL), 0); /* back to stderr */
    unlink(path);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(r.status, 200);
    unsigned lines = 0;
    for (const char *p = text; (p = strstr(p, "event=request")) != NULL; p++)
        lines++;
    CU_ASSERT_EQUAL(lines, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "listener=envtest"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "path=/secret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "status=200"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "kid-1,kid-2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "two keys for the test"));
    CU_ASSERT_PTR_NULL(strstr(text, SECRET_B64));
}

/* Send `req` as is and read everything until the server closes. Returns the length read, or
 * -1 on a socket error or when the server has not closed within 5 s. */
static long raw_text(uint16_t port, const char *req, size_t req_len, char *out, size_t cap)
{
    int fd = -1;
    int rc = connect_local(port, &fd);
    if (fd < 0)
        return -1;
    long got = -1;
    if (rc == 0 && send(fd, req, req_len, MSG_NOSIGNAL) == (ssize_t)req_len) {
        got = 0;
        for (;;) {
            ssize_t n = recv(fd, out + got, cap - 1 - (size_t)got, 0);
            if (n < 0)
                got = -1; /* error, or no close within the timeout */
            if (n <= 0 || got < 0 || (size_t)got + (size_t)n + 1 >= cap) {
                if (n > 0)
                    got += n;
                break;
            }
            got += n;
        }
    }
    close(fd);
    if (got >= 0)
        out[got] = '\0';
    return got;
}

static unsigned count_of(const char *text, const char *what)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* The front end's own HTTP/1.1 (common/http1.h): what it refuses before any handler, and how
 * it keeps or closes a connection. Every exchange below must end with the server closing the
 * connection (raw_text fails otherwise). */
static void test_http1_front(void)
{
    static char text[65536];
    static const struct {
        const char *req;
        const char *want; /* the status line (the answer's first line) */
    } refused[] = {
        {"GET /count HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "}, /* no Host (RFC 9112 3.2) */
        {"GET /count HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 "},
        {"GET /count HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /count HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         "HTTP/1.1 501 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         "HTTP/1.1 400 "}, /* both: request smuggling (RFC 9112 6.3) */
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "HTTP/1.1 400 "},
        {"GET /count?%00=1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
    };
    unsigned calls = seen_calls();
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        long n = raw_text(g_port, refused[i].req, strlen(refused[i].req), text, sizeof text);
        CU_ASSERT_TRUE(n > 0);
        if (n <= 0 || strncmp(text, refused[i].want, strlen(refused[i].want)) != 0)
            fprintf(stderr, "http1 front case %zu: got '%.40s'\n", i, n > 0 ? text : "");
        CU_ASSERT_EQUAL(strncmp(text, refused[i].want, strlen(refused[i].want)), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "Connection: close\r\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"message\":"));
    }
    CU_ASSERT_EQUAL(seen_calls(), calls); /* no handler saw any of them */

    /* A head longer than the front end keeps: 431, and the connection closes. */
    size_t big = QK_H1_HEAD_MAX + 100;
    char *h = malloc(big + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int off = snprintf(h, 64, "GET /count HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(h + off, 'a', big);
    memcpy(h + off + big, "\r\n\r\n", 4);
    long n = raw_text(g_port, h, (size_t)off + big + 4, text, sizeof text);
    free(h);
    CU_ASSERT_TRUE(n > 0 && strncmp(text, "HTTP/1.1 431 ", 13) == 0);

    /* Three requests in one write (pipelining), answered in order on one connection; the
     * last asks to close. A HEAD gets the GET's fields, Content-Length included, no body. */
    static const char piped[] = "GET /count?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                "HEAD /count?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                "Connection: close\r\n\r\nabc";
    n = raw_text(g_port, piped, sizeof piped - 1, text, sizeof text);
    CU_ASSERT_TRUE_FATAL(n > 0);
    CU_ASSERT_EQUAL(count_of(text, "HTTP/1.1 200 OK\r\n"), 3);
    const char *first = strstr(text, "\"first_a\":\"1\"");
    const char *third = strstr(text, "{\"len\":3}");
    CU_ASSERT_TRUE(first && third && first < third);
    CU_ASSERT_EQUAL(count_of(text, "\"first_a\""), 1); /* HEAD: no body */
    CU_ASSERT_EQUAL(count_of(text, "Date: "), 3);
    CU_ASSERT_EQUAL(count_of(text, "Connection: close\r\n"), 1);

    /* HTTP/1.0: closed after the answer unless it asks to be kept alive. */
    static const char ten[] = "GET /count HTTP/1.0\r\n\r\n";
    n = raw_text(g_port, ten, sizeof ten - 1, text, sizeof text);
    CU_ASSERT_TRUE(n > 0 && strncmp(text, "HTTP/1.1 200 ", 13) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "Connection: close\r\n"));
    static const char ten_ka[] = "GET /count HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                 "GET /count?a=2 HTTP/1.0\r\n\r\n";
    n = raw_text(g_port, ten_ka, sizeof ten_ka - 1, text, sizeof text);
    CU_ASSERT_TRUE(n > 0);
    CU_ASSERT_EQUAL(count_of(text, "HTTP/1.1 200 OK\r\n"), 2);
    CU_ASSERT_EQUAL(count_of(text, "Connection: keep-alive\r\n"), 1);

    /* Expect: 100-continue: the go-ahead, then the answer; too large: the answer at once,
     * without the go-ahead and without reading the body (the client sends none here). */
    static const char cont[] = "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                               "Content-Length: 2\r\nConnection: close\r\n\r\nhi";
    n = raw_text(g_port, cont, sizeof cont - 1, text, sizeof text);
    CU_ASSERT_TRUE(n > 0 && strncmp(text, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ", 38) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{\"len\":2}"));
    char too[160];
    snprintf(too, sizeof too,
             "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
             "Content-Length: %u\r\n\r\n",
             MAXB + 1);
    calls = seen_calls();
    n = raw_text(g_port, too, strlen(too), text, sizeof text);
    CU_ASSERT_TRUE(n > 0 && strncmp(text, "HTTP/1.1 413 ", 13) == 0);
    CU_ASSERT_PTR_NULL(strstr(text, "100 Continue"));
    CU_ASSERT_EQUAL(seen_calls(), calls);

    /* Absolute-form target and a query decoded ('+' is a space, %XX). */
    static const char absf[] = "GET http://x/count?a=b+c%21 HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n\r\n";
    n = raw_text(g_port, absf, sizeof absf - 1, text, sizeof text);
    CU_ASSERT_TRUE(n > 0 && strstr(text, "\"first_a\":\"b c!\"") != NULL);
}

/* A keep-alive connection with nothing to do is closed after idle_timeout (1 s here): the
 * answer arrives, then the close, between 0.5 and 4 s later. */
static void test_idle_timeout(void)
{
    env_handler h;
    qk_tls_server *srv = NULL;
    memset(&h, 0, sizeof h);
    h.super.on_req = env_on_req;
    qk_listener_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "idle";
    cfg.bind_addr = "127.0.0.1";
    cfg.tls.mode = QK_TLS_MODE_NONE;
    cfg.handler = &h.super;
    cfg.idle_timeout_s = 1;
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL_FATAL(qk_tls_server_start(&cfg, &srv, &err), 0);
    uint16_t port = qk_tls_server_port(srv);
    static const char req[] = "GET /count HTTP/1.1\r\nHost: x\r\n\r\n";
    static char text[4096];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = raw_text(port, req, sizeof req - 1, text, sizeof text);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s_waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CU_ASSERT_TRUE(n > 0 && strncmp(text, "HTTP/1.1 200 ", 13) == 0);
    CU_ASSERT_PTR_NULL(strstr(text, "Connection: close"));
    CU_ASSERT_TRUE(s_waited >= 0.5 && s_waited < 4.0);

    /* A client that reads nothing of a large answer: closed once nothing moved for the idle
     * timeout, so reading afterwards finds only what the socket buffers held. Without the
     * deadline the whole body would still arrive. */
    int fd = -1;
    CU_ASSERT_EQUAL(connect_local(port, &fd), 0);
    static const char big[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t total = 0;
    if (fd >= 0 && send(fd, big, sizeof big - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof big - 1)) {
        nap_ms(3000); /* the server's writes stall at once; its deadline passes after 1 s */
        for (;;) {
            ssize_t r = recv(fd, text, sizeof text, 0);
            if (r <= 0)
                break; /* end, reset, or the 5 s timeout */
            total += (size_t)r;
        }
    }
    if (fd >= 0)
        close(fd);
    qk_tls_server_stop(srv);
    CU_ASSERT_TRUE(total > 0 && total < BIG_BODY);
}

/* A client that goes away while its request is suspended on a worker: the handler still
 * runs once, the connection is freed only when the worker resumes it (the sanitizer build
 * catches a use after free), and the listener serves the next client. */
static void test_gone_while_suspended(void)
{
    unsigned calls = seen_calls();
    for (int i = 0; i < 3; i++) {
        int fd = -1;
        CU_ASSERT_EQUAL(connect_local(g_port, &fd), 0);
        static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
        if (fd >= 0) {
            CU_ASSERT_EQUAL(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
            nap_ms(50); /* the request reaches the worker */
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* close with a reset */
            close(fd);
        }
    }
    for (int i = 0; i < 100 && seen_calls() < calls + 3; i++)
        nap_ms(10);
    CU_ASSERT_EQUAL(seen_calls(), calls + 3);
    nap_ms(400); /* every worker has finished and resumed its connection */
    raw_resp r;
    CU_ASSERT_EQUAL_FATAL(get(g_port, "/count?a=7", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"first_a\":\"7\""));
}

/* The worker pool's bounds are checked before any thread starts; a started pool stops twice
 * (the listener stops it, then frees it) and frees. Its queueing, suspension and 503 are
 * tested through TLS listeners in tests/integration/tls_front_end.sh. */
static void test_pool_bounds(void)
{
    qk_http_pool *p = (qk_http_pool *)&p; /* must be reset to NULL on failure */
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(qk_http_pool_start("t", 0, 1, &p, &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_http_pool_start("t", 1025, 1, &p, &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_http_pool_start("t", 1, 0, &p, &err), 0);
    CU_ASSERT_NOT_EQUAL(qk_http_pool_start("t", 1, 65537, &p, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "worker pool"));
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(qk_http_pool_start("t", 2, 8, &p, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(p);
    qk_http_pool_stop(p);
    qk_http_pool_stop(p);
    qk_http_pool_free(p);
    qk_http_pool_free(NULL);
}

int suite_http_envelope(void)
{
    CU_pSuite s = CU_add_suite("http_envelope", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "reply helpers", test_reply_helpers) ||
        !CU_add_test(s, "reply clear", test_reply_clear) ||
        !CU_add_test(s, "handler_call: no reply is 500", test_handler_call) ||
        !CU_add_test(s, "max_body: at the limit in, one byte more 413", test_body_limit) ||
        !CU_add_test(s, "too_large_status and the default limit", test_too_large_status) ||
        !CU_add_test(s, "observer once per request", test_observer) ||
        !CU_add_test(s, "query helpers", test_query) ||
        !CU_add_test(s, "Allow and Cache-Control headers", test_headers) ||
        !CU_add_test(s, "the request log line", test_log_line) ||
        !CU_add_test(s, "worker pool bounds", test_pool_bounds) ||
        !CU_add_test(s, "HTTP/1.1 at the front end", test_http1_front) ||
        !CU_add_test(s, "idle keep-alive closed after idle_timeout", test_idle_timeout) ||
        !CU_add_test(s, "a client gone while its request is suspended", test_gone_while_suspended))
        return -1;
    return 0;
}
