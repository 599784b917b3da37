/* relay_crypto.h - one hop of trusted-node key relay (docs/adr/0004-key-relay.md): the
 * end-to-end key travels one-time-pad encrypted with the hop's QKD key (XOR, each pad byte used
 * once; Vernam 1926, Shannon 1949) and authenticated with a one-time Poly1305 MAC whose 32-byte
 * key also comes from that link's QKD key (Wegman and Carter 1981, "New hash functions and their
 * use in authentication and set equality", JCSS 22(3); Poly1305: RFC 8439 section 2.5). The tag
 * covers the associated data, the ciphertext and the pad itself, laid out after RFC 8439 section
 * 2.8 (each field zero-padded to 16 bytes, then the lengths of the AD and of the ciphertext as
 * 64-bit little-endian): AD | pad16 | ct | pad16 | pad | pad16 | le64(|AD|) | le64(|ct|). With
 * the pad inside, a receiver that took other pad bytes than the sender (a hop key out of step)
 * is refused before anything is decrypted, instead of delivering a wrong key. The tag reveals
 * nothing of what it covers: Poly1305 adds the one-time s (the key's second half) mod 2^128.
 *
 * Every length is bounded and checked before anything is written; the pad, the MAC key and the
 * output may not overlap one another (the output may be the input itself: in place). A refused
 * call writes nothing; a tag that does not verify leaves the output wiped. Nothing here logs. */
#ifndef QK_RELAY_CRYPTO_H
#define QK_RELAY_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"

#define QK_RELAY_MAC_KEY_LEN 32     /* Poly1305 one-time key: r || s (RFC 8439 section 2.5) */
#define QK_RELAY_TAG_LEN     16     /* Poly1305 tag */
#define QK_RELAY_DATA_MAX    65536u /* end-to-end key bytes in one relayed request */
#define QK_RELAY_AD_MAX      32768u /* associated data: the largest relay message needs ~17.2 KiB */

/* The key of one hop, all taken from that hop's link key material and used once:
 * pad[0..pad_len) XORs the data (pad_len must equal the data length), mac_key authenticates. */
typedef struct {
    const uint8_t *pad;
    size_t pad_len;
    const uint8_t *mac_key; /* QK_RELAY_MAC_KEY_LEN bytes */
} qk_relay_hop_key;

/* ct[0..len) = key ^ pad, tag = Poly1305(mac_key, the layout above). ct may equal key.
 * QK_EINVAL: len not 1..QK_RELAY_DATA_MAX, pad_len != len, ad_len > QK_RELAY_AD_MAX, a NULL
 * pointer with a non-zero length, or overlapping pad / MAC key / output (nothing written). */
int qk_relay_seal(const uint8_t *key, size_t len, const qk_relay_hop_key *hk, const uint8_t *ad,
                  size_t ad_len, uint8_t *ct, uint8_t tag[QK_RELAY_TAG_LEN], qk_err *err);

/* Verify tag over (ad, ct) in constant time (crypto_verify_16) before anything is decrypted,
 * then key_out[0..len) = ct ^ pad (key_out may equal ct). QK_EMISMATCH when the tag is wrong
 * (nothing decrypted; key_out wiped unless it is ct); QK_EINVAL as for seal. */
int qk_relay_open(const uint8_t *ct, size_t len, const uint8_t tag[QK_RELAY_TAG_LEN],
                  const qk_relay_hop_key *hk, const uint8_t *ad, size_t ad_len, uint8_t *key_out,
                  qk_err *err);

/* Poly1305 of msg[0..len) with a one-time key (RFC 8439 section 2.5; libsodium's
 * crypto_onetimeauth_poly1305), for the known-answer test of RFC 8439 section 2.5.2. */
void qk_relay_poly1305(const uint8_t key[QK_RELAY_MAC_KEY_LEN], const uint8_t *msg, size_t len,
                       uint8_t tag[QK_RELAY_TAG_LEN]);

#endif
