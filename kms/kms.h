/* kms.h - the daemon side of the qk_kms object (kms/core.h is the side the API layers see):
 * opening it from the configuration, the links and their peer clients, link telemetry and
 * the hook that tells the sync thread about new blocks. Used by kms/ modules and main.c. */
#ifndef QK_KMS_H
#define QK_KMS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "core.h"
#include "kmed_config.h"
#include "metrics.h"
#include "peer_client.h"

typedef struct {
    char state[32]; /* "up", "down", ... as sent by the device; "" = never sent */
    double qber;
    double rate_bps;
    uint64_t delivered_bits;
    uint64_t updated_at; /* wall-clock seconds; 0 = never */
} qk_link_telemetry;

/* One QKD link to a peer KME. */
typedef struct {
    const qk_link_cfg *cfg; /* peer, link_id, peer_url, device_identity */
    qk_side side;           /* this node's side: LOW if node id sorts before the peer's */
    qk_peer_client *client; /* calls to the peer's peer API */
    pthread_mutex_t mu;     /* guards telemetry */
    qk_link_telemetry telemetry;
} qk_link;

/* Open the store (data_dir/store.db; master key from master_key_file or the environment
 * variable QKD_KMED_MASTER_KEY, 64 hex digits), build the links and their peer clients.
 * cfg and metrics are borrowed and must outlive the object. */
int qk_kms_open(const qk_kmed_config *cfg, qk_metrics *metrics, qk_kms **out, qk_err *err);
/* What qk_kms_open refuses in the files cfg names, without opening anything else (qkd-kmed
 * --check-config): the master_key_file read as at start (private mode, 32 raw bytes or 64 hex
 * digits; the key wiped at once). The environment's QKD_KMED_MASTER_KEY is not required here.
 * 0 or QK_EIO / QK_EINVAL with the message start-up would log. */
int qk_kms_check_files(const qk_kmed_config *cfg, qk_err *err);
void qk_kms_close(qk_kms *k);
/* The KME is stopping: fetches that wait for a notice without a thread (inline handlers,
 * kms_notice_wait.c) are completed now and none waits again, so that the listeners' stop finds
 * no connection held for longer than a store sync (notice_wait may be up to 60 s). Call before
 * stopping the listeners; qk_kms_close does it too. NULL is a no-op. */
void qk_kms_quiesce(qk_kms *k);

qk_store *qk_kms_store(qk_kms *k);
qk_metrics *qk_kms_metrics(qk_kms *k);
size_t qk_kms_link_count(const qk_kms *k);
qk_link *qk_kms_link_at(qk_kms *k, size_t i);
qk_link *qk_kms_link_by_peer(qk_kms *k, const char *peer);
qk_link *qk_kms_link_by_id(qk_kms *k, const char *link_id);

/* The peer side of a two-phase reservation (the peer API's reserve): record the keys a peer
 * KME carved (refs[n], from the peer's `side` of r->link) as RESERVED here for r->slaves,
 * after checking max_key_count for every (r->master, slave) pair - the keys are held here, so
 * the quota is this KME's to enforce. The check and the reservation run under the lock that
 * also serialises same-KME reservations, so concurrent requests cannot overshoot together.
 * Errors: QK_EQUOTA (a pair would exceed max_key_count; the message names the pair and how
 * many keys it holds), and those of qk_store_reserve_in. */
int qk_kms_reserve_in(qk_kms *k, const qk_reservation *r, qk_side side, const qk_key_ref *refs,
                      size_t n, qk_err *err);

/* ---- hot path (docs/adr/0002-key-store.md, "Leases and notices") ----------------------
 * The peer side of POST /peer/v1/lease: the peer KME of link, carving as side, asks for l.
 * 0 = granted (also again, idempotent); QK_ECOLLISION (refused), QK_ENOTFOUND (unknown or
 * burned block), QK_EINVAL (bad range), or a store error (as qk_store_lease_in). */
int qk_kms_lease_in(qk_kms *k, const char *link, qk_side side, const qk_lease *l, qk_err *err);
/* The peer side of POST /peer/v1/notices: apply m (the peer API has checked that m->link is
 * the caller's link and m->side the caller's side) and fill *a with one result per notice, in
 * order: request_id copied, status (0 or the qk_store_notice_in result), held = the keys held
 * here for each (master, slave) pair of the request. a->r and each a->r[i].held are malloc'ed
 * (the peer API frees them with qk_peer_notices_answer_free). Non-zero (and *a empty) only
 * when the batch could not be applied at all (store error, out of memory). */
int qk_kms_notices_in(qk_kms *k, const qk_peer_notices_msg *m, qk_peer_notices_answer *a,
                      qk_err *err);

void qk_link_set_telemetry(qk_link *l, const qk_link_telemetry *t);
void qk_link_get_telemetry(qk_link *l, qk_link_telemetry *t);

/* Called (from any thread) after a new block was stored; the hook (e.g. waking the sync
 * thread) must not block. */
void qk_kms_set_block_hook(qk_kms *k, void (*fn)(void *arg), void *arg);
void qk_kms_block_added(qk_kms *k);

#endif
