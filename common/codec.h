/* codec.h - hex, base64 (RFC 4648 section 4, with padding) and UUID v4. Hex and base64 run in
 * time independent of the bytes' values (libsodium's constant-time codecs), so key bytes may
 * pass through them; lengths are not hidden. These functions never log. */
#ifndef QK_CODEC_H
#define QK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lower-case hex; writes 2n chars + NUL. Returns chars written (2n), or 0 if out_cap < 2n+1. */
size_t qk_hex_encode(const uint8_t *in, size_t n, char *out, size_t out_cap);
/* Case-insensitive; inlen must be even; returns 0 and *outlen, or -1 on bad char/odd
 * length/too small buffer. */
int qk_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t out_cap, size_t *outlen);

/* Encoded length of n bytes (without NUL). */
size_t qk_base64_encoded_len(size_t n);
/* Standard alphabet, '=' padding, no line breaks; writes NUL. Returns chars written or 0. */
size_t qk_base64_encode(const uint8_t *in, size_t n, char *out, size_t out_cap);
/* Strict: standard alphabet, length multiple of 4, correct padding, no whitespace, no
 * non-zero pad bits. Returns 0 or -1. */
int qk_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t out_cap, size_t *outlen);

#define QK_UUID_STR_LEN 36 /* xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx */
#define QK_UUID_HEX_LEN 32 /* the same without hyphens (SKIP keyId) */

typedef struct {
    uint8_t b[16];
} qk_uuid;

/* Random UUID version 4 (public_rand.h: a per-thread ChaCha20 generator keyed from the kernel;
 * qk_secure_init() must have run). */
void qk_uuid_v4(qk_uuid *u);
/* Time-ordered UUID version 7 (RFC 9562 section 5.7): 48 bits of Unix time in milliseconds,
 * then 74 random bits (public_rand.h). IDs made later sort later (to the millisecond), so
 * a B-tree index on them grows at its right edge. For internal IDs only (request IDs between
 * KMEs): it tells the time it was made. */
void qk_uuid_v7(qk_uuid *u);
/* Canonical lower-case 8-4-4-4-12 form; out must hold 37 bytes. */
void qk_uuid_format(const qk_uuid *u, char out[QK_UUID_STR_LEN + 1]);
/* 32 lower-case hex digits; out must hold 33 bytes. */
void qk_uuid_format_hex(const qk_uuid *u, char out[QK_UUID_HEX_LEN + 1]);
/* Parse the hyphenated form (case-insensitive). Any version/variant accepted. 0 or -1. */
int qk_uuid_parse(const char *s, size_t len, qk_uuid *u);
/* Parse 32 hex digits (case-insensitive). 0 or -1. */
int qk_uuid_parse_hex(const char *s, size_t len, qk_uuid *u);
/* Either form. 0 or -1. */
int qk_uuid_parse_any(const char *s, size_t len, qk_uuid *u);
bool qk_uuid_is_v4(const qk_uuid *u);

#endif
