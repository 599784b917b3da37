/* lab_cmds.h - the subcommands of qkd-lab (docs/lab.md). Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns the exit code: 0 success, 1
 * failure, 2 usage error. */
#ifndef QK_LAB_CMDS_H
#define QK_LAB_CMDS_H

#include "lab.h"
#include "qk_err.h"

/* qkd-lab up: PKI, configs, KMEs and the simulator on loopback, lab.json (sim/lab_up.c). */
int qk_lab_cmd_up(int argc, char **argv);
/* qkd-lab status [--json] [--watch N]: processes, pools, link states (sim/lab_show.c). */
int qk_lab_cmd_status(int argc, char **argv);
/* qkd-lab down: stop every process of the lab (sim/lab_status.c). */
int qk_lab_cmd_down(int argc, char **argv);
/* qkd-lab pki: a deployment's credentials, one folder per host (sim/lab_pki_cmd.c). */
int qk_lab_cmd_pki(int argc, char **argv);

/* qkd-lab status: one route of a KME's GET /routes (docs/qkd-kmed.md) as text, "TO: A > B > TO
 * (2 hops, bottleneck N bytes)" or "TO: no route (REASON)", into out (cap bytes,
 * QK_LAB_ROUTE_TEXT_MAX is enough for any path of 16 KMEs); 0, or -1 when the route is not of
 * that shape (a path of 2..16 IDs or null) or does not fit (sim/lab_show.c). */
struct cJSON;
#define QK_LAB_ROUTE_TEXT_MAX (17 * 132 + 96)
int qk_lab_route_text(const struct cJSON *route, char *out, size_t cap);

/* Shared by the commands: the absolute form of DIR (which must exist) into out. */
int qk_lab_abs_dir(const char *dir, char *out, size_t cap, qk_err *err);
/* The PIDs recorded in DIR's pid files (DIR/NAME/kmed.pid, DIR/sim/sim.pid,
 * DIR/dashboard/dash.pid); sim first. */
size_t qk_lab_read_pids(const char *dir, pid_t *pids, size_t cap);

#endif
