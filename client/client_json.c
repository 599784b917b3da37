/* client_json.c - strict, bounded readers for untrusted JSON responses. */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "json_util.h"
#include "secbuf.h"

int qkc_parse_object(const char *body, size_t len, cJSON **out, qkc_error *e)
{
    *out = NULL;
    qk_err jerr = {0};
    cJSON *j = qk_json_parse(body, len, QKC_JSON_MAX, &jerr);
    if (!j)
        return qkc_fail(e, jerr.code == QK_ENOMEM ? QKC_EINTERNAL : QKC_EMALFORMED, "response: %s",
                        jerr.msg);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return qkc_fail(e, QKC_EMALFORMED, "response: not a JSON object");
    }
    *out = j;
    return 0;
}

int qkc_get_text(const cJSON *obj, const char *name, bool required, char *out, size_t cap,
                 qkc_error *e)
{
    out[0] = '\0';
    const char *s = NULL;
    bool present = false;
    qk_err jerr = {0};
    if (qk_json_get_string(obj, name, required, &s, &present, &jerr) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "response: %s", jerr.msg);
    if (!present)
        return 0;
    size_t n = strlen(s);
    if (n == 0)
        return qkc_fail(e, QKC_EMALFORMED, "response: \"%s\" is empty", name);
    if (n >= cap)
        return qkc_fail(e, QKC_EMALFORMED, "response: \"%s\" is longer than %zu bytes", name,
                        cap - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return qkc_fail(e, QKC_EMALFORMED, "response: \"%s\" holds a control character", name);
    memcpy(out, s, n + 1);
    return 0;
}

int qkc_get_object_json(const cJSON *obj, const char *name, char **out, qkc_error *e)
{
    *out = NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it)
        return 0;
    if (!cJSON_IsObject(it))
        return qkc_fail(e, QKC_EMALFORMED, "response: \"%s\" must be an object", name);
    *out = cJSON_PrintUnformatted(it);
    if (!*out)
        return qkc_fail(e, QKC_EINTERNAL, "out of memory");
    return 0;
}
