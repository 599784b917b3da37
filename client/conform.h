/* conform.h - conformance checkers for ETSI GS QKD 014 and SKIP servers (`qkd conform`).
 *
 * A check is a small function with an ID ("etsi.dec.second-fetch-400"), the rule it tests and
 * the spec reference (ETSI GS QKD 014 V1.1.1 clause or table, draft-cisco-skip-02 section, RFC,
 * or one of the project's decisions where they are silent, "decision E1".."S6", listed in
 * docs/conformance.md). It talks to the servers through
 * libqkdclient's raw calls, decides pass / fail / warn / skip and records evidence: each
 * request line, status and a body excerpt in which key material is replaced by its length and
 * a hash prefix. Checks are independent (each obtains the keys it needs), so any subset can run
 * (--only). Advisory checks (recommendations) report warn instead of fail.
 *
 * Modules: conform_registry.c (table, selection, run loop), conform_http.c (requests with
 * evidence, redaction, JSON helpers), conform_etsi*.c and conform_skip*.c (the checks),
 * conform_report.c (text, JSON, JUnit XML). */
#ifndef QKD_CONFORM_H
#define QKD_CONFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qkdclient.h"

typedef enum { CF_PASS = 0, CF_WARN, CF_SKIP, CF_FAIL } cf_status;
typedef enum { CF_API_ETSI, CF_API_SKIP } cf_api;

const char *cf_status_name(cf_status s);

#define CF_SUMMARY_MAX  320
#define CF_EVIDENCE_MAX 8192 /* evidence text per check (truncated beyond) */

/* One side of the conversation: a base URL and TLS credentials. */
typedef struct {
    const char *url;
    const char *ca, *cert, *key; /* ca may be NULL with a PSK */
    const char *psk_identity;
    uint8_t *psk; /* secure memory, owned by the side (wiped by cf_side_free) */
    size_t psk_len;
    bool psk_sha256;
    const char *id; /* ETSI: the SAE ID; SKIP: the remoteSystemID this KP's peer uses for it */
} cf_side;

typedef enum { CF_SIDE_MASTER = 0, CF_SIDE_SLAVE, CF_SIDE_EXTRA, CF_SIDES } cf_side_ix;
/* SKIP uses MASTER as KP A (initiator) and SLAVE as KP B (responder). */
#define CF_SIDE_A CF_SIDE_MASTER
#define CF_SIDE_B CF_SIDE_SLAVE

typedef struct cf_ctx cf_ctx;
typedef struct cf_result cf_result;

typedef struct {
    const char *id;
    cf_api api;
    const char *rule; /* what the server must do, one sentence */
    const char *ref;  /* spec reference */
    bool advisory;    /* a violation is a warning */
    bool consumes;    /* takes keys from the server (skipped with --no-consume) */
    void (*run)(cf_ctx *ctx, cf_result *r);
} cf_check;

struct cf_result {
    const cf_check *check;
    cf_status status;
    char summary[CF_SUMMARY_MAX];
    char *evidence; /* malloc'ed text; never key bytes */
    size_t ev_len, ev_cap;
    double ms;
};

/* ---- context ---------------------------------------------------------------------------- */

struct cf_ctx {
    cf_api api;
    cf_side side[CF_SIDES];
    bool have_extra;
    const char *probe_ca; /* SKIP: CA for the no-credentials probe (NULL: that check skips) */
    bool no_consume;
    long timeout_ms;
    qkc_client *client[CF_SIDES]; /* made on first use */
    bool client_failed[CF_SIDES];
    /* caches filled by the checks' helpers */
    bool status_done, status_ok;
    qkc_etsi_status status; /* master's Status for the slave */
    bool caps_done[2], caps_ok[2];
    qkc_skip_caps caps[2];
};

void cf_ctx_init(cf_ctx *ctx, cf_api api);
/* Frees clients, caches and the sides' PSKs. */
void cf_ctx_free(cf_ctx *ctx);

/* ---- registry and run loop -------------------------------------------------------------- */

/* The check tables (conform_etsi*.c, conform_skip*.c). */
extern const cf_check cf_etsi_checks[];
extern const size_t cf_etsi_n_checks;
extern const cf_check cf_skip_checks[];
extern const size_t cf_skip_n_checks;

/* Every check of api in registry order; *n receives the count. */
const cf_check *cf_checks(cf_api api, size_t *n);
/* Comma-separated glob patterns (fnmatch) against check IDs; NULL/"" selects all. */
bool cf_selected(const char *patterns, const char *id);

typedef struct {
    cf_result *r;
    size_t n;
    size_t counts[4]; /* by cf_status */
    double ms;
} cf_run;

/* Run the selected checks in order; progress (one line per check) to `progress` if non-NULL.
 * 0, or -1 on allocation failure. */
int cf_run_checks(cf_ctx *ctx, const char *only, FILE *progress, cf_run *out);
void cf_run_free(cf_run *run);

/* ---- reports ---------------------------------------------------------------------------- */

typedef enum { CF_FMT_TEXT, CF_FMT_JSON, CF_FMT_JUNIT } cf_format;

/* Write the report; 0 or -1 (write error). */
int cf_report(FILE *f, cf_format fmt, cf_api api, const cf_run *run);
/* The list of checks (--list) as text, or JSON. */
int cf_list(FILE *f, cf_api api, bool json);
/* XML-escape s into out (bounded; control characters other than TAB/LF become '?'). Returns
 * the length written (out is always NUL-terminated when cap > 0). */
size_t cf_xml_escape(const char *s, char *out, size_t cap);

/* ---- helpers for checks (conform_http.c) -------------------------------------------------- */

/* The client of a side (NULL, with r failed/skipped and evidence, when it cannot be made). */
qkc_client *cf_client(cf_ctx *ctx, cf_side_ix s, cf_result *r);
/* A client of side s with changed TLS options (for TLS checks); the caller frees it. NULL when
 * the options are refused locally (e is set). */
qkc_client *cf_client_variant(cf_ctx *ctx, cf_side_ix s, const qkc_options *tweak, qkc_error *e);
/* Base options of a side. */
void cf_side_options(const cf_ctx *ctx, cf_side_ix s, qkc_options *o);

/* Set status and summary; once a result has failed it stays failed with its first summary. */
void cf_set(cf_result *r, cf_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A rule violation: fail, or warn for advisory checks. Keeps the first violation's summary. */
void cf_violation(cf_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A breach of an advisory part of a check (a rule no clause of ETSI-014 or SKIP-02 imposes, e.g.
 * the exact text of an Error message): warn, never fail, whatever the check's flag. */
void cf_advice(cf_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append a line to the evidence. */
void cf_note(cf_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One request with evidence: appends "METHOD PATH [body] -> STATUS ctype; body excerpt". 0
 * when a response arrived (resp filled; free it with qkc_raw_response_free), else the error
 * class (the evidence names it; the caller decides what it means). */
int cf_request(cf_ctx *ctx, cf_side_ix s, cf_result *r, const char *method, const char *path,
               const char *body, const char *content_type, qkc_raw_response *resp);
/* Excerpt of a body for evidence: JSON with the values of "key" and "randomStr" members
 * replaced by "<N hex|base64 chars>"; non-JSON as sanitized text (not at all for 2xx bodies,
 * which might hold keys). Writes at most cap-1 bytes. */
void cf_excerpt(const char *body, size_t len, long status, char *out, size_t cap);
/* Hash prefix of key bytes (first 8 hex digits of SHA-256) for evidence. */
void cf_key_tag(const uint8_t *k, size_t n, char out[17]);
/* True when the body is a JSON object with a non-empty string "message" (ETSI Error). */
bool cf_has_message(const char *body, size_t len, char *msg, size_t cap);
/* A transport error that means the server refused the TLS session: a TLS error, or a
 * connection reset/closed during or right after the handshake (TLS 1.3 refusals may arrive
 * that way). */
bool cf_is_refusal(const qkc_error *e);
/* Content-Type is application/json (parameters allowed). */
bool cf_is_json_type(const char *ct);

/* `qkd conform`: argv[0] is "conform" (cli_conform.c). Returns the exit code. */
int cli_conform_main(int argc, char **argv);

#endif
