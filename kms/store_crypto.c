/* store_crypto.c - the key store's cryptography, no SQL:
 * - segment encryption: XChaCha20-Poly1305 (IETF) under the node master key, a random nonce
 *   per write, associated data = link | block_id | segment index;
 * - block digests and key checks: BLAKE2b-256 keyed with the block's
 *   verification key (its first QK_BLOCK_VKEY_LEN bytes) over a domain-separated message;
 * - the master-key check stored in the database.
 * Encoding: strings are a 2-byte big-endian length followed by their bytes; integers are
 * big-endian fixed width (block_id 8 bytes, offsets/lengths/indices 4 bytes, block len 8). */
#include "store_int.h"

#include <string.h>

#include "public_rand.h"

static const char DOM_CHECK[] = "qkd-kms check v1";
static const char DOM_BLOCK[] = "qkd-kms block v1";
static const char DOM_MASTER[] = "qkd-kms master key check v1";

static void be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Writes the length-prefixed link into p (room for 2 + QK_STORE_ID_MAX); returns bytes. The
 * caller has validated the link (<= QK_STORE_ID_MAX); longer input is truncated defensively. */
static size_t put_link(uint8_t *p, const char *link)
{
    size_t n = strnlen(link, QK_STORE_ID_MAX);
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, link, n);
    return 2 + n;
}

static size_t seg_ad(uint8_t ad[QS_AD_MAX], const char *link, uint64_t block_id, uint32_t idx)
{
    size_t n = put_link(ad, link);
    be64(ad + n, block_id);
    be32(ad + n + 8, idx);
    return n + 12;
}

void qs_seg_seal(const uint8_t *mk, const char *link, uint64_t block_id, uint32_t idx,
                 const uint8_t *plain, size_t n, uint8_t nonce[QS_NONCE_LEN], uint8_t *ct)
{
    uint8_t ad[QS_AD_MAX];
    size_t adlen = seg_ad(ad, link, block_id, idx);
    qk_random_public(nonce, QS_NONCE_LEN); /* unique, not secret: common/public_rand.h */
    /* cannot fail for n <= QK_SEG_BYTES */
    (void)crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, plain, n, ad, adlen, NULL, nonce,
                                                     mk);
}

int qs_seg_open(const uint8_t *mk, const char *link, uint64_t block_id, uint32_t idx,
                const uint8_t *nonce, const uint8_t *ct, size_t ctlen, uint8_t *plain)
{
    uint8_t ad[QS_AD_MAX];
    size_t adlen = seg_ad(ad, link, block_id, idx);
    if (ctlen < QS_TAG_LEN || ctlen - QS_TAG_LEN > QK_SEG_BYTES)
        return -1;
    return crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, ct, ctlen, ad, adlen,
                                                      nonce, mk) == 0
               ? 0
               : -1;
}

void qs_block_digest(const char *link, uint64_t block_id, const uint8_t *bytes, size_t len,
                     uint8_t out[QK_CHECK_LEN])
{
    crypto_generichash_state h;
    uint8_t hdr[2 + QK_STORE_ID_MAX + 16];
    size_t n = put_link(hdr, link);
    be64(hdr + n, block_id);
    be64(hdr + n + 8, (uint64_t)len);
    (void)crypto_generichash_init(&h, bytes, QK_BLOCK_VKEY_LEN, QK_CHECK_LEN);
    (void)crypto_generichash_update(&h, (const uint8_t *)DOM_BLOCK, sizeof DOM_BLOCK - 1);
    (void)crypto_generichash_update(&h, hdr, n + 16);
    (void)crypto_generichash_update(&h, bytes, len);
    (void)crypto_generichash_final(&h, out, QK_CHECK_LEN);
    sodium_memzero(&h, sizeof h);
}

/* H_vkey("qkd-kms check v1" | len16(link) | link | block_id u64 | off u32 | len u32 | ...):
 * the key checks. */
void qs_check_begin(crypto_generichash_state *h, const uint8_t vkey[QK_BLOCK_VKEY_LEN],
                    const char *link, uint64_t block_id, uint32_t off, uint32_t len)
{
    uint8_t hdr[2 + QK_STORE_ID_MAX + 16];
    size_t n = put_link(hdr, link);
    be64(hdr + n, block_id);
    be32(hdr + n + 8, off);
    be32(hdr + n + 12, len);
    (void)crypto_generichash_init(h, vkey, QK_BLOCK_VKEY_LEN, QK_CHECK_LEN);
    (void)crypto_generichash_update(h, (const uint8_t *)DOM_CHECK, sizeof DOM_CHECK - 1);
    (void)crypto_generichash_update(h, hdr, n + 16);
}

void qs_master_check(const uint8_t mk[QK_MASTER_KEY_LEN], uint8_t out[QK_CHECK_LEN])
{
    (void)crypto_generichash(out, QK_CHECK_LEN, (const uint8_t *)DOM_MASTER, sizeof DOM_MASTER - 1,
                             mk, QK_MASTER_KEY_LEN);
}
