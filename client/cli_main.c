/* cli_main.c - `qkd`: dispatch to the etsi / skip / conform subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "conform.h"

#define QKD_VERSION "0.1"

static void usage(FILE *f)
{
    fputs("Usage: qkd etsi status|enc|dec ...    ETSI GS QKD 014 key delivery\n"
          "       qkd skip caps|key|key-by-id|entropy ...   SKIP (draft-cisco-skip-02)\n"
          "       qkd conform etsi|skip ...      conformance checks against any server pair\n"
          "       qkd --help | --version\n"
          "`qkd etsi --help`, `qkd skip --help` and `qkd conform --help` list the options;\n"
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
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return QKD_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("qkd %s\n", QKD_VERSION);
        return QKD_EXIT_OK;
    }
    if (qkc_global_init() != 0) {
        fputs("qkd: library initialisation failed\n", stderr);
        return QKD_EXIT_FAIL;
    }
    int rc;
    if (strcmp(cmd, "etsi") == 0)
        rc = cli_etsi_main(argc - 1, argv + 1);
    else if (strcmp(cmd, "skip") == 0)
        rc = cli_skip_main(argc - 1, argv + 1);
    else if (strcmp(cmd, "conform") == 0)
        rc = cli_conform_main(argc - 1, argv + 1);
    else
        rc = cli_usage_error("unknown command '%s' (etsi, skip, conform)", cmd);
    qkc_global_cleanup();
    return rc;
}
