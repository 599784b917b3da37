/* tls_internal.h - private interface between the TLS front end's two halves:
 * tls_policy.c (SSL_CTX per listener policy, PSK and fingerprint tables, identity extraction)
 * and tls_server.c (accept, handshake, pump, HTTP/1.1 on the connection). Not a public header. */
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

/* ---- connection budgets (tls_limits.c) ------------------------------------------------------
 * A counter per key (a client's source address, or an authenticated identity), shared by the
 * pump threads of one listener: acquire counts one connection unless the key is at its limit,
 * release uncounts it; a key whose count drops to zero is forgotten, so the table holds at most
 * one node per open connection. One mutex, a fixed array of buckets, FNV-1a: O(1) per accept
 * and per close. */
#define QK_BUDGET_KEY_MAX (1 + QK_IDENTITY_MAX) /* a kind byte and the identity */

typedef struct qk_budget qk_budget;

qk_budget *qk_budget_new(void);
void qk_budget_free(qk_budget *b);
/* Count one connection of key (1..QK_BUDGET_KEY_MAX bytes): 0, or -1 when the key already
 * holds `limit` connections (or out of memory); nothing is counted then. */
int qk_budget_acquire(qk_budget *b, const void *key, size_t len, unsigned limit);
/* Uncount one connection of key (a key not counted is ignored). */
void qk_budget_release(qk_budget *b, const void *key, size_t len);
/* Connections counted for key now (tests, logs). */
unsigned qk_budget_count(qk_budget *b, const void *key, size_t len);

/* The budget key of a client's source address: the address family and its bytes, without the
 * port; an IPv4-mapped IPv6 address (RFC 4291 2.5.5.2) counts as its IPv4 address. Returns the
 * length (5 or 17), or 0 for another family (such a client has no source budget). */
size_t qk_budget_source_key(const struct sockaddr_storage *ss, unsigned char out[17]);
/* The budget key of an authenticated identity: its kind and id. 0 for QK_ID_NONE (anonymous
 * clients have no identity budget). */
size_t qk_budget_identity_key(const qk_peer_identity *id, unsigned char out[QK_BUDGET_KEY_MAX]);

#endif
