/* lab_up.c - `qkd-lab up`: build and start a lab in DIR. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_client.h"
#include "http_util.h"
#include "ini_config.h"
#include "lab_cmds.h"
#include "lab_pki.h"
#include "lab_proc.h"
#include "model.h"
#include "secbuf.h"

#define CERT_DAYS        90
#define START_TIMEOUT_MS 20000u
#define STOP_TIMEOUT_MS  10000u

typedef struct {
    const char *dir, *topology, *device_lab;
    const char *topo_preset; /* --preset naming a topology preset */
    unsigned wait_s;
} up_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-lab up --dir DIR [--topology FILE | --preset TOPOLOGY]\n"
               "                  [--link-preset NAME] [--distance KM] [--time-scale X]\n"
               "                  [--block-bytes N] [--wait SECONDS] [--device-lab DIR2]\n"
               "                  [--reply-at-commit] [--key-ids random|time-ordered]\n"
               "Create a CA and certificates, SKIP PSKs, master keys and configs in DIR, start\n"
               "every qkd-kmed, the link simulator and the dashboard (qkd-dash) on free loopback\n"
               "ports, wait until every pool holds keys, and write DIR/lab.json (qkd-lab(1)).\n"
               "  --dir DIR          the lab folder (created; a stopped lab in it is replaced)\n"
               "  --topology FILE    KMEs, SAEs and links (INI; default: KME_A--KME_B)\n"
               "  --preset NAME      a topology preset (below), or a link model preset as\n"
               "                     --link-preset (the two sets of names are disjoint)\n"
               "  --link-preset NAME link model preset of every link without its own\n"
               "                     (default gys; below)\n"
               "  --distance KM      fibre length of every link (default 25)\n"
               "  --time-scale X     key rate multiplier (default 20)\n"
               "  --block-bytes N    key block size (default 4096)\n"
               "  --wait SECONDS     how long to wait for keys in every pool (default 120)\n"
               "  --device-lab DIR2  feed every link from the ETSI 014 KMEs of the running lab\n"
               "                     in DIR2 (same KME IDs) instead of the simulator\n"
               "  --reply-at-commit  every KME answers a carve once committed, before its\n"
               "                     sync ([hot_path] reply_at_commit, kmed.conf(5))\n"
               "  --key-ids FORM     random (default): version-4 key IDs; time-ordered:\n"
               "                     version-7 ([store] key_ids, kmed.conf(5))\n"
               "  -h, --help         this text\n"
               "Topology presets (every KME knows every SAE; keys to a KME that is not a\n"
               "neighbour are relayed through the KMEs between, docs/lab.md):\n");
    const char *sum = NULL, *name;
    for (size_t i = 0; (name = qk_lab_topology_preset_name(i, &sum)) != NULL; i++)
        fprintf(f, "  %-6s %s\n", name, sum);
    fprintf(f, "Link model presets (qkd-sim model --preset NAME):");
    const char *const *mp = qk_model_preset_names();
    for (size_t i = 0; mp[i]; i++)
        fprintf(f, "%s %s", i ? "," : "", mp[i]);
    fprintf(f, "\n");
}

static void step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[qkd-lab] ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

static int parse(int argc, char **argv, up_opts *o, qk_lab *lab)
{
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},
        {"topology", required_argument, NULL, 't'},
        {"preset", required_argument, NULL, 'p'},
        {"link-preset", required_argument, NULL, 'P'},
        {"distance", required_argument, NULL, 'k'},
        {"time-scale", required_argument, NULL, 's'},
        {"block-bytes", required_argument, NULL, 'b'},
        {"wait", required_argument, NULL, 'w'},
        {"device-lab", required_argument, NULL, 'D'},
        {"reply-at-commit", no_argument, NULL, 'R'},
        {"key-ids", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    qk_err err;
    qk_err_clear(&err);
    uint64_t v = 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case 'd':
            o->dir = optarg;
            break;
        case 't':
            o->topology = optarg;
            break;
        case 'D':
            o->device_lab = optarg;
            break;
        case 'R':
            lab->reply_at_commit = true;
            break;
        case 'I':
            rc = qk_parse_choice(optarg, "random", "time-ordered", &lab->time_ordered_ids, &err);
            break;
        case 'p':
        case 'P': {
            /* --preset names a model preset (its first meaning) or a topology preset. */
            qk_model_params p;
            if (qk_model_preset(optarg, &p) == 0)
                snprintf(lab->preset, sizeof lab->preset, "%s", optarg);
            else if (ch == 'p' && qk_lab_topology_preset(optarg, &lab->topo) == 0)
                o->topo_preset = optarg;
            else
                rc = qk_err_set(
                    &err, QK_EINVAL, "--%s: unknown %s %s (qkd-lab up --help lists them)",
                    ch == 'p' ? "preset" : "link-preset",
                    ch == 'p' ? "topology or link model preset" : "link model preset", optarg);
            break;
        }
        case 'k':
            rc = qk_parse_double(optarg, 0.0, 1000.0, &lab->distance_km, &err);
            break;
        case 's':
            rc = qk_parse_double(optarg, 1e-6, 1e6, &lab->time_scale, &err);
            break;
        case 'b':
            rc = qk_parse_u64(optarg, 1100, 4u << 20, &lab->block_bytes, &err);
            break;
        case 'w':
            rc = qk_parse_u64(optarg, 1, 3600, &v, &err);
            o->wait_s = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (rc != 0) {
            fprintf(stderr, "qkd-lab up: %s\n", err.msg);
            return 2;
        }
    }
    if (optind != argc || !o->dir) {
        usage(stderr);
        return 2;
    }
    if (o->topology && o->topo_preset) {
        fprintf(stderr,
                "qkd-lab up: --topology and --preset %s both describe the network: give "
                "one\n",
                o->topo_preset);
        return 2;
    }
    return -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* Remove what a previous qkd-lab up created in DIR: pki/, sim/, lab.json and every folder
 * holding a kmed.conf. Nothing else. */
static int clear_previous(const qk_lab *lab, qk_err *err)
{
    DIR *d = opendir(lab->dir);
    if (!d)
        return qk_err_set(err, QK_EIO, "%s: %s", lab->dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && rc == 0) {
        char p[QK_LAB_PATH_MAX], conf[QK_LAB_PATH_MAX];
        if (e->d_name[0] == '.' || qk_lab_path(lab, p, "%s", e->d_name) != 0 ||
            qk_lab_path(lab, conf, "%s/kmed.conf", e->d_name) != 0)
            continue;
        bool ours = strcmp(e->d_name, "pki") == 0 || strcmp(e->d_name, "sim") == 0 ||
                    strcmp(e->d_name, "dashboard") == 0 || access(conf, F_OK) == 0;
        if (strcmp(e->d_name, "lab.json") == 0)
            rc = unlink(p);
        else if (ours)
            rc = nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (rc != 0)
            qk_err_set(err, QK_EIO, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* Make DIR and refuse a running lab; a stopped lab's files (marker DIR/.qkd-lab) go. */
static int prepare_dir(qk_lab *lab, const char *dir, qk_err *err)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return qk_err_set(err, QK_EIO, "%s: %s", dir, strerror(errno));
    if (qk_lab_abs_dir(dir, lab->dir, sizeof lab->dir, err) != 0)
        return QK_EIO;
    pid_t pids[QK_LAB_MAX_PIDS];
    size_t n = qk_lab_read_pids(lab->dir, pids, QK_LAB_MAX_PIDS);
    for (size_t i = 0; i < n; i++)
        if (qk_lab_pid_alive(pids[i], lab->dir))
            return qk_err_set(err, QK_EEXIST, "a lab is running in %s (qkd-lab down --dir %s)",
                              lab->dir, lab->dir);
    char marker[QK_LAB_PATH_MAX];
    if (qk_lab_path(lab, marker, ".qkd-lab") != 0)
        return qk_err_set(err, QK_EINVAL, "path too long");
    if (access(marker, F_OK) == 0) {
        if (clear_previous(lab, err) != 0)
            return QK_EIO;
        step("removed the stopped lab that was in %s", lab->dir);
    }
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return qk_err_set(err, QK_EIO, "%s: %s", marker, strerror(errno));
    close(fd);
    return 0;
}

static int mkdir_in(const qk_lab *lab, const char *name, qk_err *err)
{
    char p[QK_LAB_PATH_MAX];
    if (qk_lab_path(lab, p, "%s", name) != 0)
        return qk_err_set(err, QK_EINVAL, "path too long");
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return qk_err_set(err, QK_EIO, "%s: %s", p, strerror(errno));
    return 0;
}

/* One certificate; client certificates carry their role's marker (docs/qkd-kmed.md "Roles"). */
static int issue(const qk_lab *lab, const qk_lab_ca *ca, qk_cert_kind kind, const char *cn,
                 qk_role role, const char *file, qk_err *err)
{
    char crt[QK_LAB_PATH_MAX], key[QK_LAB_PATH_MAX];
    if (qk_lab_path(lab, crt, "pki/%s.crt", file) != 0 ||
        qk_lab_path(lab, key, "pki/%s.key", file) != 0)
        return qk_err_set(err, QK_EINVAL, "path too long");
    return qk_lab_cert_issue_role(ca, kind, cn, NULL, role, CERT_DAYS, crt, key, err);
}

static int make_pki(qk_lab *lab, qk_err *err)
{
    char crt[QK_LAB_PATH_MAX], key[QK_LAB_PATH_MAX], f[QK_LAB_ID_MAX + 16];
    if (mkdir_in(lab, "pki", err) != 0)
        return QK_EIO;
    if (qk_lab_path(lab, crt, "pki/ca.crt") != 0 || qk_lab_path(lab, key, "pki/ca.key") != 0)
        return qk_err_set(err, QK_EINVAL, "path too long");
    qk_lab_ca *ca = NULL;
    int rc = qk_lab_ca_create("qkd-lab CA", crt, key, &ca, err);
    for (size_t k = 0; rc == 0 && k < lab->topo.nkmes; k++) {
        const qk_lab_kme *km = &lab->topo.kmes[k];
        snprintf(f, sizeof f, "server-%s", km->id);
        rc = issue(lab, ca, QK_CERT_SERVER, km->id, QK_ROLE_KME, f, err);
        snprintf(f, sizeof f, "peer-%s", km->id);
        if (rc == 0)
            rc = issue(lab, ca, QK_CERT_CLIENT, km->id, QK_ROLE_KME, f, err);
        for (size_t s = 0; rc == 0 && s < km->nsaes; s++) {
            snprintf(f, sizeof f, "sae-%s", km->saes[s]);
            rc = issue(lab, ca, QK_CERT_CLIENT, km->saes[s], QK_ROLE_SAE, f, err);
        }
    }
    if (rc == 0)
        rc = issue(lab, ca, QK_CERT_CLIENT, QK_LAB_DEVICE_CN, QK_ROLE_DEVICE, "device", err);
    qk_lab_ca_free(ca);
    return rc;
}

/* Write text to a new file of the given mode. */
static int write_file(const char *path, mode_t mode, int (*fn)(const qk_lab *, size_t, FILE *),
                      const qk_lab *lab, size_t arg, qk_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return qk_err_set(err, QK_EIO, "%s: %s", path, strerror(errno));
    }
    int bad = fn(lab, arg, f) != 0;
    if (fclose(f) != 0 || bad)
        return qk_err_set(err, QK_EIO, "%s: write failed", path);
    return 0;
}

static int sim_conf_fn(const qk_lab *lab, size_t unused, FILE *f)
{
    (void)unused;
    return qk_lab_write_sim_conf(lab, f);
}

static int manifest_fn(const qk_lab *lab, size_t unused, FILE *f)
{
    (void)unused;
    char *j = qk_lab_manifest_json(lab);
    if (!j)
        return -1;
    int bad = fprintf(f, "%s\n", j) < 0;
    free(j);
    return bad ? -1 : 0;
}

static int write_pid(const char *path, pid_t pid)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int bad = fprintf(f, "%d\n", (int)pid) < 0;
    return (fclose(f) != 0 || bad) ? -1 : 0;
}

/* Secrets, ports and the config of every KME. */
static int make_kme_files(qk_lab *lab, qk_err *err)
{
    uint16_t used[QK_LAB_MAX_KMES];
    for (size_t k = 0; k < lab->topo.nkmes; k++) {
        lab->kme[k].peer_port = qk_lab_free_port(used, k);
        if (!lab->kme[k].peer_port)
            return qk_err_set(err, QK_EIO, "no free loopback port");
        used[k] = lab->kme[k].peer_port;
    }
    for (size_t k = 0; k < lab->topo.nkmes; k++) {
        const char *id = lab->topo.kmes[k].id;
        qk_lab_kme_rt *rt = &lab->kme[k];
        char p[QK_LAB_PATH_MAX], pre[QK_LAB_ID_MAX + 16];
        if (mkdir_in(lab, id, err) != 0)
            return QK_EIO;
        if (qk_lab_path(lab, p, "%s/master.key", id) != 0 ||
            qk_lab_write_secret_hex(p, NULL, 32, NULL, err) != 0)
            return err->code ? err->code : QK_EINVAL;
        snprintf(rt->skip_identity, sizeof rt->skip_identity, "SKIP_%s", id);
        if (lab->skip) {
            snprintf(pre, sizeof pre, "%s:", rt->skip_identity);
            if (qk_lab_path(lab, p, "%s/skip.psk", id) != 0 ||
                qk_lab_write_secret_hex(p, pre, 32, rt->psk_hex, err) != 0)
                return err->code ? err->code : QK_EINVAL;
        }
        if (qk_lab_path(lab, p, "%s/kmed.conf", id) != 0 ||
            write_file(p, 0600, qk_lab_write_kmed_conf, lab, k, err) != 0)
            return err->code ? err->code : QK_EINVAL;
    }
    return 0;
}

/* Every started PID (sim first) for a stop on failure. */
static size_t started(const qk_lab *lab, pid_t *pids)
{
    size_t n = 0;
    if (lab->sim_pid > 0)
        pids[n++] = lab->sim_pid;
    if (lab->dash_pid > 0)
        pids[n++] = lab->dash_pid;
    for (size_t k = 0; k < lab->topo.nkmes; k++)
        if (lab->kme[k].pid > 0)
            pids[n++] = lab->kme[k].pid;
    return n;
}

/* True when KME k pulls keys from its device on some link (device_pull = yes). */
static bool pulls(const qk_lab *lab, size_t k)
{
    for (size_t i = 0; i < lab->topo.nlinks; i++)
        if (lab->dev[i].on && lab->topo.links[i].kme[qk_lab_dev_puller(lab, i)] == k)
            return true;
    return false;
}

/* The KMEs that pull from a device start last, so that the peer each first pull notifies is
 * already up (a notice that fails leaves the keys unfetched at the far device). */
static int start_kmes(qk_lab *lab, const char *kmed, qk_err *err)
{
    for (size_t pass = 0; pass < 2 * lab->topo.nkmes; pass++) {
        size_t k = pass % lab->topo.nkmes;
        if (pulls(lab, k) != (pass >= lab->topo.nkmes))
            continue;
        const char *id = lab->topo.kmes[k].id;
        qk_lab_kme_rt *rt = &lab->kme[k];
        char conf[QK_LAB_PATH_MAX], ports[QK_LAB_PATH_MAX], out[QK_LAB_PATH_MAX],
            pidf[QK_LAB_PATH_MAX];
        if (qk_lab_path(lab, conf, "%s/kmed.conf", id) != 0 ||
            qk_lab_path(lab, ports, "%s/ports", id) != 0 ||
            qk_lab_path(lab, out, "%s/kmed.out", id) != 0 ||
            qk_lab_path(lab, pidf, "%s/kmed.pid", id) != 0)
            return qk_err_set(err, QK_EINVAL, "path too long");
        char *argv[] = {(char *)kmed, "-c", conf, "--port-file", ports, NULL};
        rt->pid = qk_lab_spawn(argv, out, NULL, err);
        if (rt->pid < 0) {
            rt->pid = 0;
            return QK_EIO;
        }
        if (write_pid(pidf, rt->pid) != 0)
            return qk_err_set(err, QK_EIO, "%s: cannot write", pidf);
        if (qk_lab_wait_port(ports, "admin", rt->pid, START_TIMEOUT_MS, &rt->admin, err) != 0)
            return qk_err_prefix(err, "%s (see %s and %s/kmed.log)", id, out, id);
        char text[1024];
        FILE *f = fopen(ports, "r");
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f)
            fclose(f);
        text[n] = '\0';
        rt->etsi014 = qk_lab_port_from_text(text, "etsi014");
        rt->device = qk_lab_port_from_text(text, "device");
        rt->skip = qk_lab_port_from_text(text, "skip");
        if (!rt->etsi014 || !rt->device || (lab->skip && !rt->skip))
            return qk_err_set(err, QK_EIO, "%s: incomplete port file %s", id, ports);
        step("%s started (pid %d): etsi014 https://127.0.0.1:%u, admin http://127.0.0.1:%u", id,
             (int)rt->pid, rt->etsi014, rt->admin);
    }
    return 0;
}

static int start_sim(qk_lab *lab, const char *sim, qk_err *err)
{
    char conf[QK_LAB_PATH_MAX], ports[QK_LAB_PATH_MAX], out[QK_LAB_PATH_MAX], pidf[QK_LAB_PATH_MAX];
    if (mkdir_in(lab, "sim", err) != 0)
        return QK_EIO;
    if (qk_lab_path(lab, conf, "sim/sim.conf") != 0 || qk_lab_path(lab, ports, "sim/ports") != 0 ||
        qk_lab_path(lab, out, "sim/sim.out") != 0 || qk_lab_path(lab, pidf, "sim/sim.pid") != 0)
        return qk_err_set(err, QK_EINVAL, "path too long");
    if (write_file(conf, 0600, sim_conf_fn, lab, 0, err) != 0)
        return QK_EIO;
    char *argv[] = {(char *)sim, "run", "--port-file", ports, conf, NULL};
    lab->sim_pid = qk_lab_spawn(argv, out, NULL, err);
    if (lab->sim_pid < 0) {
        lab->sim_pid = 0;
        return QK_EIO;
    }
    if (write_pid(pidf, lab->sim_pid) != 0)
        return qk_err_set(err, QK_EIO, "%s: cannot write", pidf);
    if (qk_lab_wait_port(ports, "control", lab->sim_pid, START_TIMEOUT_MS, &lab->sim_port, err) !=
        0)
        return qk_err_prefix(err, "qkd-sim (see %s and %s/sim/sim.log)", out, lab->dir);
    step("qkd-sim started (pid %d): control http://127.0.0.1:%u, %zu link(s)", (int)lab->sim_pid,
         lab->sim_port, qk_lab_sim_links(lab));
    return 0;
}

/* qkd-dash (docs/dashboard.md) on a loopback port; it reads lab.json, which must exist. */
static int start_dash(qk_lab *lab, const char *dash, qk_err *err)
{
    char log[QK_LAB_PATH_MAX], ports[QK_LAB_PATH_MAX], out[QK_LAB_PATH_MAX], pidf[QK_LAB_PATH_MAX];
    if (mkdir_in(lab, "dashboard", err) != 0)
        return QK_EIO;
    if (qk_lab_path(lab, log, "dashboard/dash.log") != 0 ||
        qk_lab_path(lab, ports, "dashboard/ports") != 0 ||
        qk_lab_path(lab, out, "dashboard/dash.out") != 0 ||
        qk_lab_path(lab, pidf, "dashboard/dash.pid") != 0)
        return qk_err_set(err, QK_EINVAL, "path too long");
    char *argv[] = {(char *)dash, "--lab", lab->dir, "--port-file", ports, "--log", log, NULL};
    lab->dash_pid = qk_lab_spawn(argv, out, NULL, err);
    if (lab->dash_pid < 0) {
        lab->dash_pid = 0;
        return QK_EIO;
    }
    if (write_pid(pidf, lab->dash_pid) != 0)
        return qk_err_set(err, QK_EIO, "%s: cannot write", pidf);
    if (qk_lab_wait_port(ports, "http", lab->dash_pid, START_TIMEOUT_MS, &lab->dash_port, err) != 0)
        return qk_err_prefix(err, "qkd-dash (see %s and %s)", out, log);
    step("qkd-dash started (pid %d): dashboard http://127.0.0.1:%u/", (int)lab->dash_pid,
         lab->dash_port);
    return 0;
}

/* Bits in the pool of link at KME k (admin /metrics), or -1. */
static double pool_bits(const qk_lab *lab, size_t k, const char *link)
{
    char url[64], filter[QK_LAB_ID_MAX + 16];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", lab->kme[k].admin);
    snprintf(filter, sizeof filter, "link=\"%s\"", link);
    char *body = NULL;
    qk_err err;
    qk_err_clear(&err);
    if (qk_lab_http_get(url, &body, &err) != 0)
        return -1;
    double v = qk_lab_metric(body, "qkd_pool_bytes", filter);
    free(body);
    return v < 0 ? v : v * 8;
}

static int wait_pools(const qk_lab *lab, unsigned wait_s, qk_err *err)
{
    double end = qk_now_ms() + wait_s * 1000.0, next_report = 0;
    for (;;) {
        size_t empty = 0, total = 0;
        char missing[256] = "";
        for (size_t i = 0; i < lab->topo.nlinks; i++)
            for (int e = 0; e < 2; e++) {
                size_t k = lab->topo.links[i].kme[e];
                total++;
                if (pool_bits(lab, k, lab->topo.links[i].id) > 0)
                    continue;
                if (empty++ == 0)
                    snprintf(missing, sizeof missing, "%s/%s", lab->topo.kmes[k].id,
                             lab->topo.links[i].id);
            }
        if (empty == 0)
            return 0;
        if (qk_now_ms() >= end)
            return qk_err_set(err, QK_ETIMEOUT, "%zu of %zu pools still empty after %u s (%s)",
                              empty, total, wait_s, missing);
        if (qk_now_ms() >= next_report) {
            step("waiting for keys: %zu of %zu pools filled (next: %s)", total - empty, total,
                 missing);
            next_report = qk_now_ms() + 2000;
        }
        qk_lab_sleep_ms(250);
    }
}

static void print_usage_hint(const qk_lab *lab)
{
    const qk_lab_kme *a = &lab->topo.kmes[0];
    printf("\nThe lab is up: %s/lab.json describes it (CA, endpoints, SAE certificates, SKIP "
           "PSKs).\n",
           lab->dir);
    for (size_t k = 0; k < lab->topo.nkmes; k++)
        printf("  %-8s ETSI 014 https://127.0.0.1:%u  SKIP %s%u  metrics "
               "http://127.0.0.1:%u/metrics\n",
               lab->topo.kmes[k].id, lab->kme[k].etsi014, lab->skip ? "https://127.0.0.1:" : "-",
               lab->skip ? lab->kme[k].skip : 0, lab->kme[k].admin);
    for (size_t i = 0; i < lab->topo.nlinks; i++) {
        const qk_lab_link *l = &lab->topo.links[i];
        const qk_lab_dev_link *d = &lab->dev[i];
        if (d->on) {
            int p = qk_lab_dev_puller(lab, i);
            printf("  link %s (%s--%s): fed by the ETSI 014 devices of %s: %s as %s at %s, %s as "
                   "%s at %s; %s pulls\n",
                   l->id, lab->topo.kmes[l->kme[0]].id, lab->topo.kmes[l->kme[1]].id,
                   lab->device_lab, lab->topo.kmes[l->kme[0]].id, d->sae[0], d->url[0],
                   lab->topo.kmes[l->kme[1]].id, d->sae[1], d->url[1],
                   lab->topo.kmes[l->kme[p]].id);
            continue;
        }
        double bps = 0;
        qk_err err;
        qk_err_clear(&err);
        (void)qk_lab_link_rate(lab, i, &bps, &err); /* checked before the start */
        printf("  link %s (%s--%s): preset %s, %g km, time scale %g: %.4g bit/s\n", l->id,
               lab->topo.kmes[l->kme[0]].id, lab->topo.kmes[l->kme[1]].id,
               qk_lab_link_preset(lab, i), qk_lab_link_distance(lab, i),
               qk_lab_link_time_scale(lab, i), bps);
    }
    if (lab->skip)
        for (size_t k = 0; k < lab->topo.nkmes; k++)
            printf("  SKIP client %s at %s (PSK in lab.json): qkd skip caps --lab %s --kme %s "
                   "--skip-client %s\n",
                   lab->kme[k].skip_identity, lab->topo.kmes[k].id, lab->dir, lab->topo.kmes[k].id,
                   lab->kme[k].skip_identity);
    if (lab->sim_pid > 0) {
        printf("  simulator control http://127.0.0.1:%u (qkd-sim status --control URL)\n",
               lab->sim_port);
        printf("  dashboard http://127.0.0.1:%u/ (docs/dashboard.md)\n", lab->dash_port);
    } else {
        printf("  no simulator and no dashboard: every link is device-fed\n");
    }
    if (a->nsaes > 0)
        printf("Try:  curl --cacert %s/pki/ca.crt --cert %s/pki/sae-%s.crt --key "
               "%s/pki/sae-%s.key \\\n        https://127.0.0.1:%u/api/v1/keys/%s/status\n",
               lab->dir, lab->dir, a->saes[0], lab->dir, a->saes[0], lab->kme[0].etsi014,
               lab->topo.kmes[1].nsaes ? lab->topo.kmes[1].saes[0] : "SAE");
    printf("Status: qkd-lab status --dir %s\nStop:   qkd-lab down --dir %s\n", lab->dir, lab->dir);
}

static int up(qk_lab *lab, const up_opts *o)
{
    qk_err err;
    qk_err_clear(&err);
    char kmed[QK_LAB_PATH_MAX], sim[QK_LAB_PATH_MAX], dash[QK_LAB_PATH_MAX];
    if (qk_lab_sibling_binary("qkd-kmed", kmed, sizeof kmed) != 0 ||
        qk_lab_sibling_binary("qkd-sim", sim, sizeof sim) != 0 ||
        qk_lab_sibling_binary("qkd-dash", dash, sizeof dash) != 0) {
        fprintf(stderr, "qkd-lab up: qkd-kmed, qkd-sim and qkd-dash must be next to qkd-lab\n");
        return 1;
    }
    if (o->topology && qk_lab_topology_load(o->topology, &lab->topo, &err) != 0) {
        fprintf(stderr, "qkd-lab up: %s\n", err.msg);
        return 2;
    }
    if (!o->topology && !o->topo_preset)
        qk_lab_topology_default(&lab->topo);
    if (o->device_lab && qk_lab_device_lab_load(lab, o->device_lab, &err) != 0) {
        fprintf(stderr, "qkd-lab up: %s\n", err.msg);
        return 2;
    }
    /* Refuse at once a link the model gives no key, or too little for --wait. */
    if (qk_lab_links_check(lab, o->wait_s, &err) != 0) {
        fprintf(stderr, "qkd-lab up: %s\n", err.msg);
        return 2;
    }
    if (prepare_dir(lab, o->dir, &err) != 0) {
        fprintf(stderr, "qkd-lab up: %s\n", err.msg);
        return 1;
    }
    step("lab in %s: %zu KMEs, %zu link(s)", lab->dir, lab->topo.nkmes, lab->topo.nlinks);
    step("creating the CA and certificates (EC P-256)");
    int rc = make_pki(lab, &err);
    if (rc == 0) {
        step("writing master keys, SKIP PSKs and configs");
        rc = make_kme_files(lab, &err);
    }
    if (rc == 0)
        rc = start_kmes(lab, kmed, &err);
    /* The simulator feeds the links that have no device; qkd-dash shows the simulator. */
    bool with_sim = qk_lab_sim_links(lab) > 0;
    if (rc == 0 && with_sim)
        rc = start_sim(lab, sim, &err);
    char mf[QK_LAB_PATH_MAX];
    if (rc == 0 && (qk_lab_path(lab, mf, "lab.json") != 0 ||
                    write_file(mf, 0600, manifest_fn, lab, 0, &err) != 0))
        rc = err.code ? err.code : QK_EIO;
    /* The dashboard reads lab.json; then lab.json is written again with its URL. */
    if (rc == 0 && with_sim)
        rc = start_dash(lab, dash, &err);
    if (rc == 0 && with_sim && write_file(mf, 0600, manifest_fn, lab, 0, &err) != 0)
        rc = err.code ? err.code : QK_EIO;
    if (rc == 0) {
        step("waiting until every pool holds keys (up to %u s)", o->wait_s);
        rc = wait_pools(lab, o->wait_s, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "qkd-lab up: %s\n", err.msg);
        pid_t pids[QK_LAB_MAX_PIDS];
        size_t n = started(lab, pids);
        step("stopping the %zu process(es) started", n);
        qk_lab_stop(pids, n, lab->dir, STOP_TIMEOUT_MS);
        return 1;
    }
    step("every pool holds keys");
    print_usage_hint(lab);
    return 0;
}

int qk_lab_cmd_up(int argc, char **argv)
{
    qk_lab *lab = calloc(1, sizeof *lab);
    if (!lab) {
        fprintf(stderr, "qkd-lab: out of memory\n");
        return 1;
    }
    snprintf(lab->preset, sizeof lab->preset, "gys");
    lab->distance_km = 25.0;
    lab->time_scale = 20.0;
    lab->block_bytes = 4096;
    lab->skip = true;
    up_opts o = {.wait_s = 120};
    int rc = parse(argc, argv, &o, lab);
    if (rc < 0) {
        if (qk_secure_init() != 0 || qk_http_global_init() != 0) {
            fprintf(stderr, "qkd-lab: initialisation failed\n");
            rc = 1;
        } else {
            rc = up(lab, &o);
            qk_http_global_cleanup();
        }
    }
    /* lab holds the SKIP PSKs in hex. */
    qk_wipe(lab, sizeof *lab);
    free(lab);
    return rc;
}
