/* test_peer_msg.c - the peer-message codec (kms/peer_msg.h): every message round-trips
 * (encode -> decode -> equal), the wire names are those of docs/qkd-kmed.md, and the decoders
 * refuse each class of bad input (missing member, wrong type, out of range, too many entries,
 * bad UUID, bad hex, bad side, bad enumeration, bad ID, trailing garbage) with QK_EINVAL, a
 * message and a zeroed output; and the peer handler's one answer that needs no core. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_api.h"
#include "peer_msg.h"

#define UUID1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define UUID2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* max_keys_per_request 4, keys of at most 32 bytes, at most 3 slaves */
static const qk_peer_msg_limits LIM = {
    .max_keys_per_request = 4, .max_size_bits = 256, .max_sae_id_count = 2};

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static qk_key_ref key_ref(const char *id, uint64_t bid, uint32_t off, uint32_t len, uint8_t fill)
{
    qk_key_ref k;
    memset(&k, 0, sizeof k);
    snprintf(k.key_id, sizeof k.key_id, "%s", id);
    k.block_id = bid;
    k.offset = off;
    k.length = len;
    memset(k.check, fill, sizeof k.check);
    return k;
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_reserve_round_trip(void)
{
    qk_key_ref refs[3] = {key_ref(UUID1, 1, 32, 32, 0xa5), key_ref(UUID2, 7, 64, 1, 0x00),
                          key_ref(UUID1, QK_PEER_BLOCK_ID_MAX, QK_BLOCK_MAX_BYTES - 32, 32, 0xff)};
    const char *slaves[] = {"SAE_B", "SAE_C", "SAE_D"};
    qk_reservation r = {.request_id = "req-1",
                        .link = "KME_A~KME_B",
                        .master = "SAE_A",
                        .slaves = slaves,
                        .nslaves = 3,
                        .expires_at = QK_PEER_BLOCK_ID_MAX};
    qk_peer_reserve_msg *m = malloc(sizeof *m), *d = malloc(sizeof *d);
    CU_ASSERT_FATAL(m && d);
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_msg_set(m, &r, QK_SIDE_HIGH, refs, 3, &err), 0);
    char *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_encode(m, &s, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_decode(s, strlen(s), &LIM, d, &err), 0);
    CU_ASSERT_STRING_EQUAL(d->request_id, "req-1");
    CU_ASSERT_STRING_EQUAL(d->link, "KME_A~KME_B");
    CU_ASSERT_EQUAL(d->side, QK_SIDE_HIGH);
    CU_ASSERT_STRING_EQUAL(d->master, "SAE_A");
    CU_ASSERT_EQUAL_FATAL(d->nslaves, 3);
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_STRING_EQUAL(d->slaves[i], slaves[i]);
    CU_ASSERT_EQUAL(d->expires_at, QK_PEER_BLOCK_ID_MAX);
    CU_ASSERT_EQUAL_FATAL(d->nkeys, 3);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_STRING_EQUAL(d->keys[i].key_id, refs[i].key_id);
        CU_ASSERT_EQUAL(d->keys[i].block_id, refs[i].block_id);
        CU_ASSERT_EQUAL(d->keys[i].offset, refs[i].offset);
        CU_ASSERT_EQUAL(d->keys[i].length, refs[i].length);
        CU_ASSERT(memcmp(d->keys[i].check, refs[i].check, QK_CHECK_LEN) == 0);
    }
    /* the receiver's view is the reservation that was sent */
    qk_reservation v;
    const char *vs[QK_PEER_SLAVES_MAX];
    qk_peer_reserve_msg_get(d, &v, vs);
    CU_ASSERT_STRING_EQUAL(v.request_id, r.request_id);
    CU_ASSERT_STRING_EQUAL(v.link, r.link);
    CU_ASSERT_STRING_EQUAL(v.master, r.master);
    CU_ASSERT_EQUAL(v.nslaves, 3);
    CU_ASSERT_STRING_EQUAL(v.slaves[2], "SAE_D");
    CU_ASSERT_EQUAL(v.expires_at, r.expires_at);
    /* the same message encodes to the same text */
    char *s2 = NULL;
    CU_ASSERT_EQUAL(qk_peer_reserve_encode(d, &s2, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, s2);
    free(s2);
    free(s);
    qk_peer_reserve_msg_free(d);
    CU_ASSERT_PTR_NULL(d->keys);
    free(m);
    free(d);
}

static void test_reserve_set_refuses(void)
{
    char longid[QK_STORE_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    const char *slaves[] = {"SAE_B"};
    qk_reservation r = {.request_id = longid,
                        .link = "L",
                        .master = "M",
                        .slaves = slaves,
                        .nslaves = 1,
                        .expires_at = 1};
    qk_peer_reserve_msg *m = malloc(sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_peer_reserve_msg_set(m, &r, QK_SIDE_LOW, NULL, 0, &err), QK_EINVAL);
    r.request_id = "r";
    r.nslaves = 0;
    CU_ASSERT_EQUAL(qk_peer_reserve_msg_set(m, &r, QK_SIDE_LOW, NULL, 0, &err), QK_EINVAL);
    r.nslaves = 1;
    CU_ASSERT_EQUAL(qk_peer_reserve_msg_set(m, &r, QK_SIDE_LOW, NULL, 0, &err), 0);
    /* an encoder refuses a side no decoder accepts */
    m->side = (qk_side)7;
    char *s = NULL;
    CU_ASSERT_EQUAL(qk_peer_reserve_encode(m, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    free(m);
}

static void test_small_messages_round_trip(void)
{
    qk_err err;
    qk_err_clear(&err);
    char *s = NULL;
    for (int v = QK_PEER_RESERVED; v <= QK_PEER_GRANTED; v++) {
        qk_peer_result_msg a = {.status = (qk_peer_result)v}, b = {.status = 99};
        CU_ASSERT_EQUAL_FATAL(qk_peer_result_encode(&a, &s, &err), 0);
        CU_ASSERT_EQUAL(qk_peer_result_decode(s, strlen(s), &b, &err), 0);
        CU_ASSERT_EQUAL(b.status, a.status);
        free(s);
    }
    for (int v = QK_PEER_REQ_PENDING; v <= QK_PEER_REQ_BURNED; v++) {
        qk_peer_state_msg a = {.state = (qk_peer_req_state)v}, b = {.state = 99};
        CU_ASSERT_EQUAL_FATAL(qk_peer_state_encode(&a, &s, &err), 0);
        CU_ASSERT_EQUAL(qk_peer_state_decode(s, strlen(s), &b, &err), 0);
        CU_ASSERT_EQUAL(b.state, a.state);
        free(s);
    }
    qk_peer_burn_msg bu = {.request_id = "d9b6c7a0-req"}, bu2;
    CU_ASSERT_EQUAL_FATAL(qk_peer_burn_encode(&bu, &s, &err), 0);
    CU_ASSERT_EQUAL(qk_peer_burn_decode(s, strlen(s), &bu2, &err), 0);
    CU_ASSERT_STRING_EQUAL(bu2.request_id, bu.request_id);
    free(s);
    for (int v = QK_PEER_REASON_NONE; v < QK_PEER_REASON_COUNT; v++) {
        qk_peer_error_msg a = {.reason = (qk_peer_reason)v}, b;
        snprintf(a.message, sizeof a.message, "reason %d: \"quoted\"\n", v);
        CU_ASSERT_EQUAL_FATAL(qk_peer_error_encode(&a, &s, &err), 0);
        CU_ASSERT_EQUAL(qk_peer_error_decode(s, strlen(s), &b, &err), 0);
        CU_ASSERT_EQUAL(b.reason, a.reason);
        CU_ASSERT_STRING_EQUAL(b.message, a.message);
        free(s);
    }
    /* out-of-range enumerations are not encoded */
    qk_peer_result_msg bad_res = {.status = (qk_peer_result)(QK_PEER_GRANTED + 1)};
    qk_peer_state_msg bad_state = {.state = (qk_peer_req_state)-1};
    qk_peer_error_msg bad_err = {.reason = QK_PEER_REASON_COUNT};
    CU_ASSERT_EQUAL(qk_peer_result_encode(&bad_res, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_peer_state_encode(&bad_state, &s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_peer_error_encode(&bad_err, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(s);
}

static void test_inventory_round_trip(void)
{
    qk_peer_inventory_msg *q = calloc(1, sizeof *q), *q2 = malloc(sizeof *q2);
    qk_peer_inventory_answer *a = calloc(1, sizeof *a), *a2 = malloc(sizeof *a2);
    CU_ASSERT_FATAL(q && q2 && a && a2);
    qk_err err;
    qk_err_clear(&err);
    char *s = NULL;
    snprintf(q->link, sizeof q->link, "KME_A~KME_B");
    /* empty, then full */
    for (size_t n = 0; n <= QK_PEER_INVENTORY_MAX; n += QK_PEER_INVENTORY_MAX) {
        q->n = a->n = n;
        for (size_t i = 0; i < n; i++) {
            q->blocks[i].block_id = i == 0 ? QK_PEER_BLOCK_ID_MAX : i * 1000003u;
            memset(q->blocks[i].digest, (int)i, QK_CHECK_LEN);
            a->blocks[i].block_id = q->blocks[i].block_id;
            a->blocks[i].status = (qk_inv_status)(i % 4);
        }
        CU_ASSERT_EQUAL_FATAL(qk_peer_inventory_encode(q, &s, &err), 0);
        CU_ASSERT_EQUAL(qk_peer_inventory_decode(s, strlen(s), q2, &err), 0);
        free(s);
        CU_ASSERT_STRING_EQUAL(q2->link, q->link);
        CU_ASSERT_EQUAL_FATAL(q2->n, n);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(q2->blocks[i].block_id, q->blocks[i].block_id);
            CU_ASSERT(memcmp(q2->blocks[i].digest, q->blocks[i].digest, QK_CHECK_LEN) == 0);
        }
        CU_ASSERT_EQUAL_FATAL(qk_peer_inventory_answer_encode(a, &s, &err), 0);
        CU_ASSERT_EQUAL(qk_peer_inventory_answer_decode(s, strlen(s), a2, &err), 0);
        free(s);
        CU_ASSERT_EQUAL_FATAL(a2->n, n);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(a2->blocks[i].block_id, a->blocks[i].block_id);
            CU_ASSERT_EQUAL(a2->blocks[i].status, a->blocks[i].status);
        }
    }
    q->n = QK_PEER_INVENTORY_MAX + 1;
    CU_ASSERT_EQUAL(qk_peer_inventory_encode(q, &s, &err), QK_EINVAL);
    a->n = 1;
    a->blocks[0].status = (qk_inv_status)4;
    CU_ASSERT_EQUAL(qk_peer_inventory_answer_encode(a, &s, &err), QK_EINVAL);
    free(q);
    free(q2);
    free(a);
    free(a2);
}

static void test_health_round_trip(void)
{
    qk_peer_health_msg *h = calloc(1, sizeof *h), *h2 = malloc(sizeof *h2);
    CU_ASSERT_FATAL(h && h2);
    qk_err err;
    qk_err_clear(&err);
    char *s = NULL;
    snprintf(h->node_id, sizeof h->node_id, "KME_B");
    for (size_t n = 0; n <= QK_PEER_LINKS_MAX; n += QK_PEER_LINKS_MAX) {
        h->nlinks = n;
        for (size_t i = 0; i < n; i++)
            snprintf(h->links[i], sizeof h->links[i], "KME_B~KME_%zu", i);
        CU_ASSERT_EQUAL_FATAL(qk_peer_health_encode(h, &s, &err), 0);
        CU_ASSERT_EQUAL(qk_peer_health_decode(s, strlen(s), h2, &err), 0);
        free(s);
        CU_ASSERT_STRING_EQUAL(h2->node_id, "KME_B");
        CU_ASSERT_EQUAL_FATAL(h2->nlinks, n);
        for (size_t i = 0; i < n; i++)
            CU_ASSERT_STRING_EQUAL(h2->links[i], h->links[i]);
    }
    free(h);
    free(h2);
}

/* The wire names and shapes of docs/qkd-kmed.md, "Peer API". */
static void test_wire_format(void)
{
    qk_err err;
    qk_err_clear(&err);
    char *s = NULL;
    qk_peer_result_msg res = {.status = QK_PEER_RESERVED};
    CU_ASSERT_EQUAL(qk_peer_result_encode(&res, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"status\":\"reserved\"}");
    free(s);
    qk_peer_state_msg st = {.state = QK_PEER_REQ_PENDING};
    CU_ASSERT_EQUAL(qk_peer_state_encode(&st, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"state\":\"pending\"}");
    free(s);
    qk_peer_burn_msg bu = {.request_id = "r1"};
    CU_ASSERT_EQUAL(qk_peer_burn_encode(&bu, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"request_id\":\"r1\"}");
    free(s);
    qk_peer_error_msg e = {.reason = QK_PEER_REASON_UNKNOWN_BLOCK, .message = "m"};
    CU_ASSERT_EQUAL(qk_peer_error_encode(&e, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"message\":\"m\",\"reason\":\"unknown-block\"}");
    free(s);
    e.reason = QK_PEER_REASON_NONE;
    CU_ASSERT_EQUAL(qk_peer_error_encode(&e, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"message\":\"m\"}");
    free(s);
    qk_peer_health_msg h = {.node_id = "KME_B", .nlinks = 1, .links = {"KME_A~KME_B"}};
    CU_ASSERT_EQUAL(qk_peer_health_encode(&h, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"node_id\":\"KME_B\",\"links\":[\"KME_A~KME_B\"]}");
    free(s);
    qk_peer_inventory_answer a = {.n = 1, .blocks = {{.block_id = 5, .status = QK_INV_MISMATCH}}};
    CU_ASSERT_EQUAL(qk_peer_inventory_answer_encode(&a, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"blocks\":[{\"block_id\":5,\"status\":\"mismatch\"}]}");
    free(s);
    qk_peer_inventory_msg *q = calloc(1, sizeof *q);
    CU_ASSERT_FATAL(q != NULL);
    snprintf(q->link, sizeof q->link, "L");
    q->n = 1;
    q->blocks[0].block_id = 9007199254740991ull;
    CU_ASSERT_EQUAL(qk_peer_inventory_encode(q, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s,
                           "{\"link\":\"L\",\"blocks\":[{\"block_id\":9007199254740991,\"digest\":"
                           "\"0000000000000000000000000000000000000000000000000000000000000000"
                           "\"}]}");
    free(s);
    free(q);
    qk_key_ref k = key_ref(UUID1, 3, 32, 16, 0x11);
    const char *sl[] = {"S"};
    qk_reservation r = {.request_id = "R",
                        .link = "L",
                        .master = "M",
                        .slaves = sl,
                        .nslaves = 1,
                        .expires_at = 1700000000};
    qk_peer_reserve_msg *m = malloc(sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    CU_ASSERT_EQUAL(qk_peer_reserve_msg_set(m, &r, QK_SIDE_LOW, &k, 1, &err), 0);
    CU_ASSERT_EQUAL(qk_peer_reserve_encode(m, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(
        s,
        "{\"request_id\":\"R\",\"link\":\"L\",\"side\":\"low\",\"master\":\"M\",\"slaves\":[\"S\"],"
        "\"expires_at\":1700000000,\"keys\":[{\"key_ID\":\"" UUID1 "\",\"block_id\":3,"
        "\"offset\":32,\"length\":16,\"check\":"
        "\"1111111111111111111111111111111111111111111111111111111111111111\"}]}");
    free(s);
    free(m);
}

/* ---- refusals --------------------------------------------------------------------------- */

#define KEY_CHECK "\"check\":\"" HEX64 "\"}"
#define KEY_OK    "{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":32,\"length\":32," KEY_CHECK
#define RES_HEAD  "{\"request_id\":\"r\",\"link\":\"L\",\"side\":\"low\",\"master\":\"M\","
#define RES_OK    RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}"
/* A reserve body with a valid head and slaves, and one key entry `k` (its members in order). */
#define RES_KEY(k) RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":[" k "]}"

static void expect_reserve_refused(const char *body)
{
    qk_peer_reserve_msg *m = malloc(sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_peer_reserve_decode(body, strlen(body), &LIM, m, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    CU_ASSERT(err.msg[0] != '\0');
    CU_ASSERT(all_zero(m, sizeof *m));
    if (rc != QK_EINVAL)
        fprintf(stderr, "\n  accepted: %s\n", body);
    if (rc == 0)
        qk_peer_reserve_msg_free(m);
    free(m);
}

static void test_reserve_refusals(void)
{
    /* the base body is accepted, and a key ID in upper case is normalised */
    qk_peer_reserve_msg *m = malloc(sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_decode(RES_OK, strlen(RES_OK), &LIM, m, &err), 0);
    qk_peer_reserve_msg_free(m);
    const char *upper =
        RES_KEY("{\"key_ID\":\"BC490419-7D60-487F-ADC1-4DDCC177C139\","
                "\"block_id\":1,\"offset\":0,\"length\":1,\"check\":\"" HEX64 "\"}");
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_decode(upper, strlen(upper), &LIM, m, &err), 0);
    CU_ASSERT_STRING_EQUAL(m->keys[0].key_id, UUID1);
    qk_peer_reserve_msg_free(m);
    free(m);

    static const char *const bad[] = {
        /* not an object, empty, trailing garbage, not JSON */
        "[]",
        "",
        RES_OK " x",
        RES_OK "{}",
        "{\"request_id\":",
        /* missing members */
        "{\"link\":\"L\",\"side\":\"low\",\"master\":\"M\",\"slaves\":[\"S\"],\"expires_at\":5,"
        "\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5}",
        RES_KEY("{\"block_id\":1,\"offset\":32,\"length\":32,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"offset\":32,\"length\":32,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"length\":32,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":32,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":32,\"length\":32}"),
        /* wrong types */
        "{\"request_id\":1,\"link\":\"L\",\"side\":\"low\",\"master\":\"M\",\"slaves\":[\"S\"],"
        "\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":\"S\",\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[1],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":\"5\",\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5.5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":{}}",
        RES_KEY("[]"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":\"1\",\"offset\":32,\"length\":32,"
                "\"check\":\"" HEX64 "\"}"),
        /* duplicate member */
        RES_HEAD "\"master\":\"N\",\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        /* out of range */
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":-1,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":9007199254740992,\"keys\":[" KEY_OK "]}",
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":9007199254740992,\"offset\":32,"
                "\"length\":32,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":-1,\"offset\":32,\"length\":32,"
                "\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":4194304,\"length\":1,"
                "\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":4194300,\"length\":5,"
                "\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":0,\"length\":0,"
                "\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":0,\"length\":33,"
                "\"check\":\"" HEX64 "\"}"),
        /* too few or too many entries (limits: 4 keys, 3 slaves) */
        RES_HEAD "\"slaves\":[],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\",\"T\",\"U\",\"V\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":[]}",
        RES_HEAD "\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":[" KEY_OK "," KEY_OK "," KEY_OK
                 "," KEY_OK "," KEY_OK "]}",
        /* bad UUIDs */
        RES_KEY("{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c13\",\"block_id\":1,\"offset\":0,"
                "\"length\":1,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"bc4904197d60487fadc14ddcc177c139\",\"block_id\":1,\"offset\":0,"
                "\"length\":1,\"check\":\"" HEX64 "\"}"),
        RES_KEY("{\"key_ID\":\"bc490419-7d60-487f-adc1-4ddcc177c13g\",\"block_id\":1,\"offset\":0,"
                "\"length\":1,\"check\":\"" HEX64 "\"}"),
        /* bad hex: short, long, not hex */
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":0,\"length\":1,\"check\":\""
                "0011223344556677889900112233445566778899001122334455667788990011"
                "2\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":0,\"length\":1,\"check\":\""
                "001122334455667788990011223344556677889900112233445566778899001\"}"),
        RES_KEY("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":0,\"length\":1,\"check\":\""
                "00112233445566778899001122334455667788990011223344556677889900zz\"}"),
        /* bad side */
        "{\"request_id\":\"r\",\"link\":\"L\",\"side\":\"LOW\",\"master\":\"M\",\"slaves\":[\"S\"],"
        "\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        "{\"request_id\":\"r\",\"link\":\"L\",\"side\":0,\"master\":\"M\",\"slaves\":[\"S\"],"
        "\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        /* bad IDs: empty, control character, DEL */
        "{\"request_id\":\"\",\"link\":\"L\",\"side\":\"low\",\"master\":\"M\",\"slaves\":[\"S\"],"
        "\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        "{\"request_id\":\"r\",\"link\":\"L\\n\",\"side\":\"low\",\"master\":\"M\",\"slaves\":"
        "[\"S\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"S\\u007f\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
        RES_HEAD "\"slaves\":[\"\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reserve_refused(bad[i]);

    /* IDs of QK_STORE_ID_MAX characters pass, one more does not */
    char body[1024];
    char id[QK_STORE_ID_MAX + 2];
    memset(id, 'i', sizeof id);
    id[QK_STORE_ID_MAX] = '\0';
    snprintf(body, sizeof body, "{\"request_id\":\"%s\"}", id);
    qk_peer_burn_msg bu;
    CU_ASSERT_EQUAL(qk_peer_burn_decode(body, strlen(body), &bu, &err), 0);
    id[QK_STORE_ID_MAX] = 'i';
    id[QK_STORE_ID_MAX + 1] = '\0';
    snprintf(body, sizeof body, "{\"request_id\":\"%s\"}", id);
    CU_ASSERT_EQUAL(qk_peer_burn_decode(body, strlen(body), &bu, &err), QK_EINVAL);
    CU_ASSERT(all_zero(&bu, sizeof bu));
    /* the decoders need no NUL after the body */
    const char *cut = "{\"request_id\":\"abc\"}garbage";
    CU_ASSERT_EQUAL(qk_peer_burn_decode(cut, strlen("{\"request_id\":\"abc\"}"), &bu, &err), 0);
    CU_ASSERT_STRING_EQUAL(bu.request_id, "abc");
}

/* Counts are checked before entries are read: a body with too many entries is refused for its
 * count even when every entry is also bad. */
static void test_counts_before_entries(void)
{
    qk_peer_inventory_msg *q = malloc(sizeof *q);
    CU_ASSERT_FATAL(q != NULL);
    size_t cap = 64 + (QK_PEER_INVENTORY_MAX + 1) * 4;
    char *body = malloc(cap);
    CU_ASSERT_FATAL(body != NULL);
    size_t n = (size_t)snprintf(body, cap, "{\"link\":\"L\",\"blocks\":[");
    for (size_t i = 0; i <= QK_PEER_INVENTORY_MAX; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s1", i ? "," : "");
    n += (size_t)snprintf(body + n, cap - n, "]}");
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_peer_inventory_decode(body, n, q, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "0..256 entries"));
    CU_ASSERT(all_zero(q, sizeof *q));
    free(body);
    free(q);
}

static void test_answer_refusals(void)
{
    qk_err err;
    qk_err_clear(&err);
    qk_peer_result_msg res;
    qk_peer_state_msg st;
    qk_peer_error_msg e;
    qk_peer_health_msg *h = malloc(sizeof *h);
    qk_peer_inventory_answer *a = malloc(sizeof *a);
    qk_peer_inventory_msg *q = malloc(sizeof *q);
    CU_ASSERT_FATAL(h && a && q);
#define REFUSED(call)                                                                              \
    do {                                                                                           \
        qk_err_clear(&err);                                                                        \
        CU_ASSERT_EQUAL(call, QK_EINVAL);                                                          \
        CU_ASSERT(err.msg[0] != '\0');                                                             \
    } while (0)
#define DEC(fn, s, out) fn(s, strlen(s), out, &err)
    REFUSED(DEC(qk_peer_result_decode, "{\"status\":\"done\"}", &res));
    REFUSED(DEC(qk_peer_result_decode, "{\"status\":1}", &res));
    REFUSED(DEC(qk_peer_result_decode, "{}", &res));
    REFUSED(DEC(qk_peer_result_decode, "{\"status\":\"reserved\"}]", &res));
    REFUSED(DEC(qk_peer_state_decode, "{\"state\":\"unknown\"}", &st));
    REFUSED(DEC(qk_peer_state_decode, "\"pending\"", &st));
    REFUSED(DEC(qk_peer_error_decode, "{\"reason\":\"limit\"}", &e));
    REFUSED(DEC(qk_peer_error_decode, "{\"message\":\"m\",\"reason\":\"quota\"}", &e));
    REFUSED(DEC(qk_peer_error_decode, "{\"message\":\"m\",\"reason\":null}", &e));
    REFUSED(DEC(qk_peer_error_decode, "{\"message\":[\"m\"]}", &e));
    CU_ASSERT(all_zero(&e, sizeof e));
    REFUSED(DEC(qk_peer_health_decode, "{\"node_id\":\"B\"}", h));
    REFUSED(DEC(qk_peer_health_decode, "{\"node_id\":\"B\",\"links\":[1]}", h));
    REFUSED(DEC(qk_peer_health_decode, "{\"node_id\":\"\",\"links\":[]}", h));
    REFUSED(DEC(qk_peer_inventory_answer_decode,
                "{\"blocks\":[{\"block_id\":1,\"status\":\"maybe\"}]}", a));
    REFUSED(DEC(qk_peer_inventory_answer_decode, "{\"blocks\":[{\"status\":\"match\"}]}", a));
    REFUSED(DEC(qk_peer_inventory_answer_decode,
                "{\"blocks\":[{\"block_id\":1.5,\"status\":\"match\"}]}", a));
    REFUSED(DEC(qk_peer_inventory_answer_decode, "{\"blocks\":[[]]}", a));
    REFUSED(DEC(qk_peer_inventory_decode, "{\"blocks\":[]}", q));
    REFUSED(DEC(qk_peer_inventory_decode,
                "{\"link\":\"L\",\"blocks\":[{\"block_id\":1,\"digest\":\"00\"}]}", q));
    REFUSED(DEC(qk_peer_inventory_decode,
                "{\"link\":\"L\",\"blocks\":[{\"digest\":\"" HEX64 "\"}]}", q));
    /* a message of QK_PEER_MESSAGE_MAX characters passes, one more does not */
    char body[QK_PEER_MESSAGE_MAX + 64];
    int w = snprintf(body, sizeof body, "{\"message\":\"%0*d\"}", QK_PEER_MESSAGE_MAX, 0);
    CU_ASSERT_EQUAL(qk_peer_error_decode(body, (size_t)w, &e, &err), 0);
    CU_ASSERT_EQUAL(e.reason, QK_PEER_REASON_NONE);
    w = snprintf(body, sizeof body, "{\"message\":\"%0*d\"}", QK_PEER_MESSAGE_MAX + 1, 0);
    REFUSED(qk_peer_error_decode(body, (size_t)w, &e, &err));
    /* the envelope's own answers (no reason) decode */
    const char *env = "{\"message\":\"request body too large (limit 2097152 bytes)\"}";
    CU_ASSERT_EQUAL(DEC(qk_peer_error_decode, env, &e), 0);
#undef DEC
#undef REFUSED
    free(h);
    free(a);
    free(q);
}

/* ---- device-keys ----------------------------------------------------------------------- */

static qk_peer_device_keys_msg *device_keys_msg(size_t n, uint32_t bits)
{
    qk_peer_device_keys_msg *m = calloc(1, sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    snprintf(m->link, sizeof m->link, "KME_A~KME_B");
    m->block_id = QK_PEER_BLOCK_ID_MAX;
    m->key_size = bits;
    m->n = n;
    for (size_t i = 0; i < n; i++)
        snprintf(m->key_ids[i], sizeof m->key_ids[i], "bc490419-7d60-487f-adc1-%012x", (unsigned)i);
    return m;
}

static void test_device_keys_round_trip(void)
{
    qk_err err;
    qk_err_clear(&err);
    /* the largest message: QK_PEER_DEVICE_KEYS_MAX keys */
    qk_peer_device_keys_msg *m = device_keys_msg(QK_PEER_DEVICE_KEYS_MAX, 256);
    qk_peer_device_keys_msg *d = malloc(sizeof *d);
    CU_ASSERT_FATAL(d != NULL);
    char *s = NULL, *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_device_keys_encode(m, &s, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_peer_device_keys_decode(s, strlen(s), d, &err), 0);
    CU_ASSERT(memcmp(m, d, sizeof *m) == 0);
    CU_ASSERT_EQUAL(qk_peer_device_keys_encode(d, &s2, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, s2);
    free(s);
    free(s2);
    /* the wire format of docs/qkd-kmed.md; upper-case IDs arrive normalised */
    const char *wire = "{\"link\":\"L\",\"block_id\":7,\"key_IDs\":[\"" UUID1 "\",\"" UUID2
                       "\"],\"key_size\":256}";
    CU_ASSERT_EQUAL_FATAL(qk_peer_device_keys_decode(wire, strlen(wire), d, &err), 0);
    CU_ASSERT_EQUAL(d->n, 2);
    CU_ASSERT_EQUAL(d->block_id, 7);
    CU_ASSERT_EQUAL(d->key_size, 256);
    CU_ASSERT_EQUAL(qk_peer_device_keys_encode(d, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, wire);
    free(s);
    const char *upper = "{\"link\":\"L\",\"block_id\":7,\"key_IDs\":["
                        "\"BC490419-7D60-487F-ADC1-4DDCC177C139\",\"" UUID2 "\"],\"key_size\":256}";
    CU_ASSERT_EQUAL_FATAL(qk_peer_device_keys_decode(upper, strlen(upper), d, &err), 0);
    CU_ASSERT_STRING_EQUAL(d->key_ids[0], UUID1);
    qk_peer_result_msg res = {.status = QK_PEER_STORED};
    CU_ASSERT_EQUAL(qk_peer_result_encode(&res, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"status\":\"stored\"}");
    free(s);
    free(m);
    free(d);
}

static void expect_device_keys_refused(const char *body, const char *what)
{
    qk_peer_device_keys_msg *d = malloc(sizeof *d);
    CU_ASSERT_FATAL(d != NULL);
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_peer_device_keys_decode(body, strlen(body), d, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    CU_ASSERT(strstr(err.msg, what) != NULL);
    if (rc != QK_EINVAL || !strstr(err.msg, what))
        fprintf(stderr, "\n  accepted or wrong message (%s): %s\n", err.msg, body);
    CU_ASSERT(all_zero(d, sizeof *d));
    free(d);
}

#define DK_HEAD "{\"link\":\"L\",\"block_id\":1,"
#define DK_TWO  "\"key_IDs\":[\"" UUID1 "\",\"" UUID2 "\"]"

static void test_device_keys_refusals(void)
{
    expect_device_keys_refused("{\"block_id\":1," DK_TWO ",\"key_size\":256}", "link");
    expect_device_keys_refused("{\"link\":\"L\"," DK_TWO ",\"key_size\":256}", "block_id");
    expect_device_keys_refused(
        "{\"link\":\"L\",\"block_id\":9007199254740992," DK_TWO ",\"key_size\":256}", "block_id");
    expect_device_keys_refused(DK_HEAD DK_TWO "}", "key_size");
    expect_device_keys_refused(DK_HEAD DK_TWO ",\"key_size\":255}", "key_size");
    expect_device_keys_refused(DK_HEAD DK_TWO ",\"key_size\":0}", "key_size");
    expect_device_keys_refused(DK_HEAD DK_TWO ",\"key_size\":65544}", "key_size");
    expect_device_keys_refused(DK_HEAD DK_TWO ",\"key_size\":\"256\"}", "key_size");
    expect_device_keys_refused(DK_HEAD "\"key_IDs\":[],\"key_size\":256}", "key_IDs");
    expect_device_keys_refused(DK_HEAD "\"key_IDs\":\"" UUID1 "\",\"key_size\":256}", "key_IDs");
    expect_device_keys_refused(
        DK_HEAD "\"key_IDs\":[\"" UUID1 "\",\"" UUID1 "\"],\"key_size\":256}", "twice");
    expect_device_keys_refused(
        DK_HEAD "\"key_IDs\":[\"" UUID1 "\",\"not-a-uuid\"],\"key_size\":256}", "UUID");
    expect_device_keys_refused(DK_HEAD "\"key_IDs\":[\"" UUID1 "\",7],\"key_size\":256}", "UUID");
    /* one 256-bit key is only a verification key: no block */
    expect_device_keys_refused(DK_HEAD "\"key_IDs\":[\"" UUID1 "\"],\"key_size\":256}", "block");
    /* 2 x 65536 bits fit, but 1024 x 65536 bits are past 4 MiB */
    qk_peer_device_keys_msg *m = device_keys_msg(QK_PEER_DEVICE_KEYS_MAX, 65536);
    char *s = NULL;
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_peer_device_keys_encode(m, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    /* the encoder refuses what no decoder accepts: a duplicate, an upper-case ID */
    m->key_size = 256;
    m->n = 3;
    snprintf(m->key_ids[2], sizeof m->key_ids[2], "%s", m->key_ids[0]);
    CU_ASSERT_EQUAL(qk_peer_device_keys_encode(m, &s, &err), QK_EINVAL);
    snprintf(m->key_ids[2], sizeof m->key_ids[2], "BC490419-7D60-487F-ADC1-4DDCC177C139");
    CU_ASSERT_EQUAL(qk_peer_device_keys_encode(m, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    free(m);
    expect_device_keys_refused(DK_HEAD DK_TWO ",\"key_size\":256} x", "");
    /* the reasons the device-keys handler answers with */
    CU_ASSERT_STRING_EQUAL(qk_peer_reason_name(QK_PEER_REASON_SOURCE), "source");
    CU_ASSERT_STRING_EQUAL(qk_peer_reason_name(QK_PEER_REASON_DEVICE), "device");
    CU_ASSERT_STRING_EQUAL(qk_peer_reason_name(QK_PEER_REASON_DEVICE_DOWN), "device-down");
}

/* ---- lease ------------------------------------------------------------------------------ */

static qk_peer_lease_msg lease_msg(uint64_t bid, uint32_t from, uint32_t to)
{
    qk_peer_lease_msg m;
    memset(&m, 0, sizeof m);
    snprintf(m.link, sizeof m.link, "KME_A~KME_B");
    m.side = QK_SIDE_HIGH;
    m.lease.block_id = bid;
    m.lease.from = from;
    m.lease.to = to;
    return m;
}

static void test_lease_round_trip(void)
{
    qk_err err;
    qk_err_clear(&err);
    /* the extremes: the largest block ID, the whole of the largest block */
    const qk_peer_lease_msg cases[] = {
        lease_msg(QK_PEER_BLOCK_ID_MAX, QK_BLOCK_VKEY_LEN, QK_BLOCK_MAX_BYTES),
        lease_msg(0, QK_BLOCK_MAX_BYTES - 1, QK_BLOCK_MAX_BYTES),
        lease_msg(42, 4096, 4096 + 262144)};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qk_peer_lease_msg d;
        char *s = NULL, *s2 = NULL;
        CU_ASSERT_EQUAL_FATAL(qk_peer_lease_encode(&cases[i], &s, &err), 0);
        CU_ASSERT_EQUAL_FATAL(qk_peer_lease_decode(s, strlen(s), &d, &err), 0);
        CU_ASSERT(memcmp(&d, &cases[i], sizeof d) == 0);
        CU_ASSERT_EQUAL(qk_peer_lease_encode(&d, &s2, &err), 0);
        CU_ASSERT_STRING_EQUAL(s, s2);
        free(s);
        free(s2);
    }
    /* the wire format of docs/qkd-kmed.md, and its answer */
    qk_peer_lease_msg m = lease_msg(9, 32, 1056);
    m.side = QK_SIDE_LOW;
    char *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_lease_encode(&m, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"link\":\"KME_A~KME_B\",\"side\":\"low\",\"block_id\":9,"
                              "\"from\":32,\"to\":1056}");
    free(s);
    /* an earlier version's ask with its check: the same message */
    static const char earlier[] = "{\"link\":\"KME_A~KME_B\",\"side\":\"low\",\"block_id\":9,"
                                  "\"from\":32,\"to\":1056,\"check\":\"" HEX64 "\"}";
    qk_peer_lease_msg d;
    CU_ASSERT_EQUAL(qk_peer_lease_decode(earlier, strlen(earlier), &d, &err), 0);
    CU_ASSERT(memcmp(&d, &m, sizeof d) == 0);
    qk_peer_result_msg res = {.status = QK_PEER_GRANTED};
    CU_ASSERT_EQUAL(qk_peer_result_encode(&res, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"status\":\"granted\"}");
    free(s);
    /* the encoder refuses what no decoder accepts */
    const qk_peer_lease_msg bad[] = {
        lease_msg(1, 100, 100),                        /* empty */
        lease_msg(1, 200, 100),                        /* reversed */
        lease_msg(1, QK_BLOCK_VKEY_LEN - 1, 100),      /* into the verification key */
        lease_msg(1, 100, QK_BLOCK_MAX_BYTES + 1),     /* past the largest block */
        lease_msg(QK_PEER_BLOCK_ID_MAX + 1, 100, 200), /* block ID */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(qk_peer_lease_encode(&bad[i], &s, &err), QK_EINVAL);
        CU_ASSERT_PTR_NULL(s);
    }
    m.side = (qk_side)2;
    CU_ASSERT_EQUAL(qk_peer_lease_encode(&m, &s, &err), QK_EINVAL);
    m.side = QK_SIDE_LOW;
    m.link[0] = '\0';
    CU_ASSERT_EQUAL(qk_peer_lease_encode(&m, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(s);
}

static void expect_lease_refused(const char *body, const char *what)
{
    qk_peer_lease_msg d;
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_peer_lease_decode(body, strlen(body), &d, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    CU_ASSERT(strstr(err.msg, what) != NULL);
    if (rc != QK_EINVAL || !strstr(err.msg, what))
        fprintf(stderr, "\n  accepted or wrong message (%s): %s\n", err.msg, body);
    CU_ASSERT(all_zero(&d, sizeof d));
}

#define LS_HEAD  "{\"link\":\"L\",\"side\":\"high\",\"block_id\":3,"
#define LS_CHECK ",\"check\":\"" HEX64 "\"}"

static void test_lease_refusals(void)
{
    qk_peer_lease_msg d;
    qk_err err;
    qk_err_clear(&err);
    const char *ok = LS_HEAD "\"from\":32,\"to\":64" LS_CHECK;
    CU_ASSERT_EQUAL(qk_peer_lease_decode(ok, strlen(ok), &d, &err), 0);
    CU_ASSERT_EQUAL(d.side, QK_SIDE_HIGH);
    CU_ASSERT_EQUAL(d.lease.from, 32);
    CU_ASSERT_EQUAL(d.lease.to, 64);
    /* missing members */
    expect_lease_refused("{\"side\":\"high\",\"block_id\":3,\"from\":32,\"to\":64" LS_CHECK,
                         "link");
    expect_lease_refused("{\"link\":\"L\",\"block_id\":3,\"from\":32,\"to\":64" LS_CHECK, "side");
    expect_lease_refused("{\"link\":\"L\",\"side\":\"high\",\"from\":32,\"to\":64" LS_CHECK,
                         "block_id");
    expect_lease_refused(LS_HEAD "\"to\":64" LS_CHECK, "from");
    expect_lease_refused(LS_HEAD "\"from\":32" LS_CHECK, "to");
    /* the check is optional (this version sends none) but must be well-formed when present */
    const char *bare = LS_HEAD "\"from\":32,\"to\":64}";
    CU_ASSERT_EQUAL(qk_peer_lease_decode(bare, strlen(bare), &d, &err), 0);
    CU_ASSERT_EQUAL(d.lease.to, 64);
    expect_lease_refused(LS_HEAD "\"from\":32,\"to\":64,\"check\":12}", "check");
    /* a link name cut short by a NUL escape (issue 17 item 5) */
    expect_lease_refused("{\"link\":\"L\\u0000x\",\"side\":\"high\",\"block_id\":3,\"from\":32,"
                         "\"to\":64" LS_CHECK,
                         "NUL");
    /* wrong types, bad enumerations and IDs */
    expect_lease_refused(LS_HEAD "\"from\":\"32\",\"to\":64" LS_CHECK, "from");
    expect_lease_refused(LS_HEAD "\"from\":32.5,\"to\":64" LS_CHECK, "from");
    expect_lease_refused("{\"link\":\"L\",\"side\":\"middle\",\"block_id\":3,\"from\":32,"
                         "\"to\":64" LS_CHECK,
                         "side");
    expect_lease_refused("{\"link\":\"\",\"side\":\"low\",\"block_id\":3,\"from\":32,"
                         "\"to\":64" LS_CHECK,
                         "link");
    expect_lease_refused(LS_HEAD "\"from\":32,\"to\":64,\"check\":\"00\"}", "check");
    /* ranges: into the verification key, empty, reversed, past the largest block; block ID */
    expect_lease_refused(LS_HEAD "\"from\":31,\"to\":64" LS_CHECK, "from");
    expect_lease_refused(LS_HEAD "\"from\":64,\"to\":64" LS_CHECK, "from < to");
    expect_lease_refused(LS_HEAD "\"from\":65,\"to\":64" LS_CHECK, "from < to");
    expect_lease_refused(LS_HEAD "\"from\":32,\"to\":4194305" LS_CHECK, "to");
    expect_lease_refused(LS_HEAD "\"from\":-1,\"to\":64" LS_CHECK, "from");
    expect_lease_refused("{\"link\":\"L\",\"side\":\"high\",\"block_id\":9007199254740992,"
                         "\"from\":32,\"to\":64" LS_CHECK,
                         "block_id");
    /* duplicate member, trailing garbage */
    expect_lease_refused(LS_HEAD "\"from\":32,\"from\":33,\"to\":64" LS_CHECK, "");
    expect_lease_refused(LS_HEAD "\"from\":32,\"to\":64" LS_CHECK "]", "");
}

/* ---- notices ---------------------------------------------------------------------------- */

/* A notice with ns slaves and nk keys (allocated: free with qk_notice_free). */
static qk_notice notice(const char *id, size_t ns, size_t nk, uint64_t seed)
{
    qk_notice v;
    memset(&v, 0, sizeof v);
    snprintf(v.request_id, sizeof v.request_id, "%s", id);
    snprintf(v.master, sizeof v.master, "SAE_A");
    v.slaves = calloc(ns, sizeof *v.slaves);
    v.keys = calloc(nk, sizeof *v.keys);
    CU_ASSERT_FATAL(v.slaves && v.keys);
    for (size_t i = 0; i < ns; i++)
        snprintf(v.slaves[i], sizeof v.slaves[i], "SAE_%c", (char)('B' + i));
    for (size_t i = 0; i < nk; i++) {
        char kid[QK_KEY_ID_LEN + 1];
        snprintf(kid, sizeof kid, "bc490419-7d60-487f-adc1-%012x", (unsigned)(seed * 16 + i));
        v.keys[i] = key_ref(kid, seed, (uint32_t)(QK_BLOCK_VKEY_LEN + 32 * i), 32, 0);
    }
    v.nslaves = ns;
    v.nkeys = nk;
    v.expires_at = 1700000000 + seed;
    return v;
}

static void notices_equal(const qk_peer_notices_msg *a, const qk_peer_notices_msg *b)
{
    CU_ASSERT_STRING_EQUAL(a->link, b->link);
    CU_ASSERT_EQUAL(a->side, b->side);
    CU_ASSERT_EQUAL_FATAL(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const qk_notice *x = &a->notices[i], *y = &b->notices[i];
        CU_ASSERT_STRING_EQUAL(x->request_id, y->request_id);
        CU_ASSERT_STRING_EQUAL(x->master, y->master);
        CU_ASSERT_EQUAL(x->expires_at, y->expires_at);
        CU_ASSERT_EQUAL_FATAL(x->nslaves, y->nslaves);
        for (size_t j = 0; j < x->nslaves; j++)
            CU_ASSERT_STRING_EQUAL(x->slaves[j], y->slaves[j]);
        CU_ASSERT_EQUAL_FATAL(x->nkeys, y->nkeys);
        for (size_t j = 0; j < x->nkeys; j++) {
            CU_ASSERT_STRING_EQUAL(x->keys[j].key_id, y->keys[j].key_id);
            CU_ASSERT_EQUAL(x->keys[j].block_id, y->keys[j].block_id);
            CU_ASSERT_EQUAL(x->keys[j].offset, y->keys[j].offset);
            CU_ASSERT_EQUAL(x->keys[j].length, y->keys[j].length);
            CU_ASSERT(all_zero(y->keys[j].check, QK_CHECK_LEN)); /* no check travels */
        }
    }
}

static void test_notices_round_trip(void)
{
    qk_err err;
    qk_err_clear(&err);
    /* the limits' largest request (3 slaves, 4 keys) beside the smallest */
    qk_notice v[2] = {notice("req-1", 3, 4, 1), notice("req-2", 1, 1, QK_PEER_BLOCK_ID_MAX)};
    v[1].expires_at = QK_PEER_BLOCK_ID_MAX;
    v[1].keys[0].offset = QK_BLOCK_MAX_BYTES - 32;
    qk_peer_notices_msg m = {.link = "KME_A~KME_B", .side = QK_SIDE_LOW, .notices = v, .n = 2};
    qk_peer_notices_msg d;
    char *s = NULL, *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_decode(s, strlen(s), &LIM, &d, &err), 0);
    notices_equal(&m, &d);
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&d, &s2, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, s2);
    free(s);
    free(s2);
    qk_peer_notices_msg_free(&d);
    CU_ASSERT(all_zero(&d, sizeof d));
    /* the wire format of docs/qkd-kmed.md: keys without a check */
    m.notices = &v[1];
    m.n = 1;
    v[1].keys[0].block_id = 5;
    v[1].keys[0].offset = 64;
    v[1].expires_at = 1700000000;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"link\":\"KME_A~KME_B\",\"side\":\"low\",\"notices\":[{"
                              "\"request_id\":\"req-2\",\"master\":\"SAE_A\",\"slaves\":["
                              "\"SAE_B\"],\"expires_at\":1700000000,\"keys\":[{\"key_ID\":"
                              "\"bc490419-7d60-487f-adc1-0000fffffff0\",\"block_id\":5,"
                              "\"offset\":64,\"length\":32}]}]}");
    /* a check member, like any unknown member, is ignored */
    const char *with_check =
        "{\"link\":\"L\",\"side\":\"high\",\"notices\":[{\"request_id\":\"r\",\"master\":\"M\","
        "\"slaves\":[\"S\"],\"expires_at\":5,\"keys\":[" KEY_OK "]}]}";
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_decode(with_check, strlen(with_check), &LIM, &d, &err),
                          0);
    CU_ASSERT(all_zero(d.notices[0].keys[0].check, QK_CHECK_LEN));
    qk_peer_notices_msg_free(&d);
    free(s);
    /* the encoder refuses what no decoder accepts */
    m.n = 0;
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&m, &s, &err), QK_EINVAL);
    m.n = QK_PEER_NOTICES_MAX + 1;
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&m, &s, &err), QK_EINVAL);
    m.n = 1;
    m.side = (qk_side)2;
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&m, &s, &err), QK_EINVAL);
    m.side = QK_SIDE_LOW;
    v[1].nslaves = 0;
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&m, &s, &err), QK_EINVAL);
    v[1].nslaves = 1;
    v[1].nkeys = 0;
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&m, &s, &err), QK_EINVAL);
    v[1].nkeys = 1;
    CU_ASSERT_PTR_NULL(s);
    qk_notice_free(v, 2);
}

/* A batch whose body would pass QK_PEER_MSG_MAX is not encoded (QK_ELIMIT: send fewer). */
static void test_notices_too_large(void)
{
    qk_err err;
    qk_err_clear(&err);
    enum { N = QK_PEER_NOTICES_MAX, K = 24 }; /* ~100 bytes a key: ~2.4 MB */
    qk_notice *v = calloc(N, sizeof *v);
    CU_ASSERT_FATAL(v != NULL);
    for (size_t i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-%zu", i);
        v[i] = notice(id, 1, K, i);
    }
    qk_peer_notices_msg m = {.link = "L", .side = QK_SIDE_HIGH, .notices = v, .n = N};
    char *s = NULL;
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&m, &s, &err), QK_ELIMIT);
    CU_ASSERT_PTR_NULL(s);
    /* half of them fit, and the decoder takes all QK_PEER_NOTICES_MAX of a smaller batch */
    m.n = N / 2;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s, &err), 0);
    CU_ASSERT(strlen(s) <= QK_PEER_MSG_MAX);
    free(s);
    for (size_t i = 0; i < N; i++)
        v[i].nkeys = 1;
    m.n = N;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s, &err), 0);
    qk_peer_notices_msg d;
    CU_ASSERT_EQUAL(qk_peer_notices_decode(s, strlen(s), &LIM, &d, &err), 0);
    CU_ASSERT_EQUAL(d.n, N);
    qk_peer_notices_msg_free(&d);
    free(s);
    for (size_t i = 0; i < N; i++)
        v[i].nkeys = K;
    qk_notice_free(v, N);
    free(v);
}

static void expect_notices_refused(const char *body, const char *what)
{
    qk_peer_notices_msg d;
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_peer_notices_decode(body, strlen(body), &LIM, &d, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    CU_ASSERT(strstr(err.msg, what) != NULL);
    if (rc != QK_EINVAL || !strstr(err.msg, what))
        fprintf(stderr, "\n  accepted or wrong message (%s): %s\n", err.msg, body);
    CU_ASSERT(all_zero(&d, sizeof d));
    if (rc == 0)
        qk_peer_notices_msg_free(&d);
}

#define NK_OK   "{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":32,\"length\":32}"
#define NT_HEAD "{\"link\":\"L\",\"side\":\"high\",\"notices\":["
#define NT_REQ(id)                                                                                 \
    "{\"request_id\":\"" id "\",\"master\":\"M\",\"slaves\":[\"S\"],\"expires_at\":5,"
#define NT_OK(id) NT_REQ(id) "\"keys\":[" NK_OK "]}"
/* A batch of a good notice and then one whose keys are `k`: the second is refused after the
 * first was decoded (and allocated). */
#define NT_KEYS(k) NT_HEAD NT_OK("a") "," NT_REQ("b") "\"keys\":[" k "]}]}"

static void test_notices_refusals(void)
{
    qk_peer_notices_msg d;
    qk_err err;
    qk_err_clear(&err);
    const char *ok = NT_HEAD NT_OK("a") "," NT_OK("b") "]}";
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_decode(ok, strlen(ok), &LIM, &d, &err), 0);
    CU_ASSERT_EQUAL(d.n, 2);
    CU_ASSERT_EQUAL(d.side, QK_SIDE_HIGH);
    qk_peer_notices_msg_free(&d);
    /* the head */
    expect_notices_refused("{\"side\":\"high\",\"notices\":[" NT_OK("a") "]}", "link");
    expect_notices_refused("{\"link\":\"L\",\"notices\":[" NT_OK("a") "]}", "side");
    expect_notices_refused("{\"link\":\"L\",\"side\":\"up\",\"notices\":[" NT_OK("a") "]}", "side");
    expect_notices_refused("{\"link\":\"L\",\"side\":\"low\"}", "notices");
    expect_notices_refused(NT_HEAD "]}", "notices");
    expect_notices_refused("{\"link\":\"L\",\"side\":\"low\",\"notices\":{}}", "notices");
    expect_notices_refused(NT_HEAD "[]]}", "objects");
    /* a request: missing members, bad IDs, expiry, slave counts (limits: 3) */
    expect_notices_refused(NT_HEAD "{\"master\":\"M\",\"slaves\":[\"S\"],\"expires_at\":5,"
                                   "\"keys\":[" NK_OK "]}]}",
                           "request_id");
    expect_notices_refused(NT_HEAD "{\"request_id\":\"r\",\"slaves\":[\"S\"],\"expires_at\":5,"
                                   "\"keys\":[" NK_OK "]}]}",
                           "master");
    expect_notices_refused(NT_HEAD "{\"request_id\":\"r\",\"master\":\"M\",\"slaves\":[\"S\"],"
                                   "\"keys\":[" NK_OK "]}]}",
                           "expires_at");
    expect_notices_refused(NT_HEAD "{\"request_id\":\"r\",\"master\":\"M\",\"slaves\":[\"S\"],"
                                   "\"expires_at\":9007199254740992,\"keys\":[" NK_OK "]}]}",
                           "expires_at");
    expect_notices_refused(NT_HEAD "{\"request_id\":\"r\\u0001\",\"master\":\"M\",\"slaves\":["
                                   "\"S\"],\"expires_at\":5,\"keys\":[" NK_OK "]}]}",
                           "request_id");
    expect_notices_refused(NT_HEAD NT_OK("a") ",{\"request_id\":\"b\",\"master\":\"M\","
                                              "\"slaves\":[],\"expires_at\":5,\"keys\":[" NK_OK
                                              "]}]}",
                           "slaves");
    expect_notices_refused(NT_HEAD NT_OK("a") ",{\"request_id\":\"b\",\"master\":\"M\","
                                              "\"slaves\":[\"S\",\"T\",\"U\",\"V\"],"
                                              "\"expires_at\":5,\"keys\":[" NK_OK "]}]}",
                           "slaves");
    expect_notices_refused(NT_HEAD NT_OK("a") ",{\"request_id\":\"b\",\"master\":\"M\","
                                              "\"slaves\":[\"S\",7],\"expires_at\":5,"
                                              "\"keys\":[" NK_OK "]}]}",
                           "slaves");
    /* the same request twice in a batch */
    expect_notices_refused(NT_HEAD NT_OK("a") "," NT_OK("a") "]}", "twice");
    /* keys, refused after a first notice was decoded: counts (limits: 4), ranges, IDs */
    expect_notices_refused(NT_KEYS(""), "keys");
    expect_notices_refused(NT_KEYS(NK_OK "," NK_OK "," NK_OK "," NK_OK "," NK_OK), "keys");
    expect_notices_refused(NT_KEYS("7"), "objects");
    expect_notices_refused(
        NT_KEYS("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":32,\"length\":33}"), "length");
    expect_notices_refused(
        NT_KEYS("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":32,\"length\":0}"), "length");
    expect_notices_refused(
        NT_KEYS("{\"key_ID\":\"" UUID1 "\",\"block_id\":1,\"offset\":4194300,\"length\":5}"),
        "beyond");
    expect_notices_refused(NT_KEYS("{\"key_ID\":\"" UUID1 "\",\"block_id\":9007199254740992,"
                                   "\"offset\":32,\"length\":32}"),
                           "block_id");
    expect_notices_refused(
        NT_KEYS("{\"key_ID\":\"not-a-uuid\",\"block_id\":1,\"offset\":32,\"length\":32}"), "UUID");
    expect_notices_refused(NT_KEYS("{\"block_id\":1,\"offset\":32,\"length\":32}"), "key_ID");
    expect_notices_refused(NT_HEAD NT_OK("a") "]} x", "");
}

/* Too many notices are refused for their count before any entry is read. */
static void test_notices_count_first(void)
{
    size_t cap = 64 + (QK_PEER_NOTICES_MAX + 1) * 2;
    char *body = malloc(cap);
    CU_ASSERT_FATAL(body != NULL);
    size_t n = (size_t)snprintf(body, cap, NT_HEAD);
    for (size_t i = 0; i <= QK_PEER_NOTICES_MAX; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s1", i ? "," : "");
    n += (size_t)snprintf(body + n, cap - n, "]}");
    qk_peer_notices_msg d;
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_peer_notices_decode(body, n, &LIM, &d, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "1..1024 entries"));
    CU_ASSERT(all_zero(&d, sizeof d));
    free(body);
}

/* Runs (peer_msg.h, docs/adr/0003-request-records.md "Wire"): keys k of a run named by a
 * 32-character prefix and the index in 4 hex digits. n keys of prefix P from offset off. */
#define RUN_P1 "bc490419-7d60-487f-adc1-4ddcc177"
#define RUN_P2 "0a782fb5-3434-48fe-aa4d-14f41d46"
static void run_keys(qk_key_ref *k, size_t n, const char *prefix, uint64_t block, uint32_t off,
                     uint32_t len)
{
    for (size_t i = 0; i < n; i++) {
        char id[QK_KEY_ID_LEN + 1];
        snprintf(id, sizeof id, "%s%04zx", prefix, i);
        k[i] = key_ref(id, block, off + (uint32_t)(i * len), len, 0);
    }
}

static void test_notices_runs(void)
{
    qk_err err;
    qk_err_clear(&err);
    /* req-r: two runs (3 keys in block 5, 1 in block 9); req-k: keys that are no run (an ID
     * out of sequence), sent as keys whatever the flag */
    qk_notice v[2] = {notice("req-r", 1, 4, 1), notice("req-k", 2, 2, 2)};
    run_keys(v[0].keys, 3, RUN_P1, 5, 64, 32);
    run_keys(v[0].keys + 3, 1, RUN_P2, 9, 4096, 32);
    run_keys(v[1].keys, 2, RUN_P2, 7, 64, 16);
    memcpy(v[1].keys[1].key_id + QK_PEER_RUN_PREFIX_LEN, "0002", 4);
    qk_peer_notices_msg m = {.link = "L", .side = QK_SIDE_LOW, .notices = v, .n = 2, .runs = true};
    qk_peer_notices_msg d;
    char *s = NULL, *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s,
                                  "\"runs\":[{\"prefix\":\"" RUN_P1 "\",\"block_id\":5,"
                                  "\"offset\":64,\"length\":32,\"count\":3},{\"prefix\":\"" RUN_P2
                                  "\",\"block_id\":9,\"offset\":4096,\"length\":32,"
                                  "\"count\":1}]}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"keys\":[{\"key_ID\":\"" RUN_P2 "0000\""));
    CU_ASSERT_PTR_NULL(strstr(s, RUN_P1 "0001")); /* no per-key entry for a run */
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_decode(s, strlen(s), &LIM, &d, &err), 0);
    notices_equal(&m, &d); /* the runs come back as the same keys, in order */
    CU_ASSERT_TRUE(d.runs);
    CU_ASSERT_EQUAL(qk_peer_notices_encode(&d, &s2, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, s2);
    free(s2);
    qk_peer_notices_msg_free(&d);
    /* without the flag (a peer that never said it takes runs): key lists only */
    m.runs = false;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s2, &err), 0);
    CU_ASSERT_PTR_NULL(strstr(s2, "runs"));
    CU_ASSERT(strlen(s2) > strlen(s));
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_decode(s2, strlen(s2), &LIM, &d, &err), 0);
    notices_equal(&m, &d);
    CU_ASSERT_FALSE(d.runs);
    qk_peer_notices_msg_free(&d);
    free(s);
    free(s2);
    /* a run must start at index 0000, stay in one block, one length, contiguous: else keys */
    m.runs = true;
    m.n = 1;
    static const struct {
        size_t key;
        int what; /* 0 first ID, 1 block, 2 length, 3 offset */
    } breaks[] = {{0, 0}, {1, 1}, {2, 2}, {2, 3}};
    for (size_t b = 0; b < sizeof breaks / sizeof breaks[0]; b++) {
        run_keys(v[0].keys, 4, RUN_P1, 5, 64, 32);
        qk_key_ref *k = &v[0].keys[breaks[b].key];
        if (breaks[b].what == 0)
            memcpy(k->key_id + QK_PEER_RUN_PREFIX_LEN, "0001", 4);
        else if (breaks[b].what == 1)
            k->block_id = 6;
        else if (breaks[b].what == 2)
            k->length = 16;
        else
            k->offset += 1;
        CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &s, &err), 0);
        CU_ASSERT_PTR_NULL(strstr(s, "runs"));
        if (strstr(s, "runs"))
            fprintf(stderr, "\n  run written across break %zu: %s\n", b, s);
        free(s);
    }
    qk_notice_free(v, 2);
}

/* A run form that would name keys the key form refuses is refused the same way; limits count
 * the keys of every run of a notice (LIM: 4 keys of at most 32 bytes). */
#define NR(p, b, o, l, c)                                                                          \
    "{\"prefix\":\"" p "\",\"block_id\":" #b ",\"offset\":" #o ",\"length\":" #l ",\"count\":" #c  \
    "}"
#define NT_RUNS(r) NT_HEAD NT_OK("a") "," NT_REQ("b") "\"runs\":[" r "]}]}"

static void test_notices_runs_refusals(void)
{
    qk_peer_notices_msg d;
    qk_err err;
    qk_err_clear(&err);
    const char *ok = NT_RUNS(
        NR("BC490419-7D60-487F-ADC1-4DDCC177", 1, 32, 32, 3) "," NR(RUN_P2, 2, 4194272, 32, 1));
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_decode(ok, strlen(ok), &LIM, &d, &err), 0);
    CU_ASSERT_TRUE(d.runs);
    CU_ASSERT_EQUAL_FATAL(d.notices[1].nkeys, 4);
    CU_ASSERT_STRING_EQUAL(d.notices[1].keys[2].key_id, RUN_P1 "0002"); /* lower case */
    CU_ASSERT_EQUAL(d.notices[1].keys[2].offset, 96);
    CU_ASSERT_EQUAL(d.notices[1].keys[3].block_id, 2);
    qk_peer_notices_msg_free(&d);
    expect_notices_refused(NT_HEAD NT_REQ("b") "\"keys\":[" NK_OK
                                               "],\"runs\":[" NR(RUN_P1, 1, 32, 32, 1) "]}]}",
                           "not both");
    expect_notices_refused(NT_RUNS(""), "runs");
    expect_notices_refused(NT_RUNS("7"), "objects");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 1, 32, 32, 5)), "count");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 1, 32, 32, 3) "," NR(RUN_P2, 1, 132, 32, 2)),
                           "count");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 1, 32, 32, 2) "," NR(RUN_P2, 1, 132, 32, 2) "," NR(
                               RUN_P2, 1, 232, 32, 1)),
                           "more than 4 keys");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 1, 32, 32, 0)), "count");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 1, 32, 33, 1)), "length");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 1, 4194272, 32, 2)), "beyond");
    expect_notices_refused(NT_RUNS(NR(RUN_P1, 9007199254740992, 32, 32, 1)), "block_id");
    expect_notices_refused(NT_RUNS(NR("bc490419-7d60-487f-adc1-4ddcc17", 1, 32, 32, 1)), "prefix");
    expect_notices_refused(NT_RUNS(NR("bc490419-7d60-487f-adc1x4ddcc177", 1, 32, 32, 1)), "UUID");
    expect_notices_refused(NT_RUNS("{\"block_id\":1,\"offset\":32,\"length\":32,\"count\":1}"),
                           "prefix");
}

static void test_notices_answer_round_trip(void)
{
    qk_err err;
    qk_err_clear(&err);
    /* every status the store or the core answers travels as a reason and comes back */
    static const int statuses[] = {0,         QK_ECOLLISION, QK_EINVAL, QK_ENOTFOUND, QK_EMISMATCH,
                                   QK_EQUOTA, QK_EPEER};
    enum { N = sizeof statuses / sizeof statuses[0] };
    qk_peer_held held[2] = {{.master = "SAE_A", .slave = "SAE_B", .count = 0},
                            {.master = "SAE_A", .slave = "SAE_C", .count = QK_PEER_BLOCK_ID_MAX}};
    qk_peer_notice_result r[N];
    memset(r, 0, sizeof r);
    for (size_t i = 0; i < N; i++) {
        snprintf(r[i].request_id, sizeof r[i].request_id, "req-%zu", i);
        r[i].status = statuses[i];
    }
    r[0].held = held;
    r[0].nheld = 2;
    qk_peer_notices_answer a = {.r = r, .n = N}, d;
    char *s = NULL, *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_encode(&a, &s, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_decode(s, strlen(s), &d, &err), 0);
    CU_ASSERT_EQUAL_FATAL(d.n, N);
    for (size_t i = 0; i < N; i++) {
        CU_ASSERT_STRING_EQUAL(d.r[i].request_id, r[i].request_id);
        CU_ASSERT_EQUAL(d.r[i].status, r[i].status);
        CU_ASSERT_EQUAL(d.r[i].nheld, r[i].nheld);
    }
    CU_ASSERT_STRING_EQUAL(d.r[0].held[1].master, "SAE_A");
    CU_ASSERT_STRING_EQUAL(d.r[0].held[1].slave, "SAE_C");
    CU_ASSERT_EQUAL(d.r[0].held[1].count, QK_PEER_BLOCK_ID_MAX);
    CU_ASSERT_EQUAL(d.r[0].held[0].count, 0);
    CU_ASSERT_EQUAL(qk_peer_notices_answer_encode(&d, &s2, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, s2);
    free(s);
    free(s2);
    qk_peer_notices_answer_free(&d);
    CU_ASSERT(all_zero(&d, sizeof d));
    /* statuses without a reason of their own: EEXIST as a collision, others as internal */
    r[1].status = QK_EEXIST;
    r[2].status = QK_ESTORAGE;
    a.n = 3;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_encode(&a, &s, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_decode(s, strlen(s), &d, &err), 0);
    CU_ASSERT_EQUAL(d.r[1].status, QK_ECOLLISION);
    CU_ASSERT_EQUAL(d.r[2].status, QK_EPEER);
    qk_peer_notices_answer_free(&d);
    free(s);
    /* the wire format of docs/qkd-kmed.md */
    held[0].count = 3;
    r[0].nheld = 1;
    r[1].status = QK_ECOLLISION;
    a.n = 2;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_encode(&a, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"results\":[{\"request_id\":\"req-0\",\"result\":\"reserved\","
                              "\"held\":[{\"master\":\"SAE_A\",\"slave\":\"SAE_B\",\"count\":3}]"
                              "},{\"request_id\":\"req-1\",\"result\":\"refused\",\"reason\":"
                              "\"collision\",\"held\":[]}]}");
    free(s);
    /* "runs": written only when set, read back; absent means false */
    a.runs = true;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_encode(&a, &s, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"held\":[]}],\"runs\":true}"));
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_decode(s, strlen(s), &d, &err), 0);
    CU_ASSERT_TRUE(d.runs);
    qk_peer_notices_answer_free(&d);
    free(s);
    a.runs = false;
    /* an empty answer */
    a.n = 0;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_encode(&a, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "{\"results\":[]}");
    CU_ASSERT_EQUAL(qk_peer_notices_answer_decode(s, strlen(s), &d, &err), 0);
    CU_ASSERT_EQUAL(d.n, 0);
    CU_ASSERT_FALSE(d.runs);
    CU_ASSERT_PTR_NULL(d.r);
    free(s);
    s = NULL;
    /* the encoder refuses what no decoder accepts */
    a.n = 1;
    held[0].count = QK_PEER_BLOCK_ID_MAX + 1;
    CU_ASSERT_EQUAL(qk_peer_notices_answer_encode(&a, &s, &err), QK_EINVAL);
    held[0].count = 0;
    r[0].nheld = QK_PEER_SLAVES_MAX + 1;
    CU_ASSERT_EQUAL(qk_peer_notices_answer_encode(&a, &s, &err), QK_EINVAL);
    a.n = QK_PEER_NOTICES_MAX + 1;
    CU_ASSERT_EQUAL(qk_peer_notices_answer_encode(&a, &s, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(s);
}

static void test_notices_answer_refusals(void)
{
    static const char *const bad[] = {
        "{}",
        "{\"results\":{}}",
        "{\"results\":[7]}",
        "{\"results\":[{\"result\":\"reserved\",\"held\":[]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"held\":[]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"maybe\",\"held\":[]}]}",
        /* refused without a reason, or with one that is not a reason */
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"refused\",\"held\":[]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"refused\",\"reason\":\"oops\","
        "\"held\":[]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"reserved\"}]}",
        /* a good result, then bad held entries (allocated, then freed) */
        "{\"results\":[{\"request_id\":\"a\",\"result\":\"reserved\",\"held\":[{\"master\":"
        "\"M\",\"slave\":\"S\",\"count\":1}]},{\"request_id\":\"r\",\"result\":\"reserved\","
        "\"held\":[{\"master\":\"M\",\"slave\":\"S\",\"count\":-1}]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"reserved\",\"held\":[{\"master\":"
        "\"M\",\"slave\":\"S\",\"count\":9007199254740992}]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"reserved\",\"held\":[{\"master\":"
        "\"M\",\"count\":1}]}]}",
        "{\"results\":[{\"request_id\":\"r\",\"result\":\"reserved\",\"held\":[[]]}]}",
        "{\"results\":[]}]",
        "{\"results\":[],\"runs\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qk_peer_notices_answer d;
        qk_err err;
        qk_err_clear(&err);
        int rc = qk_peer_notices_answer_decode(bad[i], strlen(bad[i]), &d, &err);
        CU_ASSERT_EQUAL(rc, QK_EINVAL);
        CU_ASSERT(err.msg[0] != '\0');
        CU_ASSERT(all_zero(&d, sizeof d));
        if (rc != QK_EINVAL)
            fprintf(stderr, "\n  accepted: %s\n", bad[i]);
        if (rc == 0)
            qk_peer_notices_answer_free(&d);
    }
    /* a reserved result's reason is ignored; too many held entries are refused by count */
    const char *extra = "{\"results\":[{\"request_id\":\"r\",\"result\":\"reserved\",\"reason\":"
                        "\"collision\",\"held\":[]}]}";
    qk_peer_notices_answer d;
    qk_err err;
    CU_ASSERT_EQUAL(qk_peer_notices_answer_decode(extra, strlen(extra), &d, &err), 0);
    CU_ASSERT_EQUAL(d.r[0].status, 0);
    qk_peer_notices_answer_free(&d);
    char body[4096];
    size_t n = (size_t)snprintf(body, sizeof body,
                                "{\"results\":[{\"request_id\":\"r\",\"result\":\"reserved\","
                                "\"held\":[");
    for (size_t i = 0; i <= QK_PEER_SLAVES_MAX; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s1", i ? "," : "");
    n += (size_t)snprintf(body + n, sizeof body - n, "]}]}");
    CU_ASSERT_EQUAL(qk_peer_notices_answer_decode(body, n, &d, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "held: 0..65 entries"));
}

static void test_id_check(void)
{
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_peer_id_check("req-1", 5, "id", &err), 0);
    CU_ASSERT_EQUAL(qk_peer_id_check("r\xc3\xa9q", 4, "id", &err), 0); /* UTF-8 allowed */
    CU_ASSERT_EQUAL(qk_peer_id_check("", 0, "id", &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_peer_id_check("a\tb", 3, "id", &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_peer_id_check("a\x7f", 2, "id", &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "id"));
    CU_ASSERT_STRING_EQUAL(qk_peer_reason_name(QK_PEER_REASON_LIMIT), "limit");
    CU_ASSERT_PTR_NULL(qk_peer_reason_name(QK_PEER_REASON_NONE));
    CU_ASSERT_PTR_NULL(qk_peer_reason_name(QK_PEER_REASON_COUNT));
    qk_key_limits kl = {.max_keys_per_request = 7, .max_size_bits = 512, .max_sae_id_count = 3};
    qk_peer_msg_limits l = qk_peer_msg_limits_of(&kl);
    CU_ASSERT_EQUAL(l.max_keys_per_request, 7);
    CU_ASSERT_EQUAL(l.max_size_bits, 512);
    CU_ASSERT_EQUAL(l.max_sae_id_count, 3);
}

/* The handler's answer that needs no core: a caller that is not a linked peer (here: no
 * certificate at all) is refused before anything else, with the codec's error body. */
static void test_handler_refuses_non_peer(void)
{
    qk_peer_api_handler h;
    qk_peer_api_configure(&h, NULL);
    static const qk_peer_identity anonymous = {.kind = QK_ID_NONE};
    static const qk_peer_identity psk = {.kind = QK_ID_PSK, .id = "KME_A"};
    const qk_peer_identity *callers[] = {&anonymous, &psk};
    for (size_t i = 0; i < 2; i++) {
        qk_http_request req = {.listener = "peer",
                               .method = "GET",
                               .path = "/peer/v1/health",
                               .caller = callers[i],
                               .body = "",
                               .body_len = 0};
        qk_http_reply rep;
        qk_http_handler_call(&h.super, &req, &rep);
        CU_ASSERT_EQUAL(rep.status, 403);
        CU_ASSERT_STRING_EQUAL(rep.content_type, "application/json");
        CU_ASSERT_STRING_EQUAL(
            rep.body, "{\"message\":\"caller is not a linked peer KME\",\"reason\":\"forbidden\"}");
        CU_ASSERT_STRING_EQUAL(rep.detail, "caller is not a linked peer KME");
        qk_http_reply_clear(&rep);
    }
}

int suite_peer_msg(void)
{
    CU_pSuite s = CU_add_suite("peer_msg", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "reserve round trip", test_reserve_round_trip) ||
        !CU_add_test(s, "reserve set refuses", test_reserve_set_refuses) ||
        !CU_add_test(s, "result, state, burn, error round trip", test_small_messages_round_trip) ||
        !CU_add_test(s, "inventory and answer round trip", test_inventory_round_trip) ||
        !CU_add_test(s, "health round trip", test_health_round_trip) ||
        !CU_add_test(s, "wire format", test_wire_format) ||
        !CU_add_test(s, "reserve refusals", test_reserve_refusals) ||
        !CU_add_test(s, "counts before entries", test_counts_before_entries) ||
        !CU_add_test(s, "answer refusals", test_answer_refusals) ||
        !CU_add_test(s, "ID check, reasons, limits", test_id_check) ||
        !CU_add_test(s, "device-keys round trip", test_device_keys_round_trip) ||
        !CU_add_test(s, "device-keys refusals", test_device_keys_refusals) ||
        !CU_add_test(s, "lease round trip", test_lease_round_trip) ||
        !CU_add_test(s, "lease refusals", test_lease_refusals) ||
        !CU_add_test(s, "notices round trip", test_notices_round_trip) ||
        !CU_add_test(s, "notices too large for one body", test_notices_too_large) ||
        !CU_add_test(s, "notices refusals", test_notices_refusals) ||
        !CU_add_test(s, "notices counted before entries", test_notices_count_first) ||
        !CU_add_test(s, "notices as runs", test_notices_runs) ||
        !CU_add_test(s, "notices as runs: refusals", test_notices_runs_refusals) ||
        !CU_add_test(s, "notices answer round trip", test_notices_answer_round_trip) ||
        !CU_add_test(s, "notices answer refusals", test_notices_answer_refusals) ||
        !CU_add_test(s, "handler refuses a non-peer caller", test_handler_refuses_non_peer))
        return -1;
    return 0;
}
