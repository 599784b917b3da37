/* test_sim_lab.c - qkd-lab pure logic: topology files, generated configs, the manifest,
 * port files and Prometheus samples. */
#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"
#include "lab_cmds.h"
#include "lab_proc.h"
#include "lab_topology.h"
#include "model.h"

static char dir[64];
static qk_lab lab;

static char *render(int which, size_t k);

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-lab-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int load_topo(const char *text, qk_lab_topology *t, qk_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "%s/topo.ini", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -99;
    fputs(text, f);
    fclose(f);
    qk_err_clear(err);
    return qk_lab_topology_load(path, t, err);
}

#define CHAIN                                                                                      \
    "[kme KME_A]\nsaes = SAE_A1\n[kme KME_B]\nsaes = SAE_B1, SAE_B2\n[kme KME_C]\nsaes = SAE_C1\n" \
    "[link AB]\nkmes = KME_A, KME_B\ndistance = 10\n[link BC]\nkmes = KME_B,KME_C\npreset = gys\n"

static void test_topology(void)
{
    static qk_lab_topology t;
    qk_err err;
    qk_lab_topology_default(&t);
    CU_ASSERT_EQUAL(qk_lab_topology_check(&t, &err), 0);
    CU_ASSERT_EQUAL(t.nkmes, 2);
    CU_ASSERT_STRING_EQUAL(t.links[0].id, "KME_A~KME_B");
    CU_ASSERT_STRING_EQUAL(t.kmes[1].saes[1], "SAE_B2");

    CU_ASSERT_EQUAL_FATAL(load_topo(CHAIN, &t, &err), 0);
    CU_ASSERT_EQUAL(t.nkmes, 3);
    CU_ASSERT_EQUAL(t.nlinks, 2);
    CU_ASSERT_EQUAL(t.kmes[1].nsaes, 2);
    CU_ASSERT_STRING_EQUAL(t.kmes[1].saes[1], "SAE_B2");
    CU_ASSERT_EQUAL(t.links[1].kme[0], 1);
    CU_ASSERT_EQUAL(t.links[1].kme[1], 2);
    CU_ASSERT_DOUBLE_EQUAL(t.links[0].distance_km, 10.0, 1e-12);
    CU_ASSERT(t.links[1].distance_km < 0); /* the lab default */
    CU_ASSERT(qk_lab_linked(&t, 0, 1) && qk_lab_linked(&t, 2, 1) && !qk_lab_linked(&t, 0, 2));

    /* Refusals. */
    CU_ASSERT_NOT_EQUAL(
        load_topo("[kme KME_A]\nsaes = S1\n[link L]\nkmes = KME_A,KME_X\n", &t, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown KME"));
    CU_ASSERT_NOT_EQUAL(
        load_topo("[kme A]\nsaes = S1\n[kme B]\nsaes = S1\n[link L]\nkmes = A,B\n", &t, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "twice"));
    CU_ASSERT_NOT_EQUAL(load_topo("[kme A]\nsaes = S1\n[kme B]\nsaes = S2\n[kme C]\nsaes = S3\n"
                                  "[link L]\nkmes = A,B\n",
                                  &t, &err),
                        0); /* C has no link */
    CU_ASSERT_NOT_EQUAL(load_topo("[kme A]\nsaes = S1\n[kme B]\nsaes = S2\n[link L]\nkmes = A,B\n"
                                  "[link M]\nkmes = B,A\n",
                                  &t, &err),
                        0); /* two links for one pair */
    CU_ASSERT_NOT_EQUAL(
        load_topo("[kme A]\nsaes = S1\n[kme B]\nsaes = S2\n[link L]\nkmes = A,A\n", &t, &err), 0);
    /* One identity, one role (docs/qkd-kmed.md "Roles"): no SAE or KME named like the device. */
    CU_ASSERT_NOT_EQUAL(
        load_topo("[kme A]\nsaes = qkd-sim\n[kme B]\nsaes = S2\n[link L]\nkmes = A,B\n", &t, &err),
        0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "SAE qkd-sim has the identity of the device"));
    CU_ASSERT_NOT_EQUAL(
        load_topo("[kme qkd-sim]\nsaes = S1\n[kme B]\nsaes = S2\n[link L]\nkmes = qkd-sim,B\n", &t,
                  &err),
        0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "KME qkd-sim has the identity of the device"));
    CU_ASSERT_NOT_EQUAL(
        load_topo("[kme A]\nsaes = B\n[kme B]\nsaes = S2\n[link L]\nkmes = A,B\n", &t, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "has the ID of a KME"));
    CU_ASSERT_NOT_EQUAL(load_topo("[kme A]\nsaes = S 1\n", &t, &err), 0);
    CU_ASSERT_NOT_EQUAL(load_topo("[kme A]\nsaes = S1,,S2\n", &t, &err), 0);
    CU_ASSERT_NOT_EQUAL(load_topo("[kme A]\ncolour = red\n", &t, &err), 0);
    CU_ASSERT_NOT_EQUAL(load_topo("[link L]\nkmes = A,B,C\n", &t, &err), 0);
}

/* The lab's defaults and made-up ports for the topology in lab.topo. */
static void lab_settings(void)
{
    snprintf(lab.dir, sizeof lab.dir, "/labs/x");
    snprintf(lab.preset, sizeof lab.preset, "gys");
    lab.distance_km = 25;
    lab.time_scale = 20;
    lab.block_bytes = 4096;
    lab.skip = true;
    for (size_t k = 0; k < lab.topo.nkmes; k++) {
        lab.kme[k].peer_port = (uint16_t)(1000 + k);
        lab.kme[k].etsi014 = (uint16_t)(2000 + k);
        lab.kme[k].skip = (uint16_t)(3000 + k);
        lab.kme[k].device = (uint16_t)(4000 + k);
        lab.kme[k].admin = (uint16_t)(5000 + k);
        lab.kme[k].pid = (pid_t)(100 + k);
        snprintf(lab.kme[k].skip_identity, sizeof lab.kme[k].skip_identity, "SKIP_%s",
                 lab.topo.kmes[k].id);
        memset(lab.kme[k].psk_hex, 'a' + (int)k, 64);
    }
    lab.sim_port = 6000;
    lab.sim_pid = 200;
}

static void chain_lab(void)
{
    qk_err err;
    memset(&lab, 0, sizeof lab);
    CU_ASSERT_EQUAL_FATAL(load_topo(CHAIN, &lab.topo, &err), 0);
    lab_settings();
}

/* Hops from KME 0 to every KME over the links of t (breadth-first); SIZE_MAX when unreachable. */
static void hops_from_first(const qk_lab_topology *t, size_t *hops)
{
    size_t queue[QK_LAB_MAX_KMES], head = 0, tail = 0;
    for (size_t k = 0; k < t->nkmes; k++)
        hops[k] = SIZE_MAX;
    hops[0] = 0;
    queue[tail++] = 0;
    while (head < tail) {
        size_t k = queue[head++];
        for (size_t j = 0; j < t->nkmes; j++)
            if (hops[j] == SIZE_MAX && qk_lab_linked(t, k, j)) {
                hops[j] = hops[k] + 1;
                queue[tail++] = j;
            }
    }
}

/* Topology presets (qkd-lab up --preset NAME): each is a valid, connected network with 1-2 SAEs
 * per KME whose links all pass the model check with the lab's defaults; the shapes are those
 * documented; their names never name a link model preset (--preset takes both kinds). */
static void test_presets(void)
{
    static const struct {
        const char *name;
        size_t nkmes, nlinks, max_hops;
    } want[] = {{"chain", 5, 4, 4}, {"ring", 5, 5, 2}, {"star", 5, 4, 1}, {"mesh", 7, 10, 3}};
    size_t n = qk_lab_topology_preset_count();
    CU_ASSERT_EQUAL(n, sizeof want / sizeof want[0]);
    qk_model_params mp;
    for (size_t i = 0; i < n; i++) {
        const char *sum = NULL, *name = qk_lab_topology_preset_name(i, &sum);
        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_PTR_NOT_NULL(sum);
        CU_ASSERT_STRING_EQUAL(name, want[i].name);
        /* Disjoint from the link model presets. */
        CU_ASSERT_NOT_EQUAL(qk_model_preset(name, &mp), 0);
        memset(&lab, 0, sizeof lab);
        CU_ASSERT_EQUAL_FATAL(qk_lab_topology_preset(name, &lab.topo), 0);
        const qk_lab_topology *t = &lab.topo;
        qk_err err;
        qk_err_clear(&err);
        CU_ASSERT_EQUAL(qk_lab_topology_check(t, &err), 0);
        CU_ASSERT_EQUAL(t->nkmes, want[i].nkmes);
        CU_ASSERT_EQUAL(t->nlinks, want[i].nlinks);
        size_t hops[QK_LAB_MAX_KMES], far = 0;
        hops_from_first(t, hops);
        for (size_t k = 0; k < t->nkmes; k++) {
            CU_ASSERT(t->kmes[k].nsaes >= 1 && t->kmes[k].nsaes <= 2);
            CU_ASSERT(hops[k] != SIZE_MAX); /* connected */
            if (hops[k] != SIZE_MAX && hops[k] > far)
                far = hops[k];
        }
        CU_ASSERT_EQUAL(far, want[i].max_hops);
        lab_settings();
        CU_ASSERT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
        if (err.msg[0])
            fprintf(stderr, "%s: %s\n", name, err.msg);
    }
    for (const char *const *m = qk_model_preset_names(); *m; m++)
        CU_ASSERT_NOT_EQUAL(qk_lab_topology_preset(*m, &lab.topo), 0);
    CU_ASSERT_NOT_EQUAL(qk_lab_topology_preset("nosuch", &lab.topo), 0);
    CU_ASSERT_PTR_NULL(qk_lab_topology_preset_name(n, NULL));

    /* The chain: KME_A - ... - KME_E on the lab's link preset and distance; SAE_A1, SAE_A2 at
     * KME_A, SAE_E1, SAE_E2 at KME_E. KME_A's config lists SAE_E1 at KME_E and the three links
     * it is not on; KME_C's the two. */
    memset(&lab, 0, sizeof lab);
    CU_ASSERT_EQUAL_FATAL(qk_lab_topology_preset("chain", &lab.topo), 0);
    lab_settings();
    CU_ASSERT_STRING_EQUAL(lab.topo.links[3].id, "KME_D~KME_E");
    CU_ASSERT_STRING_EQUAL(lab.topo.kmes[4].saes[1], "SAE_E2");
    CU_ASSERT_STRING_EQUAL(lab.topo.kmes[2].saes[0], "SAE_C1");
    CU_ASSERT_STRING_EQUAL(qk_lab_link_preset(&lab, 0), "gys");
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_link_distance(&lab, 2), 25.0, 1e-12);
    char *a = render(0, 0), *c = render(0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[sae SAE_E1]\nkme = KME_E\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(a, "[topology]\nlink = KME_B KME_C\nlink = KME_C KME_D\nlink = KME_D KME_E\n\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "remote_system_ids = KME_B,KME_C,KME_D,KME_E\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "[topology]\nlink = KME_A KME_B\nlink = KME_D KME_E\n\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "[link KME_B]\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "[link KME_D]\n"));
    CU_ASSERT_PTR_NULL(strstr(c, "[link KME_A]\n"));
    free(a);
    free(c);

    /* The mesh: links of their own, at least three model presets and four distances. */
    memset(&lab, 0, sizeof lab);
    CU_ASSERT_EQUAL_FATAL(qk_lab_topology_preset("mesh", &lab.topo), 0);
    lab_settings();
    size_t npresets = 0, ndist = 0;
    for (size_t i = 0; i < lab.topo.nlinks; i++) {
        const qk_lab_link *l = &lab.topo.links[i];
        CU_ASSERT(l->preset[0] != '\0' && l->distance_km >= 0);
        bool new_preset = true, new_dist = true;
        for (size_t j = 0; j < i; j++) {
            new_preset &= strcmp(lab.topo.links[j].preset, l->preset) != 0;
            new_dist &= lab.topo.links[j].distance_km != l->distance_km;
        }
        npresets += new_preset;
        ndist += new_dist;
    }
    CU_ASSERT(npresets >= 3);
    CU_ASSERT(ndist >= 4);
}

/* qkd-lab up refuses, before starting anything, a link the model gives no key or one that cannot
 * fill a block within --wait, and says what to change. CHAIN: AB at 10 km, BC at the lab's
 * distance on gys. */
static void test_link_check(void)
{
    qk_err err;
    chain_lab();
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    CU_ASSERT_STRING_EQUAL(qk_lab_link_preset(&lab, 1), "gys");
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_link_distance(&lab, 0), 10.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_link_distance(&lab, 1), 25.0, 1e-12);

    /* The rate is the model's (decoy-vw, optimal mu, as qkd-sim runs a lab link) x time scale. */
    double bps = 0;
    qk_model_params p;
    qk_model_point pt;
    CU_ASSERT_EQUAL_FATAL(qk_model_preset("gys", &p), 0);
    CU_ASSERT_EQUAL_FATAL(qk_model_eval(&p, 25.0, QK_RATE_DECOY_VW, true, &pt), 0);
    CU_ASSERT_EQUAL(qk_lab_link_rate(&lab, 1, &bps, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(bps, 20.0 * pt.rate_bps, 1e-9 * bps);

    /* Beyond the abort distance: no key, the reach and the remedy named. */
    lab.distance_km = 200;
    qk_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "link BC yields no key"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "aborted"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "141.0 km"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "another --preset"));
    /* Between the zero-rate distance and the abort: zero rate, no abort. */
    lab.distance_km = 141.5;
    qk_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "zero secret-key rate"));

    /* Key, but too slow for --wait: 4096 bytes at 120 km take about 190 s at scale 20. */
    lab.distance_km = 120;
    qk_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "link BC cannot fill a block within --wait 120 s"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "smaller --block-bytes (")); /* a size that fits */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "--time-scale"));
    CU_ASSERT_EQUAL(qk_lab_links_check(&lab, 300, &err), 0); /* a longer wait */
    lab.block_bytes = 2048;
    CU_ASSERT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0); /* a smaller block */
    lab.block_bytes = 4096;
    lab.topo.links[1].time_scale = 100; /* the link's own settings count, not the lab's */
    CU_ASSERT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    lab.topo.links[1].time_scale = -1;
    lab.distance_km = 25;
    lab.topo.links[0].distance_km = 300;
    qk_err_clear(&err);
    CU_ASSERT_NOT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "link AB yields no key: preset gys at 300 km"));

    /* A topology naming an unknown preset is refused at its line. */
    static qk_lab_topology t;
    CU_ASSERT_NOT_EQUAL(load_topo("[kme A]\nsaes = S1\n[kme B]\nsaes = S2\n[link L]\nkmes = A,B\n"
                                  "preset = nosuch\n",
                                  &t, &err),
                        0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ":7:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown preset"));
}

static char *render(int which, size_t k)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int rc = which == 0 ? qk_lab_write_kmed_conf(&lab, k, f) : qk_lab_write_sim_conf(&lab, f);
    fclose(f);
    if (rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void test_configs(void)
{
    chain_lab();
    /* The middle KME links to both neighbours and knows every SAE. */
    char *b = render(0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "id = KME_B\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(b, "[link KME_A]\npeer_url = https://127.0.0.1:1000\nlink_id = AB\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(b, "[link KME_C]\npeer_url = https://127.0.0.1:1002\nlink_id = BC\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "[listener peer]\naddress = 127.0.0.1:1001\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "[sae SAE_C1]\nkme = KME_C\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "[skip_client SKIP_KME_B]\nremote_systems = KME_A,KME_C\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "cert = /labs/x/pki/peer-KME_B.crt\n"));
    CU_ASSERT_PTR_NULL(strstr(b, "psk_hex"));    /* the PSK stays in its own file */
    CU_ASSERT_PTR_NULL(strstr(b, "[topology]")); /* it is an end of every link */
    free(b);
    /* An end KME knows every SAE of the network with its home KME (the relay reaches SAE_C1
     * through KME_B), the link it is not on, and every KME as a SKIP remote system. */
    char *a = render(0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[sae SAE_C1]\nkme = KME_C\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[sae SAE_A1]\nkme = KME_A\n"));
    CU_ASSERT_PTR_NULL(strstr(a, "[link KME_C]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[sae SAE_B2]\nkme = KME_B\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[topology]\nlink = KME_B KME_C\n\n"));
    CU_ASSERT_PTR_NULL(strstr(a, "link = KME_A")); /* never its own link */
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[skip]\nremote_system_ids = KME_B,KME_C\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "[skip_client SKIP_KME_A]\nremote_systems = KME_B,KME_C\n"));
    free(a);
    char *c = render(0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "[topology]\nlink = KME_A KME_B\n\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "[sae SAE_A1]\nkme = KME_A\n"));
    CU_ASSERT_PTR_NULL(strstr(c, "[hot_path]")); /* the KMEs' defaults */
    free(c);
    lab.reply_at_commit = true; /* qkd-lab up --reply-at-commit */
    c = render(0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\n[hot_path]\nreply_at_commit = true\n"));
    free(c);
    lab.reply_at_commit = false;
    lab.time_ordered_ids = true; /* qkd-lab up --key-ids time-ordered */
    c = render(0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\n[store]\nkey_ids = time-ordered\n"));
    CU_ASSERT_PTR_NULL(strstr(c, "[hot_path]"));
    free(c);
    lab.time_ordered_ids = false;
    char *s = render(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "[link AB]\nkme_a_url = https://127.0.0.1:4000\n"
                                     "kme_b_url = https://127.0.0.1:4001\npreset = gys\n"
                                     "distance = 10\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "[link BC]\nkme_a_url = https://127.0.0.1:4001\n"
                                     "kme_b_url = https://127.0.0.1:4002\npreset = gys\n"
                                     "distance = 25\ntime_scale = 20\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "cert = /labs/x/pki/device.crt\n"));
    free(s);
}

static void test_manifest(void)
{
    chain_lab();
    char *j = qk_lab_manifest_json(&lab);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    cJSON *m = cJSON_Parse(j);
    free(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(m, "ca_cert")->valuestring, "/labs/x/pki/ca.crt");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(m, "sim_url")->valuestring, "http://127.0.0.1:6000");
    cJSON *kmes = cJSON_GetObjectItem(m, "kmes");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(kmes), 3);
    cJSON *b = cJSON_GetArrayItem(kmes, 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(b, "id")->valuestring, "KME_B");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(b, "etsi014_url")->valuestring,
                           "https://127.0.0.1:2001");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(b, "skip_url")->valuestring,
                           "https://127.0.0.1:3001");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(b, "admin_url")->valuestring,
                           "http://127.0.0.1:5001");
    cJSON *saes = cJSON_GetObjectItem(b, "saes");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(saes), 2);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(saes, 1), "cert")->valuestring,
                           "/labs/x/pki/sae-SAE_B2.crt");
    cJSON *sc = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "skip_clients"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(sc, "identity")->valuestring, "SKIP_KME_B");
    CU_ASSERT_EQUAL(strlen(cJSON_GetObjectItem(sc, "psk_hex")->valuestring), 64);
    cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "links"), 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(l, "id")->valuestring, "BC");
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "kmes"), 0)->valuestring,
                           "KME_B");
    CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "kmes"), 1)->valuestring,
                           "KME_C");
    cJSON_Delete(m);
    /* Without SKIP: skip_url is null and there are no SKIP clients. */
    lab.skip = false;
    j = qk_lab_manifest_json(&lab);
    m = j ? cJSON_Parse(j) : NULL;
    free(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    b = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "kmes"), 0);
    CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(b, "skip_url")));
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(b, "skip_clients")), 0);
    cJSON_Delete(m);
}

/* Link BC fed by ETSI 014 devices (qkd-lab up --device-lab): both ends get source = etsi014 with
 * their own device and SAE, the lower KME ID pulls, the simulator leaves BC out, the model check
 * skips it (300 km would yield no key), lab.json says what feeds it. */
static void test_device_fed(void)
{
    chain_lab();
    qk_lab_dev_link *d = &lab.dev[1];
    d->on = true;
    for (int e = 0; e < 2; e++) {
        snprintf(d->url[e], sizeof d->url[e], "https://127.0.0.1:%d", 7000 + e);
        snprintf(d->sae[e], sizeof d->sae[e], "DEV_%d", e);
        snprintf(d->cert[e], sizeof d->cert[e], "/dev/x/sae-%d.crt", e);
        snprintf(d->key[e], sizeof d->key[e], "/dev/x/sae-%d.key", e);
    }
    snprintf(lab.device_lab, sizeof lab.device_lab, "/dev/x");
    snprintf(lab.device_ca, sizeof lab.device_ca, "/dev/x/ca.crt");
    CU_ASSERT_EQUAL(qk_lab_sim_links(&lab), 1);
    CU_ASSERT_EQUAL(qk_lab_dev_puller(&lab, 1), 0); /* KME_B < KME_C */
    char *b = render(0, 1), *c = render(0, 2), *s = render(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "link_id = BC\ndevice_identity = qkd-sim\nsource = etsi014\n"
                                     "device_url = https://127.0.0.1:7000\n"
                                     "device_ca = /dev/x/ca.crt\ndevice_cert = /dev/x/sae-0.crt\n"
                                     "device_key = /dev/x/sae-0.key\ndevice_sae = DEV_0\n"
                                     "device_peer_sae = DEV_1\ndevice_pull = yes\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "device_url = https://127.0.0.1:7001\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "device_sae = DEV_1\ndevice_peer_sae = DEV_0\n"
                                     "device_pull = no\n"));
    /* The simulator-fed link AB is unchanged at KME_B. */
    CU_ASSERT_PTR_NOT_NULL(strstr(b, "link_id = AB\ndevice_identity = qkd-sim\n\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "[link AB]"));
    CU_ASSERT_PTR_NULL(strstr(s, "[link BC]"));
    free(b);
    free(c);
    free(s);
    qk_err err;
    qk_err_clear(&err);
    lab.distance_km = 300;
    lab.topo.links[0].distance_km = 10;
    CU_ASSERT_EQUAL(qk_lab_links_check(&lab, 120, &err), 0);
    char *j = qk_lab_manifest_json(&lab);
    cJSON *m = j ? cJSON_Parse(j) : NULL;
    free(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    cJSON *links = cJSON_GetObjectItem(m, "links");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetArrayItem(links, 0), "source")->valuestring,
                           "sim");
    cJSON *bc = cJSON_GetArrayItem(links, 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(bc, "source")->valuestring, "etsi014");
    cJSON *dev = cJSON_GetObjectItem(bc, "device");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(dev, "pull")->valuestring, "KME_B");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(dev, "ca")->valuestring, "/dev/x/ca.crt");
    cJSON *e1 = cJSON_GetArrayItem(cJSON_GetObjectItem(dev, "ends"), 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e1, "kme")->valuestring, "KME_C");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e1, "sae")->valuestring, "DEV_1");
    cJSON_Delete(m);
}

static void test_ports_and_metrics(void)
{
    const char *pf = "etsi014=4431\nskip=0\npeer=9443\nadmin=8080\n";
    CU_ASSERT_EQUAL(qk_lab_port_from_text(pf, "etsi014"), 4431);
    CU_ASSERT_EQUAL(qk_lab_port_from_text(pf, "admin"), 8080);
    CU_ASSERT_EQUAL(qk_lab_port_from_text(pf, "skip"), 0);
    CU_ASSERT_EQUAL(qk_lab_port_from_text(pf, "device"), 0);
    CU_ASSERT_EQUAL(qk_lab_port_from_text("admin=99999\n", "admin"), 0);
    CU_ASSERT_EQUAL(qk_lab_port_from_text("administrator=5\n", "admin"), 0);
    const char *m = "# HELP qkd_pool_bits x\n"
                    "qkd_pool_bits{link=\"AB\"} 1000\n"
                    "qkd_pool_bits{link=\"local\"} 24\n"
                    "qkd_pool_bits_other{link=\"AB\"} 5\n"
                    "qkd_blocks{link=\"AB\",state=\"burned\"} 3\n"
                    "qkd_blocks{link=\"AB\",state=\"confirmed\"} 7\n"
                    "qkd_peer_errors_total 2\n";
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_metric(m, "qkd_pool_bits", "link=\"AB\""), 1000, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_metric(m, "qkd_pool_bits", NULL), 1024, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_metric(m, "qkd_blocks", "state=\"burned\""), 3, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(qk_lab_metric(m, "qkd_peer_errors_total", NULL), 2, 1e-9);
    CU_ASSERT(qk_lab_metric(m, "qkd_pool_bits", "link=\"XY\"") < 0);
    CU_ASSERT(qk_lab_metric(m, "qkd_nothing", NULL) < 0);
}

/* qkd-lab status: a route of a KME's GET /routes as one line; anything not of the documented
 * shape is refused, not printed half. */
static void test_route_text(void)
{
    static const struct {
        const char *json, *want; /* want NULL: refused */
    } cases[] = {
        {"{\"to\":\"KME_C\",\"path\":[\"KME_A\",\"KME_B\",\"KME_C\"],\"bottleneck\":4096}",
         "KME_C: KME_A > KME_B > KME_C (2 hops, bottleneck 4096 bytes)"},
        {"{\"to\":\"KME_B\",\"path\":[\"KME_A\",\"KME_B\"],\"bottleneck\":0}",
         "KME_B: KME_A > KME_B (1 hop, bottleneck 0 bytes)"},
        {"{\"to\":\"KME_B\",\"path\":[\"KME_A\",\"KME_B\"]}", "KME_B: KME_A > KME_B (1 hop)"},
        {"{\"to\":\"KME_E\",\"path\":null,\"reason\":\"link KME_C~KME_D down\"}",
         "KME_E: no route (link KME_C~KME_D down)"},
        {"{\"to\":\"KME_E\",\"path\":null}", "KME_E: no route (no reason given)"},
        {"{\"to\":\"KME_A\",\"path\":[\"KME_A\"]}", NULL},   /* no hop */
        {"{\"to\":\"KME_B\",\"path\":[\"KME_A\",2]}", NULL}, /* not an ID */
        {"{\"to\":\"KME_B\",\"path\":[]}", NULL},            /* empty */
        {"{\"to\":\"KME_B\",\"path\":[\"A\",\"B\",\"C\",\"D\",\"E\",\"F\",\"G\",\"H\",\"I\",\"J\","
         "\"K\",\"L\",\"M\",\"N\",\"O\",\"P\",\"Q\"]}",
         NULL}, /* 16 hops: more than a relay takes */
    };
    char line[QK_LAB_ROUTE_TEXT_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *r = cJSON_Parse(cases[i].json);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        int rc = qk_lab_route_text(r, line, sizeof line);
        if (cases[i].want) {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_STRING_EQUAL(line, cases[i].want);
        } else {
            CU_ASSERT_NOT_EQUAL(rc, 0);
        }
        /* Too small a buffer: refused, never cut. */
        CU_ASSERT_NOT_EQUAL(qk_lab_route_text(r, line, 12), 0);
        cJSON_Delete(r);
    }
    /* The longest path fits QK_LAB_ROUTE_TEXT_MAX: 16 IDs of 64 characters (the lab's IDs). */
    cJSON *r = cJSON_CreateObject(), *path = cJSON_AddArrayToObject(r, "path");
    char id[65];
    memset(id, 'x', 64);
    id[64] = '\0';
    cJSON_AddStringToObject(r, "to", id);
    for (int i = 0; i < 16; i++)
        cJSON_AddItemToArray(path, cJSON_CreateString(id));
    cJSON_AddNumberToObject(r, "bottleneck", 1e15);
    CU_ASSERT_EQUAL(qk_lab_route_text(r, line, sizeof line), 0);
    cJSON_Delete(r);
}

int suite_sim_lab(void)
{
    CU_pSuite s = CU_add_suite("sim_lab", setup, teardown);
    if (!s || !CU_add_test(s, "topology", test_topology) ||
        !CU_add_test(s, "configs", test_configs) ||
        !CU_add_test(s, "topology presets", test_presets) ||
        !CU_add_test(s, "status: route lines", test_route_text) ||
        !CU_add_test(s, "link check against the model", test_link_check) ||
        !CU_add_test(s, "manifest", test_manifest) ||
        !CU_add_test(s, "device-fed link", test_device_fed) ||
        !CU_add_test(s, "ports and metrics", test_ports_and_metrics))
        return -1;
    return 0;
}
