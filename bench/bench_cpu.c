/* bench_cpu.c - CPU time of other processes from /proc/PID/stat (proc(5)). */
#include "bench_cpu.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STAT_MAX 4096 /* /proc/PID/stat is one line of 52 fields; the name is <= 64 bytes */

int bench_cpu_parse_pids(const char *s, bench_cpu_pids *out)
{
    out->n = 0;
    const char *p = s;
    while (p && *p) {
        char *end = NULL;
        errno = 0;
        long v = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : 0;
        if (errno || v <= 0 || (pid_t)v != v || !end || (*end && *end != ',') ||
            out->n == BENCH_MAX_CPU_PIDS)
            goto bad;
        out->pid[out->n++] = (pid_t)v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            goto bad; /* trailing comma */
    }
    if (out->n > 0)
        return 0;
bad:
    fprintf(stderr, "qkd-bench: --cpu-pids: 1..%d process IDs separated by commas\n",
            BENCH_MAX_CPU_PIDS);
    return -1;
}

int bench_cpu_parse_stat(const char *stat, uint64_t *ticks)
{
    const char *p = strrchr(stat, ')');
    if (!p)
        return -1;
    p++;
    uint64_t t[2];
    /* After the name: field 3 (state) ... field 13 (cmajflt), then 14 utime, 15 stime. */
    for (unsigned field = 3; field <= 15; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return -1;
        if (field >= 14) {
            char *end = NULL;
            errno = 0;
            if (*p < '0' || *p > '9')
                return -1;
            unsigned long long v = strtoull(p, &end, 10);
            if (errno || (*end != ' ' && *end != '\n' && *end != '\0'))
                return -1;
            t[field - 14] = v;
            p = end;
        } else {
            p += strcspn(p, " ");
        }
    }
    if (t[0] > UINT64_MAX - t[1])
        return -1;
    *ticks = t[0] + t[1];
    return 0;
}

static int read_ticks(pid_t pid, uint64_t *ticks)
{
    char path[64], buf[STAT_MAX];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "qkd-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f) || n == sizeof buf - 1;
    fclose(f);
    buf[n] = '\0';
    if (bad || bench_cpu_parse_stat(buf, ticks) != 0) {
        fprintf(stderr, "qkd-bench: %s: unexpected contents\n", path);
        return -1;
    }
    return 0;
}

int bench_cpu_sample(const bench_cpu_pids *p, double *seconds)
{
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) {
        fprintf(stderr, "qkd-bench: sysconf(_SC_CLK_TCK) failed\n");
        return -1;
    }
    double sum = 0;
    for (unsigned i = 0; i < p->n; i++) {
        uint64_t t;
        if (read_ticks(p->pid[i], &t) != 0)
            return -1;
        sum += (double)t / (double)hz;
    }
    *seconds = sum;
    return 0;
}
