/* test_kmed_config.c - the qkd-kmed configuration: a good file, every class of error naming
 * file, line and key, and the cross-checks. */
#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmed_config.h"

static char dir[64];
static char cfg_path[128];
static qk_kmed_config *cfg;

/* 41 lines; the tests append to it (so appended lines start at 42). */
static const char base[] = "[node]\n"                            /* 1 */
                           "id = KME_A\n"                        /* 2 */
                           "data_dir = data\n"                   /* 3 */
                           "log_level = debug\n"                 /* 4 */
                           "\n"                                  /* 5 */
                           "[listener etsi014]\n"                /* 6 */
                           "address = 127.0.0.1:0\n"             /* 7 */
                           "cert = server.pem\n"                 /* 8 */
                           "key = server.key\n"                  /* 9 */
                           "ca = ca.pem\n"                       /* 10 */
                           "threads = 4\n"                       /* 11 */
                           "[listener peer]\n"                   /* 12 */
                           "address = 127.0.0.1:9443\n"          /* 13 */
                           "cert = server.pem\n"                 /* 14 */
                           "key = server.key\n"                  /* 15 */
                           "ca = ca.pem\n"                       /* 16 */
                           "[listener device]\n"                 /* 17 */
                           "address = [::1]:0\n"                 /* 18 */
                           "cert = server.pem\n"                 /* 19 */
                           "key = server.key\n"                  /* 20 */
                           "ca = ca.pem\n"                       /* 21 */
                           "idle_timeout = 2m\n"                 /* 22 */
                           "[listener admin]\n"                  /* 23 */
                           "address = 127.0.0.1:0\n"             /* 24 */
                           "mode = plain\n"                      /* 25 */
                           "[peer_client]\n"                     /* 26 */
                           "ca = ca.pem\n"                       /* 27 */
                           "cert = client.pem\n"                 /* 28 */
                           "key = client.key\n"                  /* 29 */
                           "timeout = 2500ms\n"                  /* 30 */
                           "[link KME_B]\n"                      /* 31 */
                           "peer_url = https://127.0.0.1:9444\n" /* 32 */
                           "device_identity = qkd-sim\n"         /* 33 */
                           "[sae SAE_A1]\n"                      /* 34 */
                           "kme = KME_A\n"                       /* 35 */
                           "[sae SAE_B1]\n"                      /* 36 */
                           "kme = KME_B\n"                       /* 37 */
                           "[keys]\n"                            /* 38 */
                           "default_size = 256\n"                /* 39 */
                           "max_sae_id_count = 2\n"              /* 40 */
                           "reservation_lifetime = 10m\n";       /* 41 */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int bad = fputs(text, f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-kmedcfg.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cfg_path, sizeof cfg_path, "%s/kmed.ini", dir);
    const char *files[] = {"server.pem", "server.key", "ca.pem", "client.pem", "client.key"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (write_file(p, "x\n") != 0)
            return -1;
    }
    cfg = malloc(sizeof *cfg);
    return cfg ? 0 : -1;
}

static int teardown(void)
{
    const char *files[] = {"server.pem", "server.key", "ca.pem",
                           "client.pem", "client.key", "kmed.ini"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    free(cfg);
    return 0;
}

/* Load base + extra (extra NULL: a file holding only `whole`). */
static int load_text(const char *whole, const char *extra, qk_err *err)
{
    size_t n = strlen(whole) + (extra ? strlen(extra) : 0) + 1;
    char *text = malloc(n);
    if (!text)
        return -100;
    snprintf(text, n, "%s%s", whole, extra ? extra : "");
    int rc = write_file(cfg_path, text);
    free(text);
    if (rc != 0)
        return -100;
    qk_err_clear(err);
    return qk_kmed_config_load(cfg_path, cfg, err);
}

/* The error must start with "PATH:LINE: " and contain every fragment given. */
static void expect_error(const char *whole, const char *extra, int line, const char *frag1,
                         const char *frag2)
{
    qk_err err;
    int rc = load_text(whole, extra, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s:%d: ", cfg_path, line);
    bool ok = strncmp(err.msg, prefix, strlen(prefix)) == 0 && strstr(err.msg, frag1) &&
              (!frag2 || strstr(err.msg, frag2));
    if (!ok)
        fprintf(stderr, "\n  want %s...%s...%s\n  got  %s\n", prefix, frag1, frag2 ? frag2 : "",
                err.msg);
    CU_ASSERT(ok);
}

static void test_good(void)
{
    qk_err err;
    int rc = load_text(base, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg->node_id, "KME_A");
    char want[200];
    snprintf(want, sizeof want, "%s/data", dir);
    CU_ASSERT_STRING_EQUAL(cfg->data_dir, want);
    CU_ASSERT_EQUAL(cfg->log_level, QK_LOG_DEBUG);
    CU_ASSERT_STRING_EQUAL(cfg->log_file, "-");
    CU_ASSERT(cfg->listeners[QK_LST_ETSI014].present);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ETSI014].mode, QK_TLS_MODE_MTLS);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ETSI014].threads, 4);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_PEER].port, 9443);
    CU_ASSERT_STRING_EQUAL(cfg->listeners[QK_LST_DEVICE].host, "::1");
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_DEVICE].idle_timeout_s, 120);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ADMIN].mode, QK_TLS_MODE_NONE);
    CU_ASSERT(!cfg->listeners[QK_LST_SKIP].present);
    /* Body limits: each listener's default (the envelope enforces them). */
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ETSI014].max_body, 65536);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_SKIP].max_body, 4096);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_PEER].max_body, 2097152);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_DEVICE].max_body, QK_BLOCK_MAX_BYTES);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ADMIN].max_body, 4096);
    snprintf(want, sizeof want, "%s/ca.pem", dir);
    CU_ASSERT_STRING_EQUAL(cfg->peer_client.ca, want);
    CU_ASSERT_EQUAL(cfg->peer_client.timeout_ms, 2500);
    CU_ASSERT_EQUAL(cfg->peer_client.connect_timeout_ms, 1000);
    CU_ASSERT_EQUAL_FATAL(cfg->nlinks, 1);
    CU_ASSERT_STRING_EQUAL(cfg->links[0].link_id, "KME_A~KME_B");
    CU_ASSERT_STRING_EQUAL(cfg->links[0].device_identity, "qkd-sim");
    CU_ASSERT_PTR_NOT_NULL(qk_kmed_config_link_by_peer(cfg, "KME_B"));
    CU_ASSERT_PTR_NOT_NULL(qk_kmed_config_link_by_id(cfg, "KME_A~KME_B"));
    CU_ASSERT_PTR_NULL(qk_kmed_config_link_by_peer(cfg, "KME_C"));
    CU_ASSERT_EQUAL(cfg->nsaes, 2);
    CU_ASSERT_STRING_EQUAL(qk_kmed_config_sae(cfg, "SAE_B1")->kme, "KME_B");
    CU_ASSERT_EQUAL(cfg->default_size_bits, 256);
    CU_ASSERT_EQUAL(cfg->max_size_bits, 8192);
    CU_ASSERT_EQUAL(cfg->max_sae_id_count, 2);
    CU_ASSERT_EQUAL(cfg->reservation_lifetime_s, 600);
}

static void test_telemetry_stale(void)
{
    qk_err err;
    int rc = load_text(base, NULL, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->links[0].telemetry_stale_s, QK_CFG_DEFAULT_TELEMETRY_STALE_S);
    rc = load_text(base, "[link KME_B]\ntelemetry_stale = 30s\n", &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->links[0].telemetry_stale_s, 30);
    expect_error(base, "[link KME_B]\ntelemetry_stale = 1500ms\n", 43,
                 "[link KME_B] telemetry_stale: ", "whole seconds");
    expect_error(base, "[link KME_B]\ntelemetry_stale = 2h\n", 43,
                 "[link KME_B] telemetry_stale: ", NULL);
}

static void test_pending_grace(void)
{
    qk_err err;
    int rc = load_text(base, NULL, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->links[0].pending_grace_s, QK_CFG_DEFAULT_PENDING_GRACE_S);
    rc = load_text(base, "[link KME_B]\npending_grace = 3s\n", &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->links[0].pending_grace_s, 3);
    expect_error(base, "[link KME_B]\npending_grace = 500ms\n", 43,
                 "[link KME_B] pending_grace: ", NULL);
    expect_error(base, "[link KME_B]\npending_grace = 2500ms\n", 43,
                 "[link KME_B] pending_grace: ", "whole seconds");
    expect_error(base, "[link KME_B]\npending_grace = 2h\n", 43,
                 "[link KME_B] pending_grace: ", NULL);
}

static void test_max_body(void)
{
    qk_err err;
    static const char set[] = "[node]\nid = KME_A\ndata_dir = d\n"
                              "[listener admin]\naddress = 127.0.0.1:0\nmode = plain\n"
                              "max_body = 300\n";
    int rc = load_text(set, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ADMIN].max_body, 300);
    static const char low[] = "[node]\nid = KME_A\ndata_dir = d\n"
                              "[listener admin]\naddress = 127.0.0.1:0\nmax_body = 255\n";
    expect_error(low, NULL, 6, "[listener admin] max_body: ", NULL);
    static const char high[] = "[node]\nid = KME_A\ndata_dir = d\n"
                               "[listener admin]\naddress = 127.0.0.1:0\nmax_body = 67108865\n";
    expect_error(high, NULL, 6, "[listener admin] max_body: ", NULL);
    static const char word[] = "[node]\nid = KME_A\ndata_dir = d\n"
                               "[listener admin]\naddress = 127.0.0.1:0\nmax_body = 1k\n";
    expect_error(word, NULL, 6, "[listener admin] max_body: ", NULL);
}

static void test_link_id_sorted(void)
{
    /* KME_A is the higher ID here: the default link ID still sorts both IDs. */
    qk_err err;
    const char *text = "[node]\nid = KME_Z\ndata_dir = /tmp/x\n"
                       "[listener peer]\naddress = 127.0.0.1:0\ncert = server.pem\n"
                       "key = server.key\nca = ca.pem\n"
                       "[peer_client]\nca = ca.pem\ncert = client.pem\nkey = client.key\n"
                       "[link KME_A]\npeer_url = https://127.0.0.1:1\ndevice_identity = d\n";
    int rc = load_text(text, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg->links[0].link_id, "KME_A~KME_Z");
}

/* The pool cap: 64 MiB by default for every link, [keys] max_pool_bytes for every link (also when
 * [keys] comes after the links), [link PEER] max_pool_bytes for one; range 4096 .. 2^50. */
static void test_pool_cap(void)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load_text(base, NULL, &err), 0);
    CU_ASSERT_EQUAL(cfg->max_pool_bytes, 64ull << 20);
    CU_ASSERT_EQUAL(cfg->links[0].max_pool_bytes, 64ull << 20);
    CU_ASSERT_EQUAL_FATAL(load_text(base, "max_pool_bytes = 1000000\n", &err), 0);
    CU_ASSERT_EQUAL(cfg->links[0].max_pool_bytes, 1000000);
    int rc = load_text(base,
                       "max_pool_bytes = 1000000\n[link KME_C]\npeer_url = https://127.0.0.1:2\n"
                       "device_identity = qkd-sim\nmax_pool_bytes = 4096\n",
                       &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(qk_kmed_config_link_by_peer(cfg, "KME_B")->max_pool_bytes, 1000000);
    CU_ASSERT_EQUAL(qk_kmed_config_link_by_peer(cfg, "KME_C")->max_pool_bytes, 4096);
    expect_error(base, "max_pool_bytes = 4095\n", 42, "[keys] max_pool_bytes: ", NULL);
    expect_error(base, "max_pool_bytes = 1125899906842625\n", 42, "[keys] max_pool_bytes: ", NULL);
    expect_error(base, "[link KME_C]\nmax_pool_bytes = 64M\n", 43,
                 "[link KME_C] max_pool_bytes: ", NULL);
}

/* [hot_path]: the defaults, each key's range, lease_low_water at most lease_bytes. */
static void test_hot_path(void)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load_text(base, NULL, &err), 0);
    CU_ASSERT_EQUAL(cfg->lease_bytes, 262144);
    CU_ASSERT_EQUAL(cfg->lease_low_water, 65536);
    CU_ASSERT_EQUAL(cfg->lease_demand_ms, 500);
    CU_ASSERT_EQUAL(cfg->notice_batch, 256);
    CU_ASSERT_EQUAL(cfg->notice_wait_ms, 2000);
    CU_ASSERT(!cfg->reply_at_commit);
    int rc = load_text(base,
                       "[hot_path]\nlease_bytes = 1024\nlease_low_water = 0\nnotice_batch = 1024\n"
                       "notice_wait = 0ms\nlease_demand = 0\nreply_at_commit = true\n",
                       &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->lease_bytes, 1024);
    CU_ASSERT_EQUAL(cfg->lease_low_water, 0);
    CU_ASSERT_EQUAL(cfg->notice_batch, 1024);
    CU_ASSERT_EQUAL(cfg->notice_wait_ms, 0);
    CU_ASSERT_EQUAL(cfg->lease_demand_ms, 0);
    CU_ASSERT(cfg->reply_at_commit);
    CU_ASSERT_EQUAL_FATAL(
        load_text(base, "[hot_path]\nnotice_wait = 60s\nlease_demand = 10s\n", &err), 0);
    CU_ASSERT_EQUAL(cfg->notice_wait_ms, 60000);
    CU_ASSERT_EQUAL(cfg->lease_demand_ms, 10000);
    expect_error(base, "[hot_path]\nlease_demand = 10001ms\n", 43,
                 "[hot_path] lease_demand: ", NULL);
    expect_error(base, "[hot_path]\nlease_bytes = 1023\n", 43, "[hot_path] lease_bytes: ", NULL);
    expect_error(base, "[hot_path]\nlease_bytes = 4194305\n", 43, "[hot_path] lease_bytes: ", NULL);
    expect_error(base, "[hot_path]\nnotice_batch = 0\n", 43, "[hot_path] notice_batch: ", NULL);
    expect_error(base, "[hot_path]\nnotice_batch = 1025\n", 43, "[hot_path] notice_batch: ", NULL);
    expect_error(base, "[hot_path]\nnotice_wait = 61s\n", 43, "[hot_path] notice_wait: ", NULL);
    expect_error(base, "[hot_path]\nreply_at_commit = maybe\n", 43,
                 "[hot_path] reply_at_commit: ", NULL);
    expect_error(base, "[hot_path]\nnotice_wait_ms = 5\n", 43,
                 "[hot_path] notice_wait_ms: ", "unknown key");
    expect_error(base, "[hot_path]\nlease_bytes = 4096\nlease_low_water = 4097\n", 44,
                 "[hot_path] lease_low_water: ", "exceeds lease_bytes (4096)");
    expect_error(base, "[hot_path]\nlease_low_water = 262145\n", 43,
                 "[hot_path] lease_low_water: ", "exceeds lease_bytes (262144)");
}

/* A [store] key that takes one of two words (qk_parse_choice): off_word is the default and
 * clears the flag at offset `field` of the config, on_word sets it; another spelling, another
 * word, an empty value, another key or section are errors on line 43. */
static void store_choice(const char *key, const char *off_word, const char *on_word, size_t field)
{
    qk_err err;
    char text[160], where[64], msg[96];
#define FLAG() (*(const bool *)((const char *)cfg + field))
    CU_ASSERT_EQUAL_FATAL(load_text(base, NULL, &err), 0);
    CU_ASSERT(!FLAG());
    snprintf(text, sizeof text, "[store]\n%s = %s\n", key, on_word);
    CU_ASSERT_EQUAL_FATAL(load_text(base, text, &err), 0);
    CU_ASSERT(FLAG());
    snprintf(text, sizeof text, "[store]\n%s = %s\n", key, off_word);
    CU_ASSERT_EQUAL_FATAL(load_text(base, text, &err), 0);
    CU_ASSERT(!FLAG());
#undef FLAG
    snprintf(where, sizeof where, "[store] %s: ", key);
    snprintf(msg, sizeof msg, "must be %s or %s", off_word, on_word);
    const char *bad[] = {"none", "", NULL};
    char upper[32];
    snprintf(upper, sizeof upper, "%s", on_word);
    upper[0] = (char)(upper[0] - 'a' + 'A'); /* another spelling of a word */
    bad[2] = upper;
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "[store]\n%s = %s\n", key, bad[i]);
        expect_error(base, text, 43, where, msg);
    }
    snprintf(text, sizeof text, "[store]\n%sx = %s\n", key, on_word);
    snprintf(where, sizeof where, "[store] %sx: ", key);
    expect_error(base, text, 43, where, "unknown key");
    snprintf(text, sizeof text, "[store db]\n%s = %s\n", key, on_word);
    snprintf(where, sizeof where, "[store db] %s: ", key);
    expect_error(base, text, 43, where, "unknown section");
}

/* [store] lock: exclusive (the default) or shared. */
static void test_store_lock(void)
{
    store_choice("lock", "exclusive", "shared", offsetof(qk_kmed_config, store_shared));
}

/* [store] key_ids: random (the default) or time-ordered; set beside lock, each keeps its own. */
static void test_store_key_ids(void)
{
    store_choice("key_ids", "random", "time-ordered", offsetof(qk_kmed_config, store_time_ids));
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load_text(base, "[store]\nkey_ids = time-ordered\nlock = shared\n", &err),
                          0);
    CU_ASSERT(cfg->store_time_ids && cfg->store_shared);
    CU_ASSERT_EQUAL_FATAL(load_text(base, "[store]\nkey_ids = time-ordered\n", &err), 0);
    CU_ASSERT(cfg->store_time_ids && !cfg->store_shared);
}

/* [link PEER] source and device_* (docs/qkd-kmed.md, "Key sources"). */
static const char etsi_link[] = "[link KME_B]\n"                        /* 42 */
                                "source = etsi014\n"                    /* 43 */
                                "device_url = https://127.0.0.1:8443\n" /* 44 */
                                "device_ca = ca.pem\n"                  /* 45 */
                                "device_cert = client.pem\n"            /* 46 */
                                "device_key = client.key\n"             /* 47 */
                                "device_sae = SAE_X1\n"                 /* 48 */
                                "device_peer_sae = SAE_Y1\n";           /* 49 */

static void test_device_source(void)
{
    qk_err err;
    /* defaults: a pushed (device) source; the device_* defaults are filled in anyway */
    CU_ASSERT_EQUAL_FATAL(load_text(base, NULL, &err), 0);
    const qk_link_cfg *l = &cfg->links[0];
    CU_ASSERT_EQUAL(l->source, QK_SOURCE_DEVICE);
    CU_ASSERT_STRING_EQUAL(qk_link_source_name(l->source), "device");
    CU_ASSERT_FALSE(l->device_pull);
    CU_ASSERT_EQUAL(l->device_key_size, 256);
    CU_ASSERT_EQUAL(l->device_batch, 64);
    CU_ASSERT_EQUAL(l->device_interval_ms, 500);
    CU_ASSERT_EQUAL(l->device_target_bytes, (64ull << 20) / 2);
    int rc = load_text(base, etsi_link, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(l->source, QK_SOURCE_ETSI014);
    CU_ASSERT_STRING_EQUAL(qk_link_source_name(l->source), "etsi014");
    CU_ASSERT_STRING_EQUAL(l->device_url, "https://127.0.0.1:8443");
    CU_ASSERT(strstr(l->device_ca, "/ca.pem") != NULL);
    CU_ASSERT(strstr(l->device_key, "/client.key") != NULL);
    CU_ASSERT_STRING_EQUAL(l->device_sae, "SAE_X1");
    CU_ASSERT_STRING_EQUAL(l->device_peer_sae, "SAE_Y1");
    rc = load_text(base,
                   "[link KME_B]\nsource = etsi014\ndevice_url = https://h:1\ndevice_ca = ca.pem\n"
                   "device_cert = client.pem\ndevice_key = client.key\ndevice_sae = S1\n"
                   "device_peer_sae = S2\ndevice_pull = yes\ndevice_key_size = 128\n"
                   "device_batch = 3\ndevice_interval = 2s\ndevice_target_bytes = 8192\n",
                   &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_TRUE(l->device_pull);
    CU_ASSERT_EQUAL(l->device_key_size, 128);
    CU_ASSERT_EQUAL(l->device_batch, 3);
    CU_ASSERT_EQUAL(l->device_interval_ms, 2000);
    CU_ASSERT_EQUAL(l->device_target_bytes, 8192);
    /* value errors */
    expect_error(base, "[link KME_B]\nsource = simulator\n", 43,
                 "[link KME_B] source: ", "device or etsi014");
    expect_error(base, "[link KME_B]\ndevice_url = http://h:1\n", 43,
                 "[link KME_B] device_url: ", "https://");
    expect_error(base, "[link KME_B]\ndevice_sae = a b\n", 43,
                 "[link KME_B] device_sae: ", "SAE ID");
    expect_error(base, "[link KME_B]\ndevice_key_size = 12\n", 43,
                 "[link KME_B] device_key_size: ", "multiple of 8");
    expect_error(base, "[link KME_B]\ndevice_key_size = 65544\n", 43,
                 "[link KME_B] device_key_size: ", NULL);
    expect_error(base, "[link KME_B]\ndevice_batch = 1025\n", 43,
                 "[link KME_B] device_batch: ", NULL);
    expect_error(base, "[link KME_B]\ndevice_pull = maybe\n", 43,
                 "[link KME_B] device_pull: ", NULL);
    expect_error(base, "[link KME_B]\ndevice_interval = 5ms\n", 43,
                 "[link KME_B] device_interval: ", NULL);
    /* cross-checks: every device key required with source = etsi014, one batch is a block */
    expect_error(base, "[link KME_B]\nsource = etsi014\n", 31,
                 "[link KME_B] device_url: ", "required");
    expect_error(base, "[link KME_B]\nsource = etsi014\ndevice_url = https://h:1\n", 31,
                 "[link KME_B] device_ca: ", "required");
    expect_error(base,
                 "[link KME_B]\nsource = etsi014\ndevice_url = https://h:1\ndevice_ca = nofile\n",
                 45, "[link KME_B] device_ca: ", "cannot read");
    static const char no_sae[] = "[link KME_B]\nsource = etsi014\ndevice_url = https://h:1\n"
                                 "device_ca = ca.pem\ndevice_cert = client.pem\n"
                                 "device_key = client.key\n";
    expect_error(base, no_sae, 31, "[link KME_B] device_sae: ", "required");
    size_t n = sizeof etsi_link + 64;
    char *t = malloc(n);
    CU_ASSERT_FATAL(t != NULL);
    snprintf(t, n, "%s%s", etsi_link, "device_key_size = 256\ndevice_batch = 1\n");
    expect_error(base, t, 51, "[link KME_B] device_batch: ", "33..");
    snprintf(t, n, "%s%s", etsi_link, "device_target_bytes = 67108865\n");
    expect_error(base, t, 50, "[link KME_B] device_target_bytes: ", "max_pool_bytes");
    free(t);
    /* device_identity is not needed when nothing is pushed */
    static const char no_identity[] =
        "[node]\nid = KME_Z\ndata_dir = /tmp/x\n"
        "[listener peer]\naddress = 127.0.0.1:0\ncert = server.pem\n"
        "key = server.key\nca = ca.pem\n"
        "[peer_client]\nca = ca.pem\ncert = client.pem\nkey = client.key\n"
        "[link KME_A]\npeer_url = https://127.0.0.1:1\nsource = etsi014\n"
        "device_url = https://h:1\ndevice_ca = ca.pem\ndevice_cert = client.pem\n"
        "device_key = client.key\ndevice_sae = S1\ndevice_peer_sae = S2\n";
    rc = load_text(no_identity, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
}

static void test_value_errors(void)
{
    expect_error(base, "[bogus]\nx = 1\n", 43, "[bogus] x: ", "unknown section");
    expect_error(base, "colour = blue\n", 42, "[keys] colour: ", "unknown key");
    expect_error(base, "[listener ftp]\naddress = 127.0.0.1:0\n", 43, "[listener ftp] address",
                 "unknown listener");
    expect_error(base, "min_size = 100\n", 42, "[keys] min_size: ", "multiple of 8");
    expect_error(base, "default_size = 128\n", 42, "[keys] default_size: ", "duplicate");
    expect_error(base, "max_keys_per_request = lots\n", 42, "[keys] max_keys_per_request: ", NULL);
    expect_error(base, "[sae bad id!]\nkme = KME_A\n", 43, "[sae bad id!] kme: ", "SAE ID");
    expect_error(base, "[link KME_C]\npeer_url = http://127.0.0.1:1\n", 43,
                 "[link KME_C] peer_url: ", "https");
    expect_error(base, "[sae SAE_X]\nfingerprint = abcd\n", 43,
                 "[sae SAE_X] fingerprint: ", "64 hex");
}

static void test_listener_errors(void)
{
    /* The admin listener: loopback and plain only. */
    static const char admin_remote[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                       "[listener admin]\naddress = 10.1.2.3:8080\n";
    expect_error(admin_remote, NULL, 5, "[listener admin] address: ", "loopback");
    static const char admin_tls[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                    "[listener admin]\naddress = 127.0.0.1:0\nmode = mtls\n";
    expect_error(admin_tls, NULL, 6, "[listener admin] mode: ", "not allowed");
    static const char etsi_plain[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                     "[listener etsi014]\naddress = 127.0.0.1:0\nmode = plain\n";
    expect_error(etsi_plain, NULL, 6, "[listener etsi014] mode: ", "not allowed");
    static const char host_name[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                    "[listener device]\naddress = example.org:1\n";
    expect_error(host_name, NULL, 5, "[listener device] address: ", "numeric");
    /* Required files of an mTLS listener: absent key, then a file that does not exist. */
    static const char no_ca[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                "[listener device]\naddress = 127.0.0.1:0\n"
                                "cert = server.pem\nkey = server.key\n";
    expect_error(no_ca, NULL, 4, "[listener device] ca: ", "required");
    static const char missing[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                  "[listener device]\naddress = 127.0.0.1:0\n"
                                  "cert = nothere.pem\nkey = server.key\nca = ca.pem\n";
    expect_error(missing, NULL, 6, "[listener device] cert: ", "nothere.pem");
    static const char no_addr[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                  "[listener device]\ncert = server.pem\n";
    expect_error(no_addr, NULL, 4, "[listener device] address: ", "required");
    /* A PSK skip listener needs its PSK file. */
    static const char skip[] = "[node]\nid = KME_A\ndata_dir = d\n"
                               "[listener skip]\naddress = 127.0.0.1:0\nmode = psk\n";
    expect_error(skip, NULL, 4, "[listener skip] psk_file: ", "required");
    static const char skip_plain[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                     "[listener skip]\naddress = 127.0.0.1:0\nmode = plain\n";
    expect_error(skip_plain, NULL, 6, "[listener skip] mode: ", "not allowed");
}

/* base + a skip listener in mode psk-or-mtls (PSK file: server.key stands in). */
static const char skip_lst[] = "[listener skip]\n"        /* 42 */
                               "address = 127.0.0.1:0\n"  /* 43 */
                               "cert = server.pem\n"      /* 44 */
                               "key = server.key\n"       /* 45 */
                               "ca = ca.pem\n"            /* 46 */
                               "psk_file = server.key\n"; /* 47 */

static void test_psk_hash(void)
{
    qk_err err;
    char text[1024];
    /* Default: SHA-384, what the listener offers and prefers (RFC 8446 4.2.11 binders). */
    snprintf(text, sizeof text, "%s[skip]\nremote_system_ids = KME_B\n", skip_lst);
    int rc = load_text(base, text, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_SKIP].psk_hash, QK_PSK_SHA384);
    static const char *const names[] = {"sha384", "sha256", "auto"};
    static const qk_psk_hash want[] = {QK_PSK_SHA384, QK_PSK_SHA256, QK_PSK_AUTO};
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "%spsk_hash = %s\n[skip]\nremote_system_ids = KME_B\n",
                 skip_lst, names[i]);
        rc = load_text(base, text, &err);
        if (rc != 0)
            fprintf(stderr, "\n  %s\n", err.msg);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_EQUAL(cfg->listeners[QK_LST_SKIP].psk_hash, want[i]);
    }
    snprintf(text, sizeof text, "%spsk_hash = md5\n", skip_lst);
    expect_error(base, text, 48, "[listener skip] psk_hash: ", "sha384, sha256 or auto");
    expect_error(base, "[listener etsi014]\npsk_hash = auto\n", 43,
                 "[listener etsi014] psk_hash: ", "skip listener only");
}

static void test_skip_good(void)
{
    qk_err err;
    char text[2048];
    snprintf(text, sizeof text,
             "%s[skip]\n"
             "remote_system_ids = KME_B ,  KME_C* ,KME_[DE]\n"
             "loopback_pair = yes\n"
             "algorithm = QKD BB84 (simulated)\n"
             "entropy = off\n"
             "max_entropy = 4096\n"
             "default_client_remote_systems = KME_B\n"
             "[skip_client enc-a1]\n"
             "remote_systems = KME_B,KME_?\n"
             "[skip_client CN with spaces]\n"
             "remote_systems = KME_C1\n",
             skip_lst);
    int rc = load_text(base, text, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const qk_listener_cfg *l = &cfg->listeners[QK_LST_SKIP];
    CU_ASSERT(l->present);
    CU_ASSERT_EQUAL(l->mode, QK_TLS_MODE_PSK_OR_MTLS); /* the default mode of the skip listener */
    CU_ASSERT(cfg->skip.present);
    CU_ASSERT_STRING_EQUAL(cfg->skip.remote_system_ids, "KME_B,KME_C*,KME_[DE]");
    CU_ASSERT(cfg->skip.loopback_pair);
    CU_ASSERT_STRING_EQUAL(cfg->skip.algorithm, "QKD BB84 (simulated)");
    CU_ASSERT(!cfg->skip.entropy);
    CU_ASSERT_EQUAL(cfg->skip.max_entropy_bits, 4096);
    CU_ASSERT_STRING_EQUAL(cfg->skip.default_client_remote_systems, "KME_B");
    CU_ASSERT_EQUAL_FATAL(cfg->skip.nclients, 2);
    CU_ASSERT_STRING_EQUAL(cfg->skip.clients[0].identity, "enc-a1");
    CU_ASSERT_STRING_EQUAL(cfg->skip.clients[0].remote_systems, "KME_B,KME_?");
    CU_ASSERT_STRING_EQUAL(cfg->skip.clients[1].identity, "CN with spaces");

    /* Defaults. */
    snprintf(text, sizeof text, "%s[skip]\nremote_system_ids = KME_B\n", skip_lst);
    rc = load_text(base, text, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(!cfg->skip.loopback_pair);
    CU_ASSERT(cfg->skip.entropy);
    CU_ASSERT_STRING_EQUAL(cfg->skip.algorithm, "QKD");
    CU_ASSERT_EQUAL(cfg->skip.max_entropy_bits, 8192);
    CU_ASSERT_STRING_EQUAL(cfg->skip.default_client_remote_systems, "");
    CU_ASSERT_EQUAL(cfg->skip.nclients, 0);

    /* Every skip listener mode but plain. */
    static const char *const modes[] = {"psk", "mtls", "server-cert", "psk-or-mtls"};
    static const qk_tls_mode want[] = {QK_TLS_MODE_PSK, QK_TLS_MODE_MTLS, QK_TLS_MODE_SERVER_CERT,
                                       QK_TLS_MODE_PSK_OR_MTLS};
    for (size_t i = 0; i < 4; i++) {
        snprintf(text, sizeof text, "%smode = %s\n[skip]\nremote_system_ids = KME_B\n", skip_lst,
                 modes[i]);
        rc = load_text(base, text, &err);
        if (rc != 0)
            fprintf(stderr, "\n  %s\n", err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(cfg->listeners[QK_LST_SKIP].mode, want[i]);
    }
}

static void test_skip_errors(void)
{
    char text[1024];
    /* remote_system_ids is required with the listener (error on the [skip] header line). */
    snprintf(text, sizeof text, "%s[skip]\nloopback_pair = false\n", skip_lst);
    expect_error(base, text, 48, "[skip] remote_system_ids: ", "required");
    /* ... and with no [skip] section at all: the last line of the file. */
    expect_error(base, skip_lst, 47, "[skip] remote_system_ids: ", "required");
    /* Value errors. */
    expect_error(base, "[skip]\nremote_system_ids = KME_B,,KME_C\n", 43,
                 "[skip] remote_system_ids: ", "empty entry");
    expect_error(base, "[skip]\nremote_system_ids = KME B\n", 43,
                 "[skip] remote_system_ids: ", "globs hold");
    expect_error(base, "[skip]\nremote_system_ids = KME_B,\n", 43,
                 "[skip] remote_system_ids: ", "empty entry");
    expect_error(base, "[skip]\nloopback_pair = maybe\n", 43, "[skip] loopback_pair: ", NULL);
    expect_error(base, "[skip]\nmax_entropy = 100\n", 43, "[skip] max_entropy: ", "multiple of 8");
    expect_error(base, "[skip]\nmax_entropy = 128\n", 43, "[skip] max_entropy: ", "256");
    expect_error(base, "[skip]\ncolour = red\n", 43, "[skip] colour: ", "unknown key");
    expect_error(base, "[skip x]\nloopback_pair = true\n", 43,
                 "[skip x] loopback_pair: ", "unknown section");
    expect_error(base, "[skip_client]\nremote_systems = KME_B\n", 43, "[skip_client] ",
                 "unknown section");
    expect_error(base, "[skip_client c1]\nremote_systems = KME_B\nlimit = 3\n", 44,
                 "[skip_client c1] limit: ", "unknown key");
    expect_error(base, "[skip_client c1]\nremote_systems =\n", 43,
                 "[skip_client c1] remote_systems: ", "at least one");
    /* Key sizes must cover the draft's 128..256 bits when SKIP is served. */
    snprintf(text, sizeof text, "%s[skip]\nremote_system_ids = KME_B\n", skip_lst);
    char keys[1100];
    snprintf(keys, sizeof keys, "min_size = 192\n%s", text);
    expect_error(base, keys, 42, "[keys] min_size: ", "skip listener needs");
}

static void test_cross_checks(void)
{
    static const char no_id[] = "[node]\ndata_dir = d\n";
    expect_error(no_id, NULL, 1, "[node] id: ", "required");
    static const char no_node[] = "[keys]\ndefault_size = 256\n";
    expect_error(no_node, NULL, 2, "[node] id: ", "required");
    /* A link to this node itself. */
    expect_error(base, "[link KME_A]\npeer_url = https://127.0.0.1:1\ndevice_identity = x\n", 42,
                 "[link KME_A]", "must not be this node");
    /* Missing link key. */
    expect_error(base, "[link KME_C]\npeer_url = https://127.0.0.1:1\n", 42,
                 "[link KME_C] device_identity: ", "required");
    /* Two links with one link ID. */
    expect_error(base,
                 "[link KME_C]\npeer_url = https://127.0.0.1:1\ndevice_identity = x\n"
                 "link_id = KME_A~KME_B\n",
                 45, "[link KME_C] link_id: ", "used by");
    /* An SAE attached to a KME that is neither this node nor a linked peer. */
    expect_error(base, "[sae SAE_C1]\nkme = KME_C\n", 43,
                 "[sae SAE_C1] kme: ", "neither this node nor a linked peer");
    /* Sizes: min <= default <= max. */
    expect_error(base, "min_size = 512\n", 39, "[keys] default_size: ", "outside");
    expect_error(base, "max_size = 128\nmin_size = 256\n", 43,
                 "[keys] min_size: ", "exceeds max_size");
    /* Links need the peer client credentials and a peer listener. */
    static const char no_pc[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                "[link KME_B]\npeer_url = https://127.0.0.1:1\n"
                                "device_identity = x\n";
    expect_error(no_pc, NULL, 6, "[peer_client]", "required when links are configured");
    static const char no_peer_lst[] = "[node]\nid = KME_A\ndata_dir = d\n"
                                      "[peer_client]\nca = ca.pem\ncert = client.pem\n"
                                      "key = client.key\n"
                                      "[link KME_B]\npeer_url = https://127.0.0.1:1\n"
                                      "device_identity = x\n";
    expect_error(no_peer_lst, NULL, 10, "[listener peer]", "required when links");
}

static void test_io_and_syntax(void)
{
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_kmed_config_load("/nonexistent/kmed.ini", cfg, &err), QK_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/kmed.ini"));
    int rc = load_text("[node]\nid = KME_A\nthis line has no equals sign\n", NULL, &err);
    CU_ASSERT_EQUAL(rc, QK_EINVAL);
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s:3: ", cfg_path);
    CU_ASSERT_EQUAL(strncmp(err.msg, prefix, strlen(prefix)), 0);
}

/* One identity, one role (docs/qkd-kmed.md "Roles"): each collision is refused, naming the
 * section of the later name, both roles and the earlier one's section. */
static void test_role_collisions(void)
{
    /* An SAE named like the link's device (the original attack: issue 17.1). */
    expect_error(base, "[sae qkd-sim]\nkme = KME_A\n", 42, "[sae qkd-sim]: qkd-sim is an SAE ID",
                 "a device identity [link KME_B] (role device)");
    /* ... like a peer KME, and like this KME. */
    expect_error(base, "[sae KME_B]\nkme = KME_A\n", 42, "[sae KME_B]: KME_B is an SAE ID",
                 "a peer KME's ID [link KME_B] (role kme)");
    expect_error(base, "[sae KME_A]\nkme = KME_A\n", 42, "[sae KME_A]: KME_A is an SAE ID",
                 "this KME's node ID [node] (role kme)");
    /* A device named like a peer KME, or like this KME. */
    expect_error(base, "[link KME_C]\npeer_url = https://127.0.0.1:9445\ndevice_identity = KME_B\n",
                 44, "[link KME_C] device_identity: KME_B is a device identity (role device)",
                 "a peer KME's ID [link KME_B] (role kme)");
    expect_error(base, "[link KME_C]\npeer_url = https://127.0.0.1:9445\ndevice_identity = KME_A\n",
                 44, "[link KME_C] device_identity: KME_A is a device identity",
                 "this KME's node ID [node] (role kme)");
    /* A SKIP client (an SAE) named like the device or a peer KME. */
    expect_error(base, "[skip_client qkd-sim]\nremote_systems = KME_B\n", 42,
                 "[skip_client qkd-sim]: qkd-sim is a SKIP client (SAE) (role sae)",
                 "a device identity");
    expect_error(base, "[skip_client KME_B]\nremote_systems = KME_B\n", 42,
                 "[skip_client KME_B]: KME_B is a SKIP client (SAE)", "(role kme)");
    expect_error(base, "[skip_client KME_A]\nremote_systems = KME_B\n", 42,
                 "[skip_client KME_A]: KME_A is a SKIP client (SAE)", "this KME's node ID");
    /* The same name twice in one role is no collision: an SAE that is also a SKIP client. */
    qk_err err;
    int rc = load_text(base, "[skip_client SAE_A1]\nremote_systems = KME_B\n", &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
}

/* [listener NAME] role_marker: the defaults per zone, the two values, the refusals. */
static void test_role_marker(void)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load_text(base, NULL, &err), 0);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ETSI014].role_marker, QK_ROLE_MARKER_OPTIONAL);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_SKIP].role_marker, QK_ROLE_MARKER_OPTIONAL);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_PEER].role_marker, QK_ROLE_MARKER_REQUIRED);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_DEVICE].role_marker, QK_ROLE_MARKER_REQUIRED);
    int rc = load_text(base,
                       "[listener etsi014]\nrole_marker = required\n"
                       "[listener peer]\nrole_marker = optional\n",
                       &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_ETSI014].role_marker, QK_ROLE_MARKER_REQUIRED);
    CU_ASSERT_EQUAL(cfg->listeners[QK_LST_PEER].role_marker, QK_ROLE_MARKER_OPTIONAL);
    expect_error(base, "[listener device]\nrole_marker = yes\n", 43,
                 "[listener device] role_marker: ", "required or optional");
    expect_error(base, "[listener admin]\nrole_marker = required\n", 43,
                 "[listener admin] role_marker: ", "authenticates no client");
    CU_ASSERT_EQUAL(qk_listener_role(QK_LST_ETSI014), QK_ROLE_SAE);
    CU_ASSERT_EQUAL(qk_listener_role(QK_LST_SKIP), QK_ROLE_SAE);
    CU_ASSERT_EQUAL(qk_listener_role(QK_LST_PEER), QK_ROLE_KME);
    CU_ASSERT_EQUAL(qk_listener_role(QK_LST_DEVICE), QK_ROLE_DEVICE);
    CU_ASSERT_EQUAL(qk_listener_role(QK_LST_ADMIN), QK_ROLE_NONE);
}

/* [topology] and [relay] (docs/qkd-kmed.md "Relay and routing"): defaults, values, the
 * repeatable link key, every refusal, and SAEs at KMEs known only from [topology]. */
static void test_topology_relay(void)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load_text(base, NULL, &err), 0);
    CU_ASSERT_EQUAL(cfg->topology.nlinks, 0);
    CU_ASSERT_EQUAL(cfg->topology.interval_ms, 2000);
    CU_ASSERT_EQUAL(cfg->topology.hold_down_ms, 5000);
    CU_ASSERT_TRUE(cfg->relay.enabled);
    CU_ASSERT_EQUAL(cfg->relay.timeout_ms, 5000);
    CU_ASSERT_EQUAL(cfg->relay.max_hops, 8);
    CU_ASSERT_EQUAL(cfg->relay.max_tries, 3);
    int rc = load_text(base,
                       "[topology]\nlink = KME_B KME_C\nlink =  KME_C\tKME_D \n"
                       "interval = 500ms\nhold_down = 1m\n"
                       "[relay]\nenabled = no\ntimeout = 2s\nmax_hops = 15\nmax_tries = 1\n"
                       "[sae SAE_D1]\nkme = KME_D\n",
                       &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg->topology.nlinks, 2);
    CU_ASSERT_STRING_EQUAL(cfg->topology.links[0].a, "KME_B");
    CU_ASSERT_STRING_EQUAL(cfg->topology.links[0].b, "KME_C");
    CU_ASSERT_STRING_EQUAL(cfg->topology.links[1].a, "KME_C");
    CU_ASSERT_STRING_EQUAL(cfg->topology.links[1].b, "KME_D");
    CU_ASSERT_EQUAL(cfg->topology.interval_ms, 500);
    CU_ASSERT_EQUAL(cfg->topology.hold_down_ms, 60000);
    CU_ASSERT_FALSE(cfg->relay.enabled);
    CU_ASSERT_EQUAL(cfg->relay.timeout_ms, 2000);
    CU_ASSERT_EQUAL(cfg->relay.max_hops, 15);
    CU_ASSERT_EQUAL(cfg->relay.max_tries, 1);
    CU_ASSERT_STRING_EQUAL(qk_kmed_config_sae(cfg, "SAE_D1")->kme, "KME_D");
    /* link values */
    expect_error(base, "[topology]\nlink = KME_B\n", 43, "[topology] link: ", "two KME IDs");
    expect_error(base, "[topology]\nlink = KME_B KME_C KME_D\n", 43,
                 "[topology] link: ", "two KME IDs");
    expect_error(base, "[topology]\nlink = KME_B KME/C\n", 43, "[topology] link: ", "two KME IDs");
    expect_error(base, "[topology]\nlink = KME_C KME_C\n", 43,
                 "[topology] link: ", "two different KMEs");
    expect_error(base, "[topology]\nlink = KME_B KME_C\nlink = KME_C KME_B\n", 44,
                 "[topology] link: ", "listed twice");
    /* this node's own links are [link] sections */
    expect_error(base, "[topology]\nlink = KME_C KME_A\n", 43,
                 "[topology] link: ", "names this node (KME_A)");
    expect_error(base, "[topology]\nlink = KME_A KME_B\n", 43,
                 "[topology] link: ", "its links are [link] sections");
    /* bounds and keys */
    expect_error(base, "[topology]\ninterval = 50ms\n", 43, "[topology] interval: ", NULL);
    expect_error(base, "[topology]\ninterval = 2m\n", 43, "[topology] interval: ", NULL);
    expect_error(base, "[topology]\ninterval = 1s\ninterval = 2s\n", 44,
                 "[topology] interval: ", "duplicate key");
    expect_error(base, "[topology]\nhold_down = 11m\n", 43, "[topology] hold_down: ", NULL);
    expect_error(base, "[topology]\nlinks = KME_B KME_C\n", 43,
                 "[topology] links: ", "unknown key");
    expect_error(base, "[topology X]\ninterval = 1s\n", 43, "unknown section", NULL);
    expect_error(base, "[relay]\nenabled = maybe\n", 43, "[relay] enabled: ", NULL);
    expect_error(base, "[relay]\ntimeout = 10ms\n", 43, "[relay] timeout: ", NULL);
    expect_error(base, "[relay]\nmax_hops = 0\n", 43, "[relay] max_hops: ", NULL);
    expect_error(base, "[relay]\nmax_hops = 16\n", 43, "[relay] max_hops: ", NULL);
    expect_error(base, "[relay]\nmax_tries = 0\n", 43, "[relay] max_tries: ", NULL);
    expect_error(base, "[relay]\nmax_tries = 9\n", 43, "[relay] max_tries: ", NULL);
    expect_error(base, "[relay]\nretries = 2\n", 43, "[relay] retries: ", "unknown key");
    /* an SAE at a KME neither linked nor in [topology] is still refused */
    expect_error(base, "[topology]\nlink = KME_B KME_C\n[sae SAE_E1]\nkme = KME_E\n", 45,
                 "[sae SAE_E1] kme: ", "nor a KME of [topology]");
    /* a [topology] KME is a KME: no SAE may carry its ID */
    expect_error(base, "[topology]\nlink = KME_B KME_C\n[sae KME_C]\nkme = KME_A\n", 44,
                 "[sae KME_C]: KME_C is an SAE ID", "a KME of [topology] [topology] (role kme)");
}

int suite_kmed_config(void)
{
    CU_pSuite s = CU_add_suite("kmed_config", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "good config", test_good) ||
        !CU_add_test(s, "default link ID sorts node IDs", test_link_id_sorted) ||
        !CU_add_test(s, "listener max_body: defaults, range", test_max_body) ||
        !CU_add_test(s, "link telemetry_stale: default, value, refusals", test_telemetry_stale) ||
        !CU_add_test(s, "link pending_grace: default, value, refusals", test_pending_grace) ||
        !CU_add_test(s, "skip listener psk_hash: default, values, refusals", test_psk_hash) ||
        !CU_add_test(s, "pool cap: default, [keys], per link", test_pool_cap) ||
        !CU_add_test(s, "link source etsi014: keys, defaults, refusals", test_device_source) ||
        !CU_add_test(s, "value errors name file, line, key", test_value_errors) ||
        !CU_add_test(s, "listener errors", test_listener_errors) ||
        !CU_add_test(s, "cross-checks", test_cross_checks) ||
        !CU_add_test(s, "skip section and client rules", test_skip_good) ||
        !CU_add_test(s, "skip errors", test_skip_errors) ||
        !CU_add_test(s, "unreadable file and syntax errors", test_io_and_syntax) ||
        !CU_add_test(s, "hot_path keys", test_hot_path) ||
        !CU_add_test(s, "store lock", test_store_lock) ||
        !CU_add_test(s, "store key_ids", test_store_key_ids) ||
        !CU_add_test(s, "one identity, one role: collisions refused", test_role_collisions) ||
        !CU_add_test(s, "listener role_marker: defaults, values, refusals", test_role_marker) ||
        !CU_add_test(s, "[topology] and [relay]: defaults, values, refusals", test_topology_relay))
        return -1;
    return 0;
}
