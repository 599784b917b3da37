/* sim_cmd_ctl.c - `qkd-sim status` and `qkd-sim fault`: clients of the control API. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "json_util.h"
#include "sim_cmds.h"
#include "sim_fault.h"

#define CTL_TIMEOUT_MS 5000

static void status_usage(FILE *f)
{
    fprintf(f, "usage: qkd-sim status --control URL [--json]\n"
               "Show each simulated link: state, QBER, delivered rate, bits delivered, faults.\n"
               "  --control URL  the simulator's control API, e.g. http://127.0.0.1:PORT\n"
               "  --json         print the raw JSON ({\"links\":[...]})\n"
               "  -h, --help     this text\n");
}

static void fault_usage(FILE *f)
{
    fprintf(f, "usage: qkd-sim fault --control URL --link ID FAULT [VALUE]\n"
               "Inject a fault into a running simulator. FAULT is one of:\n"
               "  down | up          stop / resume key production (telemetry state \"down\")\n"
               "  eve FRACTION       intercept-resend eavesdropper on FRACTION (0..1) of pulses\n"
               "  loss DB            extra channel loss in dB (0 removes it)\n"
               "  drop a|b|none      stop sending blocks to one end\n"
               "  corrupt a|b|none   send other bytes under the same block ID to one end\n"
               "  delay MS           wait MS before each delivery\n"
               "  clear              remove every fault\n"
               "Prints the link's new status as JSON. Exit: 0 done, 1 refused or unreachable,\n"
               "2 bad usage.\n");
}

static int valid_url(const char *u)
{
    return u && strncmp(u, "http://", 7) == 0 && strlen(u) < 256 && !strpbrk(u, " ?#");
}

/* One control API call; prints errors. Returns 0 and a malloc'ed body on HTTP 200. */
static int call(const char *method, const char *url, const char *body, char **out)
{
    *out = NULL;
    if (qk_http_global_init() != 0) {
        fprintf(stderr, "qkd-sim: libcurl initialisation failed\n");
        return 1;
    }
    qk_http_tls tls = {.timeout_ms = CTL_TIMEOUT_MS, .connect_timeout_ms = 2000};
    qk_err err;
    qk_err_clear(&err);
    qk_http_client *c = qk_http_client_new(&tls, &err);
    int rc = 1;
    if (!c) {
        fprintf(stderr, "qkd-sim: %s\n", err.msg);
        qk_http_global_cleanup();
        return 1;
    }
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    qk_http_response r;
    memset(&r, 0, sizeof r);
    if (qk_http_call(c, method, url, body, body ? strlen(body) : 0, body ? hdrs : NULL, &r, &err) !=
        0) {
        fprintf(stderr, "qkd-sim: %s: %s\n", url, err.msg);
    } else if (r.status != 200) {
        fprintf(stderr, "qkd-sim: %s: HTTP %ld %s\n", url, r.status, r.body ? r.body : "");
    } else {
        *out = strdup(r.body ? r.body : "");
        rc = *out ? 0 : 1;
    }
    qk_http_response_free(&r);
    qk_http_client_free(c);
    qk_http_global_cleanup();
    return rc;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

static int print_table(const char *body)
{
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = qk_json_parse(body, strlen(body), 4u << 20, &err);
    const cJSON *links = j ? cJSON_GetObjectItemCaseSensitive(j, "links") : NULL;
    if (!cJSON_IsArray(links)) {
        fprintf(stderr, "qkd-sim: unexpected status answer\n");
        cJSON_Delete(j);
        return 1;
    }
    printf("%-24s %-8s %8s %14s %16s %8s  %s\n", "LINK", "STATE", "QBER", "RATE_BPS",
           "DELIVERED_BITS", "BLOCKS", "FAULTS");
    const cJSON *l;
    cJSON_ArrayForEach(l, links)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(l, "faults");
        char faults[160] = "";
        if (cJSON_IsObject(f)) {
            const cJSON *down = cJSON_GetObjectItemCaseSensitive(f, "down");
            snprintf(faults, sizeof faults, "%s%s eve=%g loss=%gdB drop=%s corrupt=%s delay=%gms",
                     cJSON_IsTrue(down) ? "down" : "", cJSON_IsTrue(down) ? "," : "", num(f, "eve"),
                     num(f, "loss_db"), str(f, "drop"), str(f, "corrupt"), num(f, "delay_ms"));
        }
        printf("%-24s %-8s %8.4f %14.1f %16.0f %8.0f  %s\n", str(l, "id"), str(l, "state"),
               num(l, "qber"), num(l, "rate_bps"), num(l, "delivered_bits"), num(l, "blocks"),
               faults);
    }
    cJSON_Delete(j);
    return 0;
}

int qk_sim_cmd_status(int argc, char **argv)
{
    static const struct option lo[] = {
        {"control", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *control = NULL;
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'c')
            control = optarg;
        else if (ch == 'j')
            json = true;
        else if (ch == 'h') {
            status_usage(stdout);
            return 0;
        } else {
            status_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !valid_url(control)) {
        status_usage(stderr);
        return 2;
    }
    char url[320];
    snprintf(url, sizeof url, "%s/v1/status", control);
    char *body = NULL;
    if (call("GET", url, NULL, &body) != 0)
        return 1;
    int rc = 0;
    if (json)
        printf("%s\n", body);
    else
        rc = print_table(body);
    free(body);
    return rc;
}

static int valid_link(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.~-", *s))
            return 0;
    return 1;
}

int qk_sim_cmd_fault(int argc, char **argv)
{
    static const struct option lo[] = {
        {"control", required_argument, NULL, 'c'},
        {"link", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *control = NULL, *link = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
        if (ch == 'c')
            control = optarg;
        else if (ch == 'l')
            link = optarg;
        else if (ch == 'h') {
            fault_usage(stdout);
            return 0;
        } else {
            fault_usage(stderr);
            return 2;
        }
    }
    int rest = argc - optind;
    if (!valid_url(control) || !valid_link(link) || rest < 1 || rest > 2) {
        fault_usage(stderr);
        return 2;
    }
    const char *name = argv[optind], *value = rest == 2 ? argv[optind + 1] : NULL;
    /* Check locally first, for a clear usage error without a round trip. */
    qk_faults probe;
    qk_faults_clear(&probe);
    qk_err err;
    qk_err_clear(&err);
    if (qk_fault_apply(&probe, name, value, &err) != 0) {
        fprintf(stderr, "qkd-sim: %s\n", err.msg);
        fault_usage(stderr);
        return 2;
    }
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddStringToObject(b, "fault", name) ||
        (value && !cJSON_AddStringToObject(b, "value", value))) {
        cJSON_Delete(b);
        fprintf(stderr, "qkd-sim: out of memory\n");
        return 1;
    }
    char *body = qk_json_print(b);
    cJSON_Delete(b);
    if (!body) {
        fprintf(stderr, "qkd-sim: out of memory\n");
        return 1;
    }
    char url[400];
    snprintf(url, sizeof url, "%s/v1/links/%s/fault", control, link);
    char *resp = NULL;
    int rc = call("POST", url, body, &resp);
    free(body);
    if (rc == 0)
        printf("%s\n", resp);
    free(resp);
    return rc;
}
