/* signals.h - the stop/reload signal discipline every daemon here uses: SIGTERM, SIGINT and
 * SIGHUP are blocked in every thread and taken with sigwait() by the main thread; SIGPIPE is
 * ignored (writes to closed sockets return EPIPE instead). */
#ifndef QK_SIGNALS_H
#define QK_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

/* Call in the main thread before any other thread starts (threads inherit the mask). Fills set
 * with the blocked signals for sigwait(). Returns 0 or -1. */
int qk_signals_block_stop(sigset_t *set);

/* The main thread's wait, after start-up: take the signals of set with sigwait(); SIGHUP
 * reopens the log file (qk_log_reopen; a failure is a warning, a success an info line when
 * note_reopen) and waits on; SIGTERM or SIGINT is logged ("signal N: stopping") and returned. */
int qk_signals_wait_stop(const sigset_t *set, bool note_reopen);

#endif
