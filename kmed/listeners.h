/* listeners.h - start the configured listeners of qkd-kmed with the TLS front end
 * (common/tls_server.h): each listener's TLS policy, limits and body limit come from its
 * [listener NAME] section; main.c supplies the request-envelope handler of each trust zone. */
#ifndef QK_LISTENERS_H
#define QK_LISTENERS_H

#include <stdio.h>
#include "http_envelope.h"
#include "kmed_config.h"

typedef struct qk_listeners qk_listeners;

/* Start every listener present in cfg; handlers[kind] serves that listener (NULL: this kind
 * cannot be served) and must outlive it. On failure the ones already started are stopped and
 * err names the listener. */
int qk_listeners_start(const qk_kmed_config *cfg, qk_http_handler *const handlers[QK_LST_COUNT],
                       qk_listeners **out, qk_err *err);
/* What qk_listeners_start refuses in the files the listeners name, without binding anything
 * (qkd-kmed --check-config): each PSK file (private mode, syntax) and fingerprint map, loaded
 * and freed as at start. 0, or the error start-up would report. */
int qk_listeners_check(const qk_kmed_config *cfg, qk_err *err);
/* "name=port" of every running listener, each followed by sep, into out. 0 or -1 (too long). */
int qk_listeners_ports(const qk_listeners *ls, char sep, char *out, size_t cap);
/* Write "name=port" lines for every running listener (atomically: temp file + rename). */
int qk_listeners_write_port_file(const qk_listeners *ls, const char *path, qk_err *err);
/* A qk_metrics extra writer (arg: the qk_listeners): the TLS front end's counters of every
 * running listener - connections accepted, refused at max_connections, refused by a per-source
 * or per-identity budget, evicted when idle, closed at a header or body deadline, and open;
 * handshakes by result, TLS 1.3 PSK handshakes by hash. Returns 0 or -1. */
int qk_listeners_write_metrics(void *arg, FILE *f);
/* Stop every listener (in-flight requests finish), free. NULL is a no-op. */
void qk_listeners_stop(qk_listeners *ls);

#endif
