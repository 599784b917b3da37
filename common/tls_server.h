/* tls_server.h - the TLS front end: OpenSSL terminates TLS under a per-listener policy and the
 * front end reads HTTP/1.1 from the plaintext itself (http1.h; see
 * docs/adr/0001-tls-front-end.md). Every
 * request then goes through the request envelope (http_envelope.h): the listener's handler
 * gets a complete request, within max_body, with the authenticated caller (never a header).
 * A failed handshake never reaches HTTP. */
#ifndef QK_TLS_SERVER_H
#define QK_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include "http_envelope.h"
#include "qk_err.h"

#define QK_PSK_MAX 64

/* The hash a TLS 1.3 external PSK is bound to (RFC 8446 section 4.2.11: the binder key and the
 * handshake use the hash of the PSK's suite). AUTO: accept either, by the length of the
 * client's binder (48 bytes: SHA-384, 32: SHA-256); SHA-384 stays the one offered and preferred. */
typedef enum { QK_PSK_SHA384 = 0, QK_PSK_SHA256 = 1, QK_PSK_AUTO = 2 } qk_psk_hash;

/* "sha384", "sha256", "auto"; parse: 0, or -1 for any other word (case-insensitive). */
const char *qk_psk_hash_name(qk_psk_hash h);
int qk_psk_hash_parse(const char *s, size_t len, qk_psk_hash *out);

typedef struct {
    char identity[QK_IDENTITY_MAX]; /* PSK identity sent by the client */
    uint8_t *key;                   /* qk_secure_alloc'ed; owned by the table */
    size_t key_len;                 /* 16..64 bytes */
    qk_psk_hash hash;               /* hash the TLS 1.3 PSK is bound to (SHA-384 default) */
    bool hash_unset;                /* the line named no hash: the listener's psk_hash applies */
} qk_psk_entry;

typedef struct {
    qk_psk_entry *entries;
    size_t n;
} qk_psk_table;

/* Load a PSK file: one entry per line `identity:hexkey[:sha384|sha256|auto]`, '#' comments and
 * blank lines ignored. The file must not be group/world readable. Errors name file and line
 * (never the key). */
int qk_psk_table_load(const char *path, qk_psk_table *out, qk_err *err);
void qk_psk_table_free(qk_psk_table *t); /* wipes keys */

/* Optional map from client certificate SHA-256 fingerprint (64 hex digits, case-insensitive,
 * colons allowed) to identity; when a certificate's fingerprint is in the map, the mapped
 * identity replaces the subject CN. */
typedef struct {
    uint8_t fp[32];
    char identity[QK_IDENTITY_MAX];
} qk_fp_entry;
typedef struct {
    qk_fp_entry *entries;
    size_t n;
} qk_fp_map;

/* Parse a SHA-256 fingerprint (64 hex digits, colons allowed, any case). 0 or -1. The one
 * parser of certificate fingerprints: fingerprint maps, [sae] fingerprint, test tools. */
int qk_tls_fp_parse(const char *s, uint8_t fp[32]);
/* Load a fingerprint map: "sha256-hex identity" lines (colons allowed in the hex; '#'
 * comments and blank lines ignored; at most 4096 entries). Errors name file and line. */
int qk_fp_map_load(const char *path, qk_fp_map *out, qk_err *err);
void qk_fp_map_free(qk_fp_map *m);

typedef enum {
    QK_TLS_MODE_NONE = 0,    /* plaintext HTTP (admin listener on loopback only) */
    QK_TLS_MODE_MTLS,        /* (a) client certificate required, verified against ca_file */
    QK_TLS_MODE_PSK,         /* (b) PSK only (TLS 1.2 PSK suites, TLS 1.3 PSK) */
    QK_TLS_MODE_SERVER_CERT, /* (c) server certificate only, no client authentication */
    QK_TLS_MODE_PSK_OR_MTLS  /* SKIP: a client authenticates with a PSK or a certificate */
} qk_tls_mode;

typedef struct {
    qk_tls_mode mode;
    const char *cert_file;     /* server certificate chain (PEM); not needed for pure PSK */
    const char *key_file;      /* server private key (PEM) */
    const char *ca_file;       /* CA for client certificates (MTLS, PSK_OR_MTLS) */
    const qk_psk_table *psks;  /* PSK, PSK_OR_MTLS; borrowed, must outlive the server */
    const qk_fp_map *fp_map;   /* optional; borrowed */
    qk_psk_hash psk_hash;      /* TLS 1.3 hash of the PSK lines that name none (0: SHA-384) */
    int min_version;           /* TLS1_2_VERSION (default when 0) */
    int max_version;           /* TLS1_3_VERSION (default when 0) */
    const char *tls12_ciphers; /* NULL: a default per mode (PSK: the four SKIP suites) */
    /* NULL: "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
     * (PSK mode: TLS_AES_256_GCM_SHA384 first) */
    const char *tls13_suites;
} qk_tls_policy;

typedef struct {
    const char *name;      /* listener name for logs: "etsi014", "skip", "peer", ... */
    const char *bind_addr; /* numeric IPv4/IPv6 address, e.g. "127.0.0.1" */
    uint16_t port;         /* 0 = ephemeral; read back with qk_tls_server_port() */
    qk_tls_policy tls;
    qk_http_handler *handler;        /* the request envelope's handler; must outlive the server */
    unsigned max_connections;        /* enforced before the handshake; 0 = 1024. When full, the
                                        pump that accepts closes its oldest idle keep-alive
                                        connection to make room, else refuses */
    unsigned max_pending_per_source; /* connections of one source address that have not
                                        finished the TLS handshake (plaintext: the first
                                        request's headers); 0 = 256, or 3/4 of
                                        max_connections when that is smaller */
    unsigned max_per_identity;       /* authenticated connections of one identity (PSK
                                        identity, certificate name); 0 = max_connections / 2 */
    unsigned handshake_timeout_ms;   /* the TLS handshake alone; 0 = 10000 */
    unsigned header_timeout_ms;      /* total deadline for the TLS handshake plus the first
                                        request's headers, and for each later request's headers
                                        from its first byte; never restarted; 0 = 10000 */
    unsigned body_timeout_ms;        /* total deadline for a request body, from the end of its
                                        headers; 0 = 60000 */
    unsigned idle_timeout_s;         /* an idle keep-alive connection, or one whose client reads
                                        nothing of its response, is closed after this; 0 = 60 */
    unsigned threads;                /* pump threads (TLS and HTTP); 0 = 2 */
    unsigned workers;                /* threads for handlers that may block; 0 = 8 x threads */
    unsigned queue_max; /* requests waiting for a worker before 503; 0 = 64 x workers */
    size_t max_body;    /* request body limit; past it the envelope answers the
                           handler's too_large_status (413); 0 = 64 KiB */
} qk_listener_config;

typedef struct qk_tls_server qk_tls_server;

/* Create the SSL_CTX for the policy, bind, listen and start the threads. Handlers may block
 * for a few seconds (they call the peer KME with timeouts): such a handler runs on the worker
 * pool with its connection suspended, so it stalls no other connection. Plaintext (NONE)
 * listeners go through the same pumps without TLS, so their limits and deadlines are the same.
 * Returns 0 or a qk_status with err set (bad cert/key/CA/PSK, bind). */
int qk_tls_server_start(const qk_listener_config *cfg, qk_tls_server **out, qk_err *err);
/* What start checks of cfg's TLS policy, without binding or starting anything: the
 * certificate, key, CA and PSK settings load into a TLS context as they would at start
 * (`--check-config`). 0, or the error start would report. */
int qk_tls_server_check(const qk_listener_config *cfg, qk_err *err);
uint16_t qk_tls_server_port(const qk_tls_server *s);
/* Stop accepting, close every connection, join threads, free. NULL is a no-op. */
void qk_tls_server_stop(qk_tls_server *s);

/* Stats for /metrics. */
typedef struct {
    uint64_t accepted, handshakes_ok, handshakes_failed, refused_limit, active;
    uint64_t psk13_sha384, psk13_sha256; /* TLS 1.3 PSK handshakes by the PSK's hash */
    uint64_t refused_source;             /* at max_pending_per_source (before the handshake) */
    uint64_t refused_identity;           /* at max_per_identity (after the handshake) */
    uint64_t evicted_idle;               /* idle keep-alive connections closed to make room */
    uint64_t timeout_header;             /* closed at the handshake + header deadline */
    uint64_t timeout_body;               /* closed at the body deadline */
} qk_tls_server_stats;
void qk_tls_server_get_stats(const qk_tls_server *s, qk_tls_server_stats *st);

#endif
