/* etsi014_parse.h - pure parsing and formatting for the ETSI GS QKD 014 handler: routes, SAE
 * IDs, query numbers, Key request and Key IDs bodies, the Key container. No HTTP engine, no
 * core calls: everything here is unit-testable (tests/unit/test_etsi014.c). Internal to
 * etsi014/. */
#ifndef QK_ETSI014_PARSE_H
#define QK_ETSI014_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core.h"
#include "qk_err.h"

/* The parsers' own bound on a JSON body. The request envelope refuses a body above the
 * etsi014 listener's max_body (default 64 KiB) before the handler sees it; a larger max_body
 * still leaves the parsers at this bound (400). */
#define QK_ETSI_MAX_BODY   (64u * 1024u)
#define QK_ETSI_SAE_ID_MAX 128  /* bytes of an SAE ID (percent-decoded) */
#define QK_ETSI_MAX_ADD    64   /* additional_slave_SAE_IDs parsed at most */
#define QK_ETSI_MAX_IDS    1024 /* key IDs in one dec_keys request at most */

#define QK_ETSI_MSG_NOT_FOUND       "one or more keys specified are not found on KME"
#define QK_ETSI_MSG_SIZE8           "size shall be a multiple of 8"
#define QK_ETSI_MSG_EXT_UNSUPPORTED "not all extension_mandatory parameters are supported"
#define QK_ETSI_MSG_QUOTA                                                                          \
    "max_key_count reached: the SAE pair holds that many keys not yet fetched by the slave SAE"

typedef enum {
    QK_ETSI_ROUTE_NONE = 0,
    QK_ETSI_ROUTE_STATUS,
    QK_ETSI_ROUTE_ENC,
    QK_ETSI_ROUTE_DEC,
} qk_etsi_route;

/* Split an (already percent-decoded) URL path `/api/v1/keys/{SAE_ID}/{status|enc_keys|
 * dec_keys}`. A trailing query string (from '?') is ignored. Returns 0 and the route with the
 * SAE ID copied to id (cap bytes), or QK_EINVAL with err set (unknown resource, bad SAE ID). */
int qk_etsi_parse_path(const char *url, qk_etsi_route *route, char *id, size_t cap, qk_err *err);

/* An SAE ID: 1..QK_ETSI_SAE_ID_MAX bytes, no control characters, no spaces. */
bool qk_etsi_sae_id_valid(const char *s, size_t len);

/* A query parameter value holding a decimal integer: optional '-', 1..10 digits, nothing else.
 * Returns 0 and *out, or -1. */
int qk_etsi_parse_int(const char *s, int64_t *out);

/* A parsed Key request (enc_keys). */
typedef struct {
    bool has_number, has_size;
    int64_t number, size;
    size_t nadd;
    char add[QK_ETSI_MAX_ADD][QK_ETSI_SAE_ID_MAX + 1];
    bool add_present; /* additional_slave_SAE_IDs member present (even if empty) */
} qk_etsi_key_req;

/* Parse a POST enc_keys body (len 0 or whitespace only = {}). On an unsupported
 * extension_mandatory parameter returns QK_EINVAL with the spec message and *details (if
 * details is non-NULL) set to a cJSON array of {"extension_mandatory_unsupported": "..."}
 * objects, owned by the caller. Other errors: QK_EINVAL, message in err. */
int qk_etsi_parse_key_request(const char *body, size_t len, qk_etsi_key_req *out, cJSON **details,
                              qk_err *err);

/* Apply defaults and check a Key request against the limits and the identities: number in
 * [1, max_keys_per_request], size a multiple of 8 (spec message) within [min, max], at most
 * max_sae_id_count additional IDs, none empty/blank, duplicated, equal to the caller or to the
 * path slave. On success *number and *size_bits hold the effective values. */
int qk_etsi_check_key_req(const qk_etsi_key_req *r, const qk_key_limits *lim, const char *caller,
                          const char *slave, size_t *number, uint32_t *size_bits, qk_err *err);

/* Status stored_key_count for an SAE pair: the keys of the default size that enc_keys can
 * deliver for the pair now, never above max_key_count. quota = max_key_count minus
 * `outstanding` (keys of the pair held at this KME and not yet fetched by the slave); for a
 * remote pair the result is also bounded by the link pool (pool_bytes of uncarved confirmed
 * material); the same-KME pool (local) is generated on demand and bounds nothing. */
uint64_t qk_etsi_stored_key_count(const qk_key_limits *lim, bool local, uint64_t outstanding,
                                  uint64_t pool_bytes);

/* Parse a POST dec_keys body {"key_IDs":[{"key_ID":"uuid"},...]} (unknown members ignored).
 * IDs are normalised to the lower-case canonical UUID form; duplicates are refused; at most
 * max_ids. *ids is malloc'ed (*n entries); free it. */
int qk_etsi_parse_key_ids(const char *body, size_t len, size_t max_ids,
                          char (**ids)[QK_KEY_ID_LEN + 1], size_t *n, qk_err *err);

/* Normalise one key ID (any-case hyphenated UUID) into out (lower-case canonical). 0 or -1. */
int qk_etsi_norm_key_id(const char *s, size_t len, char out[QK_KEY_ID_LEN + 1]);

/* Build the Key container {"keys":[{"key_ID":..,"key":base64},..]} in a qk_secure_alloc'ed
 * NUL-terminated buffer (*json, *len without NUL); free with qk_secure_free. 0 or QK_ENOMEM. */
int qk_etsi_key_container(const qk_key_batch *b, char **json, size_t *len);

/* Comma-separated key IDs of a batch (malloc'ed) for the request log, or NULL. */
char *qk_etsi_key_id_list(const qk_key_batch *b);

#endif
