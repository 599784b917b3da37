/* cli_skip.c - `qkd skip caps|key|key-by-id|entropy`: SKIP (draft-cisco-skip-02) from the
 * command line. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client_internal.h"
#include "secbuf.h"

static void skip_help(FILE *f);

static const char skip_options[] =
    "SKIP (draft-cisco-skip-02); keys are printed as \"KEY_ID KEY\", entropy as its bytes.\n"
    "  -s, --size BITS       key size in bits (default: the server's, 256)\n"
    "  --minentropy BITS     entropy size in bits (default: the server's, 256)\n";

typedef struct {
    cli_conn cc;
    int64_t size, minentropy;
} skip_opts;

static int parse_opts(int argc, char **argv, skip_opts *o)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"size", required_argument, NULL, 's'},
        {"minentropy", required_argument, NULL, 0x200},
        {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hs:", longopts, NULL)) != -1) {
        int r = cli_conn_option(&o->cc, opt, optarg);
        if (r < 0)
            return QKD_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'h':
            skip_help(stdout);
            return -1;
        case 's':
            if (cli_parse_int(optarg, 1, (int64_t)QKC_SKIP_MAX_BYTES * 8, "--size", &o->size))
                return QKD_EXIT_USAGE;
            break;
        case 0x200:
            if (cli_parse_int(optarg, 1, (int64_t)QKC_SKIP_MAX_BYTES * 8, "--minentropy",
                              &o->minentropy))
                return QKD_EXIT_USAGE;
            break;
        case ':':
            return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    return 0;
}

static bool has(const char *msg, const char *needle)
{
    return strcasestr(msg, needle) != NULL;
}

/* What a TLS failure most likely means, from the alert the server sent (RFC 8446 section 6.2;
 * OpenSSL names it in the error text) and the credentials this client offered; NULL when there
 * is nothing better to say than the error itself. The server's listener mode (kmed.conf
 * [listener skip] mode: psk, mtls, psk-or-mtls, server-cert) decides what it accepts. */
static const char *skip_tls_hint(const cli_conn *cc, const char *msg)
{
    bool psk = cc->psk_identity != NULL, cert = cc->cert != NULL;
    /* A server that refuses the client's (missing) certificate under TLS 1.3 may close the
     * connection before the client reads the alert: the client then sees the TCP connection
     * gone (client_conn.c classifies that as a TLS failure). */
    bool closed =
        has(msg, "getpeername") || has(msg, "unexpected eof") || has(msg, "connection reset");
    if (closed && cert)
        return "the server closed the connection in the TLS handshake: it refused the client "
               "certificate (issued by a CA in the server's ca file?) or takes only a PSK";
    if (has(msg, "certificate required") || closed)
        return psk ? "the server wants a client certificate and takes no PSK here (a listener "
                     "in mode mtls): pass --cert FILE --key FILE (or --sae ID with --lab), or "
                     "use a listener in mode psk or psk-or-mtls"
                   : "the server wants a client certificate: pass --cert FILE --key FILE (or "
                     "--sae ID with --lab), or use a PSK listener with --psk-identity ID";
    if (psk && has(msg, "illegal parameter"))
        return "the server knows this PSK identity but the PSK does not match (its binder did "
               "not verify): check --psk-hex/--psk-file against the server's psk_file entry";
    if (psk && has(msg, "handshake failure"))
        return "no PSK accepted: check --psk-identity (it must be in the server's psk_file) "
               "and the hash the entry is bound to (--psk-hash sha256 or auto); a listener in "
               "mode mtls or server-cert takes no PSK";
    if (!psk && has(msg, "handshake failure"))
        return cert ? "the server took no certificate and no PSK was offered (a listener in "
                      "mode psk?): pass --psk-identity ID with --psk-hex HEX or --psk-file FILE "
                      "(or --skip-client ID with --lab)"
                    : "the server wants credentials (a listener in mode psk?): pass "
                      "--psk-identity ID with --psk-hex HEX or --psk-file FILE (or "
                      "--skip-client ID with --lab), or --cert/--key for mtls";
    if (cert &&
        (has(msg, "unknown ca") || has(msg, "bad certificate") || has(msg, "certificate unknown")))
        return "the server refused the client certificate: it must be issued by a CA in the "
               "server's ca file";
    return NULL;
}

/* cli_report, then a hint line after a TLS failure. */
static int skip_report(const cli_conn *cc, const qkc_error *e)
{
    int rc = cli_report(cc, e);
    const char *hint = e->cls == QKC_ETLS ? skip_tls_hint(cc, e->msg) : NULL;
    if (hint)
        fprintf(stderr, "qkd: hint: %s\n", hint);
    return rc;
}

static int oom(cJSON *j)
{
    qk_json_delete_wiped(j);
    fputs("qkd: out of memory\n", stderr);
    return QKD_EXIT_FAIL;
}

static int print_caps(const cli_conn *cc, const qkc_skip_caps *c)
{
    if (cc->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *a = NULL;
        if (!j || !cJSON_AddBoolToObject(j, "entropy", c->entropy) ||
            !cJSON_AddBoolToObject(j, "key", c->key) ||
            !cJSON_AddStringToObject(j, "algorithm", c->algorithm) ||
            !cJSON_AddStringToObject(j, "localSystemID", c->localSystemID) ||
            !(a = cJSON_AddArrayToObject(j, "remoteSystemID")))
            return oom(j);
        for (size_t i = 0; i < c->n_remote; i++)
            if (!cJSON_AddItemToArray(a, cJSON_CreateString(c->remoteSystemID[i])))
                return oom(j);
        return cli_print_json(j);
    }
    printf("entropy         %s\n", c->entropy ? "yes" : "no");
    printf("key             %s\n", c->key ? "yes" : "no");
    printf("algorithm       %s\n", c->algorithm);
    printf("localSystemID   %s\n", c->localSystemID);
    printf("remoteSystemID ");
    for (size_t i = 0; i < c->n_remote; i++)
        printf(" %s", c->remoteSystemID[i]);
    printf("\n");
    return fflush(stdout) == 0 ? QKD_EXIT_OK : QKD_EXIT_FAIL;
}

static int print_key(const cli_conn *cc, const qkc_skip_key *k)
{
    cli_encoding enc = cc->encoding == CLI_ENC_DEFAULT ? CLI_ENC_HEX : cc->encoding;
    char *text = cli_encode(k->key, k->key_len, enc);
    if (!text)
        return oom(NULL);
    int rc;
    if (cc->json) {
        cJSON *j = cJSON_CreateObject();
        if (!j || !cJSON_AddStringToObject(j, "keyId", k->keyId) ||
            !cJSON_AddStringToObject(j, "key", text) ||
            !cJSON_AddStringToObject(j, "encoding", cli_encoding_name(enc)))
            rc = oom(j);
        else
            rc = cli_print_json(j);
    } else {
        printf("%s %s\n", k->keyId, text);
        rc = fflush(stdout) == 0 ? QKD_EXIT_OK : QKD_EXIT_FAIL;
    }
    qk_secure_free(text);
    return rc;
}

static int print_entropy(const cli_conn *cc, const qkc_skip_entropy *en)
{
    cli_encoding enc = cc->encoding == CLI_ENC_DEFAULT ? CLI_ENC_HEX : cc->encoding;
    char *text = cli_encode(en->bytes, en->len, enc);
    if (!text)
        return oom(NULL);
    int rc;
    if (cc->json) {
        cJSON *j = cJSON_CreateObject();
        if (!j || !cJSON_AddStringToObject(j, "randomStr", text) ||
            !cJSON_AddNumberToObject(j, "minentropy", (double)en->minentropy) ||
            !cJSON_AddStringToObject(j, "encoding", cli_encoding_name(enc)))
            rc = oom(j);
        else
            rc = cli_print_json(j);
    } else {
        printf("%s\n", text);
        rc = fflush(stdout) == 0 ? QKD_EXIT_OK : QKD_EXIT_FAIL;
    }
    qk_secure_free(text);
    return rc;
}

/* The checks every command makes: positional arguments in [min, max], --size only for key,
 * --minentropy only for entropy. */
static int check_args(const char *cmd, const skip_opts *o, int npos, int min, int max)
{
    if (npos < min || npos > max)
        return cli_usage_error("skip %s: wrong number of arguments", cmd);
    if (o->size && strcmp(cmd, "key") != 0)
        return cli_usage_error("--size belongs to skip key");
    if (o->minentropy && strcmp(cmd, "entropy") != 0)
        return cli_usage_error("--minentropy belongs to skip entropy");
    return 0;
}

static int caps_run(skip_opts *o, int npos, char **pos)
{
    (void)pos;
    qkc_client *c;
    int rc = check_args("caps", o, npos, 0, 0);
    if (rc != 0 || (rc = cli_conn_client(&o->cc, CLI_API_SKIP, &c)) != 0)
        return rc;
    qkc_error e;
    qkc_skip_caps caps;
    rc = qkc_skip_capabilities(c, &caps, &e);
    rc = rc ? skip_report(&o->cc, &e) : print_caps(&o->cc, &caps);
    qkc_skip_caps_free(&caps);
    qkc_client_free(c);
    return rc;
}

static int entropy_run(skip_opts *o, int npos, char **pos)
{
    (void)pos;
    qkc_client *c;
    int rc = check_args("entropy", o, npos, 0, 0);
    if (rc != 0 || (rc = cli_conn_client(&o->cc, CLI_API_SKIP, &c)) != 0)
        return rc;
    qkc_error e;
    qkc_skip_entropy en;
    rc = qkc_skip_get_entropy(c, o->minentropy, &en, &e);
    rc = rc ? skip_report(&o->cc, &e) : print_entropy(&o->cc, &en);
    qkc_skip_entropy_free(&en);
    qkc_client_free(c);
    return rc;
}

/* key and key-by-id: one key, printed the same way. */
static int key_run(skip_opts *o, int npos, char **pos, bool by_id)
{
    qkc_client *c;
    int rc = check_args(by_id ? "key-by-id" : "key", o, npos, 1, by_id ? 2 : 1);
    if (rc != 0 || (rc = cli_conn_client(&o->cc, CLI_API_SKIP, &c)) != 0)
        return rc;
    qkc_error e;
    qkc_skip_key k;
    if (by_id)
        rc = qkc_skip_get_key_by_id(c, pos[0], npos > 1 ? pos[1] : NULL, &k, &e);
    else
        rc = qkc_skip_get_key(c, pos[0], o->size, &k, &e);
    rc = rc ? skip_report(&o->cc, &e) : print_key(&o->cc, &k);
    qkc_skip_key_free(&k);
    qkc_client_free(c);
    return rc;
}

static int new_key_run(skip_opts *o, int npos, char **pos)
{
    return key_run(o, npos, pos, false);
}

static int key_by_id_run(skip_opts *o, int npos, char **pos)
{
    return key_run(o, npos, pos, true);
}

/* argv[0] is the command ("key"): parse the options, run it on the positional arguments. */
static int with_opts(int argc, char **argv, int (*run)(skip_opts *o, int npos, char **pos))
{
    skip_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, &o);
    if (rc == 0)
        rc = run(&o, argc - optind, argv + optind);
    else if (rc < 0)
        rc = QKD_EXIT_OK; /* --help */
    cli_conn_free(&o.cc);
    return rc;
}

static int skip_caps(int argc, char **argv)
{
    return with_opts(argc, argv, caps_run);
}

static int skip_key(int argc, char **argv)
{
    return with_opts(argc, argv, new_key_run);
}

static int skip_key_by_id(int argc, char **argv)
{
    return with_opts(argc, argv, key_by_id_run);
}

static int skip_entropy(int argc, char **argv)
{
    return with_opts(argc, argv, entropy_run);
}

/* The Key Provider's resources in draft-cisco-skip-02 (/key/{keyId} is the responder's side
 * of a /key that the initiator's Key Provider served). */
static const cli_cmd skip_cmds[] = {
    {"caps", skip_caps, "[options]", "GET /capabilities"},
    {"key", skip_key, "REMOTE_SYSTEM_ID [--size BITS] [options]",
     "GET /key: a new key shared with the Key Provider REMOTE_SYSTEM_ID"},
    {"key-by-id", skip_key_by_id, "KEY_ID [REMOTE_SYSTEM_ID] [options]",
     "GET /key/{keyId}: that key (REMOTE_SYSTEM_ID: the initiator's Key Provider)"},
    {"entropy", skip_entropy, "[--minentropy BITS] [options]", "GET /entropy"},
};
#define N_SKIP_CMDS (sizeof skip_cmds / sizeof skip_cmds[0])

/* Synopsis and commands: after an unknown command (on stderr) and atop the help. */
static void skip_usage(FILE *f)
{
    cli_cmd_synopsis(f, "qkd skip", skip_cmds, N_SKIP_CMDS);
    qk_cli_list(f, skip_cmds, N_SKIP_CMDS);
}

static void skip_help(FILE *f)
{
    skip_usage(f);
    fputs(skip_options, f);
    fputs(cli_conn_help, f);
    fputs(cli_exit_help, f);
}

int cli_skip_main(int argc, char **argv)
{
    if (argc < 2) {
        skip_help(stderr);
        return QKD_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        skip_help(stdout);
        return QKD_EXIT_OK;
    }
    const cli_cmd *cmd = cli_cmd_lookup(skip_cmds, N_SKIP_CMDS, "skip", argv[1], skip_usage);
    return cmd ? cmd->fn(argc - 1, argv + 1) : QKD_EXIT_USAGE;
}
