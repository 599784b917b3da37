/* bridge_config.h - the qkd-bridge INI configuration (every key: docs/qkd-bridge.md). */
#ifndef QKB_BRIDGE_CONFIG_H
#define QKB_BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cert_role.h"
#include "qk_err.h"

#define QKB_STR  256
#define QKB_PATH 512
#define QKB_LIST 8 /* addresses / traffic selectors / proposals per list */

typedef enum { QKB_INITIATOR = 0, QKB_RESPONDER = 1 } qkb_role;
typedef enum { QKB_KME_ETSI014 = 0, QKB_KME_SKIP = 1 } qkb_kme_api;
typedef enum {
    QKB_DRV_STRONGSWAN = 0,
    QKB_DRV_LIBRESWAN,
    QKB_DRV_MACSEC,
    QKB_DRV_WIREGUARD
} qkb_driver_kind;
typedef enum { QKB_AUTH_PSK = 0, QKB_AUTH_CERT = 1 } qkb_peer_auth;
typedef enum { QKB_MACSEC_WPA = 0, QKB_MACSEC_STATIC = 1 } qkb_macsec_mode;

typedef struct {
    char items[QKB_LIST][QKB_STR];
    int n;
} qkb_list;

typedef struct {
    /* [bridge] */
    char name[64];
    qkb_role role;
    char log_file[QKB_PATH];
    char log_level[16];
    char admin_host[64];
    uint16_t admin_port;
    /* [kme] */
    qkb_kme_api kme_api;
    char kme_url[QKB_STR];
    char kme_ca[QKB_PATH];
    char kme_cert[QKB_PATH], kme_key[QKB_PATH]; /* ETSI 014 mTLS */
    char kme_psk_identity[QKB_STR];             /* SKIP TLS-PSK */
    char kme_psk_file[QKB_PATH];
    char peer_sae_id[QKB_STR]; /* ETSI: the peer SAE; SKIP: the remote system (peer KME) ID */
    unsigned key_bits;
    uint64_t kme_timeout_ms;
    /* [peer] */
    char peer_host[QKB_STR];
    uint16_t peer_port;   /* initiator: where the responder listens */
    char listen_host[64]; /* responder */
    uint16_t listen_port;
    qkb_peer_auth peer_auth;
    char peer_psk_identity[QKB_STR];
    char peer_psk_file[QKB_PATH];
    char peer_ca[QKB_PATH], peer_cert[QKB_PATH], peer_key[QKB_PATH];
    char peer_name[QKB_STR]; /* expected identity of the other bridge (PSK id or cert CN) */
    /* auth = cert: a certificate without a role marker is accepted (optional, the default) or
     * refused (required); one marked for another role always is (docs/qkd-kmed.md "Roles") */
    qk_role_marker peer_role_marker;
    uint64_t peer_timeout_ms;
    unsigned peer_retries;
    /* [rotation] */
    uint64_t interval_ms; /* 0: on demand only */
    uint64_t retry_min_ms, retry_max_ms;
    uint64_t supervise_ms;          /* SA / key presence check period */
    uint64_t responder_key_wait_ms; /* responder: how long to retry a key the KME lacks */
    /* [limits] */
    unsigned max_keys;  /* keys held in the gateway at once */
    size_t max_message; /* bridge channel body bytes */
    /* [gateway] */
    qkb_driver_kind driver;
    /* [strongswan] */
    char sw_socket[QKB_PATH];
    char sw_conn[64], sw_child[64];
    qkb_list sw_local_addrs, sw_remote_addrs, sw_local_ts, sw_remote_ts;
    char sw_local_id[QKB_STR], sw_remote_id[QKB_STR];
    char sw_ike_psk_file[QKB_PATH];
    qkb_list sw_proposals, sw_esp_proposals;
    bool sw_childless;
    uint64_t sw_initiate_timeout_ms;
    /* [libreswan] */
    char ls_secrets_file[QKB_PATH];
    char ls_whack[QKB_PATH];
    char ls_ctlsocket[QKB_PATH];
    char ls_conn[64];
    char ls_local_id[QKB_STR], ls_remote_id[QKB_STR];
    bool ls_initiate;
    /* [macsec] */
    qkb_macsec_mode ms_mode;
    char ms_interface[32];
    char ms_wpa_conf[QKB_PATH];
    char ms_ctrl_interface[QKB_PATH];
    unsigned ms_port, ms_priority, ms_cak_bits;
    char ms_device[32];
    char ms_ip[QKB_PATH];
    uint8_t ms_local_mac[6], ms_peer_mac[6];
    unsigned ms_peer_port;
    /* [wireguard] */
    char wg_interface[32];
    char wg_socket[QKB_PATH]; /* default /var/run/wireguard/<interface>.sock */
    uint8_t wg_peer_key[32];  /* the peer's public key */
    bool wg_peer_key_set;
    unsigned wg_keepalive; /* persistent keepalive the initiator sets, seconds */
    uint64_t wg_handshake_timeout_ms;
    uint64_t wg_key_lifetime_ms; /* a key without successor is dropped after this */
    bool wg_keep_expired;        /* on_key_expiry = keep (fail-open); default block */
} qkb_config;

void qkb_config_defaults(qkb_config *c);
/* Load and validate (cross-key rules too). Errors name file, line and key. */
int qkb_config_load(const char *path, qkb_config *c, qk_err *err);
/* What `run` needs beyond a valid configuration (bridge_config_check.c): named files exist and
 * are readable, secret files are private (no group/other access), PSK files hold the
 * identities used, helpers are executable, written files' directories writable, sockets are
 * sockets (a missing gateway socket is a warning). One "FILE:LINE: [section] key: message"
 * line per finding into out (cap bytes, truncated). Returns the number of errors; *warnings
 * (may be NULL) the number of warnings. */
int qkb_config_check_files(const char *path, const qkb_config *c, char *out, size_t cap,
                           int *warnings);

#endif
