/* test_relay_crypto.c - one relay hop (kms/relay_crypto.h): seal then open gives the key back;
 * a flipped bit in the ciphertext, the tag or the associated data, or a wrong pad or MAC key,
 * is refused (QK_EMISMATCH, nothing decrypted); lengths and overlapping buffers are refused;
 * Poly1305 matches RFC 8439 section 2.5.2, and the tag's input is laid out as RFC 8439
 * section 2.8 says. */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <string.h>

#include "relay_crypto.h"
#include "secbuf.h"

#define LEN 48

typedef struct {
    uint8_t key[LEN];      /* end-to-end key */
    uint8_t material[128]; /* the hop's link key: MAC key then pad */
    uint8_t ct[LEN], out[LEN], tag[QK_RELAY_TAG_LEN];
    qk_relay_hop_key hk;
} fixture;

static const uint8_t AD[] = "request-1|hop 0|KME_A,KME_B,KME_C";

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < LEN; i++)
        f->key[i] = (uint8_t)(0x30 + i);
    for (size_t i = 0; i < sizeof f->material; i++)
        f->material[i] = (uint8_t)(i * 37 + 11);
    f->hk.mac_key = f->material;
    f->hk.pad = f->material + QK_RELAY_MAC_KEY_LEN;
    f->hk.pad_len = LEN;
}

static int seal(fixture *f)
{
    qk_err err;
    return qk_relay_seal(f->key, LEN, &f->hk, AD, sizeof AD - 1, f->ct, f->tag, &err);
}

static int open_(fixture *f, const uint8_t *ad, size_t ad_len)
{
    qk_err err;
    memset(f->out, 0xee, LEN);
    return qk_relay_open(f->ct, LEN, f->tag, &f->hk, ad, ad_len, f->out, &err);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void test_round_trip(void)
{
    fixture f;
    setup(&f);
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    /* the ciphertext is the key XOR the pad, byte for byte */
    for (size_t i = 0; i < LEN; i++)
        CU_ASSERT_EQUAL(f.ct[i], f.key[i] ^ f.hk.pad[i]);
    CU_ASSERT_EQUAL_FATAL(open_(&f, AD, sizeof AD - 1), 0);
    CU_ASSERT_EQUAL(memcmp(f.out, f.key, LEN), 0);
    /* in place, both ways */
    uint8_t buf[LEN];
    memcpy(buf, f.key, LEN);
    qk_err err;
    uint8_t tag[QK_RELAY_TAG_LEN];
    CU_ASSERT_EQUAL_FATAL(qk_relay_seal(buf, LEN, &f.hk, AD, sizeof AD - 1, buf, tag, &err), 0);
    CU_ASSERT_EQUAL(memcmp(buf, f.ct, LEN), 0);
    CU_ASSERT_EQUAL(memcmp(tag, f.tag, QK_RELAY_TAG_LEN), 0);
    CU_ASSERT_EQUAL_FATAL(qk_relay_open(buf, LEN, tag, &f.hk, AD, sizeof AD - 1, buf, &err), 0);
    CU_ASSERT_EQUAL(memcmp(buf, f.key, LEN), 0);
    /* no associated data at all */
    CU_ASSERT_EQUAL(qk_relay_seal(f.key, LEN, &f.hk, NULL, 0, f.ct, f.tag, &err), 0);
    CU_ASSERT_EQUAL(open_(&f, NULL, 0), 0);
    CU_ASSERT_EQUAL(memcmp(f.out, f.key, LEN), 0);
}

static void test_flipped_bits(void)
{
    fixture f;
    setup(&f);
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    uint8_t ad[sizeof AD - 1];
    memcpy(ad, AD, sizeof ad);
    /* every bit of the ciphertext */
    for (size_t i = 0; i < LEN * 8; i++) {
        f.ct[i / 8] ^= (uint8_t)(1u << (i % 8));
        CU_ASSERT_EQUAL(open_(&f, ad, sizeof ad), QK_EMISMATCH);
        CU_ASSERT(all_zero(f.out, LEN)); /* nothing decrypted, output wiped */
        f.ct[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* every bit of the tag */
    for (size_t i = 0; i < QK_RELAY_TAG_LEN * 8; i++) {
        f.tag[i / 8] ^= (uint8_t)(1u << (i % 8));
        CU_ASSERT_EQUAL(open_(&f, ad, sizeof ad), QK_EMISMATCH);
        f.tag[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* every bit of the associated data, and its length */
    for (size_t i = 0; i < sizeof ad * 8; i++) {
        ad[i / 8] ^= (uint8_t)(1u << (i % 8));
        CU_ASSERT_EQUAL(open_(&f, ad, sizeof ad), QK_EMISMATCH);
        ad[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    CU_ASSERT_EQUAL(open_(&f, ad, sizeof ad - 1), QK_EMISMATCH);
    /* the data moved into the associated data is another message (the lengths are MACed) */
    CU_ASSERT_EQUAL(open_(&f, ad, sizeof ad), 0);
}

static void test_wrong_hop_key(void)
{
    fixture f;
    setup(&f);
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    /* the right MAC key with a pad one byte further on: the tag covers the pad, so the open is
     * refused and nothing is decrypted */
    f.hk.pad = f.material + QK_RELAY_MAC_KEY_LEN + 1;
    CU_ASSERT_EQUAL(open_(&f, AD, sizeof AD - 1), QK_EMISMATCH);
    CU_ASSERT(all_zero(f.out, LEN));
    /* one bit of the pad flipped */
    setup(&f);
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    f.material[QK_RELAY_MAC_KEY_LEN + LEN - 1] ^= 0x80;
    CU_ASSERT_EQUAL(open_(&f, AD, sizeof AD - 1), QK_EMISMATCH);
    CU_ASSERT(all_zero(f.out, LEN));
    /* the right pad with a wrong MAC key */
    setup(&f);
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    f.material[0] ^= 0x01;
    CU_ASSERT_EQUAL(open_(&f, AD, sizeof AD - 1), QK_EMISMATCH);
    /* both taken one range further on in the link's key (a hop out of step) */
    setup(&f);
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    f.hk.mac_key = f.material + 8;
    f.hk.pad = f.material + 8 + QK_RELAY_MAC_KEY_LEN;
    CU_ASSERT_EQUAL(open_(&f, AD, sizeof AD - 1), QK_EMISMATCH);
    CU_ASSERT(all_zero(f.out, LEN));
}

static void test_lengths_refused(void)
{
    fixture f;
    setup(&f);
    qk_err err;
    static uint8_t big[QK_RELAY_DATA_MAX + 1], pad[QK_RELAY_DATA_MAX + 1], ad[QK_RELAY_AD_MAX + 1];
    uint8_t mk[QK_RELAY_MAC_KEY_LEN] = {1}, tag[QK_RELAY_TAG_LEN];
    qk_relay_hop_key hk = {.pad = pad, .pad_len = QK_RELAY_DATA_MAX, .mac_key = mk};
    /* the largest data and associated data pass */
    CU_ASSERT_EQUAL(qk_relay_seal(big, QK_RELAY_DATA_MAX, &hk, ad, QK_RELAY_AD_MAX, big, tag, &err),
                    0);
    CU_ASSERT_EQUAL(qk_relay_open(big, QK_RELAY_DATA_MAX, tag, &hk, ad, QK_RELAY_AD_MAX, big, &err),
                    0);
    /* one more byte of either does not */
    hk.pad_len = QK_RELAY_DATA_MAX + 1;
    CU_ASSERT_EQUAL(qk_relay_seal(big, QK_RELAY_DATA_MAX + 1, &hk, ad, 1, big, tag, &err),
                    QK_EINVAL);
    hk.pad_len = QK_RELAY_DATA_MAX;
    CU_ASSERT_EQUAL(
        qk_relay_seal(big, QK_RELAY_DATA_MAX, &hk, ad, QK_RELAY_AD_MAX + 1, big, tag, &err),
        QK_EINVAL);
    CU_ASSERT_EQUAL(
        qk_relay_open(big, QK_RELAY_DATA_MAX, tag, &hk, ad, QK_RELAY_AD_MAX + 1, big, &err),
        QK_EINVAL);
    /* empty data, a pad shorter or longer than the data, missing buffers */
    CU_ASSERT_EQUAL(qk_relay_seal(f.key, 0, &f.hk, AD, 1, f.ct, f.tag, &err), QK_EINVAL);
    f.hk.pad_len = LEN - 1;
    CU_ASSERT_EQUAL(seal(&f), QK_EINVAL);
    CU_ASSERT_EQUAL(open_(&f, AD, sizeof AD - 1), QK_EINVAL);
    f.hk.pad_len = LEN + 1;
    CU_ASSERT_EQUAL(seal(&f), QK_EINVAL);
    f.hk.pad_len = LEN;
    CU_ASSERT_EQUAL(qk_relay_seal(f.key, LEN, &f.hk, NULL, 4, f.ct, f.tag, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_relay_seal(f.key, LEN, NULL, AD, 4, f.ct, f.tag, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_relay_seal(NULL, LEN, &f.hk, AD, 4, f.ct, f.tag, &err), QK_EINVAL);
    CU_ASSERT(err.msg[0] != '\0');
}

static void test_overlap_refused(void)
{
    fixture f;
    setup(&f);
    qk_err err;
    /* the pad runs into the MAC key, by one byte, from either side */
    f.hk.pad = f.material + QK_RELAY_MAC_KEY_LEN - 1;
    CU_ASSERT_EQUAL(seal(&f), QK_EINVAL);
    f.hk.mac_key = f.material + 40;
    f.hk.pad = f.material;
    CU_ASSERT_EQUAL(seal(&f), QK_EINVAL);
    CU_ASSERT_EQUAL(open_(&f, AD, sizeof AD - 1), QK_EINVAL);
    /* the same bytes as both */
    f.hk.pad = f.hk.mac_key;
    CU_ASSERT_EQUAL(seal(&f), QK_EINVAL);
    /* adjacent is fine: the MAC key right before or right after the pad */
    f.hk.mac_key = f.material;
    f.hk.pad = f.material + QK_RELAY_MAC_KEY_LEN;
    CU_ASSERT_EQUAL(seal(&f), 0);
    f.hk.pad = f.material;
    f.hk.mac_key = f.material + LEN;
    CU_ASSERT_EQUAL(seal(&f), 0);
    /* the output over the pad, over the MAC key, the tag over the pad, partial in/out overlap */
    setup(&f);
    CU_ASSERT_EQUAL(
        qk_relay_seal(f.key, LEN, &f.hk, AD, 4, f.material + QK_RELAY_MAC_KEY_LEN, f.tag, &err),
        QK_EINVAL);
    CU_ASSERT_EQUAL(qk_relay_seal(f.key, LEN, &f.hk, AD, 4, f.material, f.tag, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(
        qk_relay_seal(f.key, LEN, &f.hk, AD, 4, f.ct, f.material + QK_RELAY_MAC_KEY_LEN, &err),
        QK_EINVAL);
    uint8_t buf[LEN + 8];
    memcpy(buf, f.key, LEN);
    CU_ASSERT_EQUAL(qk_relay_seal(buf, LEN, &f.hk, AD, 4, buf + 8, f.tag, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_relay_open(buf, LEN, f.tag, &f.hk, AD, 4, buf + 8, &err), QK_EINVAL);
    /* a refusal writes nothing: not the output, not the tag */
    uint8_t ct[LEN], tag[QK_RELAY_TAG_LEN];
    memset(ct, 0x77, sizeof ct);
    memset(tag, 0x66, sizeof tag);
    f.hk.pad_len = LEN - 1;
    CU_ASSERT_EQUAL(qk_relay_seal(f.key, LEN, &f.hk, AD, 4, ct, tag, &err), QK_EINVAL);
    f.hk.pad_len = LEN;
    for (size_t i = 0; i < LEN; i++)
        CU_ASSERT_EQUAL(ct[i], 0x77);
    for (size_t i = 0; i < QK_RELAY_TAG_LEN; i++)
        CU_ASSERT_EQUAL(tag[i], 0x66);
    /* nothing of the hop key was touched by the refusals */
    fixture g;
    setup(&g);
    CU_ASSERT_EQUAL(memcmp(f.material, g.material, sizeof f.material), 0);
}

/* RFC 8439 section 2.5.2: "Cryptographic Forum Research Group" under the key below gives the
 * tag a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9. */
static void test_poly1305_kat(void)
{
    static const uint8_t key[32] = {0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33,
                                    0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5, 0x06, 0xa8,
                                    0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd,
                                    0x4a, 0xbf, 0xf6, 0xaf, 0x41, 0x49, 0xf5, 0x1b};
    static const char msg[] = "Cryptographic Forum Research Group";
    static const uint8_t want[16] = {0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6,
                                     0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01, 0x27, 0xa9};
    uint8_t tag[16];
    qk_relay_poly1305(key, (const uint8_t *)msg, sizeof msg - 1, tag);
    CU_ASSERT_EQUAL(memcmp(tag, want, 16), 0);
}

/* The tag of seal is Poly1305 over AD | pad16 | ct | pad16 | pad | pad16 | le64(|AD|) |
 * le64(|ct|) (relay_crypto.h, after RFC 8439 section 2.8), computed here by hand. */
static void test_mac_layout(void)
{
    fixture f;
    setup(&f);
    const size_t ad_len = sizeof AD - 1; /* 33: padded with 15 zeros; LEN 48: no padding */
    CU_ASSERT_EQUAL_FATAL(seal(&f), 0);
    uint8_t buf[256] = {0}, tag[16];
    size_t n = 0;
    memcpy(buf, AD, ad_len);
    n = (ad_len + 15) / 16 * 16;
    memcpy(buf + n, f.ct, LEN);
    n += (LEN + 15) / 16 * 16;
    memcpy(buf + n, f.hk.pad, LEN);
    n += (LEN + 15) / 16 * 16;
    buf[n] = (uint8_t)ad_len;
    buf[n + 8] = (uint8_t)LEN;
    n += 16;
    qk_relay_poly1305(f.hk.mac_key, buf, n, tag);
    CU_ASSERT_EQUAL(memcmp(tag, f.tag, 16), 0);
}

int suite_relay_crypto(void)
{
    CU_pSuite s = CU_add_suite("relay_crypto", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "seal and open round trip", test_round_trip) ||
        !CU_add_test(s, "a flipped bit in ciphertext, tag or AD is refused", test_flipped_bits) ||
        !CU_add_test(s, "a wrong hop key is refused", test_wrong_hop_key) ||
        !CU_add_test(s, "lengths refused", test_lengths_refused) ||
        !CU_add_test(s, "pad, MAC key and output may not overlap", test_overlap_refused) ||
        !CU_add_test(s, "Poly1305 known answer (RFC 8439 2.5.2)", test_poly1305_kat) ||
        !CU_add_test(s, "tag input laid out as RFC 8439 2.8", test_mac_layout))
        return -1;
    return 0;
}
