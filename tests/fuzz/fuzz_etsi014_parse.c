/* fuzz_etsi014_parse.c - libFuzzer target for the ETSI GS QKD 014 request parsing and
 * validation (etsi014/etsi014_parse.c). Every input goes through every parser:
 *   - as a request path (route split, SAE ID syntax),
 *   - as a query integer (number / size),
 *   - as a POST enc_keys body (Key request) followed by the limit and identity checks,
 *   - as a POST dec_keys body (Key IDs) and as a single key_ID,
 *   - as key material for the Key container, which must parse back to the same bytes.
 * Besides memory errors (ASan/UBSan) the target checks the parsers' promises and aborts when
 * one is broken: accepted values are within the limits, IDs are canonical, errors carry a
 * message. Build and run: `make fuzz-run FUZZ_SECONDS=600` (see etsi014/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "etsi014_parse.h"
#include "fuzz_util.h"
#include "secbuf.h"

static const qk_key_limits LIM = {
    .default_size_bits = 256,
    .min_size_bits = 64,
    .max_size_bits = 8192,
    .max_keys_per_request = 128,
    .max_key_count = 100000,
    .max_sae_id_count = 4,
    .reservation_lifetime_s = 3600,
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return qk_secure_init() == 0 ? 0 : 1;
}

static void fuzz_path(const char *s)
{
    qk_etsi_route r = QK_ETSI_ROUTE_NONE;
    char id[QK_ETSI_SAE_ID_MAX + 1];
    qk_err err = {0};
    int rc = qk_etsi_parse_path(s, &r, id, sizeof id, &err);
    if (rc == 0) {
        REQUIRE(r != QK_ETSI_ROUTE_NONE);
        REQUIRE(qk_etsi_sae_id_valid(id, strlen(id)));
        REQUIRE(strncmp(s, "/api/v1/keys/", 13) == 0);
    } else {
        REQUIRE(rc == QK_EINVAL && err.msg[0] != '\0' && r == QK_ETSI_ROUTE_NONE);
    }
    /* a small capacity must never overflow */
    char small[4];
    (void)qk_etsi_parse_path(s, &r, small, sizeof small, &err);
}

static void fuzz_int(const char *s)
{
    int64_t v = 0;
    if (qk_etsi_parse_int(s, &v) == 0) {
        /* at most 10 digits after an optional '-', nothing else */
        REQUIRE(v > -10000000000LL && v < 10000000000LL);
        REQUIRE(s[0] != '\0' && strlen(s) <= 11 &&
                strspn(s + (s[0] == '-'), "0123456789") == strlen(s + (s[0] == '-')));
    }
}

static void fuzz_key_request(const char *body, size_t len)
{
    qk_etsi_key_req *r = calloc(1, sizeof *r);
    if (!r)
        return;
    cJSON *details = NULL;
    qk_err err = {0};
    int rc = qk_etsi_parse_key_request(body, len, r, &details, &err);
    if (rc != 0) {
        REQUIRE(rc == QK_EINVAL && err.msg[0] != '\0');
        if (details) {
            REQUIRE(strcmp(err.msg, QK_ETSI_MSG_EXT_UNSUPPORTED) == 0);
            REQUIRE(cJSON_IsArray(details) && cJSON_GetArraySize(details) <= 16);
        }
        cJSON_Delete(details);
        free(r);
        return;
    }
    REQUIRE(details == NULL);
    REQUIRE(r->nadd <= QK_ETSI_MAX_ADD);
    for (size_t i = 0; i < r->nadd; i++)
        REQUIRE(qk_etsi_sae_id_valid(r->add[i], strlen(r->add[i])));
    size_t number = 0;
    uint32_t bits = 0;
    rc = qk_etsi_check_key_req(r, &LIM, "SAE_M", "SAE_S", &number, &bits, &err);
    if (rc == 0) {
        REQUIRE(number >= 1 && number <= LIM.max_keys_per_request);
        REQUIRE(bits % 8 == 0 && bits >= LIM.min_size_bits && bits <= LIM.max_size_bits);
        REQUIRE(r->nadd <= LIM.max_sae_id_count);
        for (size_t i = 0; i < r->nadd; i++) {
            REQUIRE(strcmp(r->add[i], "SAE_M") != 0 && strcmp(r->add[i], "SAE_S") != 0);
            for (size_t j = 0; j < i; j++)
                REQUIRE(strcmp(r->add[i], r->add[j]) != 0);
        }
    } else {
        REQUIRE(rc == QK_EINVAL && err.msg[0] != '\0');
    }
    free(r);
}

static void fuzz_key_ids(const char *body, size_t len)
{
    char(*ids)[QK_KEY_ID_LEN + 1] = NULL;
    size_t n = 0;
    qk_err err = {0};
    int rc = qk_etsi_parse_key_ids(body, len, 8, &ids, &n, &err);
    if (rc == 0) {
        REQUIRE(ids && n >= 1 && n <= 8);
        for (size_t i = 0; i < n; i++) {
            REQUIRE(fuzz_key_id_canonical(ids[i]));
            for (size_t j = 0; j < i; j++)
                REQUIRE(strcmp(ids[i], ids[j]) != 0);
        }
    } else {
        REQUIRE(ids == NULL && n == 0 && err.msg[0] != '\0');
    }
    free(ids);
    char one[QK_KEY_ID_LEN + 1];
    if (qk_etsi_norm_key_id(body, len, one) == 0)
        REQUIRE(fuzz_key_id_canonical(one));
}

/* Two keys from the input bytes (split at the first byte's value): the container must be
 * valid JSON whose keys decode back to the same bytes. */
static void fuzz_container(const uint8_t *data, size_t size)
{
    if (size > 4096)
        size = 4096;
    size_t cut = size ? data[0] % (size + 1) : 0;
    uint8_t *material = qk_secure_alloc(size ? size : 1);
    if (!material)
        return;
    if (size)
        memcpy(material, data, size);
    char ids[2][QK_KEY_ID_LEN + 1] = {"bc490419-7d60-487f-adc1-4ddcc177c139",
                                      "0a782fb5-3434-48fe-aa4d-14f41d46cf92"};
    uint32_t lens[2] = {(uint32_t)cut, (uint32_t)(size - cut)};
    uint8_t *keys[2] = {material, material + cut};
    qk_key_batch b = {.n = 2, .ids = ids, .lens = lens, .keys = keys, .material = material};
    char *json = NULL;
    size_t jlen = 0;
    REQUIRE(qk_etsi_key_container(&b, &json, &jlen) == 0);
    REQUIRE(strlen(json) == jlen);
    cJSON *root = cJSON_ParseWithLength(json, jlen);
    REQUIRE(root != NULL);
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "keys");
    REQUIRE(cJSON_GetArraySize(arr) == 2);
    uint8_t *dec = malloc(size + 3);
    REQUIRE(dec != NULL);
    for (int i = 0; i < 2; i++) {
        cJSON *k = cJSON_GetArrayItem(arr, i);
        cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "key_ID");
        cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "key");
        REQUIRE(cJSON_IsString(kid) && strcmp(kid->valuestring, ids[i]) == 0);
        REQUIRE(cJSON_IsString(key));
        size_t dl = 0;
        REQUIRE(qk_base64_decode(key->valuestring, strlen(key->valuestring), dec, size + 3, &dl) ==
                0);
        REQUIRE(dl == lens[i] && (dl == 0 || memcmp(dec, keys[i], dl) == 0));
    }
    free(dec);
    cJSON_Delete(root);
    qk_secure_free(json);
    qk_secure_free(material);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > QK_ETSI_MAX_BODY + 1)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fuzz_path(s);
    fuzz_int(s);
    /* the body parsers promise not to need a NUL: give them the exact-size input buffer, so
     * that ASan sees any read past len */
    fuzz_key_request((const char *)data, size);
    fuzz_key_ids((const char *)data, size);
    fuzz_container(data, size);
    free(s);
    return 0;
}
