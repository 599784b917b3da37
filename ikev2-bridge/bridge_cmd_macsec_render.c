/* bridge_cmd_macsec_render.c - `qkd-bridge macsec-render -c CONFIG --key-id ID < KEYHEX`: print
 * what the MACsec driver would install for this key (the wpa_supplicant MKA configuration, or
 * the `ip -batch` commands of static mode), for checking a configuration without a gateway.
 * The key is read from stdin (hex) into secure memory, never from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_cli.h"
#include "bridge_cmds.h"
#include "codec.h"
#include "macsec_keys.h"
#include "secbuf.h"

int qkb_cmd_macsec_render(int argc, char **argv)
{
    qkb_cli_opts o;
    if (qkb_cli_parse_opts(argc, argv, &o) || !o.key_id) {
        fprintf(stderr, "usage: qkd-bridge macsec-render -c CONFIG --key-id ID < KEYHEX\n");
        return 2;
    }
    qkb_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = qkb_cli_load_conf(&o, cfg);
    if (rc == 0 && cfg->driver != QKB_DRV_MACSEC) {
        fprintf(stderr, "qkd-bridge: [gateway] driver is not macsec\n");
        rc = 2;
    }
    char *hex = qk_secure_alloc(200);
    uint8_t *key = qk_secure_alloc(64);
    char *out = qk_secure_alloc(4096);
    size_t kl = 0, ckl = 0;
    uint8_t ckn[MACSEC_CKN_MAX];
    qk_err e;
    if (rc == 0 && (!hex || !key || !out))
        rc = 1;
    if (rc == 0 && !fgets(hex, 200, stdin)) {
        fprintf(stderr, "qkd-bridge: no key on stdin\n");
        rc = 2;
    }
    if (rc == 0) {
        hex[strcspn(hex, "\r\n")] = '\0';
        if (qk_hex_decode(hex, strlen(hex), key, 64, &kl) != 0 ||
            macsec_cak_check(kl, cfg->ms_cak_bits, &e) != 0 ||
            macsec_ckn_from_key_id(o.key_id, ckn, &ckl, &e) != 0) {
            fprintf(stderr, "qkd-bridge: bad key or key ID\n");
            rc = 2;
        }
    }
    long n = 0;
    if (rc == 0) {
        if (cfg->ms_mode == QKB_MACSEC_WPA) {
            macsec_wpa_params p = {.ctrl_interface = cfg->ms_ctrl_interface,
                                   .port = cfg->ms_port,
                                   .priority = cfg->ms_priority,
                                   .replay_protect = 1};
            n = macsec_wpa_render(&p, key, kl, ckn, ckl, out, 4096, &e);
        } else {
            macsec_static_params p = {.dev = cfg->ms_device, .peer_port = cfg->ms_peer_port};
            memcpy(p.local_mac, cfg->ms_local_mac, 6);
            memcpy(p.peer_mac, cfg->ms_peer_mac, 6);
            p.an = ckn[0] % 4;
            n = macsec_static_batch(&p, key, kl, ckn, ckl, out, 4096, &e);
        }
        if (n < 0) {
            fprintf(stderr, "qkd-bridge: %s\n", e.msg);
            rc = 1;
        } else {
            fwrite(out, 1, (size_t)n, stdout);
        }
    }
    qk_secure_free(hex);
    qk_secure_free(key);
    qk_secure_free(out);
    free(cfg);
    return rc;
}
