/* device_source.h - links whose key comes from a QKD device's own ETSI GS QKD 014 interface
 * ([link PEER] source = etsi014, docs/qkd-kmed.md "Key sources"): the ETSI 014 client side of
 * qkd-kmed. It lives in kms/ so that both users reach it without an upward include: the puller
 * threads started by kmed/main.c, and the peer zone's POST /peer/v1/device-keys handler
 * (peer/peer_api.c), which fetches the keys its peer named from this KME's own device.
 *
 * The pulling end (device_pull = yes) GETs .../keys/{device_peer_sae}/status, POSTs enc_keys
 * {"number","size"} (capped by the status's max_key_per_request and max_key_size), checks the
 * answer strictly (qk_device_keys_parse), builds one block of the keys' bytes in order, stores
 * it PENDING, then names the keys to the peer (qk_peer_device_keys). The other end POSTs
 * dec_keys {"key_IDs":[..]} to .../keys/{device_peer_sae}/dec_keys and stores the same block.
 * Both blocks stay PENDING until the sync thread's inventory compares their digests, as for
 * simulator blocks: no key is served from them before.
 *
 * Key bytes are only held in qk_secure_alloc buffers (wiped and freed once the block is
 * stored); the answer bodies and their parsed JSON are wiped before they are freed; nothing
 * here logs key bytes. Every device call is bounded by QK_DEVICE_TIMEOUT_MS (connect:
 * QK_DEVICE_CONNECT_TIMEOUT_MS), every peer call by [peer_client] timeout. */
#ifndef QK_DEVICE_SOURCE_H
#define QK_DEVICE_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "kms.h"
#include "peer_msg.h"
#include "qk_err.h"
#include "store.h"

#define QK_DEVICE_TIMEOUT_MS         3000
#define QK_DEVICE_CONNECT_TIMEOUT_MS 1000
#define QK_DEVICE_BACKOFF_MAX_MS     30000
/* A notice the peer KME could not be sent (transport error) is retried, before any new pull,
 * for this long; then its block is burned here (the peer never built it, or the inventory
 * burns its copy). */
#define QK_DEVICE_NOTICE_RETRY_MS 300000
#define QK_DEVICE_ANSWER_MAX      (8u * 1024u * 1024u) /* a larger answer is refused */

/* ---- pure checks of the device's answers (unit-tested against recorded answers) ---------- */

/* The members of an ETSI 014 Status (clause 6.1) the puller uses. */
typedef struct {
    uint32_t max_key_per_request;
    uint32_t max_key_size; /* bits */
    uint32_t min_key_size; /* bits */
    char master_sae[QK_STORE_ID_MAX + 1];
    char slave_sae[QK_STORE_ID_MAX + 1];
} qk_device_status;

/* Parse a Status body: the three limits must be positive integers, min_key_size <=
 * max_key_size; the SAE IDs are copied when present (else ""). 0 or QK_EINVAL. */
int qk_device_status_parse(const char *body, size_t len, qk_device_status *st, qk_err *err);

/* Parse a Key container (ETSI 014 clause 6.3: {"keys":[{"key_ID","key"}, ..]}) holding keys of
 * exactly key_bytes bytes each (after base64). want NULL (an enc_keys answer): 1..cap keys, in
 * the device's order. want non-NULL (a dec_keys answer): exactly the nwant keys named (nwant
 * <= cap), in any order; they are written in want's order. Key IDs must be UUIDs (written
 * normalised to lower case into ids[]) and appear once. bytes (cap * key_bytes, the caller's
 * secure buffer) receives the keys one after the other; *n their count. On failure QK_EINVAL
 * with err naming the problem, *n = 0 and bytes wiped. */
int qk_device_keys_parse(const char *body, size_t len, size_t cap, uint32_t key_bytes,
                         const char (*want)[QK_KEY_ID_LEN + 1], size_t nwant,
                         char (*ids)[QK_KEY_ID_LEN + 1], uint8_t *bytes, size_t *n, qk_err *err);

/* The pause after a device error: base_ms after the first, then doubling, at most
 * QK_DEVICE_BACKOFF_MAX_MS (cur_ms: the previous pause, 0 = none). */
uint64_t qk_device_backoff_next(uint64_t cur_ms, uint64_t base_ms);

/* The next block ID of a pulling end: max(now_ms, last + 1), below 2^53. */
uint64_t qk_device_next_block_id(uint64_t last, uint64_t now_ms);

/* ---- the sources of a KME ---------------------------------------------------------------- */

typedef struct qk_device_sources qk_device_sources;

/* One source per etsi014 link of k; a puller thread for each with device_pull = yes. k must
 * outlive the object. */
int qk_device_sources_start(qk_kms *k, qk_device_sources **out, qk_err *err);
/* Stop the pullers (each returns within one pause or one bounded call) and free. NULL: no-op. */
void qk_device_sources_stop(qk_device_sources *s);

/* The peer's device-keys notice on link: fetch m's keys from this KME's device (dec_keys) and
 * store the block m->block_id PENDING. 0 = stored (or the same block already held); QK_EINVAL
 * when link is not an etsi014 link or is its pulling end; QK_ENOTFOUND when the device did not
 * give every key as asked (4xx, a malformed or mismatched answer), or the block cannot be
 * stored (pool full, another block under that ID); QK_EPEER when the device cannot be reached
 * (transport error, 5xx); QK_ESTORAGE on a store error. */
int qk_device_sources_fetch(qk_device_sources *s, qk_link *link, const qk_peer_device_keys_msg *m,
                            qk_err *err);

/* The qkd_device_* families (Prometheus text format) for every etsi014 link; nothing when
 * there is none. A qk_metrics writer: arg is the qk_device_sources. 0 or -1. */
int qk_device_sources_write_metrics(void *arg, FILE *f);

#endif
