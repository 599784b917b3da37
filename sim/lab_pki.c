/* lab_pki.c - CA and certificates for the lab, generated with OpenSSL 3 APIs. */
#include "lab_pki.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "secbuf.h"

#define CA_DAYS 365

struct qk_lab_ca {
    EVP_PKEY *key;
    X509 *cert;
};

static int ossl_err(qk_err *err, const char *what)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return qk_err_set(err, QK_ETLS, "%s: %s", what, buf[0] ? buf : "OpenSSL error");
}

/* fopen for writing with a fixed mode; refuses an existing file for private keys. */
static FILE *open_mode(const char *path, mode_t mode, bool excl, qk_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (excl ? O_EXCL : 0), mode);
    if (fd < 0) {
        qk_err_set(err, QK_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        qk_err_set(err, QK_EIO, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

static int write_key(EVP_PKEY *k, const char *path, qk_err *err)
{
    FILE *f = open_mode(path, 0600, true, err);
    if (!f)
        return QK_EIO;
    int ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (fclose(f) != 0 || !ok) {
        unlink(path);
        return ok ? qk_err_set(err, QK_EIO, "%s: write failed", path)
                  : ossl_err(err, "PEM_write_PrivateKey");
    }
    return 0;
}

static int write_cert(X509 *x, const char *path, qk_err *err)
{
    FILE *f = open_mode(path, 0644, false, err);
    if (!f)
        return QK_EIO;
    int ok = PEM_write_X509(f, x) == 1;
    if (fclose(f) != 0 || !ok)
        return ok ? qk_err_set(err, QK_EIO, "%s: write failed", path)
                  : ossl_err(err, "PEM_write_X509");
    return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* A certificate for key with subject CN; issuer NULL = self-signed. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, int days, X509 *issuer)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    bool ok = x && bn && X509_set_version(x, 2) == 1 &&
              BN_rand(bn, 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) != NULL &&
              X509_set_pubkey(x, key) == 1 &&
              X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0) == 1 &&
              X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)) == 1;
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

int qk_lab_ca_create(const char *cn, const char *crt_path, const char *key_path, qk_lab_ca **out,
                     qk_err *err)
{
    return qk_lab_ca_create_days(cn, CA_DAYS, crt_path, key_path, out, err);
}

int qk_lab_ca_write_cert(const qk_lab_ca *ca, const char *path, qk_err *err)
{
    return write_cert(ca->cert, path, err);
}

int qk_lab_ca_create_days(const char *cn, int days, const char *crt_path, const char *key_path,
                          qk_lab_ca **out, qk_err *err)
{
    *out = NULL;
    if (days < 1 || days > 36500)
        return qk_err_set(err, QK_EINVAL, "CA validity: %d days (1..36500)", days);
    qk_lab_ca *ca = calloc(1, sizeof *ca);
    if (!ca)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    ca->key = EVP_EC_gen("P-256");
    if (!ca->key) {
        free(ca);
        return ossl_err(err, "CA key");
    }
    ca->cert = new_cert(ca->key, cn, days, NULL);
    if (!ca->cert || add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") ||
        add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") ||
        X509_sign(ca->cert, ca->key, EVP_sha256()) <= 0) {
        qk_lab_ca_free(ca);
        return ossl_err(err, "CA certificate");
    }
    int rc = write_key(ca->key, key_path, err);
    if (rc == 0)
        rc = write_cert(ca->cert, crt_path, err);
    if (rc != 0) {
        qk_lab_ca_free(ca);
        return rc;
    }
    *out = ca;
    return 0;
}

void qk_lab_ca_free(qk_lab_ca *ca)
{
    if (!ca)
        return;
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    free(ca);
}

int qk_lab_cert_issue(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, int days,
                      const char *crt_path, const char *key_path, qk_err *err)
{
    return qk_lab_cert_issue_san(ca, kind, cn, NULL, days, crt_path, key_path, err);
}

int qk_lab_cert_issue_san(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, const char *san,
                          int days, const char *crt_path, const char *key_path, qk_err *err)
{
    return qk_lab_cert_issue_role(ca, kind, cn, san, QK_ROLE_NONE, days, crt_path, key_path, err);
}

int qk_lab_cert_issue_role(const qk_lab_ca *ca, qk_cert_kind kind, const char *cn, const char *san,
                           qk_role role, int days, const char *crt_path, const char *key_path,
                           qk_err *err)
{
    bool server = kind == QK_CERT_SERVER;
    if (!server && san)
        return qk_err_set(err, QK_EINVAL, "%s: a client certificate carries no SAN", cn);
    if (days < 1 || days > 36500)
        return qk_err_set(err, QK_EINVAL, "%s: validity %d days (1..36500)", cn, days);
    if (role == QK_ROLE_INVALID)
        return qk_err_set(err, QK_EINVAL, "%s: no such role", cn);
    /* The subjectAltName: the server's names, then the role marker (RFC 5280 4.2.1.6). */
    char names[1024];
    const char *dns = server ? (san ? san : "DNS:localhost,IP:127.0.0.1") : "";
    int nl = role == QK_ROLE_NONE
                 ? snprintf(names, sizeof names, "%s", dns)
                 : snprintf(names, sizeof names, "%s%sURI:" QK_ROLE_URI_PREFIX "%s", dns,
                            dns[0] ? "," : "", qk_role_name(role));
    if (nl < 0 || (size_t)nl >= sizeof names)
        return qk_err_set(err, QK_EINVAL, "%s: subjectAltName too long", cn);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k)
        return ossl_err(err, "key");
    X509 *x = new_cert(k, cn, days, ca->cert);
    bool ok = x && add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
              add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") == 0 &&
              add_ext(x, ca->cert, NID_ext_key_usage, server ? "serverAuth" : "clientAuth") == 0 &&
              add_ext(x, ca->cert, NID_subject_key_identifier, "hash") == 0 &&
              add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") == 0 &&
              (!names[0] || add_ext(x, ca->cert, NID_subject_alt_name, names) == 0) &&
              X509_sign(x, ca->key, EVP_sha256()) > 0;
    int rc = ok ? 0 : ossl_err(err, cn);
    if (rc == 0)
        rc = write_key(k, key_path, err);
    if (rc == 0)
        rc = write_cert(x, crt_path, err);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int qk_lab_write_secret_hex(const char *path, const char *prefix, size_t n, char *hex_out,
                            qk_err *err)
{
    if (n == 0 || n > 64)
        return qk_err_set(err, QK_EINVAL, "secret length");
    uint8_t *raw = qk_secure_alloc(n);
    char *hex = qk_secure_alloc(2 * n + 1);
    if (!raw || !hex) {
        qk_secure_free(raw);
        qk_secure_free(hex);
        return qk_err_set(err, QK_ENOMEM, "out of secure memory");
    }
    qk_random(raw, n);
    qk_hex_encode(raw, n, hex, 2 * n + 1);
    int rc = 0;
    FILE *f = open_mode(path, 0600, true, err);
    if (!f) {
        rc = QK_EIO;
    } else {
        int bad = fprintf(f, "%s%s\n", prefix ? prefix : "", hex) < 0;
        if (fclose(f) != 0 || bad) {
            unlink(path);
            rc = qk_err_set(err, QK_EIO, "%s: write failed", path);
        }
    }
    if (rc == 0 && hex_out)
        memcpy(hex_out, hex, 2 * n + 1);
    qk_secure_free(raw);
    qk_secure_free(hex);
    return rc;
}

int qk_lab_write_secret_text(const char *path, const char *text, size_t len, qk_err *err)
{
    FILE *f = open_mode(path, 0600, true, err);
    if (!f)
        return QK_EIO;
    int bad = len && fwrite(text, 1, len, f) != len;
    if (fclose(f) != 0 || bad) {
        unlink(path);
        return qk_err_set(err, QK_EIO, "%s: write failed", path);
    }
    return 0;
}
