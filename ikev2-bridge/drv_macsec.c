/* drv_macsec.c - the MACsec gateway driver.
 *
 * The QKD key is the MKA CAK (128 or 256 bits, exactly [macsec] cak_bits) and the key ID gives
 * the CKN (a UUID's 16 octets). Both bridges activate the new key (responder_activates):
 *   mode wpa_supplicant: write the MKA PSK configuration (0600, old content zeroed) and send
 *     RECONFIGURE on wpa_supplicant's control socket;
 *   mode static: program SAKs derived from the key with `ip -force -batch -` (commands on
 *     stdin, so no key reaches a command line); AN = CKN[0] mod 4, moved on when it equals
 *     the AN in use.
 * A MACsec data plane needs a kernel with CONFIG_MACSEC; see ikev2-bridge/README.md. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge_drivers.h"
#include "log.h"
#include "macsec_keys.h"
#include "secbuf.h"

typedef struct {
    const qkb_config *cfg;
    char staged_id[GW_KEY_ID_MAX];
    uint8_t *staged; /* secure memory, cak_bits/8 */
    size_t staged_len;
    char active_id[GW_KEY_ID_MAX];
    int an; /* static mode: AN in use, -1 none */
} ms_impl;

/* wpa_supplicant control interface: a datagram to ctrl_interface/IFNAME, reply within 3 s. */
static int wpa_ctrl(const qkb_config *c, const char *cmd, char *reply, size_t cap, qk_err *err)
{
    struct sockaddr_un dst = {.sun_family = AF_UNIX}, src = {.sun_family = AF_UNIX};
    if (snprintf(dst.sun_path, sizeof dst.sun_path, "%s/%s", c->ms_ctrl_interface,
                 c->ms_interface) >= (int)sizeof dst.sun_path)
        return qk_err_set(err, QK_EINVAL, "control socket path too long");
    static unsigned seq;
    snprintf(src.sun_path, sizeof src.sun_path, "/tmp/qkd-bridge-wpa-%d-%u", (int)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qk_err_set(err, QK_EIO, "socket: %s", strerror(errno));
    unlink(src.sun_path);
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        rc =
            qk_err_set(err, QK_EIO, "wpa_supplicant control %s: %s", dst.sun_path, strerror(errno));
        goto out;
    }
    if (send(fd, cmd, strlen(cmd), 0) < 0) {
        rc = qk_err_set(err, QK_EIO, "wpa_supplicant control send: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < 16; i++) { /* skip unsolicited "<N>..." event messages, bounded */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) <= 0) {
            rc = qk_err_set(err, QK_ETIMEOUT, "wpa_supplicant did not answer %s", cmd);
            goto out;
        }
        ssize_t n = recv(fd, reply, cap - 1, 0);
        if (n < 0) {
            rc = qk_err_set(err, QK_EIO, "wpa_supplicant control recv: %s", strerror(errno));
            goto out;
        }
        reply[n] = '\0';
        if (reply[0] != '<')
            goto out;
    }
    rc = qk_err_set(err, QK_EIO, "wpa_supplicant: no reply among its events");
out:
    close(fd);
    unlink(src.sun_path);
    return rc;
}

static int ms_install(gw_driver *d, const char *key_id, const uint8_t *key, size_t len, qk_err *err)
{
    ms_impl *s = d->impl;
    uint8_t ckn[MACSEC_CKN_MAX];
    size_t ckn_len;
    int rc = macsec_cak_check(len, s->cfg->ms_cak_bits, err);
    if (rc == 0)
        rc = macsec_ckn_from_key_id(key_id, ckn, &ckn_len, err);
    if (rc)
        return rc;
    qk_secure_free(s->staged);
    s->staged = qk_secure_alloc(len);
    if (!s->staged)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    memcpy(s->staged, key, len);
    s->staged_len = len;
    snprintf(s->staged_id, sizeof s->staged_id, "%s", key_id);
    return 0;
}

static int activate_wpa(ms_impl *s, const uint8_t *ckn, size_t ckn_len, qk_err *err)
{
    const qkb_config *c = s->cfg;
    macsec_wpa_params p = {.ctrl_interface = c->ms_ctrl_interface,
                           .port = c->ms_port,
                           .priority = c->ms_priority,
                           .replay_protect = 1};
    size_t cap = 2048;
    char *text = qk_secure_alloc(cap);
    if (!text)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    long n = macsec_wpa_render(&p, s->staged, s->staged_len, ckn, ckn_len, text, cap, err);
    int rc = n < 0 ? (int)n : secret_file_replace(c->ms_wpa_conf, text, (size_t)n, err);
    qk_secure_free(text);
    if (rc)
        return rc;
    char reply[256];
    rc = wpa_ctrl(c, "RECONFIGURE", reply, sizeof reply, err);
    if (rc)
        return qk_err_prefix(err, "configuration written, but");
    if (strncmp(reply, "OK", 2) != 0)
        return qk_err_set(err, QK_EPEER, "wpa_supplicant refused RECONFIGURE");
    return 0;
}

static int activate_static(ms_impl *s, const uint8_t *ckn, size_t ckn_len, qk_err *err)
{
    const qkb_config *c = s->cfg;
    macsec_static_params p = {.dev = c->ms_device, .peer_port = c->ms_peer_port};
    memcpy(p.local_mac, c->ms_local_mac, 6);
    memcpy(p.peer_mac, c->ms_peer_mac, 6);
    p.an = ckn[0] % 4;
    if ((int)p.an == s->an)
        p.an = (p.an + 1) % 4;
    size_t cap = 2048;
    char *batch = qk_secure_alloc(cap);
    if (!batch)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    long n = macsec_static_batch(&p, s->staged, s->staged_len, ckn, ckn_len, batch, cap, err);
    int rc = (int)n;
    if (n > 0) {
        char *argv[] = {(char *)c->ms_ip, "-force", "-batch", "-", NULL};
        char out[1024];
        rc = run_cmd(argv, batch, (size_t)n, out, sizeof out, 10000, err);
        if (rc > 0)
            rc = qk_err_set(err, QK_EPEER, "ip macsec failed (exit %d): %.200s", rc, out);
    }
    qk_secure_free(batch);
    if (rc == 0)
        s->an = (int)p.an;
    return rc;
}

static int ms_activate(gw_driver *d, const char *key_id, qk_err *err)
{
    ms_impl *s = d->impl;
    if (!s->staged || strcmp(s->staged_id, key_id) != 0)
        return qk_err_set(err, QK_ENOTFOUND, "MACsec: key %s was not installed", key_id);
    uint8_t ckn[MACSEC_CKN_MAX];
    size_t ckn_len;
    int rc = macsec_ckn_from_key_id(key_id, ckn, &ckn_len, err);
    if (rc)
        return rc;
    rc = s->cfg->ms_mode == QKB_MACSEC_WPA ? activate_wpa(s, ckn, ckn_len, err)
                                           : activate_static(s, ckn, ckn_len, err);
    if (rc == 0)
        snprintf(s->active_id, sizeof s->active_id, "%s", key_id);
    return rc;
}

static int ms_retire(gw_driver *d, const char *keep_id, qk_err *err)
{
    ms_impl *s = d->impl;
    if (s->staged && (!keep_id || strcmp(keep_id, s->staged_id) != 0)) {
        qk_secure_free(s->staged);
        s->staged = NULL;
        s->staged_id[0] = '\0';
    }
    (void)err;
    return 0;
}

static int ms_probe(gw_driver *d, const char *key_id, gw_sa_status *st, qk_err *err)
{
    ms_impl *s = d->impl;
    memset(st, 0, sizeof *st);
    st->confirmable = false;
    st->up = s->active_id[0] != '\0';
    snprintf(st->state, sizeof st->state, "%s", st->up ? "CONFIGURED" : "NONE");
    if (s->cfg->ms_mode == QKB_MACSEC_WPA && st->up) {
        char reply[2048];
        qk_err e;
        if (wpa_ctrl(s->cfg, "PING", reply, sizeof reply, &e) != 0 ||
            strncmp(reply, "PONG", 4) != 0) {
            snprintf(st->state, sizeof st->state, "NO-SUPPLICANT");
            st->up = false;
        }
    }
    snprintf(st->detail, sizeof st->detail, "MACsec %s: CAK/CKN from key %s",
             s->cfg->ms_mode == QKB_MACSEC_WPA ? "MKA PSK" : "static SAK",
             s->active_id[0] ? s->active_id : "(none)");
    (void)key_id;
    (void)err;
    return 0;
}

static int ms_has_key(gw_driver *d, const char *key_id, bool *present, qk_err *err)
{
    ms_impl *s = d->impl;
    *present = strcmp(s->active_id, key_id) == 0 || strcmp(s->staged_id, key_id) == 0;
    (void)err;
    return 0;
}

static void ms_destroy(gw_driver *d)
{
    ms_impl *s = d->impl;
    if (s) {
        qk_secure_free(s->staged);
        free(s);
    }
    free(d);
}

static const gw_driver_ops ms_ops = {
    .name = "macsec",
    .responder_activates = true,
    .install = ms_install,
    .activate = ms_activate,
    .retire = ms_retire,
    .probe = ms_probe,
    .has_key = ms_has_key,
    .destroy = ms_destroy,
};

int drv_macsec_new(const qkb_config *cfg, gw_driver **out, qk_err *err)
{
    gw_driver *d = calloc(1, sizeof *d);
    ms_impl *s = calloc(1, sizeof *s);
    if (!d || !s) {
        free(d);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    s->cfg = cfg;
    s->an = -1;
    d->ops = &ms_ops;
    d->impl = s;
    *out = d;
    return 0;
}
