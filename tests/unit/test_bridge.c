/* test_bridge.c - qkd-bridge pieces without a gateway: configuration rules (every key of every
 * section, the messages of refused values), bridge-channel message codec, replay guard and the
 * responder's request handler (through the request envelope), key-holding files (0600, old
 * content zeroed), helper runs bounded in time. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_channel.h"
#include "bridge_config.h"
#include "bridge_drivers.h"
#include "log.h"

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
    /* One identity, one role (docs/qkd-kmed.md "Roles"): the other bridge is not the SAE. */
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[peer]\npeer_name = SAE_B\n", c, &e), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "two roles"));
    /* [peer] role_marker: optional by default, required on request, nothing else. */
    CU_ASSERT_EQUAL(load_text(BASE, c, &e), 0);
    CU_ASSERT_EQUAL(c->peer_role_marker, QK_ROLE_MARKER_OPTIONAL);
    CU_ASSERT_EQUAL(load_text(BASE "[peer]\nrole_marker = required\n", c, &e), 0);
    CU_ASSERT_EQUAL(c->peer_role_marker, QK_ROLE_MARKER_REQUIRED);
    CU_ASSERT_NOT_EQUAL(load_text(BASE "[peer]\nrole_marker = maybe\n", c, &e), 0);
    free(c);
}

/* Every key of every section is accepted (one parser per section, bridge_config.c), with the
 * values it sets; a refused value names file, line, section, key and what was expected. */
static void test_config_keys(void)
{
    qkb_config *c = malloc(sizeof *c);
    qk_err e;
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    int rc = load_text(
        "[bridge]\nname = b1\nrole = responder\nlog_file = /tmp/x.log\nlog_level = warn\n"
        "admin = 127.0.0.1:9560\n"
        "[kme]\napi = skip\nurl = https://127.0.0.1:1\nca = ca\ncert = c\nkey = k\n"
        "psk_identity = pi\npsk_file = pf\npeer_sae_id = KME_A\nkey_bits = 512\ntimeout = 250ms\n"
        "[peer]\naddress = [::1]:7\nlisten = 127.0.0.1:0\nauth = cert\npsk_identity = x\n"
        "psk_file = y\nca = pca\ncert = pcert\nkey = pkey\npeer_name = bridge-a\ntimeout = 2s\n"
        "retries = 20\n"
        "[rotation]\ninterval = 0\nretry_min = 100ms\nretry_max = 24h\nsupervise = 500ms\n"
        "responder_key_wait = 60s\n"
        "[limits]\nmax_keys = 64\nmax_message = 65536\n"
        "[gateway]\ndriver = libreswan\n"
        "[strongswan]\nsocket = /run/v\nconnection = cn\nchild = ch\nlocal_addrs = a\n"
        "remote_addrs = b\nlocal_ts = 10.0.0.0/8\nremote_ts = 11.0.0.0/8\nlocal_id = li\n"
        "remote_id = ri\nike_psk_file = ipf\nproposals = p1, p2\nesp_proposals = e1\n"
        "childless = yes\ninitiate_timeout = 1s\n"
        "[libreswan]\nsecrets_file = /tmp/s\nwhack = /bin/true\nctlsocket = /run/p\n"
        "connection = qkd\nlocal_id = @b\nremote_id = @a\ninitiate = yes\n"
        "[macsec]\nmode = static\ninterface = eth1\nwpa_conf = w\nctrl_interface = /run/w\n"
        "port = 65534\npriority = 0\ncak_bits = 128\ndevice = macsec0\nip = /sbin/ip\n"
        "local_mac = 02:00:00:00:00:01\npeer_mac = 02:00:00:00:00:02\npeer_port = 65535\n",
        c, &e);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(c->name, "b1");
    CU_ASSERT_EQUAL(c->role, QKB_RESPONDER);
    CU_ASSERT_STRING_EQUAL(c->log_level, "warn");
    CU_ASSERT_EQUAL(c->admin_port, 9560);
    CU_ASSERT_EQUAL(c->kme_api, QKB_KME_SKIP);
    CU_ASSERT_EQUAL(c->key_bits, 512);
    CU_ASSERT_EQUAL(c->kme_timeout_ms, 250);
    CU_ASSERT_STRING_EQUAL(c->peer_host, "::1");
    CU_ASSERT_EQUAL(c->peer_port, 7);
    CU_ASSERT_EQUAL(c->peer_auth, QKB_AUTH_CERT);
    CU_ASSERT_STRING_EQUAL(c->peer_name, "bridge-a");
    CU_ASSERT_EQUAL(c->peer_retries, 20);
    CU_ASSERT_EQUAL(c->interval_ms, 0);
    CU_ASSERT_EQUAL(c->retry_max_ms, 24ULL * 3600 * 1000);
    CU_ASSERT_EQUAL(c->max_keys, 64);
    CU_ASSERT_EQUAL(c->max_message, 65536);
    CU_ASSERT_EQUAL(c->driver, QKB_DRV_LIBRESWAN);
    CU_ASSERT_EQUAL(c->sw_proposals.n, 2);
    CU_ASSERT_STRING_EQUAL(c->sw_proposals.items[1], "p2");
    CU_ASSERT_TRUE(c->sw_childless);
    CU_ASSERT_EQUAL(c->sw_initiate_timeout_ms, 1000);
    CU_ASSERT_TRUE(c->ls_initiate);
    CU_ASSERT_STRING_EQUAL(c->ls_conn, "qkd");
    CU_ASSERT_EQUAL(c->ms_mode, QKB_MACSEC_STATIC);
    CU_ASSERT_EQUAL(c->ms_port, 65534);
    CU_ASSERT_EQUAL(c->ms_cak_bits, 128);
    CU_ASSERT_EQUAL(c->ms_peer_mac[5], 2);
    CU_ASSERT_EQUAL(c->ms_peer_port, 65535);

    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"[bridge]\nrole = both\n", ":2: [bridge] role: initiator or responder"},
        {"[bridge]\nlog_level = trace\n", ":2: [bridge] log_level: debug, info, warn or error"},
        {"[kme]\napi = rest\n", ":2: [kme] api: etsi014 or skip"},
        {"[kme]\nkey_bits = 260\n", ":2: [kme] key_bits: a multiple of 8"},
        {"[peer]\nauth = none\n", ":2: [peer] auth: psk or cert"},
        {"[gateway]\ndriver = racoon\n",
         ":2: [gateway] driver: strongswan, libreswan, macsec or wireguard"},
        {"[macsec]\nmode = mka\n", ":2: [macsec] mode: wpa_supplicant or static"},
        {"[macsec]\ncak_bits = 192\n", ":2: [macsec] cak_bits: 128 or 256"},
        {"[macsec]\nlocal_mac = 02:00\n", ":2: [macsec] local_mac: a MAC address"},
        {"[strongswan]\nlocal_ts = 1,2,3,4,5,6,7,8,9\n", ":2: [strongswan] local_ts: more than 8"},
        {"[limits]\nmax_message = 100\n", ":2: [limits] max_message:"},
        {"[libreswan]\nsecrets = x\n", ":2: [libreswan] secrets: unknown key"},
        {"[bridge]\n[Bridge]\nname = x\n", ":3: [Bridge] name: unknown section"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_NOT_EQUAL(load_text(bad[i].text, c, &e), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, bad[i].msg));
        if (!strstr(e.msg, bad[i].msg))
            fprintf(stderr, "\n  expected \"%s\" in \"%s\"\n", bad[i].msg, e.msg);
    }
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
        /* a key ID cut short by a NUL escape (issue 17 item 5) */
        "{\"v\":1,\"type\":\"offer\",\"bridge\":\"a\",\"epoch\":\"0123456789abcdef\",\"seq\":1,"
        "\"key_id\":\"k1\\u0000x\"}",
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

/* ---- the responder's request handler, through qk_http_handler_call ------------------------ */

typedef struct {
    int offers, activations;
    int rc; /* what the next callback returns */
    char last[GW_KEY_ID_MAX];
} fake_bridge;

static int fake_offer(void *ctx, const char *key_id, qk_err *err)
{
    fake_bridge *f = ctx;
    f->offers++;
    snprintf(f->last, sizeof f->last, "%s", key_id);
    return f->rc ? qk_err_set(err, f->rc, "KME has no key %s", key_id) : 0;
}

static int fake_activated(void *ctx, const char *key_id, qk_err *err)
{
    fake_bridge *f = ctx;
    f->activations++;
    snprintf(f->last, sizeof f->last, "%s", key_id);
    return f->rc ? qk_err_set(err, f->rc, "gateway refused") : 0;
}

/* One request to the channel handler; returns the status, the body in body (cap bytes). */
static unsigned chan_call(chan_handler *h, const qk_peer_identity *caller, const char *method,
                          const char *path, const char *type, uint64_t epoch, uint64_t seq,
                          char *body, size_t cap)
{
    char msg[256] = "";
    if (type)
        snprintf(msg, sizeof msg,
                 "{\"v\":1,\"type\":\"%s\",\"bridge\":\"bridge-a\",\"epoch\":\"%016llx\","
                 "\"seq\":%llu,\"key_id\":\"kid-1\"}",
                 type, (unsigned long long)epoch, (unsigned long long)seq);
    qk_http_request req = {.listener = "bridge",
                           .method = method,
                           .path = path,
                           .caller = caller,
                           .body = msg,
                           .body_len = strlen(msg)};
    qk_http_reply rep;
    qk_http_handler_call(&h->super, &req, &rep);
    snprintf(body, cap, "%.*s", (int)rep.len, rep.body ? rep.body : "");
    CU_ASSERT(rep.len == 0 || strcmp(rep.content_type, "application/json") == 0);
    unsigned st = rep.status;
    qk_http_reply_clear(&rep);
    return st;
}

static void test_chan_handler(void)
{
    qkb_config *cfg = malloc(sizeof *cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    qkb_config_defaults(cfg);
    snprintf(cfg->peer_name, sizeof cfg->peer_name, "bridge-a");
    fake_bridge f = {0};
    chan_handlers cb = {.offer = fake_offer, .activated = fake_activated, .ctx = &f};
    chan_handler h;
    CU_ASSERT_EQUAL_FATAL(chan_handler_configure(&h, cfg, &cb), 0);
    qk_peer_identity peer = {.kind = QK_ID_PSK}, other = {.kind = QK_ID_PSK},
                     none = {.kind = QK_ID_NONE};
    snprintf(peer.id, sizeof peer.id, "bridge-a");
    snprintf(other.id, sizeof other.id, "bridge-x");
    char b[512];
    const char *offer = "/bridge/v1/offer", *act = "/bridge/v1/activated";
    qk_log_level saved = qk_log_get_level();
    qk_log_set_level(QK_LOG_ERROR); /* the refusals below are logged as warnings */

    /* the caller first: unauthenticated or another identity is refused whatever it asks */
    CU_ASSERT_EQUAL(chan_call(&h, &none, "POST", offer, "offer", 1, 1, b, sizeof b), 403);
    CU_ASSERT_STRING_EQUAL(b, "{\"status\":\"error\",\"message\":\"peer not allowed\"}");
    CU_ASSERT_EQUAL(chan_call(&h, &other, "GET", "/x", NULL, 0, 0, b, sizeof b), 403);
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", "/bridge/v1/steal", "offer", 1, 1, b, sizeof b),
                    404);
    CU_ASSERT_STRING_EQUAL(b, "{\"status\":\"error\",\"message\":\"unknown path\"}");
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "GET", offer, NULL, 0, 0, b, sizeof b), 405);
    CU_ASSERT_STRING_EQUAL(b, "{\"status\":\"error\",\"message\":\"POST only\"}");
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", offer, NULL, 0, 0, b, sizeof b), 400);
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", offer, "activated", 1, 1, b, sizeof b), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "does not match the path"));
    CU_ASSERT_EQUAL(f.offers + f.activations, 0);
    /* the role marker (docs/qkd-kmed.md "Roles"): a certificate named bridge-a but marked for
     * another role is refused; a bridge one, or (optional) an unmarked one, gets through */
    qk_peer_identity cert = {.kind = QK_ID_CERT, .role = QK_ROLE_SAE};
    snprintf(cert.id, sizeof cert.id, "bridge-a");
    CU_ASSERT_EQUAL(chan_call(&h, &cert, "POST", "/x", NULL, 0, 0, b, sizeof b), 403);
    CU_ASSERT_STRING_EQUAL(b, "{\"status\":\"error\",\"message\":\"peer not allowed\"}");
    cert.role = QK_ROLE_BRIDGE;
    CU_ASSERT_EQUAL(chan_call(&h, &cert, "POST", "/x", NULL, 0, 0, b, sizeof b), 404);
    cert.role = QK_ROLE_NONE;
    CU_ASSERT_EQUAL(chan_call(&h, &cert, "POST", "/x", NULL, 0, 0, b, sizeof b), 404);
    cfg->peer_role_marker = QK_ROLE_MARKER_REQUIRED;
    CU_ASSERT_EQUAL(chan_call(&h, &cert, "POST", "/x", NULL, 0, 0, b, sizeof b), 403);
    cfg->peer_role_marker = QK_ROLE_MARKER_OPTIONAL;

    /* accepted: the callback runs, the answer names the key */
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", offer, "offer", 5, 1, b, sizeof b), 200);
    CU_ASSERT_STRING_EQUAL(b, "{\"status\":\"installed\",\"key_id\":\"kid-1\"}");
    CU_ASSERT(f.offers == 1 && strcmp(f.last, "kid-1") == 0);
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", act, "activated", 5, 2, b, sizeof b), 200);
    CU_ASSERT_STRING_EQUAL(b, "{\"status\":\"retired\",\"key_id\":\"kid-1\"}");
    /* replayed and out of order: 409, the callback does not run */
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", offer, "offer", 5, 2, b, sizeof b), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "replayed or out-of-order"));
    CU_ASSERT_EQUAL(f.offers, 1);
    /* the callback's refusals: 404 when the KME lacks the key, 503 otherwise */
    f.rc = QK_ENOTFOUND;
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", offer, "offer", 5, 3, b, sizeof b), 404);
    CU_ASSERT_STRING_EQUAL(
        b, "{\"status\":\"error\",\"key_id\":\"kid-1\",\"message\":\"KME has no key kid-1\"}");
    f.rc = QK_EIO;
    CU_ASSERT_EQUAL(chan_call(&h, &peer, "POST", act, "activated", 5, 4, b, sizeof b), 503);
    qk_log_set_level(saved);
    chan_handler_release(&h);
    free(cfg);
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
        !CU_add_test(s, "configuration keys and messages", test_config_keys) ||
        !CU_add_test(s, "channel replay guard", test_replay) ||
        !CU_add_test(s, "channel responder handler", test_chan_handler) ||
        !CU_add_test(s, "key-holding files", test_secret_file) ||
        !CU_add_test(s, "helper programs", test_run_cmd))
        return -1;
    return 0;
}
