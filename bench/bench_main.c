/* qkd-bench - load generator and benchmark reports for qkd-kmed (bench/README.md).
 *   qkd-bench run --lab DIR ...      load the KMEs of a lab (or a baseline URL), report
 *   qkd-bench body --dir DIR ...     write the nginx baseline's fixed answers
 *   qkd-bench report ... CELL.json.. merge runs into a Markdown table and a JSON file
 *   qkd-bench store --dir DIR ...    key pairs against two key stores, no HTTP */
#include <stdio.h>
#include <string.h>

#include "bench_cmd.h"
#include "bench_store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-bench run|body|report|store [options]   (qkd-bench COMMAND --help)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return bench_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "body") == 0)
        return bench_body_main(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return bench_report_main(argc - 1, argv + 1);
    if (strcmp(cmd, "store") == 0)
        return bench_store_main(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
