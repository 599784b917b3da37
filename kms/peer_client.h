/* peer_client.h - calls to a peer KME's peer API (/peer/v1/..., docs/qkd-kmed.md) over mutual
 * TLS with common/http_client. Each peer has a small bounded pool of HTTP clients so that
 * concurrent handler threads reuse connections; every call has the configured timeouts. */
#ifndef QK_PEER_CLIENT_H
#define QK_PEER_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "http_client.h"
#include "peer_msg.h"
#include "relay_msg.h"
#include "qk_err.h"
#include "relay_msg.h"
#include "store.h"

typedef struct qk_peer_client qk_peer_client;

/* base_url: "https://HOST:PORT" (copied). tls: copied; the file names it points to are
 * borrowed and must outlive the client. pool_max: clients kept per peer (1..16); a caller
 * finding every client busy waits at most tls->timeout_ms. */
int qk_peer_client_new(const char *base_url, const qk_http_tls *tls, size_t pool_max,
                       qk_peer_client **out, qk_err *err);
void qk_peer_client_free(qk_peer_client *pc);

/* Every call encodes its request and decodes the answer with the peer-message codec
 * (peer_msg.h); a transport error is QK_ETIMEOUT, QK_ETLS, QK_EIO or QK_ELIMIT (answer too
 * large), and an answer that does not decode is QK_EPEER. */

/* POST /peer/v1/burn. 0 (200 {"status":"burned"}) or QK_EPEER / transport error. */
int qk_peer_burn(qk_peer_client *pc, const char *request_id, qk_err *err);

/* POST /peer/v1/inventory of q (q->n <= QK_PEER_INVENTORY_MAX blocks); out[i] answers
 * q->blocks[i] (QK_INV_UNKNOWN when the peer did not answer for it). */
int qk_peer_inventory(qk_peer_client *pc, const qk_peer_inventory_msg *q, qk_inv_status *out,
                      qk_err *err);

/* POST /peer/v1/device-keys (an ETSI 014 device link's pulling end names the keys it took
 * from its device). 0 = the peer fetched them from its own device and stored the block
 * (200 {"status":"stored"}); QK_ENOTFOUND when the peer could not fetch them (409 device:
 * its device did not give every key; 503 device-down: its device cannot be reached; the
 * message says which): the caller burns its block; QK_EPEER for any other answer,
 * QK_EINVAL (409 source, 400: the peer does not take device keys on this link), or a
 * transport error (the peer may or may not have stored the block: leave it to the
 * inventory). */
int qk_peer_device_keys(qk_peer_client *pc, const qk_peer_device_keys_msg *m, qk_err *err);

/* POST /peer/v1/lease: ask the peer for l on link, carving as side. 0 = granted (200
 * {"status":"granted"}); QK_ECOLLISION (409 collision: refused, the ask is to be cleared);
 * QK_ENOTFOUND (404: the peer does not hold the block, or burned it); QK_EINVAL (400: the peer
 * finds the range bad: treat as refused); any other answer (the ask stays: repeat it later), by the
 * peer's reason (qk_peer_fail_of, core.h): QK_ESTORAGE (reason storage: the peer's store
 * failed), QK_EQUOTA (reason limit), QK_EIO (an error status without a reason: e.g. a proxy),
 * QK_EPEER (another refusal), or a transport error. */
int qk_peer_lease(qk_peer_client *pc, const char *link, qk_side side, const qk_lease *l,
                  qk_err *err);

/* POST /peer/v1/notices of m. 0 = the peer answered one result per notice, in order, each
 * naming its notice's request_id (*a filled: free with qk_peer_notices_answer_free); else
 * *a is empty and the answer is QK_EINVAL (m does not encode, or the peer answered 400: one of
 * the notices may break the batch; send them one at a time, and one answered 400 alone will
 * never be taken), QK_ELIMIT (m's body would exceed QK_PEER_MSG_MAX, or the peer answered 413:
 * send fewer notices), another error status by its reason as for qk_peer_lease (QK_ESTORAGE,
 * QK_EQUOTA, QK_EIO, QK_EPEER), QK_EPEER (a bad body, results not matching the notices) or a
 * transport error: the notices are to be sent again. */
int qk_peer_notices(qk_peer_client *pc, const qk_peer_notices_msg *m, qk_peer_notices_answer *a,
                    qk_err *err);

/* ---- trusted-node key relay (docs/adr/0004-key-relay.md) --------------------------------- */

/* POST /peer/v1/relay of body (an encoded qk_relay_msg, borrowed). 0 when the peer gave a relay
 * answer (200 stored, 409 or 400 refused): *a filled, a->request_id checked against want_id;
 * QK_EPEER for any other answer (another status, a bad body), or a transport error (the peer
 * may or may not have acted: the caller burns along the path). */
int qk_peer_relay(qk_peer_client *pc, const char *body, const char *want_id, qk_relay_answer *a,
                  qk_err *err);
/* POST /peer/v1/relay-burn and /peer/v1/relay-commit of m. 0 (200 {"status":"burned"}, or
 * {"status":"reserved"} for the commit), else QK_EPEER / the refusal's status as for
 * qk_peer_lease, or a transport error. */
int qk_peer_relay_burn(qk_peer_client *pc, const qk_relay_burn_msg *m, qk_err *err);
int qk_peer_relay_commit(qk_peer_client *pc, const qk_relay_commit_msg *m, qk_err *err);

/* GET /peer/v1/topology (docs/adr/0004-key-relay.md, "How topology is learned"): the peer's
 * own report and the reports it holds, into *m (large: allocate it). 0 (200 with a body that
 * decodes), QK_EPEER (a bad body, or another answer: refusal reasons as for qk_peer_lease) or
 * a transport error. */
int qk_peer_topology(qk_peer_client *pc, qk_topo_msg *m, qk_err *err);

#endif
