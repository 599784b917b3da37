/* lab_manifest.c - DIR/lab.json: everything a client needs to use the lab (docs/lab.md). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "json_util.h"
#include "lab.h"

static cJSON *url_or_null(uint16_t port, const char *scheme)
{
    if (!port)
        return cJSON_CreateNull();
    char u[64];
    snprintf(u, sizeof u, "%s://127.0.0.1:%u", scheme, (unsigned)port);
    return cJSON_CreateString(u);
}

static bool add(cJSON *o, const char *k, cJSON *v)
{
    if (!v)
        return false;
    if (!cJSON_AddItemToObject(o, k, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

/* o[k] = DIR/<pre><name><suf> */
static bool add_path(const qk_lab *lab, cJSON *o, const char *k, const char *pre, const char *name,
                     const char *suf)
{
    char p[QK_LAB_PATH_MAX];
    return qk_lab_path(lab, p, "%s%s%s", pre, name, suf) == 0 && cJSON_AddStringToObject(o, k, p);
}

static bool add_kme(const qk_lab *lab, size_t k, cJSON *arr)
{
    const qk_lab_kme *km = &lab->topo.kmes[k];
    const qk_lab_kme_rt *rt = &lab->kme[k];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o))
        return false;
    bool ok = cJSON_AddStringToObject(o, "id", km->id) &&
              add(o, "etsi014_url", url_or_null(rt->etsi014, "https")) &&
              add(o, "skip_url", url_or_null(lab->skip ? rt->skip : 0, "https")) &&
              add(o, "admin_url", url_or_null(rt->admin, "http")) &&
              add(o, "device_url", url_or_null(rt->device, "https")) &&
              add(o, "peer_url", url_or_null(rt->peer_port, "https")) &&
              cJSON_AddNumberToObject(o, "pid", (double)rt->pid) &&
              add_path(lab, o, "config", "", km->id, "/kmed.conf") &&
              add_path(lab, o, "log", "", km->id, "/kmed.log");
    cJSON *saes = cJSON_AddArrayToObject(o, "saes");
    ok = ok && saes;
    for (size_t s = 0; ok && s < km->nsaes; s++) {
        cJSON *x = cJSON_CreateObject();
        ok = x && cJSON_AddItemToArray(saes, x) && cJSON_AddStringToObject(x, "id", km->saes[s]) &&
             add_path(lab, x, "cert", "pki/sae-", km->saes[s], ".crt") &&
             add_path(lab, x, "key", "pki/sae-", km->saes[s], ".key");
    }
    cJSON *sc = cJSON_AddArrayToObject(o, "skip_clients");
    ok = ok && sc;
    if (ok && lab->skip) {
        cJSON *x = cJSON_CreateObject();
        ok = x && cJSON_AddItemToArray(sc, x) &&
             cJSON_AddStringToObject(x, "identity", rt->skip_identity) &&
             cJSON_AddStringToObject(x, "psk_hex", rt->psk_hex);
    }
    return ok;
}

/* "source": "sim", or "etsi014" with "device": {"lab", "ca", "pull": KME ID,
 * "ends": [{"kme", "url", "sae"}, ...]} (docs/lab.md, "Device-fed links"). */
static bool add_source(const qk_lab *lab, size_t i, cJSON *x)
{
    const qk_lab_dev_link *d = &lab->dev[i];
    if (!d->on)
        return cJSON_AddStringToObject(x, "source", "sim") != NULL;
    const qk_lab_link *l = &lab->topo.links[i];
    cJSON *dev = cJSON_CreateObject();
    bool ok =
        cJSON_AddStringToObject(x, "source", "etsi014") && add(x, "device", dev) &&
        cJSON_AddStringToObject(dev, "lab", lab->device_lab) &&
        cJSON_AddStringToObject(dev, "ca", lab->device_ca) &&
        cJSON_AddStringToObject(dev, "pull", lab->topo.kmes[l->kme[qk_lab_dev_puller(lab, i)]].id);
    cJSON *ends = ok ? cJSON_AddArrayToObject(dev, "ends") : NULL;
    ok = ends != NULL;
    for (int e = 0; ok && e < 2; e++) {
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(ends, o) &&
             cJSON_AddStringToObject(o, "kme", lab->topo.kmes[l->kme[e]].id) &&
             cJSON_AddStringToObject(o, "url", d->url[e]) &&
             cJSON_AddStringToObject(o, "sae", d->sae[e]);
    }
    return ok;
}

char *qk_lab_manifest_json(const qk_lab *lab)
{
    cJSON *m = cJSON_CreateObject();
    if (!m)
        return NULL;
    char ca[QK_LAB_PATH_MAX];
    bool ok = qk_lab_path(lab, ca, "pki/ca.crt") == 0 && cJSON_AddNumberToObject(m, "version", 1) &&
              cJSON_AddStringToObject(m, "dir", lab->dir) &&
              cJSON_AddStringToObject(m, "ca_cert", ca);
    cJSON *kmes = cJSON_AddArrayToObject(m, "kmes");
    ok = ok && kmes;
    for (size_t k = 0; ok && k < lab->topo.nkmes; k++)
        ok = add_kme(lab, k, kmes);
    cJSON *links = cJSON_AddArrayToObject(m, "links");
    ok = ok && links;
    for (size_t i = 0; ok && i < lab->topo.nlinks; i++) {
        const qk_lab_link *l = &lab->topo.links[i];
        cJSON *x = cJSON_CreateObject();
        ok = x && cJSON_AddItemToArray(links, x) && cJSON_AddStringToObject(x, "id", l->id);
        cJSON *ends = ok ? cJSON_AddArrayToObject(x, "kmes") : NULL;
        ok = ends != NULL;
        for (int e = 0; ok && e < 2; e++) {
            cJSON *s = cJSON_CreateString(lab->topo.kmes[l->kme[e]].id);
            ok = s && cJSON_AddItemToArray(ends, s);
        }
        ok = ok && cJSON_AddStringToObject(x, "preset", l->preset[0] ? l->preset : lab->preset) &&
             cJSON_AddNumberToObject(x, "distance_km",
                                     l->distance_km >= 0 ? l->distance_km : lab->distance_km) &&
             cJSON_AddNumberToObject(x, "time_scale",
                                     l->time_scale > 0 ? l->time_scale : lab->time_scale) &&
             add_source(lab, i, x);
    }
    ok = ok && add(m, "sim_url", url_or_null(lab->sim_port, "http")) &&
         cJSON_AddNumberToObject(m, "sim_pid", (double)lab->sim_pid) &&
         add(m, "dashboard_url", url_or_null(lab->dash_port, "http"));
    char *s = ok ? qk_json_print(m) : NULL;
    cJSON_Delete(m);
    return s;
}
