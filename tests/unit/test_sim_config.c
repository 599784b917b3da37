/* test_sim_config.c - qkd-sim run configuration and the persisted block IDs. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_blockid.h"
#include "sim_config.h"

static char dir[64];
static qk_sim_config cfg;

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-simcfg-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int load(const char *text, qk_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "%s/sim.conf", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -99;
    fputs(text, f);
    fclose(f);
    qk_err_clear(err);
    return qk_sim_config_load(path, &cfg, err);
}

#define DEVICE "[device]\nca = ca.crt\ncert = dev.crt\nkey = dev.key\n"
#define LINK                                                                                       \
    "[link KME_A~KME_B]\nkme_a_url = https://127.0.0.1:1/\nkme_b_url = https://127.0.0.1:2\n"

static void test_valid(void)
{
    qk_err err;
    int rc =
        load("[sim]\ncontrol = 127.0.0.1:0\nstate_file = st\ntelemetry_interval = 500ms\n" DEVICE
             "timeout = 2s\nretries = 1\n" LINK
             "distance = 30\npreset = gys\ntime_scale = 10\nblock_bytes = 2048\n"
             "e_d = 0.02\nrate_kind = decoy-inf\n",
             &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg.nlinks, 1);
    CU_ASSERT_EQUAL(cfg.telemetry_ms, 500);
    CU_ASSERT_EQUAL(cfg.timeout_ms, 2000);
    CU_ASSERT_EQUAL(cfg.retries, 1);
    const qk_sim_link_cfg *l = &cfg.links[0];
    CU_ASSERT_STRING_EQUAL(l->id, "KME_A~KME_B");
    CU_ASSERT_STRING_EQUAL(l->url[0], "https://127.0.0.1:1"); /* trailing slash dropped */
    CU_ASSERT_DOUBLE_EQUAL(l->distance_km, 30.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(l->time_scale, 10.0, 1e-12);
    CU_ASSERT_EQUAL(l->block_bytes, 2048);
    CU_ASSERT_DOUBLE_EQUAL(l->params.e_d, 0.02, 1e-12); /* override after the preset */
    CU_ASSERT_EQUAL(l->kind, QK_RATE_DECOY_INF);
    char want[128];
    snprintf(want, sizeof want, "%s/dev.crt", dir); /* relative to the config folder */
    CU_ASSERT_STRING_EQUAL(l->creds.cert, want);
    snprintf(want, sizeof want, "%s/st", dir);
    CU_ASSERT_STRING_EQUAL(cfg.state_file, want);
}

/* One spelling of the rate kinds (decoy-vw, as in qkd-sim model); the underscore spelling of
 * earlier files still loads; the default is the one qkd-sim model tabulates. */
static void test_rate_kind(void)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load(DEVICE LINK "distance = 10\n", &err), 0);
    CU_ASSERT_EQUAL(cfg.links[0].kind, QK_RATE_KIND_DEFAULT);
    CU_ASSERT_EQUAL(QK_RATE_KIND_DEFAULT, QK_RATE_DECOY_VW);
    CU_ASSERT_EQUAL_FATAL(load(DEVICE LINK "distance = 10\nrate_kind = single-photon\n", &err), 0);
    CU_ASSERT_EQUAL(cfg.links[0].kind, QK_RATE_SINGLE_PHOTON);
    CU_ASSERT_EQUAL_FATAL(load(DEVICE LINK "distance = 10\nrate_kind = no_decoy\n", &err), 0);
    CU_ASSERT_EQUAL(cfg.links[0].kind, QK_RATE_NO_DECOY);
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = 10\nrate_kind = decoy\n", &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "decoy-vw, decoy-inf"));
}

static void test_errors(void)
{
    qk_err err;
    CU_ASSERT_NOT_EQUAL(load(DEVICE, &err), 0); /* no link */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no [link"));
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK, &err), 0); /* no distance */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "distance"));
    CU_ASSERT_NOT_EQUAL(load(LINK "distance = 10\n", &err), 0); /* no credentials */
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = 10\ncolour = red\n", &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ":9:")); /* the line of the bad key */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown key"));
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = 10\npreset = nosuch\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = -1\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = 10\nblock_bytes = 32\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = 10\ntime_scale = 0\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(load(DEVICE LINK "distance = 10\neve_fraction = 2\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(load("[sim]\ncontrol = 0.0.0.0:80\n" DEVICE LINK "distance = 1\n", &err),
                        0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "loopback"));
    CU_ASSERT_NOT_EQUAL(load(DEVICE "[link a/b]\ndistance = 1\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(
        load(DEVICE "[link L]\nkme_a_url = http://127.0.0.1:1\nkme_b_url = https://x\n", &err), 0);
    CU_ASSERT_NOT_EQUAL(load("[nonsense]\nx = 1\n", &err), 0);
}

static void test_block_ids_persist(void)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(load(DEVICE LINK "distance = 10\n", &err), 0);
    char state[128];
    snprintf(state, sizeof state, "%s/ids", dir);
    unlink(state);
    static qk_blockids b;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL_FATAL(qk_blockids_open(&b, state, &cfg, &err), 0);
    uint64_t first = qk_blockids_next(&b, "KME_A~KME_B", &err), last = first;
    CU_ASSERT(first > 0);
    for (int i = 0; i < 10; i++) {
        uint64_t id = qk_blockids_next(&b, "KME_A~KME_B", &err);
        CU_ASSERT_EQUAL(id, last + 1);
        last = id;
    }
    CU_ASSERT_EQUAL(qk_blockids_next(&b, "nosuch", &err), 0);
    qk_blockids_close(&b);
    /* A restart (even a crash right now) never hands out an ID already used. */
    qk_err_clear(&err);
    CU_ASSERT_EQUAL_FATAL(qk_blockids_open(&b, state, &cfg, &err), 0);
    uint64_t again = qk_blockids_next(&b, "KME_A~KME_B", &err);
    CU_ASSERT(again > last);
    CU_ASSERT(again <= QK_BLOCKID_MAX);
    qk_blockids_close(&b);
    /* A garbled state file is refused. */
    FILE *f = fopen(state, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("KME_A~KME_B not-a-number\n", f);
    fclose(f);
    qk_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(qk_blockids_open(&b, state, &cfg, &err), 0);
}

int suite_sim_config(void)
{
    CU_pSuite s = CU_add_suite("sim_config", setup, teardown);
    if (!s || !CU_add_test(s, "valid config", test_valid) ||
        !CU_add_test(s, "errors", test_errors) ||
        !CU_add_test(s, "rate kind names", test_rate_kind) ||
        !CU_add_test(s, "block IDs persist", test_block_ids_persist))
        return -1;
    return 0;
}
