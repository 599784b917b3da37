/* listeners.c - TLS listeners of qkd-kmed: policy from the config, start/stop, port file. */
#include "listeners.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct qk_listeners {
    qk_tls_server *srv[QK_LST_COUNT];
    qk_psk_table psks[QK_LST_COUNT];
    qk_fp_map fps[QK_LST_COUNT];
};

/* TLS 1.2 suites of the skip listener (draft-cisco-skip-02 Table 1, plus the GCM PSK suites
 * Cisco IOS XE offers); TLS 1.3 keeps the front end's default (TLS_AES_256_GCM_SHA384 first). */
#define SKIP_TLS12_PSK                                                                             \
    "DHE-PSK-AES256-CBC-SHA384:DHE-PSK-AES256-CBC-SHA:PSK-AES256-GCM-SHA384:"                      \
    "DHE-PSK-AES256-GCM-SHA384"
#define SKIP_TLS12_CERT "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:AES256-SHA256"

static const char *skip_tls12_ciphers(qk_tls_mode mode)
{
    switch (mode) {
    case QK_TLS_MODE_PSK:
        return SKIP_TLS12_PSK;
    case QK_TLS_MODE_PSK_OR_MTLS:
        return SKIP_TLS12_PSK ":" SKIP_TLS12_CERT;
    default:
        return SKIP_TLS12_CERT;
    }
}

/* Load the PSK table and fingerprint map listener kind names into ls (start and check). */
static int load_tables(qk_listeners *ls, const qk_kmed_config *cfg, qk_listener_kind kind,
                       qk_err *err)
{
    const qk_listener_cfg *l = &cfg->listeners[kind];
    const char *name = qk_listener_kind_name(kind);
    if (l->psk_file[0] && qk_psk_table_load(l->psk_file, &ls->psks[kind], err) != 0)
        return qk_err_prefix(err, "%s listener", name);
    if (l->fingerprint_map[0] && qk_fp_map_load(l->fingerprint_map, &ls->fps[kind], err) != 0)
        return qk_err_prefix(err, "%s listener", name);
    return 0;
}

/* The front end's configuration of listener `kind` (its tables loaded into ls first). */
static void listener_config(qk_listeners *ls, const qk_kmed_config *cfg, qk_listener_kind kind,
                            qk_http_handler *handler, qk_listener_config *lc)
{
    const qk_listener_cfg *l = &cfg->listeners[kind];
    memset(lc, 0, sizeof *lc);
    lc->name = qk_listener_kind_name(kind);
    lc->bind_addr = l->host;
    lc->port = l->port;
    lc->tls.mode = l->mode;
    lc->tls.cert_file = l->cert[0] ? l->cert : NULL;
    lc->tls.key_file = l->key[0] ? l->key : NULL;
    lc->tls.ca_file = l->ca[0] ? l->ca : NULL;
    if (kind == QK_LST_SKIP)
        lc->tls.tls12_ciphers = skip_tls12_ciphers(l->mode);
    if (l->psk_file[0]) {
        lc->tls.psks = &ls->psks[kind];
        lc->tls.psk_hash = l->psk_hash;
    }
    if (l->fingerprint_map[0])
        lc->tls.fp_map = &ls->fps[kind];
    lc->handler = handler;
    lc->max_connections = l->max_connections;
    lc->max_pending_per_source = l->max_pending_per_source;
    lc->max_per_identity = l->max_connections_per_identity;
    lc->handshake_timeout_ms = l->handshake_timeout_ms;
    lc->header_timeout_ms = l->header_timeout_ms;
    lc->body_timeout_ms = l->body_timeout_ms;
    lc->idle_timeout_s = l->idle_timeout_s;
    lc->threads = l->threads;
    lc->max_body = l->max_body;
}

static int start_one(qk_listeners *ls, const qk_kmed_config *cfg, qk_listener_kind kind,
                     qk_http_handler *handler, qk_err *err)
{
    const qk_listener_cfg *l = &cfg->listeners[kind];
    const char *name = qk_listener_kind_name(kind);
    if (!handler)
        return qk_err_set(err, QK_EINVAL, "%s listener: not implemented yet", name);
    int rc = load_tables(ls, cfg, kind, err);
    if (rc != 0)
        return rc;
    qk_listener_config lc;
    listener_config(ls, cfg, kind, handler, &lc);
    if (qk_tls_server_start(&lc, &ls->srv[kind], err) != 0)
        return qk_err_prefix(err, "%s listener on %s:%u", name, l->host, l->port);
    QK_INFO("listener %s on %s port %u", name, l->host, qk_tls_server_port(ls->srv[kind]));
    return 0;
}

int qk_listeners_start(const qk_kmed_config *cfg, qk_http_handler *const handlers[QK_LST_COUNT],
                       qk_listeners **out, qk_err *err)
{
    *out = NULL;
    qk_listeners *ls = calloc(1, sizeof *ls);
    if (!ls)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    for (int k = 0; k < QK_LST_COUNT; k++) {
        if (!cfg->listeners[k].present)
            continue;
        int rc = start_one(ls, cfg, (qk_listener_kind)k, handlers[k], err);
        if (rc != 0) {
            qk_listeners_stop(ls);
            return rc;
        }
    }
    *out = ls;
    return 0;
}

int qk_listeners_check(const qk_kmed_config *cfg, qk_err *err)
{
    qk_listeners *ls = calloc(1, sizeof *ls);
    if (!ls)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    int rc = 0;
    for (int k = 0; k < QK_LST_COUNT && rc == 0; k++) {
        if (!cfg->listeners[k].present)
            continue;
        rc = load_tables(ls, cfg, (qk_listener_kind)k, err);
        if (rc != 0)
            break;
        /* The certificate, key, CA and PSK settings, loaded as start loads them. */
        qk_listener_config lc;
        listener_config(ls, cfg, (qk_listener_kind)k, NULL, &lc);
        rc = qk_tls_server_check(&lc, err);
        if (rc != 0)
            rc = qk_err_prefix(err, "%s listener", lc.name);
    }
    qk_listeners_stop(ls); /* frees (and wipes) what was loaded */
    return rc;
}

int qk_listeners_ports(const qk_listeners *ls, char sep, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return -1;
    out[0] = '\0';
    for (int k = 0; k < QK_LST_COUNT; k++) {
        if (!ls->srv[k])
            continue;
        int n =
            snprintf(out + len, cap - len, "%s=%u%c", qk_listener_kind_name((qk_listener_kind)k),
                     qk_tls_server_port(ls->srv[k]), sep);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
    }
    return 0;
}

int qk_listeners_write_port_file(const qk_listeners *ls, const char *path, qk_err *err)
{
    char tmp[4096];
    char ports[512];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return qk_err_set(err, QK_EINVAL, "port file name too long");
    if (qk_listeners_ports(ls, '\n', ports, sizeof ports) != 0)
        return qk_err_set(err, QK_EINVAL, "port list too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return qk_err_set(err, QK_EIO, "%s: %s", tmp, strerror(errno));
    int bad = fputs(ports, f) < 0;
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return qk_err_set(err, QK_EIO, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return qk_err_set(err, QK_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

/* The series NAME{listener="...",LABEL} of one stats field, for every running listener. */
static int tls_series(const qk_listeners *ls, FILE *f, const char *name, const char *label,
                      size_t field)
{
    int bad = 0;
    for (int k = 0; k < QK_LST_COUNT; k++) {
        if (!ls->srv[k])
            continue;
        qk_tls_server_stats st;
        qk_tls_server_get_stats(ls->srv[k], &st);
        uint64_t v;
        memcpy(&v, (const char *)&st + field, sizeof v);
        bad |=
            fprintf(f, "%s{listener=\"%s\"%s} %llu\n", name,
                    qk_listener_kind_name((qk_listener_kind)k), label, (unsigned long long)v) < 0;
    }
    return bad;
}

/* HELP and TYPE, then the series. */
static int tls_family(const qk_listeners *ls, FILE *f, const char *name, const char *type,
                      const char *help, const char *label, size_t field)
{
    int bad = fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
    return bad | tls_series(ls, f, name, label, field);
}

int qk_listeners_write_metrics(void *arg, FILE *f)
{
    const qk_listeners *ls = arg;
    if (!ls)
        return 0;
    int bad = tls_family(ls, f, "qkd_tls_connections_accepted_total", "counter",
                         "TCP connections accepted by the TLS front end.", "",
                         offsetof(qk_tls_server_stats, accepted));
    bad |= tls_family(ls, f, "qkd_tls_connections_refused_total", "counter",
                      "Connections refused at max_connections.", "",
                      offsetof(qk_tls_server_stats, refused_limit));
    bad |= tls_family(ls, f, "qkd_tls_connections_limited_total", "counter",
                      "Connections refused by a per-client budget: reason source (pending "
                      "handshakes of one address, max_pending_per_source) or identity "
                      "(max_connections_per_identity).",
                      ",reason=\"source\"", offsetof(qk_tls_server_stats, refused_source));
    bad |= tls_series(ls, f, "qkd_tls_connections_limited_total", ",reason=\"identity\"",
                      offsetof(qk_tls_server_stats, refused_identity));
    bad |= tls_family(ls, f, "qkd_tls_connections_evicted_total", "counter",
                      "Idle keep-alive connections closed to make room at max_connections.", "",
                      offsetof(qk_tls_server_stats, evicted_idle));
    bad |= tls_family(ls, f, "qkd_tls_deadline_closed_total", "counter",
                      "Connections closed at a request deadline: phase header (handshake + "
                      "headers, header_timeout) or body (body_timeout).",
                      ",phase=\"header\"", offsetof(qk_tls_server_stats, timeout_header));
    bad |= tls_series(ls, f, "qkd_tls_deadline_closed_total", ",phase=\"body\"",
                      offsetof(qk_tls_server_stats, timeout_body));
    bad |= tls_family(ls, f, "qkd_tls_connections", "gauge", "Connections open now.", "",
                      offsetof(qk_tls_server_stats, active));
    /* Two label values of one family: one HELP/TYPE, then the second series. */
    bad |= tls_family(ls, f, "qkd_tls_handshakes_total", "counter", "TLS handshakes, by result.",
                      ",result=\"ok\"", offsetof(qk_tls_server_stats, handshakes_ok));
    bad |= tls_series(ls, f, "qkd_tls_handshakes_total", ",result=\"failed\"",
                      offsetof(qk_tls_server_stats, handshakes_failed));
    bad |= tls_family(ls, f, "qkd_tls_psk13_handshakes_total", "counter",
                      "TLS 1.3 PSK handshakes, by the hash the client bound its PSK to "
                      "(RFC 8446 4.2.11; psk_hash = auto picks it per connection).",
                      ",hash=\"sha384\"", offsetof(qk_tls_server_stats, psk13_sha384));
    bad |= tls_series(ls, f, "qkd_tls_psk13_handshakes_total", ",hash=\"sha256\"",
                      offsetof(qk_tls_server_stats, psk13_sha256));
    return bad ? -1 : 0;
}

void qk_listeners_stop(qk_listeners *ls)
{
    if (!ls)
        return;
    /* The admin listener first (it renders the others' counters), then the rest. */
    for (int k = QK_LST_COUNT - 1; k >= 0; k--) {
        qk_tls_server_stop(ls->srv[k]);
        qk_psk_table_free(&ls->psks[k]);
        qk_fp_map_free(&ls->fps[k]);
    }
    free(ls);
}
