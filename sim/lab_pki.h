/* lab_pki.h - the PKI of a lab (qkd-lab up) and of a deployment (qkd-lab pki) on OpenSSL 3:
 * one CA, EC P-256 keys, SHA-256 signatures. Server certificates carry a subjectAltName (the
 * lab's DNS:localhost, IP:127.0.0.1, or the names given) and serverAuth; client certificates
 * carry CN = the identity (clientAuth) and the role marker of that identity, a SAN URI
 * urn:qkd-kms:role:ROLE (common/cert_role.h, docs/qkd-kmed.md "Roles"), so that an SAE's
 * certificate is refused by the device and peer listeners whatever its CN. Keys are written
 * mode 0600 and never over a file. */
#ifndef QK_LAB_PKI_H
#define QK_LAB_PKI_H

#include <stdbool.h>

#include "cert_role.h"
#include "qk_err.h"

typedef struct qk_lab_ca qk_lab_ca;

/* Create a CA (subject CN = cn, valid 365 days) and write it to crt_path / key_path. */
int qk_lab_ca_create(const char *cn, const char *crt_path, const char *key_path, qk_lab_ca **out,
                     qk_err *err);
/* The same, valid for days (1..36500). */
int qk_lab_ca_create_days(const char *cn, int days, const char *crt_path, const char *key_path,
                          qk_lab_ca **out, qk_err *err);
/* Write the CA's certificate (again) to path, mode 0644: a copy for each host. */
int qk_lab_ca_write_cert(const qk_lab_ca *ca, const char *path, qk_err *err);
void qk_lab_ca_free(qk_lab_ca *ca);

typedef enum { QK_CERT_SERVER, QK_CERT_CLIENT } qk_cert_kind;

/* Issue a certificate with subject CN = cn, valid for days, and write it and its new key. */
int qk_lab_cert_issue(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, int days,
                      const char *crt_path, const char *key_path, qk_err *err);
/* The same with the server certificate's subjectAltName given in OpenSSL's x509v3_config form
 * (RFC 5280 section 4.2.1.6), e.g. "DNS:kme-a.example.net,IP:192.0.2.10"; NULL = the lab's
 * "DNS:localhost,IP:127.0.0.1". Client certificates take no names (san must be NULL). */
int qk_lab_cert_issue_san(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, const char *san,
                          int days, const char *crt_path, const char *key_path, qk_err *err);
/* The same with a role marker: role QK_ROLE_SAE..QK_ROLE_BRIDGE adds the SAN URI
 * urn:qkd-kms:role:ROLE (to a client certificate, or after a server certificate's names);
 * QK_ROLE_NONE adds none. */
int qk_lab_cert_issue_role(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, const char *san,
                           qk_role role, int days, const char *crt_path, const char *key_path,
                           qk_err *err);

/* Write n random bytes as hex (plus newline) to a new file of mode 0600; hex_out (2n+1) may be
 * NULL. prefix (may be NULL) goes before the hex, e.g. "IDENTITY:". Refuses to overwrite. */
int qk_lab_write_secret_hex(const char *path, const char *prefix, size_t n, char *hex_out,
                            qk_err *err);
/* Write len bytes of text to a new file of mode 0600 (refuses an existing one). */
int qk_lab_write_secret_text(const char *path, const char *text, size_t len, qk_err *err);

#endif
