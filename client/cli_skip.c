/* cli_skip.c - `qkd skip caps|key|key-by-id|entropy`: SKIP (draft-cisco-skip-02) from the
 * command line. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client_internal.h"
#include "secbuf.h"

static const char skip_usage[] =
    "Usage: qkd skip caps [options]\n"
    "       qkd skip key REMOTE_SYSTEM_ID [--size BITS] [options]\n"
    "       qkd skip key-by-id KEY_ID [REMOTE_SYSTEM_ID] [options]\n"
    "       qkd skip entropy [--minentropy BITS] [options]\n"
    "\n"
    "SKIP: caps = GET /capabilities, key = GET /key (a new key shared with the Key Provider\n"
    "REMOTE_SYSTEM_ID), key-by-id = GET /key/{keyId} (REMOTE_SYSTEM_ID: the initiator's KP),\n"
    "entropy = GET /entropy. Keys are printed as \"KEY_ID KEY\", entropy as its bytes.\n"
    "  -s, --size BITS       key size in bits (default: the server's, 256)\n"
    "  --minentropy BITS     entropy size in bits (default: the server's, 256)\n";

static void skip_help(void)
{
    fputs(skip_usage, stdout);
    fputs(cli_conn_help, stdout);
    fputs(cli_exit_help, stdout);
}

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
            skip_help();
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

static int oom(cJSON *j)
{
    qkc_json_wipe_delete(j);
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

static int run(const char *cmd, skip_opts *o, int npos, char **pos)
{
    enum { CAPS, KEY, KEY_BY_ID, ENTROPY, NONE } which = NONE;
    static const char *const names[] = {"caps", "key", "key-by-id", "entropy"};
    for (int i = 0; i < 4; i++)
        if (strcmp(cmd, names[i]) == 0)
            which = i;
    if (which == NONE)
        return cli_usage_error("unknown skip command '%s' (caps, key, key-by-id, entropy)", cmd);
    static const int min_pos[] = {0, 1, 1, 0}, max_pos[] = {0, 1, 2, 0};
    if (npos < min_pos[which] || npos > max_pos[which])
        return cli_usage_error("skip %s: wrong number of arguments", cmd);
    if (o->size && which != KEY)
        return cli_usage_error("--size belongs to skip key");
    if (o->minentropy && which != ENTROPY)
        return cli_usage_error("--minentropy belongs to skip entropy");
    qkc_client *c;
    int rc = cli_conn_client(&o->cc, CLI_API_SKIP, &c);
    if (rc != 0)
        return rc;
    qkc_error e;
    if (which == CAPS) {
        qkc_skip_caps caps;
        rc = qkc_skip_capabilities(c, &caps, &e);
        rc = rc ? cli_report(&o->cc, &e) : print_caps(&o->cc, &caps);
        qkc_skip_caps_free(&caps);
    } else if (which == ENTROPY) {
        qkc_skip_entropy en;
        rc = qkc_skip_get_entropy(c, o->minentropy, &en, &e);
        rc = rc ? cli_report(&o->cc, &e) : print_entropy(&o->cc, &en);
        qkc_skip_entropy_free(&en);
    } else {
        qkc_skip_key k;
        if (which == KEY)
            rc = qkc_skip_get_key(c, pos[0], o->size, &k, &e);
        else
            rc = qkc_skip_get_key_by_id(c, pos[0], npos > 1 ? pos[1] : NULL, &k, &e);
        rc = rc ? cli_report(&o->cc, &e) : print_key(&o->cc, &k);
        qkc_skip_key_free(&k);
    }
    qkc_client_free(c);
    return rc;
}

int cli_skip_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        skip_help();
        return argc < 2 ? QKD_EXIT_USAGE : QKD_EXIT_OK;
    }
    const char *cmd = argv[1];
    skip_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc - 1, argv + 1, &o);
    if (rc == 0)
        rc = run(cmd, &o, argc - 1 - optind, argv + 1 + optind);
    else if (rc < 0)
        rc = QKD_EXIT_OK;
    cli_conn_free(&o.cc);
    return rc;
}
