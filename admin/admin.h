/* admin.h - the admin listener (plain HTTP on loopback): GET /healthz -> "ok", GET /metrics
 * -> Prometheus text (pool, blocks, keys, link telemetry, topology, requests, latency, peer
 * errors), GET /routes -> the topology view and routes as JSON (kms/kms_topo.h).
 * A request-envelope handler (common/http_envelope.h). */
#ifndef QK_ADMIN_H
#define QK_ADMIN_H

#include "http_envelope.h"
#include "kms.h"

/* The admin listener's default max_body: its routes take no body. */
#define QK_ADMIN_MAX_BODY 4096

/* What /metrics shows of one link's telemetry at wall-clock time now_s (seconds). */
typedef struct {
    bool reported;            /* the device sent telemetry at least once */
    bool stale;               /* never reported, or not for more than stale_s */
    bool up;                  /* fresh and the device's last state was "up" */
    double qber;              /* last QBER (shown only when fresh) */
    double rate_bps;          /* last secret-key rate, 0 when stale */
    double age_s;             /* seconds since the last report (0 when never or clock went back) */
    uint64_t delivered_bytes; /* the device's running count of key bytes delivered */
} qk_admin_link_view;

/* A link whose device sent no telemetry for more than stale_s seconds ([link] telemetry_stale
 * of kmed.conf) reads as down: qkd_link_up 0, qkd_link_rate_bps 0, no qkd_link_qber sample,
 * qkd_link_telemetry_stale 1. */
void qk_admin_link_view_of(const qk_link_telemetry *t, uint64_t now_s, uint64_t stale_s,
                           qk_admin_link_view *v);

/* The whole Prometheus text of /metrics for kms; malloc'ed (length in *len), or NULL. */
char *qk_admin_render_metrics(qk_kms *kms, size_t *len);

typedef struct {
    qk_http_handler super; /* first: on_req gets &super */
    qk_kms *kms;
} qk_admin_handler;

/* Fill in h to serve the admin listener on kms (borrowed; must outlive the listener). */
void qk_admin_configure(qk_admin_handler *h, qk_kms *kms);

#endif
