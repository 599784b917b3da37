/* http_client.c - HTTP(S) client over libcurl (OpenSSL backend): one easy handle per client
 * (connections are kept alive between calls), mutual TLS, TLS-PSK for TLS 1.2 (legacy client
 * callback) and TLS 1.3 (a session bound to TLS_AES_256_GCM_SHA384, or TLS_AES_128_GCM_SHA256
 * with psk_sha256) installed through CURLOPT_SSL_CTX_FUNCTION, bounded response size, error
 * classification, secrets wiped on free. */
#include "http_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "secbuf.h"
#include "tls_server.h"

#define DEFAULT_MAX_RESPONSE (8u * 1024 * 1024)
#define MAX_HEADERS          64

#define PSK_TLS12_SUITES                                                                           \
    "DHE-PSK-AES256-CBC-SHA384:DHE-PSK-AES256-CBC-SHA:PSK-AES256-GCM-SHA384:DHE-PSK-AES256-GCM-"   \
    "SHA384"

struct qk_http_client {
    CURL *h;
    char *ca_file, *cert_file, *key_file;
    char psk_identity[QK_IDENTITY_MAX];
    uint8_t *psk; /* secure memory */
    size_t psk_len;
    int psk_sha256;
    size_t max_response;
    /* the response being received */
    char *buf;
    size_t len, cap;
    int overflow;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ctx_idx = -1;

static void make_index(void)
{
    g_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int qk_http_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    pthread_once(&g_once, make_index);
    return g_ctx_idx >= 0 ? 0 : -1;
}

void qk_http_global_cleanup(void)
{
    curl_global_cleanup();
}

/* ---- PSK callbacks (on the SSL_CTX libcurl creates per connection) ------------------------ */

static qk_http_client *client_of(SSL *ssl)
{
    return g_ctx_idx >= 0 ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_ctx_idx) : NULL;
}

/* TLS 1.2 PSK suites. */
static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity,
                                  unsigned int max_identity_len, unsigned char *psk,
                                  unsigned int max_psk_len)
{
    (void)hint;
    qk_http_client *c = client_of(ssl);
    if (!c || !c->psk)
        return 0;
    /* In a TLS 1.3 ClientHello OpenSSL would bind this key to SHA-256: only allow that when
     * the client is configured so (the session callback normally covers TLS 1.3). */
    if (SSL_version(ssl) != TLS1_2_VERSION && !c->psk_sha256)
        return 0;
    size_t il = strlen(c->psk_identity);
    if (il + 1 > max_identity_len || c->psk_len > max_psk_len)
        return 0;
    memcpy(identity, c->psk_identity, il + 1);
    memcpy(psk, c->psk, c->psk_len);
    return (unsigned int)c->psk_len;
}

/* TLS 1.3 external PSK. md is NULL on the first ClientHello, the handshake hash after a
 * HelloRetryRequest: offer the PSK only when it matches. */
static int psk_use_session_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                              SSL_SESSION **sess)
{
    static const unsigned char aes256[2] = {0x13, 0x02}, aes128[2] = {0x13, 0x01};
    *sess = NULL;
    *id = NULL;
    *idlen = 0;
    qk_http_client *c = client_of(ssl);
    if (!c || !c->psk)
        return 1;
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, c->psk_sha256 ? aes128 : aes256);
    if (!cipher)
        return 0;
    const EVP_MD *want = SSL_CIPHER_get_handshake_digest(cipher);
    if (md && (!want || EVP_MD_get_type(md) != EVP_MD_get_type(want)))
        return 1;
    SSL_SESSION *s = SSL_SESSION_new();
    if (!s || !SSL_SESSION_set1_master_key(s, c->psk, c->psk_len) ||
        !SSL_SESSION_set_cipher(s, cipher) ||
        !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return 0;
    }
    *sess = s;
    *id = (const unsigned char *)c->psk_identity;
    *idlen = strlen(c->psk_identity);
    return 1;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *sslctx, void *parm)
{
    (void)curl;
    qk_http_client *c = parm;
    SSL_CTX *ctx = sslctx;
    if (!SSL_CTX_set_ex_data(ctx, g_ctx_idx, c))
        return CURLE_SSL_CERTPROBLEM;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (c->psk) {
        SSL_CTX_set_psk_client_callback(ctx, psk_client_cb);
        SSL_CTX_set_psk_use_session_callback(ctx, psk_use_session_cb);
    }
    return CURLE_OK;
}

/* ---- body accumulation --------------------------------------------------------------------- */

static void buf_drop(qk_http_client *c)
{
    qk_wipe_free(c->buf, c->cap);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    qk_http_client *c = userp;
    size_t n = size * nmemb;
    if (n > c->max_response || c->len > c->max_response - n) {
        c->overflow = 1;
        return 0; /* aborts the transfer */
    }
    if (c->len + n + 1 > c->cap) {
        size_t ncap = c->cap ? c->cap : 4096;
        while (ncap < c->len + n + 1)
            ncap *= 2;
        if (ncap > c->max_response + 1)
            ncap = c->max_response + 1;
        /* Not realloc: the old block may hold key material and must be wiped. */
        char *nb = malloc(ncap);
        if (!nb)
            return 0;
        if (c->buf)
            memcpy(nb, c->buf, c->len);
        qk_wipe_free(c->buf, c->cap);
        c->buf = nb;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    return n;
}

/* ---- client -------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s, int *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = 1;
    return d;
}

void qk_http_client_free(qk_http_client *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    qk_secure_free(c->psk);
    buf_drop(c);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    qk_wipe_free(c, sizeof *c);
}

static long ssl_version_opt(int minv, int maxv)
{
    long v = minv == TLS1_3_VERSION ? CURL_SSLVERSION_TLSv1_3 : CURL_SSLVERSION_TLSv1_2;
    v |= maxv == TLS1_2_VERSION ? CURL_SSLVERSION_MAX_TLSv1_2 : CURL_SSLVERSION_MAX_TLSv1_3;
    return v;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        CURLcode rc_ = curl_easy_setopt(c->h, opt, val);                                           \
        if (rc_ != CURLE_OK) {                                                                     \
            qk_err_set(err, QK_EINVAL, "http client: %s: %s", #opt, curl_easy_strerror(rc_));      \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

qk_http_client *qk_http_client_new(const qk_http_tls *tls, qk_err *err)
{
    static const qk_http_tls none;
    if (!tls)
        tls = &none;
    pthread_once(&g_once, make_index);
    if (g_ctx_idx < 0) {
        qk_err_set(err, QK_ETLS, "http client: no OpenSSL ex-data index");
        return NULL;
    }
    int has_psk = tls->psk_identity != NULL;
    if (has_psk) {
        size_t il = strlen(tls->psk_identity);
        if (il == 0 || il >= QK_IDENTITY_MAX || !tls->psk || tls->psk_len < 1 ||
            tls->psk_len > QK_PSK_MAX) {
            qk_err_set(err, QK_EINVAL, "http client: bad PSK identity or key length");
            return NULL;
        }
    }
    if ((tls->cert_file == NULL) != (tls->key_file == NULL)) {
        qk_err_set(err, QK_EINVAL, "http client: cert_file and key_file go together");
        return NULL;
    }
    qk_http_client *c = calloc(1, sizeof *c);
    if (!c) {
        qk_err_set(err, QK_ENOMEM, "out of memory");
        return NULL;
    }
    int fail = 0;
    c->ca_file = dup_or_null(tls->ca_file, &fail);
    c->cert_file = dup_or_null(tls->cert_file, &fail);
    c->key_file = dup_or_null(tls->key_file, &fail);
    c->max_response = tls->max_response ? tls->max_response : DEFAULT_MAX_RESPONSE;
    c->psk_sha256 = tls->psk_sha256;
    if (has_psk) {
        snprintf(c->psk_identity, sizeof c->psk_identity, "%s", tls->psk_identity);
        c->psk = qk_secure_alloc(tls->psk_len);
        if (c->psk) {
            memcpy(c->psk, tls->psk, tls->psk_len);
            c->psk_len = tls->psk_len;
        } else {
            fail = 1;
        }
    }
    c->h = curl_easy_init();
    if (fail || !c->h) {
        qk_err_set(err, QK_ENOMEM, "http client: out of memory");
        goto fail;
    }
    long cto = tls->connect_timeout_ms > 0 ? tls->connect_timeout_ms : 5000;
    long to = tls->timeout_ms > 0 ? tls->timeout_ms : 10000;
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, cto);
    SETOPT(CURLOPT_TIMEOUT_MS, to);
    SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, c);
    SETOPT(CURLOPT_SSLVERSION, ssl_version_opt(tls->min_version, tls->max_version));
    /* No TLS session resumption: every connection authenticates with its own credentials. */
    SETOPT(CURLOPT_SSL_SESSIONID_CACHE, 0L);
    if (c->ca_file)
        SETOPT(CURLOPT_CAINFO, c->ca_file);
    if (c->cert_file) {
        SETOPT(CURLOPT_SSLCERT, c->cert_file);
        SETOPT(CURLOPT_SSLKEY, c->key_file);
    }
    if (has_psk && !c->ca_file) {
        /* Pure PSK: the server may present no certificate at all. */
        SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, tls->verify_host ? 2L : 0L);
    }
    const char *t12 = tls->tls12_ciphers;
    const char *t13 = tls->tls13_suites;
    if (has_psk && !t12)
        t12 = PSK_TLS12_SUITES;
    if (has_psk && !t13)
        t13 = c->psk_sha256 ? "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
                            : "TLS_AES_256_GCM_SHA384";
    if (t12)
        SETOPT(CURLOPT_SSL_CIPHER_LIST, t12);
    if (t13)
        SETOPT(CURLOPT_TLS13_CIPHERS, t13);
    SETOPT(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    SETOPT(CURLOPT_SSL_CTX_DATA, c);
    return c;
fail:
    qk_http_client_free(c);
    return NULL;
}

static int classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return QK_ETIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return QK_ETLS;
    default:
        return QK_EIO;
    }
}

int qk_http_call(qk_http_client *c, const char *method, const char *url, const char *body,
                 size_t body_len, const char *const *headers, qk_http_response *resp, qk_err *err)
{
    if (resp)
        memset(resp, 0, sizeof *resp);
    if (!c || !method || !url || !resp || (body_len && !body))
        return qk_err_set(err, QK_EINVAL, "qk_http_call: bad arguments");
    struct curl_slist *hl = NULL;
    int rc = 0;
    size_t nh = 0;
    for (; headers && headers[nh]; nh++) {
        if (nh == MAX_HEADERS) {
            rc = qk_err_set(err, QK_EINVAL, "qk_http_call: more than %d headers", MAX_HEADERS);
            goto out;
        }
        struct curl_slist *t = curl_slist_append(hl, headers[nh]);
        if (!t) {
            rc = qk_err_set(err, QK_ENOMEM, "out of memory");
            goto out;
        }
        hl = t;
    }
    int is_get = strcmp(method, "GET") == 0, is_head = strcmp(method, "HEAD") == 0;
    int send_body = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    if (send_body) {
        /* No "Expect: 100-continue" round trip. */
        struct curl_slist *t = curl_slist_append(hl, "Expect:");
        if (!t) {
            rc = qk_err_set(err, QK_ENOMEM, "out of memory");
            goto out;
        }
        hl = t;
    }
    c->len = 0;
    c->overflow = 0;
    c->errbuf[0] = '\0';
    CURLcode cr = curl_easy_setopt(c->h, CURLOPT_URL, url);
    if (cr == CURLE_OK)
        cr = curl_easy_setopt(c->h, CURLOPT_NOBODY, is_head ? 1L : 0L);
    if (cr == CURLE_OK && !is_head) {
        if (send_body) {
            cr = curl_easy_setopt(c->h, CURLOPT_POST, 1L);
            if (cr == CURLE_OK)
                cr = curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            if (cr == CURLE_OK)
                cr = curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body ? body : "");
        } else {
            cr = curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
        }
    }
    if (cr == CURLE_OK)
        cr = curl_easy_setopt(
            c->h, CURLOPT_CUSTOMREQUEST,
            (is_get || is_head || (send_body && strcmp(method, "POST") == 0)) ? NULL : method);
    if (cr == CURLE_OK)
        cr = curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hl);
    if (cr != CURLE_OK) {
        rc = qk_err_set(err, QK_EINVAL, "%s %s: %s", method, url, curl_easy_strerror(cr));
        goto out;
    }
    cr = curl_easy_perform(c->h);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
    if (cr != CURLE_OK) {
        if (c->overflow)
            rc = qk_err_set(err, QK_ELIMIT, "%s %s: response larger than %zu bytes", method, url,
                            c->max_response);
        else
            rc = qk_err_set(err, classify(cr), "%s %s: %s", method, url,
                            c->errbuf[0] ? c->errbuf : curl_easy_strerror(cr));
        buf_drop(c);
        goto out;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &resp->status);
    char *ct = NULL;
    if (curl_easy_getinfo(c->h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
    struct curl_header *hv = NULL;
    if (curl_easy_header(c->h, "Allow", 0, CURLH_HEADER, -1, &hv) == CURLHE_OK && hv && hv->value)
        snprintf(resp->allow, sizeof resp->allow, "%s", hv->value);
    if (!c->buf) {
        c->buf = malloc(1);
        c->cap = 1;
        if (!c->buf) {
            c->cap = 0;
            rc = qk_err_set(err, QK_ENOMEM, "out of memory");
            goto out;
        }
    }
    c->buf[c->len] = '\0';
    resp->body = c->buf;
    resp->body_len = c->len;
    c->buf = NULL; /* ownership moves to the response */
    c->len = c->cap = 0;
out:
    curl_slist_free_all(hl);
    ERR_clear_error();
    return rc;
}

void qk_http_response_free(qk_http_response *r)
{
    if (!r)
        return;
    qk_wipe_free(r->body, r->body_len);
    memset(r, 0, sizeof *r);
}
