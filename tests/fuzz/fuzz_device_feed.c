/* fuzz_device_feed.c - libFuzzer target for the device feed's parsers (device/device_parse.c),
 * the untrusted input a QKD device sends to qkd-kmed's device listener. Every input goes
 * through every parser:
 *   - as a request path (prefix, link ID, route, block ID), and again under the prefix,
 *   - as a block ID,
 *   - as a block body's length,
 *   - as a telemetry body.
 * Besides memory errors (ASan/UBSan) the target checks the parsers' promises and aborts when
 * one is broken: an accepted block ID is below 2^53 and spelled in decimal digits only; an
 * accepted link ID has the kmed.conf link-ID syntax; an accepted telemetry state is 1..31
 * printable ASCII characters (no control characters, no space), qber within [0, 1], rate_bps
 * within [0, 1e15); every refusal carries a message. Build and run: `make fuzz`, then
 * `build-fuzz/fuzz_device_feed -max_total_time=60 tests/fuzz/corpus/device_feed` (or
 * `make fuzz-run FUZZ_SECONDS=600`; see device/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_parse.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool digits_only(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s);
}

static bool link_id_syntax(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > QK_STORE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-' || c == '~';
        if (!ok)
            return false;
    }
    return true;
}

static void fuzz_block_id(const char *s)
{
    uint64_t v = UINT64_MAX;
    if (qk_device_parse_block_id(s, &v) == 0) {
        REQUIRE(v <= QK_DEVICE_BLOCK_ID_MAX && v < (1ull << 53));
        REQUIRE(digits_only(s) && strlen(s) <= 20);
        REQUIRE(strtoull(s, NULL, 10) == v);
    } else {
        REQUIRE(v == UINT64_MAX); /* untouched on refusal */
    }
}

static void fuzz_path(const char *s)
{
    qk_device_path p;
    int rc = qk_device_parse_path(s, &p);
    REQUIRE(strnlen(p.link_id, sizeof p.link_id) < sizeof p.link_id);
    if (p.link_id[0]) {
        REQUIRE(link_id_syntax(p.link_id));
        REQUIRE(strncmp(s, QK_DEVICE_PREFIX, strlen(QK_DEVICE_PREFIX)) == 0);
        const char *after = s + strlen(QK_DEVICE_PREFIX);
        REQUIRE(strncmp(after, p.link_id, strlen(p.link_id)) == 0 &&
                after[strlen(p.link_id)] == '/');
    }
    if (rc == 0) {
        REQUIRE(p.link_id[0] != '\0' && p.error == NULL);
        const char *what = s + strlen(QK_DEVICE_PREFIX) + strlen(p.link_id) + 1;
        if (p.route == QK_DEVICE_ROUTE_BLOCK) {
            REQUIRE(p.block_id <= QK_DEVICE_BLOCK_ID_MAX && p.block_id < (1ull << 53));
            REQUIRE(strncmp(what, "blocks/", 7) == 0 && digits_only(what + 7));
            REQUIRE(strtoull(what + 7, NULL, 10) == p.block_id);
        } else {
            REQUIRE(p.route == QK_DEVICE_ROUTE_TELEMETRY && strcmp(what, "telemetry") == 0);
        }
    } else {
        REQUIRE(rc == QK_EINVAL && p.route == QK_DEVICE_ROUTE_NONE && p.block_id == 0);
        REQUIRE(p.error != NULL);
        bool bad_id = strcmp(p.error, QK_DEVICE_MSG_BAD_BLOCK_ID) == 0;
        REQUIRE(bad_id || strcmp(p.error, QK_DEVICE_MSG_UNKNOWN_PATH) == 0 ||
                strcmp(p.error, QK_DEVICE_MSG_UNKNOWN_LINK) == 0);
        if (bad_id)
            REQUIRE(p.link_id[0] != '\0');
    }
}

static void fuzz_block_len(size_t size)
{
    qk_err err = {0};
    if (qk_device_check_block(size, &err) == 0)
        REQUIRE(size > QK_BLOCK_VKEY_LEN && size <= QK_BLOCK_MAX_BYTES);
    else
        REQUIRE(err.code == QK_EINVAL && err.msg[0] != '\0' &&
                (size <= QK_BLOCK_VKEY_LEN || size > QK_BLOCK_MAX_BYTES));
}

static void fuzz_telemetry(const char *body, size_t len)
{
    qk_device_telemetry t;
    qk_err err = {0};
    int rc = qk_device_parse_telemetry(body, len, &t, &err);
    if (rc != 0) {
        REQUIRE((rc == QK_EINVAL || rc == QK_ENOMEM) && err.msg[0] != '\0');
        REQUIRE(t.state[0] == '\0' && !t.has_qber && !t.has_rate && !t.has_bits);
        return;
    }
    REQUIRE(len <= QK_DEVICE_TELEMETRY_MAX);
    size_t n = strnlen(t.state, sizeof t.state);
    REQUIRE(n >= 1 && n <= QK_DEVICE_STATE_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t.state[i];
        REQUIRE(c > 0x20 && c < 0x7f); /* no control characters, no space, ASCII */
    }
    REQUIRE(t.has_qber ? t.qber >= 0 && t.qber <= 1 : t.qber == 0);
    REQUIRE(t.has_rate ? t.rate_bps >= 0 && t.rate_bps < QK_DEVICE_RATE_LIMIT : t.rate_bps == 0);
    REQUIRE(t.delivered_bits <= (uint64_t)INT64_MAX);
    REQUIRE(t.has_bits || t.delivered_bits == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * QK_DEVICE_TELEMETRY_MAX)
        return 0;
    const size_t plen = strlen(QK_DEVICE_PREFIX);
    char *s = malloc(plen + size + 1);
    if (!s)
        return 0;
    memcpy(s + plen, data, size);
    s[plen + size] = '\0';
    fuzz_path(s + plen);
    fuzz_block_id(s + plen);
    memcpy(s, QK_DEVICE_PREFIX, plen); /* the same input as what follows the prefix */
    fuzz_path(s);
    fuzz_block_len(size);
    fuzz_block_len(size * 1024 + 1);
    /* the telemetry parser promises not to need a NUL: give it the exact-size input buffer,
     * so that ASan sees any read past len */
    fuzz_telemetry((const char *)data, size);
    free(s);
    return 0;
}
