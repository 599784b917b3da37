/* bridge_daemon.c - the qkd-bridge core.
 *
 * Initiator, per rotation: key (ID, bytes) from the local KME -> "offer" the ID to the
 * responder bridge, which fetches the same key by ID from its own KME and installs it, then
 * acks -> only then install locally and activate (new SA that must use the PPK; the previous
 * SA is retired after the new one is confirmed) -> "activated" -> drop older keys.
 * Any failure keeps the current SA and key, is reported (status, metrics, log) and retried
 * with exponential backoff between [rotation] retry_min and retry_max, without limit, so the
 * bridge recovers by itself once the KME or the peer is back.
 * Supervision (every [rotation] supervise): keys the gateway lost are installed again, and on
 * the initiator an SA that went away is re-established with the current key.
 * Two-phase drivers (WireGuard, gw_driver.h): after the offer both sides install, the
 * initiator sends "activate" (the responder puts the key in use), then activates its own side
 * (handshake); a key the initiator offered while the responder was unreachable is offered
 * again on the retry rather than a new one taken. Such a gateway starts blocked, and a key
 * that reaches [wireguard] key_lifetime without a successor blocks the tunnel (fail-closed)
 * unless on_key_expiry = keep; status and metrics give the reason (kme, peer, gateway). */
#include "bridge_daemon.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge_channel.h"
#include "bridge_drivers.h"
#include "http_util.h"
#include "json_util.h"
#include "kme_source.h"
#include "log.h"
#include "secbuf.h"

typedef struct {
    char id[GW_KEY_ID_MAX];
    uint8_t *key; /* secure memory */
    size_t len;
} held_key;

struct bridge {
    const qkb_config *cfg;
    gw_driver *drv;
    kme_source *kme;
    chan_client *chan;
    chan_server *chan_srv;
    bridge_admin *admin;

    pthread_mutex_t drv_mu; /* one driver call at a time */
    pthread_mutex_t mu;     /* everything below */
    held_key cur;
    uint64_t cur_installed_s;
    held_key pending[64]; /* responder: offered, not yet activated (<= max_keys) */
    unsigned n_pending;
    held_key offered; /* initiator: offered while the responder was unreachable */
    uint64_t offered_s;
    bool blocked, need_block, expired_warned;
    const char *blocked_reason; /* "no_key", "kme", "peer", "gateway" */
    const char *last_fail_src;  /* the source of the last error since the last good key */
    uint64_t blocks;
    gw_sa_status sa;
    bool sa_known;
    double next_rotation_ms; /* monotonic */
    double next_attempt_ms;
    uint64_t backoff_ms;
    bool rotate_req;
    char last_error[QK_ERR_MSG_MAX];
    uint64_t last_error_s;
    uint64_t rotations_ok, rotations_failed, kme_errors, peer_errors, gateway_errors;
    uint64_t offers_ok, offers_failed, reinstalls, sa_restarts;
    double next_supervise_ms;
};

static void held_clear(held_key *h)
{
    qk_secure_free(h->key);
    memset(h, 0, sizeof *h);
}

static int held_set(held_key *h, const char *id, const uint8_t *key, size_t len)
{
    uint8_t *k = qk_secure_alloc(len);
    if (!k)
        return QK_ENOMEM;
    memcpy(k, key, len);
    held_clear(h);
    h->key = k;
    h->len = len;
    snprintf(h->id, sizeof h->id, "%s", id);
    return 0;
}

static void set_error(bridge *b, uint64_t *counter, const qk_err *e)
{
    pthread_mutex_lock(&b->mu);
    snprintf(b->last_error, sizeof b->last_error, "%s", e->msg);
    b->last_error_s = qk_now_s();
    if (counter)
        (*counter)++;
    if (counter == &b->kme_errors)
        b->last_fail_src = "kme";
    else if (counter == &b->peer_errors)
        b->last_fail_src = "peer";
    else if (counter == &b->gateway_errors)
        b->last_fail_src = "gateway";
    pthread_mutex_unlock(&b->mu);
    QK_ERROR("%s", e->msg);
}

/* ---- responder -------------------------------------------------------------------------- */

static int on_offer(void *ctx, const char *key_id, qk_err *err)
{
    bridge *b = ctx;
    const qkb_config *c = b->cfg;
    uint8_t *key = NULL;
    size_t len = 0;
    double deadline = qk_now_ms() + (double)c->responder_key_wait_ms;
    int rc;
    for (int i = 0; i < 100; i++) { /* bounded by the deadline as well */
        rc = kme_get_by_id(b->kme, key_id, &key, &len, err);
        if (rc == 0 || rc == QK_EINVAL || qk_now_ms() + 300 > deadline)
            break;
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc) {
        qk_err_prefix(err, "responder cannot get key %s", key_id);
        set_error(b, &b->kme_errors, err);
        pthread_mutex_lock(&b->mu);
        b->offers_failed++;
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    pthread_mutex_lock(&b->drv_mu);
    pthread_mutex_lock(&b->mu);
    bool full =
        b->n_pending >= c->max_keys - 1 || b->n_pending >= sizeof b->pending / sizeof b->pending[0];
    pthread_mutex_unlock(&b->mu);
    if (full) {
        /* offers that were never activated: drop them (bounded key set in the gateway) */
        qk_err e2;
        if (b->drv->ops->retire(b->drv, b->cur.id[0] ? b->cur.id : NULL, &e2))
            QK_WARN("dropping unactivated keys: %s", e2.msg);
        pthread_mutex_lock(&b->mu);
        for (unsigned i = 0; i < b->n_pending; i++)
            held_clear(&b->pending[i]);
        b->n_pending = 0;
        pthread_mutex_unlock(&b->mu);
    }
    rc = b->drv->ops->install(b->drv, key_id, key, len, err);
    if (rc == 0 && b->drv->ops->responder_activates)
        rc = b->drv->ops->activate(b->drv, key_id, err);
    pthread_mutex_unlock(&b->drv_mu);
    if (rc == 0) {
        pthread_mutex_lock(&b->mu);
        rc = held_set(&b->pending[b->n_pending], key_id, key, len);
        if (rc == 0)
            b->n_pending++;
        b->offers_ok++;
        pthread_mutex_unlock(&b->mu);
        QK_INFO("responder: key %s fetched from the KME and installed in %s", key_id,
                b->drv->ops->name);
    } else {
        qk_err_prefix(err, "responder gateway");
        set_error(b, &b->gateway_errors, err);
    }
    qk_secure_free(key);
    return rc;
}

/* A new key is in use: the tunnel is no longer blocked. Under b->mu. */
static void key_in_use(bridge *b)
{
    b->cur_installed_s = qk_now_s();
    b->rotations_ok++;
    b->blocked = false;
    b->blocked_reason = NULL;
    b->last_fail_src = NULL;
    b->expired_warned = false;
    b->sa_known = false;
}

/* Index of the offered key key_id in b->pending, or -1. Under b->mu. */
static int pending_find(const bridge *b, const char *key_id)
{
    int found = -1;
    for (unsigned i = 0; i < b->n_pending; i++)
        if (strcmp(b->pending[i].id, key_id) == 0)
            found = (int)i;
    return found;
}

/* Two-phase drivers: both sides installed key_id; put it in use here. */
static int on_activate(void *ctx, const char *key_id, qk_err *err)
{
    bridge *b = ctx;
    pthread_mutex_lock(&b->mu);
    int found = pending_find(b, key_id);
    pthread_mutex_unlock(&b->mu);
    if (found < 0)
        return qk_err_set(err, QK_ENOTFOUND, "key %s was not offered here", key_id);
    pthread_mutex_lock(&b->drv_mu);
    int rc = b->drv->ops->activate(b->drv, key_id, err);
    pthread_mutex_unlock(&b->drv_mu);
    if (rc) {
        qk_err_prefix(err, "responder gateway");
        set_error(b, &b->gateway_errors, err);
        return rc;
    }
    pthread_mutex_lock(&b->mu); /* the channel handles one message at a time: found holds */
    held_clear(&b->cur);
    b->cur = b->pending[found];
    b->pending[found] = b->pending[--b->n_pending];
    memset(&b->pending[b->n_pending], 0, sizeof b->pending[0]);
    key_in_use(b);
    pthread_mutex_unlock(&b->mu);
    QK_INFO("responder: key %s in use in %s (the initiator's handshake follows)", key_id,
            b->drv->ops->name);
    return 0;
}

static int on_activated(void *ctx, const char *key_id, qk_err *err)
{
    bridge *b = ctx;
    pthread_mutex_lock(&b->mu);
    int found = pending_find(b, key_id);
    if (found < 0 && strcmp(b->cur.id, key_id) != 0) {
        pthread_mutex_unlock(&b->mu);
        return qk_err_set(err, QK_ENOTFOUND, "key %s was not offered here", key_id);
    }
    if (found >= 0) {
        held_clear(&b->cur);
        b->cur = b->pending[found];
        memset(&b->pending[found], 0, sizeof b->pending[0]);
        key_in_use(b);
    }
    for (unsigned i = 0; i < b->n_pending; i++)
        held_clear(&b->pending[i]);
    b->n_pending = 0;
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_lock(&b->drv_mu);
    int rc = b->drv->ops->retire(b->drv, key_id, err);
    pthread_mutex_unlock(&b->drv_mu);
    QK_INFO("responder: initiator activated key %s; older keys retired", key_id);
    return rc;
}

/* ---- initiator ---------------------------------------------------------------------------- */

/* The key to offer: the one offered while the responder was unreachable (for at most an
 * hour), else a new one from the KME. */
static int next_key(bridge *b, char kid[GW_KEY_ID_MAX], uint8_t **key, size_t *len, qk_err *err)
{
    pthread_mutex_lock(&b->mu);
    if (b->offered.id[0] && qk_now_s() - b->offered_s > 3600)
        held_clear(&b->offered);
    bool again = b->offered.id[0] != '\0';
    if (again && (*key = qk_secure_alloc(b->offered.len)) != NULL) {
        memcpy(*key, b->offered.key, b->offered.len);
        *len = b->offered.len;
        snprintf(kid, GW_KEY_ID_MAX, "%s", b->offered.id);
    }
    pthread_mutex_unlock(&b->mu);
    if (again) {
        if (!*key)
            return qk_err_set(err, QK_ENOMEM, "out of memory");
        QK_INFO("rotation: offering key %s again (the responder was unreachable when it was "
                "first offered)",
                kid);
        return 0;
    }
    int rc = kme_get_new(b->kme, kid, key, len, err);
    if (rc) {
        set_error(b, &b->kme_errors, err);
        return rc;
    }
    if (!chan_key_id_ok(kid)) {
        qk_secure_free(*key);
        *key = NULL;
        rc = qk_err_set(err, QK_EINVAL, "KME key ID is not usable as a PPK_ID");
        set_error(b, &b->kme_errors, err);
        return rc;
    }
    QK_INFO("rotation: key %s from the KME; offering it to the responder", kid);
    return 0;
}

/* Install and activate kid on this side. Two-phase drivers: tell the responder to activate
 * in between; *agreed becomes true once the responder may have put the key in use (it
 * answered, or the message was lost in transport): from then on the key is not rolled back. */
static int install_and_activate(bridge *b, const char *kid, const uint8_t *key, size_t len,
                                bool *agreed, qk_err *err)
{
    const gw_driver_ops *ops = b->drv->ops;
    *agreed = false;
    pthread_mutex_lock(&b->drv_mu);
    int rc = ops->install(b->drv, kid, key, len, err);
    if (rc == 0 && ops->two_phase) {
        rc = chan_send(b->chan, "activate", kid, err);
        if (rc == QK_EPEER) {
            qk_err_prefix(err, "responder did not put %s in use", kid);
            set_error(b, &b->peer_errors, err);
        } else {
            if (rc)
                QK_WARN("activate %s: %s; activating here anyway (the responder has it)", kid,
                        err->msg);
            *agreed = true;
        }
    }
    if (rc == 0 || *agreed)
        rc = ops->activate(b->drv, kid, err);
    if (rc && !*agreed && (b->cur.id[0] || !ops->two_phase)) {
        qk_err e2;
        if (ops->retire(b->drv, b->cur.id[0] ? b->cur.id : NULL, &e2))
            QK_WARN("dropping key %s: %s", kid, e2.msg);
    }
    pthread_mutex_unlock(&b->drv_mu);
    return rc;
}

static int rotate_once(bridge *b, qk_err *err)
{
    char kid[GW_KEY_ID_MAX];
    uint8_t *key = NULL;
    size_t len = 0;
    int rc = next_key(b, kid, &key, &len, err);
    if (rc)
        return rc;
    rc = chan_send(b->chan, "offer", kid, err);
    pthread_mutex_lock(&b->mu);
    if (rc && rc != QK_EPEER && !b->offered.id[0]) { /* unreachable: offer it again later */
        if (held_set(&b->offered, kid, key, len) == 0)
            b->offered_s = qk_now_s();
    } else if (!rc || rc == QK_EPEER) {
        held_clear(&b->offered);
    }
    pthread_mutex_unlock(&b->mu);
    if (rc) {
        qk_secure_free(key);
        qk_err_prefix(err, "rotation to %s stopped, current SA kept", kid);
        set_error(b, &b->peer_errors, err);
        return rc;
    }
    bool agreed = false;
    rc = install_and_activate(b, kid, key, len, &agreed, err);
    if (rc && !agreed) {
        qk_secure_free(key);
        qk_err_prefix(err, "PPK %s NOT in use, current SA kept", kid);
        set_error(b, &b->gateway_errors, err);
        return rc;
    }
    pthread_mutex_lock(&b->mu);
    int hrc = held_set(&b->cur, kid, key, len);
    if (rc == 0) {
        key_in_use(b);
    } else { /* agreed but not confirmed: both sides hold it, supervision retries */
        b->cur_installed_s = qk_now_s();
        b->blocked = false;
        b->sa_known = false;
    }
    pthread_mutex_unlock(&b->mu);
    qk_secure_free(key);
    if (rc) {
        qk_err_prefix(err, "key %s agreed with the responder, but the gateway did not confirm it",
                      kid);
        set_error(b, &b->gateway_errors, err);
        return rc;
    }
    QK_INFO("rotation: key %s in use by %s", kid, b->drv->ops->name);
    qk_err e3;
    if (chan_send(b->chan, "activated", kid, &e3))
        QK_WARN("telling the responder that %s is active: %s", kid, e3.msg);
    pthread_mutex_lock(&b->drv_mu);
    if (b->drv->ops->retire(b->drv, kid, &e3))
        QK_WARN("retiring keys older than %s: %s", kid, e3.msg);
    pthread_mutex_unlock(&b->drv_mu);
    return hrc;
}

/* ---- supervision -------------------------------------------------------------------------- */

static void reinstall_if_lost(bridge *b, held_key *h)
{
    bool present = true;
    qk_err e;
    if (!h->id[0])
        return;
    if (b->drv->ops->has_key(b->drv, h->id, &present, &e)) {
        QK_WARN("gateway key check: %s", e.msg);
        return;
    }
    if (present)
        return;
    QK_WARN("gateway lost key %s: installing it again", h->id);
    if (b->drv->ops->install(b->drv, h->id, h->key, h->len, &e))
        set_error(b, &b->gateway_errors, &e);
    else
        b->reinstalls++;
}

/* Two-phase drivers: block the tunnel (retire(NULL)) at start and when the key in use reached
 * [wireguard] key_lifetime with no successor. */
static void block_tunnel(bridge *b, const char *reason, const char *why)
{
    qk_err e;
    pthread_mutex_lock(&b->drv_mu);
    int rc = b->drv->ops->retire(b->drv, NULL, &e);
    pthread_mutex_unlock(&b->drv_mu);
    pthread_mutex_lock(&b->mu);
    b->need_block = rc != 0; /* tried again at the next supervision */
    if (rc == 0) {
        held_clear(&b->cur);
        b->blocked = true;
        b->blocked_reason = reason;
        b->blocks++;
        b->sa_known = false;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc) {
        qk_err_prefix(&e, "cannot block the tunnel");
        set_error(b, &b->gateway_errors, &e);
    } else if (why) {
        qk_err_set(&e, QK_ETIMEOUT, "%s: tunnel blocked", why);
        set_error(b, NULL, &e);
    }
}

static void expire_if_due(bridge *b)
{
    const qkb_config *c = b->cfg;
    if (!b->drv->ops->two_phase)
        return;
    pthread_mutex_lock(&b->mu);
    bool need = b->need_block;
    bool due = b->cur.id[0] && (qk_now_s() - b->cur_installed_s) * 1000 >= c->wg_key_lifetime_ms;
    char why[QK_ERR_MSG_MAX];
    const char *reason = b->last_fail_src ? b->last_fail_src : "peer";
    snprintf(why, sizeof why, "key %s reached its lifetime (%llu s) with no successor (%s)",
             b->cur.id, (unsigned long long)(c->wg_key_lifetime_ms / 1000),
             strcmp(reason, "kme") == 0    ? "KME unreachable"
             : strcmp(reason, "peer") == 0 ? "no new key from the peer bridge"
                                           : "gateway errors");
    bool warned = b->expired_warned;
    if (due && c->wg_keep_expired)
        b->expired_warned = true;
    pthread_mutex_unlock(&b->mu);
    if (need)
        block_tunnel(b, "no_key", NULL);
    else if (due && !c->wg_keep_expired)
        block_tunnel(b, reason, why);
    else if (due && !warned)
        QK_WARN("%s: kept in use (on_key_expiry = keep)", why);
}

static void supervise(bridge *b)
{
    qk_err e;
    gw_sa_status st;
    expire_if_due(b);
    pthread_mutex_lock(&b->drv_mu);
    pthread_mutex_lock(&b->mu);
    reinstall_if_lost(b, &b->cur);
    for (unsigned i = 0; i < b->n_pending; i++)
        reinstall_if_lost(b, &b->pending[i]);
    char cur[GW_KEY_ID_MAX];
    snprintf(cur, sizeof cur, "%s", b->cur.id);
    pthread_mutex_unlock(&b->mu);
    int rc = b->drv->ops->probe(b->drv, cur[0] ? cur : NULL, &st, &e);
    pthread_mutex_unlock(&b->drv_mu);
    if (rc) {
        set_error(b, &b->gateway_errors, &e);
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->sa = st;
    b->sa_known = true;
    pthread_mutex_unlock(&b->mu);
    if (st.up && st.confirmable && !st.ppk) {
        qk_err_set(&e, QK_EPEER,
                   "SA %s is up WITHOUT PPK: this must not happen (check the "
                   "gateway's ppk_required)",
                   st.sa_ref);
        set_error(b, &b->gateway_errors, &e);
    }
    if (b->cfg->role == QKB_INITIATOR && cur[0] && !st.up && qk_now_ms() >= b->next_attempt_ms) {
        QK_WARN("no SA for key %s (state %s): re-establishing it with the same PPK", cur, st.state);
        pthread_mutex_lock(&b->drv_mu);
        rc = b->drv->ops->activate(b->drv, cur, &e);
        pthread_mutex_unlock(&b->drv_mu);
        pthread_mutex_lock(&b->mu);
        b->sa_restarts++;
        pthread_mutex_unlock(&b->mu);
        if (rc) {
            qk_err_prefix(&e, "re-establishing the SA with PPK %s failed", cur);
            set_error(b, &b->gateway_errors, &e);
            if (b->drv->ops->two_phase) /* the responder may have lost it: a new key */
                bridge_request_rotation(b);
            b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : b->cfg->retry_min_ms;
            if (b->backoff_ms > b->cfg->retry_max_ms)
                b->backoff_ms = b->cfg->retry_max_ms;
            b->next_attempt_ms = qk_now_ms() + (double)b->backoff_ms;
        }
    }
}

/* ---- main loop ---------------------------------------------------------------------------- */

int bridge_run(bridge *b, volatile sig_atomic_t *stop, volatile sig_atomic_t *rotate,
               volatile sig_atomic_t *hup)
{
    const qkb_config *c = b->cfg;
    b->next_rotation_ms = qk_now_ms(); /* the first key at once */
    b->next_supervise_ms = qk_now_ms() + (double)c->supervise_ms;
    if (b->drv->ops->two_phase) /* no key agreed yet: nothing may pass */
        block_tunnel(b, "no_key", NULL);
    while (!*stop) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        double now = qk_now_ms();
        if (hup && *hup) {
            *hup = 0;
            if (qk_log_reopen() != 0)
                QK_WARN("cannot reopen the log");
        }
        if (rotate && *rotate) {
            *rotate = 0;
            bridge_request_rotation(b);
        }
        if (c->role == QKB_INITIATOR) {
            pthread_mutex_lock(&b->mu);
            bool due =
                b->rotate_req || (c->interval_ms && now >= b->next_rotation_ms) || !b->cur.id[0];
            bool may = now >= b->next_attempt_ms;
            pthread_mutex_unlock(&b->mu);
            if (due && may) {
                qk_err e;
                qk_err_clear(&e);
                int rc = rotate_once(b, &e);
                pthread_mutex_lock(&b->mu);
                if (rc == 0) {
                    b->rotate_req = false;
                    b->backoff_ms = 0;
                    b->next_attempt_ms = 0;
                    b->next_rotation_ms = qk_now_ms() + (double)c->interval_ms;
                } else {
                    b->rotations_failed++;
                    b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : c->retry_min_ms;
                    if (b->backoff_ms > c->retry_max_ms)
                        b->backoff_ms = c->retry_max_ms;
                    b->next_attempt_ms = qk_now_ms() + (double)b->backoff_ms;
                    QK_WARN("rotation failed; retrying in %llu ms",
                            (unsigned long long)b->backoff_ms);
                }
                pthread_mutex_unlock(&b->mu);
                b->next_supervise_ms = qk_now_ms(); /* refresh the SA state now */
            }
        }
        if (qk_now_ms() >= b->next_supervise_ms) {
            supervise(b);
            b->next_supervise_ms = qk_now_ms() + (double)c->supervise_ms;
        }
    }
    return 0;
}

void bridge_request_rotation(bridge *b)
{
    pthread_mutex_lock(&b->mu);
    b->rotate_req = true;
    b->next_attempt_ms = 0; /* on demand: do not wait for the backoff */
    pthread_mutex_unlock(&b->mu);
}

/* ---- status and metrics ------------------------------------------------------------------- */

static void iso_time(uint64_t s, char out[32])
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *bridge_status_json(bridge *b)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char ts[32];
    pthread_mutex_lock(&b->mu);
    double now = qk_now_ms();
    cJSON_AddStringToObject(o, "name", b->cfg->name);
    cJSON_AddStringToObject(o, "role", b->cfg->role == QKB_INITIATOR ? "initiator" : "responder");
    cJSON_AddStringToObject(o, "driver", b->drv->ops->name);
    if (b->drv->ops->two_phase) { /* the key of the last completed handshake */
        if (b->sa_known && b->sa.key_id[0])
            cJSON_AddStringToObject(o, "key_id", b->sa.key_id);
        else
            cJSON_AddNullToObject(o, "key_id");
    }
    if (b->cur.id[0])
        cJSON_AddStringToObject(o, "agreed_key_id", b->cur.id);
    else
        cJSON_AddNullToObject(o, "agreed_key_id");
    cJSON_AddBoolToObject(o, "blocked", b->blocked);
    if (b->blocked)
        cJSON_AddStringToObject(o, "blocked_reason", b->blocked_reason);
    else
        cJSON_AddNullToObject(o, "blocked_reason");
    if (b->cur.id[0]) {
        if (!b->drv->ops->two_phase)
            cJSON_AddStringToObject(o, "key_id", b->cur.id);
        iso_time(b->cur_installed_s, ts);
        cJSON_AddStringToObject(o, "installed_at", ts);
        cJSON_AddNumberToObject(o, "key_age_s", (double)(qk_now_s() - b->cur_installed_s));
    } else if (!b->drv->ops->two_phase) {
        cJSON_AddNullToObject(o, "key_id");
    }
    cJSON *sa = cJSON_AddObjectToObject(o, "sa");
    if (sa) {
        cJSON_AddStringToObject(sa, "state", b->sa_known ? b->sa.state : "UNKNOWN");
        cJSON_AddBoolToObject(sa, "up", b->sa_known && b->sa.up);
        cJSON_AddStringToObject(sa, "ref", b->sa.sa_ref);
        if (b->sa_known && b->sa.confirmable)
            cJSON_AddBoolToObject(sa, "ppk_confirmed", b->sa.ppk);
        else
            cJSON_AddNullToObject(sa, "ppk_confirmed");
        cJSON_AddStringToObject(sa, "detail", b->sa.detail);
    }
    if (b->cfg->role == QKB_INITIATOR && b->cfg->interval_ms) {
        double left = b->next_rotation_ms - now;
        if (b->rotate_req || !b->cur.id[0])
            left = b->next_attempt_ms > now ? b->next_attempt_ms - now : 0;
        iso_time(qk_now_s() + (uint64_t)(left > 0 ? left / 1000 : 0), ts);
        cJSON_AddStringToObject(o, "next_rotation", ts);
        cJSON_AddNumberToObject(o, "next_rotation_in_s",
                                left > 0 ? (double)(int64_t)(left / 1000) : 0);
    }
    cJSON_AddNumberToObject(o, "pending_keys", b->n_pending);
    if (b->last_error[0]) {
        cJSON_AddStringToObject(o, "last_error", b->last_error);
        iso_time(b->last_error_s, ts);
        cJSON_AddStringToObject(o, "last_error_at", ts);
    } else {
        cJSON_AddNullToObject(o, "last_error");
    }
    cJSON_AddNumberToObject(o, "rotations_ok", (double)b->rotations_ok);
    cJSON_AddNumberToObject(o, "rotations_failed", (double)b->rotations_failed);
    cJSON_AddNumberToObject(o, "kme_errors", (double)b->kme_errors);
    cJSON_AddNumberToObject(o, "peer_errors", (double)b->peer_errors);
    cJSON_AddNumberToObject(o, "gateway_errors", (double)b->gateway_errors);
    pthread_mutex_unlock(&b->mu);
    char *s = qk_json_print(o);
    cJSON_Delete(o);
    return s;
}

static int blocked_for(const bridge *b, const char *reason)
{
    return b->blocked && b->blocked_reason && strcmp(b->blocked_reason, reason) == 0;
}

char *bridge_metrics_text(bridge *b)
{
    size_t cap = 8192;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    pthread_mutex_lock(&b->mu);
    int n = snprintf(
        s, cap,
        "# HELP qkd_bridge_rotations_total Key rotations by result.\n"
        "# TYPE qkd_bridge_rotations_total counter\n"
        "qkd_bridge_rotations_total{result=\"ok\"} %llu\n"
        "qkd_bridge_rotations_total{result=\"failed\"} %llu\n"
        "# HELP qkd_bridge_errors_total Errors by source.\n"
        "# TYPE qkd_bridge_errors_total counter\n"
        "qkd_bridge_errors_total{source=\"kme\"} %llu\n"
        "qkd_bridge_errors_total{source=\"peer\"} %llu\n"
        "qkd_bridge_errors_total{source=\"gateway\"} %llu\n"
        "# HELP qkd_bridge_offers_total Key offers handled by the responder.\n"
        "# TYPE qkd_bridge_offers_total counter\n"
        "qkd_bridge_offers_total{result=\"ok\"} %llu\n"
        "qkd_bridge_offers_total{result=\"failed\"} %llu\n"
        "# HELP qkd_bridge_reinstalls_total Keys installed again after the gateway lost them.\n"
        "# TYPE qkd_bridge_reinstalls_total counter\n"
        "qkd_bridge_reinstalls_total %llu\n"
        "# HELP qkd_bridge_sa_restarts_total SAs re-established with the current key.\n"
        "# TYPE qkd_bridge_sa_restarts_total counter\n"
        "qkd_bridge_sa_restarts_total %llu\n"
        "# HELP qkd_bridge_sa_up 1 when the gateway reports an SA for the bridge's connection.\n"
        "# TYPE qkd_bridge_sa_up gauge\n"
        "qkd_bridge_sa_up %d\n"
        "# HELP qkd_bridge_ppk_confirmed 1 when the gateway confirms the PPK is in use.\n"
        "# TYPE qkd_bridge_ppk_confirmed gauge\n"
        "qkd_bridge_ppk_confirmed %d\n"
        "# HELP qkd_bridge_key_age_seconds Age of the key in use.\n"
        "# TYPE qkd_bridge_key_age_seconds gauge\n"
        "qkd_bridge_key_age_seconds %llu\n"
        "# HELP qkd_bridge_tunnel_blocked 1 for the reason the tunnel is blocked (WireGuard: no "
        "agreed key yet, or its lifetime ended).\n"
        "# TYPE qkd_bridge_tunnel_blocked gauge\n"
        "qkd_bridge_tunnel_blocked{reason=\"no_key\"} %d\n"
        "qkd_bridge_tunnel_blocked{reason=\"kme\"} %d\n"
        "qkd_bridge_tunnel_blocked{reason=\"peer\"} %d\n"
        "qkd_bridge_tunnel_blocked{reason=\"gateway\"} %d\n"
        "# HELP qkd_bridge_blocks_total Times the tunnel was blocked.\n"
        "# TYPE qkd_bridge_blocks_total counter\n"
        "qkd_bridge_blocks_total %llu\n",
        (unsigned long long)b->rotations_ok, (unsigned long long)b->rotations_failed,
        (unsigned long long)b->kme_errors, (unsigned long long)b->peer_errors,
        (unsigned long long)b->gateway_errors, (unsigned long long)b->offers_ok,
        (unsigned long long)b->offers_failed, (unsigned long long)b->reinstalls,
        (unsigned long long)b->sa_restarts, b->sa_known && b->sa.up ? 1 : 0,
        b->sa_known && b->sa.up && b->sa.ppk ? 1 : 0,
        (unsigned long long)(b->cur.id[0] ? qk_now_s() - b->cur_installed_s : 0),
        blocked_for(b, "no_key"), blocked_for(b, "kme"), blocked_for(b, "peer"),
        blocked_for(b, "gateway"), (unsigned long long)b->blocks);
    pthread_mutex_unlock(&b->mu);
    if (n < 0 || (size_t)n >= cap) {
        free(s);
        return NULL;
    }
    return s;
}

/* ---- life cycle --------------------------------------------------------------------------- */

int bridge_new(const qkb_config *cfg, bridge **out, qk_err *err)
{
    bridge *b = calloc(1, sizeof *b);
    if (!b)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    b->cfg = cfg;
    /* recursive: supervision reports errors while it holds the state lock */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&b->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_mutex_init(&b->drv_mu, NULL);
    int rc = gw_driver_new(cfg, &b->drv, err);
    if (rc == 0)
        rc = kme_source_new(cfg, &b->kme, err);
    if (rc == 0 && cfg->role == QKB_INITIATOR)
        rc = chan_client_new(cfg, &b->chan, err);
    if (rc == 0 && cfg->role == QKB_RESPONDER) {
        chan_handlers h = {.offer = on_offer,
                           .activated = on_activated,
                           .activate = b->drv->ops->two_phase ? on_activate : NULL,
                           .ctx = b};
        rc = chan_server_start(cfg, &h, &b->chan_srv, err);
    }
    if (rc == 0)
        rc = bridge_admin_start(b, cfg, &b->admin, err);
    if (rc) {
        bridge_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

uint16_t bridge_admin_port(const bridge *b)
{
    return bridge_admin_listen_port(b->admin);
}

uint16_t bridge_channel_port(const bridge *b)
{
    return b->chan_srv ? chan_server_port(b->chan_srv) : 0;
}

void bridge_free(bridge *b)
{
    if (!b)
        return;
    bridge_admin_stop(b->admin);
    chan_server_stop(b->chan_srv);
    chan_client_free(b->chan);
    kme_source_free(b->kme);
    if (b->drv)
        b->drv->ops->destroy(b->drv);
    held_clear(&b->cur);
    held_clear(&b->offered);
    for (unsigned i = 0; i < b->n_pending; i++)
        held_clear(&b->pending[i]);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->drv_mu);
    free(b);
}
