/* test_device_feed.c - the device feed's pure parsers (device/device_parse.c): paths, block
 * IDs, block sizes, telemetry; and the answers of the device and admin handlers that need no
 * core (paths refused before a link lookup, unknown admin paths, bad methods). */
#include <CUnit/CUnit.h>
#include <string.h>

#include "admin.h"
#include "device_api.h"
#include "device_parse.h"

#define P QK_DEVICE_PREFIX

static void test_path_routes(void)
{
    qk_device_path p;
    CU_ASSERT_EQUAL(qk_device_parse_path(P "A~B/blocks/42", &p), 0);
    CU_ASSERT_EQUAL(p.route, QK_DEVICE_ROUTE_BLOCK);
    CU_ASSERT_STRING_EQUAL(p.link_id, "A~B");
    CU_ASSERT_EQUAL(p.block_id, 42);
    CU_ASSERT_EQUAL(qk_device_parse_path(P "link-1.x_y/telemetry", &p), 0);
    CU_ASSERT_EQUAL(p.route, QK_DEVICE_ROUTE_TELEMETRY);
    CU_ASSERT_STRING_EQUAL(p.link_id, "link-1.x_y");
    CU_ASSERT_EQUAL(qk_device_parse_path(P "L/blocks/9007199254740991", &p), 0);
    CU_ASSERT_EQUAL(p.block_id, 9007199254740991ull);
}

static void expect_none(const char *path, const char *msg, const char *link)
{
    qk_device_path p;
    CU_ASSERT_EQUAL(qk_device_parse_path(path, &p), QK_EINVAL);
    CU_ASSERT_EQUAL(p.route, QK_DEVICE_ROUTE_NONE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.error);
    CU_ASSERT_STRING_EQUAL(p.error, msg);
    CU_ASSERT_STRING_EQUAL(p.link_id, link);
}

static void test_path_refused(void)
{
    /* no link segment at all */
    expect_none("/device/v1/links", QK_DEVICE_MSG_UNKNOWN_PATH, "");
    expect_none(P, QK_DEVICE_MSG_UNKNOWN_PATH, "");
    expect_none(P "L", QK_DEVICE_MSG_UNKNOWN_PATH, "");
    expect_none(P "/telemetry", QK_DEVICE_MSG_UNKNOWN_PATH, "");
    expect_none("/device/v2/links/L/telemetry", QK_DEVICE_MSG_UNKNOWN_PATH, "");
    expect_none("", QK_DEVICE_MSG_UNKNOWN_PATH, "");
    expect_none(NULL, QK_DEVICE_MSG_UNKNOWN_PATH, "");
    /* a link segment of QK_STORE_ID_MAX characters is a link ID; one more is not */
    char path[sizeof P + QK_STORE_ID_MAX + 16];
    char id[QK_STORE_ID_MAX + 2];
    memset(id, 'a', QK_STORE_ID_MAX);
    id[QK_STORE_ID_MAX] = '\0';
    snprintf(path, sizeof path, P "%s/telemetry", id);
    qk_device_path p;
    CU_ASSERT_EQUAL(qk_device_parse_path(path, &p), 0);
    CU_ASSERT_EQUAL(strlen(p.link_id), QK_STORE_ID_MAX);
    strcat(id, "a");
    snprintf(path, sizeof path, P "%s/telemetry", id);
    expect_none(path, QK_DEVICE_MSG_UNKNOWN_PATH, "");
    /* characters no configured link ID can hold */
    expect_none(P "a b/telemetry", QK_DEVICE_MSG_UNKNOWN_LINK, "");
    expect_none(P "a\x01/telemetry", QK_DEVICE_MSG_UNKNOWN_LINK, "");
    expect_none(P "a\xc3\xa9/telemetry", QK_DEVICE_MSG_UNKNOWN_LINK, "");
    /* a well-formed link, then no resource: the link is kept for the 404/403 order */
    expect_none(P "L/blocks/", QK_DEVICE_MSG_BAD_BLOCK_ID, "L");
    expect_none(P "L/blocks/9007199254740992", QK_DEVICE_MSG_BAD_BLOCK_ID, "L");
    expect_none(P "L/blocks/-1", QK_DEVICE_MSG_BAD_BLOCK_ID, "L");
    expect_none(P "L/blocks/1/x", QK_DEVICE_MSG_BAD_BLOCK_ID, "L");
    expect_none(P "L/telemetry/", QK_DEVICE_MSG_UNKNOWN_PATH, "L");
    expect_none(P "L/blocks", QK_DEVICE_MSG_UNKNOWN_PATH, "L");
    expect_none(P "L/keys", QK_DEVICE_MSG_UNKNOWN_PATH, "L");
}

static void test_block_id(void)
{
    uint64_t v = 0;
    CU_ASSERT_EQUAL(qk_device_parse_block_id("0", &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("007", &v), 0); /* leading zeros, as ever */
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("00000000000000000001", &v), 0); /* 20 digits */
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("000000000000000000001", &v), -1); /* 21 */
    CU_ASSERT_EQUAL(qk_device_parse_block_id("9007199254740991", &v), 0);
    CU_ASSERT_EQUAL(v, QK_DEVICE_BLOCK_ID_MAX);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("9007199254740992", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("18446744073709551616", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("99999999999999999999", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("+1", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id(" 1", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("1 ", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id("0x10", &v), -1);
    CU_ASSERT_EQUAL(qk_device_parse_block_id(NULL, &v), -1);
}

static void test_block_size(void)
{
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_device_check_block(0, &err), QK_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "block must be 33 bytes .. 4 MiB");
    CU_ASSERT_EQUAL(qk_device_check_block(QK_BLOCK_VKEY_LEN, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_device_check_block(QK_BLOCK_VKEY_LEN + 1, &err), 0);
    CU_ASSERT_EQUAL(qk_device_check_block(QK_BLOCK_MAX_BYTES, &err), 0);
    CU_ASSERT_EQUAL(qk_device_check_block(QK_BLOCK_MAX_BYTES + 1, &err), QK_EINVAL);
}

static int tele(const char *json, qk_device_telemetry *t, qk_err *err)
{
    qk_err_clear(err);
    return qk_device_parse_telemetry(json, strlen(json), t, err);
}

static void test_telemetry_ok(void)
{
    qk_device_telemetry t;
    qk_err err;
    CU_ASSERT_EQUAL(tele("{\"state\":\"up\",\"qber\":0.021,\"rate_bps\":1234.5,"
                         "\"delivered_bits\":4096,\"vendor\":{\"x\":1}}",
                         &t, &err),
                    0);
    CU_ASSERT_STRING_EQUAL(t.state, "up");
    CU_ASSERT(t.has_qber && t.has_rate && t.has_bits);
    CU_ASSERT_DOUBLE_EQUAL(t.qber, 0.021, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(t.rate_bps, 1234.5, 1e-9);
    CU_ASSERT_EQUAL(t.delivered_bits, 4096);
    CU_ASSERT_EQUAL(tele("{\"state\":\"down\"}", &t, &err), 0);
    CU_ASSERT(!t.has_qber && !t.has_rate && !t.has_bits);
    /* bounds: qber 0 and 1, rate 0, 31 state characters, the printable edges */
    CU_ASSERT_EQUAL(tele("{\"state\":\"!~\",\"qber\":1,\"rate_bps\":0}", &t, &err), 0);
    CU_ASSERT_EQUAL(tele("{\"state\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"qber\":0}", &t, &err),
                    0);
    CU_ASSERT_EQUAL(strlen(t.state), QK_DEVICE_STATE_MAX);
    /* the body need not be NUL-terminated */
    const char raw[] = "{\"state\":\"up\"}XXXX";
    CU_ASSERT_EQUAL(qk_device_parse_telemetry(raw, sizeof raw - 5, &t, &err), 0);
}

static void expect_tele_error(const char *json, const char *msg)
{
    qk_device_telemetry t;
    qk_err err;
    CU_ASSERT_EQUAL(tele(json, &t, &err), QK_EINVAL);
    CU_ASSERT(err.msg[0] != '\0');
    if (msg)
        CU_ASSERT_STRING_EQUAL(err.msg, msg);
    CU_ASSERT_EQUAL(t.state[0], '\0');
}

static void test_telemetry_refused(void)
{
    const char *range = "qber must be a number in [0, 1], rate_bps a number >= 0";
    const char *state = "state: 1..31 printable characters";
    expect_tele_error("", "empty JSON body");
    expect_tele_error("[]", "not an object");
    expect_tele_error("\"up\"", "not an object");
    expect_tele_error("{}", NULL);
    expect_tele_error("{\"state\":1}", NULL);
    expect_tele_error("{\"state\":\"\"}", state);
    expect_tele_error("{\"state\":\"a b\"}", state);
    expect_tele_error("{\"state\":\"a\\u0001\"}", state);
    /* a NUL escape would cut "up\0x" to "up" (issue 17 item 5) */
    expect_tele_error("{\"state\":\"up\\u0000x\"}", NULL);
    expect_tele_error("{\"state\":\"a\\u007f\"}", state);
    expect_tele_error("{\"state\":\"\\u00e9\"}", state);
    expect_tele_error("{\"state\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", state); /* 32 */
    expect_tele_error("{\"state\":\"up\",\"qber\":1.0001}", range);
    expect_tele_error("{\"state\":\"up\",\"qber\":-0.1}", range);
    expect_tele_error("{\"state\":\"up\",\"qber\":\"0.1\"}", range);
    expect_tele_error("{\"state\":\"up\",\"qber\":null}", range);
    expect_tele_error("{\"state\":\"up\",\"rate_bps\":1e15}", range);
    expect_tele_error("{\"state\":\"up\",\"rate_bps\":1e999}", range);
    expect_tele_error("{\"state\":\"up\",\"delivered_bits\":-1}", NULL);
    expect_tele_error("{\"state\":\"up\",\"delivered_bits\":1.5}", NULL);
    expect_tele_error("{\"state\":\"up\"} x", NULL);
    /* a NUL inside the body */
    qk_device_telemetry t;
    qk_err err;
    CU_ASSERT_EQUAL(qk_device_parse_telemetry("{\"state\":\"up\"}\0", 15, &t, &err), QK_EINVAL);
    /* validated before parsed: too large, too deep */
    char big[QK_DEVICE_TELEMETRY_MAX + 2];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "{\"state\":\"up\"}", 14);
    CU_ASSERT_EQUAL(qk_device_parse_telemetry(big, QK_DEVICE_TELEMETRY_MAX, &t, &err), 0);
    CU_ASSERT_EQUAL(qk_device_parse_telemetry(big, QK_DEVICE_TELEMETRY_MAX + 1, &t, &err),
                    QK_EINVAL);
    char deep[200];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    expect_tele_error(deep, NULL);
}

/* ---- handlers: the answers that need no core ------------------------------------------ */

static const qk_peer_identity nobody = {.kind = QK_ID_NONE};

static void call(qk_http_handler *h, const char *method, const char *path, qk_http_reply *rep)
{
    qk_http_request req = {.listener = "test",
                           .method = method,
                           .path = path,
                           .caller = &nobody,
                           .body = "",
                           .body_len = 0};
    qk_http_handler_call(h, &req, rep);
}

static void test_device_handler_paths(void)
{
    qk_device_api_handler h;
    qk_device_api_configure(&h, NULL); /* these paths never reach the core */
    CU_ASSERT_PTR_EQUAL((void *)&h, (void *)&h.super);
    const char *paths[] = {"/", "/device/v1/links/", "/device/v1/links//telemetry",
                           "/device/v1/links/a b/telemetry", "/metrics"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        qk_http_reply rep;
        call(&h.super, "PUT", paths[i], &rep);
        CU_ASSERT_EQUAL(rep.status, 404);
        CU_ASSERT_STRING_EQUAL(rep.content_type, "application/json");
        CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "\"reason\":\"not-found\""));
        CU_ASSERT_EQUAL(rep.allow[0], '\0');
        qk_http_reply_clear(&rep);
    }
}

static void test_admin_handler(void)
{
    qk_admin_handler h;
    qk_admin_configure(&h, NULL); /* /healthz and the refusals never reach the core */
    qk_http_reply rep;
    call(&h.super, "GET", "/healthz", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_EQUAL(rep.len, 3);
    CU_ASSERT(rep.body && memcmp(rep.body, "ok\n", 3) == 0);
    CU_ASSERT_STRING_EQUAL(rep.content_type, "text/plain; charset=utf-8");
    qk_http_reply_clear(&rep);
    call(&h.super, "HEAD", "/healthz", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    call(&h.super, "POST", "/healthz", &rep);
    CU_ASSERT_EQUAL(rep.status, 405);
    CU_ASSERT_STRING_EQUAL(rep.allow, "GET, HEAD");
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"message\":\"method not allowed\"}");
    qk_http_reply_clear(&rep);
    call(&h.super, "DELETE", "/metrics", &rep);
    CU_ASSERT_EQUAL(rep.status, 405);
    CU_ASSERT_STRING_EQUAL(rep.allow, "GET, HEAD");
    qk_http_reply_clear(&rep);
    call(&h.super, "GET", "/nope", &rep);
    CU_ASSERT_EQUAL(rep.status, 404);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"message\":\"unknown path\"}");
    qk_http_reply_clear(&rep);
}

int suite_device_feed(void)
{
    CU_pSuite s = CU_add_suite("device_feed", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "path routes", test_path_routes) ||
        !CU_add_test(s, "paths without a route", test_path_refused) ||
        !CU_add_test(s, "block IDs", test_block_id) ||
        !CU_add_test(s, "block sizes", test_block_size) ||
        !CU_add_test(s, "telemetry accepted", test_telemetry_ok) ||
        !CU_add_test(s, "telemetry refused", test_telemetry_refused) ||
        !CU_add_test(s, "device handler: 404 before the core", test_device_handler_paths) ||
        !CU_add_test(s, "admin handler: healthz, 404, 405", test_admin_handler))
        return -1;
    return 0;
}
