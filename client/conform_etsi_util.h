/* conform_etsi_util.h - helpers shared by the ETSI GS QKD 014 checks (conform_etsi_*.c). */
#ifndef QKD_CONFORM_ETSI_UTIL_H
#define QKD_CONFORM_ETSI_UTIL_H

#include "conform.h"

#define CE_MAX_KEYS 16

/* The keys of a Key container, parsed leniently ("keys" or "Keys", any key encoding): the IDs
 * and the key strings (secure memory) as sent. */
typedef struct {
    size_t n;
    char id[CE_MAX_KEYS][QKC_ID_MAX];
    char *key[CE_MAX_KEYS];
} ce_keys;

void ce_keys_free(ce_keys *k);
/* 0, or -1 with why[] naming the problem. */
int ce_parse_keys(const char *body, size_t len, ce_keys *out, char *why, size_t cap);

/* "/api/v1/keys/{SAE}/{op}{query}" with SAE percent-encoded (raw_sae: inserted as given). */
int ce_path(char *out, size_t cap, const char *sae, bool raw_sae, const char *op,
            const char *query);

/* The master's Status for the slave (cached). NULL (and r skipped) when unavailable. */
const qkc_etsi_status *ce_status(cf_ctx *ctx, cf_result *r);

/* Obtain n keys for the slave (and optional additional slaves, JSON array text) from the
 * master's KME with POST enc_keys. 0, or -1 with r skipped ("precondition"). */
int ce_obtain(cf_ctx *ctx, cf_result *r, int n, const char *additional_json, ce_keys *out);

/* dec_keys by side s for the master's keys: GET ?key_ID= for one ID when !post, else POST
 * {"key_IDs": [...]}. The response is left in resp (free it). 0 when a response arrived. */
int ce_fetch(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *const *ids, size_t n, bool post,
             qkc_raw_response *resp);

/* Compare the keys of a dec_keys answer with those obtained: same IDs (case-insensitive) and
 * same key strings; evidence names tags, never bytes. true when equal. */
bool ce_same_keys(cf_result *r, const ce_keys *want, const qkc_raw_response *resp);

/* Status is exactly `want` and the body an Error object with a non-empty message (ETSI-014 6.4);
 * a message other than msg (the spec's wording; NULL: any) is only a warning (cf_advice).
 * Violations are recorded; true when status and Error object hold. */
bool ce_expect_error(cf_result *r, const qkc_raw_response *resp, long want, const char *msg);

/* Evidence tag of a key string: decoded-bytes hash prefix when it is base64, else of the text. */
void ce_key_tag(const char *key, char out[17]);

/* Pick a key size (bits) other than key_size within the limits, multiple of 8. */
int64_t ce_pick_size(const qkc_etsi_status *st);

/* Checks in conform_etsi_dec.c (listed in conform_etsi.c's table). */
void cf_etsi_dec_get_one(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_post_many(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_second_fetch(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_unknown_key(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_non_uuid(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_caller_as_master(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_case(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_repeated(cf_ctx *ctx, cf_result *r);
void cf_etsi_dec_partial(cf_ctx *ctx, cf_result *r);
void cf_etsi_err_401(cf_ctx *ctx, cf_result *r);
void cf_etsi_err_401_message(cf_ctx *ctx, cf_result *r);
void cf_etsi_err_message(cf_ctx *ctx, cf_result *r);
void cf_etsi_multicast(cf_ctx *ctx, cf_result *r);
void cf_etsi_multicast_over_max(cf_ctx *ctx, cf_result *r);

/* The unknown-key message of section 6.4. */
#define CE_MSG_NOT_FOUND "one or more keys specified are not found on KME"

#endif
