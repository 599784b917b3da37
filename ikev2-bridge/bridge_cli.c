/* bridge_cli.c - the qkd-bridge subcommands: run, status, rotate, check-config, vici,
 * macsec-render (see docs/qkd-bridge.md). */
#include "bridge_cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_daemon.h"
#include "codec.h"
#include "http_client.h"
#include "json_util.h"
#include "log.h"
#include "macsec_keys.h"
#include "qkdclient.h"
#include "secbuf.h"
#include "vici_client.h"

static volatile sig_atomic_t g_stop, g_rotate, g_hup;
static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}
static void on_usr1(int sig)
{
    (void)sig;
    g_rotate = 1;
}
static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

/* Options shared by the subcommands: -c CONF, --admin URL, --port-file F, --json, --key-id. */
typedef struct {
    const char *conf, *admin, *port_file, *key_id;
    bool json;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"admin", required_argument, NULL, 'a'},
                                       {"port-file", required_argument, NULL, 'p'},
                                       {"key-id", required_argument, NULL, 'k'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:a:p:k:j", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->conf = optarg;
            break;
        case 'a':
            o->admin = optarg;
            break;
        case 'p':
            o->port_file = optarg;
            break;
        case 'k':
            o->key_id = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int load_conf(const opts *o, qkb_config *cfg)
{
    qk_err e;
    qkb_config_defaults(cfg);
    if (!o->conf) {
        fprintf(stderr, "qkd-bridge: -c CONFIG is required\n");
        return 2;
    }
    if (qkb_config_load(o->conf, cfg, &e) != 0) {
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        return 2;
    }
    return 0;
}

int cmd_check(int argc, char **argv)
{
    opts o;
    qkb_config *cfg = malloc(sizeof *cfg);
    if (!cfg || parse_opts(argc, argv, &o)) {
        free(cfg);
        fprintf(stderr, "usage: qkd-bridge check-config -c CONFIG\n");
        return 2;
    }
    int rc = load_conf(&o, cfg);
    if (rc == 0)
        printf("%s: ok\n", o.conf);
    free(cfg);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o)) {
        fprintf(stderr, "usage: qkd-bridge run -c CONFIG [--port-file FILE]\n");
        return 2;
    }
    qkb_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = load_conf(&o, cfg);
    if (rc) {
        free(cfg);
        return rc;
    }
    qk_log_level lvl = QK_LOG_INFO;
    qk_log_level_parse(cfg->log_level, &lvl);
    if (qk_log_open(cfg->log_file[0] ? cfg->log_file : NULL, lvl, "qkd-bridge") != 0) {
        fprintf(stderr, "qkd-bridge: cannot open log %s: %s\n", cfg->log_file, strerror(errno));
        free(cfg);
        return 1;
    }
    if (qk_secure_init() != 0 || qkc_global_init() != 0) {
        QK_ERROR("library initialisation failed");
        free(cfg);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bridge *b = NULL;
    qk_err e;
    if (bridge_new(cfg, &b, &e) != 0) {
        QK_ERROR("cannot start: %s", e.msg);
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        free(cfg);
        return 1;
    }
    QK_INFO("qkd-bridge %s started: role %s, driver %s, admin port %u, channel port %u", cfg->name,
            cfg->role == QKB_INITIATOR ? "initiator" : "responder",
            cfg->driver == QKB_DRV_STRONGSWAN  ? "strongswan"
            : cfg->driver == QKB_DRV_LIBRESWAN ? "libreswan"
                                               : "macsec",
            bridge_admin_port(b), bridge_channel_port(b));
    if (o.port_file) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", o.port_file);
        FILE *f = fopen(tmp, "w");
        if (!f ||
            fprintf(f, "admin=%u\nbridge=%u\n", bridge_admin_port(b), bridge_channel_port(b)) < 0 ||
            fclose(f) != 0 || rename(tmp, o.port_file) != 0) {
            QK_ERROR("cannot write port file %s", o.port_file);
            bridge_free(b);
            free(cfg);
            return 1;
        }
    }
    bridge_run(b, &g_stop, &g_rotate, &g_hup);
    QK_INFO("stopping");
    bridge_free(b);
    qkc_global_cleanup();
    free(cfg);
    qk_log_close();
    return 0;
}

/* ---- admin client ------------------------------------------------------------------------- */

static int admin_call(const opts *o, const char *method, const char *path, qk_http_response *r)
{
    char url[300];
    if (o->admin) {
        snprintf(url, sizeof url, "%s%s", o->admin, path);
    } else {
        qkb_config *cfg = malloc(sizeof *cfg);
        if (!cfg)
            return 1;
        int rc = load_conf(o, cfg);
        if (rc == 0 && cfg->admin_port == 0) {
            fprintf(stderr, "qkd-bridge: [bridge] admin has port 0; use --admin URL\n");
            rc = 2;
        }
        if (rc == 0)
            snprintf(url, sizeof url, "http://%s:%u%s", cfg->admin_host, cfg->admin_port, path);
        free(cfg);
        if (rc)
            return rc;
    }
    qk_http_tls t = {.timeout_ms = 5000, .connect_timeout_ms = 2000, .max_response = 1 << 16};
    qk_err e;
    qk_http_client *c = qk_http_client_new(&t, &e);
    if (!c) {
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        return 1;
    }
    int rc = qk_http_request(c, method, url, NULL, 0, NULL, r, &e);
    qk_http_client_free(c);
    if (rc) {
        fprintf(stderr, "qkd-bridge: %s: %s\n", url, e.msg);
        return 1;
    }
    return 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int cmd_status(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) || (!o.conf && !o.admin)) {
        fprintf(stderr, "usage: qkd-bridge status (-c CONFIG | --admin URL) [--json]\n");
        return 2;
    }
    qk_http_response r = {0};
    int rc = admin_call(&o, "GET", "/status", &r);
    if (rc)
        return rc;
    if (r.status != 200) {
        fprintf(stderr, "qkd-bridge: admin answered HTTP %ld\n", r.status);
        qk_http_response_free(&r);
        return 1;
    }
    if (o.json) {
        printf("%s\n", r.body);
        qk_http_response_free(&r);
        return 0;
    }
    qk_err e;
    cJSON *j = qk_json_parse(r.body, r.body_len, 1 << 16, &e);
    qk_http_response_free(&r);
    if (!j) {
        fprintf(stderr, "qkd-bridge: bad status: %s\n", e.msg);
        return 1;
    }
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "sa");
    const cJSON *ppk = cJSON_GetObjectItemCaseSensitive(sa, "ppk_confirmed");
    const char *kid = jstr(j, "key_id");
    printf("bridge:        %s (%s, driver %s)\n", jstr(j, "name") ? jstr(j, "name") : "?",
           jstr(j, "role") ? jstr(j, "role") : "?", jstr(j, "driver") ? jstr(j, "driver") : "?");
    printf("current key:   %s\n", kid ? kid : "(none yet)");
    if (kid)
        printf("installed:     %s (%.0f s ago)\n", jstr(j, "installed_at"), jnum(j, "key_age_s"));
    printf("SA:            %s%s%s\n", jstr(sa, "state") ? jstr(sa, "state") : "?",
           jstr(sa, "ref") && *jstr(sa, "ref") ? " #" : "", jstr(sa, "ref") ? jstr(sa, "ref") : "");
    printf("PPK confirmed: %s\n", cJSON_IsTrue(ppk)    ? "yes"
                                  : cJSON_IsFalse(ppk) ? "NO"
                                                       : "not confirmable by this gateway");
    if (jstr(j, "next_rotation"))
        printf("next rotation: %s (in %.0f s)\n", jstr(j, "next_rotation"),
               jnum(j, "next_rotation_in_s"));
    printf("last error:    %s%s%s%s\n", jstr(j, "last_error") ? jstr(j, "last_error") : "none",
           jstr(j, "last_error_at") ? " (at " : "",
           jstr(j, "last_error_at") ? jstr(j, "last_error_at") : "",
           jstr(j, "last_error_at") ? ")" : "");
    printf("rotations:     %.0f ok, %.0f failed\n", jnum(j, "rotations_ok"),
           jnum(j, "rotations_failed"));
    cJSON_Delete(j);
    return 0;
}

int cmd_rotate(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) || (!o.conf && !o.admin)) {
        fprintf(stderr, "usage: qkd-bridge rotate (-c CONFIG | --admin URL)\n");
        return 2;
    }
    qk_http_response r = {0};
    int rc = admin_call(&o, "POST", "/rotate", &r);
    if (rc)
        return rc;
    rc = r.status == 202 ? 0 : 1;
    printf("%s\n", rc ? "rotation request refused" : "rotation requested");
    qk_http_response_free(&r);
    return rc;
}

/* ---- vici --------------------------------------------------------------------------------- */

static void print_tree(const vici_node *n, int depth)
{
    for (; n; n = n->next) {
        char v[512];
        switch (n->type) {
        case VICI_N_SECTION:
            printf("%*s%s {\n", depth * 2, "", n->name);
            print_tree(n->child, depth + 1);
            printf("%*s}\n", depth * 2, "");
            break;
        case VICI_N_KV:
            vici_printable(n->value, n->value_len, v, sizeof v);
            printf("%*s%s = %s\n", depth * 2, "", n->name, v);
            break;
        case VICI_N_LIST:
            printf("%*s%s = [", depth * 2, "", n->name);
            for (const vici_node *i = n->child; i; i = i->next) {
                vici_printable(i->value, i->value_len, v, sizeof v);
                printf(" %s", v);
            }
            printf(" ]\n");
            break;
        case VICI_N_ITEM:
            break;
        }
    }
}

static int print_event(void *ctx, const vici_node *ev)
{
    (void)ctx;
    print_tree(ev->child, 0);
    return 0;
}

int cmd_vici(int argc, char **argv)
{
    const char *stream = NULL;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--stream") == 0) {
        stream = argv[a + 1];
        a += 2;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: qkd-bridge vici [--stream EVENT] SOCKET COMMAND "
                        "[key=value | key=0xHEX | key[]=item | name{ | }]...\n");
        return 2;
    }
    const char *sock = argv[a], *cmd = argv[a + 1];
    vici_builder b;
    vici_builder_init(&b, 0);
    char open_list[256] = "";
    for (int i = a + 2; i < argc; i++) {
        char *arg = argv[i];
        size_t l = strlen(arg);
        char *eq = strchr(arg, '=');
        bool is_sec = !eq && l > 1 && arg[l - 1] == '{', is_end = !eq && strcmp(arg, "}") == 0;
        if (open_list[0] &&
            (is_sec || is_end || !eq || !strstr(arg, "[]=") ||
             strncmp(arg, open_list, strlen(open_list)) != 0 || arg[strlen(open_list)] != '[')) {
            vici_list_end(&b);
            open_list[0] = '\0';
        }
        if (is_sec) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(l - 1), arg);
            vici_section_start(&b, name);
        } else if (is_end) {
            vici_section_end(&b);
        } else if (eq) {
            char name[256];
            char *br = strstr(arg, "[]=");
            size_t nl = (size_t)((br && br < eq ? br : eq) - arg);
            snprintf(name, sizeof name, "%.*s", (int)nl, arg);
            const char *val = eq + 1;
            uint8_t bin[4096];
            size_t bl = 0;
            bool hex = strncmp(val, "0x", 2) == 0;
            if (hex && qk_hex_decode(val + 2, strlen(val + 2), bin, sizeof bin, &bl) != 0) {
                fprintf(stderr, "qkd-bridge: bad hex in %s\n", name);
                vici_builder_free(&b);
                return 2;
            }
            if (br && br < eq) {
                if (!open_list[0]) {
                    vici_list_start(&b, name);
                    snprintf(open_list, sizeof open_list, "%s", name);
                }
                if (hex)
                    vici_list_item(&b, bin, bl);
                else
                    vici_list_item_str(&b, val);
            } else if (hex) {
                vici_kv(&b, name, bin, bl);
            } else {
                vici_kv_str(&b, name, val);
            }
            qk_wipe(bin, sizeof bin);
        } else {
            fprintf(stderr, "qkd-bridge: bad argument %s\n", arg);
            vici_builder_free(&b);
            return 2;
        }
    }
    if (open_list[0])
        vici_list_end(&b);
    qk_err e;
    vici_conn *c = NULL;
    vici_node *resp = NULL;
    int rc = vici_connect(sock, 3000, &c, &e);
    if (rc == 0)
        rc = stream
                 ? vici_call_stream(c, cmd, &b, stream, print_event, NULL, 10000, 30000, &resp, &e)
                 : vici_call(c, cmd, &b, 60000, &resp, &e);
    vici_close(c);
    vici_builder_free(&b);
    if (rc) {
        fprintf(stderr, "qkd-bridge: %s\n", e.msg);
        return 1;
    }
    print_tree(resp->child, 0);
    bool ok = !vici_child(resp, "success", VICI_N_KV) || vici_success(resp);
    vici_tree_free(resp);
    return ok ? 0 : 1;
}

/* ---- macsec-render ------------------------------------------------------------------------ */

int cmd_macsec_render(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) || !o.key_id) {
        fprintf(stderr, "usage: qkd-bridge macsec-render -c CONFIG --key-id ID < KEYHEX\n");
        return 2;
    }
    qkb_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return 1;
    int rc = load_conf(&o, cfg);
    if (rc == 0 && cfg->driver != QKB_DRV_MACSEC) {
        fprintf(stderr, "qkd-bridge: [gateway] driver is not macsec\n");
        rc = 2;
    }
    char *hex = qk_secure_alloc(200);
    uint8_t *key = qk_secure_alloc(64);
    char *out = qk_secure_alloc(4096);
    size_t kl = 0, ckl = 0;
    uint8_t ckn[MACSEC_CKN_MAX];
    qk_err e;
    if (rc == 0 && (!hex || !key || !out))
        rc = 1;
    if (rc == 0 && !fgets(hex, 200, stdin)) {
        fprintf(stderr, "qkd-bridge: no key on stdin\n");
        rc = 2;
    }
    if (rc == 0) {
        hex[strcspn(hex, "\r\n")] = '\0';
        if (qk_hex_decode(hex, strlen(hex), key, 64, &kl) != 0 ||
            macsec_cak_check(kl, cfg->ms_cak_bits, &e) != 0 ||
            macsec_ckn_from_key_id(o.key_id, ckn, &ckl, &e) != 0) {
            fprintf(stderr, "qkd-bridge: bad key or key ID\n");
            rc = 2;
        }
    }
    long n = 0;
    if (rc == 0) {
        if (cfg->ms_mode == QKB_MACSEC_WPA) {
            macsec_wpa_params p = {.ctrl_interface = cfg->ms_ctrl_interface,
                                   .port = cfg->ms_port,
                                   .priority = cfg->ms_priority,
                                   .replay_protect = 1};
            n = macsec_wpa_render(&p, key, kl, ckn, ckl, out, 4096, &e);
        } else {
            macsec_static_params p = {.dev = cfg->ms_device, .peer_port = cfg->ms_peer_port};
            memcpy(p.local_mac, cfg->ms_local_mac, 6);
            memcpy(p.peer_mac, cfg->ms_peer_mac, 6);
            p.an = ckn[0] % 4;
            n = macsec_static_batch(&p, key, kl, ckn, ckl, out, 4096, &e);
        }
        if (n < 0) {
            fprintf(stderr, "qkd-bridge: %s\n", e.msg);
            rc = 1;
        } else {
            fwrite(out, 1, (size_t)n, stdout);
        }
    }
    qk_secure_free(hex);
    qk_secure_free(key);
    qk_secure_free(out);
    free(cfg);
    return rc;
}
