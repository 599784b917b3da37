/* device_parse.c - the device feed's pure parsers (device_parse.h). */
#include "device_parse.h"

#include <stdint.h>
#include <string.h>

#include "ini_config.h"
#include "json_util.h"

/* The link-ID syntax of kmed.conf (kms/kmed_config.c valid_link_id): qk_id_valid's set plus
 * '~', which joins the two node IDs of a default link ID. */
#define LINK_ID_EXTRA   "~"
#define BLOCK_ID_DIGITS 20 /* more digits than UINT64_MAX has are never a block ID */

static int no_route(qk_device_path *out, const char *msg, bool keep_link)
{
    out->route = QK_DEVICE_ROUTE_NONE;
    out->block_id = 0;
    out->error = msg;
    if (!keep_link)
        out->link_id[0] = '\0';
    return QK_EINVAL;
}

int qk_device_parse_path(const char *path, qk_device_path *out)
{
    memset(out, 0, sizeof *out);
    const size_t plen = strlen(QK_DEVICE_PREFIX);
    if (!path || strncmp(path, QK_DEVICE_PREFIX, plen) != 0)
        return no_route(out, QK_DEVICE_MSG_UNKNOWN_PATH, false);
    const char *link = path + plen;
    /* Bounded scan: a link segment longer than QK_STORE_ID_MAX is refused before any copy. */
    size_t n = strnlen(link, QK_STORE_ID_MAX + 1);
    const char *slash = memchr(link, '/', n);
    if (!slash || slash == link)
        return no_route(out, QK_DEVICE_MSG_UNKNOWN_PATH, false);
    size_t llen = (size_t)(slash - link);
    memcpy(out->link_id, link, llen);
    out->link_id[llen] = '\0';
    if (!qk_id_valid(out->link_id, QK_STORE_ID_MAX, LINK_ID_EXTRA))
        return no_route(out, QK_DEVICE_MSG_UNKNOWN_LINK, false);
    const char *what = slash + 1;
    if (strncmp(what, "blocks/", 7) == 0) {
        if (qk_device_parse_block_id(what + 7, &out->block_id) != 0)
            return no_route(out, QK_DEVICE_MSG_BAD_BLOCK_ID, true);
        out->route = QK_DEVICE_ROUTE_BLOCK;
        return 0;
    }
    if (strcmp(what, "telemetry") == 0) {
        out->route = QK_DEVICE_ROUTE_TELEMETRY;
        return 0;
    }
    return no_route(out, QK_DEVICE_MSG_UNKNOWN_PATH, true);
}

int qk_device_parse_block_id(const char *s, uint64_t *out)
{
    if (!s)
        return -1;
    size_t n = strnlen(s, BLOCK_ID_DIGITS + 1);
    if (n < 1 || n > BLOCK_ID_DIGITS || strspn(s, "0123456789") != n)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (QK_DEVICE_BLOCK_ID_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int qk_device_check_block(size_t len, qk_err *err)
{
    /* The wording the device API has always answered with (docs/qkd-kmed.md). */
    if (len <= QK_BLOCK_VKEY_LEN || len > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "block must be 33 bytes .. 4 MiB");
    return 0;
}

static bool state_valid(const char *s)
{
    size_t n = strnlen(s, QK_DEVICE_STATE_MAX + 1);
    if (n < 1 || n > QK_DEVICE_STATE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) /* printable ASCII, no space */
            return false;
    }
    return true;
}

/* An optional number member within [0, max] (max_open: [0, max)). */
static bool number_ok(const cJSON *v, double max, bool max_open)
{
    if (!v)
        return true;
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble; /* NaN fails every comparison */
    return d >= 0 && (max_open ? d < max : d <= max);
}

int qk_device_parse_telemetry(const char *body, size_t len, qk_device_telemetry *out, qk_err *err)
{
    qk_err local;
    if (!err)
        err = &local;
    memset(out, 0, sizeof *out);
    /* qk_json_parse validates first: size, NUL bytes, nesting depth, then cJSON. */
    cJSON *o = qk_json_parse(body, len, QK_DEVICE_TELEMETRY_MAX, err);
    if (!o)
        return err->code ? err->code : QK_EINVAL;
    int rc = 0;
    const char *state = NULL;
    int64_t bits = 0;
    if (!cJSON_IsObject(o)) {
        rc = qk_err_set(err, QK_EINVAL, "not an object");
        goto out;
    }
    if (qk_json_get_string(o, "state", true, &state, NULL, err) != 0 ||
        qk_json_get_int(o, "delivered_bits", false, 0, INT64_MAX, &bits, &out->has_bits, err) !=
            0) {
        rc = QK_EINVAL;
        goto out;
    }
    if (!state_valid(state)) {
        rc = qk_err_set(err, QK_EINVAL, "state: 1..%d printable characters", QK_DEVICE_STATE_MAX);
        goto out;
    }
    const cJSON *qber = cJSON_GetObjectItemCaseSensitive(o, "qber");
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(o, "rate_bps");
    if (!number_ok(qber, 1.0, false) || !number_ok(rate, QK_DEVICE_RATE_LIMIT, true)) {
        rc = qk_err_set(err, QK_EINVAL, "qber must be a number in [0, 1], rate_bps a number >= 0");
        goto out;
    }
    memcpy(out->state, state, strlen(state) + 1);
    out->has_qber = qber != NULL;
    out->has_rate = rate != NULL;
    out->qber = qber ? qber->valuedouble : 0;
    out->rate_bps = rate ? rate->valuedouble : 0;
    out->delivered_bits = out->has_bits ? (uint64_t)bits : 0;
out:
    cJSON_Delete(o);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}
