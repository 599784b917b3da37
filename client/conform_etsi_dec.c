/* conform_etsi_dec.c - ETSI GS QKD 014 checks of Get key with key IDs (dec_keys), the 401 rule,
 * Error bodies and key multicast. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "codec.h"
#include "conform_etsi_util.h"
#include "json_util.h"

static const char *const *ids_of(const ce_keys *k, const char **buf)
{
    for (size_t i = 0; i < k->n; i++)
        buf[i] = k->id[i];
    return buf;
}

/* Fetch k's keys as side s and compare (GET for one key unless post). */
static bool fetch_same(cf_ctx *ctx, cf_side_ix s, cf_result *r, const ce_keys *k, bool post)
{
    const char *ids[CE_MAX_KEYS];
    qkc_raw_response resp;
    if (ce_fetch(ctx, s, r, ids_of(k, ids), k->n, post, &resp) != 0) {
        cf_violation(r, "no answer to dec_keys");
        return false;
    }
    bool ok = ce_same_keys(r, k, &resp);
    qkc_raw_response_free(&resp);
    return ok;
}

void cf_etsi_dec_get_one(cf_ctx *ctx, cf_result *r)
{
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    fetch_same(ctx, CF_SIDE_SLAVE, r, &k, false);
    ce_keys_free(&k);
}

void cf_etsi_dec_post_many(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (st->max_key_per_request < 2) {
        cf_set(r, CF_SKIP, "max_key_per_request is below 2");
        return;
    }
    ce_keys k;
    if (ce_obtain(ctx, r, 2, NULL, &k) != 0)
        return;
    fetch_same(ctx, CF_SIDE_SLAVE, r, &k, true);
    ce_keys_free(&k);
}

void cf_etsi_dec_second_fetch(cf_ctx *ctx, cf_result *r)
{
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    const char *ids[1] = {k.id[0]};
    qkc_raw_response resp;
    if (ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 1, false, &resp) == 0) {
        if (resp.status != 200)
            cf_set(r, CF_SKIP, "precondition: the first fetch answered %ld (etsi.dec.get-one)",
                   resp.status);
        qkc_raw_response_free(&resp);
        if (r->status != CF_SKIP && ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 1, false, &resp) == 0) {
            ce_expect_error(r, &resp, 400, CE_MSG_NOT_FOUND);
            qkc_raw_response_free(&resp);
        }
    }
    ce_keys_free(&k);
}

static void random_uuid(char out[QK_UUID_STR_LEN + 1])
{
    qk_uuid u;
    qk_uuid_v4(&u);
    qk_uuid_format(&u, out);
}

void cf_etsi_dec_unknown_key(cf_ctx *ctx, cf_result *r)
{
    char id[QK_UUID_STR_LEN + 1];
    random_uuid(id);
    const char *ids[1] = {id};
    qkc_raw_response resp;
    if (ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 1, false, &resp) != 0) {
        cf_violation(r, "no answer to dec_keys");
        return;
    }
    ce_expect_error(r, &resp, 400, CE_MSG_NOT_FOUND);
    qkc_raw_response_free(&resp);
}

void cf_etsi_dec_non_uuid(cf_ctx *ctx, cf_result *r)
{
    const char *ids[1] = {"non-uuid"};
    qkc_raw_response resp;
    if (ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 1, false, &resp) != 0) {
        cf_violation(r, "no answer to dec_keys");
        return;
    }
    if (resp.status != 400)
        cf_violation(r, "status %ld, expected 400", resp.status);
    qkc_raw_response_free(&resp);
}

void cf_etsi_dec_caller_as_master(cf_ctx *ctx, cf_result *r)
{
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    char path[QKC_URL_MAX], q[QKC_ID_MAX * 3 + 16] = "?key_ID=";
    qkc_raw_response resp;
    if (qkc_url_append_encoded(q, sizeof q, k.id[0]) == 0 &&
        ce_path(path, sizeof path, ctx->side[CF_SIDE_SLAVE].id, false, "dec_keys", q) == 0 &&
        cf_request(ctx, CF_SIDE_SLAVE, r, "GET", path, NULL, NULL, &resp) == 0) {
        if (resp.status != 400)
            cf_violation(r, "status %ld, expected 400", resp.status);
        qkc_raw_response_free(&resp);
    } else {
        cf_violation(r, "no answer to dec_keys");
    }
    ce_keys_free(&k);
}

void cf_etsi_dec_case(cf_ctx *ctx, cf_result *r)
{
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    char orig[QKC_ID_MAX];
    snprintf(orig, sizeof orig, "%s", k.id[0]);
    bool changed = false;
    for (char *p = k.id[0]; *p; p++) {
        int up =
            islower((unsigned char)*p) ? toupper((unsigned char)*p) : tolower((unsigned char)*p);
        changed |= up != *p;
        *p = (char)up;
    }
    if (!changed)
        cf_note(r, "key_ID %s has no letters; the check cannot change its case", orig);
    fetch_same(ctx, CF_SIDE_SLAVE, r, &k, false);
    ce_keys_free(&k);
}

void cf_etsi_dec_repeated(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (st->max_key_per_request < 2) {
        cf_set(r, CF_SKIP, "max_key_per_request is below 2");
        return;
    }
    ce_keys k;
    if (ce_obtain(ctx, r, 2, NULL, &k) != 0)
        return;
    char q[2 * QKC_ID_MAX * 3 + 32] = "?key_ID=", path[QKC_URL_MAX];
    size_t l;
    qkc_raw_response resp;
    if (qkc_url_append_encoded(q, sizeof q, k.id[0]) != 0 || (l = strlen(q)) + 9 >= sizeof q) {
        cf_set(r, CF_FAIL, "internal: query too long");
        goto out;
    }
    memcpy(q + l, "&key_ID=", 9);
    if (qkc_url_append_encoded(q, sizeof q, k.id[1]) != 0 ||
        ce_path(path, sizeof path, ctx->side[CF_SIDE_MASTER].id, false, "dec_keys", q) != 0) {
        cf_set(r, CF_FAIL, "internal: query too long");
        goto out;
    }
    if (cf_request(ctx, CF_SIDE_SLAVE, r, "GET", path, NULL, NULL, &resp) != 0) {
        cf_violation(r, "no answer to dec_keys");
        goto out;
    }
    if (resp.status != 400)
        cf_violation(r, "status %ld, expected 400", resp.status);
    qkc_raw_response_free(&resp);
    if (r->status != CF_FAIL) {
        cf_note(r, "both keys must still be there:");
        fetch_same(ctx, CF_SIDE_SLAVE, r, &k, true);
    }
out:
    ce_keys_free(&k);
}

void cf_etsi_dec_partial(cf_ctx *ctx, cf_result *r)
{
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    char unknown[QK_UUID_STR_LEN + 1];
    random_uuid(unknown);
    const char *ids[2] = {k.id[0], unknown};
    qkc_raw_response resp;
    if (ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 2, true, &resp) != 0) {
        cf_violation(r, "no answer to dec_keys");
    } else {
        ce_expect_error(r, &resp, 400, CE_MSG_NOT_FOUND);
        qkc_raw_response_free(&resp);
        cf_note(r, "the known key must still be there:");
        fetch_same(ctx, CF_SIDE_SLAVE, r, &k, false);
    }
    ce_keys_free(&k);
}

static void err_401(cf_ctx *ctx, cf_result *r, bool want_message)
{
    if (!ctx->have_extra) {
        cf_set(r, CF_SKIP, "no extra SAE (--extra-*)");
        return;
    }
    ce_keys k;
    if (ce_obtain(ctx, r, 1, NULL, &k) != 0)
        return;
    const char *ids[1] = {k.id[0]};
    qkc_raw_response resp;
    if (ce_fetch(ctx, CF_SIDE_EXTRA, r, ids, 1, false, &resp) != 0) {
        cf_violation(r, "no answer to the extra SAE's dec_keys");
    } else {
        if (want_message) {
            if (resp.status != 401)
                cf_set(r, CF_SKIP, "precondition: not a 401 (etsi.err.401-not-slave)");
            else if (!cf_has_message(resp.body, resp.body_len, NULL, 0))
                cf_violation(r, "the 401 answer has no JSON {\"message\"}");
        } else if (resp.status != 401) {
            cf_violation(r, "status %ld for an SAE that is not a slave of the key, expected 401",
                         resp.status);
        }
        qkc_raw_response_free(&resp);
        if (!want_message) {
            cf_note(r, "the slave must still get the key:");
            fetch_same(ctx, CF_SIDE_SLAVE, r, &k, false);
        }
    }
    ce_keys_free(&k);
}

void cf_etsi_err_401(cf_ctx *ctx, cf_result *r)
{
    err_401(ctx, r, false);
}

void cf_etsi_err_401_message(cf_ctx *ctx, cf_result *r)
{
    err_401(ctx, r, true);
}

static void check_error_body(cf_result *r, const qkc_raw_response *resp)
{
    if (resp->status >= 200 && resp->status < 300) {
        cf_set(r, CF_SKIP, "precondition: the request succeeded (%ld)", resp->status);
        return;
    }
    if (!cf_has_message(resp->body, resp->body_len, NULL, 0)) {
        cf_violation(r, "the %ld answer is not an Error object with a string \"message\"",
                     resp->status);
        return;
    }
    qk_err jerr;
    cJSON *j = qk_json_parse(resp->body, resp->body_len, QKC_JSON_MAX, &jerr);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "details");
    if (d && !cJSON_IsArray(d)) {
        cf_violation(r, "\"details\" is not an array");
    } else if (d) {
        const cJSON *e;
        cJSON_ArrayForEach(e, d) if (!cJSON_IsObject(e))
        {
            cf_violation(r, "\"details\" holds a non-object");
            break;
        }
    }
    cJSON_Delete(j);
}

void cf_etsi_err_message(cf_ctx *ctx, cf_result *r)
{
    char id[QK_UUID_STR_LEN + 1];
    random_uuid(id);
    const char *ids[1] = {id};
    qkc_raw_response resp;
    if (ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 1, false, &resp) == 0) {
        check_error_body(r, &resp);
        qkc_raw_response_free(&resp);
    }
    char path[QKC_URL_MAX];
    if (ctx->side[CF_SIDE_SLAVE].id &&
        ce_path(path, sizeof path, ctx->side[CF_SIDE_SLAVE].id, false, "enc_keys", "?size=abc01") ==
            0 &&
        cf_request(ctx, CF_SIDE_MASTER, r, "GET", path, NULL, NULL, &resp) == 0) {
        check_error_body(r, &resp);
        qkc_raw_response_free(&resp);
    }
    if (ctx->side[CF_SIDE_SLAVE].id &&
        ce_path(path, sizeof path, ctx->side[CF_SIDE_SLAVE].id, false, "enc_keys", NULL) == 0 &&
        cf_request(ctx, CF_SIDE_MASTER, r, "POST", path,
                   "{\"extension_mandatory\":[{\"zzconform_unsupported\":\"x\"}]}",
                   "application/json", &resp) == 0) {
        check_error_body(r, &resp);
        qkc_raw_response_free(&resp);
    }
}

void cf_etsi_multicast(cf_ctx *ctx, cf_result *r)
{
    if (!ctx->have_extra) {
        cf_set(r, CF_SKIP, "no extra SAE (--extra-*)");
        return;
    }
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (st->max_SAE_ID_count < 1) {
        cf_set(r, CF_SKIP, "max_SAE_ID_count is 0: the KME does not offer key multicast");
        return;
    }
    const char *extra = ctx->side[CF_SIDE_EXTRA].id;
    if (!qkc_is_token(extra, 256) || strchr(extra, '"') || strchr(extra, '\\')) {
        cf_set(r, CF_SKIP, "the extra SAE ID cannot be put in this test's JSON");
        return;
    }
    char add[300];
    snprintf(add, sizeof add, "[\"%s\"]", extra);
    ce_keys k;
    if (ce_obtain(ctx, r, 1, add, &k) != 0)
        return;
    cf_note(r, "the slave:");
    fetch_same(ctx, CF_SIDE_SLAVE, r, &k, false);
    cf_note(r, "the additional slave:");
    fetch_same(ctx, CF_SIDE_EXTRA, r, &k, false);
    const char *ids[1] = {k.id[0]};
    qkc_raw_response resp;
    cf_note(r, "the slave again (each slave fetches once):");
    if (ce_fetch(ctx, CF_SIDE_SLAVE, r, ids, 1, false, &resp) == 0) {
        if (resp.status != 400)
            cf_violation(r, "the slave's second fetch answered %ld, expected 400", resp.status);
        qkc_raw_response_free(&resp);
    }
    ce_keys_free(&k);
}

void cf_etsi_multicast_over_max(cf_ctx *ctx, cf_result *r)
{
    const qkc_etsi_status *st = ce_status(ctx, r);
    if (!st)
        return;
    if (st->max_SAE_ID_count > 64) {
        cf_set(r, CF_SKIP, "max_SAE_ID_count %lld is too large to exceed here",
               (long long)st->max_SAE_ID_count);
        return;
    }
    char body[64 * 24 + 64] = "{\"additional_slave_SAE_IDs\":[";
    size_t n = (size_t)st->max_SAE_ID_count + 1, l = strlen(body);
    const char *extra = ctx->have_extra ? ctx->side[CF_SIDE_EXTRA].id : NULL;
    bool extra_ok = extra && qkc_is_token(extra, 64) && !strchr(extra, '"') && !strchr(extra, '\\');
    for (size_t i = 0; i < n; i++) {
        int w = i == 0 && extra_ok
                    ? snprintf(body + l, sizeof body - l, "\"%s\"", extra)
                    : snprintf(body + l, sizeof body - l, "%s\"ZZ_CONFORM_%zu\"", i ? "," : "", i);
        if (w < 0 || (size_t)w >= sizeof body - l)
            return;
        l += (size_t)w;
    }
    if (l + 3 > sizeof body)
        return;
    memcpy(body + l, "]}", 3);
    char path[QKC_URL_MAX];
    qkc_raw_response resp;
    if (ce_path(path, sizeof path, ctx->side[CF_SIDE_SLAVE].id, false, "enc_keys", NULL) != 0 ||
        cf_request(ctx, CF_SIDE_MASTER, r, "POST", path, body, "application/json", &resp) != 0) {
        cf_violation(r, "no answer to enc_keys");
        return;
    }
    if (resp.status != 400)
        cf_violation(r, "%zu additional IDs with max_SAE_ID_count %lld: status %ld, expected 400",
                     n, (long long)st->max_SAE_ID_count, resp.status);
    qkc_raw_response_free(&resp);
}
