/* thread_name.h - name the calling thread, so that ps -L, top -H, perf and gdb tell a KME's
 * threads apart (the names are listed in docs/qkd-kmed.md, "Threads"). */
#ifndef QK_THREAD_NAME_H
#define QK_THREAD_NAME_H

#include <pthread.h>

/* Names the calling thread `lit`, a string literal of at most 15 characters (the kernel's
 * TASK_COMM_LEN is 16 with the NUL; checked at compile time). pthread_setname_np(3) can only
 * fail with ERANGE for a longer name, which the assertion rules out, so its result is not
 * used: a thread without its name works the same. */
#define QK_THREAD_NAME(lit)                                                                        \
    do {                                                                                           \
        _Static_assert(sizeof(lit) <= 16, "thread names are at most 15 characters");               \
        (void)pthread_setname_np(pthread_self(), (lit));                                           \
    } while (0)

#endif
