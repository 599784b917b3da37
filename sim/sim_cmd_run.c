/* sim_cmd_run.c - `qkd-sim run CONFIG`: start every configured link and the control API, run
 * until SIGTERM/SIGINT. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coredump.h"
#include "http_client.h"
#include "log.h"
#include "qk_cli.h"
#include "sd_notify.h"
#include "secbuf.h"
#include "signals.h"
#include "sim_blockid.h"
#include "sim_cmds.h"
#include "sim_config.h"
#include "sim_control.h"
#include "sim_link.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-sim run [--port-file FILE] [--check] [--allow-core-dumps] CONFIG\n"
               "Simulate the QKD links of CONFIG (INI, see sim.conf(5)): deliver identical\n"
               "key blocks at the model's rate times the time scale to both KMEs of each link\n"
               "through their device API, push telemetry, and serve the control API.\n"
               "  --port-file FILE  write \"control=PORT\" once the control API listens\n"
               "  --check           validate CONFIG and exit (0 valid, 2 invalid)\n"
               "  --allow-core-dumps  debugging only: leave core dumps on (by default the\n"
               "                    process is non-dumpable, core limit 0: no key in a core)\n"
               "  -h, --help        this text\n"
               "Stops cleanly on SIGTERM or SIGINT. Exit: 0 clean stop, 1 start-up failure,\n"
               "2 bad usage or configuration.\n");
}

static int run_links(const qk_sim_config *cfg, const char *port_file, const sigset_t *set)
{
    qk_err err;
    qk_err_clear(&err);
    int status = 1;
    qk_sim_link *links[QK_SIM_MAX_LINKS] = {0};
    size_t n = 0;
    qk_sim_control *ctl = NULL;
    qk_blockids *ids = calloc(1, sizeof *ids);
    if (!ids) {
        QK_ERROR("out of memory");
        return 1;
    }
    if (qk_blockids_open(ids, cfg->state_file, cfg, &err) != 0) {
        QK_ERROR("state file: %s", err.msg);
        free(ids);
        return 1;
    }
    for (; n < cfg->nlinks; n++)
        if (qk_sim_link_start(&cfg->links[n], cfg, ids, &links[n], &err) != 0) {
            QK_ERROR("cannot start: %s", err.msg);
            goto out;
        }
    if (qk_sim_control_start(cfg->control_host, cfg->control_port, links, n, &ctl, &err) != 0) {
        QK_ERROR("control API: %s", err.msg);
        goto out;
    }
    QK_INFO("qkd-sim running: %zu link(s), control API http://%s:%u/v1/status", n,
            cfg->control_host, (unsigned)qk_sim_control_port(ctl));
    if (port_file &&
        qk_cli_port_file(port_file, "control=%u\n", (unsigned)qk_sim_control_port(ctl)) != 0) {
        QK_ERROR("cannot write the port file %s", port_file);
        goto out;
    }
    /* Links started and the control API listening: a Type=notify unit becomes active. */
    char status_line[64];
    snprintf(status_line, sizeof status_line, "running control=%u",
             (unsigned)qk_sim_control_port(ctl));
    qk_sd_watchdog *wd = NULL;
    if (qk_sd_ready(status_line) != 0 || qk_sd_watchdog_start(&wd) != 0)
        QK_WARN("cannot notify the service manager");
    (void)qk_signals_wait_stop(set, false);
    (void)qk_sd_stopping();
    qk_sd_watchdog_stop(wd);
    status = 0;
out:
    qk_sim_control_stop(ctl);
    for (size_t i = 0; i < n; i++)
        qk_sim_link_stop(links[i]);
    qk_blockids_close(ids);
    free(ids);
    QK_INFO("stopped");
    return status;
}

int qk_sim_cmd_run(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port-file", required_argument, NULL, 'p'},
        {"check", no_argument, NULL, 'c'},
        {QK_CORE_DUMPS_OPTION, no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *port_file = NULL;
    bool check = false, allow_cores = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            port_file = optarg;
            break;
        case 'c':
            check = true;
            break;
        case 'a':
            allow_cores = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    qk_sim_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "qkd-sim: out of memory\n");
        return 1;
    }
    qk_err err;
    qk_err_clear(&err);
    if (qk_sim_config_load(argv[optind], cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(cfg);
        return 2;
    }
    if (check) {
        printf("%s: valid (%zu link(s))\n", argv[optind], cfg->nlinks);
        free(cfg);
        return 0;
    }
    sigset_t set;
    int rc = 1;
    if (qk_signals_block_stop(&set) != 0 || qk_secure_init() != 0 || qk_http_global_init() != 0) {
        fprintf(stderr, "qkd-sim: initialisation failed\n");
    } else if (qk_log_open(cfg->log_file, cfg->log_level, "qkd-sim") != 0) {
        fprintf(stderr, "qkd-sim: cannot open log %s\n", cfg->log_file);
    } else if (qk_core_dumps_limit(allow_cores) != 0) {
        qk_log_close();
    } else {
        rc = run_links(cfg, port_file, &set);
        qk_log_close();
    }
    qk_http_global_cleanup();
    free(cfg);
    return rc;
}
