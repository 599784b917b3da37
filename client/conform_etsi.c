/* conform_etsi.c - ETSI GS QKD 014 checks: Get status, Get key (enc_keys), TLS; the ETSI
 * check table (the dec_keys, error and multicast checks are in conform_etsi_dec.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "codec.h"
#include "conform_etsi_util.h"
#include "json_util.h"
#include "secbuf.h"

#define SLAVE(ctx)  ((ctx)->side[CF_SIDE_SLAVE].id)
#define MASTER(ctx) ((ctx)->side[CF_SIDE_MASTER].id)

/* One request by the master to an ETSI path; false (r set) when no response arrived. */
static bool master_req(cf_ctx *ctx, cf_result *r, const char *method, const char *sae, bool raw,
                       const char *op, const char *query, const char *body, const char *ctype,
                       qkc_raw_response *resp)
{
    char path[QKC_URL_MAX];
    memset(resp, 0, sizeof *resp);
    if (!sae) {
        cf_set(r, CF_SKIP, "no SAE ID configured");
        return false;
    }
    if (ce_path(path, sizeof path, sae, raw, op, query) != 0) {
        cf_set(r, CF_FAIL, "internal: path too long");
        return false;
    }
    if (cf_request(ctx, CF_SIDE_MASTER, r, method, path, body, ctype, resp) != 0) {
        cf_violation(r, "no HTTP response");
        return false;
    }
    return true;
}

/* ---- Get status ---------------------------------------------------------------------------- */

static void status_fields(cf_ctx *ctx, cf_result *r)
{
    static const char *const strs[] = {"source_KME_ID", "target_KME_ID", "master_SAE_ID",
                                       "slave_SAE_ID"};
    static const char *const ints[] = {
        "key_size",     "stored_key_count", "max_key_count",   "max_key_per_request",
        "max_key_size", "min_key_size",     "max_SAE_ID_count"};
    qkc_raw_response resp;
    if (!master_req(ctx, r, "GET", SLAVE(ctx), false, "status", NULL, NULL, NULL, &resp))
        return;
    qk_err jerr;
    cJSON *j =
        resp.status == 200 ? qk_json_parse(resp.body, resp.body_len, QKC_JSON_MAX, &jerr) : NULL;
    if (resp.status != 200)
        cf_violation(r, "Get status answered %ld", resp.status);
    else if (!cJSON_IsObject(j))
        cf_violation(r, "the Status body is not a JSON object");
    for (size_t i = 0; cJSON_IsObject(j) && i < sizeof strs / sizeof strs[0]; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, strs[i]);
        if (!m)
            cf_violation(r, "Status lacks %s", strs[i]);
        else if (!cJSON_IsString(m))
            cf_violation(r, "Status %s is not a string", strs[i]);
    }
    for (size_t i = 0; cJSON_IsObject(j) && i < sizeof ints / sizeof ints[0]; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, ints[i]);
        if (!m)
            cf_violation(r, "Status lacks %s", ints[i]);
        else if (!cJSON_IsNumber(m) || m->valuedouble != (double)(int64_t)m->valuedouble)
            cf_violation(r, "Status %s is not an integer", ints[i]);
    }
    const cJSON *ext =
        cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "status_extension") : NULL;
    if (ext && !cJSON_IsObject(ext))
        cf_violation(r, "status_extension is not an object");
    cJSON_Delete(j);
    qkc_raw_response_free(&resp);
}

static void status_sae_ids(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (strcmp(st->master_SAE_ID, MASTER(ctx)) != 0)
        cf_violation(r, "master_SAE_ID is \"%s\", the caller is %s", st->master_SAE_ID,
                     MASTER(ctx));
    if (strcmp(st->slave_SAE_ID, SLAVE(ctx)) != 0)
        cf_violation(r, "slave_SAE_ID is \"%s\", the path names %s", st->slave_SAE_ID, SLAVE(ctx));
}

static void status_kme_ids(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (!st->source_KME_ID[0] || !st->target_KME_ID[0]) {
        cf_violation(r, "source_KME_ID or target_KME_ID is empty");
        return;
    }
    /* The slave asks its own KME about the master: the KME IDs must mirror. */
    char path[QKC_URL_MAX];
    if (ce_path(path, sizeof path, MASTER(ctx), false, "status", NULL) != 0)
        return;
    qkc_raw_response resp;
    if (cf_request(ctx, CF_SIDE_SLAVE, r, "GET", path, NULL, NULL, &resp) != 0) {
        cf_violation(r, "no answer to the slave's Status request");
        return;
    }
    qkc_etsi_status rev;
    qkc_error e;
    if (resp.status != 200 || qkc_etsi_parse_status(resp.body, resp.body_len, &rev, &e) != 0) {
        cf_violation(r, "the slave's Status for the master is unusable (%ld)", resp.status);
    } else {
        if (strcmp(rev.source_KME_ID, st->target_KME_ID) != 0)
            cf_violation(r, "master's target_KME_ID %s, but the slave's KME calls itself %s",
                         st->target_KME_ID, rev.source_KME_ID);
        if (strcmp(rev.target_KME_ID, st->source_KME_ID) != 0)
            cf_violation(r, "master's KME is %s, but the slave's Status targets %s",
                         st->source_KME_ID, rev.target_KME_ID);
        qkc_etsi_status_free(&rev);
    }
    qkc_raw_response_free(&resp);
}

static void status_limits(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (st->min_key_size < 1 || st->min_key_size > st->key_size || st->key_size > st->max_key_size)
        cf_violation(r, "not 1 <= min_key_size (%lld) <= key_size (%lld) <= max_key_size (%lld)",
                     (long long)st->min_key_size, (long long)st->key_size,
                     (long long)st->max_key_size);
    if (st->max_key_per_request < 1)
        cf_violation(r, "max_key_per_request %lld < 1", (long long)st->max_key_per_request);
    if (st->stored_key_count < 0 || st->stored_key_count > st->max_key_count)
        cf_violation(r, "not 0 <= stored_key_count (%lld) <= max_key_count (%lld)",
                     (long long)st->stored_key_count, (long long)st->max_key_count);
    if (st->max_SAE_ID_count < 0)
        cf_violation(r, "max_SAE_ID_count %lld < 0", (long long)st->max_SAE_ID_count);
}

static void resp_json_type(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (!master_req(ctx, r, "GET", SLAVE(ctx), false, "status", NULL, NULL, NULL, &resp))
        return;
    if (!cf_is_json_type(resp.content_type))
        cf_violation(r, "Status answer Content-Type \"%s\"", resp.content_type);
    qkc_raw_response_free(&resp);
    if (!master_req(ctx, r, "GET", SLAVE(ctx), false, "enc_keys", "?size=abc01", NULL, NULL, &resp))
        return;
    if (resp.status != 200 && resp.body_len > 0 && !cf_is_json_type(resp.content_type))
        cf_violation(r, "error answer Content-Type \"%s\"", resp.content_type);
    qkc_raw_response_free(&resp);
}

/* ---- Get key ------------------------------------------------------------------------------- */

/* enc_keys by the master; expect n keys of `bytes` each (strict base64 unless lenient). */
static void expect_keys(cf_result *r, const qkc_raw_response *resp, size_t n, size_t bytes)
{
    if (resp->status != 200) {
        cf_violation(r, "enc_keys answered %ld, expected 200", resp->status);
        return;
    }
    ce_keys k;
    char why[128];
    if (ce_parse_keys(resp->body, resp->body_len, &k, why, sizeof why) != 0) {
        cf_violation(r, "Key container unusable: %s", why);
        return;
    }
    if (k.n != n)
        cf_violation(r, "%zu keys, expected %zu", k.n, n);
    for (size_t i = 0; i < k.n; i++) {
        size_t len = strlen(k.key[i]);
        size_t cap = len / 4 * 3 + 3;
        uint8_t *b = qk_secure_alloc(cap);
        size_t got = 0;
        if (!b || qk_base64_decode(k.key[i], len, b, cap, &got) != 0) {
            /* etsi.enc.key-base64 reports the encoding; here estimate the length. */
            got = len * 3 / 4;
            cf_note(r, "key %zu is not strict base64 (length estimated)", i);
        }
        if (got != bytes)
            cf_violation(r, "key %zu has %zu bytes, expected %zu", i, got, bytes);
        else
            cf_note(r, "key %zu: %zu bytes", i, got);
        qk_secure_free(b);
    }
    ce_keys_free(&k);
}

static void enc_default_one_key(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    qkc_raw_response resp;
    if (!master_req(ctx, r, "GET", SLAVE(ctx), false, "enc_keys", NULL, NULL, NULL, &resp))
        return;
    expect_keys(r, &resp, 1, (size_t)(st->key_size + 7) / 8);
    qkc_raw_response_free(&resp);
}

static void enc_container_fields(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (!master_req(ctx, r, "GET", SLAVE(ctx), false, "enc_keys", NULL, NULL, NULL, &resp))
        return;
    qk_err jerr;
    cJSON *j =
        resp.status == 200 ? qk_json_parse(resp.body, resp.body_len, QKC_JSON_MAX, &jerr) : NULL;
    const cJSON *a = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "keys") : NULL;
    if (resp.status != 200)
        cf_set(r, CF_SKIP, "precondition: enc_keys answered %ld", resp.status);
    else if (!cJSON_IsArray(a))
        cf_violation(r, "no \"keys\" array in the Key container (case-sensitive)");
    const cJSON *e;
    const cJSON *arr = cJSON_IsArray(a) ? a : NULL;
    size_t i = 0;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsObject(e))
            cf_violation(r, "keys[%zu] is not an object", i);
        else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "key_ID")))
            cf_violation(r, "keys[%zu] has no string key_ID", i);
        else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "key")))
            cf_violation(r, "keys[%zu] has no string key", i);
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, "key_ID_extension");
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(e, "key_extension");
        if ((x && !cJSON_IsObject(x)) || (y && !cJSON_IsObject(y)))
            cf_violation(r, "keys[%zu]: an extension member is not an object", i);
        i++;
    }
    const cJSON *ce =
        cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "key_container_extension") : NULL;
    if (ce && !cJSON_IsObject(ce))
        cf_violation(r, "key_container_extension is not an object");
    qk_json_delete_wiped(j);
    qkc_raw_response_free(&resp);
}

/* key_ID and key encodings of one default key. */
static void enc_key_format(cf_ctx *ctx, cf_result *r, bool check_id, bool canonical)
{
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    qk_uuid u;
    const char *id = k.id[0];
    if (check_id) {
        if (strlen(id) != QK_UUID_STR_LEN || qk_uuid_parse(id, strlen(id), &u) != 0)
            cf_violation(r, "key_ID \"%s\" is not a UUID (8-4-4-4-12 hex)", id);
        else if (canonical) {
            char low[QK_UUID_STR_LEN + 1];
            qk_uuid_format(&u, low);
            if (strcmp(low, id) != 0)
                cf_violation(r, "key_ID \"%s\" is not lower-case canonical", id);
            else if (!qk_uuid_is_v4(&u))
                cf_violation(r, "key_ID \"%s\" is not a version-4 UUID", id);
        }
    } else {
        size_t len = strlen(k.key[0]);
        size_t cap = len / 4 * 3 + 3, got = 0;
        uint8_t *b = qk_secure_alloc(cap);
        if (!b || qk_base64_decode(k.key[0], len, b, cap, &got) != 0)
            cf_violation(r, "key (%zu chars) is not RFC 4648 base64 with '=' padding", len);
        else
            cf_note(r, "key: %zu base64 chars, %zu bytes", len, got);
        qk_secure_free(b);
    }
    ce_keys_free(&k);
}

static void enc_key_id_uuid(cf_ctx *ctx, cf_result *r)
{
    enc_key_format(ctx, r, true, false);
}
static void enc_key_id_canonical(cf_ctx *ctx, cf_result *r)
{
    enc_key_format(ctx, r, true, true);
}
static void enc_key_base64(cf_ctx *ctx, cf_result *r)
{
    enc_key_format(ctx, r, false, false);
}

static void enc_number_size(cf_ctx *ctx, cf_result *r, bool post)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    int64_t n = st->max_key_per_request < 3 ? st->max_key_per_request : 3;
    int64_t size = ce_pick_size(st);
    char q[96], body[96];
    snprintf(q, sizeof q, "?number=%lld&size=%lld", (long long)n, (long long)size);
    snprintf(body, sizeof body, "{\"number\":%lld,\"size\":%lld}", (long long)n, (long long)size);
    qkc_raw_response resp;
    if (!master_req(ctx, r, post ? "POST" : "GET", SLAVE(ctx), false, "enc_keys", post ? NULL : q,
                    post ? body : NULL, post ? "application/json" : NULL, &resp))
        return;
    expect_keys(r, &resp, (size_t)n, (size_t)(size + 7) / 8);
    qkc_raw_response_free(&resp);
}

static void enc_get_number_size(cf_ctx *ctx, cf_result *r)
{
    enc_number_size(ctx, r, false);
}
static void enc_post_number_size(cf_ctx *ctx, cf_result *r)
{
    enc_number_size(ctx, r, true);
}

static void enc_post_empty(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    qkc_raw_response resp;
    if (!master_req(ctx, r, "POST", SLAVE(ctx), false, "enc_keys", NULL, "{}", "application/json",
                    &resp))
        return;
    expect_keys(r, &resp, 1, (size_t)(st->key_size + 7) / 8);
    qkc_raw_response_free(&resp);
    /* No body and no Content-Type at all (as some clients send): ETSI-014 6.2 defines the Key
     * request as a JSON object, so accepting no body at all is decision E1 only: advisory. */
    if (!master_req(ctx, r, "POST", SLAVE(ctx), false, "enc_keys", NULL, NULL, NULL, &resp))
        return;
    cf_result part = {.check = NULL, .status = CF_PASS};
    expect_keys(&part, &resp, 1, (size_t)(st->key_size + 7) / 8);
    qkc_raw_response_free(&resp);
    for (const char *l = part.evidence, *nl; l && *l; l = nl ? nl + 1 : NULL) {
        nl = strchr(l, '\n');
        cf_note(r, "%.*s", (int)(nl ? (size_t)(nl - l) : strlen(l)), l);
    }
    if (part.status == CF_FAIL)
        cf_advice(r, "POST with no body: %s (advisory, decision E1)", part.summary);
    free(part.evidence);
}

static void enc_form_content_type(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (!master_req(ctx, r, "POST", SLAVE(ctx), false, "enc_keys", NULL, "{\"number\":1}",
                    "application/x-www-form-urlencoded", &resp))
        return;
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (st)
        expect_keys(r, &resp, 1, (size_t)(st->key_size + 7) / 8);
    qkc_raw_response_free(&resp);
}

static void enc_size_multiple_8(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    int64_t size = st->key_size - 4;
    if (size < st->min_key_size)
        size = st->key_size + 4;
    if (size < st->min_key_size || size > st->max_key_size) {
        cf_set(r, CF_SKIP, "no size off a multiple of 8 within min..max_key_size");
        return;
    }
    char q[64];
    snprintf(q, sizeof q, "?size=%lld", (long long)size);
    qkc_raw_response resp;
    if (!master_req(ctx, r, "GET", SLAVE(ctx), false, "enc_keys", q, NULL, NULL, &resp))
        return;
    if (resp.status == 200)
        expect_keys(r, &resp, 1, (size_t)(size + 7) / 8); /* sub-byte sizes supported */
    else
        ce_expect_error(r, &resp, 400, "size shall be a multiple of 8");
    qkc_raw_response_free(&resp);
}

/* Each request of the list must be answered with `want` (0: any non-2xx). */
static void expect_all(cf_ctx *ctx, cf_result *r, const char *sae, bool raw, const char *op,
                       const char *const *queries, const char *const *bodies, long want)
{
    for (size_t i = 0; (queries && queries[i]) || (bodies && bodies[i]); i++) {
        qkc_raw_response resp;
        bool post = bodies != NULL;
        if (!master_req(ctx, r, post ? "POST" : "GET", sae, raw, op, post ? NULL : queries[i],
                        post ? bodies[i] : NULL, post ? "application/json" : NULL, &resp))
            return;
        if (want && resp.status != want)
            cf_violation(r, "%s: status %ld, expected %ld", post ? bodies[i] : queries[i],
                         resp.status, want);
        else if (!want && resp.status >= 200 && resp.status < 300)
            cf_violation(r, "%s: status %ld, expected an error", post ? bodies[i] : queries[i],
                         resp.status);
        qkc_raw_response_free(&resp);
    }
}

static void enc_size_invalid(cf_ctx *ctx, cf_result *r)
{
    static const char *const q[] = {"?size=0", "?size=-8", "?size=abc01", NULL};
    static const char *const b[] = {"{\"size\":0}", "{\"size\":-8}", "{\"size\":\"abc01\"}", NULL};
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", q, NULL, 400);
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", NULL, b, 400);
}

static void enc_size_out_of_range(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    char big[64], small[64];
    snprintf(big, sizeof big, "?size=%lld", (long long)((st->max_key_size / 8 + 1) * 8));
    snprintf(small, sizeof small, "?size=%lld", (long long)((st->min_key_size - 1) / 8 * 8));
    const char *q[] = {big, st->min_key_size > 8 ? small : NULL, NULL};
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", q, NULL, 400);
}

static void enc_number_invalid(cf_ctx *ctx, cf_result *r)
{
    static const char *const q[] = {"?number=0", "?number=-8", "?number=abc01", NULL};
    static const char *const b[] = {"{\"number\":0}", "{\"number\":-8}", "{\"number\":\"abc01\"}",
                                    NULL};
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", q, NULL, 0);
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", NULL, b, 0);
}

static void enc_number_over_max(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    char q[64];
    snprintf(q, sizeof q, "?number=%lld", (long long)st->max_key_per_request + 1);
    const char *qs[] = {q, NULL};
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", qs, NULL, 400);
}

static void enc_ext_mandatory(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (!master_req(ctx, r, "POST", SLAVE(ctx), false, "enc_keys", NULL,
                    "{\"extension_mandatory\":[{\"zzconform_unsupported\":\"x\"}]}",
                    "application/json", &resp))
        return;
    ce_expect_error(r, &resp, 400, "not all extension_mandatory parameters are supported");
    qkc_raw_response_free(&resp);
}

static void enc_ext_optional(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (!master_req(ctx, r, "POST", SLAVE(ctx), false, "enc_keys", NULL,
                    "{\"number\":1,\"extension_optional\":[{\"zzconform_optional\":1}]}",
                    "application/json", &resp))
        return;
    if (resp.status == 200) {
        const qkc_etsi_status *st = ce_status(ctx, r);
        if (st)
            expect_keys(r, &resp, 1, (size_t)(st->key_size + 7) / 8);
    } else {
        ce_expect_error(r, &resp, 400, "not all extension_optional request options handled");
    }
    qkc_raw_response_free(&resp);
}

static void enc_additional_invalid(cf_ctx *ctx, cf_result *r)
{
    char dup[600], slave[300], master[300];
    snprintf(dup, sizeof dup, "{\"additional_slave_SAE_IDs\":[\"%s\",\"%s\"]}", SLAVE(ctx),
             SLAVE(ctx));
    snprintf(slave, sizeof slave, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", SLAVE(ctx));
    snprintf(master, sizeof master, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", MASTER(ctx));
    const char *b[] = {"{\"additional_slave_SAE_IDs\":[]}",
                       "{\"additional_slave_SAE_IDs\":[\" \"]}",
                       dup,
                       slave,
                       master,
                       NULL};
    if (!qkc_is_token(SLAVE(ctx), 256) || !qkc_is_token(MASTER(ctx), 256)) {
        cf_set(r, CF_SKIP, "SAE IDs with spaces or quotes cannot be put in this test's JSON");
        return;
    }
    expect_all(ctx, r, SLAVE(ctx), false, "enc_keys", NULL, b, 0);
}

static void enc_caller_as_slave(cf_ctx *ctx, cf_result *r)
{
    static const char *const q[] = {"", NULL};
    expect_all(ctx, r, MASTER(ctx), false, "enc_keys", q, NULL, 400);
}

static void blank_sae_id(cf_ctx *ctx, cf_result *r)
{
    static const char *const q[] = {"", NULL};
    static const char *const dq[] = {"?key_ID=bc490419-7d60-487f-adc1-4ddcc177c139", NULL};
    expect_all(ctx, r, "%20", true, "status", q, NULL, 400);
    expect_all(ctx, r, "%20", true, "enc_keys", q, NULL, 400);
    expect_all(ctx, r, "%20", true, "dec_keys", dq, NULL, 400);
}

static void enc_unknown_slave(cf_ctx *ctx, cf_result *r)
{
    static const char *const q[] = {"", NULL};
    expect_all(ctx, r, "ZZ_CONFORM_NO_SUCH_SAE", false, "enc_keys", q, NULL, 400);
}

/* ---- TLS ------------------------------------------------------------------------------------ */

static void tls_status_with(cf_ctx *ctx, cf_result *r, const qkc_options *o, const char *what,
                            bool expect_ok)
{
    char path[QKC_URL_MAX];
    if (!SLAVE(ctx) || ce_path(path, sizeof path, SLAVE(ctx), false, "status", NULL) != 0) {
        cf_set(r, CF_SKIP, "no slave SAE ID");
        return;
    }
    qkc_error e;
    qkc_client *c = qkc_client_new(o, &e);
    if (!c) {
        cf_set(r, CF_SKIP, "%s: the client refuses these options: %s", what, e.msg);
        return;
    }
    qkc_raw_response resp;
    int rc = qkc_raw_request(c, "GET", path, NULL, 0, NULL, &resp, &e);
    if (rc == 0) {
        cf_note(r, "%s: GET %s -> %ld", what, path, resp.status);
        if (expect_ok && resp.status != 200)
            cf_violation(r, "%s: status %ld", what, resp.status);
        else if (!expect_ok && resp.status == 200)
            cf_violation(r, "%s: served (200)", what);
        else if (!expect_ok && resp.status == 401)
            cf_set(r, CF_WARN, "%s: refused with HTTP 401, not at connection setup", what);
        else if (!expect_ok)
            cf_violation(r, "%s: answered %ld instead of refusing the connection", what,
                         resp.status);
        qkc_raw_response_free(&resp);
    } else {
        cf_note(r, "%s: GET %s -> %s error: %s", what, path, qkc_errclass_name(e.cls), e.msg);
        if (expect_ok)
            cf_violation(r, "%s: %s error", what, qkc_errclass_name(e.cls));
        else if (!cf_is_refusal(&e))
            cf_violation(r, "%s: %s error, expected a TLS refusal", what, qkc_errclass_name(e.cls));
        else
            cf_note(r, "%s: refused in the TLS handshake", what);
    }
    qkc_client_free(c);
}

static void tls_version(cf_ctx *ctx, cf_result *r, int v)
{
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_MASTER, &o);
    o.tls_min = o.tls_max = v;
    tls_status_with(ctx, r, &o, v == 13 ? "TLS 1.3 only" : "TLS 1.2 only", true);
}

static void tls_v13(cf_ctx *ctx, cf_result *r)
{
    tls_version(ctx, r, 13);
}
static void tls_v12(cf_ctx *ctx, cf_result *r)
{
    tls_version(ctx, r, 12);
}

static void tls_client_cert_required(cf_ctx *ctx, cf_result *r)
{
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_MASTER, &o);
    if (!o.ca_file) {
        cf_set(r, CF_SKIP, "no CA to verify the server with");
        return;
    }
    o.cert_file = o.key_file = NULL;
    tls_status_with(ctx, r, &o, "no client certificate", false);
}

/* ---- the table ------------------------------------------------------------------------------ */

#define E(id, rule, ref, adv, cons, fn)                                                            \
    {                                                                                              \
        id, CF_API_ETSI, rule, ref, adv, cons, fn                                                  \
    }

const cf_check cf_etsi_checks[] = {
    E("etsi.status.fields", "Get status answers 200 with all eleven Status items, typed",
      "ETSI-014 5.2, 6.1 Table 9", false, false, status_fields),
    E("etsi.status.sae-ids", "master_SAE_ID is the caller, slave_SAE_ID the path's slave",
      "ETSI-014 Table 9", false, false, status_sae_ids),
    E("etsi.status.kme-ids", "source/target_KME_ID are set and mirror the slave's own Status",
      "ETSI-014 Table 9", false, false, status_kme_ids),
    E("etsi.status.limits",
      "min_key_size <= key_size <= max_key_size, stored_key_count <= max_key_count, "
      "max_key_per_request >= 1",
      "ETSI-014 Table 9", false, false, status_limits),
    E("etsi.resp.json-content-type", "answers carry Content-Type application/json",
      "ETSI-014 5.1 Table 2", false, false, resp_json_type),
    E("etsi.enc.default-one-key", "a request without parameters returns one key of key_size bits",
      "ETSI-014 Table 10", false, true, enc_default_one_key),
    E("etsi.enc.container-fields",
      "the Key container has \"keys\" (lower case) with key_ID and key strings",
      "ETSI-014 6.3 Table 11", false, true, enc_container_fields),
    E("etsi.enc.key-id-uuid", "key_ID is a UUID", "ETSI-014 Table 11", false, true,
      enc_key_id_uuid),
    E("etsi.enc.key-id-canonical", "key_ID is a lower-case canonical version-4 UUID",
      "RFC 4122 3, 4.4; decision E4", true, true, enc_key_id_canonical),
    E("etsi.enc.key-base64", "key is RFC 4648 base64 (standard alphabet, '=' padding)",
      "ETSI-014 Table 11; RFC 4648 4", false, true, enc_key_base64),
    E("etsi.enc.get-number-size", "GET enc_keys?number=N&size=S returns N keys of S bits",
      "ETSI-014 5.3", false, true, enc_get_number_size),
    E("etsi.enc.post-number-size", "POST {number, size} returns N keys of S bits",
      "ETSI-014 5.3, 6.2", false, true, enc_post_number_size),
    E("etsi.enc.post-empty",
      "POST with {} returns one default key; with no body at all too (advisory part)",
      "ETSI-014 6.2 (every Key request parameter is optional); decision E1 (no body)", false, true,
      enc_post_empty),
    E("etsi.enc.form-content-type",
      "a JSON body sent as application/x-www-form-urlencoded is still parsed", "decision E1", true,
      true, enc_form_content_type),
    E("etsi.enc.size-multiple-8",
      "a size off a multiple of 8 gives that size, or 400 with an Error message (the spec's "
      "wording \"size shall be a multiple of 8\" advisory)",
      "ETSI-014 6.2, 6.4", false, false, enc_size_multiple_8),
    E("etsi.enc.size-invalid", "size 0, -8 or \"abc01\" (GET and POST) is exactly 400",
      "decision E2", false, false, enc_size_invalid),
    E("etsi.enc.size-out-of-range", "a size outside min..max_key_size is 400",
      "ETSI-014 Table 9; decision E2", false, false, enc_size_out_of_range),
    E("etsi.enc.number-invalid", "number 0, -8 or \"abc01\" (GET and POST) is refused",
      "decision E2", false, false, enc_number_invalid),
    E("etsi.enc.number-over-max", "number above max_key_per_request is 400",
      "ETSI-014 Table 9; decision E2", false, false, enc_number_over_max),
    E("etsi.enc.ext-mandatory-400",
      "an unsupported extension_mandatory is 400 with an Error message (the spec's wording \"not "
      "all extension_mandatory parameters are supported\" advisory)",
      "ETSI-014 6.2, 6.4", false, false, enc_ext_mandatory),
    E("etsi.enc.ext-optional",
      "an unknown extension_optional is ignored, or 400 \"not all extension_optional request "
      "options handled\"",
      "ETSI-014 6.2", false, true, enc_ext_optional),
    E("etsi.enc.additional-invalid",
      "additional_slave_SAE_IDs empty, blank, duplicated, the slave or the master is refused",
      "decision E2", false, false, enc_additional_invalid),
    E("etsi.enc.caller-as-slave", "enc_keys naming the caller as slave is 400", "decision E2",
      false, false, enc_caller_as_slave),
    E("etsi.enc.unknown-slave", "enc_keys for an unknown slave SAE ID is 400", "decision E2", false,
      false, enc_unknown_slave),
    E("etsi.path.blank-sae-id", "a blank SAE ID (%20) in the path is exactly 400, not 404",
      "ETSI-014 5 (URL-encoded IDs); decision E2", false, false, blank_sae_id),
    E("etsi.dec.get-one", "the slave gets the same key with GET dec_keys?key_ID=", "ETSI-014 5.4",
      false, true, cf_etsi_dec_get_one),
    E("etsi.dec.post-many", "the slave gets the same keys with POST {\"key_IDs\": [...]}",
      "ETSI-014 5.4, 6.4", false, true, cf_etsi_dec_post_many),
    E("etsi.dec.second-fetch-400",
      "a second fetch of a key is 400 with an Error message (the wording \"one or more keys "
      "specified are not found on KME\" advisory)",
      "ETSI-014 5.4 post-condition, 6.4; decision E6", false, true, cf_etsi_dec_second_fetch),
    E("etsi.dec.unknown-key-400",
      "an unknown key_ID is 400 with an Error message (the wording \"one or more keys specified "
      "are not found on KME\" advisory)",
      "ETSI-014 5.4, 6.4", false, false, cf_etsi_dec_unknown_key),
    E("etsi.dec.non-uuid-400", "a key_ID that is not a UUID is 400",
      "ETSI-014 Table 11; decision E2", false, false, cf_etsi_dec_non_uuid),
    E("etsi.dec.caller-as-master", "dec_keys naming the caller as master is 400", "decision E2",
      false, true, cf_etsi_dec_caller_as_master),
    E("etsi.dec.uuid-case-insensitive", "key_IDs are matched case-insensitively",
      "RFC 4122 3 (ETSI-014 Table 11 asks for a UUID, no case rule); decision E4", true, true,
      cf_etsi_dec_case),
    E("etsi.dec.repeated-key-id", "GET dec_keys with two key_ID parameters is 400",
      "ETSI-014 5.4 (GET for a single ID); decision E5", false, true, cf_etsi_dec_repeated),
    E("etsi.dec.partial-consumes-nothing",
      "a request with one unknown ID is 400 and delivers (consumes) none of its keys",
      "ETSI-014 6.4; decision E6", false, true, cf_etsi_dec_partial),
    E("etsi.err.401-not-slave",
      "an SAE that is not a slave of the key gets 401, and the key stays for the slave",
      "ETSI-014 5.4", false, true, cf_etsi_err_401),
    E("etsi.err.401-message", "the 401 answer carries a JSON {\"message\"}", "decision E3", true,
      true, cf_etsi_err_401_message),
    E("etsi.err.message",
      "error answers are an Error object: string \"message\", \"details\" absent or an array "
      "of objects",
      "ETSI-014 6.5 Table 13", false, false, cf_etsi_err_message),
    E("etsi.multicast.shared",
      "keys for additional_slave_SAE_IDs reach every slave, each once, with the same bytes",
      "ETSI-014 6.2, Annex B; decision E6", false, true, cf_etsi_multicast),
    E("etsi.multicast.over-max", "more additional_slave_SAE_IDs than max_SAE_ID_count is 400",
      "ETSI-014 Table 10; decision E2", false, false, cf_etsi_multicast_over_max),
    E("etsi.tls.client-cert-required", "a client without a certificate is refused",
      "ETSI-014 4, 5.1", false, false, tls_client_cert_required),
    E("etsi.tls.v13", "TLS 1.3 is offered", "ETSI-014 5.1 (TLS 1.2 or higher)", true, false,
      tls_v13),
    E("etsi.tls.v12", "TLS 1.2 is offered", "ETSI-014 5.1 (TLS 1.2 or higher)", true, false,
      tls_v12),
};

const size_t cf_etsi_n_checks = sizeof cf_etsi_checks / sizeof cf_etsi_checks[0];
