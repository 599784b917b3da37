/* macsec_keys.h - the MACsec key hierarchy the bridge feeds: the IEEE 802.1X-2010 KDF
 * (section 6.2.1, AES-CMAC in SP 800-108 counter mode), ICK and KEK (section 9.3.3), the
 * mapping of a QKD key to a CAK and of a key ID to a CKN, the wpa_supplicant 2.10 MKA PSK
 * configuration, and `ip macsec` static-SAK batch commands. No I/O here. */
#ifndef QKB_MACSEC_KEYS_H
#define QKB_MACSEC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "qk_err.h"

#define MACSEC_CKN_MAX 32

/* out = first bits/8 octets of K(1)|K(2)|..., K(i) = AES-CMAC(key, i | label | 0x00 | ctx |
 * bits as 2 octets). key_len 16 or 32; bits 128 or 256. Returns 0 or QK_EINVAL/QK_EIO. */
int macsec_kdf(const uint8_t *key, size_t key_len, const char *label, const uint8_t *ctx,
               size_t ctx_len, unsigned bits, uint8_t *out);
/* ICK/KEK from CAK (16 or 32 octets) and CKN (1..32 octets; the first 16, zero-padded, are
 * the context). Output length = CAK length. */
int macsec_ick(const uint8_t *cak, size_t cak_len, const uint8_t *ckn, size_t ckn_len,
               uint8_t *out);
int macsec_kek(const uint8_t *cak, size_t cak_len, const uint8_t *ckn, size_t ckn_len,
               uint8_t *out);

/* CKN from a key ID: a UUID (hyphenated or 32 hex digits) gives its 16 octets; other hex
 * strings of 2..64 digits give their octets. Anything else is refused (QK_EINVAL). */
int macsec_ckn_from_key_id(const char *key_id, uint8_t ckn[MACSEC_CKN_MAX], size_t *ckn_len,
                           qk_err *err);
/* The CAK is the QKD key itself, which must be exactly cak_bits long (128 or 256). */
int macsec_cak_check(size_t key_len, unsigned cak_bits, qk_err *err);

typedef struct {
    const char *ctrl_interface; /* directory of the control socket */
    unsigned port;              /* macsec_port (1..65534) */
    unsigned priority;          /* mka_priority (0..255; lower = key server) */
    int integ_only;             /* macsec_integ_only */
    int replay_protect;
    unsigned replay_window;
} macsec_wpa_params;

/* Render the MKA PSK configuration into out (NUL-terminated). It holds the CAK: the caller
 * wipes out after use. Returns the length or a negative qk_status. */
long macsec_wpa_render(const macsec_wpa_params *p, const uint8_t *cak, size_t cak_len,
                       const uint8_t *ckn, size_t ckn_len, char *out, size_t cap, qk_err *err);

/* Static SAKs (no MKA): both directions' SAKs derived from the QKD key:
 *   SAK(tx_mac -> rx_mac) = KDF(key, "QKD-BRIDGE SAK", tx_mac | rx_mac | an, bits(key)).
 * The batch holds commands for `ip -batch -` (read on stdin, so keys never reach argv):
 * tx sa AN with our SAK, rx sc for the peer and rx sa AN with the peer's SAK, then
 * encodingsa AN. The KEYID of each SA is the first 16 octets of the CKN, hex. Returns length
 * or a negative qk_status; out holds keys: wipe it. */
typedef struct {
    const char *dev; /* macsec device, e.g. macsec0 */
    uint8_t local_mac[6], peer_mac[6];
    unsigned peer_port; /* SCI port of the peer */
    unsigned an;        /* association number 0..3 */
} macsec_static_params;
long macsec_static_batch(const macsec_static_params *p, const uint8_t *key, size_t key_len,
                         const uint8_t *ckn, size_t ckn_len, char *out, size_t cap, qk_err *err);
int macsec_parse_mac(const char *s, uint8_t mac[6]);

#endif
