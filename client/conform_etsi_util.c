/* conform_etsi_util.c - helpers of the ETSI GS QKD 014 checks: paths, cached Status, keys
 * obtained for a check, dec_keys calls and comparisons, error expectations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "codec.h"
#include "conform_etsi_util.h"
#include "json_util.h"
#include "secbuf.h"

void ce_keys_free(ce_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        qk_secure_free(k->key[i]);
    memset(k, 0, sizeof *k);
}

int ce_parse_keys(const char *body, size_t len, ce_keys *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    qk_err jerr;
    cJSON *j = body ? qk_json_parse(body, len, QKC_JSON_MAX, &jerr) : NULL;
    if (!j || !cJSON_IsObject(j)) {
        snprintf(why, cap, "not a JSON object");
        qk_json_delete_wiped(j);
        return -1;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "keys");
    if (!a)
        a = cJSON_GetObjectItemCaseSensitive(j, "Keys");
    int rc = -1;
    if (!cJSON_IsArray(a)) {
        snprintf(why, cap, "no \"keys\" array");
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (out->n == CE_MAX_KEYS) {
            snprintf(why, cap, "more than %d keys", CE_MAX_KEYS);
            goto out;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "key_ID");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "key");
        if (!cJSON_IsString(id) || !cJSON_IsString(k) || !id->valuestring || !k->valuestring ||
            strlen(id->valuestring) >= QKC_ID_MAX ||
            strlen(k->valuestring) > 4 * QKC_MAX_KEY_SIZE) {
            snprintf(why, cap, "key %zu lacks string key_ID/key members", out->n);
            goto out;
        }
        size_t kl = strlen(k->valuestring);
        char *ks = qk_secure_alloc(kl + 1);
        if (!ks) {
            snprintf(why, cap, "out of secure memory");
            goto out;
        }
        memcpy(ks, k->valuestring, kl + 1);
        snprintf(out->id[out->n], QKC_ID_MAX, "%s", id->valuestring);
        out->key[out->n++] = ks;
    }
    rc = 0;
out:
    qk_json_delete_wiped(j);
    if (rc != 0)
        ce_keys_free(out);
    return rc;
}

int ce_path(char *out, size_t cap, const char *sae, bool raw_sae, const char *op, const char *query)
{
    int n = snprintf(out, cap, "/api/v1/keys/");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    if (raw_sae) {
        size_t l = strlen(out);
        if (l + strlen(sae) + 1 > cap)
            return -1;
        memcpy(out + l, sae, strlen(sae) + 1);
    } else if (qkc_url_append_encoded(out, cap, sae) != 0) {
        return -1;
    }
    size_t l = strlen(out);
    n = snprintf(out + l, cap - l, "/%s%s", op, query ? query : "");
    return n < 0 || (size_t)n >= cap - l ? -1 : 0;
}

const qkc_etsi_status *ce_status(cf_ctx *ctx, cf_result *r)
{
    if (ctx->status_done) {
        if (!ctx->status_ok) {
            cf_set(r, CF_SKIP,
                   "precondition: the master's Status is unusable (etsi.status.fields)");
            return NULL;
        }
        cf_note(r,
                "Status (from an earlier request): key_size=%lld min/max_key_size=%lld/%lld "
                "max_key_per_request=%lld max_SAE_ID_count=%lld",
                (long long)ctx->status.key_size, (long long)ctx->status.min_key_size,
                (long long)ctx->status.max_key_size, (long long)ctx->status.max_key_per_request,
                (long long)ctx->status.max_SAE_ID_count);
        return &ctx->status;
    }
    ctx->status_done = true;
    char path[QKC_URL_MAX];
    if (!ctx->side[CF_SIDE_SLAVE].id ||
        ce_path(path, sizeof path, ctx->side[CF_SIDE_SLAVE].id, false, "status", NULL) != 0) {
        cf_set(r, CF_SKIP, "no slave SAE ID");
        return NULL;
    }
    qkc_raw_response resp;
    if (cf_request(ctx, CF_SIDE_MASTER, r, "GET", path, NULL, NULL, &resp) != 0) {
        cf_set(r, CF_SKIP, "precondition: Status request failed");
        return NULL;
    }
    qkc_error e;
    if (resp.status == 200 &&
        qkc_etsi_parse_status(resp.body, resp.body_len, &ctx->status, &e) == 0) {
        ctx->status_ok = true;
    } else {
        cf_set(r, CF_SKIP, "precondition: the master's Status is unusable (etsi.status.fields)");
    }
    qkc_raw_response_free(&resp);
    return ctx->status_ok ? &ctx->status : NULL;
}

int ce_obtain(cf_ctx *ctx, cf_result *r, int n, const char *additional_json, ce_keys *out)
{
    memset(out, 0, sizeof *out);
    char path[QKC_URL_MAX], body[2048];
    if (!ctx->side[CF_SIDE_SLAVE].id ||
        ce_path(path, sizeof path, ctx->side[CF_SIDE_SLAVE].id, false, "enc_keys", NULL) != 0) {
        cf_set(r, CF_SKIP, "no slave SAE ID");
        return -1;
    }
    int w = snprintf(body, sizeof body, "{\"number\":%d%s%s}", n,
                     additional_json ? ",\"additional_slave_SAE_IDs\":" : "",
                     additional_json ? additional_json : "");
    if (w < 0 || (size_t)w >= sizeof body) {
        cf_set(r, CF_FAIL, "internal: request too long");
        return -1;
    }
    qkc_raw_response resp;
    if (cf_request(ctx, CF_SIDE_MASTER, r, "POST", path, body, "application/json", &resp) != 0) {
        cf_set(r, CF_SKIP, "precondition: enc_keys failed");
        return -1;
    }
    char why[128];
    int rc = -1;
    if (resp.status != 200)
        cf_set(r, CF_SKIP, "precondition: enc_keys answered %ld", resp.status);
    else if (ce_parse_keys(resp.body, resp.body_len, out, why, sizeof why) != 0)
        cf_set(r, CF_SKIP, "precondition: enc_keys container unusable: %s", why);
    else if (out->n != (size_t)n)
        cf_set(r, CF_SKIP, "precondition: enc_keys returned %zu keys, asked for %d", out->n, n);
    else
        rc = 0;
    if (rc != 0)
        ce_keys_free(out);
    qkc_raw_response_free(&resp);
    return rc;
}

int ce_fetch(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *const *ids, size_t n, bool post,
             qkc_raw_response *resp)
{
    memset(resp, 0, sizeof *resp);
    const char *master = ctx->side[CF_SIDE_MASTER].id;
    char path[QKC_URL_MAX], q[QKC_ID_MAX * 3 + 16] = "?key_ID=";
    if (!master) {
        cf_set(r, CF_SKIP, "no master SAE ID");
        return QKC_EUSAGE;
    }
    if (!post) {
        if (n != 1 || qkc_url_append_encoded(q, sizeof q, ids[0]) != 0 ||
            ce_path(path, sizeof path, master, false, "dec_keys", q) != 0) {
            cf_set(r, CF_FAIL, "internal: bad dec_keys request");
            return QKC_EUSAGE;
        }
        return cf_request(ctx, s, r, "GET", path, NULL, NULL, resp);
    }
    if (ce_path(path, sizeof path, master, false, "dec_keys", NULL) != 0) {
        cf_set(r, CF_FAIL, "internal: bad dec_keys path");
        return QKC_EUSAGE;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON *a = j ? cJSON_AddArrayToObject(j, "key_IDs") : NULL;
    for (size_t i = 0; a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(a, o) || !cJSON_AddStringToObject(o, "key_ID", ids[i]))
            a = NULL;
    }
    char *body = a ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!body) {
        cf_set(r, CF_FAIL, "internal: out of memory");
        return QKC_EINTERNAL;
    }
    int rc = cf_request(ctx, s, r, "POST", path, body, "application/json", resp);
    cJSON_free(body);
    return rc;
}

void ce_key_tag(const char *key, char out[17])
{
    size_t len = strlen(key);
    size_t cap = len / 4 * 3 + 3;
    uint8_t *b = qk_secure_alloc(cap);
    size_t n = 0;
    if (b && qk_base64_decode(key, len, b, cap, &n) == 0)
        cf_key_tag(b, n, out);
    else
        cf_key_tag((const uint8_t *)key, len, out);
    qk_secure_free(b);
}

bool ce_same_keys(cf_result *r, const ce_keys *want, const qkc_raw_response *resp)
{
    ce_keys got;
    char why[128];
    if (resp->status != 200) {
        cf_violation(r, "dec_keys answered %ld, expected 200", resp->status);
        return false;
    }
    if (ce_parse_keys(resp->body, resp->body_len, &got, why, sizeof why) != 0) {
        cf_violation(r, "dec_keys container unusable: %s", why);
        return false;
    }
    bool ok = got.n == want->n;
    if (!ok)
        cf_violation(r, "dec_keys returned %zu keys, expected %zu", got.n, want->n);
    for (size_t i = 0; ok && i < want->n; i++) {
        size_t k = 0;
        while (k < got.n && strcasecmp(got.id[k], want->id[i]) != 0)
            k++;
        if (k == got.n) {
            cf_violation(r, "dec_keys did not return key_ID %s", want->id[i]);
            ok = false;
            break;
        }
        char ta[17], tb[17];
        ce_key_tag(want->key[i], ta);
        ce_key_tag(got.key[k], tb);
        if (strcmp(want->key[i], got.key[k]) != 0) {
            cf_violation(r, "key %s differs: sha256 prefix %s at the master, %s at the slave",
                         want->id[i], ta, tb);
            ok = false;
        } else {
            cf_note(r, "key %s: same key at both ends (sha256 prefix %s)", want->id[i], ta);
        }
    }
    ce_keys_free(&got);
    return ok;
}

bool ce_expect_error(cf_result *r, const qkc_raw_response *resp, long want, const char *msg)
{
    if (resp->status != want) {
        cf_violation(r, "status %ld, expected %ld", resp->status, want);
        return false;
    }
    char m[QKC_SERVER_MSG_MAX];
    if (!cf_has_message(resp->body, resp->body_len, m, sizeof m)) {
        cf_violation(r, "the %ld answer is not an Error object with a \"message\"", want);
        return false;
    }
    if (msg && strcmp(m, msg) != 0) {
        /* ETSI-014 6.4 asks for an Error object with a message, not for its words: another
         * text is a warning (the spec's own wording is quoted as the expected one). */
        cf_advice(r, "message \"%s\", the spec's wording is \"%s\" (advisory)", m, msg);
        return true;
    }
    return true;
}

int64_t ce_pick_size(const qkc_etsi_status *st)
{
    static const int64_t cand[] = {512, 1024, 384, 128, 192, 64, 2048};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (cand[i] != st->key_size && cand[i] >= st->min_key_size && cand[i] <= st->max_key_size)
            return cand[i];
    return st->key_size;
}
