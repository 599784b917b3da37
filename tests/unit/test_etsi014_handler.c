/* test_etsi014_handler.c - the ETSI 014 handler (etsi014/etsi014.c) on the request envelope,
 * called with qk_http_handler_call on a real same-KME qk_kms (tests/unit/kms_fixture.h): the
 * configurator, the caller checks (401), methods (400 with Allow), a POST enc_keys whose key
 * container is a secret body with the key IDs for the log, max_key_count from the core
 * (QK_EQUOTA -> 503 with the spec-conformant message, detail naming the slave), dec_keys once
 * only, and the extension_mandatory details. GET query parameters need a connection and are
 * covered by tests/integration/etsi014_conformance.sh. */
#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etsi014.h"
#include "etsi014_parse.h"
#include "kms_fixture.h"

static kf_kme F;
static qk_etsi014_handler H;

static void setup(void)
{
    static const char *const saes[] = {"SAE_A1", "SAE_A2", "SAE_A3", NULL};
    CU_ASSERT_FATAL(kf_open(&F, saes) == 0);
    qk_etsi014_configure(&H, F.kms);
}

static void teardown(void)
{
    kf_close(&F);
}

/* Call the handler as `sae` (NULL: unauthenticated). */
static void call(const char *sae, const char *method, const char *path, const char *body,
                 qk_http_reply *rep)
{
    qk_peer_identity id;
    memset(&id, 0, sizeof id);
    if (sae) {
        id.kind = QK_ID_CERT;
        snprintf(id.id, sizeof id.id, "%s", sae);
    }
    qk_http_request req = {
        .listener = "etsi014",
        .method = method,
        .path = path,
        .caller = &id,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
    };
    qk_http_handler_call(&H.super, &req, rep);
}

/* The reply's "message", or "" (static buffer). */
static const char *message(const qk_http_reply *rep)
{
    static char msg[256];
    msg[0] = '\0';
    cJSON *o = rep->body ? cJSON_ParseWithLength(rep->body, rep->len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (cJSON_IsString(m))
        snprintf(msg, sizeof msg, "%s", m->valuestring);
    cJSON_Delete(o);
    return msg;
}

#define KEY_BYTES 64 /* the enc_keys requests below ask for 512-bit keys */

/* The keys of a Key container reply (ETSI GS QKD 014 V1.1.1 clause 6.3), whole: each key_ID,
 * and each key decoded from base64 by OpenSSL (not the production codec) into exactly
 * KEY_BYTES bytes. The number of keys, or -1 if the container is not that. */
static int container_keys(const qk_http_reply *rep, char ids[][QK_KEY_ID_LEN + 1],
                          uint8_t keys[][KEY_BYTES], int max)
{
    cJSON *o = rep->body ? cJSON_ParseWithLength(rep->body, rep->len) : NULL;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "keys");
    int n = cJSON_IsArray(arr) && cJSON_GetArraySize(o) == 1 ? cJSON_GetArraySize(arr) : -1;
    if (n > max)
        n = -1;
    for (int i = 0; i < n; i++) {
        const cJSON *k = cJSON_GetArrayItem(arr, i);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "key_ID"));
        const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "key"));
        unsigned char dec[KEY_BYTES + 3];
        /* 64 bytes are 88 characters ending in "==", which EVP_DecodeBlock counts as 2 bytes */
        if (cJSON_GetArraySize(k) != 2 || !id || strlen(id) != QK_KEY_ID_LEN || !b64 ||
            strlen(b64) != 88 || strcmp(b64 + 86, "==") != 0 ||
            EVP_DecodeBlock(dec, (const unsigned char *)b64, 88) != KEY_BYTES + 2) {
            n = -1;
            break;
        }
        memcpy(ids[i], id, QK_KEY_ID_LEN + 1);
        memcpy(keys[i], dec, KEY_BYTES);
    }
    cJSON_Delete(o);
    return n;
}

static void test_configure(void)
{
    qk_etsi014_handler h;
    memset(&h, 0xa5, sizeof h);
    qk_etsi014_configure(&h, (qk_kms *)&h);
    CU_ASSERT_PTR_NOT_NULL(h.super.on_req);
    CU_ASSERT_EQUAL(h.super.too_large_status, 400); /* clause 5: no 413 */
    CU_ASSERT_PTR_NULL(h.super.observe);
    CU_ASSERT_PTR_EQUAL(h.kms, (qk_kms *)&h);
}

static void test_callers_and_methods(void)
{
    setup();
    qk_http_reply rep;
    call(NULL, "GET", "/api/v1/keys/SAE_A2/status", NULL, &rep);
    CU_ASSERT_EQUAL(rep.status, 401);
    CU_ASSERT_STRING_EQUAL(message(&rep), "the calling SAE is not authenticated");
    qk_http_reply_clear(&rep);
    call("SAE_X", "GET", "/api/v1/keys/SAE_A2/status", NULL, &rep);
    CU_ASSERT_EQUAL(rep.status, 401);
    CU_ASSERT_STRING_EQUAL(message(&rep), "the calling SAE is not registered at this KME");
    qk_http_reply_clear(&rep);
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/status", NULL, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(rep.allow, "GET");
    qk_http_reply_clear(&rep);
    call("SAE_A1", "DELETE", "/api/v1/keys/SAE_A2/enc_keys", NULL, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(rep.allow, "GET, POST");
    CU_ASSERT_STRING_EQUAL(message(&rep), "method not allowed");
    qk_http_reply_clear(&rep);
    call("SAE_A1", "GET", "/api/v1/keys/SAE_A2/other", NULL, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(rep.allow, "");
    qk_http_reply_clear(&rep);
    /* Status of a same-KME pair: the configured limits, stored_key_count = the quota */
    call("SAE_A1", "GET", "/api/v1/keys/SAE_A2/status", NULL, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_FALSE(rep.secret);
    cJSON *o = cJSON_ParseWithLength(rep.body, rep.len);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 11); /* clause 6.1: the eleven Status fields */
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(o, "source_KME_ID")), KF_NODE);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(o, "target_KME_ID")), KF_NODE);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(o, "master_SAE_ID")), "SAE_A1");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(o, "slave_SAE_ID")), "SAE_A2");
    /* the fixture's limits (kms_fixture.h) */
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "key_size")), 256);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "stored_key_count")), KF_MAX_COUNT);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "max_key_count")), KF_MAX_COUNT);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "max_key_per_request")), 10);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "max_key_size")), 1024);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "min_key_size")), 64);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "max_SAE_ID_count")), 2);
    cJSON_Delete(o);
    qk_http_reply_clear(&rep);
    teardown();
}

static void test_enc_dec_quota(void)
{
    setup();
    qk_http_reply rep;
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/enc_keys", "{\"number\":3,\"size\":512}", &rep);
    CU_ASSERT_EQUAL_FATAL(rep.status, 200);
    CU_ASSERT_TRUE(rep.secret);
    CU_ASSERT_STRING_EQUAL(rep.content_type, "application/json");
    CU_ASSERT_STRING_EQUAL(rep.detail, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep.key_ids);
    char ids[3][QK_KEY_ID_LEN + 1];
    uint8_t keys[3][KEY_BYTES];
    CU_ASSERT_EQUAL_FATAL(container_keys(&rep, ids, keys, 3), 3);
    /* three different keys; the log line names exactly these IDs, in the container's order */
    CU_ASSERT_NOT_EQUAL(memcmp(keys[0], keys[1], KEY_BYTES), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(keys[1], keys[2], KEY_BYTES), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(keys[0], keys[2], KEY_BYTES), 0);
    CU_ASSERT_STRING_NOT_EQUAL(ids[0], ids[1]);
    CU_ASSERT_STRING_NOT_EQUAL(ids[1], ids[2]);
    CU_ASSERT_STRING_NOT_EQUAL(ids[0], ids[2]);
    char list[3 * (QK_KEY_ID_LEN + 1)];
    snprintf(list, sizeof list, "%s,%s,%s", ids[0], ids[1], ids[2]);
    CU_ASSERT_STRING_EQUAL(rep.key_ids, list);
    qk_http_reply_clear(&rep);

    /* over max_key_count: the core refuses (QK_EQUOTA), the handler answers 503 */
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/enc_keys", "{\"number\":3}", &rep);
    CU_ASSERT_EQUAL(rep.status, 503);
    CU_ASSERT_STRING_EQUAL(message(&rep), QK_ETSI_MSG_QUOTA);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "SAE_A2: 3 keys stored"));
    CU_ASSERT_PTR_NULL(rep.key_ids);
    qk_http_reply_clear(&rep);
    /* a multicast request with one full pair is refused alike */
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A3/enc_keys",
         "{\"number\":3,\"additional_slave_SAE_IDs\":[\"SAE_A2\"]}", &rep);
    CU_ASSERT_EQUAL(rep.status, 503);
    CU_ASSERT_STRING_EQUAL(message(&rep), QK_ETSI_MSG_QUOTA);
    qk_http_reply_clear(&rep);

    /* dec_keys: the slave gets the master's key, byte for byte, once; then the spec's not-found
     * message */
    char body[256];
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"}]}", ids[0]);
    call("SAE_A2", "POST", "/api/v1/keys/SAE_A1/dec_keys", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_TRUE(rep.secret);
    CU_ASSERT_STRING_EQUAL(rep.key_ids ? rep.key_ids : "", ids[0]);
    char got_ids[2][QK_KEY_ID_LEN + 1];
    uint8_t got[2][KEY_BYTES];
    CU_ASSERT_EQUAL_FATAL(container_keys(&rep, got_ids, got, 2), 1);
    CU_ASSERT_STRING_EQUAL(got_ids[0], ids[0]);
    CU_ASSERT_EQUAL(memcmp(got[0], keys[0], KEY_BYTES), 0);
    qk_http_reply_clear(&rep);
    call("SAE_A2", "POST", "/api/v1/keys/SAE_A1/dec_keys", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(message(&rep), QK_ETSI_MSG_NOT_FOUND);
    qk_http_reply_clear(&rep);
    /* the fetch freed quota: exactly 3 more fit (2 + 3 = 5) */
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/enc_keys", "{\"number\":3}", &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    /* two keys in one dec_keys, in the order asked (not the order made), each the master's */
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"},{\"key_ID\":\"%s\"}]}", ids[2],
             ids[1]);
    call("SAE_A2", "POST", "/api/v1/keys/SAE_A1/dec_keys", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_EQUAL_FATAL(container_keys(&rep, got_ids, got, 2), 2);
    CU_ASSERT_STRING_EQUAL(got_ids[0], ids[2]);
    CU_ASSERT_STRING_EQUAL(got_ids[1], ids[1]);
    CU_ASSERT_EQUAL(memcmp(got[0], keys[2], KEY_BYTES), 0);
    CU_ASSERT_EQUAL(memcmp(got[1], keys[1], KEY_BYTES), 0);
    snprintf(list, sizeof list, "%s,%s", ids[2], ids[1]);
    CU_ASSERT_STRING_EQUAL(rep.key_ids ? rep.key_ids : "", list);
    qk_http_reply_clear(&rep);
    teardown();
}

static void test_extension_details(void)
{
    setup();
    qk_http_reply rep;
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/enc_keys",
         "{\"extension_mandatory\":[{\"abc_route_type\":\"direct\"}]}", &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(message(&rep), QK_ETSI_MSG_EXT_UNSUPPORTED);
    CU_ASSERT_STRING_EQUAL(rep.detail, QK_ETSI_MSG_EXT_UNSUPPORTED);
    cJSON *o = rep.body ? cJSON_ParseWithLength(rep.body, rep.len) : NULL;
    const cJSON *det = cJSON_GetObjectItem(o, "details");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(det), 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
                               cJSON_GetArrayItem(det, 0), "extension_mandatory_unsupported")),
                           "abc_route_type is not supported");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(o), 2); /* message and details */
    cJSON_Delete(o);
    qk_http_reply_clear(&rep);
    teardown();
}

/* Issue 17 item 5: a string that decodes to a NUL (a "\u0000" escape) would cut an identifier
 * short in C. Refused with 400 before anything is served: an additional slave "SAE_A3\u0000x"
 * is not SAE_A3, and a key ID with "\u0000zzz" appended does not fetch the key (which the
 * slave then still gets with its real ID). */
static void test_nul_escape(void)
{
    setup();
    qk_http_reply rep;
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/enc_keys",
         "{\"additional_slave_SAE_IDs\":[\"SAE_A3\\u0000x\"]}", &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_PTR_NULL(rep.key_ids);
    qk_http_reply_clear(&rep);
    call("SAE_A1", "POST", "/api/v1/keys/SAE_A2/enc_keys", "{\"number\":1,\"size\":512}", &rep);
    CU_ASSERT_EQUAL_FATAL(rep.status, 200);
    char ids[1][QK_KEY_ID_LEN + 1];
    uint8_t keys[1][KEY_BYTES];
    CU_ASSERT_EQUAL_FATAL(container_keys(&rep, ids, keys, 1), 1);
    qk_http_reply_clear(&rep);
    char body[256];
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\\u0000zzz\"}]}", ids[0]);
    call("SAE_A2", "POST", "/api/v1/keys/SAE_A1/dec_keys", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_PTR_NULL(rep.key_ids);
    qk_http_reply_clear(&rep);
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"}]}", ids[0]);
    call("SAE_A2", "POST", "/api/v1/keys/SAE_A1/dec_keys", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    teardown();
}

int suite_etsi014_handler(void)
{
    CU_pSuite s = CU_add_suite("etsi014_handler", NULL, NULL);
    if (!s || !CU_add_test(s, "configure", test_configure) ||
        !CU_add_test(s, "NUL escape refused with 400", test_nul_escape) ||
        !CU_add_test(s, "callers_and_methods", test_callers_and_methods) ||
        !CU_add_test(s, "enc_dec_quota", test_enc_dec_quota) ||
        !CU_add_test(s, "extension_details", test_extension_details))
        return -1;
    return 0;
}
