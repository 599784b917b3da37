/* test_vici.c - VICI message builder/parser (round trip, malformed input) and the client
 * against a scripted fake charon on a Unix socket (command, streamed command, CMD_UNKNOWN,
 * timeout, hostile lengths). */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vici_client.h"
#include "vici_msg.h"

static void test_round_trip(void)
{
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_kv_str(&b, "id", "ppk-1");
    vici_kv(&b, "data", "\x00\x01\x02", 3);
    vici_list_start(&b, "owners");
    vici_list_item_str(&b, "kid-1");
    vici_list_item_str(&b, "kid-2");
    vici_list_end(&b);
    vici_section_start(&b, "conn");
    vici_section_start(&b, "local");
    vici_kv_u64(&b, "n", 42);
    vici_section_end(&b);
    vici_section_end(&b);
    qk_err e;
    CU_ASSERT_EQUAL_FATAL(vici_builder_finish(&b, &e), 0);
    vici_node *root = vici_parse(b.buf, b.len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_STRING_EQUAL(vici_get_str(root, "id"), "ppk-1");
    CU_ASSERT_PTR_NULL(vici_get_str(root, "data")); /* holds a NUL: not a string */
    const vici_node *d = vici_child(root, "data", VICI_N_KV);
    CU_ASSERT_FATAL(d && d->value_len == 3 && memcmp(d->value, "\x00\x01\x02", 3) == 0);
    const vici_node *l = vici_child(root, "owners", VICI_N_LIST);
    CU_ASSERT_FATAL(l && l->child && l->child->next && !l->child->next->next);
    CU_ASSERT_STRING_EQUAL((char *)l->child->next->value, "kid-2");
    const vici_node *loc =
        vici_child(vici_child(root, "conn", VICI_N_SECTION), "local", VICI_N_SECTION);
    CU_ASSERT_STRING_EQUAL(vici_get_str(loc, "n"), "42");
    vici_tree_free(root);
    vici_builder_free(&b);
}

static void test_builder_errors(void)
{
    vici_builder b;
    qk_err e;
    vici_builder_init(&b, 0);
    vici_section_start(&b, "x");
    CU_ASSERT_NOT_EQUAL(vici_builder_finish(&b, &e), 0); /* unclosed */
    vici_builder_free(&b);
    vici_builder_init(&b, 0);
    vici_list_start(&b, "l");
    vici_kv_str(&b, "k", "v"); /* not allowed inside a list */
    vici_list_end(&b);
    CU_ASSERT_NOT_EQUAL(vici_builder_finish(&b, &e), 0);
    vici_builder_free(&b);
    vici_builder_init(&b, 0);
    char name[300];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = 0;
    vici_kv_str(&b, name, "v"); /* name > 255 */
    CU_ASSERT_NOT_EQUAL(vici_builder_finish(&b, &e), 0);
    vici_builder_free(&b);
    vici_builder_init(&b, 64);
    char big[100] = {0};
    vici_kv(&b, "k", big, sizeof big); /* above the builder's limit */
    CU_ASSERT_EQUAL(vici_builder_finish(&b, &e), QK_ELIMIT);
    vici_builder_free(&b);
    vici_builder_init(&b, 0);
    vici_section_end(&b);
    CU_ASSERT_NOT_EQUAL(vici_builder_finish(&b, &e), 0);
    vici_builder_free(&b);
}

static void expect_reject(const uint8_t *m, size_t n)
{
    qk_err e;
    vici_node *r = vici_parse(m, n, &e);
    CU_ASSERT_PTR_NULL(r);
    vici_tree_free(r);
}

static void test_parse_rejects(void)
{
    expect_reject((const uint8_t *)"\x01\x03"
                                   "ab",
                  4); /* name runs past end */
    expect_reject((const uint8_t *)"\x01\x01"
                                   "a",
                  3);                                                    /* section not closed */
    expect_reject((const uint8_t *)"\x02", 1);                           /* end without start */
    expect_reject((const uint8_t *)"\x03\x01k\x00\x05xy", 7);            /* value truncated */
    expect_reject((const uint8_t *)"\x05\x00\x00", 3);                   /* item outside list */
    expect_reject((const uint8_t *)"\x04\x01l\x03\x01k\x00\x00\x06", 9); /* kv in list */
    expect_reject((const uint8_t *)"\x04\x01l", 3);                      /* list not closed */
    expect_reject((const uint8_t *)"\x09", 1);                           /* unknown type */
    expect_reject((const uint8_t *)"\x03\x00\x00\x00", 4);               /* empty name */
    /* nesting beyond the limit */
    uint8_t deep[3 * (VICI_MAX_DEPTH + 2)];
    size_t n = 0;
    for (int i = 0; i < VICI_MAX_DEPTH + 1; i++) {
        deep[n++] = 1;
        deep[n++] = 1;
        deep[n++] = 'a';
    }
    expect_reject(deep, n);
    /* too many elements */
    size_t cnt = VICI_MAX_NODES + 10;
    uint8_t *many = malloc(cnt * 3 + 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    n = 0;
    many[n++] = 4;
    many[n++] = 1;
    many[n++] = 'l';
    for (size_t i = 0; i < cnt; i++) {
        many[n++] = 5;
        many[n++] = 0;
        many[n++] = 0;
    }
    many[n++] = 6;
    expect_reject(many, n);
    free(many);
    /* the empty message is valid */
    qk_err e;
    vici_node *r = vici_parse((const uint8_t *)"", 0, &e);
    CU_ASSERT_PTR_NOT_NULL(r);
    CU_ASSERT_FALSE(vici_success(r));
    vici_tree_free(r);
}

/* ---- fake charon ------------------------------------------------------------------------ */

typedef struct {
    int lfd;
    int mode; /* 0 command, 1 stream, 2 unknown, 3 silent, 4 hostile length */
    char got_cmd[64];
    char got_id[64];
    int registered;
} fake;

static int rd(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int rd_packet(int fd, uint8_t *buf, size_t cap, size_t *len)
{
    uint8_t l4[4];
    if (rd(fd, l4, 4))
        return -1;
    size_t l = ((size_t)l4[0] << 24) | ((size_t)l4[1] << 16) | ((size_t)l4[2] << 8) | l4[3];
    if (l > cap)
        return -1;
    *len = l;
    return rd(fd, buf, l);
}

static void wr_packet(int fd, uint8_t type, const char *name, const vici_builder *m)
{
    uint8_t hdr[300];
    size_t hl = vici_packet_header(type, name, m ? m->len : 0, hdr, sizeof hdr);
    if (write(fd, hdr, hl) != (ssize_t)hl)
        return;
    if (m && m->len && write(fd, m->buf, m->len) != (ssize_t)m->len)
        return;
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    uint8_t buf[4096];
    size_t len;
    while (rd_packet(fd, buf, sizeof buf, &len) == 0) {
        uint8_t type = buf[0];
        size_t nl = buf[1];
        if (type == VICI_EVENT_REGISTER) {
            f->registered++;
            wr_packet(fd, VICI_EVENT_CONFIRM, NULL, NULL);
            continue;
        }
        if (type == VICI_EVENT_UNREGISTER) {
            wr_packet(fd, VICI_EVENT_CONFIRM, NULL, NULL);
            continue;
        }
        snprintf(f->got_cmd, sizeof f->got_cmd, "%.*s", (int)nl, (char *)buf + 2);
        qk_err e;
        vici_node *req = vici_parse(buf + 2 + nl, len - 2 - nl, &e);
        const char *id = req ? vici_get_str(req, "id") : NULL;
        snprintf(f->got_id, sizeof f->got_id, "%s", id ? id : "");
        vici_tree_free(req);
        vici_builder m;
        vici_builder_init(&m, 0);
        if (f->mode == 2) {
            wr_packet(fd, VICI_CMD_UNKNOWN, NULL, NULL);
        } else if (f->mode == 3) {
            /* never answer */
        } else if (f->mode == 4) {
            uint8_t evil[5] = {0x7f, 0xff, 0xff, 0xff, 1};
            if (write(fd, evil, 5) != 5)
                break;
        } else {
            if (f->mode == 1) {
                for (int i = 0; i < 3; i++) {
                    vici_builder ev;
                    vici_builder_init(&ev, 0);
                    char nm[16];
                    snprintf(nm, sizeof nm, "gw%d", i);
                    vici_section_start(&ev, nm);
                    vici_kv_u64(&ev, "uniqueid", (uint64_t)i + 1);
                    vici_kv_str(&ev, "ppk", i == 2 ? "yes" : "no");
                    vici_section_end(&ev);
                    wr_packet(fd, VICI_EVENT, "unrelated", &ev);
                    wr_packet(fd, VICI_EVENT, "list-sa", &ev);
                    vici_builder_free(&ev);
                }
            }
            vici_kv_str(&m, "success", "yes");
            wr_packet(fd, VICI_CMD_RESPONSE, NULL, &m);
        }
        vici_builder_free(&m);
    }
    close(fd);
    return NULL;
}

static int start_fake(fake *f, char *path, size_t cap, pthread_t *th)
{
    snprintf(path, cap, "/tmp/qkb-vici-test-%d-%d.sock", (int)getpid(), f->mode);
    unlink(path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(f->lfd, 1))
        return -1;
    return pthread_create(th, NULL, fake_main, f);
}

static void stop_fake(fake *f, const char *path, pthread_t th)
{
    pthread_join(th, NULL);
    close(f->lfd);
    unlink(path);
}

static int count_ppk(void *ctx, const vici_node *ev)
{
    int *n = ctx;
    for (const vici_node *s = ev->child; s; s = s->next) {
        const char *p = vici_get_str(s, "ppk");
        if (p && strcmp(p, "yes") == 0)
            n[0]++;
        n[1]++;
    }
    return 0;
}

static void run_mode(int mode)
{
    fake f = {.mode = mode};
    char path[108];
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(start_fake(&f, path, sizeof path, &th), 0);
    vici_conn *c = NULL;
    qk_err e;
    char uri[128];
    snprintf(uri, sizeof uri, "unix://%s", path);
    CU_ASSERT_EQUAL_FATAL(vici_connect(uri, 1000, &c, &e), 0);
    vici_node *resp = NULL;
    vici_builder b;
    vici_builder_init(&b, 0);
    vici_kv_str(&b, "id", "ppk-abc");
    if (mode == 1) {
        int n[2] = {0, 0};
        CU_ASSERT_EQUAL(
            vici_call_stream(c, "list-sas", &b, "list-sa", count_ppk, n, 10, 2000, &resp, &e), 0);
        CU_ASSERT_EQUAL(n[0], 1);
        CU_ASSERT_EQUAL(n[1], 3);
        CU_ASSERT_EQUAL(f.registered, 1);
    } else {
        int rc = vici_call(c, "load-shared", &b, 500, &resp, &e);
        if (mode == 0)
            CU_ASSERT_EQUAL(rc, 0);
        if (mode == 2)
            CU_ASSERT_EQUAL(rc, QK_EINVAL);
        if (mode == 3)
            CU_ASSERT_EQUAL(rc, QK_ETIMEOUT);
        if (mode == 4)
            CU_ASSERT_EQUAL(rc, QK_EINVAL);
    }
    if (mode <= 1) {
        CU_ASSERT(resp && vici_success(resp));
    } else {
        CU_ASSERT_PTR_NULL(resp);
    }
    vici_tree_free(resp);
    vici_builder_free(&b);
    vici_close(c);
    stop_fake(&f, path, th);
    CU_ASSERT_STRING_EQUAL(f.got_cmd, mode == 1 ? "list-sas" : "load-shared");
    CU_ASSERT_STRING_EQUAL(f.got_id, "ppk-abc");
}

static void test_client_command(void)
{
    run_mode(0);
}
static void test_client_stream(void)
{
    run_mode(1);
}
static void test_client_unknown(void)
{
    run_mode(2);
}
static void test_client_timeout(void)
{
    run_mode(3);
}
static void test_client_hostile(void)
{
    run_mode(4);
}

static void test_connect_refused(void)
{
    vici_conn *c = NULL;
    qk_err e;
    CU_ASSERT_EQUAL(vici_connect("unix:///nonexistent/charon.vici", 200, &c, &e), QK_EIO);
    CU_ASSERT_PTR_NULL(c);
}

int suite_vici(void)
{
    CU_pSuite s = CU_add_suite("vici", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "round trip", test_round_trip) ||
        !CU_add_test(s, "builder errors", test_builder_errors) ||
        !CU_add_test(s, "parser rejects", test_parse_rejects) ||
        !CU_add_test(s, "client command", test_client_command) ||
        !CU_add_test(s, "client streamed command", test_client_stream) ||
        !CU_add_test(s, "client CMD_UNKNOWN", test_client_unknown) ||
        !CU_add_test(s, "client timeout", test_client_timeout) ||
        !CU_add_test(s, "client hostile length", test_client_hostile) ||
        !CU_add_test(s, "connect refused", test_connect_refused))
        return -1;
    return 0;
}
