/* kms_fixture.h - a running qk_kms for unit suites: a temporary data directory and master key
 * file, a configuration without links (every request is same-KME, node KF_NODE) and small
 * limits, and SAEs registered at this node. And a linked pair: two such KMEs (KF_NODE and
 * KF_PEER) joined by one link, each serving the peer API (peer/peer_api.h) on a real TLS
 * listener on 127.0.0.1 (ephemeral port, mutual TLS with a throw-away PKI made with the
 * openssl command, as tests/lib/pki.sh does), so that the remote reservation path, the peer
 * client and the sync thread run as in qkd-kmed. */
#ifndef QK_KMS_FIXTURE_H
#define QK_KMS_FIXTURE_H

#include "kms.h"
#include "log.h"
#include "peer_api.h"
#include "store_fixture.h"
#include "tls_server.h"

#define KF_NODE        "KME_A"
#define KF_PEER        "KME_B"
#define KF_LINK        KF_NODE "~" KF_PEER /* the pair's link (node IDs sorted, joined by "~") */
#define KF_MAX_COUNT   5                   /* [keys] max_key_count */
#define KF_LEASE_BYTES 1024                /* [hot_path] lease_bytes (lease_low_water 0) */

typedef struct {
    sf_dir dir;
    char key_path[160];
    qk_kmed_config *cfg;
    qk_kms *kms;
} kf_kme;

/* Open a KME whose registered SAEs (all at KF_NODE) are the NULL-terminated saes (may be
 * NULL). Limits: sizes 64..1024 bits (default 256), 10 keys per request, max_key_count
 * KF_MAX_COUNT, 2 additional slaves. 0, or -1 (prints why). */
int kf_open(kf_kme *f, const char *const *saes);
/* Close the KME and remove its files. */
void kf_close(kf_kme *f);

/* Two linked KMEs: a is KF_NODE (the LOW side of KF_LINK), b is KF_PEER (HIGH). Each one's
 * peer API handler (ha, hb) runs on a mutual-TLS listener (sa, sb) whose client certificates
 * are checked against the pair's CA; each one's peer client presents the certificate of its
 * node ID. Same limits as kf_open. While the pair is open, the log level is at least WARN
 * (no request line per peer call). */
typedef struct {
    sf_dir pki; /* ca.crt and, per node, NODE.crt / NODE.key */
    kf_kme a, b;
    qk_peer_api_handler ha, hb;
    qk_tls_server *sa, *sb;
    uint16_t port_b;          /* sb's port (kf_pair_b_up listens there again) */
    qk_log_level saved_level; /* restored by kf_pair_close */
} kf_pair;

/* Open the pair with the NULL-terminated SAE lists of each end (may be NULL). 0, or -1
 * (prints why; everything opened is closed again). */
int kf_pair_open(kf_pair *p, const char *const *saes_a, const char *const *saes_b);
void kf_pair_close(kf_pair *p);
/* Stop b's peer listener (a's peer calls fail: connection refused), and start it again on the
 * same port (0, or -1: prints why). */
void kf_pair_b_down(kf_pair *p);
int kf_pair_b_up(kf_pair *p);
/* After kf_pair_b_down: b's peer listener on the same port with handler h instead of b's peer
 * API (a fake peer; kf_pair_b_down stops it again). 0, or -1 (prints why). */
int kf_pair_b_fake(kf_pair *p, qk_http_handler *h);
/* Close f's KME and open it again on the same data (a restart; the caller updates whatever
 * points at f->kms, e.g. a pair's handler). 0, or -1 (prints why; f->kms is NULL). */
int kf_reopen(kf_kme *f);

/* Put len bytes as block id of KF_LINK into st, PENDING (as the device delivers it); CUnit
 * fatal assertions on failure. */
void kf_put_pending(qk_store *st, uint64_t id, const uint8_t *bytes, size_t len);
/* The state of block id of KF_LINK at st; -1 when st does not hold it (any other store error
 * fails a CUnit assertion). */
int kf_block_state(qk_store *st, uint64_t id);
/* Run sql on f's database through a connection of its own (what the store cannot be asked to do:
 * backdate a block, damage a row), with ?1 = arg, ?2 = KF_LINK, ?3 = block id; it must change
 * exactly one row. 0, or -1 (prints why). */
int kf_block_sql(const kf_kme *f, const char *sql, int64_t arg, uint64_t id);

#endif
