/* wg_uapi.c - WireGuard userspace API client (see wg_uapi.h). */
#include "wg_uapi.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec.h"
#include "http_util.h"
#include "secbuf.h"

void wg_peer_wipe(wg_peer *p)
{
    qk_wipe(p, sizeof *p);
}

static int remaining_ms(double deadline)
{
    double left = deadline - qk_now_ms();
    return left > 0 ? (int)left + 1 : 0;
}

/* The last line of a complete answer must be errno=N; every other line key=value. */
static int check_answer(const char *ans, size_t n, qk_err *err)
{
    if (n < 2 || ans[n - 1] != '\n' || ans[n - 2] != '\n')
        return qk_err_set(err, QK_EPEER, "WireGuard UAPI: answer not terminated by a blank line");
    const char *last = ans;
    unsigned line = 1;
    for (const char *p = ans; p < ans + n - 2; p++)
        if (*p == '\n') {
            last = p + 1;
            line++;
        }
    for (const char *p = ans, *e; p < last; p = e + 1) {
        e = memchr(p, '\n', (size_t)(last - p));
        if (!e || !memchr(p, '=', (size_t)(e - p)))
            return qk_err_set(err, QK_EPEER,
                              "WireGuard UAPI: malformed answer (a line without '=')");
    }
    if (strncmp(last, "errno=", 6) != 0)
        return qk_err_set(err, QK_EPEER, "WireGuard UAPI: answer line %u is not errno=", line);
    char *end = NULL;
    errno = 0;
    long long no = strtoll(last + 6, &end, 10);
    if (errno || end == last + 6 || *end != '\n')
        return qk_err_set(err, QK_EPEER, "WireGuard UAPI: malformed errno line");
    if (no != 0) {
        long long a = no < 0 ? -no : no;
        return qk_err_set(err, QK_EPEER, "WireGuard UAPI: errno=%lld (%s)", no,
                          a < 4096 ? strerror((int)a) : "unknown");
    }
    return 0;
}

int wg_uapi_call(const char *path, const char *req, size_t req_len, char *ans, size_t cap,
                 int timeout_ms, qk_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (cap < 16)
        return qk_err_set(err, QK_EINVAL, "answer buffer too small");
    ans[0] = '\0';
    if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path) >= (int)sizeof sa.sun_path)
        return qk_err_set(err, QK_EINVAL, "WireGuard socket path too long: %s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return qk_err_set(err, QK_EIO, "socket: %s", strerror(errno));
    double deadline = qk_now_ms() + timeout_ms;
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = qk_err_set(err, QK_EIO, "WireGuard UAPI socket %s: %s", path, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < req_len;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, remaining_ms(deadline)) <= 0) {
            rc = qk_err_set(err, QK_ETIMEOUT, "WireGuard UAPI %s: write timed out", path);
            goto out;
        }
        ssize_t w = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0) {
            rc = qk_err_set(err, QK_EIO, "WireGuard UAPI %s: write: %s", path, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    size_t n = 0;
    while (!(n >= 2 && ans[n - 1] == '\n' && ans[n - 2] == '\n')) {
        if (n + 1 >= cap) {
            rc = qk_err_set(err, QK_ELIMIT, "WireGuard UAPI %s: answer longer than %zu bytes", path,
                            cap - 1);
            goto out;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, remaining_ms(deadline)) <= 0) {
            rc = qk_err_set(err, QK_ETIMEOUT, "WireGuard UAPI %s: no complete answer in %d ms",
                            path, timeout_ms);
            goto out;
        }
        ssize_t r = recv(fd, ans + n, cap - 1 - n, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0) {
            rc = qk_err_set(err, QK_EIO, "WireGuard UAPI %s: read: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) {
            rc = qk_err_set(err, QK_EPEER, "WireGuard UAPI %s: connection closed %s", path,
                            n ? "in the middle of the answer" : "without an answer");
            goto out;
        }
        n += (size_t)r;
        ans[n] = '\0';
        if (memchr(ans, '\0', n)) {
            rc = qk_err_set(err, QK_EPEER, "WireGuard UAPI %s: NUL byte in the answer", path);
            goto out;
        }
    }
    rc = check_answer(ans, n, err);
out:
    close(fd);
    return rc;
}

static int parse_key(const char *v, size_t len, uint8_t out[WG_KEY_LEN])
{
    size_t n = 0;
    if (len != 2 * WG_KEY_LEN || qk_hex_decode(v, len, out, WG_KEY_LEN, &n) != 0 || n != WG_KEY_LEN)
        return -1;
    return 0;
}

static int parse_num(const char *v, size_t len, uint64_t *out)
{
    char tmp[24];
    if (len == 0 || len >= sizeof tmp || strspn(v, "0123456789") < len)
        return -1;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    errno = 0;
    unsigned long long x = strtoull(tmp, NULL, 10);
    if (errno)
        return -1;
    *out = x;
    return 0;
}

int wg_uapi_parse_peer(const char *ans, const uint8_t pub[WG_KEY_LEN], wg_peer *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    bool in = false;
    unsigned line = 0;
    uint8_t k[WG_KEY_LEN];
    int rc = 0;
    for (const char *p = ans; *p && *p != '\n'; line++) {
        const char *e = strchr(p, '\n');
        if (!e)
            e = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (!eq) {
            rc = qk_err_set(err, QK_EPEER, "WireGuard UAPI: line %u has no '='", line + 1);
            break;
        }
        size_t kl = (size_t)(eq - p), vl = (size_t)(e - eq - 1);
        const char *v = eq + 1;
        bool bad = false;
#define IS(s) (kl == sizeof s - 1 && memcmp(p, s, kl) == 0)
        if (IS("public_key")) {
            bad = parse_key(v, vl, k) != 0;
            in = !bad && qk_memcmp_ct(k, pub, WG_KEY_LEN) == 0;
            if (in)
                out->found = true;
        } else if (in && IS("preshared_key")) {
            bad = parse_key(v, vl, out->psk) != 0;
        } else if (in && IS("endpoint")) {
            bad = vl >= sizeof out->endpoint;
            if (!bad) {
                memcpy(out->endpoint, v, vl);
                out->endpoint[vl] = '\0';
            }
        } else if (in && IS("last_handshake_time_sec")) {
            bad = parse_num(v, vl, &out->hs_sec) != 0;
        } else if (in && IS("last_handshake_time_nsec")) {
            bad = parse_num(v, vl, &out->hs_nsec) != 0 || out->hs_nsec >= 1000000000ULL;
        } else if (in && IS("persistent_keepalive_interval")) {
            uint64_t x = 0;
            bad = parse_num(v, vl, &x) != 0 || x > 65535;
            out->keepalive = (unsigned)x;
        } else if (in && IS("allowed_ip")) {
            bad = vl == 0 || vl >= sizeof out->allowed[0] || out->n_allowed >= WG_MAX_ALLOWED_IP;
            if (!bad) {
                memcpy(out->allowed[out->n_allowed], v, vl);
                out->allowed[out->n_allowed++][vl] = '\0';
            }
        } else if (IS("private_key") || (!in && IS("preshared_key"))) {
            /* not ours to read */
        }
#undef IS
        if (bad) {
            rc = qk_err_set(err, QK_EPEER, "WireGuard UAPI: malformed value on answer line %u",
                            line + 1);
            break;
        }
        p = *e ? e + 1 : e;
    }
    qk_wipe(k, sizeof k);
    if (rc)
        wg_peer_wipe(out);
    return rc;
}

int wg_uapi_get_peer(const char *path, const uint8_t pub[WG_KEY_LEN], wg_peer *out, int timeout_ms,
                     qk_err *err)
{
    char *ans = qk_secure_alloc(WG_UAPI_ANSWER);
    if (!ans)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    static const char req[] = "get=1\n\n";
    int rc = wg_uapi_call(path, req, sizeof req - 1, ans, WG_UAPI_ANSWER, timeout_ms, err);
    if (rc == 0)
        rc = wg_uapi_parse_peer(ans, pub, out, err);
    qk_secure_free(ans);
    return rc;
}

/* Appends "key=HEX\n" to a request buffer. */
static int put_key(char *buf, size_t cap, size_t *off, const char *key, const uint8_t k[WG_KEY_LEN])
{
    int n = snprintf(buf + *off, cap - *off, "%s=", key);
    if (n < 0 || (size_t)n >= cap - *off)
        return -1;
    *off += (size_t)n;
    if (qk_hex_encode(k, WG_KEY_LEN, buf + *off, cap - *off) != 2 * WG_KEY_LEN)
        return -1;
    *off += 2 * WG_KEY_LEN;
    if (*off + 1 >= cap)
        return -1;
    buf[(*off)++] = '\n';
    buf[*off] = '\0';
    return 0;
}

/* Appends "key=value\n" (value NULL: key is a whole line, e.g. "set=1"). */
static int put_line(char *buf, size_t cap, size_t *off, const char *key, const char *v)
{
    int n = snprintf(buf + *off, cap - *off, "%s%s%s\n", key, v ? "=" : "", v ? v : "");
    if (n < 0 || (size_t)n >= cap - *off)
        return -1;
    *off += (size_t)n;
    return 0;
}

/* Sends a set request built in secure memory and wipes it. */
static int send_set(const char *path, char *req, size_t len, int timeout_ms, qk_err *err)
{
    char ans[256];
    int rc = wg_uapi_call(path, req, len, ans, sizeof ans, timeout_ms, err);
    qk_wipe(req, len);
    return rc;
}

#define SET_CAP 4096

int wg_uapi_set_psk(const char *path, const uint8_t pub[WG_KEY_LEN], const uint8_t psk[WG_KEY_LEN],
                    int timeout_ms, qk_err *err)
{
    char *req = qk_secure_alloc(SET_CAP);
    if (!req)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    size_t off = 0;
    int rc = put_line(req, SET_CAP, &off, "set=1", NULL) ||
                     put_key(req, SET_CAP, &off, "public_key", pub) ||
                     put_line(req, SET_CAP, &off, "update_only", "true") ||
                     put_key(req, SET_CAP, &off, "preshared_key", psk) ||
                     put_line(req, SET_CAP, &off, "", NULL)
                 ? qk_err_set(err, QK_ELIMIT, "UAPI request too long")
                 : send_set(path, req, off, timeout_ms, err);
    qk_secure_free(req);
    return rc;
}

int wg_uapi_readd_peer(const char *path, const uint8_t pub[WG_KEY_LEN],
                       const uint8_t psk[WG_KEY_LEN], const wg_peer *cfg, unsigned keepalive,
                       int timeout_ms, qk_err *err)
{
    char *req = qk_secure_alloc(SET_CAP);
    if (!req)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    size_t off = 0;
    char ka[16];
    snprintf(ka, sizeof ka, "%u", keepalive ? keepalive : cfg->keepalive);
    bool bad = put_line(req, SET_CAP, &off, "set=1", NULL) ||
               put_key(req, SET_CAP, &off, "public_key", pub) ||
               put_line(req, SET_CAP, &off, "remove", "true") ||
               put_key(req, SET_CAP, &off, "public_key", pub) ||
               put_key(req, SET_CAP, &off, "preshared_key", psk) ||
               (cfg->endpoint[0] && put_line(req, SET_CAP, &off, "endpoint", cfg->endpoint)) ||
               put_line(req, SET_CAP, &off, "replace_allowed_ips", "true");
    for (unsigned i = 0; !bad && i < cfg->n_allowed; i++)
        bad = put_line(req, SET_CAP, &off, "allowed_ip", cfg->allowed[i]);
    bad = bad || put_line(req, SET_CAP, &off, "persistent_keepalive_interval", ka) ||
          put_line(req, SET_CAP, &off, "", NULL);
    int rc = bad ? qk_err_set(err, QK_ELIMIT, "UAPI request too long")
                 : send_set(path, req, off, timeout_ms, err);
    qk_secure_free(req);
    return rc;
}
