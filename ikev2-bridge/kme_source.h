/* kme_source.h - the bridge's local KME over libqkdclient: a new key for the peer (ETSI 014
 * enc_keys / SKIP GET /key) and the same key by ID (dec_keys / GET /key/{id}). Thread-safe
 * (one mutex around the client). Key bytes come back in secure memory. */
#ifndef QKB_KME_SOURCE_H
#define QKB_KME_SOURCE_H

#include "bridge_config.h"
#include "gw_driver.h"

typedef struct kme_source kme_source;

int kme_source_new(const qkb_config *cfg, kme_source **out, qk_err *err);
void kme_source_free(kme_source *k);

/* *key is qk_secure_alloc'ed (free with qk_secure_free). Errors: QK_EPEER (KME unreachable /
 * TLS / HTTP 5xx), QK_ENOTFOUND (key unknown to the KME), QK_EINVAL (malformed answer). */
int kme_get_new(kme_source *k, char key_id[GW_KEY_ID_MAX], uint8_t **key, size_t *len, qk_err *err);
int kme_get_by_id(kme_source *k, const char *key_id, uint8_t **key, size_t *len, qk_err *err);

#endif
