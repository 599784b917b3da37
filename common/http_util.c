/* http_util.c - the libmicrohttpd building blocks under the request envelope (http_util.h). */
#include "http_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secbuf.h"

#define BODY_INITIAL_CAP 1024

/* The public qk_req plus the allocation size of body, kept private. */
typedef struct {
    qk_req pub; /* must stay first: a qk_req * is a req_impl * */
    size_t cap; /* bytes allocated for pub.body */
} req_impl;

static void body_free(req_impl *r)
{
    if (r->pub.body) {
        qk_wipe(r->pub.body, r->cap);
        free(r->pub.body);
    }
    r->pub.body = NULL;
    r->cap = 0;
}

/* Make room for `need` bytes plus the NUL. The old buffer is wiped, never realloc'ed, so
 * no copy of an uploaded secret is left behind in freed memory. */
static int body_reserve(req_impl *r, size_t need)
{
    if (need < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : BODY_INITIAL_CAP;
    while (cap <= need)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    if (cap > r->pub.max_body + 1)
        cap = r->pub.max_body + 1;
    char *nb = malloc(cap);
    if (!nb)
        return -1;
    if (r->pub.body)
        memcpy(nb, r->pub.body, r->pub.body_len + 1);
    else
        nb[0] = '\0';
    body_free(r);
    r->pub.body = nb;
    r->cap = cap;
    return 0;
}

int qk_req_collect(void **con_cls, size_t max_body, const char *upload_data,
                   size_t *upload_data_size, qk_req **out)
{
    if (out)
        *out = NULL;
    if (!con_cls || !upload_data_size || !out || max_body >= SIZE_MAX / 2)
        return QK_REQ_ERROR;
    req_impl *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return QK_REQ_ERROR;
        r->pub.max_body = max_body;
        r->pub.t_start_ms = qk_now_ms();
        if (body_reserve(r, 0) != 0) {
            free(r);
            return QK_REQ_ERROR;
        }
        *con_cls = r;
        *out = &r->pub;
        return QK_REQ_MORE;
    }
    *out = &r->pub;
    size_t n = *upload_data_size;
    if (n == 0)
        return QK_REQ_DONE;
    *upload_data_size = 0; /* consumed (or deliberately dropped) */
    if (r->pub.too_large)
        return QK_REQ_MORE;
    if (!upload_data)
        return QK_REQ_ERROR;
    if (n > r->pub.max_body - r->pub.body_len) {
        r->pub.too_large = true; /* keep what we have; drop the rest of the upload */
        return QK_REQ_MORE;
    }
    if (body_reserve(r, r->pub.body_len + n) != 0)
        return QK_REQ_ERROR;
    memcpy(r->pub.body + r->pub.body_len, upload_data, n);
    r->pub.body_len += n;
    r->pub.body[r->pub.body_len] = '\0';
    return QK_REQ_MORE;
}

void qk_req_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    if (!con_cls || !*con_cls)
        return;
    req_impl *r = *con_cls;
    body_free(r);
    free(r);
    *con_cls = NULL;
}

typedef struct {
    const char *name;
    unsigned count;
} count_ctx;

static enum MHD_Result count_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    (void)value;
    count_ctx *cc = cls;
    if (key && strcmp(key, cc->name) == 0 && cc->count < UINT32_MAX)
        cc->count++;
    return MHD_YES;
}

unsigned qk_query_count(struct MHD_Connection *c, const char *name)
{
    if (!c || !name)
        return 0;
    count_ctx cc = {name, 0};
    (void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_arg, &cc);
    return cc.count;
}

double qk_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

uint64_t qk_now_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return 0;
    return (uint64_t)ts.tv_sec;
}
