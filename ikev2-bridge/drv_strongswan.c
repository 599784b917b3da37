/* drv_strongswan.c - the strongSwan gateway driver over VICI.
 *
 * install:  load-shared {id = qkd-<kid>, type = PPK, data = key, owners = [<kid>]}
 * activate: load-conn with ppk_id = <kid>, ppk_required = yes; initiate a NEW IKE_SA (a reauth
 *           would keep the old peer_cfg and PPK_ID); list-sas must show the new SA ESTABLISHED
 *           with ppk = yes; then terminate the previous IKE_SAs. An SA that came up without
 *           PPK is terminated at once and reported as an error: never a silent fall-back.
 * retire:   unload-shared every qkd-* key but the one kept (get-shared lists them).
 * The IKE PSK (from a 0600 file) and the base connection are (re)loaded by the driver, so a
 * charon restart or `swanctl --load-creds` is repaired on the next supervision tick. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_drivers.h"
#include "log.h"
#include "secbuf.h"
#include "vici_client.h"

#define SW_KEY_PREFIX "qkd-"
#define SW_MAX_SAS    64
#define SW_CALL_MS    10000

typedef struct {
    const qkb_config *cfg;
    uint8_t *ike_psk; /* secure memory */
    size_t ike_psk_len;
    char ppk_id[GW_KEY_ID_MAX]; /* ppk_id of the loaded connection ("" = none) */
    bool base_loaded;
} sw_impl;

static int sw_open(sw_impl *s, vici_conn **c, qk_err *err)
{
    int rc = vici_connect(s->cfg->sw_socket, 3000, c, err);
    if (rc)
        qk_err_prefix(err, "strongSwan");
    return rc;
}

/* One command on a fresh connection; returns 0 only when charon answered success = yes. */
static int sw_cmd(sw_impl *s, const char *cmd, vici_builder *b, int timeout_ms, qk_err *err)
{
    vici_conn *c = NULL;
    int rc = sw_open(s, &c, err);
    if (rc)
        return rc;
    vici_node *resp = NULL;
    rc = vici_call(c, cmd, b, timeout_ms, &resp, err);
    vici_close(c);
    if (rc)
        return qk_err_prefix(err, "strongSwan %s", cmd);
    if (!vici_success(resp)) {
        char em[200];
        vici_errmsg(resp, em, sizeof em);
        vici_tree_free(resp);
        return qk_err_set(err, QK_EPEER, "strongSwan %s failed: %s", cmd, em[0] ? em : "no reason");
    }
    vici_tree_free(resp);
    return 0;
}

static void add_list(vici_builder *b, const char *name, const qkb_list *l)
{
    if (l->n == 0)
        return;
    vici_list_start(b, name);
    for (int i = 0; i < l->n; i++)
        vici_list_item_str(b, l->items[i]);
    vici_list_end(b);
}

/* load-conn of the bridge's connection; ppk_id NULL on the responder (it accepts any PPK_ID
 * whose key the bridge loaded). ppk_required is always yes. */
static int sw_load_conn(sw_impl *s, const char *ppk_id, qk_err *err)
{
    const qkb_config *c = s->cfg;
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_section_start(&b, c->sw_conn);
    vici_kv_str(&b, "version", "2");
    add_list(&b, "local_addrs", &c->sw_local_addrs);
    add_list(&b, "remote_addrs", &c->sw_remote_addrs);
    add_list(&b, "proposals", &c->sw_proposals);
    if (ppk_id)
        vici_kv_str(&b, "ppk_id", ppk_id);
    vici_kv_str(&b, "ppk_required", "yes");
    if (c->sw_childless)
        vici_kv_str(&b, "childless", "force");
    vici_section_start(&b, "local");
    vici_kv_str(&b, "auth", "psk");
    vici_kv_str(&b, "id", c->sw_local_id);
    vici_section_end(&b);
    vici_section_start(&b, "remote");
    vici_kv_str(&b, "auth", "psk");
    vici_kv_str(&b, "id", c->sw_remote_id);
    vici_section_end(&b);
    if (c->sw_child[0]) {
        vici_section_start(&b, "children");
        vici_section_start(&b, c->sw_child);
        add_list(&b, "local_ts", &c->sw_local_ts);
        add_list(&b, "remote_ts", &c->sw_remote_ts);
        add_list(&b, "esp_proposals", &c->sw_esp_proposals);
        vici_section_end(&b);
        vici_section_end(&b);
    }
    vici_section_end(&b);
    int rc = sw_cmd(s, "load-conn", &b, SW_CALL_MS, err);
    vici_builder_free(&b);
    if (rc == 0)
        snprintf(s->ppk_id, sizeof s->ppk_id, "%s", ppk_id ? ppk_id : "");
    return rc;
}

/* The IKE PSK and (responder) the connection: loaded once, and again after charon lost them. */
static int sw_base(sw_impl *s, bool force, qk_err *err)
{
    if (s->base_loaded && !force)
        return 0;
    const qkb_config *c = s->cfg;
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_kv_str(&b, "id", SW_KEY_PREFIX "ike-psk");
    vici_kv_str(&b, "type", "IKE");
    vici_kv(&b, "data", s->ike_psk, s->ike_psk_len);
    vici_list_start(&b, "owners");
    vici_list_item_str(&b, c->sw_local_id);
    vici_list_item_str(&b, c->sw_remote_id);
    vici_list_end(&b);
    int rc = sw_cmd(s, "load-shared", &b, SW_CALL_MS, err);
    vici_builder_free(&b);
    if (rc)
        return rc;
    if (c->role == QKB_RESPONDER)
        rc = sw_load_conn(s, NULL, err);
    else if (s->ppk_id[0])
        rc = sw_load_conn(s, s->ppk_id, err);
    if (rc == 0)
        s->base_loaded = true;
    return rc;
}

static int sw_install(gw_driver *d, const char *key_id, const uint8_t *key, size_t len, qk_err *err)
{
    sw_impl *s = d->impl;
    int rc = sw_base(s, false, err);
    if (rc)
        return rc;
    char id[GW_KEY_ID_MAX + 8];
    snprintf(id, sizeof id, SW_KEY_PREFIX "%s", key_id);
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_kv_str(&b, "id", id);
    vici_kv_str(&b, "type", "PPK");
    vici_kv(&b, "data", key, len);
    vici_list_start(&b, "owners");
    vici_list_item_str(&b, key_id);
    vici_list_end(&b);
    rc = sw_cmd(s, "load-shared", &b, SW_CALL_MS, err);
    vici_builder_free(&b); /* wipes the key bytes */
    return rc;
}

/* ---- list-sas -------------------------------------------------------------------------- */

typedef struct {
    unsigned long id;
    char state[32];
    bool ppk;
} sw_sa;

typedef struct {
    const char *conn;
    sw_sa sas[SW_MAX_SAS];
    int n;
} sa_list;

static int on_sa(void *ctx, const vici_node *ev)
{
    sa_list *l = ctx;
    for (const vici_node *sec = ev->child; sec; sec = sec->next) {
        if (sec->type != VICI_N_SECTION || strcmp(sec->name, l->conn) != 0)
            continue;
        const char *uid = vici_get_str(sec, "uniqueid");
        const char *st = vici_get_str(sec, "state");
        const char *ppk = vici_get_str(sec, "ppk");
        char *end = NULL;
        unsigned long id = uid ? strtoul(uid, &end, 10) : 0;
        if (!uid || !end || *end || id == 0 || l->n >= SW_MAX_SAS)
            continue;
        sw_sa *sa = &l->sas[l->n++];
        sa->id = id;
        vici_printable((const uint8_t *)(st ? st : "?"), st ? strlen(st) : 1, sa->state,
                       sizeof sa->state);
        sa->ppk = ppk && strcmp(ppk, "yes") == 0;
    }
    return 0;
}

static int sw_list_sas(sw_impl *s, sa_list *l, qk_err *err)
{
    memset(l, 0, sizeof *l);
    l->conn = s->cfg->sw_conn;
    vici_conn *c = NULL;
    int rc = sw_open(s, &c, err);
    if (rc)
        return rc;
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_kv_str(&b, "ike", s->cfg->sw_conn);
    vici_node *resp = NULL;
    rc = vici_call_stream(c, "list-sas", &b, "list-sa", on_sa, l, SW_MAX_SAS * 4, SW_CALL_MS, &resp,
                          err);
    vici_builder_free(&b);
    vici_close(c);
    vici_tree_free(resp);
    return rc ? qk_err_prefix(err, "strongSwan list-sas") : 0;
}

static int sw_terminate(sw_impl *s, unsigned long id, qk_err *err)
{
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_kv_u64(&b, "ike-id", id);
    vici_kv_str(&b, "timeout", "5000");
    int rc = sw_cmd(s, "terminate", &b, 8000, err);
    vici_builder_free(&b);
    return rc;
}

static bool in_list(const sa_list *l, unsigned long id)
{
    for (int i = 0; i < l->n; i++)
        if (l->sas[i].id == id)
            return true;
    return false;
}

static int sw_activate(gw_driver *d, const char *key_id, qk_err *err)
{
    sw_impl *s = d->impl;
    const qkb_config *c = s->cfg;
    int rc = sw_base(s, false, err);
    if (rc)
        return rc;
    rc = sw_load_conn(s, key_id, err);
    if (rc)
        return rc;
    sa_list before, after;
    if ((rc = sw_list_sas(s, &before, err)))
        return rc;
    vici_builder b;
    vici_builder_init(&b, 0);
    if (c->sw_child[0] && !c->sw_childless)
        vici_kv_str(&b, "child", c->sw_child);
    vici_kv_str(&b, "ike", c->sw_conn);
    vici_kv_u64(&b, "timeout", c->sw_initiate_timeout_ms);
    vici_kv_str(&b, "init-limits", "no");
    qk_err ierr;
    qk_err_clear(&ierr);
    int irc = sw_cmd(s, "initiate", &b, (int)c->sw_initiate_timeout_ms + 5000, &ierr);
    vici_builder_free(&b);
    if ((rc = sw_list_sas(s, &after, err)))
        return rc;
    unsigned long fresh = 0;
    for (int i = 0; i < after.n; i++) {
        const sw_sa *sa = &after.sas[i];
        if (in_list(&before, sa->id))
            continue;
        if (strcmp(sa->state, "ESTABLISHED") == 0 && sa->ppk && !fresh) {
            fresh = sa->id;
            continue;
        }
        if (strcmp(sa->state, "ESTABLISHED") == 0 && !sa->ppk) {
            /* ppk_required = yes makes this impossible; if it ever happens, refuse loudly. */
            QK_ERROR("strongSwan IKE_SA #%lu came up WITHOUT PPK (key %s): terminating it", sa->id,
                     key_id);
            qk_err t;
            sw_terminate(s, sa->id, &t);
        }
    }
    if (!fresh) {
        if (irc)
            return qk_err_set(err, QK_EPEER,
                              "no IKE SA with PPK '%s': %s (tunnel not brought up without PPK)",
                              key_id, ierr.msg);
        return qk_err_set(err, QK_EPEER,
                          "strongSwan did not confirm an IKE SA using PPK '%s' (ppk=yes "
                          "missing); tunnel not brought up without PPK",
                          key_id);
    }
    QK_INFO("strongSwan IKE_SA #%lu established with PPK_ID '%s' (ppk=yes)", fresh, key_id);
    for (int i = 0; i < before.n; i++) {
        qk_err t;
        if (sw_terminate(s, before.sas[i].id, &t))
            QK_WARN("terminating previous IKE_SA #%lu: %s", before.sas[i].id, t.msg);
        else
            QK_INFO("terminated previous IKE_SA #%lu", before.sas[i].id);
    }
    return 0;
}

/* ---- get-shared / unload ---------------------------------------------------------------- */

typedef struct {
    char ids[64][GW_KEY_ID_MAX + 8];
    int n;
} key_list;

static int sw_get_shared(sw_impl *s, key_list *kl, qk_err *err)
{
    memset(kl, 0, sizeof *kl);
    vici_conn *c = NULL;
    int rc = sw_open(s, &c, err);
    if (rc)
        return rc;
    vici_node *resp = NULL;
    rc = vici_call(c, "get-shared", NULL, SW_CALL_MS, &resp, err);
    vici_close(c);
    if (rc)
        return qk_err_prefix(err, "strongSwan get-shared");
    const vici_node *l = vici_child(resp, "keys", VICI_N_LIST);
    for (const vici_node *it = l ? l->child : NULL; it && kl->n < 64; it = it->next)
        vici_printable(it->value, it->value_len, kl->ids[kl->n++], sizeof kl->ids[0]);
    vici_tree_free(resp);
    return 0;
}

static int sw_retire(gw_driver *d, const char *keep_id, qk_err *err)
{
    sw_impl *s = d->impl;
    key_list kl;
    int rc = sw_get_shared(s, &kl, err);
    if (rc)
        return rc;
    char keep[GW_KEY_ID_MAX + 8] = "";
    if (keep_id)
        snprintf(keep, sizeof keep, SW_KEY_PREFIX "%s", keep_id);
    int bad = 0;
    for (int i = 0; i < kl.n; i++) {
        if (strncmp(kl.ids[i], SW_KEY_PREFIX, strlen(SW_KEY_PREFIX)) != 0 ||
            strcmp(kl.ids[i], SW_KEY_PREFIX "ike-psk") == 0 || strcmp(kl.ids[i], keep) == 0)
            continue;
        vici_builder b;
        vici_builder_init(&b, 0);
        vici_kv_str(&b, "id", kl.ids[i]);
        qk_err e;
        if (sw_cmd(s, "unload-shared", &b, SW_CALL_MS, &e)) {
            bad++;
            *err = e;
        } else {
            QK_INFO("strongSwan: unloaded PPK %s", kl.ids[i]);
        }
        vici_builder_free(&b);
    }
    return bad ? err->code : 0;
}

static int sw_has_key(gw_driver *d, const char *key_id, bool *present, qk_err *err)
{
    sw_impl *s = d->impl;
    key_list kl;
    int rc = sw_get_shared(s, &kl, err);
    if (rc)
        return rc;
    char want[GW_KEY_ID_MAX + 8];
    snprintf(want, sizeof want, SW_KEY_PREFIX "%s", key_id);
    bool ike = false;
    *present = false;
    for (int i = 0; i < kl.n; i++) {
        if (strcmp(kl.ids[i], want) == 0)
            *present = true;
        if (strcmp(kl.ids[i], SW_KEY_PREFIX "ike-psk") == 0)
            ike = true;
    }
    if (!ike || !*present) {
        /* charon restarted or its credentials were reloaded: the base goes in again now,
         * the PPK through the daemon's install. */
        QK_WARN("strongSwan lost the bridge's credentials (ike-psk %s, PPK %s): reloading",
                ike ? "present" : "missing", *present ? "present" : "missing");
        return sw_base(s, true, err);
    }
    return 0;
}

static int sw_probe(gw_driver *d, const char *key_id, gw_sa_status *st, qk_err *err)
{
    sw_impl *s = d->impl;
    memset(st, 0, sizeof *st);
    st->confirmable = true;
    sa_list l;
    int rc = sw_list_sas(s, &l, err);
    if (rc)
        return rc;
    snprintf(st->state, sizeof st->state, "NONE");
    for (int i = 0; i < l.n; i++) {
        const sw_sa *sa = &l.sas[i];
        bool est = strcmp(sa->state, "ESTABLISHED") == 0;
        if (!st->up || est) {
            snprintf(st->state, sizeof st->state, "%s", sa->state);
            snprintf(st->sa_ref, sizeof st->sa_ref, "%lu", sa->id);
            st->ppk = sa->ppk;
            st->up = est;
        }
        if (est && sa->ppk)
            break;
    }
    snprintf(st->detail, sizeof st->detail, "%d IKE SA(s) for connection %s; ppk_id %s", l.n,
             s->cfg->sw_conn, s->ppk_id[0] ? s->ppk_id : "(any, responder)");
    (void)key_id;
    return 0;
}

static void sw_destroy(gw_driver *d)
{
    sw_impl *s = d->impl;
    if (s) {
        qk_secure_free(s->ike_psk);
        free(s);
    }
    free(d);
}

static const gw_driver_ops sw_ops = {
    .name = "strongswan",
    .install = sw_install,
    .activate = sw_activate,
    .retire = sw_retire,
    .probe = sw_probe,
    .has_key = sw_has_key,
    .destroy = sw_destroy,
};

int drv_strongswan_new(const qkb_config *cfg, gw_driver **out, qk_err *err)
{
    gw_driver *d = calloc(1, sizeof *d);
    sw_impl *s = calloc(1, sizeof *s);
    if (!d || !s) {
        free(d);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->ike_psk = qk_secure_read_file(cfg->sw_ike_psk_file, 4096, 1, &s->ike_psk_len);
    if (!s->ike_psk || s->ike_psk_len == 0) {
        int e = errno;
        free(s);
        free(d);
        return qk_err_set(err, QK_EINVAL, "[strongswan] ike_psk_file %s: %s", cfg->sw_ike_psk_file,
                          e == EPERM ? "must not be group/world readable" : strerror(e));
    }
    /* A trailing newline is not part of the PSK. */
    while (s->ike_psk_len &&
           (s->ike_psk[s->ike_psk_len - 1] == '\n' || s->ike_psk[s->ike_psk_len - 1] == '\r'))
        s->ike_psk_len--;
    d->ops = &sw_ops;
    d->impl = s;
    *out = d;
    return 0;
}
