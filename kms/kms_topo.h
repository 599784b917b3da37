/* kms_topo.h - this KME's view of the QKD network for trusted-node key relay
 * (docs/adr/0004-key-relay.md, "Routing" and "How topology is learned"): the static links of
 * its configuration ([link] sections and [topology] link lines), refreshed from its neighbours'
 * reports (GET /peer/v1/topology, every [topology] interval), with links held down after a
 * failed relay. Owned by kms_topo.c; the relay (kms_relay.c), the peer zone, ETSI status and the
 * admin zone call it. Thread-safe. */
#ifndef QK_KMS_TOPO_H
#define QK_KMS_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core.h"
#include "relay_msg.h"
#include "route.h"

/* A path as KME IDs, from this KME (ids[0]) to the destination (ids[n-1]). */
typedef struct {
    size_t n; /* nodes: hops + 1, 2..QK_RELAY_PATH_MAX */
    char ids[QK_ROUTE_NODES_MAX][QK_ROUTE_ID_MAX + 1];
    uint64_t bottleneck; /* smallest available key (bytes) on the path, as the view has it */
} qk_kms_path;

/* Build the static view and start the refresh thread (called by qk_kms_open / hot start);
 * stop and join it (qk_kms_close). */
int qk_kms_topo_start(qk_kms *k, qk_err *err);
void qk_kms_topo_stop(qk_kms *k);

/* Whether kme_id is a KME of the network this KME knows (itself, a neighbour, a [topology]
 * node, or one named in a report). */
bool qk_kms_topo_knows(qk_kms *k, const char *kme_id);

/* The route from this KME to dst for a relay taking `need` bytes of key per hop (route.h's
 * metric; [relay] max_hops), avoiding links held down. QK_EINVAL (dst unknown or this KME),
 * QK_ENOTFOUND (no usable path now: err says why, e.g. "no route from KME_A to KME_E with
 * 64 bytes of key per hop"). */
int qk_kms_topo_route(qk_kms *k, const char *dst, uint64_t need, qk_kms_path *out, qk_err *err);

/* A relay failed on the link between a and b (a refusal naming it, or a transport error
 * toward b): hold it down for [topology] hold_down in this KME's view. */
void qk_kms_topo_hold_down(qk_kms *k, const char *a, const char *b);

/* This KME's own report (its links: peer, up, available for relay, rate) and the reports it
 * holds from others, as GET /peer/v1/topology answers them (relay_msg.h's qk_topo_msg). */
int qk_kms_topo_reports(qk_kms *k, qk_topo_msg *out, qk_err *err);

/* The whole view as JSON for the admin listener's GET /routes (docs/qkd-kmed.md): malloc'ed,
 * NUL-terminated; *len its length. */
int qk_kms_topo_json(qk_kms *k, char **json, size_t *len, qk_err *err);

/* The view in numbers, for /metrics (qkd_topology_*): nodes, and links by state (a held-down
 * link counts as held_down only). */
typedef struct {
    size_t nodes, links_up, links_down, links_held_down;
} qk_kms_topo_stat;
int qk_kms_topo_stats(qk_kms *k, qk_kms_topo_stat *out, qk_err *err);

#endif
