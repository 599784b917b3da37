/* device_parse.h - pure parsing of the device feed (docs/qkd-kmed.md, "Device API"): the
 * request path (link ID, block ID), the block PUT body and the telemetry JSON. Everything the
 * device sends is untrusted: each input is validated (length, character set) before it is
 * parsed. No HTTP engine, no core or store calls: unit-tested in
 * tests/unit/test_device_feed.c and fuzzed by tests/fuzz/fuzz_device_feed.c. Internal to
 * device/. */
#ifndef QK_DEVICE_PARSE_H
#define QK_DEVICE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "peer_client.h"
#include "qk_err.h"
#include "store.h"

#define QK_DEVICE_PREFIX        "/device/v1/links/"
#define QK_DEVICE_TELEMETRY_MAX 4096                 /* telemetry bodies past it: 413 */
#define QK_DEVICE_STATE_MAX     31                   /* bytes of a telemetry state */
#define QK_DEVICE_BLOCK_ID_MAX  QK_PEER_BLOCK_ID_MAX /* 2^53 - 1: exact as a JSON number */
#define QK_DEVICE_RATE_LIMIT    1e15                 /* rate_bps must stay below it */

/* The 404 messages of a path that names no resource. */
#define QK_DEVICE_MSG_UNKNOWN_PATH "unknown path"
#define QK_DEVICE_MSG_UNKNOWN_LINK "unknown link"
#define QK_DEVICE_MSG_BAD_BLOCK_ID "bad block ID (decimal, < 2^53)"

typedef enum {
    QK_DEVICE_ROUTE_NONE = 0,  /* no resource: 404 with `error` */
    QK_DEVICE_ROUTE_BLOCK,     /* {link_id}/blocks/{block_id} */
    QK_DEVICE_ROUTE_TELEMETRY, /* {link_id}/telemetry */
} qk_device_route;

typedef struct {
    qk_device_route route;
    /* The link segment when it is a well-formed link ID (1..QK_STORE_ID_MAX characters of
     * [A-Za-z0-9_.~-], the syntax of kmed.conf's link_id), else "". The handler looks it up
     * and checks the caller before it answers a NONE route, so that an unknown link (404) and
     * a caller that is not the link's device (403) come first, as they always did. */
    char link_id[QK_STORE_ID_MAX + 1];
    uint64_t block_id; /* ROUTE_BLOCK: <= QK_DEVICE_BLOCK_ID_MAX */
    const char *error; /* ROUTE_NONE: one of the QK_DEVICE_MSG_* strings */
} qk_device_path;

/* Split an (already percent-decoded, query-free) path QK_DEVICE_PREFIX "{link_id}/blocks/
 * {block_id}" or QK_DEVICE_PREFIX "{link_id}/telemetry". Always fills *out; returns 0 when
 * it names a route, else QK_EINVAL (out->route NONE, out->error set):
 *   - not under the prefix, no '/' after the link segment, an empty link segment or one
 *     longer than QK_STORE_ID_MAX: "unknown path", link_id "";
 *   - a link segment outside the link-ID syntax (no configured link can have it): "unknown
 *     link", link_id "";
 *   - a well-formed link ID followed by a bad block ID: "bad block ID", link_id set;
 *   - a well-formed link ID followed by anything else: "unknown path", link_id set. */
int qk_device_parse_path(const char *path, qk_device_path *out);

/* A block ID: 1..20 decimal digits (leading zeros allowed), value <= QK_DEVICE_BLOCK_ID_MAX,
 * nothing else. Returns 0 and *out, or -1. */
int qk_device_parse_block_id(const char *s, uint64_t *out);

/* A block body: its first QK_BLOCK_VKEY_LEN bytes are the verification key, so a block holds
 * QK_BLOCK_VKEY_LEN + 1 .. QK_BLOCK_MAX_BYTES bytes (the listener's max_body bounds it from
 * above already). Returns 0, or QK_EINVAL with err set. */
int qk_device_check_block(size_t len, qk_err *err);

/* A telemetry report {"state": "up", "qber": 0.02, "rate_bps": 1234.5, "delivered_bits": N}.
 * Unknown members are ignored. */
typedef struct {
    char state[QK_DEVICE_STATE_MAX + 1]; /* 1..31 bytes from 0x21..0x7e */
    bool has_qber, has_rate, has_bits;
    double qber;             /* [0, 1] */
    double rate_bps;         /* [0, QK_DEVICE_RATE_LIMIT) */
    uint64_t delivered_bits; /* [0, INT64_MAX] */
} qk_device_telemetry;

/* Parse a telemetry body (len bytes, no NUL needed). Validated first: at most
 * QK_DEVICE_TELEMETRY_MAX bytes, JSON within common/json_util's limits, an object, `state`
 * required. Returns 0 with *out filled, or QK_EINVAL (QK_ENOMEM) with err set; *out is then
 * zeroed. */
int qk_device_parse_telemetry(const char *body, size_t len, qk_device_telemetry *out, qk_err *err);

#endif
