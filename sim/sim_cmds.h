/* sim_cmds.h - the subcommands of qkd-sim. Each takes the arguments after the subcommand name
 * (argv[0] is the subcommand itself), prints its own --help, and returns the process exit code:
 * 0 success, 1 runtime failure, 2 usage error. */
#ifndef QK_SIM_CMDS_H
#define QK_SIM_CMDS_H

/* qkd-sim model: tabulate the key-rate model over distances (sim/sim_cmd_model.c). */
int qk_sim_cmd_model(int argc, char **argv);
/* qkd-sim run: simulate a link and feed two KMEs with identical blocks. */
int qk_sim_cmd_run(int argc, char **argv);
/* qkd-sim status: ask a running simulator for its state. */
int qk_sim_cmd_status(int argc, char **argv);
/* qkd-sim fault: inject a fault (extra loss, eavesdropper, ...) into a running simulator. */
int qk_sim_cmd_fault(int argc, char **argv);

#endif
