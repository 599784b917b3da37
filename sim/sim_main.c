/* sim_main.c - qkd-sim: dispatch to a subcommand (model, run, status, fault) through the shared
 * tool main (qk_cli.h: --help, --version, usage errors). */
#include "qk_cli.h"
#include "sim_cmds.h"

static const qk_cli_cmd CMDS[] = {
    {"model", qk_sim_cmd_model, NULL, "tabulate the decoy-state BB84 key-rate model over distance"},
    {"run", qk_sim_cmd_run, NULL,
     "simulate a QKD link and feed two KMEs with identical key blocks"},
    {"status", qk_sim_cmd_status, NULL, "show the state of a running simulator"},
    {"fault", qk_sim_cmd_fault, NULL, "inject a fault into a running simulator"},
};

static const qk_cli_tool TOOL = {
    .prog = "qkd-sim",
    .cmds = CMDS,
    .ncmds = sizeof CMDS / sizeof CMDS[0],
    .footer = "Configuration: sim.conf(5), e.g. /etc/qkd/sim.conf. See qkd-sim(1).\n",
};

int main(int argc, char **argv)
{
    return qk_cli_main(&TOOL, argc, argv);
}
