/* peer_topology.h - GET /peer/v1/topology (docs/adr/0004-key-relay.md, "How topology is
 * learned"): this KME's own report and the reports it holds, for a neighbour's view. Routed by
 * peer_api.c after its caller check (a linked peer KME, role kme). */
#ifndef QK_PEER_TOPOLOGY_H
#define QK_PEER_TOPOLOGY_H

#include "http_envelope.h"
#include "kms.h"

/* Answer rep: 200 with qk_topo_msg_encode of qk_kms_topo_reports (kms/kms_topo.h), or 500
 * {"message","reason"} (storage: the store failed; internal: anything else). */
void qk_peer_topology_reply(qk_kms *kms, qk_http_reply *rep);

#endif
