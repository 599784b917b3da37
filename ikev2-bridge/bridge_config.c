/* bridge_config.c - qkd-bridge INI loading and validation. */
#include "bridge_config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "ini_config.h"
#include "macsec_keys.h"

void qkb_config_defaults(qkb_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "qkd-bridge");
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->admin_host, sizeof c->admin_host, "127.0.0.1");
    c->key_bits = 256;
    c->kme_timeout_ms = 5000;
    c->peer_timeout_ms = 5000;
    c->peer_retries = 3;
    c->peer_role_marker = QK_ROLE_MARKER_OPTIONAL;
    c->interval_ms = 3600 * 1000;
    c->retry_min_ms = 1000;
    c->retry_max_ms = 60000;
    c->supervise_ms = 5000;
    c->responder_key_wait_ms = 3000;
    c->max_keys = 4;
    c->max_message = 4096;
    snprintf(c->sw_socket, sizeof c->sw_socket, "/var/run/charon.vici");
    snprintf(c->sw_conn, sizeof c->sw_conn, "qkd");
    c->sw_initiate_timeout_ms = 15000;
    snprintf(c->ls_whack, sizeof c->ls_whack, "/usr/libexec/ipsec/whack");
    snprintf(c->ls_ctlsocket, sizeof c->ls_ctlsocket, "/run/pluto/pluto.ctl");
    snprintf(c->ms_ip, sizeof c->ms_ip, "/sbin/ip");
    c->ms_port = 1;
    c->ms_priority = 16;
    c->ms_cak_bits = 256;
    c->ms_peer_port = 1;
    c->wg_keepalive = 25;
    c->wg_handshake_timeout_ms = 15000;
    c->wg_key_lifetime_ms = 2 * 3600 * 1000;
}

static int parse_list(const char *v, qkb_list *l, qk_err *err)
{
    l->n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if (l->n >= QKB_LIST)
            return qk_err_set(err, QK_ELIMIT, "more than %d items", QKB_LIST);
        size_t n = (size_t)(t - p);
        if (n >= QKB_STR)
            return qk_err_set(err, QK_EINVAL, "item too long");
        memcpy(l->items[l->n], p, n);
        l->items[l->n][n] = '\0';
        l->n++;
        p = e;
    }
    if (l->n == 0)
        return qk_err_set(err, QK_EINVAL, "empty list");
    return 0;
}

static int parse_uint(const char *v, uint64_t lo, uint64_t hi, unsigned *out, qk_err *err)
{
    uint64_t x;
    int rc = qk_parse_u64(v, lo, hi, &x, err);
    if (rc == 0)
        *out = (unsigned)x;
    return rc;
}

/* The index of v among n names (an enum value), or -1 with `expected` as the error. */
static int parse_choice(const char *v, const char *const *names, size_t n, const char *expected,
                        qk_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return (int)i;
    qk_err_set(err, QK_EINVAL, "%s", expected);
    return -1;
}

#define CHOICE(names, expected)                                                                    \
    parse_choice(v, names, sizeof names / sizeof names[0], expected, err)

/* In the section parsers below: key k sets c->field (the statement returns). */
#define STR(k, field)                                                                              \
    if (strcmp(key, k) == 0)                                                                       \
    return qk_parse_str(v, c->field, sizeof c->field, err)
#define DUR(k, field, lo, hi)                                                                      \
    if (strcmp(key, k) == 0)                                                                       \
    return qk_parse_duration_ms(v, lo, hi, &c->field, err)
#define LIST(k, field)                                                                             \
    if (strcmp(key, k) == 0)                                                                       \
    return parse_list(v, &c->field, err)
#define UINT(k, field, lo, hi)                                                                     \
    if (strcmp(key, k) == 0)                                                                       \
    return parse_uint(v, lo, hi, &c->field, err)
#define BOOL(k, field)                                                                             \
    if (strcmp(key, k) == 0)                                                                       \
    return qk_parse_bool(v, &c->field, err)
/* c->field (an enum of type `type`) is the index of v in names[] */
#define ENUM(k, field, type, names, expected)                                                      \
    if (strcmp(key, k) == 0) {                                                                     \
        int i_ = CHOICE(names, expected);                                                          \
        if (i_ < 0)                                                                                \
            return QK_EINVAL;                                                                      \
        c->field = (type)i_;                                                                       \
        return 0;                                                                                  \
    }

/* ---- sections ------------------------------------------------------------------------- */

static int bridge_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    static const char *const roles[] = {"initiator", "responder"}; /* qkb_role order */
    STR("name", name);
    STR("log_file", log_file);
    if (strcmp(key, "log_level") == 0) {
        if (CHOICE(levels, "debug, info, warn or error") < 0)
            return QK_EINVAL;
        return qk_parse_str(v, c->log_level, sizeof c->log_level, err);
    }
    ENUM("role", role, qkb_role, roles, "initiator or responder");
    if (strcmp(key, "admin") == 0)
        return qk_parse_hostport(v, c->admin_host, sizeof c->admin_host, &c->admin_port, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int kme_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    static const char *const apis[] = {"etsi014", "skip"}; /* qkb_kme_api order */
    ENUM("api", kme_api, qkb_kme_api, apis, "etsi014 or skip");
    STR("url", kme_url);
    STR("ca", kme_ca);
    STR("cert", kme_cert);
    STR("key", kme_key);
    STR("psk_identity", kme_psk_identity);
    STR("psk_file", kme_psk_file);
    STR("peer_sae_id", peer_sae_id);
    if (strcmp(key, "key_bits") == 0) {
        int rc = parse_uint(v, 128, 8192, &c->key_bits, err);
        if (rc == 0 && c->key_bits % 8)
            return qk_err_set(err, QK_EINVAL, "a multiple of 8");
        return rc;
    }
    DUR("timeout", kme_timeout_ms, 100, 120000);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int peer_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    static const char *const auths[] = {"psk", "cert"}; /* qkb_peer_auth order */
    if (strcmp(key, "address") == 0)
        return qk_parse_hostport(v, c->peer_host, sizeof c->peer_host, &c->peer_port, err);
    if (strcmp(key, "listen") == 0)
        return qk_parse_hostport(v, c->listen_host, sizeof c->listen_host, &c->listen_port, err);
    ENUM("auth", peer_auth, qkb_peer_auth, auths, "psk or cert");
    STR("psk_identity", peer_psk_identity);
    STR("psk_file", peer_psk_file);
    STR("ca", peer_ca);
    STR("cert", peer_cert);
    STR("key", peer_key);
    STR("peer_name", peer_name);
    if (strcmp(key, "role_marker") == 0) {
        if (qk_role_marker_parse(v, &c->peer_role_marker) != 0)
            return qk_err_set(err, QK_EINVAL, "required or optional");
        return 0;
    }
    DUR("timeout", peer_timeout_ms, 100, 120000);
    UINT("retries", peer_retries, 0, 20);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int rotation_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    DUR("interval", interval_ms, 0, 30ULL * 86400 * 1000);
    DUR("retry_min", retry_min_ms, 100, 3600 * 1000);
    DUR("retry_max", retry_max_ms, 100, 24 * 3600 * 1000);
    DUR("supervise", supervise_ms, 500, 3600 * 1000);
    DUR("responder_key_wait", responder_key_wait_ms, 0, 60000);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int limits_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    UINT("max_keys", max_keys, 2, 64);
    if (strcmp(key, "max_message") == 0) {
        unsigned m = 0;
        int rc = parse_uint(v, 256, 65536, &m, err);
        if (rc == 0)
            c->max_message = m;
        return rc;
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int gateway_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    static const char *const drivers[] = {"strongswan", "libreswan", "macsec",
                                          "wireguard"}; /* enum order */
    ENUM("driver", driver, qkb_driver_kind, drivers, "strongswan, libreswan, macsec or wireguard");
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int strongswan_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    STR("socket", sw_socket);
    STR("connection", sw_conn);
    STR("child", sw_child);
    LIST("local_addrs", sw_local_addrs);
    LIST("remote_addrs", sw_remote_addrs);
    LIST("local_ts", sw_local_ts);
    LIST("remote_ts", sw_remote_ts);
    STR("local_id", sw_local_id);
    STR("remote_id", sw_remote_id);
    STR("ike_psk_file", sw_ike_psk_file);
    LIST("proposals", sw_proposals);
    LIST("esp_proposals", sw_esp_proposals);
    BOOL("childless", sw_childless);
    DUR("initiate_timeout", sw_initiate_timeout_ms, 1000, 120000);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int libreswan_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    STR("secrets_file", ls_secrets_file);
    STR("whack", ls_whack);
    STR("ctlsocket", ls_ctlsocket);
    STR("connection", ls_conn);
    STR("local_id", ls_local_id);
    STR("remote_id", ls_remote_id);
    BOOL("initiate", ls_initiate);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int macsec_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    static const char *const modes[] = {"wpa_supplicant", "static"}; /* qkb_macsec_mode order */
    ENUM("mode", ms_mode, qkb_macsec_mode, modes, "wpa_supplicant or static");
    STR("interface", ms_interface);
    STR("wpa_conf", ms_wpa_conf);
    STR("ctrl_interface", ms_ctrl_interface);
    UINT("port", ms_port, 1, 65534);
    UINT("priority", ms_priority, 0, 255);
    if (strcmp(key, "cak_bits") == 0) {
        int rc = parse_uint(v, 128, 256, &c->ms_cak_bits, err);
        if (rc == 0 && c->ms_cak_bits != 128 && c->ms_cak_bits != 256)
            return qk_err_set(err, QK_EINVAL, "128 or 256");
        return rc;
    }
    STR("device", ms_device);
    STR("ip", ms_ip);
    if (strcmp(key, "local_mac") == 0 || strcmp(key, "peer_mac") == 0) {
        uint8_t *m = key[0] == 'l' ? c->ms_local_mac : c->ms_peer_mac;
        if (macsec_parse_mac(v, m))
            return qk_err_set(err, QK_EINVAL, "a MAC address aa:bb:cc:dd:ee:ff");
        return 0;
    }
    UINT("peer_port", ms_peer_port, 1, 65535);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int wireguard_key(qkb_config *c, const char *key, const char *v, qk_err *err)
{
    static const char *const expiry[] = {"block", "keep"};
    STR("interface", wg_interface);
    STR("socket", wg_socket);
    if (strcmp(key, "peer_public_key") == 0) {
        size_t n = 0;
        if (qk_base64_decode(v, strlen(v), c->wg_peer_key, sizeof c->wg_peer_key, &n) != 0 ||
            n != sizeof c->wg_peer_key)
            return qk_err_set(err, QK_EINVAL, "a WireGuard public key (44 base64 characters)");
        c->wg_peer_key_set = true;
        return 0;
    }
    UINT("keepalive", wg_keepalive, 1, 65535);
    DUR("handshake_timeout", wg_handshake_timeout_ms, 1000, 120000);
    DUR("key_lifetime", wg_key_lifetime_ms, 1000, 30ULL * 86400 * 1000);
    if (strcmp(key, "on_key_expiry") == 0) {
        int i = CHOICE(expiry, "block or keep");
        if (i < 0)
            return QK_EINVAL;
        c->wg_keep_expired = i == 1;
        return 0;
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

#undef STR
#undef DUR
#undef LIST
#undef UINT
#undef BOOL
#undef ENUM
#undef CHOICE

typedef int (*section_parser)(qkb_config *c, const char *key, const char *v, qk_err *err);

static const struct {
    const char *name;
    section_parser parse;
} SECTIONS[] = {
    {"bridge", bridge_key},
    {"kme", kme_key},
    {"peer", peer_key},
    {"rotation", rotation_key},
    {"limits", limits_key},
    {"gateway", gateway_key},
    {"strongswan", strongswan_key},
    {"libreswan", libreswan_key},
    {"macsec", macsec_key},
    {"wireguard", wireguard_key},
};

static int on_key(void *user, const char *sec, const char *key, const char *v, qk_err *err)
{
    for (size_t i = 0; i < sizeof SECTIONS / sizeof SECTIONS[0]; i++)
        if (strcmp(sec, SECTIONS[i].name) == 0)
            return SECTIONS[i].parse(user, key, v, err);
    return qk_err_set(err, QK_EINVAL, "unknown section");
}

static int need(const char *v, const char *path, const char *what, qk_err *err)
{
    if (v[0])
        return 0;
    return qk_err_set(err, QK_EINVAL, "%s: %s is required", path, what);
}

int qkb_config_load(const char *path, qkb_config *c, qk_err *err)
{
    int rc = qk_ini_load(path, on_key, c, err);
    if (rc)
        return rc;
    if (need(c->kme_url, path, "[kme] url", err) ||
        need(c->peer_sae_id, path, "[kme] peer_sae_id", err))
        return QK_EINVAL;
    if (c->kme_api == QKB_KME_ETSI014 &&
        (need(c->kme_cert, path, "[kme] cert", err) || need(c->kme_key, path, "[kme] key", err)))
        return QK_EINVAL;
    if (c->kme_api == QKB_KME_SKIP && (need(c->kme_psk_identity, path, "[kme] psk_identity", err) ||
                                       need(c->kme_psk_file, path, "[kme] psk_file", err)))
        return QK_EINVAL;
    if (c->role == QKB_INITIATOR && (need(c->peer_host, path, "[peer] address", err)))
        return QK_EINVAL;
    if (c->role == QKB_RESPONDER && need(c->listen_host, path, "[peer] listen", err))
        return QK_EINVAL;
    if (c->peer_auth == QKB_AUTH_PSK &&
        (need(c->peer_psk_identity, path, "[peer] psk_identity", err) ||
         need(c->peer_psk_file, path, "[peer] psk_file", err)))
        return QK_EINVAL;
    if (c->peer_auth == QKB_AUTH_CERT &&
        (need(c->peer_ca, path, "[peer] ca", err) || need(c->peer_cert, path, "[peer] cert", err) ||
         need(c->peer_key, path, "[peer] key", err) ||
         need(c->peer_name, path, "[peer] peer_name", err)))
        return QK_EINVAL;
    /* One identity, one role (docs/qkd-kmed.md "Roles"): the other bridge is not also the SAE
     * whose keys it shares (over SKIP peer_sae_id names the peer KME, a remote system ID). */
    if (c->kme_api == QKB_KME_ETSI014 && c->peer_name[0] &&
        strcmp(c->peer_name, c->peer_sae_id) == 0)
        return qk_err_set(err, QK_EINVAL,
                          "%s: [peer] peer_name %s is also [kme] peer_sae_id: a bridge identity "
                          "and an SAE ID are two roles",
                          path, c->peer_name);
    if (c->retry_min_ms > c->retry_max_ms)
        return qk_err_set(err, QK_EINVAL, "%s: [rotation] retry_min above retry_max", path);
    if (c->driver == QKB_DRV_STRONGSWAN) {
        if (need(c->sw_local_id, path, "[strongswan] local_id", err) ||
            need(c->sw_remote_id, path, "[strongswan] remote_id", err) ||
            need(c->sw_ike_psk_file, path, "[strongswan] ike_psk_file", err))
            return QK_EINVAL;
        if (c->sw_local_addrs.n == 0 || c->sw_remote_addrs.n == 0)
            return qk_err_set(err, QK_EINVAL,
                              "%s: [strongswan] local_addrs and remote_addrs are required", path);
        if (!c->sw_childless &&
            (!c->sw_child[0] || c->sw_local_ts.n == 0 || c->sw_remote_ts.n == 0))
            return qk_err_set(err, QK_EINVAL,
                              "%s: [strongswan] child, local_ts and remote_ts are required unless "
                              "childless = yes",
                              path);
    }
    if (c->driver == QKB_DRV_LIBRESWAN &&
        (need(c->ls_secrets_file, path, "[libreswan] secrets_file", err) ||
         need(c->ls_local_id, path, "[libreswan] local_id", err) ||
         need(c->ls_remote_id, path, "[libreswan] remote_id", err) ||
         (c->ls_initiate && need(c->ls_conn, path, "[libreswan] connection", err))))
        return QK_EINVAL;
    if (c->driver == QKB_DRV_MACSEC) {
        if (c->key_bits != c->ms_cak_bits)
            return qk_err_set(err, QK_EINVAL,
                              "%s: [kme] key_bits must equal [macsec] cak_bits (the key is the "
                              "CAK)",
                              path);
        if (c->ms_mode == QKB_MACSEC_WPA &&
            (need(c->ms_interface, path, "[macsec] interface", err) ||
             need(c->ms_wpa_conf, path, "[macsec] wpa_conf", err) ||
             need(c->ms_ctrl_interface, path, "[macsec] ctrl_interface", err)))
            return QK_EINVAL;
        static const uint8_t zero[6];
        if (c->ms_mode == QKB_MACSEC_STATIC &&
            (need(c->ms_device, path, "[macsec] device", err) ||
             memcmp(c->ms_local_mac, zero, 6) == 0 || memcmp(c->ms_peer_mac, zero, 6) == 0))
            return qk_err_set(err, QK_EINVAL,
                              "%s: [macsec] static mode needs device, local_mac and peer_mac",
                              path);
    }
    if (c->driver == QKB_DRV_WIREGUARD) {
        if (need(c->wg_interface, path, "[wireguard] interface", err))
            return QK_EINVAL;
        if (!c->wg_peer_key_set)
            return qk_err_set(err, QK_EINVAL, "%s: [wireguard] peer_public_key is required", path);
        if (c->key_bits != 256)
            return qk_err_set(err, QK_EINVAL,
                              "%s: [kme] key_bits must be 256 with the wireguard driver (the key "
                              "is the 32-byte preshared key)",
                              path);
        if (c->interval_ms && c->wg_key_lifetime_ms <= c->interval_ms)
            return qk_err_set(err, QK_EINVAL,
                              "%s: [wireguard] key_lifetime must exceed [rotation] interval", path);
        if (!c->wg_socket[0] &&
            snprintf(c->wg_socket, sizeof c->wg_socket, "/var/run/wireguard/%s.sock",
                     c->wg_interface) >= (int)sizeof c->wg_socket)
            return qk_err_set(err, QK_EINVAL, "%s: [wireguard] interface name too long", path);
    }
    return 0;
}
