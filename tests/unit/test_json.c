/* test_json.c - strict JSON parsing, typed member getters and the lenient ones of displays. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

static cJSON *parse(const char *s, qk_err *err)
{
    return qk_json_parse(s, strlen(s), 4096, err);
}

static void test_parse_good_and_bad(void)
{
    qk_err err;
    cJSON *j = parse("  {\"a\": [1, 2, {\"b\": null}]}  \n", &err);
    CU_ASSERT_PTR_NOT_NULL(j);
    cJSON_Delete(j);

    qk_err_clear(&err);
    CU_ASSERT_PTR_NULL(parse("{\"a\":1} x", &err)); /* trailing garbage */
    CU_ASSERT_EQUAL(err.code, QK_EINVAL);
    CU_ASSERT(strlen(err.msg) > 0);
    CU_ASSERT_PTR_NULL(parse("{\"a\":1}{}", &err));
    CU_ASSERT_PTR_NULL(parse("{\"a\":", &err));
    CU_ASSERT_PTR_NULL(parse("", &err));
    CU_ASSERT_PTR_NULL(parse("   ", &err));
    CU_ASSERT_PTR_NULL(parse("{'a':1}", &err));
    /* a string that decodes to a NUL is refused, in a value or a member name, anywhere in the
     * tree (issue 17 item 5); an escaped backslash followed by "u0000" is no such string, nor
     * is U+0001 */
    CU_ASSERT_PTR_NULL(parse("{\"a\":\"SAE_B2\\u0000x\"}", &err));
    CU_ASSERT_EQUAL(err.code, QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "NUL"));
    CU_ASSERT_PTR_NULL(parse("{\"a\\u0000b\":1}", &err));
    CU_ASSERT_PTR_NULL(parse("[[{\"a\":[\"x\",\"\\u0000\"]}]]", &err));
    CU_ASSERT_PTR_NULL(parse("\"\\n\\u0000\"", &err));
    j = parse("{\"a\":\"\\\\u0000\",\"b\":\"\\u0001\",\"c\":\"\\u00000\"}", &err);
    CU_ASSERT_PTR_NULL(j); /* "c": U+0000, then a "0" */
    j = parse("{\"a\":\"\\\\u0000\",\"b\":\"\\u0001\",\"c\":\"\\u0100\"}", &err);
    CU_ASSERT_PTR_NOT_NULL(j);
    CU_ASSERT_STRING_EQUAL(qk_json_str_or(j, "a", ""), "\\u0000");
    CU_ASSERT_STRING_EQUAL(qk_json_str_or(j, "b", ""), "\x01");
    cJSON_Delete(j);
    /* an embedded NUL must not hide trailing garbage */
    CU_ASSERT_PTR_NULL(qk_json_parse("{}\0garbage", 10, 100, &err));
    /* deep nesting is refused */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CU_ASSERT_PTR_NULL(qk_json_parse(deep, sizeof deep, sizeof deep, &err));
    /* brackets inside strings do not count as nesting */
    char str[120] = "\"";
    memset(str + 1, '[', 100);
    strcpy(str + 101, "\"");
    j = parse(str, &err);
    CU_ASSERT_PTR_NOT_NULL(j);
    cJSON_Delete(j);
}

static void test_parse_max_len(void)
{
    qk_err err;
    const char *s = "{\"key\":\"value\"}"; /* 15 bytes */
    cJSON *j = qk_json_parse(s, 15, 15, &err);
    CU_ASSERT_PTR_NOT_NULL(j);
    cJSON_Delete(j);
    qk_err_clear(&err);
    CU_ASSERT_PTR_NULL(qk_json_parse(s, 15, 14, &err));
    CU_ASSERT_EQUAL(err.code, QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "too large"));
}

static void test_parse_not_nul_terminated(void)
{
    /* The value is followed in memory by more bytes that are not part of it. */
    char buf[32];
    memcpy(buf, "{\"n\":42}XXXXXXXXXXXXXXXXXXXXXXXX", 32);
    qk_err err;
    cJSON *j = qk_json_parse(buf, 8, 100, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int64_t n = 0;
    CU_ASSERT_EQUAL(qk_json_get_int(j, "n", true, 0, 100, &n, NULL, &err), 0);
    CU_ASSERT_EQUAL(n, 42);
    cJSON_Delete(j);
    /* a prefix that cuts the value is invalid */
    CU_ASSERT_PTR_NULL(qk_json_parse(buf, 7, 100, &err));
}

static void test_getters(void)
{
    qk_err err;
    cJSON *j = parse("{\"s\":\"x\",\"i\":7,\"f\":1.5,\"big\":9007199254740993,\"neg\":-3,"
                     "\"safe\":9007199254740991,\"b\":true,\"a\":[1,\"two\"],\"e\":1e2,\"n\":null}",
                     &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *s = NULL;
    bool present = false;
    CU_ASSERT_EQUAL(qk_json_get_string(j, "s", true, &s, &present, &err), 0);
    CU_ASSERT(present);
    CU_ASSERT_STRING_EQUAL(s, "x");
    /* optional absent */
    present = true;
    CU_ASSERT_EQUAL(qk_json_get_string(j, "zz", false, &s, &present, &err), 0);
    CU_ASSERT_FALSE(present);
    /* required absent: the message names the member */
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_json_get_string(j, "zz", true, &s, &present, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "zz"));
    /* wrong types */
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_json_get_string(j, "i", true, &s, NULL, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "\"i\""));
    CU_ASSERT_EQUAL(qk_json_get_string(j, "n", false, &s, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_bool(j, "s", true, NULL, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "s", true, 0, 10, NULL, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "b", true, 0, 10, NULL, NULL, &err), QK_EINVAL);

    int64_t v = 0;
    CU_ASSERT_EQUAL(qk_json_get_int(j, "i", true, 0, 10, &v, NULL, &err), 0);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "e", true, 0, 1000, &v, NULL, &err), 0);
    CU_ASSERT_EQUAL(v, 100);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "neg", true, -5, 5, &v, NULL, &err), 0);
    CU_ASSERT_EQUAL(v, -3);
    /* bounds */
    CU_ASSERT_EQUAL(qk_json_get_int(j, "i", true, 0, 6, &v, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "i", true, 8, 10, &v, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "i", true, 7, 7, &v, NULL, &err), 0);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "neg", true, 0, 5, &v, NULL, &err), QK_EINVAL);
    /* non-integral and beyond 2^53 */
    CU_ASSERT_EQUAL(qk_json_get_int(j, "f", true, 0, 10, &v, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "big", true, 0, INT64_MAX, &v, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_int(j, "safe", true, 0, INT64_MAX, &v, NULL, &err), 0);
    CU_ASSERT_EQUAL(v, 9007199254740991LL);

    bool b = false;
    CU_ASSERT_EQUAL(qk_json_get_bool(j, "b", true, &b, &present, &err), 0);
    CU_ASSERT(b);
    const cJSON *arr = NULL;
    CU_ASSERT_EQUAL(qk_json_get_array(j, "a", true, &arr, &err), 0);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(arr), 2);
    CU_ASSERT_EQUAL(qk_json_get_array(j, "s", true, &arr, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_json_get_array(j, "zz", false, &arr, &err), 0);
    CU_ASSERT_PTR_NULL(arr);
    CU_ASSERT_EQUAL(qk_json_get_array(j, "zz", true, &arr, &err), QK_EINVAL);
    /* not an object */
    const cJSON *a0 = cJSON_GetArrayItem(arr ? arr : cJSON_GetObjectItem(j, "a"), 0);
    CU_ASSERT_EQUAL(qk_json_get_string(a0, "x", false, &s, NULL, &err), QK_EINVAL);
    cJSON_Delete(j);
}

static void test_duplicates_and_print(void)
{
    qk_err err;
    cJSON *j = parse("{\"n\":1,\"n\":2}", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int64_t v;
    CU_ASSERT_EQUAL(qk_json_get_int(j, "n", true, 0, 10, &v, NULL, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "duplicate"));
    char *txt = qk_json_print(j);
    CU_ASSERT_PTR_NOT_NULL(txt);
    CU_ASSERT_STRING_EQUAL(txt, "{\"n\":1,\"n\":2}");
    free(txt);
    cJSON_Delete(j);

    char *m = qk_json_message("bad \"size\"\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m, "{\"message\":\"bad \\\"size\\\"\\n\"}");
    free(m);
}

/* The lenient getters of status displays: the member, else the default (absent, other type,
 * not an object); the first of a duplicated name. */
static void test_getters_with_default(void)
{
    qk_err err;
    cJSON *j = parse("{\"s\":\"x\",\"e\":\"\",\"n\":0.25,\"z\":null,\"d\":3,\"d\":4,"
                     "\"a\":[1]}",
                     &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(qk_json_str_or(j, "s", "?"), "x");
    CU_ASSERT_STRING_EQUAL(qk_json_str_or(j, "e", "?"), "");
    CU_ASSERT_STRING_EQUAL(qk_json_str_or(j, "missing", "?"), "?");
    CU_ASSERT_PTR_NULL(qk_json_str_or(j, "n", NULL));
    CU_ASSERT_PTR_NULL(qk_json_str_or(j, "z", NULL));
    CU_ASSERT_DOUBLE_EQUAL(qk_json_num_or(j, "n", -1), 0.25, 0);
    CU_ASSERT_DOUBLE_EQUAL(qk_json_num_or(j, "d", -1), 3, 0);
    CU_ASSERT_DOUBLE_EQUAL(qk_json_num_or(j, "s", -1), -1, 0);
    CU_ASSERT_DOUBLE_EQUAL(qk_json_num_or(j, "missing", 0), 0, 0);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
    CU_ASSERT_STRING_EQUAL(qk_json_str_or(a, "s", "?"), "?");
    CU_ASSERT_DOUBLE_EQUAL(qk_json_num_or(NULL, "n", 7), 7, 0);
    CU_ASSERT_PTR_NULL(qk_json_str_or(NULL, "s", NULL));
    cJSON_Delete(j);
}

int suite_json(void)
{
    CU_pSuite s = CU_add_suite("json", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "parse good/bad", test_parse_good_and_bad) ||
        !CU_add_test(s, "parse max_len", test_parse_max_len) ||
        !CU_add_test(s, "parse non-NUL-terminated", test_parse_not_nul_terminated) ||
        !CU_add_test(s, "typed getters", test_getters) ||
        !CU_add_test(s, "getters with a default", test_getters_with_default) ||
        !CU_add_test(s, "duplicates, print, message", test_duplicates_and_print))
        return -1;
    return 0;
}
