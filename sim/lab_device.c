/* lab_device.c - qkd-lab up --device-lab DIR: every link of this lab is fed by the ETSI GS QKD
 * 014 interfaces of the KMEs of another (running) lab, read from DIR/lab.json (docs/lab.md,
 * "Device-fed links"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "lab.h"
#include "secbuf.h"

#define DEVICE_MANIFEST_MAX (1u << 20)

static const cJSON *find_kme(const cJSON *kmes, const char *id)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, kmes)
    {
        const char *kid = qk_json_str_or(k, "id", NULL);
        if (kid && strcmp(kid, id) == 0)
            return k;
    }
    return NULL;
}

/* True when the device lab has a link between KMEs a and b. */
static bool has_link(const cJSON *links, const char *a, const char *b)
{
    const cJSON *l;
    cJSON_ArrayForEach(l, links)
    {
        const cJSON *ends = cJSON_GetObjectItemCaseSensitive(l, "kmes");
        const cJSON *e0 = cJSON_GetArrayItem(ends, 0), *e1 = cJSON_GetArrayItem(ends, 1);
        if (!cJSON_IsString(e0) || !cJSON_IsString(e1))
            continue;
        if ((!strcmp(e0->valuestring, a) && !strcmp(e1->valuestring, b)) ||
            (!strcmp(e0->valuestring, b) && !strcmp(e1->valuestring, a)))
            return true;
    }
    return false;
}

static int copy(char *out, size_t cap, const char *s)
{
    return s && strlen(s) < cap ? (memcpy(out, s, strlen(s) + 1), 0) : -1;
}

/* End e of link i: the device KME with the same ID, its ETSI 014 URL and its first SAE. */
static int fill_end(qk_lab *lab, size_t i, int e, const cJSON *kmes, const char *mf, qk_err *err)
{
    const char *id = lab->topo.kmes[lab->topo.links[i].kme[e]].id;
    qk_lab_dev_link *d = &lab->dev[i];
    const cJSON *k = find_kme(kmes, id);
    if (!k)
        return qk_err_set(err, QK_EINVAL, "%s: no KME %s (link %s)", mf, id, lab->topo.links[i].id);
    const cJSON *sae = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(k, "saes"), 0);
    if (copy(d->url[e], sizeof d->url[e], qk_json_str_or(k, "etsi014_url", NULL)) != 0)
        return qk_err_set(err, QK_EINVAL, "%s: KME %s has no etsi014_url", mf, id);
    if (copy(d->sae[e], sizeof d->sae[e], qk_json_str_or(sae, "id", NULL)) != 0 ||
        copy(d->cert[e], sizeof d->cert[e], qk_json_str_or(sae, "cert", NULL)) != 0 ||
        copy(d->key[e], sizeof d->key[e], qk_json_str_or(sae, "key", NULL)) != 0)
        return qk_err_set(err, QK_EINVAL, "%s: KME %s has no SAE (id, cert, key)", mf, id);
    return 0;
}

int qk_lab_device_lab_load(qk_lab *lab, const char *dir, qk_err *err)
{
    char abs[PATH_MAX], mf[QK_LAB_PATH_MAX];
    if (!realpath(dir, abs))
        return qk_err_set(err, QK_EINVAL, "--device-lab %s: %s", dir, strerror(errno));
    if (copy(lab->device_lab, sizeof lab->device_lab, abs) != 0 ||
        snprintf(mf, sizeof mf, "%s/lab.json", abs) >= (int)sizeof mf)
        return qk_err_set(err, QK_EINVAL, "--device-lab %s: path too long", dir);
    size_t len = 0;
    uint8_t *buf = qk_secure_read_file(mf, DEVICE_MANIFEST_MAX, 1, &len);
    if (!buf)
        return qk_err_set(err, QK_EINVAL, "%s: %s (is a lab up there?)", mf, strerror(errno));
    cJSON *m = qk_json_parse((const char *)buf, len, DEVICE_MANIFEST_MAX, err);
    qk_secure_free(buf); /* lab.json holds SKIP PSKs */
    if (!m)
        return qk_err_prefix(err, "%s", mf);
    const cJSON *kmes = cJSON_GetObjectItemCaseSensitive(m, "kmes");
    const cJSON *links = cJSON_GetObjectItemCaseSensitive(m, "links");
    int rc = 0;
    if (copy(lab->device_ca, sizeof lab->device_ca, qk_json_str_or(m, "ca_cert", NULL)) != 0 ||
        !cJSON_IsArray(kmes) || !cJSON_IsArray(links))
        rc = qk_err_set(err, QK_EINVAL, "%s: no ca_cert, kmes or links", mf);
    for (size_t i = 0; rc == 0 && i < lab->topo.nlinks; i++) {
        const qk_lab_link *l = &lab->topo.links[i];
        const char *a = lab->topo.kmes[l->kme[0]].id, *b = lab->topo.kmes[l->kme[1]].id;
        if (!has_link(links, a, b))
            rc = qk_err_set(err, QK_EINVAL,
                            "%s: no link %s--%s to feed link %s (the device lab needs the same "
                            "KME IDs and a link between them)",
                            mf, a, b, l->id);
        for (int e = 0; rc == 0 && e < 2; e++)
            rc = fill_end(lab, i, e, kmes, mf, err);
        lab->dev[i].on = rc == 0;
    }
    cJSON_Delete(m);
    return rc;
}
