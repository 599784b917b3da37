/* test_bridge.c - qkd-bridge pieces without a gateway: configuration rules, bridge-channel
 * message codec and replay guard, key-holding files (0600, old content zeroed), helper runs
 * bounded in time. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_channel.h"
#include "bridge_config.h"
#include "bridge_drivers.h"

static char dir[64];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qkb-unit-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int load_text(const char *text, qkb_config *c, qk_err *e)
{
    char path[128];
    snprintf(path, sizeof path, "%s/b.conf", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -99;
    fputs(text, f);
    fclose(f);
    qkb_config_defaults(c);
    return qkb_config_load(path, c, e);
}

#define BASE                                                                                       \
    "[bridge]\nrole = initiator\n"                                                                 \
    "[kme]\nurl = https://127.0.0.1:1\ncert = c\nkey = k\npeer_sae_id = SAE_B\n"                   \
    "[peer]\naddress = 127.0.0.1:9\npsk_identity = a\npsk_file = p\n"                              \
    "[strongswan]\nlocal_addrs = 192.0.2.1\nremote_addrs = 192.0.2.2, 192.0.2.3\n"                 \
    "local_id = a\nremote_id = b\nike_psk_file = f\nchild = net\n"                                 \
    "local_ts = 10.0.0.0/24\nremote_ts = 10.0.1.0/24\n"

static void test_config(void)
{
    qkb_config *c = malloc(sizeof *c);
    qk_err e;
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(load_text(BASE "[rotation]\ninterval = 30s\n", c, &e), 0);
    CU_ASSERT_EQUAL(c->interval_ms, 30000);
    CU_ASSERT_EQUAL(c->sw_remote_addrs.n, 2);
    CU_ASSERT_STRING_EQUAL(c->sw_remote_addrs.items[1], "192.0.2.3");
    CU_ASSERT_EQUAL(c->peer_port, 9);
    CU_ASSERT_EQUAL(c->key_bits, 256);
    /* unknown key, unknown section, bad values, missing cross-key requirements */
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[rotation]\nintervall = 30s\n", c, &e), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "unknown key"));
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[nope]\nx = 1\n", c, &e), 0);
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[gateway]\ndriver = racoon\n", c, &e), 0);
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[kme]\nkey_bits = 100\n", c, &e), 0);
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[rotation]\nretry_min = 10s\nretry_max = 2s\n", c, &e), 0);
    CU_ASSERT_NOT_EQUAL(load_text("[bridge]\nrole = initiator\n[kme]\nurl = x\n", c, &e), 0);
    /* the responder needs a listen address */
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[bridge]\nrole = responder\n", c, &e), 0);
    CU_ASSERT_EQUAL(
        load_text(BASE "[bridge]\nrole = responder\n[peer]\nlisten = 127.0.0.1:0\n", c, &e), 0);
    /* MACsec: the key is the CAK, so key_bits must equal cak_bits */
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[gateway]\ndriver = macsec\n[macsec]\ninterface = e\n"
                                       "wpa_conf = w\nctrl_interface = /run/x\ncak_bits = 128\n",
                                  c, &e),
                        0);
    CU_ASSERT_EQUAL(load_text(BASE "[gateway]\ndriver = macsec\n[macsec]\ninterface = e\n"
                                   "wpa_conf = w\nctrl_interface = /run/x\n",
                              c, &e),
                    0);
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[gateway]\ndriver = macsec\n[macsec]\nmode = static\n"
                                       "device = macsec0\n",
                                  c, &e),
                        0);
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[macsec]\npeer_mac = 02:00:00:00:00\n", c, &e), 0);
    free(c);
}

static void test_msg_codec(void)
{
    chan_msg m = {.epoch = 0x0123456789abcdefULL, .seq = 7};
    snprintf(m.type, sizeof m.type, "offer");
    snprintf(m.bridge, sizeof m.bridge, "bridge-a");
    snprintf(m.key_id, sizeof m.key_id, "8c399756-a847-48db-a9ff-33fcd9d1565d");
    char *s = chan_msg_encode(&m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    chan_msg d;
    qk_err e;
    CU_ASSERT_EQUAL(chan_msg_decode(s, strlen(s), 4096, &d, &e), 0);
    CU_ASSERT_EQUAL(d.epoch, m.epoch);
    CU_ASSERT_EQUAL(d.seq, 7);
    CU_ASSERT_STRING_EQUAL(d.key_id, m.key_id);
    CU_ASSERT_STRING_EQUAL(d.type, "offer");
    CU_ASSERT_NOT_EQUAL(chan_msg_decode(s, strlen(s), 20, &d, &e), 0); /* above the limit */
    free(s);
    static const char *bad[] = {
        "{\"v\":2,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":1,"
        "\"key_id\":\"k1\"}",
        "{\"v\":1,\"type\":\"steal\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":1,"
        "\"key_id\":\"k1\"}",
        "{\"v\":1,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123\",\"seq\":1,"
        "\"key_id\":\"k1\"}",
        "{\"v\":1,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":0,"
        "\"key_id\":\"k1\"}",
        "{\"v\":1,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":1,"
        "\"key_id\":\"k1'; rm -rf /\"}",
        "{\"v\":1,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":1}",
        "{\"v\":1,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":\"1\","
        "\"key_id\":\"k1\"}",
        "[1,2]",
        "{\"v\":1,\"type\":\"offer\"} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_NOT_EQUAL(chan_msg_decode(bad[i], strlen(bad[i]), 4096, &d, &e), 0);
    CU_ASSERT_TRUE(chan_key_id_ok("8c399756a84748dba9ff33fcd9d1565d"));
    CU_ASSERT_FALSE(chan_key_id_ok(""));
    CU_ASSERT_FALSE(chan_key_id_ok("a b"));
    CU_ASSERT_FALSE(chan_key_id_ok("a\"b"));
}

static void test_replay(void)
{
    chan_replay r = {0};
    CU_ASSERT_EQUAL(chan_replay_check(&r, 1, 1), 0);
    CU_ASSERT_EQUAL(chan_replay_check(&r, 1, 2), 0);
    CU_ASSERT_NOT_EQUAL(chan_replay_check(&r, 1, 2), 0); /* replay */
    CU_ASSERT_NOT_EQUAL(chan_replay_check(&r, 1, 1), 0); /* older */
    CU_ASSERT_EQUAL(chan_replay_check(&r, 2, 1), 0);     /* the sender restarted */
    CU_ASSERT_NOT_EQUAL(chan_replay_check(&r, 1, 3), 0); /* back to an old epoch */
    for (uint64_t ep = 3; ep < 3 + 3 * CHAN_EPOCHS; ep++)
        CU_ASSERT_EQUAL(chan_replay_check(&r, ep, 1), 0);
    CU_ASSERT_NOT_EQUAL(chan_replay_check(&r, 2 + 3 * CHAN_EPOCHS, 1), 0);
    CU_ASSERT(r.n_old < 2 * CHAN_EPOCHS);
}

static void test_secret_file(void)
{
    char path[128], data[64];
    snprintf(path, sizeof path, "%s/secrets", dir);
    qk_err e;
    umask(022);
    CU_ASSERT_EQUAL(secret_file_replace(path, "first key\n", 10, &e), 0);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    /* keep a second link to the old inode: its content must be zeroed by the replacement */
    char old[140];
    snprintf(old, sizeof old, "%s/old-inode", dir);
    CU_ASSERT_EQUAL_FATAL(link(path, old), 0);
    CU_ASSERT_EQUAL(secret_file_replace(path, "second\n", 7, &e), 0);
    FILE *f = fopen(old, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    CU_ASSERT_EQUAL(n, 10);
    int nz = 0;
    for (size_t i = 0; i < n; i++)
        nz += data[i] != 0;
    CU_ASSERT_EQUAL(nz, 0);
    f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    n = fread(data, 1, sizeof data, f);
    fclose(f);
    CU_ASSERT(n == 7 && memcmp(data, "second\n", 7) == 0);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_EQUAL(secret_file_wipe(path, &e), 0);
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    CU_ASSERT_EQUAL(secret_file_wipe(path, &e), 0); /* missing: fine */
    unlink(old);
}

static void test_run_cmd(void)
{
    char out[64];
    qk_err e;
    char *cat[] = {"/bin/cat", NULL};
    CU_ASSERT_EQUAL(run_cmd(cat, "hello", 5, out, sizeof out, 2000, &e), 0);
    CU_ASSERT_STRING_EQUAL(out, "hello");
    char *f[] = {"/bin/false", NULL};
    CU_ASSERT_EQUAL(run_cmd(f, NULL, 0, out, sizeof out, 2000, &e), 1);
    char *sl[] = {"/bin/sleep", "10", NULL};
    CU_ASSERT_EQUAL(run_cmd(sl, NULL, 0, out, sizeof out, 300, &e), QK_ETIMEOUT);
    char *none[] = {"/nonexistent/prog", NULL};
    CU_ASSERT(run_cmd(none, NULL, 0, out, sizeof out, 2000, &e) < 0);
    char *yes[] = {"/usr/bin/head", "-c", "1000", "/dev/zero", NULL};
    CU_ASSERT_EQUAL(run_cmd(yes, NULL, 0, out, 8, 2000, &e), 0); /* output truncated, bounded */
}

int suite_bridge(void)
{
    CU_pSuite s = CU_add_suite("bridge", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "configuration", test_config) ||
        !CU_add_test(s, "channel message codec", test_msg_codec) ||
        !CU_add_test(s, "channel replay guard", test_replay) ||
        !CU_add_test(s, "key-holding files", test_secret_file) ||
        !CU_add_test(s, "helper programs", test_run_cmd))
        return -1;
    return 0;
}
