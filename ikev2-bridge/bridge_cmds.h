/* bridge_cmds.h - the subcommands of qkd-bridge, one file each (bridge_cmd_NAME.c), chosen from
 * the table in bridge_main.c (the pattern of wireguard-tools' src/subcommands.h). Each takes
 * the arguments after the subcommand name (argv[0] is the subcommand) and returns the exit
 * status: 0 success, 1 failure, 2 usage error. Reference: docs/qkd-bridge.md. */
#ifndef QKB_BRIDGE_CMDS_H
#define QKB_BRIDGE_CMDS_H

/* qkd-bridge run -c CONFIG [--port-file FILE]: the daemon (bridge_cmd_run.c). */
int qkb_cmd_run(int argc, char **argv);
/* qkd-bridge status (-c CONFIG | --admin URL) [--json] (bridge_cmd_status.c). */
int qkb_cmd_status(int argc, char **argv);
/* qkd-bridge rotate (-c CONFIG | --admin URL) (bridge_cmd_rotate.c). */
int qkb_cmd_rotate(int argc, char **argv);
/* qkd-bridge check-config -c CONFIG (bridge_cmd_check_config.c). */
int qkb_cmd_check_config(int argc, char **argv);
/* qkd-bridge vici [--stream EVENT] SOCKET COMMAND [ARGS] (bridge_cmd_vici.c). */
int qkb_cmd_vici(int argc, char **argv);
/* qkd-bridge macsec-render -c CONFIG --key-id ID < KEYHEX (bridge_cmd_macsec_render.c). */
int qkb_cmd_macsec_render(int argc, char **argv);

#endif
