/* bridge_config_check.c - what `qkd-bridge run` needs beyond a valid configuration: the files
 * it names exist and are readable, files holding secrets are private (no group or other
 * access), the PSK files hold the identities the bridge uses, the helpers are executable and
 * the directories of the files it writes exist. Every finding names FILE:LINE of the key, as
 * qkd-kmed's configuration errors do. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_config.h"
#include "ini_config.h"

typedef struct {
    const char *path;
    char *out;
    size_t cap, len;
    int errors, warnings;
} report;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void add(report *r, bool error, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(report *r, bool error, const char *section, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (error)
        r->errors++;
    else
        r->warnings++;
    if (r->len >= r->cap)
        return;
    int n = snprintf(r->out + r->len, r->cap - r->len, "%s:%d: [%s] %s: %s%s\n", r->path,
                     qk_ini_locate(r->path, section, key, NULL), section, key,
                     error ? "" : "warning: ", msg);
    if (n > 0)
        r->len += (size_t)n < r->cap - r->len ? (size_t)n : r->cap - r->len - 1;
}

/* The file exists and is readable; secret: not group/other accessible. Returns 0 when the
 * file is usable. */
static int file_ok(report *r, const char *section, const char *key, const char *file, bool secret)
{
    struct stat st;
    if (!file[0])
        return -1;
    if (stat(file, &st) != 0 || access(file, R_OK) != 0) {
        add(r, true, section, key, "cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        add(r, true, section, key, "%s is not a regular file", file);
        return -1;
    }
    if (secret && (st.st_mode & 077)) {
        add(r, true, section, key, "%s holds secrets but has mode %04o (chmod 600)", file,
            (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

/* A PSK file (`identity:hex[:...]` lines) has a line for identity with a usable key. */
static void psk_has(report *r, const char *section, const char *key, const char *file,
                    const char *identity)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return;
    char buf[1024];
    bool found = false, good = false;
    size_t il = strlen(identity);
    for (int i = 0; i < 10000 && !found && fgets(buf, sizeof buf, f); i++) {
        char *s = trim(buf);
        if (strncmp(s, identity, il) != 0 || s[il] != ':')
            continue;
        found = true;
        char *hex = s + il + 1;
        size_t n = strcspn(hex, ":");
        good = n >= 32 && n % 2 == 0 && strspn(hex, "0123456789abcdefABCDEF") >= n;
    }
    memset(buf, 0, sizeof buf);
    fclose(f);
    if (!found)
        add(r, true, section, key, "%s has no line for identity '%s'", file, identity);
    else if (!good)
        add(r, true, section, key, "%s: the key of '%s' is not 16 or more bytes of hex", file,
            identity);
}

static void exec_ok(report *r, const char *section, const char *key, const char *file)
{
    if (access(file, X_OK) != 0)
        add(r, true, section, key, "cannot execute %s: %s", file, strerror(errno));
}

/* The directory of a file the bridge writes exists and is writable. */
static void dir_ok(report *r, const char *section, const char *key, const char *file)
{
    char dir[QKB_PATH];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0)
        add(r, true, section, key, "cannot write in %s: %s", dir, strerror(errno));
}

static void socket_ok(report *r, const char *section, const char *key, const char *file)
{
    const char *p = strncmp(file, "unix://", 7) == 0 ? file + 7 : file;
    struct stat st;
    if (stat(p, &st) != 0)
        add(r, false, section, key, "%s: %s (the gateway is not running yet?)", p, strerror(errno));
    else if (!S_ISSOCK(st.st_mode))
        add(r, true, section, key, "%s is not a socket", p);
}

int qkb_config_check_files(const char *path, const qkb_config *c, char *out, size_t cap,
                           int *warnings)
{
    report r = {.path = path, .out = out, .cap = cap};
    if (cap)
        out[0] = '\0';
    if (c->kme_ca[0])
        file_ok(&r, "kme", "ca", c->kme_ca, false);
    if (c->kme_api == QKB_KME_ETSI014) {
        file_ok(&r, "kme", "cert", c->kme_cert, false);
        file_ok(&r, "kme", "key", c->kme_key, true);
    } else if (file_ok(&r, "kme", "psk_file", c->kme_psk_file, true) == 0) {
        psk_has(&r, "kme", "psk_file", c->kme_psk_file, c->kme_psk_identity);
    }
    if (c->peer_auth == QKB_AUTH_PSK) {
        if (file_ok(&r, "peer", "psk_file", c->peer_psk_file, true) == 0) {
            psk_has(&r, "peer", "psk_file", c->peer_psk_file,
                    c->role == QKB_INITIATOR || !c->peer_name[0] ? c->peer_psk_identity
                                                                 : c->peer_name);
        }
    } else {
        file_ok(&r, "peer", "ca", c->peer_ca, false);
        file_ok(&r, "peer", "cert", c->peer_cert, false);
        file_ok(&r, "peer", "key", c->peer_key, true);
    }
    switch (c->driver) {
    case QKB_DRV_STRONGSWAN:
        file_ok(&r, "strongswan", "ike_psk_file", c->sw_ike_psk_file, true);
        socket_ok(&r, "strongswan", "socket", c->sw_socket);
        break;
    case QKB_DRV_LIBRESWAN:
        exec_ok(&r, "libreswan", "whack", c->ls_whack);
        dir_ok(&r, "libreswan", "secrets_file", c->ls_secrets_file);
        socket_ok(&r, "libreswan", "ctlsocket", c->ls_ctlsocket);
        break;
    case QKB_DRV_MACSEC:
        if (c->ms_mode == QKB_MACSEC_WPA)
            dir_ok(&r, "macsec", "wpa_conf", c->ms_wpa_conf);
        else
            exec_ok(&r, "macsec", "ip", c->ms_ip);
        break;
    case QKB_DRV_WIREGUARD:
        socket_ok(&r, "wireguard", "socket", c->wg_socket);
        break;
    }
    if (warnings)
        *warnings = r.warnings;
    return r.errors;
}
