/* metrics.h - in-memory counters of the daemon (requests by listener and status, request
 * latency histogram, peer errors) and their Prometheus text rendering. Thread-safe. */
#ifndef QK_METRICS_H
#define QK_METRICS_H

#include <stdint.h>
#include <stdio.h>

typedef struct qk_metrics qk_metrics;

qk_metrics *qk_metrics_new(void);
void qk_metrics_free(qk_metrics *m);

/* Count one answered request on listener (a short constant name) with HTTP status. */
void qk_metrics_request(qk_metrics *m, const char *listener, int status, double latency_ms);
/* Count one failed call to a peer KME (transport error or unexpected answer). */
void qk_metrics_peer_error(qk_metrics *m);
uint64_t qk_metrics_peer_errors(qk_metrics *m);

/* Write qkd_requests_total, qkd_request_duration_seconds and qkd_peer_errors_total in the
 * Prometheus text format (m NULL: the families with no request sample and no peer error).
 * Returns 0 or -1 (write error). */
int qk_metrics_write(qk_metrics *m, FILE *f);

#endif
