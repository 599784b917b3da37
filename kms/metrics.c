/* metrics.c - request counters, latency histogram and peer error counter. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LISTENERS 8  /* distinct listener names */
#define MAX_STATUSES  32 /* distinct statuses per listener; more are folded into status 0 */
#define NBUCKETS      13
#define MAX_LINKS     64 /* links with key byte counters */
#define LINK_ID_MAX   128
#define PATH_MAX_TEXT (16 * (LINK_ID_MAX + 1)) /* a relay path "A>B>...": 16 IDs */
#define LISTENER_MAX  63 /* longest listener name kept; longer names are truncated */

static const double bucket_bounds[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

typedef struct {
    char name[LISTENER_MAX + 1]; /* a copy: a stopped listener frees its own name */
    int statuses[MAX_STATUSES];
    uint64_t counts[MAX_STATUSES];
    size_t nstatuses;
    uint64_t buckets[NBUCKETS]; /* non-cumulative; rendered cumulative */
    uint64_t n;
    double sum_s;
} listener_stats;

typedef struct {
    char link[LINK_ID_MAX + 1];
    uint64_t bytes[2]; /* qk_key_flow */
} link_bytes;

struct qk_metrics {
    pthread_mutex_t mu;
    listener_stats ls[MAX_LISTENERS];
    size_t nls;
    atomic_uint_fast64_t peer_errors;
    atomic_uint_fast64_t peer_failures[QK_PEER_FAIL_COUNT];
    atomic_uint_fast64_t leases[QK_LEASE_RESULTS];
    atomic_uint_fast64_t notices_sent, notices_refused;
    link_bytes lb[MAX_LINKS];
    size_t nlb;
    atomic_uint_fast64_t relay_requests[QK_RELAY_RES_COUNT];
    link_bytes relay_lb[MAX_LINKS]; /* bytes[QK_KEY_CONSUMED] only */
    size_t nrelay_lb;
    struct {
        char path[PATH_MAX_TEXT + 1];
        uint64_t n;
    } routes[QK_METRICS_ROUTES_MAX + 1]; /* the last: "other" */
    size_t nroutes;
    int (*writer)(void *arg, FILE *f);
    void *writer_arg;
};

qk_metrics *qk_metrics_new(void)
{
    qk_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    atomic_init(&m->peer_errors, 0);
    for (int i = 0; i < QK_PEER_FAIL_COUNT; i++)
        atomic_init(&m->peer_failures[i], 0);
    for (int i = 0; i < QK_LEASE_RESULTS; i++)
        atomic_init(&m->leases[i], 0);
    atomic_init(&m->notices_sent, 0);
    atomic_init(&m->notices_refused, 0);
    for (int i = 0; i < QK_RELAY_RES_COUNT; i++)
        atomic_init(&m->relay_requests[i], 0);
    return m;
}

void qk_metrics_free(qk_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static listener_stats *find_listener(qk_metrics *m, const char *name)
{
    char key[LISTENER_MAX + 1];
    snprintf(key, sizeof key, "%s", name);
    for (size_t i = 0; i < m->nls; i++)
        if (strcmp(m->ls[i].name, key) == 0)
            return &m->ls[i];
    if (m->nls >= MAX_LISTENERS)
        return NULL;
    listener_stats *l = &m->ls[m->nls++];
    memset(l, 0, sizeof *l);
    memcpy(l->name, key, sizeof l->name);
    return l;
}

void qk_metrics_request(qk_metrics *m, const char *listener, int status, double latency_ms)
{
    if (!m || !listener)
        return;
    double s = latency_ms > 0 ? latency_ms / 1000.0 : 0.0;
    pthread_mutex_lock(&m->mu);
    listener_stats *l = find_listener(m, listener);
    if (l) {
        size_t i = 0;
        while (i < l->nstatuses && l->statuses[i] != status)
            i++;
        if (i == l->nstatuses) {
            if (l->nstatuses < MAX_STATUSES) {
                l->statuses[l->nstatuses++] = status;
            } else {
                i = MAX_STATUSES - 1; /* fold into the last slot */
            }
        }
        l->counts[i]++;
        size_t b = 0;
        while (b < NBUCKETS && s > bucket_bounds[b])
            b++;
        if (b < NBUCKETS)
            l->buckets[b]++;
        l->n++;
        l->sum_s += s;
    }
    pthread_mutex_unlock(&m->mu);
}

void qk_metrics_peer_error(qk_metrics *m)
{
    if (m)
        atomic_fetch_add(&m->peer_errors, 1);
}

uint64_t qk_metrics_peer_errors(qk_metrics *m)
{
    return m ? (uint64_t)atomic_load(&m->peer_errors) : 0;
}

void qk_metrics_peer_failure(qk_metrics *m, qk_peer_fail why)
{
    if (m && why >= 0 && why < QK_PEER_FAIL_COUNT)
        atomic_fetch_add(&m->peer_failures[why], 1);
}

uint64_t qk_metrics_peer_failures(qk_metrics *m, qk_peer_fail why)
{
    return m && why >= 0 && why < QK_PEER_FAIL_COUNT ? (uint64_t)atomic_load(&m->peer_failures[why])
                                                     : 0;
}

void qk_metrics_lease(qk_metrics *m, qk_lease_result r)
{
    if (m && r >= 0 && r < QK_LEASE_RESULTS)
        atomic_fetch_add(&m->leases[r], 1);
}

void qk_metrics_notices(qk_metrics *m, uint64_t sent, uint64_t refused)
{
    if (!m)
        return;
    atomic_fetch_add(&m->notices_sent, sent);
    atomic_fetch_add(&m->notices_refused, refused);
}

/* The counters of link in table t (n entries of MAX_LINKS), added if new; NULL when the table
 * is full or the ID is bad. Under m->mu. */
static link_bytes *link_entry(link_bytes *t, size_t *n, const char *link)
{
    size_t len = strnlen(link, LINK_ID_MAX + 1);
    if (len == 0 || len > LINK_ID_MAX)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(t[i].link, link) == 0)
            return &t[i];
    if (*n >= MAX_LINKS)
        return NULL;
    link_bytes *e = &t[(*n)++];
    memset(e, 0, sizeof *e);
    memcpy(e->link, link, len + 1);
    return e;
}

void qk_metrics_key_bytes(qk_metrics *m, const char *link, qk_key_flow flow, uint64_t bytes)
{
    if (!m || !link || (flow != QK_KEY_RECEIVED && flow != QK_KEY_CONSUMED))
        return;
    pthread_mutex_lock(&m->mu);
    link_bytes *e = link_entry(m->lb, &m->nlb, link);
    if (e)
        e->bytes[flow] += bytes;
    pthread_mutex_unlock(&m->mu);
}

void qk_metrics_relay_request(qk_metrics *m, qk_relay_result r)
{
    if (m && r >= 0 && r < QK_RELAY_RES_COUNT)
        atomic_fetch_add(&m->relay_requests[r], 1);
}

uint64_t qk_metrics_relay_requests(qk_metrics *m, qk_relay_result r)
{
    return m && r >= 0 && r < QK_RELAY_RES_COUNT ? (uint64_t)atomic_load(&m->relay_requests[r]) : 0;
}

void qk_metrics_relay_bytes(qk_metrics *m, const char *link, uint64_t bytes)
{
    if (!m || !link)
        return;
    pthread_mutex_lock(&m->mu);
    link_bytes *e = link_entry(m->relay_lb, &m->nrelay_lb, link);
    if (e)
        e->bytes[QK_KEY_CONSUMED] += bytes;
    pthread_mutex_unlock(&m->mu);
}

void qk_metrics_relay_route(qk_metrics *m, const char *path)
{
    size_t len = path ? strnlen(path, PATH_MAX_TEXT + 1) : 0;
    if (!m || len == 0 || len > PATH_MAX_TEXT)
        return;
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->nroutes && strcmp(m->routes[i].path, path) != 0)
        i++;
    if (i == m->nroutes && m->nroutes < QK_METRICS_ROUTES_MAX)
        memcpy(m->routes[m->nroutes++].path, path, len + 1);
    else if (i == m->nroutes)
        i = QK_METRICS_ROUTES_MAX; /* "other" */
    m->routes[i].n++;
    pthread_mutex_unlock(&m->mu);
}

/* qkd_relay_*: under m->mu (m may be NULL). */
static int write_relay(qk_metrics *m, FILE *f)
{
    static const char *const results[QK_RELAY_RES_COUNT] = {"committed",   "no_route", "refused",
                                                            "unreachable", "expired",  "error"};
    int bad = fprintf(f, "# HELP qkd_relay_requests_total Relayed key requests of this KME as "
                         "master, by result.\n# TYPE qkd_relay_requests_total counter\n") < 0;
    for (int i = 0; i < QK_RELAY_RES_COUNT; i++)
        bad |= fprintf(f, "qkd_relay_requests_total{result=\"%s\"} %llu\n", results[i],
                       (unsigned long long)qk_metrics_relay_requests(m, (qk_relay_result)i)) < 0;
    bad |=
        fprintf(f, "# HELP qkd_relay_bytes_total Key a relay consumed on each link this KME "
                   "sent a hop on (pad and MAC key).\n# TYPE qkd_relay_bytes_total counter\n") < 0;
    for (size_t i = 0; m && i < m->nrelay_lb; i++)
        bad |= fprintf(f, "qkd_relay_bytes_total{link=\"%s\"} %llu\n", m->relay_lb[i].link,
                       (unsigned long long)m->relay_lb[i].bytes[QK_KEY_CONSUMED]) < 0;
    bad |=
        fprintf(f,
                "# HELP qkd_relay_route_total Relay tries of this KME as master, by path (the "
                "first %d paths; the rest as \"other\").\n# TYPE qkd_relay_route_total counter\n",
                QK_METRICS_ROUTES_MAX) < 0;
    for (size_t i = 0; m && i < m->nroutes; i++)
        bad |= fprintf(f, "qkd_relay_route_total{path=\"%s\"} %llu\n", m->routes[i].path,
                       (unsigned long long)m->routes[i].n) < 0;
    if (m && m->routes[QK_METRICS_ROUTES_MAX].n)
        bad |= fprintf(f, "qkd_relay_route_total{path=\"other\"} %llu\n",
                       (unsigned long long)m->routes[QK_METRICS_ROUTES_MAX].n) < 0;
    return bad;
}

void qk_metrics_set_writer(qk_metrics *m, int (*fn)(void *arg, FILE *f), void *arg)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->writer = fn;
    m->writer_arg = arg;
    pthread_mutex_unlock(&m->mu);
}

static int write_key_bytes(const qk_metrics *m, FILE *f)
{
    static const char *const names[2] = {"qkd_key_received_bytes_total",
                                         "qkd_key_consumed_bytes_total"};
    static const char *const helps[2] = {
        "Key material stored from the device, per link (new blocks).",
        "Key material carved from each link's pool for keys, at this end."};
    int bad = 0;
    for (int fl = 0; fl < 2; fl++) {
        bad |= fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", names[fl], helps[fl], names[fl]) < 0;
        for (size_t i = 0; m && i < m->nlb; i++)
            bad |= fprintf(f, "%s{link=\"%s\"} %llu\n", names[fl], m->lb[i].link,
                           (unsigned long long)m->lb[i].bytes[fl]) < 0;
    }
    return bad;
}

static uint64_t load(const atomic_uint_fast64_t *a)
{
    return (uint64_t)atomic_load(a);
}

static int write_hot_path(qk_metrics *m, FILE *f)
{
    static const char *const results[QK_LEASE_RESULTS] = {"granted", "refused", "unknown_block",
                                                          "error"};
    int bad = fprintf(f, "# HELP qkd_leases_total Lease asks of this KME, by the peer's answer.\n"
                         "# TYPE qkd_leases_total counter\n") < 0;
    for (int i = 0; i < QK_LEASE_RESULTS; i++)
        bad |= fprintf(f, "qkd_leases_total{result=\"%s\"} %llu\n", results[i],
                       (unsigned long long)(m ? load(&m->leases[i]) : 0)) < 0;
    bad |= fprintf(f,
                   "# HELP qkd_notices_sent_total Requests noticed to peer KMEs (answered).\n"
                   "# TYPE qkd_notices_sent_total counter\nqkd_notices_sent_total %llu\n"
                   "# HELP qkd_notices_refused_total Noticed requests a peer KME refused (their "
                   "keys burned).\n"
                   "# TYPE qkd_notices_refused_total counter\nqkd_notices_refused_total %llu\n",
                   (unsigned long long)(m ? load(&m->notices_sent) : 0),
                   (unsigned long long)(m ? load(&m->notices_refused) : 0)) < 0;
    return bad;
}

int qk_metrics_write(qk_metrics *m, FILE *f)
{
    int bad = 0;
    if (m)
        pthread_mutex_lock(&m->mu);
    size_t nls = m ? m->nls : 0; /* no metrics object: the families without samples */
    bad |= fprintf(f, "# HELP qkd_requests_total Requests answered, by listener and HTTP "
                      "status.\n# TYPE qkd_requests_total counter\n") < 0;
    for (size_t i = 0; i < nls; i++) {
        const listener_stats *l = &m->ls[i];
        for (size_t j = 0; j < l->nstatuses; j++)
            bad |= fprintf(f, "qkd_requests_total{listener=\"%s\",status=\"%d\"} %llu\n", l->name,
                           l->statuses[j], (unsigned long long)l->counts[j]) < 0;
    }
    bad |= fprintf(f, "# HELP qkd_request_duration_seconds Request latency.\n"
                      "# TYPE qkd_request_duration_seconds histogram\n") < 0;
    for (size_t i = 0; i < nls; i++) {
        const listener_stats *l = &m->ls[i];
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += l->buckets[b];
            bad |= fprintf(f,
                           "qkd_request_duration_seconds_bucket{listener=\"%s\",le=\"%g\"} "
                           "%llu\n",
                           l->name, bucket_bounds[b], (unsigned long long)cum) < 0;
        }
        bad |= fprintf(f,
                       "qkd_request_duration_seconds_bucket{listener=\"%s\",le=\"+Inf\"} %llu\n"
                       "qkd_request_duration_seconds_sum{listener=\"%s\"} %.6f\n"
                       "qkd_request_duration_seconds_count{listener=\"%s\"} %llu\n",
                       l->name, (unsigned long long)l->n, l->name, l->sum_s, l->name,
                       (unsigned long long)l->n) < 0;
    }
    bad |= write_key_bytes(m, f);
    bad |= write_relay(m, f);
    int (*writer)(void *, FILE *) = m ? m->writer : NULL;
    void *writer_arg = m ? m->writer_arg : NULL;
    if (m)
        pthread_mutex_unlock(&m->mu);
    bad |= fprintf(f,
                   "# HELP qkd_peer_errors_total Failed calls to peer KMEs.\n"
                   "# TYPE qkd_peer_errors_total counter\nqkd_peer_errors_total %llu\n",
                   (unsigned long long)qk_metrics_peer_errors(m)) < 0;
    bad |= fprintf(f, "# HELP qkd_peer_failures_total Peer KME calls that failed or were refused "
                      "(lease asks not granted, notice batches not answered, notices refused), "
                      "by the peer's reason.\n"
                      "# TYPE qkd_peer_failures_total counter\n") < 0;
    for (int i = 0; i < QK_PEER_FAIL_COUNT; i++)
        bad |= fprintf(f, "qkd_peer_failures_total{reason=\"%s\"} %llu\n",
                       qk_peer_fail_name((qk_peer_fail)i),
                       (unsigned long long)qk_metrics_peer_failures(m, (qk_peer_fail)i)) < 0;
    bad |= write_hot_path(m, f);
    if (writer && writer(writer_arg, f) != 0)
        bad = 1;
    return bad ? -1 : 0;
}
