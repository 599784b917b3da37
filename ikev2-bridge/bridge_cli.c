/* bridge_cli.c - options, configuration loading and the admin client shared by the qkd-bridge
 * subcommands (bridge_cli.h). */
#include "bridge_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coredump.h"

int qkb_cli_parse_opts(int argc, char **argv, qkb_cli_opts *o)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"admin", required_argument, NULL, 'a'},
                                       {"port-file", required_argument, NULL, 'p'},
                                       {"key-id", required_argument, NULL, 'k'},
                                       {"json", no_argument, NULL, 'j'},
                                       {QK_CORE_DUMPS_OPTION, no_argument, NULL, 'D'},
                                       {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:a:p:k:j", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->conf = optarg;
            break;
        case 'a':
            o->admin = optarg;
            break;
        case 'p':
            o->port_file = optarg;
            break;
        case 'k':
            o->key_id = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'D':
            o->allow_cores = true;
            break;
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

int qkb_cli_load_conf(const qkb_cli_opts *o, qkb_config *cfg)
{
    qk_err e;
    qkb_config_defaults(cfg);
    if (!o->conf) {
        fprintf(stderr, "qkd-bridge: -c CONFIG is required\n");
        return 2;
    }
    if (qkb_config_load(o->conf, cfg, &e) != 0) {
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        return 2;
    }
    return 0;
}

int qkb_cli_admin_call(const qkb_cli_opts *o, const char *method, const char *path,
                       qk_http_response *r)
{
    char url[300];
    if (o->admin) {
        snprintf(url, sizeof url, "%s%s", o->admin, path);
    } else {
        qkb_config *cfg = malloc(sizeof *cfg);
        if (!cfg)
            return 1;
        int rc = qkb_cli_load_conf(o, cfg);
        if (rc == 0 && cfg->admin_port == 0) {
            fprintf(stderr, "qkd-bridge: [bridge] admin has port 0; use --admin URL\n");
            rc = 2;
        }
        if (rc == 0)
            snprintf(url, sizeof url, "http://%s:%u%s", cfg->admin_host, cfg->admin_port, path);
        free(cfg);
        if (rc)
            return rc;
    }
    qk_http_tls t = {.timeout_ms = 5000, .connect_timeout_ms = 2000, .max_response = 1 << 16};
    qk_err e;
    qk_http_client *c = qk_http_client_new(&t, &e);
    if (!c) {
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        return 1;
    }
    int rc = qk_http_call(c, method, url, NULL, 0, NULL, r, &e);
    qk_http_client_free(c);
    if (rc) {
        fprintf(stderr, "qkd-bridge: %s: %s\n", url, e.msg);
        return 1;
    }
    return 0;
}
