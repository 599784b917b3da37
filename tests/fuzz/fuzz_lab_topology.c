/* fuzz_lab_topology.c - libFuzzer target for the `qkd-lab up --topology FILE` parser
 * (sim/lab_topology.c on common/ini_config.c and libinih; the format is in docs/lab.md): every
 * input is a topology file. The INI loader only takes a path, so the input is written to an
 * anonymous memory file (fuzz_util.h: memfd_create, loaded through /proc/self/fd/N): no file
 * on disk, and the loader's own line reading is exercised too.
 *
 * Besides memory errors (ASan/UBSan) the target checks the parser's promises and aborts when
 * one is broken: a refused file has an error that names it; an accepted topology passes
 * qk_lab_topology_check again and keeps every rule of docs/lab.md (2..16 KMEs, 1..8 SAEs each,
 * 1..32 links, IDs 1..64 characters [A-Za-z0-9_.-] plus '~' in link IDs, every KME and SAE ID
 * unique, every KME on a link, a link joins two different KMEs, at most one link per pair,
 * distance and time_scale within their ranges), every string terminated within its buffer.
 * Build and run: `make fuzz`, then
 * `build-fuzz/fuzz_lab_topology -max_total_time=60 SCRATCH tests/fuzz/corpus/lab_topology`. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ini_config.h"
#include "lab_topology.h"

/* Larger inputs only repeat sections: 16 KMEs and 32 links fit in a few KiB. */
#define MAX_INPUT (64 * 1024)

static fuzz_memfile g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_memfile_open(&g_file, "topology.ini") == 0 ? 0 : 1;
}

static void check_accepted(const qk_lab_topology *t)
{
    qk_err err = {0};
    REQUIRE(qk_lab_topology_check(t, &err) == 0);
    REQUIRE(t->nkmes >= 2 && t->nkmes <= QK_LAB_MAX_KMES);
    REQUIRE(t->nlinks >= 1 && t->nlinks <= QK_LAB_MAX_LINKS);
    for (size_t i = 0; i < t->nkmes; i++) {
        const qk_lab_kme *k = &t->kmes[i];
        TERMINATED(k->id);
        REQUIRE(qk_id_valid(k->id, QK_LAB_ID_MAX - 1, NULL));
        REQUIRE(qk_lab_kme_index(t, k->id) == (int)i); /* KME IDs unique */
        REQUIRE(k->nsaes >= 1 && k->nsaes <= QK_LAB_MAX_SAES);
        for (size_t s = 0; s < k->nsaes; s++) {
            TERMINATED(k->saes[s]);
            REQUIRE(qk_id_valid(k->saes[s], QK_LAB_ID_MAX - 1, NULL));
            REQUIRE(qk_lab_kme_index(t, k->saes[s]) < 0);
            for (size_t i2 = 0; i2 <= i; i2++)
                for (size_t s2 = 0; s2 < (i2 == i ? s : t->kmes[i2].nsaes); s2++)
                    REQUIRE(strcmp(k->saes[s], t->kmes[i2].saes[s2]) != 0);
        }
        bool linked = false;
        for (size_t j = 0; j < t->nkmes; j++)
            linked |= j != i && qk_lab_linked(t, i, j);
        REQUIRE(linked);
    }
    for (size_t j = 0; j < t->nlinks; j++) {
        const qk_lab_link *l = &t->links[j];
        TERMINATED(l->id);
        TERMINATED(l->preset);
        REQUIRE(qk_id_valid(l->id, QK_LAB_ID_MAX - 1, "~") && strcmp(l->id, "local") != 0);
        REQUIRE(l->kme[0] < t->nkmes && l->kme[1] < t->nkmes && l->kme[0] != l->kme[1]);
        REQUIRE(l->distance_km == -1 || (l->distance_km >= 0 && l->distance_km <= 1000));
        REQUIRE(l->time_scale == 0 || (l->time_scale >= 1e-6 && l->time_scale <= 1e6));
        for (size_t j2 = 0; j2 < j; j2++) {
            const qk_lab_link *o = &t->links[j2];
            REQUIRE(strcmp(o->id, l->id) != 0);
            REQUIRE(!(o->kme[0] == l->kme[0] && o->kme[1] == l->kme[1]) &&
                    !(o->kme[0] == l->kme[1] && o->kme[1] == l->kme[0]));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT || fuzz_memfile_put(&g_file, data, size) != 0)
        return 0;
    static qk_lab_topology t; /* about 60 KiB */
    qk_err err = {0};
    int rc = qk_lab_topology_load(g_file.path, &t, &err);
    if (rc == 0) {
        check_accepted(&t);
    } else {
        REQUIRE(rc == QK_EINVAL || rc == QK_ENOMEM || rc == QK_EIO);
        TERMINATED(err.msg);
        REQUIRE(strncmp(err.msg, g_file.path, strlen(g_file.path)) ==
                0); /* the error names the file */
    }
    return 0;
}
