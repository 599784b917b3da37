/* qk_cli.h - what every command-line tool of qkd-kms shares, so that they all answer alike:
 * `--help` prints the usage on stdout and exits 0, `--version` prints "PROG VERSION" (one
 * version, from the Makefile: version.h) and exits 0, a usage error prints the usage on stderr
 * and exits 2 (QK_CLI_EXIT_USAGE). A tool with subcommands (qkd-sim, qkd-lab, qkd-bench,
 * qkd-bridge) chooses them from a table, the pattern of wireguard-tools' src/wg.c +
 * subcommands.h; its usage lists them under "Commands:", one "  NAME  SUMMARY" line each (the
 * form tests/integration/cli_consistency.sh and the bash completion read). */
#ifndef QK_CLI_H
#define QK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define QK_CLI_EXIT_USAGE 2

/* One subcommand. fn gets the arguments from the subcommand's name on (argv[0] is the name)
 * and returns the exit status: 0 success, 1 failure, 2 usage error. */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *synopsis; /* what follows "PROG NAME" in its usage line */
    const char *summary;  /* one line for the command list */
} qk_cli_cmd;

typedef struct {
    const char *prog; /* "qkd-sim" */
    const qk_cli_cmd *cmds;
    size_t ncmds;
    const char *footer; /* printed after the command list (see also, files), or NULL */
    /* true: `PROG NAME --help` is answered here from the table (synopsis and summary), for
     * subcommands that print no help of their own. */
    bool table_help;
} qk_cli_tool;

/* Print "PROG VERSION" on stdout; returns 0 (the exit status). */
int qk_cli_version(const char *prog);
/* The usage of a tool: synopsis lines, the command list, the common options, the footer. */
void qk_cli_usage(const qk_cli_tool *t, FILE *f);
/* The entry called name (NULL: none), or NULL. */
const qk_cli_cmd *qk_cli_find(const qk_cli_cmd *cmds, size_t n, const char *name);
/* "Commands:" and one "  NAME  SUMMARY" line per entry, names aligned. */
void qk_cli_list(FILE *f, const qk_cli_cmd *cmds, size_t n);
/* true when arg is -h, --help or help. */
bool qk_cli_is_help(const char *arg);
/* true when "--version" is one of argv[1..argc-1] before a "--" (getopt_long permutes the
 * options, so a subcommand sees it wherever it stands). */
bool qk_cli_asks_version(int argc, char **argv);
/* DIR/name, DIR the folder of this program's binary (the /proc/self/exe link, proc(5)): how a
 * tool finds the others installed or built next to it. Returns 0, or -1 when the link cannot be
 * read or out is too small (whether DIR/name exists is not checked). */
int qk_cli_sibling(const char *name, char *out, size_t cap);
/* --port-file FILE: write the text made of fmt (e.g. "http=%u\n", one NAME=PORT line per
 * listener) to FILE.tmp and rename it over FILE (rename(2) is atomic: a reader polling FILE
 * sees all of it or nothing). Returns 0, or -1 with FILE.tmp removed. */
int qk_cli_port_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The main of a tool with subcommands: --help, --version, the subcommand from the table
 * (with `NAME --version` answered for every subcommand), usage errors. Returns the exit
 * status. */
int qk_cli_main(const qk_cli_tool *t, int argc, char **argv);

#endif
