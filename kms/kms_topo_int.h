/* kms_topo_int.h - the state behind kms_topo.h, without the qk_kms around it, so that unit
 * suites can drive it with their own clock and measurements: the neighbours' answers, the
 * reports held (the newest per node by seq, aged by when they arrived here), the hold-downs,
 * and the view built from them (docs/adr/0004-key-relay.md, "How topology is learned").
 * Thread-safe (one mutex inside). Times: `now` is monotonic milliseconds, `wall` wall-clock
 * milliseconds (only for this KME's own sequence numbers). Used by kms_topo.c and its tests. */
#ifndef QK_KMS_TOPO_INT_H
#define QK_KMS_TOPO_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "kmed_config.h"
#include "relay_msg.h"
#include "route.h"

#define QK_TOPO_DEFAULT_INTERVAL_MS  2000u
#define QK_TOPO_DEFAULT_HOLD_DOWN_MS 5000u
#define QK_TOPO_AGE_INTERVALS        3u /* a report older than this many intervals: links down */

typedef struct qk_topo_state qk_topo_state;

/* The state of cfg's node: its [link] peers and [topology] links (cfg borrowed; it must outlive
 * the state). interval and hold_down 0 in cfg mean the defaults above. */
int qk_topo_state_new(const qk_kmed_config *cfg, uint64_t now, qk_topo_state **out, qk_err *err);
void qk_topo_state_free(qk_topo_state *s);
uint64_t qk_topo_state_interval(const qk_topo_state *s);

/* The poll of the neighbour of link i (cfg->links[i]) ended at now: m its answer, or NULL when
 * it failed. Each report of m newer (seq) than the one held for its node replaces it and counts
 * as arrived now; reports of this node are ignored; past QK_ROUTE_NODES_MAX - 1 nodes, new
 * nodes are dropped. Returns true when the neighbour's answering state changed (for the log). */
bool qk_topo_state_polled(qk_topo_state *s, size_t i, const qk_topo_msg *m, uint64_t now);

/* The last round of polls took ms: reports age after QK_TOPO_AGE_INTERVALS intervals, or as
 * many rounds when a round takes longer than an interval (a neighbour that does not answer
 * holds it up to the [peer_client] timeout). */
void qk_topo_state_round(qk_topo_state *s, uint64_t ms);

/* What this KME measured on link i: the key it could use for relay, the rate (bytes/s), and
 * whether its device says the link is down (fresh telemetry other than "up"). */
typedef struct {
    uint64_t available, rate;
    bool device_down;
} qk_topo_own_link;

/* This KME's own report from the measurements own[cfg->nlinks]: a link is up when its peer
 * answered a poll in the last QK_TOPO_AGE_INTERVALS intervals and its device does not say down.
 * seq: wall-clock ms, strictly increasing within the process. */
void qk_topo_state_own(qk_topo_state *s, const qk_topo_own_link *own, uint64_t now, uint64_t wall,
                       qk_topo_report *out);

/* Hold the link a-b down from now for hold_down; it comes back when that ends or when a report
 * of a or b arrives after now (the next report, ADR 0004). */
void qk_topo_state_hold_down(qk_topo_state *s, const char *a, const char *b, uint64_t now);

/* What the view says of one of its links besides route.h's members (for GET /routes). */
typedef struct {
    bool fresh;      /* some report (or answer, for this KME's links) says how it is */
    uint64_t age_ms; /* since the newest of those arrived (fresh only) */
    bool held_down;
} qk_topo_link_info;

/* The view at now: this KME's links as own says, the [topology] links (up, 0 available until
 * a report), merged with own and the reports held (route.h's qk_topo_add_reports; an aged
 * report counts with every link down), then the hold-downs (up = false). info (may be NULL)
 * gets one entry per link of *t. 0, or QK_ENOMEM; reports that would overflow the view are
 * left out (logged). */
int qk_topo_state_view(qk_topo_state *s, const qk_topo_report *own, uint64_t now, qk_topology *t,
                       qk_topo_link_info *info, qk_err *err);

/* The answer of GET /peer/v1/topology: own, then every report held that has not aged. */
void qk_topo_state_reports(qk_topo_state *s, const qk_topo_report *own, uint64_t now,
                           qk_topo_msg *out);

/* Whether id is this node, a link peer, a [topology] node or a node of a held report. */
bool qk_topo_state_knows(qk_topo_state *s, const char *id);

#endif
