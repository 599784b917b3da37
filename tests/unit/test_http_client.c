/* test_http_client.c - qk_http_client against an in-process qk_tls_server (PSK mode on
 * 127.0.0.1, ephemeral port): TLS 1.3 and 1.2 PSK, SHA-256 binding, keep-alive, wrong key and
 * unknown identity (QK_ETLS), response limit (QK_ELIMIT), timeout (QK_ETIMEOUT), refused
 * connection (QK_EIO), POST bodies, Content-Type and Allow capture. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "http_client.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

static qk_tls_server *g_srv;
static qk_psk_table g_psks;
static qk_psk_entry g_entries[2];
static uint16_t g_port;
static const uint8_t KEY_A[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_B[16] = {9, 9, 9, 9, 8, 8, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6};

static void on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    (void)self;
    if (strcmp(req->path, "/sleep") == 0) {
        struct timespec ts = {1, 500000000L};
        nanosleep(&ts, NULL);
    }
    if (strcmp(req->path, "/big") == 0) {
        size_t n = 65536;
        char *b = malloc(n);
        if (!b) {
            qk_http_reply_message(rep, 500, "out of memory");
            return;
        }
        memset(b, 'x', n);
        qk_http_reply_take(rep, 200, "application/octet-stream", b, n);
        return;
    }
    if (strcmp(req->path, "/allow") == 0) {
        qk_http_reply_set(rep, 405, "text/plain", "no", 2);
        qk_http_reply_allow(rep, "GET, POST");
        return;
    }
    const qk_peer_identity *id = req->caller;
    qk_tls_server_stats ss;
    qk_tls_server_get_stats(g_srv, &ss);
    char body[512];
    int n = snprintf(
        body, sizeof body, "id=%s method=%s body=%zu version=%s cipher=%s accepted=%llu", id->id,
        req->method, req->body_len, id->tls_version, id->cipher, (unsigned long long)ss.accepted);
    if (n < 0 || (size_t)n >= sizeof body)
        qk_http_reply_message(rep, 500, "reply too long");
    else
        qk_http_reply_set(rep, 200, "text/plain; charset=utf-8", body, (size_t)n);
}

static qk_http_handler g_handler = {.on_req = on_req};

static qk_log_level g_saved_level;

static int setup(void)
{
    g_saved_level = qk_log_get_level();
    qk_log_set_level(QK_LOG_WARN); /* no request line per test request in the test output */
    if (qk_http_global_init() != 0)
        return -1;
    const struct {
        const char *id;
        const uint8_t *key;
        size_t len;
        qk_psk_hash h;
    } def[2] = {{"alpha", KEY_A, sizeof KEY_A, QK_PSK_SHA384},
                {"beta", KEY_B, sizeof KEY_B, QK_PSK_SHA256}};
    for (int i = 0; i < 2; i++) {
        snprintf(g_entries[i].identity, sizeof g_entries[i].identity, "%s", def[i].id);
        g_entries[i].key = qk_secure_alloc(def[i].len);
        if (!g_entries[i].key)
            return -1;
        memcpy(g_entries[i].key, def[i].key, def[i].len);
        g_entries[i].key_len = def[i].len;
        g_entries[i].hash = def[i].h;
    }
    g_psks.entries = g_entries;
    g_psks.n = 2;
    qk_listener_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "unit";
    cfg.bind_addr = "127.0.0.1";
    cfg.tls.mode = QK_TLS_MODE_PSK;
    cfg.tls.psks = &g_psks;
    cfg.handler = &g_handler;
    cfg.max_body = 1024 * 1024; /* test_post uploads 300000 bytes */
    cfg.handshake_timeout_ms = 2000;
    qk_err err;
    qk_err_clear(&err);
    if (qk_tls_server_start(&cfg, &g_srv, &err) != 0) {
        fprintf(stderr, "server: %s\n", err.msg);
        return -1;
    }
    g_port = qk_tls_server_port(g_srv);
    return 0;
}

static int teardown(void)
{
    qk_tls_server_stop(g_srv);
    g_srv = NULL;
    for (int i = 0; i < 2; i++)
        qk_secure_free(g_entries[i].key);
    qk_http_global_cleanup();
    qk_log_set_level(g_saved_level);
    return 0;
}

static qk_http_client *client(const char *id, const uint8_t *key, size_t len, int sha256, int maxv)
{
    qk_http_tls t;
    memset(&t, 0, sizeof t);
    t.psk_identity = id;
    t.psk = key;
    t.psk_len = len;
    t.psk_sha256 = sha256;
    t.max_version = maxv;
    t.timeout_ms = 5000;
    qk_err err;
    qk_http_client *c = qk_http_client_new(&t, &err);
    CU_ASSERT_PTR_NOT_NULL(c);
    return c;
}

static int get(qk_http_client *c, const char *path, qk_http_response *r, qk_err *err)
{
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%u%s", (unsigned)g_port, path);
    return qk_http_call(c, "GET", url, NULL, 0, NULL, r, err);
}

static void test_tls13_keepalive(void)
{
    qk_http_client *c = client("alpha", KEY_A, sizeof KEY_A, 0, 0);
    if (!c)
        return;
    qk_http_response r1, r2;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(get(c, "/one", &r1, &err), 0);
    CU_ASSERT_EQUAL(r1.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r1.body, "id=alpha "));
    CU_ASSERT_PTR_NOT_NULL(strstr(r1.body, "cipher=TLS_AES_256_GCM_SHA384"));
    CU_ASSERT_STRING_EQUAL(r1.content_type, "text/plain; charset=utf-8");
    CU_ASSERT_EQUAL(r1.body_len, strlen(r1.body));
    CU_ASSERT_EQUAL_FATAL(get(c, "/two", &r2, &err), 0);
    /* Same connection: the server's accepted counter did not move. */
    const char *a1 = strstr(r1.body, "accepted="), *a2 = strstr(r2.body, "accepted=");
    CU_ASSERT_TRUE(a1 && a2 && strcmp(a1, a2) == 0);
    qk_http_response_free(&r1);
    qk_http_response_free(&r2);
    CU_ASSERT_PTR_NULL(r1.body);
    qk_http_client_free(c);
}

static void test_tls12_and_sha256(void)
{
    qk_http_client *c = client("alpha", KEY_A, sizeof KEY_A, 0, TLS1_2_VERSION);
    qk_http_response r;
    qk_err err;
    if (c) {
        CU_ASSERT_EQUAL(get(c, "/v12", &r, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "version=TLSv1.2"));
        qk_http_response_free(&r);
        qk_http_client_free(c);
    }
    c = client("beta", KEY_B, sizeof KEY_B, 1, 0);
    if (c) {
        CU_ASSERT_EQUAL(get(c, "/s256", &r, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "id=beta "));
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "cipher=TLS_AES_128_GCM_SHA256"));
        qk_http_response_free(&r);
        qk_http_client_free(c);
    }
}

static void test_refusals(void)
{
    uint8_t wrong[32];
    memcpy(wrong, KEY_A, sizeof wrong);
    wrong[0] ^= 1;
    qk_http_response r;
    qk_err err;
    qk_http_client *c = client("alpha", wrong, sizeof wrong, 0, 0);
    if (c) {
        CU_ASSERT_EQUAL(get(c, "/x", &r, &err), QK_ETLS);
        CU_ASSERT_PTR_NULL(r.body);
        qk_http_client_free(c);
    }
    c = client("alpha", wrong, sizeof wrong, 0, TLS1_2_VERSION);
    if (c) {
        CU_ASSERT_EQUAL(get(c, "/x", &r, &err), QK_ETLS);
        qk_http_client_free(c);
    }
    c = client("nobody", KEY_A, sizeof KEY_A, 0, 0);
    if (c) {
        CU_ASSERT_EQUAL(get(c, "/x", &r, &err), QK_ETLS);
        qk_http_client_free(c);
    }
    /* SHA-384 entry, client binds SHA-256: refused. */
    c = client("alpha", KEY_A, sizeof KEY_A, 1, 0);
    if (c) {
        CU_ASSERT_EQUAL(get(c, "/x", &r, &err), QK_ETLS);
        qk_http_client_free(c);
    }
}

static void test_limits_and_errors(void)
{
    qk_http_tls t;
    memset(&t, 0, sizeof t);
    t.psk_identity = "alpha";
    t.psk = KEY_A;
    t.psk_len = sizeof KEY_A;
    t.max_response = 1000;
    t.timeout_ms = 400;
    qk_err err;
    qk_http_client *c = qk_http_client_new(&t, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    qk_http_response r;
    CU_ASSERT_EQUAL(get(c, "/big", &r, &err), QK_ELIMIT);
    CU_ASSERT_PTR_NULL(r.body);
    CU_ASSERT_EQUAL(get(c, "/sleep", &r, &err), QK_ETIMEOUT);
    CU_ASSERT_EQUAL(get(c, "/allow", &r, &err), 0);
    CU_ASSERT_EQUAL(r.status, 405);
    CU_ASSERT_STRING_EQUAL(r.allow, "GET, POST");
    qk_http_response_free(&r);
    CU_ASSERT_EQUAL(qk_http_call(c, "GET", "https://127.0.0.1:1/x", NULL, 0, NULL, &r, &err),
                    QK_EIO);
    CU_ASSERT_EQUAL(qk_http_call(c, "GET", NULL, NULL, 0, NULL, &r, &err), QK_EINVAL);
    qk_http_client_free(c);
    t.psk_len = QK_PSK_MAX + 1;
    CU_ASSERT_PTR_NULL(qk_http_client_new(&t, &err));
}

static void test_post(void)
{
    qk_http_client *c = client("alpha", KEY_A, sizeof KEY_A, 0, 0);
    if (!c)
        return;
    size_t n = 300000;
    char *body = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    memset(body, 'a', n);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/post", (unsigned)g_port);
    qk_http_response r;
    qk_err err;
    CU_ASSERT_EQUAL(qk_http_call(c, "POST", url, body, n, hdrs, &r, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "method=POST body=300000 "));
    qk_http_response_free(&r);
    CU_ASSERT_EQUAL(qk_http_call(c, "PUT", url, body, 10, hdrs, &r, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "method=PUT body=10 "));
    qk_http_response_free(&r);
    CU_ASSERT_EQUAL(qk_http_call(c, "DELETE", url, NULL, 0, NULL, &r, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "method=DELETE body=0 "));
    qk_http_response_free(&r);
    free(body);
    qk_http_client_free(c);
}

int suite_http_client(void)
{
    CU_pSuite s = CU_add_suite("http_client", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "TLS 1.3 PSK keep-alive", test_tls13_keepalive) ||
        !CU_add_test(s, "TLS 1.2 PSK and SHA-256 binding", test_tls12_and_sha256) ||
        !CU_add_test(s, "refusals are QK_ETLS", test_refusals) ||
        !CU_add_test(s, "limits, timeout, headers, errors", test_limits_and_errors) ||
        !CU_add_test(s, "POST/PUT/DELETE bodies", test_post))
        return -1;
    return 0;
}
