/* bench_cmd.h - the qkd-bench subcommands, chosen from the table in bench_main.c (the pattern
 * of wireguard-tools' src/wg.c + subcommands.h). Each takes the arguments from its own name on
 * (argv[0] is "run", ...), prints its own usage, and returns the process exit status: 0 ok,
 * 1 failure, 2 usage. */
#ifndef BENCH_CMD_H
#define BENCH_CMD_H

int bench_cmd_run(int argc, char **argv);     /* bench_cmd_run.c */
int bench_body_main(int argc, char **argv);   /* bench_body.c */
int bench_report_main(int argc, char **argv); /* bench_matrix.c */
/* bench_store_main (`qkd-bench store`) is declared in bench_store.h. */

#endif
