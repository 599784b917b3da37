/* test_http_inline.c - inline_first handlers (common/http_envelope.h, common/qk_inline.h) on a
 * real TLS listener (PSK on 127.0.0.1): a handler runs inline on the pump; one that would block
 * runs again from the start on a worker and only the worker's reply is sent; a reply that
 * recorded a barrier is held until the barrier completes (and replaced by a 500 when it fails);
 * a barrier already complete answers at once; a request waiting for an event runs again inline
 * when it happens (told when it timed out instead); a listener stops cleanly while a reply
 * waits; kicks (qk_inline_kick) wait for the pump turn's end and run once. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "log.h"
#include "qk_inline.h"
#include "secbuf.h"
#include "tls_server.h"

static const uint8_t KEY[32] = {7,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static qk_psk_table g_psks;
static qk_psk_entry g_entry;
static qk_log_level g_saved_level;

#define HOLD_MS 300

/* ---- a fake barrier owner: queues one waiter; a thread completes it HOLD_MS later ---------- */

static struct {
    pthread_mutex_t mu;
    qk_inline_waiter *w;
    int result; /* what the completion passes: 0 or an error */
    int answer; /* what the await returns: 0 (queue), 1 (durable), <0 (failed) */
    unsigned awaited;
    uint64_t sync_seq; /* what the last await's waiter carried */
} g_bar = {.mu = PTHREAD_MUTEX_INITIALIZER};
static int g_owner;

static int fake_await(void *owner, uint64_t seq, qk_inline_waiter *w)
{
    if (owner != &g_owner || seq != 7)
        return -1;
    pthread_mutex_lock(&g_bar.mu);
    g_bar.awaited++;
    g_bar.sync_seq = w->sync_seq;
    int a = g_bar.answer;
    if (a == 0)
        g_bar.w = w;
    pthread_mutex_unlock(&g_bar.mu);
    return a;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *completer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 400; i++) { /* wait (bounded) for the waiter, then hold it */
        pthread_mutex_lock(&g_bar.mu);
        bool have = g_bar.w != NULL;
        pthread_mutex_unlock(&g_bar.mu);
        if (have)
            break;
        nap_ms(5);
    }
    nap_ms(HOLD_MS);
    pthread_mutex_lock(&g_bar.mu);
    qk_inline_waiter *w = g_bar.w;
    g_bar.w = NULL;
    int r = g_bar.result;
    pthread_mutex_unlock(&g_bar.mu);
    if (w)
        w->done(w, r);
    return NULL;
}

/* ---- kicks (qk_inline_kick): counted ------------------------------------------------------ */

static atomic_uint g_kicks, g_kicks2;

static void count_kick(void *arg)
{
    atomic_fetch_add((atomic_uint *)arg, 1);
}

/* ---- the handler -------------------------------------------------------------------------- */

static atomic_uint g_inline_calls, g_worker_calls;

static void on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    (void)self;
    bool inl = qk_inline_current() != NULL;
    atomic_fetch_add(inl ? &g_inline_calls : &g_worker_calls, 1);
    if (strcmp(req->path, "/where") == 0) {
        qk_http_reply_set(rep, 200, "text/plain", inl ? "inline" : "worker", inl ? 6 : 6);
    } else if (strcmp(req->path, "/block") == 0) {
        if (qk_inline_must_defer()) {
            qk_http_reply_set(rep, 418, "text/plain", "never sent", 10);
            return;
        }
        qk_http_reply_set(rep, 200, "text/plain", inl ? "inline" : "worker", 6);
    } else if (strcmp(req->path, "/held") == 0) {
        /* number 7 done, number 5 durable too: the waiter carries both */
        bool rec = qk_inline_barrier(fake_await, &g_owner, 5, true) &&
                   qk_inline_barrier(fake_await, &g_owner, 7, false);
        static const char body[] = "{\"key\":\"c2VjcmV0\"}";
        char *sec = qk_secure_alloc(sizeof body);
        if (!sec) {
            qk_http_reply_message(rep, 500, "out of memory");
            return;
        }
        memcpy(sec, body, sizeof body);
        qk_http_reply_secret(rep, 200, sec, sizeof body - 1);
        if (!rec)
            qk_http_reply_detail(rep, "no barrier recorded");
    } else if (strcmp(req->path, "/event") == 0) {
        /* First run: wait for the fake event (the reply set here is dropped). Rerun: say how
         * the wait ended (the deadline it carries: a past one after a timeout). */
        double dl = qk_inline_rerun_deadline();
        if (dl == 0 && qk_inline_wait_event(fake_await, &g_owner, 7, 1e12)) {
            qk_http_reply_set(rep, 418, "text/plain", "never sent", 10);
            return;
        }
        const char *what = !inl ? "worker" : dl == 1e12 ? "rerun" : dl > 0 ? "late" : "first";
        qk_http_reply_set(rep, 200, "text/plain", what, strlen(what));
    } else if (strcmp(req->path, "/kick") == 0) {
        /* two kicks of one function and argument: deferred to the turn's end, run once */
        qk_inline_kick(count_kick, &g_kicks);
        qk_inline_kick(count_kick, &g_kicks);
        char seen[16];
        snprintf(seen, sizeof seen, "%u", atomic_load(&g_kicks));
        qk_http_reply_set(rep, 200, "text/plain", seen, strlen(seen));
    } else {
        qk_http_reply_message(rep, 404, "no such path");
    }
}

static qk_http_handler g_handler = {.on_req = on_req, .inline_first = true};

static int start(qk_tls_server **srv, uint16_t *port)
{
    qk_listener_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "inline";
    cfg.bind_addr = "127.0.0.1";
    cfg.tls.mode = QK_TLS_MODE_PSK;
    cfg.tls.psks = &g_psks;
    cfg.handler = &g_handler;
    cfg.handshake_timeout_ms = 2000;
    qk_err err;
    qk_err_clear(&err);
    if (qk_tls_server_start(&cfg, srv, &err) != 0) {
        fprintf(stderr, "server: %s\n", err.msg);
        return -1;
    }
    *port = qk_tls_server_port(*srv);
    return 0;
}

static int setup(void)
{
    g_saved_level = qk_log_get_level();
    qk_log_set_level(QK_LOG_WARN);
    if (qk_http_global_init() != 0)
        return -1;
    snprintf(g_entry.identity, sizeof g_entry.identity, "%s", "sae");
    g_entry.key = qk_secure_alloc(sizeof KEY);
    if (!g_entry.key)
        return -1;
    memcpy(g_entry.key, KEY, sizeof KEY);
    g_entry.key_len = sizeof KEY;
    g_entry.hash = QK_PSK_SHA384;
    g_psks.entries = &g_entry;
    g_psks.n = 1;
    return 0;
}

static int teardown(void)
{
    qk_secure_free(g_entry.key);
    g_entry.key = NULL;
    qk_http_global_cleanup();
    qk_log_set_level(g_saved_level);
    return 0;
}

static qk_http_client *client(void)
{
    qk_http_tls t;
    memset(&t, 0, sizeof t);
    t.psk_identity = "sae";
    t.psk = KEY;
    t.psk_len = sizeof KEY;
    t.timeout_ms = 5000;
    qk_err err;
    return qk_http_client_new(&t, &err);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int get(qk_http_client *c, uint16_t port, const char *path, qk_http_response *r)
{
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%u%s", (unsigned)port, path);
    qk_err err;
    return qk_http_call(c, "GET", url, NULL, 0, NULL, r, &err);
}

static void reset(int answer, int result)
{
    pthread_mutex_lock(&g_bar.mu);
    g_bar.w = NULL;
    g_bar.answer = answer;
    g_bar.result = result;
    g_bar.awaited = 0;
    pthread_mutex_unlock(&g_bar.mu);
    atomic_store(&g_inline_calls, 0);
    atomic_store(&g_worker_calls, 0);
}

/* GET path (the fake barrier's await answering `answer`, its completion `result`; for the
 * paths that wait, a thread completes the queued waiter HOLD_MS after it is queued) and check the
 * answer: status, body (NULL: not checked), handler calls inline and on a worker. Returns the time
 * taken in ms. */
static double expect(qk_http_client *c, uint16_t port, const char *path, int answer, int result,
                     unsigned status, const char *body, unsigned inl, unsigned wrk)
{
    reset(answer, result);
    pthread_t th;
    bool queues = answer == 0 && (strcmp(path, "/held") == 0 || strcmp(path, "/event") == 0);
    if (queues)
        CU_ASSERT_FATAL(pthread_create(&th, NULL, completer, NULL) == 0);
    qk_http_response r;
    double t0 = now_ms();
    CU_ASSERT_EQUAL_FATAL(get(c, port, path, &r), 0);
    double dt = now_ms() - t0;
    if (queues)
        CU_ASSERT(pthread_join(th, NULL) == 0);
    CU_ASSERT_EQUAL(r.status, status);
    if (body)
        CU_ASSERT_STRING_EQUAL(r.body ? r.body : "", body);
    CU_ASSERT_PTR_NULL(strstr(r.body ? r.body : "", status == 200 ? "never sent" : "c2VjcmV0"));
    CU_ASSERT_EQUAL(atomic_load(&g_inline_calls), inl);
    CU_ASSERT_EQUAL(atomic_load(&g_worker_calls), wrk);
    qk_http_response_free(&r);
    return dt;
}

static void test_inline_and_deferred(void)
{
    qk_tls_server *srv = NULL;
    uint16_t port = 0;
    CU_ASSERT_FATAL(start(&srv, &port) == 0);
    qk_http_client *c = client();
    CU_ASSERT_FATAL(c != NULL);
    static const char key[] = "{\"key\":\"c2VjcmV0\"}";
    /* Inline on the pump: one call, answered from there. */
    CU_ASSERT(expect(c, port, "/where", 0, 0, 200, "inline", 1, 0) < HOLD_MS);
    /* Would block: the inline reply (418) is dropped, the worker's is sent. */
    expect(c, port, "/block", 0, 0, 200, "worker", 1, 1);
    /* A barrier: the reply waits until it completes (awaited once). */
    CU_ASSERT(expect(c, port, "/held", 0, 0, 200, key, 1, 0) >= HOLD_MS - 20);
    CU_ASSERT_EQUAL(g_bar.awaited, 1);
    CU_ASSERT_EQUAL(g_bar.sync_seq, 5);
    /* A failed barrier: 500, and the held body (key bytes) never leaves. */
    expect(c, port, "/held", 0, QK_ESTORAGE, 500, NULL, 1, 0);
    /* Already durable: answered at once, nothing queued. */
    CU_ASSERT(expect(c, port, "/held", 1, 0, 200, key, 1, 0) < HOLD_MS);
    CU_ASSERT_PTR_NULL(g_bar.w);
    /* The owner refuses at once (its state is lost): 500 as well. */
    expect(c, port, "/held", QK_ESTORAGE, 0, 500, NULL, 1, 0);
    /* An event wait: held until the event, then the handler runs again, inline. */
    CU_ASSERT(expect(c, port, "/event", 0, 0, 200, "rerun", 2, 0) >= HOLD_MS - 20);
    /* Completed with a timeout: the rerun is told its wait is over (a past deadline). */
    expect(c, port, "/event", 0, QK_ETIMEOUT, 200, "late", 2, 0);
    /* The event already happened (await answers 1): rerun at once. */
    CU_ASSERT(expect(c, port, "/event", 1, 0, 200, "rerun", 2, 0) < HOLD_MS);
    qk_http_client_free(c);
    qk_tls_server_stop(srv);
}

/* A stop while a reply waits for its barrier waits for it (the front end frees a suspended
 * connection only once it is resumed) and the client still gets the reply. */
static qk_http_response g_stop_resp;
static int g_stop_rc = -99;
static uint16_t g_stop_port;

static void *stop_client(void *arg)
{
    (void)arg;
    qk_http_client *c = client();
    if (!c)
        return NULL;
    g_stop_rc = get(c, g_stop_port, "/held", &g_stop_resp);
    qk_http_client_free(c);
    return NULL;
}

static void test_stop_while_held(void)
{
    qk_tls_server *srv = NULL;
    CU_ASSERT_FATAL(start(&srv, &g_stop_port) == 0);
    reset(0, 0);
    pthread_t cl, co;
    CU_ASSERT_FATAL(pthread_create(&cl, NULL, stop_client, NULL) == 0);
    for (int i = 0; i < 400; i++) { /* until the reply is held */
        pthread_mutex_lock(&g_bar.mu);
        bool have = g_bar.w != NULL;
        pthread_mutex_unlock(&g_bar.mu);
        if (have)
            break;
        nap_ms(5);
    }
    CU_ASSERT_FATAL(g_bar.w != NULL);
    CU_ASSERT_FATAL(pthread_create(&co, NULL, completer, NULL) == 0);
    qk_tls_server_stop(srv); /* returns once the held reply went out */
    CU_ASSERT(pthread_join(co, NULL) == 0);
    CU_ASSERT(pthread_join(cl, NULL) == 0);
    CU_ASSERT_EQUAL(g_stop_rc, 0);
    CU_ASSERT_EQUAL(g_stop_resp.status, 200);
    qk_http_response_free(&g_stop_resp);
}

/* Outside a turn a kick runs at once. Inside one it waits for the turn's end and runs once
 * per function and argument; past QK_INLINE_KICKS distinct ones pending, a new one runs at
 * once. On the pump a handler's kicks run after it returned, once. */
static void test_kicks(void)
{
    atomic_store(&g_kicks, 0);
    atomic_store(&g_kicks2, 0);
    qk_inline_kick(count_kick, &g_kicks);
    CU_ASSERT_EQUAL(atomic_load(&g_kicks), 1);
    atomic_uint other[QK_INLINE_KICKS];
    for (size_t i = 0; i < QK_INLINE_KICKS; i++)
        atomic_store(&other[i], 0);
    qk_inline_turn_begin();
    qk_inline_kick(count_kick, &g_kicks);
    qk_inline_kick(count_kick, &g_kicks);
    CU_ASSERT_EQUAL(atomic_load(&g_kicks), 1); /* pending */
    for (size_t i = 0; i + 1 < QK_INLINE_KICKS; i++)
        qk_inline_kick(count_kick, &other[i]);
    qk_inline_kick(count_kick, &g_kicks2); /* no room: at once */
    CU_ASSERT_EQUAL(atomic_load(&g_kicks2), 1);
    CU_ASSERT_EQUAL(atomic_load(&other[0]), 0);
    qk_inline_turn_end();
    CU_ASSERT_EQUAL(atomic_load(&g_kicks), 2);
    for (size_t i = 0; i + 1 < QK_INLINE_KICKS; i++)
        CU_ASSERT_EQUAL(atomic_load(&other[i]), 1);
    CU_ASSERT_EQUAL(atomic_load(&g_kicks2), 1);
    qk_inline_turn_end(); /* nothing pending: runs nothing */
    CU_ASSERT_EQUAL(atomic_load(&g_kicks), 2);

    /* on the pump */
    qk_tls_server *srv = NULL;
    uint16_t port = 0;
    CU_ASSERT_FATAL(start(&srv, &port) == 0);
    qk_http_client *c = client();
    CU_ASSERT_FATAL(c != NULL);
    atomic_store(&g_kicks, 0);
    qk_http_response r;
    CU_ASSERT_EQUAL_FATAL(get(c, port, "/kick", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body ? r.body : "", "0"); /* none ran inside the handler */
    qk_http_response_free(&r);
    for (int i = 0; i < 400 && atomic_load(&g_kicks) == 0; i++)
        nap_ms(5);
    nap_ms(20);
    CU_ASSERT_EQUAL(atomic_load(&g_kicks), 1); /* once, at the turn's end */
    qk_http_client_free(c);
    qk_tls_server_stop(srv);
}

int suite_http_inline(void)
{
    CU_pSuite s = CU_add_suite("http_inline", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "inline, would block, held by a barrier", test_inline_and_deferred) ||
        !CU_add_test(s, "a stop waits for a held reply", test_stop_while_held) ||
        !CU_add_test(s, "kicks run once, at the turn's end", test_kicks))
        return -1;
    return 0;
}
