/* log.c - leveled, thread-safe logfmt logging to stderr or a file (reopened on SIGHUP). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_PATH_MAX 4096
#define LOG_PROG_MAX 64
#define LOG_MSG_MAX  2048  /* formatted message before escaping; longer is truncated */
#define LOG_LINE_MAX 12288 /* whole line after escaping (worst case 4x per byte) */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;                /* NULL means stderr */
static char log_path[LOG_PATH_MAX]; /* empty means stderr */
static char log_prog[LOG_PROG_MAX] = "qkd";
static qk_log_level log_min = QK_LOG_INFO;

static const char *level_name(qk_log_level lvl)
{
    switch (lvl) {
    case QK_LOG_DEBUG:
        return "debug";
    case QK_LOG_INFO:
        return "info";
    case QK_LOG_WARN:
        return "warn";
    case QK_LOG_ERROR:
        return "error";
    }
    return "info";
}

int qk_log_level_parse(const char *s, qk_log_level *out)
{
    static const struct {
        const char *name;
        qk_log_level lvl;
    } names[] = {
        {"debug", QK_LOG_DEBUG},  {"info", QK_LOG_INFO},   {"warn", QK_LOG_WARN},
        {"warning", QK_LOG_WARN}, {"error", QK_LOG_ERROR},
    };
    if (!s || !out)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].lvl;
            return 0;
        }
    }
    return -1;
}

static FILE *open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return NULL;
    FILE *fp = fdopen(fd, "a");
    if (!fp) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return fp;
}

int qk_log_open(const char *path, qk_log_level min_level, const char *prog)
{
    bool to_stderr = !path || strcmp(path, "-") == 0;
    FILE *fp = NULL;
    if (!to_stderr) {
        if (strlen(path) >= LOG_PATH_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fp = open_append(path);
        if (!fp)
            return -1;
    }
    if (pthread_mutex_lock(&log_mu) != 0) {
        if (fp)
            fclose(fp);
        return -1;
    }
    if (log_fp)
        fclose(log_fp);
    log_fp = fp;
    snprintf(log_path, sizeof log_path, "%s", to_stderr ? "" : path);
    snprintf(log_prog, sizeof log_prog, "%s", prog && *prog ? prog : "qkd");
    log_min = min_level;
    pthread_mutex_unlock(&log_mu);
    return 0;
}

int qk_log_reopen(void)
{
    char path[LOG_PATH_MAX];
    if (pthread_mutex_lock(&log_mu) != 0)
        return -1;
    memcpy(path, log_path, sizeof path);
    pthread_mutex_unlock(&log_mu);
    if (path[0] == '\0')
        return 0; /* stderr: nothing to reopen */
    FILE *fp = open_append(path);
    if (!fp)
        return -1; /* keep writing to the old file */
    if (pthread_mutex_lock(&log_mu) != 0) {
        fclose(fp);
        return -1;
    }
    FILE *old = log_fp;
    log_fp = fp;
    pthread_mutex_unlock(&log_mu);
    if (old)
        fclose(old);
    return 0;
}

void qk_log_close(void)
{
    if (pthread_mutex_lock(&log_mu) != 0)
        return;
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
    log_path[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

void qk_log_set_level(qk_log_level lvl)
{
    if (pthread_mutex_lock(&log_mu) != 0)
        return;
    log_min = lvl;
    pthread_mutex_unlock(&log_mu);
}

qk_log_level qk_log_get_level(void)
{
    qk_log_level l = QK_LOG_INFO;
    if (pthread_mutex_lock(&log_mu) == 0) {
        l = log_min;
        pthread_mutex_unlock(&log_mu);
    }
    return l;
}

/* A bounded line under construction; once full, further appends are dropped. */
typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
} line_buf;

static void lb_putc(line_buf *lb, char c)
{
    if (lb->len + 1 < sizeof lb->buf)
        lb->buf[lb->len++] = c;
}

static void lb_puts(line_buf *lb, const char *s)
{
    for (; *s; s++)
        lb_putc(lb, *s);
}

static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' || *p == 0x7f)
            return true;
    return false;
}

/* Append v inside double quotes, escaping quotes, backslashes and control characters. */
static void lb_quoted(line_buf *lb, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    lb_putc(lb, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '"':
            lb_puts(lb, "\\\"");
            break;
        case '\\':
            lb_puts(lb, "\\\\");
            break;
        case '\n':
            lb_puts(lb, "\\n");
            break;
        case '\r':
            lb_puts(lb, "\\r");
            break;
        case '\t':
            lb_puts(lb, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                lb_puts(lb, "\\x");
                lb_putc(lb, hex[*p >> 4]);
                lb_putc(lb, hex[*p & 0x0f]);
            } else {
                lb_putc(lb, (char)*p);
            }
        }
    }
    lb_putc(lb, '"');
}

/* Append " key=value", quoting the value only when logfmt requires it. */
static void lb_field(line_buf *lb, const char *key, const char *v)
{
    lb_putc(lb, ' ');
    lb_puts(lb, key);
    lb_putc(lb, '=');
    if (needs_quotes(v))
        lb_quoted(lb, v);
    else
        lb_puts(lb, v);
}

static void lb_header(line_buf *lb, qk_log_level lvl, const char *prog)
{
    struct timespec ts;
    struct tm tm;
    char stamp[48] = "1970-01-01T00:00:00";
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        ts.tv_sec = 0;
        ts.tv_nsec = 0;
    }
    if (gmtime_r(&ts.tv_sec, &tm) && strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(stamp, sizeof stamp, "1970-01-01T00:00:00");
    unsigned millis = (unsigned)((unsigned long)ts.tv_nsec / 1000000UL) % 1000U;
    char tsfield[sizeof stamp + 16];
    snprintf(tsfield, sizeof tsfield, "ts=%s.%03uZ", stamp, millis);
    lb_puts(lb, tsfield);
    lb_field(lb, "level", level_name(lvl));
    lb_field(lb, "prog", prog);
}

static line_buf log_line; /* the line being built; guarded by log_mu */

/* qk_log_hold: this thread's lines stay in the stream's buffer until qk_log_flush. */
static _Thread_local bool log_held;
static _Thread_local bool log_unflushed; /* this thread wrote held lines since its last flush */

/* Caller holds log_mu. Every line goes through the one stream in lock order, so a held line
 * is never overtaken: a line of a thread that does not hold flushes it along with its own. */
static void emit_locked(line_buf *out)
{
    FILE *fp = log_fp ? log_fp : stderr;
    out->buf[out->len++] = '\n'; /* lb_putc always leaves room for this byte */
    if (fwrite(out->buf, 1, out->len, fp) != out->len)
        return;
    if (log_held)
        log_unflushed = true;
    else
        (void)fflush(fp);
}

void qk_log_hold(bool on)
{
    if (!on)
        qk_log_flush();
    log_held = on;
}

void qk_log_flush(void)
{
    if (!log_unflushed)
        return;
    log_unflushed = false;
    if (pthread_mutex_lock(&log_mu) != 0)
        return;
    (void)fflush(log_fp ? log_fp : stderr);
    pthread_mutex_unlock(&log_mu);
}

void qk_log(qk_log_level lvl, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    if (!fmt || lvl < qk_log_get_level())
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(msg, sizeof msg, "(unformattable log message)");
    else if ((size_t)n >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4); /* mark truncation */
    if (pthread_mutex_lock(&log_mu) != 0)
        return;
    log_line.len = 0;
    lb_header(&log_line, lvl, log_prog);
    lb_puts(&log_line, " msg=");
    lb_quoted(&log_line, msg);
    emit_locked(&log_line);
    pthread_mutex_unlock(&log_mu);
}

void qk_log_request(const qk_request_log *r)
{
    if (!r || QK_LOG_INFO < qk_log_get_level())
        return;
    char status[16];
    char ms[32];
    snprintf(status, sizeof status, "%d", r->status);
    snprintf(ms, sizeof ms, "%.3f", r->latency_ms >= 0 ? r->latency_ms : 0.0);
    if (pthread_mutex_lock(&log_mu) != 0)
        return;
    log_line.len = 0;
    lb_header(&log_line, QK_LOG_INFO, log_prog);
    lb_field(&log_line, "event", "request");
    if (r->listener)
        lb_field(&log_line, "listener", r->listener);
    if (r->method)
        lb_field(&log_line, "method", r->method);
    if (r->path)
        lb_field(&log_line, "path", r->path);
    if (r->identity)
        lb_field(&log_line, "id", r->identity);
    lb_field(&log_line, "status", status);
    lb_field(&log_line, "ms", ms);
    if (r->key_ids)
        lb_field(&log_line, "keys", r->key_ids);
    if (r->detail)
        lb_field(&log_line, "detail", r->detail);
    emit_locked(&log_line);
    pthread_mutex_unlock(&log_mu);
}
