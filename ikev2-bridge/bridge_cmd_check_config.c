/* bridge_cmd_check_config.c - `qkd-bridge check-config -c CONFIG`: load and validate a
 * configuration (every rule of bridge_config.c), print "CONFIG: ok". */
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
    if (rc == 0)
        printf("%s: ok\n", o.conf);
    free(cfg);
    return rc;
}
