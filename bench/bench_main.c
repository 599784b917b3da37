/* qkd-bench - load generator and benchmark reports for qkd-kmed (bench/README.md). The
 * subcommand comes from a table through the shared tool main (qk_cli.h: --help, --version,
 * usage errors), as in wireguard-tools' src/wg.c + subcommands.h. */
#include "bench_cmd.h"
#include "bench_store.h"
#include "qk_cli.h"

static const qk_cli_cmd CMDS[] = {
    {"run", bench_cmd_run, NULL, "load the KMEs of a lab (or a baseline URL), report"},
    {"body", bench_body_main, NULL, "write the nginx baseline's fixed answers"},
    {"report", bench_report_main, NULL, "merge runs into a Markdown table and a JSON file"},
    {"store", bench_store_main, NULL, "key pairs against two key stores, no HTTP"},
};

static const qk_cli_tool TOOL = {
    .prog = "qkd-bench",
    .cmds = CMDS,
    .ncmds = sizeof CMDS / sizeof CMDS[0],
    .footer = "See qkd-bench(1).\n",
};

int main(int argc, char **argv)
{
    return qk_cli_main(&TOOL, argc, argv);
}
