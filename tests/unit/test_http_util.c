/* test_http_util.c - the envelope's building blocks: the upload protocol, the clocks, and the
 * query count and plain replies through a real libmicrohttpd daemon on 127.0.0.1 (ephemeral
 * port). The envelope's own replies are tested in test_http_envelope.c. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http_util.h"

static void test_collect_protocol(void)
{
    void *cls = NULL;
    qk_req *r = NULL;
    size_t sz = 0;
    /* first call: allocation only */
    CU_ASSERT_EQUAL_FATAL(qk_req_collect(&cls, 16, NULL, &sz, &r), QK_REQ_MORE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_EQUAL(cls, r);
    CU_ASSERT_EQUAL(r->body_len, 0);
    CU_ASSERT_STRING_EQUAL(r->body, "");
    CU_ASSERT(r->t_start_ms > 0);
    sz = 5;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 16, "hello", &sz, &r), QK_REQ_MORE);
    CU_ASSERT_EQUAL(sz, 0); /* consumed */
    sz = 6;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 16, " world", &sz, &r), QK_REQ_MORE);
    CU_ASSERT_EQUAL(sz, 0);
    sz = 0;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 16, NULL, &sz, &r), QK_REQ_DONE);
    CU_ASSERT_EQUAL(r->body_len, 11);
    CU_ASSERT_STRING_EQUAL(r->body, "hello world");
    CU_ASSERT_FALSE(r->too_large);
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    CU_ASSERT_PTR_NULL(cls);
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK); /* no-op */

    /* exceeding max_body sets too_large and keeps the bytes already accepted */
    sz = 0;
    CU_ASSERT_EQUAL_FATAL(qk_req_collect(&cls, 8, NULL, &sz, &r), QK_REQ_MORE);
    sz = 5;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, "hello", &sz, &r), QK_REQ_MORE);
    sz = 6;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, " world", &sz, &r), QK_REQ_MORE);
    CU_ASSERT_EQUAL(sz, 0);
    CU_ASSERT(r->too_large);
    sz = 1;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, "x", &sz, &r), QK_REQ_MORE);
    sz = 0;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, NULL, &sz, &r), QK_REQ_DONE);
    CU_ASSERT(r->too_large);
    CU_ASSERT_EQUAL(r->body_len, 5);
    CU_ASSERT_STRING_EQUAL(r->body, "hello");
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);

    /* growth across many chunks up to exactly max_body */
    enum { MAXB = 100000, CHUNK = 100 };
    char chunk[CHUNK];
    sz = 0;
    CU_ASSERT_EQUAL_FATAL(qk_req_collect(&cls, MAXB, NULL, &sz, &r), QK_REQ_MORE);
    for (int i = 0; i < MAXB / CHUNK; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        sz = CHUNK;
        CU_ASSERT_EQUAL(qk_req_collect(&cls, MAXB, chunk, &sz, &r), QK_REQ_MORE);
    }
    CU_ASSERT_EQUAL(r->body_len, MAXB);
    CU_ASSERT_FALSE(r->too_large);
    CU_ASSERT_EQUAL(strlen(r->body), MAXB);
    int same = 1;
    for (int i = 0; i < MAXB; i++)
        if (r->body[i] != 'a' + (i / CHUNK) % 26)
            same = 0;
    CU_ASSERT(same);
    sz = 1;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, MAXB, "z", &sz, &r), QK_REQ_MORE);
    CU_ASSERT(r->too_large);
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);

    CU_ASSERT_EQUAL(qk_req_collect(NULL, 8, NULL, &sz, &r), QK_REQ_ERROR);
}

static void test_clocks(void)
{
    double a = qk_now_ms();
    usleep(20000);
    double b = qk_now_ms();
    CU_ASSERT(b - a >= 15.0);
    CU_ASSERT(b - a < 5000.0);
    CU_ASSERT(qk_now_s() > 1600000000ULL);
}

/* ---- a real daemon ------------------------------------------------------------------------ */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    qk_req *r;
    int st = qk_req_collect(con_cls, 32, upload_data, upload_data_size, &r);
    if (st == QK_REQ_MORE)
        return MHD_YES;
    if (st == QK_REQ_ERROR)
        return MHD_NO;
    if (strcmp(url, "/count") == 0) {
        char j[64];
        snprintf(j, sizeof j, "{\"a\":%u,\"b\":%u}", qk_query_count(c, "a"),
                 qk_query_count(c, "b"));
        return qk_reply(c, 200, "application/json", j, strlen(j), NULL, NULL);
    }
    if (strcmp(url, "/echo") == 0) {
        if (r->too_large)
            return qk_reply(c, 413, "text/plain", "too large", 9, NULL, NULL);
        return qk_reply(c, 200, "text/plain", r->body, r->body_len, "X-Test", "yes");
    }
    return qk_reply(c, 404, NULL, NULL, 0, NULL, NULL);
}

static struct MHD_Daemon *start_daemon(uint16_t *port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, qk_req_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!d)
        return NULL;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        MHD_stop_daemon(d);
        return NULL;
    }
    *port = info->port;
    return d;
}

/* Send a raw request, read the whole response (HTTP/1.0: the server closes). */
static int http_raw(uint16_t port, const char *req, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    while (got + 1 < cap) {
        ssize_t n = read(fd, resp + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    resp[got] = '\0';
    close(fd);
    return (int)got;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static void test_daemon_replies(void)
{
    uint16_t port = 0;
    struct MHD_Daemon *d = start_daemon(&port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    char resp[4096];

    CU_ASSERT(http_raw(port, "GET /count?a=1&b=2&a=3&ab=4 HTTP/1.0\r\n\r\n", resp, sizeof resp) >
              0);
    CU_ASSERT_EQUAL(
        strncmp(resp, "HTTP/1.0 200", 12) == 0 || strncmp(resp, "HTTP/1.1 200", 12) == 0, 1);
    CU_ASSERT_PTR_NOT_NULL(strcasestr(resp, "Content-Type: application/json"));
    CU_ASSERT_STRING_EQUAL(body_of(resp), "{\"a\":2,\"b\":1}");

    CU_ASSERT(http_raw(port, "GET /count HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    CU_ASSERT_STRING_EQUAL(body_of(resp), "{\"a\":0,\"b\":0}");

    CU_ASSERT(http_raw(port, "GET /nope HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, " 404 "));
    CU_ASSERT_PTR_NULL(strcasestr(resp, "Content-Type:"));
    CU_ASSERT_STRING_EQUAL(body_of(resp), "");

    CU_ASSERT(http_raw(port, "POST /echo HTTP/1.0\r\nContent-Length: 11\r\n\r\nhello world", resp,
                       sizeof resp) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, " 200 "));
    CU_ASSERT_PTR_NOT_NULL(strcasestr(resp, "X-Test: yes"));
    CU_ASSERT_STRING_EQUAL(body_of(resp), "hello world");

    char big[256];
    snprintf(big, sizeof big, "POST /echo HTTP/1.0\r\nContent-Length: 40\r\n\r\n%s",
             "0123456789012345678901234567890123456789");
    CU_ASSERT(http_raw(port, big, resp, sizeof resp) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, " 413 "));
    MHD_stop_daemon(d);
}

int suite_http_util(void)
{
    CU_pSuite s = CU_add_suite("http_util", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "upload protocol", test_collect_protocol) ||
        !CU_add_test(s, "clocks", test_clocks) ||
        !CU_add_test(s, "query count and replies through libmicrohttpd", test_daemon_replies))
        return -1;
    return 0;
}
