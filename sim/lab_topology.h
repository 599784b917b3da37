/* lab_topology.h - the lab's network: KMEs with their SAEs, and links between pairs of KMEs.
 * The default is KME_A--KME_B with SAE_A1, SAE_A2 at KME_A and SAE_B1, SAE_B2 at KME_B. A
 * topology file (INI, docs/lab.md) describes more:
 *   [kme KME_A]            saes = SAE_A1, SAE_A2
 *   [link KME_A~KME_B]     kmes = KME_A, KME_B     (optional: preset, distance, time_scale)
 * Pure logic: no I/O beyond reading the file. */
#ifndef QK_LAB_TOPOLOGY_H
#define QK_LAB_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

#include "qk_err.h"

#define QK_LAB_ID_MAX    65 /* IDs: 1..64 chars [A-Za-z0-9_.-] (link IDs may hold '~') */
#define QK_LAB_MAX_KMES  16
#define QK_LAB_MAX_SAES  8 /* per KME */
#define QK_LAB_MAX_LINKS 32

typedef struct {
    char id[QK_LAB_ID_MAX];
    char saes[QK_LAB_MAX_SAES][QK_LAB_ID_MAX];
    size_t nsaes;
} qk_lab_kme;

typedef struct {
    char id[QK_LAB_ID_MAX];
    size_t kme[2];      /* indexes into kmes[] */
    char preset[32];    /* "" = the lab's default */
    double distance_km; /* < 0 = the lab's default */
    double time_scale;  /* <= 0 = the lab's default */
} qk_lab_link;

typedef struct {
    qk_lab_kme kmes[QK_LAB_MAX_KMES];
    size_t nkmes;
    qk_lab_link links[QK_LAB_MAX_LINKS];
    size_t nlinks;
} qk_lab_topology;

void qk_lab_topology_default(qk_lab_topology *t);
/* Load a topology file and check it (qk_lab_topology_check). Errors name FILE:LINE. */
int qk_lab_topology_load(const char *path, qk_lab_topology *t, qk_err *err);
/* IDs unique across KMEs and SAEs, every KME has a link, a link joins two distinct known
 * KMEs, at most one link per pair, at least one link. */
int qk_lab_topology_check(const qk_lab_topology *t, qk_err *err);
/* Topology presets (qkd-lab up --preset NAME, sim/lab_presets.c): chain, ring, star, mesh. The
 * names never name a link model preset (qk_model_preset; test_sim_lab checks). */
size_t qk_lab_topology_preset_count(void);
/* The name of preset i (NULL past the end) and, when summary is not NULL, a one-line summary. */
const char *qk_lab_topology_preset_name(size_t i, const char **summary);
/* Fill t with preset name; -1 when there is no such preset. Links of the chain, ring and star
 * use the lab's --link-preset and --distance; the mesh's links have their own. */
int qk_lab_topology_preset(const char *name, qk_lab_topology *t);
/* Index of a KME by ID, or -1. */
int qk_lab_kme_index(const qk_lab_topology *t, const char *id);
/* True when KMEs i and j share a link. */
bool qk_lab_linked(const qk_lab_topology *t, size_t i, size_t j);

#endif
