/* vici_client.c - VICI packets over charon's Unix socket (see vici_client.h). */
#include "vici_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "secbuf.h"

#define VICI_MAX_SKIPPED 1000 /* unrelated packets tolerated while waiting for a response */

struct vici_conn {
    int fd;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, long long deadline, qk_err *err)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return qk_err_set(err, QK_ETIMEOUT, "vici: timed out waiting for charon");
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return qk_err_set(err, QK_EIO, "vici: poll: %s", strerror(errno));
    }
}

int vici_connect(const char *uri, int timeout_ms, vici_conn **out, qk_err *err)
{
    const char *path = uri;
    if (strncmp(path, "unix://", 7) == 0)
        path += 7;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) == 0 || strlen(path) >= sizeof sa.sun_path)
        return qk_err_set(err, QK_EINVAL, "vici: bad socket path '%s'", uri);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return qk_err_set(err, QK_EIO, "vici: socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            int e = errno;
            close(fd);
            return qk_err_set(err, QK_EIO, "vici: connect %s: %s", path, strerror(e));
        }
        int rc = wait_fd(fd, POLLOUT, now_ms() + (timeout_ms > 0 ? timeout_ms : 5000), err);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)) {
            close(fd);
            return qk_err_set(err, QK_EIO, "vici: connect %s: %s", path, strerror(soerr));
        }
        if (rc) {
            close(fd);
            return rc;
        }
    }
    vici_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return qk_err_set(err, QK_ENOMEM, "vici: out of memory");
    }
    c->fd = fd;
    *out = c;
    return 0;
}

void vici_close(vici_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

size_t vici_packet_header(uint8_t type, const char *name, size_t body_len, uint8_t *out, size_t cap)
{
    size_t nl = name ? strlen(name) : 0;
    bool named = type == VICI_CMD_REQUEST || type == VICI_EVENT_REGISTER ||
                 type == VICI_EVENT_UNREGISTER || type == VICI_EVENT;
    if (named && (nl == 0 || nl > 255))
        return 0;
    size_t hl = 4 + 1 + (named ? 1 + nl : 0);
    if (cap < hl || body_len > VICI_MAX_MSG)
        return 0;
    uint32_t total = (uint32_t)(hl - 4 + body_len);
    out[0] = (uint8_t)(total >> 24);
    out[1] = (uint8_t)(total >> 16);
    out[2] = (uint8_t)(total >> 8);
    out[3] = (uint8_t)total;
    out[4] = type;
    if (named) {
        out[5] = (uint8_t)nl;
        memcpy(out + 6, name, nl);
    }
    return hl;
}

static int write_all(vici_conn *c, const uint8_t *p, size_t n, long long deadline, qk_err *err)
{
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline, err);
            if (rc)
                return rc;
            continue;
        }
        return qk_err_set(err, QK_EIO, "vici: write: %s", w < 0 ? strerror(errno) : "closed");
    }
    return 0;
}

static int read_all(vici_conn *c, uint8_t *p, size_t n, long long deadline, qk_err *err)
{
    while (n) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return qk_err_set(err, QK_EIO, "vici: charon closed the connection");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c->fd, POLLIN, deadline, err);
            if (rc)
                return rc;
            continue;
        }
        return qk_err_set(err, QK_EIO, "vici: read: %s", strerror(errno));
    }
    return 0;
}

static int send_packet(vici_conn *c, uint8_t type, const char *name, vici_builder *msg,
                       long long deadline, qk_err *err)
{
    uint8_t hdr[4 + 1 + 1 + 255];
    size_t body = msg ? msg->len : 0;
    size_t hl = vici_packet_header(type, name, body, hdr, sizeof hdr);
    if (!hl)
        return qk_err_set(err, QK_EINVAL, "vici: cannot frame packet '%s'", name ? name : "");
    int rc = write_all(c, hdr, hl, deadline, err);
    if (rc == 0 && body)
        rc = write_all(c, msg->buf, body, deadline, err);
    return rc;
}

/* Reads one packet: type, name (named types) and the message bytes (malloc'ed, wiped by the
 * caller through free_packet). */
typedef struct {
    uint8_t type;
    char name[256];
    uint8_t *data; /* the whole packet after the length */
    size_t len;
    size_t msg_off; /* start of the message inside data */
} packet;

static void free_packet(packet *p)
{
    if (p->data) {
        qk_wipe(p->data, p->len);
        free(p->data);
    }
    p->data = NULL;
}

static int read_packet(vici_conn *c, packet *p, long long deadline, qk_err *err)
{
    uint8_t l4[4];
    memset(p, 0, sizeof *p);
    int rc = read_all(c, l4, 4, deadline, err);
    if (rc)
        return rc;
    size_t len = ((size_t)l4[0] << 24) | ((size_t)l4[1] << 16) | ((size_t)l4[2] << 8) | l4[3];
    if (len < 1 || len > VICI_MAX_MSG + 1 + 256)
        return qk_err_set(err, QK_EINVAL, "vici: bad packet length %zu", len);
    p->data = malloc(len);
    if (!p->data)
        return qk_err_set(err, QK_ENOMEM, "vici: out of memory");
    p->len = len;
    rc = read_all(c, p->data, len, deadline, err);
    if (rc) {
        free_packet(p);
        return rc;
    }
    p->type = p->data[0];
    p->msg_off = 1;
    if (p->type == VICI_EVENT || p->type == VICI_CMD_REQUEST || p->type == VICI_EVENT_REGISTER ||
        p->type == VICI_EVENT_UNREGISTER) {
        size_t nl = len > 1 ? p->data[1] : 0;
        if (len < 2 || nl == 0 || nl > len - 2) {
            free_packet(p);
            return qk_err_set(err, QK_EINVAL, "vici: bad packet name");
        }
        memcpy(p->name, p->data + 2, nl);
        p->name[nl] = '\0';
        p->msg_off = 2 + nl;
    } else if (p->type > VICI_EVENT) {
        uint8_t t = p->type;
        free_packet(p);
        return qk_err_set(err, QK_EINVAL, "vici: unknown packet type %u", t);
    }
    return 0;
}

/* Waits for one of the wanted packet types, passing events through on_event. */
typedef struct {
    const char *event;
    vici_event_cb cb;
    void *ctx;
    size_t max_events, seen;
    bool stopped;
} event_sink;

static int await(vici_conn *c, uint8_t want1, uint8_t want2, event_sink *sink, packet *out,
                 long long deadline, qk_err *err)
{
    for (int i = 0; i < VICI_MAX_SKIPPED + (sink ? (int)sink->max_events : 0); i++) {
        int rc = read_packet(c, out, deadline, err);
        if (rc)
            return rc;
        if (out->type == want1 || out->type == want2)
            return 0;
        if (out->type == VICI_EVENT && sink && strcmp(out->name, sink->event) == 0) {
            if (++sink->seen > sink->max_events) {
                free_packet(out);
                return qk_err_set(err, QK_ELIMIT, "vici: more than %zu '%s' events",
                                  sink->max_events, sink->event);
            }
            if (!sink->stopped) {
                vici_node *ev = vici_parse(out->data + out->msg_off, out->len - out->msg_off, err);
                if (!ev) {
                    free_packet(out);
                    return qk_err_prefix(err, "event %s", sink->event);
                }
                if (sink->cb(sink->ctx, ev))
                    sink->stopped = true;
                vici_tree_free(ev);
            }
        }
        free_packet(out);
    }
    return qk_err_set(err, QK_ELIMIT, "vici: too many unrelated packets");
}

static int do_call(vici_conn *c, const char *cmd, vici_builder *msg, event_sink *sink,
                   long long deadline, vici_node **resp, qk_err *err)
{
    *resp = NULL;
    if (msg && vici_builder_finish(msg, err))
        return err->code;
    int rc = send_packet(c, VICI_CMD_REQUEST, cmd, msg, deadline, err);
    if (rc)
        return rc;
    packet p;
    rc = await(c, VICI_CMD_RESPONSE, VICI_CMD_UNKNOWN, sink, &p, deadline, err);
    if (rc)
        return rc;
    if (p.type == VICI_CMD_UNKNOWN) {
        free_packet(&p);
        return qk_err_set(err, QK_EINVAL, "vici: charon does not know the command '%s'", cmd);
    }
    *resp = vici_parse(p.data + p.msg_off, p.len - p.msg_off, err);
    free_packet(&p);
    return *resp ? 0 : err->code;
}

int vici_call(vici_conn *c, const char *cmd, vici_builder *msg, int timeout_ms, vici_node **resp,
              qk_err *err)
{
    return do_call(c, cmd, msg, NULL, now_ms() + (timeout_ms > 0 ? timeout_ms : 10000), resp, err);
}

static int event_reg(vici_conn *c, uint8_t type, const char *event, long long deadline, qk_err *err)
{
    int rc = send_packet(c, type, event, NULL, deadline, err);
    if (rc)
        return rc;
    packet p;
    rc = await(c, VICI_EVENT_CONFIRM, VICI_EVENT_UNKNOWN, NULL, &p, deadline, err);
    if (rc)
        return rc;
    uint8_t t = p.type;
    free_packet(&p);
    if (t == VICI_EVENT_UNKNOWN)
        return qk_err_set(err, QK_EINVAL, "vici: charon does not know the event '%s'", event);
    return 0;
}

int vici_call_stream(vici_conn *c, const char *cmd, vici_builder *msg, const char *event,
                     vici_event_cb cb, void *ctx, size_t max_events, int timeout_ms,
                     vici_node **resp, qk_err *err)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    *resp = NULL;
    int rc = event_reg(c, VICI_EVENT_REGISTER, event, deadline, err);
    if (rc)
        return rc;
    event_sink sink = {.event = event, .cb = cb, .ctx = ctx, .max_events = max_events};
    rc = do_call(c, cmd, msg, &sink, deadline, resp, err);
    if (rc)
        return rc; /* the connection is in an unknown state: the caller closes it */
    rc = event_reg(c, VICI_EVENT_UNREGISTER, event, deadline, err);
    if (rc) {
        vici_tree_free(*resp);
        *resp = NULL;
    }
    return rc;
}
