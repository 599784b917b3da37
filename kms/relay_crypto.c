/* relay_crypto.c - seal and open of one relay hop (relay_crypto.h). */
#include "relay_crypto.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "secbuf.h"

/* Whether [a, a+an) and [b, b+bn) share a byte (addresses compared as integers: the buffers
 * may belong to different objects, where C does not order pointers). */
static bool overlap(const void *a, size_t an, const void *b, size_t bn)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return an && bn && x < y + bn && y < x + an;
}

/* The checks both directions share: lengths, NULLs, and that the pad, the MAC key and the
 * output are three separate places (in is allowed to be out: in place). */
static int check_args(const uint8_t *in, size_t len, const qk_relay_hop_key *hk, const uint8_t *ad,
                      size_t ad_len, const uint8_t *out, const uint8_t *tag, qk_err *err)
{
    if (!hk || !hk->pad || !hk->mac_key || !in || !out || !tag || (ad_len && !ad))
        return qk_err_set(err, QK_EINVAL, "relay: missing buffer");
    if (len < 1 || len > QK_RELAY_DATA_MAX)
        return qk_err_set(err, QK_EINVAL, "relay: data must be 1..%u bytes", QK_RELAY_DATA_MAX);
    if (hk->pad_len != len)
        return qk_err_set(err, QK_EINVAL, "relay: the pad must be as long as the data");
    if (ad_len > QK_RELAY_AD_MAX)
        return qk_err_set(err, QK_EINVAL, "relay: associated data above %u bytes", QK_RELAY_AD_MAX);
    if (overlap(hk->pad, len, hk->mac_key, QK_RELAY_MAC_KEY_LEN))
        return qk_err_set(err, QK_EINVAL, "relay: the pad and the MAC key overlap");
    if (overlap(out, len, hk->pad, len) || overlap(out, len, hk->mac_key, QK_RELAY_MAC_KEY_LEN) ||
        overlap(tag, QK_RELAY_TAG_LEN, hk->pad, len) ||
        overlap(tag, QK_RELAY_TAG_LEN, hk->mac_key, QK_RELAY_MAC_KEY_LEN) ||
        overlap(tag, QK_RELAY_TAG_LEN, out, len))
        return qk_err_set(err, QK_EINVAL, "relay: the output overlaps the hop key");
    if (in != out && overlap(in, len, out, len))
        return qk_err_set(err, QK_EINVAL, "relay: input and output overlap partly");
    return 0;
}

static void le64(uint8_t b[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* The tag over ad, ct and the pad (relay_crypto.h: after RFC 8439 section 2.8's mac_data). */
static void mac(const uint8_t key[QK_RELAY_MAC_KEY_LEN], const uint8_t *ad, size_t ad_len,
                const uint8_t *ct, const uint8_t *pad, size_t len, uint8_t tag[QK_RELAY_TAG_LEN])
{
    static const uint8_t zeros[16];
    uint8_t lens[16];
    crypto_onetimeauth_poly1305_state st;
    crypto_onetimeauth_poly1305_init(&st, key);
    if (ad_len) {
        crypto_onetimeauth_poly1305_update(&st, ad, ad_len);
        crypto_onetimeauth_poly1305_update(&st, zeros, (16 - ad_len % 16) % 16);
    }
    crypto_onetimeauth_poly1305_update(&st, ct, len);
    crypto_onetimeauth_poly1305_update(&st, zeros, (16 - len % 16) % 16);
    crypto_onetimeauth_poly1305_update(&st, pad, len);
    crypto_onetimeauth_poly1305_update(&st, zeros, (16 - len % 16) % 16);
    le64(lens, ad_len);
    le64(lens + 8, len);
    crypto_onetimeauth_poly1305_update(&st, lens, sizeof lens);
    crypto_onetimeauth_poly1305_final(&st, tag);
    qk_wipe(&st, sizeof st);
}

static void xor_into(uint8_t *out, const uint8_t *in, const uint8_t *pad, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = in[i] ^ pad[i];
}

int qk_relay_seal(const uint8_t *key, size_t len, const qk_relay_hop_key *hk, const uint8_t *ad,
                  size_t ad_len, uint8_t *ct, uint8_t tag[QK_RELAY_TAG_LEN], qk_err *err)
{
    int rc = check_args(key, len, hk, ad, ad_len, ct, tag, err);
    if (rc != 0)
        return rc; /* nothing written: the buffers may be the caller's key or the hop key */
    xor_into(ct, key, hk->pad, len);
    mac(hk->mac_key, ad, ad_len, ct, hk->pad, len, tag);
    return 0;
}

int qk_relay_open(const uint8_t *ct, size_t len, const uint8_t tag[QK_RELAY_TAG_LEN],
                  const qk_relay_hop_key *hk, const uint8_t *ad, size_t ad_len, uint8_t *key_out,
                  qk_err *err)
{
    int rc = check_args(ct, len, hk, ad, ad_len, key_out, tag, err);
    if (rc != 0)
        return rc;
    uint8_t want[QK_RELAY_TAG_LEN];
    mac(hk->mac_key, ad, ad_len, ct, hk->pad, len, want);
    bool ok = crypto_verify_16(want, tag) == 0;
    qk_wipe(want, sizeof want);
    if (!ok) {
        if (key_out != ct)
            qk_wipe(key_out, len);
        return qk_err_set(err, QK_EMISMATCH, "relay: the hop's tag does not verify");
    }
    xor_into(key_out, ct, hk->pad, len);
    return 0;
}

void qk_relay_poly1305(const uint8_t key[QK_RELAY_MAC_KEY_LEN], const uint8_t *msg, size_t len,
                       uint8_t tag[QK_RELAY_TAG_LEN])
{
    crypto_onetimeauth_poly1305(tag, msg, len, key);
}
