/* skip_client.c - SKIP calls: GET /capabilities, /key, /key/{keyId}, /entropy. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client_internal.h"

int qkc_skip_capabilities(qkc_client *c, qkc_skip_caps *out, qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out)
        return qkc_fail(e, QKC_EUSAGE, "qkc_skip_capabilities: bad arguments");
    qkc_raw_response r;
    int rc = qkc_call(c, "GET", "/capabilities", NULL, 0, &r, e);
    if (rc != 0)
        return rc;
    rc = qkc_skip_parse_caps(r.body, r.body_len, out, e);
    qkc_raw_response_free(&r);
    return rc;
}

static int append_param(char *path, size_t cap, char *sep, const char *name, const char *value,
                        qkc_error *e)
{
    size_t l = strlen(path);
    if (l + strlen(name) + 3 >= cap)
        return qkc_fail(e, QKC_EUSAGE, "request path too long");
    snprintf(path + l, cap - l, "%c%s=", *sep, name);
    if (qkc_url_append_encoded(path, cap, value) != 0)
        return qkc_fail(e, QKC_EUSAGE, "request path too long");
    *sep = '&';
    return 0;
}

static int fetch_key(qkc_client *c, const char *path, const char *expect_id, int64_t bits,
                     qkc_skip_key *out, qkc_error *e)
{
    qkc_raw_response r;
    int rc = qkc_call(c, "GET", path, NULL, 0, &r, e);
    if (rc != 0)
        return rc;
    rc = qkc_skip_parse_key(r.body, r.body_len, expect_id, bits, out, e);
    qkc_raw_response_free(&r);
    return rc;
}

int qkc_skip_get_key(qkc_client *c, const char *remote_system_id, int64_t size_bits,
                     qkc_skip_key *out, qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out)
        return qkc_fail(e, QKC_EUSAGE, "qkc_skip_get_key: bad arguments");
    if (!remote_system_id || !remote_system_id[0] || strlen(remote_system_id) >= QKC_ID_MAX)
        return qkc_fail(e, QKC_EUSAGE, "remoteSystemID is empty or longer than %d bytes",
                        QKC_ID_MAX - 1);
    if (size_bits < 0 || size_bits > (int64_t)QKC_SKIP_MAX_BYTES * 8)
        return qkc_fail(e, QKC_EUSAGE, "size must be 1..%d bits", QKC_SKIP_MAX_BYTES * 8);
    char path[QKC_URL_MAX / 2] = "/key";
    char sep = '?';
    int rc = append_param(path, sizeof path, &sep, "remoteSystemID", remote_system_id, e);
    if (rc != 0)
        return rc;
    if (size_bits) {
        char num[24];
        snprintf(num, sizeof num, "%" PRId64, size_bits);
        if ((rc = append_param(path, sizeof path, &sep, "size", num, e)) != 0)
            return rc;
    }
    return fetch_key(c, path, NULL, size_bits, out, e);
}

int qkc_skip_get_key_by_id(qkc_client *c, const char *key_id, const char *remote_system_id,
                           qkc_skip_key *out, qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out)
        return qkc_fail(e, QKC_EUSAGE, "qkc_skip_get_key_by_id: bad arguments");
    if (!qkc_is_token(key_id, QKC_SKIP_KEYID_MAX))
        return qkc_fail(e, QKC_EUSAGE, "keyId is empty, longer than %d or holds spaces",
                        QKC_SKIP_KEYID_MAX - 1);
    if (remote_system_id && (!remote_system_id[0] || strlen(remote_system_id) >= QKC_ID_MAX))
        return qkc_fail(e, QKC_EUSAGE, "remoteSystemID is empty or longer than %d bytes",
                        QKC_ID_MAX - 1);
    char path[QKC_URL_MAX / 2] = "/key/";
    if (qkc_url_append_encoded(path, sizeof path, key_id) != 0)
        return qkc_fail(e, QKC_EUSAGE, "request path too long");
    char sep = '?';
    int rc = 0;
    if (remote_system_id)
        rc = append_param(path, sizeof path, &sep, "remoteSystemID", remote_system_id, e);
    if (rc != 0)
        return rc;
    return fetch_key(c, path, key_id, 0, out, e);
}

int qkc_skip_get_entropy(qkc_client *c, int64_t minentropy_bits, qkc_skip_entropy *out,
                         qkc_error *e)
{
    qkc_error_clear(e);
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out)
        return qkc_fail(e, QKC_EUSAGE, "qkc_skip_get_entropy: bad arguments");
    if (minentropy_bits < 0 || minentropy_bits > (int64_t)QKC_SKIP_MAX_BYTES * 8)
        return qkc_fail(e, QKC_EUSAGE, "minentropy must be 1..%d bits", QKC_SKIP_MAX_BYTES * 8);
    char path[64] = "/entropy";
    if (minentropy_bits)
        snprintf(path, sizeof path, "/entropy?minentropy=%" PRId64, minentropy_bits);
    qkc_raw_response r;
    int rc = qkc_call(c, "GET", path, NULL, 0, &r, e);
    if (rc != 0)
        return rc;
    rc = qkc_skip_parse_entropy(r.body, r.body_len, minentropy_bits, out, e);
    qkc_raw_response_free(&r);
    return rc;
}
