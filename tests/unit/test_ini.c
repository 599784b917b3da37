/* test_ini.c - INI loading errors and the typed value parsers. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ini_config.h"

static char dir[64];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-ini-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int write_ini(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* A small config: [node] id, port; [link NAME] peer. */
typedef struct {
    char id[32];
    uint64_t port;
    int links;
    char link_name[32];
    char peer[64];
    uint16_t peer_port;
    int calls;
} cfg;

static int handler(void *user, const char *section, const char *key, const char *value, qk_err *err)
{
    cfg *c = user;
    char kind[16], name[32];
    c->calls++;
    if (qk_ini_section_split(section, kind, sizeof kind, name, sizeof name) != 0)
        return qk_err_set(err, QK_EINVAL, "bad section");
    if (strcmp(kind, "node") == 0 && strcmp(key, "id") == 0)
        return qk_parse_str(value, c->id, sizeof c->id, err);
    if (strcmp(kind, "node") == 0 && strcmp(key, "port") == 0)
        return qk_parse_u64(value, 1, 65535, &c->port, err);
    if (strcmp(kind, "link") == 0 && strcmp(key, "peer") == 0) {
        c->links++;
        snprintf(c->link_name, sizeof c->link_name, "%s", name);
        return qk_parse_hostport(value, c->peer, sizeof c->peer, &c->peer_port, err);
    }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static void test_load_good(void)
{
    char path[128];
    CU_ASSERT_EQUAL_FATAL(write_ini("good.ini",
                                    "; comment\n[node]\nid = KME_A\nport=8443\n\n"
                                    "[link KME_B]\npeer = [::1]:9443\n",
                                    path, sizeof path),
                          0);
    cfg c = {0};
    qk_err err;
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), 0);
    CU_ASSERT_STRING_EQUAL(c.id, "KME_A");
    CU_ASSERT_EQUAL(c.port, 8443);
    CU_ASSERT_EQUAL(c.links, 1);
    CU_ASSERT_STRING_EQUAL(c.link_name, "KME_B");
    CU_ASSERT_STRING_EQUAL(c.peer, "::1");
    CU_ASSERT_EQUAL(c.peer_port, 9443);
}

static void test_load_errors(void)
{
    char path[128], want[256];
    cfg c = {0};
    qk_err err;

    /* unknown key on line 4: "FILE:LINE: [section] key: message"; parsing stops there */
    CU_ASSERT_EQUAL_FATAL(write_ini("unknown.ini",
                                    "[node]\nid = A\n\ncolour = blue\nport = 1\nbogus = 2\n", path,
                                    sizeof path),
                          0);
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), QK_EINVAL);
    snprintf(want, sizeof want, "%s:4: [node] colour: unknown key", path);
    CU_ASSERT_STRING_EQUAL(err.msg, want);
    CU_ASSERT_EQUAL(c.calls, 2); /* stopped at the first error */

    /* bad value */
    CU_ASSERT_EQUAL_FATAL(write_ini("badval.ini", "[node]\nport = 12abc\n", path, sizeof path), 0);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), QK_EINVAL);
    snprintf(want, sizeof want, "%s:2: [node] port: ", path);
    CU_ASSERT_EQUAL(strncmp(err.msg, want, strlen(want)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "12abc"));

    /* out of range */
    CU_ASSERT_EQUAL_FATAL(write_ini("range.ini", "[node]\n\nport = 70000\n", path, sizeof path), 0);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), QK_EINVAL);
    snprintf(want, sizeof want, "%s:3: [node] port: ", path);
    CU_ASSERT_EQUAL(strncmp(err.msg, want, strlen(want)), 0);

    /* syntax error */
    CU_ASSERT_EQUAL_FATAL(write_ini("syntax.ini", "[node]\nid = A\n[broken\n", path, sizeof path),
                          0);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), QK_EINVAL);
    snprintf(want, sizeof want, "%s:3: ", path);
    CU_ASSERT_EQUAL(strncmp(err.msg, want, strlen(want)), 0);

    /* over-long line */
    char longtext[600] = "[node]\nid = ";
    memset(longtext + strlen(longtext), 'x', 400);
    strcat(longtext, "\n");
    CU_ASSERT_EQUAL_FATAL(write_ini("long.ini", longtext, path, sizeof path), 0);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), QK_EINVAL);
    snprintf(want, sizeof want, "%s:2: ", path);
    CU_ASSERT_EQUAL(strncmp(err.msg, want, strlen(want)), 0);

    /* missing file */
    snprintf(path, sizeof path, "%s/nope.ini", dir);
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_ini_load(path, handler, &c, &err), QK_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
}

static void test_section_split(void)
{
    char k[9], n[16];
    CU_ASSERT_EQUAL(qk_ini_section_split("link KME_B", k, sizeof k, n, sizeof n), 0);
    CU_ASSERT_STRING_EQUAL(k, "link");
    CU_ASSERT_STRING_EQUAL(n, "KME_B");
    CU_ASSERT_EQUAL(qk_ini_section_split("node", k, sizeof k, n, sizeof n), 0);
    CU_ASSERT_STRING_EQUAL(k, "node");
    CU_ASSERT_STRING_EQUAL(n, "");
    CU_ASSERT_EQUAL(qk_ini_section_split("listener   etsi014 ", k, sizeof k, n, sizeof n), 0);
    CU_ASSERT_STRING_EQUAL(k, "listener");
    CU_ASSERT_STRING_EQUAL(n, "etsi014");
    CU_ASSERT_EQUAL(qk_ini_section_split("verylongkind x", k, sizeof k, n, sizeof n), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_ini_section_split("a 0123456789abcdef", k, sizeof k, n, sizeof n),
                    QK_EINVAL);
}

static void test_parse_ints(void)
{
    uint64_t u = 0;
    int64_t i = 0;
    qk_err err;
    CU_ASSERT_EQUAL(qk_parse_u64("0", 0, 10, &u, &err), 0);
    CU_ASSERT_EQUAL(qk_parse_u64("18446744073709551615", 0, UINT64_MAX, &u, &err), 0);
    CU_ASSERT_EQUAL(u, UINT64_MAX);
    qk_err_clear(&err);
    CU_ASSERT_EQUAL(qk_parse_u64("18446744073709551616", 0, UINT64_MAX, &u, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "too large"));
    CU_ASSERT_EQUAL(qk_parse_u64("-1", 0, UINT64_MAX, &u, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "negative"));
    CU_ASSERT_EQUAL(qk_parse_u64("12abc", 0, 100, &u, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_u64("", 0, 100, &u, &err), QK_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "empty"));
    CU_ASSERT_EQUAL(qk_parse_u64(" 5", 0, 100, &u, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_u64("+5", 0, 100, &u, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_u64("0x10", 0, 100, &u, &err), QK_EINVAL);
    u = 7;
    CU_ASSERT_EQUAL(qk_parse_u64("11", 1, 10, &u, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(u, 7); /* untouched on error */
    CU_ASSERT_EQUAL(qk_parse_u64("0", 1, 10, &u, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_u64("10", 1, 10, &u, &err), 0);
    CU_ASSERT_EQUAL(u, 10);

    CU_ASSERT_EQUAL(qk_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &i, &err), 0);
    CU_ASSERT_EQUAL(i, INT64_MIN);
    CU_ASSERT_EQUAL(qk_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &i, &err), 0);
    CU_ASSERT_EQUAL(i, INT64_MAX);
    CU_ASSERT_EQUAL(qk_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &i, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_i64("-9223372036854775809", INT64_MIN, INT64_MAX, &i, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_i64("-5", -10, 10, &i, &err), 0);
    CU_ASSERT_EQUAL(i, -5);
    CU_ASSERT_EQUAL(qk_parse_i64("-11", -10, 10, &i, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_i64("-", -10, 10, &i, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_i64("3 ", -10, 10, &i, &err), QK_EINVAL);
}

static void test_parse_double_bool_str(void)
{
    double d = 0;
    qk_err err;
    CU_ASSERT_EQUAL(qk_parse_double("0.25", 0, 1, &d, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.25, 1e-12);
    CU_ASSERT_EQUAL(qk_parse_double("-1e-3", -1, 1, &d, &err), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, -0.001, 1e-12);
    CU_ASSERT_EQUAL(qk_parse_double("1.5", 0, 1, &d, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_double("nan", 0, 1, &d, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_double("inf", 0, 1e308, &d, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_double("1e999", 0, 1e308, &d, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_double("0.5x", 0, 1, &d, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_double("", 0, 1, &d, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_double("0x1p-2", 0, 1, &d, &err), QK_EINVAL);

    bool b = false;
    CU_ASSERT_EQUAL(qk_parse_bool("YES", &b, &err), 0);
    CU_ASSERT(b);
    CU_ASSERT_EQUAL(qk_parse_bool("off", &b, &err), 0);
    CU_ASSERT_FALSE(b);
    CU_ASSERT_EQUAL(qk_parse_bool("1", &b, &err), 0);
    CU_ASSERT(b);
    CU_ASSERT_EQUAL(qk_parse_bool("False", &b, &err), 0);
    CU_ASSERT_FALSE(b);
    CU_ASSERT_EQUAL(qk_parse_bool("2", &b, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_bool("truex", &b, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_bool("", &b, &err), QK_EINVAL);

    char s[4];
    CU_ASSERT_EQUAL(qk_parse_str("abc", s, sizeof s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s, "abc");
    CU_ASSERT_EQUAL(qk_parse_str("abcd", s, sizeof s, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_str("", s, sizeof s, &err), QK_EINVAL);
}

static void test_parse_duration(void)
{
    uint64_t ms = 0;
    qk_err err;
    CU_ASSERT_EQUAL(qk_parse_duration_ms("250ms", 0, UINT64_MAX, &ms, &err), 0);
    CU_ASSERT_EQUAL(ms, 250);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("30s", 0, UINT64_MAX, &ms, &err), 0);
    CU_ASSERT_EQUAL(ms, 30000);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("5m", 0, UINT64_MAX, &ms, &err), 0);
    CU_ASSERT_EQUAL(ms, 300000);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("2h", 0, UINT64_MAX, &ms, &err), 0);
    CU_ASSERT_EQUAL(ms, 7200000);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("7", 0, UINT64_MAX, &ms, &err), 0);
    CU_ASSERT_EQUAL(ms, 7000);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("10s", 0, 9999, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("10s", 10001, 20000, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("ms", 0, UINT64_MAX, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("5x", 0, UINT64_MAX, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("5 s", 0, UINT64_MAX, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("-5s", 0, UINT64_MAX, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("", 0, UINT64_MAX, &ms, &err), QK_EINVAL);
    /* 2^64/3600000 hours overflows the millisecond count */
    CU_ASSERT_EQUAL(qk_parse_duration_ms("5124095576030432h", 0, UINT64_MAX, &ms, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_duration_ms("18446744073709551616ms", 0, UINT64_MAX, &ms, &err),
                    QK_EINVAL);
}

static void test_parse_hostport(void)
{
    char host[64];
    uint16_t port = 1;
    qk_err err;
    CU_ASSERT_EQUAL(qk_parse_hostport("127.0.0.1:8443", host, sizeof host, &port, &err), 0);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 8443);
    CU_ASSERT_EQUAL(qk_parse_hostport("localhost:0", host, sizeof host, &port, &err), 0);
    CU_ASSERT_STRING_EQUAL(host, "localhost");
    CU_ASSERT_EQUAL(port, 0);
    CU_ASSERT_EQUAL(qk_parse_hostport("[::1]:65535", host, sizeof host, &port, &err), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 65535);
    CU_ASSERT_EQUAL(qk_parse_hostport("[fe80::1:2]:80", host, sizeof host, &port, &err), 0);
    CU_ASSERT_STRING_EQUAL(host, "fe80::1:2");

    CU_ASSERT_EQUAL(qk_parse_hostport("::1:80", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("[::1]", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("[zz::1]:80", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("[::1:80", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("127.0.0.1:65536", host, sizeof host, &port, &err),
                    QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("127.0.0.1:", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport(":80", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("127.0.0.1", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("a b:80", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("host:80x", host, sizeof host, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("", host, sizeof host, &port, &err), QK_EINVAL);
    char small[4];
    CU_ASSERT_EQUAL(qk_parse_hostport("abcd:80", small, sizeof small, &port, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_parse_hostport("abc:80", small, sizeof small, &port, &err), 0);
}

static void test_id_valid(void)
{
    CU_ASSERT_TRUE(qk_id_valid("KME_A-1.x", 64, NULL));
    CU_ASSERT_FALSE(qk_id_valid("", 64, NULL));
    CU_ASSERT_FALSE(qk_id_valid(NULL, 64, NULL));
    CU_ASSERT_FALSE(qk_id_valid("KME A", 64, NULL));
    CU_ASSERT_FALSE(qk_id_valid("KME:A", 64, NULL));
    CU_ASSERT_FALSE(qk_id_valid("A~B", 64, NULL));
    CU_ASSERT_TRUE(qk_id_valid("A~B", 64, "~"));
    CU_ASSERT_TRUE(qk_id_valid("KME_*", 64, "*?[]!^"));
    CU_ASSERT_TRUE(qk_id_valid("abcd", 4, NULL));
    CU_ASSERT_FALSE(qk_id_valid("abcde", 4, NULL));
}

typedef struct {
    char seen[8][16];
    size_t n;
    int fail_at; /* fn fails on this entry (1-based), 0 = never */
} list_acc;

static int list_cb(void *user, const char *e, size_t len, qk_err *err)
{
    list_acc *a = user;
    if (len >= sizeof a->seen[0] || a->n >= 8)
        return qk_err_set(err, QK_EINVAL, "too long");
    memcpy(a->seen[a->n], e, len);
    a->seen[a->n][len] = '\0';
    if ((int)++a->n == a->fail_at)
        return qk_err_set(err, QK_EINVAL, "callback refused %.*s", (int)len, e);
    return 0;
}

static void test_parse_list(void)
{
    qk_err err;
    list_acc a = {0};
    CU_ASSERT_EQUAL(qk_parse_list(" a ,b,\tc d  ", 8, list_cb, &a, &err), 0);
    CU_ASSERT_EQUAL(a.n, 3);
    CU_ASSERT_STRING_EQUAL(a.seen[0], "a");
    CU_ASSERT_STRING_EQUAL(a.seen[1], "b");
    CU_ASSERT_STRING_EQUAL(a.seen[2], "c d");
    const char *bad[] = {"", " ", "a,,b", "a,", ",a", "a, ,b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&a, 0, sizeof a);
        CU_ASSERT_EQUAL(qk_parse_list(bad[i], 8, list_cb, &a, &err), QK_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "empty entry"));
    }
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(qk_parse_list("a,b,c", 2, list_cb, &a, &err), QK_ELIMIT);
    memset(&a, 0, sizeof a);
    a.fail_at = 2;
    CU_ASSERT_EQUAL(qk_parse_list("a,b,c", 8, list_cb, &a, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(a.n, 2); /* the walk stopped at the refused entry */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "refused b"));
}

/* qk_ini_locate: the last line setting a key ('=' or ':'), else the section header, else 0. */
static void test_locate(void)
{
    char path[128];
    CU_ASSERT_EQUAL_FATAL(write_ini("loc.ini",
                                    "; comment\n[node]\nid = A\n  port : 1\n[link B]\n"
                                    "peer = x\nid = B\n[node]\nid=C\n",
                                    path, sizeof path),
                          0);
    int lines = -1;
    CU_ASSERT_EQUAL(qk_ini_locate(path, "node", "id", &lines), 9); /* the value in effect */
    CU_ASSERT_EQUAL(lines, 9);
    CU_ASSERT_EQUAL(qk_ini_locate(path, "node", "port", NULL), 4);
    CU_ASSERT_EQUAL(qk_ini_locate(path, "link B", "id", NULL), 7);
    CU_ASSERT_EQUAL(qk_ini_locate(path, "link B", "port", NULL), 5); /* not set: header */
    CU_ASSERT_EQUAL(qk_ini_locate(path, "node", NULL, NULL), 2);     /* first header */
    CU_ASSERT_EQUAL(qk_ini_locate(path, "admin", "x", &lines), 0);
    CU_ASSERT_EQUAL(lines, 9);
    CU_ASSERT_EQUAL(qk_ini_locate("/nonexistent/qk.ini", "node", "id", &lines), 0);
    CU_ASSERT_EQUAL(lines, 0);
}

int suite_ini(void)
{
    CU_pSuite s = CU_add_suite("ini", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "load good file", test_load_good) ||
        !CU_add_test(s, "load errors", test_load_errors) ||
        !CU_add_test(s, "section split", test_section_split) ||
        !CU_add_test(s, "integers", test_parse_ints) ||
        !CU_add_test(s, "double, bool, string", test_parse_double_bool_str) ||
        !CU_add_test(s, "durations", test_parse_duration) ||
        !CU_add_test(s, "host:port", test_parse_hostport) ||
        !CU_add_test(s, "identifiers", test_id_valid) ||
        !CU_add_test(s, "comma lists", test_parse_list) ||
        !CU_add_test(s, "locate a key", test_locate))
        return -1;
    return 0;
}
