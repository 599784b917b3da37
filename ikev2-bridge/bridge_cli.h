/* bridge_cli.h - what the qkd-bridge subcommands (bridge_cmds.h) share: their options, loading
 * the configuration, and the admin listener client of status and rotate. */
#ifndef QKB_BRIDGE_CLI_H
#define QKB_BRIDGE_CLI_H

#include <stdbool.h>

#include "bridge_config.h"
#include "http_client.h"

/* -c/--config CONF, --admin URL, --port-file F, --key-id ID, --json, --allow-core-dumps (run
 * only: coredump.h). */
typedef struct {
    const char *conf, *admin, *port_file, *key_id;
    bool json, allow_cores;
} qkb_cli_opts;

/* 0, or -1 on an unknown option or a stray argument (the caller prints its usage). */
int qkb_cli_parse_opts(int argc, char **argv, qkb_cli_opts *o);
/* Defaults, then o->conf loaded and validated into cfg. 0, or 2 (usage: no -c, or a bad
 * configuration; the message is on stderr). */
int qkb_cli_load_conf(const qkb_cli_opts *o, qkb_config *cfg);
/* One request without a body to the admin listener: --admin URL, or [bridge] admin of -c
 * CONFIG. 0 with the answer in *r (free with qk_http_response_free), or the exit status (1,
 * or 2 for a configuration problem) with the message on stderr. */
int qkb_cli_admin_call(const qkb_cli_opts *o, const char *method, const char *path,
                       qk_http_response *r);

#endif
