/* test_device_source.c - the ETSI 014 device source's checks of what a device answers
 * (kms/device_source.h) against recorded answers in the shapes of ETSI GS QKD 014 clauses 6.1
 * (Status) and 6.3 (Key container): a good enc_keys answer, a shortfall, too many keys, a key of
 * the wrong size, bad base64, a duplicate or non-UUID key ID, a dec_keys answer in another order,
 * with a key not asked for or one missing; the Status limits; the backoff sequence and the
 * block IDs of a pulling end. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_source.h"
#include "kms_fixture.h"
#include "secbuf.h"

#define ID1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define ID2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
#define ID3 "5e0d1f5a-9c43-4f0e-8b52-2a7c3c1e9d10"
/* bytes 0..31, 32..63, 64..95 */
#define K1         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2         "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define K3         "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
#define KEY(id, k) "{\"key_ID\":\"" id "\",\"key\":\"" k "\"}"

typedef char key_id[QK_KEY_ID_LEN + 1];

/* Parse body as an answer for cap keys of 32 bytes (want: NULL or nwant IDs). */
static int parse(const char *body, size_t cap, const key_id *want, size_t nwant, key_id *ids,
                 uint8_t *bytes, size_t *n, qk_err *err)
{
    qk_err_clear(err);
    return qk_device_keys_parse(body, strlen(body), cap, 32, want, nwant, ids, bytes, n, err);
}

static bool is_seq(const uint8_t *b, uint8_t from)
{
    for (int i = 0; i < 32; i++)
        if (b[i] != (uint8_t)(from + i))
            return false;
    return true;
}

static void test_enc_keys_answer(void)
{
    key_id ids[4];
    uint8_t *bytes = qk_secure_alloc(4 * 32);
    CU_ASSERT_FATAL(bytes != NULL);
    size_t n = 0;
    qk_err err;
    /* three keys asked, three given (extension members are ignored) */
    const char *good =
        "{\"keys\":[" KEY(ID1, K1) "," KEY(ID2, K2) ",{\"key_ID\":\"" ID3 "\",\"key\":\"" K3
                                                    "\",\"key_ID_extension\":{}}],\"key_container_"
                                                    "extension\":{}}";
    CU_ASSERT_EQUAL_FATAL(parse(good, 3, NULL, 0, ids, bytes, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_STRING_EQUAL(ids[0], ID1);
    CU_ASSERT_STRING_EQUAL(ids[2], ID3);
    CU_ASSERT(is_seq(bytes, 0) && is_seq(bytes + 32, 32) && is_seq(bytes + 64, 64));
    /* a shortfall is used: one key of the three asked */
    CU_ASSERT_EQUAL(parse("{\"keys\":[" KEY(ID2, K2) "]}", 3, NULL, 0, ids, bytes, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(is_seq(bytes, 32));
    /* upper-case IDs are normalised */
    CU_ASSERT_EQUAL(parse("{\"keys\":[" KEY("BC490419-7D60-487F-ADC1-4DDCC177C139", K1) "]}", 3,
                          NULL, 0, ids, bytes, &n, &err),
                    0);
    CU_ASSERT_STRING_EQUAL(ids[0], ID1);
    qk_secure_free(bytes);
}

/* The answer is refused: QK_EINVAL, a message holding frag, no keys, the buffer wiped. */
static void expect_refused(const char *body, size_t cap, const key_id *want, size_t nwant,
                           const char *frag)
{
    key_id ids[4];
    uint8_t *bytes = qk_secure_alloc(4 * 32);
    CU_ASSERT_FATAL(bytes != NULL);
    memset(bytes, 0xee, 4 * 32);
    size_t n = 99;
    qk_err err;
    int rc = parse(body, cap, want, nwant, ids, bytes, &n, &err);
    bool ok = rc == QK_EINVAL && strstr(err.msg, frag) != NULL;
    if (!ok)
        fprintf(stderr, "\n  rc %d, message \"%s\" (want \"%s\") for %s\n", rc, err.msg, frag,
                body);
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(n, 0);
    bool wiped = true;
    for (size_t i = 0; i < cap * 32; i++)
        wiped = wiped && bytes[i] == 0;
    CU_ASSERT(wiped);
    qk_secure_free(bytes);
}

static void test_enc_keys_refused(void)
{
    expect_refused("{\"keys\":[]}", 3, NULL, 0, "entries");
    expect_refused("{\"keys\":[" KEY(ID1, K1) "," KEY(ID2, K2) "," KEY(ID3, K3) "]}", 2, NULL, 0,
                   "entries");
    expect_refused("{}", 3, NULL, 0, "keys");
    expect_refused("[]", 3, NULL, 0, "object");
    expect_refused("{\"keys\":[" KEY(ID1, K1) "]} trailing", 3, NULL, 0, "");
    /* wrong size: 31 and 33 bytes */
    expect_refused("{\"keys\":[" KEY(ID1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==") "]}", 3,
                   NULL, 0, "not 32 bytes");
    expect_refused("{\"keys\":[" KEY(ID1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") "]}", 3,
                   NULL, 0, "not 32 bytes");
    /* bad base64 of the right length */
    expect_refused("{\"keys\":[" KEY(ID1, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*=") "]}", 3,
                   NULL, 0, "base64");
    /* a good key after a bad one: the good one is wiped too */
    expect_refused("{\"keys\":[" KEY(ID1, K1) "," KEY(ID2, "!!!") "]}", 3, NULL, 0, "not 32");
    expect_refused("{\"keys\":[" KEY(ID1, K1) "," KEY(ID1, K2) "]}", 3, NULL, 0, "twice");
    expect_refused("{\"keys\":[" KEY("bc490419-7d60-487f-adc1-4ddcc177c13", K1) "]}", 3, NULL, 0,
                   "UUID");
    expect_refused("{\"keys\":[" KEY("not a uuid at all, but 36 chars long", K1) "]}", 3, NULL, 0,
                   "UUID");
    expect_refused("{\"keys\":[{\"key_ID\":\"" ID1 "\"}]}", 3, NULL, 0, "key");
    expect_refused("{\"keys\":[{\"key_ID\":7,\"key\":\"" K1 "\"}]}", 3, NULL, 0, "key_ID");
    expect_refused("{\"keys\":[\"" K1 "\"]}", 3, NULL, 0, "objects");
}

static void test_dec_keys_answer(void)
{
    key_id want[3] = {ID1, ID2, ID3}, ids[4];
    uint8_t *bytes = qk_secure_alloc(4 * 32);
    CU_ASSERT_FATAL(bytes != NULL);
    size_t n = 0;
    qk_err err;
    /* the device's order differs: the keys land in the order asked for */
    const char *shuffled = "{\"keys\":[" KEY(ID3, K3) "," KEY(ID1, K1) "," KEY(ID2, K2) "]}";
    CU_ASSERT_EQUAL_FATAL(parse(shuffled, 3, want, 3, ids, bytes, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_STRING_EQUAL(ids[0], ID1);
    CU_ASSERT_STRING_EQUAL(ids[1], ID2);
    CU_ASSERT(is_seq(bytes, 0) && is_seq(bytes + 32, 32) && is_seq(bytes + 64, 64));
    qk_secure_free(bytes);
    /* one missing, one not asked for, one twice */
    expect_refused("{\"keys\":[" KEY(ID1, K1) "," KEY(ID2, K2) "]}", 3, want, 3, "entries");
    expect_refused("{\"keys\":[" KEY(ID1, K1) "," KEY(ID2, K2) "]}", 2, want + 1, 2,
                   "not asked for");
    expect_refused("{\"keys\":[" KEY(ID1, K1) "," KEY(ID1, K1) "]}", 2, want, 2, "twice");
}

static void test_status(void)
{
    qk_device_status st;
    qk_err err;
    qk_err_clear(&err);
    /* the example of ETSI GS QKD 014 clause 6.1 */
    const char *ex = "{\"source_KME_ID\":\"AAAABBBBCCCCDDDD\",\"target_KME_ID\":"
                     "\"EEEEFFFFGGGGHHHH\",\"master_SAE_ID\":\"IIIIJJJJKKKKLLLL\",\"slave_SAE_ID\":"
                     "\"MMMMNNNNOOOOPPPP\",\"key_size\":352,\"stored_key_count\":25000,"
                     "\"max_key_count\":100000,\"max_key_per_request\":128,\"max_key_size\":1024,"
                     "\"min_key_size\":64,\"max_SAE_ID_count\":0}";
    CU_ASSERT_EQUAL_FATAL(qk_device_status_parse(ex, strlen(ex), &st, &err), 0);
    CU_ASSERT_EQUAL(st.max_key_per_request, 128);
    CU_ASSERT_EQUAL(st.max_key_size, 1024);
    CU_ASSERT_EQUAL(st.min_key_size, 64);
    CU_ASSERT_STRING_EQUAL(st.master_sae, "IIIIJJJJKKKKLLLL");
    const char *refused[] = {
        "{\"max_key_per_request\":128,\"max_key_size\":1024}",
        "{\"max_key_per_request\":0,\"max_key_size\":1024,\"min_key_size\":64}",
        "{\"max_key_per_request\":1,\"max_key_size\":64,\"min_key_size\":128}",
        "{\"max_key_per_request\":1,\"max_key_size\":\"64\",\"min_key_size\":8}",
        "{\"max_key_per_request\":1.5,\"max_key_size\":64,\"min_key_size\":8}",
        "[1]",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        qk_err_clear(&err);
        CU_ASSERT_EQUAL(qk_device_status_parse(refused[i], strlen(refused[i]), &st, &err),
                        QK_EINVAL);
        CU_ASSERT(err.msg[0] != '\0');
    }
}

static void test_backoff_and_block_ids(void)
{
    /* from device_interval (500 ms), doubling, at most 30 s; reset is the caller's 0 */
    const uint64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    uint64_t b = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        b = qk_device_backoff_next(b, 500);
        CU_ASSERT_EQUAL(b, want[i]);
    }
    CU_ASSERT_EQUAL(qk_device_backoff_next(0, 100), 100);
    CU_ASSERT_EQUAL(qk_device_backoff_next(0, 60000), QK_DEVICE_BACKOFF_MAX_MS);
    /* block IDs: the wall clock in ms, strictly increasing, below 2^53 */
    CU_ASSERT_EQUAL(qk_device_next_block_id(0, 1733100000000ull), 1733100000000ull);
    CU_ASSERT_EQUAL(qk_device_next_block_id(1733100000000ull, 1733100000000ull), 1733100000001ull);
    CU_ASSERT_EQUAL(qk_device_next_block_id(1733100000005ull, 1733099999000ull),
                    1733100000006ull); /* the clock stepped back */
    CU_ASSERT_EQUAL(qk_device_next_block_id(QK_PEER_BLOCK_ID_MAX + 5, 1), QK_PEER_BLOCK_ID_MAX);
}

/* The peer handler's device-keys route on a link whose source is the (pushing) device: the
 * notice is refused 409 "source" whether or not device sources exist, a malformed one 400
 * before anything else; nothing is stored. */
static void test_handler_on_device_link(void)
{
    static kf_pair P;
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_device_sources *ds = NULL;
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL_FATAL(qk_device_sources_start(P.a.kms, &ds, &err), 0);
    /* no etsi014 link: no qkd_device_* family */
    char *page = NULL;
    size_t plen = 0;
    FILE *f = open_memstream(&page, &plen);
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(qk_device_sources_write_metrics(ds, f), 0);
    fclose(f);
    CU_ASSERT_EQUAL(plen, 0);
    free(page);
    static const qk_peer_identity peer = {.kind = QK_ID_CERT, .id = KF_PEER, .role = QK_ROLE_KME};
    const char *body = "{\"link\":\"" KF_LINK "\",\"block_id\":5,\"key_IDs\":[\"" ID1 "\",\"" ID2
                       "\"],\"key_size\":256}";
    const char *bad = "{\"link\":\"" KF_LINK "\",\"block_id\":5,\"key_IDs\":[\"" ID1 "\",\"" ID1
                      "\"],\"key_size\":256}";
    for (int round = 0; round < 2; round++) {
        P.ha.devices = round ? ds : NULL;
        qk_http_request req = {.listener = "peer",
                               .method = "POST",
                               .path = "/peer/v1/device-keys",
                               .caller = &peer,
                               .body = body,
                               .body_len = strlen(body)};
        qk_http_reply rep;
        qk_http_handler_call(&P.ha.super, &req, &rep);
        CU_ASSERT_EQUAL(rep.status, 409);
        CU_ASSERT(rep.body && strstr(rep.body, "\"reason\":\"source\"") != NULL);
        qk_http_reply_clear(&rep);
        req.body = bad;
        req.body_len = strlen(bad);
        qk_http_handler_call(&P.ha.super, &req, &rep);
        CU_ASSERT_EQUAL(rep.status, 400);
        CU_ASSERT(rep.body && strstr(rep.body, "twice") != NULL);
        qk_http_reply_clear(&rep);
        req.method = "GET";
        qk_http_handler_call(&P.ha.super, &req, &rep);
        CU_ASSERT_EQUAL(rep.status, 405);
        qk_http_reply_clear(&rep);
    }
    CU_ASSERT_EQUAL(kf_block_state(qk_kms_store(P.a.kms), 5), -1);
    P.ha.devices = NULL;
    qk_device_sources_stop(ds);
    kf_pair_close(&P);
}

int suite_device_source(void)
{
    CU_pSuite s = CU_add_suite("device_source", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "enc_keys answer: keys, shortfall, IDs normalised", test_enc_keys_answer) ||
        !CU_add_test(s, "enc_keys answer refused", test_enc_keys_refused) ||
        !CU_add_test(s, "dec_keys answer: order, missing, extra", test_dec_keys_answer) ||
        !CU_add_test(s, "status", test_status) ||
        !CU_add_test(s, "backoff sequence and block IDs", test_backoff_and_block_ids) ||
        !CU_add_test(s, "device-keys on a pushed link: 409 source, 400, 405",
                     test_handler_on_device_link))
        return -1;
    return 0;
}
