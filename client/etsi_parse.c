/* etsi_parse.c - ETSI GS QKD 014 bodies: Status and Key container parsing (untrusted input),
 * Key request building. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "codec.h"
#include "json_util.h"
#include "secbuf.h"

#define INT_MAX_FIELD 9007199254740991LL /* 2^53 - 1 */

void qkc_etsi_status_free(qkc_etsi_status *s)
{
    if (!s)
        return;
    free(s->status_extension);
    memset(s, 0, sizeof *s);
}

int qkc_etsi_parse_status(const char *body, size_t len, qkc_etsi_status *out, qkc_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    int rc = qkc_parse_object(body, len, &j, e);
    if (rc != 0)
        return rc;
    static const struct {
        const char *name;
        size_t off;
    } texts[] = {
        {"source_KME_ID", offsetof(qkc_etsi_status, source_KME_ID)},
        {"target_KME_ID", offsetof(qkc_etsi_status, target_KME_ID)},
        {"master_SAE_ID", offsetof(qkc_etsi_status, master_SAE_ID)},
        {"slave_SAE_ID", offsetof(qkc_etsi_status, slave_SAE_ID)},
    };
    static const struct {
        const char *name;
        size_t off;
    } ints[] = {
        {"key_size", offsetof(qkc_etsi_status, key_size)},
        {"stored_key_count", offsetof(qkc_etsi_status, stored_key_count)},
        {"max_key_count", offsetof(qkc_etsi_status, max_key_count)},
        {"max_key_per_request", offsetof(qkc_etsi_status, max_key_per_request)},
        {"max_key_size", offsetof(qkc_etsi_status, max_key_size)},
        {"min_key_size", offsetof(qkc_etsi_status, min_key_size)},
        {"max_SAE_ID_count", offsetof(qkc_etsi_status, max_SAE_ID_count)},
    };
    for (size_t i = 0; rc == 0 && i < sizeof texts / sizeof texts[0]; i++)
        rc = qkc_get_text(j, texts[i].name, true, (char *)out + texts[i].off, QKC_ID_MAX, e);
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; i++) {
        qk_err jerr = {0};
        if (qk_json_get_int(j, ints[i].name, true, 0, INT_MAX_FIELD,
                            (int64_t *)(void *)((char *)out + ints[i].off), NULL, &jerr) != 0)
            rc = qkc_fail(e, QKC_EMALFORMED, "status: %s", jerr.msg);
    }
    if (rc == 0)
        rc = qkc_get_object_json(j, "status_extension", &out->status_extension, e);
    cJSON_Delete(j);
    if (rc != 0)
        qkc_etsi_status_free(out);
    return rc;
}

void qkc_key_set_free(qkc_key_set *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; ks->keys && i < ks->count; i++)
        qk_secure_free(ks->keys[i].key);
    free(ks->keys);
    free(ks->key_container_extension);
    memset(ks, 0, sizeof *ks);
}

static int parse_one_key(const cJSON *it, size_t idx, qkc_key *k, qkc_error *e)
{
    if (!cJSON_IsObject(it))
        return qkc_fail(e, QKC_EMALFORMED, "keys[%zu] is not an object", idx);
    qkc_error sub = {0};
    int rc = qkc_get_text(it, "key_ID", true, k->key_ID, sizeof k->key_ID, &sub);
    if (rc != 0)
        return qkc_fail(e, (qkc_errclass)rc, "keys[%zu]: %s", idx, sub.msg);
    const char *b64 = NULL;
    qk_err jerr = {0};
    if (qk_json_get_string(it, "key", true, &b64, NULL, &jerr) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: %s", idx, jerr.msg);
    size_t blen = strlen(b64);
    if (blen == 0 || blen > qk_base64_encoded_len(QKC_MAX_KEY_SIZE))
        return qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: key is empty or larger than %d bytes", idx,
                        QKC_MAX_KEY_SIZE);
    size_t cap = blen / 4 * 3 + 3;
    k->key = qk_secure_alloc(cap);
    if (!k->key)
        return qkc_fail(e, QKC_EINTERNAL, "out of secure memory");
    if (qk_base64_decode(b64, blen, k->key, cap, &k->key_len) != 0 || k->key_len == 0)
        return qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: key is not valid base64 (RFC 4648)", idx);
    static const char *const objs[] = {"key_ID_extension", "key_extension"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(it, objs[i]);
        if (x && !cJSON_IsObject(x))
            return qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: \"%s\" must be an object", idx, objs[i]);
    }
    return 0;
}

int qkc_etsi_parse_keys(const char *body, size_t len, size_t expect_count, size_t expect_bytes,
                        qkc_key_set *out, qkc_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    int rc = qkc_parse_object(body, len, &j, e);
    if (rc != 0)
        return rc;
    const cJSON *arr = NULL;
    qk_err jerr = {0};
    if (qk_json_get_array(j, "keys", true, &arr, &jerr) != 0) {
        rc = qkc_fail(e, QKC_EMALFORMED, "key container: %s", jerr.msg);
        goto out;
    }
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > QKC_MAX_KEYS) {
        rc =
            qkc_fail(e, QKC_EMALFORMED, "key container: %d keys (expected 1..%d)", n, QKC_MAX_KEYS);
        goto out;
    }
    if (expect_count && (size_t)n != expect_count) {
        rc = qkc_fail(e, QKC_EMALFORMED, "key container: %d keys, %zu requested", n, expect_count);
        goto out;
    }
    out->keys = calloc((size_t)n, sizeof *out->keys);
    if (!out->keys) {
        rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
        goto out;
    }
    size_t i = 0;
    for (const cJSON *it = arr->child; it && i < (size_t)n; it = it->next, i++) {
        out->count = i + 1; /* so that a failure frees this key too */
        rc = parse_one_key(it, i, &out->keys[i], e);
        if (rc != 0)
            goto out;
        if (expect_bytes && out->keys[i].key_len != expect_bytes) {
            rc = qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: %zu bytes, %zu requested", i,
                          out->keys[i].key_len, expect_bytes);
            goto out;
        }
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(out->keys[k].key_ID, out->keys[i].key_ID) == 0) {
                rc = qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: key_ID repeats keys[%zu]", i, k);
                goto out;
            }
    }
    rc = qkc_get_object_json(j, "key_container_extension", &out->key_container_extension, e);
out:
    qk_json_delete_wiped(j);
    if (rc != 0)
        qkc_key_set_free(out);
    return rc;
}

/* An extension list given as JSON text: an array of objects. */
static int add_extension(cJSON *req, const char *name, const char *text, qkc_error *e)
{
    if (!text)
        return 0;
    qk_err jerr = {0};
    cJSON *x = qk_json_parse(text, strlen(text), 64 * 1024, &jerr);
    if (!x)
        return qkc_fail(e, QKC_EUSAGE, "%s: %s", name, jerr.msg);
    bool ok = cJSON_IsArray(x);
    for (const cJSON *it = x->child; ok && it; it = it->next)
        ok = cJSON_IsObject(it);
    if (!ok) {
        cJSON_Delete(x);
        return qkc_fail(e, QKC_EUSAGE, "%s must be a JSON array of objects", name);
    }
    if (!cJSON_AddItemToObject(req, name, x)) {
        cJSON_Delete(x);
        return qkc_fail(e, QKC_EINTERNAL, "out of memory");
    }
    return 0;
}

char *qkc_etsi_key_request_json(const qkc_key_request *req, qkc_error *e)
{
    static const qkc_key_request none;
    if (!req)
        req = &none;
    if (req->number < 0 || req->size < 0 || (req->n_additional && !req->additional_slave_SAE_IDs) ||
        req->n_additional > QKC_MAX_KEYS) {
        qkc_fail(e, QKC_EUSAGE, "key request: negative number/size or bad ID list");
        return NULL;
    }
    cJSON *j = cJSON_CreateObject();
    int rc = j ? 0 : qkc_fail(e, QKC_EINTERNAL, "out of memory");
    if (rc == 0 && req->number && !cJSON_AddNumberToObject(j, "number", (double)req->number))
        rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
    if (rc == 0 && req->size && !cJSON_AddNumberToObject(j, "size", (double)req->size))
        rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
    if (rc == 0 && req->n_additional) {
        cJSON *a = cJSON_AddArrayToObject(j, "additional_slave_SAE_IDs");
        if (!a)
            rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
        for (size_t i = 0; rc == 0 && i < req->n_additional; i++) {
            const char *id = req->additional_slave_SAE_IDs[i];
            if (!id || !id[0] || strlen(id) >= QKC_ID_MAX)
                rc = qkc_fail(e, QKC_EUSAGE, "additional slave SAE ID %zu is empty or too long",
                              i + 1);
            else if (!cJSON_AddItemToArray(a, cJSON_CreateString(id)))
                rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
        }
    }
    if (rc == 0)
        rc = add_extension(j, "extension_mandatory", req->extension_mandatory, e);
    if (rc == 0)
        rc = add_extension(j, "extension_optional", req->extension_optional, e);
    char *text = NULL;
    if (rc == 0) {
        text = cJSON_PrintUnformatted(j);
        if (!text)
            qkc_fail(e, QKC_EINTERNAL, "out of memory");
    }
    cJSON_Delete(j);
    return text;
}
