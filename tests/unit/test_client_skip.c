/* test_client_skip.c - libqkdclient: parsing of SKIP server responses (/capabilities, /key,
 * /entropy: good bodies, wrong types, missing fields, oversize, invalid hex, size and keyId
 * mismatches). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkdclient.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_caps_good(void)
{
    qkc_skip_caps c;
    qkc_error e = {0};
    CU_ASSERT_EQUAL_FATAL(
        qkc_skip_parse_caps(S("{\"entropy\":true,\"key\":true,\"algorithm\":\"PRF\","
                              "\"localSystemID\":\"Alice\",\"remoteSystemID\":[\"Bob\",\"Eve\"],"
                              "\"extra\":{}}"),
                            &c, &e),
        0);
    CU_ASSERT_TRUE(c.entropy);
    CU_ASSERT_TRUE(c.key);
    CU_ASSERT_STRING_EQUAL(c.algorithm, "PRF");
    CU_ASSERT_STRING_EQUAL(c.localSystemID, "Alice");
    CU_ASSERT_EQUAL_FATAL(c.n_remote, 2);
    CU_ASSERT_STRING_EQUAL(c.remoteSystemID[0], "Bob");
    CU_ASSERT_STRING_EQUAL(c.remoteSystemID[1], "Eve");
    qkc_skip_caps_free(&c);
    CU_ASSERT_PTR_NULL(c.remoteSystemID);
    CU_ASSERT_EQUAL_FATAL(
        qkc_skip_parse_caps(
            S("{\"entropy\":false,\"key\":true,\"algorithm\":\"QKD\","
              "\"localSystemID\":\"KP_A_LOC1\",\"remoteSystemID\":[\"KP_*_LOC1\"]}"),
            &c, &e),
        0);
    CU_ASSERT_FALSE(c.entropy);
    CU_ASSERT_STRING_EQUAL(c.remoteSystemID[0], "KP_*_LOC1");
    qkc_skip_caps_free(&c);
}

static void expect_caps_bad(const char *body)
{
    qkc_skip_caps c;
    qkc_error e = {0};
    int rc = qkc_skip_parse_caps(body, strlen(body), &c, &e);
    CU_ASSERT_EQUAL(rc, QKC_EMALFORMED);
    CU_ASSERT_PTR_NULL(c.remoteSystemID);
    if (rc == 0)
        qkc_skip_caps_free(&c);
}

static void test_caps_bad(void)
{
#define CAPS(ent, key, alg, loc, rem)                                                              \
    "{\"entropy\":" ent ",\"key\":" key ",\"algorithm\":" alg ",\"localSystemID\":" loc            \
    ",\"remoteSystemID\":" rem "}"
    expect_caps_bad(CAPS("\"true\"", "true", "\"PRF\"", "\"A\"", "[\"B\"]"));
    expect_caps_bad(CAPS("1", "true", "\"PRF\"", "\"A\"", "[\"B\"]"));
    expect_caps_bad(CAPS("true", "null", "\"PRF\"", "\"A\"", "[\"B\"]"));
    expect_caps_bad(CAPS("true", "true", "7", "\"A\"", "[\"B\"]"));
    expect_caps_bad(CAPS("true", "true", "\"PRF\"", "\"\"", "[\"B\"]"));
    expect_caps_bad(CAPS("true", "true", "\"PRF\"", "\"A\"", "\"B\"")); /* string, not array */
    expect_caps_bad(CAPS("true", "true", "\"PRF\"", "\"A\"", "[\"B\",3]"));
    expect_caps_bad(CAPS("true", "true", "\"PRF\"", "\"A\"", "[\"\"]"));
    expect_caps_bad(CAPS("true", "true", "\"PRF\"", "\"A\"", "[\"B\\u0007\"]"));
    expect_caps_bad("{\"entropy\":true,\"key\":true,\"algorithm\":\"PRF\",\"localSystemID\":\"A\","
                    "\"remoteSystemIDs\":[\"B\"]}"); /* the plural is not the field */
    expect_caps_bad("{\"entropy\":true,\"key\":true,\"localSystemID\":\"A\","
                    "\"remoteSystemID\":[\"B\"]}"); /* algorithm missing */
    expect_caps_bad("[]");
    expect_caps_bad("");
#undef CAPS
    /* more than QKC_SKIP_MAX_REMOTES entries */
    size_t cap = (QKC_SKIP_MAX_REMOTES + 1) * 8 + 200;
    char *body = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    size_t o = (size_t)snprintf(body, cap,
                                "{\"entropy\":true,\"key\":true,\"algorithm\":\"P\","
                                "\"localSystemID\":\"A\",\"remoteSystemID\":[");
    for (int i = 0; i <= QKC_SKIP_MAX_REMOTES; i++)
        o += (size_t)snprintf(body + o, cap - o, "%s\"r%d\"", i ? "," : "", i);
    snprintf(body + o, cap - o, "]}");
    expect_caps_bad(body);
    free(body);
}

static const char key_ok[] =
    "{\"keyId\":\"1726e9AE76234FB1dd1283d4dca1911e1f93864d70f3069e\","
    "\"key\":\"ad229dfb8a276e74c1f3b6c09349a69fb2fed73c541270663f0e5cbbfb031670\"}";

static void test_key_good(void)
{
    qkc_skip_key k;
    qkc_error e = {0};
    CU_ASSERT_EQUAL_FATAL(qkc_skip_parse_key(S(key_ok), NULL, 256, &k, &e), 0);
    CU_ASSERT_STRING_EQUAL(k.keyId, "1726e9AE76234FB1dd1283d4dca1911e1f93864d70f3069e");
    CU_ASSERT_EQUAL(k.key_len, 32);
    CU_ASSERT_EQUAL(k.key[0], 0xad);
    CU_ASSERT_EQUAL(k.key[31], 0x70);
    qkc_skip_key_free(&k);
    CU_ASSERT_PTR_NULL(k.key);
    /* keyId compared case-insensitively; upper-case key hex accepted */
    CU_ASSERT_EQUAL(qkc_skip_parse_key(
                        S(key_ok), "1726E9AE76234FB1DD1283D4DCA1911E1F93864D70F3069E", 0, &k, &e),
                    0);
    qkc_skip_key_free(&k);
    CU_ASSERT_EQUAL(
        qkc_skip_parse_key(S("{\"keyId\":\"ab\",\"key\":\"ABCDEF01\"}"), NULL, 32, &k, &e), 0);
    CU_ASSERT_EQUAL(k.key[0], 0xab);
    qkc_skip_key_free(&k);
}

static void expect_key_bad(const char *body, const char *want_id, int64_t bits)
{
    qkc_skip_key k;
    qkc_error e = {0};
    int rc = qkc_skip_parse_key(body, strlen(body), want_id, bits, &k, &e);
    CU_ASSERT_EQUAL(rc, QKC_EMALFORMED);
    CU_ASSERT_PTR_NULL(k.key);
    if (rc == 0)
        qkc_skip_key_free(&k);
}

static void test_key_bad(void)
{
    expect_key_bad(key_ok, NULL, 128);             /* size mismatch */
    expect_key_bad(key_ok, "00112233", 0);         /* other keyId */
    expect_key_bad("{\"keyId\":\"ab\"}", NULL, 0); /* key missing */
    expect_key_bad("{\"key\":\"abcd\"}", NULL, 0); /* keyId missing */
    expect_key_bad("{\"keyId\":12,\"key\":\"abcd\"}", NULL, 0);
    expect_key_bad("{\"keyId\":\"ab\",\"key\":[\"abcd\"]}", NULL, 0);
    expect_key_bad("{\"keyId\":\"xyz\",\"key\":\"abcd\"}", NULL, 0); /* keyId not hex */
    expect_key_bad("{\"keyId\":\"ab\",\"key\":\"abc\"}", NULL, 0);   /* odd length */
    expect_key_bad("{\"keyId\":\"ab\",\"key\":\"abzz\"}", NULL, 0);  /* not hex */
    expect_key_bad("{\"keyId\":\"ab\",\"key\":\"\"}", NULL, 0);      /* empty */
    expect_key_bad("{\"keyId\":\"ab\",\"key\":\"q2Vy\"}", NULL, 0);  /* base64, not hex */
    expect_key_bad("{\"keyId\":\"ab\",\"key\":\"ab cd\"}", NULL, 0);
    /* a keyId cut short by a NUL escape is not the one asked for (issue 17 item 5) */
    expect_key_bad("{\"keyId\":\"ab\\u0000cd\",\"key\":\"abcd\"}", "ab", 0);
    /* keyId of 130 hex digits (limit 128) */
    char body[512];
    char id[131];
    memset(id, 'a', 130);
    id[130] = '\0';
    snprintf(body, sizeof body, "{\"keyId\":\"%s\",\"key\":\"abcd\"}", id);
    expect_key_bad(body, NULL, 0);
    /* key above QKC_SKIP_MAX_BYTES */
    size_t hex = (QKC_SKIP_MAX_BYTES + 1) * 2;
    char *big = malloc(hex + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    int n = snprintf(big, hex + 64, "{\"keyId\":\"ab\",\"key\":\"");
    memset(big + n, 'a', hex);
    snprintf(big + n + hex, 64 - (size_t)n, "\"}");
    expect_key_bad(big, NULL, 0);
    free(big);
}

static void test_entropy(void)
{
    qkc_skip_entropy en;
    qkc_error e = {0};
    CU_ASSERT_EQUAL_FATAL(
        qkc_skip_parse_entropy(
            S("{\"randomStr\":\"AD229DFB8A276E74C1F3B6C09349A69FB2FED73C541270663F0E5CBBFB031670\","
              "\"minentropy\":256}"),
            256, &en, &e),
        0);
    CU_ASSERT_EQUAL(en.len, 32);
    CU_ASSERT_EQUAL(en.minentropy, 256);
    CU_ASSERT_EQUAL(en.bytes[0], 0xad);
    qkc_skip_entropy_free(&en);
    CU_ASSERT_PTR_NULL(en.bytes);
    static const struct {
        const char *body;
        int64_t min;
    } bad[] = {
        {"{\"randomStr\":\"abcd\",\"minentropy\":17}", 0},      /* more entropy than bits */
        {"{\"randomStr\":\"abcdabcd\",\"minentropy\":16}", 32}, /* less than requested */
        {"{\"randomStr\":\"abcd\",\"minentropy\":\"16\"}", 0},
        {"{\"randomStr\":\"abcd\",\"minentropy\":0}", 0},
        {"{\"randomStr\":\"abcd\",\"minentropy\":8.5}", 0},
        {"{\"randomStr\":\"abcd\"}", 0},
        {"{\"minentropy\":16}", 0},
        {"{\"randomStr\":\"abc\",\"minentropy\":8}", 0},
        {"{\"randomStr\":\"zz\",\"minentropy\":8}", 0},
        {"{\"randomStr\":true,\"minentropy\":8}", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = qkc_skip_parse_entropy(bad[i].body, strlen(bad[i].body), bad[i].min, &en, &e);
        CU_ASSERT_EQUAL(rc, QKC_EMALFORMED);
        CU_ASSERT_PTR_NULL(en.bytes);
        if (rc == 0)
            qkc_skip_entropy_free(&en);
    }
}

static void test_skip_argument_checks(void)
{
    qkc_error e;
    qkc_options o = {.base_url = "https://127.0.0.1:1", .ca_file = "/nonexistent"};
    qkc_client *c = qkc_client_new(&o, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    qkc_skip_key k;
    qkc_skip_entropy en;
    CU_ASSERT_EQUAL(qkc_skip_get_key(c, NULL, 0, &k, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_skip_get_key(c, "", 0, &k, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_skip_get_key(c, "B", -8, &k, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_skip_get_key_by_id(c, "a b", "A", &k, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_skip_get_key_by_id(c, "", "A", &k, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_skip_get_entropy(c, -1, &en, &e), QKC_EUSAGE);
    CU_ASSERT_EQUAL(qkc_skip_get_entropy(c, (int64_t)QKC_SKIP_MAX_BYTES * 8 + 8, &en, &e),
                    QKC_EUSAGE);
    qkc_client_free(c);
}

int suite_client_skip(void)
{
    CU_pSuite s = CU_add_suite("client_skip", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "capabilities: good bodies", test_caps_good) ||
        !CU_add_test(s, "capabilities: malformed", test_caps_bad) ||
        !CU_add_test(s, "key: good bodies", test_key_good) ||
        !CU_add_test(s, "key: malformed", test_key_bad) ||
        !CU_add_test(s, "entropy", test_entropy) ||
        !CU_add_test(s, "argument checks", test_skip_argument_checks))
        return -1;
    return 0;
}
