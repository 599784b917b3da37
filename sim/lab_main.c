/* lab_main.c - qkd-lab: dispatch to a subcommand (up, status, down) through the shared tool
 * main (qk_cli.h: --help, --version, usage errors). */
#include <signal.h>

#include "lab_cmds.h"
#include "qk_cli.h"

static const qk_cli_cmd CMDS[] = {
    {"up", qk_lab_cmd_up, NULL, "create and start a lab (PKI, configs, KMEs, simulator, lab.json)"},
    {"status", qk_lab_cmd_status, NULL,
     "show the lab's processes, pools and links (--json, --watch N)"},
    {"down", qk_lab_cmd_down, NULL, "stop every process of the lab"},
    {"pki", qk_lab_cmd_pki, NULL,
     "write a deployment's CA, certificates and SKIP PSKs, one folder per host"},
};

static const qk_cli_tool TOOL = {
    .prog = "qkd-lab",
    .cmds = CMDS,
    .ncmds = sizeof CMDS / sizeof CMDS[0],
    .footer = "Every command takes --dir DIR, the lab's directory. See qkd-lab(1).\n",
};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed output pipe must not stop `up` half-way */
    return qk_cli_main(&TOOL, argc, argv);
}
