/* cli_cmd.c - `qkd` subcommand tables: lookup and usage lines from a table (the pattern of
 * wireguard-tools' src/wg.c + subcommands.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_cmd_synopsis(FILE *f, const char *prog, const cli_cmd *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s %s %s %s\n", i == 0 ? "Usage:" : "      ", prog, cmds[i].name,
                cmds[i].synopsis);
}

const cli_cmd *cli_cmd_lookup(const cli_cmd *cmds, size_t n, const char *group, const char *name,
                              void (*usage)(FILE *f))
{
    const cli_cmd *c = qk_cli_find(cmds, n, name);
    if (!c) {
        fprintf(stderr, "qkd: unknown %s%scommand '%s'\n", group ? group : "", group ? " " : "",
                name);
        usage(stderr);
    }
    return c;
}
