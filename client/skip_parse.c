/* skip_parse.c - SKIP (draft-cisco-skip-02) bodies: /capabilities, /key, /entropy (untrusted
 * input). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "codec.h"
#include "json_util.h"
#include "secbuf.h"

void qkc_skip_caps_free(qkc_skip_caps *caps)
{
    if (!caps)
        return;
    free(caps->remoteSystemID);
    memset(caps, 0, sizeof *caps);
}

void qkc_skip_key_free(qkc_skip_key *k)
{
    if (!k)
        return;
    qk_secure_free(k->key);
    memset(k, 0, sizeof *k);
}

void qkc_skip_entropy_free(qkc_skip_entropy *en)
{
    if (!en)
        return;
    qk_secure_free(en->bytes);
    memset(en, 0, sizeof *en);
}

int qkc_skip_parse_caps(const char *body, size_t len, qkc_skip_caps *out, qkc_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    int rc = qkc_parse_object(body, len, &j, e);
    if (rc != 0)
        return rc;
    qk_err jerr = {0};
    const cJSON *arr = NULL;
    if (qk_json_get_bool(j, "entropy", true, &out->entropy, NULL, &jerr) != 0 ||
        qk_json_get_bool(j, "key", true, &out->key, NULL, &jerr) != 0 ||
        qk_json_get_array(j, "remoteSystemID", true, &arr, &jerr) != 0) {
        rc = qkc_fail(e, QKC_EMALFORMED, "capabilities: %s", jerr.msg);
        goto out;
    }
    rc = qkc_get_text(j, "algorithm", true, out->algorithm, sizeof out->algorithm, e);
    if (rc == 0)
        rc = qkc_get_text(j, "localSystemID", true, out->localSystemID, sizeof out->localSystemID,
                          e);
    if (rc != 0)
        goto out;
    int n = cJSON_GetArraySize(arr);
    if (n > QKC_SKIP_MAX_REMOTES) {
        rc = qkc_fail(e, QKC_EMALFORMED, "capabilities: more than %d remoteSystemID entries",
                      QKC_SKIP_MAX_REMOTES);
        goto out;
    }
    if (n > 0) {
        out->remoteSystemID = calloc((size_t)n, sizeof *out->remoteSystemID);
        if (!out->remoteSystemID) {
            rc = qkc_fail(e, QKC_EINTERNAL, "out of memory");
            goto out;
        }
    }
    for (const cJSON *it = arr->child; it && out->n_remote < (size_t)n; it = it->next) {
        size_t l = cJSON_IsString(it) && it->valuestring ? strlen(it->valuestring) : 0;
        if (l == 0 || l >= QKC_ID_MAX) {
            rc = qkc_fail(e, QKC_EMALFORMED,
                          "capabilities: remoteSystemID[%zu] is not a string of 1..%d bytes",
                          out->n_remote, QKC_ID_MAX - 1);
            goto out;
        }
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)it->valuestring[i] < 0x20 ||
                (unsigned char)it->valuestring[i] == 0x7f) {
                rc = qkc_fail(e, QKC_EMALFORMED,
                              "capabilities: remoteSystemID[%zu] holds a control character",
                              out->n_remote);
                goto out;
            }
        memcpy(out->remoteSystemID[out->n_remote++], it->valuestring, l + 1);
    }
out:
    cJSON_Delete(j);
    if (rc != 0)
        qkc_skip_caps_free(out);
    return rc;
}

/* Decode the hex string member `name` into secure memory (1..QKC_SKIP_MAX_BYTES bytes). */
static int get_hex_secret(const cJSON *j, const char *name, uint8_t **out, size_t *out_len,
                          qkc_error *e)
{
    const char *s = NULL;
    qk_err jerr = {0};
    if (qk_json_get_string(j, name, true, &s, NULL, &jerr) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "response: %s", jerr.msg);
    size_t l = strlen(s);
    if (l == 0 || l % 2 || l / 2 > QKC_SKIP_MAX_BYTES)
        return qkc_fail(e, QKC_EMALFORMED,
                        "response: \"%s\" must hold an even number of hex digits (1..%d bytes)",
                        name, QKC_SKIP_MAX_BYTES);
    *out = qk_secure_alloc(l / 2);
    if (!*out)
        return qkc_fail(e, QKC_EINTERNAL, "out of secure memory");
    if (qk_hex_decode(s, l, *out, l / 2, out_len) != 0)
        return qkc_fail(e, QKC_EMALFORMED, "response: \"%s\" is not hex", name);
    return 0;
}

int qkc_skip_parse_key(const char *body, size_t len, const char *expect_key_id, int64_t expect_bits,
                       qkc_skip_key *out, qkc_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    int rc = qkc_parse_object(body, len, &j, e);
    if (rc != 0)
        return rc;
    rc = qkc_get_text(j, "keyId", true, out->keyId, sizeof out->keyId, e);
    if (rc != 0)
        goto out;
    for (const char *p = out->keyId; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) {
            rc = qkc_fail(e, QKC_EMALFORMED, "response: keyId is not hex");
            goto out;
        }
    if (expect_key_id && strcasecmp(expect_key_id, out->keyId) != 0) {
        rc = qkc_fail(e, QKC_EMALFORMED, "response: keyId %s differs from the requested %s",
                      out->keyId, expect_key_id);
        goto out;
    }
    rc = get_hex_secret(j, "key", &out->key, &out->key_len, e);
    if (rc == 0 && expect_bits > 0 && out->key_len != (size_t)(expect_bits + 7) / 8)
        rc = qkc_fail(e, QKC_EMALFORMED, "response: key has %zu bits, %lld requested",
                      out->key_len * 8, (long long)expect_bits);
out:
    qk_json_delete_wiped(j);
    if (rc != 0)
        qkc_skip_key_free(out);
    return rc;
}

int qkc_skip_parse_entropy(const char *body, size_t len, int64_t min_bits, qkc_skip_entropy *out,
                           qkc_error *e)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    int rc = qkc_parse_object(body, len, &j, e);
    if (rc != 0)
        return rc;
    qk_err jerr = {0};
    if (qk_json_get_int(j, "minentropy", true, 1, (int64_t)QKC_SKIP_MAX_BYTES * 8, &out->minentropy,
                        NULL, &jerr) != 0) {
        rc = qkc_fail(e, QKC_EMALFORMED, "entropy: %s", jerr.msg);
        goto out;
    }
    rc = get_hex_secret(j, "randomStr", &out->bytes, &out->len, e);
    if (rc != 0)
        goto out;
    if ((uint64_t)out->minentropy > (uint64_t)out->len * 8)
        rc = qkc_fail(e, QKC_EMALFORMED, "entropy: minentropy %lld exceeds the %zu bits sent",
                      (long long)out->minentropy, out->len * 8);
    else if (min_bits > 0 && out->minentropy < min_bits)
        rc = qkc_fail(e, QKC_EMALFORMED, "entropy: minentropy %lld, %lld requested",
                      (long long)out->minentropy, (long long)min_bits);
out:
    qk_json_delete_wiped(j);
    if (rc != 0)
        qkc_skip_entropy_free(out);
    return rc;
}
