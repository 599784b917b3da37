/* codec.c - hex, strict base64 (RFC 4648 section 4) and UUID v4. The conversions of key bytes
 * are constant-time: no table lookup or branch indexed by a secret byte. Hex and base64
 * decoding go through libsodium's constant-time codecs (sodium_bin2hex, sodium_hex2bin,
 * sodium_base642bin, see libsodium's "Helpers" documentation), with the strict rules of this
 * file checked around them; base64 encoding, the bulk of an ETSI key container (ETSI GS QKD
 * 014 clause 6.2: every key in base64), is done here with the same branch-free arithmetic
 * inlined over whole 3-byte groups (sodium_bin2base64 calls a function per character).
 * UUIDs are public (key and request IDs, printed in logs and sent in the clear), so their
 * codec below uses plain table lookups: a bulk request parses and prints hundreds of them,
 * and libsodium's constant-time hex was ~3 % of the KMEs' CPU in the bulk benchmark cell. */
#include "codec.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "public_rand.h"
#include "secbuf.h"

size_t qk_hex_encode(const uint8_t *in, size_t n, char *out, size_t out_cap)
{
    /* sodium_bin2hex aborts (sodium_misuse) when the buffer is short: check first. */
    if (!out || n > (SIZE_MAX - 1) / 2 || out_cap < 2 * n + 1 || (n && !in))
        return 0;
    (void)sodium_bin2hex(out, 2 * n + 1, in, n);
    return 2 * n;
}

int qk_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t out_cap, size_t *outlen)
{
    if (outlen)
        *outlen = 0;
    if (!outlen || (inlen && (!in || !out)) || inlen % 2 != 0 || inlen / 2 > out_cap)
        return -1;
    if (inlen == 0)
        return 0;
    /* ignore = NULL: no separators or whitespace; the end pointer must reach the end (an
     * invalid digit stops the decoder early without an error). */
    const char *end = NULL;
    size_t n = 0;
    if (sodium_hex2bin(out, out_cap, in, inlen, NULL, &n, &end) != 0 || end != in + inlen ||
        n != inlen / 2) {
        qk_wipe(out, inlen / 2); /* the output may be secret: leave nothing half-decoded */
        return -1;
    }
    *outlen = n;
    return 0;
}

size_t qk_base64_encoded_len(size_t n)
{
    if (n > SIZE_MAX / 4 * 3 - 3)
        return 0;
    return (n + 2) / 3 * 4;
}

/* The RFC 4648 section 4 character of a 6-bit value x, without a branch or a table: 'A' + x,
 * moved by +6 past 25 ('a'), -75 past 51 ('0'), -15 past 61 ('+') and +3 past 62 ('/'). Each
 * (k - x) >> 8 is all ones exactly when x > k (x <= 63: the subtraction wraps). */
static inline char b64_char(uint32_t x)
{
    uint32_t c = x + 'A';
    c += ((25u - x) >> 8) & 6u;
    c -= ((51u - x) >> 8) & 75u;
    c -= ((61u - x) >> 8) & 15u;
    c += ((62u - x) >> 8) & 3u;
    return (char)c;
}

/* 48 bytes into 64 characters: the 6-bit values first, then the same mapping as b64_char on
 * byte lanes (masks from comparisons, no branch): a fixed-length loop the compiler turns into
 * vector code, ~6x faster than a call per character. */
enum { B64_IN = 48, B64_OUT = 64 };
static void b64_block(const uint8_t *in, char *out)
{
    uint8_t t[B64_OUT];
    for (int g = 0; g < B64_IN / 3; g++) {
        const uint8_t *p = in + 3 * g;
        t[4 * g] = (uint8_t)(p[0] >> 2);
        t[4 * g + 1] = (uint8_t)(((p[0] & 3u) << 4) | (p[1] >> 4));
        t[4 * g + 2] = (uint8_t)(((p[1] & 15u) << 2) | (p[2] >> 6));
        t[4 * g + 3] = (uint8_t)(p[2] & 63u);
    }
    for (int j = 0; j < B64_OUT; j++) {
        uint8_t x = t[j];
        uint8_t c = (uint8_t)(x + 'A');
        c = (uint8_t)(c + ((uint8_t) - (uint8_t)(x > 25) & 6u));
        c = (uint8_t)(c - ((uint8_t) - (uint8_t)(x > 51) & 75u));
        c = (uint8_t)(c - ((uint8_t) - (uint8_t)(x > 61) & 15u));
        c = (uint8_t)(c + ((uint8_t) - (uint8_t)(x > 62) & 3u));
        out[j] = (char)c;
    }
    sodium_memzero(t, sizeof t); /* the 6-bit values of key bytes */
}

size_t qk_base64_encode(const uint8_t *in, size_t n, char *out, size_t out_cap)
{
    size_t need = qk_base64_encoded_len(n);
    if (!out || (n && (!in || need == 0)) || out_cap < need + 1)
        return 0;
    size_t i = 0, o = 0;
    for (; n - i >= B64_IN; i += B64_IN, o += B64_OUT)
        b64_block(in + i, out + o);
    for (; n - i >= 3; i += 3, o += 4) {
        uint32_t w = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o] = b64_char(w >> 18);
        out[o + 1] = b64_char((w >> 12) & 63u);
        out[o + 2] = b64_char((w >> 6) & 63u);
        out[o + 3] = b64_char(w & 63u);
    }
    if (n - i) { /* 1 or 2 bytes left: "=" padding (the count is public, the bytes are not) */
        uint32_t w = (uint32_t)in[i] << 16;
        if (n - i == 2)
            w |= (uint32_t)in[i + 1] << 8;
        out[o] = b64_char(w >> 18);
        out[o + 1] = b64_char((w >> 12) & 63u);
        out[o + 2] = n - i == 2 ? b64_char((w >> 6) & 63u) : '=';
        out[o + 3] = '=';
        o += 4;
    }
    out[o] = '\0';
    return need;
}

int qk_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t out_cap, size_t *outlen)
{
    if (outlen)
        *outlen = 0;
    if (!outlen || (inlen && (!in || !out)) || inlen % 4 != 0)
        return -1;
    if (inlen == 0)
        return 0;
    /* VARIANT_ORIGINAL requires exactly the canonical '=' padding and rejects non-zero pad
     * bits; ignore = NULL rejects whitespace; the end pointer must reach the end of the input
     * (padding in the middle or any invalid character stops the decoder there). */
    const char *end = NULL;
    size_t n = 0;
    if (sodium_base642bin(out, out_cap, in, inlen, NULL, &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != in + inlen) {
        size_t max = inlen / 4 * 3;
        qk_wipe(out, max < out_cap ? max : out_cap);
        return -1;
    }
    *outlen = n;
    return 0;
}

void qk_uuid_v4(qk_uuid *u)
{
    qk_random_public(u->b, sizeof u->b);
    u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* version 4 */
    u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void qk_uuid_v7(qk_uuid *u)
{
    struct timespec ts;
    uint64_t ms = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec >= 0)
        ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    qk_random_public(u->b, sizeof u->b);
    for (int i = 0; i < 6; i++) /* unix_ts_ms, big-endian (RFC 9562 section 5.7) */
        u->b[i] = (uint8_t)(ms >> (40 - 8 * i));
    u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x70); /* version 7 */
    u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80); /* variant 10 */
}

/* ---- UUIDs: public, so plain lookups (see the top of this file) ----------------------- */

static const char pub_digits[] = "0123456789abcdef";

/* The value of a hex digit (either case), or -1. */
static int pub_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* n bytes as 2n lower-case digits (no terminator). */
static void pub_hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = pub_digits[in[i] >> 4];
        out[2 * i + 1] = pub_digits[in[i] & 0x0f];
    }
}

/* 2n digits into n bytes: 0, or -1 at the first character that is not a hex digit. */
static int pub_unhex(const char *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = pub_nibble(in[2 * i]), lo = pub_nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void qk_uuid_format_hex(const qk_uuid *u, char out[QK_UUID_HEX_LEN + 1])
{
    pub_hex(u->b, sizeof u->b, out);
    out[QK_UUID_HEX_LEN] = '\0';
}

/* The 8-4-4-4-12 groups of the hyphenated form, in bytes (RFC 4122 section 3). */
static const size_t uuid_groups[5] = {4, 2, 2, 2, 6};

void qk_uuid_format(const qk_uuid *u, char out[QK_UUID_STR_LEN + 1])
{
    size_t o = 0, b = 0;
    for (size_t g = 0; g < 5; g++) {
        if (g)
            out[o++] = '-';
        pub_hex(u->b + b, uuid_groups[g], out + o);
        o += 2 * uuid_groups[g];
        b += uuid_groups[g];
    }
    out[o] = '\0';
}

int qk_uuid_parse_hex(const char *s, size_t len, qk_uuid *u)
{
    qk_uuid tmp;
    if (!s || !u || len != QK_UUID_HEX_LEN || pub_unhex(s, sizeof tmp.b, tmp.b) != 0)
        return -1;
    *u = tmp;
    return 0;
}

int qk_uuid_parse(const char *s, size_t len, qk_uuid *u)
{
    if (!s || !u || len != QK_UUID_STR_LEN)
        return -1;
    qk_uuid tmp;
    size_t i = 0, b = 0;
    for (size_t g = 0; g < 5; g++) {
        if (g && s[i++] != '-')
            return -1;
        if (pub_unhex(s + i, uuid_groups[g], tmp.b + b) != 0)
            return -1;
        i += 2 * uuid_groups[g];
        b += uuid_groups[g];
    }
    *u = tmp;
    return 0;
}

int qk_uuid_parse_any(const char *s, size_t len, qk_uuid *u)
{
    if (len == QK_UUID_STR_LEN)
        return qk_uuid_parse(s, len, u);
    if (len == QK_UUID_HEX_LEN)
        return qk_uuid_parse_hex(s, len, u);
    return -1;
}

bool qk_uuid_is_v4(const qk_uuid *u)
{
    return (u->b[6] >> 4) == 4 && (u->b[8] & 0xc0) == 0x80;
}
