/* cli_main.c - `qkd`: choose the etsi / skip / conform group from a table (the pattern of
 * wireguard-tools' src/wg.c + subcommands.h); each group chooses its subcommand from its own. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "conform.h"
#include "qk_cli.h"

static const cli_cmd cmds[] = {
    {"etsi", cli_etsi_main, "status|enc|dec ...", "ETSI GS QKD 014 key delivery"},
    {"skip", cli_skip_main, "caps|key|key-by-id|entropy ...", "SKIP (draft-cisco-skip-02)"},
    {"conform", cli_conform_main, "etsi|skip ...", "conformance checks against any server pair"},
};
#define N_CMDS (sizeof cmds / sizeof cmds[0])

static void usage(FILE *f)
{
    cli_cmd_synopsis(f, "qkd", cmds, N_CMDS);
    fputs("       qkd --help | --version\n", f);
    qk_cli_list(f, cmds, N_CMDS);
    fputs("`qkd etsi --help`, `qkd skip --help` and `qkd conform --help` list the options;\n"
          "see also qkd(1).\n",
          f);
    fputs(cli_exit_help, f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return QKD_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return QKD_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0)
        return qk_cli_version("qkd");
    const cli_cmd *cmd = cli_cmd_lookup(cmds, N_CMDS, NULL, name, usage);
    if (!cmd)
        return QKD_EXIT_USAGE;
    /* `qkd GROUP [SUBCOMMAND] ... --version` answers like `qkd --version` (qk_cli.h). */
    if (qk_cli_asks_version(argc - 1, argv + 1))
        return qk_cli_version("qkd");
    if (qkc_global_init() != 0) {
        fputs("qkd: library initialisation failed\n", stderr);
        return QKD_EXIT_FAIL;
    }
    int rc = cmd->fn(argc - 1, argv + 1);
    qkc_global_cleanup();
    return rc;
}
