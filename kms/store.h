/* store.h - the KME key store on SQLite (see docs/adr/0002-key-store.md).
 *
 * Model
 * - A link (by ID, e.g. "KME_A~KME_B") receives blocks (block_id, bytes) from the device feed.
 *   A block is PENDING until both ends agree on it (inventory exchange), then CONFIRMED; a
 *   block found to differ between the ends is BURNED (material wiped).
 * - The first QK_BLOCK_VKEY_LEN bytes of every block are its verification key and are never
 *   carved: check values and block digests are BLAKE2b keyed hashes under it, so the two
 *   ends can compare material without sending key bits.
 * - Keys are carved from confirmed blocks as (block_id, offset, length) ranges inside one
 *   block. The low side of a link (lower KME ID) carves from the oldest blocks, from the
 *   front; the high side from the newest blocks, from the back. Every range ever carved at
 *   either end is recorded (metadata only) and no range is used twice: a peer range that
 *   overlaps a recorded one is refused (QK_ECOLLISION).
 * - Material lives in per-block segments of QK_SEG_BYTES (QK_SEG_BYTES_V1 for blocks stored
 *   before schema v7: blocks.seg_bytes), each encrypted with
 *   XChaCha20-Poly1305 under the node master key (AD binds link, block and segment index).
 *   When a key is delivered or burned, its range is zeroed in the segments (re-encrypted) and
 *   a fully consumed segment row is deleted; SQLite runs with secure_delete=ON and WAL.
 * - A request groups the keys of one reservation (request_id, idempotent). Outgoing requests
 *   (this KME carved) are PENDING until the peer acks, then committed; incoming ones are
 *   recorded as RESERVED for their slaves.
 * - A key is bound to a master identity and a list of slave identities; each slave fetches
 *   its copy once; the range is zeroed when every slave has fetched it or it expires.
 * - Keys carved from leases (qk_store_carve_owned) are recorded as runs, one record per block
 *   of a request, their key IDs derived from it (docs/adr/0003-request-records.md); the peer
 *   records a one-slave notice of such keys as runs too, with the per-key state exact.
 * - The special link QK_LOCAL_LINK holds locally generated (CSPRNG) blocks for SAE pairs on
 *   the same KME; it needs no peer and its blocks are confirmed at once.
 *
 * Every call is one transaction; the store is safe to use from several threads (it
 * serializes writers internally). Key bytes never reach logs or error messages. */
#ifndef QK_STORE_H
#define QK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"

#define QK_MASTER_KEY_LEN  32
#define QK_BLOCK_VKEY_LEN  32
#define QK_SEG_BYTES       4096 /* segments of new blocks, and the largest (schema v7) */
#define QK_SEG_BYTES_V1    1024 /* segments of blocks stored before schema v7 */
#define QK_BLOCK_MAX_BYTES (4u * 1024u * 1024u)
#define QK_CHECK_LEN       32
#define QK_KEY_ID_LEN      36 /* canonical UUID text */
#define QK_LOCAL_LINK      "local"
#define QK_STORE_ID_MAX    128 /* link IDs, identities, request IDs */

typedef struct qk_store qk_store;

/* Open (create if missing) and migrate the database; master_key is copied to secure memory.
 * A database created under another master key is refused (QK_EMISMATCH). */
int qk_store_open(const char *path, const uint8_t master_key[QK_MASTER_KEY_LEN], qk_store **out,
                  qk_err *err);
typedef struct {
    /* Replies at commit (docs/adr/0002-key-store.md): an inline handler's carve from this
     * end's leases is answered once committed, before its WAL sync (which follows within
     * ~100 ms), when this boot's ID can be read. A crash of the process loses nothing; after a
     * power loss or OS crash the next open burns the unused room of every lease this end
     * holds, and keys answered in the last moments before it may be unknown at the slave
     * (never delivered twice). Off (the default): every reply waits for its sync. */
    bool reply_at_commit;
    /* Other processes may read the database file while it is open (`[store] lock = shared`):
     * SQLite's WAL index in shared memory and its file locks, taken and released with system
     * calls around every transaction. False (the default): this process holds an exclusive
     * lock from open to close (SQLite's "unix-excl" VFS, the WAL index in this process's
     * memory, shared by the store's own two connections), and no other store, in this process
     * or another, opens the file meanwhile; the
     * store's copies of rows in memory (segments, runs) rely on being the only writer, and a
     * second qkd-kmed on the same data directory fails to start (docs/adr/0002-key-store.md,
     * "One process per store"). */
    bool shared_lock;
    /* The IDs of the keys this end carves as master from a link's pool
     * (`[store] key_ids = time-ordered`; docs/adr/0003-request-records.md, "Key IDs derived from
     * the run"): false (the default), a run's ID prefix is random, version-4 UUIDs; true, it is
     * a version-7 UUID's (RFC 9562 section 5.7: the millisecond, then random bits), so the
     * index of run IDs grows at its right edge at both ends instead of taking a random leaf per
     * run. The IDs then tell anyone who sees them when the key was issued, to the millisecond
     * (RFC 9562 section 8). Runs of either form are read and fetched whatever this says. */
    bool time_ordered_ids;
} qk_store_opts;
/* qk_store_open with options (NULL: the defaults, as qk_store_open). */
int qk_store_open_with(const char *path, const uint8_t master_key[QK_MASTER_KEY_LEN],
                       const qk_store_opts *opts, qk_store **out, qk_err *err);
void qk_store_close(qk_store *s);
int qk_store_schema_version(qk_store *s);
/* Whether replies at commit are on: asked for (qk_store_opts) and this boot's ID known. */
bool qk_store_replies_at_commit(const qk_store *s);
/* Whether this open recovered from a power loss or OS crash (1) or not (0): the machine
 * rebooted since the last open, which did not close cleanly, so commits answered before their
 * sync may be lost; the open then burned the uncarved room of every lease this end held
 * (*blocks blocks, *bytes bytes; either may be NULL). */
int qk_store_recovery(qk_store *s, uint64_t *blocks, uint64_t *bytes);

/* ---- blocks --------------------------------------------------------------------------- */
typedef enum { QK_BLOCK_PENDING = 0, QK_BLOCK_CONFIRMED = 1, QK_BLOCK_BURNED = 2 } qk_block_state;
typedef enum {
    QK_PUT_NEW = 0,
    QK_PUT_DUPLICATE = 1,
    QK_PUT_CONFLICT = 2,
    QK_PUT_FULL = 3 /* refused: the link's pool is at its cap (qk_store_block_put_capped) */
} qk_put_result;

/* Store a block delivered by the device. len in (QK_BLOCK_VKEY_LEN, QK_BLOCK_MAX_BYTES].
 * Same block_id again with identical bytes: QK_PUT_DUPLICATE (no change). Same block_id
 * with different bytes: the block is burned, *res = QK_PUT_CONFLICT, returns 0. Blocks may
 * arrive in any order. */
int qk_store_block_put(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                       size_t len, qk_put_result *res, qk_err *err);
/* qk_store_block_put with a cap on the key material the link holds: the uncarved bytes of its
 * pending and confirmed blocks (qk_pool_status.bytes_held; the 32-byte verification key of
 * each block excluded). A new block that would take the link past max_pool_bytes is refused:
 * nothing stored, *res = QK_PUT_FULL, the refusal counted (blocks_refused_full, and the link
 * reported full until a new block is stored again), returns 0. Duplicates and conflicts are
 * handled first, as by qk_store_block_put. max_pool_bytes 0 = no cap (qk_store_block_put). */
int qk_store_block_put_capped(qk_store *s, const char *link, uint64_t block_id,
                              const uint8_t *bytes, size_t len, uint64_t max_pool_bytes,
                              qk_put_result *res, qk_err *err);
/* Keyed digest of the whole block (for the inventory exchange). QK_ENOTFOUND if unknown. */
int qk_store_block_digest(qk_store *s, const char *link, uint64_t block_id,
                          uint8_t digest[QK_CHECK_LEN], qk_block_state *state, qk_err *err);
/* PENDING -> CONFIRMED, or -> BURNED (wipes all its material and marks every key carved from
 * it burned). Confirming a burned block is refused (QK_EINVAL). Idempotent. */
int qk_store_block_set_state(qk_store *s, const char *link, uint64_t block_id, qk_block_state st,
                             qk_err *err);
/* Up to cap block IDs of a link in a state, oldest first, received before before_s (0: any). */
int qk_store_blocks_in_state(qk_store *s, const char *link, qk_block_state st, uint64_t before_s,
                             uint64_t *ids, size_t cap, size_t *n, qk_err *err);
/* Add a locally generated (CSPRNG) confirmed block of len bytes to QK_LOCAL_LINK. */
int qk_store_local_refill(qk_store *s, size_t len, qk_err *err);

/* ---- reservations --------------------------------------------------------------------- */
typedef enum { QK_SIDE_LOW = 0, QK_SIDE_HIGH = 1 } qk_side;

typedef struct {
    char key_id[QK_KEY_ID_LEN + 1];
    uint64_t block_id;
    uint32_t offset; /* bytes from the start of the block */
    uint32_t length; /* bytes */
    uint8_t check[QK_CHECK_LEN];
} qk_key_ref;

typedef struct {
    const char *request_id; /* unique, <= QK_STORE_ID_MAX chars */
    const char *link;
    const char *master;        /* identity the keys are bound to (ETSI master SAE ID, or SKIP
                                  source KME) */
    const char *const *slaves; /* identities allowed to fetch at the other end (>= 1) */
    size_t nslaves;
    uint64_t expires_at; /* wall-clock seconds; unclaimed keys expire then */
} qk_reservation;

/* Carve n keys of len bytes each (len >= 1, n >= 1) from confirmed blocks of r->link, as side
 * `side`, generate their key IDs (UUID v4), compute checks, and record the request PENDING
 * (outgoing) with its keys PENDING. refs[n] receive the ranges; material (n*len bytes,
 * caller's secure buffer) receives the key bytes in order. QK_ENOKEY if the confirmed pool
 * cannot provide n keys of that length (nothing recorded). QK_EEXIST if the request_id is
 * known. */
int qk_store_carve(qk_store *s, const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                   qk_key_ref *refs, uint8_t *material, qk_err *err);

/* The peer acked an outgoing request. If keep_for_slaves is false (slaves at the peer), the
 * keys become DELIVERED here and their ranges are zeroed. If true (QK_LOCAL_LINK: slaves at
 * this KME), the keys become RESERVED for r->slaves here. Idempotent. The KME itself only
 * commits with true now (its remote path is qk_store_carve_owned); false is the master end of
 * the two-phase path older peers still drive through /peer/v1/reserve, kept for the tests
 * that play such a peer against qk_store_reserve_in (test_store_peer.c, test_store.c). */
int qk_store_commit(qk_store *s, const char *request_id, bool keep_for_slaves, qk_err *err);

/* Burn a request (either direction): its keys become BURNED, ranges zeroed. Idempotent; an
 * unknown request_id records a tombstone so that a later reserve with that ID is refused
 * (QK_ENOTFOUND is NOT returned). */
int qk_store_burn(qk_store *s, const char *request_id, qk_err *err);

/* Incoming reservation from the peer (which carved as side `peer_side`). Verifies each key's
 * check against local material (QK_EMISMATCH: those blocks are burned, nothing reserved),
 * refuses ranges overlapping any recorded range (QK_ECOLLISION), refuses unknown or burned
 * blocks (QK_ENOTFOUND). A pending block whose check matches becomes CONFIRMED. On success
 * the keys are RESERVED for r->slaves. Idempotent: the same request_id with the same keys
 * returns 0 again; a burned (tombstoned) request_id returns QK_EINVAL. */
int qk_store_reserve_in(qk_store *s, const qk_reservation *r, qk_side peer_side,
                        const qk_key_ref *refs, size_t n, qk_err *err);

/* State of a request: 0 = pending, 1 = committed/reserved, 2 = burned; QK_ENOTFOUND. */
int qk_store_request_state(qk_store *s, const char *request_id, int *state, qk_err *err);
/* Outgoing requests still PENDING (for reconciliation after a restart): up to cap IDs
 * (each QK_STORE_ID_MAX+1 bytes). */
int qk_store_pending_requests(qk_store *s, char (*ids)[QK_STORE_ID_MAX + 1], size_t cap, size_t *n,
                              qk_err *err);

/* ---- delivery ------------------------------------------------------------------------- */
typedef struct {
    char key_id[QK_KEY_ID_LEN + 1];
    uint32_t length;
    uint8_t *material; /* points into the caller's buffer */
} qk_fetched_key;

/* Deliver keys to `caller` (a slave identity), all or nothing. master: if non-NULL, every key
 * must be bound to that master (else QK_ENOTFOUND). For each key: unknown, expired, burned or
 * already fetched by this caller -> QK_ENOTFOUND; exists but caller is not among its slaves
 * -> QK_EUNAUTH. On success copies material into buf (cap bytes, sum of lengths) in the order
 * of ids, marks this caller's copy DELIVERED, and zeroes a range once all slaves fetched.
 * err->msg names the first offending key ID. */
int qk_store_fetch(qk_store *s, const char *caller, const char *master, const char *const *ids,
                   size_t n, qk_fetched_key *out, uint8_t *buf, size_t cap, qk_err *err);

/* Expire reserved/pending keys with expires_at <= now: burned, ranges zeroed. */
int qk_store_expire(qk_store *s, uint64_t now, size_t *n_expired, qk_err *err);

/* ---- status --------------------------------------------------------------------------- */
typedef struct {
    uint64_t blocks_pending, blocks_confirmed, blocks_burned;
    uint64_t bytes_available; /* uncarved bytes in confirmed blocks (both sides' view) */
    uint64_t bytes_held;      /* uncarved bytes in pending and confirmed blocks (the cap) */
    uint64_t blocks_refused_full, bytes_refused_full; /* new blocks refused for the cap */
    bool full; /* the last new block offered was refused for the cap */
    uint64_t keys_pending, keys_reserved, keys_delivered, keys_burned, keys_expired;
} qk_pool_status;
int qk_store_pool_status(qk_store *s, const char *link, qk_pool_status *st, qk_err *err);
/* Keys reserved (not yet fetched) for slave `slave` with master `master` (NULL = any). */
int qk_store_count_reserved(qk_store *s, const char *master, const char *slave, uint64_t *n,
                            qk_err *err);

/* Append to the audit log (never key bytes). */
int qk_store_audit(qk_store *s, const char *event, const char *link, const char *request_id,
                   const char *identity, const char *detail, qk_err *err);

/* ---- leases and notices (docs/adr/0002-key-store.md, "Leases and notices") ------------ *
 * Each block of a peer link carries two agreed bounds: the LOW side owns [QK_BLOCK_VKEY_LEN,
 * lease_lo) as master, the HIGH side [lease_hi, len); lease_lo <= lease_hi at both ends. A
 * side carves (qk_store_carve_owned) only inside what the peer granted it, commits the keys
 * at once, and tells the peer later (notices, batched). QK_LOCAL_LINK has no leases. */
typedef struct {
    uint64_t block_id;
    uint32_t from, to; /* the newly leased range [from, to) */
} qk_lease;
/* Pick this end's next block and range (rules above; want = bytes wanted, > 0), record it as
 * lease_ask (durable) and fill *l. Only confirmed blocks are leased: their material was
 * compared with the peer's once, by the block digest (the inventory), so a lease reads no
 * material and carries no check. QK_ENOKEY: no confirmed block with unleased room. A block
 * that already has a lease_ask returns that ask again (so a restart repeats it). */
int qk_store_lease_ask(qk_store *s, const char *link, qk_side side, uint32_t want, qk_lease *l,
                       qk_err *err);
/* Up to cap outstanding asks of this end on link (after a restart). */
int qk_store_lease_asks(qk_store *s, const char *link, qk_side side, qk_lease *out, size_t cap,
                        size_t *n, qk_err *err);
/* The peer answered our ask: granted -> bound = ask; refused -> ask cleared. */
int qk_store_lease_done(qk_store *s, const char *link, qk_side side, uint64_t block_id,
                        bool granted, qk_err *err);
/* The peer (side peer_side) asks for l. 0 = granted (idempotent; a block still pending here
 * is confirmed: the peer asks only from blocks whose digest matched this end's);
 * QK_ECOLLISION = refused (overlaps what we own, ask or carved); QK_ENOTFOUND = unknown or
 * burned block; QK_EINVAL = bad range. */
int qk_store_lease_in(qk_store *s, const char *link, qk_side peer_side, const qk_lease *l,
                      qk_err *err);
/* Granted, uncarved bytes this end owns on link (sum over confirmed blocks). */
int qk_store_lease_room(qk_store *s, const char *link, qk_side side, uint64_t *bytes, qk_err *err);
/* Carve n keys of len inside our granted leases, record the request committed and un-noticed,
 * keys DELIVERED (zeroed), refs/material filled; one transaction. QK_ENOKEY: not enough owned
 * room (nothing recorded); QK_EEXIST: request_id known. Keys never span blocks; a request may
 * take keys from several blocks. */
int qk_store_carve_owned(qk_store *s, const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                         qk_key_ref *refs, uint8_t *material, qk_err *err);
/* A relay hop's key (docs/adr/0004-key-relay.md, "Taking a hop's key from the store"): like
 * qk_store_carve_owned, one transaction, but a head key of `head` bytes (the MAC key, from one
 * block), then `total` bytes (the pad) as 1..max_pieces keys, each inside one block: from one
 * block when one can hold it all, else from the blocks with the most room. refs (1 + max_pieces
 * entries) and *nrefs receive the keys in order, material (head + total bytes) their bytes.
 * QK_ENOKEY when the granted room is short or too scattered (nothing recorded). The request is
 * recorded as noticed: the relay message is its notice (the next node applies its keys as one),
 * and the notifier's notice could not carry it (its pieces are longer than a key may be). */
int qk_store_carve_owned_pieces(qk_store *s, const qk_reservation *r, qk_side side, uint32_t head,
                                uint32_t total, size_t max_pieces, qk_key_ref *refs, size_t *nrefs,
                                uint8_t *material, qk_err *err);
/* Committed outgoing requests not yet noticed, oldest first, up to cap: filled with the
 * reservation data and key refs (check fields zero). Caller frees with qk_notice_free. */
typedef struct {
    char request_id[QK_STORE_ID_MAX + 1];
    char master[QK_STORE_ID_MAX + 1];
    char (*slaves)[QK_STORE_ID_MAX + 1];
    size_t nslaves;
    uint64_t expires_at;
    qk_key_ref *keys;
    size_t nkeys;
} qk_notice;
int qk_store_notices_pending(qk_store *s, const char *link, qk_notice *out, size_t cap, size_t *n,
                             qk_err *err);
void qk_notice_free(qk_notice *v, size_t n);
/* Mark these outgoing requests noticed (one transaction). Returns without waiting for the
 * WAL sync (it follows soon): after a crash a request may be pending again, and its notice
 * goes again; the peer answers a notice it holds already as taken (qk_store_notice_in). */
int qk_store_notices_done(qk_store *s, const char *const *request_ids, size_t n, qk_err *err);
/* Apply incoming notices (the peer carved as peer_side) in one transaction; results[i] = 0
 * (reserved, or already reserved: idempotent), QK_ECOLLISION, QK_EINVAL (outside the
 * peer's granted lease, bad range, tombstoned id), QK_ENOTFOUND (unknown/burned block),
 * QK_EEXIST (a key ID known here, or the request ID known with other keys or as outgoing);
 * a refused notice changes nothing but the audit log. Returns non-zero only when the
 * transaction failed. At most 4096 notices per call. */
int qk_store_notice_in(qk_store *s, const char *link, qk_side peer_side, const qk_notice *v,
                       size_t n, int *results, qk_err *err);
/* Whether a key ID was ever recorded here (for the fetch wait); a relayed key still waiting
 * for its commit (qk_store_relay_put) counts as not known yet. */
int qk_store_key_known(qk_store *s, const char *key_id, bool *known, qk_err *err);

/* ---- relayed keys at the slave KME (docs/adr/0004-key-relay.md) ----------------------- *
 * The end-to-end keys of a relay arrive at the slaves' KME before the master KME decided: they
 * are stored PENDING (encrypted at rest as every block, in a block of QK_RELAY_LINK of their
 * own), become RESERVED for the slaves on the commit, and are burned on a relay-burn or at
 * expires_at (qk_store_expire) if neither came. */
#define QK_RELAY_LINK "relay"
/* Store the keys ids[i] (lens[i] bytes each, material their bytes in order) of relay request
 * r->request_id PENDING for r->slaves with r->master (r->link is ignored: QK_RELAY_LINK).
 * Idempotent: the same request with the same key IDs again returns 0 (its state unchanged).
 * QK_EEXIST: the request ID (or tombstone) is known with other keys, or a key ID is known. */
int qk_store_relay_put(qk_store *s, const qk_reservation *r, size_t n,
                       const char (*ids)[QK_KEY_ID_LEN + 1], const uint32_t *lens,
                       const uint8_t *material, qk_err *err);
/* The master KME decided: the pending relay request's keys become RESERVED (fetchable).
 * Idempotent. QK_ENOTFOUND (unknown request), QK_EINVAL (burned or expired, or not a relay
 * request stored here). */
int qk_store_relay_commit(qk_store *s, const char *request_id, qk_err *err);
/* The master KME's side (docs/adr/0004-key-relay.md, "Failure handling"): before the first
 * hop's key is carved, record the relay request as an outgoing request PENDING (link
 * QK_RELAY_LINK, master = the master SAE, no keys) with an audit event "relay_started" naming
 * its path (text, at most 1024 characters); the decision is then qk_store_relay_decide (commit) or
 * qk_store_burn. A request left PENDING by a crash is burned by the restart reconciliation like any
 * outgoing request (qk_store_pending_requests). QK_EEXIST: the request ID is known. */
int qk_store_relay_begin(qk_store *s, const char *request_id, const char *master,
                         uint64_t expires_at, const char *path, qk_err *err);
/* The decision to commit: every one of request_ids (1..65 relay requests of one SAE request,
 * one per destination KME) PENDING -> committed, in one synced transaction, with an audit event
 * "relay_committed" each. All or nothing: QK_ENOTFOUND (unknown), QK_EINVAL (not an undecided
 * relay request: burned, or decided). */
int qk_store_relay_decide(qk_store *s, const char *const *request_ids, size_t n, qk_err *err);
/* The slaves' KME took the commit of relay request request_id (or the master KME gives up):
 * it leaves the list below. Idempotent. */
int qk_store_relay_acked(qk_store *s, const char *request_id, qk_err *err);
/* Committed relay requests whose commit the slaves' KME has not acknowledged yet and whose keys
 * have not expired at now (seconds), oldest first, up to cap (at most 64): their IDs and the
 * path text recorded by qk_store_relay_begin. */
typedef struct {
    char request_id[QK_STORE_ID_MAX + 1];
    char path[1024 + 1];
} qk_relay_unacked;
int qk_store_relay_unacked(qk_store *s, uint64_t now, qk_relay_unacked *out, size_t cap, size_t *n,
                           qk_err *err);
/* Relay requests of this KME as master with no decision (a crash between qk_store_relay_begin
 * and the decision), oldest first, up to cap (at most 64), with their paths. */
int qk_store_relay_undecided(qk_store *s, qk_relay_unacked *out, size_t cap, size_t *n,
                             qk_err *err);

#endif
