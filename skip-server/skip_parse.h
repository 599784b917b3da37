/* skip_parse.h - pure parsing, matching and formatting for the SKIP handler (draft-cisco-skip-02):
 * routes, keyId, size/minentropy, system IDs, remoteSystemID globs, per-client authorization and
 * the JSON answers. No HTTP engine, no core calls: unit-tested in tests/unit/test_skip.c.
 * Internal to skip-server/. */
#ifndef QK_SKIP_PARSE_H
#define QK_SKIP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "codec.h"
#include "core.h"
#include "qk_err.h"

#define QK_SKIP_SYSTEM_ID_MAX 64 /* localSystemID / remoteSystemID: [A-Za-z0-9_.-], 1..64 */
#define QK_SKIP_KEY_ID_HEX_MAX                                                                     \
    128 /* longest keyId accepted as well-formed (decision S1, docs/conformance.md) */
#define QK_SKIP_GLOB_MAX  64 /* one glob of a list */
#define QK_SKIP_GLOBS_MAX 64 /* globs in one list */
/* The store identity of a KME's SKIP side: "skip:" + KME ID. ETSI SAE IDs are
 * [A-Za-z0-9_.-] only, so an identity with ':' can never be an SAE's. */
#define QK_SKIP_ID_PREFIX    "skip:"
#define QK_SKIP_IDENTITY_MAX (sizeof QK_SKIP_ID_PREFIX + QK_SKIP_SYSTEM_ID_MAX)

typedef enum {
    QK_SKIP_ROUTE_NONE = 0, /* not a SKIP path: 404 */
    QK_SKIP_ROUTE_CAPABILITIES,
    QK_SKIP_ROUTE_KEY,    /* GET /key */
    QK_SKIP_ROUTE_KEY_ID, /* GET /key/{keyId} */
    QK_SKIP_ROUTE_ENTROPY,
} qk_skip_route;

/* Route an (already percent-decoded) path; a query string (from '?') is ignored. For
 * QK_SKIP_ROUTE_KEY_ID the keyId text (possibly empty or malformed: check it with
 * qk_skip_parse_key_id) is copied to key_id (cap bytes; a longer one is cut to cap-1 bytes,
 * which the keyId check then refuses as too long when cap > QK_SKIP_KEY_ID_HEX_MAX + 1). */
qk_skip_route qk_skip_parse_path(const char *url, char *key_id, size_t cap);

/* A keyId: 1..128 hex digits, any case. Only a 32-digit one can name one of our keys (the UUID
 * without hyphens); out receives the canonical lower-case hyphenated UUID. Returns 0,
 * QK_EINVAL (malformed: empty, not hex, too long) or QK_ENOTFOUND (well-formed, not 32 digits);
 * err holds a message for the client. */
int qk_skip_parse_key_id(const char *s, char out[QK_KEY_ID_LEN + 1], qk_err *err);

/* The SKIP keyId of a canonical key UUID: 32 lower-case hex digits. 0 or -1. */
int qk_skip_key_id_of(const char *uuid, char out[QK_UUID_HEX_LEN + 1]);

/* A bit count parameter (size, minentropy): 1..7 decimal digits, nothing else, a multiple of 8
 * within [min, max]. name is used in the message. 0 or QK_EINVAL with err set. */
int qk_skip_parse_bits(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                       qk_err *err);

/* A system ID (localSystemID, remoteSystemID value): 1..64 characters [A-Za-z0-9_.-]. */
bool qk_skip_system_id_valid(const char *s);

/* A glob list: comma-separated POSIX globs (fnmatch(3) without flags), blanks around entries
 * ignored, at most QK_SKIP_GLOBS_MAX entries of 1..QK_SKIP_GLOB_MAX characters each. Returns
 * whether id matches one entry; NULL or "" matches nothing. */
bool qk_skip_globs_match(const char *list, const char *id);
/* Call fn for each entry of a glob list (trimmed, NUL-terminated); stops on a non-zero return
 * and returns it. An entry longer than QK_SKIP_GLOB_MAX is skipped. */
int qk_skip_globs_each(const char *list, int (*fn)(const char *glob, void *arg), void *arg);

/* A per-client authorization rule: which remote systems a SKIP client may ask for. */
typedef struct {
    const char *identity;       /* PSK identity or certificate CN (or fingerprint-mapped ID) */
    const char *remote_systems; /* glob list */
} qk_skip_client_rule;

/* The glob list that applies to a client: its own rule (identity matched exactly), else
 * default_rule (which also covers anonymous clients: identity NULL). NULL when the client is not
 * a SKIP client at all (no rule and an empty default). */
const char *qk_skip_client_globs(const qk_skip_client_rule *rules, size_t n,
                                 const char *default_rule, const char *identity);

/* The store identity of a KME's SKIP side ("skip:KME_A"). 0 or -1 (bad ID / too small). */
int qk_skip_identity(const char *kme, char *out, size_t cap);

/* {"keyId":"<32 hex>","key":"<hex>"} in a qk_secure_alloc'ed NUL-terminated buffer (*json,
 * *len without the NUL); free with qk_secure_free. uuid is the key's canonical UUID. 0 or -1. */
int qk_skip_key_json(const char *uuid, const uint8_t *key, size_t key_len, char **json,
                     size_t *len);

/* {"randomStr":"<hex>","minentropy":bits} in a qk_secure_alloc'ed buffer as above. 0 or -1. */
int qk_skip_entropy_json(const uint8_t *rnd, size_t n, uint32_t bits, char **json, size_t *len);

/* The capabilities answer (malloc'ed JSON text, or NULL): entropy, key, algorithm,
 * localSystemID and remoteSystemID = the entries of remote_globs, plus local_id when
 * loopback_pair is set and it is not listed already. */
char *qk_skip_capabilities_json(bool entropy, const char *algorithm, const char *local_id,
                                const char *remote_globs, bool loopback_pair);

#endif
