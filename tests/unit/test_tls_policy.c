/* test_tls_policy.c - qk_psk_table_load: good files, each kind of bad line, file mode, and
 * error messages that name the line but never the key. Also the policy SSL_CTX checks. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
        !CU_add_test(s, "policy checks", test_policy_checks))
        return -1;
    return 0;
}
