/* route.h - the path of a relayed key through trusted nodes (docs/adr/0004-key-relay.md,
 * "Routing"): pure functions over a topology the caller built (from its configuration and its
 * peers' reports). Nothing here locks, allocates or talks to anyone.
 *
 * The metric, in this order:
 *   1. only usable links: up, and holding at least `need` bytes of key for this relay (the
 *      hop's pad plus its MAC key);
 *   2. fewest hops (each hop costs key on its link, a decryption at a trusted node and a round
 *      trip);
 *   3. the largest bottleneck: the smallest available key over the path's links, so that
 *      relays drain the fuller paths first;
 *   4. ties: the lexicographically smallest sequence of node IDs (strcmp), so that every node
 *      computing a route from the same view picks the same one.
 * Bounded: QK_ROUTE_NODES_MAX nodes, QK_ROUTE_LINKS_MAX links, IDs of QK_ROUTE_ID_MAX chars. */
#ifndef QK_ROUTE_H
#define QK_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"

#define QK_ROUTE_NODES_MAX 64
#define QK_ROUTE_LINKS_MAX 256
#define QK_ROUTE_ID_MAX    128 /* as QK_STORE_ID_MAX */

typedef struct {
    uint16_t a, b;      /* node indices, a != b; a link is used in both directions */
    bool up;            /* false: down, aborted, or held down after a failed relay */
    uint64_t available; /* bytes of key this node may use for relay on the link now */
    uint64_t rate;      /* key rate, bytes per second (reported; not part of the metric) */
} qk_route_link;

typedef struct {
    size_t nnodes, nlinks;
    char nodes[QK_ROUTE_NODES_MAX][QK_ROUTE_ID_MAX + 1]; /* KME IDs */
    qk_route_link links[QK_ROUTE_LINKS_MAX];
} qk_topology;

/* An empty topology. */
void qk_topo_init(qk_topology *t);

/* The index of node id, adding it if new. QK_EINVAL (ID of 0 or more than QK_ROUTE_ID_MAX
 * characters, or a control character), QK_ELIMIT (QK_ROUTE_NODES_MAX nodes already). */
int qk_topo_node(qk_topology *t, const char *id, size_t *index, qk_err *err);

/* Add the link between KMEs a and b (nodes added as needed). QK_EINVAL (a == b, bad ID),
 * QK_EEXIST (the pair already has a link), QK_ELIMIT (too many nodes or links). */
int qk_topo_link(qk_topology *t, const char *a, const char *b, bool up, uint64_t available,
                 uint64_t rate, qk_err *err);

/* Update the link between a and b (a peer's report, or a failed relay: up = false).
 * QK_ENOTFOUND when there is no such link. */
int qk_topo_update(qk_topology *t, const char *a, const char *b, bool up, uint64_t available,
                   uint64_t rate, qk_err *err);

typedef struct {
    size_t nnodes;                          /* path length in nodes: hops + 1 */
    uint16_t nodes[QK_ROUTE_NODES_MAX];     /* node indices, from source to destination */
    uint16_t links[QK_ROUTE_NODES_MAX - 1]; /* link indices, links[i] joins nodes[i..i+1] */
    uint64_t bottleneck;                    /* smallest available key on the path */
    uint64_t rate;                          /* smallest rate on the path */
} qk_route;

/* ---- building the view from reports (docs/adr/0004-key-relay.md, "How topology is learned")
 * Each KME reports its own links: the peer at the other end, up or not, the key it could use
 * for relay on it now, and its rate. The caller keeps the newest report of each node (by
 * sequence number) and drops old ones; this turns the reports it holds into a topology. */
#define QK_TOPO_REPORT_LINKS_MAX 32 /* links of one KME (as the peer health answer) */

typedef struct {
    char peer[QK_ROUTE_ID_MAX + 1];
    bool up;
    uint64_t available; /* bytes, < 2^53 */
    uint64_t rate;      /* bytes per second, < 2^53 */
} qk_topo_report_link;

typedef struct {
    char node[QK_ROUTE_ID_MAX + 1];
    uint64_t seq;  /* the reporting node's counter, < 2^53: the newest report wins */
    size_t nlinks; /* 0..QK_TOPO_REPORT_LINKS_MAX */
    qk_topo_report_link links[QK_TOPO_REPORT_LINKS_MAX];
} qk_topo_report;

/* Add the links of n reports to t (which may already hold the static links of the
 * configuration). A link t already holds takes the values of the first report of it; a link
 * reported more than once (by both ends) is merged conservatively: up only if every report
 * says up, available and rate the smallest reported.
 * QK_EINVAL (a bad ID, a link to itself), QK_ELIMIT (more than the topology holds); on
 * failure t is left as it was. */
int qk_topo_add_reports(qk_topology *t, const qk_topo_report *r, size_t n, qk_err *err);

/* The route from src to dst under the metric above, for a relay that takes `need` bytes of key
 * on each hop (need 0: any up link), with at most max_hops hops (1..QK_ROUTE_NODES_MAX - 1).
 * QK_EINVAL (unknown src or dst, src == dst, max_hops out of range), QK_ENOTFOUND (no usable
 * path within max_hops hops: *out zeroed). */
int qk_route_find(const qk_topology *t, const char *src, const char *dst, uint64_t need,
                  size_t max_hops, qk_route *out, qk_err *err);

#endif
