/* bench_cmd.h - the qkd-bench subcommands; each returns the process exit status. */
#ifndef BENCH_CMD_H
#define BENCH_CMD_H

int bench_cmd_run(int argc, char **argv);     /* bench_cmd_run.c */
int bench_body_main(int argc, char **argv);   /* bench_body.c */
int bench_report_main(int argc, char **argv); /* bench_matrix.c */

#endif
