/* bench_parse.c - key container / SKIP key parsing for the load generator. */
#include "bench_parse.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "secbuf.h"

/* Wipe every string of a tree that held key material. */
static void wipe_strings(cJSON *j)
{
    for (cJSON *c = j; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring)
            qk_wipe(c->valuestring, strlen(c->valuestring));
        if (c->child)
            wipe_strings(c->child);
    }
}

static void drop(cJSON *root)
{
    if (root) {
        wipe_strings(root);
        cJSON_Delete(root);
    }
}

static int copy_id(const cJSON *s, bench_key_id out)
{
    if (!cJSON_IsString(s) || !s->valuestring)
        return -1;
    size_t n = strlen(s->valuestring);
    if (n == 0 || n > BENCH_ID_MAX)
        return -1;
    memcpy(out, s->valuestring, n + 1);
    return 0;
}

int bench_parse_etsi_keys(const char *body, size_t len, size_t want, size_t klen, bench_key_id *ids,
                          uint8_t *keys)
{
    if (!body)
        return -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "keys") : NULL;
    int rc = -1;
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != want)
        goto out;
    size_t i = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, arr)
    {
        const cJSON *kb = cJSON_GetObjectItemCaseSensitive(k, "key");
        size_t got = 0;
        if (copy_id(cJSON_GetObjectItemCaseSensitive(k, "key_ID"), ids[i]) != 0 ||
            !cJSON_IsString(kb) ||
            qk_base64_decode(kb->valuestring, strlen(kb->valuestring), keys + i * klen, klen,
                             &got) != 0 ||
            got != klen)
            goto out;
        i++;
    }
    rc = 0;
out:
    drop(root);
    return rc;
}

int bench_parse_skip_key(const char *body, size_t len, size_t klen, bench_key_id id, uint8_t *key)
{
    if (!body)
        return -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    int rc = -1;
    if (!cJSON_IsObject(root))
        goto out;
    const cJSON *kb = cJSON_GetObjectItemCaseSensitive(root, "key");
    size_t got = 0;
    if (copy_id(cJSON_GetObjectItemCaseSensitive(root, "keyId"), id) != 0 || !cJSON_IsString(kb) ||
        qk_hex_decode(kb->valuestring, strlen(kb->valuestring), key, klen, &got) != 0 ||
        got != klen)
        goto out;
    rc = 0;
out:
    drop(root);
    return rc;
}

int bench_parse_object(const char *body, size_t len)
{
    if (!body)
        return -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    int rc = cJSON_IsObject(root) ? 0 : -1;
    cJSON_Delete(root);
    return rc;
}
