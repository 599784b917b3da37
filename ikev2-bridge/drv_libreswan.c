/* drv_libreswan.c - the libreswan gateway driver.
 *
 * The driver owns one secrets file (mode 0600; include it from ipsec.secrets, or name it with
 * pluto --secretsfile) holding one PPKS line per key the bridge holds:
 *     <local_id> <remote_id> : PPKS "<key ID>" 0x<key hex>
 * After every change it runs `whack --ctlsocket C --rereadsecrets`. The connection itself is
 * the operator's and must say ppk=insist (a responder looks the PPK up by PPK_ID; libreswan 4.x
 * as initiator takes the first PPKS entry matching the IDs, so on activate the file holds the
 * new key only). The old file content is zeroed before each replacement.
 *
 * What the real pluto 4.10 does (tests/integration/bridge_libreswan_interop.sh):
 *  - `whack --rereadsecrets` exits 0 even when pluto rejects a line ("003 "<file>" line N:
 *    ...") and when the file is not read at all (an include of a missing file only logs "no
 *    secrets filename matched"). So the driver reads whack's output: pluto must say `loading
 *    secrets from "<file>"`, and no "003" complaint may name the file. pluto's complaint can
 *    quote the secret, so only its reason (text before the quoted data) is reported.
 *  - `whack --status` prints hundreds of lines before the states; the driver asks
 *    `--showstates` and looks for STATE_V2_ESTABLISHED_IKE_SA of its connection.
 *  - as initiator, `whack --name C --initiate` exits 0 although the IKE SA it just established
 *    (with "PPK AUTH calculated as initiator") is deleted again because the kernel cannot
 *    install the Child SA ("Add SA ...: Function not implemented", "encountered fatal
 *    error"). So activate requires, in whack's output, the established IKE SA, the PPK and no
 *    error line, and then the SA in --showstates. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_drivers.h"
#include "codec.h"
#include "drv_libreswan.h"
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

/* Run whack with up to three arguments. status NULL: a non-zero exit status is an error;
 * otherwise it is stored there (whack's exit status is pluto's last reply code). */
static int whack_st(ls_impl *s, const char *a1, const char *a2, const char *a3, char *out,
                    size_t cap, int *status, qk_err *err)
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
    if (status) {
        *status = rc;
        return 0;
    }
    if (rc != 0)
        return qk_err_set(err, QK_EPEER, "libreswan whack %s exited with %d", a1, rc);
    return 0;
}

static int whack(ls_impl *s, const char *a1, const char *a2, const char *a3, char *out, size_t cap,
                 qk_err *err)
{
    return whack_st(s, a1, a2, a3, out, cap, NULL, err);
}

/* Copy one line of out (at p) into line; returns the start of the next line or NULL. */
static const char *next_line(const char *p, char *line, size_t cap)
{
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    if (n >= cap)
        n = cap - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    return eol ? eol + 1 : NULL;
}

int ls_check_initiate(const char *out, int status, const char *conn, qk_err *err)
{
    char name[80];
    snprintf(name, sizeof name, "\"%s\"", conn);
    bool ppk = false, est = false;
    char why[200] = "", fatal[200] = "";
    char line[512];
    for (const char *p = out; p && *p;) {
        p = next_line(p, line, sizeof line);
        /* whack prefixes pluto's reply code: 0xx log/error, 1xx progress */
        int code = -1;
        if (strlen(line) > 4 && line[3] == ' ' && line[0] >= '0' && line[0] <= '9')
            code = atoi(line);
        const char *text = code >= 0 ? line + 4 : line;
        if (strstr(line, name) && strstr(line, "PPK AUTH calculated as initiator"))
            ppk = true;
        if (strstr(line, name) && strstr(line, "initiator established IKE SA"))
            est = true;
        if (!why[0] &&
            (strstr(line, "ERROR:") || strstr(line, "rejected by peer") || strstr(line, "failed")))
            snprintf(why, sizeof why, "%.199s", text);
        if (!fatal[0] && code >= 10 && code < 100)
            snprintf(fatal, sizeof fatal, "%.199s", text);
    }
    if (fatal[0] || status != 0)
        return qk_err_set(err, QK_EPEER, "libreswan %s failed: %s", conn,
                          why[0]     ? why
                          : fatal[0] ? fatal
                                     : "whack --initiate exited with an error");
    if (!est)
        return qk_err_set(err, QK_EPEER, "libreswan %s: pluto reported no established IKE SA",
                          conn);
    if (!ppk)
        return qk_err_set(err, QK_EPEER,
                          "libreswan %s came up WITHOUT PPK (check ppk=insist); refused", conn);
    return 0;
}

/* Same file? Compares the names as given and, when both exist, their real paths. */
static bool same_file(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* Check the output of `whack --rereadsecrets` (see the top of this file). */
int ls_check_reread(const char *out, const char *secrets_file, qk_err *err)
{
    bool loaded = false;
    const char *p = out;
    char line[1024]; /* may hold data pluto quotes back: wiped before returning */
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = eol ? eol + 1 : NULL;
        char *q = strstr(line, "loading secrets from \"");
        if (q) {
            q += strlen("loading secrets from \"");
            char *e = strchr(q, '"');
            if (e) {
                *e = '\0';
                if (same_file(q, secrets_file))
                    loaded = true;
            }
            continue;
        }
        /* 003 "<file>" line N: <reason>[: <quoted data>] */
        if (strncmp(line, "003 \"", 5) != 0)
            continue;
        char *name = line + 5, *e = strchr(name, '"');
        if (!e)
            continue;
        *e = '\0';
        if (!same_file(name, secrets_file)) {
            QK_WARN("pluto complains about another secrets file, %s", name);
            continue;
        }
        unsigned lineno = 0;
        char *r = strstr(e + 1, " line ");
        if (r)
            lineno = (unsigned)strtoul(r + 6, &r, 10);
        char reason[160] = "";
        if (r && r[0] == ':' && r[1] == ' ') {
            snprintf(reason, sizeof reason, "%s", r + 2);
            char *cut = strchr(reason, ':'); /* pluto may quote the data after the reason */
            if (cut)
                *cut = '\0';
        }
        qk_wipe(line, sizeof line);
        return qk_err_set(err, QK_EPEER, "pluto rejected %s line %u (%s)", secrets_file, lineno,
                          reason[0] ? reason : "no reason given");
    }
    qk_wipe(line, sizeof line);
    if (!loaded)
        return qk_err_set(err, QK_EPEER,
                          "pluto did not read %s: include it from pluto's ipsec.secrets "
                          "(include %s) or name it with --secretsfile",
                          secrets_file, secrets_file);
    return 0;
}

/* Write the PPKS lines of the keys selected (only_id NULL: all) into text (cap bytes).
 * Returns the length, or a negative qk_status. */
int ls_render(const char *local_id, const char *remote_id, const char *const ids[],
              const uint8_t *const keys[], const size_t lens[], int n, char *text, size_t cap,
              qk_err *err)
{
    int w = snprintf(text, cap, "# written by qkd-bridge; holds keys (0600)\n");
    if (w < 0 || (size_t)w >= cap)
        return qk_err_set(err, QK_ELIMIT, "secrets text too long");
    size_t used = (size_t)w;
    for (int i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > LS_KEY_MAX || !id_ok(ids[i]))
            return qk_err_set(err, QK_EINVAL, "key %d cannot be written as a PPKS line", i);
        char hex[2 * LS_KEY_MAX + 1];
        qk_hex_encode(keys[i], lens[i], hex, sizeof hex);
        w = snprintf(text + used, cap - used, "%s %s : PPKS \"%s\" 0x%s\n", local_id, remote_id,
                     ids[i], hex);
        qk_wipe(hex, sizeof hex);
        if (w < 0 || (size_t)w >= cap - used)
            return qk_err_set(err, QK_ELIMIT, "secrets text too long");
        used += (size_t)w;
    }
    return (int)used;
}

/* Rewrite the secrets file with the keys selected (only_id NULL: all) and reread. */
static int ls_sync(ls_impl *s, const char *only_id, qk_err *err)
{
    size_t cap = 256 + (size_t)s->n * (2 * GW_KEY_ID_MAX + 2 * QKB_STR + 2 * LS_KEY_MAX + 32);
    const char *ids[LS_MAX_KEYS];
    const uint8_t *keys[LS_MAX_KEYS];
    size_t lens[LS_MAX_KEYS];
    int m = 0;
    for (int i = 0; i < s->n; i++) {
        if (only_id && strcmp(only_id, s->keys[i].id) != 0)
            continue;
        ids[m] = s->keys[i].id;
        keys[m] = s->keys[i].key;
        lens[m] = s->keys[i].len;
        m++;
    }
    char *text = qk_secure_alloc(cap);
    if (!text)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    int n =
        ls_render(s->cfg->ls_local_id, s->cfg->ls_remote_id, ids, keys, lens, m, text, cap, err);
    int rc = n < 0 ? n : secret_file_replace(s->cfg->ls_secrets_file, text, (size_t)n, err);
    qk_secure_free(text);
    if (rc)
        return rc;
    char out[8192];
    rc = whack(s, "--rereadsecrets", NULL, NULL, out, sizeof out, err);
    if (rc == 0)
        rc = ls_check_reread(out, s->cfg->ls_secrets_file, err);
    return rc;
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
    /* whack --initiate waits for the outcome, but exits 0 even when pluto then tears the SA
     * down (a Child SA the kernel cannot install): read what pluto said, then its states. */
    char out[8192];
    int status = 0;
    rc = whack_st(s, "--name", s->cfg->ls_conn, "--initiate", out, sizeof out, &status, err);
    if (rc == 0)
        rc = ls_check_initiate(out, status, s->cfg->ls_conn, err);
    if (rc == 0) {
        rc = whack(s, "--showstates", NULL, NULL, out, sizeof out, err);
        if (rc == 0 && !ls_states_established(out, s->cfg->ls_conn, NULL))
            rc = qk_err_set(err, QK_EPEER, "libreswan %s: the IKE SA is gone after initiation",
                            s->cfg->ls_conn);
    }
    if (rc)
        return qk_err_prefix(err, "PPK '%s' (ppk=insist: no tunnel without PPK)", key_id);
    snprintf(s->active, sizeof s->active, "%s", key_id);
    return 0;
}

/* Is there an established IKE SA of conn (NULL: any connection) in `whack --showstates`?
 * Lines look like: 000 #2: "qkd":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); ... */
bool ls_states_established(const char *out, const char *conn, unsigned *count)
{
    char want[80] = "";
    if (conn && conn[0])
        snprintf(want, sizeof want, "\"%s\"", conn);
    unsigned c = 0;
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = eol ? eol + 1 : NULL;
        if (!strstr(line, "STATE_V2_ESTABLISHED_IKE_SA"))
            continue;
        if (want[0]) {
            const char *q = strstr(line, want);
            /* the name is followed by :port, [instance] or a space */
            if (!q || (q[strlen(want)] != ':' && q[strlen(want)] != ' ' && q[strlen(want)] != '['))
                continue;
        }
        c++;
    }
    if (count)
        *count = c;
    return c > 0;
}

static int ls_probe(gw_driver *d, const char *key_id, gw_sa_status *st, qk_err *err)
{
    ls_impl *s = d->impl;
    memset(st, 0, sizeof *st);
    st->confirmable = false;
    char out[16384];
    if (whack(s, "--showstates", NULL, NULL, out, sizeof out, err) != 0)
        return err->code;
    unsigned n = 0;
    bool est = ls_states_established(out, s->cfg->ls_conn, &n);
    st->up = est;
    snprintf(st->state, sizeof st->state, "%s", est ? "ESTABLISHED" : "NONE");
    snprintf(st->detail, sizeof st->detail,
             "libreswan: %u established IKE SA(s)%s%s; holds %d PPK(s); PPK use is enforced by "
             "ppk=insist",
             n, s->cfg->ls_conn[0] ? " of " : "", s->cfg->ls_conn, s->n);
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
