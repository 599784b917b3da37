/* fake-kme - a small, deliberately switchable KME for the conformance tests (tests only).
 *
 * One process plays two KMEs, KME_A and KME_B, from one in-memory store: each serves ETSI GS
 * QKD 014 (mutual TLS; the caller's SAE ID is its certificate CN) and SKIP (TLS-PSK; the KP's
 * localSystemID is the KME ID), four listeners on 127.0.0.1. It behaves correctly by default;
 * every --fault NAME breaks exactly one rule, so a test can show that the matching conformance
 * check fails. `fake-kme --list-faults` prints the faults.
 *
 * Usage: fake-kme --cert F --key F --ca F --psk-file F [--saes SAE@A,SAE@B,...]
 *                 [--port-file F] [--etsi-ports PA,PB] [--fault NAME]...
 *                 [--device-fault NAME]...
 * The port file gets etsiA=, etsiB=, skipA=, skipB= lines; --etsi-ports binds the two ETSI
 * listeners to fixed ports (a restarted fake is found at the same URLs). Stops on SIGTERM/SIGINT.
 * --device-fault breaks what a KME pulling keys from this pair as its QKD device must survive
 * (tests/integration/device_source.sh; `--list-device-faults`): kept apart from --fault, whose
 * list the conformance suite checks one by one.
 * Limits: max_key_per_request 128, sizes 64..1024 bits (multiples of 8), default 256,
 * max_SAE_ID_count 2; the store keeps the last 1024 keys of each API. Each listener's handler
 * runs behind the request envelope (common/http_envelope.h): a body above 64 KiB is answered
 * 413 there. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/ssl.h>

#include "codec.h"
#include "http_envelope.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"

/* ---- faults ------------------------------------------------------------------------------ */

typedef enum {
    F_ETSI_STATUS_FIELD_NAME,
    F_ETSI_404_NOT_400,
    F_ETSI_KEY_TWICE,
    F_ETSI_BASE64_UNPADDED,
    F_ETSI_401_AS_400,
    F_ETSI_NO_MESSAGE,
    F_ETSI_KEYS_CAPITAL,
    F_ETSI_SIZE_IGNORED,
    F_ETSI_NO_MULTICAST_COPY,
    F_SKIP_HEX_UPPERCASE,
    F_SKIP_KEY_WRONG_LENGTH,
    F_SKIP_KEYID_NOT_HEX,
    F_SKIP_NO_405,
    F_SKIP_KEY_TWICE,
    F_SKIP_404_UNKNOWN_KEY,
    F_SKIP_CAPABILITIES_WRONG_TYPE,
    F_SKIP_TLS12_ONLY,
    F_SKIP_NO_REMOTE_CHECK,
    F_ETSI_OTHER_MESSAGE,
    F_ETSI_EMPTY_BODY_400,
    F_SKIP_KEYID_CASE_SENSITIVE,
    F_COUNT
} fault;

static const struct {
    const char *name, *what;
} g_fault_names[F_COUNT] = {
    {"etsi-status-field-name", "Status says \"keySize\" instead of \"key_size\""},
    {"etsi-404-not-400", "unknown or consumed keys are 404 instead of 400"},
    {"etsi-key-twice", "dec_keys delivers a key again and again"},
    {"etsi-base64-unpadded", "keys in base64 without '=' padding"},
    {"etsi-401-as-400", "an SAE that is not a slave of the key gets 400, not 401"},
    {"etsi-no-message", "error bodies are {\"error\": ...} without \"message\""},
    {"etsi-keys-capital", "the Key container's array is \"Keys\""},
    {"etsi-size-ignored", "enc_keys ignores \"size\" (always key_size bits)"},
    {"etsi-no-multicast-copy", "additional slaves get a 400 (no copy of the key)"},
    {"skip-hex-uppercase", "SKIP keys in upper-case hex"},
    {"skip-key-wrong-length", "the default SKIP key is 248 bits (62 hex digits)"},
    {"skip-keyid-not-hex", "keyIds are UUIDs with hyphens (not hex)"},
    {"skip-no-405", "other methods are served like GET (no 405)"},
    {"skip-key-twice", "/key/{keyId} delivers a key again and again"},
    {"skip-404-unknown-key", "unknown or consumed keyIds are 404 instead of 400"},
    {"skip-capabilities-wrong-type", "remoteSystemID is a string, not an array"},
    {"skip-tls12-only", "the SKIP listeners offer TLS 1.2 only"},
    {"skip-no-remote-check", "/key accepts any remoteSystemID"},
    /* These three break only advisory rules (docs/conformance.md): the checks warn. */
    {"etsi-other-message", "error messages in other words than the spec's"},
    {"etsi-empty-body-400", "POST enc_keys with no body at all is 400"},
    {"skip-keyid-case-sensitive", "/key/{keyId} in upper-case hex is not found"},
};

static bool g_fault[F_COUNT];

typedef enum { D_503, D_SLOW, D_SHORT_KEYS, D_OTHER_KEY, D_COUNT } device_fault;

static const struct {
    const char *name, *what;
} g_device_fault_names[D_COUNT] = {
    {"503", "every ETSI 014 request is answered 503"},
    {"slow", "every ETSI 014 answer comes after 4 s"},
    {"short-keys", "enc_keys keys are one byte shorter than asked"},
    {"other-key", "dec_keys delivers other bytes than enc_keys did (first byte flipped)"},
};

static bool g_device_fault[D_COUNT];

/* ---- configuration and store --------------------------------------------------------------- */

#define N_KMES         2
#define MAX_SAES       16
#define MAX_KEYS       1024
#define MAX_BYTES      128 /* 1024 bits */
#define MAX_SLAVES     3
#define MAX_PER_REQ    128
#define MIN_SIZE       64
#define MAX_SIZE       1024
#define DEFAULT_SIZE   256
#define MAX_ADDITIONAL 2
#define MSG_NOT_FOUND  "one or more keys specified are not found on KME"

static const char *const g_kme_id[N_KMES] = {"KME_A", "KME_B"};

static struct {
    char id[64];
    int kme;
} g_saes[MAX_SAES];
static size_t g_n_saes;

typedef struct {
    bool used;
    char id[QK_UUID_STR_LEN + 1]; /* ETSI: canonical UUID; SKIP: 32 hex digits */
    uint8_t key[MAX_BYTES];
    size_t len;
    int owner;                                /* SKIP: the KME that issued it; ETSI: unused */
    char master[QK_IDENTITY_MAX];             /* ETSI */
    char slaves[MAX_SLAVES][QK_IDENTITY_MAX]; /* ETSI */
    bool fetched[MAX_SLAVES];                 /* ETSI per slave; SKIP [0] */
    size_t n_slaves;
} stored_key;

static stored_key g_etsi[MAX_KEYS], g_skip[MAX_KEYS];
static size_t g_etsi_next, g_skip_next;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int sae_home(const char *id)
{
    for (size_t i = 0; i < g_n_saes; i++)
        if (strcmp(g_saes[i].id, id) == 0)
            return g_saes[i].kme;
    return -1;
}

/* Caller holds g_mu. */
static stored_key *store_add(stored_key *tab, size_t *next)
{
    stored_key *k = &tab[*next % MAX_KEYS];
    qk_wipe(k, sizeof *k);
    k->used = true;
    (*next)++;
    return k;
}

static stored_key *store_find(stored_key *tab, const char *id)
{
    for (size_t i = 0; i < MAX_KEYS; i++)
        if (tab[i].used && strcasecmp(tab[i].id, id) == 0)
            return &tab[i];
    return NULL;
}

/* ---- replies ------------------------------------------------------------------------------- */

static void etsi_error(qk_http_reply *rep, unsigned status, const char *msg)
{
    if (status == 401 && g_fault[F_ETSI_401_AS_400])
        status = 400;
    if (status == 400 && !strcmp(msg, MSG_NOT_FOUND) && g_fault[F_ETSI_404_NOT_400])
        status = 404;
    if (g_fault[F_ETSI_NO_MESSAGE]) { /* {"error": msg} instead of {"message": msg} */
        cJSON *o = cJSON_CreateObject();
        char *t = o && cJSON_AddStringToObject(o, "error", msg) ? qk_json_print(o) : NULL;
        cJSON_Delete(o);
        if (!t || qk_http_reply_json(rep, status, t) != 0)
            qk_http_reply_message(rep, 500, "out of memory");
        cJSON_free(t);
        return;
    }
    if (g_fault[F_ETSI_OTHER_MESSAGE]) {
        char other[256];
        snprintf(other, sizeof other, "request refused (%s)", msg);
        qk_http_reply_message(rep, status, other);
        return;
    }
    qk_http_reply_message(rep, status, msg);
}

/* Reply 200 with a JSON tree that holds key material: printed into a secure buffer that the
 * envelope sends and wipes; the printed copy and the tree's "key" strings are wiped here. */
static void reply_secret_tree(qk_http_reply *rep, cJSON *j)
{
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    char *sec = NULL;
    size_t len = t ? strlen(t) : 0;
    if (t) {
        sec = qk_secure_alloc(len + 1);
        if (sec)
            memcpy(sec, t, len + 1);
        qk_wipe(t, len);
        cJSON_free(t);
    }
    if (sec)
        qk_http_reply_secret(rep, 200, sec, len);
    else
        qk_http_reply_message(rep, 500, "out of memory");
    for (cJSON *k = j ? j->child : NULL; k; k = k->next) /* wipe "key" strings */
        for (cJSON *e = cJSON_IsArray(k) ? k->child : NULL; e; e = e->next) {
            cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "key");
            if (cJSON_IsString(s) && s->valuestring)
                qk_wipe(s->valuestring, strlen(s->valuestring));
        }
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "key");
    if (cJSON_IsString(s) && s->valuestring)
        qk_wipe(s->valuestring, strlen(s->valuestring));
    cJSON_Delete(j);
}

/* Strict decimal integer in [min, max] (optional leading '-'). 0 or -1. */
static int parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s || strlen(s) > 10)
        return -1;
    const char *p = s[0] == '-' ? s + 1 : s;
    if (!*p || strspn(p, "0123456789") != strlen(p))
        return -1;
    long v = strtol(s, NULL, 10);
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static bool blank_or_bad_id(const char *s)
{
    if (!s || !*s || strlen(s) >= 64)
        return true;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return true;
    return false;
}

/* ---- ETSI 014 -------------------------------------------------------------------------------- */

static void etsi_status(qk_http_reply *rep, int kme, const char *caller, const char *slave)
{
    int home = sae_home(slave);
    if (home < 0 || !strcmp(slave, caller)) {
        etsi_error(rep, 400, "unknown slave SAE ID, or the caller itself");
        return;
    }
    char body[1024];
    snprintf(body, sizeof body,
             "{\"source_KME_ID\":\"%s\",\"target_KME_ID\":\"%s\",\"master_SAE_ID\":\"%s\","
             "\"slave_SAE_ID\":\"%s\",\"%s\":%d,\"stored_key_count\":1000,"
             "\"max_key_count\":100000,\"max_key_per_request\":%d,\"max_key_size\":%d,"
             "\"min_key_size\":%d,\"max_SAE_ID_count\":%d}",
             g_kme_id[kme], g_kme_id[home], caller, slave,
             g_fault[F_ETSI_STATUS_FIELD_NAME] ? "keySize" : "key_size", DEFAULT_SIZE, MAX_PER_REQ,
             MAX_SIZE, MIN_SIZE, MAX_ADDITIONAL);
    qk_http_reply_json(rep, 200, body);
}

typedef struct {
    long number, size;
    const char *add[MAX_ADDITIONAL + 1];
    size_t n_add;
} key_request;

/* Parse and validate an enc_keys request; NULL or the error message. */
static const char *parse_key_request(const qk_http_request *req, cJSON **tree, key_request *kr)
{
    kr->number = 1;
    kr->size = DEFAULT_SIZE;
    if (!strcmp(req->method, "GET")) {
        const char *n = qk_http_query(req, "number");
        const char *s = qk_http_query(req, "size");
        if (qk_http_query_count(req, "number") > 1 || qk_http_query_count(req, "size") > 1)
            return "repeated parameter";
        if (n && parse_int(n, 1, MAX_PER_REQ, &kr->number) != 0)
            return "number out of range";
        if (s && parse_int(s, -100000, 100000, &kr->size) != 0)
            return "size is not an integer";
        return NULL;
    }
    qk_err jerr;
    if (!req->body_len && g_fault[F_ETSI_EMPTY_BODY_400])
        return "empty body";
    const char *b = req->body_len ? req->body : "{}";
    *tree = qk_json_parse(b, strlen(b), 65536, &jerr);
    if (!cJSON_IsObject(*tree))
        return "the body is not a JSON object";
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(*tree, "number");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(*tree, "size");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(*tree, "additional_slave_SAE_IDs");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(*tree, "extension_mandatory");
    if (n && (!cJSON_IsNumber(n) || n->valuedouble < 1 || n->valuedouble > MAX_PER_REQ ||
              n->valuedouble != (long)n->valuedouble))
        return "number out of range";
    if (n)
        kr->number = (long)n->valuedouble;
    if (s && (!cJSON_IsNumber(s) || s->valuedouble != (long)s->valuedouble ||
              s->valuedouble < -100000 || s->valuedouble > 100000))
        return "size is not an integer";
    if (s)
        kr->size = (long)s->valuedouble;
    if (m && (!cJSON_IsArray(m) || cJSON_GetArraySize(m) > 0))
        return "not all extension_mandatory parameters are supported";
    if (a) {
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0)
            return "additional_slave_SAE_IDs must be a non-empty array";
        if (cJSON_GetArraySize(a) > MAX_ADDITIONAL)
            return "more additional_slave_SAE_IDs than max_SAE_ID_count";
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
        {
            if (!cJSON_IsString(e) || blank_or_bad_id(e->valuestring))
                return "bad additional slave SAE ID";
            kr->add[kr->n_add++] = e->valuestring;
        }
    }
    return NULL;
}

static void etsi_enc(const qk_http_request *req, qk_http_reply *rep, const char *caller,
                     const char *slave)
{
    cJSON *tree = NULL;
    key_request kr = {0};
    const char *err = parse_key_request(req, &tree, &kr);
    int home = sae_home(slave);
    if (!err && (home < 0 || !strcmp(slave, caller)))
        err = "unknown slave SAE ID, or the caller itself";
    if (!err && kr.size % 8)
        err = "size shall be a multiple of 8";
    if (!err && (kr.size < MIN_SIZE || kr.size > MAX_SIZE))
        err = "size out of range";
    for (size_t i = 0; !err && i < kr.n_add; i++) {
        if (sae_home(kr.add[i]) != home || !strcmp(kr.add[i], slave) || !strcmp(kr.add[i], caller))
            err = "bad additional slave SAE ID";
        for (size_t k = 0; !err && k < i; k++)
            if (!strcmp(kr.add[k], kr.add[i]))
                err = "duplicate additional slave SAE ID";
    }
    if (err) {
        etsi_error(rep, 400, err);
        cJSON_Delete(tree);
        return;
    }
    if (g_fault[F_ETSI_SIZE_IGNORED])
        kr.size = DEFAULT_SIZE;
    cJSON *j = cJSON_CreateObject();
    cJSON *arr =
        j ? cJSON_AddArrayToObject(j, g_fault[F_ETSI_KEYS_CAPITAL] ? "Keys" : "keys") : NULL;
    pthread_mutex_lock(&g_mu);
    for (long i = 0; arr && i < kr.number; i++) {
        stored_key *k = store_add(g_etsi, &g_etsi_next);
        qk_uuid u;
        qk_uuid_v4(&u);
        qk_uuid_format(&u, k->id);
        k->len = (size_t)kr.size / 8 - (g_device_fault[D_SHORT_KEYS] ? 1 : 0);
        qk_random(k->key, k->len);
        snprintf(k->master, sizeof k->master, "%s", caller);
        snprintf(k->slaves[k->n_slaves++], sizeof k->slaves[0], "%s", slave);
        for (size_t a = 0; a < kr.n_add && !g_fault[F_ETSI_NO_MULTICAST_COPY]; a++)
            snprintf(k->slaves[k->n_slaves++], sizeof k->slaves[0], "%s", kr.add[a]);
        char b64[MAX_BYTES * 2];
        qk_base64_encode(k->key, k->len, b64, sizeof b64);
        if (g_fault[F_ETSI_BASE64_UNPADDED])
            b64[strcspn(b64, "=")] = '\0';
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddStringToObject(o, "key_ID", k->id) ||
            !cJSON_AddStringToObject(o, "key", b64))
            arr = NULL;
        qk_wipe(b64, sizeof b64);
    }
    pthread_mutex_unlock(&g_mu);
    cJSON_Delete(tree);
    reply_secret_tree(rep, j);
}

static void etsi_dec(const qk_http_request *req, qk_http_reply *rep, const char *caller,
                     const char *master)
{
    char ids[MAX_PER_REQ][QK_UUID_STR_LEN + 1];
    size_t n = 0;
    cJSON *tree = NULL;
    const char *err = NULL;
    if (sae_home(master) < 0 || !strcmp(master, caller))
        err = "unknown master SAE ID, or the caller itself";
    else if (!strcmp(req->method, "GET")) {
        const char *id = qk_http_query(req, "key_ID");
        qk_uuid u;
        if (!id || qk_http_query_count(req, "key_ID") != 1)
            err = "exactly one key_ID";
        else if (qk_uuid_parse(id, strlen(id), &u) != 0)
            err = "key_ID is not a UUID";
        else
            qk_uuid_format(&u, ids[n++]);
    } else {
        qk_err jerr;
        tree = qk_json_parse(req->body, req->body_len, 65536, &jerr);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(tree, "key_IDs"), *e;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0 || cJSON_GetArraySize(a) > MAX_PER_REQ)
            err = "key_IDs must be a non-empty array";
        const cJSON *list = err ? NULL : a;
        cJSON_ArrayForEach(e, list)
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "key_ID");
            qk_uuid u;
            if (!cJSON_IsString(id) || qk_uuid_parse(id->valuestring, strlen(id->valuestring), &u))
                err = "key_ID is not a UUID";
            else
                qk_uuid_format(&u, ids[n++]);
            if (err)
                break;
        }
    }
    cJSON_Delete(tree);
    if (err) {
        etsi_error(rep, 400, err);
        return;
    }
    pthread_mutex_lock(&g_mu);
    stored_key *found[MAX_PER_REQ];
    size_t slot[MAX_PER_REQ];
    unsigned status = 200;
    for (size_t i = 0; i < n && status == 200; i++) {
        stored_key *k = store_find(g_etsi, ids[i]);
        if (!k || strcmp(k->master, master) != 0) {
            status = 400;
            break;
        }
        size_t s = 0;
        while (s < k->n_slaves && strcmp(k->slaves[s], caller) != 0)
            s++;
        if (s == k->n_slaves)
            status = 401;
        else if (k->fetched[s])
            status = 400;
        found[i] = k;
        slot[i] = s;
    }
    cJSON *j = NULL;
    if (status == 200) {
        j = cJSON_CreateObject();
        cJSON *arr = j ? cJSON_AddArrayToObject(j, "keys") : NULL;
        for (size_t i = 0; arr && i < n; i++) {
            char b64[MAX_BYTES * 2];
            uint8_t other[MAX_BYTES];
            memcpy(other, found[i]->key, found[i]->len);
            other[0] ^= g_device_fault[D_OTHER_KEY] ? 0xff : 0;
            qk_base64_encode(other, found[i]->len, b64, sizeof b64);
            qk_wipe(other, sizeof other);
            if (g_fault[F_ETSI_BASE64_UNPADDED])
                b64[strcspn(b64, "=")] = '\0';
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddItemToArray(arr, o) ||
                !cJSON_AddStringToObject(o, "key_ID", found[i]->id) ||
                !cJSON_AddStringToObject(o, "key", b64))
                arr = NULL;
            qk_wipe(b64, sizeof b64);
            if (!g_fault[F_ETSI_KEY_TWICE])
                found[i]->fetched[slot[i]] = true;
        }
    }
    pthread_mutex_unlock(&g_mu);
    if (status == 401)
        etsi_error(rep, 401, "the caller is not a slave of the requested keys");
    else if (status == 400)
        etsi_error(rep, 400, MSG_NOT_FOUND);
    else
        reply_secret_tree(rep, j);
}

/* One fake KME's listener: kme is 0 (KME_A) or 1 (KME_B). */
typedef struct {
    qk_http_handler super; /* first: on_req casts self back */
    int kme;
} fake_handler;

static void etsi_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    int kme = ((fake_handler *)self)->kme;
    const char *caller = req->caller->id;
    if (g_device_fault[D_SLOW])
        nanosleep(&(struct timespec){.tv_sec = 4}, NULL);
    if (g_device_fault[D_503]) {
        etsi_error(rep, 503, "the device is busy");
        return;
    }
    if (sae_home(caller) != kme) {
        etsi_error(rep, 401, "the caller is not an SAE of this KME");
        return;
    }
    static const char prefix[] = "/api/v1/keys/";
    const char *url = req->path;
    if (strncmp(url, prefix, sizeof prefix - 1) != 0) {
        etsi_error(rep, 400, "unknown route");
        return;
    }
    const char *sae = url + sizeof prefix - 1;
    const char *slash = strchr(sae, '/');
    char id[64];
    if (!slash || (size_t)(slash - sae) >= sizeof id) {
        etsi_error(rep, 400, "unknown route");
        return;
    }
    memcpy(id, sae, (size_t)(slash - sae));
    id[slash - sae] = '\0';
    if (blank_or_bad_id(id)) {
        etsi_error(rep, 400, "bad SAE ID in the path");
        return;
    }
    const char *op = slash + 1;
    bool get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strcmp(op, "status") && get)
        etsi_status(rep, kme, caller, id);
    else if (!strcmp(op, "enc_keys") && (get || post))
        etsi_enc(req, rep, caller, id);
    else if (!strcmp(op, "dec_keys") && (get || post))
        etsi_dec(req, rep, caller, id);
    else
        etsi_error(rep, 400, "unknown route or method");
}

/* ---- SKIP ------------------------------------------------------------------------------------ */

static void hex_of(const uint8_t *b, size_t n, char *out, size_t cap, bool upper)
{
    qk_hex_encode(b, n, out, cap);
    for (char *p = out; upper && *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static void skip_caps(qk_http_reply *rep, int kme)
{
    char body[256];
    const char *other = g_kme_id[1 - kme];
    snprintf(body, sizeof body,
             "{\"entropy\":true,\"key\":true,\"algorithm\":\"fake-kme\",\"localSystemID\":\"%s\","
             "\"remoteSystemID\":%s%s%s}",
             g_kme_id[kme], g_fault[F_SKIP_CAPABILITIES_WRONG_TYPE] ? "\"" : "[\"", other,
             g_fault[F_SKIP_CAPABILITIES_WRONG_TYPE] ? "\"" : "\"]");
    qk_http_reply_json(rep, 200, body);
}

static bool remote_ok(const qk_http_request *req, int kme)
{
    const char *r = qk_http_query(req, "remoteSystemID");
    if (!r || qk_http_query_count(req, "remoteSystemID") != 1)
        return false;
    return g_fault[F_SKIP_NO_REMOTE_CHECK] || !strcmp(r, g_kme_id[1 - kme]);
}

static void skip_new_key(const qk_http_request *req, qk_http_reply *rep, int kme)
{
    if (!remote_ok(req, kme)) {
        qk_http_reply_message(rep, 400, "remoteSystemID missing or unknown");
        return;
    }
    long size = DEFAULT_SIZE;
    const char *s = qk_http_query(req, "size");
    if (s && (qk_http_query_count(req, "size") != 1 ||
              parse_int(s, MIN_SIZE, MAX_SIZE, &size) != 0 || size % 8)) {
        qk_http_reply_message(rep, 400, "bad size");
        return;
    }
    char idhex[QK_UUID_STR_LEN + 1], keyhex[MAX_BYTES * 2 + 1];
    pthread_mutex_lock(&g_mu);
    stored_key *k = store_add(g_skip, &g_skip_next);
    qk_uuid u;
    qk_uuid_v4(&u);
    qk_uuid_format_hex(&u, k->id);
    k->owner = kme;
    k->len = (size_t)size / 8;
    if (!s && g_fault[F_SKIP_KEY_WRONG_LENGTH])
        k->len--;
    qk_random(k->key, k->len);
    if (g_fault[F_SKIP_KEYID_NOT_HEX])
        qk_uuid_format(&u, idhex);
    else
        snprintf(idhex, sizeof idhex, "%s", k->id);
    hex_of(k->key, k->len, keyhex, sizeof keyhex, g_fault[F_SKIP_HEX_UPPERCASE]);
    pthread_mutex_unlock(&g_mu);
    cJSON *j = cJSON_CreateObject();
    if (j && (!cJSON_AddStringToObject(j, "keyId", idhex) ||
              !cJSON_AddStringToObject(j, "key", keyhex))) {
        cJSON_Delete(j);
        j = NULL;
    }
    qk_wipe(keyhex, sizeof keyhex);
    reply_secret_tree(rep, j);
}

static void skip_key_by_id(const qk_http_request *req, qk_http_reply *rep, int kme, const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > 128 || strspn(id, "0123456789abcdefABCDEF") != len) {
        qk_http_reply_message(rep, 400, "malformed keyId");
        return;
    }
    const char *r = qk_http_query(req, "remoteSystemID");
    if (!r || qk_http_query_count(req, "remoteSystemID") != 1 ||
        strcmp(r, g_kme_id[1 - kme]) != 0) {
        qk_http_reply_message(rep, 400, "remoteSystemID missing or unknown");
        return;
    }
    char keyhex[MAX_BYTES * 2 + 1], idhex[QK_UUID_STR_LEN + 1];
    pthread_mutex_lock(&g_mu);
    stored_key *k = store_find(g_skip, id);
    if (g_fault[F_SKIP_KEYID_CASE_SENSITIVE] && strpbrk(id, "ABCDEF"))
        k = NULL;
    bool ok = k && k->owner == 1 - kme && !k->fetched[0];
    if (ok) {
        hex_of(k->key, k->len, keyhex, sizeof keyhex, g_fault[F_SKIP_HEX_UPPERCASE]);
        snprintf(idhex, sizeof idhex, "%s", k->id);
        if (!g_fault[F_SKIP_KEY_TWICE])
            k->fetched[0] = true;
    }
    pthread_mutex_unlock(&g_mu);
    if (!ok) {
        qk_http_reply_message(rep, g_fault[F_SKIP_404_UNKNOWN_KEY] ? 404 : 400, "key not found");
        return;
    }
    cJSON *j = cJSON_CreateObject();
    if (j && (!cJSON_AddStringToObject(j, "keyId", idhex) ||
              !cJSON_AddStringToObject(j, "key", keyhex))) {
        cJSON_Delete(j);
        j = NULL;
    }
    qk_wipe(keyhex, sizeof keyhex);
    reply_secret_tree(rep, j);
}

static void skip_entropy(const qk_http_request *req, qk_http_reply *rep)
{
    long bits = 256;
    const char *m = qk_http_query(req, "minentropy");
    if (m && (qk_http_query_count(req, "minentropy") != 1 || parse_int(m, 8, 4096, &bits) != 0 ||
              bits % 8)) {
        qk_http_reply_message(rep, 400, "bad minentropy");
        return;
    }
    enum { BODY_CAP = 1100 };
    uint8_t rnd[512];
    char hex[1025];
    char *body = qk_secure_alloc(BODY_CAP); /* sent and wiped by the envelope */
    if (!body) {
        qk_http_reply_message(rep, 500, "out of memory");
        return;
    }
    qk_random(rnd, (size_t)bits / 8);
    qk_hex_encode(rnd, (size_t)bits / 8, hex, sizeof hex);
    int n = snprintf(body, BODY_CAP, "{\"randomStr\":\"%s\",\"minentropy\":%ld}", hex, bits);
    qk_wipe(rnd, sizeof rnd);
    qk_wipe(hex, sizeof hex);
    if (n < 0 || n >= BODY_CAP) {
        qk_secure_free(body);
        qk_http_reply_message(rep, 500, "reply too long");
        return;
    }
    qk_http_reply_secret(rep, 200, body, (size_t)n);
}

static void skip_on_req(qk_http_handler *self, const qk_http_request *req, qk_http_reply *rep)
{
    int kme = ((fake_handler *)self)->kme;
    const char *url = req->path;
    bool known = !strcmp(url, "/capabilities") || !strcmp(url, "/key") ||
                 !strcmp(url, "/entropy") ||
                 (!strncmp(url, "/key/", 5) && url[5] && !strchr(url + 5, '/'));
    if (!known)
        qk_http_reply_message(rep, 404, "no such path");
    else if (strcmp(req->method, "GET") != 0 && !g_fault[F_SKIP_NO_405]) {
        qk_http_reply_message(rep, 405, "only GET is supported");
        qk_http_reply_allow(rep, "GET");
    } else if (!strcmp(url, "/capabilities"))
        skip_caps(rep, kme);
    else if (!strcmp(url, "/key"))
        skip_new_key(req, rep, kme);
    else if (!strcmp(url, "/entropy"))
        skip_entropy(req, rep);
    else
        skip_key_by_id(req, rep, kme, url + 5);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_saes(const char *spec)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    g_n_saes = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *at = strchr(t, '@');
        if (!at || g_n_saes == MAX_SAES || (at[1] != 'A' && at[1] != 'B') || at[2] ||
            (size_t)(at - t) >= sizeof g_saes[0].id || at == t)
            return -1;
        *at = '\0';
        snprintf(g_saes[g_n_saes].id, sizeof g_saes[0].id, "%s", t);
        g_saes[g_n_saes++].kme = at[1] == 'A' ? 0 : 1;
    }
    return g_n_saes ? 0 : -1;
}

static int set_fault(const char *name)
{
    for (int i = 0; i < F_COUNT; i++)
        if (!strcmp(name, g_fault_names[i].name)) {
            g_fault[i] = true;
            return 0;
        }
    return -1;
}

static int set_device_fault(const char *name)
{
    for (int i = 0; i < D_COUNT; i++)
        if (!strcmp(name, g_device_fault_names[i].name)) {
            g_device_fault[i] = true;
            return 0;
        }
    return -1;
}

/* "PA,PB": the fixed ports of the etsiA and etsiB listeners. */
static int parse_ports(const char *s, uint16_t port[2])
{
    unsigned a = 0, b = 0;
    char end = 0;
    if (sscanf(s, "%u,%u%c", &a, &b, &end) != 2 || a < 1 || a > 65535 || b < 1 || b > 65535)
        return -1;
    port[0] = (uint16_t)a;
    port[1] = (uint16_t)b;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fake-kme --cert F --key F --ca F --psk-file F [--saes SAE@A,SAE@B,...]\n"
            "                [--port-file F] [--etsi-ports PA,PB] [--fault NAME]...\n"
            "                [--device-fault NAME]... | --list-faults | --list-device-faults\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"cert", required_argument, NULL, 'c'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"ca", required_argument, NULL, 'a'},
                                         {"psk-file", required_argument, NULL, 'p'},
                                         {"saes", required_argument, NULL, 's'},
                                         {"port-file", required_argument, NULL, 'f'},
                                         {"fault", required_argument, NULL, 'F'},
                                         {"list-faults", no_argument, NULL, 'L'},
                                         {"etsi-ports", required_argument, NULL, 'P'},
                                         {"device-fault", required_argument, NULL, 'D'},
                                         {"list-device-faults", no_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    const char *cert = NULL, *key = NULL, *ca = NULL, *psk_file = NULL, *port_file = NULL;
    const char *saes = "SAE_A1@A,SAE_B1@B,SAE_B2@B";
    uint16_t etsi_port[2] = {0, 0};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'p':
            psk_file = optarg;
            break;
        case 's':
            saes = optarg;
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'F':
            if (set_fault(optarg) != 0) {
                fprintf(stderr, "fake-kme: unknown fault %s (see --list-faults)\n", optarg);
                return 2;
            }
            break;
        case 'L':
            for (int i = 0; i < F_COUNT; i++)
                printf("%-30s %s\n", g_fault_names[i].name, g_fault_names[i].what);
            return 0;
        case 'P':
            if (parse_ports(optarg, etsi_port) != 0)
                usage();
            break;
        case 'D':
            if (set_device_fault(optarg) != 0) {
                fprintf(stderr, "fake-kme: unknown device fault %s (see --list-device-faults)\n",
                        optarg);
                return 2;
            }
            break;
        case 'l':
            for (int i = 0; i < D_COUNT; i++)
                printf("%-30s %s\n", g_device_fault_names[i].name, g_device_fault_names[i].what);
            return 0;
        default:
            usage();
        }
    }
    if (!cert || !key || !ca || !psk_file || optind != argc || parse_saes(saes) != 0)
        usage();
    if (qk_secure_init() != 0 || qk_log_open(NULL, QK_LOG_WARN, "fake-kme") != 0) {
        fprintf(stderr, "fake-kme: init failed\n");
        return 1;
    }
    qk_psk_table psks = {NULL, 0};
    qk_err err;
    qk_err_clear(&err);
    if (qk_psk_table_load(psk_file, &psks, &err) != 0) {
        fprintf(stderr, "fake-kme: %s\n", err.msg);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    qk_tls_server *srv[4] = {NULL};
    static const char *const names[4] = {"etsiA", "etsiB", "skipA", "skipB"};
    static fake_handler handlers[4];
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        qk_listener_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.name = names[i];
        cfg.bind_addr = "127.0.0.1";
        cfg.port = i < 2 ? etsi_port[i] : 0;
        handlers[i].super.on_req = i < 2 ? etsi_on_req : skip_on_req;
        handlers[i].kme = i % 2;
        cfg.handler = &handlers[i].super;
        cfg.max_body = 65536;
        if (i < 2) {
            cfg.tls.mode = QK_TLS_MODE_MTLS;
            cfg.tls.cert_file = cert;
            cfg.tls.key_file = key;
            cfg.tls.ca_file = ca;
        } else {
            cfg.tls.mode = QK_TLS_MODE_PSK;
            cfg.tls.psks = &psks;
            if (g_fault[F_SKIP_TLS12_ONLY])
                cfg.tls.max_version = TLS1_2_VERSION;
        }
        if (qk_tls_server_start(&cfg, &srv[i], &err) != 0) {
            fprintf(stderr, "fake-kme: %s: %s\n", names[i], err.msg);
            rc = 1;
        }
    }
    if (rc == 0 && port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        for (int i = 0; f && i < 4; i++)
            if (fprintf(f, "%s=%u\n", names[i], (unsigned)qk_tls_server_port(srv[i])) < 0)
                rc = 1;
        if (!f || fclose(f) != 0 || rename(tmp, port_file) != 0 || rc) {
            fprintf(stderr, "fake-kme: cannot write %s\n", port_file);
            rc = 1;
        }
    }
    if (rc == 0) {
        int sig = 0;
        sigwait(&set, &sig);
    }
    for (int i = 0; i < 4; i++)
        qk_tls_server_stop(srv[i]);
    pthread_mutex_lock(&g_mu);
    qk_wipe(g_etsi, sizeof g_etsi);
    qk_wipe(g_skip, sizeof g_skip);
    pthread_mutex_unlock(&g_mu);
    qk_psk_table_free(&psks);
    qk_log_close();
    return rc;
}
