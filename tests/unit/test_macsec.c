/* test_macsec.c - MACsec key hierarchy: IEEE 802.1X KDF ICK/KEK against the cross-checked
 * vectors of the integration notes (section 6.4), CKN/CAK mapping, wpa_supplicant text and
 * static-SAK batches. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "codec.h"
#include "macsec_keys.h"

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    CU_ASSERT_FATAL(qk_hex_decode(h, strlen(h), out, cap, &n) == 0);
    return n;
}

static void check_hex(const uint8_t *got, size_t n, const char *want)
{
    char hex[129];
    qk_hex_encode(got, n, hex, sizeof hex);
    CU_ASSERT_STRING_EQUAL(hex, want);
}

static void test_vectors(void)
{
    static const struct {
        const char *cak, *ckn, *ick, *kek;
    } v[] = {
        {"000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff",
         "d966283dddd5cf5c3146b895a040ba17", "583d2271ed2fb6988e253120b2d43dc7"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
         "00112233445566778899aabbccddeeff",
         "3a4362a89c4f47cdb7e3b9a2d63d4cc180976f76d631f8039a466b9a85e2f49c",
         "aec0d891692c8e6a01264baefd55995311bc9498a58508474caec3633e8639c5"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
         "6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435",
         "1f44c05f57b35bf41c49f4efb28cdcfac8b311db87a846578c616534b71d3c55",
         "7fcb8cd5daf8adce5679896e4cce74dba5484a9746d3bedc187c99138cdfdb95"},
        {"b03a140daa41af182c5112eb19892def7021da40e17d49d3399629fb9d56bd42",
         "8c399756a84748dba9ff33fcd9d1565d",
         "e884d5036be10113dd81436f8c6ffa7955e5d7dc8c04e93af5fb07725aeb8283",
         "c3df68e2e9250fa8ea15ec15a767a19125fa9ea849ca39e4c432ed492552eb48"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t cak[32], ckn[32], out[32];
        size_t cl = unhex(v[i].cak, cak, sizeof cak), nl = unhex(v[i].ckn, ckn, sizeof ckn);
        CU_ASSERT_EQUAL(macsec_ick(cak, cl, ckn, nl, out), 0);
        check_hex(out, cl, v[i].ick);
        CU_ASSERT_EQUAL(macsec_kek(cak, cl, ckn, nl, out), 0);
        check_hex(out, cl, v[i].kek);
    }
}

static void test_kdf_block_input(void)
{
    /* One block of case 1 equals a single AES-CMAC over the documented input; flipping the
     * label changes the output (the test can fail). */
    uint8_t cak[16], ctx[16], a[16], b[16];
    unhex("000102030405060708090a0b0c0d0e0f", cak, sizeof cak);
    unhex("00112233445566778899aabbccddeeff", ctx, sizeof ctx);
    CU_ASSERT_EQUAL(macsec_kdf(cak, 16, "IEEE8021 ICK", ctx, 16, 128, a), 0);
    CU_ASSERT_EQUAL(macsec_kdf(cak, 16, "IEEE8021 KEK", ctx, 16, 128, b), 0);
    CU_ASSERT(memcmp(a, b, 16) != 0);
    CU_ASSERT_NOT_EQUAL(macsec_kdf(cak, 15, "IEEE8021 ICK", ctx, 16, 128, a), 0);
    CU_ASSERT_NOT_EQUAL(macsec_kdf(cak, 16, "IEEE8021 ICK", ctx, 16, 192, a), 0);
    CU_ASSERT_NOT_EQUAL(macsec_ick(cak, 16, ctx, 0, a), 0);
    CU_ASSERT_NOT_EQUAL(macsec_ick(cak, 16, ctx, 33, a), 0);
}

static void test_ckn_mapping(void)
{
    uint8_t ckn[MACSEC_CKN_MAX];
    size_t n = 0;
    qk_err e;
    CU_ASSERT_EQUAL(macsec_ckn_from_key_id("8c399756-a847-48db-a9ff-33fcd9d1565d", ckn, &n, &e), 0);
    CU_ASSERT_EQUAL(n, 16);
    check_hex(ckn, n, "8c399756a84748dba9ff33fcd9d1565d");
    CU_ASSERT_EQUAL(macsec_ckn_from_key_id("8C399756A84748DBA9FF33FCD9D1565D", ckn, &n, &e), 0);
    CU_ASSERT_EQUAL(n, 16);
    check_hex(ckn, n, "8c399756a84748dba9ff33fcd9d1565d");
    CU_ASSERT_EQUAL(macsec_ckn_from_key_id("00", ckn, &n, &e), 0);
    CU_ASSERT_EQUAL(n, 1);
    char h64[65];
    memset(h64, 'a', 64);
    h64[64] = 0;
    CU_ASSERT_EQUAL(macsec_ckn_from_key_id(h64, ckn, &n, &e), 0);
    CU_ASSERT_EQUAL(n, 32);
    char h66[67];
    memset(h66, 'a', 66);
    h66[66] = 0;
    CU_ASSERT_NOT_EQUAL(macsec_ckn_from_key_id(h66, ckn, &n, &e), 0);
    CU_ASSERT_NOT_EQUAL(macsec_ckn_from_key_id("qkd-key-0001", ckn, &n, &e), 0);
    CU_ASSERT_NOT_EQUAL(macsec_ckn_from_key_id("abc", ckn, &n, &e), 0);
    CU_ASSERT_NOT_EQUAL(macsec_ckn_from_key_id("", ckn, &n, &e), 0);
    CU_ASSERT_EQUAL(macsec_cak_check(32, 256, &e), 0);
    CU_ASSERT_EQUAL(macsec_cak_check(16, 128, &e), 0);
    CU_ASSERT_NOT_EQUAL(macsec_cak_check(32, 128, &e), 0);
    CU_ASSERT_NOT_EQUAL(macsec_cak_check(24, 192, &e), 0);
}

static void test_wpa_render(void)
{
    uint8_t cak[32], ckn[16];
    unhex("b03a140daa41af182c5112eb19892def7021da40e17d49d3399629fb9d56bd42", cak, 32);
    unhex("8c399756a84748dba9ff33fcd9d1565d", ckn, 16);
    macsec_wpa_params p = {
        .ctrl_interface = "/run/qkd-bridge/wpa", .port = 1, .priority = 16, .replay_protect = 1};
    char out[2048];
    qk_err e;
    long n = macsec_wpa_render(&p, cak, 32, ckn, 16, out, sizeof out, &e);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_EQUAL((size_t)n, strlen(out));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        out, "\tmka_cak=b03a140daa41af182c5112eb19892def7021da40e17d49d3399629fb9d56bd42\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\tmka_ckn=8c399756a84748dba9ff33fcd9d1565d\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ctrl_interface=/run/qkd-bridge/wpa\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\tmka_priority=16\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "csindex"));
    CU_ASSERT_PTR_NULL(strstr(out, "offload"));
    CU_ASSERT(macsec_wpa_render(&p, cak, 32, ckn, 16, out, 100, &e) < 0);
    CU_ASSERT(macsec_wpa_render(&p, cak, 24, ckn, 16, out, sizeof out, &e) < 0);
    p.ctrl_interface = "/run/x\nnetwork={";
    CU_ASSERT(macsec_wpa_render(&p, cak, 32, ckn, 16, out, sizeof out, &e) < 0);
}

static void test_static_batch(void)
{
    uint8_t key[32], ckn[16];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    unhex("8c399756a84748dba9ff33fcd9d1565d", ckn, 16);
    macsec_static_params a = {.dev = "macsec0", .peer_port = 1, .an = 1};
    CU_ASSERT_EQUAL(macsec_parse_mac("02:00:00:00:00:01", a.local_mac), 0);
    CU_ASSERT_EQUAL(macsec_parse_mac("02:00:00:00:00:02", a.peer_mac), 0);
    CU_ASSERT_NOT_EQUAL(macsec_parse_mac("02:00:00:00:00:0g", a.peer_mac + 0), 0);
    CU_ASSERT_NOT_EQUAL(macsec_parse_mac("02:00:00:00:00:01x", a.local_mac + 0), 0);
    macsec_static_params b = a;
    memcpy(b.local_mac, a.peer_mac, 6);
    memcpy(b.peer_mac, a.local_mac, 6);
    char ba[1024], bb[1024];
    qk_err e;
    CU_ASSERT_FATAL(macsec_static_batch(&a, key, 32, ckn, 16, ba, sizeof ba, &e) > 0);
    CU_ASSERT_FATAL(macsec_static_batch(&b, key, 32, ckn, 16, bb, sizeof bb, &e) > 0);
    /* A's tx key is B's rx key for the same AN and vice versa. */
    char atx[65], brx[65];
    CU_ASSERT_FATAL(
        sscanf(strstr(ba, "tx sa 1 pn 1 on key "), "tx sa 1 pn 1 on key %*s %64s", atx) == 1);
    const char *rx = strstr(bb, "address 02:00:00:00:00:01 sa 1 pn 1 on key ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
    CU_ASSERT_FATAL(sscanf(rx, "address %*s sa 1 pn 1 on key %*s %64s", brx) == 1);
    CU_ASSERT_STRING_EQUAL(atx, brx);
    CU_ASSERT_PTR_NOT_NULL(strstr(ba, "key 8c399756a84748dba9ff33fcd9d1565d "));
    CU_ASSERT_PTR_NOT_NULL(strstr(ba, "rx port 1 address 02:00:00:00:00:02\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ba, "link set macsec0 type macsec encodingsa 1\n"));
    /* the QKD key itself never appears */
    char keyhex[65];
    qk_hex_encode(key, 32, keyhex, sizeof keyhex);
    CU_ASSERT_PTR_NULL(strstr(ba, keyhex));
    a.dev = "mac sec0";
    CU_ASSERT(macsec_static_batch(&a, key, 32, ckn, 16, ba, sizeof ba, &e) < 0);
    a.dev = "macsec0";
    a.an = 4;
    CU_ASSERT(macsec_static_batch(&a, key, 32, ckn, 16, ba, sizeof ba, &e) < 0);
}

int suite_macsec(void)
{
    CU_pSuite s = CU_add_suite("macsec", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "ICK/KEK vectors", test_vectors) ||
        !CU_add_test(s, "KDF arguments", test_kdf_block_input) ||
        !CU_add_test(s, "CKN/CAK mapping", test_ckn_mapping) ||
        !CU_add_test(s, "wpa_supplicant text", test_wpa_render) ||
        !CU_add_test(s, "static SAK batch", test_static_batch))
        return -1;
    return 0;
}
