/* test_skip.c - the SKIP parsing layer (skip-server/skip_parse.c): routes, keyId forms, bit
 * counts, system IDs, glob lists, client rules and the JSON answers; and the handler
 * (skip-server/skip.c) on the request envelope, called with qk_http_handler_call on a real
 * qk_kms (tests/unit/kms_fixture.h): configurator, 404/405/403, capabilities, entropy. Requests
 * with query parameters need a connection: tests/integration/skip_conformance.sh. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "kms_fixture.h"
#include "secbuf.h"
#include "skip.h"
#include "skip_parse.h"

static void test_path(void)
{
    char id[QK_SKIP_KEY_ID_HEX_MAX + 2];
    CU_ASSERT_EQUAL(qk_skip_parse_path("/capabilities", id, sizeof id), QK_SKIP_ROUTE_CAPABILITIES);
    CU_ASSERT_EQUAL(qk_skip_parse_path("/key", id, sizeof id), QK_SKIP_ROUTE_KEY);
    CU_ASSERT_EQUAL(qk_skip_parse_path("/key?remoteSystemID=B", id, sizeof id), QK_SKIP_ROUTE_KEY);
    CU_ASSERT_EQUAL(qk_skip_parse_path("/entropy", id, sizeof id), QK_SKIP_ROUTE_ENTROPY);
    CU_ASSERT_EQUAL(qk_skip_parse_path("/key/AbC123", id, sizeof id), QK_SKIP_ROUTE_KEY_ID);
    CU_ASSERT_STRING_EQUAL(id, "AbC123");
    CU_ASSERT_EQUAL(qk_skip_parse_path("/key/", id, sizeof id), QK_SKIP_ROUTE_KEY_ID);
    CU_ASSERT_STRING_EQUAL(id, "");
    CU_ASSERT_EQUAL(qk_skip_parse_path("/key/ab?x=1", id, sizeof id), QK_SKIP_ROUTE_KEY_ID);
    CU_ASSERT_STRING_EQUAL(id, "ab");
    /* Not SKIP paths: 404. */
    static const char *const none[] = {"/",
                                       "",
                                       "/keys",
                                       "/key/a/b",
                                       "/Key",
                                       "/entropy/",
                                       "/capabilities/x",
                                       "/api/v1/keys/x/status",
                                       "/capabilitiesx",
                                       "/keyx"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        CU_ASSERT_EQUAL(qk_skip_parse_path(none[i], id, sizeof id), QK_SKIP_ROUTE_NONE);
    CU_ASSERT_EQUAL(qk_skip_parse_path(NULL, id, sizeof id), QK_SKIP_ROUTE_NONE);
    /* An overlong keyId is cut to cap-1 bytes, which the keyId check refuses. */
    char longp[400] = "/key/";
    memset(longp + 5, 'a', 300);
    longp[305] = '\0';
    CU_ASSERT_EQUAL(qk_skip_parse_path(longp, id, sizeof id), QK_SKIP_ROUTE_KEY_ID);
    CU_ASSERT_EQUAL(strlen(id), sizeof id - 1);
    char out[QK_KEY_ID_LEN + 1];
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_skip_parse_key_id(id, out, &err), QK_EINVAL);
}

static void test_key_id(void)
{
    char out[QK_KEY_ID_LEN + 1];
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_skip_parse_key_id("0123456789abcdef0123456789ABCDEF", out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "01234567-89ab-cdef-0123-456789abcdef");
    /* well-formed hex of another length: not one of ours */
    CU_ASSERT_EQUAL(
        qk_skip_parse_key_id("1726e9AE76234FB1dd1283d4dca1911e1f93864d70f3069e", out, &err),
        QK_ENOTFOUND);
    CU_ASSERT_EQUAL(qk_skip_parse_key_id("ab", out, &err), QK_ENOTFOUND);
    /* malformed */
    CU_ASSERT_EQUAL(qk_skip_parse_key_id("", out, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_skip_parse_key_id(NULL, out, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_skip_parse_key_id("0123456789abcdef0123456789abcdeg", out, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed"));
    CU_ASSERT_EQUAL(qk_skip_parse_key_id("01234567-89ab-cdef-0123-456789abcdef", out, &err),
                    QK_EINVAL);
    char big[200];
    memset(big, 'a', 129);
    big[129] = '\0';
    CU_ASSERT_EQUAL(qk_skip_parse_key_id(big, out, &err), QK_EINVAL);
    big[128] = '\0';
    CU_ASSERT_EQUAL(qk_skip_parse_key_id(big, out, &err), QK_ENOTFOUND);
    /* round trip with the ETSI form */
    qk_uuid u;
    qk_uuid_v4(&u);
    char canon[QK_UUID_STR_LEN + 1], hex[QK_UUID_HEX_LEN + 1];
    qk_uuid_format(&u, canon);
    CU_ASSERT_EQUAL(qk_skip_key_id_of(canon, hex), 0);
    char want[QK_UUID_HEX_LEN + 1];
    size_t w = 0;
    for (const char *c = canon; *c; c++)
        if (*c != '-')
            want[w++] = *c;
    want[w] = '\0';
    CU_ASSERT_EQUAL(w, 32);
    CU_ASSERT_STRING_EQUAL(hex, want);
    CU_ASSERT_EQUAL(qk_skip_parse_key_id(hex, out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, canon);
    CU_ASSERT_EQUAL(qk_skip_key_id_of("not-a-uuid", hex), -1);
}

static void test_bits(void)
{
    uint32_t v = 0;
    qk_err err = {0};
    CU_ASSERT_EQUAL(qk_skip_parse_bits("size", "128", 64, 8192, &v, &err), 0);
    CU_ASSERT_EQUAL(v, 128);
    CU_ASSERT_EQUAL(qk_skip_parse_bits("size", "192", 64, 8192, &v, &err), 0);
    CU_ASSERT_EQUAL(qk_skip_parse_bits("size", "8192", 64, 8192, &v, &err), 0);
    static const char *const bad[] = {"",   "0",  "-8",   "+8",   "12",       "100", "abc",
                                      " 8", "8 ", "0x10", "8200", "99999999", "1e3", "8192.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(qk_skip_parse_bits("size", bad[i], 64, 8192, &v, &err), QK_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "size"));
    }
    CU_ASSERT_EQUAL(qk_skip_parse_bits("minentropy", NULL, 8, 256, &v, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_skip_parse_bits("minentropy", "56", 64, 256, &v, &err), QK_EINVAL);
}

static void test_system_id_and_globs(void)
{
    CU_ASSERT(qk_skip_system_id_valid("KME_B"));
    CU_ASSERT(qk_skip_system_id_valid("a.b-c_1"));
    CU_ASSERT(!qk_skip_system_id_valid(""));
    CU_ASSERT(!qk_skip_system_id_valid("KME B"));
    CU_ASSERT(!qk_skip_system_id_valid("KME*"));
    CU_ASSERT(!qk_skip_system_id_valid("skip:KME"));
    char l65[70];
    memset(l65, 'x', 65);
    l65[65] = '\0';
    CU_ASSERT(!qk_skip_system_id_valid(l65));
    l65[64] = '\0';
    CU_ASSERT(qk_skip_system_id_valid(l65));

    const char *list = "KME_B, KP_*_LOC1 ,KME_[CD]?,Z[!0-9]";
    CU_ASSERT(qk_skip_globs_match(list, "KME_B"));
    CU_ASSERT(qk_skip_globs_match(list, "KP_ALICE_LOC1"));
    CU_ASSERT(qk_skip_globs_match(list, "KP_BOB_LOC1"));
    CU_ASSERT(!qk_skip_globs_match(list, "KP_BOB_LOC2"));
    CU_ASSERT(qk_skip_globs_match(list, "KME_C1"));
    CU_ASSERT(!qk_skip_globs_match(list, "KME_C"));
    CU_ASSERT(!qk_skip_globs_match(list, "KME_E1"));
    CU_ASSERT(qk_skip_globs_match(list, "Zx"));
    CU_ASSERT(!qk_skip_globs_match(list, "Z1"));
    CU_ASSERT(!qk_skip_globs_match(list, "KME_BB"));
    CU_ASSERT(!qk_skip_globs_match("", "KME_B"));
    CU_ASSERT(!qk_skip_globs_match(NULL, "KME_B"));
    CU_ASSERT(qk_skip_globs_match("*", "anything"));

    char id[QK_SKIP_IDENTITY_MAX];
    CU_ASSERT_EQUAL(qk_skip_identity("KME_A", id, sizeof id), 0);
    CU_ASSERT_STRING_EQUAL(id, "skip:KME_A");
    CU_ASSERT_EQUAL(qk_skip_identity("bad id", id, sizeof id), -1);
    CU_ASSERT_EQUAL(qk_skip_identity("KME_A", id, 6), -1);
}

static void test_client_rules(void)
{
    const qk_skip_client_rule rules[] = {{"enc-a1", "KME_B"}, {"enc-a2", "KME_?,KME_Z*"}};
    CU_ASSERT_STRING_EQUAL(qk_skip_client_globs(rules, 2, NULL, "enc-a1"), "KME_B");
    CU_ASSERT_STRING_EQUAL(qk_skip_client_globs(rules, 2, NULL, "enc-a2"), "KME_?,KME_Z*");
    CU_ASSERT_PTR_NULL(qk_skip_client_globs(rules, 2, NULL, "enc-a3"));
    CU_ASSERT_PTR_NULL(qk_skip_client_globs(rules, 2, "", "enc-a3"));
    CU_ASSERT_PTR_NULL(qk_skip_client_globs(rules, 2, NULL, NULL)); /* anonymous, no default */
    CU_ASSERT_STRING_EQUAL(qk_skip_client_globs(rules, 2, "KME_B", NULL), "KME_B");
    CU_ASSERT_STRING_EQUAL(qk_skip_client_globs(rules, 2, "KME_C", "ENC-A1"), "KME_C");
    /* the client's own rule wins over the default */
    CU_ASSERT_STRING_EQUAL(qk_skip_client_globs(rules, 2, "*", "enc-a1"), "KME_B");
}

/* Lower-case hex of bytes, by snprintf, not the production codec. */
static void hex_ref(const uint8_t *p, size_t n, char *out, size_t cap)
{
    CU_ASSERT_FATAL(2 * n + 1 <= cap);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, cap - 2 * i, "%02x", p[i]);
}

/* Decode hex of lower-case digits only: the number of bytes, or -1. */
static long unhex_lower(const char *s, uint8_t *out, size_t cap)
{
    size_t l = strlen(s);
    if (l % 2 || l / 2 > cap)
        return -1;
    for (size_t i = 0; i < l; i++) {
        const char *d = strchr("0123456789abcdef", s[i]);
        if (!d || !*d)
            return -1;
        size_t v = (size_t)(d - "0123456789abcdef");
        out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] | v) : v << 4);
    }
    return (long)(l / 2);
}

static void test_answers(void)
{
    uint8_t key[32];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(0xa0 + i);
    char *json = NULL;
    size_t len = 0;
    /* the whole key: every hex digit, lower case (draft-cisco-skip-02 sends "key" in hex; the
     * lower case is this server's, skip-server/README.md) */
    char hex[2 * sizeof key + 1], want[256];
    hex_ref(key, sizeof key, hex, sizeof hex);
    CU_ASSERT_EQUAL_FATAL(
        qk_skip_key_json("01234567-89ab-cdef-0123-456789abcdef", key, sizeof key, &json, &len), 0);
    CU_ASSERT_EQUAL(len, strlen(json));
    snprintf(want, sizeof want, "{\"keyId\":\"0123456789abcdef0123456789abcdef\",\"key\":\"%s\"}",
             hex);
    CU_ASSERT_STRING_EQUAL(json, want);
    cJSON *o = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "keyId")),
                           "0123456789abcdef0123456789abcdef");
    const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "key"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k, hex);
    uint8_t back[64];
    CU_ASSERT_EQUAL(unhex_lower(k, back, sizeof back), (long)sizeof key);
    CU_ASSERT_EQUAL(memcmp(back, key, sizeof key), 0);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 2);
    cJSON_Delete(o);
    qk_secure_free(json);
    /* an odd length, and bytes with every nibble value */
    uint8_t odd[17];
    for (size_t i = 0; i < sizeof odd; i++)
        odd[i] = (uint8_t)(i * 0x11 + 0x0f);
    hex_ref(odd, sizeof odd, hex, sizeof hex);
    CU_ASSERT_EQUAL_FATAL(
        qk_skip_key_json("01234567-89ab-cdef-0123-456789abcdef", odd, sizeof odd, &json, &len), 0);
    snprintf(want, sizeof want, "{\"keyId\":\"0123456789abcdef0123456789abcdef\",\"key\":\"%s\"}",
             hex);
    CU_ASSERT_STRING_EQUAL(json, want);
    CU_ASSERT_EQUAL(len, strlen(want));
    qk_secure_free(json);
    CU_ASSERT_EQUAL(qk_skip_key_json("bad", key, sizeof key, &json, &len), -1);
    CU_ASSERT_PTR_NULL(json);

    /* the entropy answer: randomStr is exactly the bytes fed in, in hex */
    hex_ref(key, 16, hex, sizeof hex);
    CU_ASSERT_EQUAL_FATAL(qk_skip_entropy_json(key, 16, 128, &json, &len), 0);
    CU_ASSERT_EQUAL(len, strlen(json));
    snprintf(want, sizeof want, "{\"randomStr\":\"%s\",\"minentropy\":128}", hex);
    CU_ASSERT_STRING_EQUAL(json, want);
    o = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    const char *rs = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "randomStr"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
    CU_ASSERT_STRING_EQUAL(rs, hex);
    CU_ASSERT_EQUAL(unhex_lower(rs, back, sizeof back), 16);
    CU_ASSERT_EQUAL(memcmp(back, key, 16), 0);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "minentropy")), 128);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 2);
    cJSON_Delete(o);
    qk_secure_free(json);
    CU_ASSERT_EQUAL(qk_skip_entropy_json(key, 0, 128, &json, &len), -1);
    CU_ASSERT_PTR_NULL(json);

    char *caps = qk_skip_capabilities_json(true, "QKD", "KME_A", "KME_B,KP_*", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(caps);
    o = cJSON_Parse(caps);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "entropy")));
    CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "key")));
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(o, "algorithm")->valuestring, "QKD");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(o, "localSystemID")->valuestring,
                           "KME_A");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 5);
    cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "remoteSystemID");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(r), 2);
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(r, 0)->valuestring, "KME_B");
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(r, 1)->valuestring, "KP_*");
    cJSON_Delete(o);
    free(caps);
    /* loopback pair mode lists the node itself once */
    caps = qk_skip_capabilities_json(false, "QKD", "KME_A", "KME_B", true);
    o = cJSON_Parse(caps);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    r = cJSON_GetObjectItemCaseSensitive(o, "remoteSystemID");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(r), 2);
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(r, 0)->valuestring, "KME_B");
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(r, 1)->valuestring, "KME_A");
    CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "entropy")));
    cJSON_Delete(o);
    free(caps);
    caps = qk_skip_capabilities_json(true, "QKD", "KME_A", "KME_A,KME_B", true);
    o = cJSON_Parse(caps);
    r = cJSON_GetObjectItemCaseSensitive(o, "remoteSystemID");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(r), 2);
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(r, 0)->valuestring, "KME_A");
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(r, 1)->valuestring, "KME_B");
    cJSON_Delete(o);
    free(caps);
}

/* ---- the handler ------------------------------------------------------------------------ */

static const qk_skip_client_rule RULES[] = {{"enc1", "KME_*"}};

static qk_skip_options handler_opts(qk_kms *k)
{
    qk_skip_options o = {
        .kms = k,
        .remote_system_ids = "KME_B",
        .algorithm = "QKD",
        .entropy = true,
        .max_entropy_bits = 1024,
        .default_client_remote_systems = "",
        .clients = RULES,
        .nclients = 1,
    };
    return o;
}

static void skip_call(qk_skip_handler *h, const char *client, const char *method, const char *path,
                      qk_http_reply *rep)
{
    qk_peer_identity id;
    memset(&id, 0, sizeof id);
    if (client) {
        id.kind = QK_ID_PSK;
        snprintf(id.id, sizeof id.id, "%s", client);
    }
    qk_http_request req = {
        .listener = "skip", .method = method, .path = path, .caller = &id, .body = ""};
    qk_http_handler_call(&h->super, &req, rep);
}

static void test_handler_configure(void)
{
    qk_skip_options o = handler_opts(NULL);
    qk_skip_handler h;
    memset(&h, 0xa5, sizeof h);
    qk_skip_configure(&h, &o);
    o.algorithm = "changed"; /* the handler holds a copy */
    CU_ASSERT_PTR_NOT_NULL(h.super.on_req);
    CU_ASSERT_EQUAL(h.super.too_large_status, 400);
    CU_ASSERT_PTR_NULL(h.super.observe);
    CU_ASSERT_STRING_EQUAL(h.opts.algorithm, "QKD");
    CU_ASSERT_EQUAL(h.opts.nclients, 1);
}

static const char *reply_message(const qk_http_reply *rep, char *buf, size_t cap)
{
    buf[0] = '\0';
    cJSON *o = rep->body ? cJSON_ParseWithLength(rep->body, rep->len) : NULL;
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(o, "message"));
    snprintf(buf, cap, "%s", m ? m : "");
    cJSON_Delete(o);
    return buf;
}

static void test_handler_routes(void)
{
    kf_kme f;
    CU_ASSERT_FATAL(kf_open(&f, NULL) == 0);
    qk_skip_options o = handler_opts(f.kms);
    qk_skip_handler h;
    qk_skip_configure(&h, &o);
    qk_http_reply rep;
    char msg[128];
    skip_call(&h, "enc1", "GET", "/nothing", &rep);
    CU_ASSERT_EQUAL(rep.status, 404);
    qk_http_reply_clear(&rep);
    skip_call(&h, "enc1", "POST", "/key", &rep);
    CU_ASSERT_EQUAL(rep.status, 405);
    CU_ASSERT_STRING_EQUAL(rep.allow, "GET");
    qk_http_reply_clear(&rep);
    /* no rule and an empty default: 403, the log detail names the client */
    skip_call(&h, "stranger", "GET", "/capabilities", &rep);
    CU_ASSERT_EQUAL(rep.status, 403);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "stranger"));
    qk_http_reply_clear(&rep);
    skip_call(&h, NULL, "GET", "/capabilities", &rep);
    CU_ASSERT_EQUAL(rep.status, 403);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "(anonymous)"));
    qk_http_reply_clear(&rep);
    skip_call(&h, "enc1", "GET", "/capabilities", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_FALSE(rep.secret);
    cJSON *c = cJSON_ParseWithLength(rep.body, rep.len);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(c, "localSystemID")), KF_NODE);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(c, "algorithm")), "QKD");
    CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(c, "entropy")));
    CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(c, "key")));
    const cJSON *remote = cJSON_GetObjectItem(c, "remoteSystemID");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(remote), 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetArrayItem(remote, 0)), "KME_B");
    cJSON_Delete(c);
    qk_http_reply_clear(&rep);
    /* /key without remoteSystemID (no query at all here) */
    skip_call(&h, "enc1", "GET", "/key", &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(reply_message(&rep, msg, sizeof msg),
                           "remoteSystemID query parameter is required");
    qk_http_reply_clear(&rep);
    /* /entropy: 256 bits by default, a secret body */
    skip_call(&h, "enc1", "GET", "/entropy", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_TRUE(rep.secret);
    CU_ASSERT_PTR_NULL(rep.key_ids);
    cJSON *e = rep.body ? cJSON_ParseWithLength(rep.body, rep.len) : NULL;
    const char *rnd = cJSON_GetStringValue(cJSON_GetObjectItem(e, "randomStr"));
    uint8_t bytes[64];
    CU_ASSERT_EQUAL(rnd ? unhex_lower(rnd, bytes, sizeof bytes) : -1, 32); /* 64 lower-case hex */
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "minentropy")), 256);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(e), 2);
    cJSON_Delete(e);
    qk_http_reply_clear(&rep);
    o.entropy = false;
    qk_skip_configure(&h, &o);
    skip_call(&h, "enc1", "GET", "/entropy", &rep);
    CU_ASSERT_EQUAL(rep.status, 503);
    qk_http_reply_clear(&rep);
    kf_close(&f);
}

int suite_skip(void)
{
    CU_pSuite s = CU_add_suite("skip", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "path", test_path) || !CU_add_test(s, "keyId", test_key_id) ||
        !CU_add_test(s, "bits", test_bits) ||
        !CU_add_test(s, "system IDs and globs", test_system_id_and_globs) ||
        !CU_add_test(s, "client rules", test_client_rules) ||
        !CU_add_test(s, "answers", test_answers) ||
        !CU_add_test(s, "handler configure", test_handler_configure) ||
        !CU_add_test(s, "handler routes", test_handler_routes))
        return -1;
    return 0;
}
