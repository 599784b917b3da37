/* fuzz_relay_msg.c - libFuzzer target for the relay codec (kms/relay_msg.c), the parser of what
 * a neighbouring KME sends on POST /peer/v1/relay, /peer/v1/relay-burn and /relay-commit and
 * answers to a relay. Every input goes to every decoder, as the exact-size buffer (so ASan sees any
 * read past len). Besides memory errors (ASan/UBSan) the target checks the codec's promises and
 * aborts when one is broken:
 *   - a refusal is QK_EINVAL (or QK_ENOMEM) with a message and a zeroed output;
 *   - what decodes is within the limits: version 1, a path of 2..16 distinct IDs with the hop
 *     inside it, canonical lower-case key IDs none twice, end-to-end keys within max_size and
 *     QK_RELAY_DATA_MAX in all, a 32-byte MAC key first in the hop key and pad pieces adding up
 *     to the keys, ranges in a block past its verification key, a ciphertext exactly as long;
 *   - its associated data fits QK_RELAY_AD_MAX, and opening it under a zero hop key either
 *     fails with QK_EMISMATCH (output wiped) or gives ct XOR pad;
 *   - a topology answer (GET /peer/v1/topology) decodes to 1..64 reports of distinct nodes,
 *     each with at most 32 links to distinct peers other than itself, and its reports build a
 *     view (qk_topo_add_reports) with every route search answering 0 or QK_ENOTFOUND;
 *   - what decodes encodes, and the encoding decodes to the same struct and encodes to the
 *     same text again.
 * Build and run: `make fuzz`, then
 * `build-fuzz/fuzz_relay_msg -max_total_time=60 tests/fuzz/corpus/relay_msg`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "relay_msg.h"

static const qk_peer_msg_limits LIM = {
    .max_keys_per_request = 128, .max_size_bits = 8192, .max_sae_id_count = 4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* memcmp against zeros: a byte loop over the ~300 KiB topology struct, instrumented, would
 * take most of each run */
static bool zeroed(const void *p, size_t n)
{
    static const unsigned char zeros[4096];
    const unsigned char *b = p;
    for (size_t off = 0; off < n; off += sizeof zeros) {
        size_t k = n - off < sizeof zeros ? n - off : sizeof zeros;
        if (memcmp(b + off, zeros, k) != 0)
            return false;
    }
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

static void path_ok(const qk_peer_id *path, size_t n, uint32_t hop)
{
    REQUIRE(n >= 2 && n <= QK_RELAY_PATH_MAX && hop <= n - 2);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(id_ok(path[i]));
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(path[i], path[j]) != 0);
    }
}

static void msg_ok(const qk_relay_msg *m)
{
    REQUIRE(id_ok(m->request_id) && id_ok(m->master) && id_ok(m->link));
    path_ok(m->path, m->npath, m->hop);
    REQUIRE(m->nslaves >= 1 && m->nslaves <= 1 + LIM.max_sae_id_count);
    for (size_t i = 0; i < m->nslaves; i++)
        REQUIRE(id_ok(m->slaves[i]));
    REQUIRE(m->expires_at <= QK_RELAY_TIME_MAX && m->deadline_ms <= QK_RELAY_TIME_MAX);
    REQUIRE(m->nkeys >= 1 && m->nkeys <= QK_RELAY_KEYS_MAX);
    size_t total = 0;
    for (size_t i = 0; i < m->nkeys; i++) {
        REQUIRE(fuzz_key_id_canonical(m->keys[i].key_id));
        REQUIRE(m->keys[i].length >= 1 && m->keys[i].length <= LIM.max_size_bits / 8);
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(m->keys[i].key_id, m->keys[j].key_id) != 0);
        total += m->keys[i].length;
    }
    REQUIRE(total <= QK_RELAY_DATA_MAX && m->ct && m->ct_len == total);
    REQUIRE(m->side == QK_SIDE_LOW || m->side == QK_SIDE_HIGH);
    REQUIRE(m->nhop_keys >= 2 && m->nhop_keys <= QK_RELAY_HOP_KEYS_MAX);
    REQUIRE(m->hop_keys[0].length == QK_RELAY_MAC_KEY_LEN);
    size_t pad = 0;
    for (size_t i = 0; i < m->nhop_keys; i++) {
        const qk_key_ref *k = &m->hop_keys[i];
        REQUIRE(fuzz_key_id_canonical(k->key_id) && k->block_id <= QK_RELAY_TIME_MAX);
        REQUIRE(k->offset >= QK_BLOCK_VKEY_LEN && k->length >= 1 &&
                (uint64_t)k->offset + k->length <= QK_BLOCK_MAX_BYTES);
        REQUIRE(zeroed(k->check, QK_CHECK_LEN));
        pad += i ? k->length : 0;
    }
    REQUIRE(pad == total);
}

static void msg_same(const qk_relay_msg *a, const qk_relay_msg *b)
{
    REQUIRE(strcmp(a->request_id, b->request_id) == 0 && a->npath == b->npath && a->hop == b->hop &&
            strcmp(a->master, b->master) == 0 && a->nslaves == b->nslaves &&
            a->expires_at == b->expires_at && a->deadline_ms == b->deadline_ms &&
            a->nkeys == b->nkeys && strcmp(a->link, b->link) == 0 && a->side == b->side &&
            a->nhop_keys == b->nhop_keys && a->ct_len == b->ct_len);
    REQUIRE(memcmp(a->path, b->path, sizeof a->path) == 0);
    REQUIRE(memcmp(a->slaves, b->slaves, sizeof a->slaves) == 0);
    REQUIRE(memcmp(a->keys, b->keys, sizeof a->keys) == 0);
    REQUIRE(memcmp(a->hop_keys, b->hop_keys, sizeof a->hop_keys) == 0);
    REQUIRE(memcmp(a->ct, b->ct, a->ct_len) == 0 && memcmp(a->tag, b->tag, QK_RELAY_TAG_LEN) == 0);
}

/* Open the decoded hop under an all-zero hop key: refused with the output wiped, or (when the
 * fuzzer found the tag) the ciphertext itself, XORed with a zero pad. */
static void try_open(const qk_relay_msg *m)
{
    static uint8_t ad[QK_RELAY_AD_MAX], pad[QK_RELAY_DATA_MAX], out[QK_RELAY_DATA_MAX];
    static const uint8_t mac_key[QK_RELAY_MAC_KEY_LEN];
    size_t ad_len = 0;
    qk_err err;
    REQUIRE(qk_relay_msg_ad(m, &LIM, ad, sizeof ad, &ad_len, &err) == 0);
    REQUIRE(ad_len > 0 && ad_len <= QK_RELAY_AD_MAX);
    qk_relay_hop_key hk = {.pad = pad, .pad_len = m->ct_len, .mac_key = mac_key};
    memset(out, 0xa5, m->ct_len);
    int rc = qk_relay_open(m->ct, m->ct_len, m->tag, &hk, ad, ad_len, out, &err);
    if (rc == 0)
        REQUIRE(memcmp(out, m->ct, m->ct_len) == 0);
    else
        REQUIRE(rc == QK_EMISMATCH && zeroed(out, m->ct_len));
}

static void fuzz_msg(const char *body, size_t len)
{
    qk_relay_msg *m = malloc(sizeof *m), *d = malloc(sizeof *d);
    char *t1 = NULL, *t2 = NULL;
    if (!m || !d)
        goto out;
    qk_err err = {0};
    int rc = qk_relay_msg_decode(body, len, &LIM, m, &err);
    if (rc != 0) {
        refused(rc, &err, m, sizeof *m);
        goto out;
    }
    msg_ok(m);
    try_open(m);
    REQUIRE(qk_relay_msg_encode(m, &LIM, &t1, &err) == 0 && t1);
    REQUIRE(strlen(t1) <= QK_RELAY_MSG_MAX);
    REQUIRE(qk_relay_msg_decode(t1, strlen(t1), &LIM, d, &err) == 0);
    msg_same(m, d);
    REQUIRE(qk_relay_msg_encode(d, &LIM, &t2, &err) == 0 && t2);
    REQUIRE(strcmp(t1, t2) == 0);
    qk_relay_msg_free(d);
    qk_relay_msg_free(m);
    REQUIRE(zeroed(m, sizeof *m));
out:
    free(t1);
    free(t2);
    free(m);
    free(d);
}

static void fuzz_answer(const char *body, size_t len)
{
    qk_relay_answer a, b;
    qk_err err = {0};
    int rc = qk_relay_answer_decode(body, len, &a, &err);
    if (rc != 0) {
        refused(rc, &err, &a, sizeof a);
        return;
    }
    REQUIRE(id_ok(a.request_id));
    if (a.status == QK_RELAY_STORED)
        REQUIRE(a.reason == QK_RELAY_REASON_NONE && a.hop == 0);
    else
        REQUIRE(a.status == QK_RELAY_REFUSED && qk_relay_reason_name(a.reason) &&
                a.hop < QK_RELAY_PATH_MAX);
    char *t1 = NULL, *t2 = NULL;
    REQUIRE(qk_relay_answer_encode(&a, &t1, &err) == 0 && t1);
    REQUIRE(qk_relay_answer_decode(t1, strlen(t1), &b, &err) == 0);
    REQUIRE(memcmp(&a, &b, sizeof a) == 0);
    REQUIRE(qk_relay_answer_encode(&b, &t2, &err) == 0 && t2 && strcmp(t1, t2) == 0);
    free(t1);
    free(t2);
}

/* The burn and the commit messages (one shape; the commit requires its verb). */
static void fuzz_path_msg(const char *body, size_t len, bool commit)
{
    qk_relay_burn_msg *m = malloc(sizeof *m), *d = malloc(sizeof *d);
    char *t1 = NULL, *t2 = NULL;
    if (!m || !d)
        goto out;
    qk_err err = {0};
    int rc = (commit ? qk_relay_commit_decode : qk_relay_burn_decode)(body, len, m, &err);
    if (rc != 0) {
        refused(rc, &err, m, sizeof *m);
        goto out;
    }
    REQUIRE(id_ok(m->request_id));
    path_ok(m->path, m->npath, m->hop);
    REQUIRE((commit ? qk_relay_commit_encode : qk_relay_burn_encode)(m, &t1, &err) == 0 && t1);
    REQUIRE((commit ? qk_relay_commit_decode : qk_relay_burn_decode)(t1, strlen(t1), d, &err) == 0);
    REQUIRE(memcmp(m, d, sizeof *m) == 0);
    REQUIRE((commit ? qk_relay_commit_encode : qk_relay_burn_encode)(d, &t2, &err) == 0 && t2 &&
            strcmp(t1, t2) == 0);
out:
    free(t1);
    free(t2);
    free(m);
    free(d);
}

static void fuzz_topology(const char *body, size_t len)
{
    /* static: the structs are ~300 KiB, allocating them per input halves the speed */
    static qk_topo_msg sm, sd;
    static qk_topology st;
    qk_topo_msg *m = &sm, *d = &sd;
    qk_topology *t = &st;
    char *t1 = NULL, *t2 = NULL;
    qk_err err = {0};
    int rc = qk_topo_msg_decode(body, len, m, &err);
    if (rc != 0) {
        refused(rc, &err, m, sizeof *m);
        goto out;
    }
    REQUIRE(m->n >= 1 && m->n <= QK_ROUTE_NODES_MAX);
    for (size_t i = 0; i < m->n; i++) {
        const qk_topo_report *r = &m->reports[i];
        REQUIRE(id_ok(r->node) && r->seq <= QK_RELAY_TIME_MAX &&
                r->nlinks <= QK_TOPO_REPORT_LINKS_MAX);
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(r->node, m->reports[j].node) != 0);
        for (size_t j = 0; j < r->nlinks; j++) {
            REQUIRE(id_ok(r->links[j].peer) && strcmp(r->links[j].peer, r->node) != 0);
            for (size_t k = 0; k < j; k++)
                REQUIRE(strcmp(r->links[j].peer, r->links[k].peer) != 0);
        }
    }
    REQUIRE(qk_topo_msg_encode(m, &t1, &err) == 0 && t1);
    REQUIRE(qk_topo_msg_decode(t1, strlen(t1), d, &err) == 0);
    REQUIRE(memcmp(m, d, sizeof *m) == 0);
    REQUIRE(qk_topo_msg_encode(d, &t2, &err) == 0 && t2 && strcmp(t1, t2) == 0);
    /* the reports as a view: within the bounds, and every search answers */
    qk_topo_init(t);
    rc = qk_topo_add_reports(t, m->reports, m->n, &err);
    REQUIRE(rc == 0 || rc == QK_ELIMIT);
    if (rc == 0 && t->nnodes >= 2) {
        qk_route route;
        rc = qk_route_find(t, t->nodes[0], t->nodes[t->nnodes - 1], 1, 15, &route, &err);
        REQUIRE(rc == 0 || rc == QK_ENOTFOUND);
        if (rc == 0)
            REQUIRE(route.nnodes >= 2 && route.nnodes <= 16 && route.bottleneck >= 1);
    }
out:
    free(t1);
    free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > QK_TOPO_MSG_MAX + 1)
        return 0;
    const char *body = (const char *)data;
    fuzz_msg(body, size);
    fuzz_answer(body, size);
    fuzz_path_msg(body, size, false);
    fuzz_path_msg(body, size, true);
    fuzz_topology(body, size);
    return 0;
}
