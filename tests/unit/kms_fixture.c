/* kms_fixture.c - a running qk_kms for unit suites (kms_fixture.h). */
#include "kms_fixture.h"

#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "log.h"

/* The link of a KME of a pair: its peer, where the peer listens, and the PKI directory. */
typedef struct {
    const char *peer;
    char url[64];
    const char *pki;
} kf_link;

static int write_master_key(const char *path)
{
    static const char hex[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, hex, sizeof hex - 1);
    return close(fd) == 0 && n == (ssize_t)(sizeof hex - 1) ? 0 : -1;
}

static int kme_open(kf_kme *f, const char *node, const char *const *saes, const kf_link *ln)
{
    memset(f, 0, sizeof *f);
    if (sf_dir_make(&f->dir, "kms") != 0)
        return -1;
    snprintf(f->key_path, sizeof f->key_path, "%s/master.key", f->dir.dir);
    f->cfg = calloc(1, sizeof *f->cfg);
    if (!f->cfg || write_master_key(f->key_path) != 0) {
        fprintf(stderr, "kms fixture: cannot write %s\n", f->key_path);
        kf_close(f);
        return -1;
    }
    qk_kmed_config *c = f->cfg;
    snprintf(c->node_id, sizeof c->node_id, "%s", node);
    snprintf(c->data_dir, sizeof c->data_dir, "%s/data", f->dir.dir);
    snprintf(c->master_key_file, sizeof c->master_key_file, "%s", f->key_path);
    c->default_size_bits = 256;
    c->min_size_bits = 64;
    c->max_size_bits = 1024;
    c->max_keys_per_request = 10;
    c->max_key_count = KF_MAX_COUNT;
    c->max_sae_id_count = 2;
    c->reservation_lifetime_s = 3600;
    c->local_block_bytes = 4096;
    c->lease_bytes = KF_LEASE_BYTES;
    c->lease_low_water = 0; /* no lease ahead: a test sees the leases its requests ask */
    c->notice_batch = QK_CFG_DEFAULT_NOTICE_BATCH;
    c->notice_wait_ms = QK_CFG_DEFAULT_NOTICE_WAIT_MS;
    c->store_shared = true; /* kf_block_sql changes rows through a connection of its own */
    for (size_t i = 0; saes && saes[i] && c->nsaes < QK_CFG_MAX_SAES; i++) {
        qk_sae_cfg *s = &c->saes[c->nsaes++];
        snprintf(s->id, sizeof s->id, "%s", saes[i]);
        snprintf(s->kme, sizeof s->kme, "%s", node);
    }
    if (ln) {
        qk_link_cfg *l = &c->links[c->nlinks++];
        snprintf(l->peer, sizeof l->peer, "%s", ln->peer);
        snprintf(l->peer_url, sizeof l->peer_url, "%s", ln->url);
        snprintf(l->link_id, sizeof l->link_id, "%s", KF_LINK);
        qk_peer_client_cfg *pc = &c->peer_client;
        pc->present = true;
        snprintf(pc->ca, sizeof pc->ca, "%s/ca.crt", ln->pki);
        snprintf(pc->cert, sizeof pc->cert, "%s/%s.crt", ln->pki, node);
        snprintf(pc->key, sizeof pc->key, "%s/%s.key", ln->pki, node);
        pc->timeout_ms = 5000; /* bounds every peer call of a test */
        pc->connect_timeout_ms = 2000;
    }
    qk_err err = {0, ""};
    if (qk_kms_open(c, NULL, &f->kms, &err) != 0) {
        fprintf(stderr, "qk_kms_open: %s\n", err.msg);
        kf_close(f);
        return -1;
    }
    return 0;
}

int kf_open(kf_kme *f, const char *const *saes)
{
    return kme_open(f, KF_NODE, saes, NULL);
}

void kf_close(kf_kme *f)
{
    qk_kms_close(f->kms);
    f->kms = NULL;
    free(f->cfg);
    f->cfg = NULL;
    if (!f->dir.dir[0])
        return;
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[200];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s/data/store.db%s", f->dir.dir, suffix[i]);
        (void)unlink(p);
    }
    snprintf(p, sizeof p, "%s/data", f->dir.dir);
    (void)rmdir(p);
    (void)unlink(f->key_path);
    sf_dir_remove(&f->dir);
    memset(&f->dir, 0, sizeof f->dir);
}

/* ---- the linked pair -------------------------------------------------------------------- */

/* Run a shell command quietly; on failure show what it printed. 0 or -1. */
static int run(const char *dir, const char *cmd)
{
    char full[1536];
    snprintf(full, sizeof full, "( %s ) >'%s/.out' 2>&1 || { cat '%s/.out' >&2; exit 1; }", cmd,
             dir, dir);
    int rc = system(full);
    char out[128];
    snprintf(out, sizeof out, "%s/.out", dir);
    (void)unlink(out);
    if (rc != 0)
        fprintf(stderr, "kms fixture: failed: %s\n", cmd);
    return rc == 0 ? 0 : -1;
}

/* A CA (EC P-256, SHA-256) and, per node, a certificate with CN=node, SAN IP:127.0.0.1 and the
 * kme role marker (docs/qkd-kmed.md "Roles"), for both ends of TLS (serverAuth, clientAuth),
 * keys mode 0600. */
static int pki_make(const char *dir, const char *const nodes[2])
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && umask 077 && openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -sha256 "
             "-subj /CN=kf-ca -addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign",
             dir);
    if (run(dir, cmd) != 0)
        return -1;
    char ext[128];
    snprintf(ext, sizeof ext, "%s/node.ext", dir);
    FILE *f = fopen(ext, "w");
    if (!f)
        return -1;
    fputs("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,"
          "URI:urn:qkd-kms:role:kme\n",
          f);
    if (fclose(f) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && umask 077 && openssl req -new -newkey ec -pkeyopt "
                 "ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.csr -subj /CN=%s && "
                 "openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                 "-out %s.crt -days 2 -sha256 -extfile node.ext && rm -f %s.csr",
                 dir, nodes[i], nodes[i], nodes[i], nodes[i], nodes[i], nodes[i]);
        if (run(dir, cmd) != 0)
            return -1;
    }
    return 0;
}

static void pki_remove(sf_dir *d)
{
    if (!d->dir[0])
        return;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "kms fixture: cannot remove %s\n", d->dir);
    memset(d, 0, sizeof *d);
}

/* The peer listener of node on 127.0.0.1 (port 0: ephemeral), as kmed/listeners.c starts it. */
static int listen_peer(const char *pki, const char *node, uint16_t port, qk_http_handler *h,
                       qk_tls_server **out)
{
    char cert[128], key[128], ca[128];
    snprintf(cert, sizeof cert, "%s/%s.crt", pki, node);
    snprintf(key, sizeof key, "%s/%s.key", pki, node);
    snprintf(ca, sizeof ca, "%s/ca.crt", pki);
    qk_listener_config lc;
    memset(&lc, 0, sizeof lc);
    lc.name = "peer";
    lc.bind_addr = "127.0.0.1";
    lc.port = port;
    lc.tls.mode = QK_TLS_MODE_MTLS;
    lc.tls.cert_file = cert;
    lc.tls.key_file = key;
    lc.tls.ca_file = ca;
    lc.handler = h;
    lc.handshake_timeout_ms = 5000;
    lc.max_body = QK_PEER_API_MAX_BODY;
    qk_err err = {0, ""};
    if (qk_tls_server_start(&lc, out, &err) != 0) {
        fprintf(stderr, "kms fixture: peer listener of %s: %s\n", node, err.msg);
        return -1;
    }
    return 0;
}

int kf_pair_open(kf_pair *p, const char *const *saes_a, const char *const *saes_b)
{
    memset(p, 0, sizeof *p);
    static const char *const nodes[2] = {KF_NODE, KF_PEER};
    if (qk_http_global_init() != 0)
        return -1;
    p->saved_level = qk_log_get_level();
    qk_log_set_level(QK_LOG_WARN); /* no request line per peer call in the test output */
    /* The handlers are configured before the listeners start and get their KME once it is
     * open (its link needs the other listener's port); nobody calls them before that. */
    qk_peer_api_configure(&p->ha, NULL);
    qk_peer_api_configure(&p->hb, NULL);
    kf_link la = {.peer = KF_PEER, .pki = p->pki.dir};
    kf_link lb = {.peer = KF_NODE, .pki = p->pki.dir};
    if (sf_dir_make(&p->pki, "pki") != 0 || pki_make(p->pki.dir, nodes) != 0 ||
        listen_peer(p->pki.dir, KF_NODE, 0, &p->ha.super, &p->sa) != 0 ||
        listen_peer(p->pki.dir, KF_PEER, 0, &p->hb.super, &p->sb) != 0)
        goto fail;
    snprintf(la.url, sizeof la.url, "https://127.0.0.1:%u", (unsigned)qk_tls_server_port(p->sb));
    snprintf(lb.url, sizeof lb.url, "https://127.0.0.1:%u", (unsigned)qk_tls_server_port(p->sa));
    p->port_b = qk_tls_server_port(p->sb);
    if (kme_open(&p->a, KF_NODE, saes_a, &la) != 0 || kme_open(&p->b, KF_PEER, saes_b, &lb) != 0)
        goto fail;
    p->ha.kms = p->a.kms;
    p->hb.kms = p->b.kms;
    return 0;
fail:
    kf_pair_close(p);
    return -1;
}

void kf_pair_close(kf_pair *p)
{
    qk_tls_server_stop(p->sa); /* no handler runs after this */
    qk_tls_server_stop(p->sb);
    p->sa = p->sb = NULL;
    if (p->a.cfg)
        kf_close(&p->a);
    if (p->b.cfg)
        kf_close(&p->b);
    pki_remove(&p->pki);
    qk_http_global_cleanup();
    qk_log_set_level(p->saved_level);
}

void kf_pair_b_down(kf_pair *p)
{
    qk_tls_server_stop(p->sb);
    p->sb = NULL;
}

int kf_pair_b_up(kf_pair *p)
{
    return p->sb ? 0 : listen_peer(p->pki.dir, KF_PEER, p->port_b, &p->hb.super, &p->sb);
}

int kf_pair_b_fake(kf_pair *p, qk_http_handler *h)
{
    return p->sb ? -1 : listen_peer(p->pki.dir, KF_PEER, p->port_b, h, &p->sb);
}

int kf_reopen(kf_kme *f)
{
    qk_kms_close(f->kms);
    f->kms = NULL;
    qk_err err = {0, ""};
    if (qk_kms_open(f->cfg, NULL, &f->kms, &err) != 0) {
        fprintf(stderr, "qk_kms_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

void kf_put_pending(qk_store *st, uint64_t id, const uint8_t *bytes, size_t len)
{
    qk_put_result res = QK_PUT_CONFLICT;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_block_put(st, KF_LINK, id, bytes, len, &res, &err), 0);
    CU_ASSERT_EQUAL_FATAL(res, QK_PUT_NEW);
}

int kf_block_state(qk_store *st, uint64_t id)
{
    uint8_t dg[QK_CHECK_LEN];
    qk_block_state bs = QK_BLOCK_PENDING;
    qk_err err = {0, ""};
    int rc = qk_store_block_digest(st, KF_LINK, id, dg, &bs, &err);
    CU_ASSERT(rc == 0 || rc == QK_ENOTFOUND);
    return rc == 0 ? (int)bs : -1;
}

int kf_block_sql(const kf_kme *f, const char *sql, int64_t arg, uint64_t id)
{
    char path[256];
    snprintf(path, sizeof path, "%s/data/store.db", f->dir.dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int64(st, 1, arg) == SQLITE_OK &&
        sqlite3_bind_text(st, 2, KF_LINK, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int64(st, 3, (sqlite3_int64)id) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) == 1)
        rc = 0;
    else
        fprintf(stderr, "kf_block_sql: %s\n", db ? sqlite3_errmsg(db) : "no database");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
