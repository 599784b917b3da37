/* test_bridge_check.c - `qkd-bridge check-config` beyond the configuration rules
 * (qkb_config_check_files): missing and unreadable files, secret files readable by others,
 * PSK files without the identity the bridge uses, helpers that cannot run, a gateway socket
 * that is not there (a warning); every finding names FILE:LINE of the key. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_config.h"

static char dir[64];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qkb-check-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *name, const char *text, mode_t mode)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    CU_ASSERT_EQUAL(chmod(p, mode), 0);
}

#define HEX32 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* Writes conf as b.conf, loads it, checks it: the number of errors (-1: not loaded); report
 * in out. */
static int check_conf(const char *conf, char *out, size_t cap, int *warnings)
{
    char path[128];
    snprintf(path, sizeof path, "%s/b.conf", dir);
    put("b.conf", conf, 0600);
    qkb_config *c = malloc(sizeof *c);
    qk_err e;
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    qkb_config_defaults(c);
    int rc = qkb_config_load(path, c, &e);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        fprintf(stderr, "%s\n", e.msg);
    int n = rc ? -1 : qkb_config_check_files(path, c, out, cap, warnings);
    free(c);
    return n;
}

/* The initiator's configuration (libreswan) with its PPK secrets in secrets_dir, checked. */
static int check(const char *secrets_dir, char *out, size_t cap, int *warnings)
{
    char conf[2048];
    snprintf(conf, sizeof conf,
             "[bridge]\nrole = initiator\n"
             "[kme]\nurl = https://127.0.0.1:1\nca = %s/ca.crt\ncert = %s/sae.crt\n"
             "key = %s/sae.key\npeer_sae_id = SAE_B\n"
             "[peer]\naddress = 127.0.0.1:9\npsk_identity = gw1\npsk_file = %s/bridge.psk\n"
             "[gateway]\ndriver = libreswan\n"
             "[libreswan]\nsecrets_file = %s/ppk.secrets\nwhack = %s/whack\n"
             "ctlsocket = %s/pluto.ctl\nlocal_id = @a\nremote_id = @b\n",
             dir, dir, dir, dir, secrets_dir, dir, dir);
    return check_conf(conf, out, cap, warnings);
}

static bool has(const char *out, const char *line_and_text)
{
    char want[512];
    snprintf(want, sizeof want, "%s/b.conf:%s", dir, line_and_text);
    if (strstr(out, want))
        return true;
    fprintf(stderr, "missing '%s' in:\n%s", want, out);
    return false;
}

static void test_check_files(void)
{
    char out[4096];
    int w = 0;
    put("ca.crt", "cert\n", 0644);
    put("sae.crt", "cert\n", 0644);
    put("sae.key", "key\n", 0600);
    put("bridge.psk", "other:" HEX32 "\ngw1:" HEX32 "\n", 0600);
    put("whack", "#!/bin/sh\n", 0755);
    /* all there: no error; pluto's socket is missing: a warning naming its line */
    CU_ASSERT_EQUAL(check(dir, out, sizeof out, &w), 0);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_TRUE(has(out, "18: [libreswan] ctlsocket: warning: "));
    /* a secret file readable by others, a missing certificate, a helper that cannot run */
    put("sae.key", "key\n", 0644);
    char p[128];
    snprintf(p, sizeof p, "%s/sae.crt", dir);
    CU_ASSERT_EQUAL(unlink(p), 0);
    put("whack", "#!/bin/sh\n", 0644);
    CU_ASSERT_EQUAL(check(dir, out, sizeof out, &w), 3);
    CU_ASSERT_TRUE(has(out, "7: [kme] key: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "has mode 0644 (chmod 600)"));
    CU_ASSERT_TRUE(has(out, "6: [kme] cert: cannot read "));
    CU_ASSERT_TRUE(has(out, "17: [libreswan] whack: cannot execute "));
    put("sae.key", "key\n", 0600);
    put("sae.crt", "cert\n", 0644);
    put("whack", "#!/bin/sh\n", 0755);
    /* the PSK file lacks the bridge's identity; then a key too short */
    put("bridge.psk", "other:" HEX32 "\n", 0600);
    CU_ASSERT_EQUAL(check(dir, out, sizeof out, &w), 1);
    CU_ASSERT_TRUE(has(out, "12: [peer] psk_file: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no line for identity 'gw1'"));
    put("bridge.psk", "gw1:0011\n", 0600);
    CU_ASSERT_EQUAL(check(dir, out, sizeof out, &w), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "not 16 or more bytes of hex"));
    put("bridge.psk", "gw1:" HEX32 "\n", 0600);
    /* a secrets file in a directory that does not exist */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nodir", dir);
    CU_ASSERT_EQUAL(check(missing, out, sizeof out, &w), 1);
    CU_ASSERT_TRUE(has(out, "16: [libreswan] secrets_file: cannot write in "));
    CU_ASSERT_EQUAL(check(dir, out, sizeof out, &w), 0);
}

static void test_check_responder_peer(void)
{
    /* a responder checks its PSK file for the initiator's identity (peer_name) */
    char conf[1024], out[2048];
    put("bridge.psk", "gw1:" HEX32 "\n", 0600);
    snprintf(conf, sizeof conf,
             "[bridge]\nrole = responder\n"
             "[kme]\nurl = https://127.0.0.1:1\ncert = %s/sae.crt\nkey = %s/sae.key\n"
             "peer_sae_id = SAE_A\n"
             "[peer]\nlisten = 127.0.0.1:9\npsk_identity = gw1\npsk_file = %s/bridge.psk\n"
             "peer_name = gw9\n"
             "[gateway]\ndriver = wireguard\n"
             "[wireguard]\ninterface = wg0\n"
             "peer_public_key = FPDDYk3Q/tPpNCBRZMa8IhnRYyS7ldhPYI6dNWz/Gzg=\n",
             dir, dir, dir);
    int w = 0;
    CU_ASSERT_EQUAL_FATAL(check_conf(conf, out, sizeof out, &w), 1);
    CU_ASSERT_TRUE(has(out, "11: [peer] psk_file: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no line for identity 'gw9'"));
    /* the default UAPI socket: the [wireguard] header line, a warning */
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_TRUE(has(out, "15: [wireguard] socket: warning: /var/run/wireguard/wg0.sock"));
}

/* dist/examples: the responder example pairs with the initiator one (unit tests run from the
 * source tree's root, as `make unit` does). */
static void test_examples_pair(void)
{
    qkb_config *i = malloc(sizeof *i), *r = malloc(sizeof *r);
    qk_err e;
    CU_ASSERT_PTR_NOT_NULL_FATAL(i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    qkb_config_defaults(i);
    qkb_config_defaults(r);
    int rc = qkb_config_load("dist/examples/bridge.conf.example", i, &e);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0)
        rc = qkb_config_load("dist/examples/bridge-responder.conf.example", r, &e);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", e.msg);
        goto out;
    }
    CU_ASSERT_EQUAL(i->role, QKB_INITIATOR);
    CU_ASSERT_EQUAL(r->role, QKB_RESPONDER);
    CU_ASSERT_STRING_EQUAL(i->peer_host, r->listen_host);
    CU_ASSERT_EQUAL(i->peer_port, r->listen_port);
    CU_ASSERT_STRING_EQUAL(r->peer_name, i->peer_psk_identity);
    CU_ASSERT_STRING_EQUAL(i->peer_psk_identity, r->peer_psk_identity);
    CU_ASSERT_EQUAL(i->kme_api, r->kme_api);
    CU_ASSERT_STRING_NOT_EQUAL(i->kme_cert, r->kme_cert);
    CU_ASSERT_EQUAL(i->driver, r->driver);
    CU_ASSERT_STRING_EQUAL(i->sw_local_id, r->sw_remote_id);
    CU_ASSERT_STRING_EQUAL(i->sw_remote_id, r->sw_local_id);
    CU_ASSERT_STRING_EQUAL(i->sw_local_addrs.items[0], r->sw_remote_addrs.items[0]);
    CU_ASSERT_STRING_EQUAL(i->sw_remote_addrs.items[0], r->sw_local_addrs.items[0]);
    CU_ASSERT_STRING_EQUAL(i->sw_local_ts.items[0], r->sw_remote_ts.items[0]);
    CU_ASSERT_STRING_EQUAL(i->sw_remote_ts.items[0], r->sw_local_ts.items[0]);
    CU_ASSERT_STRING_EQUAL(i->sw_child, r->sw_child);
    CU_ASSERT_STRING_EQUAL(i->sw_ike_psk_file, r->sw_ike_psk_file);
out:
    free(i);
    free(r);
}

int suite_bridge_check(void)
{
    CU_pSuite s = CU_add_suite("bridge_check", setup, teardown);
    if (!s || !CU_add_test(s, "files, modes, identities, helpers", test_check_files) ||
        !CU_add_test(s, "responder peer identity, default socket", test_check_responder_peer) ||
        !CU_add_test(s, "example configs pair up", test_examples_pair))
        return -1;
    return 0;
}
