/* sim_control.h - the simulator's control API: plain HTTP/JSON on a loopback address
 * (common/tls_server.h in mode none), for `qkd-sim status` and `qkd-sim fault`:
 *   GET  /v1/status                 {"links":[LINK...]}
 *   GET  /v1/links/{id}             LINK
 *   POST /v1/links/{id}/fault       {"fault":"down|up|eve|loss|drop|corrupt|delay|clear",
 *                                    "value":"..."} -> 200 LINK
 *   GET  /metrics                   Prometheus text (qk_sim_metrics_write)
 * Errors: {"message": ...} with 400, 404, 405 or 413. See docs/qkd-sim.md. */
#ifndef QK_SIM_CONTROL_H
#define QK_SIM_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qk_err.h"
#include "sim_link.h"

typedef struct qk_sim_control qk_sim_control;

/* links is borrowed and must outlive the server. host must be a loopback address. */
int qk_sim_control_start(const char *host, uint16_t port, qk_sim_link *const *links, size_t nlinks,
                         qk_sim_control **out, qk_err *err);
uint16_t qk_sim_control_port(const qk_sim_control *c);
void qk_sim_control_stop(qk_sim_control *c);

/* {"links":[...]} of every link; malloc'ed or NULL. */
char *qk_sim_status_json(qk_sim_link *const *links, size_t nlinks);

/* The Prometheus text (exposition format 0.0.4) of n link statuses: state, QBER, rates,
 * block and delivery counters, faults; families listed in docs/qkd-sim.md. 0, or -1 on a
 * write error. */
int qk_sim_metrics_write(const qk_link_status *st, size_t n, FILE *f);

#endif
