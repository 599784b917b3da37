/* test_sd_notify.c - common/sd_notify against a unix datagram socket standing in for the
 * service manager's NOTIFY_SOCKET (sd_notify(3)): the messages, the no-op without the socket,
 * the watchdog period from WATCHDOG_USEC/WATCHDOG_PID (sd_watchdog_enabled(3)) and the thread. */
#include <CUnit/CUnit.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd_notify.h"

/* A bound datagram socket in a fresh temporary folder; NOTIFY_SOCKET points at it. */
typedef struct {
    char dir[64];
    char path[96];
    int fd;
} fake_manager;

static int fm_open(fake_manager *m)
{
    snprintf(m->dir, sizeof m->dir, "/tmp/qk-sdn.XXXXXX");
    m->fd = -1;
    if (!mkdtemp(m->dir))
        return -1;
    snprintf(m->path, sizeof m->path, "%s/notify", m->dir);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", m->path);
    m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    return setenv("NOTIFY_SOCKET", m->path, 1);
}

static void fm_close(fake_manager *m)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (m->fd >= 0)
        close(m->fd);
    unlink(m->path);
    rmdir(m->dir);
}

/* The next message within timeout_ms into buf (NUL-terminated); its length, or -1. */
static ssize_t fm_recv(fake_manager *m, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = m->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    ssize_t n = recv(m->fd, buf, cap - 1, 0);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

static void test_messages(void)
{
    fake_manager m;
    CU_ASSERT_FATAL(fm_open(&m) == 0);
    char buf[512];
    CU_ASSERT_EQUAL(qk_sd_ready("serving etsi014=1 admin=2"), 0);
    CU_ASSERT(fm_recv(&m, buf, sizeof buf, 2000) > 0);
    CU_ASSERT_STRING_EQUAL(buf, "READY=1\nSTATUS=serving etsi014=1 admin=2");
    CU_ASSERT_EQUAL(qk_sd_ready(NULL), 0);
    CU_ASSERT(fm_recv(&m, buf, sizeof buf, 2000) > 0);
    CU_ASSERT_STRING_EQUAL(buf, "READY=1");
    CU_ASSERT_EQUAL(qk_sd_stopping(), 0);
    CU_ASSERT(fm_recv(&m, buf, sizeof buf, 2000) > 0);
    CU_ASSERT_STRING_EQUAL(buf, "STOPPING=1");
    /* A STATUS longer than the bound is cut, not refused. */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CU_ASSERT_EQUAL(qk_sd_ready(big), 0);
    CU_ASSERT(fm_recv(&m, buf, sizeof buf, 2000) == (ssize_t)strlen("READY=1\nSTATUS=") + 256);
    fm_close(&m);
    /* No manager: every call is a no-op that succeeds. */
    CU_ASSERT_EQUAL(qk_sd_ready("x"), 0);
    CU_ASSERT_EQUAL(qk_sd_stopping(), 0);
    CU_ASSERT_EQUAL(qk_sd_watchdog_period_us(), 0);
}

static void test_watchdog_period(void)
{
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    CU_ASSERT_EQUAL(qk_sd_watchdog_period_us(), 0);
    CU_ASSERT_EQUAL(setenv("WATCHDOG_USEC", "30000000", 1), 0);
    CU_ASSERT_EQUAL(qk_sd_watchdog_period_us(), 15000000);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    CU_ASSERT_EQUAL(setenv("WATCHDOG_PID", pid, 1), 0);
    CU_ASSERT_EQUAL(qk_sd_watchdog_period_us(), 15000000);
    /* Meant for another process (the manager sets both for the main PID only). */
    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
    CU_ASSERT_EQUAL(setenv("WATCHDOG_PID", pid, 1), 0);
    CU_ASSERT_EQUAL(qk_sd_watchdog_period_us(), 0);
    unsetenv("WATCHDOG_PID");
    CU_ASSERT_EQUAL(setenv("WATCHDOG_USEC", "garbage", 1), 0);
    CU_ASSERT_EQUAL(qk_sd_watchdog_period_us(), 0);
    unsetenv("WATCHDOG_USEC");
    qk_sd_watchdog *w = (qk_sd_watchdog *)&w;
    CU_ASSERT_EQUAL(qk_sd_watchdog_start(&w), 0);
    CU_ASSERT_PTR_NULL(w); /* nothing asked: no thread */
    qk_sd_watchdog_stop(NULL);
}

static void test_watchdog_thread(void)
{
    fake_manager m;
    CU_ASSERT_FATAL(fm_open(&m) == 0);
    CU_ASSERT_EQUAL(setenv("WATCHDOG_USEC", "40000", 1), 0); /* a ping every 20 ms */
    qk_sd_watchdog *w = NULL;
    CU_ASSERT_EQUAL_FATAL(qk_sd_watchdog_start(&w), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    char buf[64];
    int pings = 0;
    for (int i = 0; i < 5; i++)
        if (fm_recv(&m, buf, sizeof buf, 2000) > 0 && strcmp(buf, "WATCHDOG=1") == 0)
            pings++;
    CU_ASSERT_EQUAL(pings, 5);
    qk_sd_watchdog_stop(w);
    /* Joined: nothing more after what was already queued. */
    while (fm_recv(&m, buf, sizeof buf, 0) > 0)
        ;
    CU_ASSERT_EQUAL(fm_recv(&m, buf, sizeof buf, 100), -1);
    fm_close(&m);
}

int suite_sd_notify(void)
{
    CU_pSuite s = CU_add_suite("sd_notify", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "READY/STATUS/STOPPING messages, no-op without a socket", test_messages) ||
        !CU_add_test(s, "watchdog period from WATCHDOG_USEC and WATCHDOG_PID",
                     test_watchdog_period) ||
        !CU_add_test(s, "watchdog thread pings and stops", test_watchdog_thread))
        return -1;
    return 0;
}
