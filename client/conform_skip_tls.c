/* conform_skip_tls.c - SKIP TLS checks: the REQUIRED TLS 1.3 suite with a PSK or a
 * certificate, the TLS 1.2 PSK suites (each offered alone, so a successful handshake proves
 * which suite was negotiated), and refusal of clients without or with wrong credentials. Every
 * probe is GET /capabilities on side A with a fresh client. */
#include <stdio.h>
#include <string.h>

#include "conform_skip_util.h"
#include "secbuf.h"

typedef enum { EXPECT_OK, EXPECT_REFUSED } expect;

static void probe(cf_ctx *ctx, cf_result *r, const qkc_options *o, const char *what, expect want)
{
    qkc_error e;
    qkc_client *c = qkc_client_new(o, &e);
    if (!c) {
        cf_set(r, CF_SKIP, "%s: the client refuses these options: %s", what, e.msg);
        return;
    }
    qkc_raw_response resp;
    int rc = qkc_raw_request(c, "GET", "/capabilities", NULL, 0, NULL, &resp, &e);
    if (rc == 0) {
        cf_note(r, "%s: GET /capabilities -> %ld", what, resp.status);
        if (want == EXPECT_OK && resp.status != 200)
            cf_violation(r, "%s: status %ld", what, resp.status);
        else if (want == EXPECT_REFUSED && resp.status >= 200 && resp.status < 300)
            cf_violation(r, "%s: served (%ld)", what, resp.status);
        else if (want == EXPECT_REFUSED)
            cf_set(r, CF_WARN, "%s: refused with HTTP %ld, not in the handshake", what,
                   resp.status);
        else
            cf_note(r, "%s: handshake and request succeeded", what);
        qkc_raw_response_free(&resp);
    } else {
        cf_note(r, "%s: GET /capabilities -> %s error: %s", what, qkc_errclass_name(e.cls), e.msg);
        if (want == EXPECT_OK)
            cf_violation(r, "%s: %s error", what, qkc_errclass_name(e.cls));
        else if (!cf_is_refusal(&e))
            cf_violation(r, "%s: %s error, expected a TLS refusal", what, qkc_errclass_name(e.cls));
        else
            cf_note(r, "%s: refused in the TLS handshake", what);
    }
    qkc_client_free(c);
}

static bool side_has_psk(const cf_ctx *ctx)
{
    return ctx->side[CF_SIDE_A].psk_identity && ctx->side[CF_SIDE_A].psk;
}

void cf_skip_tls13_psk(cf_ctx *ctx, cf_result *r)
{
    if (!side_has_psk(ctx)) {
        cf_set(r, CF_SKIP, "side A has no PSK");
        return;
    }
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_A, &o);
    o.cert_file = o.key_file = NULL;
    o.psk_sha256 = false;
    o.tls_min = o.tls_max = 13;
    o.tls13_suites = "TLS_AES_256_GCM_SHA384";
    probe(ctx, r, &o, "TLS 1.3, PSK (SHA-384), TLS_AES_256_GCM_SHA384 only", EXPECT_OK);
}

void cf_skip_tls13_cert(cf_ctx *ctx, cf_result *r)
{
    if (!ctx->side[CF_SIDE_A].cert || !ctx->side[CF_SIDE_A].ca) {
        cf_set(r, CF_SKIP, "side A has no client certificate and CA");
        return;
    }
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_A, &o);
    o.psk_identity = NULL;
    o.psk = NULL;
    o.psk_len = 0;
    o.tls_min = o.tls_max = 13;
    o.tls13_suites = "TLS_AES_256_GCM_SHA384";
    probe(ctx, r, &o, "TLS 1.3, certificate, TLS_AES_256_GCM_SHA384 only", EXPECT_OK);
}

static void tls12_psk(cf_ctx *ctx, cf_result *r, const char *suite)
{
    if (!side_has_psk(ctx)) {
        cf_set(r, CF_SKIP, "side A has no PSK");
        return;
    }
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_A, &o);
    o.cert_file = o.key_file = NULL;
    o.tls_min = o.tls_max = 12;
    o.tls12_ciphers = suite;
    char what[96];
    snprintf(what, sizeof what, "TLS 1.2, PSK, %s only", suite);
    probe(ctx, r, &o, what, EXPECT_OK);
}

void cf_skip_tls12_dhe_cbc384(cf_ctx *ctx, cf_result *r)
{
    tls12_psk(ctx, r, "DHE-PSK-AES256-CBC-SHA384");
}
void cf_skip_tls12_dhe_cbc(cf_ctx *ctx, cf_result *r)
{
    tls12_psk(ctx, r, "DHE-PSK-AES256-CBC-SHA");
}
void cf_skip_tls12_gcm(cf_ctx *ctx, cf_result *r)
{
    tls12_psk(ctx, r, "PSK-AES256-GCM-SHA384");
}
void cf_skip_tls12_dhe_gcm(cf_ctx *ctx, cf_result *r)
{
    tls12_psk(ctx, r, "DHE-PSK-AES256-GCM-SHA384");
}

void cf_skip_tls_no_credentials(cf_ctx *ctx, cf_result *r)
{
    const char *ca = ctx->side[CF_SIDE_A].ca ? ctx->side[CF_SIDE_A].ca : ctx->probe_ca;
    if (!ca) {
        cf_set(r, CF_SKIP,
               "no CA (--a-ca or --probe-ca): a client without credentials needs one "
               "to tell a server refusal from an unverifiable certificate");
        return;
    }
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_A, &o);
    o.ca_file = ca;
    o.cert_file = o.key_file = NULL;
    o.psk_identity = NULL;
    o.psk = NULL;
    o.psk_len = 0;
    probe(ctx, r, &o, "no client credentials", EXPECT_REFUSED);
}

void cf_skip_tls_wrong_psk(cf_ctx *ctx, cf_result *r)
{
    if (!side_has_psk(ctx)) {
        cf_set(r, CF_SKIP, "side A has no PSK");
        return;
    }
    uint8_t *wrong = qk_secure_alloc(32);
    if (!wrong) {
        cf_set(r, CF_FAIL, "out of secure memory");
        return;
    }
    qk_random(wrong, 32);
    qkc_options o;
    cf_side_options(ctx, CF_SIDE_A, &o);
    o.cert_file = o.key_file = NULL;
    o.psk = wrong;
    o.psk_len = 32;
    probe(ctx, r, &o, "the right identity with a wrong PSK", EXPECT_REFUSED);
    if (r->status != CF_FAIL) {
        o.psk_identity = "zzconform-no-such-identity";
        probe(ctx, r, &o, "an unknown PSK identity", EXPECT_REFUSED);
    }
    qk_secure_free(wrong);
}
