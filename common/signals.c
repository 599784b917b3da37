/* signals.c - see signals.h. */
#include "signals.h"

#include <pthread.h>

#include "log.h"

int qk_signals_block_stop(sigset_t *set)
{
    if (sigemptyset(set) != 0 || sigaddset(set, SIGTERM) != 0 || sigaddset(set, SIGINT) != 0 ||
        sigaddset(set, SIGHUP) != 0)
        return -1;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return -1;
    return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? 0 : -1;
}

int qk_signals_wait_stop(const sigset_t *set, bool note_reopen)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (qk_log_reopen() != 0)
                QK_WARN("SIGHUP: cannot reopen the log file");
            else if (note_reopen)
                QK_INFO("SIGHUP: log file reopened");
            continue;
        }
        QK_INFO("signal %d: stopping", sig);
        return sig;
    }
}
