/* run_cmd.c - run a helper program (whack, ip) without a shell, with bounded output and time. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bridge_drivers.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int run_cmd(char *const argv[], const char *in, size_t in_len, char *out, size_t cap,
            int timeout_ms, qk_err *err)
{
    int pin[2], pout[2];
    if (cap)
        out[0] = '\0';
    if (pipe2(pin, O_CLOEXEC) != 0)
        return qk_err_set(err, QK_EIO, "pipe: %s", strerror(errno));
    if (pipe2(pout, O_CLOEXEC) != 0) {
        close(pin[0]);
        close(pin[1]);
        return qk_err_set(err, QK_EIO, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pin[0]);
        close(pin[1]);
        close(pout[0]);
        close(pout[1]);
        return qk_err_set(err, QK_EIO, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(pout[1], 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    /* Feed stdin (small: a batch of commands) then close it. */
    size_t off = 0;
    while (in && off < in_len) {
        ssize_t w = write(pin[1], in + off, in_len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(pin[1]);
    size_t got = 0;
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    bool timed_out = false;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pout[0], .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[512];
        ssize_t n = read(pout[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n, room = cap ? cap - 1 - got : 0;
        if (take > room)
            take = room;
        memcpy(out + got, buf, take);
        got += take;
        if (cap)
            out[got] = '\0';
    }
    close(pout[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        return qk_err_set(err, QK_ETIMEOUT, "%s timed out after %d ms", argv[0], timeout_ms);
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 127)
            return qk_err_set(err, QK_EIO, "cannot run %s", argv[0]);
        return WEXITSTATUS(status);
    }
    return qk_err_set(err, QK_EIO, "%s killed by signal %d", argv[0], WTERMSIG(status));
}
