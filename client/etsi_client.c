/* etsi_client.c - ETSI GS QKD 014 calls: Get status, Get key (GET and POST forms), Get key with
 * key IDs (GET with one ID, POST with many). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "secbuf.h"

#define ETSI_PREFIX "/api/v1/keys/"

/* "/api/v1/keys/{id}/{what}" with id percent-encoded. */
static int etsi_path(char *out, size_t cap, const char *sae_id, const char *what, qkc_error *e)
{
    if (!sae_id || !sae_id[0] || strlen(sae_id) >= QKC_ID_MAX)
        return qkc_fail(e, QKC_EUSAGE, "SAE ID is empty or longer than %d bytes", QKC_ID_MAX - 1);
    snprintf(out, cap, "%s", ETSI_PREFIX);
    if (qkc_url_append_encoded(out, cap, sae_id) != 0 || strlen(out) + strlen(what) + 2 > cap)
        return qkc_fail(e, QKC_EUSAGE, "request path too long");
    strcat(out, "/");
    strcat(out, what);
    return 0;
}

int qkc_etsi_status_get(qkc_client *c, const char *slave_SAE_ID, qkc_etsi_status *out, qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out)
        return qkc_fail(e, QKC_EUSAGE, "qkc_etsi_status_get: bad arguments");
    char path[QKC_URL_MAX / 2];
    int rc = etsi_path(path, sizeof path, slave_SAE_ID, "status", e);
    if (rc != 0)
        return rc;
    qkc_raw_response r;
    rc = qkc_call(c, "GET", path, NULL, 0, &r, e);
    if (rc != 0)
        return rc;
    rc = qkc_etsi_parse_status(r.body, r.body_len, out, e);
    qkc_raw_response_free(&r);
    return rc;
}

/* POST (or GET) a request, parse the container; body may be NULL. */
static int fetch_keys(qkc_client *c, const char *method, const char *path, const char *body,
                      size_t expect_count, size_t expect_bytes, qkc_key_set *out, qkc_error *e)
{
    qkc_raw_response r;
    int rc = qkc_call(c, method, path, body, body ? strlen(body) : 0, &r, e);
    if (rc != 0)
        return rc;
    rc = qkc_etsi_parse_keys(r.body, r.body_len, expect_count, expect_bytes, out, e);
    qkc_raw_response_free(&r);
    return rc;
}

int qkc_etsi_get_keys(qkc_client *c, const char *slave_SAE_ID, const qkc_key_request *req,
                      qkc_method m, qkc_key_set *out, qkc_error *e)
{
    static const qkc_key_request none;
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out)
        return qkc_fail(e, QKC_EUSAGE, "qkc_etsi_get_keys: bad arguments");
    if (!req)
        req = &none;
    if (req->number < 0 || req->number > QKC_MAX_KEYS)
        return qkc_fail(e, QKC_EUSAGE, "number must be 1..%d", QKC_MAX_KEYS);
    if (req->size < 0 || req->size > (int64_t)QKC_MAX_KEY_SIZE * 8)
        return qkc_fail(e, QKC_EUSAGE, "size must be 1..%d bits", QKC_MAX_KEY_SIZE * 8);
    bool simple = req->n_additional == 0 && !req->extension_mandatory && !req->extension_optional;
    if (m == QKC_GET && !simple)
        return qkc_fail(e, QKC_EUSAGE,
                        "GET enc_keys carries only number and size; use POST for the rest");
    bool get = m == QKC_GET || (m == QKC_AUTO && simple);
    char path[QKC_URL_MAX / 2];
    int rc = etsi_path(path, sizeof path, slave_SAE_ID, "enc_keys", e);
    if (rc != 0)
        return rc;
    size_t expect_count = req->number ? (size_t)req->number : 1;
    size_t expect_bytes = req->size ? (size_t)(req->size + 7) / 8 : 0;
    if (get) {
        size_t l = strlen(path);
        char sep = '?';
        if (req->number) {
            snprintf(path + l, sizeof path - l, "%cnumber=%" PRId64, sep, req->number);
            sep = '&';
            l = strlen(path);
        }
        if (req->size)
            snprintf(path + l, sizeof path - l, "%csize=%" PRId64, sep, req->size);
        return fetch_keys(c, "GET", path, NULL, expect_count, expect_bytes, out, e);
    }
    char *body = qkc_etsi_key_request_json(req, e);
    if (!body)
        return e ? (int)e->cls : QKC_EINTERNAL;
    rc = fetch_keys(c, "POST", path, body, expect_count, expect_bytes, out, e);
    free(body);
    return rc;
}

static char *key_ids_json(const char *const *ids, size_t n, qkc_error *e)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *a = j ? cJSON_AddArrayToObject(j, "key_IDs") : NULL;
    int rc = a ? 0 : qkc_fail(e, QKC_EINTERNAL, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "key_ID", ids[i]) || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o); /* not attached to the array */
            rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
        }
    }
    char *text = rc == 0 ? cJSON_PrintUnformatted(j) : NULL;
    if (rc == 0 && !text)
        qkc_fail(e, QKC_EINTERNAL, "out of memory");
    cJSON_Delete(j);
    return text;
}

/* Every returned key_ID must be one of the requested IDs (counts are already equal and the
 * parser refused repeats, so this makes the two sets equal). */
static int check_ids(const qkc_key_set *ks, const char *const *ids, size_t n, qkc_error *e)
{
    for (size_t i = 0; i < ks->count; i++) {
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            found = strcasecmp(ks->keys[i].key_ID, ids[k]) == 0;
        if (!found)
            return qkc_fail(e, QKC_EMALFORMED, "keys[%zu]: key_ID %s was not requested", i,
                            ks->keys[i].key_ID);
    }
    return 0;
}

int qkc_etsi_get_keys_with_ids(qkc_client *c, const char *master_SAE_ID, const char *const *key_IDs,
                               size_t n, qkc_method m, qkc_key_set *out, qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out || !key_IDs || n == 0 || n > QKC_MAX_KEYS)
        return qkc_fail(e, QKC_EUSAGE, "dec_keys needs 1..%d key IDs", QKC_MAX_KEYS);
    for (size_t i = 0; i < n; i++) {
        if (!qkc_is_token(key_IDs[i], QKC_ID_MAX))
            return qkc_fail(e, QKC_EUSAGE, "key ID %zu is empty, too long or holds spaces", i + 1);
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(key_IDs[i], key_IDs[k]) == 0)
                return qkc_fail(e, QKC_EUSAGE, "key ID %s is given twice", key_IDs[i]);
    }
    if (m == QKC_GET && n != 1)
        return qkc_fail(e, QKC_EUSAGE, "GET dec_keys carries one key ID; use POST for more");
    bool get = m == QKC_GET || (m == QKC_AUTO && n == 1);
    char path[QKC_URL_MAX / 2];
    int rc = etsi_path(path, sizeof path, master_SAE_ID, "dec_keys", e);
    if (rc != 0)
        return rc;
    if (get) {
        if (strlen(path) + 9 >= sizeof path)
            return qkc_fail(e, QKC_EUSAGE, "request path too long");
        strcat(path, "?key_ID=");
        if (qkc_url_append_encoded(path, sizeof path, key_IDs[0]) != 0)
            return qkc_fail(e, QKC_EUSAGE, "request path too long");
        rc = fetch_keys(c, "GET", path, NULL, 1, 0, out, e);
    } else {
        char *body = key_ids_json(key_IDs, n, e);
        if (!body)
            return e ? (int)e->cls : QKC_EINTERNAL;
        rc = fetch_keys(c, "POST", path, body, n, 0, out, e);
        free(body);
    }
    if (rc == 0 && (rc = check_ids(out, key_IDs, n, e)) != 0)
        qkc_key_set_free(out);
    return rc;
}
