/* sim_main.c - qkd-sim: dispatch to a subcommand (model, run, status, fault). */
#include <stdio.h>
#include <string.h>

#include "sim_cmds.h"

#ifndef QKD_KMS_VERSION
#define QKD_KMS_VERSION "0.1.0"
#endif

#define EXIT_USAGE 2

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} sim_cmd;

static const sim_cmd CMDS[] = {
    {"model", qk_sim_cmd_model, "tabulate the decoy-state BB84 key-rate model over distance"},
    {"run", qk_sim_cmd_run, "simulate a QKD link and feed two KMEs with identical key blocks"},
    {"status", qk_sim_cmd_status, "show the state of a running simulator"},
    {"fault", qk_sim_cmd_fault, "inject a fault into a running simulator"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-sim COMMAND [OPTIONS]\n"
               "       qkd-sim COMMAND --help\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        fprintf(f, "  %-8s %s\n", CMDS[i].name, CMDS[i].summary);
    fprintf(f, "Options:\n"
               "  -h, --help     this text\n"
               "      --version  print the version\n"
               "See docs/sim-model.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("qkd-sim %s\n", QKD_KMS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        if (strcmp(cmd, CMDS[i].name) == 0)
            return CMDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "qkd-sim: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
