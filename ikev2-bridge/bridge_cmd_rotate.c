/* bridge_cmd_rotate.c - `qkd-bridge rotate (-c CONFIG | --admin URL)`: ask a running bridge
 * for a rotation now (POST /rotate on its admin listener; 202 is success). */
#include <stdio.h>

#include "bridge_cli.h"
#include "bridge_cmds.h"

int qkb_cmd_rotate(int argc, char **argv)
{
    qkb_cli_opts o;
    if (qkb_cli_parse_opts(argc, argv, &o) || (!o.conf && !o.admin)) {
        fprintf(stderr, "usage: qkd-bridge rotate (-c CONFIG | --admin URL)\n");
        return 2;
    }
    qk_http_response r = {0};
    int rc = qkb_cli_admin_call(&o, "POST", "/rotate", &r);
    if (rc)
        return rc;
    rc = r.status == 202 ? 0 : 1;
    printf("%s\n", rc ? "rotation request refused" : "rotation requested");
    qk_http_response_free(&r);
    return rc;
}
