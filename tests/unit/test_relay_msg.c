/* test_relay_msg.c - the relay codec (kms/relay_msg.h): the hop message, its answer and the burn
 * message round-trip; a sealed hop (relay_crypto.h) decodes and opens at the next node with the
 * associated data rebuilt from the decoded message; the version is checked; each class of bad
 * input is refused with QK_EINVAL, a message and a zeroed output; the associated data changes
 * with every member it covers. */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_msg.h"

#define K1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define K2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"
#define H1 "11111111-2222-4333-8444-555555555555"
#define H2 "11111111-2222-4333-8444-555555555556"
#define H3 "11111111-2222-4333-8444-555555555557"

static const qk_peer_msg_limits LIM = {
    .max_keys_per_request = 4, .max_size_bits = 512, .max_sae_id_count = 2};

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* A hop message: path A>B>C, hop 0, two keys of 32 and 16 bytes, the hop key a MAC key and a
 * pad in two pieces (40 + 8). ct points to the given 48-byte buffer. */
static void fill(qk_relay_msg *m, uint8_t *ct)
{
    memset(m, 0, sizeof *m);
    snprintf(m->request_id, sizeof m->request_id, "relay-req-1");
    m->npath = 3;
    snprintf(m->path[0], sizeof m->path[0], "KME_A");
    snprintf(m->path[1], sizeof m->path[1], "KME_B");
    snprintf(m->path[2], sizeof m->path[2], "KME_C");
    m->hop = 0;
    snprintf(m->master, sizeof m->master, "SAE_A1");
    m->nslaves = 2;
    snprintf(m->slaves[0], sizeof m->slaves[0], "SAE_C1");
    snprintf(m->slaves[1], sizeof m->slaves[1], "SAE_C2");
    m->expires_at = 1800000000;
    m->deadline_ms = QK_RELAY_TIME_MAX;
    m->nkeys = 2;
    snprintf(m->keys[0].key_id, sizeof m->keys[0].key_id, K1);
    m->keys[0].length = 32;
    snprintf(m->keys[1].key_id, sizeof m->keys[1].key_id, K2);
    m->keys[1].length = 16;
    snprintf(m->link, sizeof m->link, "KME_A~KME_B");
    m->side = QK_SIDE_HIGH;
    m->nhop_keys = 3;
    const char *ids[] = {H1, H2, H3};
    const uint32_t off[] = {1000, 1032, QK_BLOCK_MAX_BYTES - 8}, len[] = {32, 40, 8};
    for (int i = 0; i < 3; i++) {
        snprintf(m->hop_keys[i].key_id, sizeof m->hop_keys[i].key_id, "%s", ids[i]);
        m->hop_keys[i].block_id = i == 2 ? QK_RELAY_TIME_MAX : 7;
        m->hop_keys[i].offset = off[i];
        m->hop_keys[i].length = len[i];
    }
    m->ct_len = 48;
    m->ct = ct;
    for (int i = 0; i < 48; i++)
        ct[i] = (uint8_t)(i * 5 + 1);
    memset(m->tag, 0x5a, sizeof m->tag);
}

static char *encode(const qk_relay_msg *m)
{
    char *out = NULL;
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_relay_msg_encode(m, &LIM, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "encode: %s\n", err.msg);
    return out;
}

/* text with the first `from` replaced by `to` (malloc'ed) */
static char *subst(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    snprintf(out, n, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    return out;
}

/* decode must refuse text with a message naming `what` and a zeroed output */
static void refuse(const char *text, const char *what)
{
    qk_relay_msg *m = malloc(sizeof *m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_relay_msg_decode(text, strlen(text), &LIM, m, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    CU_ASSERT(all_zero(m, sizeof *m));
    if (rc != QK_EINVAL || !strstr(err.msg, what)) {
        fprintf(stderr, "\nexpected a refusal naming '%s', got %d '%s' for %s\n", what, rc, err.msg,
                text);
        CU_FAIL("refusal");
    }
    if (rc == 0)
        qk_relay_msg_free(m);
    free(m);
}

static void refuse_subst(const char *text, const char *from, const char *to, const char *what)
{
    char *bad = subst(text, from, to);
    refuse(bad, what);
    free(bad);
}

static void test_round_trip_and_open(void)
{
    /* the sender makes the end-to-end key and seals it under the hop key */
    uint8_t key[48], link_key[32 + 48], ct[48];
    for (int i = 0; i < 48; i++)
        key[i] = (uint8_t)(200 - i);
    for (int i = 0; i < 80; i++)
        link_key[i] = (uint8_t)(i * 13 + 7);
    qk_relay_msg *m = malloc(sizeof *m), *d = malloc(sizeof *d);
    static uint8_t ad[QK_RELAY_AD_MAX], ad2[QK_RELAY_AD_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(m && d);
    fill(m, ct);
    qk_err err;
    size_t ad_len = 0, ad2_len = 0;
    CU_ASSERT_EQUAL_FATAL(qk_relay_msg_ad(m, &LIM, ad, sizeof ad, &ad_len, &err), 0);
    qk_relay_hop_key hk = {.mac_key = link_key, .pad = link_key + 32, .pad_len = 48};
    CU_ASSERT_EQUAL_FATAL(qk_relay_seal(key, 48, &hk, ad, ad_len, ct, m->tag, &err), 0);
    char *text = encode(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);

    /* the next node decodes, rebuilds the associated data and opens */
    CU_ASSERT_EQUAL_FATAL(qk_relay_msg_decode(text, strlen(text), &LIM, d, &err), 0);
    CU_ASSERT_STRING_EQUAL(d->request_id, m->request_id);
    CU_ASSERT_EQUAL(d->npath, 3);
    CU_ASSERT_STRING_EQUAL(d->path[2], "KME_C");
    CU_ASSERT_EQUAL(d->hop, 0);
    CU_ASSERT_EQUAL(d->nslaves, 2);
    CU_ASSERT_STRING_EQUAL(d->slaves[1], "SAE_C2");
    CU_ASSERT_EQUAL(d->expires_at, 1800000000);
    CU_ASSERT_EQUAL(d->deadline_ms, QK_RELAY_TIME_MAX);
    CU_ASSERT_EQUAL(d->nkeys, 2);
    CU_ASSERT_EQUAL(memcmp(d->keys, m->keys, sizeof d->keys), 0);
    CU_ASSERT_STRING_EQUAL(d->link, "KME_A~KME_B");
    CU_ASSERT_EQUAL(d->side, QK_SIDE_HIGH);
    CU_ASSERT_EQUAL(d->nhop_keys, 3);
    CU_ASSERT_EQUAL(memcmp(d->hop_keys, m->hop_keys, sizeof d->hop_keys), 0);
    CU_ASSERT_EQUAL(d->ct_len, 48);
    CU_ASSERT_EQUAL(memcmp(d->ct, ct, 48), 0);
    CU_ASSERT_EQUAL(memcmp(d->tag, m->tag, QK_RELAY_TAG_LEN), 0);
    CU_ASSERT_EQUAL_FATAL(qk_relay_msg_ad(d, &LIM, ad2, sizeof ad2, &ad2_len, &err), 0);
    CU_ASSERT_EQUAL(ad2_len, ad_len);
    CU_ASSERT_EQUAL(memcmp(ad, ad2, ad_len), 0);
    uint8_t out[48];
    CU_ASSERT_EQUAL(qk_relay_open(d->ct, d->ct_len, d->tag, &hk, ad2, ad2_len, out, &err), 0);
    CU_ASSERT_EQUAL(memcmp(out, key, 48), 0);

    /* encode(decode(text)) == text */
    char *again = encode(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    CU_ASSERT_STRING_EQUAL(again, text);

    /* a message relabelled in flight (next hop index, another slave) does not open: the tag
     * covers the associated data */
    d->hop = 1;
    CU_ASSERT_EQUAL_FATAL(qk_relay_msg_ad(d, &LIM, ad2, sizeof ad2, &ad2_len, &err), 0);
    CU_ASSERT_EQUAL(qk_relay_open(d->ct, d->ct_len, d->tag, &hk, ad2, ad2_len, out, &err),
                    QK_EMISMATCH);
    qk_relay_msg_free(d);
    CU_ASSERT(all_zero(d, sizeof *d));
    free(text);
    free(again);
    free(m);
    free(d);
}

static void test_wire_format(void)
{
    uint8_t ct[48];
    qk_relay_msg m;
    fill(&m, ct);
    char *text = encode(&m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    const char *want[] = {"{\"v\":1,\"request_id\":\"relay-req-1\",\"path\":[\"KME_A\",\"KME_B\","
                          "\"KME_C\"],\"hop\":0,\"master\":\"SAE_A1\"",
                          "\"slaves\":[\"SAE_C1\",\"SAE_C2\"]",
                          "\"expires_at\":1800000000",
                          "\"deadline_ms\":9007199254740991",
                          "\"keys\":[{\"key_ID\":\"" K1 "\",\"length\":32},",
                          "\"hop_key\":{\"link\":\"KME_A~KME_B\",\"side\":\"high\",\"keys\":[{"
                          "\"key_ID\":\"" H1 "\",\"block_id\":7,\"offset\":1000,\"length\":32}",
                          "\"block_id\":9007199254740991,\"offset\":4194296,\"length\":8}",
                          "\"ct\":\"",
                          "\"tag\":\"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\"}"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i])) {
            fprintf(stderr, "\nmissing %s in %s\n", want[i], text);
            CU_FAIL("wire format");
        }
    free(text);
}

static void test_refusals(void)
{
    uint8_t ct[48];
    qk_relay_msg m;
    fill(&m, ct);
    char *t = encode(&m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    /* version */
    refuse_subst(t, "\"v\":1", "\"v\":2", "v: version 2");
    refuse_subst(t, "\"v\":1,", "", "v");
    refuse_subst(t, "\"v\":1", "\"v\":\"1\"", "v");
    /* a request ID too long to take the hop suffix; the longest that does */
    char rid[QK_RELAY_ID_MAX + 4];
    memset(rid, 'q', sizeof rid);
    rid[0] = '"';
    rid[QK_RELAY_ID_MAX + 2] = '"';
    rid[QK_RELAY_ID_MAX + 3] = '\0';
    refuse_subst(t, "\"relay-req-1\"", rid, "request_id: at most");
    rid[QK_RELAY_ID_MAX + 1] = '"';
    rid[QK_RELAY_ID_MAX + 2] = '\0';
    char *longest = subst(t, "\"relay-req-1\"", rid);
    qk_relay_msg *lm = malloc(sizeof *lm);
    qk_err lerr;
    CU_ASSERT_PTR_NOT_NULL_FATAL(lm);
    CU_ASSERT_EQUAL(qk_relay_msg_decode(longest, strlen(longest), &LIM, lm, &lerr), 0);
    qk_relay_msg_free(lm);
    free(lm);
    free(longest);
    /* path: a node twice, one node, hop past the last link */
    refuse_subst(t, "\"KME_C\"]", "\"KME_A\"]", "path: a node appears twice");
    refuse_subst(t, "[\"KME_A\",\"KME_B\",\"KME_C\"]", "[\"KME_A\"]", "path");
    refuse_subst(t, "\"hop\":0", "\"hop\":2", "hop");
    refuse_subst(t, "\"hop\":0", "\"hop\":-1", "hop");
    /* IDs and counts */
    refuse_subst(t, "\"SAE_A1\"", "\"\"", "master");
    refuse_subst(t, "\"SAE_A1\"", "\"SAE\\u0001\"", "master");
    refuse_subst(t, "\"SAE_C2\"]", "\"SAE_C2\",\"SAE_C3\",\"SAE_C4\"]", "slaves");
    refuse_subst(t, "[\"SAE_C1\",\"SAE_C2\"]", "[]", "slaves");
    refuse_subst(t, "1800000000", "9007199254740992", "expires_at");
    /* end-to-end keys: a duplicate ID, too long, not a UUID, too many */
    refuse_subst(t, K2, K1, "keys: a key_ID appears twice");
    refuse_subst(t, "\"length\":32}", "\"length\":65}", "length");
    refuse_subst(t, K1, "not-a-uuid", "key_ID");
    /* the hop key: MAC key not 32 bytes, pad not the keys' length, range in the verification
     * key, past the block, one entry only, bad side */
    refuse_subst(t, "\"offset\":1000,\"length\":32", "\"offset\":1000,\"length\":31", "MAC key");
    refuse_subst(t, "\"length\":40", "\"length\":41", "the pad must be as long");
    refuse_subst(t, "\"offset\":1000", "\"offset\":31", "verification key");
    refuse_subst(t, "\"offset\":4194296", "\"offset\":4194297", "the range must lie");
    refuse_subst(t, "\"side\":\"high\"", "\"side\":\"middle\"", "side");
    refuse_subst(t, H2, H1, "hop_key.keys: a key_ID appears twice");
    /* ct: one byte short (base64 of 47 bytes), not base64; tag: short, not hex */
    char *p = strstr(t, "\"ct\":\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p += 6;
    char b64[80];
    size_t n = strcspn(p, "\"");
    snprintf(b64, sizeof b64, "%.*s", (int)n, p);
    refuse_subst(t, b64, "AAAA", "ct");
    char bad[80];
    snprintf(bad, sizeof bad, "%.*s!", (int)n - 1, b64);
    refuse_subst(t, b64, bad, "ct");
    refuse_subst(t, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "5a5a", "tag");
    refuse_subst(t, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5g", "tag");
    /* syntax: trailing garbage, not an object, too large */
    char *tail = subst(t, "\"}", "\"} x");
    refuse(tail, "");
    free(tail);
    refuse("[1]", "object");
    size_t big = QK_RELAY_MSG_MAX + 1;
    char *huge = malloc(big + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    refuse(huge, "");
    free(huge);

    /* a key ID in upper case is taken and kept in lower case */
    char *upper = subst(t, K1, "BC490419-7D60-487F-ADC1-4DDCC177C139");
    qk_relay_msg *d = malloc(sizeof *d);
    qk_err err;
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(qk_relay_msg_decode(upper, strlen(upper), &LIM, d, &err), 0);
    CU_ASSERT_STRING_EQUAL(d->keys[0].key_id, K1);
    qk_relay_msg_free(d);
    free(d);
    free(upper);

    /* the encoder refuses what the decoder would */
    char *out = (char *)1;
    m.hop_keys[0].length = 33;
    CU_ASSERT_EQUAL(qk_relay_msg_encode(&m, &LIM, &out, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(out);
    fill(&m, ct);
    m.ct = NULL;
    CU_ASSERT_EQUAL(qk_relay_msg_encode(&m, &LIM, &out, &err), QK_EINVAL);
    fill(&m, ct);
    m.nkeys = 5; /* above max_keys_per_request */
    CU_ASSERT_EQUAL(qk_relay_msg_encode(&m, &LIM, &out, &err), QK_EINVAL);
    fill(&m, ct);
    m.side = (qk_side)2;
    CU_ASSERT_EQUAL(qk_relay_msg_encode(&m, &LIM, &out, &err), QK_EINVAL);
    free(t);
}

static void test_ad_covers_members(void)
{
    uint8_t ct[48];
    qk_relay_msg m;
    static uint8_t base[QK_RELAY_AD_MAX], ad[QK_RELAY_AD_MAX];
    size_t base_len, len;
    qk_err err;
    fill(&m, ct);
    CU_ASSERT_EQUAL_FATAL(qk_relay_msg_ad(&m, &LIM, base, sizeof base, &base_len, &err), 0);
    /* each change of a member gives other associated data */
    for (int c = 0; c < 12; c++) {
        fill(&m, ct);
        switch (c) {
        case 0:
            m.request_id[0] = 'R';
            break;
        case 1:
            m.path[1][4] = 'X';
            break;
        case 2:
            m.hop = 1;
            break;
        case 3:
            m.master[0] = 'T';
            break;
        case 4:
            m.slaves[1][5] = '9';
            break;
        case 5:
            m.expires_at++;
            break;
        case 6:
            m.deadline_ms--;
            break;
        case 7:
            m.keys[0].key_id[0] = 'a';
            break;
        case 8:
            m.keys[0].length = 40, m.keys[1].length = 8;
            break;
        case 9:
            m.side = QK_SIDE_LOW;
            break;
        case 10:
            m.hop_keys[1].offset++;
            break;
        case 11:
            m.hop_keys[2].block_id--;
            break;
        }
        CU_ASSERT_EQUAL_FATAL(qk_relay_msg_ad(&m, &LIM, ad, sizeof ad, &len, &err), 0);
        CU_ASSERT(len != base_len || memcmp(ad, base, len) != 0);
    }
    /* the ciphertext and the tag are not in it */
    fill(&m, ct);
    ct[0] ^= 1;
    m.tag[0] ^= 1;
    CU_ASSERT_EQUAL(qk_relay_msg_ad(&m, &LIM, ad, sizeof ad, &len, &err), 0);
    CU_ASSERT(len == base_len && memcmp(ad, base, len) == 0);
    /* a buffer too small, a message that fails its checks */
    CU_ASSERT_EQUAL(qk_relay_msg_ad(&m, &LIM, ad, base_len - 1, &len, &err), QK_ELIMIT);
    CU_ASSERT_EQUAL(len, 0);
    m.npath = 1;
    CU_ASSERT_EQUAL(qk_relay_msg_ad(&m, &LIM, ad, sizeof ad, &len, &err), QK_EINVAL);
}

/* The largest message the limits allow fits QK_RELAY_MSG_MAX and QK_RELAY_AD_MAX. */
static void test_largest(void)
{
    static const qk_peer_msg_limits wide = {
        .max_keys_per_request = 1024, .max_size_bits = 65536, .max_sae_id_count = 64};
    qk_relay_msg *m = calloc(1, sizeof *m), *d = malloc(sizeof *d);
    static uint8_t ct[QK_RELAY_DATA_MAX], ad[QK_RELAY_AD_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(m && d);
    memset(m->request_id, 'r', QK_RELAY_ID_MAX);
    m->npath = QK_RELAY_PATH_MAX;
    for (int i = 0; i < QK_RELAY_PATH_MAX; i++) {
        memset(m->path[i], 'p', QK_STORE_ID_MAX);
        snprintf(m->path[i], 4, "%03d", i);
        m->path[i][3] = 'p';
    }
    m->hop = QK_RELAY_PATH_MAX - 2;
    memset(m->master, 'm', QK_STORE_ID_MAX);
    m->nslaves = QK_PEER_SLAVES_MAX;
    for (int i = 0; i < QK_PEER_SLAVES_MAX; i++) {
        memset(m->slaves[i], 's', QK_STORE_ID_MAX);
        snprintf(m->slaves[i], 4, "%03d", i);
        m->slaves[i][3] = 's';
    }
    m->expires_at = m->deadline_ms = QK_RELAY_TIME_MAX;
    m->nkeys = QK_RELAY_KEYS_MAX;
    for (int i = 0; i < QK_RELAY_KEYS_MAX; i++) {
        snprintf(m->keys[i].key_id, sizeof m->keys[i].key_id, "00000000-0000-4000-8000-%012x", i);
        m->keys[i].length = QK_RELAY_DATA_MAX / QK_RELAY_KEYS_MAX;
    }
    memset(m->link, 'l', QK_STORE_ID_MAX);
    m->nhop_keys = QK_RELAY_HOP_KEYS_MAX;
    for (int i = 0; i < QK_RELAY_HOP_KEYS_MAX; i++) {
        qk_key_ref *k = &m->hop_keys[i];
        snprintf(k->key_id, sizeof k->key_id, "10000000-0000-4000-8000-%012x", i);
        k->block_id = QK_RELAY_TIME_MAX;
        k->length = i == 0 ? 32 : QK_RELAY_DATA_MAX / (QK_RELAY_HOP_KEYS_MAX - 1);
        k->offset = QK_BLOCK_MAX_BYTES - k->length;
    }
    m->ct = ct;
    m->ct_len = QK_RELAY_DATA_MAX;
    char *text = NULL;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_relay_msg_encode(m, &wide, &text, &err), 0);
    CU_ASSERT(strlen(text) < 120 * 1024); /* the ADR's figure; QK_RELAY_MSG_MAX is 256 KiB */
    CU_ASSERT_EQUAL(qk_relay_msg_decode(text, strlen(text), &wide, d, &err), 0);
    size_t len;
    CU_ASSERT_EQUAL(qk_relay_msg_ad(d, &wide, ad, sizeof ad, &len, &err), 0);
    qk_relay_msg_free(d);
    free(text);
    free(m);
    free(d);
}

static void test_answer(void)
{
    qk_relay_answer a = {.request_id = "relay-req-1", .status = QK_RELAY_STORED}, b;
    char *text = NULL;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_relay_answer_encode(&a, &text, &err), 0);
    CU_ASSERT_STRING_EQUAL(text, "{\"v\":1,\"request_id\":\"relay-req-1\",\"status\":\"stored\"}");
    CU_ASSERT_EQUAL(qk_relay_answer_decode(text, strlen(text), &b, &err), 0);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
    free(text);
    a.status = QK_RELAY_REFUSED;
    a.reason = QK_RELAY_REASON_MAC;
    a.hop = 2;
    CU_ASSERT_EQUAL_FATAL(qk_relay_answer_encode(&a, &text, &err), 0);
    CU_ASSERT_STRING_EQUAL(text, "{\"v\":1,\"request_id\":\"relay-req-1\",\"status\":\"refused\","
                                 "\"reason\":\"mac\",\"hop\":2}");
    memset(&b, 0xff, sizeof b);
    CU_ASSERT_EQUAL(qk_relay_answer_decode(text, strlen(text), &b, &err), 0);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
    free(text);
    /* every reason has a name and round-trips */
    for (int r = 1; r < QK_RELAY_REASON_COUNT; r++) {
        a.reason = (qk_relay_reason)r;
        CU_ASSERT_PTR_NOT_NULL(qk_relay_reason_name(a.reason));
        CU_ASSERT_EQUAL_FATAL(qk_relay_answer_encode(&a, &text, &err), 0);
        CU_ASSERT_EQUAL(qk_relay_answer_decode(text, strlen(text), &b, &err), 0);
        CU_ASSERT_EQUAL(b.reason, r);
        free(text);
    }
    CU_ASSERT_PTR_NULL(qk_relay_reason_name(QK_RELAY_REASON_NONE));
    CU_ASSERT_PTR_NULL(qk_relay_reason_name(QK_RELAY_REASON_COUNT));
    /* refusals: a refusal without a reason, a stored answer with one, bad version, bad hop */
    const char *bad[] = {
        "{\"v\":1,\"request_id\":\"r\",\"status\":\"refused\",\"hop\":1}",
        "{\"v\":1,\"request_id\":\"r\",\"status\":\"refused\",\"reason\":\"nope\",\"hop\":1}",
        "{\"v\":1,\"request_id\":\"r\",\"status\":\"refused\",\"reason\":\"mac\",\"hop\":16}",
        "{\"v\":1,\"request_id\":\"r\",\"status\":\"refused\",\"reason\":\"mac\"}",
        "{\"v\":1,\"request_id\":\"r\",\"status\":\"maybe\"}",
        "{\"v\":0,\"request_id\":\"r\",\"status\":\"stored\"}",
        "{\"request_id\":\"r\",\"status\":\"stored\"}",
        "{\"v\":1,\"status\":\"stored\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&b, 0xff, sizeof b);
        qk_err_clear(&err);
        CU_ASSERT_EQUAL(qk_relay_answer_decode(bad[i], strlen(bad[i]), &b, &err), QK_EINVAL);
        CU_ASSERT(all_zero(&b, sizeof b));
        CU_ASSERT(err.msg[0] != '\0');
    }
    a.status = QK_RELAY_STORED; /* stored with a reason */
    CU_ASSERT_EQUAL(qk_relay_answer_encode(&a, &text, &err), QK_EINVAL);
}

static void test_burn(void)
{
    qk_relay_burn_msg m = {.request_id = "relay-req-1", .npath = 4, .hop = 2}, d;
    snprintf(m.path[0], sizeof m.path[0], "A");
    snprintf(m.path[1], sizeof m.path[1], "B");
    snprintf(m.path[2], sizeof m.path[2], "C");
    snprintf(m.path[3], sizeof m.path[3], "D");
    char *text = NULL;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_relay_burn_encode(&m, &text, &err), 0);
    CU_ASSERT_STRING_EQUAL(
        text,
        "{\"v\":1,\"request_id\":\"relay-req-1\",\"path\":[\"A\",\"B\",\"C\",\"D\"],\"hop\":2}");
    CU_ASSERT_EQUAL(qk_relay_burn_decode(text, strlen(text), &d, &err), 0);
    CU_ASSERT_EQUAL(memcmp(&m, &d, sizeof m), 0);
    free(text);
    const char *bad[] = {
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\",\"B\"],\"hop\":1}",
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\",\"A\"],\"hop\":0}",
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\"],\"hop\":0}",
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\",7],\"hop\":0}",
        "{\"v\":2,\"request_id\":\"r\",\"path\":[\"A\",\"B\"],\"hop\":0}",
        "{\"v\":1,\"request_id\":\"\",\"path\":[\"A\",\"B\"],\"hop\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0xff, sizeof d);
        CU_ASSERT_EQUAL(qk_relay_burn_decode(bad[i], strlen(bad[i]), &d, &err), QK_EINVAL);
        CU_ASSERT(all_zero(&d, sizeof d));
    }
    m.hop = 3;
    CU_ASSERT_EQUAL(qk_relay_burn_encode(&m, &text, &err), QK_EINVAL);
}

/* The commit: the burn's members and "verb": "commit", which its decoder requires (and the burn's
 * ignores: a commit's body posted as a burn burns, never the other way round). */
static void test_commit(void)
{
    qk_relay_commit_msg m = {.request_id = "relay-req-2", .npath = 3, .hop = 1}, d;
    snprintf(m.path[0], sizeof m.path[0], "A");
    snprintf(m.path[1], sizeof m.path[1], "B");
    snprintf(m.path[2], sizeof m.path[2], "C");
    char *text = NULL;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_relay_commit_encode(&m, &text, &err), 0);
    CU_ASSERT_STRING_EQUAL(text, "{\"v\":1,\"request_id\":\"relay-req-2\",\"path\":[\"A\",\"B\","
                                 "\"C\"],\"hop\":1,\"verb\":\"commit\"}");
    CU_ASSERT_EQUAL(qk_relay_commit_decode(text, strlen(text), &d, &err), 0);
    CU_ASSERT_EQUAL(memcmp(&m, &d, sizeof m), 0);
    CU_ASSERT_EQUAL(qk_relay_burn_decode(text, strlen(text), &d, &err), 0);
    free(text);
    CU_ASSERT_EQUAL_FATAL(qk_relay_burn_encode(&m, &text, &err), 0);
    memset(&d, 0xff, sizeof d);
    CU_ASSERT_EQUAL(qk_relay_commit_decode(text, strlen(text), &d, &err), QK_EINVAL);
    CU_ASSERT(all_zero(&d, sizeof d));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "verb"));
    free(text);
    const char *bad[] = {
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\",\"B\"],\"hop\":0,\"verb\":\"burn\"}",
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\",\"B\"],\"hop\":0,\"verb\":1}",
        "{\"v\":1,\"request_id\":\"r\",\"path\":[\"A\",\"B\"],\"hop\":1,\"verb\":\"commit\"}",
        "{\"v\":2,\"request_id\":\"r\",\"path\":[\"A\",\"B\"],\"hop\":0,\"verb\":\"commit\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0xff, sizeof d);
        CU_ASSERT_EQUAL(qk_relay_commit_decode(bad[i], strlen(bad[i]), &d, &err), QK_EINVAL);
        CU_ASSERT(all_zero(&d, sizeof d));
    }
    m.hop = 2;
    CU_ASSERT_EQUAL(qk_relay_commit_encode(&m, &text, &err), QK_EINVAL);
}

static void report(qk_topo_report *r, const char *node, uint64_t seq)
{
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "%s", node);
    r->seq = seq;
}

static void report_link(qk_topo_report *r, const char *peer, bool up, uint64_t avail)
{
    qk_topo_report_link *l = &r->links[r->nlinks++];
    snprintf(l->peer, sizeof l->peer, "%s", peer);
    l->up = up;
    l->available = avail;
    l->rate = avail / 100;
}

static void test_topology(void)
{
    qk_topo_msg *m = calloc(1, sizeof *m), *d = malloc(sizeof *d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m && d);
    m->n = 2;
    report(&m->reports[0], "KME_B", 7);
    report_link(&m->reports[0], "KME_A", true, 4096);
    report_link(&m->reports[0], "KME_C", false, QK_RELAY_TIME_MAX);
    report(&m->reports[1], "KME_C", QK_RELAY_TIME_MAX); /* a node with no links yet */
    char *text = NULL;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_msg_encode(m, &text, &err), 0);
    CU_ASSERT_STRING_EQUAL(text, "{\"v\":1,\"reports\":[{\"node\":\"KME_B\",\"seq\":7,\"links\":["
                                 "{\"peer\":\"KME_A\",\"up\":true,\"available\":4096,\"rate\":40},"
                                 "{\"peer\":\"KME_C\",\"up\":false,\"available\":"
                                 "9007199254740991,\"rate\":90071992547409}]},{\"node\":"
                                 "\"KME_C\",\"seq\":9007199254740991,\"links\":[]}]}");
    CU_ASSERT_EQUAL(qk_topo_msg_decode(text, strlen(text), d, &err), 0);
    CU_ASSERT_EQUAL(memcmp(m, d, sizeof *m), 0);
    free(text);
    const char *bad[] = {
        "{\"v\":2,\"reports\":[{\"node\":\"A\",\"seq\":1,\"links\":[]}]}",
        "{\"v\":1,\"reports\":[]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1,\"links\":[]},"
        "{\"node\":\"A\",\"seq\":2,\"links\":[]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1,\"links\":[{\"peer\":\"A\",\"up\":true,"
        "\"available\":1,\"rate\":1}]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1,\"links\":[{\"peer\":\"B\",\"up\":true,"
        "\"available\":1,\"rate\":1},{\"peer\":\"B\",\"up\":false,\"available\":1,\"rate\":1}]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1,\"links\":[{\"peer\":\"B\",\"up\":1,"
        "\"available\":1,\"rate\":1}]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1,\"links\":[{\"peer\":\"B\",\"up\":true,"
        "\"available\":9007199254740992,\"rate\":1}]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":-1,\"links\":[]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"\",\"seq\":1,\"links\":[]}]}",
        "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1}]}",
        "{\"v\":1,\"reports\":[7]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(d, 0xff, sizeof *d);
        qk_err_clear(&err);
        CU_ASSERT_EQUAL(qk_topo_msg_decode(bad[i], strlen(bad[i]), d, &err), QK_EINVAL);
        CU_ASSERT(all_zero(d, sizeof *d));
        CU_ASSERT(err.msg[0] != '\0');
    }
    /* too many links in a report: counted before any is read */
    char *many = malloc(64 * 1024);
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    size_t used = (size_t)snprintf(many, 64 * 1024,
                                   "{\"v\":1,\"reports\":[{\"node\":\"A\",\"seq\":1,"
                                   "\"links\":[");
    for (int i = 0; i <= QK_TOPO_REPORT_LINKS_MAX; i++)
        used += (size_t)snprintf(many + used, 64 * 1024 - used,
                                 "%s{\"peer\":\"P%d\",\"up\":true,\"available\":1,\"rate\":1}",
                                 i ? "," : "", i);
    snprintf(many + used, 64 * 1024 - used, "]}]}");
    CU_ASSERT_EQUAL(qk_topo_msg_decode(many, strlen(many), d, &err), QK_EINVAL);
    CU_ASSERT(strstr(err.msg, "links: at most") != NULL);
    free(many);
    /* the encoder refuses what the decoder would */
    m->reports[1].links[0] = m->reports[0].links[0];
    snprintf(m->reports[1].links[0].peer, sizeof m->reports[1].links[0].peer, "KME_C");
    m->reports[1].nlinks = 1;
    CU_ASSERT_EQUAL(qk_topo_msg_encode(m, &text, &err), QK_EINVAL);
    CU_ASSERT_PTR_NULL(text);
    free(m);
    free(d);
}

int suite_relay_msg(void)
{
    CU_pSuite s = CU_add_suite("relay_msg", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "round trip, sealed and opened at the next node",
                     test_round_trip_and_open) ||
        !CU_add_test(s, "wire format", test_wire_format) ||
        !CU_add_test(s, "refusals", test_refusals) ||
        !CU_add_test(s, "associated data covers every member", test_ad_covers_members) ||
        !CU_add_test(s, "the largest message fits", test_largest) ||
        !CU_add_test(s, "answer", test_answer) || !CU_add_test(s, "burn", test_burn) ||
        !CU_add_test(s, "commit", test_commit) ||
        !CU_add_test(s, "topology reports", test_topology))
        return -1;
    return 0;
}
