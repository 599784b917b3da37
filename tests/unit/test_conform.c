/* test_conform.c - the conformance checkers' pure parts: check selection, the registry
 * (unique IDs, rules and references), XML escaping, evidence excerpts with key material
 * redacted, result rules (advisory -> warn, a failure stays), lenient key parsing. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "conform_etsi_util.h"
#include "conform_skip_util.h"
#include "secbuf.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_selected(void)
{
    CU_ASSERT_TRUE(cf_selected(NULL, "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("", "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("etsi.dec.get-one", "etsi.dec.get-one"));
    CU_ASSERT_FALSE(cf_selected("etsi.dec.get", "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("etsi.dec", "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("etsi", "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("etsi.dec.*", "etsi.dec.get-one"));
    CU_ASSERT_FALSE(cf_selected("etsi.enc.*", "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("skip.tls.*,etsi.dec.get-one", "etsi.dec.get-one"));
    CU_ASSERT_TRUE(cf_selected("skip.tls.*,etsi.dec.get-one", "skip.tls.13-psk-aes256"));
    CU_ASSERT_FALSE(cf_selected(",,", "etsi.dec.get-one"));
    CU_ASSERT_FALSE(cf_selected("*.nothing", "etsi.dec.get-one"));
}

static void check_table(cf_api api, const char *prefix)
{
    size_t n;
    const cf_check *c = cf_checks(api, &n);
    CU_ASSERT_TRUE_FATAL(n >= 30);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(c[i].api, api);
        CU_ASSERT_PTR_NOT_NULL(c[i].run);
        CU_ASSERT_EQUAL(strncmp(c[i].id, prefix, strlen(prefix)), 0);
        CU_ASSERT_TRUE(strlen(c[i].rule) > 10 && strlen(c[i].ref) > 3);
        for (size_t k = 0; k < i; k++)
            CU_ASSERT_NOT_EQUAL(strcmp(c[i].id, c[k].id), 0);
    }
}

static void test_registry(void)
{
    check_table(CF_API_ETSI, "etsi.");
    check_table(CF_API_SKIP, "skip.");
}

static void test_xml_escape(void)
{
    char out[64];
    cf_xml_escape("a&b<c>d\"e'f\x01g\nh", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "a&amp;b&lt;c&gt;d&quot;e&apos;f?g\nh");
    /* bounded: never a cut entity, always terminated */
    char small[8];
    size_t n = cf_xml_escape("ab&&&&", small, sizeof small);
    CU_ASSERT_STRING_EQUAL(small, "ab&amp;");
    CU_ASSERT_EQUAL(n, 7);
    cf_xml_escape("\xff\x7f", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "??");
}

static void test_excerpt(void)
{
    char out[256];
    cf_excerpt(S("{\"keys\":[{\"key_ID\":\"u1\",\"key\":\"c2VjcmV0c2VjcmV0\"}]}"), 200, out,
               sizeof out);
    CU_ASSERT_PTR_NULL(strstr(out, "c2VjcmV0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<16 chars redacted>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "u1"));
    cf_excerpt(S("{\"keyId\":\"ab\",\"key\":\"00ff00ff\",\"randomStr\":\"abcd\"}"), 200, out,
               sizeof out);
    CU_ASSERT_PTR_NULL(strstr(out, "00ff00ff"));
    CU_ASSERT_PTR_NULL(strstr(out, "abcd"));
    cf_excerpt(S("not json but maybe a key"), 200, out, sizeof out);
    CU_ASSERT_PTR_NULL(strstr(out, "maybe"));
    cf_excerpt(S("Not Found\x1b[31m"), 404, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Not Found"));
    CU_ASSERT_PTR_NULL(strchr(out, '\x1b'));
    cf_excerpt(NULL, 0, 400, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "(empty body)");
    char tiny[16];
    cf_excerpt(S("{\"message\":\"a very long message that does not fit\"}"), 400, tiny,
               sizeof tiny);
    CU_ASSERT_TRUE(strlen(tiny) < sizeof tiny);
}

static void dummy_run(cf_ctx *ctx, cf_result *r)
{
    (void)ctx;
    (void)r;
}

static void test_results(void)
{
    cf_check adv = {"x.y.adv", CF_API_ETSI, "rule", "ref", true, false, dummy_run};
    cf_check must = {"x.y.must", CF_API_ETSI, "rule", "ref", false, false, dummy_run};
    cf_result r = {.check = &adv, .status = CF_PASS};
    cf_violation(&r, "first %d", 1);
    CU_ASSERT_EQUAL(r.status, CF_WARN);
    CU_ASSERT_STRING_EQUAL(r.summary, "first 1");
    cf_violation(&r, "second");
    CU_ASSERT_STRING_EQUAL(r.summary, "first 1");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.evidence, "violation: second"));
    free(r.evidence);
    cf_result m = {.check = &must, .status = CF_PASS};
    cf_violation(&m, "broken\x1b");
    CU_ASSERT_EQUAL(m.status, CF_FAIL);
    CU_ASSERT_STRING_EQUAL(m.summary, "broken?");
    cf_set(&m, CF_SKIP, "later");
    CU_ASSERT_EQUAL(m.status, CF_FAIL);
    CU_ASSERT_STRING_EQUAL(m.summary, "broken?");
    for (int i = 0; i < 2000; i++) /* evidence is bounded */
        cf_note(&m, "line %d with some padding to make it longer than a few bytes", i);
    CU_ASSERT_TRUE(m.ev_len <= CF_EVIDENCE_MAX);
    free(m.evidence);
}

static void test_helpers(void)
{
    CU_ASSERT_TRUE(cf_is_json_type("application/json"));
    CU_ASSERT_TRUE(cf_is_json_type("application/json; charset=utf-8"));
    CU_ASSERT_FALSE(cf_is_json_type("application/jsonx"));
    CU_ASSERT_FALSE(cf_is_json_type("text/plain"));
    CU_ASSERT_FALSE(cf_is_json_type(""));
    char m[64];
    CU_ASSERT_TRUE(cf_has_message(S("{\"message\":\"m\"}"), m, sizeof m));
    CU_ASSERT_STRING_EQUAL(m, "m");
    CU_ASSERT_FALSE(cf_has_message(S("{\"error\":\"m\"}"), m, sizeof m));
    CU_ASSERT_FALSE(cf_has_message(S("{\"message\":1}"), m, sizeof m));
    CU_ASSERT_FALSE(cf_has_message(S("[]"), m, sizeof m));
    bool up = false;
    CU_ASSERT_TRUE(cs_is_hex("00aF", &up));
    CU_ASSERT_TRUE(up);
    CU_ASSERT_FALSE(cs_is_hex("00-a", &up));
    CU_ASSERT_FALSE(cs_is_hex("", &up));
    qkc_error e = {.cls = QKC_ECONNECT};
    snprintf(e.msg, sizeof e.msg, "Send failure: Connection reset by peer");
    CU_ASSERT_TRUE(cf_is_refusal(&e));
    snprintf(e.msg, sizeof e.msg, "Failed to connect: Connection refused");
    CU_ASSERT_FALSE(cf_is_refusal(&e));
    e.cls = QKC_ETLS;
    CU_ASSERT_TRUE(cf_is_refusal(&e));
}

static void test_parse_keys(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_secure_init(), 0);
    ce_keys k;
    char why[128];
    CU_ASSERT_EQUAL_FATAL(
        ce_parse_keys(S("{\"Keys\":[{\"key_ID\":\"a\",\"key\":\"AAAA\"},{\"key_ID\":\"b\","
                        "\"key\":\"QUJD\"}]}"),
                      &k, why, sizeof why),
        0);
    CU_ASSERT_EQUAL(k.n, 2);
    CU_ASSERT_STRING_EQUAL(k.id[1], "b");
    CU_ASSERT_STRING_EQUAL(k.key[1], "QUJD");
    ce_keys_free(&k);
    CU_ASSERT_EQUAL(ce_parse_keys(S("{\"keys\":{}}"), &k, why, sizeof why), -1);
    CU_ASSERT_EQUAL(
        ce_parse_keys(S("{\"keys\":[{\"key_ID\":1,\"key\":\"x\"}]}"), &k, why, sizeof why), -1);
    CU_ASSERT_EQUAL(ce_parse_keys(S("[1]"), &k, why, sizeof why), -1);
    CU_ASSERT_EQUAL(ce_parse_keys(NULL, 0, &k, why, sizeof why), -1);
    cs_key sk;
    CU_ASSERT_EQUAL_FATAL(
        cs_parse_key(S("{\"keyId\":\"ab\",\"key\":\"00ff\"}"), &sk, why, sizeof why), 0);
    CU_ASSERT_STRING_EQUAL(sk.keyId, "ab");
    CU_ASSERT_STRING_EQUAL(sk.key, "00ff");
    cs_key_free(&sk);
    CU_ASSERT_EQUAL(cs_parse_key(S("{\"keyID\":\"ab\",\"key\":\"00ff\"}"), &sk, why, sizeof why),
                    -1);
    CU_ASSERT_EQUAL(cs_parse_key(S("{\"keyId\":\"ab\",\"key\":true}"), &sk, why, sizeof why), -1);
}

int suite_conform(void)
{
    CU_pSuite s = CU_add_suite("conform", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "selection patterns", test_selected) ||
        !CU_add_test(s, "registry: unique IDs, rules, references", test_registry) ||
        !CU_add_test(s, "XML escaping", test_xml_escape) ||
        !CU_add_test(s, "evidence excerpts redact keys", test_excerpt) ||
        !CU_add_test(s, "result rules", test_results) || !CU_add_test(s, "helpers", test_helpers) ||
        !CU_add_test(s, "lenient key parsing", test_parse_keys))
        return -1;
    return 0;
}
