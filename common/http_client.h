/* http_client.h - HTTP(S) client glue over libcurl (OpenSSL backend): mutual TLS, TLS-PSK
 * (TLS 1.2 suites and TLS 1.3 TLS_AES_256_GCM_SHA384, installed through
 * CURLOPT_SSL_CTX_FUNCTION), timeouts and connection reuse. One qk_http_client is one curl
 * easy handle: use it from one thread at a time; it keeps connections alive between calls. */
#ifndef QK_HTTP_CLIENT_H
#define QK_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"

typedef struct {
    const char *ca_file;      /* verify the server against this CA (NULL: no verification
                                 only allowed with PSK) */
    const char *cert_file;    /* client certificate (mTLS) */
    const char *key_file;     /* client private key */
    const char *psk_identity; /* TLS-PSK identity (NULL: no PSK) */
    const uint8_t *psk;       /* PSK bytes, copied into secure memory by qk_http_client_new */
    size_t psk_len;
    int psk_sha256;  /* bind the TLS 1.3 PSK to SHA-256 instead of SHA-384 */
    int min_version; /* 0 = TLS 1.2; else TLS1_2_VERSION / TLS1_3_VERSION */
    int max_version; /* 0 = TLS 1.3 */
    const char *tls12_ciphers;
    const char *tls13_suites;
    long connect_timeout_ms; /* 0 = 5000 */
    long timeout_ms;         /* whole request; 0 = 10000 */
    size_t max_response;     /* 0 = 8 MiB; a larger body is an error */
    bool verify_host;        /* check the certificate name against the URL host (default in
                                practice: true; set false only for tests) */
} qk_http_tls;

typedef struct {
    long status; /* HTTP status */
    char *body;  /* NUL-terminated, malloc'ed (may hold key material: free with
                    qk_http_response_free, which wipes it) */
    size_t body_len;
    char content_type[128];
    char allow[64]; /* Allow header, if any */
} qk_http_response;

typedef struct qk_http_client qk_http_client;

/* Global libcurl init (once, before threads). */
int qk_http_global_init(void);
void qk_http_global_cleanup(void);

qk_http_client *qk_http_client_new(const qk_http_tls *tls, qk_err *err);
void qk_http_client_free(qk_http_client *c);

/* Perform one request. method: "GET", "POST", ... body may be NULL. headers: NULL-terminated
 * array of "Name: value" or NULL. Returns 0 when an HTTP response was received (any status),
 * else QK_ETIMEOUT, QK_ETLS (handshake/certificate/PSK), QK_EIO (connect/other), QK_ELIMIT
 * (response too large), with err set. */
int qk_http_call(qk_http_client *c, const char *method, const char *url, const char *body,
                 size_t body_len, const char *const *headers, qk_http_response *resp, qk_err *err);
void qk_http_response_free(qk_http_response *r);

#endif
