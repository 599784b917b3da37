/* dash_main.c - qkd-dash: the live dashboard of a qkd-lab lab (docs/dashboard.md). Reads
 * DIR/lab.json, polls every KME's admin /metrics and the simulator's control API, and serves
 * the page and its JSON on a loopback address through the project's front end in plain mode. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dash.h"
#include "dash_http.h"
#include "http_util.h"
#include "ini_config.h"
#include "log.h"
#include "qk_cli.h"
#include "secbuf.h"
#include "signals.h"
#include "tls_server.h"
#include "thread_name.h"

#define POLL_TIMEOUT_MS 800 /* a KME or the simulator slower than this reads as unreachable */

typedef struct {
    const char *lab, *bind, *port_file, *log, *sim;
    unsigned port, poll_ms;
    bool allow_remote;
    qk_log_level level;
} dash_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-dash --lab DIR [--bind ADDR] [--port N] [--port-file FILE]\n"
               "                [--poll-ms MS] [--log FILE] [--log-level LEVEL] [--qkd-sim PATH]\n"
               "                [--allow-remote]\n"
               "Serve the live dashboard of the lab in DIR (DIR/lab.json, qkd-dash(1)).\n"
               "  --lab DIR          the lab folder written by qkd-lab up\n"
               "  --bind ADDR        numeric address to listen on (default 127.0.0.1)\n"
               "  --port N           port (default 0: ephemeral)\n"
               "  --port-file FILE   write \"http=PORT\" once listening\n"
               "  --poll-ms MS       poll interval, 200..10000 (default 1000)\n"
               "  --log FILE         log file (default stderr)\n"
               "  --log-level LEVEL  debug, info (default), warn, error\n"
               "  --qkd-sim PATH     qkd-sim for the model curves (default: next to qkd-dash)\n"
               "  --allow-remote     allow a non-loopback --bind (the page can set faults)\n"
               "  -h, --help         this text\n"
               "      --version      print the version\n"
               "Stops on SIGTERM or SIGINT. Exit: 0 clean stop, 1 start-up failure, 2 usage.\n"
               "See qkd-dash(1).\n");
}

static bool loopback(const char *a)
{
    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0;
}

static int parse(int argc, char **argv, dash_opts *o)
{
    static const struct option lo[] = {
        {"lab", required_argument, NULL, 'l'},       {"bind", required_argument, NULL, 'b'},
        {"port", required_argument, NULL, 'p'},      {"port-file", required_argument, NULL, 'f'},
        {"poll-ms", required_argument, NULL, 'i'},   {"log", required_argument, NULL, 'L'},
        {"log-level", required_argument, NULL, 'v'}, {"qkd-sim", required_argument, NULL, 's'},
        {"allow-remote", no_argument, NULL, 'r'},    {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
    };
    qk_err err;
    qk_err_clear(&err);
    uint64_t v = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case 'l':
            o->lab = optarg;
            break;
        case 'b':
            o->bind = optarg;
            break;
        case 'p':
            rc = qk_parse_u64(optarg, 0, 65535, &v, &err);
            o->port = (unsigned)v;
            break;
        case 'f':
            o->port_file = optarg;
            break;
        case 'i':
            rc = qk_parse_u64(optarg, 200, 10000, &v, &err);
            o->poll_ms = (unsigned)v;
            break;
        case 'L':
            o->log = optarg;
            break;
        case 'v':
            if (qk_log_level_parse(optarg, &o->level) != 0)
                rc = qk_err_set(&err, QK_EINVAL, "--log-level: unknown level %s", optarg);
            break;
        case 's':
            o->sim = optarg;
            break;
        case 'r':
            o->allow_remote = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            return qk_cli_version("qkd-dash");
        default:
            usage(stderr);
            return 2;
        }
        if (rc != 0) {
            fprintf(stderr, "qkd-dash: %s\n", err.msg);
            return 2;
        }
    }
    if (optind != argc || !o->lab) {
        usage(stderr);
        return 2;
    }
    if (!loopback(o->bind) && !o->allow_remote) {
        fprintf(stderr, "qkd-dash: --bind %s is not a loopback address (add --allow-remote)\n",
                o->bind);
        return 2;
    }
    return -1;
}

typedef struct {
    dash_state *st;
    qk_http_client **clients;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
} poller;

static void *poll_thread(void *arg)
{
    QK_THREAD_NAME("qk-dash-poll");
    poller *p = arg;
    for (;;) {
        double t0 = qk_now_ms();
        dash_poll_once(p->st, p->clients);
        double next = t0 + p->st->poll_ms;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait_ms = next - qk_now_ms();
        if (wait_ms < 50)
            wait_ms = 50; /* never spin when a poll took longer than the interval */
        long ns = ts.tv_nsec + (long)(wait_ms * 1e6);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_mutex_lock(&p->mu);
        while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0)
            ;
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            return NULL;
    }
}

static int run(const dash_opts *o, const sigset_t *set)
{
    qk_err err;
    qk_err_clear(&err);
    dash_state *st = calloc(1, sizeof *st);
    if (!st || pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        QK_ERROR("out of memory");
        return 1;
    }
    st->poll_ms = o->poll_ms;
    int status = 1;
    size_t nclients = 0;
    qk_http_client *clients[DASH_MAX_KMES + 2] = {0};
    qk_tls_server *srv = NULL;
    pthread_t thr;
    bool thr_started = false;
    poller p = {.st = st, .clients = clients};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    dash_handler *h = calloc(1, sizeof *h);
    if (!h || pthread_mutex_init(&h->sim_mu, NULL) != 0) {
        QK_ERROR("out of memory");
        goto out;
    }
    if (dash_state_load(st, o->lab, &err) != 0) {
        QK_ERROR("%s", err.msg);
        goto out;
    }
    char sim[PATH_MAX];
    if (o->sim)
        snprintf(sim, sizeof sim, "%s", o->sim);
    else if (qk_cli_sibling("qkd-sim", sim, sizeof sim) != 0)
        sim[0] = '\0';
    dash_state_load_models(st, sim);
    /* Plain HTTP on loopback (KME admin listeners, the simulator's control API). */
    qk_http_tls plain = {.connect_timeout_ms = POLL_TIMEOUT_MS,
                         .timeout_ms = POLL_TIMEOUT_MS,
                         .max_response = 4u << 20};
    for (; nclients < st->nkmes + 2; nclients++) {
        clients[nclients] = qk_http_client_new(&plain, &err);
        if (!clients[nclients]) {
            QK_ERROR("http client: %s", err.msg);
            goto out;
        }
    }
    dash_handler_configure(h, st, clients[st->nkmes + 1]);
    qk_listener_config lc = {
        .name = "dashboard",
        .bind_addr = o->bind,
        .port = (uint16_t)o->port,
        .tls = {.mode = QK_TLS_MODE_NONE},
        .handler = &h->super,
        .max_connections = 32,
        .idle_timeout_s = 30,
        .threads = 2,
        .max_body = DASH_MAX_BODY,
    };
    if (qk_tls_server_start(&lc, &srv, &err) != 0) {
        QK_ERROR("listener: %s", err.msg);
        goto out;
    }
    if (pthread_create(&thr, NULL, poll_thread, &p) != 0) {
        QK_ERROR("cannot start the poller");
        goto out;
    }
    thr_started = true;
    uint16_t port = qk_tls_server_port(srv);
    QK_INFO("qkd-dash running: http://%s:%u/ for %s (%zu KMEs, %zu links, poll %u ms)", o->bind,
            (unsigned)port, st->lab_dir, st->nkmes, st->nlinks, st->poll_ms);
    if (o->port_file && qk_cli_port_file(o->port_file, "http=%u\n", (unsigned)port) != 0) {
        QK_ERROR("cannot write the port file %s", o->port_file);
        goto out;
    }
    (void)qk_signals_wait_stop(set, false);
    status = 0;
out:
    qk_tls_server_stop(srv);
    if (thr_started) {
        pthread_mutex_lock(&p.mu);
        p.stop = true;
        pthread_cond_signal(&p.cv);
        pthread_mutex_unlock(&p.mu);
        pthread_join(thr, NULL);
    }
    for (size_t i = 0; i < nclients; i++)
        qk_http_client_free(clients[i]);
    if (h)
        pthread_mutex_destroy(&h->sim_mu);
    free(h);
    pthread_mutex_destroy(&st->mu);
    free(st);
    QK_INFO("stopped");
    return status;
}

int main(int argc, char **argv)
{
    dash_opts o = {.bind = "127.0.0.1", .poll_ms = 1000, .level = QK_LOG_INFO};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    sigset_t set;
    rc = 1;
    if (qk_signals_block_stop(&set) != 0 || qk_secure_init() != 0 || qk_http_global_init() != 0) {
        fprintf(stderr, "qkd-dash: initialisation failed\n");
    } else if (qk_log_open(o.log, o.level, "qkd-dash") != 0) {
        fprintf(stderr, "qkd-dash: cannot open log %s\n", o.log);
    } else {
        rc = run(&o, &set);
        qk_log_close();
    }
    qk_http_global_cleanup();
    return rc;
}
