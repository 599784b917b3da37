/* bridge_main.c - qkd-bridge: install QKD keys as IKEv2 PPKs (strongSwan, libreswan) or MACsec
 * CAKs, in step with the paired bridge. Chooses a subcommand (bridge_cmds.h, one file each)
 * from the table below through the shared tool main (qk_cli.h: --help, --version, usage). */
#include <stdio.h>

#include "bridge_cmds.h"
#include "qk_cli.h"
#include "secbuf.h"

static const qk_cli_cmd CMDS[] = {
    {"run", qkb_cmd_run, "-c CONFIG [--port-file FILE] [--allow-core-dumps]",
     "run the bridge daemon"},
    {"status", qkb_cmd_status, "(-c CONFIG | --admin URL) [--json]",
     "key, SA, PPK and errors of a running bridge"},
    {"rotate", qkb_cmd_rotate, "(-c CONFIG | --admin URL)", "rotate the key now"},
    {"check-config", qkb_cmd_check_config, "-c CONFIG", "validate a configuration"},
    {"vici", qkb_cmd_vici, "[--stream EVENT] SOCKET CMD [ARGS]", "raw VICI request"},
    {"macsec-render", qkb_cmd_macsec_render, "-c CONFIG --key-id ID < KEYHEX",
     "print the MACsec configuration"},
};

/* The subcommands print no help of their own: `qkd-bridge NAME --help` comes from the table. */
static const qk_cli_tool TOOL = {
    .prog = "qkd-bridge",
    .cmds = CMDS,
    .ncmds = sizeof CMDS / sizeof CMDS[0],
    .footer = "Configuration: bridge.conf(5), e.g. /etc/qkd/bridge.conf. See qkd-bridge(8).\n",
    .table_help = true,
};

int main(int argc, char **argv)
{
    if (qk_secure_init() != 0) {
        fprintf(stderr, "qkd-bridge: libsodium initialisation failed\n");
        return 1;
    }
    return qk_cli_main(&TOOL, argc, argv);
}
