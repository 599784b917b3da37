/* core.h - the KME core API that the ETSI 014 and SKIP layers call. It hides the key store,
 * the SAE registry and the peer synchronisation (leases and notices over the peer API).
 * Thread-safe: handlers call it concurrently. */
#ifndef QK_CORE_H
#define QK_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"
#include "store.h"

typedef struct qk_kms qk_kms; /* the running KME: config, store, peers (kms/kms.c) */

typedef struct {
    uint32_t default_size_bits; /* key_size reported by status, used when size is absent */
    uint32_t min_size_bits;
    uint32_t max_size_bits;
    uint32_t max_keys_per_request;
    uint64_t max_key_count;    /* per SAE pair, what status reports */
    uint32_t max_sae_id_count; /* additional slave SAE IDs supported (0 = no multicast) */
    uint64_t reservation_lifetime_s;
} qk_key_limits;

typedef struct {
    const char *requester;     /* master identity: ETSI master SAE ID, or SKIP source id */
    const char *target_kme;    /* KME holding the slaves: a linked peer KME, this KME, a KME
                                  reached through the relay (docs/adr/0004-key-relay.md), or
                                  NULL: each slave's home KME (multicast across KMEs, relayed) */
    const char *const *slaves; /* identities that may fetch at target_kme (>= 1) */
    size_t nslaves;
    size_t number;      /* >= 1, <= max_keys_per_request */
    uint32_t size_bits; /* multiple of 8 within [min, max] */
} qk_key_request;

/* Why a call to a peer KME failed, as the SAE's answer and the metrics
 * (qkd_peer_failures_total{reason}) tell it: no answer of the peer's own (unreachable: a
 * transport error or time-out, or an error status without a reason, e.g. from a proxy or a
 * busy worker pool), the peer's store failed (storage, e.g. a full disk), a max_key_count or
 * size limit at the peer (limit), the two ends hold different key material (mismatch), or any
 * other refusal (refused: collision, unknown block, bad request, internal). */
typedef enum {
    QK_PEER_FAIL_UNREACHABLE = 0,
    QK_PEER_FAIL_STORAGE,
    QK_PEER_FAIL_LIMIT,
    QK_PEER_FAIL_MISMATCH,
    QK_PEER_FAIL_REFUSED,
    QK_PEER_FAIL_COUNT
} qk_peer_fail;

/* "unreachable", "storage", "limit", "mismatch", "refused"; "unreachable" out of range. */
const char *qk_peer_fail_name(qk_peer_fail f);
/* The reason of a failed peer call from the status it returned (kms/peer_client.h: a transport
 * error, QK_ESTORAGE, QK_EQUOTA / QK_ELIMIT, QK_EMISMATCH, or another refusal). */
qk_peer_fail qk_peer_fail_of(int status);

typedef struct {
    size_t n;
    char (*ids)[QK_KEY_ID_LEN + 1]; /* malloc'ed, n entries */
    uint32_t *lens;                 /* bytes per key, n entries */
    uint8_t **keys;                 /* n pointers into material */
    uint8_t *material;              /* qk_secure_alloc'ed, sum of lens */
    qk_peer_fail peer_fail;         /* qk_kms_reserve failed with QK_EPEER: the peer's reason */
    char relay_why[160]; /* a relayed request failed (QK_EPEER): why, for the SAE ("" else) */
} qk_key_batch;

/* Reserve `number` keys shared with target_kme for req->slaves. On success the keys are
 * consumed here: for a linked peer, carved inside the range the peer granted this KME ahead of
 * demand (a lease) and committed at once, the peer told later by the link's notifier (a
 * slave's fetch there waits for it; docs/adr/0002-key-store.md, "Leases and notices"); for
 * this KME, from the local pool. max_key_count per (requester, slave) pair (ETSI GS QKD 014
 * clause 6.1) holds at the KME that holds the keys for the slave: checked here, with the
 * reservation under one lock, for a same-KME request; for a remote one against what the peer
 * reported holding plus the keys on their way (refreshed from the peer when it refuses).
 * Errors: QK_EINVAL (bad size/number/slaves, unknown target), QK_EQUOTA (a same-KME pair
 * would exceed max_key_count; the message names the slave and how many keys it holds),
 * QK_EQUOTA also when the pair at the peer would exceed it (from the count the peer reported),
 * QK_ENOKEY (pool cannot satisfy), QK_EPEER (no granted room left and the peer unreachable or
 * refusing leases; nothing is delivered; out->peer_fail says why), QK_ESTORAGE (this KME's
 * store). A failed request consumes nothing usable. */
int qk_kms_reserve(qk_kms *k, const qk_key_request *req, qk_key_batch *out, qk_err *err);

/* Fetch keys reserved for `caller` (a slave identity) by ID, all or nothing, in the order
 * asked. master: if non-NULL the keys must have been requested by that master. A key ID never
 * recorded here (its notice may be on its way from the peer) is waited for, up to
 * [hot_path] notice_wait, blocking the calling thread. Errors:
 * QK_ENOTFOUND (unknown / already fetched / expired / other master), QK_EUNAUTH (caller is
 * not a slave of a key), QK_ESTORAGE. */
int qk_kms_fetch(qk_kms *k, const char *caller, const char *master, const char *const *ids,
                 size_t n, qk_key_batch *out, qk_err *err);

void qk_key_batch_free(qk_key_batch *b); /* wipes material */

/* Whether n more keys fit under lim->max_key_count for a pair already holding `held` keys not
 * yet fetched by its slave (overflow-safe). */
bool qk_kms_quota_ok(const qk_key_limits *lim, uint64_t held, size_t n);

const char *qk_kms_node_id(const qk_kms *k);
const qk_key_limits *qk_kms_limits(const qk_kms *k);

/* SAE registry: the KME an SAE is attached to. QK_ENOTFOUND if unknown. */
int qk_kms_sae_home(const qk_kms *k, const char *sae_id, const char **kme_id);
/* Certificate binding of an SAE ([sae X] fingerprint): true when sae_id has no binding, or
 * when fp_hex (the client certificate's SHA-256, 64 hex digits, as in
 * qk_peer_identity.fp_hex) equals the configured fingerprint. False for an unknown SAE, or a
 * bound SAE presenting another (or no) certificate. */
bool qk_kms_sae_cert_ok(const qk_kms *k, const char *sae_id, const char *fp_hex);
/* Whether the relay is on ([relay] enabled): slaves at non-neighbours, and multicast to slaves
 * at several KMEs. */
bool qk_kms_relay_on(const qk_kms *k);
/* Whether kme_id is this KME or a linked peer. */
bool qk_kms_knows_kme(const qk_kms *k, const char *kme_id);
/* Whether slaves at kme_id can get keys from this KME: this KME, a linked peer, or a KME the
 * relay reaches ([relay] enabled and the topology knows it: docs/adr/0004-key-relay.md). */
bool qk_kms_reaches_kme(qk_kms *k, const char *kme_id);

/* Pool status of the link to peer_kme (or the local pool when peer_kme is this KME). */
int qk_kms_pool_status(qk_kms *k, const char *peer_kme, qk_pool_status *st, qk_err *err);
/* Keys reserved for slave by master and not yet fetched (ETSI stored_key_count). */
int qk_kms_stored_count(qk_kms *k, const char *master, const char *slave, uint64_t *n, qk_err *err);

#endif
