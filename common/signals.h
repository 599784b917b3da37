/* signals.h - the stop/reload signal discipline every daemon here uses: SIGTERM, SIGINT and
 * SIGHUP are blocked in every thread and taken with sigwait() by the main thread; SIGPIPE is
 * ignored (writes to closed sockets return EPIPE instead). */
#ifndef QK_SIGNALS_H
#define QK_SIGNALS_H

#include <signal.h>

/* Call in the main thread before any other thread starts (threads inherit the mask). Fills set
 * with the blocked signals for sigwait(). Returns 0 or -1. */
int qk_signals_block_stop(sigset_t *set);

#endif
