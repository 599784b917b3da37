/* fuzz_bridge_channel.c - libFuzzer target for the bridge channel's message decoder
 * (ikev2-bridge/bridge_channel.c, chan_msg_decode): the JSON a paired bridge sends (after TLS
 * authenticated it, but a compromised or buggy peer is still untrusted input). Every input is
 * one message body. Besides memory errors (ASan/UBSan) the target checks the decoder's promises
 * and aborts when one is broken:
 *   - a refusal carries a message;
 *   - an accepted message has a known type, a bridge name and key ID terminated within their
 *     fields, a key ID chan_key_id_ok accepts, a sequence number of 1..2^52;
 *   - no accepted input holds a string that decodes to a NUL (a "\u0000" escape: issue 17, it
 *     would cut the bridge name or key ID short), checked against a scan of the text here;
 *   - what decodes encodes (chan_msg_encode), and decodes again to the same message.
 * Build and run: `make fuzz`, then
 * `build-fuzz/fuzz_bridge_channel -max_total_time=60 tests/fuzz/corpus/bridge_channel`. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_channel.h"
#include "fuzz_util.h"

#define MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether s holds, inside a JSON string, the escape of U+0000 (a backslash that is not itself
 * escaped, then u0000 in any case of the hex digits): the model of what must be refused. */
static bool has_nul_escape(const char *s, size_t n)
{
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_str = false;
        } else if (s[i] == '\\') {
            if (i + 5 < n && s[i + 1] == 'u' && s[i + 2] == '0' && s[i + 3] == '0' &&
                s[i + 4] == '0' && s[i + 5] == '0')
                return true;
            i++;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * MAX_BODY)
        return 0;
    const char *body = (const char *)data;
    chan_msg m;
    qk_err err = {0};
    int rc = chan_msg_decode(body, size, MAX_BODY, &m, &err);
    if (rc != 0) {
        REQUIRE(err.code != 0 && err.msg[0] != '\0');
        return 0;
    }
    REQUIRE(size <= MAX_BODY);
    REQUIRE(!has_nul_escape(body, size));
    TERMINATED(m.type);
    TERMINATED(m.bridge);
    TERMINATED(m.key_id);
    REQUIRE(strcmp(m.type, "offer") == 0 || strcmp(m.type, "activate") == 0 ||
            strcmp(m.type, "activated") == 0);
    REQUIRE(chan_key_id_ok(m.key_id));
    REQUIRE(m.seq >= 1 && m.seq <= (uint64_t)1 << 52);
    char *text = chan_msg_encode(&m);
    REQUIRE(text != NULL);
    chan_msg again;
    qk_err e2 = {0};
    REQUIRE(chan_msg_decode(text, strlen(text), MAX_BODY, &again, &e2) == 0);
    REQUIRE(strcmp(again.type, m.type) == 0 && strcmp(again.bridge, m.bridge) == 0 &&
            strcmp(again.key_id, m.key_id) == 0 && again.epoch == m.epoch && again.seq == m.seq);
    free(text);
    return 0;
}
