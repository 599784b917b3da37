/* kms_relay.h - trusted-node key relay in the running KME (docs/adr/0004-key-relay.md, "A
 * relayed request, end to end", "Failure handling", "Multicast"): the coordinator at the master
 * KME (qk_kms_reserve calls it for slaves at a KME that is not a neighbour, or on several
 * KMEs), and the peer side of POST /peer/v1/relay, /relay-burn and /relay-commit (the
 * forwarder at an intermediate node, the pending store at the slaves' KME). Every call may
 * block on the network: never on a pump thread (qk_inline_must_defer first). */
#ifndef QK_KMS_RELAY_H
#define QK_KMS_RELAY_H

#include <stdbool.h>
#include "kms.h"
#include "relay_msg.h"

/* The hop keys of a relay are bound to KME IDs as master and slave (docs/adr/0004-key-relay.md,
 * "Taking a hop's key from the store"): no SAE may have the ID of a KME (this node, a linked
 * peer, a [topology] node, an SAE's home), or it could fetch them; and no link may have the ID
 * QK_RELAY_LINK (the store's pseudo link of relayed keys). 0 or QK_EINVAL naming it. */
int qk_kms_relay_check_ids(const qk_kmed_config *cfg, qk_err *err);

/* Start (qk_kms_open, when the KME has links) and stop/join (qk_kms_close) the commit
 * resender: every second, or when woken, it sends relay-commit again for each committed relay
 * request the slaves' KME has not acknowledged and whose keys have not expired
 * (qk_store_relay_unacked), at most 16 per round, each call bounded by the [peer_client]
 * timeouts. */
int qk_kms_relay_start(qk_kms *k, qk_err *err);
void qk_kms_relay_stop(qk_kms *k);

/* Whether slaves at kme_id are served through the relay: [relay] enabled, kme_id neither this
 * KME nor a neighbour, and known to the topology view (qk_kms_topo_knows). */
bool qk_kms_relay_reaches(qk_kms *k, const char *kme_id);

/* The master KME's side: reserve req->number keys for req->slaves, each at its home KME (the
 * SAE registry), through one relay per destination KME (the same key IDs and bytes to each;
 * slaves at this KME get them from its own store). On success *out holds the keys, every
 * destination committed. Errors: QK_EINVAL (a slave unknown, keys too large for one relay),
 * QK_EAGAIN (on an inline handler: run again on a worker), QK_EPEER (no route, a refusal, a
 * transport error, the deadline: everything carved is burned; out->relay_why says why for the
 * SAE), QK_ESTORAGE. */
int qk_kms_relay_reserve(qk_kms *k, const qk_key_request *req, qk_key_batch *out, qk_err *err);

/* The peer side of POST /peer/v1/relay from the neighbour of link `from`: check, take the hop
 * key, open, then store (the slaves' KME: pending until the commit) or forward (an intermediate
 * node: carve the next hop's key, seal again, send, wait for the answer). *a is the answer to
 * send (stored, or refused with the reason and the index of the refusing node; a refusal
 * burned what this node carved). m's ciphertext is wiped. */
void qk_kms_relay_in(qk_kms *k, qk_link *from, qk_relay_msg *m, qk_relay_answer *a);

/* The peer side of POST /peer/v1/relay-burn and /relay-commit from the neighbour of link
 * `from`: path[hop] must be that neighbour and path[hop+1] this KME. The burn burns what this
 * node carved or stored for the request (tombstones: a late relay is refused) and passes the
 * message on; the commit makes the keys fetchable at the slaves' KME (waking fetches that wait)
 * or passes it on. 0, QK_EINVAL (a path that does not name the caller and this KME; err says
 * why), QK_ENOTFOUND (commit: unknown request), QK_EPEER (commit: the next node did not take
 * it), or a store error. */
int qk_kms_relay_burn_in(qk_kms *k, qk_link *from, const qk_relay_burn_msg *m, qk_err *err);
int qk_kms_relay_commit_in(qk_kms *k, qk_link *from, const qk_relay_commit_msg *m, qk_err *err);

#endif
