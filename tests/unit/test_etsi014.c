/* test_etsi014.c - the ETSI GS QKD 014 parsing layer (etsi014/etsi014_parse.c): routes, SAE IDs,
 * Key request / Key IDs bodies, limit checks and the Key container. */
#include <CUnit/CUnit.h>
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
    CU_ASSERT_EQUAL(check(" \r\n", "M", "S", &n, &s, &err), 0);
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
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[\"T\"]}", "M", "S", &n, &s, &err), 0);
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
    cJSON *first = cJSON_GetArrayItem(det, 0);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(first, "extension_mandatory_unsupported");
    CU_ASSERT_TRUE(cJSON_IsString(v) && strstr(v->valuestring, "abc_route_type") != NULL);
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
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_STRING_EQUAL(ids[0], "bc490419-7d60-487f-adc1-4ddcc177c139");
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
}

static void test_container(void)
{
    uint8_t material[40];
    for (size_t i = 0; i < sizeof material; i++)
        material[i] = (uint8_t)(i * 7 + 1);
    char ids[2][QK_KEY_ID_LEN + 1] = {"bc490419-7d60-487f-adc1-4ddcc177c139",
                                      "0a782fb5-3434-48fe-aa4d-14f41d46cf92"};
    uint32_t lens[2] = {32, 8};
    uint8_t *keys[2] = {material, material + 32};
    qk_key_batch b = {.n = 2, .ids = ids, .lens = lens, .keys = keys, .material = material};
    char *json = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(qk_etsi_key_container(&b, &json, &len), 0);
    CU_ASSERT_EQUAL(strlen(json), len);
    cJSON *root = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    cJSON *keysj = cJSON_GetObjectItemCaseSensitive(root, "keys");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(keysj), 2);
    cJSON *k1 = cJSON_GetArrayItem(keysj, 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(k1, "key_ID")->valuestring, ids[1]);
    const char *b64 = cJSON_GetObjectItemCaseSensitive(k1, "key")->valuestring;
    uint8_t dec[16];
    size_t dl = 0;
    CU_ASSERT_EQUAL(qk_base64_decode(b64, strlen(b64), dec, sizeof dec, &dl), 0);
    CU_ASSERT_EQUAL(dl, 8);
    CU_ASSERT_EQUAL(memcmp(dec, material + 32, 8), 0);
    cJSON_Delete(root);
    qk_secure_free(json);
    char *list = qk_etsi_key_id_list(&b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    CU_ASSERT_EQUAL(strlen(list), 2 * QK_KEY_ID_LEN + 1);
    CU_ASSERT_PTR_NOT_NULL(strchr(list, ','));
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
