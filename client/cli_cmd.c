/* cli_cmd.c - `qkd` subcommand tables: lookup and usage lines from a table (the pattern of
 * wireguard-tools' src/wg.c + subcommands.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const cli_cmd *cli_cmd_find(const cli_cmd *cmds, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

void cli_cmd_synopsis(FILE *f, const char *prog, const cli_cmd *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s %s %s %s\n", i == 0 ? "Usage:" : "      ", prog, cmds[i].name,
                cmds[i].synopsis);
}

void cli_cmd_list(FILE *f, const cli_cmd *cmds, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(cmds[i].name);
        if (l > (size_t)w && l < 32)
            w = (int)l;
    }
    fputs("Commands:\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-*s  %s\n", w, cmds[i].name, cmds[i].description);
}

const cli_cmd *cli_cmd_lookup(const cli_cmd *cmds, size_t n, const char *group, const char *name,
                              void (*usage)(FILE *f))
{
    const cli_cmd *c = cli_cmd_find(cmds, n, name);
    if (!c) {
        fprintf(stderr, "qkd: unknown %s%scommand '%s'\n", group ? group : "", group ? " " : "",
                name);
        usage(stderr);
    }
    return c;
}
