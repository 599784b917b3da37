/* cli.h - the `qkd` command-line tool: shared pieces of the subcommands (connection options,
 * lab manifest lookup, output, exit codes). */
#ifndef QKD_CLI_H
#define QKD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qk_cli.h"
#include "qkdclient.h"

/* Exit codes (documented in `qkd --help` and qkd(1)). */
enum {
    QKD_EXIT_OK = 0,
    QKD_EXIT_FAIL = 1,      /* local failure (out of memory, output error) */
    QKD_EXIT_USAGE = 2,     /* bad command line, unreadable credential or lab file */
    QKD_EXIT_TLS = 3,       /* TLS handshake, certificate or PSK failure */
    QKD_EXIT_CONNECT = 4,   /* connection refused, DNS failure, timeout */
    QKD_EXIT_HTTP = 5,      /* the server answered with an HTTP error */
    QKD_EXIT_MALFORMED = 6, /* the server's answer does not match the API */
};

typedef enum { CLI_API_ETSI, CLI_API_SKIP } cli_api;
typedef enum { CLI_ENC_DEFAULT, CLI_ENC_HEX, CLI_ENC_BASE64 } cli_encoding;

/* Options common to every subcommand that talks to a server. */
typedef struct {
    const char *url, *ca, *cert, *key;
    const char *psk_identity;
    uint8_t *psk; /* secure memory */
    size_t psk_len;
    bool psk_sha256;
    bool psk_auto; /* --psk-hash auto */
    int tls_min, tls_max;
    const char *ciphers, *tls13_suites;
    long timeout_ms;
    const char *lab_dir, *kme_id, *sae_id, *skip_client_id;
    bool json;
    cli_encoding encoding;
    qkc_lab lab;
    bool lab_loaded;
} cli_conn;

/* getopt_long entries for the common options (values >= 0x100); subcommands append theirs. */
#define CLI_CONN_LONGOPTS                                                                          \
    {"url", required_argument, NULL, 0x100}, {"ca", required_argument, NULL, 0x101},               \
        {"cert", required_argument, NULL, 0x102}, {"key", required_argument, NULL, 0x103},         \
        {"psk-identity", required_argument, NULL, 0x104},                                          \
        {"psk-hex", required_argument, NULL, 0x105}, {"psk-file", required_argument, NULL, 0x106}, \
        {"psk-sha256", no_argument, NULL, 0x107}, {"tls-min", required_argument, NULL, 0x108},     \
        {"tls-max", required_argument, NULL, 0x109}, {"ciphers", required_argument, NULL, 0x10a},  \
        {"tls13-ciphers", required_argument, NULL, 0x10b},                                         \
        {"timeout", required_argument, NULL, 0x10c}, {"lab", required_argument, NULL, 0x10d},      \
        {"kme", required_argument, NULL, 0x10e}, {"sae", required_argument, NULL, 0x10f},          \
        {"skip-client", required_argument, NULL, 0x110}, {"json", no_argument, NULL, 0x111},       \
        {"encoding", required_argument, NULL, 0x112},                                              \
        {"psk-hash", required_argument, NULL, 0x113},                                              \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* Help text for the common options. */
extern const char cli_conn_help[];
extern const char cli_exit_help[];

/* Handle one common option. 1 = handled, 0 = not a common option, -1 = bad value (message
 * printed). arg is writable: a --psk-hex value is wiped in place once decoded. */
int cli_conn_option(cli_conn *cc, int opt, char *arg);
/* Resolve options (and the lab manifest) into a client. Exit code (0 on success). */
int cli_conn_client(cli_conn *cc, cli_api api, qkc_client **out);
void cli_conn_free(cli_conn *cc);

/* Strict decimal integer in [min, max]; prints a usage message naming `what` on error. */
int cli_parse_int(const char *s, int64_t min, int64_t max, const char *what, int64_t *out);

/* Map an error class to an exit code. */
int cli_exit_code(qkc_errclass cls);
/* Report a failed call on stderr (and, with --json, as {"error":{...}} on stdout). Returns
 * the exit code. */
int cli_report(const cli_conn *cc, const qkc_error *e);
/* Print "qkd: MSG" and return QKD_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Encode key bytes; returns secure memory (free with qk_secure_free) or NULL. */
char *cli_encode(const uint8_t *b, size_t n, cli_encoding enc);
const char *cli_encoding_name(cli_encoding enc);
/* Print a cJSON tree (pretty) on stdout, then wipe its strings and the text and delete it.
 * Returns an exit code. */
int cli_print_json(void *cjson_tree);

/* A subcommand table entry, the one of every qkd-kms tool (common/qk_cli.h: name, fn, synopsis,
 * summary): `qkd` chooses etsi / skip / conform from one table, and each of them its own
 * subcommand from a second one; qk_cli_find and qk_cli_list (the "Commands:" list) serve them. */
typedef qk_cli_cmd cli_cmd;

/* "Usage: PROG NAME SYNOPSIS" for the first entry, the same indented for the others. */
void cli_cmd_synopsis(FILE *f, const char *prog, const cli_cmd *cmds, size_t n);
/* qk_cli_find; when nothing is called name, "qkd: unknown GROUP command 'NAME'" (group may be
 * NULL) and usage(stderr), then NULL: the caller exits with QKD_EXIT_USAGE. */
const cli_cmd *cli_cmd_lookup(const cli_cmd *cmds, size_t n, const char *group, const char *name,
                              void (*usage)(FILE *f));

/* The groups: argv[0] is the group's name ("etsi", "skip"); argv[1] the subcommand. */
int cli_etsi_main(int argc, char **argv);
int cli_skip_main(int argc, char **argv);

#endif
