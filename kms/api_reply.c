/* api_reply.c - reply, count and log one request of the peer, device or admin listener. */
#include "api_reply.h"

#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "log.h"

enum MHD_Result qk_api_reply(const qk_api_call *a, unsigned status, const char *content_type,
                             const char *body, const char *detail, const char *extra_header,
                             const char *extra_value)
{
    double ms = a->req ? qk_now_ms() - a->req->t_start_ms : 0.0;
    enum MHD_Result rc = qk_reply(a->conn, status, content_type, body, body ? strlen(body) : 0,
                                  extra_header, extra_value);
    qk_metrics_request(a->metrics, a->listener, (int)status, ms);
    qk_request_log line = {
        .listener = a->listener,
        .method = a->method,
        .path = a->url,
        .identity = a->identity && a->identity[0] ? a->identity : NULL,
        .status = (int)status,
        .latency_ms = ms,
        .key_ids = NULL,
        .detail = detail,
    };
    qk_log_request(&line);
    return rc;
}

enum MHD_Result qk_api_error(const qk_api_call *a, unsigned status, const char *reason,
                             const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (o && cJSON_AddStringToObject(o, "message", msg) &&
        (!reason || cJSON_AddStringToObject(o, "reason", reason)))
        body = qk_json_print(o);
    cJSON_Delete(o);
    enum MHD_Result rc = qk_api_reply(a, status, "application/json",
                                      body ? body : "{\"message\":\"error\"}", msg, NULL, NULL);
    free(body);
    return rc;
}

enum MHD_Result qk_api_bad_method(const qk_api_call *a, const char *allow)
{
    return qk_api_reply(a, 405, "application/json", "{\"message\":\"method not allowed\"}",
                        "method not allowed", "Allow", allow);
}

void qk_api_completed_count(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    const qk_api_counter *ctr = cls;
    const qk_req *r = con_cls ? *con_cls : NULL;
    if (ctr && c && r && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        if (ci && ci->http_status >= 100)
            qk_metrics_request(ctr->metrics, ctr->listener, (int)ci->http_status,
                               qk_now_ms() - r->t_start_ms);
    }
    qk_req_completed(NULL, c, con_cls, toe);
}
