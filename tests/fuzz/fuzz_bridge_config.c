/* fuzz_bridge_config.c - libFuzzer target for the qkd-bridge configuration loader
 * (ikev2-bridge/bridge_config.c on common/ini_config.c and libinih): every input is a
 * configuration file. The loader only takes a path, so the input is written to an anonymous
 * memory file (fuzz_util.h: memfd_create, read back through /proc/self/fd/N): no file on disk.
 *
 * The loader never opens the files a configuration names (key, certificate, PSK, secrets,
 * sockets, whack, ip): they are strings here, used by the drivers and the TLS layers at start,
 * so an input cannot make the target touch a path of its choosing.
 *
 * Besides memory errors (ASan/UBSan) the target checks the loader's promises and aborts when
 * one is broken: a refused file has an error that names it; an accepted file satisfies every
 * cross-key rule of docs/qkd-bridge.md (required keys per role, KME API, channel
 * authentication and driver; value ranges), and every string and list is terminated within its
 * buffer. Build and run: `make fuzz`, then
 * `build-fuzz/fuzz_bridge_config -max_total_time=60 SCRATCH tests/fuzz/corpus/bridge_config`
 * (new inputs go to the first directory, SCRATCH, not to the seeds). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_config.h"
#include "fuzz_util.h"

/* Larger inputs only repeat lines; inih reads 200-byte lines anyway. */
#define MAX_INPUT (64 * 1024)

static fuzz_memfile g_file;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_memfile_open(&g_file, "bridge.conf") == 0 ? 0 : 1;
}

static void check_list(const qkb_list *l)
{
    REQUIRE(l->n >= 0 && l->n <= QKB_LIST);
    for (int i = 0; i < l->n; i++) {
        TERMINATED(l->items[i]);
        REQUIRE(l->items[i][0] != '\0');
    }
}

static void check_accepted(const qkb_config *c)
{
    TERMINATED(c->name);
    TERMINATED(c->log_file);
    TERMINATED(c->log_level);
    TERMINATED(c->admin_host);
    TERMINATED(c->kme_url);
    TERMINATED(c->kme_ca);
    TERMINATED(c->kme_cert);
    TERMINATED(c->kme_key);
    TERMINATED(c->kme_psk_identity);
    TERMINATED(c->kme_psk_file);
    TERMINATED(c->peer_sae_id);
    TERMINATED(c->peer_host);
    TERMINATED(c->listen_host);
    TERMINATED(c->peer_psk_identity);
    TERMINATED(c->peer_psk_file);
    TERMINATED(c->peer_ca);
    TERMINATED(c->peer_cert);
    TERMINATED(c->peer_key);
    TERMINATED(c->peer_name);
    TERMINATED(c->sw_socket);
    TERMINATED(c->sw_conn);
    TERMINATED(c->sw_child);
    TERMINATED(c->sw_local_id);
    TERMINATED(c->sw_remote_id);
    TERMINATED(c->sw_ike_psk_file);
    TERMINATED(c->ls_secrets_file);
    TERMINATED(c->ls_whack);
    TERMINATED(c->ls_ctlsocket);
    TERMINATED(c->ls_conn);
    TERMINATED(c->ls_local_id);
    TERMINATED(c->ls_remote_id);
    TERMINATED(c->ms_interface);
    TERMINATED(c->ms_wpa_conf);
    TERMINATED(c->ms_ctrl_interface);
    TERMINATED(c->ms_device);
    TERMINATED(c->ms_ip);
    check_list(&c->sw_local_addrs);
    check_list(&c->sw_remote_addrs);
    check_list(&c->sw_local_ts);
    check_list(&c->sw_remote_ts);
    check_list(&c->sw_proposals);
    check_list(&c->sw_esp_proposals);

    /* enumerations and ranges */
    REQUIRE(c->role == QKB_INITIATOR || c->role == QKB_RESPONDER);
    REQUIRE(c->kme_api == QKB_KME_ETSI014 || c->kme_api == QKB_KME_SKIP);
    REQUIRE(c->peer_auth == QKB_AUTH_PSK || c->peer_auth == QKB_AUTH_CERT);
    REQUIRE(c->driver == QKB_DRV_STRONGSWAN || c->driver == QKB_DRV_LIBRESWAN ||
            c->driver == QKB_DRV_MACSEC || c->driver == QKB_DRV_WIREGUARD);
    REQUIRE(c->ms_mode == QKB_MACSEC_WPA || c->ms_mode == QKB_MACSEC_STATIC);
    REQUIRE(strcmp(c->log_level, "debug") == 0 || strcmp(c->log_level, "info") == 0 ||
            strcmp(c->log_level, "warn") == 0 || strcmp(c->log_level, "error") == 0);
    REQUIRE(c->key_bits >= 128 && c->key_bits <= 8192 && c->key_bits % 8 == 0);
    REQUIRE(c->kme_timeout_ms >= 100 && c->kme_timeout_ms <= 120000);
    REQUIRE(c->peer_timeout_ms >= 100 && c->peer_timeout_ms <= 120000);
    REQUIRE(c->peer_retries <= 20);
    REQUIRE(c->interval_ms <= 30ULL * 86400 * 1000);
    REQUIRE(c->retry_min_ms >= 100 && c->retry_min_ms <= c->retry_max_ms);
    REQUIRE(c->retry_max_ms <= 24ULL * 3600 * 1000);
    REQUIRE(c->supervise_ms >= 500 && c->supervise_ms <= 3600 * 1000);
    REQUIRE(c->responder_key_wait_ms <= 60000);
    REQUIRE(c->max_keys >= 2 && c->max_keys <= 64);
    REQUIRE(c->max_message >= 256 && c->max_message <= 65536);
    REQUIRE(c->sw_initiate_timeout_ms >= 1000 && c->sw_initiate_timeout_ms <= 120000);
    REQUIRE(c->ms_port >= 1 && c->ms_port <= 65534);
    REQUIRE(c->ms_priority <= 255);
    REQUIRE(c->ms_cak_bits == 128 || c->ms_cak_bits == 256);
    REQUIRE(c->ms_peer_port >= 1 && c->ms_peer_port <= 65535);

    /* the cross-key rules */
    REQUIRE(c->kme_url[0] && c->peer_sae_id[0]);
    if (c->kme_api == QKB_KME_ETSI014)
        REQUIRE(c->kme_cert[0] && c->kme_key[0]);
    else
        REQUIRE(c->kme_psk_identity[0] && c->kme_psk_file[0]);
    if (c->role == QKB_INITIATOR)
        REQUIRE(c->peer_host[0]);
    else
        REQUIRE(c->listen_host[0]);
    if (c->peer_auth == QKB_AUTH_PSK)
        REQUIRE(c->peer_psk_identity[0] && c->peer_psk_file[0]);
    else
        REQUIRE(c->peer_ca[0] && c->peer_cert[0] && c->peer_key[0] && c->peer_name[0]);
    switch (c->driver) {
    case QKB_DRV_STRONGSWAN:
        REQUIRE(c->sw_local_id[0] && c->sw_remote_id[0] && c->sw_ike_psk_file[0]);
        REQUIRE(c->sw_local_addrs.n > 0 && c->sw_remote_addrs.n > 0);
        if (!c->sw_childless)
            REQUIRE(c->sw_child[0] && c->sw_local_ts.n > 0 && c->sw_remote_ts.n > 0);
        break;
    case QKB_DRV_LIBRESWAN:
        REQUIRE(c->ls_secrets_file[0] && c->ls_local_id[0] && c->ls_remote_id[0]);
        if (c->ls_initiate)
            REQUIRE(c->ls_conn[0]);
        break;
    case QKB_DRV_MACSEC: {
        static const uint8_t zero[6];
        REQUIRE(c->key_bits == c->ms_cak_bits);
        if (c->ms_mode == QKB_MACSEC_WPA)
            REQUIRE(c->ms_interface[0] && c->ms_wpa_conf[0] && c->ms_ctrl_interface[0]);
        else
            REQUIRE(c->ms_device[0] && memcmp(c->ms_local_mac, zero, 6) != 0 &&
                    memcmp(c->ms_peer_mac, zero, 6) != 0);
        break;
    }
    case QKB_DRV_WIREGUARD:
        REQUIRE(c->wg_interface[0] && c->wg_socket[0] && c->wg_peer_key_set);
        REQUIRE(c->key_bits == 256);
        REQUIRE(c->wg_keepalive >= 1 && c->wg_keepalive <= 65535);
        REQUIRE(c->wg_handshake_timeout_ms >= 1000 && c->wg_handshake_timeout_ms <= 120000);
        REQUIRE(!c->interval_ms || c->wg_key_lifetime_ms > c->interval_ms);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT || fuzz_memfile_put(&g_file, data, size) != 0)
        return 0;
    qkb_config *c = malloc(sizeof *c);
    if (!c)
        return 0;
    qk_err err;
    qk_err_clear(&err);
    qkb_config_defaults(c);
    int rc = qkb_config_load(g_file.path, c, &err);
    if (rc == 0) {
        check_accepted(c);
    } else {
        /* "FILE:LINE: [section] key: message" or "FILE: ...": every error names the file */
        REQUIRE(rc < 0 && err.msg[0] != '\0');
        REQUIRE(strncmp(err.msg, g_file.path, strlen(g_file.path)) == 0);
        TERMINATED(err.msg);
    }
    free(c);
    return 0;
}
