/* bridge_cmd_check_config.c - `qkd-bridge check-config -c CONFIG`: load and validate a
 * configuration (every rule of bridge_config.c), then check what `run` needs
 * (qkb_config_check_files: files, modes, peer identities, helpers, sockets); findings as
 * "FILE:LINE: [section] key: message" on stderr; "CONFIG: ok" on stdout, exit 0, or exit 2. */
#include <stdio.h>
#include <stdlib.h>

#include "bridge_cli.h"
#include "bridge_cmds.h"

int qkb_cmd_check_config(int argc, char **argv)
{
    qkb_cli_opts o;
    qkb_config *cfg = malloc(sizeof *cfg);
    if (!cfg || qkb_cli_parse_opts(argc, argv, &o)) {
        free(cfg);
        fprintf(stderr, "usage: qkd-bridge check-config -c CONFIG\n");
        return 2;
    }
    int rc = qkb_cli_load_conf(&o, cfg);
    if (rc == 0) {
        char report[8192];
        int warnings = 0;
        int errors = qkb_config_check_files(o.conf, cfg, report, sizeof report, &warnings);
        fputs(report, stderr);
        if (errors) {
            fprintf(stderr, "%s: %d error%s\n", o.conf, errors, errors == 1 ? "" : "s");
            rc = 2;
        } else {
            printf("%s: ok%s\n", o.conf, warnings ? " (with warnings)" : "");
        }
    }
    free(cfg);
    return rc;
}
