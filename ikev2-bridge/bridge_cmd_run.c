/* bridge_cmd_run.c - `qkd-bridge run -c CONFIG [--port-file FILE] [--allow-core-dumps]`: the
 * daemon. SIGTERM and SIGINT stop it, SIGUSR1 asks for a rotation, SIGHUP reopens the log
 * (bridge_daemon.h); with --port-file, the admin and channel ports are written there once both
 * listen; without --allow-core-dumps the process is non-dumpable with a core limit of 0
 * (coredump.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_cli.h"
#include "bridge_cmds.h"
#include "bridge_daemon.h"
#include "coredump.h"
#include "log.h"
#include "qk_cli.h"
#include "qkdclient.h"
#include "sd_notify.h"
#include "secbuf.h"

static volatile sig_atomic_t g_stop, g_rotate, g_hup;
static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}
static void on_usr1(int sig)
{
    (void)sig;
    g_rotate = 1;
}
static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

int qkb_cmd_run(int argc, char **argv)
{
    qkb_cli_opts o;
    if (qkb_cli_parse_opts(argc, argv, &o)) {
        fprintf(stderr,
                "usage: qkd-bridge run -c CONFIG [--port-file FILE] [--allow-core-dumps]\n");
        return 2;
    }
    qkb_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = qkb_cli_load_conf(&o, cfg);
    if (rc) {
        free(cfg);
        return rc;
    }
    qk_log_level lvl = QK_LOG_INFO;
    qk_log_level_parse(cfg->log_level, &lvl);
    if (qk_log_open(cfg->log_file[0] ? cfg->log_file : NULL, lvl, "qkd-bridge") != 0) {
        fprintf(stderr, "qkd-bridge: cannot open log %s: %s\n", cfg->log_file, strerror(errno));
        free(cfg);
        return 1;
    }
    /* Before any key is fetched or any secret file read (issue 17, core dumps). */
    if (qk_core_dumps_limit(o.allow_cores) != 0) {
        free(cfg);
        return 1;
    }
    if (qk_secure_init() != 0 || qkc_global_init() != 0) {
        QK_ERROR("library initialisation failed");
        free(cfg);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bridge *b = NULL;
    qk_err e;
    if (bridge_new(cfg, &b, &e) != 0) {
        QK_ERROR("cannot start: %s", e.msg);
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        free(cfg);
        return 1;
    }
    QK_INFO("qkd-bridge %s started: role %s, driver %s, admin port %u, channel port %u", cfg->name,
            cfg->role == QKB_INITIATOR ? "initiator" : "responder",
            cfg->driver == QKB_DRV_STRONGSWAN  ? "strongswan"
            : cfg->driver == QKB_DRV_LIBRESWAN ? "libreswan"
                                               : "macsec",
            bridge_admin_port(b), bridge_channel_port(b));
    if (o.port_file) {
        if (qk_cli_port_file(o.port_file, "admin=%u\nbridge=%u\n", bridge_admin_port(b),
                             bridge_channel_port(b)) != 0) {
            QK_ERROR("cannot write port file %s", o.port_file);
            bridge_free(b);
            free(cfg);
            return 1;
        }
    }
    /* Admin and channel listening: a Type=notify unit becomes active (docs/service.md). */
    qk_sd_watchdog *wd = NULL;
    if (qk_sd_ready("running") != 0 || qk_sd_watchdog_start(&wd) != 0)
        QK_WARN("cannot notify the service manager");
    bridge_run(b, &g_stop, &g_rotate, &g_hup);
    QK_INFO("stopping");
    (void)qk_sd_stopping();
    qk_sd_watchdog_stop(wd);
    bridge_free(b);
    qkc_global_cleanup();
    free(cfg);
    qk_log_close();
    return 0;
}
