/* test_codec.c - hex, strict base64 (RFC 4648 vectors) and UUID v4. */
#include <CUnit/CUnit.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"

static void test_base64_rfc4648_vectors(void)
{
    static const struct {
        const char *plain;
        const char *enc;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[32];
        size_t n = strlen(v[i].plain);
        CU_ASSERT_EQUAL(qk_base64_encoded_len(n), strlen(v[i].enc));
        CU_ASSERT_EQUAL(qk_base64_encode((const uint8_t *)v[i].plain, n, out, sizeof out),
                        strlen(v[i].enc));
        CU_ASSERT_STRING_EQUAL(out, v[i].enc);
        uint8_t dec[32];
        size_t dlen = 99;
        CU_ASSERT_EQUAL(qk_base64_decode(v[i].enc, strlen(v[i].enc), dec, sizeof dec, &dlen), 0);
        CU_ASSERT_EQUAL(dlen, n);
        CU_ASSERT(memcmp(dec, v[i].plain, n) == 0);
    }
}

static void test_base64_all_bytes_round_trip(void)
{
    uint8_t in[256];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(255 - i);
    for (size_t n = 0; n <= sizeof in; n += 17) {
        char enc[400];
        uint8_t dec[256];
        size_t dlen = 0;
        size_t el = qk_base64_encode(in, n, enc, sizeof enc);
        CU_ASSERT_EQUAL(el, qk_base64_encoded_len(n));
        CU_ASSERT_EQUAL(qk_base64_decode(enc, el, dec, sizeof dec, &dlen), 0);
        CU_ASSERT_EQUAL(dlen, n);
        CU_ASSERT(memcmp(in, dec, n) == 0);
    }
}

static int b64_dec(const char *s)
{
    uint8_t out[64];
    size_t n;
    return qk_base64_decode(s, strlen(s), out, sizeof out, &n);
}

static void test_base64_rejects(void)
{
    /* bad length */
    CU_ASSERT_EQUAL(b64_dec("Zg="), -1);
    CU_ASSERT_EQUAL(b64_dec("Zg"), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9vY"), -1);
    /* bad padding */
    CU_ASSERT_EQUAL(b64_dec("Z==="), -1);
    CU_ASSERT_EQUAL(b64_dec("===="), -1);
    CU_ASSERT_EQUAL(b64_dec("Zg=a"), -1);
    CU_ASSERT_EQUAL(b64_dec("Zg==Zm9v"), -1); /* padding in the middle */
    CU_ASSERT_EQUAL(b64_dec("Zm=v"), -1);
    /* bad characters: URL-safe alphabet, whitespace, NUL */
    CU_ASSERT_EQUAL(b64_dec("Zm9-"), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9_"), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9 "), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9v\nZm9v"), -1);
    uint8_t out[8];
    size_t n;
    CU_ASSERT_EQUAL(qk_base64_decode("Zm\0v", 4, out, sizeof out, &n), -1);
    /* non-zero pad bits: "Zh==" and "Zm9=" decode to the same bytes as "Zg==", "Zm8=" */
    CU_ASSERT_EQUAL(b64_dec("Zh=="), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9="), -1);
    CU_ASSERT_EQUAL(b64_dec("Zg=="), 0);
    CU_ASSERT_EQUAL(b64_dec("Zm8="), 0);
    /* output buffer too small */
    CU_ASSERT_EQUAL(qk_base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
    CU_ASSERT_EQUAL(qk_base64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
    CU_ASSERT_EQUAL(n, 6);
    /* encode buffer too small (needs the NUL) */
    char enc[9];
    CU_ASSERT_EQUAL(qk_base64_encode((const uint8_t *)"foobar", 6, enc, 8), 0);
    CU_ASSERT_EQUAL(qk_base64_encode((const uint8_t *)"foobar", 6, enc, 9), 8);
}

static void test_hex(void)
{
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    char out[13];
    CU_ASSERT_EQUAL(qk_hex_encode(in, sizeof in, out, sizeof out), 12);
    CU_ASSERT_STRING_EQUAL(out, "0001abcdefff");
    CU_ASSERT_EQUAL(qk_hex_encode(in, sizeof in, out, 12), 0); /* no room for NUL */

    uint8_t dec[8];
    size_t n = 0;
    CU_ASSERT_EQUAL(qk_hex_decode("0001ABCDefFF", 12, dec, sizeof dec, &n), 0);
    CU_ASSERT_EQUAL(n, 6);
    CU_ASSERT(memcmp(dec, in, 6) == 0);
    CU_ASSERT_EQUAL(qk_hex_decode("abc", 3, dec, sizeof dec, &n), -1); /* odd */
    CU_ASSERT_EQUAL(qk_hex_decode("zz", 2, dec, sizeof dec, &n), -1);  /* bad char */
    CU_ASSERT_EQUAL(qk_hex_decode("0g", 2, dec, sizeof dec, &n), -1);  /* bad char */
    CU_ASSERT_EQUAL(qk_hex_decode("0 ", 2, dec, sizeof dec, &n), -1);  /* space */
    CU_ASSERT_EQUAL(qk_hex_decode("001122", 6, dec, 2, &n), -1);       /* too small */
    CU_ASSERT_EQUAL(qk_hex_decode("", 0, dec, sizeof dec, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
}

/* UUIDv7 (RFC 9562 section 5.7): version 7, variant 10, the first 48 bits the Unix time in
 * ms (within 2 s of now), later IDs sort later, the rest random (two IDs differ). */
static void test_uuid_v7(void)
{
    struct timespec ts;
    CU_ASSERT_FATAL(clock_gettime(CLOCK_REALTIME, &ts) == 0);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    qk_uuid a, b;
    qk_uuid_v7(&a);
    struct timespec pause = {0, 3000000L};
    nanosleep(&pause, NULL);
    qk_uuid_v7(&b);
    CU_ASSERT_EQUAL(a.b[6] >> 4, 7);
    CU_ASSERT_EQUAL(a.b[8] >> 6, 2);
    CU_ASSERT_FALSE(qk_uuid_is_v4(&a));
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | a.b[i];
    CU_ASSERT(ms + 2000 >= now && ms <= now + 2000);
    CU_ASSERT(memcmp(a.b, b.b, 16) < 0); /* 3 ms later: sorts after */
    char s1[QK_UUID_STR_LEN + 1], s2[QK_UUID_STR_LEN + 1];
    qk_uuid_format(&a, s1);
    qk_uuid_format(&b, s2);
    CU_ASSERT(strcmp(s1, s2) < 0); /* and so does its text */
    qk_uuid c;
    CU_ASSERT_EQUAL(qk_uuid_parse(s1, strlen(s1), &c), 0);
    CU_ASSERT(memcmp(a.b, c.b, 16) == 0);
    qk_uuid d;
    qk_uuid_v7(&d);
    CU_ASSERT(memcmp(d.b + 6, b.b + 6, 10) != 0); /* random bits */
}

static void test_uuid_format_parse(void)
{
    qk_uuid u;
    CU_ASSERT_EQUAL(qk_uuid_parse("123E4567-E89B-12D3-A456-426614174000", 36, &u), 0);
    char s[QK_UUID_STR_LEN + 1];
    char h[QK_UUID_HEX_LEN + 1];
    qk_uuid_format(&u, s);
    CU_ASSERT_STRING_EQUAL(s, "123e4567-e89b-12d3-a456-426614174000"); /* canonical lower */
    qk_uuid_format_hex(&u, h);
    CU_ASSERT_STRING_EQUAL(h, "123e4567e89b12d3a456426614174000");
    CU_ASSERT_FALSE(qk_uuid_is_v4(&u)); /* version 1 */
    qk_uuid u2;
    CU_ASSERT_EQUAL(qk_uuid_parse_hex(h, strlen(h), &u2), 0);
    CU_ASSERT(memcmp(u.b, u2.b, 16) == 0);
    CU_ASSERT_EQUAL(qk_uuid_parse_any(s, strlen(s), &u2), 0);
    CU_ASSERT_EQUAL(qk_uuid_parse_any(h, strlen(h), &u2), 0);
    CU_ASSERT(memcmp(u.b, u2.b, 16) == 0);
    /* malformed */
    CU_ASSERT_EQUAL(qk_uuid_parse("123e4567e89b-12d3-a456-4266141740000", 36, &u2), -1);
    CU_ASSERT_EQUAL(qk_uuid_parse("123e4567-e89b-12d3-a456-42661417400", 35, &u2), -1);
    CU_ASSERT_EQUAL(qk_uuid_parse("123e4567-e89b-12d3-a456-42661417400g", 36, &u2), -1);
    CU_ASSERT_EQUAL(qk_uuid_parse("123e4567-e89b-12d3-a456_426614174000", 36, &u2), -1);
    CU_ASSERT_EQUAL(qk_uuid_parse_hex(s, strlen(s), &u2), -1);
    CU_ASSERT_EQUAL(qk_uuid_parse_any("1234", 4, &u2), -1);
    CU_ASSERT_EQUAL(qk_uuid_parse_any("", 0, &u2), -1);
}

/* The UUID codec (plain lookups) against the constant-time hex codec, byte by byte: every
 * byte value formats to the same two digits, and every character in every digit position of
 * both forms is accepted exactly when it is a hex digit (either case), with the same value. */
static void test_uuid_vs_hex(void)
{
    for (int v = 0; v < 256; v++) {
        qk_uuid u;
        memset(u.b, v, sizeof u.b);
        char s[QK_UUID_STR_LEN + 1], h[QK_UUID_HEX_LEN + 1], ref[3];
        qk_uuid_format(&u, s);
        qk_uuid_format_hex(&u, h);
        uint8_t byte = (uint8_t)v;
        CU_ASSERT_EQUAL_FATAL(qk_hex_encode(&byte, 1, ref, sizeof ref), 2);
        CU_ASSERT(strncmp(s, ref, 2) == 0 && strncmp(s + 34, ref, 2) == 0);
        CU_ASSERT(strncmp(h + 30, ref, 2) == 0);
        CU_ASSERT_EQUAL(strlen(h), QK_UUID_HEX_LEN);
    }
    static const char base[] = "00000000-0000-4000-8000-000000000000";
    static const int pos[] = {0, 7, 9, 12, 14, 19, 24, 35}; /* digits of every group */
    for (size_t p = 0; p < sizeof pos / sizeof pos[0]; p++) {
        for (int c = 0; c < 256; c++) {
            char s[QK_UUID_STR_LEN + 1];
            memcpy(s, base, sizeof s);
            s[pos[p]] = (char)c;
            uint8_t want = 0;
            size_t n = 0;
            char pair[2] = {(char)c, '0'};
            bool hex = qk_hex_decode(pair, 2, &want, 1, &n) == 0;
            qk_uuid u;
            memset(u.b, 0xee, sizeof u.b);
            int rc = qk_uuid_parse(s, QK_UUID_STR_LEN, &u);
            CU_ASSERT_EQUAL(rc, hex ? 0 : -1);
            if (rc == 0) {
                /* the digit's byte: hyphens before it shift the index */
                size_t digits =
                    (size_t)pos[p] - (pos[p] > 8) - (pos[p] > 13) - (pos[p] > 18) - (pos[p] > 23);
                CU_ASSERT_EQUAL(u.b[digits / 2] >> (digits % 2 ? 0 : 4) & 0x0f, want >> 4);
            } else {
                CU_ASSERT_EQUAL(u.b[0], 0xee); /* nothing written on failure */
            }
        }
    }
    for (int c = 0; c < 256; c++) {
        char h[QK_UUID_HEX_LEN + 1] = "0123456789abcdef0123456789ABCDEF";
        h[31] = (char)c;
        uint8_t want = 0;
        size_t n = 0;
        char pair[2] = {'0', (char)c}; /* want: c's value */
        bool hex = qk_hex_decode(pair, 2, &want, 1, &n) == 0;
        qk_uuid u;
        int rc = qk_uuid_parse_hex(h, QK_UUID_HEX_LEN, &u);
        CU_ASSERT_EQUAL(rc, hex ? 0 : -1);
        if (rc == 0)
            CU_ASSERT_EQUAL(u.b[15], 0xe0 | want); /* "E" then c */
    }
}

#define N_UUIDS 1000

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(qk_uuid));
}

static void test_uuid_v4_generation(void)
{
    qk_uuid *all = calloc(N_UUIDS, sizeof *all);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    for (int i = 0; i < N_UUIDS; i++) {
        qk_uuid_v4(&all[i]);
        CU_ASSERT(qk_uuid_is_v4(&all[i]));
        char s[QK_UUID_STR_LEN + 1];
        qk_uuid_format(&all[i], s);
        CU_ASSERT_EQUAL(strlen(s), QK_UUID_STR_LEN);
        CU_ASSERT_EQUAL(s[14], '4');
        CU_ASSERT(strchr("89ab", s[19]) != NULL);
        for (const char *p = s; *p; p++)
            CU_ASSERT(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        qk_uuid back;
        CU_ASSERT_EQUAL(qk_uuid_parse(s, strlen(s), &back), 0);
        CU_ASSERT(memcmp(back.b, all[i].b, 16) == 0);
    }
    qsort(all, N_UUIDS, sizeof *all, cmp_uuid);
    int dups = 0;
    for (int i = 1; i < N_UUIDS; i++)
        if (memcmp(&all[i - 1], &all[i], sizeof *all) == 0)
            dups++;
    CU_ASSERT_EQUAL(dups, 0);
    free(all);
}

/* Every byte value through hex and base64 against a reference computed here by arithmetic (the
 * codecs are libsodium's constant-time ones; this pins their output to RFC 4648 sections 4
 * and 8), and the failure paths that rely on the decoders' end pointer. */
static void test_codec_reference_all_bytes(void)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (unsigned v = 0; v < 256; v++) {
        uint8_t b[3] = {(uint8_t)v, (uint8_t)(255 - v), (uint8_t)(v * 7)};
        char hex[7], want_hex[7];
        snprintf(want_hex, sizeof want_hex, "%02x%02x%02x", b[0], b[1], b[2]);
        CU_ASSERT_EQUAL(qk_hex_encode(b, 3, hex, sizeof hex), 6);
        CU_ASSERT_STRING_EQUAL(hex, want_hex);
        char upper[7];
        snprintf(upper, sizeof upper, "%02X%02X%02X", b[0], b[1], b[2]);
        uint8_t back[3];
        size_t n = 0;
        CU_ASSERT_EQUAL(qk_hex_decode(upper, 6, back, sizeof back, &n), 0);
        CU_ASSERT(n == 3 && memcmp(back, b, 3) == 0);
        uint32_t w = ((uint32_t)b[0] << 16) | ((uint32_t)b[1] << 8) | b[2];
        char want_b64[5] = {b64[(w >> 18) & 63], b64[(w >> 12) & 63], b64[(w >> 6) & 63],
                            b64[w & 63], '\0'};
        char enc[5];
        CU_ASSERT_EQUAL(qk_base64_encode(b, 3, enc, sizeof enc), 4);
        CU_ASSERT_STRING_EQUAL(enc, want_b64);
        CU_ASSERT_EQUAL(qk_base64_decode(want_b64, 4, back, sizeof back, &n), 0);
        CU_ASSERT(n == 3 && memcmp(back, b, 3) == 0);
    }
}

/* The base64 encoder (branch-free, in codec.c) against libsodium's constant-time one on
 * random inputs of every length up to 200 bytes, padding included, and a short buffer. */
static void test_base64_vs_libsodium(void)
{
    uint8_t in[200];
    char got[280], want[280];
    for (size_t n = 0; n <= sizeof in; n++) {
        randombytes_buf(in, n);
        memset(got, 'x', sizeof got);
        CU_ASSERT_EQUAL(qk_base64_encode(in, n, got, sizeof got), qk_base64_encoded_len(n));
        (void)sodium_bin2base64(want, sizeof want, in, n, sodium_base64_VARIANT_ORIGINAL);
        CU_ASSERT_STRING_EQUAL(got, want);
        CU_ASSERT_EQUAL(qk_base64_encode(in, n, got, qk_base64_encoded_len(n)), 0);
    }
}

static void test_codec_strict_edges(void)
{
    uint8_t out[8];
    size_t n = 7;
    /* hex: separators, prefixes, an invalid digit after valid ones (the decoder stops there
     * without an error: only the end pointer tells), embedded NUL; nothing is left behind */
    memset(out, 0x5a, sizeof out);
    CU_ASSERT_EQUAL(qk_hex_decode("0011zz", 6, out, sizeof out, &n), -1);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT(out[0] == 0 && out[1] == 0 && out[2] == 0); /* wiped */
    CU_ASSERT_EQUAL(qk_hex_decode("00:1", 4, out, sizeof out, &n), -1);
    CU_ASSERT_EQUAL(qk_hex_decode("0x00", 4, out, sizeof out, &n), -1);
    CU_ASSERT_EQUAL(qk_hex_decode("00\0"
                                  "1",
                                  4, out, sizeof out, &n),
                    -1);
    CU_ASSERT_EQUAL(qk_hex_decode("001122", 6, out, 3, &n), 0); /* exactly fits */
    CU_ASSERT_EQUAL(n, 3);
    /* base64: extra or missing padding, padding first, trailing newline, an invalid character
     * after valid quanta; a failed decode leaves nothing behind */
    CU_ASSERT_EQUAL(b64_dec("Zm8=="), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9vZm8"), -1);
    CU_ASSERT_EQUAL(b64_dec("=Zm8"), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm8=\n"), -1);
    CU_ASSERT_EQUAL(b64_dec("Zm9vZm9vZ.=="), -1);
    memset(out, 0x5a, sizeof out);
    CU_ASSERT_EQUAL(qk_base64_decode("Zm9vZm9v", 8, out, sizeof out, &n), 0);
    CU_ASSERT_EQUAL(qk_base64_decode("Zm9vZm9!", 8, out, sizeof out, &n), -1);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT(out[0] == 0 && out[1] == 0 && out[2] == 0);
    /* a short encode buffer is refused, never handed to libsodium (which would abort) */
    char hex[4];
    CU_ASSERT_EQUAL(qk_hex_encode((const uint8_t *)"ab", 2, hex, 4), 0);
    CU_ASSERT_EQUAL(qk_hex_encode(NULL, 0, hex, 1), 0);
    CU_ASSERT_STRING_EQUAL(hex, "");
}

int suite_codec(void)
{
    CU_pSuite s = CU_add_suite("codec", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "base64 RFC 4648 vectors", test_base64_rfc4648_vectors) ||
        !CU_add_test(s, "base64 round trip", test_base64_all_bytes_round_trip) ||
        !CU_add_test(s, "base64 strict rejects", test_base64_rejects) ||
        !CU_add_test(s, "hex", test_hex) ||
        !CU_add_test(s, "hex and base64 of every byte vs reference",
                     test_codec_reference_all_bytes) ||
        !CU_add_test(s, "hex and base64 strict edges", test_codec_strict_edges) ||
        !CU_add_test(s, "base64 encoder vs libsodium", test_base64_vs_libsodium) ||
        !CU_add_test(s, "uuid format/parse", test_uuid_format_parse) ||
        !CU_add_test(s, "uuid codec vs the hex codec, every byte", test_uuid_vs_hex) ||
        !CU_add_test(s, "uuid v7: time-ordered", test_uuid_v7) ||
        !CU_add_test(s, "uuid v4 generation", test_uuid_v4_generation))
        return -1;
    return 0;
}
