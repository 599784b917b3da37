/* kme_source.c - keys from the local KME through libqkdclient (ETSI 014 or SKIP). */
#include "kme_source.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qkdclient.h"
#include "secbuf.h"
#include "tls_server.h"

struct kme_source {
    const qkb_config *cfg;
    pthread_mutex_t mu;
    qkc_client *c;
};

static int map_err(const qkc_error *e, const char *what, qk_err *err)
{
    int code = QK_EPEER;
    if (e->cls == QKC_EHTTP && (e->http_status == 400 || e->http_status == 404))
        code = QK_ENOTFOUND;
    else if (e->cls == QKC_EMALFORMED)
        code = QK_EINVAL;
    return qk_err_set(err, code, "KME %s: %s%s%s", what, e->msg, e->server_message[0] ? ": " : "",
                      e->server_message);
}

int kme_source_new(const qkb_config *cfg, kme_source **out, qk_err *err)
{
    kme_source *k = calloc(1, sizeof *k);
    if (!k)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    k->cfg = cfg;
    qkc_options o = {.base_url = cfg->kme_url,
                     .ca_file = cfg->kme_ca[0] ? cfg->kme_ca : NULL,
                     .timeout_ms = (long)cfg->kme_timeout_ms,
                     .connect_timeout_ms =
                         (long)(cfg->kme_timeout_ms < 3000 ? cfg->kme_timeout_ms : 3000),
                     .max_response = 1 << 20};
    qk_psk_table psks = {0};
    if (cfg->kme_api == QKB_KME_ETSI014) {
        o.cert_file = cfg->kme_cert;
        o.key_file = cfg->kme_key;
    } else {
        /* The SKIP PSK file has the format of the KME's own table: identity:hexkey. */
        int rc = qk_psk_table_load(cfg->kme_psk_file, &psks, err);
        if (rc) {
            free(k);
            return qk_err_prefix(err, "[kme] psk_file");
        }
        for (size_t i = 0; i < psks.n; i++)
            if (strcmp(psks.entries[i].identity, cfg->kme_psk_identity) == 0) {
                o.psk_identity = cfg->kme_psk_identity;
                o.psk = psks.entries[i].key;
                o.psk_len = psks.entries[i].key_len;
            }
        if (!o.psk) {
            qk_psk_table_free(&psks);
            free(k);
            return qk_err_set(err, QK_EINVAL, "[kme] psk_file has no entry for identity %s",
                              cfg->kme_psk_identity);
        }
    }
    qkc_error e;
    k->c = qkc_client_new(&o, &e);
    qk_psk_table_free(&psks); /* the client copied the PSK */
    if (!k->c) {
        free(k);
        return qk_err_set(err, QK_EINVAL, "KME client: %s", e.msg);
    }
    pthread_mutex_init(&k->mu, NULL);
    *out = k;
    return 0;
}

void kme_source_free(kme_source *k)
{
    if (!k)
        return;
    qkc_client_free(k->c);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

static int take(const char *id, const uint8_t *src, size_t n, char key_id[GW_KEY_ID_MAX],
                uint8_t **key, size_t *len, qk_err *err)
{
    if (!id || !*id || strlen(id) >= GW_KEY_ID_MAX || n == 0)
        return qk_err_set(err, QK_EINVAL, "KME answered an unusable key or key ID");
    for (const char *p = id; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\\' || *p == '\'')
            return qk_err_set(err, QK_EINVAL, "KME answered a key ID with odd characters");
    *key = qk_secure_alloc(n);
    if (!*key)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    memcpy(*key, src, n);
    *len = n;
    if (key_id)
        memcpy(key_id, id, strlen(id) + 1);
    return 0;
}

int kme_get_new(kme_source *k, char key_id[GW_KEY_ID_MAX], uint8_t **key, size_t *len, qk_err *err)
{
    qkc_error e;
    int rc;
    pthread_mutex_lock(&k->mu);
    if (k->cfg->kme_api == QKB_KME_ETSI014) {
        qkc_key_request req = {.number = 1, .size = k->cfg->key_bits};
        qkc_key_set ks = {0};
        rc = qkc_etsi_get_keys(k->c, k->cfg->peer_sae_id, &req, QKC_AUTO, &ks, &e);
        if (rc == 0 && ks.count == 1)
            rc = take(ks.keys[0].key_ID, ks.keys[0].key, ks.keys[0].key_len, key_id, key, len, err);
        else if (rc == 0)
            rc = qk_err_set(err, QK_EINVAL, "KME answered %zu keys", ks.count);
        else
            rc = map_err(&e, "enc_keys", err);
        qkc_key_set_free(&ks);
    } else {
        qkc_skip_key sk = {0};
        rc = qkc_skip_get_key(k->c, k->cfg->peer_sae_id, k->cfg->key_bits, &sk, &e);
        if (rc == 0)
            rc = take(sk.keyId, sk.key, sk.key_len, key_id, key, len, err);
        else
            rc = map_err(&e, "GET /key", err);
        qkc_skip_key_free(&sk);
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kme_get_by_id(kme_source *k, const char *key_id, uint8_t **key, size_t *len, qk_err *err)
{
    qkc_error e;
    int rc;
    pthread_mutex_lock(&k->mu);
    if (k->cfg->kme_api == QKB_KME_ETSI014) {
        qkc_key_set ks = {0};
        const char *ids[1] = {key_id};
        rc = qkc_etsi_get_keys_with_ids(k->c, k->cfg->peer_sae_id, ids, 1, QKC_AUTO, &ks, &e);
        if (rc == 0 && ks.count == 1)
            rc = take(key_id, ks.keys[0].key, ks.keys[0].key_len, NULL, key, len, err);
        else if (rc == 0)
            rc = qk_err_set(err, QK_EINVAL, "KME answered %zu keys", ks.count);
        else
            rc = map_err(&e, "dec_keys", err);
        qkc_key_set_free(&ks);
    } else {
        qkc_skip_key sk = {0};
        rc = qkc_skip_get_key_by_id(k->c, key_id, k->cfg->peer_sae_id, &sk, &e);
        if (rc == 0)
            rc = take(key_id, sk.key, sk.key_len, NULL, key, len, err);
        else
            rc = map_err(&e, "GET /key/{id}", err);
        qkc_skip_key_free(&sk);
    }
    pthread_mutex_unlock(&k->mu);
    if (rc == 0 && *len * 8 != k->cfg->key_bits) {
        qk_secure_free(*key);
        *key = NULL;
        return qk_err_set(err, QK_EINVAL, "KME key of %zu bits, configured %u", *len * 8,
                          k->cfg->key_bits);
    }
    return rc;
}
