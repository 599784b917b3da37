/* skip_parse.c - the SKIP parsing layer (see skip_parse.h): no HTTP engine, no core calls. */
#include "skip_parse.h"

#include "ini_config.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_util.h"
#include "secbuf.h"

/* ---- routes and parameters --------------------------------------------------------------- */

qk_skip_route qk_skip_parse_path(const char *url, char *key_id, size_t cap)
{
    if (!url || !key_id || cap == 0)
        return QK_SKIP_ROUTE_NONE;
    key_id[0] = '\0';
    size_t len = strcspn(url, "?");
    static const struct {
        const char *path;
        qk_skip_route route;
    } fixed[] = {{"/capabilities", QK_SKIP_ROUTE_CAPABILITIES},
                 {"/key", QK_SKIP_ROUTE_KEY},
                 {"/entropy", QK_SKIP_ROUTE_ENTROPY}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strlen(fixed[i].path) == len && strncmp(url, fixed[i].path, len) == 0)
            return fixed[i].route;
    static const char prefix[] = "/key/";
    const size_t pl = sizeof prefix - 1;
    if (len < pl || strncmp(url, prefix, pl) != 0)
        return QK_SKIP_ROUTE_NONE;
    const char *id = url + pl;
    size_t idl = len - pl;
    if (memchr(id, '/', idl))
        return QK_SKIP_ROUTE_NONE; /* /key/a/b is no SKIP path */
    if (idl >= cap)
        idl = cap - 1;
    memcpy(key_id, id, idl);
    key_id[idl] = '\0';
    return QK_SKIP_ROUTE_KEY_ID;
}

int qk_skip_parse_key_id(const char *s, char out[QK_KEY_ID_LEN + 1], qk_err *err)
{
    size_t n = s ? strnlen(s, QK_SKIP_KEY_ID_HEX_MAX + 1) : 0;
    if (n == 0)
        return qk_err_set(err, QK_EINVAL, "malformed keyId: empty");
    if (n > QK_SKIP_KEY_ID_HEX_MAX)
        return qk_err_set(err, QK_EINVAL, "malformed keyId: more than %d hex digits",
                          QK_SKIP_KEY_ID_HEX_MAX);
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return qk_err_set(err, QK_EINVAL, "malformed keyId: not hexadecimal");
    qk_uuid u;
    if (n != QK_UUID_HEX_LEN || qk_uuid_parse_hex(s, n, &u) != 0)
        return qk_err_set(err, QK_ENOTFOUND, "key not found");
    qk_uuid_format(&u, out);
    return 0;
}

int qk_skip_key_id_of(const char *uuid, char out[QK_UUID_HEX_LEN + 1])
{
    qk_uuid u;
    if (!uuid || qk_uuid_parse(uuid, strlen(uuid), &u) != 0)
        return -1;
    qk_uuid_format_hex(&u, out);
    return 0;
}

int qk_skip_parse_bits(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                       qk_err *err)
{
    size_t n = s ? strnlen(s, 8) : 0;
    bool digits = n >= 1 && n <= 7;
    for (size_t i = 0; digits && i < n; i++)
        digits = isdigit((unsigned char)s[i]) != 0;
    if (!digits)
        return qk_err_set(err, QK_EINVAL, "%s must be a positive decimal number of bits", name);
    unsigned long v = strtoul(s, NULL, 10);
    if (v == 0 || v % 8 != 0)
        return qk_err_set(err, QK_EINVAL, "%s must be a positive multiple of 8 bits", name);
    if (v < min || v > max)
        return qk_err_set(err, QK_EINVAL, "%s must be within [%u, %u] bits", name, min, max);
    *out = (uint32_t)v;
    return 0;
}

bool qk_skip_system_id_valid(const char *s)
{
    return qk_id_valid(s, QK_SKIP_SYSTEM_ID_MAX, NULL);
}

/* ---- glob lists and authorization --------------------------------------------------------- */

int qk_skip_globs_each(const char *list, int (*fn)(const char *glob, void *arg), void *arg)
{
    if (!list)
        return 0;
    const char *p = list;
    for (int count = 0; *p && count < QK_SKIP_GLOBS_MAX; count++) {
        size_t len = strcspn(p, ",");
        const char *a = p, *b = p + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a && (size_t)(b - a) <= QK_SKIP_GLOB_MAX) {
            char g[QK_SKIP_GLOB_MAX + 1];
            memcpy(g, a, (size_t)(b - a));
            g[b - a] = '\0';
            int rc = fn(g, arg);
            if (rc != 0)
                return rc;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int match_one(const char *glob, void *arg)
{
    return fnmatch(glob, (const char *)arg, 0) == 0 ? 1 : 0;
}

bool qk_skip_globs_match(const char *list, const char *id)
{
    if (!list || !id)
        return false;
    return qk_skip_globs_each(list, match_one, (void *)id) == 1;
}

const char *qk_skip_client_globs(const qk_skip_client_rule *rules, size_t n,
                                 const char *default_rule, const char *identity)
{
    for (size_t i = 0; identity && rules && i < n; i++)
        if (rules[i].identity && strcmp(rules[i].identity, identity) == 0)
            return rules[i].remote_systems ? rules[i].remote_systems : "";
    return default_rule && *default_rule ? default_rule : NULL;
}

int qk_skip_identity(const char *kme, char *out, size_t cap)
{
    if (!qk_skip_system_id_valid(kme))
        return -1;
    int n = snprintf(out, cap, "%s%s", QK_SKIP_ID_PREFIX, kme);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- answers ------------------------------------------------------------------------------ */

int qk_skip_key_json(const char *uuid, const uint8_t *key, size_t key_len, char **json, size_t *len)
{
    *json = NULL;
    *len = 0;
    char kid[QK_UUID_HEX_LEN + 1];
    if (!key || key_len == 0 || key_len > 1024 * 1024 || qk_skip_key_id_of(uuid, kid) != 0)
        return -1;
    static const char a[] = "{\"keyId\":\"", b[] = "\",\"key\":\"", c[] = "\"}";
    size_t cap = sizeof a + QK_UUID_HEX_LEN + sizeof b + 2 * key_len + sizeof c;
    char *buf = qk_secure_alloc(cap);
    if (!buf)
        return -1;
    size_t off = (size_t)snprintf(buf, cap, "%s%s%s", a, kid, b);
    size_t w = qk_hex_encode(key, key_len, buf + off, cap - off);
    if (w != 2 * key_len) {
        qk_secure_free(buf);
        return -1;
    }
    off += w;
    memcpy(buf + off, c, sizeof c); /* with the NUL */
    *json = buf;
    *len = off + sizeof c - 1;
    return 0;
}

int qk_skip_entropy_json(const uint8_t *rnd, size_t n, uint32_t bits, char **json, size_t *len)
{
    *json = NULL;
    *len = 0;
    if (!rnd || n == 0 || n > 1024 * 1024)
        return -1;
    static const char a[] = "{\"randomStr\":\"", b[] = "\",\"minentropy\":";
    size_t cap = sizeof a + 2 * n + sizeof b + 16;
    char *buf = qk_secure_alloc(cap);
    if (!buf)
        return -1;
    size_t off = (size_t)snprintf(buf, cap, "%s", a);
    size_t w = qk_hex_encode(rnd, n, buf + off, cap - off);
    if (w != 2 * n) {
        qk_secure_free(buf);
        return -1;
    }
    off += w;
    int t = snprintf(buf + off, cap - off, "%s%u}", b, bits);
    if (t < 0 || (size_t)t >= cap - off) {
        qk_secure_free(buf);
        return -1;
    }
    *json = buf;
    *len = off + (size_t)t;
    return 0;
}

typedef struct {
    cJSON *arr;
    const char *local_id;
    bool has_local;
    bool failed;
} caps_ctx;

static int add_glob(const char *glob, void *arg)
{
    caps_ctx *c = arg;
    if (strcmp(glob, c->local_id) == 0)
        c->has_local = true;
    if (!cJSON_AddItemToArray(c->arr, cJSON_CreateString(glob))) {
        c->failed = true;
        return 1;
    }
    return 0;
}

char *qk_skip_capabilities_json(bool entropy, const char *algorithm, const char *local_id,
                                const char *remote_globs, bool loopback_pair)
{
    if (!algorithm || !local_id)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    caps_ctx c = {arr, local_id, false, arr == NULL};
    if (!c.failed)
        qk_skip_globs_each(remote_globs, add_glob, &c);
    if (!c.failed && loopback_pair && !c.has_local &&
        !cJSON_AddItemToArray(arr, cJSON_CreateString(local_id)))
        c.failed = true;
    char *text = NULL;
    if (o && !c.failed && cJSON_AddBoolToObject(o, "entropy", entropy) &&
        cJSON_AddBoolToObject(o, "key", true) &&
        cJSON_AddStringToObject(o, "algorithm", algorithm) &&
        cJSON_AddStringToObject(o, "localSystemID", local_id) &&
        cJSON_AddItemToObject(o, "remoteSystemID", arr)) {
        arr = NULL;
        text = qk_json_print(o);
    }
    cJSON_Delete(arr);
    cJSON_Delete(o);
    return text;
}
