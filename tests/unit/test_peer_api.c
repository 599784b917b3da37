/* test_peer_api.c - the peer API handler (peer/peer_api.c) on a real qk_kms with a link
 * (kf_pair), driven through qk_http_handler_call as the linked peer (caller: certificate CN
 * KF_PEER). The inventory (docs/qkd-kmed.md, "Peer API"): every block is answered by
 * comparing the caller's digest with this end's - equal: "match" (a pending block becomes
 * confirmed), different: "mismatch" and the block is burned here, burned here: "burned", not
 * held here: "unknown"; a body naming another link is refused (403) and changes nothing. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms_fixture.h"
#include "peer_msg.h"

static kf_pair P;

static const qk_peer_identity PEER_B = {.kind = QK_ID_CERT, .id = KF_PEER};

/* Call A's peer API as KF_PEER. */
static void call_a(const char *method, const char *path, const char *body, qk_http_reply *rep)
{
    qk_http_request req = {.listener = "peer",
                           .method = method,
                           .path = path,
                           .caller = &PEER_B,
                           .body = body,
                           .body_len = strlen(body)};
    qk_http_handler_call(&P.ha.super, &req, rep);
}

/* An inventory request of link naming the blocks ids[n] with B's digest of each. */
static char *inventory_body(const char *link, const uint64_t *ids, size_t n)
{
    static qk_peer_inventory_msg q;
    memset(&q, 0, sizeof q);
    snprintf(q.link, sizeof q.link, "%s", link);
    qk_err err = {0, ""};
    for (size_t i = 0; i < n; i++) {
        qk_block_state bs;
        q.blocks[i].block_id = ids[i];
        CU_ASSERT_EQUAL_FATAL(qk_store_block_digest(qk_kms_store(P.b.kms), KF_LINK, ids[i],
                                                    q.blocks[i].digest, &bs, &err),
                              0);
    }
    q.n = n;
    char *body = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_inventory_encode(&q, &body, &err), 0);
    return body;
}

enum { BL = QK_BLOCK_VKEY_LEN + 200 };

static void test_inventory_compares_digests(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t same[BL], mine[BL], theirs[BL], gone[BL], only_b[BL], conf[BL];
    randombytes_buf(same, BL);
    randombytes_buf(mine, BL);
    memcpy(theirs, mine, BL);
    theirs[BL - 1] ^= 0x01; /* one bit of key material differs; the verification key is equal */
    randombytes_buf(gone, BL);
    randombytes_buf(only_b, BL);
    randombytes_buf(conf, BL);
    /* B holds all six; A holds 1 (same), 2 (differs), 3 (same, burned here), 5 (same,
     * already confirmed) and not 4 */
    kf_put_pending(b, 1, same, BL);
    kf_put_pending(b, 2, theirs, BL);
    kf_put_pending(b, 3, gone, BL);
    kf_put_pending(b, 4, only_b, BL);
    kf_put_pending(b, 5, conf, BL);
    kf_put_pending(a, 1, same, BL);
    kf_put_pending(a, 2, mine, BL);
    kf_put_pending(a, 3, gone, BL);
    kf_put_pending(a, 5, conf, BL);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_block_set_state(a, KF_LINK, 3, QK_BLOCK_BURNED, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_block_set_state(a, KF_LINK, 5, QK_BLOCK_CONFIRMED, &err), 0);

    static const uint64_t ids[5] = {1, 2, 3, 4, 5};
    char *body = inventory_body(KF_LINK, ids, 5);
    qk_http_reply rep;
    call_a("POST", "/peer/v1/inventory", body, &rep);
    free(body);
    CU_ASSERT_EQUAL_FATAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.content_type, "application/json");
    /* the whole answer, in the order asked (wire format of docs/qkd-kmed.md) */
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"blocks\":[{\"block_id\":1,\"status\":\"match\"},"
                                     "{\"block_id\":2,\"status\":\"mismatch\"},"
                                     "{\"block_id\":3,\"status\":\"burned\"},"
                                     "{\"block_id\":4,\"status\":\"unknown\"},"
                                     "{\"block_id\":5,\"status\":\"match\"}]}");
    qk_peer_inventory_answer *ans = malloc(sizeof *ans);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ans);
    CU_ASSERT_EQUAL_FATAL(qk_peer_inventory_answer_decode(rep.body, rep.len, ans, &err), 0);
    static const qk_inv_status want[5] = {QK_INV_MATCH, QK_INV_MISMATCH, QK_INV_BURNED,
                                          QK_INV_UNKNOWN, QK_INV_MATCH};
    CU_ASSERT_EQUAL_FATAL(ans->n, 5);
    for (size_t i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(ans->blocks[i].block_id, ids[i]);
        CU_ASSERT_EQUAL(ans->blocks[i].status, want[i]);
    }
    free(ans);
    qk_http_reply_clear(&rep);
    /* what the answer did at this end: matched pending -> confirmed, differing -> burned (its
     * material wiped: nothing can be carved from it), burned stays burned, unknown stays
     * unknown; the caller's store is not this handler's to change */
    CU_ASSERT_EQUAL(kf_block_state(a, 1), QK_BLOCK_CONFIRMED);
    CU_ASSERT_EQUAL(kf_block_state(a, 2), QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(kf_block_state(a, 3), QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(kf_block_state(a, 4), -1);
    CU_ASSERT_EQUAL(kf_block_state(a, 5), QK_BLOCK_CONFIRMED);
    for (uint64_t id = 1; id <= 5; id++)
        CU_ASSERT_EQUAL(kf_block_state(b, id), QK_BLOCK_PENDING);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(a, KF_LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.blocks_burned, 2);
    CU_ASSERT_EQUAL(ps.bytes_available, 2 * (BL - QK_BLOCK_VKEY_LEN)); /* blocks 1 and 5 */

    /* asked again: the burned block stays "burned" whatever digest comes with it */
    static const uint64_t again[2] = {2, 1};
    body = inventory_body(KF_LINK, again, 2);
    call_a("POST", "/peer/v1/inventory", body, &rep);
    free(body);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"blocks\":[{\"block_id\":2,\"status\":\"burned\"},"
                                     "{\"block_id\":1,\"status\":\"match\"}]}");
    qk_http_reply_clear(&rep);
    sodium_memzero(same, BL);
    sodium_memzero(mine, BL);
    sodium_memzero(theirs, BL);
    kf_pair_close(&P);
}

/* A differing block that was already confirmed here (keys may have been carved from it) is
 * burned too, with the keys carved from it. */
static void test_inventory_burns_confirmed_mismatch(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t mine[BL], theirs[BL];
    randombytes_buf(mine, BL);
    memcpy(theirs, mine, BL);
    theirs[QK_BLOCK_VKEY_LEN] ^= 0x80;
    kf_put_pending(b, 7, theirs, BL);
    CU_ASSERT_FATAL(sf_put_confirmed(a, KF_LINK, 7, mine, BL) == 0);
    const char *sl[2];
    qk_reservation r = sf_resv("req-7", KF_LINK, "SAE_A1", sl, "SAE_B1", NULL, 4000000000ull);
    qk_key_ref ref;
    uint8_t mat[16];
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(a, &r, QK_SIDE_LOW, 1, sizeof mat, &ref, mat, &err), 0);
    static const uint64_t ids[1] = {7};
    char *body = inventory_body(KF_LINK, ids, 1);
    qk_http_reply rep;
    call_a("POST", "/peer/v1/inventory", body, &rep);
    free(body);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"blocks\":[{\"block_id\":7,\"status\":\"mismatch\"}]}");
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(kf_block_state(a, 7), QK_BLOCK_BURNED);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(a, KF_LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_pending, 0); /* the key carved from it is burned with it */
    CU_ASSERT_EQUAL(ps.keys_burned, 1);
    CU_ASSERT_EQUAL(ps.bytes_available, 0);
    sodium_memzero(mat, sizeof mat);
    sodium_memzero(mine, BL);
    sodium_memzero(theirs, BL);
    kf_pair_close(&P);
}

/* A body naming another link than the caller's is refused before anything is compared. */
static void test_inventory_other_link(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t mine[BL], theirs[BL];
    randombytes_buf(mine, BL);
    randombytes_buf(theirs, BL);
    kf_put_pending(a, 1, mine, BL);
    kf_put_pending(b, 1, theirs, BL);
    static const uint64_t ids[1] = {1};
    char *body = inventory_body("KME_A~KME_C", ids, 1);
    qk_http_reply rep;
    call_a("POST", "/peer/v1/inventory", body, &rep);
    free(body);
    CU_ASSERT_EQUAL(rep.status, 403);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"message\":\"link KME_A~KME_C is not the caller's link\","
                                     "\"reason\":\"forbidden\"}");
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(kf_block_state(a, 1), QK_BLOCK_PENDING);
    sodium_memzero(mine, BL);
    kf_pair_close(&P);
}

int suite_peer_api(void)
{
    CU_pSuite s = CU_add_suite("peer_api", NULL, NULL);
    if (!s || !CU_add_test(s, "inventory compares digests", test_inventory_compares_digests) ||
        !CU_add_test(s, "inventory burns a confirmed block that differs",
                     test_inventory_burns_confirmed_mismatch) ||
        !CU_add_test(s, "inventory of another link refused", test_inventory_other_link))
        return -1;
    return 0;
}
