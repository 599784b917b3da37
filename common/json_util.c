/* json_util.c - cJSON helpers with strict type checking for untrusted input. */
#include "json_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "secbuf.h"

/* Deeper nesting than this is refused before cJSON sees the text (no legitimate
 * request in any of our APIs comes close). */
#define QK_JSON_MAX_DEPTH 32
/* Integers from 2^53 on cannot be held exactly in the double cJSON stores (2^53 + 1 parses
 * as 2^53), so only the "safe" range |v| <= 2^53 - 1 is accepted. */
#define QK_JSON_MAX_EXACT 9007199254740991.0

/* One pass over the raw text before cJSON sees it: nesting depth outside strings, and escapes
 * inside strings. A "\u0000" escape (RFC 8259 section 7 allows any code point, U+0000
 * included) would decode into a NUL that cuts the C string cJSON hands back, so that
 * "SAE_B2\u0000x" would read as "SAE_B2": no API of ours has a use for U+0000, so any string
 * (value or member name) that decodes to a NUL is refused. A surrogate pair never decodes to
 * U+0000, so the one spelling to look for is \u followed by four zero digits. */
enum prescan { PRESCAN_OK, PRESCAN_DEEP, PRESCAN_NUL_ESCAPE };

static enum prescan prescan(const char *s, size_t len)
{
    unsigned depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < len && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
                    return PRESCAN_NUL_ESCAPE;
                i++; /* skip the escaped character */
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > QK_JSON_MAX_DEPTH)
                return PRESCAN_DEEP;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return PRESCAN_OK;
}

cJSON *qk_json_parse(const char *buf, size_t len, size_t max_len, qk_err *err)
{
    if (!buf && len) {
        qk_err_set(err, QK_EINVAL, "no JSON body");
        return NULL;
    }
    if (len > max_len) {
        qk_err_set(err, QK_EINVAL, "JSON body too large (%zu bytes, limit %zu)", len, max_len);
        return NULL;
    }
    if (len == 0) {
        qk_err_set(err, QK_EINVAL, "empty JSON body");
        return NULL;
    }
    if (memchr(buf, '\0', len)) {
        qk_err_set(err, QK_EINVAL, "invalid JSON: NUL byte in body");
        return NULL;
    }
    switch (prescan(buf, len)) {
    case PRESCAN_OK:
        break;
    case PRESCAN_DEEP:
        qk_err_set(err, QK_EINVAL, "invalid JSON: nesting deeper than %d", QK_JSON_MAX_DEPTH);
        return NULL;
    case PRESCAN_NUL_ESCAPE:
        qk_err_set(err, QK_EINVAL, "invalid JSON: a string decodes to a NUL (\\u0000)");
        return NULL;
    }
    /* The input need not be NUL-terminated: parse a bounded, terminated copy. */
    char *copy = malloc(len + 1);
    if (!copy) {
        qk_err_set(err, QK_ENOMEM, "out of memory parsing JSON");
        return NULL;
    }
    memcpy(copy, buf, len);
    copy[len] = '\0';
    const char *end = NULL;
    /* Length includes the NUL so that require_null_terminated can see it: anything but
     * whitespace after the value is trailing garbage. */
    cJSON *j = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 1);
    if (!j) {
        size_t off = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
        qk_err_set(err, QK_EINVAL, "invalid JSON near offset %zu", off);
    }
    free(copy);
    return j;
}

/* Find the member; refuses a non-object and duplicate names. 0 (item may be NULL) or error. */
static int find_member(const cJSON *obj, const char *name, const cJSON **item, qk_err *err)
{
    *item = NULL;
    if (!name)
        return qk_err_set(err, QK_EINVAL, "missing member name");
    if (!cJSON_IsObject(obj))
        return qk_err_set(err, QK_EINVAL, "expected a JSON object");
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (c->string && strcmp(c->string, name) == 0) {
            if (*item)
                return qk_err_set(err, QK_EINVAL, "duplicate member \"%s\"", name);
            *item = c;
        }
    }
    return 0;
}

/* Common prologue: locate, report presence, enforce required. Returns 0 with *item NULL
 * when absent and optional. */
static int lookup(const cJSON *obj, const char *name, bool required, const cJSON **item,
                  bool *present, qk_err *err)
{
    if (present)
        *present = false;
    int rc = find_member(obj, name, item, err);
    if (rc != 0)
        return rc;
    if (!*item) {
        if (required)
            return qk_err_set(err, QK_EINVAL, "missing required member \"%s\"", name);
        return 0;
    }
    if (present)
        *present = true;
    return 0;
}

int qk_json_get_string(const cJSON *obj, const char *name, bool required, const char **out,
                       bool *present, qk_err *err)
{
    const cJSON *it;
    int rc = lookup(obj, name, required, &it, present, err);
    if (rc != 0 || !it)
        return rc;
    if (!cJSON_IsString(it) || !it->valuestring)
        return qk_err_set(err, QK_EINVAL, "member \"%s\" must be a string", name);
    if (out)
        *out = it->valuestring;
    return 0;
}

int qk_json_get_int(const cJSON *obj, const char *name, bool required, int64_t min, int64_t max,
                    int64_t *out, bool *present, qk_err *err)
{
    const cJSON *it;
    int rc = lookup(obj, name, required, &it, present, err);
    if (rc != 0 || !it)
        return rc;
    if (!cJSON_IsNumber(it))
        return qk_err_set(err, QK_EINVAL, "member \"%s\" must be an integer", name);
    double v = it->valuedouble;
    if (!isfinite(v) || v != trunc(v))
        return qk_err_set(err, QK_EINVAL, "member \"%s\" must be an integer", name);
    if (v > QK_JSON_MAX_EXACT || v < -QK_JSON_MAX_EXACT)
        return qk_err_set(err, QK_EINVAL, "member \"%s\" is out of range", name);
    int64_t iv = (int64_t)v;
    if (iv < min || iv > max)
        return qk_err_set(err, QK_EINVAL, "member \"%s\" must be between %lld and %lld", name,
                          (long long)min, (long long)max);
    if (out)
        *out = iv;
    return 0;
}

int qk_json_get_bool(const cJSON *obj, const char *name, bool required, bool *out, bool *present,
                     qk_err *err)
{
    const cJSON *it;
    int rc = lookup(obj, name, required, &it, present, err);
    if (rc != 0 || !it)
        return rc;
    if (!cJSON_IsBool(it))
        return qk_err_set(err, QK_EINVAL, "member \"%s\" must be true or false", name);
    if (out)
        *out = cJSON_IsTrue(it);
    return 0;
}

int qk_json_get_array(const cJSON *obj, const char *name, bool required, const cJSON **out,
                      qk_err *err)
{
    const cJSON *it;
    if (out)
        *out = NULL;
    int rc = lookup(obj, name, required, &it, NULL, err);
    if (rc != 0 || !it)
        return rc;
    if (!cJSON_IsArray(it))
        return qk_err_set(err, QK_EINVAL, "member \"%s\" must be an array", name);
    if (out)
        *out = it;
    return 0;
}

const char *qk_json_str_or(const cJSON *obj, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

double qk_json_num_or(const cJSON *obj, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

char *qk_json_print(const cJSON *j)
{
    return j ? cJSON_PrintUnformatted(j) : NULL;
}

char *qk_json_message(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char *text = NULL;
    if (cJSON_AddStringToObject(o, "message", msg ? msg : "") != NULL)
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static void wipe_strings(cJSON *j)
{
    /* Iterative over siblings, recursive over children: depth is bounded by qk_json_parse. */
    for (; j; j = j->next) {
        if (j->valuestring)
            qk_wipe(j->valuestring, strlen(j->valuestring));
        if (j->child)
            wipe_strings(j->child);
    }
}

void qk_json_delete_wiped(cJSON *j)
{
    if (!j)
        return;
    wipe_strings(j);
    cJSON_Delete(j);
}
