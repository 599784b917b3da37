/* listeners.h - start the configured listeners of qkd-kmed with the TLS front end
 * (common/tls_server.h) and report their ports. main.c supplies the handler for each kind, so
 * that kms/ never depends on the API layers (etsi014/, skip-server/). */
#ifndef QK_LISTENERS_H
#define QK_LISTENERS_H

#include <microhttpd.h>
#include "kmed_config.h"

typedef struct {
    MHD_AccessHandlerCallback handler; /* NULL: this kind cannot be served */
    void *cls;
    MHD_RequestCompletedCallback completed;
    void *completed_cls;
    size_t max_body;
} qk_listener_binding;

typedef struct qk_listeners qk_listeners;

/* Start every listener present in cfg (each needs a binding with a handler). On failure the
 * ones already started are stopped and err names the listener. */
int qk_listeners_start(const qk_kmed_config *cfg, const qk_listener_binding b[QK_LST_COUNT],
                       qk_listeners **out, qk_err *err);
/* Bound port of a running listener, 0 if that kind is not running. */
uint16_t qk_listeners_port(const qk_listeners *ls, qk_listener_kind kind);
/* Write "name=port" lines for every running listener (atomically: temp file + rename). */
int qk_listeners_write_port_file(const qk_listeners *ls, const char *path, qk_err *err);
/* Stop every listener (in-flight requests finish), free. NULL is a no-op. */
void qk_listeners_stop(qk_listeners *ls);

/* Load a fingerprint map: "sha256-hex identity" lines (colons allowed in the hex; '#'
 * comments and blank lines ignored). Errors name file and line. */
int qk_fp_map_load(const char *path, qk_fp_map *out, qk_err *err);
void qk_fp_map_free(qk_fp_map *m);

#endif
