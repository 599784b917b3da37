/* signals.c - see signals.h. */
#include "signals.h"

#include <pthread.h>

int qk_signals_block_stop(sigset_t *set)
{
    if (sigemptyset(set) != 0 || sigaddset(set, SIGTERM) != 0 || sigaddset(set, SIGINT) != 0 ||
        sigaddset(set, SIGHUP) != 0)
        return -1;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return -1;
    return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? 0 : -1;
}
