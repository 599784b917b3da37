/* fuzz_peer_msg.c - libFuzzer target for the peer-message codec (kms/peer_msg.c), the parser of
 * what a peer KME sends: both the requests of /peer/v1/... (read by peer/peer_api.c) and the
 * answers (read by kms/peer_client.c). Every input goes to every decoder, as the exact-size
 * buffer (so ASan sees any read past len). Besides memory errors (ASan/UBSan) the target checks
 * the codec's promises and aborts when one is broken:
 *   - a refusal is QK_EINVAL (or QK_ENOMEM) with a message and a zeroed output;
 *   - what decodes is within the limits: IDs of 1..QK_STORE_ID_MAX characters without control
 *     characters, canonical lower-case key IDs, block IDs and expiry below 2^53, ranges inside
 *     a block, key lengths within max_size, entry counts within their maxima, device-keys
 *     blocks of 33 B .. 4 MiB without a key ID twice, lease ranges inside a block past its
 *     verification key, notices without a check and without a request ID twice, notices
 *     sent as runs (docs/adr/0003-request-records.md, "Wire") expanded to such keys;
 *   - what decodes encodes, and the encoding decodes to the same struct, and encodes to the
 *     same text again.
 * Build and run: `make fuzz`, then
 * `build-fuzz/fuzz_peer_msg -max_total_time=60 tests/fuzz/corpus/peer_msg` (see
 * peer/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_util.h"
#include "peer_msg.h"

static const qk_peer_msg_limits LIM = {
    .max_keys_per_request = 128, .max_size_bits = 8192, .max_sae_id_count = 4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool zeroed(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void refused(int rc, const qk_err *err, const void *out, size_t n)
{
    REQUIRE(rc == QK_EINVAL || rc == QK_ENOMEM);
    REQUIRE(err->msg[0] != '\0');
    REQUIRE(zeroed(out, n));
}

static bool id_ok(const char *s)
{
    qk_err err;
    return strnlen(s, QK_STORE_ID_MAX + 1) <= QK_STORE_ID_MAX &&
           qk_peer_id_check(s, strlen(s), "id", &err) == 0;
}

/* encode(a) -> text; decode(text) -> b (decoder arguments before b: __VA_ARGS__); encode(b)
 * must give the same text. */
#define ROUND_TRIP(encode, decode, a, b, ...)                                                      \
    do {                                                                                           \
        char *t1 = NULL, *t2 = NULL;                                                               \
        qk_err e;                                                                                  \
        REQUIRE(encode(a, &t1, &e) == 0 && t1);                                                    \
        REQUIRE(decode(t1, strlen(t1), __VA_ARGS__ b, &e) == 0);                                   \
        REQUIRE(encode(b, &t2, &e) == 0 && t2);                                                    \
        REQUIRE(strcmp(t1, t2) == 0);                                                              \
        free(t1);                                                                                  \
        free(t2);                                                                                  \
    } while (0)

static void fuzz_reserve(const char *body, size_t len)
{
    qk_peer_reserve_msg *m = malloc(sizeof *m), *d = malloc(sizeof *d);
    if (!m || !d)
        goto out;
    qk_err err = {0};
    int rc = qk_peer_reserve_decode(body, len, &LIM, m, &err);
    if (rc != 0) {
        refused(rc, &err, m, sizeof *m);
        goto out;
    }
    REQUIRE(id_ok(m->request_id) && id_ok(m->link) && id_ok(m->master));
    REQUIRE(m->side == QK_SIDE_LOW || m->side == QK_SIDE_HIGH);
    REQUIRE(m->nslaves >= 1 && m->nslaves <= 1 + LIM.max_sae_id_count);
    for (size_t i = 0; i < m->nslaves; i++)
        REQUIRE(id_ok(m->slaves[i]));
    REQUIRE(m->expires_at <= QK_PEER_BLOCK_ID_MAX);
    REQUIRE(m->keys && m->nkeys >= 1 && m->nkeys <= LIM.max_keys_per_request);
    for (size_t i = 0; i < m->nkeys; i++) {
        const qk_key_ref *k = &m->keys[i];
        REQUIRE(fuzz_key_id_canonical(k->key_id));
        REQUIRE(k->block_id <= QK_PEER_BLOCK_ID_MAX);
        REQUIRE(k->length >= 1 && k->length <= LIM.max_size_bits / 8);
        REQUIRE((uint64_t)k->offset + k->length <= QK_BLOCK_MAX_BYTES);
    }
    ROUND_TRIP(qk_peer_reserve_encode, qk_peer_reserve_decode, m, d, &LIM, );
    REQUIRE(strcmp(m->request_id, d->request_id) == 0 && strcmp(m->link, d->link) == 0 &&
            strcmp(m->master, d->master) == 0 && m->side == d->side &&
            m->expires_at == d->expires_at && m->nslaves == d->nslaves && m->nkeys == d->nkeys);
    for (size_t i = 0; i < m->nslaves; i++)
        REQUIRE(strcmp(m->slaves[i], d->slaves[i]) == 0);
    for (size_t i = 0; i < m->nkeys; i++) {
        const qk_key_ref *a = &m->keys[i], *b = &d->keys[i];
        REQUIRE(strcmp(a->key_id, b->key_id) == 0 && a->block_id == b->block_id &&
                a->offset == b->offset && a->length == b->length &&
                memcmp(a->check, b->check, QK_CHECK_LEN) == 0);
    }
    /* the receiver's view and the sender's fill agree with the message */
    qk_reservation r;
    const char *slaves[QK_PEER_SLAVES_MAX];
    qk_peer_reserve_msg_get(m, &r, slaves);
    qk_peer_reserve_msg_free(d);
    REQUIRE(qk_peer_reserve_msg_set(d, &r, m->side, m->keys, m->nkeys, &err) == 0);
    REQUIRE(strcmp(d->request_id, m->request_id) == 0 && d->nslaves == m->nslaves &&
            d->keys == m->keys && d->expires_at == m->expires_at);
    d->keys = NULL; /* borrowed from m */
    qk_peer_reserve_msg_free(m);
out:
    free(m);
    free(d);
}

static void fuzz_small(const char *body, size_t len)
{
    qk_err err = {0};
    qk_peer_result_msg res, res2;
    int rc = qk_peer_result_decode(body, len, &res, &err);
    if (rc == 0) {
        REQUIRE(res.status >= QK_PEER_RESERVED && res.status <= QK_PEER_GRANTED);
        ROUND_TRIP(qk_peer_result_encode, qk_peer_result_decode, &res, &res2, );
        REQUIRE(res.status == res2.status);
    } else {
        refused(rc, &err, &res, sizeof res);
    }
    qk_peer_state_msg st, st2;
    rc = qk_peer_state_decode(body, len, &st, &err);
    if (rc == 0) {
        REQUIRE(st.state <= QK_PEER_REQ_BURNED);
        ROUND_TRIP(qk_peer_state_encode, qk_peer_state_decode, &st, &st2, );
        REQUIRE(st.state == st2.state);
    } else {
        refused(rc, &err, &st, sizeof st);
    }
    qk_peer_burn_msg bu, bu2;
    rc = qk_peer_burn_decode(body, len, &bu, &err);
    if (rc == 0) {
        REQUIRE(id_ok(bu.request_id));
        ROUND_TRIP(qk_peer_burn_encode, qk_peer_burn_decode, &bu, &bu2, );
        REQUIRE(strcmp(bu.request_id, bu2.request_id) == 0);
    } else {
        refused(rc, &err, &bu, sizeof bu);
    }
    qk_peer_error_msg er, er2;
    rc = qk_peer_error_decode(body, len, &er, &err);
    if (rc == 0) {
        REQUIRE(er.reason < QK_PEER_REASON_COUNT);
        REQUIRE(strnlen(er.message, sizeof er.message) <= QK_PEER_MESSAGE_MAX);
        ROUND_TRIP(qk_peer_error_encode, qk_peer_error_decode, &er, &er2, );
        REQUIRE(er.reason == er2.reason && strcmp(er.message, er2.message) == 0);
    } else {
        refused(rc, &err, &er, sizeof er);
    }
}

static void fuzz_inventory(const char *body, size_t len)
{
    qk_peer_inventory_msg *q = malloc(sizeof *q), *q2 = malloc(sizeof *q2);
    qk_peer_inventory_answer *a = malloc(sizeof *a), *a2 = malloc(sizeof *a2);
    if (!q || !q2 || !a || !a2)
        goto out;
    qk_err err = {0};
    int rc = qk_peer_inventory_decode(body, len, q, &err);
    if (rc == 0) {
        REQUIRE(id_ok(q->link) && q->n <= QK_PEER_INVENTORY_MAX);
        for (size_t i = 0; i < q->n; i++)
            REQUIRE(q->blocks[i].block_id <= QK_PEER_BLOCK_ID_MAX);
        ROUND_TRIP(qk_peer_inventory_encode, qk_peer_inventory_decode, q, q2, );
        REQUIRE(strcmp(q->link, q2->link) == 0 && q->n == q2->n);
        for (size_t i = 0; i < q->n; i++)
            REQUIRE(q->blocks[i].block_id == q2->blocks[i].block_id &&
                    memcmp(q->blocks[i].digest, q2->blocks[i].digest, QK_CHECK_LEN) == 0);
    } else {
        refused(rc, &err, q, sizeof *q);
    }
    rc = qk_peer_inventory_answer_decode(body, len, a, &err);
    if (rc == 0) {
        REQUIRE(a->n <= QK_PEER_INVENTORY_MAX);
        for (size_t i = 0; i < a->n; i++)
            REQUIRE(a->blocks[i].block_id <= QK_PEER_BLOCK_ID_MAX &&
                    a->blocks[i].status <= QK_INV_BURNED);
        ROUND_TRIP(qk_peer_inventory_answer_encode, qk_peer_inventory_answer_decode, a, a2, );
        REQUIRE(a->n == a2->n);
        for (size_t i = 0; i < a->n; i++)
            REQUIRE(a->blocks[i].block_id == a2->blocks[i].block_id &&
                    a->blocks[i].status == a2->blocks[i].status);
    } else {
        refused(rc, &err, a, sizeof *a);
    }
out:
    free(q);
    free(q2);
    free(a);
    free(a2);
}

static void fuzz_health(const char *body, size_t len)
{
    qk_peer_health_msg *h = malloc(sizeof *h), *h2 = malloc(sizeof *h2);
    if (!h || !h2)
        goto out;
    qk_err err = {0};
    int rc = qk_peer_health_decode(body, len, h, &err);
    if (rc != 0) {
        refused(rc, &err, h, sizeof *h);
        goto out;
    }
    REQUIRE(id_ok(h->node_id) && h->nlinks <= QK_PEER_LINKS_MAX);
    for (size_t i = 0; i < h->nlinks; i++)
        REQUIRE(id_ok(h->links[i]));
    ROUND_TRIP(qk_peer_health_encode, qk_peer_health_decode, h, h2, );
    REQUIRE(strcmp(h->node_id, h2->node_id) == 0 && h->nlinks == h2->nlinks);
    for (size_t i = 0; i < h->nlinks; i++)
        REQUIRE(strcmp(h->links[i], h2->links[i]) == 0);
out:
    free(h);
    free(h2);
}

static void fuzz_device_keys(const char *body, size_t len)
{
    qk_peer_device_keys_msg *m = malloc(sizeof *m), *m2 = malloc(sizeof *m2);
    if (!m || !m2)
        goto out;
    qk_err err = {0};
    int rc = qk_peer_device_keys_decode(body, len, m, &err);
    if (rc != 0) {
        refused(rc, &err, m, sizeof *m);
        goto out;
    }
    /* the limits: a link ID, a block ID below 2^53, a block of 33 B .. 4 MiB of whole-byte
     * keys, canonical lower-case key IDs, none twice */
    REQUIRE(id_ok(m->link) && m->block_id <= QK_PEER_BLOCK_ID_MAX);
    REQUIRE(m->key_size >= 8 && m->key_size % 8 == 0 && m->key_size <= QK_PEER_DEVICE_KEY_BITS_MAX);
    REQUIRE(m->n >= 1 && m->n <= QK_PEER_DEVICE_KEYS_MAX);
    uint64_t bytes = (uint64_t)m->n * (m->key_size / 8);
    REQUIRE(bytes > QK_BLOCK_VKEY_LEN && bytes <= QK_BLOCK_MAX_BYTES);
    for (size_t i = 0; i < m->n; i++) {
        qk_uuid u;
        char norm[QK_KEY_ID_LEN + 1];
        REQUIRE(strlen(m->key_ids[i]) == QK_KEY_ID_LEN &&
                qk_uuid_parse(m->key_ids[i], QK_KEY_ID_LEN, &u) == 0);
        qk_uuid_format(&u, norm);
        REQUIRE(strcmp(norm, m->key_ids[i]) == 0);
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(m->key_ids[i], m->key_ids[j]) != 0);
    }
    ROUND_TRIP(qk_peer_device_keys_encode, qk_peer_device_keys_decode, m, m2, );
    REQUIRE(memcmp(m, m2, sizeof *m) == 0);
out:
    free(m);
    free(m2);
}

static void fuzz_lease(const char *body, size_t len)
{
    qk_peer_lease_msg m, d;
    qk_err err = {0};
    int rc = qk_peer_lease_decode(body, len, &m, &err);
    if (rc != 0) {
        refused(rc, &err, &m, sizeof m);
        return;
    }
    REQUIRE(id_ok(m.link) && (m.side == QK_SIDE_LOW || m.side == QK_SIDE_HIGH));
    REQUIRE(m.lease.block_id <= QK_PEER_BLOCK_ID_MAX);
    REQUIRE(m.lease.from >= QK_BLOCK_VKEY_LEN && m.lease.from < m.lease.to &&
            m.lease.to <= QK_BLOCK_MAX_BYTES);
    ROUND_TRIP(qk_peer_lease_encode, qk_peer_lease_decode, &m, &d, );
    REQUIRE(memcmp(&m, &d, sizeof m) == 0);
}

/* A decoded notice is within the limits (as a reserve's keys, without a check). */
static void notice_ok(const qk_notice *v)
{
    REQUIRE(id_ok(v->request_id) && id_ok(v->master) && v->expires_at <= QK_PEER_BLOCK_ID_MAX);
    REQUIRE(v->slaves && v->nslaves >= 1 && v->nslaves <= 1 + LIM.max_sae_id_count);
    for (size_t i = 0; i < v->nslaves; i++)
        REQUIRE(id_ok(v->slaves[i]));
    REQUIRE(v->keys && v->nkeys >= 1 && v->nkeys <= LIM.max_keys_per_request);
    for (size_t i = 0; i < v->nkeys; i++) {
        const qk_key_ref *k = &v->keys[i];
        REQUIRE(fuzz_key_id_canonical(k->key_id) && k->block_id <= QK_PEER_BLOCK_ID_MAX);
        REQUIRE(k->length >= 1 && k->length <= LIM.max_size_bits / 8);
        REQUIRE((uint64_t)k->offset + k->length <= QK_BLOCK_MAX_BYTES);
        REQUIRE(zeroed(k->check, QK_CHECK_LEN));
    }
}

static void notices_same(const qk_notice *a, const qk_notice *b)
{
    REQUIRE(strcmp(a->request_id, b->request_id) == 0 && strcmp(a->master, b->master) == 0 &&
            a->expires_at == b->expires_at && a->nslaves == b->nslaves && a->nkeys == b->nkeys);
    for (size_t i = 0; i < a->nslaves; i++)
        REQUIRE(strcmp(a->slaves[i], b->slaves[i]) == 0);
    for (size_t i = 0; i < a->nkeys; i++)
        REQUIRE(memcmp(&a->keys[i], &b->keys[i], sizeof a->keys[i]) == 0);
}

static void fuzz_notices(const char *body, size_t len)
{
    qk_peer_notices_msg m, d;
    qk_err err = {0};
    int rc = qk_peer_notices_decode(body, len, &LIM, &m, &err);
    if (rc != 0) {
        refused(rc, &err, &m, sizeof m);
    } else {
        REQUIRE(id_ok(m.link) && (m.side == QK_SIDE_LOW || m.side == QK_SIDE_HIGH));
        REQUIRE(m.notices && m.n >= 1 && m.n <= QK_PEER_NOTICES_MAX);
        for (size_t i = 0; i < m.n; i++) {
            notice_ok(&m.notices[i]);
            for (size_t j = 0; j < i; j++)
                REQUIRE(strcmp(m.notices[i].request_id, m.notices[j].request_id) != 0);
        }
        /* runs come back as runs (the same keys), key lists as key lists */
        ROUND_TRIP(qk_peer_notices_encode, qk_peer_notices_decode, &m, &d, &LIM, );
        REQUIRE(strcmp(m.link, d.link) == 0 && m.side == d.side && m.n == d.n);
        REQUIRE(d.runs == m.runs);
        for (size_t i = 0; i < m.n; i++)
            notices_same(&m.notices[i], &d.notices[i]);
        qk_peer_notices_msg_free(&d);
        qk_peer_notices_msg_free(&m);
        REQUIRE(zeroed(&m, sizeof m));
    }
    qk_peer_notices_answer a, b;
    rc = qk_peer_notices_answer_decode(body, len, &a, &err);
    if (rc != 0) {
        refused(rc, &err, &a, sizeof a);
        return;
    }
    REQUIRE(a.n <= QK_PEER_NOTICES_MAX && (a.n == 0 || a.r));
    for (size_t i = 0; i < a.n; i++) {
        const qk_peer_notice_result *r = &a.r[i];
        REQUIRE(id_ok(r->request_id) && r->status <= 0 && r->nheld <= QK_PEER_SLAVES_MAX);
        REQUIRE(r->nheld == 0 || r->held);
        for (size_t j = 0; j < r->nheld; j++)
            REQUIRE(id_ok(r->held[j].master) && id_ok(r->held[j].slave) &&
                    r->held[j].count <= QK_PEER_BLOCK_ID_MAX);
    }
    ROUND_TRIP(qk_peer_notices_answer_encode, qk_peer_notices_answer_decode, &a, &b, );
    REQUIRE(a.n == b.n);
    for (size_t i = 0; i < a.n; i++) {
        REQUIRE(strcmp(a.r[i].request_id, b.r[i].request_id) == 0);
        REQUIRE(a.r[i].status == b.r[i].status && a.r[i].nheld == b.r[i].nheld);
        for (size_t j = 0; j < a.r[i].nheld; j++)
            REQUIRE(memcmp(&a.r[i].held[j], &b.r[i].held[j], sizeof a.r[i].held[j]) == 0);
    }
    qk_peer_notices_answer_free(&b);
    qk_peer_notices_answer_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > QK_PEER_MSG_MAX + 1)
        return 0;
    const char *body = (const char *)data;
    fuzz_reserve(body, size);
    fuzz_small(body, size);
    fuzz_inventory(body, size);
    fuzz_health(body, size);
    fuzz_device_keys(body, size);
    fuzz_lease(body, size);
    fuzz_notices(body, size);
    /* the request path's ID check (GET /peer/v1/request/{id}) */
    qk_err err = {0};
    if (qk_peer_id_check(body, size, "request ID", &err) == 0) {
        REQUIRE(size >= 1 && size <= QK_STORE_ID_MAX);
        for (size_t i = 0; i < size; i++)
            REQUIRE((unsigned char)body[i] >= 0x20 && body[i] != 0x7f);
    } else {
        REQUIRE(err.code == QK_EINVAL && err.msg[0] != '\0');
    }
    return 0;
}
