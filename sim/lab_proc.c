/* lab_proc.c - process control and probes for qkd-lab. */
#include "lab_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "http_util.h"
#include "qk_cli.h"
#include "secbuf.h"

extern char **environ;

void qk_lab_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int qk_lab_sibling_binary(const char *name, char *out, size_t cap)
{
    if (qk_cli_sibling(name, out, cap) != 0)
        return -1;
    return access(out, X_OK) == 0 ? 0 : -1;
}

pid_t qk_lab_spawn(char *const argv[], const char *out_path, char *const env[], qk_err *err)
{
    /* Build the environment before fork: only async-signal-safe calls in the child. */
    size_t ne = 0, nx = 0;
    while (environ[ne])
        ne++;
    while (env && env[nx])
        nx++;
    char **envp = calloc(ne + nx + 1, sizeof *envp);
    if (!envp) {
        qk_err_set(err, QK_ENOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < ne; i++)
        envp[i] = environ[i];
    for (size_t i = 0; i < nx; i++)
        envp[ne + i] = env[i];
    int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0) {
        qk_err_set(err, QK_EIO, "%s: %s", out < 0 ? out_path : "/dev/null", strerror(errno));
        if (out >= 0)
            close(out);
        if (in >= 0)
            close(in);
        free(envp);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (setsid() < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(127);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    int e = errno;
    close(out);
    close(in);
    free(envp);
    if (pid < 0)
        qk_err_set(err, QK_EIO, "fork: %s", strerror(e));
    return pid;
}

uint16_t qk_lab_port_from_text(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *end = NULL;
            long v = strtol(p + kl + 1, &end, 10);
            if (end != p + kl + 1 && (*end == '\n' || *end == '\0') && v > 0 && v < 65536)
                return (uint16_t)v;
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

static void reap(pid_t pid)
{
    int st;
    (void)waitpid(pid, &st, WNOHANG); /* our child (during up) or not (ECHILD): both fine */
}

int qk_lab_wait_port(const char *path, const char *key, pid_t pid, unsigned timeout_ms,
                     uint16_t *port, qk_err *err)
{
    double end = qk_now_ms() + timeout_ms;
    while (qk_now_ms() < end) {
        FILE *f = fopen(path, "r");
        if (f) {
            char buf[1024];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            *port = qk_lab_port_from_text(buf, key);
            if (*port)
                return 0;
        }
        reap(pid);
        if (kill(pid, 0) != 0 || !qk_lab_pid_alive(pid, ""))
            return qk_err_set(err, QK_EIO, "process %d exited at start", (int)pid);
        qk_lab_sleep_ms(50);
    }
    return qk_err_set(err, QK_ETIMEOUT, "%s: no %s port after %u ms", path, key, timeout_ms);
}

bool qk_lab_pid_alive(pid_t pid, const char *marker)
{
    if (pid <= 1)
        return false;
    reap(pid);
    char p[64], buf[8192];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
        return false;
    if (!marker || !*marker)
        return true;
    snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
    f = fopen(p, "r");
    if (!f)
        return false;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, marker) != NULL;
}

/* The processes signalled (mine[i]) that still run: gone or a zombie is stopped. Not matched
 * against the marker again: an exiting process reads an empty cmdline well before it is a
 * zombie (a sanitizer build takes a while to unmap its shadow memory), and it still runs. */
static int count_running(const pid_t *pids, const bool *mine, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += mine[i] && qk_lab_pid_alive(pids[i], NULL);
    return c;
}

int qk_lab_stop(const pid_t *pids, size_t n, const char *marker, unsigned timeout_ms)
{
    bool mine[64] = {false};
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++) {
        mine[i] = qk_lab_pid_alive(pids[i], marker);
        if (mine[i])
            kill(pids[i], SIGTERM);
    }
    double end = qk_now_ms() + timeout_ms;
    while (count_running(pids, mine, n) > 0 && qk_now_ms() < end)
        qk_lab_sleep_ms(50);
    for (size_t i = 0; i < n; i++)
        if (mine[i] && qk_lab_pid_alive(pids[i], marker)) {
            fprintf(stderr, "qkd-lab: process %d did not stop in time: SIGKILL\n", (int)pids[i]);
            kill(pids[i], SIGKILL);
        }
    end = qk_now_ms() + 2000;
    while (count_running(pids, mine, n) > 0 && qk_now_ms() < end)
        qk_lab_sleep_ms(50);
    return count_running(pids, mine, n);
}

/* The ports qk_lab_free_port draws from: below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range, ip(7)), so that no outgoing connection - another
 * KME's call while this one starts - can be given the port between the pick and the daemon's
 * bind; QKD_LAB_PORTS=LO-HI (1024 <= LO < HI <= 65535) narrows them (the tests give each suite
 * that runs beside others its own share). */
static void port_range(unsigned *lo, unsigned *hi)
{
    *lo = 10000;
    *hi = 32767;
    unsigned a = 0, b = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%u %u", &a, &b) == 2 && a > *lo + 1000 && a <= 65536)
            *hi = a - 1;
        fclose(f);
    }
    const char *env = getenv("QKD_LAB_PORTS");
    if (env && sscanf(env, "%u-%u", &a, &b) == 2 && a >= 1024 && a < b && b <= 65535) {
        *lo = a;
        *hi = b;
    }
}

uint16_t qk_lab_free_port(const uint16_t *avoid, size_t navoid)
{
    unsigned lo, hi;
    port_range(&lo, &hi);
    for (int attempt = 0; attempt < 64; attempt++) {
        uint32_t r;
        qk_random(&r, sizeof r);
        uint16_t port = (uint16_t)(lo + r % (hi - lo + 1));
        bool clash = false;
        for (size_t i = 0; i < navoid && !clash; i++)
            clash = avoid[i] == port;
        if (clash)
            continue;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return 0;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0; /* nobody holds it now */
        close(s);
        if (ok)
            return port;
    }
    return 0;
}

int qk_lab_http_get(const char *url, char **body, qk_err *err)
{
    *body = NULL;
    qk_http_tls tls = {.timeout_ms = 3000, .connect_timeout_ms = 1000};
    qk_http_client *c = qk_http_client_new(&tls, err);
    if (!c)
        return err->code ? err->code : QK_EIO;
    qk_http_response r;
    memset(&r, 0, sizeof r);
    int rc = qk_http_call(c, "GET", url, NULL, 0, NULL, &r, err);
    if (rc == 0 && r.status != 200)
        rc = qk_err_set(err, QK_EIO, "%s: HTTP %ld", url, r.status);
    if (rc == 0) {
        *body = strdup(r.body ? r.body : "");
        if (!*body)
            rc = qk_err_set(err, QK_ENOMEM, "out of memory");
    }
    qk_http_response_free(&r);
    qk_http_client_free(c);
    return rc;
}

double qk_lab_metric(const char *text, const char *name, const char *filter)
{
    size_t nl = strlen(name);
    double sum = 0;
    bool found = false;
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len < 512 && strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
            char line[512];
            memcpy(line, p, len);
            line[len] = '\0';
            char *sp = strrchr(line, ' ');
            char *labels_end = strrchr(line, '}');
            bool match = !filter || (p[nl] == '{' && labels_end && sp && labels_end < sp &&
                                     strstr(line, filter) && strstr(line, filter) < labels_end);
            char *end = NULL;
            double v = sp ? strtod(sp + 1, &end) : 0;
            if (match && sp && end && end != sp + 1 && *end == '\0') {
                sum += v;
                found = true;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return found ? sum : -1;
}
