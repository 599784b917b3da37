/* lab_topology.c - default and file-described lab topologies. */
#include "lab_topology.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ini_config.h"
#include "lab.h"
#include "model.h"

static bool valid_id(const char *s, bool tilde)
{
    return qk_id_valid(s, QK_LAB_ID_MAX - 1, tilde ? "~" : NULL);
}

static void add_kme(qk_lab_topology *t, const char *id, const char *s1, const char *s2)
{
    qk_lab_kme *k = &t->kmes[t->nkmes++];
    memset(k, 0, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->saes[0], sizeof k->saes[0], "%s", s1);
    snprintf(k->saes[1], sizeof k->saes[1], "%s", s2);
    k->nsaes = 2;
}

void qk_lab_topology_default(qk_lab_topology *t)
{
    memset(t, 0, sizeof *t);
    add_kme(t, "KME_A", "SAE_A1", "SAE_A2");
    add_kme(t, "KME_B", "SAE_B1", "SAE_B2");
    qk_lab_link *l = &t->links[t->nlinks++];
    snprintf(l->id, sizeof l->id, "KME_A~KME_B");
    l->kme[0] = 0;
    l->kme[1] = 1;
    l->distance_km = -1;
}

int qk_lab_kme_index(const qk_lab_topology *t, const char *id)
{
    for (size_t i = 0; i < t->nkmes; i++)
        if (strcmp(t->kmes[i].id, id) == 0)
            return (int)i;
    return -1;
}

bool qk_lab_linked(const qk_lab_topology *t, size_t i, size_t j)
{
    for (size_t k = 0; k < t->nlinks; k++) {
        const qk_lab_link *l = &t->links[k];
        if ((l->kme[0] == i && l->kme[1] == j) || (l->kme[0] == j && l->kme[1] == i))
            return true;
    }
    return false;
}

/* Split a comma list into at most max IDs. Returns the count or -1. */
typedef struct {
    char (*out)[QK_LAB_ID_MAX];
    size_t n;
} id_acc;

static int add_id(void *user, const char *a, size_t w, qk_err *err)
{
    id_acc *acc = user;
    if (w >= QK_LAB_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "expected a comma-separated list of IDs");
    char *id = acc->out[acc->n];
    memcpy(id, a, w);
    id[w] = '\0';
    if (!valid_id(id, false))
        return qk_err_set(err, QK_EINVAL, "IDs are 1..64 chars [A-Za-z0-9_.-]");
    acc->n++;
    return 0;
}

static int split_ids(const char *v, char out[][QK_LAB_ID_MAX], size_t max, qk_err *err)
{
    id_acc acc = {out, 0};
    int rc = qk_parse_list(v, max, add_id, &acc, err);
    if (rc == QK_EINVAL && strcmp(err->msg, "empty entry in the list") == 0)
        qk_err_set(err, QK_EINVAL, "expected a comma-separated list of IDs");
    else if (rc == QK_ELIMIT)
        qk_err_set(err, QK_ELIMIT, "at most %zu entries", max);
    return rc == 0 ? (int)acc.n : -1;
}

typedef struct {
    qk_lab_topology *t;
    char pending[QK_LAB_MAX_LINKS][2][QK_LAB_ID_MAX]; /* link ends by name until the end */
    bool has_kmes[QK_LAB_MAX_LINKS];
} load_ctx;

static int on_key(void *user, const char *section, const char *key, const char *v, qk_err *err)
{
    load_ctx *c = user;
    qk_lab_topology *t = c->t;
    char kind[16], name[QK_LAB_ID_MAX];
    if (qk_ini_section_split(section, kind, sizeof kind, name, sizeof name) != 0 || !name[0])
        return qk_err_set(err, QK_EINVAL, "sections are [kme ID] and [link ID]");
    if (strcmp(kind, "kme") == 0) {
        if (!valid_id(name, false))
            return qk_err_set(err, QK_EINVAL, "KME IDs are 1..64 chars [A-Za-z0-9_.-]");
        int i = qk_lab_kme_index(t, name);
        if (i < 0) {
            if (t->nkmes >= QK_LAB_MAX_KMES)
                return qk_err_set(err, QK_ELIMIT, "at most %d KMEs", QK_LAB_MAX_KMES);
            i = (int)t->nkmes++;
            snprintf(t->kmes[i].id, sizeof t->kmes[i].id, "%s", name);
        }
        if (strcmp(key, "saes") != 0)
            return qk_err_set(err, QK_EINVAL, "unknown key (saes)");
        int n = split_ids(v, t->kmes[i].saes, QK_LAB_MAX_SAES, err);
        if (n < 0)
            return QK_EINVAL;
        t->kmes[i].nsaes = (size_t)n;
        return 0;
    }
    if (strcmp(kind, "link") != 0)
        return qk_err_set(err, QK_EINVAL, "sections are [kme ID] and [link ID]");
    if (!valid_id(name, true))
        return qk_err_set(err, QK_EINVAL, "link IDs are 1..64 chars [A-Za-z0-9_.~-]");
    size_t i = 0;
    while (i < t->nlinks && strcmp(t->links[i].id, name) != 0)
        i++;
    if (i == t->nlinks) {
        if (t->nlinks >= QK_LAB_MAX_LINKS)
            return qk_err_set(err, QK_ELIMIT, "at most %d links", QK_LAB_MAX_LINKS);
        t->nlinks++;
        memset(&t->links[i], 0, sizeof t->links[i]);
        snprintf(t->links[i].id, sizeof t->links[i].id, "%s", name);
        t->links[i].distance_km = -1;
    }
    qk_lab_link *l = &t->links[i];
    if (strcmp(key, "kmes") == 0) {
        char ids[3][QK_LAB_ID_MAX];
        int n = split_ids(v, ids, 3, err);
        if (n != 2)
            return n < 0 ? QK_EINVAL : qk_err_set(err, QK_EINVAL, "a link joins two KMEs");
        memcpy(c->pending[i], ids, sizeof c->pending[i]);
        c->has_kmes[i] = true;
        return 0;
    }
    if (strcmp(key, "preset") == 0) {
        qk_model_params p;
        if (qk_model_preset(v, &p) != 0)
            return qk_err_set(err, QK_EINVAL, "unknown preset (qkd-sim model --help lists them)");
        return qk_parse_str(v, l->preset, sizeof l->preset, err);
    }
    if (strcmp(key, "distance") == 0)
        return qk_parse_double(v, 0.0, 1000.0, &l->distance_km, err);
    if (strcmp(key, "time_scale") == 0)
        return qk_parse_double(v, 1e-6, 1e6, &l->time_scale, err);
    return qk_err_set(err, QK_EINVAL, "unknown key (kmes, preset, distance, time_scale)");
}

int qk_lab_topology_load(const char *path, qk_lab_topology *t, qk_err *err)
{
    memset(t, 0, sizeof *t);
    static load_ctx c; /* large; the lab is single-threaded */
    memset(&c, 0, sizeof c);
    c.t = t;
    int rc = qk_ini_load(path, on_key, &c, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < t->nlinks; i++) {
        if (!c.has_kmes[i])
            return qk_err_set(err, QK_EINVAL, "%s: [link %s]: kmes required", path, t->links[i].id);
        for (int e = 0; e < 2; e++) {
            int k = qk_lab_kme_index(t, c.pending[i][e]);
            if (k < 0)
                return qk_err_set(err, QK_EINVAL, "%s: [link %s]: unknown KME %s", path,
                                  t->links[i].id, c.pending[i][e]);
            t->links[i].kme[e] = (size_t)k;
        }
    }
    rc = qk_lab_topology_check(t, err);
    return rc ? qk_err_prefix(err, "%s", path) : 0;
}

int qk_lab_topology_check(const qk_lab_topology *t, qk_err *err)
{
    if (t->nkmes < 2 || t->nlinks < 1)
        return qk_err_set(err, QK_EINVAL, "a lab needs at least two KMEs and one link");
    for (size_t i = 0; i < t->nkmes; i++) {
        const qk_lab_kme *k = &t->kmes[i];
        bool linked = false;
        for (size_t j = 0; j < t->nlinks; j++)
            linked |= t->links[j].kme[0] == i || t->links[j].kme[1] == i;
        if (!linked)
            return qk_err_set(err, QK_EINVAL, "KME %s has no link", k->id);
        /* One identity, one role (docs/qkd-kmed.md "Roles"): no SAE or KME is named like the
         * device (every link's device_identity) and no SAE like a KME. */
        if (strcmp(k->id, QK_LAB_DEVICE_CN) == 0)
            return qk_err_set(err, QK_EINVAL,
                              "KME %s has the identity of the device (" QK_LAB_DEVICE_CN ")",
                              k->id);
        for (size_t s = 0; s < k->nsaes; s++) {
            if (qk_lab_kme_index(t, k->saes[s]) >= 0)
                return qk_err_set(err, QK_EINVAL, "SAE %s has the ID of a KME", k->saes[s]);
            if (strcmp(k->saes[s], QK_LAB_DEVICE_CN) == 0)
                return qk_err_set(err, QK_EINVAL,
                                  "SAE %s has the identity of the device (" QK_LAB_DEVICE_CN ")",
                                  k->saes[s]);
            for (size_t i2 = 0; i2 < t->nkmes; i2++)
                for (size_t s2 = 0; s2 < t->kmes[i2].nsaes; s2++)
                    if ((i2 != i || s2 != s) && strcmp(k->saes[s], t->kmes[i2].saes[s2]) == 0)
                        return qk_err_set(err, QK_EINVAL, "SAE %s is listed twice", k->saes[s]);
        }
    }
    for (size_t j = 0; j < t->nlinks; j++) {
        const qk_lab_link *l = &t->links[j];
        if (l->kme[0] >= t->nkmes || l->kme[1] >= t->nkmes || l->kme[0] == l->kme[1])
            return qk_err_set(err, QK_EINVAL, "link %s must join two different KMEs", l->id);
        if (strcmp(l->id, "local") == 0)
            return qk_err_set(err, QK_EINVAL, "link ID local is reserved");
        for (size_t j2 = 0; j2 < j; j2++) {
            const qk_lab_link *o = &t->links[j2];
            if (strcmp(o->id, l->id) == 0)
                return qk_err_set(err, QK_EINVAL, "link ID %s used twice", l->id);
            if ((o->kme[0] == l->kme[0] && o->kme[1] == l->kme[1]) ||
                (o->kme[0] == l->kme[1] && o->kme[1] == l->kme[0]))
                return qk_err_set(err, QK_EINVAL, "links %s and %s join the same KMEs", o->id,
                                  l->id);
        }
    }
    return 0;
}

const char *qk_lab_link_preset(const qk_lab *lab, size_t i)
{
    const qk_lab_link *l = &lab->topo.links[i];
    return l->preset[0] ? l->preset : lab->preset;
}

double qk_lab_link_distance(const qk_lab *lab, size_t i)
{
    const qk_lab_link *l = &lab->topo.links[i];
    return l->distance_km >= 0 ? l->distance_km : lab->distance_km;
}

double qk_lab_link_time_scale(const qk_lab *lab, size_t i)
{
    const qk_lab_link *l = &lab->topo.links[i];
    return l->time_scale > 0 ? l->time_scale : lab->time_scale;
}

/* The smallest block qkd-lab up --block-bytes accepts (the KME needs more than one key). */
#define MIN_BLOCK_BYTES 1100.0

int qk_lab_link_rate(const qk_lab *lab, size_t i, double *bps, qk_err *err)
{
    const qk_lab_link *l = &lab->topo.links[i];
    const char *preset = qk_lab_link_preset(lab, i);
    double km = qk_lab_link_distance(lab, i);
    qk_model_params p;
    qk_model_point pt;
    if (qk_model_preset(preset, &p) != 0)
        return qk_err_set(err, QK_EINVAL, "link %s: unknown preset %s", l->id, preset);
    if (qk_model_eval(&p, km, QK_RATE_KIND_DEFAULT, true, &pt) != 0)
        return qk_err_set(err, QK_EINVAL, "link %s: the model rejects preset %s at %g km", l->id,
                          preset, km);
    if (pt.aborted || !(pt.rate_bps > 0)) {
        double max_km = qk_model_max_distance(&p, QK_RATE_KIND_DEFAULT, true);
        char why[96];
        if (pt.aborted)
            snprintf(why, sizeof why, "aborted: QBER %.1f %% above the %.1f %% threshold",
                     100.0 * pt.qber, 100.0 * p.qber_abort);
        else
            snprintf(why, sizeof why, "zero secret-key rate");
        return qk_err_set(err, QK_EINVAL,
                          "link %s yields no key: preset %s at %g km (%s; the preset reaches "
                          "%.1f km). Use --distance (or the link's distance) below "
                          "%.1f km or another --preset (qkd-sim model --preset %s)",
                          l->id, preset, km, why, max_km, max_km, preset);
    }
    *bps = pt.rate_bps * qk_lab_link_time_scale(lab, i);
    return 0;
}

int qk_lab_links_check(const qk_lab *lab, unsigned wait_s, qk_err *err)
{
    for (size_t i = 0; i < lab->topo.nlinks; i++) {
        double bps;
        if (lab->dev[i].on)
            continue; /* fed by its devices, not by the model */
        int rc = qk_lab_link_rate(lab, i, &bps, err);
        if (rc != 0)
            return rc;
        double block_bits = 8.0 * (double)lab->block_bytes, need_s = block_bits / bps;
        if (need_s <= (double)wait_s)
            continue;
        double fit = floor(bps * wait_s / 8.0);
        char smaller[64] = "";
        if (fit >= MIN_BLOCK_BYTES)
            snprintf(smaller, sizeof smaller, " (%.0f or less)", fit);
        return qk_err_set(err, QK_EINVAL,
                          "link %s cannot fill a block within --wait %u s: %llu bytes take %.0f s "
                          "at %.4g bit/s (preset %s, %g km, time scale %g). Use a shorter "
                          "distance, another --preset, a smaller --block-bytes%s, a larger "
                          "--time-scale or --wait %.0f or more",
                          lab->topo.links[i].id, wait_s, (unsigned long long)lab->block_bytes,
                          ceil(need_s), bps, qk_lab_link_preset(lab, i),
                          qk_lab_link_distance(lab, i), qk_lab_link_time_scale(lab, i), smaller,
                          ceil(need_s));
    }
    return 0;
}
