/* conform_skip_util.c - helpers of the SKIP checks: cached capabilities, remote system IDs,
 * keys obtained for a check, lenient /key parsing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "conform_skip_util.h"
#include "json_util.h"
#include "secbuf.h"

void cs_key_free(cs_key *k)
{
    qk_secure_free(k->key);
    memset(k, 0, sizeof *k);
}

int cs_parse_key(const char *body, size_t len, cs_key *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    qk_err jerr;
    cJSON *j = body ? qk_json_parse(body, len, QKC_JSON_MAX, &jerr) : NULL;
    const cJSON *id = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "keyId") : NULL;
    const cJSON *k = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "key") : NULL;
    int rc = -1;
    if (!cJSON_IsObject(j))
        snprintf(why, cap, "not a JSON object");
    else if (!cJSON_IsString(id) || !id->valuestring)
        snprintf(why, cap, "no string \"keyId\"");
    else if (!cJSON_IsString(k) || !k->valuestring)
        snprintf(why, cap, "no string \"key\"");
    else if (strlen(id->valuestring) >= sizeof out->keyId)
        snprintf(why, cap, "keyId longer than %zu characters", sizeof out->keyId - 1);
    else if (strlen(k->valuestring) > 2 * QKC_SKIP_MAX_BYTES)
        snprintf(why, cap, "key longer than %d hex digits", 2 * QKC_SKIP_MAX_BYTES);
    else if (!(out->key = qk_secure_alloc(strlen(k->valuestring) + 1)))
        snprintf(why, cap, "out of secure memory");
    else {
        memcpy(out->key, k->valuestring, strlen(k->valuestring) + 1);
        snprintf(out->keyId, sizeof out->keyId, "%s", id->valuestring);
        rc = 0;
    }
    qk_json_delete_wiped(j);
    return rc;
}

bool cs_is_hex(const char *s, bool *has_upper)
{
    bool up = false;
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        if (!isxdigit((unsigned char)*p))
            return false;
        up |= isupper((unsigned char)*p) != 0;
    }
    if (has_upper)
        *has_upper = up;
    return true;
}

bool cs_req(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *method, const char *path,
            qkc_raw_response *resp)
{
    if (cf_request(ctx, s, r, method, path, NULL, NULL, resp) != 0) {
        if (r->status != CF_SKIP)
            cf_violation(r, "no HTTP response");
        return false;
    }
    return true;
}

const qkc_skip_caps *cs_caps(cf_ctx *ctx, cf_side_ix s, cf_result *r)
{
    int i = s == CF_SIDE_A ? 0 : 1;
    if (!ctx->caps_done[i]) {
        ctx->caps_done[i] = true;
        qkc_raw_response resp;
        if (cf_request(ctx, s, r, "GET", "/capabilities", NULL, NULL, &resp) == 0) {
            qkc_error e;
            if (resp.status == 200 &&
                qkc_skip_parse_caps(resp.body, resp.body_len, &ctx->caps[i], &e) == 0)
                ctx->caps_ok[i] = true;
            else if (resp.status == 200)
                cf_note(r, "capabilities unusable: %s", e.msg);
            qkc_raw_response_free(&resp);
        }
    }
    if (!ctx->caps_ok[i]) {
        if (r->status != CF_FAIL)
            cf_set(r, CF_SKIP, "precondition: %s's capabilities are unusable (skip.caps.fields)",
                   i ? "B" : "A");
        return NULL;
    }
    return &ctx->caps[i];
}

const char *cs_remote(cf_ctx *ctx, cf_side_ix s, cf_result *r)
{
    if (ctx->side[s].id)
        return ctx->side[s].id;
    const qkc_skip_caps *c = cs_caps(ctx, s == CF_SIDE_A ? CF_SIDE_B : CF_SIDE_A, r);
    return c ? c->localSystemID : NULL;
}

static int key_path(char *out, size_t cap, const char *key_id, const char *remote)
{
    int n = snprintf(out, cap, "/key");
    if (key_id) {
        if (snprintf(out + n, cap - (size_t)n, "/") < 0 || qkc_url_append_encoded(out, cap, key_id))
            return -1;
    }
    if (remote) {
        size_t l = strlen(out);
        if (l + 17 >= cap)
            return -1;
        memcpy(out + l, "?remoteSystemID=", 17);
        if (qkc_url_append_encoded(out, cap, remote) != 0)
            return -1;
    }
    return 0;
}

int cs_new_key(cf_ctx *ctx, cf_result *r, int64_t size, cs_key *out)
{
    memset(out, 0, sizeof *out);
    const char *remote = cs_remote(ctx, CF_SIDE_A, r);
    if (!remote)
        return -1;
    char path[QKC_URL_MAX];
    if (key_path(path, sizeof path - 32, NULL, remote) != 0)
        return -1;
    if (size)
        snprintf(path + strlen(path), 32, "&size=%lld", (long long)size);
    qkc_raw_response resp;
    if (!cs_req(ctx, CF_SIDE_A, r, "GET", path, &resp))
        return -1;
    char why[128];
    int rc = -1;
    if (resp.status != 200)
        cf_violation(r, "GET /key answered %ld, expected 200", resp.status);
    else if (cs_parse_key(resp.body, resp.body_len, out, why, sizeof why) != 0)
        cf_violation(r, "the /key answer is unusable: %s", why);
    else
        rc = 0;
    qkc_raw_response_free(&resp);
    return rc;
}

int cs_fetch(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *key_id, const char *remote,
             qkc_raw_response *resp)
{
    memset(resp, 0, sizeof *resp);
    if (!remote)
        remote = cs_remote(ctx, s, r);
    char path[QKC_URL_MAX];
    if (!remote || key_path(path, sizeof path, key_id, remote) != 0)
        return -1;
    return cs_req(ctx, s, r, "GET", path, resp) ? 0 : -1;
}
