/* http_util.h - the libmicrohttpd building blocks under the request envelope
 * (http_envelope.c): bounded body accumulation, the query-parameter count and the clocks.
 * Handlers use http_envelope.h, not these. */
#ifndef QK_HTTP_UTIL_H
#define QK_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>
#include "qk_err.h"

/* Per-request state a handler keeps in *con_cls. Allocate with qk_req_begin() on the first
 * call; free with qk_req_end() from MHD_OPTION_NOTIFY_COMPLETED (or it leaks). */
typedef struct {
    char *body; /* NUL-terminated accumulated upload */
    size_t body_len;
    size_t max_body;
    bool too_large;    /* body exceeded max_body: answer 413/400, do not process */
    double t_start_ms; /* monotonic ms at first call */
    void *user;        /* handler-specific */
} qk_req;

/* Drive the standard libmicrohttpd upload protocol. Usage inside an access handler:
 *   qk_req *r; int st = qk_req_collect(con_cls, max_body, upload_data, upload_data_size, &r);
 *   if (st == QK_REQ_MORE) return MHD_YES;   // more body to come, or first call
 *   if (st == QK_REQ_ERROR) return MHD_NO;
 *   ... r->body complete (r->too_large tells whether it was cut) ... */
enum { QK_REQ_MORE = 0, QK_REQ_DONE = 1, QK_REQ_ERROR = -1 };
int qk_req_collect(void **con_cls, size_t max_body, const char *upload_data,
                   size_t *upload_data_size, qk_req **out);
/* For MHD_OPTION_NOTIFY_COMPLETED: frees the qk_req in *con_cls (wiping the body). */
void qk_req_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe);

/* Count occurrences of a query argument (repeated parameters are an error in both APIs). */
unsigned qk_query_count(struct MHD_Connection *c, const char *name);

/* Monotonic milliseconds. */
double qk_now_ms(void);
/* Wall-clock seconds since the epoch. */
uint64_t qk_now_s(void);

#endif
