/* drv_libreswan.c - the libreswan gateway driver.
 *
 * The driver owns one secrets file (mode 0600; include it from ipsec.secrets, or name it with
 * pluto --secretsfile) holding one PPKS line per key the bridge holds:
 *     <local_id> <remote_id> : PPKS "<key ID>" 0x<key hex>
 * After every change it runs `whack --ctlsocket C --rereadsecrets`. The connection itself is
 * the operator's and must say ppk=insist (a responder looks the PPK up by PPK_ID; libreswan 4.x
 * as initiator takes the first PPKS entry matching the IDs, so on activate the file holds the
 * new key only). The old file content is zeroed before each replacement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_drivers.h"
#include "codec.h"
#include "log.h"
#include "secbuf.h"

#define LS_MAX_KEYS 64
#define LS_KEY_MAX  128

typedef struct {
    char id[GW_KEY_ID_MAX];
    uint8_t *key; /* secure memory */
    size_t len;
} ls_key;

typedef struct {
    const qkb_config *cfg;
    ls_key keys[LS_MAX_KEYS];
    int n;
    char active[GW_KEY_ID_MAX];
} ls_impl;

static bool id_ok(const char *s)
{
    size_t l = strlen(s);
    if (l == 0 || l >= GW_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < l; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

static int whack(ls_impl *s, const char *a1, const char *a2, const char *a3, char *out, size_t cap,
                 qk_err *err)
{
    char *argv[8] = {(char *)s->cfg->ls_whack,
                     "--ctlsocket",
                     (char *)s->cfg->ls_ctlsocket,
                     (char *)a1,
                     (char *)a2,
                     (char *)a3,
                     NULL};
    char buf[2048];
    int rc = run_cmd(argv, NULL, 0, out ? out : buf, out ? cap : sizeof buf, 30000, err);
    if (rc < 0)
        return qk_err_prefix(err, "libreswan whack %s", a1);
    if (rc != 0)
        return qk_err_set(err, QK_EPEER, "libreswan whack %s exited with %d", a1, rc);
    return 0;
}

/* Rewrite the secrets file with the keys selected (only_id NULL: all) and reread. */
static int ls_sync(ls_impl *s, const char *only_id, qk_err *err)
{
    size_t cap = 256 + (size_t)s->n * (2 * GW_KEY_ID_MAX + 2 * QKB_STR + 2 * LS_KEY_MAX + 32);
    char *text = qk_secure_alloc(cap);
    if (!text)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    size_t n = (size_t)snprintf(text, cap, "# written by qkd-bridge; holds keys (0600)\n");
    for (int i = 0; i < s->n; i++) {
        if (only_id && strcmp(only_id, s->keys[i].id) != 0)
            continue;
        char hex[2 * LS_KEY_MAX + 1];
        qk_hex_encode(s->keys[i].key, s->keys[i].len, hex, sizeof hex);
        int w = snprintf(text + n, cap - n, "%s %s : PPKS \"%s\" 0x%s\n", s->cfg->ls_local_id,
                         s->cfg->ls_remote_id, s->keys[i].id, hex);
        qk_wipe(hex, sizeof hex);
        if (w < 0 || (size_t)w >= cap - n) {
            qk_secure_free(text);
            return qk_err_set(err, QK_ELIMIT, "secrets text too long");
        }
        n += (size_t)w;
    }
    int rc = secret_file_replace(s->cfg->ls_secrets_file, text, n, err);
    qk_secure_free(text);
    if (rc)
        return rc;
    return whack(s, "--rereadsecrets", NULL, NULL, NULL, 0, err);
}

static int ls_install(gw_driver *d, const char *key_id, const uint8_t *key, size_t len, qk_err *err)
{
    ls_impl *s = d->impl;
    if (!id_ok(key_id))
        return qk_err_set(err, QK_EINVAL, "key ID not usable as a libreswan PPK_ID");
    if (len == 0 || len > LS_KEY_MAX)
        return qk_err_set(err, QK_EINVAL, "key length %zu not supported", len);
    int slot = -1;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->keys[i].id, key_id) == 0)
            slot = i;
    if (slot < 0) {
        if (s->n >= LS_MAX_KEYS || s->n >= (int)s->cfg->max_keys)
            return qk_err_set(err, QK_ELIMIT, "libreswan driver holds too many keys");
        slot = s->n++;
    } else {
        qk_secure_free(s->keys[slot].key);
    }
    ls_key *k = &s->keys[slot];
    snprintf(k->id, sizeof k->id, "%s", key_id);
    k->key = qk_secure_alloc(len);
    if (!k->key) {
        s->n--;
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    memcpy(k->key, key, len);
    k->len = len;
    return ls_sync(s, NULL, err);
}

static void drop(ls_impl *s, int i)
{
    qk_secure_free(s->keys[i].key);
    s->keys[i] = s->keys[s->n - 1];
    memset(&s->keys[s->n - 1], 0, sizeof s->keys[0]);
    s->n--;
}

static int ls_retire(gw_driver *d, const char *keep_id, qk_err *err)
{
    ls_impl *s = d->impl;
    for (int i = s->n - 1; i >= 0; i--)
        if (!keep_id || strcmp(s->keys[i].id, keep_id) != 0)
            drop(s, i);
    return ls_sync(s, NULL, err);
}

static int ls_activate(gw_driver *d, const char *key_id, qk_err *err)
{
    ls_impl *s = d->impl;
    if (!s->cfg->ls_initiate) {
        snprintf(s->active, sizeof s->active, "%s", key_id);
        return 0;
    }
    /* libreswan 4.x as initiator sends the first PPKS matching the IDs: leave only this one. */
    int rc = ls_sync(s, key_id, err);
    if (rc)
        return rc;
    char out[4096];
    rc = whack(s, "--name", s->cfg->ls_conn, "--initiate", out, sizeof out, err);
    if (rc)
        return qk_err_set(err, QK_EPEER,
                          "libreswan could not establish %s with PPK '%s' (ppk=insist: no "
                          "tunnel without PPK)",
                          s->cfg->ls_conn, key_id);
    snprintf(s->active, sizeof s->active, "%s", key_id);
    return 0;
}

static int ls_probe(gw_driver *d, const char *key_id, gw_sa_status *st, qk_err *err)
{
    ls_impl *s = d->impl;
    memset(st, 0, sizeof *st);
    st->confirmable = false;
    char out[8192];
    if (whack(s, "--status", NULL, NULL, out, sizeof out, err) != 0)
        return err->code;
    bool est = strstr(out, "established IKE SA") || strstr(out, "ESTABLISHED_IKE_SA") ||
               strstr(out, "STATE_V2_ESTABLISHED_IKE_SA");
    st->up = est;
    snprintf(st->state, sizeof st->state, "%s", est ? "ESTABLISHED" : "NONE");
    snprintf(st->detail, sizeof st->detail,
             "libreswan holds %d PPK(s); PPK use is enforced by ppk=insist", s->n);
    (void)key_id;
    return 0;
}

static int ls_has_key(gw_driver *d, const char *key_id, bool *present, qk_err *err)
{
    ls_impl *s = d->impl;
    *present = false;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->keys[i].id, key_id) == 0)
            *present = true;
    (void)err;
    return 0;
}

static void ls_destroy(gw_driver *d)
{
    ls_impl *s = d->impl;
    if (s) {
        while (s->n)
            drop(s, s->n - 1);
        qk_err e;
        if (secret_file_wipe(s->cfg->ls_secrets_file, &e))
            QK_WARN("libreswan secrets file: %s", e.msg);
        free(s);
    }
    free(d);
}

static const gw_driver_ops ls_ops = {
    .name = "libreswan",
    .install = ls_install,
    .activate = ls_activate,
    .retire = ls_retire,
    .probe = ls_probe,
    .has_key = ls_has_key,
    .destroy = ls_destroy,
};

int drv_libreswan_new(const qkb_config *cfg, gw_driver **out, qk_err *err)
{
    if (!id_ok(cfg->ls_local_id) || !id_ok(cfg->ls_remote_id))
        return qk_err_set(err, QK_EINVAL, "[libreswan] local_id/remote_id must be plain tokens");
    gw_driver *d = calloc(1, sizeof *d);
    ls_impl *s = calloc(1, sizeof *s);
    if (!d || !s) {
        free(d);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    d->ops = &ls_ops;
    d->impl = s;
    *out = d;
    return 0;
}
