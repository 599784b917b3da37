/* lab_presets.c - topology presets of qkd-lab up --preset NAME (docs/lab.md, "Topology
 * presets"): networks of several KMEs for trusted-node key relay (docs/adr/0004-key-relay.md).
 * KMEs are KME_A, KME_B, ... with SAE_A1 (and SAE_A2) at KME_A, and so on; link IDs are
 * "KME_X~KME_Y" as in the default lab. The first and the last KME get two SAEs, the others one.
 * Pure data and logic: no I/O. */
#include <stdio.h>
#include <string.h>

#include "lab_topology.h"

/* One link of a preset: two KME indexes, and its own model preset and distance ("" and < 0:
 * the lab's --link-preset and --distance). */
typedef struct {
    unsigned char a, b;
    const char *preset;
    double km;
} preset_link;

typedef struct {
    const char *name, *summary;
    size_t nkmes;
    const preset_link *links;
    size_t nlinks;
} topo_preset;

#define DEF(a, b)                                                                                  \
    {                                                                                              \
        a, b, "", -1                                                                               \
    }

/* A - B - C - D - E */
static const preset_link CHAIN[] = {DEF(0, 1), DEF(1, 2), DEF(2, 3), DEF(3, 4)};
/* A - B - C - D - E - A */
static const preset_link RING[] = {DEF(0, 1), DEF(1, 2), DEF(2, 3), DEF(3, 4), DEF(4, 0)};
/* hub A, leaves B C D E */
static const preset_link STAR[] = {DEF(0, 1), DEF(0, 2), DEF(0, 3), DEF(0, 4)};
/* Ten metro and long-haul links of every model preset (docs/sim-model.md), each at a distance
 * where it yields between about 5 and 120 kbit/s at the default time scale 20 (qkd-sim model
 * --preset P --distance KM) and fills a 4096-byte block within 7 s:
 *
 *       B ---- D ---- F
 *      /|      |    / |
 *     A |      |   /  |
 *      \|      |  /   |
 *       C ---- E ---- G
 */
static const preset_link MESH[] = {
    {0, 1, "gys", 10},            /* A-B: 59 kbit/s */
    {0, 2, "gys", 25},            /* A-C: 28 kbit/s */
    {1, 2, "toshiba-metro", 170}, /* B-C: 111 kbit/s */
    {1, 3, "gys", 40},            /* B-D: 14 kbit/s */
    {2, 4, "lim2014", 160},       /* C-E: 120 kbit/s */
    {3, 4, "gys", 60},            /* D-E: 5.1 kbit/s */
    {3, 5, "snspd-metro", 240},   /* D-F: 83 kbit/s */
    {4, 5, "gys", 50},            /* E-F: 8.4 kbit/s */
    {4, 6, "gys", 30},            /* E-G: 22 kbit/s */
    {5, 6, "toshiba-metro", 180}, /* F-G: 49 kbit/s */
};

#define N(x) (sizeof(x) / sizeof((x)[0]))

static const topo_preset PRESETS[] = {
    {"chain", "5 KMEs in a line, KME_A ... KME_E (4 links)", 5, CHAIN, N(CHAIN)},
    {"ring", "5 KMEs in a ring, KME_A ... KME_E and back to KME_A (5 links)", 5, RING, N(RING)},
    {"star", "hub KME_A and 4 leaves KME_B ... KME_E (4 links)", 5, STAR, N(STAR)},
    {"mesh", "7 KMEs KME_A ... KME_G, 10 links with their own model presets and distances", 7, MESH,
     N(MESH)},
};

size_t qk_lab_topology_preset_count(void)
{
    return N(PRESETS);
}

const char *qk_lab_topology_preset_name(size_t i, const char **summary)
{
    if (i >= N(PRESETS))
        return NULL;
    if (summary)
        *summary = PRESETS[i].summary;
    return PRESETS[i].name;
}

static void kme_id(size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "KME_%c", (char)('A' + i));
}

int qk_lab_topology_preset(const char *name, qk_lab_topology *t)
{
    const topo_preset *p = NULL;
    for (size_t i = 0; i < N(PRESETS) && !p; i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            p = &PRESETS[i];
    if (!p || p->nkmes > QK_LAB_MAX_KMES || p->nlinks > QK_LAB_MAX_LINKS)
        return -1;
    memset(t, 0, sizeof *t);
    for (size_t k = 0; k < p->nkmes; k++) {
        qk_lab_kme *km = &t->kmes[t->nkmes++];
        char c = (char)('A' + k);
        kme_id(k, km->id, sizeof km->id);
        km->nsaes = (k == 0 || k + 1 == p->nkmes) ? 2 : 1;
        for (size_t s = 0; s < km->nsaes; s++)
            snprintf(km->saes[s], sizeof km->saes[s], "SAE_%c%zu", c, s + 1);
    }
    for (size_t i = 0; i < p->nlinks; i++) {
        const preset_link *pl = &p->links[i];
        qk_lab_link *l = &t->links[t->nlinks++];
        l->kme[0] = pl->a;
        l->kme[1] = pl->b;
        char a[8], b[8];
        kme_id(pl->a, a, sizeof a);
        kme_id(pl->b, b, sizeof b);
        snprintf(l->id, sizeof l->id, "%s~%s", a, b);
        snprintf(l->preset, sizeof l->preset, "%s", pl->preset);
        l->distance_km = pl->km;
    }
    return 0;
}
