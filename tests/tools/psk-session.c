/* psk-session - write an SSL_SESSION (PEM) that carries a TLS 1.3 external PSK bound to
 * TLS_AES_256_GCM_SHA384 (or TLS_AES_128_GCM_SHA256 with --sha256), for
 * `openssl s_client -tls1_3 -psk_session FILE -psk_identity ID`.
 * Usage: psk-session [--sha256] HEXKEY OUTFILE   (OUTFILE is created mode 0600) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "codec.h"
#include "secbuf.h"
#include "tls_server.h"

int main(int argc, char **argv)
{
    int sha256 = 0, a = 1;
    if (a < argc && strcmp(argv[a], "--sha256") == 0) {
        sha256 = 1;
        a++;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: psk-session [--sha256] HEXKEY OUTFILE\n");
        return 2;
    }
    const char *hex = argv[a], *path = argv[a + 1];
    uint8_t key[QK_PSK_MAX];
    size_t key_len = 0;
    if (qk_hex_decode(hex, strlen(hex), key, sizeof key, &key_len) != 0 || key_len < 16) {
        fprintf(stderr, "psk-session: key must be 16..%d bytes of hex\n", QK_PSK_MAX);
        return 2;
    }
    int rc = 1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    SSL_SESSION *sess = SSL_SESSION_new();
    static const unsigned char aes256[2] = {0x13, 0x02}, aes128[2] = {0x13, 0x01};
    const SSL_CIPHER *cipher = ssl ? SSL_CIPHER_find(ssl, sha256 ? aes128 : aes256) : NULL;
    FILE *f = NULL;
    if (!cipher || !sess || !SSL_SESSION_set1_master_key(sess, key, key_len) ||
        !SSL_SESSION_set_cipher(sess, cipher) ||
        !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
        fprintf(stderr, "psk-session: cannot build the session\n");
        goto out;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        perror(path);
        goto out;
    }
    if (PEM_write_SSL_SESSION(f, sess) != 1) {
        fprintf(stderr, "psk-session: cannot write %s\n", path);
        goto out;
    }
    rc = 0;
out:
    if (f && fclose(f) != 0)
        rc = 1;
    qk_wipe(key, sizeof key);
    SSL_SESSION_free(sess);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return rc;
}
