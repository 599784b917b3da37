/* main.c - qkd-kmed: parse options, load the config, wire the trust zones to their listeners
 * (the only file that knows every zone), run until SIGTERM. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "coredump.h"
#include "device_api.h"
#include "device_source.h"
#include "etsi014.h"
#include "http_client.h"
#include "kmed_config.h"
#include "kms.h"
#include "listeners.h"
#include "log.h"
#include "metrics.h"
#include "peer_api.h"
#include "qk_cli.h"
#include "secbuf.h"
#include "sd_notify.h"
#include "signals.h"
#include "skip.h"
#include "sync.h"

#define EXIT_CONFIG QK_CLI_EXIT_USAGE

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-kmed -c FILE [-f] [--port-file FILE] [--allow-core-dumps]\n"
               "       qkd-kmed --check-config FILE\n"
               "       qkd-kmed --help | --version\n"
               "  -c, --config FILE      run the KME configured in FILE (e.g. /etc/qkd/kmed.conf)\n"
               "      --check-config FILE  validate FILE and exit (0 valid, 2 invalid)\n"
               "  -f, --foreground       stay in the foreground (the default)\n"
               "      --port-file FILE   write listener=port lines once every listener is bound\n"
               "      --allow-core-dumps  debugging only: leave core dumps on (by default the\n"
               "                         process is non-dumpable, core limit 0: no key in a core)\n"
               "  -h, --help             this text\n"
               "      --version          print the version\n"
               "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reopens the log file.\n"
               "Exit status: 0 clean stop, 1 start-up failure, 2 usage or configuration error.\n"
               "See qkd-kmed(8) and kmed.conf(5).\n");
}

typedef struct {
    const char *config;
    const char *check;
    const char *port_file;
    bool allow_cores;
} options;

/* Returns -1 to continue, else an exit code. */
static int parse_options(int argc, char **argv, options *o)
{
    enum { OPT_CHECK = 256, OPT_PORT_FILE, OPT_VERSION, OPT_ALLOW_CORES };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"foreground", no_argument, NULL, 'f'},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {QK_CORE_DUMPS_OPTION, no_argument, NULL, OPT_ALLOW_CORES},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:fh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case OPT_CHECK:
            o->check = optarg;
            break;
        case 'f':
            break;
        case OPT_PORT_FILE:
            o->port_file = optarg;
            break;
        case OPT_ALLOW_CORES:
            o->allow_cores = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            return qk_cli_version("qkd-kmed");
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind != argc || (!o->config && !o->check) || (o->config && o->check)) {
        usage(stderr);
        return EXIT_CONFIG;
    }
    return -1;
}

/* The request envelope's observer for every listener: count the answer in the metrics. */
static void observe(void *cls, const char *listener, int status, double latency_ms)
{
    qk_metrics_request(cls, listener, status, latency_ms);
}

/* /metrics: the front end's counters, then the ETSI 014 device sources'. */
typedef struct {
    qk_listeners *ls;
    qk_device_sources *devices;
} metrics_extra;

static int write_extra_metrics(void *arg, FILE *f)
{
    metrics_extra *x = arg;
    int rc = qk_listeners_write_metrics(x->ls, f);
    return qk_device_sources_write_metrics(x->devices, f) != 0 ? -1 : rc;
}

/* The SKIP handler's options, borrowed from the config (rules: malloc'ed array). */
static int skip_options(const qk_kmed_config *cfg, qk_kms *k, qk_skip_options *o,
                        qk_skip_client_rule **rules)
{
    const qk_skip_cfg *s = &cfg->skip;
    memset(o, 0, sizeof *o);
    *rules = NULL;
    if (s->nclients) {
        *rules = calloc(s->nclients, sizeof **rules);
        if (!*rules)
            return -1;
        for (size_t i = 0; i < s->nclients; i++)
            (*rules)[i] =
                (qk_skip_client_rule){s->clients[i].identity, s->clients[i].remote_systems};
    }
    o->kms = k;
    o->remote_system_ids = s->remote_system_ids;
    o->loopback_pair = s->loopback_pair;
    o->algorithm = s->algorithm;
    o->entropy = s->entropy;
    o->max_entropy_bits = s->max_entropy_bits;
    o->default_client_remote_systems = s->default_client_remote_systems;
    o->clients = *rules;
    o->nclients = s->nclients;
    return 0;
}

static int run(const qk_kmed_config *cfg, const char *port_file, const sigset_t *set)
{
    qk_err err;
    qk_err_clear(&err);
    int status = 1;
    qk_kms *k = NULL;
    qk_sync *sync = NULL;
    qk_device_sources *devices = NULL;
    qk_listeners *ls = NULL;
    qk_skip_options skip_opts;
    qk_skip_client_rule *skip_rules = NULL;
    qk_metrics *m = qk_metrics_new();
    if (!m) {
        QK_ERROR("out of memory");
        return 1;
    }
    if (qk_kms_open(cfg, m, &k, &err) != 0 || qk_sync_start(k, 0, &sync, &err) != 0) {
        QK_ERROR("cannot start: %s", err.msg);
        goto out;
    }
    qk_kms_set_block_hook(k, qk_sync_notify, sync);
    if (skip_options(cfg, k, &skip_opts, &skip_rules) != 0) {
        QK_ERROR("out of memory");
        goto out;
    }
    /* One handler per trust zone, each configured beside its code; the listeners' TLS policy
     * and body limits come from the [listener NAME] sections. */
    qk_etsi014_handler etsi;
    qk_skip_handler skip;
    qk_peer_api_handler peer;
    qk_device_api_handler device;
    qk_admin_handler admin;
    qk_etsi014_configure(&etsi, k);
    qk_skip_configure(&skip, &skip_opts);
    qk_peer_api_configure(&peer, k);
    /* What each zone does with an unmarked certificate (docs/qkd-kmed.md "Roles"). */
    etsi.role_marker = cfg->listeners[QK_LST_ETSI014].role_marker;
    skip.role_marker = cfg->listeners[QK_LST_SKIP].role_marker;
    peer.role_marker = cfg->listeners[QK_LST_PEER].role_marker;
    /* The device sources before the listeners: the peer handler fetches through them; the
     * pullers start at once (a pulled block waits PENDING until the peer has it). */
    if (qk_device_sources_start(k, &devices, &err) != 0) {
        QK_ERROR("cannot start: %s", err.msg);
        goto out;
    }
    peer.devices = devices;
    qk_device_api_configure(&device, k);
    device.role_marker = cfg->listeners[QK_LST_DEVICE].role_marker;
    qk_admin_configure(&admin, k);
    qk_http_handler *handlers[QK_LST_COUNT] = {
        [QK_LST_ETSI014] = &etsi.super,  [QK_LST_SKIP] = &skip.super,   [QK_LST_PEER] = &peer.super,
        [QK_LST_DEVICE] = &device.super, [QK_LST_ADMIN] = &admin.super,
    };
    for (int i = 0; i < QK_LST_COUNT; i++) {
        handlers[i]->observe = observe;
        handlers[i]->observe_cls = m;
    }
    if (qk_listeners_start(cfg, handlers, &ls, &err) != 0) {
        QK_ERROR("cannot start: %s", err.msg);
        goto out;
    }
    /* /metrics renders the front end's counters too (the admin listener stops first). */
    metrics_extra extra = {ls, devices};
    qk_metrics_set_writer(m, write_extra_metrics, &extra);
    if (port_file && qk_listeners_write_port_file(ls, port_file, &err) != 0) {
        QK_ERROR("port file: %s", err.msg);
        goto out;
    }
    QK_INFO("KME %s running (%zu links)", cfg->node_id, cfg->nlinks);
    /* Listeners bound and store open: a Type=notify unit becomes active (docs/service.md);
     * STATUS= names the bound ports (systemctl status). */
    char status_line[512] = "serving ";
    size_t off = strlen(status_line);
    qk_sd_watchdog *wd = NULL;
    if (qk_listeners_ports(ls, ' ', status_line + off, sizeof status_line - off) != 0 ||
        qk_sd_ready(status_line) != 0 || qk_sd_watchdog_start(&wd) != 0)
        QK_WARN("cannot notify the service manager");
    (void)qk_signals_wait_stop(set, true);
    (void)qk_sd_stopping();
    qk_sd_watchdog_stop(wd);
    status = 0;
out:
    qk_kms_quiesce(k); /* no fetch stays suspended for a notice while the listeners stop */
    qk_listeners_stop(ls);
    qk_metrics_set_writer(m, NULL, NULL);
    qk_device_sources_stop(devices); /* after the listeners: no handler fetches any more */
    qk_sync_stop(sync);
    qk_kms_close(k);
    free(skip_rules);
    qk_metrics_free(m);
    QK_INFO("stopped");
    return status;
}

int main(int argc, char **argv)
{
    options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (qk_secure_init() != 0) {
        fprintf(stderr, "qkd-kmed: libsodium initialisation failed\n");
        return 1;
    }
    qk_kmed_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "qkd-kmed: out of memory\n");
        return 1;
    }
    qk_err err;
    qk_err_clear(&err);
    const char *path = o.check ? o.check : o.config;
    if (qk_kmed_config_load(path, cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(cfg);
        return EXIT_CONFIG;
    }
    if (o.check) {
        /* The files start-up reads, checked as start-up checks them (a master key file or a
         * PSK file readable by others, a bad fingerprint map): the same functions. */
        if (qk_kms_check_files(cfg, &err) != 0 || qk_listeners_check(cfg, &err) != 0) {
            fprintf(stderr, "%s: %s\n", path, err.msg);
            free(cfg);
            return EXIT_CONFIG;
        }
        printf("%s: valid\n", path);
        free(cfg);
        return 0;
    }
    /* Signals go to sigwait() in this thread only: block them before any thread starts. */
    sigset_t set;
    if (qk_signals_block_stop(&set) != 0 ||
        qk_log_open(cfg->log_file, cfg->log_level, "qkd-kmed") != 0) {
        fprintf(stderr, "qkd-kmed: cannot open log %s\n", cfg->log_file);
        free(cfg);
        return 1;
    }
    /* Before the store, the master key or any TLS secret is read (issue 17, core dumps). */
    if (qk_core_dumps_limit(o.allow_cores) != 0) {
        qk_log_close();
        free(cfg);
        return 1;
    }
    if (qk_http_global_init() != 0) {
        QK_ERROR("libcurl initialisation failed");
        qk_log_close();
        free(cfg);
        return 1;
    }
    rc = run(cfg, o.port_file, &set);
    qk_http_global_cleanup();
    qk_log_close();
    free(cfg);
    return rc;
}
