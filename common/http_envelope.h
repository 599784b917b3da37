/* http_envelope.h - the one request envelope of every HTTP listener of the project (qkd-kmed's
 * five listeners, qkd-sim's control API, qkd-bridge's admin listener and bridge channel).
 *
 * The front end (tls_server.c) owns everything a handler used to repeat: collecting the body
 * within the listener's max_body (past it: the handler's too_large_status, 413 by default,
 * with a JSON {"message": ...} body, the partial body wiped and never shown to the handler),
 * the authenticated caller (certificate or PSK identity, from the TLS front end, never from a
 * header), the one request log line (common/log.h qk_log_request: method, path, identity,
 * status, latency, key IDs and a detail, never key bytes) and the metrics callback.
 *
 * A handler implements one function, on_req, that receives a complete request and fills in a
 * reply with the qk_http_reply_* helpers below. The pattern is h2o's lib/handler/: a handler
 * struct embeds qk_http_handler as its first member ("super"), and a configurator beside the
 * handler fills it in. */
#ifndef QK_HTTP_ENVELOPE_H
#define QK_HTTP_ENVELOPE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cert_role.h"
#include "http1.h"
#include "qk_err.h"

#define QK_IDENTITY_MAX 256

typedef enum { QK_ID_NONE = 0, QK_ID_PSK, QK_ID_CERT } qk_id_kind;

/* The authenticated peer of a connection, set by the TLS front end. */
typedef struct {
    qk_id_kind kind;
    char id[QK_IDENTITY_MAX]; /* PSK identity, or certificate subject CN (or mapped id) */
    char fp_hex[65];          /* certificate SHA-256 fingerprint (lower-case hex) or "" */
    qk_role role;             /* the certificate's role marker (cert_role.h); NONE for a PSK */
    char tls_version[16];     /* "TLSv1.3" ... */
    char cipher[64];          /* negotiated suite name */
} qk_peer_identity;

/* A complete request, valid during on_req only. */
typedef struct {
    const char *listener;           /* the listener's name ("etsi014", "peer", "control", ...) */
    const char *method;             /* "GET", "POST", ... (never NULL) */
    const char *path;               /* the percent-decoded path, without the query (never NULL) */
    const qk_peer_identity *caller; /* never NULL: kind QK_ID_NONE when not authenticated */
    const char *body;               /* NUL-terminated, within max_body; "" when none */
    size_t body_len;
    double t_start_ms;         /* monotonic ms when the request arrived */
    const qk_http1_head *head; /* for the query and header helpers below; NULL: none */
} qk_http_request;

/* Number of occurrences of query parameter `name` (a repeated parameter is an error in both
 * key-delivery APIs), and its (first) value or NULL. */
unsigned qk_http_query_count(const qk_http_request *req, const char *name);
const char *qk_http_query(const qk_http_request *req, const char *name);
/* The (first) request header field called name (case-insensitive), or NULL. */
const char *qk_http_header(const qk_http_request *req, const char *name);

#define QK_HTTP_DETAIL_MAX 200
#define QK_HTTP_ALLOW_MAX  32

/* The reply a handler fills in. Start state: status 0 (the envelope then answers 500). */
typedef struct {
    unsigned status;
    const char *content_type; /* static string, or NULL for an empty body */
    char *body;               /* owned by the reply: malloc'ed, or secure when secret */
    size_t len;
    bool secret;                     /* body is qk_secure_alloc'ed: wiped when sent */
    char allow[QK_HTTP_ALLOW_MAX];   /* Allow header, "" for none */
    char *key_ids;                   /* malloc'ed "id1,id2" for the log line, or NULL */
    char detail[QK_HTTP_DETAIL_MAX]; /* short reason for the log line, "" for none */
    unsigned retry_after;            /* Retry-After header in seconds (RFC 9110 10.2.3); 0: none */
} qk_http_reply;

/* Every helper replaces what the reply held. They return 0, or -1 when out of memory (the
 * reply then holds the status with an empty body, which the envelope still sends). */

/* A body copied from `body` (len bytes; NULL/0 for an empty body). */
int qk_http_reply_set(qk_http_reply *rep, unsigned status, const char *content_type,
                      const char *body, size_t len);
/* An application/json body copied from the NUL-terminated json. */
int qk_http_reply_json(qk_http_reply *rep, unsigned status, const char *json);
/* Takes ownership of a malloc'ed body (freed by the envelope). */
void qk_http_reply_take(qk_http_reply *rep, unsigned status, const char *content_type, char *body,
                        size_t len);
/* 200 with a malloc'ed JSON text it takes ownership of; NULL (the rendering ran out of memory)
 * answers 500 {"message": "out of memory"}. */
void qk_http_reply_json_take(qk_http_reply *rep, char *json);
/* Takes ownership of a qk_secure_alloc'ed JSON body holding key material: sent from that
 * buffer, wiped and freed when the front end has written it, with Cache-Control: no-store. */
void qk_http_reply_secret(qk_http_reply *rep, unsigned status, char *json, size_t len);
/* {"message": msg} as application/json; the detail becomes msg. */
int qk_http_reply_message(qk_http_reply *rep, unsigned status, const char *msg);
/* {"message": msg, "reason": reason} (reason NULL: message only); the detail becomes msg. */
int qk_http_reply_error(qk_http_reply *rep, unsigned status, const char *reason, const char *msg);
/* The Allow header (405 and the like). */
void qk_http_reply_allow(qk_http_reply *rep, const char *allow);
/* 405 {"message": "method not allowed"} with the Allow header the answer must carry (RFC 9110
 * section 15.5.6). */
void qk_http_reply_not_allowed(qk_http_reply *rep, const char *allow);
/* The log line's detail (printf-style, truncated to QK_HTTP_DETAIL_MAX). */
void qk_http_reply_detail(qk_http_reply *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The log line's key IDs: takes ownership of a malloc'ed string. */
void qk_http_reply_key_ids(qk_http_reply *rep, char *ids);

typedef struct qk_http_handler qk_http_handler;

/* Called once per request that is complete (and within max_body); may block for a bounded
 * time (handlers call the peer KME with timeouts) unless the handler says never_blocks. Never
 * called concurrently with itself for the same connection; concurrently across connections.
 * A handler that may block runs on the listener's worker pool while its connection is
 * suspended (the request's head and body stay put: nothing touches a suspended connection). */
typedef void (*qk_http_on_req)(qk_http_handler *self, const qk_http_request *req,
                               qk_http_reply *rep);
/* Told of every answered request (metrics): listener name, status sent, latency. */
typedef void (*qk_http_observe)(void *cls, const char *listener, int status, double latency_ms);

struct qk_http_handler {
    qk_http_on_req on_req;
    /* false (the default, the safe choice): on_req may block, so the front end runs it on the
     * listener's worker pool and suspends the connection meanwhile. true: on_req only computes
     * (no network, no store, no lock held for long) and runs inline on the pump thread, which
     * saves two thread hops per request. */
    bool never_blocks;
    /* true: on_req runs first inline on the pump thread inside qk_inline_begin/end
     * (common/qk_inline.h). Code below it that would block says so and the request runs
     * again from the start on the worker pool; store commits record a barrier instead of
     * waiting, and the reply is held (connection suspended) until the barrier completes.
     * Only for handlers whose every blocking call below them checks qk_inline_must_defer and
     * that change nothing before such a call. Ignored without a worker pool (and when
     * never_blocks is set). */
    bool inline_first;
    /* With inline_first: the handler's store writes may join the store's group transaction
     * (qk_inline.group_commit): one COMMIT and one WAL write of the shared pages for many
     * requests. Its reply is held until that commit is durable, and a failed group commit
     * turns it into a 500 like a failed sync. For handlers whose callers are SAEs (ETSI 014,
     * SKIP); the peer API keeps a commit per call, so a peer KME hears the store's own reason
     * for a failure, except where a route allows it for its request (qk_inline_allow_group:
     * notices, whose sender sends again after a 500). */
    bool group_commit;
    unsigned too_large_status; /* the answer past max_body; 0 = 413 */
    qk_http_observe observe;   /* may be NULL */
    void *observe_cls;
};

/* ---- for the front end (tls_server.c) -------------------------------------------------- */

/* The front end's connection, opaque here. */
typedef struct qk_http_conn qk_http_conn;

/* A bounded pool of worker threads for handlers that may block. The envelope (on the thread
 * that owns the connection) queues the request and reports the connection suspended; a worker
 * runs on_req, stores the reply and calls the front end's resume (qk_http_front.resume, any
 * thread); the front end then calls qk_http_envelope_resume on the connection's thread, which
 * hands it the stored reply. A full queue answers 503 with Retry-After: 1 at once, without
 * calling the handler. */
typedef struct qk_http_pool qk_http_pool;

/* workers 1..1024, queue_max 1..65536 (requests waiting for a worker). name for logs. */
int qk_http_pool_start(const char *name, unsigned workers, unsigned queue_max, qk_http_pool **out,
                       qk_err *err);
/* Requests still queued are answered 503 without running their handler; running handlers
 * finish; every suspended connection is resumed; workers joined. Later submissions are
 * answered 503 at once, so the pool must stay allocated until no front end can call the
 * envelope any more. The front end's threads must keep serving resumes until the stop returns
 * or after it. Idempotent; NULL: no-op. */
void qk_http_pool_stop(qk_http_pool *p);
/* Wake idle workers for the jobs queued since the last kick. The envelope queues without
 * waking anyone: the front end's thread calls this once per loop turn, so a worker woken for a
 * job does not preempt that thread in the middle of its batch. */
void qk_http_pool_kick(qk_http_pool *p);
/* Stop (if not yet) and free. NULL is a no-op. */
void qk_http_pool_free(qk_http_pool *p);

/* What the front end gives the envelope: the handler, the listener's name, its body limit, its
 * worker pool and its resume callback. Owned by the listener; must outlive it. */
typedef struct {
    qk_http_handler *handler;
    const char *listener;
    size_t max_body;    /* 0 = QK_HTTP_DEFAULT_MAX_BODY */
    qk_http_pool *pool; /* NULL: every handler runs inline on the front end's thread */
    /* With a pool: a suspended request of connection c can continue (called exactly once per
     * suspension, from any thread, possibly before qk_http_envelope_start has returned on the
     * connection's thread). The front end calls qk_http_envelope_resume for it on the
     * connection's own thread. */
    void (*resume)(void *cls, qk_http_conn *c);
    void *resume_cls;
} qk_http_front;

#define QK_HTTP_DEFAULT_MAX_BODY (64u * 1024u)

/* The body limit of f's listener: its max_body, or QK_HTTP_DEFAULT_MAX_BODY. */
size_t qk_http_front_max_body(const qk_http_front *f);

/* The envelope's state of one connection's current request; the front end keeps one per
 * connection, zeroed at the start. */
typedef struct {
    struct http_job *job; /* the suspended (or resumed, not yet answered) request, or NULL */
} qk_http_env;

/* A complete request arrived on connection c (its head and body must stay unchanged until the
 * reply is out). too_large: its body passed max_body (the front end wiped what arrived and
 * passes an empty body); the handler is not called and the answer is its too_large_status.
 * Returns 1 when *out holds the reply to send now (the log line is written and the observer
 * told: the front end sends it and frees it with qk_http_reply_clear), or 0 when the request
 * is suspended: the front end's resume callback follows, then qk_http_envelope_resume. */
int qk_http_envelope_start(const qk_http_front *f, qk_http_conn *c, qk_http_env *e,
                           const qk_http_request *req, bool too_large, qk_http_reply *out);
/* After the resume callback, on the connection's thread: the same answers. */
int qk_http_envelope_resume(const qk_http_front *f, qk_http_conn *c, qk_http_env *e,
                            qk_http_reply *out);
/* Free what e holds for a connection that closes with no request suspended. */
void qk_http_envelope_drop(qk_http_env *e);

/* For unit tests of handlers: run on_req on a synthetic request (no connection: the query
 * helpers then see no parameters) and finish the reply as the envelope would (a status 0 reply
 * becomes 500). Free the reply with qk_http_reply_clear. */
void qk_http_handler_call(qk_http_handler *h, const qk_http_request *req, qk_http_reply *rep);
/* Free what a reply holds (wiping a secret body) and reset it to the start state. */
void qk_http_reply_clear(qk_http_reply *rep);

#endif
