/* tls_internal.h - private interface between the TLS front end's two halves:
 * tls_policy.c (SSL_CTX per listener policy, PSK and fingerprint tables, identity extraction)
 * and tls_server.c (accept, handshake, pump, libmicrohttpd hand-off). Not a public header. */
#ifndef QK_TLS_INTERNAL_H
#define QK_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "tls_server.h"

/* Per-SSL handshake state, attached with SSL_set_app_data() before the handshake. The PSK
 * callbacks record which table entry the client used. */
typedef struct {
    long psk_index; /* -1: no PSK entry matched */
    int psk_hash;   /* qk_psk_hash the TLS 1.3 session was built with; -1: none */
    bool psk_auto;  /* that hash was chosen from the client's binder (auto mode) */
} qk_tls_hs_state;

/* Reset a handshake state before the handshake (no PSK yet). */
void qk_tls_hs_state_init(qk_tls_hs_state *hs);

/* Build the SSL_CTX for a policy (certificates, CA, versions, suites, PSK callbacks,
 * renegotiation and tickets off). The policy's tables are borrowed by the context. */
SSL_CTX *qk_tls_policy_ctx_new(const qk_tls_policy *p, qk_err *err);
void qk_tls_policy_ctx_free(SSL_CTX *ctx);

/* After a successful handshake: fill *out with the authenticated identity and return 0, or
 * return -1 when the policy requires authentication and the client has none (refuse). */
int qk_tls_policy_identity(SSL *ssl, qk_peer_identity *out);

#endif
