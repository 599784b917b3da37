/* qk_cli.c - the shared behaviour of the command-line tools (qk_cli.h). */
#include "qk_cli.h"

#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "version.h"

int qk_cli_version(const char *prog)
{
    printf("%s %s\n", prog, QKD_VERSION);
    return fflush(stdout) == 0 ? 0 : 1;
}

bool qk_cli_is_help(const char *arg)
{
    return arg &&
           (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0);
}

bool qk_cli_asks_version(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--version") == 0)
            return true;
    }
    return false;
}

const qk_cli_cmd *qk_cli_find(const qk_cli_cmd *cmds, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

void qk_cli_list(FILE *f, const qk_cli_cmd *cmds, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(cmds[i].name);
        if (l > (size_t)w && l < 32)
            w = (int)l;
    }
    fputs("Commands:\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-*s  %s\n", w, cmds[i].name, cmds[i].summary);
}

void qk_cli_usage(const qk_cli_tool *t, FILE *f)
{
    fprintf(f,
            "usage: %s COMMAND [OPTIONS]\n       %s COMMAND --help\n       %s --help | --version\n",
            t->prog, t->prog, t->prog);
    qk_cli_list(f, t->cmds, t->ncmds);
    fputs("Options:\n"
          "  -h, --help     print this text and exit\n"
          "      --version  print the version and exit\n",
          f);
    if (t->footer)
        fputs(t->footer, f);
}

/* `PROG NAME --help` for a subcommand without help of its own. */
static void table_usage(const qk_cli_tool *t, const qk_cli_cmd *c, FILE *f)
{
    fprintf(f, "usage: %s %s %s\n%s.\nExit status: 0 success, 1 failure, 2 usage error.\n", t->prog,
            c->name, c->synopsis ? c->synopsis : "", c->summary);
    if (t->footer)
        fputs(t->footer, f);
}

int qk_cli_sibling(const char *name, char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int w = snprintf(out, cap, "%s/%s", self, name);
    return (w < 0 || (size_t)w >= cap) ? -1 : 0;
}

int qk_cli_port_file(const char *path, const char *fmt, ...)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int bad = vfprintf(f, fmt, ap) < 0;
    va_end(ap);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int qk_cli_main(const qk_cli_tool *t, int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "%s: no command given\n", t->prog);
        qk_cli_usage(t, stderr);
        return QK_CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (qk_cli_is_help(name)) {
        qk_cli_usage(t, stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        return qk_cli_version(t->prog);
    const qk_cli_cmd *c = qk_cli_find(t->cmds, t->ncmds, name);
    if (!c) {
        fprintf(stderr, "%s: unknown %s '%s'\n", t->prog, name[0] == '-' ? "option" : "command",
                name);
        qk_cli_usage(t, stderr);
        return QK_CLI_EXIT_USAGE;
    }
    if (qk_cli_asks_version(argc - 1, argv + 1))
        return qk_cli_version(t->prog);
    if (t->table_help) {
        for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
            if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                table_usage(t, c, stdout);
                return 0;
            }
    }
    return c->fn(argc - 1, argv + 1);
}
