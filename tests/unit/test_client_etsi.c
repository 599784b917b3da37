/* test_client_etsi.c - libqkdclient: parsing of ETSI 014 server responses (Status, Key
 * container: good bodies, wrong types, missing fields, oversize, invalid base64, count and size
 * mismatches), Key request building, error messages and URL encoding. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkdclient.h"

#define S(lit) lit, sizeof(lit) - 1

static const char status_ok[] =
    "{\"source_KME_ID\":\"KME_A\",\"target_KME_ID\":\"KME_B\",\"master_SAE_ID\":\"SAE_A1\","
    "\"slave_SAE_ID\":\"SAE_B1\",\"key_size\":352,\"stored_key_count\":25000,"
    "\"max_key_count\":100000,\"max_key_per_request\":128,\"max_key_size\":1024,"
    "\"min_key_size\":64,\"max_SAE_ID_count\":0}";

static void test_status_good(void)
{
    qkc_etsi_status st;
    qkc_error e = {0};
    CU_ASSERT_EQUAL_FATAL(qkc_etsi_parse_status(S(status_ok), &st, &e), 0);
    CU_ASSERT_STRING_EQUAL(st.source_KME_ID, "KME_A");
    CU_ASSERT_STRING_EQUAL(st.target_KME_ID, "KME_B");
    CU_ASSERT_STRING_EQUAL(st.master_SAE_ID, "SAE_A1");
    CU_ASSERT_STRING_EQUAL(st.slave_SAE_ID, "SAE_B1");
    CU_ASSERT_EQUAL(st.key_size, 352);
    CU_ASSERT_EQUAL(st.stored_key_count, 25000);
    CU_ASSERT_EQUAL(st.max_key_count, 100000);
    CU_ASSERT_EQUAL(st.max_key_per_request, 128);
    CU_ASSERT_EQUAL(st.max_key_size, 1024);
    CU_ASSERT_EQUAL(st.min_key_size, 64);
    CU_ASSERT_EQUAL(st.max_SAE_ID_count, 0);
    CU_ASSERT_PTR_NULL(st.status_extension);
    qkc_etsi_status_free(&st);

    /* status_extension kept as compact JSON; unknown members ignored */
    char body[1024];
    snprintf(body, sizeof body, "%.*s,\"status_extension\":{\"a\": [1, 2]},\"zzz\":1}",
             (int)strlen(status_ok) - 1, status_ok);
    CU_ASSERT_EQUAL_FATAL(qkc_etsi_parse_status(body, strlen(body), &st, &e), 0);
    CU_ASSERT_STRING_EQUAL(st.status_extension, "{\"a\":[1,2]}");
    qkc_etsi_status_free(&st);
}

/* status_ok with `from` replaced by `to` must be refused as malformed. */
static void expect_status_bad(const char *from, const char *to)
{
    char body[1024];
    const char *p = strstr(status_ok, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    snprintf(body, sizeof body, "%.*s%s%s", (int)(p - status_ok), status_ok, to, p + strlen(from));
    qkc_etsi_status st;
    qkc_error e = {0};
    int rc = qkc_etsi_parse_status(body, strlen(body), &st, &e);
    CU_ASSERT_EQUAL(rc, QKC_EMALFORMED);
    CU_ASSERT_EQUAL(e.cls, QKC_EMALFORMED);
    CU_ASSERT(e.msg[0] != '\0');
    if (rc == 0)
        qkc_etsi_status_free(&st);
}

static void test_status_bad(void)
{
    expect_status_bad("\"key_size\":352", "\"key_size\":\"352\"");           /* string for int */
    expect_status_bad("\"key_size\":352", "\"key_size\":352.5");             /* fraction */
    expect_status_bad("\"key_size\":352", "\"key_size\":-8");                /* negative */
    expect_status_bad("\"key_size\":352", "\"key_size\":1e300");             /* huge */
    expect_status_bad("\"key_size\":352,", "");                              /* missing */
    expect_status_bad("\"source_KME_ID\":\"KME_A\"", "\"source_KME_ID\":7"); /* int for string */
    expect_status_bad("\"source_KME_ID\":\"KME_A\"", "\"source_KME_ID\":\"\"");
    expect_status_bad("\"source_KME_ID\":\"KME_A\"", "\"source_KME_ID\":\"K\\u001b[2J\"");
    expect_status_bad("\"master_SAE_ID\":\"SAE_A1\",", "");
    expect_status_bad("\"max_SAE_ID_count\":0", "\"max_SAE_ID_count\":null");
    expect_status_bad("\"max_SAE_ID_count\":0}", "\"max_SAE_ID_count\":0,\"status_extension\":[]}");
    expect_status_bad("\"key_size\":352", "\"key_size\":352,\"key_size\":352"); /* duplicate */
    expect_status_bad("}", "} trailing");

    /* an ID longer than QKC_ID_MAX - 1 */
    char body[2048], id[400];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(body, sizeof body, "{\"source_KME_ID\":\"%s\"%s", id, strchr(status_ok, ','));
    qkc_etsi_status st;
    qkc_error e = {0};
    CU_ASSERT_EQUAL(qkc_etsi_parse_status(body, strlen(body), &st, &e), QKC_EMALFORMED);

    static const char *const junk[] = {"", "[]", "null", "\"x\"", "{", "<html>oops</html>"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CU_ASSERT_EQUAL(qkc_etsi_parse_status(junk[i], strlen(junk[i]), &st, &e), QKC_EMALFORMED);
}

static const char keys2[] =
    "{\"keys\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\","
    "\"key\":\"wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s=\"},"
    "{\"key_ID\":\"0a782fb5-3434-48fe-aa4d-14f41d46cf92\","
    "\"key\":\"OeGMPxh1+2RpJpNCYixWHFLYRubpOKCw94FcCI7VdJA=\",\"key_extension\":{\"x\":1}}],"
    "\"key_container_extension\":{\"v\":true}}";

static void test_keys_good(void)
{
    qkc_key_set ks;
    qkc_error e = {0};
    CU_ASSERT_EQUAL_FATAL(qkc_etsi_parse_keys(S(keys2), 2, 32, &ks, &e), 0);
    CU_ASSERT_EQUAL(ks.count, 2);
    CU_ASSERT_STRING_EQUAL(ks.keys[0].key_ID, "bc490419-7d60-487f-adc1-4ddcc177c139");
    CU_ASSERT_EQUAL(ks.keys[0].key_len, 32);
    CU_ASSERT_EQUAL(ks.keys[0].key[0], 0xc0);
    CU_ASSERT_EQUAL(ks.keys[0].key[1], 0x71);
    CU_ASSERT_EQUAL(ks.keys[1].key[31], 0x90);
    CU_ASSERT_STRING_EQUAL(ks.key_container_extension, "{\"v\":true}");
    qkc_key_set_free(&ks);
    CU_ASSERT_EQUAL(ks.count, 0);
    CU_ASSERT_PTR_NULL(ks.keys);
    /* expectations off */
    CU_ASSERT_EQUAL(qkc_etsi_parse_keys(S(keys2), 0, 0, &ks, &e), 0);
    qkc_key_set_free(&ks);
}

static void expect_keys_bad(const char *body, size_t count, size_t bytes)
{
    qkc_key_set ks;
    qkc_error e = {0};
    int rc = qkc_etsi_parse_keys(body, strlen(body), count, bytes, &ks, &e);
    CU_ASSERT_EQUAL(rc, QKC_EMALFORMED);
    CU_ASSERT_EQUAL(e.cls, QKC_EMALFORMED);
    CU_ASSERT_PTR_NULL(ks.keys);
    CU_ASSERT_EQUAL(ks.count, 0);
    if (rc == 0)
        qkc_key_set_free(&ks);
}

static void test_keys_bad(void)
{
    /* count and size mismatches */
    expect_keys_bad(keys2, 3, 0);
    expect_keys_bad(keys2, 1, 0);
    expect_keys_bad(keys2, 2, 16);
    /* structure */
    expect_keys_bad("{}", 0, 0);
    expect_keys_bad("{\"Keys\":[]}", 0, 0);
    expect_keys_bad("{\"keys\":[]}", 0, 0);
    expect_keys_bad("{\"keys\":{}}", 0, 0);
    expect_keys_bad("{\"keys\":[1]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key\":\"AAAA\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":5,\"key\":\"AAAA\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":12}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAAA\",\"key_extension\":3}]}", 0, 0);
    expect_keys_bad(
        "{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAAA\"}],\"key_container_extension\":[]}", 0, 0);
    /* invalid base64: alphabet, padding, length, whitespace, empty, URL-safe alphabet */
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AA*A\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAA\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"A===\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AA AA\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"\"}]}", 0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"-_-_\"}]}", 0, 0);
    /* repeated key IDs (case-insensitive) and a control character in an ID */
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"ab\",\"key\":\"AAAA\"},"
                    "{\"key_ID\":\"AB\",\"key\":\"AAAA\"}]}",
                    0, 0);
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\\nb\",\"key\":\"AAAA\"}]}", 0, 0);
    /* a string that decodes to a NUL (issue 17 item 5), in a key ID or a status */
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\\u0000b\",\"key\":\"AAAA\"}]}", 0, 0);
    /* a failure after a good key frees the good one too (checked by ASan) */
    expect_keys_bad("{\"keys\":[{\"key_ID\":\"a\",\"key\":\"AAAA\"},{\"key_ID\":\"b\"}]}", 0, 0);
}

static void test_keys_oversize(void)
{
    /* one key above QKC_MAX_KEY_SIZE bytes */
    size_t b64 = ((size_t)QKC_MAX_KEY_SIZE + 3) / 3 * 4 + 4;
    size_t cap = b64 + 64;
    char *body = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    int n = snprintf(body, cap, "{\"keys\":[{\"key_ID\":\"a\",\"key\":\"");
    memset(body + n, 'A', b64);
    snprintf(body + n + b64, cap - n - b64, "\"}]}");
    expect_keys_bad(body, 0, 0);
    free(body);

    /* more than QKC_MAX_KEYS keys */
    cap = (size_t)(QKC_MAX_KEYS + 1) * 40 + 32;
    body = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    size_t o = (size_t)snprintf(body, cap, "{\"keys\":[");
    for (int i = 0; i <= QKC_MAX_KEYS; i++)
        o += (size_t)snprintf(body + o, cap - o, "%s{\"key_ID\":\"k%d\",\"key\":\"AAAA\"}",
                              i ? "," : "", i);
    snprintf(body + o, cap - o, "]}");
    expect_keys_bad(body, 0, 0);
    free(body);

    /* body above the JSON limit (4 MiB) */
    cap = 5u * 1024 * 1024;
    body = malloc(cap + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    memset(body, ' ', cap);
    body[0] = '{';
    body[cap - 1] = '}';
    body[cap] = '\0';
    expect_keys_bad(body, 0, 0);
    free(body);
}

static void test_key_request_json(void)
{
    qkc_error e = {0};
    char *j = qkc_etsi_key_request_json(NULL, &e);
    CU_ASSERT_STRING_EQUAL(j, "{}");
    free(j);
    const char *add[] = {"SAE_C", "SAE_D"};
    qkc_key_request r = {.number = 3,
                         .size = 1024,
                         .additional_slave_SAE_IDs = add,
                         .n_additional = 2,
                         .extension_mandatory = "[{\"abc_route_type\":\"direct\"}]",
                         .extension_optional = "[{\"abc_max_age\": 30000}]"};
    j = qkc_etsi_key_request_json(&r, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(j, "{\"number\":3,\"size\":1024,\"additional_slave_SAE_IDs\":"
                              "[\"SAE_C\",\"SAE_D\"],\"extension_mandatory\":"
                              "[{\"abc_route_type\":\"direct\"}],\"extension_optional\":"
                              "[{\"abc_max_age\":30000}]}");
    free(j);
    r.extension_mandatory = "{\"not\":\"array\"}";
    CU_ASSERT_PTR_NULL(qkc_etsi_key_request_json(&r, &e));
    CU_ASSERT_EQUAL(e.cls, QKC_EUSAGE);
    r.extension_mandatory = "[1]";
    CU_ASSERT_PTR_NULL(qkc_etsi_key_request_json(&r, &e));
    r.extension_mandatory = "[{";
    CU_ASSERT_PTR_NULL(qkc_etsi_key_request_json(&r, &e));
    r.extension_mandatory = NULL;
    const char *bad[] = {""};
    r.additional_slave_SAE_IDs = bad;
    r.n_additional = 1;
    CU_ASSERT_PTR_NULL(qkc_etsi_key_request_json(&r, &e));
    CU_ASSERT_EQUAL(e.cls, QKC_EUSAGE);
}

static void test_server_message(void)
{
    char m[QKC_SERVER_MSG_MAX];
    qkc_server_message(S("{\"message\":\"one or more keys specified are not found on KME\"}"), m,
                       sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "one or more keys specified are not found on KME");
    qkc_server_message(S("{\"error\":\"Malformed keyId\"}"), m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "Malformed keyId");
    qkc_server_message(S("{\"detail\":\"already retrieved\"}"), m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "already retrieved");
    qkc_server_message(S("{\"message\":\"a\\u001b[31mb\\nc\"}"), m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "a?[31mb c"); /* no terminal escapes */
    qkc_server_message(S("{\"message\":5}"), m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "");
    qkc_server_message(S("<html><body>500</body></html>"), m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "");
    qkc_server_message(S("Bad Gateway\r\n"), m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "Bad Gateway");
    qkc_server_message(NULL, 0, m, sizeof m);
    CU_ASSERT_STRING_EQUAL(m, "");
    char small[8];
    qkc_server_message(S("{\"message\":\"abcdefghijkl\"}"), small, sizeof small);
    CU_ASSERT_STRING_EQUAL(small, "abcdefg");
}

static void test_url_encode(void)
{
    char u[32] = "/k/";
    CU_ASSERT_EQUAL(qkc_url_append_encoded(u, sizeof u, "SAE 1/x?&%"), 0);
    CU_ASSERT_STRING_EQUAL(u, "/k/SAE%201%2Fx%3F%26%25");
    char t[8] = "/";
    CU_ASSERT_EQUAL(qkc_url_append_encoded(t, sizeof t, "abcdefgh"), -1);
    CU_ASSERT_STRING_EQUAL(t, "/");                                      /* unchanged */
    CU_ASSERT_EQUAL(qkc_url_append_encoded(t, sizeof t, "a-._~Z9"), -1); /* 8 chars: no room */
    CU_ASSERT_EQUAL(qkc_url_append_encoded(t, sizeof t, "a-._~Z"), 0);
    CU_ASSERT_STRING_EQUAL(t, "/a-._~Z");
}

static void test_client_options(void)
{
    qkc_error e;
    qkc_options o = {.base_url = "https://127.0.0.1:1/", .ca_file = "/nonexistent"};
    qkc_client *c = qkc_client_new(&o, &e);
    CU_ASSERT_PTR_NOT_NULL(c);
    qkc_client_free(c);
    static const qkc_options bad[] = {
        {.base_url = NULL},
        {.base_url = "ftp://x"},
        {.base_url = "https://x y"},
        {.base_url = "https://x?q=1"},
        {.base_url = "https://x", .tls_min = 13, .tls_max = 12},
        {.base_url = "https://x", .tls_min = 11},
        {.base_url = "https://x", .psk_identity = "id"},
        {.base_url = "https://x", .cert_file = "c.pem"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = qkc_client_new(&bad[i], &e);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_EQUAL(e.cls, QKC_EUSAGE);
        qkc_client_free(c);
    }
    /* argument checks happen before anything is sent */
    o.base_url = "https://127.0.0.1:1";
    c = qkc_client_new(&o, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    qkc_key_set ks;
    CU_ASSERT_EQUAL(qkc_etsi_get_keys_with_ids(c, "SAE", NULL, 0, QKC_AUTO, &ks, &e), QKC_EUSAGE);
    const char *ids[] = {"a", "b"};
    CU_ASSERT_EQUAL(qkc_etsi_get_keys_with_ids(c, "SAE", ids, 2, QKC_GET, &ks, &e), QKC_EUSAGE);
    const char *dup[] = {"ab", "AB"};
    CU_ASSERT_EQUAL(qkc_etsi_get_keys_with_ids(c, "SAE", dup, 2, QKC_POST, &ks, &e), QKC_EUSAGE);
    qkc_key_request r = {.n_additional = 1, .additional_slave_SAE_IDs = ids};
    CU_ASSERT_EQUAL(qkc_etsi_get_keys(c, "SAE", &r, QKC_GET, &ks, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_etsi_get_keys(c, "", NULL, QKC_AUTO, &ks, &e), QKC_EUSAGE);
    qkc_raw_response rr;
    CU_ASSERT_EQUAL(qkc_raw_request(c, "GET", "no-slash", NULL, 0, NULL, &rr, &e), QKC_EUSAGE);
    qkc_client_free(c);
}

int suite_client_etsi(void)
{
    CU_pSuite s = CU_add_suite("client_etsi", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "status: good body", test_status_good) ||
        !CU_add_test(s, "status: wrong types, missing fields", test_status_bad) ||
        !CU_add_test(s, "keys: good container", test_keys_good) ||
        !CU_add_test(s, "keys: malformed containers", test_keys_bad) ||
        !CU_add_test(s, "keys: oversize", test_keys_oversize) ||
        !CU_add_test(s, "key request JSON", test_key_request_json) ||
        !CU_add_test(s, "server error messages", test_server_message) ||
        !CU_add_test(s, "URL encoding", test_url_encode) ||
        !CU_add_test(s, "client options and argument checks", test_client_options))
        return -1;
    return 0;
}
