/* cli_conform.c - `qkd conform etsi|skip`: run the conformance checks against any ETSI GS QKD
 * 014 or SKIP server pair. Sides come from explicit options (--master-url ... / --a-url ...)
 * or from a qkd-lab manifest (--lab DIR, with optional --*-kme / --*-sae / --*-skip-client
 * choices). Exit 0 when no check failed, 1 when one did (or on a local failure), 2 on usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "codec.h"
#include "conform.h"
#include "secbuf.h"

static void conform_help(FILE *f);

static const char conform_options[] =
    "Runs named checks of every client-observable rule of ETSI GS QKD 014 or SKIP\n"
    "(draft-cisco-skip-02) against a pair of servers; each check passes, fails, warns\n"
    "(advisory rules) or is skipped, with evidence (requests, statuses, body excerpts; key\n"
    "bytes are never shown, only lengths and SHA-256 prefixes). See qkd(1), docs/conformance.md.\n"
    "\n"
    "ETSI 014 sides: master (calls enc_keys), slave (calls dec_keys), extra (an SAE that is\n"
    "not the slave: the 401 and multicast checks; by default at the slave's URL):\n"
    "  --master-url URL --master-cert F --master-key F --master-sae ID [--master-ca F]\n"
    "  --slave-url URL  --slave-cert F  --slave-key F  --slave-sae ID  [--slave-ca F]\n"
    "  --extra-url URL  --extra-cert F  --extra-key F  --extra-sae ID  [--extra-ca F]\n"
    "  --ca F                CA for every side without its own\n"
    "SKIP sides: A (the initiator's KP: GET /key), B (the responder's KP: GET /key/{keyId}):\n"
    "  --a-url URL [--a-ca F] (--a-psk-identity ID (--a-psk-hex HEX|--a-psk-file F)\n"
    "        [--a-psk-sha256] | --a-cert F --a-key F) [--a-remote-id ID]\n"
    "  --b-...               the same for B\n"
    "  --a-remote-id ID      the remoteSystemID A uses for B (default: B's localSystemID)\n"
    "  --probe-ca F          CA for the no-credentials probe (default: --a-ca or the lab CA)\n"
    "From a qkd-lab directory (explicit options override):\n"
    "  --lab DIR             sides from DIR/lab.json: by default the two KMEs of the first\n"
    "                        link, their first SAEs (extra: the slave KME's second SAE) and\n"
    "                        first SKIP clients\n"
    "  --master-kme ID --slave-kme ID --extra-kme ID --master-sae ID ... (ETSI)\n"
    "  --a-kme ID --b-kme ID --a-skip-client ID --b-skip-client ID (SKIP)\n"
    "Run options:\n"
    "  --only PATTERNS       comma-separated check IDs, globs (etsi.dec.*) or group prefixes\n"
    "  --no-consume          skip the checks that take keys from the server\n"
    "  --format F            text (default), json or junit (JUnit XML)\n"
    "  --output FILE         write the report there instead of stdout\n"
    "  --timeout SECONDS     per request (default 10)\n"
    "  --progress, --quiet   one line per check on stderr (default: when stderr is a terminal)\n"
    "  --list                list the checks (id, rule, reference) and exit\n"
    "  -h, --help            this help\n"
    "Exit status: 0 no check failed (warnings and skips allowed), 1 at least one check failed\n"
    "or a local failure (e.g. the report could not be written), 2 usage error.\n";

enum {
    F_URL,
    F_CA,
    F_CERT,
    F_KEY,
    F_ID,
    F_PSKID,
    F_PSKHEX,
    F_PSKFILE,
    F_PSK256,
    F_KME,
    F_CLIENT,
    F_N
};
static const char *const field_names[F_N] = {"url",        "ca",           "cert",       "key",
                                             NULL,         "psk-identity", "psk-hex",    "psk-file",
                                             "psk-sha256", "kme",          "skip-client"};
#define OPT_SIDE(s, f) (0x300 + (s)*0x20 + (f))

enum {
    O_FORMAT = 0x200,
    O_OUTPUT,
    O_ONLY,
    O_NOCONSUME,
    O_LIST,
    O_TIMEOUT,
    O_LAB,
    O_CA,
    O_PROBE_CA,
    O_PROGRESS,
    O_QUIET,
};

typedef struct {
    cf_api api;
    cf_ctx ctx;
    const char *opt[CF_SIDES][F_N];
    const char *ca, *lab_dir, *only, *output;
    cf_format fmt;
    bool list, progress_set, progress;
    qkc_lab lab;
    bool lab_loaded;
} conform_opts;

static const char *const etsi_prefix[CF_SIDES] = {"master", "slave", "extra"};
static const char *const skip_prefix[CF_SIDES] = {"a", "b", NULL};

static int set_psk(cf_side *sd, const char *hex, const char *what)
{
    size_t len = strlen(hex);
    while (len && (hex[len - 1] == '\n' || hex[len - 1] == '\r' || hex[len - 1] == ' '))
        len--;
    if (len < 2 || len > 128 || len % 2)
        return cli_usage_error("%s: the PSK must be 2..128 hex digits", what);
    qk_secure_free(sd->psk);
    sd->psk_len = 0;
    sd->psk = qk_secure_alloc(len / 2);
    if (!sd->psk)
        return QKD_EXIT_FAIL;
    if (qk_hex_decode(hex, len, sd->psk, len / 2, &sd->psk_len) != 0)
        return cli_usage_error("%s: the PSK is not hex", what);
    return 0;
}

static int read_psk(cf_side *sd, const char *path)
{
    size_t len = 0;
    uint8_t *text = qk_secure_read_file(path, 4096, 1, &len);
    if (!text)
        return cli_usage_error("psk file %s: %s", path,
                               errno == EPERM ? "group/world readable (chmod 600)"
                                              : strerror(errno));
    char *z = qk_secure_alloc(len + 1);
    int rc = QKD_EXIT_FAIL;
    if (z) {
        memcpy(z, text, len);
        z[len] = '\0';
        rc = set_psk(sd, z, path);
        qk_secure_free(z);
    }
    qk_secure_free(text);
    return rc;
}

/* Fill unset side options from the lab manifest. */
static int from_lab(conform_opts *o)
{
    qkc_error e;
    if (qkc_lab_load(o->lab_dir, &o->lab, &e) != 0) {
        fprintf(stderr, "qkd: %s\n", e.msg);
        return e.cls == QKC_EINTERNAL ? QKD_EXIT_FAIL : QKD_EXIT_USAGE;
    }
    o->lab_loaded = true;
    const char *dflt_kme[2] = {NULL, NULL};
    if (o->lab.n_links > 0) {
        dflt_kme[0] = o->lab.links[0].kmes[0];
        dflt_kme[1] = o->lab.links[0].kmes[1];
    } else if (o->lab.n_kmes > 1) {
        dflt_kme[0] = o->lab.kmes[0].id;
        dflt_kme[1] = o->lab.kmes[1].id;
    }
    if (!o->ca)
        o->ca = o->lab.ca_cert;
    if (!o->ctx.probe_ca)
        o->ctx.probe_ca = o->lab.ca_cert;
    int nsides = o->api == CF_API_ETSI ? 3 : 2;
    for (int s = 0; s < nsides; s++)
        if (!o->opt[s][F_KME])
            o->opt[s][F_KME] = s == CF_SIDE_EXTRA ? o->opt[CF_SIDE_SLAVE][F_KME] : dflt_kme[s];
    for (int s = 0; s < nsides; s++) {
        const char **f = o->opt[s];
        if (!f[F_KME])
            return cli_usage_error("lab %s: give --%s-kme ID", o->lab_dir,
                                   o->api == CF_API_ETSI ? etsi_prefix[s] : skip_prefix[s]);
        const qkc_lab_kme *k = qkc_lab_find_kme(&o->lab, f[F_KME]);
        if (!k)
            return cli_usage_error("lab %s has no KME %s", o->lab_dir, f[F_KME]);
        if (!f[F_URL])
            f[F_URL] = o->api == CF_API_ETSI ? k->etsi014_url : k->skip_url;
        if (!f[F_URL])
            return cli_usage_error("KME %s in lab %s has no %s URL", k->id, o->lab_dir,
                                   o->api == CF_API_ETSI ? "ETSI 014" : "SKIP");
        if (o->api == CF_API_ETSI) {
            size_t want = s == CF_SIDE_EXTRA ? 1 : 0;
            if (!f[F_ID] && k->n_saes > want)
                f[F_ID] = k->saes[want].id;
            const qkc_lab_sae *sae = f[F_ID] ? qkc_lab_find_sae(k, f[F_ID]) : NULL;
            if (sae && !f[F_CERT]) {
                f[F_CERT] = sae->cert;
                f[F_KEY] = sae->key;
            }
            if (!f[F_ID] && s == CF_SIDE_EXTRA) {
                f[F_URL] = NULL; /* no second SAE: no extra side */
                continue;
            }
            if (!sae && !f[F_CERT])
                return cli_usage_error("KME %s in lab %s has no SAE %s", k->id, o->lab_dir,
                                       f[F_ID] ? f[F_ID] : "(none)");
        } else {
            if (!f[F_CLIENT] && k->n_skip_clients > 0)
                f[F_CLIENT] = k->skip_clients[0].identity;
            const qkc_lab_skip_client *c =
                f[F_CLIENT] ? qkc_lab_find_skip_client(k, f[F_CLIENT]) : NULL;
            if (c && !f[F_PSKID] && !f[F_CERT]) {
                f[F_PSKID] = c->identity;
                cf_side *sd = &o->ctx.side[s];
                if (!sd->psk) {
                    sd->psk = qk_secure_alloc(c->psk_len);
                    if (!sd->psk)
                        return QKD_EXIT_FAIL;
                    memcpy(sd->psk, c->psk, c->psk_len);
                    sd->psk_len = c->psk_len;
                }
            }
            if (!f[F_ID]) /* the lab's KPs are named by their KME IDs */
                f[F_ID] = o->opt[1 - s][F_KME];
        }
    }
    return 0;
}

static int finish_sides(conform_opts *o)
{
    int nsides = o->api == CF_API_ETSI ? 3 : 2;
    for (int s = 0; s < nsides; s++) {
        const char **f = o->opt[s];
        cf_side *sd = &o->ctx.side[s];
        const char *name = o->api == CF_API_ETSI ? etsi_prefix[s] : skip_prefix[s];
        if (s == CF_SIDE_EXTRA) {
            if (!f[F_CERT] && !f[F_ID] && !f[F_URL])
                continue;
            if (!f[F_URL])
                f[F_URL] = o->opt[CF_SIDE_SLAVE][F_URL];
        }
        if (!f[F_URL])
            return cli_usage_error("no %s side: give --%s-url (or --lab DIR)", name, name);
        sd->url = f[F_URL];
        sd->cert = f[F_CERT];
        sd->key = f[F_KEY];
        sd->id = f[F_ID];
        sd->psk_identity = f[F_PSKID];
        sd->psk_sha256 = f[F_PSK256] != NULL;
        sd->ca = f[F_CA] ? f[F_CA] : (o->api == CF_API_ETSI || !sd->psk_identity ? o->ca : NULL);
        if ((sd->cert != NULL) != (sd->key != NULL))
            return cli_usage_error("--%s-cert and --%s-key go together", name, name);
        if ((sd->psk_identity != NULL) != (sd->psk != NULL))
            return cli_usage_error("--%s-psk-identity goes with --%s-psk-hex or --%s-psk-file",
                                   name, name, name);
        if (o->api == CF_API_ETSI) {
            if (!sd->cert || !sd->id)
                return cli_usage_error("the %s side needs --%s-cert/--%s-key and --%s-sae", name,
                                       name, name, name);
        } else if (!sd->cert && !sd->psk_identity) {
            return cli_usage_error("SKIP side %s needs a PSK (--%s-psk-identity) or a "
                                   "certificate (--%s-cert)",
                                   name, name, name);
        }
        if (!sd->ca && !sd->psk_identity)
            return cli_usage_error("the %s side needs a CA (--%s-ca or --ca)", name, name);
        const char *files[] = {sd->ca, sd->cert, sd->key};
        for (size_t i = 0; i < 3; i++)
            if (files[i] && access(files[i], R_OK) != 0)
                return cli_usage_error("cannot read %s: %s", files[i], strerror(errno));
        if (s == CF_SIDE_EXTRA)
            o->ctx.have_extra = true;
    }
    if (o->ctx.probe_ca && access(o->ctx.probe_ca, R_OK) != 0)
        return cli_usage_error("cannot read %s: %s", o->ctx.probe_ca, strerror(errno));
    return 0;
}

static int side_option(conform_opts *o, int opt, char *arg)
{
    int s = (opt - 0x300) / 0x20, f = (opt - 0x300) % 0x20;
    if (opt < 0x300 || s >= CF_SIDES || f >= F_N)
        return 0;
    const char *name = o->api == CF_API_ETSI ? etsi_prefix[s] : skip_prefix[s];
    if (f == F_PSKHEX) {
        int rc = set_psk(&o->ctx.side[s], arg, name);
        qk_wipe(arg, strlen(arg));
        return rc == 0 ? 1 : -1;
    }
    if (f == F_PSKFILE)
        return read_psk(&o->ctx.side[s], arg) == 0 ? 1 : -1;
    o->opt[s][f] = f == F_PSK256 ? "yes" : arg;
    return 1;
}

#define MAX_LONGOPTS 80

/* getopt_long table for the api: run options plus PREFIX-FIELD per side. */
static void build_longopts(cf_api api, struct option *lo, char names[][32])
{
    static const struct option run[] = {
        {"format", required_argument, NULL, O_FORMAT},
        {"output", required_argument, NULL, O_OUTPUT},
        {"only", required_argument, NULL, O_ONLY},
        {"no-consume", no_argument, NULL, O_NOCONSUME},
        {"list", no_argument, NULL, O_LIST},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"lab", required_argument, NULL, O_LAB},
        {"ca", required_argument, NULL, O_CA},
        {"probe-ca", required_argument, NULL, O_PROBE_CA},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, 'h'},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof run / sizeof run[0]; i++)
        lo[n++] = run[i];
    const char *const *prefix = api == CF_API_ETSI ? etsi_prefix : skip_prefix;
    for (int s = 0; s < CF_SIDES; s++) {
        if (!prefix[s])
            continue;
        for (int f = 0; f < F_N; f++) {
            const char *fname =
                f == F_ID ? (api == CF_API_ETSI ? "sae" : "remote-id") : field_names[f];
            bool skip_only =
                f == F_PSKID || f == F_PSKHEX || f == F_PSKFILE || f == F_PSK256 || f == F_CLIENT;
            if (api == CF_API_ETSI && skip_only)
                continue;
            snprintf(names[n], 32, "%s-%s", prefix[s], fname);
            lo[n].name = names[n];
            lo[n].has_arg = f == F_PSK256 ? no_argument : required_argument;
            lo[n].flag = NULL;
            lo[n].val = OPT_SIDE(s, f);
            n++;
        }
    }
    memset(&lo[n], 0, sizeof lo[n]);
}

static int parse_opts(int argc, char **argv, conform_opts *o)
{
    static struct option lo[MAX_LONGOPTS];
    static char names[MAX_LONGOPTS][32];
    build_longopts(o->api, lo, names);
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        int r = side_option(o, opt, optarg);
        if (r < 0)
            return QKD_EXIT_USAGE;
        if (r > 0)
            continue;
        int64_t v;
        switch (opt) {
        case 'h':
            conform_help(stdout);
            return -1;
        case O_FORMAT:
            if (strcmp(optarg, "text") == 0)
                o->fmt = CF_FMT_TEXT;
            else if (strcmp(optarg, "json") == 0)
                o->fmt = CF_FMT_JSON;
            else if (strcmp(optarg, "junit") == 0)
                o->fmt = CF_FMT_JUNIT;
            else
                return cli_usage_error("--format must be text, json or junit");
            break;
        case O_OUTPUT:
            o->output = optarg;
            break;
        case O_ONLY:
            o->only = optarg;
            break;
        case O_NOCONSUME:
            o->ctx.no_consume = true;
            break;
        case O_LIST:
            o->list = true;
            break;
        case O_TIMEOUT:
            if (cli_parse_int(optarg, 1, 3600, "--timeout", &v) != 0)
                return QKD_EXIT_USAGE;
            o->ctx.timeout_ms = (long)v * 1000;
            break;
        case O_LAB:
            o->lab_dir = optarg;
            break;
        case O_CA:
            o->ca = optarg;
            break;
        case O_PROBE_CA:
            o->ctx.probe_ca = optarg;
            break;
        case O_PROGRESS:
        case O_QUIET:
            o->progress_set = true;
            o->progress = opt == O_PROGRESS;
            break;
        case ':':
            return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

static void opts_free(conform_opts *o)
{
    cf_ctx_free(&o->ctx);
    if (o->lab_loaded)
        qkc_lab_free(&o->lab);
}

static int run(conform_opts *o)
{
    if (o->list)
        return cf_list(stdout, o->api, o->fmt == CF_FMT_JSON) == 0 ? QKD_EXIT_OK : QKD_EXIT_FAIL;
    int rc = o->lab_dir ? from_lab(o) : 0;
    if (rc == 0)
        rc = finish_sides(o);
    if (rc != 0)
        return rc;
    FILE *out = stdout;
    if (o->output && !(out = fopen(o->output, "w")))
        return cli_usage_error("cannot write %s: %s", o->output, strerror(errno));
    bool progress = o->progress_set ? o->progress : isatty(STDERR_FILENO);
    cf_run res;
    if (cf_run_checks(&o->ctx, o->only, progress ? stderr : NULL, &res) != 0) {
        fputs("qkd: out of memory\n", stderr);
        if (out != stdout)
            fclose(out);
        return QKD_EXIT_FAIL;
    }
    if (res.n == 0)
        rc = cli_usage_error("--only %s selects no check (see --list)", o->only);
    else if (cf_report(out, o->fmt, o->api, &res) != 0) {
        fputs("qkd: cannot write the report\n", stderr);
        rc = QKD_EXIT_FAIL;
    } else if (res.counts[CF_FAIL] > 0) {
        rc = QKD_EXIT_FAIL;
    }
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        fputs("qkd: cannot write the report\n", stderr);
        rc = QKD_EXIT_FAIL;
    }
    if (o->output || progress)
        fprintf(stderr, "qkd conform: %zu checks: %zu pass, %zu warn, %zu skip, %zu fail\n", res.n,
                res.counts[CF_PASS], res.counts[CF_WARN], res.counts[CF_SKIP], res.counts[CF_FAIL]);
    cf_run_free(&res);
    return rc;
}

/* argv[0] is the API's name: parse the options for api, run the checks. */
static int conform_api(cf_api api, int argc, char **argv)
{
    conform_opts o;
    memset(&o, 0, sizeof o);
    o.api = api;
    cf_ctx_init(&o.ctx, o.api);
    int rc = parse_opts(argc, argv, &o);
    if (rc == 0)
        rc = run(&o);
    else if (rc < 0)
        rc = QKD_EXIT_OK;
    opts_free(&o);
    return rc;
}

static int conform_etsi(int argc, char **argv)
{
    return conform_api(CF_API_ETSI, argc, argv);
}

static int conform_skip(int argc, char **argv)
{
    return conform_api(CF_API_SKIP, argc, argv);
}

static const cli_cmd conform_cmds[] = {
    {"etsi", conform_etsi, "[side options] [run options]", "ETSI GS QKD 014 V1.1.1 checks"},
    {"skip", conform_skip, "[side options] [run options]", "SKIP (draft-cisco-skip-02) checks"},
};
#define N_CONFORM_CMDS (sizeof conform_cmds / sizeof conform_cmds[0])

static void conform_usage(FILE *f)
{
    cli_cmd_synopsis(f, "qkd conform", conform_cmds, N_CONFORM_CMDS);
    fputs("       qkd conform etsi|skip --list [--format json]\n", f);
    qk_cli_list(f, conform_cmds, N_CONFORM_CMDS);
}

static void conform_help(FILE *f)
{
    conform_usage(f);
    fputs(conform_options, f);
}

int cli_conform_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        conform_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? QKD_EXIT_USAGE : QKD_EXIT_OK;
    }
    const cli_cmd *cmd =
        cli_cmd_lookup(conform_cmds, N_CONFORM_CMDS, "conform", argv[1], conform_usage);
    return cmd ? cmd->fn(argc - 1, argv + 1) : QKD_EXIT_USAGE;
}
