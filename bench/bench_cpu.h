/* bench_cpu.h - CPU time of other processes (the KMEs, nginx's workers) over the measured
 * phase of a run: user + system time from /proc/PID/stat (proc(5): fields 14 utime and 15
 * stime, in clock ticks of sysconf(_SC_CLK_TCK)), summed over every thread of each process. */
#ifndef BENCH_CPU_H
#define BENCH_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_CPU_PIDS 16

typedef struct {
    unsigned n;
    pid_t pid[BENCH_MAX_CPU_PIDS];
} bench_cpu_pids;

/* "PID,PID,..." (1..BENCH_MAX_CPU_PIDS positive decimal PIDs). 0, or -1 with a message on
 * stderr naming --cpu-pids. */
int bench_cpu_parse_pids(const char *s, bench_cpu_pids *out);
/* utime + stime of PID from the text of its /proc/PID/stat (`stat`, NUL-terminated). The
 * command name (field 2) is parenthesised and may hold spaces and parentheses: the fields are
 * counted from its last ')'. 0, or -1 when the text has fewer fields or a bad number. */
int bench_cpu_parse_stat(const char *stat, uint64_t *ticks);
/* The sum of utime + stime of every PID of p, in seconds. 0, or -1 with a message on stderr
 * (a process gone, /proc unreadable). */
int bench_cpu_sample(const bench_cpu_pids *p, double *seconds);

#endif
