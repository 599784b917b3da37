/* qkd-bench - load generator and benchmark reports for qkd-kmed (bench/README.md). The
 * subcommand comes from a table, as in wireguard-tools' src/wg.c + subcommands.h. */
#include <stdio.h>
#include <string.h>

#include "bench_cmd.h"
#include "bench_store.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *description;
} cmds[] = {
    {"run", bench_cmd_run, "load the KMEs of a lab (or a baseline URL), report"},
    {"body", bench_body_main, "write the nginx baseline's fixed answers"},
    {"report", bench_report_main, "merge runs into a Markdown table and a JSON file"},
    {"store", bench_store_main, "key pairs against two key stores, no HTTP"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-bench COMMAND [options]\n"
               "       qkd-bench COMMAND --help\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-7s %s\n", cmds[i].name, cmds[i].description);
    fprintf(f, "See bench/README.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(name, cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "qkd-bench: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
