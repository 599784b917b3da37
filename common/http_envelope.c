/* http_envelope.c - the request envelope (http_envelope.h): body collection within max_body,
 * the caller, one on_req call per complete request, the reply, the log line and the metrics. */
#include "http_envelope.h"
#include "qk_inline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "json_util.h"
#include "log.h"
#include "secbuf.h"
#include "tls_server.h"
#include "thread_name.h"

static const char fallback_error[] = "{\"message\":\"internal error\"}";

/* ---- replies --------------------------------------------------------------------------- */

static void body_drop(qk_http_reply *rep)
{
    if (rep->body) {
        if (rep->secret)
            qk_secure_free(rep->body);
        else
            free(rep->body);
    }
    rep->body = NULL;
    rep->len = 0;
    rep->secret = false;
    rep->content_type = NULL;
}

void qk_http_reply_clear(qk_http_reply *rep)
{
    if (!rep)
        return;
    body_drop(rep);
    free(rep->key_ids);
    memset(rep, 0, sizeof *rep);
}

void qk_http_reply_take(qk_http_reply *rep, unsigned status, const char *content_type, char *body,
                        size_t len)
{
    body_drop(rep);
    rep->status = status;
    rep->content_type = body ? content_type : NULL;
    rep->body = body;
    rep->len = body ? len : 0;
}

void qk_http_reply_json_take(qk_http_reply *rep, char *json)
{
    if (json)
        qk_http_reply_take(rep, 200, "application/json", json, strlen(json));
    else
        qk_http_reply_message(rep, 500, "out of memory");
}

void qk_http_reply_secret(qk_http_reply *rep, unsigned status, char *json, size_t len)
{
    body_drop(rep);
    rep->status = status;
    rep->content_type = json ? "application/json" : NULL;
    rep->body = json;
    rep->len = json ? len : 0;
    rep->secret = json != NULL;
}

int qk_http_reply_set(qk_http_reply *rep, unsigned status, const char *content_type,
                      const char *body, size_t len)
{
    char *copy = NULL;
    if (body && len) {
        copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, body, len);
            copy[len] = '\0';
        }
    }
    qk_http_reply_take(rep, status, content_type, copy, copy ? len : 0);
    return body && len && !copy ? -1 : 0;
}

int qk_http_reply_json(qk_http_reply *rep, unsigned status, const char *json)
{
    const char *j = json ? json : "{}";
    return qk_http_reply_set(rep, status, "application/json", j, strlen(j));
}

int qk_http_reply_error(qk_http_reply *rep, unsigned status, const char *reason, const char *msg)
{
    const char *m = msg ? msg : "error";
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (o && cJSON_AddStringToObject(o, "message", m) &&
        (!reason || cJSON_AddStringToObject(o, "reason", reason)))
        body = qk_json_print(o);
    cJSON_Delete(o);
    qk_http_reply_detail(rep, "%s", m);
    if (!body) {
        qk_http_reply_take(rep, status, NULL, NULL, 0);
        return -1;
    }
    qk_http_reply_take(rep, status, "application/json", body, strlen(body));
    return 0;
}

int qk_http_reply_message(qk_http_reply *rep, unsigned status, const char *msg)
{
    return qk_http_reply_error(rep, status, NULL, msg);
}

void qk_http_reply_allow(qk_http_reply *rep, const char *allow)
{
    snprintf(rep->allow, sizeof rep->allow, "%s", allow ? allow : "");
}

void qk_http_reply_not_allowed(qk_http_reply *rep, const char *allow)
{
    qk_http_reply_message(rep, 405, "method not allowed");
    qk_http_reply_allow(rep, allow);
}

void qk_http_reply_detail(qk_http_reply *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->detail, sizeof rep->detail, fmt, ap);
    va_end(ap);
}

void qk_http_reply_key_ids(qk_http_reply *rep, char *ids)
{
    free(rep->key_ids);
    rep->key_ids = ids;
}

/* ---- queries --------------------------------------------------------------------------- */

unsigned qk_http_query_count(const qk_http_request *req, const char *name)
{
    return req && req->head && name ? qk_http1_arg_count(req->head, name) : 0;
}

const char *qk_http_query(const qk_http_request *req, const char *name)
{
    return req && req->head && name ? qk_http1_arg(req->head, name) : NULL;
}

const char *qk_http_header(const qk_http_request *req, const char *name)
{
    return req && req->head && name ? qk_http1_field_get(req->head, name) : NULL;
}

/* ---- the envelope ---------------------------------------------------------------------- */

static void run_handler(qk_http_handler *h, const qk_http_request *req, qk_http_reply *rep)
{
    if (h && h->on_req)
        h->on_req(h, req, rep);
    if (rep->status < 100 || rep->status > 599) {
        qk_http_reply_set(rep, 500, "application/json", fallback_error, sizeof fallback_error - 1);
        qk_http_reply_detail(rep, "the handler set no reply");
    }
}

void qk_http_handler_call(qk_http_handler *h, const qk_http_request *req, qk_http_reply *rep)
{
    memset(rep, 0, sizeof *rep);
    run_handler(h, req, rep);
}

/* ---- the worker pool ------------------------------------------------------------------- */

/* One request handed to a worker: a copy of what on_req needs that does not live in the
 * connection (the caller), and the reply the worker fills in. The request's strings and body
 * belong to the front end's connection, which leaves them alone while it is suspended. */
typedef struct http_job {
    struct http_job *next;
    qk_http_handler *h;
    qk_http_conn *conn;
    void (*resume)(void *cls, qk_http_conn *c);
    void *resume_cls;
    qk_http_request req;
    qk_peer_identity caller;
    qk_http_reply rep;
    atomic_bool done;               /* the reply is stored: the resumed request sends it */
    qk_inline_waiter waiter;        /* an inline handler's reply waiting for its barrier */
    struct qk_http_pool *inline_of; /* ran inline: the pool that counts it until resumed */
    bool rerun;                     /* held for an event: run the handler again when resumed */
    double rerun_deadline_ms;       /* that event wait's deadline, for the rerun */
} http_job;

/* A worker's own wake-up: idle workers wait on their own condition variable in a stack, and a
 * kick wakes the most recently idle one first (LIFO), so that under light load the same few
 * threads do the work with warm caches instead of every worker taking turns. */
typedef struct {
    struct qk_http_pool *pool;
    pthread_t tid;
    pthread_cond_t cv;
    bool cv_ok;
    bool signaled; /* taken off the idle stack by a kick or the stop */
} worker_slot;

struct qk_http_pool {
    char name[32];
    pthread_mutex_t lock;
    http_job *head, *tail;
    unsigned queued, running, queue_max, nworkers, started;
    worker_slot *slots;
    worker_slot **idle; /* stack of waiting workers; idle[nidle - 1] is woken first */
    unsigned nidle;
    atomic_uint unsignaled; /* jobs queued since the last kick */
    bool stop;
    unsigned inline_running;  /* inline handlers running or holding a suspended reply (lock) */
    pthread_cond_t inline_cv; /* signalled when inline_running drops to 0 during a stop */
    bool inline_cv_ok;
};

static const char shutting_down[] = "server is shutting down";
#define INLINE_STOP_WAIT_S 10 /* a stop waits this long for replies waiting on a store sync */

/* An inline handler starts on a pump: counted, so that a stop waits for the replies it
 * holds suspended (the front end must see every connection resumed before it stops).
 * -1 once the pool is stopping: the request is then answered 503 without running. */
static int pool_inline_begin(struct qk_http_pool *p)
{
    int rc = -1;
    pthread_mutex_lock(&p->lock);
    if (!p->stop) {
        p->inline_running++;
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static void pool_inline_end(struct qk_http_pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (--p->inline_running == 0 && p->stop && p->inline_cv_ok)
        pthread_cond_broadcast(&p->inline_cv);
    pthread_mutex_unlock(&p->lock);
}

/* The reply is in place: hand the connection back to its daemon's thread. The job belongs to
 * the connection's request again from the resume on (it may be freed at once), so what the
 * wake-up needs is read before. */
static void job_finish(http_job *j)
{
    qk_http_conn *c = j->conn;
    void (*resume)(void *, qk_http_conn *) = j->resume;
    void *resume_cls = j->resume_cls;
    struct qk_http_pool *inline_of = j->inline_of;
    atomic_store(&j->done, true);
    if (resume)
        resume(resume_cls, c);
    if (inline_of)
        pool_inline_end(inline_of);
}

static void *pool_worker(void *arg)
{
    QK_THREAD_NAME("qk-worker");
    worker_slot *w = arg;
    qk_http_pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop) {
            w->signaled = false;
            p->idle[p->nidle++] = w;
            while (!w->signaled) /* only a kick or the stop takes us off the stack */
                pthread_cond_wait(&w->cv, &p->lock);
        }
        if (!p->head)
            break; /* stopping and nothing queued */
        http_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        if (p->stop) {
            /* Not started: nothing was delivered, so a 503 is safe. */
            pthread_mutex_unlock(&p->lock);
            qk_http_reply_message(&j->rep, 503, shutting_down);
            job_finish(j);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        p->running++;
        pthread_mutex_unlock(&p->lock);
        run_handler(j->h, &j->req, &j->rep);
        job_finish(j);
        pthread_mutex_lock(&p->lock);
        p->running--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Wake up to n idle workers, most recently idle first. Lock held. */
static void wake_idle(qk_http_pool *p, unsigned n)
{
    while (n-- > 0 && p->nidle > 0) {
        worker_slot *w = p->idle[--p->nidle];
        w->signaled = true;
        pthread_cond_signal(&w->cv);
    }
}

int qk_http_pool_start(const char *name, unsigned workers, unsigned queue_max, qk_http_pool **out,
                       qk_err *err)
{
    if (out)
        *out = NULL;
    if (!out || workers == 0 || workers > 1024 || queue_max == 0 || queue_max > 65536)
        return qk_err_set(err, QK_EINVAL, "worker pool: bad size (%u workers, queue %u)", workers,
                          queue_max);
    qk_http_pool *p = calloc(1, sizeof *p);
    if (!p)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    p->slots = calloc(workers, sizeof *p->slots);
    p->idle = calloc(workers, sizeof *p->idle);
    if (!p->slots || !p->idle || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->slots);
        free(p->idle);
        free(p);
        return qk_err_set(err, QK_ENOMEM, "worker pool: out of memory");
    }
    p->inline_cv_ok = pthread_cond_init(&p->inline_cv, NULL) == 0;
    snprintf(p->name, sizeof p->name, "%s", name ? name : "http");
    p->nworkers = workers;
    p->queue_max = queue_max;
    for (unsigned i = 0; i < workers; i++) {
        p->slots[i].pool = p;
        p->slots[i].cv_ok = pthread_cond_init(&p->slots[i].cv, NULL) == 0;
        if (!p->slots[i].cv_ok) {
            qk_http_pool_free(p);
            return qk_err_set(err, QK_EIO, "worker pool: condition variable");
        }
    }
    for (; p->started < workers; p->started++) {
        int rc =
            pthread_create(&p->slots[p->started].tid, NULL, pool_worker, &p->slots[p->started]);
        if (rc != 0) {
            qk_http_pool_free(p);
            return qk_err_set(err, QK_EIO, "worker pool: pthread_create: %s", strerror(rc));
        }
    }
    *out = p;
    return 0;
}

void qk_http_pool_stop(qk_http_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    wake_idle(p, p->nidle);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->slots[i].tid, NULL);
    p->started = 0; /* joined: a second stop has nothing to wait for */
    /* Replies of inline handlers wait for a store sync (milliseconds): wait for them, bounded. */
    pthread_mutex_lock(&p->lock);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += INLINE_STOP_WAIT_S;
    while (p->inline_running > 0 && p->inline_cv_ok &&
           pthread_cond_timedwait(&p->inline_cv, &p->lock, &dl) != ETIMEDOUT) {
    }
    if (p->inline_running > 0)
        qk_log(QK_LOG_WARN, "pool %s: stop: %u inline reply(ies) still waiting after %d s", p->name,
               p->inline_running, INLINE_STOP_WAIT_S);
    pthread_mutex_unlock(&p->lock);
}

void qk_http_pool_kick(qk_http_pool *p)
{
    if (!p || atomic_load(&p->unsignaled) == 0)
        return;
    pthread_mutex_lock(&p->lock);
    wake_idle(p, atomic_exchange(&p->unsignaled, 0));
    pthread_mutex_unlock(&p->lock);
}

void qk_http_pool_free(qk_http_pool *p)
{
    if (!p)
        return;
    qk_http_pool_stop(p);
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->slots[i].cv_ok)
            pthread_cond_destroy(&p->slots[i].cv);
    if (p->inline_cv_ok)
        pthread_cond_destroy(&p->inline_cv);
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p->idle);
    free(p);
}

/* Queue the job (its connection is suspended from now on); -1 when the queue is full or the
 * pool is stopping. */
static int pool_submit(qk_http_pool *p, http_job *j)
{
    pthread_mutex_lock(&p->lock);
    if (p->stop || p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    atomic_fetch_add(&p->unsignaled, 1); /* the front end's thread kicks once per loop turn */
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---- the envelope ---------------------------------------------------------------------- */

static void job_free(http_job *j)
{
    if (!j)
        return;
    qk_http_reply_clear(&j->rep);
    qk_wipe(&j->caller, sizeof j->caller);
    free(j);
}

/* A job for the request being dispatched on connection c (not yet suspended or queued). */
static http_job *job_new(const qk_http_front *f, qk_http_conn *c, qk_http_handler *h,
                         const qk_http_request *req)
{
    http_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->h = h;
    j->conn = c;
    j->resume = f->resume;
    j->resume_cls = f->resume_cls;
    j->caller = *req->caller;
    j->req = *req;
    j->req.caller = &j->caller;
    atomic_init(&j->done, false);
    return j;
}

/* qk_inline_waiter.done: the barrier of an inline handler's reply completed (any thread). A
 * reply whose state could not be made durable is never sent: a 500 goes instead (its secret
 * body wiped). */
static void job_barrier_done(qk_inline_waiter *w, int err)
{
    http_job *j = (http_job *)((char *)w - offsetof(http_job, waiter));
    if (err) {
        qk_http_reply_clear(&j->rep);
        qk_http_reply_message(&j->rep, 500, "storage error: the answer could not be made durable");
    }
    job_finish(j);
}

/* qk_inline_waiter.done of an event wait: the event happened (or its deadline passed): the
 * resumed connection runs the handler again. */
static void job_event_done(qk_inline_waiter *w, int err)
{
    http_job *j = (http_job *)((char *)w - offsetof(http_job, waiter));
    if (err) /* the deadline passed, or the owner stops: the rerun must not wait again */
        j->rerun_deadline_ms = 1; /* a time long past on the qk_now_ms clock */
    job_finish(j);
}

/* Run job j's request inline on this thread (an inline_first handler; rerun_deadline_ms from
 * an earlier event wait, else 0). Returns 1 when the reply is in rep (send it now), 0 when the
 * connection was suspended (the reply waits for its barrier, or the request for an event), -1
 * when the handler would block (rep is cleared: run it on the pool). The job is the caller's
 * unless 0 is returned. */
static int run_inline(const qk_http_front *f, qk_http_handler *h, http_job *j, qk_http_reply *rep,
                      qk_http_env *e, double rerun_deadline_ms)
{
    if (pool_inline_begin(f->pool) != 0) {
        qk_http_reply_message(rep, 503, shutting_down);
        return 1;
    }
    qk_inline ic;
    qk_inline_begin(&ic, rerun_deadline_ms);
    ic.group_commit = h->group_commit;
    run_handler(h, &j->req, rep);
    qk_inline_end();
    if (ic.would_block) {
        pool_inline_end(f->pool);
        qk_http_reply_clear(rep);
        return -1;
    }
    atomic_store(&j->done, false);
    j->inline_of = f->pool; /* counted until job_finish resumes the connection */
    if (ic.ev_await) {
        /* Wait for the event with the connection suspended, then run again from the start. */
        qk_http_reply_clear(rep);
        j->rerun = true;
        j->rerun_deadline_ms = ic.ev_deadline_ms;
        memset(&j->waiter, 0, sizeof j->waiter);
        j->waiter.deadline_ms = ic.ev_deadline_ms;
        j->waiter.done = job_event_done;
        e->job = j; /* suspended from now on: the event may complete it on another thread */
        int r = ic.ev_await(ic.ev_owner, ic.ev_seq, &j->waiter);
        if (r != 0) /* happened already (1: look again), or the owner refuses (< 0) */
            job_event_done(&j->waiter, r < 0 ? r : 0);
        return 0;
    }
    if (!ic.await) {
        j->inline_of = NULL;
        pool_inline_end(f->pool);
        return 1;
    }
    /* The job was made before the handler ran: once its store calls committed, the reply must
     * be held until they are durable, and that cannot fail for want of memory. */
    j->rep = *rep; /* the job owns the reply now */
    memset(rep, 0, sizeof *rep);
    memset(&j->waiter, 0, sizeof j->waiter);
    j->waiter.done = job_barrier_done;
    j->waiter.sync_seq = ic.sync_seq;
    e->job = j; /* suspended from now on: the barrier may complete on another thread */
    int r = ic.await(ic.owner, ic.seq, &j->waiter);
    if (r != 0) /* already durable (1), or the store failed: complete it here */
        job_barrier_done(&j->waiter, r < 0 ? r : 0);
    return 0;
}

/* Tell the observer, write the log line and hand the reply to the front end (*out). */
static void finish(qk_http_handler *h, const qk_http_request *req, qk_http_reply *rep,
                   qk_http_reply *out)
{
    if (!rep->body && rep->status >= 400) /* out of memory building an error: still a body */
        qk_http_reply_set(rep, rep->status, "application/json", fallback_error,
                          sizeof fallback_error - 1);
    double ms = qk_now_ms() - req->t_start_ms;
    if (h && h->observe)
        h->observe(h->observe_cls, req->listener, (int)rep->status, ms);
    qk_request_log line = {
        .listener = req->listener,
        .method = req->method,
        .path = req->path,
        .identity = req->caller->id[0] ? req->caller->id : NULL,
        .status = (int)rep->status,
        .latency_ms = ms,
        .key_ids = rep->key_ids,
        .detail = rep->detail[0] ? rep->detail : NULL,
    };
    qk_log_request(&line);
    *out = *rep;
    memset(rep, 0, sizeof *rep);
}

/* Run job j's request: inline first when the handler allows it, on the worker pool when it
 * may block (or said so inline). Returns 1 with the reply in *out (j freed), or 0 when the
 * connection is suspended (j kept in e). */
static int dispatch(const qk_http_front *f, qk_http_handler *h, http_job *j, qk_http_env *e,
                    double rerun_deadline_ms, qk_http_reply *out)
{
    qk_http_reply rep;
    memset(&rep, 0, sizeof rep);
    int how = h->inline_first ? run_inline(f, h, j, &rep, e, rerun_deadline_ms) : -1;
    if (how == 0)
        return 0;
    if (how == -1) {
        atomic_store(&j->done, false);
        j->inline_of = NULL;
        e->job = j;
        if (pool_submit(f->pool, j) == 0)
            return 0; /* suspended; the worker resumes it */
        e->job = NULL;
        /* Every worker busy and the queue full (or stopping): shed load at once. */
        qk_http_reply_message(&rep, 503, "server busy, retry later");
        rep.retry_after = 1;
    }
    finish(h, &j->req, &rep, out);
    job_free(j);
    return 1;
}

size_t qk_http_front_max_body(const qk_http_front *f)
{
    return f->max_body ? f->max_body : QK_HTTP_DEFAULT_MAX_BODY;
}

int qk_http_envelope_start(const qk_http_front *f, qk_http_conn *c, qk_http_env *e,
                           const qk_http_request *req, bool too_large, qk_http_reply *out)
{
    memset(out, 0, sizeof *out);
    qk_http_handler *h = f->handler;
    qk_http_reply rep;
    memset(&rep, 0, sizeof rep);
    if (too_large) {
        size_t max_body = qk_http_front_max_body(f);
        unsigned status = h && h->too_large_status ? h->too_large_status : 413;
        char msg[96];
        snprintf(msg, sizeof msg, "request body too large (limit %zu bytes)", max_body);
        qk_http_reply_message(&rep, status, msg);
    } else if (f->pool && h && !h->never_blocks) {
        http_job *j = job_new(f, c, h, req);
        if (!j) {
            qk_http_reply_message(&rep, 503, "out of memory, retry later");
            rep.retry_after = 1;
        } else {
            return dispatch(f, h, j, e, 0, out);
        }
    } else {
        run_handler(h, req, &rep);
    }
    finish(h, req, &rep, out);
    return 1;
}

int qk_http_envelope_resume(const qk_http_front *f, qk_http_conn *c, qk_http_env *e,
                            qk_http_reply *out)
{
    (void)c;
    memset(out, 0, sizeof *out);
    http_job *j = e->job;
    if (!j || !atomic_load(&j->done))
        return 0; /* not ours to continue (yet) */
    e->job = NULL;
    qk_http_handler *h = f->handler;
    if (j->rerun) { /* resumed after the event it waited for: run it again */
        j->rerun = false;
        return dispatch(f, h, j, e, j->rerun_deadline_ms, out);
    }
    finish(h, &j->req, &j->rep, out);
    job_free(j);
    return 1;
}

void qk_http_envelope_drop(qk_http_env *e)
{
    if (!e)
        return;
    job_free(e->job);
    e->job = NULL;
}
