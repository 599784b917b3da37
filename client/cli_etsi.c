/* cli_etsi.c - `qkd etsi status|enc|dec`: ETSI GS QKD 014 from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client_internal.h"
#include "secbuf.h"

#define MAX_ADDITIONAL 64

static void etsi_help(FILE *f);

static const char etsi_options[] =
    "ETSI GS QKD 014 V1.1.1; keys are printed one per line as \"KEY_ID KEY\".\n"
    "  -n, --number N        number of keys (default: the server's, 1)\n"
    "  -s, --size BITS       key size in bits (default: the server's key_size)\n"
    "  --additional ID       additional slave SAE ID (repeatable; POST only)\n"
    "  --ext-mandatory JSON  extension_mandatory, a JSON array of objects (POST only)\n"
    "  --ext-optional JSON   extension_optional, a JSON array of objects (POST only)\n"
    "  --get, --post         force the request form (default: GET when the request allows\n"
    "                        it, i.e. enc with only number/size and dec with one key ID)\n";

typedef struct {
    cli_conn cc;
    qkc_key_request req;
    const char *additional[MAX_ADDITIONAL];
    qkc_method method;
} etsi_opts;

static int parse_opts(int argc, char **argv, etsi_opts *o)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"number", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"additional", required_argument, NULL, 0x200},
        {"ext-mandatory", required_argument, NULL, 0x201},
        {"ext-optional", required_argument, NULL, 0x202},
        {"get", no_argument, NULL, 0x203},
        {"post", no_argument, NULL, 0x204},
        {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hn:s:", longopts, NULL)) != -1) {
        int r = cli_conn_option(&o->cc, opt, optarg);
        if (r < 0)
            return QKD_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'h':
            etsi_help(stdout);
            return -1;
        case 'n':
            if (cli_parse_int(optarg, 1, QKC_MAX_KEYS, "--number", &o->req.number) != 0)
                return QKD_EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_int(optarg, 1, (int64_t)QKC_MAX_KEY_SIZE * 8, "--size", &o->req.size) !=
                0)
                return QKD_EXIT_USAGE;
            break;
        case 0x200:
            if (o->req.n_additional == MAX_ADDITIONAL)
                return cli_usage_error("at most %d --additional IDs", MAX_ADDITIONAL);
            o->additional[o->req.n_additional++] = optarg;
            break;
        case 0x201:
            o->req.extension_mandatory = optarg;
            break;
        case 0x202:
            o->req.extension_optional = optarg;
            break;
        case 0x203:
            o->method = QKC_GET;
            break;
        case 0x204:
            o->method = QKC_POST;
            break;
        case ':':
            return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    o->req.additional_slave_SAE_IDs = o->additional;
    return 0;
}

static int print_status(const cli_conn *cc, const qkc_etsi_status *s)
{
    static const char *const names[] = {
        "key_size",     "stored_key_count", "max_key_count",   "max_key_per_request",
        "max_key_size", "min_key_size",     "max_SAE_ID_count"};
    const int64_t vals[] = {
        s->key_size,     s->stored_key_count, s->max_key_count,   s->max_key_per_request,
        s->max_key_size, s->min_key_size,     s->max_SAE_ID_count};
    if (cc->json) {
        cJSON *j = cJSON_CreateObject();
        bool ok = j && cJSON_AddStringToObject(j, "source_KME_ID", s->source_KME_ID) &&
                  cJSON_AddStringToObject(j, "target_KME_ID", s->target_KME_ID) &&
                  cJSON_AddStringToObject(j, "master_SAE_ID", s->master_SAE_ID) &&
                  cJSON_AddStringToObject(j, "slave_SAE_ID", s->slave_SAE_ID);
        for (size_t i = 0; ok && i < 7; i++)
            ok = cJSON_AddNumberToObject(j, names[i], (double)vals[i]) != NULL;
        if (ok && s->status_extension) {
            cJSON *x = cJSON_Parse(s->status_extension);
            ok = x && cJSON_AddItemToObject(j, "status_extension", x);
            if (!ok)
                cJSON_Delete(x);
        }
        if (!ok) {
            cJSON_Delete(j);
            fputs("qkd: out of memory\n", stderr);
            return QKD_EXIT_FAIL;
        }
        return cli_print_json(j);
    }
    printf("source_KME_ID        %s\n", s->source_KME_ID);
    printf("target_KME_ID        %s\n", s->target_KME_ID);
    printf("master_SAE_ID        %s\n", s->master_SAE_ID);
    printf("slave_SAE_ID         %s\n", s->slave_SAE_ID);
    for (size_t i = 0; i < 7; i++)
        printf("%-20s %lld\n", names[i], (long long)vals[i]);
    if (s->status_extension)
        printf("status_extension     %s\n", s->status_extension);
    return fflush(stdout) == 0 ? QKD_EXIT_OK : QKD_EXIT_FAIL;
}

static int print_keys(const cli_conn *cc, const qkc_key_set *ks)
{
    cli_encoding enc = cc->encoding == CLI_ENC_DEFAULT ? CLI_ENC_BASE64 : cc->encoding;
    cJSON *j = NULL, *arr = NULL;
    if (cc->json) {
        j = cJSON_CreateObject();
        arr = j ? cJSON_AddArrayToObject(j, "keys") : NULL;
        if (!arr || !cJSON_AddStringToObject(j, "encoding", cli_encoding_name(enc))) {
            cJSON_Delete(j);
            fputs("qkd: out of memory\n", stderr);
            return QKD_EXIT_FAIL;
        }
    }
    for (size_t i = 0; i < ks->count; i++) {
        char *k = cli_encode(ks->keys[i].key, ks->keys[i].key_len, enc);
        if (!k) {
            qk_json_delete_wiped(j);
            fputs("qkd: out of secure memory\n", stderr);
            return QKD_EXIT_FAIL;
        }
        if (j) {
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddStringToObject(o, "key_ID", ks->keys[i].key_ID) ||
                !cJSON_AddStringToObject(o, "key", k) || !cJSON_AddItemToArray(arr, o)) {
                qk_json_delete_wiped(o);
                qk_secure_free(k);
                qk_json_delete_wiped(j);
                fputs("qkd: out of memory\n", stderr);
                return QKD_EXIT_FAIL;
            }
        } else {
            printf("%s %s\n", ks->keys[i].key_ID, k);
        }
        qk_secure_free(k);
    }
    if (j && ks->key_container_extension) {
        cJSON *x = cJSON_Parse(ks->key_container_extension);
        if (!x || !cJSON_AddItemToObject(j, "key_container_extension", x))
            cJSON_Delete(x);
    }
    if (j)
        return cli_print_json(j);
    return fflush(stdout) == 0 ? QKD_EXIT_OK : QKD_EXIT_FAIL;
}

/* status and dec take none of enc's own options. */
static int not_enc(const etsi_opts *o)
{
    if (o->req.number || o->req.size || o->req.n_additional || o->req.extension_mandatory ||
        o->req.extension_optional)
        return cli_usage_error("--number/--size/--additional/--ext-* belong to etsi enc");
    return 0;
}

static int status_run(etsi_opts *o, int npos, char **pos)
{
    if (npos < 1)
        return cli_usage_error("etsi status needs the slave SAE ID");
    if (npos > 1)
        return cli_usage_error("etsi status takes one SAE ID");
    int rc = not_enc(o);
    if (rc != 0)
        return rc;
    if (o->method != QKC_AUTO)
        return cli_usage_error("etsi status is always a GET");
    qkc_client *c;
    if ((rc = cli_conn_client(&o->cc, CLI_API_ETSI, &c)) != 0)
        return rc;
    qkc_error e;
    qkc_etsi_status s;
    rc = qkc_etsi_status_get(c, pos[0], &s, &e);
    rc = rc ? cli_report(&o->cc, &e) : print_status(&o->cc, &s);
    qkc_etsi_status_free(&s);
    qkc_client_free(c);
    return rc;
}

/* Shared by enc and dec once the client is made: print or report, free. */
static int keys_done(const etsi_opts *o, qkc_client *c, int call_rc, qkc_key_set *ks,
                     const qkc_error *e)
{
    int rc = call_rc ? cli_report(&o->cc, e) : print_keys(&o->cc, ks);
    qkc_key_set_free(ks);
    qkc_client_free(c);
    return rc;
}

static int enc_run(etsi_opts *o, int npos, char **pos)
{
    if (npos < 1)
        return cli_usage_error("etsi enc needs the slave SAE ID");
    if (npos > 1)
        return cli_usage_error("etsi enc takes one SAE ID");
    qkc_client *c;
    int rc = cli_conn_client(&o->cc, CLI_API_ETSI, &c);
    if (rc != 0)
        return rc;
    qkc_error e;
    qkc_key_set ks;
    rc = qkc_etsi_get_keys(c, pos[0], &o->req, o->method, &ks, &e);
    return keys_done(o, c, rc, &ks, &e);
}

static int dec_run(etsi_opts *o, int npos, char **pos)
{
    if (npos < 1)
        return cli_usage_error("etsi dec needs the master SAE ID");
    if (npos < 2)
        return cli_usage_error("etsi dec needs at least one key ID");
    int rc = not_enc(o);
    if (rc != 0)
        return rc;
    qkc_client *c;
    if ((rc = cli_conn_client(&o->cc, CLI_API_ETSI, &c)) != 0)
        return rc;
    qkc_error e;
    qkc_key_set ks;
    rc = qkc_etsi_get_keys_with_ids(c, pos[0], (const char *const *)pos + 1, (size_t)npos - 1,
                                    o->method, &ks, &e);
    return keys_done(o, c, rc, &ks, &e);
}

/* argv[0] is the command ("enc"): parse the options, run it on the positional arguments. */
static int with_opts(int argc, char **argv, int (*run)(etsi_opts *o, int npos, char **pos))
{
    etsi_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, &o);
    if (rc == 0)
        rc = run(&o, argc - optind, argv + optind);
    else if (rc < 0)
        rc = QKD_EXIT_OK; /* --help */
    cli_conn_free(&o.cc);
    return rc;
}

static int etsi_status(int argc, char **argv)
{
    return with_opts(argc, argv, status_run);
}

static int etsi_enc(int argc, char **argv)
{
    return with_opts(argc, argv, enc_run);
}

static int etsi_dec(int argc, char **argv)
{
    return with_opts(argc, argv, dec_run);
}

/* ETSI GS QKD 014 V1.1.1 clause 5: the three methods of the API. */
static const cli_cmd etsi_cmds[] = {
    {"status", etsi_status, "SLAVE_SAE_ID [options]",
     "Get status (clause 5.1): the link from the calling master SAE to SLAVE_SAE_ID"},
    {"enc", etsi_enc,
     "SLAVE_SAE_ID [--number N] [--size BITS] [--additional ID]...\n"
     "                    [--ext-mandatory JSON] [--ext-optional JSON] [--get|--post] [options]",
     "Get key (clause 5.2), as the master SAE"},
    {"dec", etsi_dec, "MASTER_SAE_ID KEY_ID... [--get|--post] [options]",
     "Get key with key IDs (clause 5.3), as a slave SAE"},
};

#define N_ETSI_CMDS (sizeof etsi_cmds / sizeof etsi_cmds[0])

/* Synopsis and commands: after an unknown command (on stderr) and atop the help. */
static void etsi_usage(FILE *f)
{
    cli_cmd_synopsis(f, "qkd etsi", etsi_cmds, N_ETSI_CMDS);
    qk_cli_list(f, etsi_cmds, N_ETSI_CMDS);
}

static void etsi_help(FILE *f)
{
    etsi_usage(f);
    fputs(etsi_options, f);
    fputs(cli_conn_help, f);
    fputs(cli_exit_help, f);
}

int cli_etsi_main(int argc, char **argv)
{
    if (argc < 2) {
        etsi_help(stderr);
        return QKD_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        etsi_help(stdout);
        return QKD_EXIT_OK;
    }
    const cli_cmd *cmd = cli_cmd_lookup(etsi_cmds, N_ETSI_CMDS, "etsi", argv[1], etsi_usage);
    return cmd ? cmd->fn(argc - 1, argv + 1) : QKD_EXIT_USAGE;
}
