/* drv_wireguard.c - the WireGuard gateway driver: the QKD key is the peer's preshared key
 * (WireGuard whitepaper section 5.2: the PSK is mixed into the Noise IKpsk2 handshake), set
 * through the userspace API socket (wg_uapi.h); the key never reaches a command line or a file.
 *
 * WireGuard holds one preshared key per peer, so rotation is two-phase (gw_driver.h
 * two_phase): install only stages the key in the bridge's secure memory; activate sets it.
 * The responder sets the key on the existing peer (its sessions go on until the initiator's
 * handshake replaces them); the initiator then removes and re-adds the peer with the new key
 * and persistent keepalive, which drops the old sessions and sends a handshake initiation at
 * once, and waits until the peer's last_handshake_time is set: that handshake used the new
 * key. probe reports the key of the last completed handshake: the applied key once a
 * handshake newer than the moment it was set has completed.
 * Blocking (retire(NULL)): a random key nobody holds, peer re-added (sessions dropped). Never
 * an empty preshared key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge_drivers.h"
#include "codec.h"
#include "http_util.h"
#include "log.h"
#include "secbuf.h"
#include "wg_uapi.h"

#define WG_STAGED_MAX   64
#define WG_REJECT_AFTER 180 /* REJECT_AFTER_TIME (whitepaper 6.1): no session is older */
#define WG_UAPI_TIMEOUT 3000
#define WG_POLL_MS      100

typedef struct {
    char id[GW_KEY_ID_MAX];
    uint8_t *key; /* secure memory, WG_KEY_LEN */
} wg_slot;

typedef struct {
    const qkb_config *cfg;
    char peer_b64[48]; /* for messages */
    wg_slot staged[WG_STAGED_MAX];
    unsigned n_staged;
    wg_slot applied;           /* the key set in WireGuard; id "" while blocked */
    uint64_t applied_at_ns;    /* CLOCK_REALTIME when it was set */
    char hs_id[GW_KEY_ID_MAX]; /* the key the last completed handshake used */
} wg_impl;

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void slot_clear(wg_slot *s)
{
    qk_secure_free(s->key);
    memset(s, 0, sizeof *s);
}

static wg_slot *staged_find(wg_impl *s, const char *id)
{
    for (unsigned i = 0; i < s->n_staged; i++)
        if (strcmp(s->staged[i].id, id) == 0)
            return &s->staged[i];
    return NULL;
}

static void staged_drop(wg_impl *s, unsigned i)
{
    slot_clear(&s->staged[i]);
    memmove(&s->staged[i], &s->staged[i + 1], (s->n_staged - i - 1) * sizeof s->staged[0]);
    s->n_staged--;
    memset(&s->staged[s->n_staged], 0, sizeof s->staged[0]);
}

static int get_peer(wg_impl *s, wg_peer *p, qk_err *err)
{
    int rc = wg_uapi_get_peer(s->cfg->wg_socket, s->cfg->wg_peer_key, p, WG_UAPI_TIMEOUT, err);
    if (rc == 0 && !p->found)
        rc = qk_err_set(err, QK_ENOTFOUND, "WireGuard: peer %s is not on interface %s", s->peer_b64,
                        s->cfg->wg_interface);
    return rc;
}

/* Wait until the re-added peer completed a handshake (last_handshake_time set). */
static int wait_handshake(wg_impl *s, const char *key_id, qk_err *err)
{
    double deadline = qk_now_ms() + (double)s->cfg->wg_handshake_timeout_ms;
    for (;;) { /* bounded by the deadline */
        wg_peer p;
        int rc = get_peer(s, &p, err);
        uint64_t hs = p.hs_sec ? p.hs_sec * 1000000000ULL + p.hs_nsec : 0;
        wg_peer_wipe(&p);
        if (rc)
            return rc;
        if (hs && hs >= s->applied_at_ns) {
            snprintf(s->hs_id, sizeof s->hs_id, "%s", key_id);
            return 0;
        }
        if (qk_now_ms() >= deadline)
            return qk_err_set(err, QK_ETIMEOUT,
                              "WireGuard %s: no handshake with peer %s under key %s within %llu "
                              "ms",
                              s->cfg->wg_interface, s->peer_b64, key_id,
                              (unsigned long long)s->cfg->wg_handshake_timeout_ms);
        struct timespec ts = {0, WG_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Sets key in WireGuard. readd: remove and add the peer again (drops its sessions; with
 * keepalive the new peer starts a handshake at once). */
static int set_key(wg_impl *s, const uint8_t *key, bool readd, unsigned keepalive, qk_err *err)
{
    wg_peer p;
    int rc = get_peer(s, &p, err);
    if (rc == 0)
        rc = readd ? wg_uapi_readd_peer(s->cfg->wg_socket, s->cfg->wg_peer_key, key, &p, keepalive,
                                        WG_UAPI_TIMEOUT, err)
                   : wg_uapi_set_psk(s->cfg->wg_socket, s->cfg->wg_peer_key, key, WG_UAPI_TIMEOUT,
                                     err);
    wg_peer_wipe(&p);
    if (rc)
        return rc;
    /* read it back: update_only on a peer that went away is silently ignored */
    rc = get_peer(s, &p, err);
    if (rc == 0 && qk_memcmp_ct(p.psk, key, WG_KEY_LEN) != 0)
        rc = qk_err_set(err, QK_EPEER, "WireGuard %s: the preshared key did not take",
                        s->cfg->wg_interface);
    wg_peer_wipe(&p);
    return rc;
}

/* Makes `key` (borrowed) the applied key under id: responder sets it, initiator re-adds the
 * peer and waits for the handshake. */
static int apply(wg_impl *s, const char *id, const uint8_t *key, qk_err *err)
{
    bool initiator = s->cfg->role == QKB_INITIATOR;
    uint8_t *copy = qk_secure_alloc(WG_KEY_LEN);
    if (!copy)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    memcpy(copy, key, WG_KEY_LEN);
    uint64_t at = real_ns();
    int rc = set_key(s, copy, initiator, initiator ? s->cfg->wg_keepalive : 0, err);
    if (rc) {
        qk_secure_free(copy);
        return rc;
    }
    slot_clear(&s->applied);
    s->applied.key = copy;
    snprintf(s->applied.id, sizeof s->applied.id, "%s", id);
    s->applied_at_ns = at;
    QK_INFO("WireGuard %s: preshared key %s set for peer %s%s", s->cfg->wg_interface, id,
            s->peer_b64, initiator ? " (peer re-added: handshake)" : "");
    return initiator ? wait_handshake(s, id, err) : 0;
}

static int wg_install(gw_driver *d, const char *key_id, const uint8_t *key, size_t len, qk_err *err)
{
    wg_impl *s = d->impl;
    if (len != WG_KEY_LEN)
        return qk_err_set(err, QK_EINVAL, "WireGuard preshared keys are 32 bytes, not %zu", len);
    if (s->applied.id[0] && strcmp(s->applied.id, key_id) == 0)
        return apply(s, key_id, key, err); /* the gateway lost it: set it again */
    wg_slot *slot = staged_find(s, key_id);
    if (!slot) {
        if (s->n_staged >= WG_STAGED_MAX || s->n_staged >= s->cfg->max_keys)
            staged_drop(s, 0); /* the oldest */
        slot = &s->staged[s->n_staged];
        slot->key = qk_secure_alloc(WG_KEY_LEN);
        if (!slot->key)
            return qk_err_set(err, QK_ENOMEM, "out of memory");
        snprintf(slot->id, sizeof slot->id, "%s", key_id);
        s->n_staged++;
    }
    memcpy(slot->key, key, WG_KEY_LEN);
    return 0;
}

static int wg_activate(gw_driver *d, const char *key_id, qk_err *err)
{
    wg_impl *s = d->impl;
    if (s->applied.id[0] && strcmp(s->applied.id, key_id) == 0) { /* again (supervision) */
        uint8_t *k = qk_secure_alloc(WG_KEY_LEN);
        if (!k)
            return qk_err_set(err, QK_ENOMEM, "out of memory");
        memcpy(k, s->applied.key, WG_KEY_LEN);
        int rc = apply(s, key_id, k, err);
        qk_secure_free(k);
        return rc;
    }
    for (unsigned i = 0; i < s->n_staged; i++)
        if (strcmp(s->staged[i].id, key_id) == 0) {
            int rc = apply(s, key_id, s->staged[i].key, err);
            if (strcmp(s->applied.id, key_id) == 0) /* set, even if no handshake yet */
                staged_drop(s, i);
            return rc;
        }
    return qk_err_set(err, QK_ENOTFOUND, "WireGuard: key %s was not installed", key_id);
}

static int block(wg_impl *s, qk_err *err)
{
    uint8_t *rnd = qk_secure_alloc(WG_KEY_LEN);
    if (!rnd)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    qk_random(rnd, WG_KEY_LEN);
    int rc = set_key(s, rnd, true, 0, err);
    qk_secure_free(rnd);
    if (rc)
        return qk_err_prefix(err, "blocking the tunnel");
    if (s->applied.id[0])
        QK_WARN("WireGuard %s: key %s dropped; peer %s blocked (random preshared key, sessions "
                "dropped)",
                s->cfg->wg_interface, s->applied.id, s->peer_b64);
    else
        QK_INFO("WireGuard %s: peer %s blocked until a key is agreed (random preshared key)",
                s->cfg->wg_interface, s->peer_b64);
    slot_clear(&s->applied);
    s->hs_id[0] = '\0';
    s->applied_at_ns = real_ns();
    return 0;
}

static int wg_retire(gw_driver *d, const char *keep_id, qk_err *err)
{
    wg_impl *s = d->impl;
    for (unsigned i = s->n_staged; i-- > 0;)
        if (!keep_id || strcmp(s->staged[i].id, keep_id) != 0)
            staged_drop(s, i);
    /* the applied key is the agreed one: only an explicit block drops it */
    return keep_id ? 0 : block(s, err);
}

static int wg_probe(gw_driver *d, const char *key_id, gw_sa_status *st, qk_err *err)
{
    wg_impl *s = d->impl;
    memset(st, 0, sizeof *st);
    st->confirmable = true;
    (void)key_id;
    wg_peer p;
    int rc = wg_uapi_get_peer(s->cfg->wg_socket, s->cfg->wg_peer_key, &p, WG_UAPI_TIMEOUT, err);
    if (rc)
        return rc;
    bool psk_ok = s->applied.key && qk_memcmp_ct(p.psk, s->applied.key, WG_KEY_LEN) == 0;
    uint64_t hs = p.hs_sec ? p.hs_sec * 1000000000ULL + p.hs_nsec : 0, now = real_ns();
    bool found = p.found;
    wg_peer_wipe(&p);
    if (!found) {
        snprintf(st->state, sizeof st->state, "NO-PEER");
        snprintf(st->detail, sizeof st->detail, "peer %s is not on %s", s->peer_b64,
                 s->cfg->wg_interface);
        return 0;
    }
    if (hs && s->applied.id[0] && hs >= s->applied_at_ns)
        snprintf(s->hs_id, sizeof s->hs_id, "%s", s->applied.id);
    bool fresh = hs && now < hs + WG_REJECT_AFTER * 1000000000ULL;
    st->up = fresh && psk_ok && s->hs_id[0];
    st->ppk = st->up;
    snprintf(st->key_id, sizeof st->key_id, "%s", st->up ? s->hs_id : "");
    snprintf(st->state, sizeof st->state, "%s",
             !s->applied.id[0] ? "BLOCKED"
             : !psk_ok         ? "KEY-CHANGED"
             : st->up          ? "ESTABLISHED"
                               : "NO-HANDSHAKE");
    snprintf(st->sa_ref, sizeof st->sa_ref, "%s", s->cfg->wg_interface);
    if (hs)
        snprintf(st->detail, sizeof st->detail,
                 "%s peer %s: last handshake %llu s ago, under key %.40s; preshared key %.40s",
                 s->cfg->wg_interface, s->peer_b64,
                 (unsigned long long)(now > hs ? (now - hs) / 1000000000ULL : 0),
                 s->hs_id[0] ? s->hs_id : "(not an agreed one)",
                 s->applied.id[0] ? s->applied.id : "random (blocked)");
    else
        snprintf(st->detail, sizeof st->detail, "%s peer %s: no handshake; preshared key %.40s",
                 s->cfg->wg_interface, s->peer_b64,
                 s->applied.id[0] ? s->applied.id : "random (blocked)");
    return 0;
}

static int wg_has_key(gw_driver *d, const char *key_id, bool *present, qk_err *err)
{
    wg_impl *s = d->impl;
    if (!s->applied.id[0] || strcmp(s->applied.id, key_id) != 0) {
        *present = staged_find(s, key_id) != NULL;
        return 0;
    }
    wg_peer p;
    int rc = get_peer(s, &p, err);
    *present = rc == 0 && qk_memcmp_ct(p.psk, s->applied.key, WG_KEY_LEN) == 0;
    wg_peer_wipe(&p);
    return rc;
}

static void wg_destroy(gw_driver *d)
{
    wg_impl *s = d->impl;
    if (s) {
        qk_err e;
        /* fail-closed: a key nobody supervises any more does not stay in use */
        if (!s->cfg->wg_keep_expired && s->applied.id[0] && block(s, &e) != 0)
            QK_WARN("on stop: %s", e.msg);
        slot_clear(&s->applied);
        for (unsigned i = 0; i < s->n_staged; i++)
            slot_clear(&s->staged[i]);
        free(s);
    }
    free(d);
}

static const gw_driver_ops wg_ops = {
    .name = "wireguard",
    .two_phase = true,
    .install = wg_install,
    .activate = wg_activate,
    .retire = wg_retire,
    .probe = wg_probe,
    .has_key = wg_has_key,
    .destroy = wg_destroy,
};

int drv_wireguard_new(const qkb_config *cfg, gw_driver **out, qk_err *err)
{
    gw_driver *d = calloc(1, sizeof *d);
    wg_impl *s = calloc(1, sizeof *s);
    if (!d || !s) {
        free(d);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    qk_base64_encode(cfg->wg_peer_key, WG_KEY_LEN, s->peer_b64, sizeof s->peer_b64);
    d->ops = &wg_ops;
    d->impl = s;
    *out = d;
    return 0;
}
