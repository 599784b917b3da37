/* fuzz_skip_parse.c - libFuzzer target for the SKIP request parsing (skip-server/skip_parse.c,
 * draft-cisco-skip-02). Every input goes through every parser that sees untrusted text:
 *   - as a request path (route, keyId segment), checked against a reference model,
 *   - as a keyId (qk_skip_parse_key_id) and a hyphenated UUID (qk_skip_key_id_of),
 *   - as a size / minentropy bit count,
 *   - as a system ID (remoteSystemID) and a store identity,
 *   - split at the first newline into a glob list and an ID: the list walk, the match, the
 *     client rule lookup and the capabilities answer,
 *   - as key material and entropy for the answers, which must parse back to the same bytes.
 * Besides memory errors (ASan/UBSan) the target checks the parsers' promises and aborts when
 * one is broken: accepted values are within their range, IDs are canonical, errors carry a
 * message. Build and run: `make fuzz-run FUZZ_SECONDS=600` (etsi014/README.md, Fuzzing). */
#include <ctype.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "fuzz_util.h"
#include "secbuf.h"
#include "skip_parse.h"

#define MAX_INPUT    16384
#define MAX_MATERIAL 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return qk_secure_init() == 0 ? 0 : 1;
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The canonical ID with its hyphens removed equals the hex text, case aside. */
static bool same_uuid(const char *canonical, const char *hex32)
{
    size_t j = 0;
    for (size_t i = 0; canonical[i]; i++) {
        if (canonical[i] == '-')
            continue;
        if (j >= QK_UUID_HEX_LEN || canonical[i] != tolower((unsigned char)hex32[j]))
            return false;
        j++;
    }
    return j == QK_UUID_HEX_LEN;
}

static bool system_id_chars(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= QK_SKIP_SYSTEM_ID_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "abcdefghijklmnopqrstuvwxyz"
                     "0123456789_.-") == n;
}

/* Routes: the part before '?' is one of the fixed paths, or /key/ and one segment. */
static void fuzz_path(const char *s)
{
    char id[QK_SKIP_KEY_ID_HEX_MAX + 2];
    memset(id, 'x', sizeof id);
    qk_skip_route r = qk_skip_parse_path(s, id, sizeof id);
    size_t len = strcspn(s, "?");
    qk_skip_route want = QK_SKIP_ROUTE_NONE;
    if (len == 13 && strncmp(s, "/capabilities", 13) == 0)
        want = QK_SKIP_ROUTE_CAPABILITIES;
    else if (len == 4 && strncmp(s, "/key", 4) == 0)
        want = QK_SKIP_ROUTE_KEY;
    else if (len == 8 && strncmp(s, "/entropy", 8) == 0)
        want = QK_SKIP_ROUTE_ENTROPY;
    else if (len >= 5 && strncmp(s, "/key/", 5) == 0 && !memchr(s + 5, '/', len - 5))
        want = QK_SKIP_ROUTE_KEY_ID;
    REQUIRE(r == want);
    REQUIRE(memchr(id, '\0', sizeof id) != NULL); /* always terminated */
    if (r == QK_SKIP_ROUTE_KEY_ID) {
        size_t idl = strlen(id), seg = len - 5;
        REQUIRE(idl == (seg < sizeof id - 1 ? seg : sizeof id - 1));
        REQUIRE(strncmp(id, s + 5, idl) == 0);
    } else {
        REQUIRE(id[0] == '\0');
    }
    /* a small capacity must never overflow, a zero one never be written */
    char small[4];
    if (qk_skip_parse_path(s, small, sizeof small) == QK_SKIP_ROUTE_KEY_ID)
        REQUIRE(strlen(small) < sizeof small);
    REQUIRE(qk_skip_parse_path(s, small, 0) == QK_SKIP_ROUTE_NONE);
}

static void fuzz_key_id(const char *s)
{
    char out[QK_KEY_ID_LEN + 1] = "";
    qk_err err = {0};
    int rc = qk_skip_parse_key_id(s, out, &err);
    size_t n = strlen(s);
    if (rc == 0) {
        REQUIRE(n == QK_UUID_HEX_LEN && all_hex(s, n));
        REQUIRE(fuzz_key_id_canonical(out) && same_uuid(out, s));
        /* and back: the keyId of the canonical ID is the input in lower case */
        char hex[QK_UUID_HEX_LEN + 1];
        REQUIRE(qk_skip_key_id_of(out, hex) == 0);
        REQUIRE(lower_hex(hex, QK_UUID_HEX_LEN) && strlen(hex) == QK_UUID_HEX_LEN);
        for (size_t i = 0; i < QK_UUID_HEX_LEN; i++)
            REQUIRE(hex[i] == tolower((unsigned char)s[i]));
    } else if (rc == QK_ENOTFOUND) {
        /* well-formed, but cannot name one of our keys */
        REQUIRE(n >= 1 && n <= QK_SKIP_KEY_ID_HEX_MAX && n != QK_UUID_HEX_LEN && all_hex(s, n));
        REQUIRE(err.msg[0] != '\0');
    } else {
        REQUIRE(rc == QK_EINVAL && err.msg[0] != '\0');
        REQUIRE(n == 0 || n > QK_SKIP_KEY_ID_HEX_MAX || !all_hex(s, n));
    }
}

/* qk_skip_key_id_of accepts exactly the hyphenated UUIDs. */
static void fuzz_key_id_of(const char *s)
{
    char hex[QK_UUID_HEX_LEN + 1];
    qk_uuid u;
    int want = qk_uuid_parse(s, strlen(s), &u);
    int rc = qk_skip_key_id_of(s, hex);
    REQUIRE(rc == want);
    if (rc == 0) {
        REQUIRE(strlen(hex) == QK_UUID_HEX_LEN && lower_hex(hex, QK_UUID_HEX_LEN));
        char canon[QK_KEY_ID_LEN + 1];
        qk_err err = {0};
        REQUIRE(qk_skip_parse_key_id(hex, canon, &err) == 0);
        for (size_t i = 0; i < QK_KEY_ID_LEN; i++)
            REQUIRE(canon[i] == tolower((unsigned char)s[i]));
    }
}

static void check_bits(const char *s, uint32_t min, uint32_t max)
{
    uint32_t v = 0xdeadbeef;
    qk_err err = {0};
    int rc = qk_skip_parse_bits("size", s, min, max, &v, &err);
    size_t n = strlen(s);
    bool digits = n >= 1 && n <= 7 && strspn(s, "0123456789") == n;
    unsigned long want = digits ? strtoul(s, NULL, 10) : 0;
    bool ok = digits && want != 0 && want % 8 == 0 && want >= min && want <= max;
    if (rc == 0) {
        REQUIRE(ok && v == want);
    } else {
        REQUIRE(!ok && rc == QK_EINVAL && err.msg[0] != '\0' && v == 0xdeadbeef);
        REQUIRE(strstr(err.msg, "size") != NULL);
    }
}

static void fuzz_bits(const char *s)
{
    check_bits(s, 64, 8192);   /* the key size limits of a typical KME */
    check_bits(s, 8, 1 << 20); /* minentropy up to a large max_entropy_bits */
    check_bits(s, 0, 0);       /* nothing can be accepted */
}

static void fuzz_ids(const char *s)
{
    bool valid = qk_skip_system_id_valid(s);
    REQUIRE(valid == system_id_chars(s));
    char out[QK_SKIP_IDENTITY_MAX];
    memset(out, 'x', sizeof out);
    int rc = qk_skip_identity(s, out, sizeof out);
    REQUIRE((rc == 0) == valid);
    if (rc == 0)
        REQUIRE(strncmp(out, QK_SKIP_ID_PREFIX, strlen(QK_SKIP_ID_PREFIX)) == 0 &&
                strcmp(out + strlen(QK_SKIP_ID_PREFIX), s) == 0);
    char tiny[sizeof QK_SKIP_ID_PREFIX]; /* room for the prefix only: never enough */
    REQUIRE(qk_skip_identity(s, tiny, sizeof tiny) == -1);
}

/* The entries of a glob list, as qk_skip_globs_each hands them out. */
typedef struct {
    char entries[QK_SKIP_GLOBS_MAX][QK_SKIP_GLOB_MAX + 1];
    size_t n;
    const char *id;
    bool any_match;
} glob_acc;

static int collect(const char *glob, void *arg)
{
    glob_acc *a = arg;
    size_t l = strlen(glob);
    REQUIRE(l >= 1 && l <= QK_SKIP_GLOB_MAX);
    REQUIRE(!strchr(glob, ','));
    REQUIRE(!isspace((unsigned char)glob[0]) && !isspace((unsigned char)glob[l - 1]));
    REQUIRE(a->n < QK_SKIP_GLOBS_MAX);
    memcpy(a->entries[a->n++], glob, l + 1);
    if (fnmatch(glob, a->id, 0) == 0)
        a->any_match = true;
    return 0;
}

static int stop_at_first(const char *glob, void *arg)
{
    (void)glob;
    (*(int *)arg)++;
    return 7;
}

static void fuzz_globs(const char *list, const char *full_id)
{
    /* the handler matches only checked system IDs (at most 64 characters): keep the length */
    char id[QK_SKIP_SYSTEM_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", full_id);
    static glob_acc a;
    memset(&a, 0, sizeof a);
    a.id = id;
    REQUIRE(qk_skip_globs_each(list, collect, &a) == 0);
    REQUIRE(qk_skip_globs_match(list, id) == a.any_match);
    int calls = 0;
    REQUIRE(qk_skip_globs_each(list, stop_at_first, &calls) == (a.n ? 7 : 0));
    REQUIRE(calls == (a.n ? 1 : 0));
    REQUIRE(!qk_skip_globs_match(NULL, id) && !qk_skip_globs_match(list, NULL));

    /* the client rule: its own list for the identity, else the default */
    qk_skip_client_rule rules[2] = {{"enc_a", "KME_B"}, {id, list}};
    REQUIRE(qk_skip_client_globs(rules, 2, list, id) ==
            (strcmp(id, "enc_a") ? list : rules[0].remote_systems));
    const char *d = qk_skip_client_globs(rules, 2, list, NULL);
    REQUIRE(d == (list[0] ? list : NULL));

    /* the capabilities answer lists the entries (and the local ID for a loopback pair) */
    const char *local = qk_skip_system_id_valid(id) ? id : "KME_A";
    for (int loop = 0; loop < 2; loop++) {
        char *text = qk_skip_capabilities_json(loop, "AES-256", local, list, loop);
        REQUIRE(text != NULL);
        cJSON *j = cJSON_Parse(text);
        REQUIRE(j != NULL);
        cJSON *loc = cJSON_GetObjectItemCaseSensitive(j, "localSystemID");
        REQUIRE(cJSON_IsString(loc) && strcmp(loc->valuestring, local) == 0);
        REQUIRE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "key")));
        REQUIRE(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "entropy")));
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "remoteSystemID");
        REQUIRE(cJSON_IsArray(arr));
        bool listed = false;
        for (size_t i = 0; i < a.n; i++) {
            cJSON *e = cJSON_GetArrayItem(arr, (int)i);
            REQUIRE(cJSON_IsString(e) && strcmp(e->valuestring, a.entries[i]) == 0);
            listed |= strcmp(a.entries[i], local) == 0;
        }
        size_t want = a.n + (loop && !listed ? 1 : 0);
        REQUIRE((size_t)cJSON_GetArraySize(arr) == want);
        cJSON_Delete(j);
        free(text);
    }
}

/* Decode a hex member of a JSON answer into out (cap bytes); its length. */
static size_t hex_member(cJSON *j, const char *name, uint8_t *out, size_t cap)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(j, name);
    REQUIRE(cJSON_IsString(m));
    size_t l = strlen(m->valuestring), n = 0;
    REQUIRE(lower_hex(m->valuestring, l));
    REQUIRE(qk_hex_decode(m->valuestring, l, out, cap, &n) == 0);
    return n;
}

/* An answer built from size bytes of material (json, len as the builder left them): refused
 * with nothing out when there is no material, else exactly len bytes of JSON with two members,
 * returned parsed (NULL when refused). */
static cJSON *answer_of(int rc, const char *json, size_t len, size_t size)
{
    if (size == 0) {
        REQUIRE(rc == -1 && json == NULL && len == 0);
        return NULL;
    }
    REQUIRE(rc == 0 && json && strlen(json) == len);
    cJSON *j = cJSON_ParseWithLength(json, len);
    REQUIRE(j != NULL && cJSON_GetArraySize(j) == 2);
    return j;
}

/* Key and entropy answers from the input bytes: valid JSON, the same bytes back. */
static void fuzz_answers(const uint8_t *data, size_t size)
{
    if (size > MAX_MATERIAL)
        size = MAX_MATERIAL;
    qk_uuid u;
    memset(&u, 0, sizeof u);
    memcpy(u.b, data, size < sizeof u.b ? size : sizeof u.b);
    char uuid[QK_KEY_ID_LEN + 1], kid[QK_UUID_HEX_LEN + 1];
    qk_uuid_format(&u, uuid);
    qk_uuid_format_hex(&u, kid);
    uint8_t *dec = malloc(size + 1);
    REQUIRE(dec != NULL);
    char *json = NULL;
    size_t len = 0;
    int rc = qk_skip_key_json(uuid, data, size, &json, &len);
    cJSON *j = answer_of(rc, json, len, size);
    if (j) {
        cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "keyId");
        REQUIRE(cJSON_IsString(k) && strcmp(k->valuestring, kid) == 0);
        REQUIRE(hex_member(j, "key", dec, size + 1) == size && memcmp(dec, data, size) == 0);
        cJSON_Delete(j);
        qk_secure_free(json);
    }
    /* a key ID that is not a canonical UUID is refused */
    REQUIRE(qk_skip_key_json(kid, data, size ? size : 1, &json, &len) == -1 && json == NULL);

    uint32_t bits = (uint32_t)size * 8;
    rc = qk_skip_entropy_json(data, size, bits, &json, &len);
    j = answer_of(rc, json, len, size);
    if (j) {
        REQUIRE(hex_member(j, "randomStr", dec, size + 1) == size && memcmp(dec, data, size) == 0);
        cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "minentropy");
        REQUIRE(cJSON_IsNumber(m) && m->valuedouble == (double)bits);
        cJSON_Delete(j);
        qk_secure_free(json);
    }
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fuzz_path(s);
    fuzz_key_id(s);
    fuzz_key_id_of(s);
    fuzz_bits(s);
    fuzz_ids(s);
    /* list and ID: split at the first newline (no newline: the whole input is both) */
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        fuzz_globs(s, nl + 1);
        *nl = '\n';
    } else {
        fuzz_globs(s, s);
    }
    fuzz_answers(data, size);
    free(s);
    return 0;
}
