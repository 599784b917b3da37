/* cli_conn.c - `qkd` connection options: explicit URL and credentials, or everything from a
 * qkd-lab manifest (--lab DIR --kme ID --sae ID | --skip-client ID). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "codec.h"
#include "secbuf.h"

const char cli_conn_help[] =
    "Connection (explicit):\n"
    "  --url URL            server base URL, e.g. https://127.0.0.1:8443\n"
    "  --ca FILE            CA certificate(s) that verify the server\n"
    "  --cert FILE --key FILE   client certificate and key (mutual TLS)\n"
    "  --psk-identity ID    TLS-PSK identity, with --psk-hex HEX or --psk-file FILE\n"
    "                       (FILE holds hex, mode 0600); TLS 1.2 PSK suites and TLS 1.3\n"
    "                       TLS_AES_256_GCM_SHA384\n"
    "  --psk-hash H         hash the TLS 1.3 PSK is bound to: sha384 (default), sha256, or\n"
    "                       auto (SHA-384 first; on a TLS failure, once more with SHA-256\n"
    "                       and a warning on stderr)\n"
    "  --psk-sha256         the same as --psk-hash sha256\n"
    "  --tls-min V, --tls-max V   TLS version bounds: 1.2 or 1.3 (default 1.2..1.3)\n"
    "  --ciphers LIST       OpenSSL cipher list for TLS 1.2\n"
    "  --tls13-ciphers LIST TLS 1.3 cipher suites\n"
    "  --timeout SECONDS    whole-request timeout (default 10; decimals allowed)\n"
    "Connection (from a qkd-lab directory):\n"
    "  --lab DIR --kme ID   read DIR/lab.json: URL and CA of KME ID\n"
    "  --sae ID             the SAE's certificate and key (ETSI 014, or SKIP over mTLS)\n"
    "  --skip-client ID     the SKIP PSK client's identity and key (SKIP)\n"
    "  Explicit options given too override the manifest's values.\n"
    "Output:\n"
    "  --json               JSON on stdout (errors as {\"error\":{...}})\n"
    "  --encoding E         key encoding: hex or base64 (default: base64 for ETSI, hex for "
    "SKIP)\n"
    "  -h, --help           this help\n";

const char cli_exit_help[] =
    "Exit status: 0 success, 1 local failure, 2 usage error (also unreadable credential or\n"
    "lab files), 3 TLS failure, 4 connect or timeout failure, 5 HTTP error from the server\n"
    "(its message on stderr), 6 malformed response.\n";

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qkd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return QKD_EXIT_USAGE;
}

int cli_parse_int(const char *s, int64_t min, int64_t max, const char *what, int64_t *out)
{
    if (!s || !*s || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s))
        return cli_usage_error("%s must be a decimal integer", what);
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno || v < min || v > max)
        return cli_usage_error("%s must be in %lld..%lld", what, (long long)min, (long long)max);
    *out = v;
    return 0;
}

static int parse_tls_version(const char *s, int *out)
{
    if (strcmp(s, "1.2") == 0 || strcmp(s, "12") == 0)
        *out = 12;
    else if (strcmp(s, "1.3") == 0 || strcmp(s, "13") == 0)
        *out = 13;
    else
        return -1;
    return 0;
}

static int set_psk_hex(cli_conn *cc, const char *hex, size_t len, const char *what)
{
    while (len > 0 && (hex[len - 1] == '\n' || hex[len - 1] == '\r' || hex[len - 1] == ' '))
        len--;
    if (len < 2 || len > 128 || len % 2)
        return cli_usage_error("%s: the PSK must be 2..128 hex digits (1..64 bytes)", what);
    qk_secure_free(cc->psk);
    cc->psk_len = 0;
    cc->psk = qk_secure_alloc(len / 2);
    if (!cc->psk) {
        fputs("qkd: out of secure memory\n", stderr);
        return QKD_EXIT_FAIL;
    }
    if (qk_hex_decode(hex, len, cc->psk, len / 2, &cc->psk_len) != 0)
        return cli_usage_error("%s: the PSK is not hex", what);
    return 0;
}

static int read_psk_file(cli_conn *cc, const char *path)
{
    size_t len = 0;
    uint8_t *text = qk_secure_read_file(path, 4096, 1, &len);
    if (!text)
        return cli_usage_error("--psk-file %s: %s", path,
                               errno == EPERM ? "group/world readable (chmod 600)"
                                              : strerror(errno));
    int rc = set_psk_hex(cc, (const char *)text, len, "--psk-file");
    qk_secure_free(text);
    return rc;
}

int cli_conn_option(cli_conn *cc, int opt, char *arg)
{
    double secs;
    char *end;
    switch (opt) {
    case 0x100:
        cc->url = arg;
        return 1;
    case 0x101:
        cc->ca = arg;
        return 1;
    case 0x102:
        cc->cert = arg;
        return 1;
    case 0x103:
        cc->key = arg;
        return 1;
    case 0x104:
        cc->psk_identity = arg;
        return 1;
    case 0x105: {
        int rc = set_psk_hex(cc, arg, strlen(arg), "--psk-hex");
        qk_wipe(arg, strlen(arg)); /* hide it from ps and core files */
        return rc == 0 ? 1 : -1;
    }
    case 0x106:
        return read_psk_file(cc, arg) == 0 ? 1 : -1;
    case 0x107:
        cc->psk_sha256 = true;
        cc->psk_auto = false;
        return 1;
    case 0x113:
        if (strcmp(arg, "sha384") != 0 && strcmp(arg, "sha256") != 0 && strcmp(arg, "auto") != 0) {
            cli_usage_error("--psk-hash must be sha384, sha256 or auto");
            return -1;
        }
        cc->psk_sha256 = strcmp(arg, "sha256") == 0;
        cc->psk_auto = strcmp(arg, "auto") == 0;
        return 1;
    case 0x108:
    case 0x109:
        if (parse_tls_version(arg, opt == 0x108 ? &cc->tls_min : &cc->tls_max) != 0) {
            cli_usage_error("--tls-%s must be 1.2 or 1.3", opt == 0x108 ? "min" : "max");
            return -1;
        }
        return 1;
    case 0x10a:
        cc->ciphers = arg;
        return 1;
    case 0x10b:
        cc->tls13_suites = arg;
        return 1;
    case 0x10c:
        errno = 0;
        secs = strtod(arg, &end);
        if (errno || end == arg || *end || !(secs >= 0.1 && secs <= 3600)) {
            cli_usage_error("--timeout must be 0.1..3600 seconds");
            return -1;
        }
        cc->timeout_ms = (long)(secs * 1000);
        return 1;
    case 0x10d:
        cc->lab_dir = arg;
        return 1;
    case 0x10e:
        cc->kme_id = arg;
        return 1;
    case 0x10f:
        cc->sae_id = arg;
        return 1;
    case 0x110:
        cc->skip_client_id = arg;
        return 1;
    case 0x111:
        cc->json = true;
        return 1;
    case 0x112:
        if (strcmp(arg, "hex") == 0)
            cc->encoding = CLI_ENC_HEX;
        else if (strcmp(arg, "base64") == 0)
            cc->encoding = CLI_ENC_BASE64;
        else {
            cli_usage_error("--encoding must be hex or base64");
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

/* Fill unset options from the lab manifest. */
static int from_lab(cli_conn *cc, cli_api api)
{
    if (!cc->kme_id)
        return cli_usage_error("--lab needs --kme ID");
    qkc_error e;
    if (qkc_lab_load(cc->lab_dir, &cc->lab, &e) != 0) {
        fprintf(stderr, "qkd: %s\n", e.msg);
        return e.cls == QKC_EINTERNAL ? QKD_EXIT_FAIL : QKD_EXIT_USAGE;
    }
    cc->lab_loaded = true;
    const qkc_lab_kme *k = qkc_lab_find_kme(&cc->lab, cc->kme_id);
    if (!k)
        return cli_usage_error("lab %s has no KME %s", cc->lab_dir, cc->kme_id);
    if (!cc->url) {
        cc->url = api == CLI_API_ETSI ? k->etsi014_url : k->skip_url;
        if (!cc->url)
            return cli_usage_error("KME %s in lab %s has no %s URL", k->id, cc->lab_dir,
                                   api == CLI_API_ETSI ? "ETSI 014" : "SKIP");
    }
    if (cc->sae_id && !cc->cert) {
        const qkc_lab_sae *s = qkc_lab_find_sae(k, cc->sae_id);
        if (!s)
            return cli_usage_error("KME %s in lab %s has no SAE %s", k->id, cc->lab_dir,
                                   cc->sae_id);
        cc->cert = s->cert;
        cc->key = s->key;
    }
    if (cc->skip_client_id && !cc->psk_identity) {
        const qkc_lab_skip_client *s = qkc_lab_find_skip_client(k, cc->skip_client_id);
        if (!s)
            return cli_usage_error("KME %s in lab %s has no SKIP client %s", k->id, cc->lab_dir,
                                   cc->skip_client_id);
        cc->psk_identity = s->identity;
        if (!cc->psk) {
            cc->psk = qk_secure_alloc(s->psk_len);
            if (!cc->psk) {
                fputs("qkd: out of secure memory\n", stderr);
                return QKD_EXIT_FAIL;
            }
            memcpy(cc->psk, s->psk, s->psk_len);
            cc->psk_len = s->psk_len;
        }
    }
    /* PSK authenticates the server by itself: the lab CA is used with certificates only. */
    if (!cc->ca && !cc->psk_identity)
        cc->ca = cc->lab.ca_cert;
    if (api == CLI_API_ETSI && !cc->cert)
        return cli_usage_error("ETSI 014 needs --sae ID (or --cert/--key) with --lab");
    if (api == CLI_API_SKIP && !cc->cert && !cc->psk_identity)
        return cli_usage_error("SKIP needs --skip-client ID or --sae ID with --lab");
    return 0;
}

/* --psk-hash auto fell back: say so, since a SHA-256 binding is not what SKIP asks for. */
static void warn_psk_fallback(void *arg)
{
    (void)arg;
    fputs("qkd: warning: the server refused the PSK bound to SHA-384; retrying bound to SHA-256 "
          "(TLS_AES_128_GCM_SHA256). Use --psk-hash sha256 for this server, or configure it for "
          "SHA-384.\n",
          stderr);
}

int cli_conn_client(cli_conn *cc, cli_api api, qkc_client **out)
{
    *out = NULL;
    if (cc->lab_dir) {
        int rc = from_lab(cc, api);
        if (rc != 0)
            return rc;
    } else if (cc->kme_id || cc->sae_id || cc->skip_client_id) {
        return cli_usage_error("--kme, --sae and --skip-client need --lab DIR");
    }
    if (!cc->url)
        return cli_usage_error("no server: give --url URL or --lab DIR --kme ID");
    if ((cc->psk_identity != NULL) != (cc->psk != NULL))
        return cli_usage_error("--psk-identity goes with --psk-hex or --psk-file");
    if ((cc->cert != NULL) != (cc->key != NULL))
        return cli_usage_error("--cert and --key go together");
    if (!cc->ca && !cc->psk_identity)
        return cli_usage_error("--ca FILE is required unless a PSK authenticates the server");
    const char *files[] = {cc->ca, cc->cert, cc->key};
    for (size_t i = 0; i < 3; i++)
        if (files[i] && access(files[i], R_OK) != 0)
            return cli_usage_error("cannot read %s: %s", files[i], strerror(errno));
    qkc_options o = {
        .base_url = cc->url,
        .ca_file = cc->ca,
        .cert_file = cc->cert,
        .key_file = cc->key,
        .psk_identity = cc->psk_identity,
        .psk = cc->psk,
        .psk_len = cc->psk_len,
        .psk_sha256 = cc->psk_sha256,
        .psk_hash_auto = cc->psk_auto,
        .on_psk_fallback = warn_psk_fallback,
        .tls_min = cc->tls_min,
        .tls_max = cc->tls_max,
        .tls12_ciphers = cc->ciphers,
        .tls13_suites = cc->tls13_suites,
        .timeout_ms = cc->timeout_ms,
        .connect_timeout_ms = cc->timeout_ms && cc->timeout_ms < 5000 ? cc->timeout_ms : 0,
    };
    qkc_error e;
    *out = qkc_client_new(&o, &e);
    /* The client holds its own copy of the PSK. */
    qk_secure_free(cc->psk);
    cc->psk = NULL;
    cc->psk_len = 0;
    if (!*out)
        return cli_report(cc, &e);
    return 0;
}

void cli_conn_free(cli_conn *cc)
{
    qk_secure_free(cc->psk);
    if (cc->lab_loaded)
        qkc_lab_free(&cc->lab);
    memset(cc, 0, sizeof *cc);
}
