/* test_tls_policy.c - qk_psk_table_load: good files, each kind of bad line, file mode, and
 * error messages that name the line but never the key. Also the policy SSL_CTX checks and the
 * TLS 1.3 PSK hash modes (sha384, sha256, auto) over in-memory handshakes. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tls_internal.h"

#define KEY32 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY16 "0f0e0d0c0b0a09080706050403020100"

static char g_dir[] = "/tmp/qk-tls-policy-XXXXXX";
static int g_n;

static int setup(void)
{
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write text to a new file with the given mode; returns its path (static buffer per call). */
static const char *write_file(const char *text, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/psk%d.txt", g_dir, g_n++);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static int load_text(const char *text, qk_psk_table *t, qk_err *err)
{
    const char *p = write_file(text, 0600);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return qk_psk_table_load(p, t, err);
}

static void test_good_file(void)
{
    qk_psk_table t;
    qk_err err;
    qk_err_clear(&err);
    int rc = load_text("# comment\n\n  alice : " KEY32 "\n"
                       "bob:" KEY16 ":sha256\r\n"
                       "carol:" KEY32 ":SHA384\n",
                       &t, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(t.n, 3);
    CU_ASSERT_STRING_EQUAL(t.entries[0].identity, "alice");
    CU_ASSERT_EQUAL(t.entries[0].key_len, 32);
    CU_ASSERT_EQUAL(t.entries[0].hash, QK_PSK_SHA384);
    CU_ASSERT_EQUAL(t.entries[0].key[0], 0x00);
    CU_ASSERT_EQUAL(t.entries[0].key[31], 0xff);
    CU_ASSERT_STRING_EQUAL(t.entries[1].identity, "bob");
    CU_ASSERT_EQUAL(t.entries[1].key_len, 16);
    CU_ASSERT_EQUAL(t.entries[1].hash, QK_PSK_SHA256);
    CU_ASSERT_EQUAL(t.entries[1].key[0], 0x0f);
    CU_ASSERT_EQUAL(t.entries[2].hash, QK_PSK_SHA384);
    qk_psk_table_free(&t);
    CU_ASSERT_EQUAL(t.n, 0);
    CU_ASSERT_PTR_NULL(t.entries);
    qk_psk_table_free(&t); /* idempotent */
}

/* A bad file fails with EINVAL-ish code, names the file and line, and never echoes key text. */
static void expect_bad(const char *text, int line, const char *secret_fragment)
{
    qk_psk_table t = {NULL, 0};
    qk_err err;
    qk_err_clear(&err);
    const char *p = write_file(text, 0600);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int rc = qk_psk_table_load(p, &t, &err);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(err.code, rc);
    CU_ASSERT_EQUAL(t.n, 0);
    CU_ASSERT_PTR_NULL(t.entries);
    char where[300];
    snprintf(where, sizeof where, "%s:%d:", p, line);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    if (secret_fragment)
        CU_ASSERT_PTR_NULL(strstr(err.msg, secret_fragment));
}

static void test_bad_hex(void)
{
    expect_bad("alice:" KEY32 "\nbob:0011223344556677zz99aabbccddeeff\n", 2, "0011223344");
    expect_bad("bob:0011223344556677889\n", 1, "0011223344"); /* odd length */
}

static void test_bad_hash(void)
{
    expect_bad("# x\nalice:" KEY32 ":md5\n", 2, "00112233");
    expect_bad("alice:" KEY32 ":sha3\n", 1, "00112233");
}

static void test_short_and_long_key(void)
{
    expect_bad("alice:00112233445566778899aabbccddee\n", 1, "00112233"); /* 15 bytes */
    expect_bad("alice:" KEY32 KEY32 "00\n", 1, "00112233");              /* 65 bytes */
}

static void test_bad_lines(void)
{
    expect_bad("no-colon-here\n", 1, NULL);
    expect_bad(":" KEY32 "\n", 1, "00112233");                   /* empty identity */
    expect_bad("al ice:" KEY32 "\n", 1, "00112233");             /* space in identity */
    expect_bad("alice:" KEY32 "\nalice:" KEY16 "\n", 2, "0f0e"); /* duplicate */
}

static void test_mode_refused(void)
{
    qk_psk_table t = {NULL, 0};
    qk_err err;
    qk_err_clear(&err);
    const char *p = write_file("alice:" KEY32 "\n", 0640);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_NOT_EQUAL(qk_psk_table_load(p, &t, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, p));
    CU_ASSERT_PTR_NULL(strstr(err.msg, "00112233"));
    CU_ASSERT_EQUAL(t.n, 0);
    p = write_file("alice:" KEY32 "\n", 0604);
    CU_ASSERT_NOT_EQUAL(qk_psk_table_load(p, &t, &err), 0);
    /* The same content with mode 0600 loads. */
    chmod(p, 0600);
    CU_ASSERT_EQUAL(qk_psk_table_load(p, &t, &err), 0);
    CU_ASSERT_EQUAL(t.n, 1);
    qk_psk_table_free(&t);
}

static void test_missing_file(void)
{
    qk_psk_table t = {NULL, 0};
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_psk_table_load("/nonexistent/psk.txt", &t, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(qk_psk_table_load(NULL, &t, &err), QK_EINVAL);
}

static void test_fp_parse(void)
{
    uint8_t fp[32];
    CU_ASSERT_EQUAL(qk_tls_fp_parse(KEY32, fp), 0);
    CU_ASSERT_EQUAL(fp[1], 0x11);
    CU_ASSERT_EQUAL(qk_tls_fp_parse("00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                                    "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
                                    fp),
                    0);
    CU_ASSERT_EQUAL(fp[10], 0xaa);
    CU_ASSERT_NOT_EQUAL(qk_tls_fp_parse(KEY16, fp), 0);
    CU_ASSERT_NOT_EQUAL(qk_tls_fp_parse(KEY32 "00", fp), 0);
    CU_ASSERT_NOT_EQUAL(
        qk_tls_fp_parse("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", fp), 0);
}

static void test_policy_checks(void)
{
    qk_err err;
    qk_err_clear(&err);
    qk_tls_policy p;
    memset(&p, 0, sizeof p);
    p.mode = QK_TLS_MODE_PSK;
    CU_ASSERT_PTR_NULL(qk_tls_policy_ctx_new(&p, &err)); /* no PSK table */
    CU_ASSERT_EQUAL(err.code, QK_EINVAL);
    p.mode = QK_TLS_MODE_MTLS;
    CU_ASSERT_PTR_NULL(qk_tls_policy_ctx_new(&p, &err)); /* no CA, no cert */
    qk_psk_table t = {NULL, 0};
    CU_ASSERT_EQUAL_FATAL(load_text("alice:" KEY32 "\n", &t, &err), 0);
    p.mode = QK_TLS_MODE_PSK;
    p.psks = &t;
    SSL_CTX *ctx = qk_tls_policy_ctx_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL(ctx); /* pure PSK needs no certificate */
    qk_tls_policy_ctx_free(ctx);
    p.tls12_ciphers = "NO-SUCH-CIPHER";
    CU_ASSERT_PTR_NULL(qk_tls_policy_ctx_new(&p, &err));
    CU_ASSERT_EQUAL(err.code, QK_ETLS);
    p.tls12_ciphers = NULL;
    p.min_version = TLS1_3_VERSION;
    p.max_version = TLS1_2_VERSION;
    CU_ASSERT_PTR_NULL(qk_tls_policy_ctx_new(&p, &err));
    qk_psk_table_free(&t);
}

/* ---- TLS 1.3 PSK hash selection: an in-memory handshake (BIO pair) between the policy's
 * server context and an OpenSSL client that binds its PSK to SHA-256 or SHA-384 ---- */

static const unsigned char CS_SHA256[2] = {0x13, 0x01}; /* RFC 8446 B.4 */
static const unsigned char CS_SHA384[2] = {0x13, 0x02};
static const char *g_cli_id;
static bool g_cli_sha256;

static int cli_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                           SSL_SESSION **sess)
{
    (void)md;
    static const unsigned char key[32] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                          0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11,
                                          0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                          0xbb, 0xcc, 0xdd, 0xee, 0xff}; /* KEY32 */
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, g_cli_sha256 ? CS_SHA256 : CS_SHA384);
    SSL_SESSION *s = SSL_SESSION_new();
    if (!c || !s || !SSL_SESSION_set1_master_key(s, key, sizeof key) ||
        !SSL_SESSION_set_cipher(s, c) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return 0;
    }
    *id = (const unsigned char *)g_cli_id;
    *idlen = strlen(g_cli_id);
    *sess = s;
    return 1;
}

/* One TLS 1.3 handshake of client identity `id` (SHA-256 or SHA-384 binding) against a PSK-mode
 * server context for `psk_hash`. Returns 1 when it completed with the PSK (hs, cipher filled),
 * 0 when it failed. */
static int psk_handshake(const qk_psk_table *t, qk_psk_hash psk_hash, const char *id, bool sha256,
                         qk_tls_hs_state *hs, char *cipher, size_t cap)
{
    qk_err err;
    qk_err_clear(&err);
    qk_tls_policy p;
    memset(&p, 0, sizeof p);
    p.mode = QK_TLS_MODE_PSK;
    p.psks = t;
    p.psk_hash = psk_hash;
    SSL_CTX *sctx = qk_tls_policy_ctx_new(&p, &err);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
    CU_ASSERT_FATAL(SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION) == 1);
    SSL_CTX_set_psk_use_session_callback(cctx, cli_use_session);
    g_cli_id = id;
    g_cli_sha256 = sha256;
    SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
    BIO *bs = NULL, *bc = NULL;
    CU_ASSERT_FATAL(srv && cli && BIO_new_bio_pair(&bs, 0, &bc, 0) == 1);
    SSL_set_bio(srv, bs, bs);
    SSL_set_bio(cli, bc, bc);
    qk_tls_hs_state_init(hs);
    SSL_set_app_data(srv, hs);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    int done_s = 0, done_c = 0, failed = 0;
    for (int i = 0; i < 50 && !(done_s && done_c) && !failed; i++) {
        if (!done_c) {
            int r = SSL_do_handshake(cli);
            done_c = r == 1;
            if (r != 1 && SSL_get_error(cli, r) != SSL_ERROR_WANT_READ)
                failed = 1;
        }
        if (!done_s) {
            int r = SSL_do_handshake(srv);
            done_s = r == 1;
            if (r != 1 && SSL_get_error(srv, r) != SSL_ERROR_WANT_READ)
                failed = 1;
        }
    }
    ERR_clear_error();
    int ok = done_s && done_c && !failed;
    qk_peer_identity who;
    if (ok) {
        ok = qk_tls_policy_identity(srv, &who) == 0 && who.kind == QK_ID_PSK &&
             strcmp(who.id, id) == 0;
        snprintf(cipher, cap, "%s", who.cipher);
    }
    SSL_free(srv);
    SSL_free(cli);
    SSL_CTX_free(cctx);
    qk_tls_policy_ctx_free(sctx);
    return ok;
}

static void test_psk_hash_modes(void)
{
    qk_err err;
    qk_err_clear(&err);
    qk_psk_table t = {NULL, 0};
    CU_ASSERT_EQUAL_FATAL(load_text("plain:" KEY32 "\nstrict:" KEY32 ":sha384\nold:" KEY32
                                    ":sha256\nany:" KEY32 ":Auto\n",
                                    &t, &err),
                          0);
    CU_ASSERT_TRUE(t.entries[0].hash_unset);
    CU_ASSERT_FALSE(t.entries[1].hash_unset);
    CU_ASSERT_EQUAL(t.entries[3].hash, QK_PSK_AUTO);
    qk_tls_hs_state hs;
    char cipher[64] = "";
    /* listener auto: a line without a hash follows the client's binder, both ways */
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_AUTO, "plain", true, &hs, cipher, sizeof cipher), 1);
    CU_ASSERT_STRING_EQUAL(cipher, "TLS_AES_128_GCM_SHA256");
    CU_ASSERT_EQUAL(hs.psk_hash, QK_PSK_SHA256);
    CU_ASSERT_TRUE(hs.psk_auto);
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_AUTO, "plain", false, &hs, cipher, sizeof cipher), 1);
    CU_ASSERT_STRING_EQUAL(cipher, "TLS_AES_256_GCM_SHA384");
    CU_ASSERT_EQUAL(hs.psk_hash, QK_PSK_SHA384);
    CU_ASSERT_TRUE(hs.psk_auto);
    /* a line's own hash wins over the listener's */
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_AUTO, "strict", true, &hs, cipher, sizeof cipher), 0);
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_AUTO, "strict", false, &hs, cipher, sizeof cipher), 1);
    CU_ASSERT_FALSE(hs.psk_auto);
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_AUTO, "old", true, &hs, cipher, sizeof cipher), 1);
    CU_ASSERT_EQUAL(hs.psk_hash, QK_PSK_SHA256);
    CU_ASSERT_FALSE(hs.psk_auto);
    /* listener default (SHA-384): today's behaviour; an "auto" line still accepts both */
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_SHA384, "plain", true, &hs, cipher, sizeof cipher), 0);
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_SHA384, "plain", false, &hs, cipher, sizeof cipher),
                    1);
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_SHA384, "any", true, &hs, cipher, sizeof cipher), 1);
    CU_ASSERT_STRING_EQUAL(cipher, "TLS_AES_128_GCM_SHA256");
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_SHA256, "plain", true, &hs, cipher, sizeof cipher), 1);
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_SHA256, "plain", false, &hs, cipher, sizeof cipher),
                    0);
    /* an unknown identity is refused in auto mode too; a bad listener value is refused */
    CU_ASSERT_EQUAL(psk_handshake(&t, QK_PSK_AUTO, "nobody", true, &hs, cipher, sizeof cipher), 0);
    qk_tls_policy p;
    memset(&p, 0, sizeof p);
    p.mode = QK_TLS_MODE_PSK;
    p.psks = &t;
    p.psk_hash = (qk_psk_hash)7;
    CU_ASSERT_PTR_NULL(qk_tls_policy_ctx_new(&p, &err));
    qk_psk_hash h;
    CU_ASSERT_EQUAL(qk_psk_hash_parse("SHA256", 6, &h), 0);
    CU_ASSERT_EQUAL(h, QK_PSK_SHA256);
    CU_ASSERT_EQUAL(qk_psk_hash_parse("sha51", 5, &h), -1);
    CU_ASSERT_STRING_EQUAL(qk_psk_hash_name(QK_PSK_AUTO), "auto");
    qk_psk_table_free(&t);
}

int suite_tls_policy(void)
{
    CU_pSuite s = CU_add_suite("tls_policy", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "good PSK file", test_good_file) ||
        !CU_add_test(s, "bad hex", test_bad_hex) || !CU_add_test(s, "bad hash", test_bad_hash) ||
        !CU_add_test(s, "key length", test_short_and_long_key) ||
        !CU_add_test(s, "bad lines", test_bad_lines) ||
        !CU_add_test(s, "group/world readable refused", test_mode_refused) ||
        !CU_add_test(s, "missing file", test_missing_file) ||
        !CU_add_test(s, "fingerprint parse", test_fp_parse) ||
        !CU_add_test(s, "policy checks", test_policy_checks) ||
        !CU_add_test(s, "TLS 1.3 PSK hash: sha384, sha256, auto", test_psk_hash_modes))
        return -1;
    return 0;
}
