/* kmed_config.c - the qkd-kmed INI schema (docs/qkd-kmed.md) on common/ini_config. Values are
 * checked as they are read; relations between sections are cross-checked after loading, with
 * the line of the offending key (or of its section) found by re-reading the file. */
#include "kmed_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "ini_config.h"

#define SEEN_MAX 4096 /* distinct (section, key) pairs in one file */

static const char *const listener_names[QK_LST_COUNT] = {"etsi014", "skip", "peer", "device",
                                                         "admin"};

const char *qk_listener_kind_name(qk_listener_kind k)
{
    return (unsigned)k < QK_LST_COUNT ? listener_names[k] : "?";
}

typedef struct {
    qk_kmed_config *cfg;
    char dir[QK_CFG_PATH_MAX];
    uint64_t seen[SEEN_MAX];
    size_t nseen;
} parse_ctx;

/* ---- small validators ------------------------------------------------------------------ */

static bool valid_id(const char *s)
{
    return qk_id_valid(s, QK_CFG_ID_MAX, NULL);
}

static bool valid_link_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > QK_STORE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '_' && ch != '.' && ch != '-' && ch != '~')
            return false;
    }
    return true;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

static bool is_numeric_addr(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* Resolve a file name against the config file's folder. */
static int set_path(parse_ctx *c, const char *v, char out[QK_CFG_PATH_MAX], qk_err *err)
{
    if (!*v)
        return qk_err_set(err, QK_EINVAL, "empty file name");
    int n = v[0] == '/' ? snprintf(out, QK_CFG_PATH_MAX, "%s", v)
                        : snprintf(out, QK_CFG_PATH_MAX, "%s/%s", c->dir, v);
    if (n < 0 || n >= QK_CFG_PATH_MAX)
        return qk_err_set(err, QK_EINVAL, "file name too long");
    return 0;
}

static int parse_u32(const char *v, uint64_t min, uint64_t max, uint32_t *out, qk_err *err)
{
    uint64_t x;
    int rc = qk_parse_u64(v, min, max, &x, err);
    if (rc == 0)
        *out = (uint32_t)x;
    return rc;
}

static int parse_bits(const char *v, uint32_t *out, qk_err *err)
{
    int rc = parse_u32(v, 8, 1048576, out, err);
    if (rc == 0 && *out % 8 != 0)
        return qk_err_set(err, QK_EINVAL, "must be a multiple of 8 bits");
    return rc;
}

/* ---- sections ------------------------------------------------------------------------- */

static int node_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_kmed_config *cfg = c->cfg;
    if (strcmp(key, "id") == 0) {
        if (!valid_id(v))
            return qk_err_set(err, QK_EINVAL, "must be 1..%d characters [A-Za-z0-9_.-]",
                              QK_CFG_ID_MAX);
        return qk_parse_str(v, cfg->node_id, sizeof cfg->node_id, err);
    }
    if (strcmp(key, "data_dir") == 0)
        return set_path(c, v, cfg->data_dir, err);
    if (strcmp(key, "master_key_file") == 0)
        return set_path(c, v, cfg->master_key_file, err);
    if (strcmp(key, "log_file") == 0) {
        if (strcmp(v, "-") == 0)
            return qk_parse_str(v, cfg->log_file, sizeof cfg->log_file, err);
        return set_path(c, v, cfg->log_file, err);
    }
    if (strcmp(key, "log_level") == 0) {
        if (qk_log_level_parse(v, &cfg->log_level) != 0)
            return qk_err_set(err, QK_EINVAL, "must be debug, info, warn or error");
        return 0;
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int parse_mode(qk_listener_kind kind, const char *v, qk_tls_mode *out, qk_err *err)
{
    static const struct {
        const char *name;
        qk_tls_mode mode;
    } modes[] = {{"mtls", QK_TLS_MODE_MTLS},
                 {"psk", QK_TLS_MODE_PSK},
                 {"server-cert", QK_TLS_MODE_SERVER_CERT},
                 {"psk-or-mtls", QK_TLS_MODE_PSK_OR_MTLS},
                 {"plain", QK_TLS_MODE_NONE}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(v, modes[i].name) != 0)
            continue;
        qk_tls_mode m = modes[i].mode;
        bool ok;
        switch (kind) {
        case QK_LST_ADMIN:
            ok = m == QK_TLS_MODE_NONE;
            break;
        case QK_LST_SKIP:
            ok = m != QK_TLS_MODE_NONE;
            break;
        default:
            ok = m == QK_TLS_MODE_MTLS;
            break;
        }
        if (!ok)
            return qk_err_set(err, QK_EINVAL, "mode %s is not allowed for the %s listener", v,
                              listener_names[kind]);
        *out = m;
        return 0;
    }
    return qk_err_set(err, QK_EINVAL, "must be mtls, psk, server-cert, psk-or-mtls or plain");
}

static int listener_key(parse_ctx *c, qk_listener_kind kind, const char *key, const char *v,
                        qk_err *err)
{
    qk_listener_cfg *l = &c->cfg->listeners[kind];
    l->present = true;
    if (strcmp(key, "address") == 0) {
        if (qk_parse_hostport(v, l->host, sizeof l->host, &l->port, err) != 0)
            return QK_EINVAL;
        if (!is_numeric_addr(l->host))
            return qk_err_set(err, QK_EINVAL, "host must be a numeric IPv4 or IPv6 address");
        if (kind == QK_LST_ADMIN && !is_loopback(l->host))
            return qk_err_set(err, QK_EINVAL, "the admin listener must bind a loopback address");
        l->address_set = true;
        return 0;
    }
    if (strcmp(key, "mode") == 0) {
        if (parse_mode(kind, v, &l->mode, err) != 0)
            return QK_EINVAL;
        l->mode_set = true;
        return 0;
    }
    if (strcmp(key, "cert") == 0)
        return set_path(c, v, l->cert, err);
    if (strcmp(key, "key") == 0)
        return set_path(c, v, l->key, err);
    if (strcmp(key, "ca") == 0)
        return set_path(c, v, l->ca, err);
    if (strcmp(key, "psk_file") == 0)
        return set_path(c, v, l->psk_file, err);
    if (strcmp(key, "psk_hash") == 0) {
        if (kind != QK_LST_SKIP)
            return qk_err_set(err, QK_EINVAL, "psk_hash is a key of the skip listener only");
        if (qk_psk_hash_parse(v, strlen(v), &l->psk_hash) != 0)
            return qk_err_set(err, QK_EINVAL, "must be sha384, sha256 or auto");
        return 0;
    }
    if (strcmp(key, "fingerprint_map") == 0)
        return set_path(c, v, l->fingerprint_map, err);
    if (strcmp(key, "role_marker") == 0) {
        if (kind == QK_LST_ADMIN)
            return qk_err_set(err, QK_EINVAL, "the admin listener authenticates no client");
        if (qk_role_marker_parse(v, &l->role_marker) != 0)
            return qk_err_set(err, QK_EINVAL, "must be required or optional");
        return 0;
    }
    if (strcmp(key, "max_connections") == 0)
        return parse_u32(v, 1, 100000, &l->max_connections, err);
    if (strcmp(key, "threads") == 0)
        return parse_u32(v, 1, 64, &l->threads, err);
    if (strcmp(key, "max_body") == 0)
        return parse_u32(v, QK_CFG_MAX_BODY_MIN, QK_CFG_MAX_BODY_MAX, &l->max_body, err);
    if (strcmp(key, "handshake_timeout") == 0) {
        uint64_t ms;
        if (qk_parse_duration_ms(v, 100, 300000, &ms, err) != 0)
            return QK_EINVAL;
        l->handshake_timeout_ms = (unsigned)ms;
        return 0;
    }
    if (strcmp(key, "max_pending_per_source") == 0)
        return parse_u32(v, 1, 100000, &l->max_pending_per_source, err);
    if (strcmp(key, "max_connections_per_identity") == 0)
        return parse_u32(v, 1, 100000, &l->max_connections_per_identity, err);
    if (strcmp(key, "header_timeout") == 0 || strcmp(key, "body_timeout") == 0) {
        uint64_t ms;
        if (qk_parse_duration_ms(v, 100, 3600000, &ms, err) != 0)
            return QK_EINVAL;
        *(key[0] == 'h' ? &l->header_timeout_ms : &l->body_timeout_ms) = (unsigned)ms;
        return 0;
    }
    if (strcmp(key, "idle_timeout") == 0) {
        uint64_t ms;
        if (qk_parse_duration_ms(v, 1000, 86400000, &ms, err) != 0)
            return QK_EINVAL;
        l->idle_timeout_s = (unsigned)(ms / 1000);
        return 0;
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int peer_client_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_peer_client_cfg *p = &c->cfg->peer_client;
    p->present = true;
    if (strcmp(key, "ca") == 0)
        return set_path(c, v, p->ca, err);
    if (strcmp(key, "cert") == 0)
        return set_path(c, v, p->cert, err);
    if (strcmp(key, "key") == 0)
        return set_path(c, v, p->key, err);
    if (strcmp(key, "timeout") == 0)
        return qk_parse_duration_ms(v, 100, 60000, &p->timeout_ms, err);
    if (strcmp(key, "connect_timeout") == 0)
        return qk_parse_duration_ms(v, 100, 60000, &p->connect_timeout_ms, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static qk_link_cfg *link_get(qk_kmed_config *cfg, const char *peer, qk_err *err)
{
    for (size_t i = 0; i < cfg->nlinks; i++)
        if (strcmp(cfg->links[i].peer, peer) == 0)
            return &cfg->links[i];
    if (cfg->nlinks >= QK_CFG_MAX_LINKS) {
        qk_err_set(err, QK_EINVAL, "too many links (at most %d)", QK_CFG_MAX_LINKS);
        return NULL;
    }
    qk_link_cfg *l = &cfg->links[cfg->nlinks++];
    memset(l, 0, sizeof *l);
    if (snprintf(l->peer, sizeof l->peer, "%s", peer) >= (int)sizeof l->peer) {
        cfg->nlinks--;
        qk_err_set(err, QK_EINVAL, "link name too long");
        return NULL;
    }
    return l;
}

const char *qk_link_source_name(qk_link_source s)
{
    return s == QK_SOURCE_ETSI014 ? "etsi014" : "device";
}

/* An SAE ID at the device: the [sae ID] syntax. */
static int parse_sae_id(const char *v, char out[QK_CFG_ID_MAX + 1], qk_err *err)
{
    if (!valid_id(v))
        return qk_err_set(err, QK_EINVAL, "must be an SAE ID (1..%d characters [A-Za-z0-9_.-])",
                          QK_CFG_ID_MAX);
    return qk_parse_str(v, out, QK_CFG_ID_MAX + 1, err);
}

/* source and the device_* keys of [link PEER] (the ETSI 014 device source). */
static int link_device_key(parse_ctx *c, qk_link_cfg *l, const char *key, const char *v,
                           qk_err *err)
{
    if (strcmp(key, "source") == 0) {
        if (strcmp(v, "device") == 0)
            l->source = QK_SOURCE_DEVICE;
        else if (strcmp(v, "etsi014") == 0)
            l->source = QK_SOURCE_ETSI014;
        else
            return qk_err_set(err, QK_EINVAL, "must be device or etsi014");
        return 0;
    }
    if (strcmp(key, "device_url") == 0) {
        if (strncmp(v, "https://", 8) != 0 || strlen(v) <= 8 || !printable(v) || strchr(v, ' '))
            return qk_err_set(err, QK_EINVAL, "must be an https:// URL");
        return qk_parse_str(v, l->device_url, sizeof l->device_url, err);
    }
    if (strcmp(key, "device_ca") == 0)
        return set_path(c, v, l->device_ca, err);
    if (strcmp(key, "device_cert") == 0)
        return set_path(c, v, l->device_cert, err);
    if (strcmp(key, "device_key") == 0)
        return set_path(c, v, l->device_key, err);
    if (strcmp(key, "device_sae") == 0)
        return parse_sae_id(v, l->device_sae, err);
    if (strcmp(key, "device_peer_sae") == 0)
        return parse_sae_id(v, l->device_peer_sae, err);
    if (strcmp(key, "device_pull") == 0)
        return qk_parse_bool(v, &l->device_pull, err);
    if (strcmp(key, "device_key_size") == 0) {
        if (parse_bits(v, &l->device_key_size, err) != 0)
            return QK_EINVAL;
        if (l->device_key_size > 65536) /* QK_PEER_DEVICE_KEY_BITS_MAX */
            return qk_err_set(err, QK_EINVAL, "at most 65536 bits");
        return 0;
    }
    if (strcmp(key, "device_batch") == 0)
        return parse_u32(v, 1, QK_CFG_DEVICE_BATCH_MAX, &l->device_batch, err);
    if (strcmp(key, "device_interval") == 0)
        return qk_parse_duration_ms(v, 10, 60000, &l->device_interval_ms, err);
    if (strcmp(key, "device_target_bytes") == 0)
        return qk_parse_u64(v, QK_CFG_MIN_POOL_BYTES, QK_CFG_MAX_POOL_BYTES,
                            &l->device_target_bytes, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

/* A [link] duration in whole seconds, 1 s .. 1 h (telemetry_stale, pending_grace). */
static int parse_whole_s(const char *v, uint64_t *out_s, qk_err *err)
{
    uint64_t ms;
    if (qk_parse_duration_ms(v, 1000, 3600000, &ms, err) != 0)
        return QK_EINVAL;
    if (ms % 1000 != 0)
        return qk_err_set(err, QK_EINVAL, "must be whole seconds");
    *out_s = ms / 1000;
    return 0;
}

static int link_key(parse_ctx *c, const char *peer, const char *key, const char *v, qk_err *err)
{
    if (!valid_id(peer))
        return qk_err_set(err, QK_EINVAL,
                          "link name must be a KME ID (1..%d characters "
                          "[A-Za-z0-9_.-])",
                          QK_CFG_ID_MAX);
    qk_link_cfg *l = link_get(c->cfg, peer, err);
    if (!l)
        return QK_EINVAL;
    if (strcmp(key, "peer_url") == 0) {
        if (strncmp(v, "https://", 8) != 0 || strlen(v) <= 8 || !printable(v) || strchr(v, ' '))
            return qk_err_set(err, QK_EINVAL, "must be an https:// URL");
        return qk_parse_str(v, l->peer_url, sizeof l->peer_url, err);
    }
    if (strcmp(key, "link_id") == 0) {
        if (!valid_link_id(v) || strcmp(v, QK_LOCAL_LINK) == 0)
            return qk_err_set(err, QK_EINVAL,
                              "must be 1..%d characters [A-Za-z0-9_.~-] and not \"%s\"",
                              QK_STORE_ID_MAX, QK_LOCAL_LINK);
        return qk_parse_str(v, l->link_id, sizeof l->link_id, err);
    }
    if (strcmp(key, "device_identity") == 0) {
        if (!printable(v))
            return qk_err_set(err, QK_EINVAL, "control characters are not allowed");
        return qk_parse_str(v, l->device_identity, sizeof l->device_identity, err);
    }
    if (strcmp(key, "max_pool_bytes") == 0)
        return qk_parse_u64(v, QK_CFG_MIN_POOL_BYTES, QK_CFG_MAX_POOL_BYTES, &l->max_pool_bytes,
                            err);
    if (strcmp(key, "telemetry_stale") == 0)
        return parse_whole_s(v, &l->telemetry_stale_s, err);
    if (strcmp(key, "pending_grace") == 0)
        return parse_whole_s(v, &l->pending_grace_s, err);
    if (strncmp(key, "device_", 7) == 0 || strcmp(key, "source") == 0)
        return link_device_key(c, l, key, v, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int parse_fingerprint(const char *v, uint8_t out[32], qk_err *err)
{
    if (qk_tls_fp_parse(v, out) != 0)
        return qk_err_set(err, QK_EINVAL, "must be a SHA-256 fingerprint (64 hex digits)");
    return 0;
}

static int sae_key(parse_ctx *c, const char *id, const char *key, const char *v, qk_err *err)
{
    qk_kmed_config *cfg = c->cfg;
    if (!valid_id(id))
        return qk_err_set(err, QK_EINVAL, "SAE ID must be 1..%d characters [A-Za-z0-9_.-]",
                          QK_CFG_ID_MAX);
    qk_sae_cfg *s = NULL;
    for (size_t i = 0; i < cfg->nsaes && !s; i++)
        if (strcmp(cfg->saes[i].id, id) == 0)
            s = &cfg->saes[i];
    if (!s) {
        if (cfg->nsaes >= QK_CFG_MAX_SAES)
            return qk_err_set(err, QK_EINVAL, "too many SAEs (at most %d)", QK_CFG_MAX_SAES);
        s = &cfg->saes[cfg->nsaes++];
        memset(s, 0, sizeof *s);
        if (snprintf(s->id, sizeof s->id, "%s", id) >= (int)sizeof s->id)
            return qk_err_set(err, QK_EINVAL, "SAE ID too long");
    }
    if (strcmp(key, "kme") == 0) {
        if (!valid_id(v))
            return qk_err_set(err, QK_EINVAL, "must be a KME ID");
        return qk_parse_str(v, s->kme, sizeof s->kme, err);
    }
    if (strcmp(key, "fingerprint") == 0) {
        if (parse_fingerprint(v, s->fingerprint, err) != 0)
            return QK_EINVAL;
        s->has_fingerprint = true;
        return 0;
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int keys_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_kmed_config *cfg = c->cfg;
    if (strcmp(key, "default_size") == 0)
        return parse_bits(v, &cfg->default_size_bits, err);
    if (strcmp(key, "min_size") == 0)
        return parse_bits(v, &cfg->min_size_bits, err);
    if (strcmp(key, "max_size") == 0)
        return parse_bits(v, &cfg->max_size_bits, err);
    if (strcmp(key, "max_keys_per_request") == 0)
        return parse_u32(v, 1, 10000, &cfg->max_keys_per_request, err);
    if (strcmp(key, "max_key_count") == 0)
        return qk_parse_u64(v, 1, 1000000000000ull, &cfg->max_key_count, err);
    if (strcmp(key, "max_sae_id_count") == 0)
        return parse_u32(v, 0, 64, &cfg->max_sae_id_count, err);
    if (strcmp(key, "reservation_lifetime") == 0) {
        uint64_t ms;
        if (qk_parse_duration_ms(v, 1000, 30ull * 86400 * 1000, &ms, err) != 0)
            return QK_EINVAL;
        cfg->reservation_lifetime_s = ms / 1000;
        return 0;
    }
    if (strcmp(key, "local_block_bytes") == 0)
        return qk_parse_u64(v, 1024, QK_BLOCK_MAX_BYTES, &cfg->local_block_bytes, err);
    if (strcmp(key, "max_pool_bytes") == 0)
        return qk_parse_u64(v, QK_CFG_MIN_POOL_BYTES, QK_CFG_MAX_POOL_BYTES, &cfg->max_pool_bytes,
                            err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int hot_path_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_kmed_config *cfg = c->cfg;
    if (strcmp(key, "lease_bytes") == 0)
        return parse_u32(v, 1024, QK_BLOCK_MAX_BYTES, &cfg->lease_bytes, err);
    if (strcmp(key, "lease_low_water") == 0)
        return parse_u32(v, 0, QK_BLOCK_MAX_BYTES, &cfg->lease_low_water, err);
    if (strcmp(key, "lease_demand") == 0) {
        uint64_t ms = 0;
        int rc = qk_parse_duration_ms(v, 0, QK_CFG_LEASE_DEMAND_MS_MAX, &ms, err);
        if (rc == 0)
            cfg->lease_demand_ms = (uint32_t)ms;
        return rc;
    }
    if (strcmp(key, "notice_batch") == 0)
        return parse_u32(v, 1, QK_CFG_NOTICE_BATCH_MAX, &cfg->notice_batch, err);
    if (strcmp(key, "notice_wait") == 0)
        return qk_parse_duration_ms(v, 0, 60000, &cfg->notice_wait_ms, err);
    if (strcmp(key, "reply_at_commit") == 0)
        return qk_parse_bool(v, &cfg->reply_at_commit, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

/* [store] lock = exclusive | shared (qk_store_opts.shared_lock), key_ids = random |
 * time-ordered (qk_store_opts.time_ordered_ids) */
static int store_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    if (strcmp(key, "lock") == 0)
        return qk_parse_choice(v, "exclusive", "shared", &c->cfg->store_shared, err);
    if (strcmp(key, "key_ids") == 0)
        return qk_parse_choice(v, "random", "time-ordered", &c->cfg->store_time_ids, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

/* [topology] link = KME_B KME_C: two KME IDs separated by blanks, not the same, and no pair
 * twice in either order. A link naming this node is refused by the cross-checks (its links are
 * its [link] sections; the node ID may come later in the file). */
static int topology_link(qk_topology_cfg *t, const char *v, qk_err *err)
{
    char a[QK_CFG_ID_MAX + 2], b[QK_CFG_ID_MAX + 2], rest[2];
    int n = sscanf(v, "%65s %65s %1s", a, b, rest);
    if (n != 2 || !valid_id(a) || !valid_id(b))
        return qk_err_set(err, QK_EINVAL,
                          "must be two KME IDs (1..%d characters [A-Za-z0-9_.-]) separated by "
                          "blanks",
                          QK_CFG_ID_MAX);
    if (strcmp(a, b) == 0)
        return qk_err_set(err, QK_EINVAL, "a link joins two different KMEs (%s twice)", a);
    for (size_t i = 0; i < t->nlinks; i++)
        if ((strcmp(t->links[i].a, a) == 0 && strcmp(t->links[i].b, b) == 0) ||
            (strcmp(t->links[i].a, b) == 0 && strcmp(t->links[i].b, a) == 0))
            return qk_err_set(err, QK_EINVAL, "the link %s %s is listed twice", a, b);
    if (t->nlinks >= QK_CFG_MAX_TOPO_LINKS)
        return qk_err_set(err, QK_EINVAL, "too many links (at most %d)", QK_CFG_MAX_TOPO_LINKS);
    memcpy(t->links[t->nlinks].a, a, strlen(a) + 1); /* valid_id: at most QK_CFG_ID_MAX */
    memcpy(t->links[t->nlinks].b, b, strlen(b) + 1);
    t->nlinks++;
    return 0;
}

static int topology_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_topology_cfg *t = &c->cfg->topology;
    if (strcmp(key, "link") == 0)
        return topology_link(t, v, err);
    if (strcmp(key, "interval") == 0)
        return qk_parse_duration_ms(v, QK_CFG_TOPO_INTERVAL_MIN_MS, QK_CFG_TOPO_INTERVAL_MAX_MS,
                                    &t->interval_ms, err);
    if (strcmp(key, "hold_down") == 0)
        return qk_parse_duration_ms(v, QK_CFG_HOLD_DOWN_MIN_MS, QK_CFG_HOLD_DOWN_MAX_MS,
                                    &t->hold_down_ms, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int relay_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_relay_cfg *r = &c->cfg->relay;
    if (strcmp(key, "enabled") == 0)
        return qk_parse_bool(v, &r->enabled, err);
    if (strcmp(key, "timeout") == 0)
        return qk_parse_duration_ms(v, QK_CFG_RELAY_TIMEOUT_MIN_MS, QK_CFG_RELAY_TIMEOUT_MAX_MS,
                                    &r->timeout_ms, err);
    if (strcmp(key, "max_hops") == 0)
        return parse_u32(v, 1, QK_CFG_RELAY_MAX_HOPS, &r->max_hops, err);
    if (strcmp(key, "max_tries") == 0)
        return parse_u32(v, 1, QK_CFG_RELAY_MAX_TRIES, &r->max_tries, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

/* A SKIP glob list: comma-separated POSIX globs over KME IDs ([A-Za-z0-9_.-] plus the glob
 * characters * ? [ ] ! ^), blanks around entries dropped; stored joined by ",". An empty value
 * is an empty list. */
typedef struct {
    char *out;
    size_t o;
} glob_acc;

static int add_glob(void *user, const char *a, size_t n, qk_err *err)
{
    glob_acc *g = user;
    char glob[QK_CFG_ID_MAX + 1];
    if (n > QK_CFG_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "a glob has more than %d characters", QK_CFG_ID_MAX);
    memcpy(glob, a, n);
    glob[n] = '\0';
    if (!qk_id_valid(glob, QK_CFG_ID_MAX, "*?[]!^"))
        return qk_err_set(err, QK_EINVAL, "globs hold [A-Za-z0-9_.-] and * ? [ ] ! ^ only");
    if (g->o + n + 2 > QK_CFG_GLOBS_MAX)
        return qk_err_set(err, QK_EINVAL, "list too long");
    if (g->o)
        g->out[g->o++] = ',';
    memcpy(g->out + g->o, a, n);
    g->o += n;
    g->out[g->o] = '\0';
    return 0;
}

static int parse_globs(const char *v, char out[QK_CFG_GLOBS_MAX], qk_err *err)
{
    out[0] = '\0';
    if (!*v)
        return 0;
    glob_acc g = {out, 0};
    int rc = qk_parse_list(v, 64, add_glob, &g, err);
    if (rc != 0)
        out[0] = '\0';
    return rc == QK_ELIMIT ? qk_err_set(err, QK_EINVAL, "more than 64 entries") : rc;
}

static int skip_key(parse_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_skip_cfg *k = &c->cfg->skip;
    k->present = true;
    if (strcmp(key, "remote_system_ids") == 0) {
        if (!*v)
            return qk_err_set(err, QK_EINVAL, "must list at least one remote system");
        return parse_globs(v, k->remote_system_ids, err);
    }
    if (strcmp(key, "loopback_pair") == 0)
        return qk_parse_bool(v, &k->loopback_pair, err);
    if (strcmp(key, "algorithm") == 0) {
        if (!*v || !printable(v))
            return qk_err_set(err, QK_EINVAL, "must be 1..%d printable characters",
                              QK_CFG_ALGORITHM_MAX);
        return qk_parse_str(v, k->algorithm, sizeof k->algorithm, err);
    }
    if (strcmp(key, "entropy") == 0)
        return qk_parse_bool(v, &k->entropy, err);
    if (strcmp(key, "max_entropy") == 0) {
        if (parse_bits(v, &k->max_entropy_bits, err) != 0)
            return QK_EINVAL;
        if (k->max_entropy_bits < 256 || k->max_entropy_bits > 65536)
            return qk_err_set(err, QK_EINVAL, "must be within [256, 65536] bits");
        return 0;
    }
    if (strcmp(key, "default_client_remote_systems") == 0)
        return parse_globs(v, k->default_client_remote_systems, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int skip_client_key(parse_ctx *c, const char *name, const char *key, const char *v,
                           qk_err *err)
{
    qk_skip_cfg *k = &c->cfg->skip;
    if (!*name || strlen(name) >= QK_IDENTITY_MAX || !printable(name))
        return qk_err_set(err, QK_EINVAL, "client name must be a printable identity");
    qk_skip_client_cfg *cl = NULL;
    for (size_t i = 0; i < k->nclients && !cl; i++)
        if (strcmp(k->clients[i].identity, name) == 0)
            cl = &k->clients[i];
    if (!cl) {
        if (k->nclients >= QK_CFG_MAX_SKIP_CLIENTS)
            return qk_err_set(err, QK_EINVAL, "too many SKIP clients (at most %d)",
                              QK_CFG_MAX_SKIP_CLIENTS);
        cl = &k->clients[k->nclients++];
        memset(cl, 0, sizeof *cl);
        snprintf(cl->identity, sizeof cl->identity, "%s", name);
    }
    if (strcmp(key, "remote_systems") == 0) {
        int rc = parse_globs(v, cl->remote_systems, err);
        if (rc == 0 && !cl->remote_systems[0])
            return qk_err_set(err, QK_EINVAL, "must list at least one remote system");
        return rc;
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int on_value(void *user, const char *section, const char *key, const char *value,
                    qk_err *err)
{
    parse_ctx *c = user;
    char kind[32], name[QK_STORE_ID_MAX + 1];
    if (qk_ini_section_split(section, kind, sizeof kind, name, sizeof name) != 0)
        return qk_err_set(err, QK_EINVAL, "unknown section");

    /* every key once per section, but [topology] link (repeatable) */
    if (strcmp(kind, "topology") != 0 || strcmp(key, "link") != 0) {
        uint64_t h = fnv1a(section, key);
        for (size_t i = 0; i < c->nseen; i++)
            if (c->seen[i] == h)
                return qk_err_set(err, QK_EINVAL, "duplicate key");
        if (c->nseen >= SEEN_MAX)
            return qk_err_set(err, QK_EINVAL, "too many entries (at most %d)", SEEN_MAX);
        c->seen[c->nseen++] = h;
    }

    if (strcmp(kind, "node") == 0 && !name[0])
        return node_key(c, key, value, err);
    if (strcmp(kind, "listener") == 0) {
        for (int k = 0; k < QK_LST_COUNT; k++)
            if (strcmp(name, listener_names[k]) == 0)
                return listener_key(c, (qk_listener_kind)k, key, value, err);
        return qk_err_set(err, QK_EINVAL,
                          "unknown listener (etsi014, skip, peer, device or admin)");
    }
    if (strcmp(kind, "peer_client") == 0 && !name[0])
        return peer_client_key(c, key, value, err);
    if (strcmp(kind, "link") == 0 && name[0])
        return link_key(c, name, key, value, err);
    if (strcmp(kind, "sae") == 0 && name[0])
        return sae_key(c, name, key, value, err);
    if (strcmp(kind, "keys") == 0 && !name[0])
        return keys_key(c, key, value, err);
    if (strcmp(kind, "skip") == 0 && !name[0])
        return skip_key(c, key, value, err);
    if (strcmp(kind, "hot_path") == 0 && !name[0])
        return hot_path_key(c, key, value, err);
    if (strcmp(kind, "store") == 0 && !name[0])
        return store_key(c, key, value, err);
    if (strcmp(kind, "skip_client") == 0 && name[0])
        return skip_client_key(c, name, key, value, err);
    if (strcmp(kind, "topology") == 0 && !name[0])
        return topology_key(c, key, value, err);
    if (strcmp(kind, "relay") == 0 && !name[0])
        return relay_key(c, key, value, err);
    return qk_err_set(err, QK_EINVAL, "unknown section");
}

/* ---- cross-checks --------------------------------------------------------------------- */

static int xerr(const qk_kmed_config *cfg, qk_err *err, const char *section, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int xerr(const qk_kmed_config *cfg, qk_err *err, const char *section, const char *key,
                const char *fmt, ...)
{
    char msg[QK_ERR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int lines = 0;
    int line = qk_ini_locate(cfg->path, section, key, &lines);
    if (line == 0)
        line = lines; /* section absent: the end of the file */
    if (key)
        return qk_err_set(err, QK_EINVAL, "%s:%d: [%s] %s: %s", cfg->path, line, section, key, msg);
    return qk_err_set(err, QK_EINVAL, "%s:%d: [%s]: %s", cfg->path, line, section, msg);
}

static int need_file(const qk_kmed_config *cfg, qk_err *err, const char *section, const char *key,
                     const char *file)
{
    if (!file[0])
        return xerr(cfg, err, section, key, "required");
    if (access(file, R_OK) != 0)
        return xerr(cfg, err, section, key, "cannot read %s: %s", file, strerror(errno));
    return 0;
}

static int check_listener(const qk_kmed_config *cfg, qk_listener_kind kind, qk_err *err)
{
    const qk_listener_cfg *l = &cfg->listeners[kind];
    char sec[64];
    snprintf(sec, sizeof sec, "listener %s", listener_names[kind]);
    if (!l->address_set)
        return xerr(cfg, err, sec, "address", "required");
    bool cert = false, ca = false, psk = false;
    switch (l->mode) {
    case QK_TLS_MODE_MTLS:
        cert = ca = true;
        break;
    case QK_TLS_MODE_SERVER_CERT:
        cert = true;
        break;
    case QK_TLS_MODE_PSK:
        psk = true;
        break;
    case QK_TLS_MODE_PSK_OR_MTLS:
        cert = ca = psk = true;
        break;
    case QK_TLS_MODE_NONE:
        break;
    }
    if (cert && (need_file(cfg, err, sec, "cert", l->cert) != 0 ||
                 need_file(cfg, err, sec, "key", l->key) != 0))
        return QK_EINVAL;
    if (ca && need_file(cfg, err, sec, "ca", l->ca) != 0)
        return QK_EINVAL;
    if (psk && need_file(cfg, err, sec, "psk_file", l->psk_file) != 0)
        return QK_EINVAL;
    if (l->fingerprint_map[0] &&
        need_file(cfg, err, sec, "fingerprint_map", l->fingerprint_map) != 0)
        return QK_EINVAL;
    return 0;
}

/* source = etsi014: the device's address, credentials and SAE IDs; the defaults. */
static int check_link_device(const qk_kmed_config *cfg, qk_link_cfg *l, const char *sec,
                             qk_err *err)
{
    if (!l->device_key_size)
        l->device_key_size = QK_CFG_DEFAULT_DEVICE_KEY_SIZE;
    if (!l->device_batch)
        l->device_batch = QK_CFG_DEFAULT_DEVICE_BATCH;
    if (!l->device_interval_ms)
        l->device_interval_ms = QK_CFG_DEFAULT_DEVICE_INTERVAL_MS;
    if (!l->device_target_bytes)
        l->device_target_bytes = l->max_pool_bytes / 2;
    if (l->source != QK_SOURCE_ETSI014)
        return 0;
    if (!l->device_url[0])
        return xerr(cfg, err, sec, "device_url", "required with source = etsi014");
    if (need_file(cfg, err, sec, "device_ca", l->device_ca) != 0 ||
        need_file(cfg, err, sec, "device_cert", l->device_cert) != 0 ||
        need_file(cfg, err, sec, "device_key", l->device_key) != 0)
        return QK_EINVAL;
    if (!l->device_sae[0])
        return xerr(cfg, err, sec, "device_sae", "required with source = etsi014");
    if (!l->device_peer_sae[0])
        return xerr(cfg, err, sec, "device_peer_sae", "required with source = etsi014");
    /* One batch must make a block: more than its 32-byte verification key, at most 4 MiB. */
    uint64_t batch_bytes = (uint64_t)l->device_batch * (l->device_key_size / 8);
    if (batch_bytes <= QK_BLOCK_VKEY_LEN || batch_bytes > QK_BLOCK_MAX_BYTES)
        return xerr(cfg, err, sec, "device_batch",
                    "device_batch * device_key_size / 8 must be %d..%u bytes (is %llu)",
                    QK_BLOCK_VKEY_LEN + 1, QK_BLOCK_MAX_BYTES, (unsigned long long)batch_bytes);
    if (l->device_target_bytes > l->max_pool_bytes)
        return xerr(cfg, err, sec, "device_target_bytes", "must be at most max_pool_bytes (%llu)",
                    (unsigned long long)l->max_pool_bytes);
    return 0;
}

static int check_links(qk_kmed_config *cfg, qk_err *err)
{
    for (size_t i = 0; i < cfg->nlinks; i++) {
        qk_link_cfg *l = &cfg->links[i];
        char sec[QK_CFG_ID_MAX + 8];
        snprintf(sec, sizeof sec, "link %s", l->peer);
        if (strcmp(l->peer, cfg->node_id) == 0)
            return xerr(cfg, err, sec, NULL, "a link's peer must not be this node (%s)",
                        cfg->node_id);
        if (!l->peer_url[0])
            return xerr(cfg, err, sec, "peer_url", "required");
        if (!l->device_identity[0] && l->source == QK_SOURCE_DEVICE)
            return xerr(cfg, err, sec, "device_identity", "required");
        if (!l->max_pool_bytes)
            l->max_pool_bytes = cfg->max_pool_bytes;
        if (check_link_device(cfg, l, sec, err) != 0)
            return QK_EINVAL;
        if (!l->telemetry_stale_s)
            l->telemetry_stale_s = QK_CFG_DEFAULT_TELEMETRY_STALE_S;
        if (!l->pending_grace_s)
            l->pending_grace_s = QK_CFG_DEFAULT_PENDING_GRACE_S;
        if (!l->link_id[0]) {
            bool lower = strcmp(cfg->node_id, l->peer) < 0;
            int n = snprintf(l->link_id, sizeof l->link_id, "%s~%s", lower ? cfg->node_id : l->peer,
                             lower ? l->peer : cfg->node_id);
            if (n < 0 || n >= (int)sizeof l->link_id)
                return xerr(cfg, err, sec, "link_id", "default link ID too long");
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->links[j].link_id, l->link_id) == 0)
                return xerr(cfg, err, sec, "link_id", "link ID %s is used by [link %s] too",
                            l->link_id, cfg->links[j].peer);
    }
    if (cfg->nlinks == 0)
        return 0;
    if (!cfg->peer_client.present)
        return xerr(cfg, err, "peer_client", NULL,
                    "required when links are configured (section missing)");
    if (need_file(cfg, err, "peer_client", "ca", cfg->peer_client.ca) != 0 ||
        need_file(cfg, err, "peer_client", "cert", cfg->peer_client.cert) != 0 ||
        need_file(cfg, err, "peer_client", "key", cfg->peer_client.key) != 0)
        return QK_EINVAL;
    if (!cfg->listeners[QK_LST_PEER].present)
        return xerr(cfg, err, "listener peer", NULL,
                    "required when links are configured (section missing)");
    return 0;
}

/* Whether id is a KME of a [topology] link. */
static bool topology_node(const qk_kmed_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->topology.nlinks; i++)
        if (strcmp(cfg->topology.links[i].a, id) == 0 || strcmp(cfg->topology.links[i].b, id) == 0)
            return true;
    return false;
}

/* [topology] lists the links of other KMEs: one naming this node is refused (this node's links
 * are its [link] sections, whose state it measures itself). */
static int check_topology(const qk_kmed_config *cfg, qk_err *err)
{
    for (size_t i = 0; i < cfg->topology.nlinks; i++) {
        const char *a = cfg->topology.links[i].a, *b = cfg->topology.links[i].b;
        if (strcmp(a, cfg->node_id) == 0 || strcmp(b, cfg->node_id) == 0)
            return xerr(cfg, err, "topology", "link",
                        "%s %s names this node (%s): its links are [link] sections", a, b,
                        cfg->node_id);
    }
    return 0;
}

/* The SKIP API needs its remote systems, and key sizes covering the draft's 128..256 bits. */
static int check_skip(const qk_kmed_config *cfg, qk_err *err)
{
    for (size_t i = 0; i < cfg->skip.nclients; i++) {
        const qk_skip_client_cfg *cl = &cfg->skip.clients[i];
        char sec[QK_IDENTITY_MAX + 16];
        snprintf(sec, sizeof sec, "skip_client %s", cl->identity);
        if (!cl->remote_systems[0])
            return xerr(cfg, err, sec, "remote_systems", "required");
    }
    if (!cfg->listeners[QK_LST_SKIP].present)
        return 0;
    if (!cfg->skip.remote_system_ids[0])
        return xerr(cfg, err, "skip", "remote_system_ids", "required with [listener skip]");
    if (cfg->min_size_bits > 128 || cfg->max_size_bits < 256)
        return xerr(cfg, err, "keys", cfg->min_size_bits > 128 ? "min_size" : "max_size",
                    "the skip listener needs min_size <= 128 and max_size >= 256");
    return 0;
}

/* ---- roles: one identity, one role (docs/qkd-kmed.md "Roles") --------------------------- */

/* One name the configuration gives a role, and where. */
typedef struct {
    const char *name;
    qk_role role;
    const char *what; /* "this KME's node ID", ... for the message */
    char section[96]; /* for the message's FILE:LINE */
    const char *key;  /* NULL: the section line */
} role_name;

static int role_names_add(role_name *v, size_t *n, size_t cap, const char *name, qk_role role,
                          const char *what, const char *section, const char *key)
{
    if (*n >= cap)
        return -1;
    role_name *r = &v[(*n)++];
    r->name = name;
    r->role = role;
    r->what = what;
    snprintf(r->section, sizeof r->section, "%s", section);
    r->key = key;
    return 0;
}

/* Every identity the configuration names, with its role: this node and each linked peer
 * (KME: the peer listener accepts the peer's ID), each link's device_identity (device), each
 * [sae] and [skip_client] (SAE). The same name in two roles is refused: a certificate with
 * that CN would be accepted by the listeners of both. Quadratic in the names, at most
 * 1 + 2 * QK_CFG_MAX_LINKS + QK_CFG_MAX_SAES + QK_CFG_MAX_SKIP_CLIENTS of them. */
static int check_roles(const qk_kmed_config *cfg, qk_err *err)
{
    size_t cap = 1 + 2 * QK_CFG_MAX_LINKS + 2 * QK_CFG_MAX_TOPO_LINKS + QK_CFG_MAX_SAES +
                 QK_CFG_MAX_SKIP_CLIENTS,
           n = 0;
    role_name *v = calloc(cap, sizeof *v);
    if (!v)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    char sec[96];
    int bad =
        role_names_add(v, &n, cap, cfg->node_id, QK_ROLE_KME, "this KME's node ID", "node", "id");
    for (size_t i = 0; !bad && i < cfg->nlinks; i++) {
        const qk_link_cfg *l = &cfg->links[i];
        snprintf(sec, sizeof sec, "link %s", l->peer);
        bad = role_names_add(v, &n, cap, l->peer, QK_ROLE_KME, "a peer KME's ID", sec, NULL);
        if (!bad && l->device_identity[0])
            bad = role_names_add(v, &n, cap, l->device_identity, QK_ROLE_DEVICE,
                                 "a device identity", sec, "device_identity");
    }
    for (size_t i = 0; !bad && i < cfg->topology.nlinks; i++)
        bad = role_names_add(v, &n, cap, cfg->topology.links[i].a, QK_ROLE_KME,
                             "a KME of [topology]", "topology", "link") ||
              role_names_add(v, &n, cap, cfg->topology.links[i].b, QK_ROLE_KME,
                             "a KME of [topology]", "topology", "link");
    for (size_t i = 0; !bad && i < cfg->nsaes; i++) {
        snprintf(sec, sizeof sec, "sae %s", cfg->saes[i].id);
        bad = role_names_add(v, &n, cap, cfg->saes[i].id, QK_ROLE_SAE, "an SAE ID", sec, NULL);
    }
    for (size_t i = 0; !bad && i < cfg->skip.nclients; i++) {
        snprintf(sec, sizeof sec, "skip_client %.80s", cfg->skip.clients[i].identity);
        bad = role_names_add(v, &n, cap, cfg->skip.clients[i].identity, QK_ROLE_SAE,
                             "a SKIP client (SAE)", sec, NULL);
    }
    int rc = bad ? qk_err_set(err, QK_EINVAL, "too many identities") : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (v[i].role != v[j].role && strcmp(v[i].name, v[j].name) == 0)
                rc = xerr(cfg, err, v[i].section, v[i].key,
                          "%s is %s (role %s) and %s [%s] (role %s): an identity has one role",
                          v[i].name, v[i].what, qk_role_name(v[i].role), v[j].what, v[j].section,
                          qk_role_name(v[j].role));
    free(v);
    return rc;
}

static int cross_check(qk_kmed_config *cfg, qk_err *err)
{
    if (!cfg->node_id[0])
        return xerr(cfg, err, "node", "id", "required");
    if (!cfg->data_dir[0])
        return xerr(cfg, err, "node", "data_dir", "required");
    if (cfg->master_key_file[0] &&
        need_file(cfg, err, "node", "master_key_file", cfg->master_key_file) != 0)
        return QK_EINVAL;
    for (int k = 0; k < QK_LST_COUNT; k++)
        if (cfg->listeners[k].present && check_listener(cfg, (qk_listener_kind)k, err) != 0)
            return QK_EINVAL;
    if (check_links(cfg, err) != 0 || check_topology(cfg, err) != 0)
        return QK_EINVAL;
    for (size_t i = 0; i < cfg->nsaes; i++) {
        const qk_sae_cfg *s = &cfg->saes[i];
        char sec[QK_CFG_ID_MAX + 8];
        snprintf(sec, sizeof sec, "sae %s", s->id);
        if (!s->kme[0])
            return xerr(cfg, err, sec, "kme", "required");
        if (strcmp(s->kme, cfg->node_id) != 0 && !qk_kmed_config_link_by_peer(cfg, s->kme) &&
            !topology_node(cfg, s->kme))
            return xerr(cfg, err, sec, "kme",
                        "%s is neither this node nor a linked peer nor a KME of [topology]",
                        s->kme);
    }
    if (cfg->min_size_bits > cfg->max_size_bits)
        return xerr(cfg, err, "keys", "min_size", "min_size (%u) exceeds max_size (%u)",
                    cfg->min_size_bits, cfg->max_size_bits);
    if (cfg->default_size_bits < cfg->min_size_bits || cfg->default_size_bits > cfg->max_size_bits)
        return xerr(cfg, err, "keys", "default_size",
                    "%u is outside [min_size, max_size] = "
                    "[%u, %u]",
                    cfg->default_size_bits, cfg->min_size_bits, cfg->max_size_bits);
    if (check_skip(cfg, err) != 0)
        return QK_EINVAL;
    if (check_roles(cfg, err) != 0)
        return QK_EINVAL;
    if ((uint64_t)cfg->max_size_bits / 8 + QK_BLOCK_VKEY_LEN > cfg->local_block_bytes)
        return xerr(cfg, err, "keys", "local_block_bytes",
                    "must hold at least one key of max_size plus %d bytes", QK_BLOCK_VKEY_LEN);
    if (cfg->lease_low_water > cfg->lease_bytes)
        return xerr(cfg, err, "hot_path", "lease_low_water", "exceeds lease_bytes (%u)",
                    cfg->lease_bytes);
    return 0;
}

/* Request body limits per listener (bytes): an ETSI 014 Key request or Key IDs body (spec
 * clauses 6.2, 6.3: at most max_key_per_request IDs); SKIP requests are GETs; a peer
 * reservation of max_keys_per_request keys; the device feed carries whole key blocks; admin
 * takes no bodies. */
static const uint32_t default_max_body[QK_LST_COUNT] = {
    [QK_LST_ETSI014] = 64u * 1024u,
    [QK_LST_SKIP] = 4096u,
    [QK_LST_PEER] = 2u * 1024u * 1024u,
    [QK_LST_DEVICE] = QK_BLOCK_MAX_BYTES,
    [QK_LST_ADMIN] = 4096u,
};

static void set_defaults(qk_kmed_config *cfg)
{
    snprintf(cfg->log_file, sizeof cfg->log_file, "-");
    cfg->log_level = QK_LOG_INFO;
    for (int k = 0; k < QK_LST_COUNT; k++) {
        qk_listener_cfg *l = &cfg->listeners[k];
        l->mode = k == QK_LST_ADMIN  ? QK_TLS_MODE_NONE
                  : k == QK_LST_SKIP ? QK_TLS_MODE_PSK_OR_MTLS
                                     : QK_TLS_MODE_MTLS;
        l->max_connections = 1024;
        l->handshake_timeout_ms = 10000;
        l->idle_timeout_s = 60;
        l->header_timeout_ms = 10000;
        l->body_timeout_ms = 60000;
        l->threads = 2;
        l->max_body = default_max_body[k];
        /* SAEs may bring their own PKI (no marker); peers and devices are ours to mark. */
        l->role_marker = qk_listener_role((qk_listener_kind)k) == QK_ROLE_SAE
                             ? QK_ROLE_MARKER_OPTIONAL
                             : QK_ROLE_MARKER_REQUIRED;
    }
    cfg->peer_client.timeout_ms = 3000;
    cfg->peer_client.connect_timeout_ms = 1000;
    cfg->default_size_bits = 256;
    cfg->min_size_bits = 64;
    cfg->max_size_bits = 8192;
    cfg->max_keys_per_request = 128;
    cfg->max_key_count = 100000;
    cfg->max_sae_id_count = 4;
    cfg->reservation_lifetime_s = 3600;
    cfg->local_block_bytes = 65536;
    cfg->max_pool_bytes = QK_CFG_DEFAULT_MAX_POOL_BYTES;
    cfg->lease_bytes = QK_CFG_DEFAULT_LEASE_BYTES;
    cfg->lease_low_water = QK_CFG_DEFAULT_LEASE_LOW_WATER;
    cfg->lease_demand_ms = QK_CFG_DEFAULT_LEASE_DEMAND_MS;
    cfg->notice_batch = QK_CFG_DEFAULT_NOTICE_BATCH;
    cfg->notice_wait_ms = QK_CFG_DEFAULT_NOTICE_WAIT_MS;
    snprintf(cfg->skip.algorithm, sizeof cfg->skip.algorithm, "QKD");
    cfg->skip.entropy = true;
    cfg->skip.max_entropy_bits = 8192;
    cfg->topology.interval_ms = QK_CFG_DEFAULT_TOPO_INTERVAL_MS;
    cfg->topology.hold_down_ms = QK_CFG_DEFAULT_HOLD_DOWN_MS;
    cfg->relay.enabled = true;
    cfg->relay.timeout_ms = QK_CFG_DEFAULT_RELAY_TIMEOUT_MS;
    cfg->relay.max_hops = QK_CFG_DEFAULT_RELAY_MAX_HOPS;
    cfg->relay.max_tries = QK_CFG_DEFAULT_RELAY_MAX_TRIES;
}

int qk_kmed_config_load(const char *path, qk_kmed_config *cfg, qk_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    set_defaults(cfg);
    if (qk_parse_str(path, cfg->path, sizeof cfg->path, err) != 0)
        return QK_EINVAL;
    parse_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    c->cfg = cfg;
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(c->dir, sizeof c->dir, ".");
    else if (slash == path)
        snprintf(c->dir, sizeof c->dir, "/");
    else
        snprintf(c->dir, sizeof c->dir, "%.*s", (int)(slash - path), path);
    int rc = qk_ini_load(path, on_value, c, err);
    free(c);
    if (rc != 0)
        return rc;
    return cross_check(cfg, err);
}

const qk_link_cfg *qk_kmed_config_link_by_peer(const qk_kmed_config *cfg, const char *peer)
{
    for (size_t i = 0; peer && i < cfg->nlinks; i++)
        if (strcmp(cfg->links[i].peer, peer) == 0)
            return &cfg->links[i];
    return NULL;
}

const qk_link_cfg *qk_kmed_config_link_by_id(const qk_kmed_config *cfg, const char *link_id)
{
    for (size_t i = 0; link_id && i < cfg->nlinks; i++)
        if (strcmp(cfg->links[i].link_id, link_id) == 0)
            return &cfg->links[i];
    return NULL;
}

qk_role qk_listener_role(qk_listener_kind k)
{
    switch (k) {
    case QK_LST_ETSI014:
    case QK_LST_SKIP:
        return QK_ROLE_SAE;
    case QK_LST_PEER:
        return QK_ROLE_KME;
    case QK_LST_DEVICE:
        return QK_ROLE_DEVICE;
    default:
        return QK_ROLE_NONE;
    }
}

const qk_sae_cfg *qk_kmed_config_sae(const qk_kmed_config *cfg, const char *sae_id)
{
    for (size_t i = 0; sae_id && i < cfg->nsaes; i++)
        if (strcmp(cfg->saes[i].id, sae_id) == 0)
            return &cfg->saes[i];
    return NULL;
}
