/* api_reply.h - answering a request on one of the daemon's own listeners (peer, device,
 * admin): queue the response, count it in the metrics and write the one structured log line
 * per request (never key bytes). */
#ifndef QK_API_REPLY_H
#define QK_API_REPLY_H

#include <microhttpd.h>
#include "http_util.h"
#include "metrics.h"

typedef struct {
    const char *listener; /* constant name: "peer", "device", "admin" */
    qk_metrics *metrics;  /* may be NULL */
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    const char *identity; /* authenticated caller or NULL */
    const qk_req *req;    /* for the start time; may be NULL */
} qk_api_call;

/* Reply with body (copied; may be NULL for an empty body) and log/count it. detail: short
 * reason for the log line or NULL. extra_header/value as in qk_reply. */
enum MHD_Result qk_api_reply(const qk_api_call *a, unsigned status, const char *content_type,
                             const char *body, const char *detail, const char *extra_header,
                             const char *extra_value);
/* Peer-API style error: {"message": msg, "reason": reason}. */
enum MHD_Result qk_api_error(const qk_api_call *a, unsigned status, const char *reason,
                             const char *msg);
/* 405 with an Allow header. */
enum MHD_Result qk_api_bad_method(const qk_api_call *a, const char *allow);

/* For listeners whose handlers (the API layers) log each request themselves but do not count
 * it: an MHD_OPTION_NOTIFY_COMPLETED callback (cls = a qk_api_counter that outlives the
 * listener) that counts the status sent and the latency in the metrics, then frees the
 * request state exactly like qk_req_completed. */
typedef struct {
    const char *listener;
    qk_metrics *metrics;
} qk_api_counter;
void qk_api_completed_count(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe);

#endif
