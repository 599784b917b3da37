/* lab_main.c - qkd-lab: dispatch to a subcommand (up, status, down). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lab_cmds.h"

#ifndef QKD_KMS_VERSION
#define QKD_KMS_VERSION "0.1.0"
#endif

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} CMDS[] = {
    {"up", qk_lab_cmd_up, "create and start a lab (PKI, configs, KMEs, simulator, lab.json)"},
    {"status", qk_lab_cmd_status, "show the lab's processes, pools and links"},
    {"down", qk_lab_cmd_down, "stop every process of the lab"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-lab COMMAND --dir DIR [OPTIONS]\n       qkd-lab COMMAND --help\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        fprintf(f, "  %-7s %s\n", CMDS[i].name, CMDS[i].summary);
    fprintf(f, "See docs/lab.md.\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed output pipe must not stop `up` half-way */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qkd-lab %s\n", QKD_KMS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        if (!strcmp(argv[1], CMDS[i].name))
            return CMDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "qkd-lab: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
