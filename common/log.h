/* log.h - leveled, thread-safe logging; one structured (logfmt) line per request.
 * Never pass key material to any of these functions. */
#ifndef QK_LOG_H
#define QK_LOG_H

#include <stdbool.h>

typedef enum { QK_LOG_DEBUG = 0, QK_LOG_INFO = 1, QK_LOG_WARN = 2, QK_LOG_ERROR = 3 } qk_log_level;

/* Open the log: path NULL or "-" means stderr. prog names the program in every line.
 * Returns 0 or -1 (errno set) if the file cannot be opened. */
int qk_log_open(const char *path, qk_log_level min_level, const char *prog);
/* Reopen the same path (after logrotate; call from the main loop on SIGHUP). */
int qk_log_reopen(void);
void qk_log_close(void);
void qk_log_set_level(qk_log_level lvl);
qk_log_level qk_log_get_level(void);
/* "debug" | "info" | "warn" | "error" -> level; returns 0 or -1. */
int qk_log_level_parse(const char *s, qk_log_level *out);

/* One line: `ts=2026-11-23T17:00:00.123Z level=info prog=qkd-kmed msg="..."` */
void qk_log(qk_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define QK_DEBUG(...) qk_log(QK_LOG_DEBUG, __VA_ARGS__)
#define QK_INFO(...)  qk_log(QK_LOG_INFO, __VA_ARGS__)
#define QK_WARN(...)  qk_log(QK_LOG_WARN, __VA_ARGS__)
#define QK_ERROR(...) qk_log(QK_LOG_ERROR, __VA_ARGS__)

/* The one structured line per request. Values are quoted when they hold spaces, quotes or
 * control characters (logfmt). key_ids: comma-separated key IDs or NULL - never key bytes. */
typedef struct {
    const char *listener; /* "etsi014", "skip", "peer", "device", "admin" */
    const char *method;
    const char *path;     /* without query string secrets; the caller passes what to log */
    const char *identity; /* authenticated peer identity or NULL */
    int status;           /* HTTP status sent */
    double latency_ms;
    const char *key_ids; /* may be NULL */
    const char *detail;  /* short error message or NULL */
} qk_request_log;

void qk_log_request(const qk_request_log *r);

/* Batching for event loops (the TLS front end's pump threads): while a thread holds, its lines
 * are written to the log's stream buffer without a flush (one write(2) per loop turn instead of
 * one per request line); qk_log_flush, which the loop calls before it waits, writes them out.
 * Lines keep their order across threads (one stream). Holding off flushes what was held. */
void qk_log_hold(bool on);
/* Write out the lines this thread holds (no-op when there are none). */
void qk_log_flush(void);

#endif
