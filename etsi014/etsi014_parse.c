/* etsi014_parse.c - routes, SAE IDs, Key request / Key IDs parsing and the Key container for
 * the ETSI GS QKD 014 handler. Untrusted input: every length is bounded, every type checked. */
#include "etsi014_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "json_util.h"
#include "secbuf.h"

#define API_PREFIX  "/api/v1/keys/"
#define MAX_DETAILS 16

bool qk_etsi_sae_id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > QK_ETSI_SAE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

int qk_etsi_parse_path(const char *url, qk_etsi_route *route, char *id, size_t cap, qk_err *err)
{
    *route = QK_ETSI_ROUTE_NONE;
    if (cap)
        id[0] = '\0';
    if (!url)
        return qk_err_set(err, QK_EINVAL, "unknown resource");
    size_t plen = strlen(API_PREFIX);
    size_t len = strcspn(url, "?");
    if (len > 4096)
        return qk_err_set(err, QK_EINVAL, "path too long");
    if (len <= plen || strncmp(url, API_PREFIX, plen) != 0)
        return qk_err_set(err, QK_EINVAL, "unknown resource");
    const char *rest = url + plen;
    size_t rlen = len - plen;
    /* the operation is the last segment; the SAE ID is everything before it (an ID may hold
     * a decoded '/') */
    size_t slash = rlen;
    while (slash > 0 && rest[slash - 1] != '/')
        slash--;
    if (slash == 0)
        return qk_err_set(err, QK_EINVAL, "unknown resource");
    const char *op = rest + slash;
    size_t oplen = rlen - slash;
    size_t idlen = slash - 1;
    qk_etsi_route r = QK_ETSI_ROUTE_NONE;
    if (oplen == 6 && memcmp(op, "status", 6) == 0)
        r = QK_ETSI_ROUTE_STATUS;
    else if (oplen == 8 && memcmp(op, "enc_keys", 8) == 0)
        r = QK_ETSI_ROUTE_ENC;
    else if (oplen == 8 && memcmp(op, "dec_keys", 8) == 0)
        r = QK_ETSI_ROUTE_DEC;
    if (r == QK_ETSI_ROUTE_NONE)
        return qk_err_set(err, QK_EINVAL, "unknown resource");
    if (!qk_etsi_sae_id_valid(rest, idlen) || idlen + 1 > cap)
        return qk_err_set(err, QK_EINVAL, "invalid SAE ID in path");
    memcpy(id, rest, idlen);
    id[idlen] = '\0';
    *route = r;
    return 0;
}

int qk_etsi_parse_int(const char *s, int64_t *out)
{
    if (!s)
        return -1;
    const char *p = s;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    size_t nd = 0;
    int64_t v = 0;
    while (p[nd] >= '0' && p[nd] <= '9') {
        if (nd >= 10)
            return -1;
        v = v * 10 + (p[nd] - '0');
        nd++;
    }
    if (nd == 0 || p[nd] != '\0')
        return -1;
    *out = neg ? -v : v;
    return 0;
}

static bool is_blank(const char *body, size_t len)
{
    if (!body)
        return true;
    for (size_t i = 0; i < len; i++)
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
            return false;
    return true;
}

/* Every element of arr must be a JSON object. */
static int check_object_array(const cJSON *arr, const char *name, qk_err *err)
{
    const cJSON *el;
    cJSON_ArrayForEach(el, arr)
    {
        if (!cJSON_IsObject(el))
            return qk_err_set(err, QK_EINVAL, "%s must be an array of objects", name);
    }
    return 0;
}

static int parse_extensions(const cJSON *root, cJSON **details, qk_err *err)
{
    const cJSON *mand = NULL, *opt = NULL;
    int rc = qk_json_get_array(root, "extension_mandatory", false, &mand, err);
    if (rc != 0)
        return rc;
    rc = qk_json_get_array(root, "extension_optional", false, &opt, err);
    if (rc != 0)
        return rc;
    if (mand && (rc = check_object_array(mand, "extension_mandatory", err)) != 0)
        return rc;
    if (opt && (rc = check_object_array(opt, "extension_optional", err)) != 0)
        return rc;
    if (!mand)
        return 0;
    /* No extension is supported: every mandatory parameter is reported. */
    size_t unsupported = 0;
    cJSON *det = details ? cJSON_CreateArray() : NULL;
    const cJSON *el;
    cJSON_ArrayForEach(el, mand)
    {
        const cJSON *param;
        cJSON_ArrayForEach(param, el)
        {
            unsupported++;
            if (det && unsupported <= MAX_DETAILS) {
                char text[160];
                snprintf(text, sizeof text, "%.64s is not supported",
                         param->string ? param->string : "?");
                cJSON *o = cJSON_CreateObject();
                if (o && cJSON_AddStringToObject(o, "extension_mandatory_unsupported", text))
                    cJSON_AddItemToArray(det, o);
                else
                    cJSON_Delete(o);
            }
        }
    }
    if (unsupported == 0) {
        cJSON_Delete(det);
        return 0;
    }
    if (details)
        *details = det;
    return qk_err_set(err, QK_EINVAL, QK_ETSI_MSG_EXT_UNSUPPORTED);
}

int qk_etsi_parse_key_request(const char *body, size_t len, qk_etsi_key_req *out, cJSON **details,
                              qk_err *err)
{
    memset(out, 0, sizeof *out);
    if (details)
        *details = NULL;
    if (is_blank(body, len))
        return 0; /* an empty Key request is {} */
    cJSON *root = qk_json_parse(body, len, QK_ETSI_MAX_BODY, err);
    if (!root) {
        qk_err_prefix(err, "invalid Key request");
        return QK_EINVAL;
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = qk_err_set(err, QK_EINVAL, "Key request must be a JSON object");
        goto done;
    }
    bool present = false;
    rc = qk_json_get_int(root, "number", false, INT32_MIN, INT32_MAX, &out->number, &present, err);
    if (rc != 0)
        goto done;
    out->has_number = present;
    rc = qk_json_get_int(root, "size", false, INT32_MIN, INT32_MAX, &out->size, &present, err);
    if (rc != 0)
        goto done;
    out->has_size = present;

    const cJSON *add = NULL;
    rc = qk_json_get_array(root, "additional_slave_SAE_IDs", false, &add, err);
    if (rc != 0)
        goto done;
    if (add) {
        out->add_present = true;
        int n = cJSON_GetArraySize(add);
        if (n < 0 || (size_t)n > QK_ETSI_MAX_ADD) {
            rc = qk_err_set(err, QK_EINVAL, "too many additional_slave_SAE_IDs");
            goto done;
        }
        const cJSON *el;
        cJSON_ArrayForEach(el, add)
        {
            if (!cJSON_IsString(el) || !el->valuestring) {
                rc = qk_err_set(err, QK_EINVAL,
                                "additional_slave_SAE_IDs must be an array of strings");
                goto done;
            }
            size_t l = strlen(el->valuestring);
            if (!qk_etsi_sae_id_valid(el->valuestring, l)) {
                rc = qk_err_set(err, QK_EINVAL, "additional_slave_SAE_IDs holds an invalid SAE ID");
                goto done;
            }
            memcpy(out->add[out->nadd], el->valuestring, l + 1);
            out->nadd++;
        }
    }
    rc = parse_extensions(root, details, err);
done:
    cJSON_Delete(root);
    return rc;
}

int qk_etsi_check_key_req(const qk_etsi_key_req *r, const qk_key_limits *lim, const char *caller,
                          const char *slave, size_t *number, uint32_t *size_bits, qk_err *err)
{
    int64_t num = r->has_number ? r->number : 1;
    int64_t size = r->has_size ? r->size : (int64_t)lim->default_size_bits;
    if (num < 1)
        return qk_err_set(err, QK_EINVAL, "number shall be at least 1");
    if ((uint64_t)num > lim->max_keys_per_request)
        return qk_err_set(err, QK_EINVAL, "number exceeds max_key_per_request (%u)",
                          lim->max_keys_per_request);
    if (size % 8 != 0)
        return qk_err_set(err, QK_EINVAL, QK_ETSI_MSG_SIZE8);
    if (size < (int64_t)lim->min_size_bits || size > (int64_t)lim->max_size_bits)
        return qk_err_set(err, QK_EINVAL, "size shall be between %u and %u bits",
                          lim->min_size_bits, lim->max_size_bits);
    if (strcmp(slave, caller) == 0)
        return qk_err_set(err, QK_EINVAL, "slave_SAE_ID must differ from the calling SAE ID");
    if (r->add_present && r->nadd == 0)
        return qk_err_set(err, QK_EINVAL, "additional_slave_SAE_IDs shall not be empty");
    if (r->nadd > lim->max_sae_id_count) {
        if (lim->max_sae_id_count == 0)
            return qk_err_set(err, QK_EINVAL, "key multicast is not supported");
        return qk_err_set(err, QK_EINVAL, "more than max_SAE_ID_count (%u) additional SAE IDs",
                          lim->max_sae_id_count);
    }
    for (size_t i = 0; i < r->nadd; i++) {
        if (strcmp(r->add[i], slave) == 0)
            return qk_err_set(err, QK_EINVAL,
                              "additional_slave_SAE_IDs shall not repeat the slave_SAE_ID");
        if (strcmp(r->add[i], caller) == 0)
            return qk_err_set(err, QK_EINVAL,
                              "additional_slave_SAE_IDs shall not hold the calling SAE ID");
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->add[i], r->add[j]) == 0)
                return qk_err_set(err, QK_EINVAL, "additional_slave_SAE_IDs holds duplicates");
    }
    *number = (size_t)num;
    *size_bits = (uint32_t)size;
    return 0;
}

uint64_t qk_etsi_stored_key_count(const qk_key_limits *lim, bool local, uint64_t outstanding,
                                  uint64_t pool_bytes)
{
    uint64_t quota = outstanding >= lim->max_key_count ? 0 : lim->max_key_count - outstanding;
    if (local)
        return quota;
    uint64_t key_bytes = lim->default_size_bits / 8;
    uint64_t pool_keys = key_bytes ? pool_bytes / key_bytes : 0;
    return pool_keys < quota ? pool_keys : quota;
}

int qk_etsi_norm_key_id(const char *s, size_t len, char out[QK_KEY_ID_LEN + 1])
{
    qk_uuid u;
    if (!s || len != QK_UUID_STR_LEN || qk_uuid_parse(s, len, &u) != 0)
        return -1;
    qk_uuid_format(&u, out);
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether the n normalised IDs are all different: sorted copies of their pointers, neighbours
 * compared (n log n; comparing every pair cost ~500,000 comparisons for 1024 IDs). */
static int no_duplicates(const char (*list)[QK_KEY_ID_LEN + 1], size_t n, qk_err *err)
{
    if (n < 2)
        return 0;
    const char **p = malloc(n * sizeof *p);
    if (!p)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        p[i] = list[i];
    qsort(p, n, sizeof *p, id_cmp);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (strcmp(p[i - 1], p[i]) == 0)
            rc = qk_err_set(err, QK_EINVAL, "key_IDs holds duplicates");
    free(p);
    return rc;
}

int qk_etsi_parse_key_ids(const char *body, size_t len, size_t max_ids,
                          char (**ids)[QK_KEY_ID_LEN + 1], size_t *n, qk_err *err)
{
    *ids = NULL;
    *n = 0;
    if (is_blank(body, len))
        return qk_err_set(err, QK_EINVAL, "key_IDs is required");
    cJSON *root = qk_json_parse(body, len, QK_ETSI_MAX_BODY, err);
    if (!root) {
        qk_err_prefix(err, "invalid Key IDs");
        return QK_EINVAL;
    }
    int rc = 0;
    char(*list)[QK_KEY_ID_LEN + 1] = NULL;
    if (!cJSON_IsObject(root)) {
        rc = qk_err_set(err, QK_EINVAL, "Key IDs must be a JSON object");
        goto done;
    }
    const cJSON *arr = NULL;
    rc = qk_json_get_array(root, "key_IDs", true, &arr, err);
    if (rc != 0)
        goto done;
    int cnt = cJSON_GetArraySize(arr);
    if (cnt <= 0) {
        rc = qk_err_set(err, QK_EINVAL, "key_IDs shall not be empty");
        goto done;
    }
    if ((size_t)cnt > max_ids) {
        rc = qk_err_set(err, QK_EINVAL, "too many key_IDs (at most %zu)", max_ids);
        goto done;
    }
    list = calloc((size_t)cnt, sizeof *list);
    if (!list) {
        rc = qk_err_set(err, QK_ENOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, arr)
    {
        if (!cJSON_IsObject(el)) {
            rc = qk_err_set(err, QK_EINVAL, "key_IDs must be an array of objects");
            goto done;
        }
        const char *s = NULL;
        rc = qk_json_get_string(el, "key_ID", true, &s, NULL, err);
        if (rc != 0)
            goto done;
        if (qk_etsi_norm_key_id(s, strlen(s), list[k]) != 0) {
            rc = qk_err_set(err, QK_EINVAL, "key_ID is not a UUID");
            goto done;
        }
        k++;
    }
    if ((rc = no_duplicates(list, k, err)) != 0)
        goto done;
    *ids = list;
    *n = k;
    list = NULL;
done:
    free(list);
    cJSON_Delete(root);
    return rc;
}

int qk_etsi_key_container(const qk_key_batch *b, char **json, size_t *len)
{
    static const char head[] = "{\"keys\":[";
    static const char e1[] = "{\"key_ID\":\"";
    static const char e2[] = "\",\"key\":\"";
    static const char e3[] = "\"}";
    static const char tail[] = "]}";
    *json = NULL;
    *len = 0;
    size_t total = sizeof head - 1 + sizeof tail - 1;
    for (size_t i = 0; i < b->n; i++) {
        size_t item = (sizeof e1 - 1) + QK_KEY_ID_LEN + (sizeof e2 - 1) +
                      qk_base64_encoded_len(b->lens[i]) + (sizeof e3 - 1) + 1;
        if (total > SIZE_MAX / 2 - item)
            return QK_ENOMEM;
        total += item;
    }
    char *out = qk_secure_alloc(total + 1);
    if (!out)
        return QK_ENOMEM;
    size_t pos = 0;
#define PUT(s, l)                                                                                  \
    do {                                                                                           \
        memcpy(out + pos, (s), (l));                                                               \
        pos += (l);                                                                                \
    } while (0)
    PUT(head, sizeof head - 1);
    for (size_t i = 0; i < b->n; i++) {
        if (i)
            PUT(",", 1);
        PUT(e1, sizeof e1 - 1);
        PUT(b->ids[i], strnlen(b->ids[i], QK_KEY_ID_LEN));
        PUT(e2, sizeof e2 - 1);
        size_t w = qk_base64_encode(b->keys[i], b->lens[i], out + pos, total + 1 - pos);
        if (w == 0 && b->lens[i] != 0) {
            qk_secure_free(out);
            return QK_ENOMEM;
        }
        pos += w;
        PUT(e3, sizeof e3 - 1);
    }
    PUT(tail, sizeof tail - 1);
#undef PUT
    out[pos] = '\0';
    *json = out;
    *len = pos;
    return 0;
}

char *qk_etsi_key_id_list(const qk_key_batch *b)
{
    if (!b || b->n == 0)
        return NULL;
    size_t cap = b->n * (QK_KEY_ID_LEN + 1) + 1;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t pos = 0;
    for (size_t i = 0; i < b->n; i++) {
        size_t l = strnlen(b->ids[i], QK_KEY_ID_LEN);
        if (i)
            s[pos++] = ',';
        memcpy(s + pos, b->ids[i], l);
        pos += l;
    }
    s[pos] = '\0';
    return s;
}
