/* relay_msg.h - the wire format of trusted-node key relay (docs/adr/0004-key-relay.md, "The
 * relay message"): the hop message (POST /peer/v1/relay), its answer, and the burn message
 * (POST /peer/v1/relay-burn), each encoder beside its decoder, as kms/peer_msg.h does for the
 * other /peer/v1 messages (whose ID check, qk_peer_id_check, and limits this reuses).
 *
 * Every message carries "v": QK_RELAY_VERSION; a decoder refuses any other version (QK_EINVAL,
 * the message says "v: ..."), so a later format is a new number, never a silent reinterpretation.
 * Decoders take untrusted bytes (len need not be NUL-terminated) and validate before they
 * parse: body size (QK_RELAY_MSG_MAX), JSON syntax, member types, array counts before entries,
 * integer ranges, ID syntax (request IDs of at most QK_RELAY_ID_MAX characters), UUID key IDs
 * (normalised to lower case), no node twice in a path, no key ID twice, lengths that add up (the
 * hop key: a 32-byte MAC key first, then pad pieces whose lengths add up to the end-to-end bytes;
 * the ciphertext exactly that long). Unknown members are ignored. A decoder answers 0, QK_EINVAL
 * (err->msg names the member) or QK_ENOMEM; on failure the output is zeroed and holds nothing to
 * free. Encoders run the same checks (QK_EINVAL) and write compact JSON into a malloc'ed string
 * (*out; free() it).
 *
 * The ciphertext is the end-to-end key XORed with this hop's pad (relay_crypto.h): it tells
 * nothing about the key without the pad, but it is still wiped when freed. */
#ifndef QK_RELAY_MSG_H
#define QK_RELAY_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "peer_msg.h"
#include "qk_err.h"
#include "relay_crypto.h"
#include "route.h"
#include "store.h"

#define QK_RELAY_VERSION      1
#define QK_RELAY_MSG_MAX      (256u * 1024u)      /* the largest body a decoder takes */
#define QK_RELAY_PATH_MAX     16                  /* nodes in a path: at most 15 hops */
#define QK_RELAY_KEYS_MAX     128                 /* end-to-end keys in one relayed request */
#define QK_RELAY_HOP_KEYS_MAX 17                  /* the MAC key and up to 16 pad pieces */
#define QK_RELAY_TIME_MAX     9007199254740991ull /* 2^53-1: times exact as JSON numbers */
/* A relay request ID leaves room for the hop suffix "/NN" of each hop's own request in the
 * store (docs/adr/0004-key-relay.md, "Taking a hop's key"), within QK_STORE_ID_MAX. */
#define QK_RELAY_ID_MAX (QK_STORE_ID_MAX - 8)

/* An end-to-end key as it travels: its ID (the one both SAEs will see) and its length. */
typedef struct {
    char key_id[QK_KEY_ID_LEN + 1];
    uint32_t length; /* bytes, 1..max_size_bits/8 */
} qk_relay_key;

/* ---- POST /peer/v1/relay --------------------------------------------------------------------
 * {"v":1,"request_id","path":[KME IDs],"hop":i,"master","slaves":[SAE IDs],"expires_at":s,
 *  "deadline_ms":ms,"keys":[{"key_ID","length"}],
 *  "hop_key":{"link","side":"low"|"high","keys":[{"key_ID","block_id","offset","length"}]},
 *  "ct":base64,"tag":32 hex}
 * path[hop] sends, path[hop+1] receives; path[0] is the master's KME (it made the key),
 * path[last] the slaves' KME. hop_key names the ranges of the link's key the sender carved
 * for this hop as its own request (the side it carved as): keys[0] the 32-byte MAC key,
 * keys[1..] the pad, in order. */
typedef struct {
    qk_peer_id request_id;
    size_t npath; /* 2..QK_RELAY_PATH_MAX */
    qk_peer_id path[QK_RELAY_PATH_MAX];
    uint32_t hop; /* 0..npath-2 */
    qk_peer_id master;
    size_t nslaves; /* 1..1+max_sae_id_count (<= QK_PEER_SLAVES_MAX) */
    qk_peer_id slaves[QK_PEER_SLAVES_MAX];
    uint64_t expires_at;  /* wall-clock seconds, < 2^53 */
    uint64_t deadline_ms; /* wall-clock milliseconds: give up (and burn) after it, < 2^53 */
    size_t nkeys;         /* 1..min(max_keys_per_request, QK_RELAY_KEYS_MAX) */
    qk_relay_key keys[QK_RELAY_KEYS_MAX];
    qk_peer_id link;                            /* the hop's link */
    qk_side side;                               /* the side the sender carved the hop key as */
    size_t nhop_keys;                           /* 2..QK_RELAY_HOP_KEYS_MAX */
    qk_key_ref hop_keys[QK_RELAY_HOP_KEYS_MAX]; /* check fields unused (zero) */
    size_t ct_len;                              /* the sum of keys[].length, <= QK_RELAY_DATA_MAX */
    uint8_t *ct; /* encode: the caller's; decoded: owned (qk_relay_msg_free) */
    uint8_t tag[QK_RELAY_TAG_LEN];
} qk_relay_msg;

/* The checks the decoder runs on a filled message (also run by the encoder): 0 or QK_EINVAL. */
int qk_relay_msg_check(const qk_relay_msg *m, const qk_peer_msg_limits *lim, qk_err *err);
int qk_relay_msg_encode(const qk_relay_msg *m, const qk_peer_msg_limits *lim, char **out,
                        qk_err *err);
int qk_relay_msg_decode(const char *body, size_t len, const qk_peer_msg_limits *lim,
                        qk_relay_msg *m, qk_err *err);
/* Wipe and free the ciphertext of a decoded message; m is zeroed. */
void qk_relay_msg_free(qk_relay_msg *m);

/* The associated data the hop's tag covers (relay_crypto.h): every member but ct and tag, in a
 * fixed binary layout - "qkd-kms relay v1", then each ID as len16 | bytes, integers big-endian
 * (hop u32, expires_at and deadline_ms u64, lengths and offsets u32, block IDs u64), counts as
 * u16 before their entries. A checked message always fits QK_RELAY_AD_MAX. QK_EINVAL when m
 * fails the checks, QK_ELIMIT when cap is too small. */
int qk_relay_msg_ad(const qk_relay_msg *m, const qk_peer_msg_limits *lim, uint8_t *ad, size_t cap,
                    size_t *ad_len, qk_err *err);

/* ---- the answer: {"v":1,"request_id","status":"stored"|"refused","reason","hop"} ------------
 * stored: the destination KME holds the keys for the slaves (every hop before it answered after
 * the next one). refused: nothing was stored anywhere and everything carved for the request is
 * burned; reason says why and hop (0..QK_RELAY_PATH_MAX-1) which node of the path refused. */
typedef enum {
    QK_RELAY_STORED = 0,
    QK_RELAY_REFUSED = 1,
} qk_relay_status;

typedef enum {
    QK_RELAY_REASON_NONE = 0,
    QK_RELAY_REASON_MAC,         /* the hop's tag did not verify */
    QK_RELAY_REASON_NO_KEY,      /* a link on the path has no key for the hop */
    QK_RELAY_REASON_LINK_DOWN,   /* the next node could not be reached */
    QK_RELAY_REASON_EXPIRED,     /* the deadline passed */
    QK_RELAY_REASON_HOP_KEY,     /* the hop key is unknown, used, or not in the sender's lease */
    QK_RELAY_REASON_EXISTS,      /* the request ID or a key ID is already known here */
    QK_RELAY_REASON_BAD_REQUEST, /* the message failed its checks (a version too) */
    QK_RELAY_REASON_INTERNAL,
    QK_RELAY_REASON_LIMIT, /* the slaves' KME holds max_key_count keys for a (master, slave) pair */
} qk_relay_reason;

#define QK_RELAY_REASON_COUNT (QK_RELAY_REASON_LIMIT + 1)

/* "mac", "no-key", ...; NULL for NONE or a value out of range. */
const char *qk_relay_reason_name(qk_relay_reason r);

typedef struct {
    qk_peer_id request_id;
    qk_relay_status status;
    qk_relay_reason reason; /* NONE iff stored */
    uint32_t hop;           /* refused: the index in the path of the node that refused */
} qk_relay_answer;

int qk_relay_answer_encode(const qk_relay_answer *a, char **out, qk_err *err);
int qk_relay_answer_decode(const char *body, size_t len, qk_relay_answer *a, qk_err *err);

/* ---- POST /peer/v1/relay-burn: {"v":1,"request_id","path":[..],"hop":i} -------------------
 * path[hop] tells path[hop+1] to burn what it carved or stored for request_id and to pass the
 * message on (idempotent: an unknown request ID is burned as a tombstone). */
typedef struct {
    qk_peer_id request_id;
    size_t npath;
    qk_peer_id path[QK_RELAY_PATH_MAX];
    uint32_t hop;
} qk_relay_burn_msg;

int qk_relay_burn_encode(const qk_relay_burn_msg *m, char **out, qk_err *err);
int qk_relay_burn_decode(const char *body, size_t len, qk_relay_burn_msg *m, qk_err *err);

/* ---- POST /peer/v1/relay-commit: {"v":1,"request_id","path":[..],"hop":i,"verb":"commit"} --
 * The master KME (path[0]) committed request_id: path[hop] tells path[hop+1], which passes it
 * on; the slaves' KME (path[last]) makes the keys fetchable. The decoder requires the verb (a
 * burn's body is never taken as a commit). */
typedef qk_relay_burn_msg qk_relay_commit_msg;

int qk_relay_commit_encode(const qk_relay_commit_msg *m, char **out, qk_err *err);
int qk_relay_commit_decode(const char *body, size_t len, qk_relay_commit_msg *m, qk_err *err);

/* ---- GET /peer/v1/topology: {"v":1,"reports":[{"node","seq","links":[{"peer","up",
 * "available","rate"}]}]} ------------------------------------------------------------------
 * The answering KME's own report and those it holds from others (docs/adr/0004-key-relay.md,
 * "How topology is learned"; qk_topo_add_reports turns them into a view). Checked: 1..
 * QK_ROUTE_NODES_MAX reports, no node twice; 0..QK_TOPO_REPORT_LINKS_MAX links each, IDs as
 * everywhere, no peer twice in a report, never the reporting node itself; seq, available and
 * rate below 2^53. The struct is ~300 KiB: allocate it. */
#define QK_TOPO_MSG_MAX (1024u * 1024u)

typedef struct {
    size_t n;
    qk_topo_report reports[QK_ROUTE_NODES_MAX];
} qk_topo_msg;

int qk_topo_msg_check(const qk_topo_msg *m, qk_err *err);
int qk_topo_msg_encode(const qk_topo_msg *m, char **out, qk_err *err);
int qk_topo_msg_decode(const char *body, size_t len, qk_topo_msg *m, qk_err *err);

#endif
