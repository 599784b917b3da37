/* lab_manifest.c - DIR/lab.json as written by qkd-lab: CA, KMEs with their ETSI/SKIP/admin
 * URLs, SAE credentials and SKIP PSK clients, links, simulator URL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "codec.h"
#include "json_util.h"
#include "secbuf.h"

#define LAB_MAX_TEXT  (1024 * 1024)
#define LAB_MAX_ITEMS 256
#define LAB_PATH_MAX  4096

/* A string member copied into malloc'ed memory (1..LAB_PATH_MAX-1 bytes, no control chars).
 * Absent or null and not required: *out stays NULL. */
static int get_dup(const cJSON *obj, const char *ctx, const char *name, bool required, char **out,
                   qkc_error *e)
{
    *out = NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if ((!it || cJSON_IsNull(it)) && !required)
        return 0;
    char *buf = malloc(LAB_PATH_MAX);
    if (!buf)
        return qkc_fail(e, QKC_EINTERNAL, "out of memory");
    qkc_error sub = {0};
    int rc = qkc_get_text(obj, name, true, buf, LAB_PATH_MAX, &sub);
    if (rc != 0) {
        free(buf);
        return qkc_fail(e, (qkc_errclass)rc, "lab.json %s: %s", ctx, sub.msg);
    }
    *out = realloc(buf, strlen(buf) + 1);
    if (!*out)
        *out = buf;
    return 0;
}

static int get_id(const cJSON *obj, const char *ctx, const char *name, char *out, qkc_error *e)
{
    qkc_error sub = {0};
    int rc = qkc_get_text(obj, name, true, out, QKC_ID_MAX, &sub);
    if (rc != 0)
        return qkc_fail(e, (qkc_errclass)rc, "lab.json %s: %s", ctx, sub.msg);
    return 0;
}

/* Optional array member of objects (or, with strings=true, of strings); count bounded. */
static int get_list(const cJSON *obj, const char *ctx, const char *name, bool required,
                    const cJSON **arr, size_t *n, qkc_error *e)
{
    *arr = NULL;
    *n = 0;
    qk_err jerr = {0};
    if (qk_json_get_array(obj, name, required, arr, &jerr) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: %s", ctx, jerr.msg);
    if (!*arr)
        return 0;
    int c = cJSON_GetArraySize(*arr);
    if (c > LAB_MAX_ITEMS)
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: more than %d entries in \"%s\"", ctx,
                        LAB_MAX_ITEMS, name);
    *n = (size_t)c;
    return 0;
}

static int parse_sae(const cJSON *it, const char *kme, qkc_lab_sae *s, qkc_error *e)
{
    char ctx[QKC_ID_MAX + 16];
    snprintf(ctx, sizeof ctx, "kme %s sae", kme);
    if (!cJSON_IsObject(it))
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: not an object", ctx);
    int rc = get_id(it, ctx, "id", s->id, e);
    if (rc == 0)
        rc = get_dup(it, ctx, "cert", true, &s->cert, e);
    if (rc == 0)
        rc = get_dup(it, ctx, "key", true, &s->key, e);
    return rc;
}

static int parse_skip_client(const cJSON *it, const char *kme, qkc_lab_skip_client *s, qkc_error *e)
{
    char ctx[QKC_ID_MAX + 24];
    snprintf(ctx, sizeof ctx, "kme %s skip client", kme);
    if (!cJSON_IsObject(it))
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: not an object", ctx);
    int rc = get_id(it, ctx, "identity", s->identity, e);
    if (rc != 0)
        return rc;
    const char *hex = NULL;
    qk_err jerr = {0};
    if (qk_json_get_string(it, "psk_hex", true, &hex, NULL, &jerr) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s %s: %s", ctx, s->identity, jerr.msg);
    size_t l = strlen(hex);
    if (l < 2 || l > 128 || l % 2)
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s %s: psk_hex must be 2..128 hex digits", ctx,
                        s->identity);
    s->psk = qk_secure_alloc(l / 2);
    if (!s->psk)
        return qkc_fail(e, QKC_EINTERNAL, "out of secure memory");
    if (qk_hex_decode(hex, l, s->psk, l / 2, &s->psk_len) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s %s: psk_hex is not hex", ctx, s->identity);
    return 0;
}

static int parse_kme(const cJSON *it, size_t idx, qkc_lab_kme *k, qkc_error *e)
{
    char ctx[48];
    snprintf(ctx, sizeof ctx, "kmes[%zu]", idx);
    if (!cJSON_IsObject(it))
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: not an object", ctx);
    int rc = get_id(it, ctx, "id", k->id, e);
    if (rc == 0)
        rc = get_dup(it, k->id, "etsi014_url", false, &k->etsi014_url, e);
    if (rc == 0)
        rc = get_dup(it, k->id, "skip_url", false, &k->skip_url, e);
    if (rc == 0)
        rc = get_dup(it, k->id, "admin_url", false, &k->admin_url, e);
    const cJSON *arr;
    size_t n;
    if (rc == 0 && (rc = get_list(it, k->id, "saes", false, &arr, &n, e)) == 0 && n) {
        k->saes = calloc(n, sizeof *k->saes);
        if (!k->saes)
            return qkc_fail(e, QKC_EINTERNAL, "out of memory");
        for (const cJSON *s = arr->child; rc == 0 && s && k->n_saes < n; s = s->next)
            rc = parse_sae(s, k->id, &k->saes[k->n_saes++], e);
    }
    if (rc == 0 && (rc = get_list(it, k->id, "skip_clients", false, &arr, &n, e)) == 0 && n) {
        k->skip_clients = calloc(n, sizeof *k->skip_clients);
        if (!k->skip_clients)
            return qkc_fail(e, QKC_EINTERNAL, "out of memory");
        for (const cJSON *s = arr->child; rc == 0 && s && k->n_skip_clients < n; s = s->next)
            rc = parse_skip_client(s, k->id, &k->skip_clients[k->n_skip_clients++], e);
    }
    return rc;
}

static int parse_link(const cJSON *it, size_t idx, qkc_lab_link *l, qkc_error *e)
{
    char ctx[48];
    snprintf(ctx, sizeof ctx, "links[%zu]", idx);
    if (!cJSON_IsObject(it))
        return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: not an object", ctx);
    int rc = get_id(it, ctx, "id", l->id, e);
    const cJSON *arr;
    size_t n;
    if (rc == 0 && (rc = get_list(it, ctx, "kmes", true, &arr, &n, e)) == 0) {
        if (n != 2)
            return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: \"kmes\" must name two KMEs", ctx);
        size_t i = 0;
        for (const cJSON *s = arr->child; s && i < 2; s = s->next, i++) {
            size_t sl = cJSON_IsString(s) && s->valuestring ? strlen(s->valuestring) : 0;
            if (sl == 0 || sl >= QKC_ID_MAX)
                return qkc_fail(e, QKC_EMALFORMED, "lab.json %s: kmes[%zu] is not an ID", ctx, i);
            memcpy(l->kmes[i], s->valuestring, sl + 1);
        }
    }
    return rc;
}

void qkc_lab_free(qkc_lab *lab)
{
    if (!lab)
        return;
    for (size_t i = 0; lab->kmes && i < lab->n_kmes; i++) {
        qkc_lab_kme *k = &lab->kmes[i];
        for (size_t s = 0; k->saes && s < k->n_saes; s++) {
            free(k->saes[s].cert);
            free(k->saes[s].key);
        }
        for (size_t s = 0; k->skip_clients && s < k->n_skip_clients; s++)
            qk_secure_free(k->skip_clients[s].psk);
        free(k->saes);
        free(k->skip_clients);
        free(k->etsi014_url);
        free(k->skip_url);
        free(k->admin_url);
    }
    free(lab->kmes);
    free(lab->links);
    free(lab->ca_cert);
    free(lab->sim_url);
    memset(lab, 0, sizeof *lab);
}

int qkc_lab_parse(const char *text, size_t len, qkc_lab *out, qkc_error *e)
{
    qkc_error_clear(e);
    memset(out, 0, sizeof *out);
    if (len > LAB_MAX_TEXT)
        return qkc_fail(e, QKC_EMALFORMED, "lab.json is larger than %d bytes", LAB_MAX_TEXT);
    if (qk_secure_init() != 0)
        return qkc_fail(e, QKC_EINTERNAL, "libsodium initialisation failed");
    cJSON *j;
    qkc_error sub = {0};
    int rc = qkc_parse_object(text, len, &j, &sub);
    if (rc != 0)
        return qkc_fail(e, (qkc_errclass)rc, "lab.json: %s", sub.msg);
    rc = get_dup(j, "top level", "ca_cert", true, &out->ca_cert, e);
    if (rc == 0)
        rc = get_dup(j, "top level", "sim_url", false, &out->sim_url, e);
    const cJSON *arr;
    size_t n;
    if (rc == 0 && (rc = get_list(j, "top level", "kmes", true, &arr, &n, e)) == 0) {
        out->kmes = n ? calloc(n, sizeof *out->kmes) : NULL;
        if (n && !out->kmes)
            rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
        for (const cJSON *it = arr->child; rc == 0 && it && out->n_kmes < n; it = it->next) {
            rc = parse_kme(it, out->n_kmes, &out->kmes[out->n_kmes], e);
            out->n_kmes++;
        }
    }
    if (rc == 0 && (rc = get_list(j, "top level", "links", false, &arr, &n, e)) == 0 && n) {
        out->links = calloc(n, sizeof *out->links);
        if (!out->links)
            rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
        for (const cJSON *it = arr->child; rc == 0 && it && out->n_links < n; it = it->next) {
            rc = parse_link(it, out->n_links, &out->links[out->n_links], e);
            out->n_links++;
        }
    }
    for (size_t i = 0; rc == 0 && i < out->n_kmes; i++)
        for (size_t k = 0; rc == 0 && k < i; k++)
            if (strcmp(out->kmes[i].id, out->kmes[k].id) == 0)
                rc = qkc_fail(e, QKC_EMALFORMED, "lab.json: KME %s is listed twice",
                              out->kmes[i].id);
    qk_json_delete_wiped(j); /* psk_hex strings */
    if (rc != 0)
        qkc_lab_free(out);
    return rc;
}

int qkc_lab_load(const char *dir, qkc_lab *out, qkc_error *e)
{
    qkc_error_clear(e);
    memset(out, 0, sizeof *out);
    char path[LAB_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/lab.json", dir ? dir : ".");
    if (n < 0 || (size_t)n >= sizeof path)
        return qkc_fail(e, QKC_EUSAGE, "lab directory name too long");
    if (qk_secure_init() != 0)
        return qkc_fail(e, QKC_EINTERNAL, "libsodium initialisation failed");
    size_t len = 0;
    uint8_t *text = qk_secure_read_file(path, LAB_MAX_TEXT, 0, &len);
    if (!text)
        return qkc_fail(e, QKC_EUSAGE, "%s: %s", path,
                        errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
    int rc = qkc_lab_parse((const char *)text, len, out, e);
    qk_secure_free(text);
    if (rc != 0) {
        char msg[QKC_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
        return qkc_fail(e, (qkc_errclass)rc, "%s: %s", path, msg);
    }
    return 0;
}

const qkc_lab_kme *qkc_lab_find_kme(const qkc_lab *lab, const char *id)
{
    for (size_t i = 0; lab && id && i < lab->n_kmes; i++)
        if (strcmp(lab->kmes[i].id, id) == 0)
            return &lab->kmes[i];
    return NULL;
}

const qkc_lab_sae *qkc_lab_find_sae(const qkc_lab_kme *kme, const char *id)
{
    for (size_t i = 0; kme && id && i < kme->n_saes; i++)
        if (strcmp(kme->saes[i].id, id) == 0)
            return &kme->saes[i];
    return NULL;
}

const qkc_lab_skip_client *qkc_lab_find_skip_client(const qkc_lab_kme *kme, const char *id)
{
    for (size_t i = 0; kme && id && i < kme->n_skip_clients; i++)
        if (strcmp(kme->skip_clients[i].identity, id) == 0)
            return &kme->skip_clients[i];
    return NULL;
}
