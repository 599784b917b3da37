/* tls_policy.c - the TLS side of a listener: PSK file loading, the SSL_CTX for each policy
 * (mTLS, PSK for TLS 1.2 and 1.3, server certificate only, PSK or mTLS), and the
 * authenticated identity of a finished handshake. */
#include "tls_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "codec.h"
#include "secbuf.h"

#define PSK_FILE_MAX    (1024 * 1024)
#define PSK_ENTRIES_MAX 4096
#define PSK_LINE_MAX    1024

/* The four TLS 1.2 suites SKIP allows. */
#define QK_PSK_TLS12_SUITES                                                                        \
    "DHE-PSK-AES256-CBC-SHA384:DHE-PSK-AES256-CBC-SHA:PSK-AES256-GCM-SHA384:DHE-PSK-AES256-GCM-"   \
    "SHA384"
#define QK_CERT_TLS12_SUITES                                                                       \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"     \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define QK_TLS13_SUITES "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"

/* TLS 1.3 suite code points (RFC 8446 B.4). */
static const unsigned char SUITE_AES256_SHA384[2] = {0x13, 0x02};
static const unsigned char SUITE_AES128_SHA256[2] = {0x13, 0x01};

/* What the SSL_CTX carries for the callbacks (SSL_CTX app data). */
typedef struct {
    qk_tls_mode mode;
    const qk_psk_table *psks;
    const qk_fp_map *fp_map;
    qk_psk_hash psk_hash; /* for PSK lines that name no hash */
    char suites384[256];  /* the policy's TLS 1.3 suites that hash with SHA-384 */
    char suites256[256];  /* ... with SHA-256 */
} policy_data;

/* ---- PSK file ------------------------------------------------------------------------------ */

static const char *const psk_hash_names[] = {"sha384", "sha256", "auto"};

const char *qk_psk_hash_name(qk_psk_hash h)
{
    return (unsigned)h < sizeof psk_hash_names / sizeof psk_hash_names[0] ? psk_hash_names[h] : "?";
}

int qk_psk_hash_parse(const char *s, size_t len, qk_psk_hash *out)
{
    for (size_t i = 0; s && i < sizeof psk_hash_names / sizeof psk_hash_names[0]; i++) {
        if (len == strlen(psk_hash_names[i]) && strncasecmp(s, psk_hash_names[i], len) == 0) {
            *out = (qk_psk_hash)i;
            return 0;
        }
    }
    return -1;
}

void qk_tls_hs_state_init(qk_tls_hs_state *hs)
{
    hs->psk_index = -1;
    hs->psk_hash = -1;
    hs->psk_auto = false;
}

void qk_psk_table_free(qk_psk_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        qk_secure_free(t->entries[i].key);
        t->entries[i].key = NULL;
        t->entries[i].key_len = 0;
    }
    free(t->entries);
    t->entries = NULL;
    t->n = 0;
}

static void trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int identity_ok(const char *s, size_t len)
{
    if (len == 0 || len >= QK_IDENTITY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* Parse one non-comment line into *e (key in secure memory). Messages never quote the key. */
static int parse_psk_line(const char *line, size_t len, qk_psk_entry *e, const char *path,
                          size_t lineno, qk_err *err)
{
    const char *c1 = memchr(line, ':', len);
    if (!c1)
        return qk_err_set(err, QK_EINVAL, "%s:%zu: expected identity:hexkey[:sha384|sha256|auto]",
                          path, lineno);
    const char *id = line;
    size_t id_len = (size_t)(c1 - line);
    trim(&id, &id_len);
    if (!identity_ok(id, id_len))
        return qk_err_set(err, QK_EINVAL,
                          "%s:%zu: bad identity (1..%d printable characters, no spaces)", path,
                          lineno, QK_IDENTITY_MAX - 1);
    const char *hex = c1 + 1;
    size_t rest = len - id_len - 1 - (size_t)(id - line);
    const char *c2 = memchr(hex, ':', rest);
    size_t hex_len = c2 ? (size_t)(c2 - hex) : rest;
    const char *hash = c2 ? c2 + 1 : NULL;
    size_t hash_len = c2 ? rest - hex_len - 1 : 0;
    trim(&hex, &hex_len);
    qk_psk_hash h = QK_PSK_SHA384;
    if (hash) {
        trim(&hash, &hash_len);
        if (qk_psk_hash_parse(hash, hash_len, &h) != 0)
            return qk_err_set(err, QK_EINVAL, "%s:%zu: unknown hash (use sha384, sha256 or auto)",
                              path, lineno);
    }
    if (hex_len % 2 != 0 || hex_len / 2 < 16 || hex_len / 2 > QK_PSK_MAX)
        return qk_err_set(err, QK_EINVAL, "%s:%zu: key must be 16..%d bytes of hex", path, lineno,
                          QK_PSK_MAX);
    uint8_t *key = qk_secure_alloc(QK_PSK_MAX);
    if (!key)
        return qk_err_set(err, QK_ENOMEM, "%s:%zu: out of secure memory", path, lineno);
    size_t key_len = 0;
    if (qk_hex_decode(hex, hex_len, key, QK_PSK_MAX, &key_len) != 0) {
        qk_secure_free(key);
        return qk_err_set(err, QK_EINVAL, "%s:%zu: key is not valid hex", path, lineno);
    }
    memset(e, 0, sizeof *e);
    memcpy(e->identity, id, id_len);
    e->identity[id_len] = '\0';
    e->key = key;
    e->key_len = key_len;
    e->hash = h;
    e->hash_unset = hash == NULL;
    return 0;
}

int qk_psk_table_load(const char *path, qk_psk_table *out, qk_err *err)
{
    if (!path || !out)
        return qk_err_set(err, QK_EINVAL, "qk_psk_table_load: bad arguments");
    out->entries = NULL;
    out->n = 0;
    size_t len = 0;
    uint8_t *buf = qk_secure_read_file(path, PSK_FILE_MAX, 1, &len);
    if (!buf) {
        if (errno == EPERM)
            return qk_err_set(err, QK_EUNAUTH,
                              "%s: PSK file must not be group or world accessible (chmod 600)",
                              path);
        if (errno == EFBIG)
            return qk_err_set(err, QK_ELIMIT, "%s: PSK file too large", path);
        return qk_err_set(err, errno == ENOENT ? QK_ENOTFOUND : QK_ESTORAGE, "%s: %s", path,
                          strerror(errno));
    }
    qk_psk_table t = {NULL, 0};
    size_t cap = 0;
    int rc = 0;
    const char *p = (const char *)buf;
    const char *end = p + len;
    size_t lineno = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p = nl ? nl + 1 : end;
        lineno++;
        if (ll > PSK_LINE_MAX) {
            rc = qk_err_set(err, QK_EINVAL, "%s:%zu: line too long", path, lineno);
            break;
        }
        trim(&line, &ll);
        if (ll == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', ll)) {
            rc = qk_err_set(err, QK_EINVAL, "%s:%zu: NUL byte", path, lineno);
            break;
        }
        if (t.n == PSK_ENTRIES_MAX) {
            rc = qk_err_set(err, QK_ELIMIT, "%s:%zu: more than %d entries", path, lineno,
                            PSK_ENTRIES_MAX);
            break;
        }
        if (t.n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            qk_psk_entry *ne = realloc(t.entries, ncap * sizeof *ne);
            if (!ne) {
                rc = qk_err_set(err, QK_ENOMEM, "%s: out of memory", path);
                break;
            }
            t.entries = ne;
            cap = ncap;
        }
        qk_psk_entry e;
        rc = parse_psk_line(line, ll, &e, path, lineno, err);
        if (rc != 0)
            break;
        for (size_t i = 0; i < t.n; i++) {
            if (strcmp(t.entries[i].identity, e.identity) == 0) {
                rc = qk_err_set(err, QK_EEXIST, "%s:%zu: duplicate identity '%s'", path, lineno,
                                e.identity);
                break;
            }
        }
        if (rc != 0) {
            qk_secure_free(e.key);
            break;
        }
        t.entries[t.n++] = e;
    }
    qk_secure_free(buf);
    if (rc != 0) {
        qk_psk_table_free(&t);
        return rc;
    }
    *out = t;
    return 0;
}

int qk_tls_fp_parse(const char *s, uint8_t fp[32])
{
    char hex[64];
    size_t n = 0;
    if (!s)
        return -1;
    for (; *s; s++) {
        if (*s == ':')
            continue;
        if (n == sizeof hex)
            return -1;
        hex[n++] = *s;
    }
    size_t outlen = 0;
    if (n != sizeof hex || qk_hex_decode(hex, n, fp, 32, &outlen) != 0 || outlen != 32)
        return -1;
    return 0;
}

/* ---- PSK callbacks ------------------------------------------------------------------------- */

static const policy_data *ctx_policy(SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static long psk_find(const qk_psk_table *t, const unsigned char *id, size_t id_len)
{
    if (!t || id_len == 0 || id_len >= QK_IDENTITY_MAX)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        if (strlen(t->entries[i].identity) == id_len &&
            memcmp(t->entries[i].identity, id, id_len) == 0)
            return (long)i;
    }
    return -1;
}

/* The hash policy of an entry: its own when its line named one, else the listener's. */
static qk_psk_hash entry_hash(const policy_data *pd, const qk_psk_entry *e)
{
    return e->hash_unset ? pd->psk_hash : e->hash;
}

static void hs_note_psk(SSL *ssl, long idx)
{
    qk_tls_hs_state *hs = SSL_get_app_data(ssl);
    if (hs)
        hs->psk_index = idx;
}

/* TLS 1.2 PSK suites. Returning 0 (unknown identity) fails the handshake. */
static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
                                  unsigned int max_psk_len)
{
    const policy_data *pd = ctx_policy(ssl);
    if (!pd || !identity)
        return 0;
    /* TLS 1.3 PSKs are handled by psk_find_session_cb only (with the entry's hash). */
    if (SSL_version(ssl) >= TLS1_3_VERSION)
        return 0;
    long i = psk_find(pd->psks, (const unsigned char *)identity, strlen(identity));
    if (i < 0 || pd->psks->entries[i].key_len > max_psk_len)
        return 0;
    const qk_psk_entry *e = &pd->psks->entries[i];
    memcpy(psk, e->key, e->key_len);
    hs_note_psk(ssl, i);
    return (unsigned int)e->key_len;
}

/* TLS 1.3 external PSK: a session carrying the key, bound to the entry's hash. */
static int psk_find_session_cb(SSL *ssl, const unsigned char *identity, size_t identity_len,
                               SSL_SESSION **sess)
{
    *sess = NULL;
    const policy_data *pd = ctx_policy(ssl);
    if (!pd)
        return 0;
    long i = psk_find(pd->psks, identity, identity_len);
    if (i < 0)
        return 1; /* unknown: no PSK from us; the policy refuses an unauthenticated peer */
    const qk_psk_entry *e = &pd->psks->entries[i];
    qk_tls_hs_state *hs = SSL_get_app_data(ssl);
    qk_psk_hash h = entry_hash(pd, e);
    bool automatic = h == QK_PSK_AUTO;
    if (automatic) /* the client_hello callback read the binder; SHA-384 when it could not */
        h = hs && hs->psk_auto && hs->psk_hash == QK_PSK_SHA256 ? QK_PSK_SHA256 : QK_PSK_SHA384;
    const SSL_CIPHER *cipher =
        SSL_CIPHER_find(ssl, h == QK_PSK_SHA256 ? SUITE_AES128_SHA256 : SUITE_AES256_SHA384);
    SSL_SESSION *s = SSL_SESSION_new();
    if (!cipher || !s || !SSL_SESSION_set1_master_key(s, e->key, e->key_len) ||
        !SSL_SESSION_set_cipher(s, cipher) ||
        !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return 0;
    }
    hs_note_psk(ssl, i);
    if (hs) {
        hs->psk_hash = (int)h;
        hs->psk_auto = automatic;
    }
    *sess = s;
    return 1;
}

/* Length of binder number `k` in a pre_shared_key extension (RFC 8446 section 4.2.11:
 * identities<7..2^16-1>, then binders<33..2^16-1>, each binder opaque<32..255>), or 0 when the
 * extension is too short for it. The bytes are the client's: every step is bounds-checked. */
static size_t binder_len(const unsigned char *ext, size_t len, size_t ids_len, size_t k)
{
    size_t off = 2 + ids_len;
    if (len - off < 2)
        return 0;
    size_t blen = ((size_t)ext[off] << 8) | ext[off + 1];
    const unsigned char *b = ext + off + 2;
    if (blen > len - off - 2)
        return 0;
    const unsigned char *bend = b + blen;
    for (size_t n = 0; b < bend; n++) {
        size_t l = b[0];
        if ((size_t)(bend - b) < 1 + l)
            return 0;
        if (n == k)
            return l;
        b += 1 + l;
    }
    return 0;
}

/* TLS 1.3 server cipher choice comes before the PSK is looked at, and OpenSSL prefers SHA-256
 * suites when a legacy PSK callback is set and no certificate is loaded; and OpenSSL discards a
 * PSK session whose hash is not the chosen suite's. So look at the identities the client offers
 * first: for the first one of ours, allow only suites of its hash. An entry in auto mode takes
 * the hash from the length of the client's binder for that identity (RFC 8446 section 4.2.11:
 * the binder is an HMAC with the PSK's hash, 32 bytes for SHA-256, 48 for SHA-384); any other
 * length keeps SHA-384, the hash we offer and prefer. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    (void)al;
    (void)arg;
    const policy_data *pd = ctx_policy(ssl);
    const unsigned char *ext = NULL;
    size_t len = 0;
    if (!pd || !pd->psks || !SSL_client_hello_get0_ext(ssl, 41 /* pre_shared_key */, &ext, &len))
        return SSL_CLIENT_HELLO_SUCCESS;
    if (len < 2)
        return SSL_CLIENT_HELLO_SUCCESS; /* malformed: OpenSSL rejects it later */
    size_t ids_len = ((size_t)ext[0] << 8) | ext[1];
    if (ids_len > len - 2)
        return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char *p = ext + 2, *end = ext + 2 + ids_len;
    for (size_t k = 0; end - p >= 2; k++) {
        size_t il = ((size_t)p[0] << 8) | p[1];
        if ((size_t)(end - p) < 2 + il + 4)
            break;
        long i = psk_find(pd->psks, p + 2, il);
        if (i >= 0) {
            qk_psk_hash h = entry_hash(pd, &pd->psks->entries[i]);
            qk_tls_hs_state *hs = SSL_get_app_data(ssl);
            if (h == QK_PSK_AUTO) {
                h = binder_len(ext, len, ids_len, k) == 32 ? QK_PSK_SHA256 : QK_PSK_SHA384;
                if (hs) {
                    hs->psk_hash = (int)h;
                    hs->psk_auto = true;
                }
            }
            const char *suites = h == QK_PSK_SHA256 ? pd->suites256 : pd->suites384;
            if (suites[0] && !SSL_set_ciphersuites(ssl, suites))
                ERR_clear_error();
            break;
        }
        p += 2 + il + 4;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Split a TLS 1.3 suite list by hash. */
static void split_suites(const char *list, policy_data *pd)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        size_t tl = strlen(tok);
        char *dst = NULL;
        if (tl > 7 && strcmp(tok + tl - 7, "_SHA384") == 0)
            dst = pd->suites384;
        else if (tl > 7 && strcmp(tok + tl - 7, "_SHA256") == 0)
            dst = pd->suites256;
        if (!dst)
            continue;
        size_t dl = strlen(dst);
        if (dl + tl + 2 > sizeof pd->suites384)
            continue;
        if (dl)
            dst[dl++] = ':';
        memcpy(dst + dl, tok, tl + 1);
    }
}

/* ---- SSL_CTX ------------------------------------------------------------------------------- */

static int ssl_fail(qk_err *err, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return qk_err_set(err, QK_ETLS, "%s%s%s: %s", what, file ? " " : "", file ? file : "",
                      buf[0] ? buf : "failed");
}

void qk_tls_policy_ctx_free(SSL_CTX *ctx)
{
    if (!ctx)
        return;
    free(SSL_CTX_get_app_data(ctx));
    SSL_CTX_set_app_data(ctx, NULL);
    SSL_CTX_free(ctx);
}

SSL_CTX *qk_tls_policy_ctx_new(const qk_tls_policy *p, qk_err *err)
{
    if (!p || p->mode == QK_TLS_MODE_NONE) {
        qk_err_set(err, QK_EINVAL, "TLS policy: no TLS mode");
        return NULL;
    }
    int want_psk = p->mode == QK_TLS_MODE_PSK || p->mode == QK_TLS_MODE_PSK_OR_MTLS;
    int want_ca = p->mode == QK_TLS_MODE_MTLS || p->mode == QK_TLS_MODE_PSK_OR_MTLS;
    int want_cert = p->mode != QK_TLS_MODE_PSK;
    if ((unsigned)p->psk_hash > QK_PSK_AUTO) {
        qk_err_set(err, QK_EINVAL, "TLS policy: psk_hash must be sha384, sha256 or auto");
        return NULL;
    }
    if (want_psk && (!p->psks || p->psks->n == 0)) {
        qk_err_set(err, QK_EINVAL, "TLS policy: PSK mode needs a non-empty PSK table");
        return NULL;
    }
    if (want_ca && !p->ca_file) {
        qk_err_set(err, QK_EINVAL, "TLS policy: client certificates need ca_file");
        return NULL;
    }
    if ((want_cert || p->cert_file || p->key_file) && (!p->cert_file || !p->key_file)) {
        qk_err_set(err, QK_EINVAL, "TLS policy: cert_file and key_file are required");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    policy_data *pd = calloc(1, sizeof *pd);
    if (!ctx || !pd) {
        free(pd);
        SSL_CTX_free(ctx);
        ssl_fail(err, "SSL_CTX_new", NULL);
        return NULL;
    }
    pd->mode = p->mode;
    pd->psks = p->psks;
    pd->fp_map = p->fp_map;
    pd->psk_hash = p->psk_hash;
    SSL_CTX_set_app_data(ctx, pd);

    int minv = p->min_version ? p->min_version : TLS1_2_VERSION;
    int maxv = p->max_version ? p->max_version : TLS1_3_VERSION;
    const char *t12 = p->tls12_ciphers;
    if (!t12)
        t12 = p->mode == QK_TLS_MODE_PSK           ? QK_PSK_TLS12_SUITES
              : p->mode == QK_TLS_MODE_PSK_OR_MTLS ? QK_PSK_TLS12_SUITES ":" QK_CERT_TLS12_SUITES
                                                   : QK_CERT_TLS12_SUITES;
    const char *t13 = p->tls13_suites ? p->tls13_suites : QK_TLS13_SUITES;
    if (minv < TLS1_2_VERSION || maxv > TLS1_3_VERSION || minv > maxv) {
        qk_err_set(err, QK_EINVAL, "TLS policy: versions must be within TLS 1.2..1.3");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, minv) || !SSL_CTX_set_max_proto_version(ctx, maxv)) {
        ssl_fail(err, "TLS versions", NULL);
        goto fail;
    }
    if (!SSL_CTX_set_cipher_list(ctx, t12)) {
        ssl_fail(err, "TLS 1.2 cipher list", t12);
        goto fail;
    }
    if (!SSL_CTX_set_ciphersuites(ctx, t13)) {
        ssl_fail(err, "TLS 1.3 suites", t13);
        goto fail;
    }
    /* No renegotiation, no resumption: every connection authenticates afresh. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead: one read(2) takes what the socket holds (a record's header and body, or
     * several records) instead of one for the 5-byte header and one for the body; the front
     * end asks SSL_has_pending before it waits for the socket (tls_server.c). */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (!SSL_CTX_set_dh_auto(ctx, 1)) {
        ssl_fail(err, "DH parameters", NULL);
        goto fail;
    }
    if (p->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, p->cert_file) != 1) {
            ssl_fail(err, "server certificate", p->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, p->key_file, SSL_FILETYPE_PEM) != 1) {
            ssl_fail(err, "server key", p->key_file);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ssl_fail(err, "server key does not match certificate", p->key_file);
            goto fail;
        }
    }
    if (want_ca) {
        if (SSL_CTX_load_verify_locations(ctx, p->ca_file, NULL) != 1) {
            ssl_fail(err, "client CA", p->ca_file);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(p->ca_file);
        if (!names) {
            ssl_fail(err, "client CA names", p->ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        int vm = SSL_VERIFY_PEER;
        if (p->mode == QK_TLS_MODE_MTLS)
            vm |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, vm, NULL);
        SSL_CTX_set_verify_depth(ctx, 8);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    /* Required once verification and PSK "resumption" meet; names this service's contexts. */
    static const unsigned char sid_ctx[] = "qkd-kms";
    if (!SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
        ssl_fail(err, "session id context", NULL);
        goto fail;
    }
    if (want_psk) {
        split_suites(t13, pd);
        SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
        SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
        SSL_CTX_set_psk_find_session_callback(ctx, psk_find_session_cb);
    }
    ERR_clear_error();
    return ctx;
fail:
    qk_tls_policy_ctx_free(ctx);
    return NULL;
}

/* ---- identity ------------------------------------------------------------------------------ */

static int cert_cn(X509 *cert, char *out, size_t cap)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (idx < 0)
        return -1;
    /* Exactly one CN: an ambiguous subject is not an identity. */
    if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
        return -1;
    ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int n = d ? ASN1_STRING_to_UTF8(&utf8, d) : -1;
    if (n <= 0 || (size_t)n >= cap) {
        OPENSSL_free(utf8);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (utf8[i] < 0x20 || utf8[i] == 0x7f) {
            OPENSSL_free(utf8);
            return -1;
        }
    }
    memcpy(out, utf8, (size_t)n);
    out[n] = '\0';
    OPENSSL_free(utf8);
    return 0;
}

/* The role marker of a certificate: its subjectAltName URIs (RFC 5280 section 4.2.1.6)
 * folded by qk_role_fold_uri (cert_role.h). Bounded by the certificate's own SAN count. */
static qk_role cert_role(X509 *cert)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    qk_role r = QK_ROLE_NONE;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_URI)
            continue;
        const ASN1_IA5STRING *u = g->d.uniformResourceIdentifier;
        r = qk_role_fold_uri(r, (const char *)ASN1_STRING_get0_data(u),
                             (size_t)ASN1_STRING_length(u));
    }
    GENERAL_NAMES_free(sans);
    return r;
}

static int cert_identity(SSL *ssl, const policy_data *pd, qk_peer_identity *out)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
        return -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!X509_digest(cert, EVP_sha256(), md, &mdlen) || mdlen != 32)
        return -1;
    qk_hex_encode(md, 32, out->fp_hex, sizeof out->fp_hex);
    const char *mapped = NULL;
    if (pd->fp_map) {
        for (size_t i = 0; i < pd->fp_map->n; i++) {
            if (memcmp(pd->fp_map->entries[i].fp, md, 32) == 0) {
                mapped = pd->fp_map->entries[i].identity;
                break;
            }
        }
    }
    if (mapped && mapped[0]) {
        snprintf(out->id, sizeof out->id, "%s", mapped);
    } else if (cert_cn(cert, out->id, sizeof out->id) != 0) {
        return -1;
    }
    out->role = cert_role(cert);
    out->kind = QK_ID_CERT;
    return 0;
}

int qk_tls_policy_identity(SSL *ssl, qk_peer_identity *out)
{
    memset(out, 0, sizeof *out);
    const policy_data *pd = ctx_policy(ssl);
    if (!pd)
        return -1;
    snprintf(out->tls_version, sizeof out->tls_version, "%s", SSL_get_version(ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    snprintf(out->cipher, sizeof out->cipher, "%s", c ? SSL_CIPHER_get_name(c) : "");

    int want_psk = pd->mode == QK_TLS_MODE_PSK || pd->mode == QK_TLS_MODE_PSK_OR_MTLS;
    int want_cert = pd->mode == QK_TLS_MODE_MTLS || pd->mode == QK_TLS_MODE_PSK_OR_MTLS;
    const qk_tls_hs_state *hs = SSL_get_app_data(ssl);
    if (want_psk && hs && hs->psk_index >= 0 && (size_t)hs->psk_index < pd->psks->n) {
        /* Did the handshake actually use the PSK? TLS 1.3: an external PSK is a "reused"
         * session (we issue no tickets); TLS 1.2: a PSK-authenticated suite. */
        int used = SSL_version(ssl) >= TLS1_3_VERSION
                       ? SSL_session_reused(ssl)
                       : (c && SSL_CIPHER_get_auth_nid(c) == NID_auth_psk);
        if (used) {
            out->kind = QK_ID_PSK;
            snprintf(out->id, sizeof out->id, "%s", pd->psks->entries[hs->psk_index].identity);
            return 0;
        }
    }
    if (want_cert)
        return cert_identity(ssl, pd, out);
    if (pd->mode == QK_TLS_MODE_SERVER_CERT) {
        out->kind = QK_ID_NONE;
        return 0;
    }
    return -1;
}

/* ---- fingerprint maps ------------------------------------------------------------------ */

#define FP_MAP_MAX  4096
#define FP_LINE_MAX 1024

void qk_fp_map_free(qk_fp_map *m)
{
    if (!m)
        return;
    free(m->entries);
    m->entries = NULL;
    m->n = 0;
}

static int fp_line(char *s, qk_fp_entry *e)
{
    char *sp = s;
    while (*sp && !isspace((unsigned char)*sp))
        sp++;
    if (!*sp)
        return -1;
    *sp++ = '\0';
    while (isspace((unsigned char)*sp))
        sp++;
    size_t idl = strlen(sp);
    while (idl > 0 && isspace((unsigned char)sp[idl - 1]))
        sp[--idl] = '\0';
    if (idl == 0 || idl >= sizeof e->identity)
        return -1;
    if (qk_tls_fp_parse(s, e->fp) != 0)
        return -1;
    memcpy(e->identity, sp, idl + 1);
    return 0;
}

int qk_fp_map_load(const char *path, qk_fp_map *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return qk_err_set(err, QK_EIO, "%s: %s", path, strerror(errno));
    char buf[FP_LINE_MAX];
    int line = 0, rc = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (!strchr(buf, '\n') && !feof(f)) {
            rc = qk_err_set(err, QK_EINVAL, "%s:%d: line too long", path, line);
            break;
        }
        char *s = buf;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#')
            continue;
        if (out->n >= FP_MAP_MAX) {
            rc = qk_err_set(err, QK_EINVAL, "%s:%d: more than %d entries", path, line, FP_MAP_MAX);
            break;
        }
        qk_fp_entry *ne = realloc(out->entries, (out->n + 1) * sizeof *ne);
        if (!ne) {
            rc = qk_err_set(err, QK_ENOMEM, "out of memory");
            break;
        }
        out->entries = ne;
        if (fp_line(s, &out->entries[out->n]) != 0) {
            rc = qk_err_set(err, QK_EINVAL,
                            "%s:%d: want \"SHA256-HEX IDENTITY\" (64 hex digits, colons allowed)",
                            path, line);
            break;
        }
        out->n++;
    }
    fclose(f);
    if (rc != 0)
        qk_fp_map_free(out);
    return rc;
}
