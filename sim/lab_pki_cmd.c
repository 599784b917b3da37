/* lab_pki_cmd.c - qkd-lab pki: the credentials of a real deployment (docs/deploy.md), written
 * into one folder per host: a CA, each KME's server certificate (subjectAltName = the host
 * names and addresses given, RFC 5280 section 4.2.1.6) and peer-client certificate, SAE client
 * certificates, SKIP PSK files (`identity:hex:hash`, docs/qkd-kmed.md) and the QKD device's
 * (simulator's) client certificate. Reuses the lab's PKI (lab_pki.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ini_config.h"
#include "lab_cmds.h"
#include "lab_pki.h"
#include "secbuf.h"

#define PKI_MAX_PER_KME 8
#define PKI_SAN_MAX     1024
#define PKI_PSK_BYTES   32
#define PKI_LINE_MAX    (QK_LAB_ID_MAX + 2 * PKI_PSK_BYTES + 16)

typedef struct {
    char id[QK_LAB_ID_MAX];
    char san[PKI_SAN_MAX];
    char saes[PKI_MAX_PER_KME][QK_LAB_ID_MAX];
    size_t nsaes;
    char skips[PKI_MAX_PER_KME][QK_LAB_ID_MAX];
    size_t nskips;
} pki_kme;

typedef struct {
    const char *dir;
    pki_kme kmes[QK_LAB_MAX_KMES];
    size_t nkmes;
    const char *device_cn;
    const char *psk_hash;
    int days, ca_days;
    bool force;
} pki_opts;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: qkd-lab pki --dir DIR --kme ID=NAME[,NAME...] [--kme ...] [--sae ID@KME]...\n"
        "                   [--skip-client IDENTITY@KME]... [--device CN] [--psk-hash H]\n"
        "                   [--days N] [--ca-days N] [--force]\n"
        "Writes the credentials of a deployment into DIR, one folder per host to copy:\n"
        "  DIR/ca.crt, DIR/ca.key        the CA (keep ca.key off the hosts)\n"
        "  DIR/KME/                      for the host of each KME: ca.crt, server.crt/.key,\n"
        "                                peer.crt/.key, skip.psk, sae-SAE.crt/.key,\n"
        "                                skip-IDENTITY.psk\n"
        "  DIR/device/                   for the QKD device or qkd-sim: ca.crt, device.crt/.key\n"
        "Options:\n"
        "  --dir DIR             output folder (created 0700 if missing)\n"
        "  --kme ID=NAME,...     a KME and the DNS names and IP addresses its listeners are\n"
        "                        reached at (its server certificate's subjectAltName); 1..16\n"
        "  --sae ID@KME          an SAE attached to KME: a client certificate CN=ID (up to 8\n"
        "                        per KME)\n"
        "  --skip-client ID@KME  a SKIP client of KME: a 32-byte PSK for identity ID in the\n"
        "                        KME's skip.psk and in skip-ID.psk (up to 8 per KME)\n"
        "  --device CN           the device certificate's CN, every link's device_identity\n"
        "                        (default qkd-sim)\n"
        "  --psk-hash H          sha384 (default) or sha256: the TLS 1.3 hash the PSKs are\n"
        "                        bound to (written into skip.psk)\n"
        "  --days N              validity of the issued certificates (default 365)\n"
        "  --ca-days N           validity of the CA (default 3650)\n"
        "  --force               replace files that exist (without it: refuse, write nothing)\n"
        "  -h, --help            this help\n"
        "Private keys and PSK files are mode 0600, certificates 0644, folders 0700. IDs are\n"
        "1..64 characters [A-Za-z0-9_.-]. Exit: 0 written, 1 failure, 2 usage.\n"
        "See qkd-lab(1) and docs/deploy.md (installed under share/doc/qkd-kms).\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qkd-lab pki: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (qkd-lab pki --help)\n", stderr);
    return 2;
}

static bool id_ok(const char *s)
{
    return qk_id_valid(s, QK_LAB_ID_MAX - 1, NULL);
}

/* A DNS name (RFC 1123 letters, digits, '-', '.'; up to 253) or an IPv4/IPv6 address, appended
 * to san as "DNS:x" or "IP:x". */
static int add_name(char *san, const char *name, size_t len)
{
    char buf[256];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    unsigned char addr[16];
    const char *kind = "IP";
    if (inet_pton(AF_INET, buf, addr) != 1 && inet_pton(AF_INET6, buf, addr) != 1) {
        kind = "DNS";
        if (len > 253 || buf[0] == '.' || buf[0] == '-')
            return -1;
        for (size_t i = 0; i < len; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.", buf[i]))
                return -1;
    }
    size_t o = strlen(san);
    int n = snprintf(san + o, PKI_SAN_MAX - o, "%s%s:%s", o ? "," : "", kind, buf);
    return (n < 0 || (size_t)n >= PKI_SAN_MAX - o) ? -1 : 0;
}

static pki_kme *find_kme(pki_opts *o, const char *id)
{
    for (size_t i = 0; i < o->nkmes; i++)
        if (!strcmp(o->kmes[i].id, id))
            return &o->kmes[i];
    return NULL;
}

static int parse_kme(pki_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || (size_t)(eq - arg) >= QK_LAB_ID_MAX || !eq[1])
        return usage_error("--kme %s: expected ID=NAME[,NAME...]", arg);
    if (o->nkmes == QK_LAB_MAX_KMES)
        return usage_error("--kme %s: at most 16 KMEs", arg);
    pki_kme *k = &o->kmes[o->nkmes];
    memset(k, 0, sizeof *k);
    memcpy(k->id, arg, (size_t)(eq - arg));
    if (!id_ok(k->id) || !strcmp(k->id, "device"))
        return usage_error("--kme %s: bad KME ID (1..64 [A-Za-z0-9_.-], not \"device\")", arg);
    if (find_kme(o, k->id))
        return usage_error("--kme %s: KME given twice", arg);
    for (const char *p = eq + 1;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (add_name(k->san, p, len) != 0)
            return usage_error("--kme %s: each NAME is a DNS name or an IP address", arg);
        if (!c)
            break;
        p = c + 1;
    }
    o->nkmes++;
    return 0;
}

/* ID@KME for --sae and --skip-client (the KME given by an earlier or later --kme: checked
 * once every option is read). */
typedef struct {
    const char *opt;
    const char *arg;
} pki_member;

static int add_member(pki_opts *o, const pki_member *m)
{
    const char *at = strrchr(m->arg, '@');
    char id[QK_LAB_ID_MAX];
    if (!at || (size_t)(at - m->arg) >= sizeof id)
        return fprintf(stderr, "qkd-lab pki: %s %s: expected ID@KME\n", m->opt, m->arg), 2;
    memcpy(id, m->arg, (size_t)(at - m->arg));
    id[at - m->arg] = '\0';
    if (!id_ok(id))
        return fprintf(stderr, "qkd-lab pki: %s %s: bad ID (1..64 [A-Za-z0-9_.-])\n", m->opt,
                       m->arg),
               2;
    pki_kme *k = find_kme(o, at + 1);
    if (!k)
        return fprintf(stderr, "qkd-lab pki: %s %s: no --kme %s\n", m->opt, m->arg, at + 1), 2;
    bool sae = !strcmp(m->opt, "--sae");
    size_t *n = sae ? &k->nsaes : &k->nskips;
    char(*list)[QK_LAB_ID_MAX] = sae ? k->saes : k->skips;
    if (*n == PKI_MAX_PER_KME)
        return fprintf(stderr, "qkd-lab pki: %s %s: at most %d per KME\n", m->opt, m->arg,
                       PKI_MAX_PER_KME),
               2;
    for (size_t i = 0; i < o->nkmes; i++) {
        const pki_kme *q = &o->kmes[i];
        for (size_t j = 0; j < (sae ? q->nsaes : q->nskips); j++)
            if (!strcmp(sae ? q->saes[j] : q->skips[j], id))
                return fprintf(stderr, "qkd-lab pki: %s %s: given twice\n", m->opt, m->arg), 2;
    }
    snprintf(list[(*n)++], QK_LAB_ID_MAX, "%s", id);
    return 0;
}

/* One identity, one role (docs/qkd-kmed.md "Roles"): no SAE or SKIP client is named like a KME
 * or the device, and no KME like the device; the certificates would otherwise carry one CN in
 * two roles. */
static int check_roles(pki_opts *o)
{
    for (size_t i = 0; i < o->nkmes; i++) {
        const pki_kme *k = &o->kmes[i];
        if (!strcmp(k->id, o->device_cn))
            return usage_error("--kme %s: the device's CN (--device); an identity has one role",
                               k->id);
        for (size_t j = 0; j < k->nsaes + k->nskips; j++) {
            const char *id = j < k->nsaes ? k->saes[j] : k->skips[j - k->nsaes];
            if (!strcmp(id, o->device_cn) || find_kme(o, id))
                return usage_error("%s %s@%s: the ID of a KME or the device's CN; an identity "
                                   "has one role",
                                   j < k->nsaes ? "--sae" : "--skip-client", id, k->id);
        }
    }
    return 0;
}

/* ---- the files, in the order they are written ---- */

typedef enum { F_CA, F_CA_COPY, F_SERVER, F_CLIENT, F_PSK_KME, F_PSK_CLIENT } pki_kind;

typedef struct {
    pki_kind kind;
    const char *folder;            /* "" = DIR itself */
    char name[QK_LAB_ID_MAX + 16]; /* base name: NAME.crt/.key, or the file name itself */
    const char *cn;
    const char *san;
    qk_role role; /* the client certificate's role marker (docs/qkd-kmed.md "Roles") */
    const pki_kme *kme;
    const char *use;
} pki_file;

typedef int (*pki_visit)(const pki_opts *o, const pki_file *f, void *u);

static int visit(const pki_opts *o, pki_visit fn, void *u)
{
    pki_file f;
    int rc;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        f = (pki_file){__VA_ARGS__};                                                               \
        if ((rc = fn(o, &f, u)) != 0)                                                              \
            return rc;                                                                             \
    } while (0)
    EMIT(.kind = F_CA, .folder = "", .name = "ca", .cn = "qkd-kms CA",
         .use = "the CA: ca.key stays off the hosts (only `qkd-lab pki` needs it)");
    for (size_t i = 0; i < o->nkmes; i++) {
        const pki_kme *k = &o->kmes[i];
        EMIT(.kind = F_CA_COPY, .folder = k->id, .name = "ca.crt", .kme = k,
             .use = "kmed.conf [listener *] ca, [peer_client] ca; qkd --ca");
        EMIT(.kind = F_SERVER, .folder = k->id, .name = "server", .cn = k->id, .san = k->san,
             .role = QK_ROLE_KME, .kme = k,
             .use = "kmed.conf [listener etsi014|skip|peer|device] cert, key");
        EMIT(.kind = F_CLIENT, .folder = k->id, .name = "peer", .cn = k->id, .role = QK_ROLE_KME,
             .kme = k, .use = "kmed.conf [peer_client] cert, key (CN = [node] id)");
        if (k->nskips)
            EMIT(.kind = F_PSK_KME, .folder = k->id, .name = "skip.psk", .kme = k,
                 .use = "kmed.conf [listener skip] psk_file (one line per [skip_client ID])");
        for (size_t j = 0; j < k->nsaes; j++) {
            f = (pki_file){.kind = F_CLIENT,
                           .folder = k->id,
                           .cn = k->saes[j],
                           .role = QK_ROLE_SAE,
                           .kme = k,
                           .use = "the SAE's qkd --cert, --key (CN = its [sae ID] in kmed.conf)"};
            snprintf(f.name, sizeof f.name, "sae-%s", k->saes[j]);
            if ((rc = fn(o, &f, u)) != 0)
                return rc;
        }
        for (size_t j = 0; j < k->nskips; j++) {
            f = (pki_file){.kind = F_PSK_CLIENT,
                           .folder = k->id,
                           .cn = k->skips[j],
                           .kme = k,
                           .use = "the SKIP client's qkd skip --psk-identity ID --psk-file"};
            snprintf(f.name, sizeof f.name, "skip-%s.psk", k->skips[j]);
            if ((rc = fn(o, &f, u)) != 0)
                return rc;
        }
    }
    EMIT(.kind = F_CA_COPY, .folder = "device", .name = "ca.crt",
         .use = "sim.conf [device] ca (verifies the KMEs' device listeners)");
    EMIT(.kind = F_CLIENT, .folder = "device", .name = "device", .cn = o->device_cn,
         .role = QK_ROLE_DEVICE,
         .use = "sim.conf [device] cert, key (CN = kmed.conf [link X] device_identity)");
#undef EMIT
    return 0;
}

static int path_of(const pki_opts *o, const pki_file *f, const char *suffix, char *out)
{
    int n = snprintf(out, QK_LAB_PATH_MAX, "%s/%s%s%s%s", o->dir, f->folder,
                     f->folder[0] ? "/" : "", f->name, suffix);
    return (n < 0 || n >= QK_LAB_PATH_MAX) ? -1 : 0;
}

static bool has_key(pki_kind k)
{
    return k == F_CA || k == F_SERVER || k == F_CLIENT;
}

/* Pass 1: every path fits, and none exists (or, with --force, each that does is removed). */
static int check_one(const pki_opts *o, const pki_file *f, void *u)
{
    int *existing = u;
    const char *sfx[2] = {has_key(f->kind) ? ".crt" : "", ".key"};
    for (size_t i = 0; i < (has_key(f->kind) ? 2u : 1u); i++) {
        char p[QK_LAB_PATH_MAX];
        struct stat st;
        if (path_of(o, f, sfx[i], p) != 0)
            return fprintf(stderr, "qkd-lab pki: %s: path too long\n", o->dir), 1;
        if (lstat(p, &st) != 0) {
            if (errno == ENOENT)
                continue;
            return fprintf(stderr, "qkd-lab pki: %s: %s\n", p, strerror(errno)), 1;
        }
        if (!o->force) {
            if ((*existing)++ < 5)
                fprintf(stderr, "qkd-lab pki: %s exists\n", p);
        } else if (unlink(p) != 0) {
            return fprintf(stderr, "qkd-lab pki: %s: %s\n", p, strerror(errno)), 1;
        }
    }
    return 0;
}

static int make_folder(const char *dir, const char *sub)
{
    char p[QK_LAB_PATH_MAX];
    int n = snprintf(p, sizeof p, "%s%s%s", dir, sub[0] ? "/" : "", sub);
    if (n < 0 || (size_t)n >= sizeof p)
        return fprintf(stderr, "qkd-lab pki: %s: path too long\n", dir), -1;
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return fprintf(stderr, "qkd-lab pki: %s: %s\n", p, strerror(errno)), -1;
    return 0;
}

typedef struct {
    qk_lab_ca *ca;
    qk_err err;
} pki_writer;

/* The KME's psk_file (identity:hex:hash lines) from the clients' files written just before. */
static int write_kme_psk(const pki_opts *o, const pki_file *f, pki_writer *w, const char *path)
{
    size_t cap = PKI_MAX_PER_KME * PKI_LINE_MAX, len = 0;
    char *text = qk_secure_alloc(cap);
    int rc = !text ? qk_err_set(&w->err, QK_ENOMEM, "out of secure memory") : 0;
    for (size_t j = 0; rc == 0 && j < f->kme->nskips; j++) {
        char cp[QK_LAB_PATH_MAX];
        pki_file c = *f;
        snprintf(c.name, sizeof c.name, "skip-%s.psk", f->kme->skips[j]);
        if (path_of(o, &c, "", cp) != 0) {
            rc = qk_err_set(&w->err, QK_EINVAL, "path too long");
            break;
        }
        size_t hl = 0;
        uint8_t *h = qk_secure_read_file(cp, 4 * PKI_PSK_BYTES + 1, 1, &hl);
        if (!h || hl < 2 * PKI_PSK_BYTES) {
            qk_secure_free(h);
            rc = qk_err_set(&w->err, QK_EIO, "%s: cannot read back", cp);
            break;
        }
        int n = snprintf(text + len, cap - len, "%s:%.*s:%s\n", f->kme->skips[j], 2 * PKI_PSK_BYTES,
                         (const char *)h, o->psk_hash);
        qk_secure_free(h);
        if (n < 0 || (size_t)n >= cap - len)
            rc = qk_err_set(&w->err, QK_EINVAL, "PSK file too long");
        else
            len += (size_t)n;
    }
    if (rc == 0)
        rc = qk_lab_write_secret_text(path, text, len, &w->err);
    qk_secure_free(text);
    return rc;
}

/* Pass 2: write each file but the KMEs' skip.psk (pass 3 writes them from the clients' files). */
static int write_one(const pki_opts *o, const pki_file *f, void *u)
{
    pki_writer *w = u;
    char crt[QK_LAB_PATH_MAX], key[QK_LAB_PATH_MAX];
    if (path_of(o, f, has_key(f->kind) ? ".crt" : "", crt) != 0 || path_of(o, f, ".key", key) != 0)
        return qk_err_set(&w->err, QK_EINVAL, "path too long");
    switch (f->kind) {
    case F_CA:
        return qk_lab_ca_create_days(f->cn, o->ca_days, crt, key, &w->ca, &w->err);
    case F_CA_COPY:
        return make_folder(o->dir, f->folder) != 0 ? QK_EIO
                                                   : qk_lab_ca_write_cert(w->ca, crt, &w->err);
    case F_SERVER:
        return qk_lab_cert_issue_role(w->ca, QK_CERT_SERVER, f->cn, f->san, f->role, o->days, crt,
                                      key, &w->err);
    case F_CLIENT:
        return qk_lab_cert_issue_role(w->ca, QK_CERT_CLIENT, f->cn, NULL, f->role, o->days, crt,
                                      key, &w->err);
    case F_PSK_KME:
        return 0; /* written after its clients' files, see write_psks */
    case F_PSK_CLIENT:
        return qk_lab_write_secret_hex(crt, NULL, PKI_PSK_BYTES, NULL, &w->err);
    }
    return qk_err_set(&w->err, QK_EINVAL, "unknown file kind");
}

/* Pass 3: each KME's skip.psk, from its clients' files. */
static int write_psks(const pki_opts *o, const pki_file *f, void *u)
{
    if (f->kind != F_PSK_KME)
        return 0;
    char p[QK_LAB_PATH_MAX];
    if (path_of(o, f, "", p) != 0)
        return qk_err_set(&((pki_writer *)u)->err, QK_EINVAL, "path too long");
    return write_kme_psk(o, f, u, p);
}

/* Pass 4: the summary, one line per file or certificate/key pair. */
static int print_one(const pki_opts *o, const pki_file *f, void *u)
{
    const char **folder = u;
    if (strcmp(*folder, f->folder) != 0) {
        *folder = f->folder;
        if (!f->folder[0])
            printf("%s/  keep on the machine that issues certificates\n", o->dir);
        else if (f->kme)
            printf("%s/%s/  copy to the host of %s (SAN %s)\n", o->dir, f->folder, f->kme->id,
                   f->kme->san);
        else
            printf("%s/%s/  copy to the host of the QKD device or qkd-sim\n", o->dir, f->folder);
    }
    char name[QK_LAB_ID_MAX + 32];
    if (has_key(f->kind))
        snprintf(name, sizeof name, "%s.crt .key", f->name);
    else
        snprintf(name, sizeof name, "%s", f->name);
    const char *mode = has_key(f->kind) ? "0644/0600" : f->kind == F_CA_COPY ? "0644" : "0600";
    printf("  %-28s %-9s %s\n", name, mode, f->use);
    return 0;
}

int qk_lab_cmd_pki(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", required_argument, 0, 'd'},
        {"kme", required_argument, 0, 'k'},
        {"sae", required_argument, 0, 's'},
        {"skip-client", required_argument, 0, 'p'},
        {"device", required_argument, 0, 'D'},
        {"psk-hash", required_argument, 0, 'H'},
        {"days", required_argument, 0, 'n'},
        {"ca-days", required_argument, 0, 'N'},
        {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static pki_opts o;
    static pki_member members[2 * QK_LAB_MAX_KMES * PKI_MAX_PER_KME];
    memset(&o, 0, sizeof o);
    o.device_cn = QK_LAB_DEVICE_CN;
    o.psk_hash = "sha384";
    o.days = 365;
    o.ca_days = 3650;
    size_t nmembers = 0;
    int c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        uint64_t v = 0;
        qk_err e = {0};
        switch (c) {
        case 'd':
            o.dir = optarg;
            break;
        case 'k':
            if ((rc = parse_kme(&o, optarg)) != 0)
                return rc;
            break;
        case 's':
        case 'p':
            if (nmembers == sizeof members / sizeof members[0])
                return usage_error("%s: too many SAEs and SKIP clients", optarg);
            members[nmembers++] = (pki_member){c == 's' ? "--sae" : "--skip-client", optarg};
            break;
        case 'D':
            if (!optarg[0] || strlen(optarg) > 64 || !id_ok(optarg))
                return usage_error("--device %s: 1..64 [A-Za-z0-9_.-]", optarg);
            o.device_cn = optarg;
            break;
        case 'H':
            if (strcmp(optarg, "sha384") && strcmp(optarg, "sha256"))
                return usage_error("--psk-hash %s: sha384 or sha256", optarg);
            o.psk_hash = optarg;
            break;
        case 'n':
        case 'N':
            if (qk_parse_u64(optarg, 1, 36500, &v, &e) != 0)
                return usage_error("--days/--ca-days %s: 1..36500", optarg);
            *(c == 'n' ? &o.days : &o.ca_days) = (int)v;
            break;
        case 'f':
            o.force = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o.dir || !o.dir[0])
        return usage_error("%s", "--dir DIR is required");
    if (o.nkmes == 0)
        return usage_error("%s", "at least one --kme ID=NAME is required");
    for (size_t i = 0; i < nmembers; i++)
        if ((rc = add_member(&o, &members[i])) != 0)
            return rc;
    if (o.days > o.ca_days)
        return usage_error("%s", "--days is longer than --ca-days");
    if ((rc = check_roles(&o)) != 0)
        return rc;

    if (qk_secure_init() != 0) {
        fputs("qkd-lab pki: libsodium initialisation failed\n", stderr);
        return 1;
    }
    if (make_folder(o.dir, "") != 0)
        return 1;
    int existing = 0;
    if ((rc = visit(&o, check_one, &existing)) != 0)
        return 1;
    if (existing) {
        fprintf(stderr,
                "qkd-lab pki: %d file(s) exist in %s: nothing written (--force replaces them)\n",
                existing, o.dir);
        return 1;
    }
    for (size_t i = 0; i < o.nkmes; i++)
        if (make_folder(o.dir, o.kmes[i].id) != 0)
            return 1;
    if (make_folder(o.dir, "device") != 0)
        return 1;
    pki_writer w = {0};
    rc = visit(&o, write_one, &w);
    if (rc == 0)
        rc = visit(&o, write_psks, &w);
    qk_lab_ca_free(w.ca);
    if (rc != 0) {
        fprintf(stderr, "qkd-lab pki: %s\n", w.err.msg[0] ? w.err.msg : "failed");
        return 1;
    }
    printf("qkd-lab pki: wrote %s (certificates valid %d days, CA %d days; PSKs bound to %s)\n",
           o.dir, o.days, o.ca_days, o.psk_hash);
    const char *folder = "\x01";
    visit(&o, print_one, &folder);
    return 0;
}
