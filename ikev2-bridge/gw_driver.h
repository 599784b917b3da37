/* gw_driver.h - the interface every gateway driver implements (strongSwan over VICI,
 * libreswan through its secrets file and whack, MACsec through wpa_supplicant or ip macsec,
 * WireGuard preshared keys through its userspace API).
 * The daemon calls a driver from one thread at a time. Key bytes passed in are borrowed:
 * a driver copies what it needs into secure memory and wipes what it wrote. */
#ifndef QKB_GW_DRIVER_H
#define QKB_GW_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qk_err.h"

#define GW_KEY_ID_MAX 128

typedef struct {
    bool up;          /* an SA (or MKA session / static SA) for the active key exists */
    bool ppk;         /* the gateway confirms the PPK is in use (IKEv2 drivers) */
    bool confirmable; /* the driver can confirm ppk (false: MACsec, libreswan responder) */
    char state[32];   /* e.g. ESTABLISHED, CONNECTING, NONE */
    char sa_ref[32];  /* gateway's SA reference (strongSwan IKE unique id) */
    char detail[256]; /* human-readable */
    /* the key the SA's last completed handshake used, when the gateway can tell (WireGuard);
     * "" otherwise */
    char key_id[GW_KEY_ID_MAX];
} gw_sa_status;

typedef struct gw_driver gw_driver;

typedef struct {
    const char *name;
    bool responder_activates; /* the responder also calls activate after install (MACsec) */
    /* Two-phase rotation (WireGuard, one preshared key per peer): both sides install (stage)
     * the key; then the initiator sends `activate` and the responder calls activate (the key
     * goes live), then the initiator's activate makes the gateway handshake under it. A key
     * both sides activated stays the agreed one even when that handshake fails. The bridge
     * reports probe's key_id as its current key. retire(NULL) blocks the tunnel (a random
     * key nobody holds, sessions dropped): done at start, on stop, and when the key lifetime
     * ends without a successor. */
    bool two_phase;
    /* Both roles: make the key usable by the gateway under key_id (strongSwan: load-shared
     * PPK; libreswan: PPKS line; MACsec responder: stage the CAK). */
    int (*install)(gw_driver *d, const char *key_id, const uint8_t *key, size_t len, qk_err *err);
    /* Initiator: bring up a new SA that must use key_id (never without it), confirm it, then
     * retire the SA that used the previous key. MACsec: switch the CAK/SAK to key_id (both
     * roles call it). */
    int (*activate)(gw_driver *d, const char *key_id, qk_err *err);
    /* Drop every installed key except keep_id (NULL: all of them). */
    int (*retire)(gw_driver *d, const char *keep_id, qk_err *err);
    /* State of the SA that uses key_id (NULL: any). */
    int (*probe)(gw_driver *d, const char *key_id, gw_sa_status *st, qk_err *err);
    /* Is key_id still loaded in the gateway? (strongSwan: get-shared; others: true.) When it
     * is not, the daemon installs it again (gateway restarted, swanctl --load-creds). */
    int (*has_key)(gw_driver *d, const char *key_id, bool *present, qk_err *err);
    void (*destroy)(gw_driver *d);
} gw_driver_ops;

struct gw_driver {
    const gw_driver_ops *ops;
    void *impl;
};

#endif
