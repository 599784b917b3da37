/* test_bridge_libreswan.c - the libreswan driver without pluto: the PPKS secrets text (the
 * form libreswan 4.10 parses: `<ids> : PPKS "<PPK_ID>" 0x<hex>`), reading whack's answers
 * (samples captured from pluto 4.10 in bridge_libreswan_interop.sh), and the driver itself
 * against a stand-in whack: the file is 0600, a rotation replaces it and zeroes the old
 * content, retire leaves only the active key, a pluto complaint fails the install. */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_config.h"
#include "bridge_drivers.h"
#include "drv_libreswan.h"

static char dir[64];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qkb-lsw-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const uint8_t K1[32] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                               0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                               0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static const uint8_t K2[32] = {0xde, 0xad, 0xbe, 0xef, 1,  2,  3,  4,  5,  6,   7,
                               8,    9,    10,   11,   12, 13, 14, 15, 16, 17,  18,
                               19,   20,   21,   22,   23, 24, 25, 26, 27, 0xfe};
#define K1HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define K2HEX "deadbeef0102030405060708090a0b0c0d0e0f101112131415161718191a1bfe"
#define ID1   "8c399756-a847-48db-a9ff-33fcd9d1565d"
#define ID2   "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define HEAD  "# written by qkd-bridge; holds keys (0600)\n"

static void test_render(void)
{
    char text[1024];
    qk_err e;
    const char *ids[2] = {ID1, ID2};
    const uint8_t *keys[2] = {K1, K2};
    size_t lens[2] = {32, 32};
    int n = ls_render("@lsw.example", "@gw1.example", ids, keys, lens, 2, text, sizeof text, &e);
    const char *want = HEAD "@lsw.example @gw1.example : PPKS \"" ID1 "\" 0x" K1HEX "\n"
                            "@lsw.example @gw1.example : PPKS \"" ID2 "\" 0x" K2HEX "\n";
    CU_ASSERT_EQUAL(n, (int)strlen(want));
    CU_ASSERT_STRING_EQUAL(text, want);
    /* no keys: only the comment (pluto reads an empty set) */
    CU_ASSERT_EQUAL(ls_render("@a", "@b", ids, keys, lens, 0, text, sizeof text, &e),
                    (int)strlen(HEAD));
    /* a PPK_ID libreswan cannot take inside its quotes, or no key, or too long a key */
    const char *bad_ids[] = {"a\"b", "a b", "", "a\\b"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        const char *one[1] = {bad_ids[i]};
        CU_ASSERT_EQUAL(ls_render("@a", "@b", one, keys, lens, 1, text, sizeof text, &e),
                        QK_EINVAL);
    }
    size_t zero[1] = {0}, big[1] = {129};
    CU_ASSERT_EQUAL(ls_render("@a", "@b", ids, keys, zero, 1, text, sizeof text, &e), QK_EINVAL);
    CU_ASSERT_EQUAL(ls_render("@a", "@b", ids, keys, big, 1, text, sizeof text, &e), QK_EINVAL);
    /* too small a buffer never writes a partial line silently */
    CU_ASSERT_EQUAL(ls_render("@a", "@b", ids, keys, lens, 2, text, 100, &e), QK_ELIMIT);
}

static void test_reread(void)
{
    char path[128], link[128], out[1024];
    qk_err e;
    snprintf(path, sizeof path, "%s/ppk.secrets", dir);
    /* pluto 4.10, file loaded */
    snprintf(out, sizeof out,
             "002 forgetting secrets\n002 loading secrets from \"/etc/ipsec.secrets\"\n"
             "002 loading secrets from \"%s\"\n",
             path);
    CU_ASSERT_EQUAL(ls_check_reread(out, path, &e), 0);
    /* the include was missing: pluto only names its main file */
    CU_ASSERT_EQUAL(ls_check_reread("002 forgetting secrets\n"
                                    "002 loading secrets from \"/etc/ipsec.secrets\"\n",
                                    path, &e),
                    QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "did not read"));
    CU_ASSERT_EQUAL(ls_check_reread("", path, &e), QK_EPEER);
    /* pluto rejected a line and quoted the secret back: reported without the data */
    snprintf(out, sizeof out,
             "002 forgetting secrets\n002 loading secrets from \"%s\"\n"
             "003 \"%s\" line 2: PPK data malformed (unknown character in input): 0x" K1HEX "zz\n",
             path, path);
    CU_ASSERT_EQUAL(ls_check_reread(out, path, &e), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "line 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "PPK data malformed"));
    CU_ASSERT_PTR_NULL(strstr(e.msg, "00112233"));
    snprintf(out, sizeof out,
             "002 loading secrets from \"%s\"\n003 \"%s\" line 1: No quotation marks found. PPK "
             "ID should be in quotation marks\n",
             path, path);
    CU_ASSERT_EQUAL(ls_check_reread(out, path, &e), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "No quotation marks"));
    /* a complaint about the operator's own file is not the driver's failure */
    snprintf(out, sizeof out,
             "002 loading secrets from \"/etc/ipsec.secrets\"\n003 \"/etc/ipsec.secrets\" line 9: "
             "bad\n002 loading secrets from \"%s\"\n",
             path);
    CU_ASSERT_EQUAL(ls_check_reread(out, path, &e), 0);
    /* pluto names the file through a symlinked directory */
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    snprintf(link, sizeof link, "%s/alias", dir);
    CU_ASSERT_EQUAL_FATAL(symlink(dir, link), 0);
    snprintf(out, sizeof out, "002 loading secrets from \"%s/ppk.secrets\"\n", link);
    CU_ASSERT_EQUAL(ls_check_reread(out, path, &e), 0);
    unlink(link);
    unlink(path);
}

static void test_states(void)
{
    unsigned n = 9;
    /* pluto 4.10 `whack --showstates` with a childless IKE SA */
    const char *up = "000 #6: \"qkd\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); "
                     "REKEY in 28529s; REPLACE in 28799s; newest; idle;\n";
    CU_ASSERT_TRUE(ls_states_established(up, "qkd", &n));
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_TRUE(ls_states_established(up, NULL, NULL));
    CU_ASSERT_TRUE(ls_states_established(up, "", NULL));
    CU_ASSERT_FALSE(ls_states_established(up, "qk", &n)); /* another connection's name prefix */
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_FALSE(ls_states_established(up, "other", NULL));
    CU_ASSERT_FALSE(ls_states_established(
        "000 #3: \"qkd\":4500 STATE_V2_PARENT_R1 (sent IKE_SA_INIT reply); DISCARD in 200s\n",
        "qkd", NULL));
    CU_ASSERT_FALSE(ls_states_established("", "qkd", NULL));
    const char *two = "000 #6: \"qkd\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA);\n"
                      "000 #7: \"qkd\"[1] 192.0.2.1:4500 STATE_V2_ESTABLISHED_IKE_SA (x);\n";
    CU_ASSERT_TRUE(ls_states_established(two, "qkd", &n));
    CU_ASSERT_EQUAL(n, 2);
}

/* `whack --name qkd --initiate` answers captured from pluto 4.10 as initiator (strongSwan
 * responder) on a kernel without ESP, and with the responder lacking the PPK. */
#define INIT_HEAD                                                                                  \
    "181 \"qkd\" #1: initiating IKEv2 connection\n"                                                \
    "181 \"qkd\" #1: sent IKE_SA_INIT request to 192.0.2.1:500\n"
#define INIT_OK                                                                                    \
    INIT_HEAD "002 \"qkd\" #1: PPK AUTH calculated as initiator\n"                                 \
              "182 \"qkd\" #1: sent IKE_AUTH request {cipher=AES_CBC_256 "                         \
              "integ=HMAC_SHA2_256_128 prf=HMAC_SHA2_256 group=DH31}\n"                            \
              "003 \"qkd\" #1: initiator established IKE SA; authenticated peer using "            \
              "authby=secret and ID_FQDN '@gw1.example'\n"

static void test_initiate(void)
{
    qk_err e;
    /* pluto 4.10: IKE SA with PPK, then the Child SA cannot be installed; whack exits 0 */
    const char *no_esp =
        INIT_OK "003 ERROR: \"qkd\" #2: netlink response for Add SA esp.2c15610b@192.0.2.1: "
                "Function not implemented (errno 38)\n"
                "002 \"qkd\" #2: setup_half_ipsec_sa() hit fail:\n"
                "003 \"qkd\" #2: CHILD SA encountered fatal error: INVALID_SYNTAX\n"
                "036 \"qkd\" #1: encountered fatal error in state STATE_V2_ESTABLISHED_IKE_SA\n"
                "002 \"qkd\" #1: deleting state (STATE_V2_ESTABLISHED_IKE_SA) aged 0.008536s "
                "and NOT sending notification\n";
    CU_ASSERT_EQUAL(ls_check_initiate(no_esp, 0, "qkd", &e), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "Function not implemented"));
    /* pluto 4.10: the responder refused (no PPK there); whack exits 36 */
    const char *refused =
        INIT_HEAD "182 \"qkd\" #1: sent IKE_AUTH request {cipher=AES_CBC_256}\n"
                  "003 \"qkd\" #1: IKE SA authentication request rejected by peer: "
                  "AUTHENTICATION_FAILED\n"
                  "036 \"qkd\" #1: encountered fatal error in state STATE_V2_PARENT_I2\n";
    CU_ASSERT_EQUAL(ls_check_initiate(refused, 36, "qkd", &e), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "AUTHENTICATION_FAILED"));
    /* no connection of that name (pluto: 021) */
    CU_ASSERT_EQUAL(ls_check_initiate("021 no connection named \"qkd\"\n", 21, "qkd", &e),
                    QK_EPEER);
    /* the captured success part alone, plus a Child SA line: accepted (constructed: this
     * kernel cannot complete a libreswan Child SA) */
    const char *ok = INIT_OK "004 \"qkd\" #2: initiator established Child SA using #1\n";
    CU_ASSERT_EQUAL(ls_check_initiate(ok, 0, "qkd", &e), 0);
    /* the same for another connection, or without the PPK line: refused */
    CU_ASSERT_EQUAL(ls_check_initiate(ok, 0, "other", &e), QK_EPEER);
    const char *no_ppk = INIT_HEAD "003 \"qkd\" #1: initiator established IKE SA; authenticated "
                                   "peer using authby=secret\n";
    CU_ASSERT_EQUAL(ls_check_initiate(no_ppk, 0, "qkd", &e), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "WITHOUT PPK"));
    CU_ASSERT_EQUAL(ls_check_initiate("", 0, "qkd", &e), QK_EPEER);
}

/* A stand-in whack: records its arguments, answers --rereadsecrets like pluto 4.10 (or with a
 * complaint while DIR/reject exists) and --showstates with one established IKE SA. */
static int write_fake_whack(char *whack, size_t cap)
{
    snprintf(whack, cap, "%s/whack", dir);
    FILE *f = fopen(whack, "w");
    if (!f)
        return -1;
    fprintf(f,
            "#!/bin/sh\n"
            "echo \"$*\" >>'%s/args'\n"
            "case \"$3\" in\n"
            "--rereadsecrets)\n"
            "  echo '002 forgetting secrets'\n"
            "  echo '002 loading secrets from \"%s/ppk.secrets\"'\n"
            "  [ -e '%s/reject' ] && echo '003 \"%s/ppk.secrets\" line 2: PPK data malformed'\n"
            "  exit 0 ;;\n"
            "--showstates)\n"
            "  echo '000 #6: \"qkd\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA);' ;;\n"
            "esac\n"
            "exit 0\n",
            dir, dir, dir, dir);
    if (fclose(f) != 0)
        return -1;
    return chmod(whack, 0700);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_driver(void)
{
    qkb_config *c = malloc(sizeof *c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    qkb_config_defaults(c);
    c->driver = QKB_DRV_LIBRESWAN;
    c->role = QKB_RESPONDER;
    CU_ASSERT_EQUAL_FATAL(write_fake_whack(c->ls_whack, sizeof c->ls_whack), 0);
    snprintf(c->ls_secrets_file, sizeof c->ls_secrets_file, "%s/ppk.secrets", dir);
    snprintf(c->ls_ctlsocket, sizeof c->ls_ctlsocket, "%s/pluto.ctl", dir);
    snprintf(c->ls_conn, sizeof c->ls_conn, "qkd");
    snprintf(c->ls_local_id, sizeof c->ls_local_id, "@lsw.example");
    snprintf(c->ls_remote_id, sizeof c->ls_remote_id, "@gw1.example");
    gw_driver *d = NULL;
    qk_err e;
    CU_ASSERT_EQUAL_FATAL(gw_driver_new(c, &d, &e), 0);
    CU_ASSERT_STRING_EQUAL(d->ops->name, "libreswan");

    CU_ASSERT_EQUAL(d->ops->install(d, ID1, K1, 32, &e), 0);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(c->ls_secrets_file, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_STRING_EQUAL(slurp(c->ls_secrets_file),
                           HEAD "@lsw.example @gw1.example : PPKS \"" ID1 "\" 0x" K1HEX "\n");
    char args[256];
    snprintf(args, sizeof args, "%s/args", dir);
    char want_args[700];
    snprintf(want_args, sizeof want_args, "--ctlsocket %s --rereadsecrets\n", c->ls_ctlsocket);
    CU_ASSERT_STRING_EQUAL(slurp(args), want_args);

    /* rotation: keep a handle on the old inode; after the replacement it holds zeros only */
    int old = open(c->ls_secrets_file, O_RDONLY);
    CU_ASSERT_FATAL(old >= 0);
    off_t old_size = lseek(old, 0, SEEK_END);
    CU_ASSERT(old_size > 64);
    CU_ASSERT_EQUAL(d->ops->install(d, ID2, K2, 32, &e), 0);
    char buf[512];
    ssize_t r = pread(old, buf, sizeof buf, 0);
    CU_ASSERT_EQUAL(r, old_size);
    int nonzero = 0;
    for (ssize_t i = 0; i < r; i++)
        nonzero |= buf[i];
    CU_ASSERT_EQUAL(nonzero, 0);
    close(old);
    CU_ASSERT_STRING_EQUAL(slurp(c->ls_secrets_file),
                           HEAD "@lsw.example @gw1.example : PPKS \"" ID1 "\" 0x" K1HEX "\n"
                                "@lsw.example @gw1.example : PPKS \"" ID2 "\" 0x" K2HEX "\n");
    CU_ASSERT_EQUAL(stat(c->ls_secrets_file, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);

    /* the responder's activate records the key; retire leaves only it */
    CU_ASSERT_EQUAL(d->ops->activate(d, ID2, &e), 0);
    CU_ASSERT_EQUAL(d->ops->retire(d, ID2, &e), 0);
    CU_ASSERT_STRING_EQUAL(slurp(c->ls_secrets_file),
                           HEAD "@lsw.example @gw1.example : PPKS \"" ID2 "\" 0x" K2HEX "\n");
    bool present = false;
    CU_ASSERT_EQUAL(d->ops->has_key(d, ID2, &present, &e), 0);
    CU_ASSERT_TRUE(present);
    CU_ASSERT_EQUAL(d->ops->has_key(d, ID1, &present, &e), 0);
    CU_ASSERT_FALSE(present);

    gw_sa_status sa;
    CU_ASSERT_EQUAL(d->ops->probe(d, ID2, &sa, &e), 0);
    CU_ASSERT_TRUE(sa.up);
    CU_ASSERT_FALSE(sa.confirmable);
    CU_ASSERT_STRING_EQUAL(sa.state, "ESTABLISHED");

    /* pluto rejects a line: the install fails, and the message carries no key bytes */
    char rej[128];
    snprintf(rej, sizeof rej, "%s/reject", dir);
    FILE *f = fopen(rej, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    CU_ASSERT_EQUAL(d->ops->install(d, ID1, K1, 32, &e), QK_EPEER);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "pluto rejected"));
    CU_ASSERT_PTR_NULL(strstr(e.msg, "00112233"));
    unlink(rej);

    /* unusable IDs and key sizes never reach the file */
    CU_ASSERT_EQUAL(d->ops->install(d, "x\"y", K1, 32, &e), QK_EINVAL);
    CU_ASSERT_EQUAL(d->ops->install(d, ID1, K1, 0, &e), QK_EINVAL);

    /* stop: the file is wiped and removed */
    d->ops->destroy(d);
    CU_ASSERT_NOT_EQUAL(access(c->ls_secrets_file, F_OK), 0);
    unlink(args);
    unlink(c->ls_whack);
    free(c);
}

int suite_bridge_libreswan(void)
{
    CU_pSuite s = CU_add_suite("bridge_libreswan", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "PPKS secrets text", test_render) ||
        !CU_add_test(s, "whack --rereadsecrets answers", test_reread) ||
        !CU_add_test(s, "whack --showstates answers", test_states) ||
        !CU_add_test(s, "whack --initiate answers", test_initiate) ||
        !CU_add_test(s, "driver against a stand-in whack", test_driver))
        return -1;
    return 0;
}
