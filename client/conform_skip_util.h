/* conform_skip_util.h - helpers shared by the SKIP checks (conform_skip*.c). */
#ifndef QKD_CONFORM_SKIP_UTIL_H
#define QKD_CONFORM_SKIP_UTIL_H

#include "conform.h"

/* A /key answer parsed leniently: keyId and key strings as sent (key in secure memory). */
typedef struct {
    char keyId[QKC_SKIP_KEYID_MAX * 2];
    char *key;
} cs_key;

void cs_key_free(cs_key *k);
/* 0, or -1 with why[] set. */
int cs_parse_key(const char *body, size_t len, cs_key *out, char *why, size_t cap);

/* Capabilities of side s (0 = A, 1 = B), cached; NULL (r skipped) when unusable. */
const qkc_skip_caps *cs_caps(cf_ctx *ctx, cf_side_ix s, cf_result *r);
/* The remoteSystemID side s uses for its peer: the configured one, else the peer's
 * localSystemID. NULL (r skipped) when unknown. */
const char *cs_remote(cf_ctx *ctx, cf_side_ix s, cf_result *r);

/* GET /key?remoteSystemID=<A's remote>[&size=BITS] at A (size 0: left out); the key in out.
 * 0, or -1 with r skipped (precondition) or failed. */
int cs_new_key(cf_ctx *ctx, cf_result *r, int64_t size, cs_key *out);
/* GET /key/{keyId}?remoteSystemID=<remote> at side s (remote NULL: s's remote). */
int cs_fetch(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *key_id, const char *remote,
             qkc_raw_response *resp);
/* One GET (or other method) at side s; false (violation recorded) when no response. */
bool cs_req(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *method, const char *path,
            qkc_raw_response *resp);

/* Hex checks: 0 = fine, else a description in why. */
bool cs_is_hex(const char *s, bool *has_upper);

/* TLS checks (conform_skip_tls.c). */
void cf_skip_tls13_psk(cf_ctx *ctx, cf_result *r);
void cf_skip_tls13_cert(cf_ctx *ctx, cf_result *r);
void cf_skip_tls12_dhe_cbc384(cf_ctx *ctx, cf_result *r);
void cf_skip_tls12_dhe_cbc(cf_ctx *ctx, cf_result *r);
void cf_skip_tls12_gcm(cf_ctx *ctx, cf_result *r);
void cf_skip_tls12_dhe_gcm(cf_ctx *ctx, cf_result *r);
void cf_skip_tls_no_credentials(cf_ctx *ctx, cf_result *r);
void cf_skip_tls_wrong_psk(cf_ctx *ctx, cf_result *r);

#endif
