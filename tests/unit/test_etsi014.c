/* test_etsi014.c - the ETSI GS QKD 014 parsing layer (etsi014/etsi014_parse.c): routes, SAE IDs,
 * Key request / Key IDs bodies, limit checks and the Key container. */
#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "etsi014_parse.h"
#include "secbuf.h"

static const qk_key_limits LIM = {
    .default_size_bits = 256,
    .min_size_bits = 64,
    .max_size_bits = 8192,
    .max_keys_per_request = 128,
    .max_key_count = 100000,
    .max_sae_id_count = 2,
    .reservation_lifetime_s = 3600,
};

static void test_path(void)
{
    qk_etsi_route r;
    char id[QK_ETSI_SAE_ID_MAX + 1];
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/SAE_B/status", &r, id, sizeof id, &err), 0);
    CU_ASSERT_EQUAL(r, QK_ETSI_ROUTE_STATUS);
    CU_ASSERT_STRING_EQUAL(id, "SAE_B");
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/x/enc_keys", &r, id, sizeof id, &err), 0);
    CU_ASSERT_EQUAL(r, QK_ETSI_ROUTE_ENC);
    CU_ASSERT_STRING_EQUAL(id, "x");
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/a/b/dec_keys?x=1", &r, id, sizeof id, &err),
                    0);
    CU_ASSERT_EQUAL(r, QK_ETSI_ROUTE_DEC);
    CU_ASSERT_STRING_EQUAL(id, "a/b");
    /* a blank SAE ID (%20 decoded by the HTTP layer) is a bad request, not an unknown route */
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/ /enc_keys", &r, id, sizeof id, &err),
                    QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "SAE ID"));
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys//status", &r, id, sizeof id, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/A\tB/status", &r, id, sizeof id, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/A/other", &r, id, sizeof id, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/A/status/", &r, id, sizeof id, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v2/keys/A/status", &r, id, sizeof id, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(qk_etsi_parse_path("/api/v1/keys/", &r, id, sizeof id, &err), QK_EINVAL);
    char longp[400] = "/api/v1/keys/";
    memset(longp + strlen(longp), 'x', 200);
    strcat(longp, "/status");
    CU_ASSERT_EQUAL(qk_etsi_parse_path(longp, &r, id, sizeof id, &err), QK_EINVAL);
}

static void test_int(void)
{
    int64_t v = 0;
    CU_ASSERT_EQUAL(qk_etsi_parse_int("12", &v), 0);
    CU_ASSERT_EQUAL(v, 12);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("-8", &v), 0);
    CU_ASSERT_EQUAL(v, -8);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("abc01", &v), -1);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("", &v), -1);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("-", &v), -1);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("1 ", &v), -1);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("12345678901", &v), -1);
    CU_ASSERT_EQUAL(qk_etsi_parse_int(NULL, &v), -1);
}

static int check(const char *body, const char *caller, const char *slave, size_t *num,
                 uint32_t *size, qk_err *err)
{
    qk_etsi_key_req *r = calloc(1, sizeof *r);
    int rc = qk_etsi_parse_key_request(body, body ? strlen(body) : 0, r, NULL, err);
    if (rc == 0)
        rc = qk_etsi_check_key_req(r, &LIM, caller, slave, num, size, err);
    free(r);
    return rc;
}

static void test_key_request(void)
{
    size_t n = 0;
    uint32_t s = 0;
    qk_err err = {0};
    CU_ASSERT_EQUAL(check("", "M", "S", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(s, 256);
    n = 0;
    s = 0;
    CU_ASSERT_EQUAL(check(" \r\n", "M", "S", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(s, 256);
    CU_ASSERT_EQUAL(check("{\"number\":5,\"size\":1024,\"zzz\":[1]}", "M", "S", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(s, 1024);
    CU_ASSERT_EQUAL(check("{\"size\":12}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, QK_ETSI_MSG_SIZE8);
    CU_ASSERT_EQUAL(check("{\"size\":0}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"size\":-8}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"size\":\"abc01\"}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"size\":16384}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":0}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":-8}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":129}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":1.5}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":1e30}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("[1]", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":1", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{} x", "M", "S", &n, &s, &err), QK_EINVAL);
    /* slave equal to the caller */
    CU_ASSERT_EQUAL(check("{}", "M", "M", &n, &s, &err), QK_EINVAL);
    /* additional slaves */
    CU_ASSERT_EQUAL(
        check("{\"number\":2,\"additional_slave_SAE_IDs\":[\"T\"]}", "M", "S", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(s, 256);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[]}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[\" \"]}", "M", "S", &n, &s, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[\"T\",\"T\"]}", "M", "S", &n, &s, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[\"S\"]}", "M", "S", &n, &s, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[\"M\"]}", "M", "S", &n, &s, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(
        check("{\"additional_slave_SAE_IDs\":[\"T\",\"U\",\"V\"]}", "M", "S", &n, &s, &err),
        QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[1]}", "M", "S", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":\"T\"}", "M", "S", &n, &s, &err),
                    QK_EINVAL);
    /* extensions */
    CU_ASSERT_EQUAL(
        check("{\"extension_optional\":[{\"abc_max_age\":30000}]}", "M", "S", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(check("{\"extension_mandatory\":[]}", "M", "S", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(check("{\"extension_optional\":[1]}", "M", "S", &n, &s, &err), QK_EINVAL);
}

static void test_extension_details(void)
{
    const char *body = "{\"extension_mandatory\":[{\"abc_route_type\":\"direct\"},"
                       "{\"abc_transfer_method\":\"qkd\"}]}";
    qk_etsi_key_req *r = calloc(1, sizeof *r);
    cJSON *det = NULL;
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_etsi_parse_key_request(body, strlen(body), r, &det, &err), QK_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, QK_ETSI_MSG_EXT_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(det);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(det), 2);
    static const char *const want[] = {"abc_route_type is not supported",
                                       "abc_transfer_method is not supported"};
    for (int i = 0; i < 2; i++) {
        cJSON *o = cJSON_GetArrayItem(det, i);
        CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 1);
        const char *v = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(o, "extension_mandatory_unsupported"));
        CU_ASSERT_STRING_EQUAL(v ? v : "", want[i]);
    }
    cJSON_Delete(det);
    free(r);
}

static void test_key_ids(void)
{
    char(*ids)[QK_KEY_ID_LEN + 1] = NULL;
    size_t n = 0;
    qk_err err = {0};
    const char *ok = "{\"key_IDs\":[{\"key_ID\":\"BC490419-7D60-487F-ADC1-4DDCC177C139\","
                     "\"master_SAE_ID\":\"x\"},{\"key_ID\":\"0a782fb5-3434-48fe-aa4d-"
                     "14f41d46cf92\"}],\"key_IDs_extension\":{}}";
    CU_ASSERT_EQUAL_FATAL(qk_etsi_parse_key_ids(ok, strlen(ok), 16, &ids, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(ids[0], "bc490419-7d60-487f-adc1-4ddcc177c139");
    CU_ASSERT_STRING_EQUAL(ids[1], "0a782fb5-3434-48fe-aa4d-14f41d46cf92");
    free(ids);
    const char *bad[] = {
        "",
        "{}",
        "{\"key_IDs\":[]}",
        "{\"key_IDs\":{}}",
        "{\"key_IDs\":[\"bc490419-7d60-487f-adc1-4ddcc177c139\"]}",
        "{\"key_IDs\":[{\"key_ID\":\"non-uuid\"}]}",
        "{\"key_IDs\":[{\"key_ID\":5}]}",
        "{\"key_IDs\":[{}]}",
        "{\"key_IDs\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\"},"
        "{\"key_ID\":\"BC490419-7D60-487F-ADC1-4DDCC177C139\"}]}",
        "{\"key_IDs\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c1390\"}]}",
        /* a NUL escape would cut the ID back to a valid one (issue 17 item 5) */
        "{\"key_IDs\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\\u0000zzz\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ids = NULL;
        CU_ASSERT_EQUAL(qk_etsi_parse_key_ids(bad[i], strlen(bad[i]), 16, &ids, &n, &err),
                        QK_EINVAL);
        CU_ASSERT_PTR_NULL(ids);
    }
    const char *three = "{\"key_IDs\":[{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c139\"},"
                        "{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c138\"},"
                        "{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c137\"}]}";
    CU_ASSERT_EQUAL(qk_etsi_parse_key_ids(three, strlen(three), 2, &ids, &n, &err), QK_EINVAL);
    /* QK_ETSI_MAX_IDS different IDs: all accepted, in the order given; the same with the last
     * equal to the first (the duplicate check sorts copies, it must compare far neighbours) */
    size_t cap = 32 + (size_t)QK_ETSI_MAX_IDS * 52, used = 0;
    char *big = malloc(cap);
    CU_ASSERT_FATAL(big != NULL);
    used += (size_t)snprintf(big, cap, "{\"key_IDs\":[");
    for (unsigned i = 0; i < QK_ETSI_MAX_IDS; i++)
        used +=
            (size_t)snprintf(big + used, cap - used, "%s{\"key_ID\":\"%08x-0000-4000-8000-%012x\"}",
                             i ? "," : "", 0x9000000u - i * 7919u, i);
    used += (size_t)snprintf(big + used, cap - used, "]}");
    CU_ASSERT_FATAL(used < cap);
    CU_ASSERT_EQUAL_FATAL(qk_etsi_parse_key_ids(big, used, QK_ETSI_MAX_IDS, &ids, &n, &err), 0);
    CU_ASSERT_EQUAL(n, QK_ETSI_MAX_IDS);
    CU_ASSERT_STRING_EQUAL(ids[0], "09000000-0000-4000-8000-000000000000");
    CU_ASSERT_STRING_EQUAL(ids[1], "08ffe111-0000-4000-8000-000000000001");
    free(ids);
    ids = NULL;
    char *last = strrchr(big, '{');
    CU_ASSERT_FATAL(last != NULL);
    memcpy(last + 11, "09000000-0000-4000-8000-000000000000", 36);
    CU_ASSERT_EQUAL(qk_etsi_parse_key_ids(big, used, QK_ETSI_MAX_IDS, &ids, &n, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(ids);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "duplicates"));
    free(big);
}

/* The base64 of bytes (RFC 4648 clause 4, padded) by OpenSSL, not the production codec. */
static void b64_ref(const uint8_t *p, size_t n, char *out, size_t cap)
{
    CU_ASSERT_FATAL(4 * ((n + 2) / 3) + 1 <= cap);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/* Decode padded base64 with OpenSSL (EVP_DecodeBlock counts the padding as zero bytes, which
 * are taken off): the number of bytes, or -1 if s is not whole 4-character groups. */
static long b64_decode_ref(const char *s, uint8_t *out, size_t cap)
{
    size_t l = strlen(s);
    if (l % 4 != 0 || l / 4 * 3 > cap)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)l);
    if (n < 0)
        return -1;
    size_t pad = 0;
    while (pad < 2 && pad < l && s[l - 1 - pad] == '=')
        pad++;
    return (long)n - (long)pad;
}

/* Every key of the container, whole: its key_ID and its bytes, in the batch's order. Each key
 * comes from a different part of the material, and the lengths cover the three base64 tails
 * (no padding, "=", "=="). */
static void test_container(void)
{
    enum { N = 4 };
    static const uint32_t lens[N] = {32, 8, 7, 9};
    uint8_t material[32 + 8 + 7 + 9];
    for (size_t i = 0; i < sizeof material; i++)
        material[i] = (uint8_t)(i * 7 + 1); /* 7 is prime to 256: no two bytes alike */
    char ids[N][QK_KEY_ID_LEN + 1] = {
        "bc490419-7d60-487f-adc1-4ddcc177c139", "0a782fb5-3434-48fe-aa4d-14f41d46cf92",
        "5e1d2c3b-4a59-4687-9a1b-2c3d4e5f6a7b", "ffffffff-0000-4111-8222-333333333333"};
    uint8_t *keys[N];
    size_t off = 0;
    for (size_t i = 0; i < N; i++) {
        keys[i] = material + off;
        off += lens[i];
    }
    CU_ASSERT_EQUAL_FATAL(off, sizeof material);
    qk_key_batch b = {
        .n = N, .ids = ids, .lens = (uint32_t *)lens, .keys = keys, .material = material};
    char *json = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(qk_etsi_key_container(&b, &json, &len), 0);
    CU_ASSERT_EQUAL(strlen(json), len);
    cJSON *root = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(root), 1); /* "keys" only */
    cJSON *keysj = cJSON_GetObjectItemCaseSensitive(root, "keys");
    CU_ASSERT_TRUE_FATAL(cJSON_IsArray(keysj));
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(keysj), N);
    for (int i = 0; i < N; i++) {
        cJSON *k = cJSON_GetArrayItem(keysj, i);
        CU_ASSERT_EQUAL(cJSON_GetArraySize(k), 2); /* key_ID and key */
        const char *kid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "key_ID"));
        const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "key"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(kid);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b64);
        CU_ASSERT_STRING_EQUAL(kid, ids[i]);
        char want[64];
        b64_ref(keys[i], lens[i], want, sizeof want);
        CU_ASSERT_STRING_EQUAL(b64, want);
        uint8_t dec[48];
        CU_ASSERT_EQUAL(b64_decode_ref(b64, dec, sizeof dec), (long)lens[i]);
        CU_ASSERT_EQUAL(memcmp(dec, keys[i], lens[i]), 0);
    }
    cJSON_Delete(root);
    qk_secure_free(json);

    /* the key_ID list of the log line: every ID, in order, comma-separated */
    char want[N * (QK_KEY_ID_LEN + 1)];
    snprintf(want, sizeof want, "%s,%s,%s,%s", ids[0], ids[1], ids[2], ids[3]);
    char *list = qk_etsi_key_id_list(&b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    CU_ASSERT_STRING_EQUAL(list, want);
    free(list);
    b.n = 1;
    list = qk_etsi_key_id_list(&b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    CU_ASSERT_STRING_EQUAL(list, ids[0]);
    free(list);
}

int suite_etsi014(void)
{
    CU_pSuite s = CU_add_suite("etsi014", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "path", test_path) || !CU_add_test(s, "int", test_int) ||
        !CU_add_test(s, "key_request", test_key_request) ||
        !CU_add_test(s, "extension_details", test_extension_details) ||
        !CU_add_test(s, "key_ids", test_key_ids) || !CU_add_test(s, "container", test_container))
        return -1;
    return 0;
}
