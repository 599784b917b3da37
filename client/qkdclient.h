/* qkdclient.h - libqkdclient: a C client for the ETSI GS QKD 014 key delivery API and Cisco's
 * SKIP (draft-cisco-skip-02), over HTTPS with mutual TLS or TLS-PSK (TLS 1.2 suites and TLS 1.3
 * TLS_AES_256_GCM_SHA384).
 *
 * Model
 *   - One qkc_client is one connection profile (base URL + TLS credentials) over one libcurl
 *     handle: connections are kept alive and reused across calls. Use a client from one thread
 *     at a time; several clients may run in parallel threads.
 *   - Every call returns 0 on success or a qkc_errclass (> 0) and fills the qkc_error passed in:
 *     the class (TLS failure, connect/timeout, HTTP error, malformed response, ...), the HTTP
 *     status when one was received and the server's own message (ETSI {"message"}, SKIP
 *     {"error"}/{"detail"}/{"message"}), sanitised to printable ASCII.
 *   - Typed results hold key bytes in secure memory (libsodium guarded allocations), wiped when
 *     the result is freed. Response bodies are wiped after parsing. Nothing here logs.
 *   - Server responses are untrusted: every field is type-checked and bounded; a response that
 *     does not match the API (wrong types, missing fields, bad base64/hex, wrong key count or
 *     size, IDs other than those requested) is QKC_EMALFORMED, never a crash.
 *   - qkc_raw_request exposes status, Content-Type, Allow and body unchanged, and the
 *     qkc_*_parse_* functions parse a body on their own: conformance checkers build on both.
 *
 * Depends only on common/ (http_client, codec, json_util, secbuf). */
#ifndef QKDCLIENT_H
#define QKDCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------------------------ */

typedef enum {
    QKC_OK = 0,
    QKC_EUSAGE = 1,     /* bad arguments or options (nothing was sent) */
    QKC_ETLS = 2,       /* TLS handshake, certificate or PSK failure */
    QKC_ECONNECT = 3,   /* connection refused/reset, DNS, timeout */
    QKC_EHTTP = 4,      /* the server answered with an HTTP error status */
    QKC_EMALFORMED = 5, /* the response does not match the API (or is too large) */
    QKC_EINTERNAL = 6,  /* out of memory or another local failure */
} qkc_errclass;

#define QKC_MSG_MAX        512
#define QKC_SERVER_MSG_MAX 256

typedef struct {
    qkc_errclass cls;
    long http_status;                        /* 0 when no HTTP response was received */
    char server_message[QKC_SERVER_MSG_MAX]; /* the server's message; "" if none */
    char msg[QKC_MSG_MAX];                   /* human-readable description; never key bytes */
} qkc_error;

/* Short name of a class: "ok", "usage", "tls", "connect", "http", "malformed", "internal". */
const char *qkc_errclass_name(qkc_errclass cls);

/* ---- client ------------------------------------------------------------------------------ */

#define QKC_URL_MAX 2048

typedef struct {
    const char *base_url;  /* "https://host:port" (an optional path prefix is kept) */
    const char *ca_file;   /* CA to verify the server; NULL only with PSK */
    const char *cert_file; /* client certificate (mTLS), with key_file */
    const char *key_file;
    const char *psk_identity; /* TLS-PSK identity, with psk/psk_len (1..64 bytes; copied) */
    const uint8_t *psk;
    size_t psk_len;
    bool psk_sha256;           /* bind the TLS 1.3 PSK to SHA-256 instead of SHA-384 */
    int tls_min;               /* 0 or 12 = TLS 1.2, 13 = TLS 1.3 */
    int tls_max;               /* 0 or 13 = TLS 1.3, 12 = TLS 1.2 */
    const char *tls12_ciphers; /* OpenSSL cipher list for TLS 1.2 (NULL: library default) */
    const char *tls13_suites;  /* TLS 1.3 suites (NULL: default; with PSK TLS_AES_256_GCM_SHA384) */
    long connect_timeout_ms;   /* 0 = 5000 */
    long timeout_ms;           /* whole request; 0 = 10000 */
    size_t max_response;       /* largest accepted body; 0 = 8 MiB */
    bool no_verify_host;       /* skip the host-name check (the chain is still verified) */
    /* With a PSK and psk_sha256 false: bind the TLS 1.3 PSK to SHA-384 first; when a request
     * fails in TLS (QKC_ETLS), retry it once with the PSK bound to SHA-256 and keep that binding
     * for the client's life (stock servers often bind external PSKs to SHA-256; RFC 8446 section
     * 4.2.11). on_psk_fallback, if set, is called once at that moment (e.g. to warn). */
    bool psk_hash_auto;
    void (*on_psk_fallback)(void *arg);
    void *on_psk_fallback_arg;
} qkc_options;

typedef struct qkc_client qkc_client;

/* Once per process before threads start (also done lazily by qkc_client_new). 0 or -1. */
int qkc_global_init(void);
void qkc_global_cleanup(void);

/* NULL on failure with e set (QKC_EUSAGE for bad options). The PSK is copied into secure
 * memory; the caller may wipe its copy at once. */
qkc_client *qkc_client_new(const qkc_options *o, qkc_error *e);
void qkc_client_free(qkc_client *c);

/* ---- raw calls (for checkers) -------------------------------------------------------------- */

typedef struct {
    long status;
    char content_type[128]; /* Content-Type header ("" if none) */
    char allow[64];         /* Allow header ("" if none) */
    char *body;             /* NUL-terminated; may hold key material */
    size_t body_len;
} qkc_raw_response;

/* Send METHOD base_url+path (path includes any query, sent as given). body may be NULL;
 * content_type (e.g. "application/json") is sent when non-NULL. Returns 0 whenever an HTTP
 * response arrived, whatever its status; transport failures return their class. */
int qkc_raw_request(qkc_client *c, const char *method, const char *path, const char *body,
                    size_t body_len, const char *content_type, qkc_raw_response *out, qkc_error *e);
/* Wipes and frees the body. */
void qkc_raw_response_free(qkc_raw_response *r);

/* Extract the server's message from an error body: the string member "message", "error" or
 * "detail" of a JSON object, else the body itself when it is short text; sanitised to
 * printable ASCII and truncated to cap-1 bytes. out is "" when there is nothing usable. */
void qkc_server_message(const char *body, size_t len, char *out, size_t cap);

/* Append s to out percent-encoded (RFC 3986 unreserved characters kept). 0, or -1 when it
 * does not fit in cap (out is then unchanged). */
int qkc_url_append_encoded(char *out, size_t cap, const char *s);

/* ---- ETSI GS QKD 014 ------------------------------------------------------------------------ */

#define QKC_ID_MAX       256   /* KME/SAE IDs and key IDs, including the NUL */
#define QKC_MAX_KEYS     1024  /* keys in one container */
#define QKC_MAX_KEY_SIZE 65536 /* bytes per key */

typedef struct {
    char source_KME_ID[QKC_ID_MAX];
    char target_KME_ID[QKC_ID_MAX];
    char master_SAE_ID[QKC_ID_MAX];
    char slave_SAE_ID[QKC_ID_MAX];
    int64_t key_size; /* bits */
    int64_t stored_key_count;
    int64_t max_key_count;
    int64_t max_key_per_request;
    int64_t max_key_size; /* bits */
    int64_t min_key_size; /* bits */
    int64_t max_SAE_ID_count;
    char *status_extension; /* compact JSON of the object, or NULL if absent (malloc'ed) */
} qkc_etsi_status;

typedef struct {
    char key_ID[QKC_ID_MAX]; /* as sent by the server */
    uint8_t *key;            /* secure memory */
    size_t key_len;          /* bytes */
} qkc_key;

typedef struct {
    qkc_key *keys;
    size_t count;
    char *key_container_extension; /* compact JSON, or NULL (malloc'ed) */
} qkc_key_set;

typedef enum { QKC_AUTO = 0, QKC_GET, QKC_POST } qkc_method;

/* A Key request. Zero/NULL members are left out of the request. */
typedef struct {
    int64_t number; /* 0: server default (1) */
    int64_t size;   /* bits; 0: server default */
    const char *const *additional_slave_SAE_IDs;
    size_t n_additional;
    const char *extension_mandatory; /* JSON text of an array of objects, or NULL */
    const char *extension_optional;  /* JSON text of an array of objects, or NULL */
} qkc_key_request;

/* GET /api/v1/keys/{slave}/status. Free with qkc_etsi_status_free. */
int qkc_etsi_status_get(qkc_client *c, const char *slave_SAE_ID, qkc_etsi_status *out,
                        qkc_error *e);
void qkc_etsi_status_free(qkc_etsi_status *s);

/* enc_keys for slave. QKC_AUTO uses GET when only number/size are set, else POST; QKC_GET
 * with anything but number/size is QKC_EUSAGE. The container must hold `number` keys (1 if
 * 0) and, when size is set, keys of ceil(size/8) bytes. Free with qkc_key_set_free. */
int qkc_etsi_get_keys(qkc_client *c, const char *slave_SAE_ID, const qkc_key_request *req,
                      qkc_method m, qkc_key_set *out, qkc_error *e);

/* dec_keys for master and n key IDs (1..QKC_MAX_KEYS). QKC_AUTO: GET ?key_ID= for one ID,
 * POST {"key_IDs":[...]} for more; QKC_GET with n != 1 is QKC_EUSAGE. The container must
 * hold exactly the requested IDs (compared case-insensitively), each once. */
int qkc_etsi_get_keys_with_ids(qkc_client *c, const char *master_SAE_ID, const char *const *key_IDs,
                               size_t n, qkc_method m, qkc_key_set *out, qkc_error *e);
void qkc_key_set_free(qkc_key_set *ks);

/* Body parsers (used by the calls above; public for checkers and tests). 0 or QKC_EMALFORMED
 * (QKC_EINTERNAL on allocation failure), with e->msg naming the problem. expect_count 0 = any;
 * expect_bytes 0 = any. */
int qkc_etsi_parse_status(const char *body, size_t len, qkc_etsi_status *out, qkc_error *e);
int qkc_etsi_parse_keys(const char *body, size_t len, size_t expect_count, size_t expect_bytes,
                        qkc_key_set *out, qkc_error *e);

/* Build the JSON text of a Key request (malloc'ed; NULL with e set, QKC_EUSAGE for invalid
 * extension JSON or IDs). */
char *qkc_etsi_key_request_json(const qkc_key_request *req, qkc_error *e);

/* ---- SKIP (draft-cisco-skip-02) ------------------------------------------------------------ */

#define QKC_SKIP_MAX_REMOTES 256
#define QKC_SKIP_KEYID_MAX   129  /* up to 128 hex digits + NUL */
#define QKC_SKIP_MAX_BYTES   8192 /* key or entropy bytes */

typedef struct {
    bool entropy;
    bool key;
    char algorithm[QKC_ID_MAX];
    char localSystemID[QKC_ID_MAX];
    char (*remoteSystemID)[QKC_ID_MAX]; /* n_remote entries (malloc'ed) */
    size_t n_remote;
} qkc_skip_caps;

typedef struct {
    char keyId[QKC_SKIP_KEYID_MAX]; /* hex, as sent by the server */
    uint8_t *key;                   /* secure memory */
    size_t key_len;
} qkc_skip_key;

typedef struct {
    uint8_t *bytes; /* secure memory */
    size_t len;
    int64_t minentropy; /* bits, as reported */
} qkc_skip_entropy;

/* GET /capabilities. Free with qkc_skip_caps_free. */
int qkc_skip_capabilities(qkc_client *c, qkc_skip_caps *out, qkc_error *e);
void qkc_skip_caps_free(qkc_skip_caps *caps);

/* GET /key?remoteSystemID=R[&size=BITS] (size 0: left out; else the key must have
 * ceil(size/8) bytes). */
int qkc_skip_get_key(qkc_client *c, const char *remote_system_id, int64_t size_bits,
                     qkc_skip_key *out, qkc_error *e);
/* GET /key/{keyId}[?remoteSystemID=R] (R may be NULL). The answer must carry the same keyId
 * (case-insensitive). */
int qkc_skip_get_key_by_id(qkc_client *c, const char *key_id, const char *remote_system_id,
                           qkc_skip_key *out, qkc_error *e);
void qkc_skip_key_free(qkc_skip_key *k);

/* GET /entropy[?minentropy=BITS] (0: left out). The reported minentropy must be at least the
 * requested one and at most 8 * the bytes returned. */
int qkc_skip_get_entropy(qkc_client *c, int64_t minentropy_bits, qkc_skip_entropy *out,
                         qkc_error *e);
void qkc_skip_entropy_free(qkc_skip_entropy *en);

/* Body parsers. expect_bits 0 = any; expect_key_id NULL = any. */
int qkc_skip_parse_caps(const char *body, size_t len, qkc_skip_caps *out, qkc_error *e);
int qkc_skip_parse_key(const char *body, size_t len, const char *expect_key_id, int64_t expect_bits,
                       qkc_skip_key *out, qkc_error *e);
int qkc_skip_parse_entropy(const char *body, size_t len, int64_t min_bits, qkc_skip_entropy *out,
                           qkc_error *e);

/* ---- lab manifest (DIR/lab.json written by qkd-lab) ---------------------------------------- */

typedef struct {
    char id[QKC_ID_MAX];
    char *cert; /* absolute PEM paths (malloc'ed) */
    char *key;
} qkc_lab_sae;

typedef struct {
    char identity[QKC_ID_MAX];
    uint8_t *psk; /* decoded psk_hex, secure memory */
    size_t psk_len;
} qkc_lab_skip_client;

typedef struct {
    char id[QKC_ID_MAX];
    char *etsi014_url; /* malloc'ed; NULL when absent */
    char *skip_url;
    char *admin_url;
    qkc_lab_sae *saes;
    size_t n_saes;
    qkc_lab_skip_client *skip_clients;
    size_t n_skip_clients;
} qkc_lab_kme;

typedef struct {
    char id[QKC_ID_MAX];
    char kmes[2][QKC_ID_MAX];
} qkc_lab_link;

typedef struct {
    char *ca_cert;
    qkc_lab_kme *kmes;
    size_t n_kmes;
    qkc_lab_link *links;
    size_t n_links;
    char *sim_url; /* NULL when absent */
} qkc_lab;

/* Parse the text of a lab.json (at most 1 MiB). Required: ca_cert, kmes[] with id; URLs are
 * strings, or null/absent (NULL); saes[] entries need id, cert, key; skip_clients[] entries
 * identity and psk_hex (1..64 bytes); links[] entries id and two kmes. Unknown members are
 * ignored. 0 or QKC_EMALFORMED / QKC_EINTERNAL. */
int qkc_lab_parse(const char *text, size_t len, qkc_lab *out, qkc_error *e);
/* Read and parse DIR/lab.json (the file's text is wiped after parsing). */
int qkc_lab_load(const char *dir, qkc_lab *out, qkc_error *e);
/* Wipes the PSKs and frees everything. */
void qkc_lab_free(qkc_lab *lab);
const qkc_lab_kme *qkc_lab_find_kme(const qkc_lab *lab, const char *id);
const qkc_lab_sae *qkc_lab_find_sae(const qkc_lab_kme *kme, const char *id);
const qkc_lab_skip_client *qkc_lab_find_skip_client(const qkc_lab_kme *kme, const char *id);

#endif
