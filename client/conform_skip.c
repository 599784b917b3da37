/* conform_skip.c - SKIP (draft-cisco-skip-02) checks: /capabilities, /key, /key/{keyId},
 * /entropy, unknown paths and methods; the SKIP check table (TLS checks in
 * conform_skip_tls.c). Side A is the initiator's KP, side B the responder's. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "codec.h"
#include "conform_skip_util.h"
#include "json_util.h"
#include "secbuf.h"

/* ---- /capabilities ----------------------------------------------------------------------- */

static void caps_fields_of(cf_ctx *ctx, cf_side_ix s, cf_result *r)
{
    const char *who = s == CF_SIDE_A ? "A" : "B";
    qkc_raw_response resp;
    if (!cs_req(ctx, s, r, "GET", "/capabilities", &resp))
        return;
    qk_err jerr;
    cJSON *j =
        resp.status == 200 ? qk_json_parse(resp.body, resp.body_len, QKC_JSON_MAX, &jerr) : NULL;
    if (resp.status != 200)
        cf_violation(r, "%s: /capabilities answered %ld", who, resp.status);
    else if (!cJSON_IsObject(j))
        cf_violation(r, "%s: the capabilities are not a JSON object", who);
    if (cJSON_IsObject(j)) {
        static const char *const bools[] = {"entropy", "key"};
        static const char *const strs[] = {"algorithm", "localSystemID"};
        for (size_t i = 0; i < 2; i++) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, bools[i]);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, strs[i]);
            if (!cJSON_IsBool(b))
                cf_violation(r, "%s: \"%s\" is %s", who, bools[i], b ? "not a boolean" : "missing");
            if (!cJSON_IsString(t))
                cf_violation(r, "%s: \"%s\" is %s", who, strs[i], t ? "not a string" : "missing");
        }
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "remoteSystemID");
        if (!cJSON_IsArray(a)) {
            cf_violation(r, "%s: \"remoteSystemID\" is %s", who, a ? "not an array" : "missing");
        } else {
            const cJSON *e;
            cJSON_ArrayForEach(e, a) if (!cJSON_IsString(e))
            {
                cf_violation(r, "%s: \"remoteSystemID\" holds a non-string", who);
                break;
            }
        }
    }
    cJSON_Delete(j);
    qkc_raw_response_free(&resp);
}

static void caps_fields(cf_ctx *ctx, cf_result *r)
{
    caps_fields_of(ctx, CF_SIDE_A, r);
    caps_fields_of(ctx, CF_SIDE_B, r);
}

static void caps_remote_nonempty(cf_ctx *ctx, cf_result *r)
{
    for (cf_side_ix s = CF_SIDE_A; s <= CF_SIDE_B; s++) {
        const qkc_skip_caps *c = cs_caps(ctx, s, r);
        if (!c)
            return;
        if (c->n_remote == 0)
            cf_violation(r, "%s: remoteSystemID is empty", s == CF_SIDE_A ? "A" : "B");
    }
}

static bool glob_lists(const qkc_skip_caps *c, const char *id)
{
    for (size_t i = 0; i < c->n_remote; i++)
        if (fnmatch(c->remoteSystemID[i], id, 0) == 0)
            return true;
    return false;
}

static void caps_lists_peer(cf_ctx *ctx, cf_result *r)
{
    const qkc_skip_caps *a = cs_caps(ctx, CF_SIDE_A, r);
    const qkc_skip_caps *b = a ? cs_caps(ctx, CF_SIDE_B, r) : NULL;
    if (!b)
        return;
    if (!glob_lists(a, b->localSystemID))
        cf_violation(r, "A's remoteSystemID entries do not cover B's localSystemID %s",
                     b->localSystemID);
    if (!glob_lists(b, a->localSystemID))
        cf_violation(r, "B's remoteSystemID entries do not cover A's localSystemID %s",
                     a->localSystemID);
    if (!strcmp(a->localSystemID, b->localSystemID))
        cf_violation(r, "A and B have the same localSystemID %s", a->localSystemID);
}

static void resp_json_type(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (!cs_req(ctx, CF_SIDE_A, r, "GET", "/capabilities", &resp))
        return;
    if (resp.status == 200 && !cf_is_json_type(resp.content_type))
        cf_violation(r, "/capabilities Content-Type \"%s\"", resp.content_type);
    qkc_raw_response_free(&resp);
}

/* ---- /key ---------------------------------------------------------------------------------- */

/* Give the key obtained for a check to B, so that no key is left behind (not judged). */
static void drain(cf_ctx *ctx, cf_result *r, const cs_key *k)
{
    qkc_raw_response resp;
    cf_note(r, "(cleanup: B fetches the key)");
    if (cs_fetch(ctx, CF_SIDE_B, r, k->keyId, NULL, &resp) == 0)
        qkc_raw_response_free(&resp);
}

typedef enum { KF_FIELDS, KF_DEFAULT_256, KF_LOWER, KF_KEYID_HEX, KF_KEYID_128 } key_facet;

static void key_facet_check(cf_ctx *ctx, cf_result *r, key_facet f)
{
    cs_key k;
    if (cs_new_key(ctx, r, 0, &k) != 0)
        return;
    bool up = false;
    size_t kl = strlen(k.key), il = strlen(k.keyId);
    bool khex = cs_is_hex(k.key, &up);
    bool iup = false, ihex = cs_is_hex(k.keyId, &iup);
    cf_note(r, "keyId %s (%zu hex digits); key: %zu characters", k.keyId, il, kl);
    switch (f) {
    case KF_FIELDS:
        break;
    case KF_DEFAULT_256:
        if (!khex || kl != 64)
            cf_violation(r,
                         "the default key is %zu %s characters, expected 64 hex digits (256 "
                         "bits)",
                         kl, khex ? "hex" : "non-hex");
        break;
    case KF_LOWER:
        if (!khex)
            cf_violation(r, "the key is not hex");
        else if (up)
            cf_violation(r, "the key uses upper-case hex digits");
        break;
    case KF_KEYID_HEX:
        if (!ihex || il > 128)
            cf_violation(r, "keyId \"%s\" is not 1..128 hex digits", k.keyId);
        break;
    case KF_KEYID_128:
        if (!ihex || il != 32 || iup)
            cf_violation(r, "keyId \"%s\" is not 32 lower-case hex digits (128 bits)", k.keyId);
        break;
    }
    drain(ctx, r, &k);
    cs_key_free(&k);
}

static void key_fields(cf_ctx *ctx, cf_result *r)
{
    key_facet_check(ctx, r, KF_FIELDS);
}
static void key_default_256(cf_ctx *ctx, cf_result *r)
{
    key_facet_check(ctx, r, KF_DEFAULT_256);
}
static void key_hex_lower(cf_ctx *ctx, cf_result *r)
{
    key_facet_check(ctx, r, KF_LOWER);
}
static void keyid_hex(cf_ctx *ctx, cf_result *r)
{
    key_facet_check(ctx, r, KF_KEYID_HEX);
}
static void keyid_128(cf_ctx *ctx, cf_result *r)
{
    key_facet_check(ctx, r, KF_KEYID_128);
}

static void key_size_128(cf_ctx *ctx, cf_result *r)
{
    cs_key k;
    if (cs_new_key(ctx, r, 128, &k) != 0)
        return;
    if (!cs_is_hex(k.key, NULL) || strlen(k.key) != 32)
        cf_violation(r, "size=128 gave %zu characters, expected 32 hex digits", strlen(k.key));
    else
        cf_note(r, "size=128: 32 hex digits");
    drain(ctx, r, &k);
    cs_key_free(&k);
}

/* Each path at side s must be answered with `want`. */
static void expect_status(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *method,
                          const char *const *paths, long want)
{
    for (size_t i = 0; paths[i]; i++) {
        qkc_raw_response resp;
        if (!cs_req(ctx, s, r, method, paths[i], &resp))
            return;
        if (resp.status != want)
            cf_violation(r, "%s %s: status %ld, expected %ld", method, paths[i], resp.status, want);
        qkc_raw_response_free(&resp);
    }
}

static void key_size_invalid(cf_ctx *ctx, cf_result *r)
{
    const char *remote = cs_remote(ctx, CF_SIDE_A, r);
    if (!remote)
        return;
    static const char *const sizes[] = {"0", "-8", "abc", "12", NULL};
    char p[4][QKC_URL_MAX];
    const char *paths[5] = {NULL};
    for (size_t i = 0; sizes[i]; i++) {
        snprintf(p[i], sizeof p[i], "/key?remoteSystemID=");
        if (qkc_url_append_encoded(p[i], sizeof p[i] - 16, remote) != 0)
            return;
        snprintf(p[i] + strlen(p[i]), 16, "&size=%s", sizes[i]);
        paths[i] = p[i];
    }
    expect_status(ctx, CF_SIDE_A, r, "GET", paths, 400);
}

static void key_remote_missing(cf_ctx *ctx, cf_result *r)
{
    static const char *const paths[] = {"/key", NULL};
    expect_status(ctx, CF_SIDE_A, r, "GET", paths, 400);
}

static void key_remote_unknown(cf_ctx *ctx, cf_result *r)
{
    static const char *const paths[] = {"/key?remoteSystemID=ZZ_CONFORM_NO_SUCH_KP", NULL};
    expect_status(ctx, CF_SIDE_A, r, "GET", paths, 400);
}

/* ---- /key/{keyId} -------------------------------------------------------------------------- */

/* B fetches k (keyId possibly changed in case): 200 with the same keyId and key. */
static bool fetch_same(cf_ctx *ctx, cf_result *r, const cs_key *k, const char *ask_id)
{
    qkc_raw_response resp;
    if (cs_fetch(ctx, CF_SIDE_B, r, ask_id, NULL, &resp) != 0)
        return false;
    bool ok = false;
    cs_key got;
    char why[128];
    if (resp.status != 200)
        cf_violation(r, "B: GET /key/{keyId} answered %ld, expected 200", resp.status);
    else if (cs_parse_key(resp.body, resp.body_len, &got, why, sizeof why) != 0)
        cf_violation(r, "B's answer is unusable: %s", why);
    else {
        char ta[17], tb[17];
        cf_key_tag((const uint8_t *)k->key, strlen(k->key), ta);
        cf_key_tag((const uint8_t *)got.key, strlen(got.key), tb);
        if (strcasecmp(got.keyId, k->keyId) != 0)
            cf_violation(r, "B answered keyId %s for %s", got.keyId, k->keyId);
        else if (strcasecmp(got.key, k->key) != 0)
            cf_violation(r, "B's key differs (hex sha256 prefix %s at A, %s at B)", ta, tb);
        else {
            cf_note(r, "same key at A and B (hex sha256 prefix %s)", ta);
            ok = true;
        }
        cs_key_free(&got);
    }
    qkc_raw_response_free(&resp);
    return ok;
}

static void keyid_round_trip(cf_ctx *ctx, cf_result *r)
{
    cs_key k;
    if (cs_new_key(ctx, r, 0, &k) != 0)
        return;
    fetch_same(ctx, r, &k, k.keyId);
    cs_key_free(&k);
}

static void keyid_second_fetch(cf_ctx *ctx, cf_result *r)
{
    cs_key k;
    if (cs_new_key(ctx, r, 0, &k) != 0)
        return;
    if (!fetch_same(ctx, r, &k, k.keyId)) {
        if (r->status == CF_FAIL) {
            r->status = CF_PASS;
            cf_set(r, CF_SKIP, "precondition: the first fetch failed (skip.keyid.round-trip)");
        }
    } else {
        qkc_raw_response resp;
        if (cs_fetch(ctx, CF_SIDE_B, r, k.keyId, NULL, &resp) == 0) {
            if (resp.status != 400)
                cf_violation(r, "a second fetch answered %ld, expected 400 (key zeroized)",
                             resp.status);
            qkc_raw_response_free(&resp);
        }
    }
    cs_key_free(&k);
}

static void keyid_unknown(cf_ctx *ctx, cf_result *r)
{
    uint8_t rnd[16];
    char id[33];
    qk_random(rnd, sizeof rnd);
    qk_hex_encode(rnd, sizeof rnd, id, sizeof id);
    qkc_raw_response resp;
    if (cs_fetch(ctx, CF_SIDE_B, r, id, NULL, &resp) != 0)
        return;
    if (resp.status != 400)
        cf_violation(r, "an unknown keyId answered %ld, expected 400", resp.status);
    qkc_raw_response_free(&resp);
}

static void keyid_malformed(cf_ctx *ctx, cf_result *r)
{
    qkc_raw_response resp;
    if (cs_fetch(ctx, CF_SIDE_B, r, "zz-not-hex", NULL, &resp) != 0)
        return;
    if (resp.status != 400)
        cf_violation(r, "a malformed keyId answered %ld, expected 400", resp.status);
    qkc_raw_response_free(&resp);
}

static void keyid_case(cf_ctx *ctx, cf_result *r)
{
    cs_key k;
    if (cs_new_key(ctx, r, 0, &k) != 0)
        return;
    char flipped[sizeof k.keyId];
    snprintf(flipped, sizeof flipped, "%s", k.keyId);
    for (char *p = flipped; *p; p++)
        *p = (*p >= 'a' && *p <= 'f')   ? (char)(*p - 32)
             : (*p >= 'A' && *p <= 'F') ? (char)(*p + 32)
                                        : *p;
    cf_note(r, "B asks for %s", flipped);
    fetch_same(ctx, r, &k, flipped);
    cs_key_free(&k);
}

static void keyid_wrong_remote(cf_ctx *ctx, cf_result *r)
{
    cs_key k;
    if (cs_new_key(ctx, r, 0, &k) != 0)
        return;
    qkc_raw_response resp;
    if (cs_fetch(ctx, CF_SIDE_B, r, k.keyId, "ZZ_CONFORM_NO_SUCH_KP", &resp) == 0) {
        if (resp.status != 400)
            cf_violation(r, "an unknown remoteSystemID answered %ld, expected 400", resp.status);
        qkc_raw_response_free(&resp);
        cf_note(r, "the key must still be there:");
        fetch_same(ctx, r, &k, k.keyId);
    }
    cs_key_free(&k);
}

/* ---- /entropy ------------------------------------------------------------------------------ */

typedef enum { EN_DEFAULT, EN_128, EN_LOWER } entropy_facet;

static void entropy_check(cf_ctx *ctx, cf_result *r, entropy_facet f)
{
    const qkc_skip_caps *c = cs_caps(ctx, CF_SIDE_A, r);
    if (!c)
        return;
    if (!c->entropy) {
        cf_set(r, CF_SKIP, "A's capabilities say entropy: false");
        return;
    }
    qkc_raw_response resp;
    if (!cs_req(ctx, CF_SIDE_A, r, "GET", f == EN_128 ? "/entropy?minentropy=128" : "/entropy",
                &resp))
        return;
    qk_err jerr;
    cJSON *j =
        resp.status == 200 ? qk_json_parse(resp.body, resp.body_len, QKC_JSON_MAX, &jerr) : NULL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "randomStr");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "minentropy");
    int64_t bits = f == EN_128 ? 128 : 256;
    bool up = false;
    if (resp.status != 200)
        cf_violation(r, "/entropy answered %ld", resp.status);
    else if (!cJSON_IsString(s) || !cJSON_IsNumber(m))
        cf_violation(r, "the answer lacks a string randomStr or a number minentropy");
    else if (!cs_is_hex(s->valuestring, &up))
        cf_violation(r, "randomStr is not hex");
    else if (f == EN_LOWER && up)
        cf_violation(r, "randomStr uses upper-case hex digits");
    else if (f != EN_LOWER &&
             (strlen(s->valuestring) != (size_t)bits / 4 || m->valuedouble != bits))
        cf_violation(r, "%zu hex digits, minentropy %g; expected %lld digits and %lld",
                     strlen(s->valuestring), m->valuedouble, (long long)bits / 4, (long long)bits);
    qk_json_delete_wiped(j);
    qkc_raw_response_free(&resp);
}

static void entropy_default(cf_ctx *ctx, cf_result *r)
{
    entropy_check(ctx, r, EN_DEFAULT);
}
static void entropy_128(cf_ctx *ctx, cf_result *r)
{
    entropy_check(ctx, r, EN_128);
}
static void entropy_lower(cf_ctx *ctx, cf_result *r)
{
    entropy_check(ctx, r, EN_LOWER);
}

static void entropy_invalid(cf_ctx *ctx, cf_result *r)
{
    static const char *const paths[] = {"/entropy?minentropy=invalid", NULL};
    expect_status(ctx, CF_SIDE_A, r, "GET", paths, 400);
}

/* ---- paths and methods ----------------------------------------------------------------------- */

static void path_unknown(cf_ctx *ctx, cf_result *r)
{
    static const char *const paths[] = {"/nonexistent", "/keys", "/capabilities/x", NULL};
    expect_status(ctx, CF_SIDE_A, r, "GET", paths, 404);
}

static void method_405(cf_ctx *ctx, cf_result *r)
{
    static const struct {
        const char *m, *p;
    } reqs[] = {{"POST", "/capabilities"},
                {"PUT", "/capabilities"},
                {"DELETE", "/entropy"},
                {"POST", "/key/00112233445566778899aabbccddeeff"}};
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        qkc_raw_response resp;
        if (!cs_req(ctx, CF_SIDE_A, r, reqs[i].m, reqs[i].p, &resp))
            return;
        if (resp.status != 405)
            cf_violation(r, "%s %s: status %ld, expected 405", reqs[i].m, reqs[i].p, resp.status);
        else if (!strstr(resp.allow, "GET"))
            cf_violation(r, "%s %s: 405 without \"Allow: GET\"", reqs[i].m, reqs[i].p);
        qkc_raw_response_free(&resp);
    }
}

/* ---- the table ------------------------------------------------------------------------------ */

#define K(id, rule, ref, adv, cons, fn)                                                            \
    {                                                                                              \
        id, CF_API_SKIP, rule, ref, adv, cons, fn                                                  \
    }

const cf_check cf_skip_checks[] = {
    K("skip.caps.fields",
      "/capabilities answers 200 with entropy, key (booleans), algorithm, localSystemID "
      "(strings) and remoteSystemID (array of strings)",
      "SKIP-02 4.1, Fig. 3, Table 4", false, false, caps_fields),
    K("skip.caps.remote-nonempty", "remoteSystemID has at least one entry", "SKIP-02 4.1.2", false,
      false, caps_remote_nonempty),
    K("skip.caps.lists-peer",
      "each KP's remoteSystemID entries (globs) cover the other's localSystemID; the IDs differ",
      "SKIP-02 4.1, 4.1.1, 4.1.2", false, false, caps_lists_peer),
    K("skip.resp.json-content-type", "answers are JSON (Content-Type application/json)",
      "SKIP-02 4", false, false, resp_json_type),
    K("skip.key.fields", "GET /key?remoteSystemID= answers 200 with string keyId and key",
      "SKIP-02 4.2, Fig. 5-6", false, true, key_fields),
    K("skip.key.default-256", "the default key is 256 bits: 64 hex digits", "SKIP-02 4.2.2", false,
      true, key_default_256),
    K("skip.key.hex-lowercase", "the key is lower-case hex",
      "SKIP-02 4.2.2 (hex, no case given); decision S2", true, true, key_hex_lower),
    K("skip.key.keyid-hex", "keyId is 1..128 hex digits", "SKIP-02 4.2.1; decision S1", false, true,
      keyid_hex),
    K("skip.key.keyid-128", "keyId is 32 lower-case hex digits (the 128-bit default)",
      "SKIP-02 4.2.1; decision S1", true, true, keyid_128),
    K("skip.key.size-128", "size=128 gives a 128-bit key (32 hex digits): size is in bits",
      "SKIP-02 Table 2 (method 3)", false, true, key_size_128),
    K("skip.key.size-invalid", "size 0, -8, abc or 12 (not a multiple of 8) is 400",
      "SKIP-02 Table 2 (method 3); decision S3", false, false, key_size_invalid),
    K("skip.key.remote-missing", "/key without remoteSystemID is 400", "SKIP-02 4.2; decision S4",
      false, false, key_remote_missing),
    K("skip.key.remote-unknown", "/key with an unknown remoteSystemID is 400",
      "SKIP-02 4.2; decision S4", false, false, key_remote_unknown),
    K("skip.keyid.round-trip", "B's GET /key/{keyId}?remoteSystemID=A returns A's key and keyId",
      "SKIP-02 1, 4.2", false, true, keyid_round_trip),
    K("skip.keyid.second-fetch-400", "a key is delivered once: a second fetch is 400",
      "SKIP-02 4.2.2, Table 7", false, true, keyid_second_fetch),
    K("skip.keyid.unknown-400", "an unknown keyId is 400", "SKIP-02 Table 7", false, false,
      keyid_unknown),
    K("skip.keyid.malformed-400", "a malformed keyId is 400", "SKIP-02 Table 7", false, false,
      keyid_malformed),
    K("skip.keyid.case-insensitive", "keyId is matched case-insensitively",
      "SKIP-02 4.2.1 (hex, no case given); decision S1", true, true, keyid_case),
    K("skip.keyid.wrong-remote",
      "an unknown remoteSystemID on /key/{keyId} is 400 and leaves the key in place",
      "SKIP-02 4.2; decision S4", false, true, keyid_wrong_remote),
    K("skip.entropy.default", "/entropy gives 256 bits: 64 hex digits, minentropy 256",
      "SKIP-02 4.3, Table 8", false, false, entropy_default),
    K("skip.entropy.min-128", "/entropy?minentropy=128 gives 32 hex digits, minentropy 128",
      "SKIP-02 4.3, Table 2 (method 6)", false, false, entropy_128),
    K("skip.entropy.hex-lowercase", "randomStr is lower-case hex",
      "SKIP-02 4.3 (hex, no case given); decision S2", true, false, entropy_lower),
    K("skip.entropy.invalid", "minentropy=invalid is 400", "decision S6", true, false,
      entropy_invalid),
    K("skip.path.unknown-404", "a path outside the draft's table is 404", "SKIP-02 Table 3", false,
      false, path_unknown),
    K("skip.method.405-allow-get", "a method other than GET is 405 with Allow: GET",
      "SKIP-02 Table 3; RFC 9110 15.5.6", false, false, method_405),
    K("skip.tls.13-psk-aes256",
      "TLS 1.3 with a SHA-384 PSK negotiates TLS_AES_256_GCM_SHA384 (the REQUIRED suite)",
      "SKIP-02 3 Table 1", false, false, cf_skip_tls13_psk),
    K("skip.tls.13-cert-aes256",
      "TLS 1.3 with a certificate negotiates TLS_AES_256_GCM_SHA384 (the REQUIRED suite)",
      "SKIP-02 3 Table 1", false, false, cf_skip_tls13_cert),
    K("skip.tls.12-psk-dhe-aes256-cbc-sha384", "TLS 1.2 PSK suite DHE-PSK-AES256-CBC-SHA384",
      "SKIP-02 3 Table 1 (RECOMMENDED)", true, false, cf_skip_tls12_dhe_cbc384),
    K("skip.tls.12-psk-dhe-aes256-cbc-sha", "TLS 1.2 PSK suite DHE-PSK-AES256-CBC-SHA",
      "SKIP-02 3 Table 1 (RECOMMENDED)", true, false, cf_skip_tls12_dhe_cbc),
    K("skip.tls.12-psk-aes256-gcm-sha384", "TLS 1.2 PSK suite PSK-AES256-GCM-SHA384 (Cisco)",
      "decision S5", true, false, cf_skip_tls12_gcm),
    K("skip.tls.12-psk-dhe-aes256-gcm-sha384",
      "TLS 1.2 PSK suite DHE-PSK-AES256-GCM-SHA384 (Cisco)", "decision S5", true, false,
      cf_skip_tls12_dhe_gcm),
    K("skip.tls.no-credentials-refused",
      "a client without a PSK or certificate is refused in the handshake", "SKIP-02 3, 8", false,
      false, cf_skip_tls_no_credentials),
    K("skip.tls.wrong-psk-refused", "a client with an unknown PSK identity or wrong PSK is refused",
      "SKIP-02 3, 8", false, false, cf_skip_tls_wrong_psk),
};

const size_t cf_skip_n_checks = sizeof cf_skip_checks / sizeof cf_skip_checks[0];
