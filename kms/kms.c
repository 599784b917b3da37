/* kms.c - the qk_kms object: store, links, SAE registry, limits, and the reservation: from the
 * local pool, or (slaves at a peer) carved inside this end's granted leases and committed at
 * once, the peer told later by the link's notifier (kms_lease.c, kms_notify.c). */
#include "kms.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "http_util.h"
#include "log.h"
#include "kms_int.h"
#include "kms_relay.h"
#include "kms_topo.h"
#include "qk_inline.h"
#include "secbuf.h"

#define PEER_POOL_SIZE  4 /* HTTP clients kept per peer */
#define MASTER_FILE_MAX 256
#define LEASES_PER_REQ  3  /* synchronous lease exchanges one request may make itself */
#define CARVE_ROUNDS    64 /* carves one request may try (others' leases taken meanwhile) */

/* ---- opening ---------------------------------------------------------------------------- */

/* 32 raw bytes, or 64 hex digits (surrounding whitespace allowed). */
static int decode_master(const uint8_t *buf, size_t len, uint8_t key[QK_MASTER_KEY_LEN])
{
    if (len == QK_MASTER_KEY_LEN) {
        memcpy(key, buf, QK_MASTER_KEY_LEN);
        return 0;
    }
    size_t a = 0, b = len;
    while (a < b && isspace(buf[a]))
        a++;
    while (b > a && isspace(buf[b - 1]))
        b--;
    size_t got = 0;
    if (b - a != 2 * QK_MASTER_KEY_LEN ||
        qk_hex_decode((const char *)buf + a, b - a, key, QK_MASTER_KEY_LEN, &got) != 0 ||
        got != QK_MASTER_KEY_LEN)
        return -1;
    return 0;
}

static int load_master_key(const qk_kmed_config *cfg, uint8_t key[QK_MASTER_KEY_LEN], qk_err *err)
{
    if (cfg->master_key_file[0]) {
        size_t len = 0;
        uint8_t *buf = qk_secure_read_file(cfg->master_key_file, MASTER_FILE_MAX, 1, &len);
        if (!buf)
            return qk_err_set(err, QK_EIO, "master key file %s: %s%s", cfg->master_key_file,
                              strerror(errno),
                              errno == EPERM ? " (must not be group/world readable)" : "");
        int rc = decode_master(buf, len, key);
        qk_secure_free(buf);
        if (rc != 0)
            return qk_err_set(err, QK_EINVAL,
                              "master key file %s: want 32 raw bytes or 64 hex digits",
                              cfg->master_key_file);
        return 0;
    }
    const char *env = getenv("QKD_KMED_MASTER_KEY");
    if (!env || !*env)
        return qk_err_set(err, QK_EINVAL,
                          "no master key: set [node] master_key_file or QKD_KMED_MASTER_KEY");
    if (decode_master((const uint8_t *)env, strlen(env), key) != 0 ||
        strlen(env) == QK_MASTER_KEY_LEN)
        return qk_err_set(err, QK_EINVAL, "QKD_KMED_MASTER_KEY: want 64 hex digits");
    return 0;
}

int qk_kms_check_files(const qk_kmed_config *cfg, qk_err *err)
{
    if (!cfg->master_key_file[0])
        return 0;
    uint8_t *mk = qk_secure_alloc(QK_MASTER_KEY_LEN);
    if (!mk)
        return qk_err_set(err, QK_ENOMEM, "out of secure memory");
    int rc = load_master_key(cfg, mk, err);
    qk_secure_free(mk);
    return rc;
}

static int open_store(qk_kms *k, qk_err *err)
{
    const qk_kmed_config *cfg = k->cfg;
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST)
        return qk_err_set(err, QK_EIO, "data_dir %s: %s", cfg->data_dir, strerror(errno));
    char path[QK_CFG_PATH_MAX + 16];
    int n = snprintf(path, sizeof path, "%s/store.db", cfg->data_dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return qk_err_set(err, QK_EINVAL, "data_dir too long");
    uint8_t *mk = qk_secure_alloc(QK_MASTER_KEY_LEN);
    if (!mk)
        return qk_err_set(err, QK_ENOMEM, "out of secure memory");
    int rc = load_master_key(cfg, mk, err);
    qk_store_opts so = {.reply_at_commit = cfg->reply_at_commit,
                        .shared_lock = cfg->store_shared,
                        .time_ordered_ids = cfg->store_time_ids};
    if (rc == 0)
        rc = qk_store_open_with(path, mk, &so, &k->store, err);
    qk_secure_free(mk);
    uint64_t blocks = 0, bytes = 0;
    if (rc == 0 && qk_store_recovery(k->store, &blocks, &bytes) == 1)
        QK_WARN("store: the machine rebooted since the last start, which did not stop cleanly "
                "(power loss or OS crash): burned the unused room of %llu leased block(s), %llu "
                "bytes, so that no key answered before the crash is handed out again",
                (unsigned long long)blocks, (unsigned long long)bytes);
    if (rc == 0 && cfg->reply_at_commit && !qk_store_replies_at_commit(k->store))
        QK_WARN("store: reply_at_commit is set but this boot's ID is unknown "
                "(/proc/sys/kernel/random/boot_id): every reply waits for its sync");
    return rc;
}

static int open_links(qk_kms *k, qk_err *err)
{
    const qk_kmed_config *cfg = k->cfg;
    qk_metrics_key_bytes(k->metrics, QK_LOCAL_LINK, QK_KEY_RECEIVED, 0);
    qk_metrics_key_bytes(k->metrics, QK_LOCAL_LINK, QK_KEY_CONSUMED, 0);
    k->nlinks = cfg->nlinks;
    if (k->nlinks == 0)
        return 0;
    k->links = calloc(k->nlinks, sizeof *k->links);
    if (!k->links)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    qk_http_tls tls;
    memset(&tls, 0, sizeof tls);
    tls.ca_file = cfg->peer_client.ca;
    tls.cert_file = cfg->peer_client.cert;
    tls.key_file = cfg->peer_client.key;
    tls.connect_timeout_ms = (long)cfg->peer_client.connect_timeout_ms;
    tls.timeout_ms = (long)cfg->peer_client.timeout_ms;
    tls.max_response = 1024 * 1024;
    tls.verify_host = true;
    for (size_t i = 0; i < k->nlinks; i++) {
        qk_link *l = &k->links[i];
        l->cfg = &cfg->links[i];
        l->side = strcmp(cfg->node_id, l->cfg->peer) < 0 ? QK_SIDE_LOW : QK_SIDE_HIGH;
        if (pthread_mutex_init(&l->mu, NULL) != 0) {
            k->nlinks = i;
            return qk_err_set(err, QK_ENOMEM, "mutex init failed");
        }
        /* The link's key byte counters exist from the start, so rate() sees them at 0. */
        qk_metrics_key_bytes(k->metrics, l->cfg->link_id, QK_KEY_RECEIVED, 0);
        qk_metrics_key_bytes(k->metrics, l->cfg->link_id, QK_KEY_CONSUMED, 0);
        int rc = qk_peer_client_new(l->cfg->peer_url, &tls, PEER_POOL_SIZE, &l->client, err);
        if (rc != 0) {
            pthread_mutex_destroy(&l->mu);
            k->nlinks = i;
            return qk_err_prefix(err, "link %s", l->cfg->peer);
        }
    }
    return 0;
}

int qk_kms_open(const qk_kmed_config *cfg, qk_metrics *metrics, qk_kms **out, qk_err *err)
{
    *out = NULL;
    qk_kms *k = calloc(1, sizeof *k);
    if (!k)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    k->cfg = cfg;
    k->metrics = metrics;
    k->limits.default_size_bits = cfg->default_size_bits;
    k->limits.min_size_bits = cfg->min_size_bits;
    k->limits.max_size_bits = cfg->max_size_bits;
    k->limits.max_keys_per_request = cfg->max_keys_per_request;
    k->limits.max_key_count = cfg->max_key_count;
    k->limits.max_sae_id_count = cfg->max_sae_id_count;
    k->limits.reservation_lifetime_s = cfg->reservation_lifetime_s;
    if (pthread_mutex_init(&k->refill_mu, NULL) != 0) {
        free(k);
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    }
    if (pthread_mutex_init(&k->quota_mu, NULL) != 0) {
        pthread_mutex_destroy(&k->refill_mu);
        free(k);
        return qk_err_set(err, QK_ENOMEM, "mutex init failed");
    }
    int rc = qk_kms_relay_check_ids(cfg, err);
    if (rc == 0)
        rc = open_store(k, err);
    if (rc == 0)
        rc = open_links(k, err);
    if (rc == 0)
        rc = qk_kms_hot_start(k, err);
    if (rc == 0)
        rc = qk_kms_topo_start(k, err);
    if (rc == 0)
        rc = qk_kms_relay_start(k, err);
    if (rc != 0) {
        qk_kms_close(k);
        return rc;
    }
    *out = k;
    return 0;
}

void qk_kms_quiesce(qk_kms *k)
{
    if (k && k->hot_ready)
        qk_kms_nwait_stop(k);
}

void qk_kms_close(qk_kms *k)
{
    if (!k)
        return;
    qk_kms_relay_stop(k); /* the commit resender uses the links and the store */
    qk_kms_topo_stop(k);  /* the refresh thread uses the links and the store */
    qk_kms_hot_stop(k);   /* the notifiers use the links and the store */
    for (size_t i = 0; i < k->nlinks; i++) {
        qk_peer_client_free(k->links[i].client);
        pthread_mutex_destroy(&k->links[i].mu);
    }
    free(k->links);
    qk_store_close(k->store);
    pthread_mutex_destroy(&k->refill_mu);
    pthread_mutex_destroy(&k->quota_mu);
    free(k);
}

/* ---- accessors -------------------------------------------------------------------------- */

qk_store *qk_kms_store(qk_kms *k)
{
    return k->store;
}
qk_metrics *qk_kms_metrics(qk_kms *k)
{
    return k->metrics;
}
size_t qk_kms_link_count(const qk_kms *k)
{
    return k->nlinks;
}
qk_link *qk_kms_link_at(qk_kms *k, size_t i)
{
    return i < k->nlinks ? &k->links[i] : NULL;
}

qk_link *qk_kms_link_by_peer(qk_kms *k, const char *peer)
{
    for (size_t i = 0; peer && i < k->nlinks; i++)
        if (strcmp(k->links[i].cfg->peer, peer) == 0)
            return &k->links[i];
    return NULL;
}

qk_link *qk_kms_link_by_id(qk_kms *k, const char *link_id)
{
    for (size_t i = 0; link_id && i < k->nlinks; i++)
        if (strcmp(k->links[i].cfg->link_id, link_id) == 0)
            return &k->links[i];
    return NULL;
}

void qk_link_set_telemetry(qk_link *l, const qk_link_telemetry *t)
{
    pthread_mutex_lock(&l->mu);
    l->telemetry = *t;
    pthread_mutex_unlock(&l->mu);
}

void qk_link_get_telemetry(qk_link *l, qk_link_telemetry *t)
{
    pthread_mutex_lock(&l->mu);
    *t = l->telemetry;
    pthread_mutex_unlock(&l->mu);
}

void qk_kms_set_block_hook(qk_kms *k, void (*fn)(void *arg), void *arg)
{
    k->block_hook = fn;
    k->block_hook_arg = arg;
}

void qk_kms_block_added(qk_kms *k)
{
    if (k->block_hook)
        k->block_hook(k->block_hook_arg);
}

const char *qk_kms_node_id(const qk_kms *k)
{
    return k->cfg->node_id;
}

const qk_key_limits *qk_kms_limits(const qk_kms *k)
{
    return &k->limits;
}

int qk_kms_sae_home(const qk_kms *k, const char *sae_id, const char **kme_id)
{
    const qk_sae_cfg *s = qk_kmed_config_sae(k->cfg, sae_id);
    if (!s)
        return QK_ENOTFOUND;
    *kme_id = s->kme;
    return 0;
}

bool qk_kms_sae_cert_ok(const qk_kms *k, const char *sae_id, const char *fp_hex)
{
    const qk_sae_cfg *s = sae_id ? qk_kmed_config_sae(k->cfg, sae_id) : NULL;
    if (!s)
        return false;
    if (!s->has_fingerprint)
        return true;
    uint8_t fp[32];
    size_t got = 0;
    if (!fp_hex || strnlen(fp_hex, 65) != 64 ||
        qk_hex_decode(fp_hex, 64, fp, sizeof fp, &got) != 0 || got != sizeof fp)
        return false;
    return memcmp(fp, s->fingerprint, sizeof fp) == 0;
}

bool qk_kms_knows_kme(const qk_kms *k, const char *kme_id)
{
    return kme_id && (strcmp(kme_id, k->cfg->node_id) == 0 ||
                      qk_kmed_config_link_by_peer(k->cfg, kme_id) != NULL);
}

bool qk_kms_relay_on(const qk_kms *k)
{
    return k->cfg->relay.enabled;
}

bool qk_kms_reaches_kme(qk_kms *k, const char *kme_id)
{
    return qk_kms_knows_kme(k, kme_id) || qk_kms_relay_reaches(k, kme_id);
}

static const char *link_of_kme(qk_kms *k, const char *kme)
{
    if (kme && strcmp(kme, k->cfg->node_id) == 0)
        return QK_LOCAL_LINK;
    qk_link *l = qk_kms_link_by_peer(k, kme);
    return l ? l->cfg->link_id : NULL;
}

int qk_kms_pool_status(qk_kms *k, const char *peer_kme, qk_pool_status *st, qk_err *err)
{
    const char *link = link_of_kme(k, peer_kme);
    if (!link)
        return qk_err_set(err, QK_EINVAL, "unknown KME %s", peer_kme ? peer_kme : "(null)");
    return qk_store_pool_status(k->store, link, st, err);
}

int qk_kms_stored_count(qk_kms *k, const char *master, const char *slave, uint64_t *n, qk_err *err)
{
    return qk_store_count_reserved(k->store, master, slave, n, err);
}

/* ---- quotas ----------------------------------------------------------------------------- */

bool qk_kms_quota_ok(const qk_key_limits *lim, uint64_t held, size_t n)
{
    return held <= lim->max_key_count && (uint64_t)n <= lim->max_key_count - held;
}

int qk_kms_quota_check(qk_kms *k, const char *master, const char *const *slaves, size_t nslaves,
                       size_t n, qk_err *err)
{
    uint64_t max = k->limits.max_key_count;
    for (size_t i = 0; i < nslaves; i++) {
        uint64_t held = 0;
        int rc = qk_store_count_reserved(k->store, master, slaves[i], &held, err);
        if (rc != 0)
            return rc;
        if (!qk_kms_quota_ok(&k->limits, held, n))
            return qk_err_set(
                err, QK_EQUOTA,
                "%s -> %s: %llu keys stored, %zu more would exceed max_key_count %llu", master,
                slaves[i], (unsigned long long)held, n, (unsigned long long)max);
    }
    return 0;
}

int qk_kms_reserve_in(qk_kms *k, const qk_reservation *r, qk_side side, const qk_key_ref *refs,
                      size_t n, qk_err *err)
{
    pthread_mutex_lock(&k->quota_mu);
    int rc = qk_kms_quota_check(k, r->master, r->slaves, r->nslaves, n, err);
    if (rc == 0)
        rc = qk_store_reserve_in(k->store, r, side, refs, n, err);
    pthread_mutex_unlock(&k->quota_mu);
    if (rc == 0) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += refs[i].length;
        qk_metrics_key_bytes(k->metrics, r->link, QK_KEY_CONSUMED, bytes);
    }
    return rc;
}

/* ---- key batches ------------------------------------------------------------------------ */

void qk_key_batch_free(qk_key_batch *b)
{
    if (!b)
        return;
    qk_secure_free(b->material);
    free(b->ids);
    free(b->lens);
    free(b->keys);
    memset(b, 0, sizeof *b);
}

int qk_kms_batch_alloc(qk_key_batch *b, size_t n, size_t material_len, qk_err *err)
{
    memset(b, 0, sizeof *b);
    b->ids = calloc(n, sizeof *b->ids);
    b->lens = calloc(n, sizeof *b->lens);
    b->keys = calloc(n, sizeof *b->keys);
    b->material = qk_secure_alloc(material_len);
    if (!b->ids || !b->lens || !b->keys || !b->material) {
        qk_key_batch_free(b);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    b->n = n;
    return 0;
}

/* ---- reservation ------------------------------------------------------------------------ */

static int validate_request(qk_kms *k, const qk_key_request *req, qk_err *err)
{
    const qk_key_limits *lim = &k->limits;
    if (!req->requester || !*req->requester || strlen(req->requester) > QK_STORE_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "bad requester");
    if (req->target_kme ? !qk_kms_reaches_kme(k, req->target_kme) : req->nslaves < 2)
        return qk_err_set(err, QK_EINVAL, "unknown target KME");
    if (!req->target_kme && !k->cfg->relay.enabled) /* a multicast across KMEs is relayed */
        return qk_err_set(err, QK_EINVAL,
                          "slaves at several KMEs need the relay ([relay] enabled)");
    if (!req->slaves || req->nslaves < 1 || req->nslaves > 1 + (size_t)lim->max_sae_id_count)
        return qk_err_set(err, QK_EINVAL, "between 1 and %u slave identities allowed",
                          1 + lim->max_sae_id_count);
    for (size_t i = 0; i < req->nslaves; i++)
        if (!req->slaves[i] || !*req->slaves[i] || strlen(req->slaves[i]) > QK_STORE_ID_MAX)
            return qk_err_set(err, QK_EINVAL, "bad slave identity");
    if (req->number < 1 || req->number > lim->max_keys_per_request)
        return qk_err_set(err, QK_EINVAL, "number must be 1..%u", lim->max_keys_per_request);
    if (req->size_bits % 8 != 0 || req->size_bits < lim->min_size_bits ||
        req->size_bits > lim->max_size_bits)
        return qk_err_set(err, QK_EINVAL, "size must be a multiple of 8 in [%u, %u]",
                          lim->min_size_bits, lim->max_size_bits);
    return 0;
}

static void fill_batch(qk_key_batch *b, const qk_key_ref *refs, uint32_t len)
{
    for (size_t i = 0; i < b->n; i++) {
        memcpy(b->ids[i], refs[i].key_id, sizeof b->ids[i]);
        b->ids[i][QK_KEY_ID_LEN] = '\0';
        b->lens[i] = len;
        b->keys[i] = b->material + i * len;
    }
}

static int reserve_local(qk_kms *k, qk_reservation *r, size_t n, uint32_t len, qk_key_ref *refs,
                         uint8_t *material, qk_err *err)
{
    int rc = qk_store_carve(k->store, r, QK_SIDE_LOW, n, len, refs, material, err);
    if (rc == QK_ENOKEY) {
        uint64_t want = (uint64_t)n * len + QK_BLOCK_VKEY_LEN;
        uint64_t size = want > k->cfg->local_block_bytes ? want : k->cfg->local_block_bytes;
        if (size > QK_BLOCK_MAX_BYTES)
            return qk_err_set(err, QK_ENOKEY, "request too large for the local pool");
        pthread_mutex_lock(&k->refill_mu);
        rc = qk_store_local_refill(k->store, (size_t)size, err);
        pthread_mutex_unlock(&k->refill_mu);
        if (rc != 0)
            return rc;
        qk_metrics_key_bytes(k->metrics, QK_LOCAL_LINK, QK_KEY_RECEIVED, size);
        rc = qk_store_carve(k->store, r, QK_SIDE_LOW, n, len, refs, material, err);
    }
    if (rc != 0)
        return rc;
    qk_metrics_key_bytes(k->metrics, QK_LOCAL_LINK, QK_KEY_CONSUMED, (uint64_t)n * len);
    rc = qk_store_commit(k->store, r->request_id, true, err);
    if (rc != 0) {
        qk_err e2;
        qk_store_burn(k->store, r->request_id, &e2);
    }
    return rc;
}

/* One carve of c inside the granted leases of link i. */
static int carve_once(qk_kms *k, size_t i, const qk_reservation *r, const qk_carve_spec *c,
                      qk_key_ref *refs, uint8_t *material, qk_err *err)
{
    qk_side side = k->links[i].side;
    if (c->max_pieces)
        return qk_store_carve_owned_pieces(k->store, r, side, c->len, c->total, c->max_pieces, refs,
                                           c->nrefs, material, err);
    return qk_store_carve_owned(k->store, r, side, c->n, c->len, refs, material, err);
}

int qk_kms_carve_leased(qk_kms *k, size_t i, const qk_reservation *r, const qk_carve_spec *c,
                        qk_key_ref *refs, uint8_t *material, qk_peer_fail *why, qk_err *err)
{
    qk_link *l = &k->links[i];
    uint64_t want = c->max_pieces ? (uint64_t)c->len + c->total : (uint64_t)c->n * c->len;
    /* Only this request's own exchanges count against LEASES_PER_REQ: under a burst, the room
     * another request's lease brought may be taken before this one carves (it then waits on
     * the lease lock for the next exchange), which must not turn into a 503 while the pool
     * holds key. CARVE_ROUNDS bounds the loop all the same. */
    int own = 0, rc = QK_ENOKEY;
    for (int round = 0; round < CARVE_ROUNDS; round++) {
        uint64_t seen = qk_kms_lease_gen(k, i);
        rc = carve_once(k, i, r, c, refs, material, err);
        if (rc != QK_ENOKEY || own == LEASES_PER_REQ)
            break;
        if (qk_inline_must_defer()) { /* a lease exchange waits for the peer: not on a pump */
            rc = qk_err_set(err, QK_EAGAIN, "lease exhausted: run again on a worker");
            break;
        }
        uint64_t lease = qk_kms_lease_ask_bytes(k, i);
        uint64_t ask = want < lease ? lease : want;
        bool asked = false;
        rc = qk_kms_lease_more(k, i, ask, seen, &asked, why, err);
        if (rc != 0)
            break;
        own += asked;
        rc = QK_ENOKEY; /* if the rounds run out */
    }
    if (rc == 0) {
        qk_metrics_key_bytes(k->metrics, l->cfg->link_id, QK_KEY_CONSUMED, want);
        qk_kms_lease_carved(k, i, want);
    }
    return rc;
}

/* Slaves at the peer of link i: admit the request against the held estimate, carve it inside
 * this end's granted leases (committed at once, un-noticed), leasing synchronously when they
 * are exhausted (at most LEASES_PER_REQ exchanges), then wake the link's notifier. After
 * QK_EPEER, *why is the peer's reason. */
static int reserve_remote(qk_kms *k, size_t i, const qk_reservation *r, size_t n, uint32_t len,
                          qk_key_ref *refs, uint8_t *material, qk_peer_fail *why, qk_err *err)
{
    int rc = qk_kms_held_admit(k, i, r, n, err);
    if (rc != 0)
        return rc;
    qk_carve_spec c = {.n = n, .len = len};
    rc = qk_kms_carve_leased(k, i, r, &c, refs, material, why, err);
    if (rc != 0) {
        qk_kms_held_undo(k, i, r, n);
        return rc;
    }
    qk_kms_notify_wake(k, i);
    return 0;
}

int qk_kms_reserve(qk_kms *k, const qk_key_request *req, qk_key_batch *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = validate_request(k, req, err);
    if (rc != 0)
        return rc;
    if (!req->target_kme || qk_kms_relay_reaches(k, req->target_kme)) {
        rc = qk_kms_relay_reserve(k, req, out, err); /* kms_relay.c */
        QK_DEBUG("relayed request: %s", rc == 0 ? "committed" : err->msg);
        return rc;
    }
    bool local = strcmp(req->target_kme, k->cfg->node_id) == 0;
    qk_link *l = local ? NULL : qk_kms_link_by_peer(k, req->target_kme);
    if (!local && !l)
        return qk_err_set(err, QK_EINVAL, "unknown target KME");
    size_t li = local ? 0 : (size_t)(l - k->links);
    uint32_t len = req->size_bits / 8;
    size_t n = req->number;
    qk_peer_fail why = QK_PEER_FAIL_UNREACHABLE;
    qk_key_ref *refs = calloc(n, sizeof *refs);
    if (!refs)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    rc = qk_kms_batch_alloc(out, n, n * len, err);
    if (rc != 0) {
        free(refs);
        return rc;
    }
    char request_id[QK_UUID_STR_LEN + 1];
    qk_uuid u;
    qk_uuid_v7(&u); /* time-ordered: the request indexes grow at their right edge */
    qk_uuid_format(&u, request_id);
    qk_reservation r = {
        .request_id = request_id,
        .link = local ? QK_LOCAL_LINK : l->cfg->link_id,
        .master = req->requester,
        .slaves = req->slaves,
        .nslaves = req->nslaves,
        .expires_at = qk_now_s() + k->limits.reservation_lifetime_s,
    };
    if (local) {
        /* The keys stay here for the slaves: the quota is checked here, with the reservation,
         * under one lock. Remote requests are checked against what the slaves' KME reported
         * holding (qk_kms_held_admit). */
        pthread_mutex_lock(&k->quota_mu);
        rc = qk_kms_quota_check(k, r.master, r.slaves, r.nslaves, n, err);
        if (rc == 0)
            rc = reserve_local(k, &r, n, len, refs, out->material, err);
        pthread_mutex_unlock(&k->quota_mu);
    } else {
        rc = reserve_remote(k, li, &r, n, len, refs, out->material, &why, err);
    }
    if (rc == 0) {
        fill_batch(out, refs, len);
        QK_DEBUG("request %s: %zu keys of %u bits for %s on link %s", request_id, n, req->size_bits,
                 req->target_kme, r.link);
    } else {
        qk_key_batch_free(out);
        out->peer_fail = why;
    }
    free(refs);
    return rc;
}

/* ---- delivery --------------------------------------------------------------------------- */

int qk_kms_fetch(qk_kms *k, const char *caller, const char *master, const char *const *ids,
                 size_t n, qk_key_batch *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    if (!caller || !*caller || !ids || n < 1)
        return qk_err_set(err, QK_EINVAL, "no key IDs");
    if (n > k->limits.max_keys_per_request)
        return qk_err_set(err, QK_EINVAL, "at most %u key IDs per request",
                          k->limits.max_keys_per_request);
    size_t cap = n * (k->limits.max_size_bits / 8);
    int rc = qk_kms_batch_alloc(out, n, cap, err);
    if (rc != 0)
        return rc;
    qk_fetched_key *fk = calloc(n, sizeof *fk);
    if (!fk) {
        qk_key_batch_free(out);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    bool may_wait = k->nlinks > 0 && k->cfg->notice_wait_ms > 0;
    uint64_t gen = may_wait && qk_inline_current() ? qk_kms_notice_gen(k) : 0;
    /* Inline, first try: a slave's request usually arrives before its notice (the master SAE
     * has its answer as soon as the notice leaves). The first key unknown here means the
     * notice is still on its way: wait for it at once, without a fetch transaction that could
     * only fail (one indexed read instead of a transaction, its rollback and a second read). */
    if (may_wait && qk_inline_current() && qk_inline_rerun_deadline() == 0 &&
        !qk_kms_ids_known(k, ids, 1) &&
        qk_inline_wait_event(qk_kms_notice_await, k, gen,
                             qk_now_ms() + (double)k->cfg->notice_wait_ms)) {
        qk_key_batch_free(out);
        free(fk);
        return qk_err_set(err, QK_EAGAIN, "waiting for a notice: run again");
    }
    rc = qk_store_fetch(k->store, caller, master, ids, n, fk, out->material, cap, err);
    if (rc == QK_ENOTFOUND && may_wait && qk_inline_current()) {
        /* Inline: wait for the next batch of notices with the connection suspended, and run
         * again (kms_notice_wait.c); past the first try's notice_wait, answer not found. */
        double now = qk_now_ms(), dl = qk_inline_rerun_deadline();
        if (dl == 0)
            dl = now + (double)k->cfg->notice_wait_ms;
        if (now < dl) {
            /* Every key known here: fetched or burned already (no notice to come), or noticed
             * since the lookup above: one more look at once, and no wait after it. */
            bool known = qk_kms_ids_known(k, ids, n);
            if (known ? qk_inline_wait_event(qk_kms_look_again, k, 0, 1)
                      : qk_inline_wait_event(qk_kms_notice_await, k, gen, dl))
                rc = qk_err_set(err, QK_EAGAIN, "waiting for a notice: run again");
        }
    } else if (rc == QK_ENOTFOUND && may_wait) {
        /* A key of a peer's request may be fetched before its notice arrived: wait for it
         * (bounded), then answer as the store does. */
        qk_kms_notice_wait(k, ids, n);
        rc = qk_store_fetch(k->store, caller, master, ids, n, fk, out->material, cap, err);
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            memcpy(out->ids[i], fk[i].key_id, sizeof out->ids[i]);
            out->ids[i][QK_KEY_ID_LEN] = '\0';
            out->lens[i] = fk[i].length;
            out->keys[i] = fk[i].material;
        }
    } else {
        qk_key_batch_free(out);
    }
    free(fk);
    return rc;
}
