/* conform_http.c - helpers of the conformance checks: context and clients, requests recorded
 * as evidence, body excerpts with key material redacted, result helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "client_internal.h"
#include "conform.h"
#include "json_util.h"
#include "secbuf.h"

const char *cf_status_name(cf_status s)
{
    switch (s) {
    case CF_PASS:
        return "pass";
    case CF_WARN:
        return "warn";
    case CF_SKIP:
        return "skip";
    case CF_FAIL:
        return "fail";
    }
    return "?";
}

/* ---- context ------------------------------------------------------------------------------ */

void cf_ctx_init(cf_ctx *ctx, cf_api api)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->api = api;
}

void cf_ctx_free(cf_ctx *ctx)
{
    for (int i = 0; i < CF_SIDES; i++) {
        qkc_client_free(ctx->client[i]);
        qk_secure_free(ctx->side[i].psk);
    }
    if (ctx->status_ok)
        qkc_etsi_status_free(&ctx->status);
    for (int i = 0; i < 2; i++)
        if (ctx->caps_ok[i])
            qkc_skip_caps_free(&ctx->caps[i]);
    memset(ctx, 0, sizeof *ctx);
}

void cf_side_options(const cf_ctx *ctx, cf_side_ix s, qkc_options *o)
{
    const cf_side *sd = &ctx->side[s];
    memset(o, 0, sizeof *o);
    o->base_url = sd->url;
    o->ca_file = sd->ca;
    o->cert_file = sd->cert;
    o->key_file = sd->key;
    o->psk_identity = sd->psk_identity;
    o->psk = sd->psk;
    o->psk_len = sd->psk_len;
    o->psk_sha256 = sd->psk_sha256;
    o->timeout_ms = ctx->timeout_ms;
    o->connect_timeout_ms = ctx->timeout_ms && ctx->timeout_ms < 5000 ? ctx->timeout_ms : 0;
}

static const char *side_name(const cf_ctx *ctx, cf_side_ix s)
{
    static const char *const etsi[] = {"master", "slave", "extra"};
    static const char *const skip[] = {"A", "B", "extra"};
    return ctx->api == CF_API_ETSI ? etsi[s] : skip[s];
}

qkc_client *cf_client(cf_ctx *ctx, cf_side_ix s, cf_result *r)
{
    if (ctx->client[s])
        return ctx->client[s];
    if (!ctx->side[s].url) {
        cf_set(r, CF_SKIP, "no %s side configured", side_name(ctx, s));
        return NULL;
    }
    if (ctx->client_failed[s]) {
        cf_set(r, CF_FAIL, "the %s side's client could not be created", side_name(ctx, s));
        return NULL;
    }
    qkc_options o;
    cf_side_options(ctx, s, &o);
    qkc_error e;
    ctx->client[s] = qkc_client_new(&o, &e);
    if (!ctx->client[s]) {
        ctx->client_failed[s] = true;
        cf_set(r, CF_FAIL, "%s side: %s", side_name(ctx, s), e.msg);
    }
    return ctx->client[s];
}

qkc_client *cf_client_variant(cf_ctx *ctx, cf_side_ix s, const qkc_options *o, qkc_error *e)
{
    (void)ctx;
    (void)s;
    return qkc_client_new(o, e);
}

/* ---- results ------------------------------------------------------------------------------ */

static void scrub(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static void vset_summary(cf_result *r, const char *fmt, va_list ap)
{
    vsnprintf(r->summary, sizeof r->summary, fmt, ap);
    scrub(r->summary);
}

void cf_set(cf_result *r, cf_status st, const char *fmt, ...)
{
    /* A failure stays a failure: later calls only fill an empty summary. */
    if (r->status == CF_FAIL && st != CF_FAIL)
        return;
    if (r->status == CF_FAIL && r->summary[0])
        return;
    r->status = st;
    va_list ap;
    va_start(ap, fmt);
    vset_summary(r, fmt, ap);
    va_end(ap);
}

static void violation(cf_result *r, cf_status st, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

void cf_violation(cf_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    violation(r, r->check && r->check->advisory ? CF_WARN : CF_FAIL, fmt, ap);
    va_end(ap);
}

void cf_advice(cf_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    violation(r, CF_WARN, fmt, ap);
    va_end(ap);
}

static void violation(cf_result *r, cf_status st, const char *fmt, va_list ap)
{
    char line[CF_SUMMARY_MAX];
    vsnprintf(line, sizeof line, fmt, ap);
    scrub(line);
    cf_note(r, "violation: %s", line);
    if (r->status == CF_FAIL || (r->status == CF_WARN && st == CF_WARN))
        return; /* keep the first violation's summary */
    r->status = st;
    snprintf(r->summary, sizeof r->summary, "%s", line);
}

void cf_note(cf_result *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strnlen(line, sizeof line);
    for (size_t i = 0; i < len; i++) /* server text never reaches a terminal raw */
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
            line[i] = '?';
    if (r->ev_len + 2 >= CF_EVIDENCE_MAX)
        return; /* full: the evidence is cut, never the process */
    if (r->ev_len + len + 2 > CF_EVIDENCE_MAX)
        len = CF_EVIDENCE_MAX - r->ev_len - 2;
    if (r->ev_len + len + 2 > r->ev_cap) {
        size_t cap = r->ev_cap ? r->ev_cap * 2 : 512;
        while (cap < r->ev_len + len + 2)
            cap *= 2;
        char *p = realloc(r->evidence, cap);
        if (!p)
            return;
        r->evidence = p;
        r->ev_cap = cap;
    }
    memcpy(r->evidence + r->ev_len, line, len);
    r->ev_len += len;
    r->evidence[r->ev_len++] = '\n';
    r->evidence[r->ev_len] = '\0';
}

/* ---- evidence excerpts -------------------------------------------------------------------- */

static void sanitize(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (o + 4 >= cap && len > o) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static bool is_secret_name(const char *name)
{
    return name && (strcmp(name, "key") == 0 || strcasecmp(name, "randomStr") == 0 ||
                    strcasecmp(name, "key") == 0);
}

/* Replace secret string values (any depth) by a length note. */
static void redact(cJSON *j)
{
    for (cJSON *c = j ? j->child : NULL; c; c = c->next) {
        if (cJSON_IsString(c) && is_secret_name(c->string) && c->valuestring) {
            char note[64];
            snprintf(note, sizeof note, "<%zu chars redacted>", strlen(c->valuestring));
            qk_wipe(c->valuestring, strlen(c->valuestring));
            cJSON_SetValuestring(c, note);
        } else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            redact(c);
        }
    }
}

void cf_excerpt(const char *body, size_t len, long status, char *out, size_t cap)
{
    if (cap == 0)
        return;
    out[0] = '\0';
    if (!body || len == 0) {
        snprintf(out, cap, "(empty body)");
        return;
    }
    qk_err jerr;
    cJSON *j = qk_json_parse(body, len, 1024 * 1024, &jerr);
    if (j) {
        redact(j);
        char *t = cJSON_PrintUnformatted(j);
        qk_json_delete_wiped(j);
        if (!t) {
            snprintf(out, cap, "(JSON, %zu bytes)", len);
            return;
        }
        sanitize(t, strlen(t), out, cap);
        qk_wipe(t, strlen(t));
        cJSON_free(t);
        return;
    }
    if (status >= 200 && status < 300) {
        snprintf(out, cap, "(%zu bytes, not JSON; not shown: it may hold keys)", len);
        return;
    }
    sanitize(body, len, out, cap);
}

void cf_key_tag(const uint8_t *k, size_t n, char out[17])
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256(k, n, h);
    for (int i = 0; i < 4; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    qk_wipe(h, sizeof h);
}

bool cf_is_refusal(const qkc_error *e)
{
    if (e->cls == QKC_ETLS)
        return true;
    return e->cls == QKC_ECONNECT &&
           (strcasestr(e->msg, "reset") || strcasestr(e->msg, "Send failure") ||
            strcasestr(e->msg, "Recv failure") || strcasestr(e->msg, "Empty reply") ||
            strcasestr(e->msg, "closed"));
}

bool cf_is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

bool cf_has_message(const char *body, size_t len, char *msg, size_t cap)
{
    if (msg && cap)
        msg[0] = '\0';
    if (!body || len == 0)
        return false;
    qk_err jerr;
    cJSON *j = qk_json_parse(body, len, 64 * 1024, &jerr);
    if (!j)
        return false;
    const cJSON *m = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    bool ok = cJSON_IsString(m) && m->valuestring && m->valuestring[0];
    if (ok && msg && cap)
        sanitize(m->valuestring, strlen(m->valuestring), msg, cap);
    cJSON_Delete(j);
    return ok;
}

/* ---- requests ----------------------------------------------------------------------------- */

int cf_request(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *method, const char *path,
               const char *body, const char *content_type, qkc_raw_response *resp)
{
    memset(resp, 0, sizeof *resp);
    qkc_client *c = cf_client(ctx, s, r);
    if (!c)
        return QKC_EUSAGE;
    char bx[200] = "";
    if (body)
        sanitize(body, strlen(body), bx, sizeof bx);
    qkc_error e;
    int rc =
        qkc_raw_request(c, method, path, body, body ? strlen(body) : 0, content_type, resp, &e);
    if (rc != 0) {
        cf_note(r, "[%s] %s %s%s%s -> %s error: %s", side_name(ctx, s), method, path,
                body ? " " : "", bx, qkc_errclass_name(e.cls), e.msg);
        return rc;
    }
    char ex[600], ct[130], allow[70];
    cf_excerpt(resp->body, resp->body_len, resp->status, ex, sizeof ex);
    sanitize(resp->content_type, strlen(resp->content_type), ct, sizeof ct);
    sanitize(resp->allow, strlen(resp->allow), allow, sizeof allow);
    cf_note(r, "[%s] %s %s%s%s -> %ld%s%s%s%s; %s", side_name(ctx, s), method, path,
            body ? " " : "", bx, resp->status, ct[0] ? " " : "", ct, allow[0] ? " Allow: " : "",
            allow, ex);
    return 0;
}
