/* test_bench_cpu.c - bench/bench_cpu: the --cpu-pids list, the utime and stime fields of
 * /proc/PID/stat (proc(5)) behind a command name holding spaces and parentheses, the CPU time
 * of a child that spins a known amount against a sleeping one, and the per-operation, per-key
 * and per-request figures of the JSON report. */
#include <CUnit/CUnit.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_cpu.h"
#include "bench_report.h"

static void test_parse_pids(void)
{
    bench_cpu_pids p;
    CU_ASSERT_EQUAL(bench_cpu_parse_pids("1,22,333", &p), 0);
    CU_ASSERT_EQUAL(p.n, 3);
    CU_ASSERT_EQUAL(p.pid[0], 1);
    CU_ASSERT_EQUAL(p.pid[2], 333);
    CU_ASSERT_EQUAL(bench_cpu_parse_pids("4242", &p), 0);
    CU_ASSERT_EQUAL(p.n, 1);
    const char *bad[] = {"", "0", "-1", "1,", ",1", "1,,2", "abc", "1x", "1 2", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(bench_cpu_parse_pids(bad[i], &p), -1);
    char many[128] = "1";
    for (unsigned i = 1; i < BENCH_MAX_CPU_PIDS; i++)
        strcat(many, ",1");
    CU_ASSERT_EQUAL(bench_cpu_parse_pids(many, &p), 0);
    CU_ASSERT_EQUAL(p.n, BENCH_MAX_CPU_PIDS);
    strcat(many, ",1");
    CU_ASSERT_EQUAL(bench_cpu_parse_pids(many, &p), -1);
}

static void test_parse_stat(void)
{
    uint64_t t = 0;
    /* pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime cutime ...: the name's own ") (" must not shift the fields. */
    CU_ASSERT_EQUAL(bench_cpu_parse_stat("1234 (a) b (c d) S 1 2 3 4 5 6 7 8 9 10 250 30 7 8 20 0 "
                                         "9 0 123 456\n",
                                         &t),
                    0);
    CU_ASSERT_EQUAL(t, 280);
    CU_ASSERT_EQUAL(bench_cpu_parse_stat("1 (x) R 1 2 3 4 5 6 7 8 9 10 0 0\n", &t), 0);
    CU_ASSERT_EQUAL(t, 0);
    CU_ASSERT_EQUAL(bench_cpu_parse_stat("1 (x) R 1 2 3 4 5 6 7 8 9 10 250", &t), -1);
    CU_ASSERT_EQUAL(bench_cpu_parse_stat("1 (x) R 1 2 3 4 5 6 7 8 9 10 25x 3\n", &t), -1);
    CU_ASSERT_EQUAL(bench_cpu_parse_stat("1 x R 1 2 3 4 5 6 7 8 9 10 250 30\n", &t), -1);
}

static double own_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A child that spins `spin_s` of its own CPU time, writes one byte to fd and sleeps until
 * killed (spin_s 0: only sleeps). Its PID, or -1. */
static pid_t child(double spin_s, int fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    volatile unsigned long x = 0;
    while (spin_s > 0 && own_cpu_s() < spin_s)
        for (unsigned i = 0; i < 100000; i++)
            x += i;
    if (fd >= 0 && write(fd, "x", 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

static void reap(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void test_sample(void)
{
    int fds[2];
    CU_ASSERT_FATAL(pipe(fds) == 0);
    pid_t sleeper = child(0, -1);
    pid_t busy = child(0.3, fds[1]);
    CU_ASSERT_FATAL(sleeper > 0 && busy > 0);
    bench_cpu_pids ps = {.n = 1, .pid = {sleeper}}, pb = {.n = 1, .pid = {busy}};
    bench_cpu_pids both = {.n = 2, .pid = {sleeper, busy}};
    double s0 = -1, b0 = -1, s1 = -1, b1 = -1, all = -1;
    CU_ASSERT_EQUAL(bench_cpu_sample(&ps, &s0), 0);
    CU_ASSERT_EQUAL(bench_cpu_sample(&pb, &b0), 0);
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    CU_ASSERT_FATAL(poll(&p, 1, 30000) == 1); /* spinning 0.3 s of CPU on a loaded machine */
    CU_ASSERT_EQUAL(bench_cpu_sample(&ps, &s1), 0);
    CU_ASSERT_EQUAL(bench_cpu_sample(&pb, &b1), 0);
    CU_ASSERT_EQUAL(bench_cpu_sample(&both, &all), 0);
    /* The busy child spent 0.3 s, less what it had spent before the first sample; ticks are
     * 1/CLK_TCK (10 ms at 100 Hz). The sleeper spent nothing measurable. */
    CU_ASSERT(b1 - b0 >= 0.15 && b1 - b0 <= 0.45);
    CU_ASSERT(s1 - s0 >= 0 && s1 - s0 <= 0.02);
    CU_ASSERT(all >= s1 + b1 - 1e-9 && all <= s1 + b1 + 0.05);
    /* A process gone is an error, not a zero. */
    reap(sleeper);
    CU_ASSERT_EQUAL(bench_cpu_sample(&both, &all), -1);
    reap(busy);
    close(fds[0]);
    close(fds[1]);
}

static void test_report(void)
{
    bench_opts o = {.scenario = BENCH_SC_ETSI, .connections = 1, .size_bits = 256, .number = 2};
    o.cpu.n = 2;
    bench_result *r = bench_result_new();
    CU_ASSERT_FATAL(r != NULL);
    r->measured_s = 1;
    r->total.ops = 100;
    r->total.keys = 200;
    r->total.requests = 200;
    cJSON *j = bench_report_json(&o, r);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(j, "cpu_s")); /* not measured */
    cJSON_Delete(j);
    r->cpu_measured = true;
    r->cpu_s = 0.05;
    j = bench_report_json(&o, r);
    CU_ASSERT_FATAL(j != NULL);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItemCaseSensitive(j, "cpu_s")->valuedouble, 0.05, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItemCaseSensitive(j, "cpu_processes")->valuedouble, 2, 0);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItemCaseSensitive(j, "cpu_ms_per_operation")->valuedouble,
                           0.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItemCaseSensitive(j, "cpu_ms_per_key")->valuedouble, 0.25,
                           1e-9);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItemCaseSensitive(j, "cpu_ms_per_request")->valuedouble,
                           0.25, 1e-9);
    cJSON_Delete(j);
    bench_result_free(r);
}

int suite_bench_cpu(void)
{
    CU_pSuite s = CU_add_suite("bench_cpu", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "--cpu-pids list", test_parse_pids) ||
        !CU_add_test(s, "utime + stime of /proc/PID/stat", test_parse_stat) ||
        !CU_add_test(s, "a spinning child against a sleeping one", test_sample) ||
        !CU_add_test(s, "CPU per operation, key and request in the JSON report", test_report))
        return -1;
    return 0;
}
