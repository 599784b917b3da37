/* peer_client.h - calls to a peer KME's peer API (/peer/v1/..., docs/qkd-kmed.md) over mutual
 * TLS with common/http_client. Each peer has a small bounded pool of HTTP clients so that
 * concurrent handler threads reuse connections; every call has the configured timeouts. */
#ifndef QK_PEER_CLIENT_H
#define QK_PEER_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "http_client.h"
#include "qk_err.h"
#include "store.h"

#define QK_PEER_INVENTORY_MAX 256                 /* blocks per inventory call */
#define QK_PEER_BLOCK_ID_MAX  9007199254740991ull /* 2^53-1: exact as a JSON number */

typedef struct qk_peer_client qk_peer_client;

/* base_url: "https://HOST:PORT" (copied). tls: copied; the file names it points to are
 * borrowed and must outlive the client. pool_max: clients kept per peer (1..16); a caller
 * finding every client busy waits at most tls->timeout_ms. */
int qk_peer_client_new(const char *base_url, const qk_http_tls *tls, size_t pool_max,
                       qk_peer_client **out, qk_err *err);
void qk_peer_client_free(qk_peer_client *pc);

/* One call: method + path (e.g. "/peer/v1/burn") + JSON body (may be NULL). Returns 0 when an
 * HTTP answer arrived: *status set, *json the parsed body (NULL if empty or not JSON; free
 * with cJSON_Delete). Else a transport error (QK_ETIMEOUT, QK_ETLS, QK_EIO, QK_ELIMIT). */
int qk_peer_call(qk_peer_client *pc, const char *method, const char *path, const char *body,
                 long *status, cJSON **json, qk_err *err);

/* POST /peer/v1/reserve. 0 = reserved; QK_ECOLLISION, QK_EMISMATCH, QK_ENOTFOUND (unknown
 * block), QK_EINVAL (burned request ID or bad request), QK_EPEER (any other answer), or a
 * transport error. */
int qk_peer_reserve(qk_peer_client *pc, const qk_reservation *r, qk_side side,
                    const qk_key_ref *refs, size_t n, qk_err *err);

/* POST /peer/v1/burn. 0 or QK_EPEER / transport error. */
int qk_peer_burn(qk_peer_client *pc, const char *request_id, qk_err *err);

typedef enum {
    QK_INV_UNKNOWN = 0, /* the peer does not hold it (yet) or did not answer for it */
    QK_INV_MATCH = 1,
    QK_INV_MISMATCH = 2,
    QK_INV_BURNED = 3,
} qk_inv_status;

/* POST /peer/v1/inventory with n <= QK_PEER_INVENTORY_MAX blocks; out[i] answers ids[i]. */
int qk_peer_inventory(qk_peer_client *pc, const char *link, const uint64_t *ids,
                      const uint8_t (*digests)[QK_CHECK_LEN], size_t n, qk_inv_status *out,
                      qk_err *err);

#endif
