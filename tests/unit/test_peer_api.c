/* test_peer_api.c - the peer API handler (peer/peer_api.c) on a real qk_kms with a link
 * (kf_pair), driven through qk_http_handler_call as the linked peer (caller: certificate CN
 * KF_PEER). The inventory (docs/qkd-kmed.md, "Peer API"): every block is answered by
 * comparing the caller's digest with this end's - equal: "match" (a pending block becomes
 * confirmed), different: "mismatch" and the block is burned here, burned here: "burned", not
 * held here: "unknown"; a store error answers the whole call 500, never "unknown"; a body
 * naming another link is refused (403) and changes nothing.
 * Leases and notices (docs/adr/0002-key-store.md, "Leases and notices"): B's ask, computed by
 * its store, is granted (again when repeated), refused for the wrong side (400), another link
 * (403), an unknown block (404), a range A carved from (409 collision); an earlier version's
 * ask with a check is granted (a malformed check: 400); notices inside B's granted lease are
 * reserved (fetchable at A with the block's bytes, the held count answered), one outside it
 * refused, a repeat reserved again, and a batch for the wrong side or link applies nothing. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "kms_fixture.h"
#include "kms_int.h"
#include "peer_msg.h"
#include "qk_inline.h"
#include "store_int.h"

static kf_pair P;

static const qk_peer_identity PEER_B = {.kind = QK_ID_CERT, .id = KF_PEER, .role = QK_ROLE_KME};

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

/* A store error answers the whole inventory 500 (internal), never "unknown": the asker burns a
 * block the peer answers "unknown" for once it is past its pending_grace (peer/sync.h), and this
 * end may hold it. Block 9's digest row at A is damaged (a store error at the lookup). */
static void test_inventory_store_error_500(void)
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    uint8_t blk[BL];
    randombytes_buf(blk, BL);
    kf_put_pending(a, 9, blk, BL);
    kf_put_pending(b, 9, blk, BL);
    CU_ASSERT_EQUAL_FATAL(kf_block_sql(&P.a,
                                       "UPDATE blocks SET digest = zeroblob(?1) WHERE link = ?2"
                                       " AND block_id = ?3",
                                       1, 9),
                          0);
    static const uint64_t ids[1] = {9};
    char *body = inventory_body(KF_LINK, ids, 1);
    qk_http_reply rep;
    call_a("POST", "/peer/v1/inventory", body, &rep);
    free(body);
    CU_ASSERT_EQUAL(rep.status, 500);
    CU_ASSERT_PTR_NOT_NULL(rep.body);
    if (rep.body) {
        CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "\"reason\":\"internal\""));
        CU_ASSERT_PTR_NULL(strstr(rep.body, "unknown"));
    }
    qk_http_reply_clear(&rep);
    sodium_memzero(blk, BL);
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

/* ---- lease and notices ------------------------------------------------------------------
 * B (HIGH) asks A for leases through A's handler; what B sends is what its store computed
 * (qk_store_lease_ask). */

enum { LB = QK_BLOCK_VKEY_LEN + 16384 }; /* room for leases of less than the whole block */

/* The pair with block 1 of LB bytes confirmed at both ends; its bytes in mat. */
static void open_with_block(uint8_t mat[LB])
{
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    randombytes_buf(mat, LB);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(P.a.kms), KF_LINK, 1, mat, LB) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(P.b.kms), KF_LINK, 1, mat, LB) == 0);
}

/* POST /peer/v1/lease of l (as side) to A; the reply in rep. */
static void lease_call(const char *link, qk_side side, const qk_lease *l, qk_http_reply *rep)
{
    qk_peer_lease_msg m = {.side = side, .lease = *l};
    snprintf(m.link, sizeof m.link, "%s", link);
    char *body = NULL;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_peer_lease_encode(&m, &body, &err), 0);
    call_a("POST", "/peer/v1/lease", body, rep);
    free(body);
}

/* B asks want bytes: its store records the ask; A answers. */
static qk_lease ask_b(uint32_t want, qk_http_reply *rep)
{
    qk_lease l;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(
        qk_store_lease_ask(qk_kms_store(P.b.kms), KF_LINK, QK_SIDE_HIGH, want, &l, &err), 0);
    lease_call(KF_LINK, QK_SIDE_HIGH, &l, rep);
    return l;
}

/* B's peer client (to A's listener over mutual TLS). */
static qk_peer_client *b_client(void)
{
    qk_link *l = qk_kms_link_by_id(P.b.kms, KF_LINK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    return l->client;
}

static uint64_t room(qk_kms *k, qk_side side)
{
    uint64_t n = 0;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_lease_room(qk_kms_store(k), KF_LINK, side, &n, &err), 0);
    return n;
}

static void test_lease_granted(void)
{
    uint8_t mat[LB];
    open_with_block(mat);
    qk_http_reply rep;
    qk_lease l = ask_b(1024, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"status\":\"granted\"}");
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(l.block_id, 1);
    CU_ASSERT_EQUAL(l.to, LB);
    CU_ASSERT_EQUAL(l.from, LB - 1024);
    /* asked again (a restart, a lost answer), through B's client over TLS: granted again */
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_peer_lease(b_client(), KF_LINK, QK_SIDE_HIGH, &l, &err), 0);
    /* the range is B's now: A's own ask (LOW, everything it may) stops short of it */
    qk_lease mine;
    CU_ASSERT_EQUAL_FATAL(
        qk_store_lease_ask(qk_kms_store(P.a.kms), KF_LINK, QK_SIDE_LOW, LB, &mine, &err), 0);
    CU_ASSERT(mine.to <= l.from);
    /* nobody owned anything at A: A's granted room (LOW) is still 0 */
    CU_ASSERT_EQUAL(room(P.a.kms, QK_SIDE_LOW), 0);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* Refusals, each leaving A's block as it was. */
static void test_lease_refused(void)
{
    uint8_t mat[LB];
    open_with_block(mat);
    qk_store *a = qk_kms_store(P.a.kms);
    qk_err err = {0, ""};
    qk_http_reply rep;
    qk_lease l;
    CU_ASSERT_EQUAL_FATAL(
        qk_store_lease_ask(qk_kms_store(P.b.kms), KF_LINK, QK_SIDE_HIGH, 1024, &l, &err), 0);
    /* the caller's other side: 400, and the side is checked before the store */
    lease_call(KF_LINK, QK_SIDE_LOW, &l, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"message\":\"side: the caller is the high side of this "
                                     "link\",\"reason\":\"bad-request\"}");
    qk_http_reply_clear(&rep);
    /* another link: 403 */
    lease_call("KME_A~KME_C", QK_SIDE_HIGH, &l, &rep);
    CU_ASSERT_EQUAL(rep.status, 403);
    qk_http_reply_clear(&rep);
    /* a block A does not hold: 404 unknown-block */
    qk_lease other = l;
    other.block_id = 99;
    lease_call(KF_LINK, QK_SIDE_HIGH, &other, &rep);
    CU_ASSERT_EQUAL(rep.status, 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "\"reason\":\"unknown-block\""));
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(qk_peer_lease(b_client(), KF_LINK, QK_SIDE_HIGH, &other, &err), QK_ENOTFOUND);
    /* the client's side of the 400 */
    CU_ASSERT_EQUAL(qk_peer_lease(b_client(), KF_LINK, QK_SIDE_LOW, &l, &err), QK_EINVAL);
    /* a bad body: 400 naming the member */
    call_a("POST", "/peer/v1/lease", "{\"link\":\"" KF_LINK "\",\"side\":\"high\"}", &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "block_id"));
    qk_http_reply_clear(&rep);
    call_a("GET", "/peer/v1/lease", "", &rep);
    CU_ASSERT_EQUAL(rep.status, 405);
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(room(P.a.kms, QK_SIDE_HIGH), 0);
    CU_ASSERT_EQUAL(kf_block_state(a, 1), QK_BLOCK_CONFIRMED);
    /* a range A carved from (the old two-phase path moves A's cursor over it): 409 collision */
    const char *sl[2];
    qk_reservation r = sf_resv("req-c", KF_LINK, "SAE_A1", sl, "SAE_B1", NULL, 4000000000ull);
    qk_key_ref ref;
    uint8_t km[LB - QK_BLOCK_VKEY_LEN];
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(a, &r, QK_SIDE_LOW, 1, sizeof km, &ref, km, &err), 0);
    lease_call(KF_LINK, QK_SIDE_HIGH, &l, &rep);
    CU_ASSERT_EQUAL(rep.status, 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "\"reason\":\"collision\""));
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(qk_peer_lease(b_client(), KF_LINK, QK_SIDE_HIGH, &l, &err), QK_ECOLLISION);
    CU_ASSERT_EQUAL(kf_block_state(a, 1), QK_BLOCK_CONFIRMED);
    sodium_memzero(km, sizeof km);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* An ask the peer answers 400 (A's block is shorter than B's: B's range past A's end is a range
 * A's block cannot hold) is settled like a refusal: B's ask is cleared, not left to be asked
 * again forever. */
static void test_lease_bad_range_refused(void)
{
    uint8_t mat[LB];
    CU_ASSERT_FATAL(kf_pair_open(&P, NULL, NULL) == 0);
    randombytes_buf(mat, LB);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(P.a.kms), KF_LINK, 1, mat, LB - 4096) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(P.b.kms), KF_LINK, 1, mat, LB) == 0);
    qk_kms *b = P.b.kms;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_kms_lease_more(b, 0, 1024, qk_kms_lease_gen(b, 0), NULL, NULL, &err),
                    QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad request"));
    qk_lease asks[2];
    size_t n = 9;
    CU_ASSERT_EQUAL(qk_store_lease_asks(qk_kms_store(b), KF_LINK, QK_SIDE_HIGH, asks, 2, &n, &err),
                    0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(room(b, QK_SIDE_HIGH), 0);
    CU_ASSERT_EQUAL(kf_block_state(qk_kms_store(b), 1), QK_BLOCK_CONFIRMED);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* Uncarved bytes of A's confirmed blocks on the link (a grant moves A's mirror cursor). */
static uint64_t a_available(void)
{
    qk_pool_status st;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_pool_status(qk_kms_store(P.a.kms), KF_LINK, &st, &err), 0);
    return st.bytes_available;
}

/* An ask from a KME of an earlier version carries a "check" (a keyed hash over the range):
 * granted without reading it when well-formed (the block's digest matched already), refused
 * 400 when malformed, changing nothing; nothing is burned either way. */
static void test_lease_earlier_check(void)
{
    uint8_t mat[LB];
    open_with_block(mat);
    qk_err err = {0, ""};
    qk_lease l;
    CU_ASSERT_EQUAL_FATAL(
        qk_store_lease_ask(qk_kms_store(P.b.kms), KF_LINK, QK_SIDE_HIGH, 1024, &l, &err), 0);
    uint64_t before = a_available();
    char body[512];
    qk_http_reply rep;
    snprintf(body, sizeof body,
             "{\"link\":\"" KF_LINK "\",\"side\":\"high\",\"block_id\":%llu,\"from\":%u,"
             "\"to\":%u,\"check\":\"%s\"}",
             (unsigned long long)l.block_id, l.from, l.to, "0123456789abcdef");
    call_a("POST", "/peer/v1/lease", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "check"));
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(a_available(), before);
    snprintf(body, sizeof body,
             "{\"link\":\"" KF_LINK "\",\"side\":\"high\",\"block_id\":%llu,\"from\":%u,"
             "\"to\":%u,\"check\":\"%064d\"}",
             (unsigned long long)l.block_id, l.from, l.to, 0);
    call_a("POST", "/peer/v1/lease", body, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"status\":\"granted\"}");
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(kf_block_state(qk_kms_store(P.a.kms), 1), QK_BLOCK_CONFIRMED);
    CU_ASSERT_EQUAL(a_available(), before - 1024);
    CU_ASSERT_EQUAL_FATAL(
        qk_store_lease_done(qk_kms_store(P.b.kms), KF_LINK, QK_SIDE_HIGH, 1, true, &err), 0);
    CU_ASSERT_EQUAL(room(P.b.kms, QK_SIDE_HIGH), 1024);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* A notice for n keys of 32 bytes at offsets from `at` of block 1 (B master SAE_B1, slave
 * SAE_A1); free with qk_notice_free. */
static qk_notice notice_of(const char *id, uint32_t at, size_t n)
{
    qk_notice v;
    memset(&v, 0, sizeof v);
    snprintf(v.request_id, sizeof v.request_id, "%s", id);
    snprintf(v.master, sizeof v.master, "SAE_B1");
    v.slaves = calloc(1, sizeof *v.slaves);
    v.keys = calloc(n, sizeof *v.keys);
    CU_ASSERT_FATAL(v.slaves && v.keys);
    snprintf(v.slaves[0], sizeof v.slaves[0], "SAE_A1");
    v.nslaves = 1;
    for (size_t i = 0; i < n; i++) {
        qk_uuid u;
        qk_uuid_v4(&u);
        qk_uuid_format(&u, v.keys[i].key_id);
        v.keys[i].block_id = 1;
        v.keys[i].offset = at + (uint32_t)(32 * i);
        v.keys[i].length = 32;
    }
    v.nkeys = n;
    v.expires_at = 4000000000ull;
    return v;
}

/* POST /peer/v1/notices of v[n] (as side) to A. */
static void notices_call(qk_side side, qk_notice *v, size_t n, qk_http_reply *rep)
{
    qk_peer_notices_msg m = {.link = KF_LINK, .side = side, .notices = v, .n = n};
    char *body = NULL;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &body, &err), 0);
    call_a("POST", "/peer/v1/notices", body, rep);
    free(body);
}

/* A's store with one block, and B's granted lease of 1 KiB in it. */
static qk_lease open_with_lease(uint8_t mat[LB])
{
    open_with_block(mat);
    qk_http_reply rep;
    qk_lease l = ask_b(1024, &rep);
    CU_ASSERT_EQUAL_FATAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    return l;
}

static void test_notices(void)
{
    uint8_t mat[LB];
    qk_lease l = open_with_lease(mat);
    qk_http_reply rep;
    /* two requests inside B's granted lease, one outside it (A's end of the block) */
    qk_notice v[3] = {notice_of("req-1", l.from, 2), notice_of("req-2", l.from + 64, 1),
                      notice_of("req-3", QK_BLOCK_VKEY_LEN, 1)};
    notices_call(QK_SIDE_HIGH, v, 3, &rep);
    CU_ASSERT_EQUAL_FATAL(rep.status, 200);
    qk_peer_notices_answer ans;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_answer_decode(rep.body, rep.len, &ans, &err), 0);
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL_FATAL(ans.n, 3);
    CU_ASSERT_STRING_EQUAL(ans.r[0].request_id, "req-1");
    CU_ASSERT_EQUAL(ans.r[0].status, 0);
    CU_ASSERT_EQUAL(ans.r[1].status, 0);
    CU_ASSERT_EQUAL(ans.r[2].status, QK_EINVAL);
    /* held: what A holds for (SAE_B1, SAE_A1) after the batch */
    CU_ASSERT_EQUAL_FATAL(ans.r[1].nheld, 1);
    CU_ASSERT_STRING_EQUAL(ans.r[1].held[0].master, "SAE_B1");
    CU_ASSERT_STRING_EQUAL(ans.r[1].held[0].slave, "SAE_A1");
    CU_ASSERT_EQUAL(ans.r[1].held[0].count, 3);
    qk_peer_notices_answer_free(&ans);
    /* the slave fetches the bytes of the ranges named */
    const char *ids[2] = {v[0].keys[0].key_id, v[0].keys[1].key_id};
    qk_fetched_key out[2];
    uint8_t buf[64];
    CU_ASSERT_EQUAL_FATAL(qk_store_fetch(qk_kms_store(P.a.kms), "SAE_A1", "SAE_B1", ids, 2, out,
                                         buf, sizeof buf, &err),
                          0);
    CU_ASSERT(memcmp(buf, mat + l.from, 64) == 0);
    /* sent again (the answer was lost), through B's client over TLS: reserved again, the
     * held count unchanged (nothing twice) */
    qk_peer_notices_msg again = {.link = KF_LINK, .side = QK_SIDE_HIGH, .notices = v, .n = 2};
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices(b_client(), &again, &ans, &err), 0);
    CU_ASSERT_EQUAL_FATAL(ans.n, 2);
    CU_ASSERT_EQUAL(ans.r[0].status, 0);
    CU_ASSERT_EQUAL(ans.r[1].status, 0);
    CU_ASSERT_EQUAL_FATAL(ans.r[1].nheld, 1);
    CU_ASSERT_EQUAL(ans.r[1].held[0].count, 1); /* req-1's two keys were fetched above */
    qk_peer_notices_answer_free(&ans);
    /* a batch the peer refuses whole (400) is QK_EINVAL at the client, with nothing to free */
    again.side = QK_SIDE_LOW;
    CU_ASSERT_EQUAL(qk_peer_notices(b_client(), &again, &ans, &err), QK_EINVAL);
    CU_ASSERT(ans.n == 0 && ans.r == NULL);
    /* the caller's other side, another link, a bad body: refused whole, nothing applied */
    qk_notice w = notice_of("req-4", l.from + 96, 1);
    notices_call(QK_SIDE_LOW, &w, 1, &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    qk_http_reply_clear(&rep);
    call_a("POST", "/peer/v1/notices", "{\"link\":\"" KF_LINK "\",\"side\":\"high\"}", &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "notices"));
    qk_http_reply_clear(&rep);
    qk_peer_notices_msg m = {.link = "KME_A~KME_C", .side = QK_SIDE_HIGH, .notices = &w, .n = 1};
    char *body = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_peer_notices_encode(&m, &body, &err), 0);
    call_a("POST", "/peer/v1/notices", body, &rep);
    free(body);
    CU_ASSERT_EQUAL(rep.status, 403);
    qk_http_reply_clear(&rep);
    bool known = true;
    CU_ASSERT_EQUAL(qk_store_key_known(qk_kms_store(P.a.kms), w.keys[0].key_id, &known, &err), 0);
    CU_ASSERT_FALSE(known);
    qk_notice_free(&w, 1);
    qk_notice_free(v, 3);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* On the pump (inline), a notices batch joins the store's open group transaction, its reply
 * held for the group's sync (the sender takes a failed group's 500 as a transport failure and
 * sends again); another route (a burn) keeps a commit of its own. */
static atomic_int nw_done, nw_err;
static void nw_cb(qk_inline_waiter *w, int err)
{
    (void)w;
    atomic_store(&nw_err, err);
    atomic_fetch_add(&nw_done, 1);
}

static void test_notices_inline_group(void)
{
    uint8_t mat[LB];
    qk_lease l = open_with_lease(mat);
    qk_http_reply rep;
    qk_store *st = qk_kms_store(P.a.kms);
    qk_notice v = notice_of("grp-n1", l.from, 2);
    qk_inline ic;
    qk_inline_begin(&ic, 0);
    notices_call(QK_SIDE_HIGH, &v, 1, &rep);
    qk_inline_end();
    CU_ASSERT_EQUAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    CU_ASSERT(ic.group_commit);
    CU_ASSERT_FATAL(ic.await != NULL && ic.seq > 0); /* the reply waits for the group */
    (void)pthread_mutex_lock(&st->mu);
    CU_ASSERT(st->group_open); /* left open for the next inline call */
    (void)pthread_mutex_unlock(&st->mu);
    qk_inline ib;
    qk_inline_begin(&ib, 0);
    call_a("POST", "/peer/v1/burn", "{\"request_id\":\"no-such-request\"}", &rep);
    qk_inline_end();
    qk_http_reply_clear(&rep);
    CU_ASSERT_FALSE(ib.group_commit);
    atomic_store(&nw_done, 0);
    atomic_store(&nw_err, -99);
    qk_inline_waiter w = {.done = nw_cb};
    int r = ic.await(ic.owner, ic.seq, &w);
    for (int i = 0; r == 0 && i < 400 && atomic_load(&nw_done) == 0; i++) {
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT(r == 1 || (r == 0 && atomic_load(&nw_done) == 1 && atomic_load(&nw_err) == 0));
    qk_notice_free(&v, 1);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* ---- the client against a peer that answers wrongly ----------------------------------- *
 * A's listener answers with a canned status and body (its handler swapped while no call is in
 * flight); the client must not take a malformed or mismatched answer for a good one. */

/* ---- reserve (kept for older peers) ------------------------------------------------------
 * An old peer (B, HIGH) carves with the two-phase path (qk_store_carve: PENDING, with the
 * material check of each key) and sends POST /peer/v1/reserve; A reserves the keys for the
 * slaves (fetchable with the block's bytes), answers a repeat reserved again, a differing check
 * 409 mismatch (the block burned), and a bad body 400. */

/* POST /peer/v1/reserve of r's n keys refs (as side) to A. */
static void reserve_call(const qk_reservation *r, qk_side side, const qk_key_ref *refs, size_t n,
                         qk_http_reply *rep)
{
    qk_peer_reserve_msg *m = calloc(1, sizeof *m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char *body = NULL;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_msg_set(m, r, side, refs, n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_peer_reserve_encode(m, &body, &err), 0);
    free(m);
    call_a("POST", "/peer/v1/reserve", body, rep);
    free(body);
}

static void test_reserve_old_peer(void)
{
    uint8_t mat[LB];
    open_with_block(mat);
    qk_store *a = qk_kms_store(P.a.kms), *b = qk_kms_store(P.b.kms);
    qk_err err = {0, ""};
    const char *sl[2];
    qk_reservation r = sf_resv("old-1", KF_LINK, "SAE_B1", sl, "SAE_A1", NULL, 4000000000ull);
    qk_key_ref refs[2];
    uint8_t km[64];
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(b, &r, QK_SIDE_HIGH, 2, 32, refs, km, &err), 0);
    qk_http_reply rep;
    reserve_call(&r, QK_SIDE_HIGH, refs, 2, &rep);
    CU_ASSERT_EQUAL(rep.status, 200);
    CU_ASSERT_STRING_EQUAL(rep.body, "{\"status\":\"reserved\"}");
    qk_http_reply_clear(&rep);
    reserve_call(&r, QK_SIDE_HIGH, refs, 2, &rep); /* a repeat (lost answer): reserved again */
    CU_ASSERT_EQUAL(rep.status, 200);
    qk_http_reply_clear(&rep);
    const char *ids[2] = {refs[0].key_id, refs[1].key_id};
    qk_fetched_key out[2];
    uint8_t buf[64];
    CU_ASSERT_EQUAL_FATAL(qk_store_fetch(a, "SAE_A1", "SAE_B1", ids, 2, out, buf, sizeof buf, &err),
                          0);
    CU_ASSERT(memcmp(buf, km, sizeof km) == 0);
    /* a bad body: 400 */
    call_a("POST", "/peer/v1/reserve", "{\"request_id\":\"old-2\"}", &rep);
    CU_ASSERT_EQUAL(rep.status, 400);
    qk_http_reply_clear(&rep);
    /* a key whose check differs: 409 mismatch, the block burned at A */
    qk_reservation r2 = sf_resv("old-3", KF_LINK, "SAE_B1", sl, "SAE_A1", NULL, 4000000000ull);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(b, &r2, QK_SIDE_HIGH, 1, 32, refs, km, &err), 0);
    refs[0].check[0] ^= 1;
    reserve_call(&r2, QK_SIDE_HIGH, refs, 1, &rep);
    CU_ASSERT_EQUAL(rep.status, 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.body, "\"reason\":\"mismatch\""));
    qk_http_reply_clear(&rep);
    CU_ASSERT_EQUAL(kf_block_state(a, 1), QK_BLOCK_BURNED);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(km, sizeof km);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

/* A's peer API, but a notices call naming a request "bad-..." is answered 400 whole, as by a
 * peer whose decoder refuses one of the requests (e.g. more keys than its [keys] limit). */
static qk_http_on_req real_on_req;
static size_t batches_400;

static bool body_has(const char *b, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; b && i + n <= len; i++)
        if (memcmp(b + i, needle, n) == 0)
            return true;
    return false;
}

static void picky_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    if (strcmp(req->path, "/peer/v1/notices") == 0 &&
        body_has(req->body, req->body_len, "\"bad-")) {
        batches_400++;
        char *body = strdup("{\"message\":\"keys: too many\",\"reason\":\"bad-request\"}");
        CU_ASSERT_PTR_NOT_NULL_FATAL(body);
        qk_http_reply_take(rep, 400, "application/json", body, strlen(body));
        return;
    }
    real_on_req(self, req, rep);
}

/* B carved ok-1, bad-2 and ok-3 from its lease; its notifier's batch is answered 400: it sends
 * them one at a time, ok-1 and ok-3 are reserved at A, bad-2 (400 alone) is burned at both
 * ends; nothing stays pending. */
static void test_notices_batch_400(void)
{
    uint8_t mat[LB];
    open_with_block(mat);
    real_on_req = P.ha.super.on_req;
    P.ha.super.on_req = picky_on_req;
    batches_400 = 0;
    qk_kms *b = P.b.kms;
    qk_store *sb = qk_kms_store(b), *sa = qk_kms_store(P.a.kms);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_kms_lease_more(b, 0, 1024, qk_kms_lease_gen(b, 0), NULL, NULL, &err),
                          0);
    static const char *const ids[3] = {"ok-1", "bad-2", "ok-3"};
    qk_key_ref refs[3];
    uint8_t km[32];
    for (size_t j = 0; j < 3; j++) {
        const char *sl[2];
        qk_reservation r = sf_resv(ids[j], KF_LINK, "SAE_B1", sl, "SAE_A1", NULL, 4000000000ull);
        CU_ASSERT_EQUAL_FATAL(
            qk_store_carve_owned(sb, &r, QK_SIDE_HIGH, 1, sizeof km, &refs[j], km, &err), 0);
    }
    sodium_memzero(km, sizeof km);
    qk_kms_notify_wake(b, 0);
    size_t n = 1;
    for (int t = 0; t < 500 && n > 0; t++) { /* up to 5 s */
        qk_notice v[4];
        CU_ASSERT_EQUAL_FATAL(qk_store_notices_pending(sb, KF_LINK, v, 4, &n, &err), 0);
        qk_notice_free(v, n);
        if (n > 0)
            nanosleep(&(struct timespec){.tv_nsec = 10000000L}, NULL);
    }
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT(batches_400 >= 1);
    for (size_t j = 0; j < 3; j++) {
        bool known = false;
        CU_ASSERT_EQUAL(qk_store_key_known(sa, refs[j].key_id, &known, &err), 0);
        CU_ASSERT_EQUAL(known, j != 1);
        int st = -1;
        CU_ASSERT_EQUAL(qk_store_request_state(sb, ids[j], &st, &err), 0);
        CU_ASSERT_EQUAL(st, j == 1 ? 2 : 1);
    }
    int st = -1; /* A tombstoned bad-2 (burned by B's call): a late notice of it is refused */
    CU_ASSERT_EQUAL(qk_store_request_state(sa, "bad-2", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 2);
    P.ha.super.on_req = real_on_req;
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

static unsigned fake_status;
static const char *fake_body;

static void fake_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    (void)self;
    (void)req;
    char *body = strdup(fake_body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    qk_http_reply_take(rep, fake_status, "application/json", body, strlen(body));
}

static void test_client_refuses_bad_answers(void)
{
    uint8_t mat[LB];
    open_with_block(mat);
    qk_http_on_req real = P.ha.super.on_req;
    P.ha.super.on_req = fake_on_req;
    qk_err err = {0, ""};
    qk_lease l = {.block_id = 1, .from = LB - 64, .to = LB};
    static const struct {
        unsigned status;
        const char *body;
        int want;
    } lease_cases[] = {
        {200, "{\"status\":\"granted\"}", 0},
        {200, "{\"status\":\"reserved\"}", QK_EPEER},
        {200, "{\"result\":\"granted\"}", QK_EPEER},
        {409, "{\"message\":\"m\"}", QK_EPEER},
        /* the peer's reason by status (issue 17: qk_peer_fail_of tells the SAE) */
        {409, "{\"message\":\"m\",\"reason\":\"limit\"}", QK_EQUOTA},
        /* a lease is never refused for its material (the block digests matched already) */
        {409, "{\"message\":\"m\",\"reason\":\"mismatch\"}", QK_EPEER},
        {404, "{\"message\":\"m\",\"reason\":\"not-found\"}", QK_EPEER},
        {500, "{\"message\":\"m\",\"reason\":\"storage\"}", QK_ESTORAGE},
        {500, "{\"message\":\"m\",\"reason\":\"internal\"}", QK_EPEER},
        {503, "{\"message\":\"m\"}", QK_EIO}, /* no reason of ours: a proxy, a busy pool */
    };
    for (size_t i = 0; i < sizeof lease_cases / sizeof lease_cases[0]; i++) {
        fake_status = lease_cases[i].status;
        fake_body = lease_cases[i].body;
        int rc = qk_peer_lease(b_client(), KF_LINK, QK_SIDE_HIGH, &l, &err);
        CU_ASSERT_EQUAL(rc, lease_cases[i].want);
        if (rc != lease_cases[i].want)
            fprintf(stderr, "\n  lease answer %u %s: %d\n", fake_status, fake_body, rc);
    }
    qk_notice v[2] = {notice_of("req-1", LB - 64, 1), notice_of("req-2", LB - 32, 1)};
    qk_peer_notices_msg m = {.link = KF_LINK, .side = QK_SIDE_HIGH, .notices = v, .n = 2};
#define RES(id) "{\"request_id\":\"" id "\",\"result\":\"reserved\",\"held\":[]}"
    static const struct {
        unsigned status;
        const char *body;
        int want;
    } notices_cases[] = {
        {200, "{\"results\":[" RES("req-1") "," RES("req-2") "]}", 0},
        {200, "{\"results\":[" RES("req-1") "]}", QK_EPEER},
        {200, "{\"results\":[" RES("req-1") "," RES("req-2") "," RES("req-3") "]}", QK_EPEER},
        {200, "{\"results\":[" RES("req-2") "," RES("req-1") "]}", QK_EPEER},
        {200, "{\"results\":[" RES("req-1") ",{\"request_id\":\"req-2\"}]}", QK_EPEER},
        {200, "{\"status\":\"reserved\"}", QK_EPEER},
        {413, "{\"message\":\"request body too large\"}", QK_ELIMIT},
        {400, "{\"message\":\"m\",\"reason\":\"bad-request\"}", QK_EINVAL},
        {500, "{\"message\":\"m\",\"reason\":\"internal\"}", QK_EPEER},
        {500, "{\"message\":\"m\",\"reason\":\"storage\"}", QK_ESTORAGE},
        {502, "<html>bad gateway</html>", QK_EIO},
    };
#undef RES
    for (size_t i = 0; i < sizeof notices_cases / sizeof notices_cases[0]; i++) {
        fake_status = notices_cases[i].status;
        fake_body = notices_cases[i].body;
        qk_peer_notices_answer a;
        int rc = qk_peer_notices(b_client(), &m, &a, &err);
        CU_ASSERT_EQUAL(rc, notices_cases[i].want);
        if (rc != notices_cases[i].want)
            fprintf(stderr, "\n  notices answer %u %s: %d\n", fake_status, fake_body, rc);
        if (rc == 0) {
            CU_ASSERT_EQUAL(a.n, 2);
            qk_peer_notices_answer_free(&a);
        } else {
            CU_ASSERT(a.n == 0 && a.r == NULL);
        }
    }
    P.ha.super.on_req = real;
    qk_notice_free(v, 2);
    sodium_memzero(mat, LB);
    kf_pair_close(&P);
}

int suite_peer_api(void)
{
    CU_pSuite s = CU_add_suite("peer_api", NULL, NULL);
    if (!s || !CU_add_test(s, "inventory compares digests", test_inventory_compares_digests) ||
        !CU_add_test(s, "inventory burns a confirmed block that differs",
                     test_inventory_burns_confirmed_mismatch) ||
        !CU_add_test(s, "inventory of another link refused", test_inventory_other_link) ||
        !CU_add_test(s, "inventory store error answers 500, not unknown",
                     test_inventory_store_error_500) ||
        !CU_add_test(s, "lease granted, again idempotent", test_lease_granted) ||
        !CU_add_test(s, "lease refused: side, link, block, body, collision", test_lease_refused) ||
        !CU_add_test(s, "lease answered 400 settled as refused", test_lease_bad_range_refused) ||
        !CU_add_test(s, "lease ask of an earlier version (with a check) granted",
                     test_lease_earlier_check) ||
        !CU_add_test(s, "notices reserved inside the lease, refused outside", test_notices) ||
        !CU_add_test(s, "notices batch answered 400 sent one at a time", test_notices_batch_400) ||
        !CU_add_test(s, "notices inline join the store's group", test_notices_inline_group) ||
        !CU_add_test(s, "reserve from an old peer", test_reserve_old_peer) ||
        !CU_add_test(s, "the client refuses bad answers", test_client_refuses_bad_answers))
        return -1;
    return 0;
}
