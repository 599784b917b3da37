/* coredump.h - keep key bytes out of core files: the one start-up call of every daemon that
 * holds keys (qkd-kmed, qkd-sim run, qkd-bridge run). */
#ifndef QK_COREDUMP_H
#define QK_COREDUMP_H

#include <stdbool.h>

/* The command-line flag of every daemon that turns the protection off (for debugging): the
 * long option's name (getopt_long) and the flag as written. */
#define QK_CORE_DUMPS_OPTION "allow-core-dumps"
#define QK_CORE_DUMPS_FLAG   "--" QK_CORE_DUMPS_OPTION

/* Unless allow: make the process non-dumpable (prctl(2) PR_SET_DUMPABLE 0: the kernel writes
 * no core file for it, whatever core_pattern says, and a process of the same user can no
 * longer ptrace it or read its memory through /proc/PID/mem) and set its core-file limit to
 * zero, soft and hard (setrlimit(2) RLIMIT_CORE; the hard limit too, so that nothing in the
 * process raises it again). With allow, both are left as they are and a warning that core
 * files may now carry key material is logged, with the current limit. Call in main after
 * qk_log_open and before any key is read or any thread starts. Returns 0, or -1 (logged) when
 * either call failed. */
int qk_core_dumps_limit(bool allow);

#endif
