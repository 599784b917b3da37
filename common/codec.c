/* codec.c - hex, strict base64 (RFC 4648 section 4) and UUID v4. */
#include "codec.h"

#include <stdint.h>
#include <string.h>

#include "secbuf.h"

static const char hex_digits[] = "0123456789abcdef";
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a hex digit (either case), or -1. */
static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Value of a base64 alphabet character, or -1 (also for '='). */
static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

size_t qk_hex_encode(const uint8_t *in, size_t n, char *out, size_t out_cap)
{
    if (!out || n > (SIZE_MAX - 1) / 2 || out_cap < 2 * n + 1 || (n && !in))
        return 0;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
    return 2 * n;
}

int qk_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t out_cap, size_t *outlen)
{
    if (outlen)
        *outlen = 0;
    if (!outlen || (inlen && (!in || !out)) || inlen % 2 != 0 || inlen / 2 > out_cap)
        return -1;
    for (size_t i = 0; i < inlen / 2; i++) {
        int hi = hex_val(in[2 * i]);
        int lo = hex_val(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            qk_wipe(out, i); /* the output may be secret: leave nothing half-decoded */
            return -1;
        }
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    *outlen = inlen / 2;
    return 0;
}

size_t qk_base64_encoded_len(size_t n)
{
    if (n > SIZE_MAX / 4 * 3 - 3)
        return 0;
    return (n + 2) / 3 * 4;
}

size_t qk_base64_encode(const uint8_t *in, size_t n, char *out, size_t out_cap)
{
    size_t need = qk_base64_encoded_len(n);
    if (!out || (n && (!in || need == 0)) || out_cap < need + 1)
        return 0;
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

int qk_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t out_cap, size_t *outlen)
{
    if (outlen)
        *outlen = 0;
    if (!outlen || (inlen && (!in || !out)) || inlen % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        bool last = i + 4 == inlen;
        int a = b64_val(in[i]);
        int b = b64_val(in[i + 1]);
        int c = b64_val(in[i + 2]);
        int d = b64_val(in[i + 3]);
        size_t nout = 3;
        if (a < 0 || b < 0)
            goto fail;
        if (c < 0 || d < 0) {
            /* Padding is allowed only in the final quantum: "xx==" or "xxx=". */
            if (!last || in[i + 3] != '=')
                goto fail;
            if (c < 0) {
                if (in[i + 2] != '=' || (b & 0x0f) != 0)
                    goto fail;
                nout = 1;
            } else {
                if ((c & 0x03) != 0)
                    goto fail;
                nout = 2;
            }
        }
        if (out_cap - o < nout)
            goto fail;
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)(c < 0 ? 0 : c) << 6) |
                     (uint32_t)(d < 0 ? 0 : d);
        out[o++] = (uint8_t)(v >> 16);
        if (nout > 1)
            out[o++] = (uint8_t)(v >> 8);
        if (nout > 2)
            out[o++] = (uint8_t)v;
    }
    *outlen = o;
    return 0;
fail:
    qk_wipe(out, o);
    return -1;
}

void qk_uuid_v4(qk_uuid *u)
{
    qk_random(u->b, sizeof u->b);
    u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* version 4 */
    u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void qk_uuid_format_hex(const qk_uuid *u, char out[QK_UUID_HEX_LEN + 1])
{
    (void)qk_hex_encode(u->b, sizeof u->b, out, QK_UUID_HEX_LEN + 1);
}

void qk_uuid_format(const qk_uuid *u, char out[QK_UUID_STR_LEN + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < sizeof u->b; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex_digits[u->b[i] >> 4];
        out[o++] = hex_digits[u->b[i] & 0x0f];
    }
    out[o] = '\0';
}

int qk_uuid_parse_hex(const char *s, size_t len, qk_uuid *u)
{
    size_t n = 0;
    if (!s || !u || len != QK_UUID_HEX_LEN)
        return -1;
    return qk_hex_decode(s, len, u->b, sizeof u->b, &n) == 0 && n == sizeof u->b ? 0 : -1;
}

int qk_uuid_parse(const char *s, size_t len, qk_uuid *u)
{
    if (!s || !u || len != QK_UUID_STR_LEN)
        return -1;
    qk_uuid tmp;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            i++;
            continue;
        }
        int hi = hex_val(s[i]);
        int lo = hex_val(s[i + 1]);
        if (hi < 0 || lo < 0 || o >= sizeof tmp.b)
            return -1;
        tmp.b[o++] = (uint8_t)((hi << 4) | lo);
        i += 2;
    }
    if (o != sizeof tmp.b)
        return -1;
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
