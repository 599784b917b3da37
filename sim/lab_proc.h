/* lab_proc.h - processes and loopback probes for qkd-lab: find sibling binaries, start a
 * detached daemon with its output in a file, wait for its port file, check and stop it
 * (SIGTERM, bounded wait, SIGKILL), pick free loopback ports, GET over plain HTTP, read
 * Prometheus samples. */
#ifndef QK_LAB_PROC_H
#define QK_LAB_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "qk_err.h"

/* DIR_OF(/proc/self/exe)/name into out. Returns 0 if it is executable, else -1. */
int qk_lab_sibling_binary(const char *name, char *out, size_t cap);

/* Start argv[0] with argv in a new session, stdin /dev/null, stdout+stderr appended to
 * out_path, environment plus the "NAME=VALUE" entries of env (NULL-terminated, may be NULL).
 * Returns the PID or -1 (err set). */
pid_t qk_lab_spawn(char *const argv[], const char *out_path, char *const env[], qk_err *err);

/* Wait up to timeout_ms until path exists and holds a line "key=PORT"; reads the port.
 * Fails early when pid exits. Returns 0 or a qk_status. */
int qk_lab_wait_port(const char *path, const char *key, pid_t pid, unsigned timeout_ms,
                     uint16_t *port, qk_err *err);
/* The port of "key=PORT" in a port file's text; 0 when absent. */
uint16_t qk_lab_port_from_text(const char *text, const char *key);

/* True when pid runs (not a zombie) and its command line contains marker (guards against a
 * recycled PID). */
bool qk_lab_pid_alive(pid_t pid, const char *marker);

/* SIGTERM every live pid (with marker), wait up to timeout_ms for all, SIGKILL the rest and
 * wait up to 2 s more for them (an exiting process counts until it is gone or a zombie).
 * Returns the number still running at the end (0 = all stopped). */
int qk_lab_stop(const pid_t *pids, size_t n, const char *marker, unsigned timeout_ms);

/* A free TCP port on 127.0.0.1, not in avoid[0..navoid): drawn at random below the kernel's
 * ephemeral range (or from QKD_LAB_PORTS=LO-HI), checked by a bind. 0 on failure. */
uint16_t qk_lab_free_port(const uint16_t *avoid, size_t navoid);

/* GET an http:// URL (timeout 3 s); *body malloc'ed. Returns 0 on HTTP 200. */
int qk_lab_http_get(const char *url, char **body, qk_err *err);

/* Sum of the samples of metric name whose label set contains filter (NULL = all) in
 * Prometheus text. Returns -1 when no sample matches. */
double qk_lab_metric(const char *text, const char *name, const char *filter);

void qk_lab_sleep_ms(unsigned ms);

#endif
