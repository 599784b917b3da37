/* test_dash.c - qkd-dash's reading of the Prometheus text format (dashboard/dash_prom.c) and
 * its handler's routes that need no lab (dashboard/dash_http.c). */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "dash.h"
#include "dash_http.h"

static const char *const METRICS =
    "# HELP qkd_pool_bytes Uncarved key material.\n"
    "# TYPE qkd_pool_bytes gauge\n"
    "qkd_pool_bytes{link=\"local\"} 0\n"
    "qkd_pool_bytes{link=\"KME_A~KME_B\"} 4096\n"
    "qkd_pool_bytes{link=\"XKME_A~KME_B\"} 999\n"
    "qkd_pool_bytes_total{link=\"KME_A~KME_B\"} 7\n"
    "qkd_blocks{link=\"KME_A~KME_B\",state=\"burned\"} 2\n"
    "qkd_blocks{link=\"KME_A~KME_B\",state=\"confirmed\"} 5\n"
    "qkd_blocks{xlink=\"KME_A~KME_B\",state=\"burned\"} 100\n"
    "qkd_requests_total{listener=\"etsi014\",status=\"200\"} 10\n"
    "qkd_requests_total{listener=\"etsi014\",status=\"503\"} 3\n"
    "qkd_requests_total{listener=\"odd\",status=\"a \\\"quoted\\\" } value\"} 1\n"
    "qkd_peer_errors_total 4\n"
    "qkd_broken{link=\"unterminated 9\n"
    "qkd_nonumber{link=\"x\"} abc\n"
    "qkd_last 1.5e3";

static void test_prom_sum(void)
{
    const char *link[] = {"link=\"KME_A~KME_B\"", NULL};
    const char *burned[] = {"link=\"KME_A~KME_B\"", "state=\"burned\"", NULL};
    const char *none[] = {"link=\"nope\"", NULL};
    /* Labels are parsed and compared whole: XKME_A~KME_B and xlink= do not match. */
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_pool_bytes", link), 4096);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_pool_bytes", NULL), 4096 + 999);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_blocks", burned), 2);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_blocks", link), 7);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_pool_bytes", none), -1);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_peer_errors_total", NULL), 4);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_requests_total", NULL), 14);
    /* A line without a newline at the end of the text, malformed lines skipped. */
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_last", NULL), 1500);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_broken", NULL), -1);
    CU_ASSERT_EQUAL(dash_prom_sum(METRICS, "qkd_nonumber", NULL), -1);
    CU_ASSERT_EQUAL(dash_prom_sum("", "qkd_last", NULL), -1);
}

static void test_prom_label(void)
{
    const char *l = "listener=\"odd\",status=\"a \\\"quoted\\\" } value\"";
    char out[64];
    CU_ASSERT_EQUAL(dash_prom_label(l, strlen(l), "status", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "a \"quoted\" } value");
    CU_ASSERT_EQUAL(dash_prom_label(l, strlen(l), "listener", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "odd");
    CU_ASSERT_EQUAL(dash_prom_label(l, strlen(l), "list", out, sizeof out), -1);
    CU_ASSERT_EQUAL(dash_prom_label(l, strlen(l), "status", out, 5), -1); /* too long */
    const char *bad = "link=unquoted";
    CU_ASSERT_EQUAL(dash_prom_label(bad, strlen(bad), "link", out, sizeof out), -1);
}

/* A request with no connection (qk_http_handler_call): no headers, so a fault is refused. */
static void call(dash_handler *h, const char *method, const char *path, const char *body,
                 qk_http_reply *rep)
{
    qk_peer_identity none;
    memset(&none, 0, sizeof none);
    qk_http_request req = {.listener = "dashboard",
                           .method = method,
                           .path = path,
                           .caller = &none,
                           .body = body,
                           .body_len = strlen(body)};
    memset(rep, 0, sizeof *rep);
    qk_http_handler_call(&h->super, &req, rep);
}

static void test_routes(void)
{
    dash_state *st = calloc(1, sizeof *st);
    dash_handler h;
    CU_ASSERT_FATAL(st != NULL);
    pthread_mutex_init(&st->mu, NULL);
    snprintf(st->links[0].id, sizeof st->links[0].id, "AB");
    st->nlinks = 1;
    dash_handler_configure(&h, st, NULL);
    qk_http_reply rep;
    call(&h, "GET", "/", "", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.content_type, "text/html; charset=utf-8");
    CU_ASSERT(rep.len > 100 && memmem(rep.body, rep.len, "/app.js", 7) != NULL);
    qk_http_reply_clear(&rep);
    call(&h, "GET", "/app.js", "", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    call(&h, "GET", "/api/state", "", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT(rep.body && strstr(rep.body, "\"links\":[{\"id\":\"AB\"") != NULL);
    qk_http_reply_clear(&rep);
    static const struct {
        const char *method, *path, *body;
        unsigned status;
    } refused[] = {
        {"GET", "/nothing", "", 404},
        {"POST", "/api/state", "", 405},
        {"POST", "/api/links/XY/fault", "{\"fault\":\"down\"}", 404},
        {"GET", "/api/links/AB/fault", "", 405},
        /* Without Content-Type: application/json (no connection, so no header): refused. */
        {"POST", "/api/links/AB/fault", "{\"fault\":\"down\"}", 403},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        call(&h, refused[i].method, refused[i].path, refused[i].body, &rep);
        CU_ASSERT_EQUAL(rep.status, refused[i].status);
        qk_http_reply_clear(&rep);
    }
    pthread_mutex_destroy(&st->mu);
    free(st);
}

int suite_dash(void)
{
    CU_pSuite s = CU_add_suite("dash", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "Prometheus samples summed by parsed labels", test_prom_sum) ||
        !CU_add_test(s, "Prometheus label values, escapes and bounds", test_prom_label) ||
        !CU_add_test(s, "routes: page, state, 404, 405, fault refused", test_routes))
        return -1;
    return 0;
}
