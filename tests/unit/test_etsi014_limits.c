/* test_etsi014_limits.c - the ETSI 014 limit helpers (etsi014/etsi014_parse.c): Status
 * stored_key_count per SAE pair (never above max_key_count), the limits check of a Key request
 * at its edges, and the detail cap of extension_mandatory errors. The max_key_count quota of
 * enc_keys is the core's (tests/unit/test_kms_reserve.c). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etsi014_parse.h"

static const qk_key_limits LIM = {
    .default_size_bits = 256, /* 32 bytes */
    .min_size_bits = 64,
    .max_size_bits = 1024,
    .max_keys_per_request = 10,
    .max_key_count = 20,
    .max_sae_id_count = 0,
    .reservation_lifetime_s = 60,
};

static void test_stored_count(void)
{
    /* local pair: the same-KME pool is generated on demand; only the quota bounds it */
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, true, 0, 0), 20);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, true, 15, 0), 5);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, true, 20, 1u << 20), 0);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, true, 25, 0), 0); /* never negative */
    /* remote pair: the link pool in key_size keys, capped at the quota */
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, false, 0, 0), 0);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, false, 0, 31), 0);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, false, 0, 32 * 7 + 31), 7);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, false, 0, 1u << 30), 20);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, false, 18, 1u << 30), 2);
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&LIM, false, 0, UINT64_MAX), 20);
    qk_key_limits odd = LIM;
    odd.default_size_bits = 0; /* cannot happen (config), must not divide by zero */
    CU_ASSERT_EQUAL(qk_etsi_stored_key_count(&odd, false, 0, 100), 0);
}

static int check(const char *body, size_t *num, uint32_t *size, qk_err *err)
{
    qk_etsi_key_req *r = calloc(1, sizeof *r);
    if (!r)
        return QK_ENOMEM;
    int rc = qk_etsi_parse_key_request(body, strlen(body), r, NULL, err);
    if (rc == 0)
        rc = qk_etsi_check_key_req(r, &LIM, "M", "S", num, size, err);
    free(r);
    return rc;
}

static void test_edges(void)
{
    size_t n = 0;
    uint32_t s = 0;
    qk_err err = {0};
    CU_ASSERT_EQUAL(check("{\"number\":10,\"size\":64}", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT_EQUAL(s, 64);
    CU_ASSERT_EQUAL(check("{\"size\":1024}", &n, &s, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(s, 1024);
    CU_ASSERT_EQUAL(check("{\"number\":11}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_key_per_request"));
    CU_ASSERT_EQUAL(check("{\"size\":56}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"size\":1032}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"size\":2147483648}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":-2147483649}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":null}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":true}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"number\":\"5\"}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("{\"extension_mandatory\":{}}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("null", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(check("\"x\"", &n, &s, &err), QK_EINVAL);
    /* multicast is off (max_SAE_ID_count 0): any additional slave is refused */
    CU_ASSERT_EQUAL(check("{\"additional_slave_SAE_IDs\":[\"T\"]}", &n, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "multicast"));
    /* a query integer beyond 10 digits, or with a '+', is not a number */
    int64_t v = 0;
    CU_ASSERT_EQUAL(qk_etsi_parse_int("+5", &v), -1);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("9999999999", &v), 0);
    CU_ASSERT_EQUAL(v, 9999999999LL);
    CU_ASSERT_EQUAL(qk_etsi_parse_int("--5", &v), -1);
}

/* At most 16 detail objects, however many unsupported parameters arrive. */
static void test_details_cap(void)
{
    char body[4096];
    size_t pos = (size_t)snprintf(body, sizeof body, "{\"extension_mandatory\":[");
    for (int i = 0; i < 40; i++)
        pos += (size_t)snprintf(body + pos, sizeof body - pos, "%s{\"abc_p%d\":%d}", i ? "," : "",
                                i, i);
    snprintf(body + pos, sizeof body - pos, "]}");
    qk_etsi_key_req *r = calloc(1, sizeof *r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    cJSON *det = NULL;
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_etsi_parse_key_request(body, strlen(body), r, &det, &err), QK_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, QK_ETSI_MSG_EXT_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(det);
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(det), 16);
    /* the first 16 parameters, in the order sent */
    for (int i = 0; i < 16; i++) {
        char want[64];
        snprintf(want, sizeof want, "abc_p%d is not supported", i);
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(det, i), "extension_mandatory_unsupported"));
        CU_ASSERT_STRING_EQUAL(v ? v : "", want);
    }
    cJSON_Delete(det);
    free(r);
}

int suite_etsi014_limits(void)
{
    CU_pSuite s = CU_add_suite("etsi014_limits", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "stored_count", test_stored_count) ||
        !CU_add_test(s, "edges", test_edges) || !CU_add_test(s, "details_cap", test_details_cap))
        return -1;
    return 0;
}
