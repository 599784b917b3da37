/* bridge_cli.h - qkd-bridge subcommands (bridge_cli.c); each returns the exit status
 * (0 ok, 1 failure, 2 usage). argv[0] is the subcommand name. */
#ifndef QKB_BRIDGE_CLI_H
#define QKB_BRIDGE_CLI_H

int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_vici(int argc, char **argv);
int cmd_macsec_render(int argc, char **argv);

#endif
