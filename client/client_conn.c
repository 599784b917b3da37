/* client_conn.c - libqkdclient connection profile: options to the common HTTP client, raw
 * requests, error classes, the server's error message and URL encoding. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "client_internal.h"
#include "http_client.h"
#include "json_util.h"
#include "secbuf.h"

struct qkc_client {
    qk_http_client *http;
    qk_http_client *http_sha256; /* psk_hash_auto: the SHA-256-bound fallback, until used */
    void (*on_psk_fallback)(void *arg);
    void *on_psk_fallback_arg;
    char base[QKC_URL_MAX];
};

const char *qkc_errclass_name(qkc_errclass cls)
{
    switch (cls) {
    case QKC_OK:
        return "ok";
    case QKC_EUSAGE:
        return "usage";
    case QKC_ETLS:
        return "tls";
    case QKC_ECONNECT:
        return "connect";
    case QKC_EHTTP:
        return "http";
    case QKC_EMALFORMED:
        return "malformed";
    case QKC_EINTERNAL:
        return "internal";
    }
    return "unknown";
}

void qkc_error_clear(qkc_error *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

int qkc_fail(qkc_error *e, qkc_errclass cls, const char *fmt, ...)
{
    if (e) {
        e->cls = cls;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return (int)cls;
}

/* ---- global init --------------------------------------------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc = -1;

static void do_init(void)
{
    if (qk_secure_init() == 0 && qk_http_global_init() == 0)
        g_init_rc = 0;
}

int qkc_global_init(void)
{
    pthread_once(&g_once, do_init);
    return g_init_rc;
}

void qkc_global_cleanup(void)
{
    qk_http_global_cleanup();
}

/* ---- client -------------------------------------------------------------------------------- */

static int tls_version(int v, int dflt, int *out)
{
    if (v == 0)
        v = dflt;
    if (v == 12)
        *out = TLS1_2_VERSION;
    else if (v == 13)
        *out = TLS1_3_VERSION;
    else
        return -1;
    return 0;
}

qkc_client *qkc_client_new(const qkc_options *o, qkc_error *e)
{
    qkc_error_clear(e);
    if (!o || !o->base_url) {
        qkc_fail(e, QKC_EUSAGE, "no server URL");
        return NULL;
    }
    size_t bl = strlen(o->base_url);
    while (bl > 0 && o->base_url[bl - 1] == '/')
        bl--;
    if (bl == 0 || bl >= QKC_URL_MAX / 2) {
        qkc_fail(e, QKC_EUSAGE, "server URL empty or longer than %d bytes", QKC_URL_MAX / 2);
        return NULL;
    }
    if (strncasecmp(o->base_url, "https://", 8) != 0 && strncasecmp(o->base_url, "http://", 7)) {
        qkc_fail(e, QKC_EUSAGE, "server URL must start with https:// or http://");
        return NULL;
    }
    for (size_t i = 0; i < bl; i++) {
        unsigned char ch = (unsigned char)o->base_url[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#') {
            qkc_fail(e, QKC_EUSAGE, "server URL holds a space, control, '?' or '#' character");
            return NULL;
        }
    }
    qk_http_tls t = {0};
    if (tls_version(o->tls_min, 12, &t.min_version) != 0 ||
        tls_version(o->tls_max, 13, &t.max_version) != 0 || t.min_version > t.max_version) {
        qkc_fail(e, QKC_EUSAGE, "TLS versions must be 12 or 13, with min <= max");
        return NULL;
    }
    if (o->psk_identity && (!o->psk || o->psk_len < 1 || o->psk_len > 64)) {
        qkc_fail(e, QKC_EUSAGE, "a PSK identity needs a key of 1..64 bytes");
        return NULL;
    }
    if (!o->psk_identity && o->psk) {
        qkc_fail(e, QKC_EUSAGE, "a PSK needs an identity");
        return NULL;
    }
    if ((o->cert_file == NULL) != (o->key_file == NULL)) {
        qkc_fail(e, QKC_EUSAGE, "the client certificate and key go together");
        return NULL;
    }
    if (qkc_global_init() != 0) {
        qkc_fail(e, QKC_EINTERNAL, "library initialisation failed (libsodium/libcurl)");
        return NULL;
    }
    t.ca_file = o->ca_file;
    t.cert_file = o->cert_file;
    t.key_file = o->key_file;
    t.psk_identity = o->psk_identity;
    t.psk = o->psk;
    t.psk_len = o->psk_len;
    t.psk_sha256 = o->psk_sha256;
    t.tls12_ciphers = o->tls12_ciphers;
    t.tls13_suites = o->tls13_suites;
    t.connect_timeout_ms = o->connect_timeout_ms;
    t.timeout_ms = o->timeout_ms;
    t.max_response = o->max_response;
    t.verify_host = !o->no_verify_host;
    qkc_client *c = calloc(1, sizeof *c);
    if (!c) {
        qkc_fail(e, QKC_EINTERNAL, "out of memory");
        return NULL;
    }
    memcpy(c->base, o->base_url, bl);
    c->base[bl] = '\0';
    qk_err herr = {0};
    c->http = qk_http_client_new(&t, &herr);
    if (c->http && o->psk_hash_auto && o->psk && !o->psk_sha256) {
        t.psk_sha256 = 1;
        c->http_sha256 = qk_http_client_new(&t, &herr);
        c->on_psk_fallback = o->on_psk_fallback;
        c->on_psk_fallback_arg = o->on_psk_fallback_arg;
    }
    if (!c->http || (o->psk_hash_auto && o->psk && !o->psk_sha256 && !c->http_sha256)) {
        qkc_fail(e, herr.code == QK_ENOMEM ? QKC_EINTERNAL : QKC_EUSAGE, "%s", herr.msg);
        qkc_client_free(c);
        return NULL;
    }
    return c;
}

void qkc_client_free(qkc_client *c)
{
    if (!c)
        return;
    qk_http_client_free(c->http);
    qk_http_client_free(c->http_sha256);
    free(c);
}

/* ---- raw requests -------------------------------------------------------------------------- */

static bool contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0)
            return true;
    return false;
}

/* The HTTP layer reports a TLS alert received after the handshake (e.g. a client certificate
 * refused under TLS 1.3, seen by the client only on its first read) as a plain I/O error; so is
 * a server that closes the connection at once after such a refusal, before libcurl has even
 * asked for the peer's address (getpeername fails: the TCP connection had been accepted, so
 * this is a refusal within TLS, not a connect failure). */
static qkc_errclass transport_class(const qk_err *herr)
{
    switch (herr->code) {
    case QK_ETLS:
        return QKC_ETLS;
    case QK_ETIMEOUT:
        return QKC_ECONNECT;
    case QK_ELIMIT:
        return QKC_EMALFORMED;
    case QK_ENOMEM:
        return QKC_EINTERNAL;
    case QK_EINVAL:
        return QKC_EUSAGE;
    default:
        if (contains_ci(herr->msg, "alert") || contains_ci(herr->msg, "certificate") ||
            contains_ci(herr->msg, "SSL routines") || contains_ci(herr->msg, "getpeername"))
            return QKC_ETLS;
        return QKC_ECONNECT;
    }
}

int qkc_raw_request(qkc_client *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, qkc_raw_response *out, qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !method || !path || !out || (body_len && !body))
        return qkc_fail(e, QKC_EUSAGE, "qkc_raw_request: bad arguments");
    if (path[0] != '/')
        return qkc_fail(e, QKC_EUSAGE, "request path must start with '/'");
    char url[QKC_URL_MAX];
    int n = snprintf(url, sizeof url, "%s%s", c->base, path);
    if (n < 0 || (size_t)n >= sizeof url)
        return qkc_fail(e, QKC_EUSAGE, "request URL longer than %d bytes", QKC_URL_MAX - 1);
    char ct[160];
    const char *headers[2] = {NULL, NULL};
    if (content_type) {
        n = snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        if (n < 0 || (size_t)n >= sizeof ct || strpbrk(content_type, "\r\n"))
            return qkc_fail(e, QKC_EUSAGE, "bad Content-Type");
        headers[0] = ct;
    }
    qk_http_response r;
    qk_err herr = {0};
    int rc = qk_http_call(c->http, method, url, body, body_len, headers, &r, &herr);
    if (rc != 0 && c->http_sha256 && transport_class(&herr) == QKC_ETLS) {
        /* psk_hash_auto: the server refused the SHA-384 binding in TLS (no request reached
         * HTTP); from now on bind the PSK to SHA-256. */
        qk_http_client_free(c->http);
        c->http = c->http_sha256;
        c->http_sha256 = NULL;
        if (c->on_psk_fallback)
            c->on_psk_fallback(c->on_psk_fallback_arg);
        herr = (qk_err){0};
        rc = qk_http_call(c->http, method, url, body, body_len, headers, &r, &herr);
    }
    if (rc != 0)
        return qkc_fail(e, transport_class(&herr), "%s", herr.msg);
    out->status = r.status;
    memcpy(out->content_type, r.content_type, sizeof out->content_type);
    out->content_type[sizeof out->content_type - 1] = '\0';
    memcpy(out->allow, r.allow, sizeof out->allow);
    out->allow[sizeof out->allow - 1] = '\0';
    out->body = r.body; /* ownership moves */
    out->body_len = r.body_len;
    if (e)
        e->http_status = r.status;
    return 0;
}

void qkc_raw_response_free(qkc_raw_response *r)
{
    if (!r)
        return;
    qk_wipe_free(r->body, r->body_len);
    memset(r, 0, sizeof *r);
}

int qkc_call(qkc_client *c, const char *method, const char *path, const char *body, size_t body_len,
             qkc_raw_response *resp, qkc_error *e)
{
    int rc =
        qkc_raw_request(c, method, path, body, body_len, body ? "application/json" : NULL, resp, e);
    if (rc != 0)
        return rc;
    if (resp->status != 200) {
        if (e) {
            e->http_status = resp->status;
            qkc_server_message(resp->body, resp->body_len, e->server_message,
                               sizeof e->server_message);
        }
        long st = resp->status;
        qkc_raw_response_free(resp);
        if (e && e->server_message[0])
            return qkc_fail(e, QKC_EHTTP, "%s %s: HTTP %ld: %s", method, path, st,
                            e->server_message);
        return qkc_fail(e, QKC_EHTTP, "%s %s: HTTP %ld", method, path, st);
    }
    return 0;
}

/* ---- server messages ------------------------------------------------------------------------ */

static void sanitize_copy(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n' || ch == '\r' || ch == '\t')
            ch = ' ';
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else if (ch >= 0x80 || ch < 0x20)
            out[o++] = '?';
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

void qkc_server_message(const char *body, size_t len, char *out, size_t cap)
{
    if (!out || cap == 0)
        return;
    out[0] = '\0';
    if (!body || len == 0)
        return;
    qk_err jerr;
    cJSON *j = qk_json_parse(body, len, 64 * 1024, &jerr);
    if (j) {
        static const char *const names[] = {"message", "error", "detail"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const cJSON *m =
                cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, names[i]) : NULL;
            if (cJSON_IsString(m) && m->valuestring && m->valuestring[0]) {
                sanitize_copy(m->valuestring, strlen(m->valuestring), out, cap);
                break;
            }
        }
        cJSON_Delete(j);
        return;
    }
    /* Not JSON: short text only (an HTML page or binary is not a message). */
    if (len <= 200 && !memchr(body, '<', len))
        sanitize_copy(body, len, out, cap);
}

/* ---- URL encoding --------------------------------------------------------------------------- */

int qkc_url_append_encoded(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = strnlen(out, cap);
    if (o >= cap)
        return -1;
    size_t start = o;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = keep ? 1 : 3;
        if (o + need + 1 > cap) {
            out[start] = '\0';
            return -1;
        }
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

bool qkc_is_token(const char *s, size_t cap)
{
    if (!s)
        return false;
    size_t n = strnlen(s, cap);
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}
