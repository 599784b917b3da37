/* macsec_keys.c - IEEE 802.1X KDF, ICK/KEK, CAK/CKN mapping and MACsec configuration text. */
#include "macsec_keys.h"

#include <ctype.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "secbuf.h"

static int aes_cmac(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len,
                    uint8_t out[16])
{
    int rc = -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char cipher[16];
    snprintf(cipher, sizeof cipher, "AES-%zu-CBC", key_len * 8);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    if (ctx && EVP_MAC_init(ctx, key, key_len, params) == 1 && EVP_MAC_update(ctx, msg, len) == 1 &&
        EVP_MAC_final(ctx, out, &outl, 16) == 1 && outl == 16)
        rc = 0;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int macsec_kdf(const uint8_t *key, size_t key_len, const char *label, const uint8_t *ctx,
               size_t ctx_len, unsigned bits, uint8_t *out)
{
    if ((key_len != 16 && key_len != 32) || (bits != 128 && bits != 256) || !label)
        return QK_EINVAL;
    size_t ll = strlen(label);
    uint8_t msg[1 + 64 + 1 + 64 + 2];
    if (ll > 64 || ctx_len > 64)
        return QK_EINVAL;
    size_t n = 0;
    msg[n++] = 0; /* counter, set per block */
    memcpy(msg + n, label, ll);
    n += ll;
    msg[n++] = 0;
    if (ctx_len)
        memcpy(msg + n, ctx, ctx_len);
    n += ctx_len;
    msg[n++] = (uint8_t)(bits >> 8);
    msg[n++] = (uint8_t)bits;
    int rc = 0;
    for (unsigned i = 1; i <= bits / 128; i++) {
        msg[0] = (uint8_t)i;
        if (aes_cmac(key, key_len, msg, n, out + 16 * (i - 1)) != 0) {
            rc = QK_EIO;
            break;
        }
    }
    qk_wipe(msg, sizeof msg);
    return rc;
}

static int ick_kek(const char *label, const uint8_t *cak, size_t cak_len, const uint8_t *ckn,
                   size_t ckn_len, uint8_t *out)
{
    if (ckn_len == 0 || ckn_len > MACSEC_CKN_MAX)
        return QK_EINVAL;
    uint8_t keyid[16] = {0};
    memcpy(keyid, ckn, ckn_len < 16 ? ckn_len : 16);
    return macsec_kdf(cak, cak_len, label, keyid, sizeof keyid, (unsigned)cak_len * 8, out);
}

int macsec_ick(const uint8_t *cak, size_t cak_len, const uint8_t *ckn, size_t ckn_len, uint8_t *out)
{
    return ick_kek("IEEE8021 ICK", cak, cak_len, ckn, ckn_len, out);
}

int macsec_kek(const uint8_t *cak, size_t cak_len, const uint8_t *ckn, size_t ckn_len, uint8_t *out)
{
    return ick_kek("IEEE8021 KEK", cak, cak_len, ckn, ckn_len, out);
}

int macsec_ckn_from_key_id(const char *key_id, uint8_t ckn[MACSEC_CKN_MAX], size_t *ckn_len,
                           qk_err *err)
{
    size_t l = key_id ? strlen(key_id) : 0;
    qk_uuid u;
    if (l && qk_uuid_parse_any(key_id, l, &u) == 0) {
        memcpy(ckn, u.b, 16);
        *ckn_len = 16;
        return 0;
    }
    if (l < 2 || l > 2 * MACSEC_CKN_MAX || l % 2)
        return qk_err_set(err, QK_EINVAL,
                          "key ID is neither a UUID nor 2..64 hex digits: cannot be a CKN");
    if (qk_hex_decode(key_id, l, ckn, MACSEC_CKN_MAX, ckn_len) != 0)
        return qk_err_set(err, QK_EINVAL, "key ID is neither a UUID nor hex: cannot be a CKN");
    return 0;
}

int macsec_cak_check(size_t key_len, unsigned cak_bits, qk_err *err)
{
    if (cak_bits != 128 && cak_bits != 256)
        return qk_err_set(err, QK_EINVAL, "cak_bits must be 128 or 256");
    if (key_len * 8 != cak_bits)
        return qk_err_set(err, QK_EINVAL, "key of %zu bits cannot be a %u-bit CAK", key_len * 8,
                          cak_bits);
    return 0;
}

/* Appends formatted text; returns -1 when the buffer is full. */
static int app(char *out, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int app(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n >= cap)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= cap - *n)
        return -1;
    *n += (size_t)w;
    return 0;
}

static bool safe_path(const char *s)
{
    if (!s || !*s || strlen(s) > 200)
        return false;
    for (const char *p = s; *p; p++)
        if (!isprint((unsigned char)*p) || *p == '"' || *p == '\\' || *p == ' ')
            return false;
    return true;
}

long macsec_wpa_render(const macsec_wpa_params *p, const uint8_t *cak, size_t cak_len,
                       const uint8_t *ckn, size_t ckn_len, char *out, size_t cap, qk_err *err)
{
    if (cak_len != 16 && cak_len != 32)
        return qk_err_set(err, QK_EINVAL, "CAK must be 16 or 32 octets");
    if (ckn_len < 1 || ckn_len > MACSEC_CKN_MAX)
        return qk_err_set(err, QK_EINVAL, "CKN must be 1..32 octets");
    if (!safe_path(p->ctrl_interface))
        return qk_err_set(err, QK_EINVAL, "ctrl_interface must be a plain path");
    if (p->port < 1 || p->port > 65534 || p->priority > 255 || p->replay_window > 0xffffffffu)
        return qk_err_set(err, QK_EINVAL, "macsec port 1..65534, priority 0..255");
    char cak_hex[65], ckn_hex[65];
    qk_hex_encode(cak, cak_len, cak_hex, sizeof cak_hex);
    qk_hex_encode(ckn, ckn_len, ckn_hex, sizeof ckn_hex);
    size_t n = 0;
    /* wpa_supplicant 2.10 rejects macsec_csindex and macsec_offload: never write them. */
    int bad = app(out, cap, &n,
                  "# written by qkd-bridge: MKA PSK from the KMS. Holds the CAK: mode 0600.\n"
                  "ctrl_interface=%s\n"
                  "eapol_version=3\n"
                  "ap_scan=0\n"
                  "network={\n"
                  "\tkey_mgmt=NONE\n"
                  "\teapol_flags=0\n"
                  "\tmacsec_policy=1\n"
                  "\tmacsec_integ_only=%d\n"
                  "\tmacsec_replay_protect=%d\n"
                  "\tmacsec_replay_window=%u\n"
                  "\tmacsec_port=%u\n"
                  "\tmka_cak=%s\n"
                  "\tmka_ckn=%s\n"
                  "\tmka_priority=%u\n"
                  "}\n",
                  p->ctrl_interface, p->integ_only ? 1 : 0, p->replay_protect ? 1 : 0,
                  p->replay_window, p->port, cak_hex, ckn_hex, p->priority);
    qk_wipe(cak_hex, sizeof cak_hex);
    if (bad) {
        qk_wipe(out, cap);
        return qk_err_set(err, QK_ELIMIT, "wpa_supplicant configuration does not fit");
    }
    return (long)n;
}

int macsec_parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char tail;
    if (!s || strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) !=
            6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
            return -1;
        mac[i] = (uint8_t)v[i];
    }
    return 0;
}

static bool safe_dev(const char *d)
{
    size_t l = d ? strlen(d) : 0;
    if (l == 0 || l > 15)
        return false;
    for (size_t i = 0; i < l; i++)
        if (!isalnum((unsigned char)d[i]) && d[i] != '-' && d[i] != '_' && d[i] != '.')
            return false;
    return true;
}

static int derive_sak(const uint8_t *key, size_t key_len, const uint8_t tx[6], const uint8_t rx[6],
                      unsigned an, uint8_t *sak)
{
    uint8_t ctx[13];
    memcpy(ctx, tx, 6);
    memcpy(ctx + 6, rx, 6);
    ctx[12] = (uint8_t)an;
    return macsec_kdf(key, key_len, "QKD-BRIDGE SAK", ctx, sizeof ctx, (unsigned)key_len * 8, sak);
}

long macsec_static_batch(const macsec_static_params *p, const uint8_t *key, size_t key_len,
                         const uint8_t *ckn, size_t ckn_len, char *out, size_t cap, qk_err *err)
{
    if (!safe_dev(p->dev))
        return qk_err_set(err, QK_EINVAL, "bad macsec device name");
    if (p->an > 3 || p->peer_port < 1 || p->peer_port > 65535)
        return qk_err_set(err, QK_EINVAL, "association number 0..3, port 1..65535");
    if ((key_len != 16 && key_len != 32) || ckn_len < 1 || ckn_len > MACSEC_CKN_MAX)
        return qk_err_set(err, QK_EINVAL, "key must be 16 or 32 octets, CKN 1..32");
    uint8_t tx_sak[32], rx_sak[32], kid[16] = {0};
    char tx_hex[65], rx_hex[65], kid_hex[33], peer[18];
    memcpy(kid, ckn, ckn_len < 16 ? ckn_len : 16);
    long rc = 0;
    if (derive_sak(key, key_len, p->local_mac, p->peer_mac, p->an, tx_sak) ||
        derive_sak(key, key_len, p->peer_mac, p->local_mac, p->an, rx_sak)) {
        rc = qk_err_set(err, QK_EIO, "SAK derivation failed");
        goto out;
    }
    qk_hex_encode(tx_sak, key_len, tx_hex, sizeof tx_hex);
    qk_hex_encode(rx_sak, key_len, rx_hex, sizeof rx_hex);
    qk_hex_encode(kid, 16, kid_hex, sizeof kid_hex);
    snprintf(peer, sizeof peer, "%02x:%02x:%02x:%02x:%02x:%02x", p->peer_mac[0], p->peer_mac[1],
             p->peer_mac[2], p->peer_mac[3], p->peer_mac[4], p->peer_mac[5]);
    size_t n = 0;
    /* The rx sc may already exist from an earlier key: `ip -force -batch` goes on past that
     * error; every SA line is checked by the exit status of the remaining commands. */
    if (app(out, cap, &n, "macsec add %s tx sa %u pn 1 on key %s %s\n", p->dev, p->an, kid_hex,
            tx_hex) ||
        app(out, cap, &n, "macsec add %s rx port %u address %s\n", p->dev, p->peer_port, peer) ||
        app(out, cap, &n, "macsec add %s rx port %u address %s sa %u pn 1 on key %s %s\n", p->dev,
            p->peer_port, peer, p->an, kid_hex, rx_hex) ||
        app(out, cap, &n, "link set %s type macsec encodingsa %u\n", p->dev, p->an)) {
        qk_wipe(out, cap);
        rc = qk_err_set(err, QK_ELIMIT, "ip batch does not fit");
        goto out;
    }
    rc = (long)n;
out:
    qk_wipe(tx_sak, sizeof tx_sak);
    qk_wipe(rx_sak, sizeof rx_sak);
    qk_wipe(tx_hex, sizeof tx_hex);
    qk_wipe(rx_hex, sizeof rx_hex);
    return rc;
}
