/* ini_config.c - INI loading on libinih with "FILE:LINE: [section] key: message" errors,
 * and strict typed value parsers. */
#include "ini_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- loader ----------------------------------------------------------------------------- */

#define LOCATE_LINE_MAX  8192
#define LOCATE_LINES_MAX 10000000

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int qk_ini_locate(const char *path, const char *section, const char *key, int *lines)
{
    if (lines)
        *lines = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[LOCATE_LINE_MAX];
    char cur[256] = "";
    int line = 0, header = 0, found = 0;
    while (line < LOCATE_LINES_MAX && fgets(buf, sizeof buf, f)) {
        line++;
        char *s = trim(buf);
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end) {
                *end = '\0';
                snprintf(cur, sizeof cur, "%s", trim(s + 1));
                if (!header && strcmp(cur, section) == 0)
                    header = line;
            }
            continue;
        }
        if (!key || strcmp(cur, section) != 0)
            continue;
        size_t kl = strcspn(s, "=:");
        if (s[kl] == '\0')
            continue;
        s[kl] = '\0';
        if (strcmp(trim(s), key) == 0)
            found = line;
    }
    fclose(f);
    if (lines)
        *lines = line;
    return found ? found : header;
}

typedef struct {
    FILE *fp;
    const char *path;
    qk_ini_handler h;
    void *user;
    qk_err *err;
    int lines_done; /* complete lines handed to inih so far */
    int cur_line;   /* line number of the text inih is processing */
    bool failed;    /* err holds the first error; stop reading */
    int fail_line;
} load_ctx;

/* fgets-style reader that tracks line numbers, stops after the first error, and turns an
 * over-long line into an error instead of letting inih parse its tail as a new line. */
static char *reader(char *str, int num, void *stream)
{
    load_ctx *ctx = stream;
    if (ctx->failed || !fgets(str, num, ctx->fp))
        return NULL;
    ctx->cur_line = ctx->lines_done + 1;
    size_t l = strlen(str);
    if (l > 0 && str[l - 1] == '\n') {
        ctx->lines_done++;
    } else if (!feof(ctx->fp)) {
        ctx->failed = true;
        ctx->fail_line = ctx->cur_line;
        qk_err_set(ctx->err, QK_EINVAL, "%s:%d: line too long (limit %d) or holds a NUL byte",
                   ctx->path, ctx->cur_line, num - 3);
        return NULL;
    }
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    load_ctx *ctx = user;
    if (ctx->failed)
        return 1;
    qk_err e;
    qk_err_clear(&e);
    int rc = ctx->h(ctx->user, section ? section : "", name ? name : "", value ? value : "", &e);
    if (rc == 0)
        return 1;
    ctx->failed = true;
    ctx->fail_line = ctx->cur_line;
    qk_err_set(ctx->err, QK_EINVAL, "%s:%d: [%s] %s: %s", ctx->path, ctx->cur_line,
               section ? section : "", name ? name : "", e.msg[0] ? e.msg : "invalid value");
    return 0;
}

int qk_ini_load(const char *path, qk_ini_handler h, void *user, qk_err *err)
{
    if (!path || !h)
        return qk_err_set(err, QK_EINVAL, "no configuration file or handler");
    FILE *fp = fopen(path, "re");
    if (!fp)
        return qk_err_set(err, QK_EIO, "%s: cannot open: %s", path, strerror(errno));
    load_ctx ctx = {.fp = fp, .path = path, .h = h, .user = user, .err = err};
    int ret = ini_parse_stream(reader, &ctx, on_pair, &ctx);
    bool read_error = ferror(fp) != 0;
    fclose(fp);
    if (ret > 0 && (!ctx.failed || ret < ctx.fail_line))
        return qk_err_set(err, QK_EINVAL, "%s:%d: syntax error (expected [section] or key = value)",
                          path, ret);
    if (ctx.failed)
        return QK_EINVAL; /* message already set */
    if (ret == -2)
        return qk_err_set(err, QK_ENOMEM, "%s: out of memory", path);
    if (ret != 0 || read_error)
        return qk_err_set(err, QK_EIO, "%s: read error", path);
    return 0;
}

int qk_ini_section_split(const char *section, char *kind, size_t kind_cap, char *name,
                         size_t name_cap)
{
    if (!section || !kind || !name || kind_cap == 0 || name_cap == 0)
        return QK_EINVAL;
    const char *s = section;
    while (*s && isspace((unsigned char)*s))
        s++;
    const char *k_end = s;
    while (*k_end && !isspace((unsigned char)*k_end))
        k_end++;
    const char *n = k_end;
    while (*n && isspace((unsigned char)*n))
        n++;
    size_t n_len = strlen(n);
    while (n_len > 0 && isspace((unsigned char)n[n_len - 1]))
        n_len--;
    size_t k_len = (size_t)(k_end - s);
    if (k_len >= kind_cap || n_len >= name_cap)
        return QK_EINVAL;
    memcpy(kind, s, k_len);
    kind[k_len] = '\0';
    memcpy(name, n, n_len);
    name[n_len] = '\0';
    return 0;
}

/* ---- value parsers ----------------------------------------------------------------------- */

/* Parse exactly n decimal digits (n > 0). 0, -1 not digits, -2 overflow. */
static int parse_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int qk_parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out, qk_err *err)
{
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    if (*v == '-')
        return qk_err_set(err, QK_EINVAL, "must not be negative: \"%.40s\"", v);
    uint64_t x;
    int rc = parse_digits(v, strlen(v), &x);
    if (rc == -2)
        return qk_err_set(err, QK_EINVAL, "number too large: \"%.40s\"", v);
    if (rc != 0)
        return qk_err_set(err, QK_EINVAL, "expected an unsigned integer, got \"%.40s\"", v);
    if (x < min || x > max)
        return qk_err_set(err, QK_EINVAL, "%llu is out of range [%llu, %llu]",
                          (unsigned long long)x, (unsigned long long)min, (unsigned long long)max);
    if (out)
        *out = x;
    return 0;
}

int qk_parse_i64(const char *v, int64_t min, int64_t max, int64_t *out, qk_err *err)
{
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    bool neg = *v == '-';
    const char *d = neg ? v + 1 : v;
    uint64_t mag;
    int rc = parse_digits(d, strlen(d), &mag);
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (rc == -2 || (rc == 0 && mag > limit))
        return qk_err_set(err, QK_EINVAL, "number out of 64-bit range: \"%.40s\"", v);
    if (rc != 0)
        return qk_err_set(err, QK_EINVAL, "expected an integer, got \"%.40s\"", v);
    int64_t x;
    if (neg)
        x = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        x = (int64_t)mag;
    if (x < min || x > max)
        return qk_err_set(err, QK_EINVAL, "%lld is out of range [%lld, %lld]", (long long)x,
                          (long long)min, (long long)max);
    if (out)
        *out = x;
    return 0;
}

int qk_parse_double(const char *v, double min, double max, double *out, qk_err *err)
{
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    /* Plain decimal notation only: no whitespace, hex floats, inf or nan. */
    if (strspn(v, "0123456789+-.eE") != strlen(v))
        return qk_err_set(err, QK_EINVAL, "expected a number, got \"%.40s\"", v);
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end != '\0')
        return qk_err_set(err, QK_EINVAL, "expected a number, got \"%.40s\"", v);
    if (errno == ERANGE || !isfinite(x))
        return qk_err_set(err, QK_EINVAL, "number out of range: \"%.40s\"", v);
    if (!(x >= min && x <= max))
        return qk_err_set(err, QK_EINVAL, "%g is out of range [%g, %g]", x, min, max);
    if (out)
        *out = x;
    return 0;
}

int qk_parse_choice(const char *v, const char *off_word, const char *on_word, bool *out,
                    qk_err *err)
{
    if (v && strcmp(v, off_word) == 0)
        *out = false;
    else if (v && strcmp(v, on_word) == 0)
        *out = true;
    else
        return qk_err_set(err, QK_EINVAL, "must be %s or %s", off_word, on_word);
    return 0;
}

int qk_parse_bool(const char *v, bool *out, qk_err *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            if (out)
                *out = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return qk_err_set(err, QK_EINVAL, "expected true/false, yes/no, on/off or 1/0, got \"%.40s\"",
                      v);
}

int qk_parse_duration_ms(const char *v, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms,
                         qk_err *err)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    size_t ndig = strspn(v, "0123456789");
    const char *suffix = v + ndig;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(suffix, units[i].suffix) != 0)
            continue;
        uint64_t n;
        int rc = parse_digits(v, ndig, &n);
        if (rc == -2 || (rc == 0 && n > UINT64_MAX / units[i].ms))
            return qk_err_set(err, QK_EINVAL, "duration too large: \"%.40s\"", v);
        if (rc != 0)
            break;
        uint64_t ms = n * units[i].ms;
        if (ms < min_ms || ms > max_ms)
            return qk_err_set(err, QK_EINVAL, "duration %llu ms is out of range [%llu, %llu] ms",
                              (unsigned long long)ms, (unsigned long long)min_ms,
                              (unsigned long long)max_ms);
        if (out_ms)
            *out_ms = ms;
        return 0;
    }
    return qk_err_set(err, QK_EINVAL,
                      "expected a duration such as 250ms, 30s, 5m or 2h, got \"%.40s\"", v);
}

static bool host_char_ok(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

int qk_parse_hostport(const char *v, char *host, size_t host_cap, uint16_t *port, qk_err *err)
{
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    if (!host || host_cap == 0)
        return qk_err_set(err, QK_EINVAL, "no room for the host");
    const char *h;
    size_t hlen;
    const char *p;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close[1] != ':')
            return qk_err_set(err, QK_EINVAL, "expected [IPV6]:PORT, got \"%.60s\"", v);
        h = v + 1;
        hlen = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (!colon)
            return qk_err_set(err, QK_EINVAL, "expected HOST:PORT, got \"%.60s\"", v);
        if (memchr(v, ':', (size_t)(colon - v)))
            return qk_err_set(err, QK_EINVAL, "IPv6 addresses must be written [ADDR]:PORT");
        h = v;
        hlen = (size_t)(colon - v);
        p = colon + 1;
        for (size_t i = 0; i < hlen; i++)
            if (!host_char_ok(h[i]))
                return qk_err_set(err, QK_EINVAL, "invalid character in host \"%.*s\"",
                                  (int)(hlen > 60 ? 60 : hlen), h);
    }
    if (hlen == 0)
        return qk_err_set(err, QK_EINVAL, "empty host in \"%.60s\"", v);
    if (hlen >= host_cap)
        return qk_err_set(err, QK_EINVAL, "host too long (max %zu characters)", host_cap - 1);
    char tmp[256];
    if (v[0] == '[') {
        struct in6_addr a6;
        if (hlen >= sizeof tmp)
            return qk_err_set(err, QK_EINVAL, "invalid IPv6 address");
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return qk_err_set(err, QK_EINVAL, "invalid IPv6 address \"%s\"", tmp);
    }
    uint64_t pv;
    qk_err perr;
    if (qk_parse_u64(p, 0, 65535, &pv, &perr) != 0)
        return qk_err_set(err, QK_EINVAL, "bad port: %s", perr.msg);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (port)
        *port = (uint16_t)pv;
    return 0;
}

int qk_parse_str(const char *v, char *out, size_t cap, qk_err *err)
{
    if (!v || !*v)
        return qk_err_set(err, QK_EINVAL, "empty value");
    size_t n = strlen(v);
    if (!out || n >= cap)
        return qk_err_set(err, QK_EINVAL, "value too long (max %zu characters)", cap ? cap - 1 : 0);
    memcpy(out, v, n + 1);
    return 0;
}

bool qk_id_valid(const char *s, size_t max_len, const char *extra)
{
    size_t n = s ? strnlen(s, max_len + 1) : 0;
    if (n < 1 || n > max_len)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-' && !(extra && strchr(extra, c)))
            return false;
    }
    return true;
}

int qk_parse_list(const char *v, size_t max_entries, qk_list_fn fn, void *user, qk_err *err)
{
    if (!v)
        return qk_err_set(err, QK_EINVAL, "empty list");
    size_t count = 0;
    const char *p = v;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *a = p, *b = p + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b)
            return qk_err_set(err, QK_EINVAL, "empty entry in the list");
        if (++count > max_entries)
            return qk_err_set(err, QK_ELIMIT, "more than %zu entries", max_entries);
        int rc = fn(user, a, (size_t)(b - a), err);
        if (rc != 0)
            return rc;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}
