/* peer_msg.h - the peer wire format (docs/qkd-kmed.md, "Peer API"): one typed struct per message
 * of /peer/v1/..., each encoder beside its decoder (the pattern of openiked's config.c
 * config_setX / config_getX pairs). Both ends use it: kms/peer_client.c encodes the requests and
 * decodes the answers, peer/peer_api.c decodes the requests and encodes the answers.
 *
 * Decoders take untrusted bytes (len need not be NUL-terminated) and validate before they
 * parse (openiked's ikev2_pld.c): the body size (QK_PEER_MSG_MAX), JSON syntax with no trailing
 * garbage, nesting depth, duplicate members, every member's type, array counts before their
 * entries are read, integer ranges (block IDs and expiry below 2^53, offsets and lengths within
 * a block), ID syntax (1..QK_STORE_ID_MAX characters, no control characters), UUID key IDs
 * (normalised to lower case), 64-hex digests and enumerations (side, status, state, reason).
 * Unknown members are ignored. Limits that depend on the KME's configuration come in a
 * qk_peer_msg_limits. A decoder answers 0, QK_EINVAL (err->msg names the member) or QK_ENOMEM;
 * on failure the output is zeroed and holds nothing to free.
 *
 * Encoders write compact JSON into a malloc'ed NUL-terminated string (*out; free() it) and
 * answer 0, QK_EINVAL (a value no decoder would accept: an enumeration out of range, more
 * entries than a message holds) or QK_ENOMEM. What a decoder accepted always encodes, and
 * decodes again to the same struct (tests/unit/test_peer_msg.c, tests/fuzz/fuzz_peer_msg.c).
 *
 * Block digests and check values are keyed hashes (store.h), never key material. */
#ifndef QK_PEER_MSG_H
#define QK_PEER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core.h"
#include "qk_err.h"
#include "store.h"

#define QK_PEER_MSG_MAX       (2u * 1024u * 1024u) /* the largest body either end decodes */
#define QK_PEER_INVENTORY_MAX 256                  /* blocks per inventory call */
#define QK_PEER_BLOCK_ID_MAX  9007199254740991ull  /* 2^53-1: exact as a JSON number */
#define QK_PEER_SLAVES_MAX    65                   /* the slave + 64 additional slaves */
#define QK_PEER_LINKS_MAX     32                   /* links in a health answer */
#define QK_PEER_MESSAGE_MAX   (QK_ERR_MSG_MAX - 1) /* characters of an error message */

/* An identity, link or request ID as it travels: 1..QK_STORE_ID_MAX characters. */
typedef char qk_peer_id[QK_STORE_ID_MAX + 1];

/* Whether s[0..len) is an ID: 1..QK_STORE_ID_MAX characters, none of them a control character
 * (below 0x20, or 0x7f). QK_EINVAL names `what`. */
int qk_peer_id_check(const char *s, size_t len, const char *what, qk_err *err);

/* What the receiving KME accepts ([keys] of its configuration). */
typedef struct {
    uint32_t max_keys_per_request; /* keys per reservation: 1..this */
    uint32_t max_size_bits;        /* key length: 1..this/8 bytes */
    uint32_t max_sae_id_count;     /* slaves per reservation: 1..1+this (and <= 65) */
} qk_peer_msg_limits;

qk_peer_msg_limits qk_peer_msg_limits_of(const qk_key_limits *kl);

/* ---- POST /peer/v1/reserve --------------------------------------------------------------
 * {"request_id","link","side":"low"|"high","master","slaves":[..],"expires_at":S,
 *  "keys":[{"key_ID","block_id","offset","length","check"(64 hex)}]} */
typedef struct {
    qk_peer_id request_id;
    qk_peer_id link;
    qk_side side; /* the side the sender carved as */
    qk_peer_id master;
    size_t nslaves; /* 1..QK_PEER_SLAVES_MAX */
    qk_peer_id slaves[QK_PEER_SLAVES_MAX];
    uint64_t expires_at;    /* wall-clock seconds, < 2^53 */
    size_t nkeys;           /* 1..max_keys_per_request */
    const qk_key_ref *keys; /* encode: the caller's; decoded: owned (below) */
} qk_peer_reserve_msg;

/* The sender's side: fill m from a reservation and its carved ranges (IDs are copied, refs is
 * borrowed). QK_EINVAL when an ID does not fit or the slave count is not 1..65. */
int qk_peer_reserve_msg_set(qk_peer_reserve_msg *m, const qk_reservation *r, qk_side side,
                            const qk_key_ref *refs, size_t n, qk_err *err);
/* The receiver's side: the store's view of m (r points into m, r->slaves into slaves). */
void qk_peer_reserve_msg_get(const qk_peer_reserve_msg *m, qk_reservation *r,
                             const char *slaves[QK_PEER_SLAVES_MAX]);
int qk_peer_reserve_encode(const qk_peer_reserve_msg *m, char **out, qk_err *err);
int qk_peer_reserve_decode(const char *body, size_t len, const qk_peer_msg_limits *lim,
                           qk_peer_reserve_msg *m, qk_err *err);
/* Free the keys of a decoded message (not of one filled by qk_peer_reserve_msg_set). */
void qk_peer_reserve_msg_free(qk_peer_reserve_msg *m);

/* ---- the answers to reserve, burn, device-keys and lease: 200 {"status":"reserved"|"burned"|
 * "stored"|"granted"} -------------------------------------------------------------------- */
typedef enum {
    QK_PEER_RESERVED = 0,
    QK_PEER_BURNED = 1,
    QK_PEER_STORED = 2,
    QK_PEER_GRANTED = 3, /* the answer to lease */
} qk_peer_result;

typedef struct {
    qk_peer_result status;
} qk_peer_result_msg;

int qk_peer_result_encode(const qk_peer_result_msg *m, char **out, qk_err *err);
int qk_peer_result_decode(const char *body, size_t len, qk_peer_result_msg *m, qk_err *err);

/* ---- POST /peer/v1/burn: {"request_id"} ------------------------------------------------- */
typedef struct {
    qk_peer_id request_id;
} qk_peer_burn_msg;

int qk_peer_burn_encode(const qk_peer_burn_msg *m, char **out, qk_err *err);
int qk_peer_burn_decode(const char *body, size_t len, qk_peer_burn_msg *m, qk_err *err);

/* ---- POST /peer/v1/device-keys: {"link","block_id","key_IDs":["uuid",..],"key_size":bits}
 * The pulling end of an ETSI 014 device link (docs/qkd-kmed.md, "Key sources") names the keys
 * it took from its device (enc_keys, in order) and the block it built from them; the peer
 * fetches the same IDs from its own device (dec_keys) and builds the same block. Checked:
 * block_id < 2^53, key_size a multiple of 8 in 8..QK_PEER_DEVICE_KEY_BITS_MAX, 1..
 * QK_PEER_DEVICE_KEYS_MAX key IDs, each a UUID (normalised to lower case), no two equal, and
 * the block (count * key_size / 8 bytes) within (QK_BLOCK_VKEY_LEN, QK_BLOCK_MAX_BYTES]. */
#define QK_PEER_DEVICE_KEYS_MAX     1024
#define QK_PEER_DEVICE_KEY_BITS_MAX 65536

typedef struct {
    qk_peer_id link;
    uint64_t block_id;
    uint32_t key_size; /* bits */
    size_t n;          /* 1..QK_PEER_DEVICE_KEYS_MAX */
    char key_ids[QK_PEER_DEVICE_KEYS_MAX][QK_KEY_ID_LEN + 1];
} qk_peer_device_keys_msg;

/* The checks the decoder runs on a filled message (also run by the encoder): 0 or QK_EINVAL. */
int qk_peer_device_keys_check(const qk_peer_device_keys_msg *m, qk_err *err);
int qk_peer_device_keys_encode(const qk_peer_device_keys_msg *m, char **out, qk_err *err);
int qk_peer_device_keys_decode(const char *body, size_t len, qk_peer_device_keys_msg *m,
                               qk_err *err);

/* ---- POST /peer/v1/inventory: {"link","blocks":[{"block_id","digest"(64 hex)}]} --------- */
typedef struct {
    uint64_t block_id; /* < 2^53 */
    uint8_t digest[QK_CHECK_LEN];
} qk_peer_inv_block;

typedef struct {
    qk_peer_id link;
    size_t n; /* 0..QK_PEER_INVENTORY_MAX */
    qk_peer_inv_block blocks[QK_PEER_INVENTORY_MAX];
} qk_peer_inventory_msg;

int qk_peer_inventory_encode(const qk_peer_inventory_msg *m, char **out, qk_err *err);
int qk_peer_inventory_decode(const char *body, size_t len, qk_peer_inventory_msg *m, qk_err *err);

/* The answer: 200 {"blocks":[{"block_id","status":"unknown"|"match"|"mismatch"|"burned"}]} */
typedef enum {
    QK_INV_UNKNOWN = 0, /* the peer does not hold it (yet) or did not answer for it */
    QK_INV_MATCH = 1,
    QK_INV_MISMATCH = 2,
    QK_INV_BURNED = 3,
} qk_inv_status;

typedef struct {
    uint64_t block_id;
    qk_inv_status status;
} qk_peer_inv_result;

typedef struct {
    size_t n; /* 0..QK_PEER_INVENTORY_MAX */
    qk_peer_inv_result blocks[QK_PEER_INVENTORY_MAX];
} qk_peer_inventory_answer;

int qk_peer_inventory_answer_encode(const qk_peer_inventory_answer *m, char **out, qk_err *err);
int qk_peer_inventory_answer_decode(const char *body, size_t len, qk_peer_inventory_answer *m,
                                    qk_err *err);

/* ---- GET /peer/v1/request/{request_id}: 200 {"state":"pending"|"reserved"|"burned"} ----
 * (the path's ID: qk_peer_id_check; the values are those of qk_store_request_state) */
typedef enum {
    QK_PEER_REQ_PENDING = 0,
    QK_PEER_REQ_RESERVED = 1,
    QK_PEER_REQ_BURNED = 2,
} qk_peer_req_state;

typedef struct {
    qk_peer_req_state state;
} qk_peer_state_msg;

int qk_peer_state_encode(const qk_peer_state_msg *m, char **out, qk_err *err);
int qk_peer_state_decode(const char *body, size_t len, qk_peer_state_msg *m, qk_err *err);

/* ---- GET /peer/v1/health: 200 {"node_id","links":[..]} ---------------------------------- */
typedef struct {
    qk_peer_id node_id;
    size_t nlinks; /* 0..QK_PEER_LINKS_MAX */
    qk_peer_id links[QK_PEER_LINKS_MAX];
} qk_peer_health_msg;

int qk_peer_health_encode(const qk_peer_health_msg *m, char **out, qk_err *err);
int qk_peer_health_decode(const char *body, size_t len, qk_peer_health_msg *m, qk_err *err);

/* ---- POST /peer/v1/lease (docs/adr/0002-key-store.md, "Leases and notices") -----------
 * {"link","side":"low"|"high","block_id","from","to"}: the sender (carving as side) asks for
 * [from, to) of the block, one it confirmed (its digest matched the receiver's: the inventory),
 * so the ask carries no material check. A "check" member (64 hex, from KMEs of earlier
 * versions, which hashed the range) is accepted when well-formed and ignored. Checked:
 * block_id < 2^53, QK_BLOCK_VKEY_LEN <= from < to <= QK_BLOCK_MAX_BYTES. Answers: 200
 * {"status":"granted"}; 409 reason "collision" (the range reaches into what the receiver owns
 * or asks for, or a recorded range); 404 "unknown-block". (A KME of an earlier version needs
 * the check: it answers such an ask 400, so the two ends of a link run the same version.) */
typedef struct {
    qk_peer_id link;
    qk_side side; /* the asking side */
    qk_lease lease;
} qk_peer_lease_msg;

/* The checks the decoder runs on a filled message (also run by the encoder): 0 or QK_EINVAL. */
int qk_peer_lease_check(const qk_peer_lease_msg *m, qk_err *err);
int qk_peer_lease_encode(const qk_peer_lease_msg *m, char **out, qk_err *err);
int qk_peer_lease_decode(const char *body, size_t len, qk_peer_lease_msg *m, qk_err *err);

/* ---- POST /peer/v1/notices ---------------------------------------------------------------
 * {"link","side","notices":[{"request_id","master","slaves":[..],"expires_at",
 *  "keys":[{"key_ID","block_id","offset","length"}]}]}: requests the sender (carving as side)
 * served from its granted leases. Checked as reserve (IDs, 1..1+max_sae_id_count slaves,
 * 1..max_keys_per_request keys of 1..max_size_bits/8 bytes, UUID key IDs, ranges within a
 * block), no check member (the lease's check covered the bytes), 1..QK_PEER_NOTICES_MAX
 * notices, no request_id twice. A decoded message owns its notices (qk_notice as in store.h:
 * slaves and keys malloc'ed; check fields zero): free with qk_peer_notices_msg_free. The
 * encoder answers QK_ELIMIT when the body would exceed QK_PEER_MSG_MAX (send fewer notices).
 *
 * Runs (docs/adr/0003-request-records.md, "Wire"): instead of "keys" a notice may carry
 * "runs":[{"prefix","block_id","offset","length","count"}], its keys in order: run r holds
 * count keys, key i (0 <= i < count) with the ID prefix || 4 lower-case hex digits of i (prefix:
 * QK_PEER_RUN_PREFIX_LEN characters, so that every ID is a UUID) and the range [offset +
 * i*length, offset + (i+1)*length) of block_id. ~100 bytes per run instead of per key. An entry
 * carries "keys" or "runs", never both; the decoder expands runs into keys (the same qk_notice
 * either way, the same checks per key, at most max_keys_per_request keys in all). The encoder
 * writes runs only when m->runs (the peer said it takes them: qk_peer_notices_answer.runs) and
 * only for a notice whose keys all fall into runs; any other notice, and every notice to a
 * peer that never said so (an older KME ignores the member and keeps key lists), goes as keys. */
#define QK_PEER_NOTICES_MAX    1024 /* notices per call: the ceiling of notice_batch */
#define QK_PEER_RUN_PREFIX_LEN (QK_KEY_ID_LEN - 4)

typedef struct {
    qk_peer_id link;
    qk_side side; /* the side the sender carved as */
    qk_notice *notices;
    size_t n;  /* 1..QK_PEER_NOTICES_MAX */
    bool runs; /* encode: runs where the keys allow; decoded: an entry came as runs */
} qk_peer_notices_msg;

int qk_peer_notices_encode(const qk_peer_notices_msg *m, char **out, qk_err *err);
/* Test hooks (tests/unit/test_kms_reserve.c): keys_only makes this process decode notices and
 * answer them as a KME older than the run form does (a "runs" entry is refused for its missing
 * "keys", and no answer says "runs"); runs_in counts the notices decoded from runs. */
extern _Atomic bool qk_peer_msg_test_keys_only;
extern _Atomic unsigned long qk_peer_msg_test_runs_in;
int qk_peer_notices_decode(const char *body, size_t len, const qk_peer_msg_limits *lim,
                           qk_peer_notices_msg *m, qk_err *err);
/* Free what a decoded message owns (notices and their slaves and keys); m is zeroed. */
void qk_peer_notices_msg_free(qk_peer_notices_msg *m);

/* The answer: 200 {"results":[{"request_id","result":"reserved"|"refused","reason",
 * "held":[{"master","slave","count"}]}],"runs":true}, one result per notice, in order. "runs"
 * (optional, only ever true): the answering KME decodes notices in the run form above; an
 * answer without it (an older KME) means key lists only. reason is present
 * iff refused: the qk_peer_reason name of status (QK_ECOLLISION "collision", QK_EINVAL
 * "bad-request", QK_ENOTFOUND "unknown-block", QK_EMISMATCH "mismatch", QK_EQUOTA "limit",
 * anything else "internal", decoded as QK_EPEER). held: for each (master, slave) of the
 * request, the keys the peer holds for the pair after the batch (0..QK_PEER_SLAVES_MAX
 * entries, count < 2^53). */
typedef struct {
    qk_peer_id master, slave;
    uint64_t count;
} qk_peer_held;

typedef struct {
    qk_peer_id request_id;
    int status;         /* 0 reserved, else a qk status (QK_ECOLLISION, QK_EINVAL, ...) */
    qk_peer_held *held; /* per (master, slave) of this request: keys the peer now holds */
    size_t nheld;       /* 0..QK_PEER_SLAVES_MAX */
} qk_peer_notice_result;

typedef struct {
    qk_peer_notice_result *r;
    size_t n;  /* 0..QK_PEER_NOTICES_MAX */
    bool runs; /* the peer takes notices as runs */
} qk_peer_notices_answer;

int qk_peer_notices_answer_encode(const qk_peer_notices_answer *a, char **out, qk_err *err);
int qk_peer_notices_answer_decode(const char *body, size_t len, qk_peer_notices_answer *a,
                                  qk_err *err);
/* Free what a decoded answer owns (r and each held); a is zeroed. */
void qk_peer_notices_answer_free(qk_peer_notices_answer *a);

/* ---- every error answer: {"message": "...", "reason": "..."} ----------------------------
 * reason is absent (QK_PEER_REASON_NONE) in the answers the request envelope writes itself
 * (405, 413) and in its fallback for a reply that could not be built. */
typedef enum {
    QK_PEER_REASON_NONE = 0,
    QK_PEER_REASON_COLLISION,     /* 409: a range overlaps one recorded here */
    QK_PEER_REASON_MISMATCH,      /* 409: a check differs: the blocks are burned */
    QK_PEER_REASON_UNKNOWN_BLOCK, /* 404: a block this KME does not hold */
    QK_PEER_REASON_BURNED,        /* 409: the request ID was burned */
    QK_PEER_REASON_LIMIT,         /* 409: a (master, slave) pair would exceed max_key_count */
    QK_PEER_REASON_BAD_REQUEST,   /* 400 */
    QK_PEER_REASON_FORBIDDEN,     /* 403: not a linked peer, or not the caller's link */
    QK_PEER_REASON_NOT_FOUND,     /* 404: unknown path or request */
    QK_PEER_REASON_INTERNAL,      /* 500 */
    QK_PEER_REASON_SOURCE,        /* 409: the link's key source does not take this message */
    QK_PEER_REASON_DEVICE,        /* 409: this KME's device did not give the keys (device-keys) */
    QK_PEER_REASON_DEVICE_DOWN,   /* 503: this KME's device cannot be reached (device-keys) */
    QK_PEER_REASON_STORAGE,       /* 500: this KME's store failed (e.g. disk full) */
} qk_peer_reason;

#define QK_PEER_REASON_COUNT (QK_PEER_REASON_STORAGE + 1)

/* "collision", "unknown-block", ...; NULL for NONE or a value out of range. */
const char *qk_peer_reason_name(qk_peer_reason r);

typedef struct {
    qk_peer_reason reason;
    char message[QK_PEER_MESSAGE_MAX + 1];
} qk_peer_error_msg;

int qk_peer_error_encode(const qk_peer_error_msg *m, char **out, qk_err *err);
int qk_peer_error_decode(const char *body, size_t len, qk_peer_error_msg *m, qk_err *err);

#endif
