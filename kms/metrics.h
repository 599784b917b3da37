/* metrics.h - in-memory counters of the daemon (requests by listener and status, request
 * latency histogram, peer errors) and their Prometheus text rendering. Thread-safe. */
#ifndef QK_METRICS_H
#define QK_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "core.h"

typedef struct qk_metrics qk_metrics;

qk_metrics *qk_metrics_new(void);
void qk_metrics_free(qk_metrics *m);

/* Count one answered request on listener (a short name, copied) with HTTP status. */
void qk_metrics_request(qk_metrics *m, const char *listener, int status, double latency_ms);
/* Count one failed call to a peer KME (transport error or unexpected answer). */
void qk_metrics_peer_error(qk_metrics *m);
uint64_t qk_metrics_peer_errors(qk_metrics *m);
/* Count one peer call that failed or was refused in a way that costs an SAE its keys, by the
 * peer's reason (core.h): a lease ask not granted (collisions, asked again at once, are not
 * counted), a notice batch not answered, a notice refused. */
void qk_metrics_peer_failure(qk_metrics *m, qk_peer_fail why);
uint64_t qk_metrics_peer_failures(qk_metrics *m, qk_peer_fail why);

/* Key material through a link's pool, in bytes: received from the device (new blocks stored)
 * and consumed (carved for keys at this end, as master or for a peer's reservation). A link
 * seen for the first time gets its counters (bytes 0 registers it); at most 64 links, IDs of
 * 1..128 characters (others are not counted). */
typedef enum { QK_KEY_RECEIVED = 0, QK_KEY_CONSUMED = 1 } qk_key_flow;
void qk_metrics_key_bytes(qk_metrics *m, const char *link, qk_key_flow flow, uint64_t bytes);

/* The hot path (docs/adr/0002-key-store.md, "Leases and notices"): this end's lease asks by
 * the peer's answer (error: no answer, or an unexpected one), and the notices (one per
 * request) the peer applied or refused. */
typedef enum {
    QK_LEASE_GRANTED = 0,
    QK_LEASE_REFUSED,
    QK_LEASE_UNKNOWN_BLOCK,
    QK_LEASE_ERROR,
    QK_LEASE_RESULTS
} qk_lease_result;
void qk_metrics_lease(qk_metrics *m, qk_lease_result r);
void qk_metrics_notices(qk_metrics *m, uint64_t sent, uint64_t refused);

/* Trusted-node key relay (docs/adr/0004-key-relay.md): relayed requests at the master KME by
 * result, the key a relay consumed per link at the node that carved the hop (the hop's pad and
 * MAC key: L + 32 bytes per end-to-end request), and the paths chosen (one count per try;
 * the first QK_METRICS_ROUTES_MAX distinct paths, the rest counted as path "other"). */
typedef enum {
    QK_RELAY_RES_COMMITTED = 0, /* every destination stored and the decision recorded */
    QK_RELAY_RES_NO_ROUTE,      /* no usable path to a destination */
    QK_RELAY_RES_REFUSED,       /* a node refused (mac, hop-key, exists, bad-request, ...) */
    QK_RELAY_RES_UNREACHABLE,   /* a node could not reach the next (transport error) */
    QK_RELAY_RES_EXPIRED,       /* the deadline passed */
    QK_RELAY_RES_ERROR,         /* this KME's store or memory */
    QK_RELAY_RES_COUNT
} qk_relay_result;
#define QK_METRICS_ROUTES_MAX 32
void qk_metrics_relay_request(qk_metrics *m, qk_relay_result r);
uint64_t qk_metrics_relay_requests(qk_metrics *m, qk_relay_result r);
void qk_metrics_relay_bytes(qk_metrics *m, const char *link, uint64_t bytes);
void qk_metrics_relay_route(qk_metrics *m, const char *path);

/* An extra writer called at the end of qk_metrics_write (the daemon's wiring adds the TLS
 * front end's counters this way); fn returns 0 or -1. */
void qk_metrics_set_writer(qk_metrics *m, int (*fn)(void *arg, FILE *f), void *arg);

/* Write qkd_requests_total, qkd_request_duration_seconds, qkd_peer_errors_total,
 * qkd_peer_failures_total{reason}, qkd_key_received_bytes_total,
 * qkd_key_consumed_bytes_total, qkd_leases_total{result}, qkd_notices_sent_total,
 * qkd_notices_refused_total, qkd_relay_requests_total{result}, qkd_relay_bytes_total{link} and
 * qkd_relay_route_total{path} in the Prometheus text format
 * (m NULL: the families with no sample), then the extra writer's. Returns 0 or -1. */
int qk_metrics_write(qk_metrics *m, FILE *f);

#endif
