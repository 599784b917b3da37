/* wg_uapi.h - the WireGuard cross-platform userspace API, the text protocol `wg` itself speaks
 * to wireguard-go and other userspace implementations over a UNIX stream socket
 * (/var/run/wireguard/IFACE.sock), written from https://www.wireguard.com/xplatform/:
 *
 *   request  "get=1\n\n"                    answer  "key=value\n"... "errno=N\n\n"
 *   request  "set=1\nkey=value\n..." "\n"   answer  "errno=N\n\n"
 *
 * Keys are 64 lower-case hex digits; a peer's lines follow its public_key= line. A set
 * transaction may remove a peer (`remove=true`) and add it again in the same request, which
 * drops its sessions; with persistent_keepalive_interval going from 0 to non-zero the new peer
 * sends a keepalive at once, which starts a handshake (wireguard-go device/uapi.go).
 * Answers hold private and preshared keys: every buffer here is secure memory, wiped. */
#ifndef QKB_WG_UAPI_H
#define QKB_WG_UAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qk_err.h"

#define WG_KEY_LEN        32
#define WG_UAPI_ANSWER    65536 /* largest get answer accepted (about 200 peers) */
#define WG_MAX_ALLOWED_IP 16

typedef struct {
    bool found;
    uint8_t psk[WG_KEY_LEN];  /* all zeros: no preshared key; wipe with wg_peer_wipe */
    char endpoint[64];        /* "" when unknown (a responder before the first handshake) */
    uint64_t hs_sec, hs_nsec; /* last_handshake_time (CLOCK_REALTIME); 0: none */
    unsigned keepalive;       /* persistent_keepalive_interval, seconds */
    char allowed[WG_MAX_ALLOWED_IP][64];
    unsigned n_allowed;
} wg_peer;

void wg_peer_wipe(wg_peer *p);

/* One exchange on the socket at path: send req, read the answer up to its blank line into ans
 * (cap bytes, NUL-terminated), bounded by timeout_ms in all. Then the answer must end with
 * "errno=N\n\n" and every line before it must be key=value: N != 0 gives QK_EPEER "WireGuard
 * UAPI: errno=N (text)", anything else malformed QK_EPEER; a longer answer QK_ELIMIT;
 * connect/IO errors QK_EIO; time out QK_ETIMEOUT. */
int wg_uapi_call(const char *path, const char *req, size_t req_len, char *ans, size_t cap,
                 int timeout_ms, qk_err *err);

/* The peer with public key pub in a get=1 answer (out->found false when absent). Malformed
 * lines (bad hex, numbers, no '=') are QK_EPEER naming the line number. */
int wg_uapi_parse_peer(const char *ans, const uint8_t pub[WG_KEY_LEN], wg_peer *out, qk_err *err);

/* get=1 and wg_uapi_parse_peer. */
int wg_uapi_get_peer(const char *path, const uint8_t pub[WG_KEY_LEN], wg_peer *out, int timeout_ms,
                     qk_err *err);

/* set=1 for an existing peer (update_only=true): preshared_key only. */
int wg_uapi_set_psk(const char *path, const uint8_t pub[WG_KEY_LEN], const uint8_t psk[WG_KEY_LEN],
                    int timeout_ms, qk_err *err);

/* set=1: remove the peer and add it again with psk, the endpoint and allowed IPs of cfg, and
 * persistent keepalive `keepalive` (0: cfg's). Its sessions are gone; the next packet (the
 * keepalive) starts a handshake under psk. */
int wg_uapi_readd_peer(const char *path, const uint8_t pub[WG_KEY_LEN],
                       const uint8_t psk[WG_KEY_LEN], const wg_peer *cfg, unsigned keepalive,
                       int timeout_ms, qk_err *err);

#endif
