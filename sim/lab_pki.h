/* lab_pki.h - the lab's throw-away PKI on OpenSSL 3: one CA, EC P-256 keys, SHA-256
 * signatures. Server certificates carry SAN DNS:localhost and IP:127.0.0.1 (serverAuth);
 * client certificates carry CN = the identity (clientAuth). Keys are written mode 0600. */
#ifndef QK_LAB_PKI_H
#define QK_LAB_PKI_H

#include <stdbool.h>

#include "qk_err.h"

typedef struct qk_lab_ca qk_lab_ca;

/* Create a CA (subject CN = cn) and write it to crt_path / key_path. */
int qk_lab_ca_create(const char *cn, const char *crt_path, const char *key_path, qk_lab_ca **out,
                     qk_err *err);
void qk_lab_ca_free(qk_lab_ca *ca);

typedef enum { QK_CERT_SERVER, QK_CERT_CLIENT } qk_cert_kind;

/* Issue a certificate with subject CN = cn, valid for days, and write it and its new key. */
int qk_lab_cert_issue(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, int days,
                      const char *crt_path, const char *key_path, qk_err *err);

/* Write n random bytes as hex (plus newline) to a new file of mode 0600; hex_out (2n+1) may be
 * NULL. prefix (may be NULL) goes before the hex, e.g. "IDENTITY:". Refuses to overwrite. */
int qk_lab_write_secret_hex(const char *path, const char *prefix, size_t n, char *hex_out,
                            qk_err *err);

#endif
