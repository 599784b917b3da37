/* test_http1.c - the HTTP/1.1 request parser and response writer (common/http1.h): where a
 * head ends (fed at once and byte by byte, 414 and 431), the request line's forms and version,
 * the query, the header fields and the framing fields, persistence, the chunked coding split
 * at every byte, the response head byte for byte, reason phrases and dates. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

/* The buffer a head is parsed in (its strings point into it until the next parse). */
static char g_buf[QK_H1_HEAD_MAX + 64];
static qk_http1_head g_h;

static int parse_mem(const char *s, size_t n)
{
    CU_ASSERT_FATAL(n <= sizeof g_buf);
    memcpy(g_buf, s, n);
    return qk_http1_parse_head(g_buf, n, &g_h);
}

static int parse(const char *s)
{
    return parse_mem(s, strlen(s));
}

/* The head scan of s fed at once: its result. */
static size_t scan_once(const char *s, size_t n, unsigned *status)
{
    size_t scanned = 0;
    *status = 12345;
    return qk_http1_head_scan(s, n, &scanned, status);
}

/* ---- head_scan ------------------------------------------------------------------------ */

static void test_scan_complete_and_partial(void)
{
    const char *h = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = strlen(h);
    unsigned st;
    CU_ASSERT_EQUAL(scan_once(h, n, &st), n);
    CU_ASSERT_EQUAL(st, 0);
    for (size_t k = 0; k < n; k++) {
        CU_ASSERT_EQUAL(scan_once(h, k, &st), 0);
        CU_ASSERT_EQUAL(st, 0);
    }
    /* bytes of the body after the head are not part of it */
    char more[128];
    snprintf(more, sizeof more, "%sBODY\r\n\r\n", h);
    CU_ASSERT_EQUAL(scan_once(more, strlen(more), &st), n);
    /* bare LF line ends (RFC 9112 2.2), and a mix */
    const char *lf = "GET / HTTP/1.1\nHost: a\n\n";
    CU_ASSERT_EQUAL(scan_once(lf, strlen(lf), &st), strlen(lf));
    const char *mix = "GET / HTTP/1.1\r\nHost: a\n\r\n";
    CU_ASSERT_EQUAL(scan_once(mix, strlen(mix), &st), strlen(mix));
    const char *mix2 = "GET / HTTP/1.1\nHost: a\r\n\nX";
    CU_ASSERT_EQUAL(scan_once(mix2, strlen(mix2), &st), strlen(mix2) - 1);
    /* a request line and no field: the empty line right after it */
    const char *bare = "GET / HTTP/1.0\r\n\r\n";
    CU_ASSERT_EQUAL(scan_once(bare, strlen(bare), &st), strlen(bare));
    /* a CR alone is not a line end */
    const char *cr = "GET / HTTP/1.1\r\r\r\r";
    CU_ASSERT_EQUAL(scan_once(cr, strlen(cr), &st), 0);
    CU_ASSERT_EQUAL(st, 0);
}

static void test_scan_leading_empty_lines(void)
{
    unsigned st;
    const char *h = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CU_ASSERT_EQUAL(scan_once(h, strlen(h), &st), strlen(h));
    /* empty lines alone are not a head */
    CU_ASSERT_EQUAL(scan_once("\r\n\r\n\n\n", 6, &st), 0);
    CU_ASSERT_EQUAL(st, 0);
    /* and the parse skips them */
    CU_ASSERT_EQUAL(parse(h), 0);
    CU_ASSERT_STRING_EQUAL(g_h.method, "GET");
    CU_ASSERT_STRING_EQUAL(g_h.path, "/");
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "host"), "a");
}

/* Fed one byte more at a time, with *scanned kept: the same head length at the same point,
 * and the scan never goes back (scanned is where the data ended). */
static void check_bytewise(const char *s, size_t n)
{
    unsigned st;
    size_t once = scan_once(s, n, &st);
    size_t scanned = 0, found = 0, at = 0;
    for (size_t k = 0; k <= n && !found; k++) {
        st = 999;
        size_t r = qk_http1_head_scan(s, k, &scanned, &st);
        if (r) {
            found = r;
            at = k;
        } else {
            CU_ASSERT_EQUAL(st, 0);
            CU_ASSERT_EQUAL(scanned, k);
        }
    }
    CU_ASSERT_EQUAL(found, once);
    if (once)
        CU_ASSERT_EQUAL(at, once); /* found as soon as its last byte arrived */
}

static void test_scan_byte_by_byte(void)
{
    static const char *heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\n\n",
        "\r\n\r\nPOST /x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        "\n\nGET / HTTP/1.0\n\nrest",
        "GET / HTTP/1.1\r\nA: \r\r\nB: c\r\n\n",
        "\r\n\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        check_bytewise(heads[i], strlen(heads[i]));
}

static void test_scan_limits(void)
{
    static char big[QK_H1_HEAD_MAX + 100];
    unsigned st;
    size_t scanned;
    /* a request line that never ends: 414 */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', sizeof big - 5);
    CU_ASSERT_EQUAL(scan_once(big, QK_H1_HEAD_MAX, &st), 0);
    CU_ASSERT_EQUAL(st, 414);
    CU_ASSERT_EQUAL(scan_once(big, sizeof big, &st), 0);
    CU_ASSERT_EQUAL(st, 414);
    CU_ASSERT_EQUAL(scan_once(big, QK_H1_HEAD_MAX - 1, &st), 0);
    CU_ASSERT_EQUAL(st, 0); /* not yet */
    /* empty lines and then a request line that does not end: still 414 */
    memcpy(big, "\r\n\r\n\nGET /", 10);
    CU_ASSERT_EQUAL(scan_once(big, QK_H1_HEAD_MAX, &st), 0);
    CU_ASSERT_EQUAL(st, 414);
    /* a request line, then fields without end: 431 */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    CU_ASSERT_EQUAL(scan_once(big, QK_H1_HEAD_MAX, &st), 0);
    CU_ASSERT_EQUAL(st, 431);
    /* incrementally: 0 just below the limit, then the status */
    scanned = 0;
    st = 7;
    CU_ASSERT_EQUAL(qk_http1_head_scan(big, QK_H1_HEAD_MAX - 1, &scanned, &st), 0);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_EQUAL(qk_http1_head_scan(big, QK_H1_HEAD_MAX + 50, &scanned, &st), 0);
    CU_ASSERT_EQUAL(st, 431);
    /* a head of exactly QK_H1_HEAD_MAX bytes is accepted; one byte more is 431 */
    memcpy(big, "GET / HTTP/1.0\r\nX: ", 19);
    memcpy(big + QK_H1_HEAD_MAX - 4, "\r\n\r\n", 4);
    CU_ASSERT_EQUAL(scan_once(big, QK_H1_HEAD_MAX, &st), QK_H1_HEAD_MAX);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_EQUAL_FATAL(parse_mem(big, QK_H1_HEAD_MAX), 0);
    CU_ASSERT_EQUAL(g_h.nfields, 1);
    CU_ASSERT_EQUAL(strlen(qk_http1_field_get(&g_h, "x")), QK_H1_HEAD_MAX - 19 - 4);
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memcpy(big + QK_H1_HEAD_MAX - 3, "\r\n\r\n", 4);
    CU_ASSERT_EQUAL(scan_once(big, QK_H1_HEAD_MAX + 1, &st), 0);
    CU_ASSERT_EQUAL(st, 431);
    CU_ASSERT_EQUAL(qk_http1_parse_head(big, QK_H1_HEAD_MAX + 1, &g_h), 431);
}

/* ---- parse_head: request line --------------------------------------------------------- */

static void test_parse_basic(void)
{
    CU_ASSERT_EQUAL_FATAL(parse("GET /api/v1/keys HTTP/1.1\r\nHost: kme.example:443\r\n"
                                "Accept:  application/json \t\r\nX-Empty:\r\nX-Ws:  \r\n\r\n"),
                          0);
    CU_ASSERT_STRING_EQUAL(g_h.method, "GET");
    CU_ASSERT_STRING_EQUAL(g_h.path, "/api/v1/keys");
    CU_ASSERT_EQUAL(g_h.minor, 1);
    CU_ASSERT_EQUAL(g_h.nfields, 4);
    CU_ASSERT_STRING_EQUAL(g_h.fields[0].name, "Host");
    CU_ASSERT_STRING_EQUAL(g_h.fields[0].value, "kme.example:443");
    CU_ASSERT_STRING_EQUAL(g_h.fields[1].value, "application/json");
    CU_ASSERT_STRING_EQUAL(g_h.fields[2].value, "");
    CU_ASSERT_STRING_EQUAL(g_h.fields[3].value, "");
    CU_ASSERT_EQUAL(g_h.nargs, 0);
    CU_ASSERT_FALSE(g_h.has_length);
    CU_ASSERT_EQUAL(g_h.content_length, 0);
    CU_ASSERT_FALSE(g_h.chunked);
    CU_ASSERT_TRUE(g_h.keep_alive);
    CU_ASSERT_FALSE(g_h.expect_continue);
    /* field names compare case-insensitively; the first of a name wins; none: NULL */
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "ACCEPT"), "application/json");
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "host"), "kme.example:443");
    CU_ASSERT_PTR_NULL(qk_http1_field_get(&g_h, "Accep"));
    CU_ASSERT_PTR_NULL(qk_http1_field_get(&g_h, "Accept-"));
    CU_ASSERT_PTR_NULL(qk_http1_field_get(&g_h, NULL));
    CU_ASSERT_PTR_NULL(qk_http1_field_get(NULL, "Host"));
    /* every string lies in the buffer */
    CU_ASSERT(g_h.method >= g_buf && g_h.method < g_buf + sizeof g_buf);
    CU_ASSERT(g_h.path >= g_buf && g_h.path < g_buf + sizeof g_buf);
    CU_ASSERT(g_h.fields[2].value >= g_buf && g_h.fields[2].value < g_buf + sizeof g_buf);

    CU_ASSERT_EQUAL_FATAL(parse("GET /a HTTP/1.1\r\nhost: x\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "X-DUP"), "1");
    /* methods are case-sensitive and kept as sent */
    CU_ASSERT_EQUAL_FATAL(parse("get / HTTP/1.0\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.method, "get");
    CU_ASSERT_EQUAL(g_h.minor, 0);
    CU_ASSERT_EQUAL_FATAL(parse("M-1.x!~ / HTTP/1.0\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.method, "M-1.x!~");
    /* bare LF line ends */
    CU_ASSERT_EQUAL_FATAL(parse("POST /x HTTP/1.1\nHost: h\nContent-Length: 2\n\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/x");
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "host"), "h");
    CU_ASSERT_EQUAL(g_h.content_length, 2);
}

static void test_parse_request_line_rejects(void)
{
    static const struct {
        const char *req;
        int status;
    } v[] = {
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* two spaces */
        {"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* two spaces */
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},   /* trailing space */
        {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* leading space */
        {"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* HTAB */
        {"GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* HTAB */
        {"GET / http/1.1\r\nHost: a\r\n\r\n", 400},    /* HTTP-name is case-sensitive */
        {"GET / HTTP/1.1.\r\nHost: a\r\n\r\n", 400},   /* not a version */
        {"GET / HTTP/11\r\nHost: a\r\n\r\n", 400},     /* not a version */
        {"GET / HTTP/1.a\r\nHost: a\r\n\r\n", 400},    /* not a version */
        {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},   /* one digit each */
        {"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400},   /* not HTTP */
        {"GET /\r\nHost: a\r\n\r\n", 400},             /* HTTP/0.9 */
        {"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400},  /* a CR in the line */
        {"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* not a token */
        {"G\x80T / HTTP/1.1\r\nHost: a\r\n\r\n", 400}, /* not a token */
        {"/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},        /* no method */
        {"GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400},     /* no target */
        {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        {"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},       /* DEL in the target */
        {"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},       /* control in the target */
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 0},      /* obs-text is kept */
        {"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},          /* no form */
        {"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400},    /* authority-form */
        {"GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},     /* other scheme */
        {"GET http:/h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},     /* not a URI */
        {"GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n", 400},    /* empty host */
        {"GET https://?a HTTP/1.1\r\nHost: a\r\n\r\n", 400},   /* empty host */
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},          /* asterisk-form */
        {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},            /* only with OPTIONS */
        {"options * HTTP/1.1\r\nHost: a\r\n\r\n", 400},        /* methods are case-sensitive */
        {"OPTIONS *?a=b HTTP/1.1\r\nHost: a\r\n\r\n", 400},    /* asterisk alone */
        {"OPTIONS ** HTTP/1.1\r\nHost: a\r\n\r\n", 400},       /* asterisk alone */
        {"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400},         /* %00 in the path */
        {"GET /a?x=%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400},     /* in a value */
        {"GET /a?%00=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400},     /* in a name */
        {"GET /a?%%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400},      /* after a kept '%' */
        {"GET /a?x=%0 HTTP/1.1\r\nHost: a\r\n\r\n", 0},        /* not an escape */
        {"GET /a?x=%0g0 HTTP/1.1\r\nHost: a\r\n\r\n", 0},      /* not an escape */
        {"GET http://h/%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400}, /* absolute-form too */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int st = parse(v[i].req);
        if (st != v[i].status)
            fprintf(stderr, "\n  request %zu: %d, expected %d\n", i, st, v[i].status);
        CU_ASSERT_EQUAL(st, v[i].status);
    }
    /* no head, a head that does not end, bytes after it */
    CU_ASSERT_EQUAL(parse(""), 400);
    CU_ASSERT_EQUAL(parse("\r\n\r\n"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: a\r\n"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\nX"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n"), 400);
    CU_ASSERT_EQUAL(qk_http1_parse_head(NULL, 10, &g_h), 400);
    CU_ASSERT_EQUAL(qk_http1_parse_head(g_buf, 10, NULL), 400);
}

static void test_parse_target_forms(void)
{
    CU_ASSERT_EQUAL_FATAL(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.method, "OPTIONS");
    CU_ASSERT_STRING_EQUAL(g_h.path, "*");
    CU_ASSERT_EQUAL(g_h.nargs, 0);

    /* absolute-form: path and query taken, the authority ignored */
    CU_ASSERT_EQUAL_FATAL(
        parse("GET http://other.example:8080/a%20b/c?x=1&y HTTP/1.1\r\nHost: kme\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/a b/c");
    CU_ASSERT_EQUAL(g_h.nargs, 2);
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "x"), "1");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "y"), "");
    CU_ASSERT_EQUAL_FATAL(parse("GET HtTpS://h HTTP/1.1\r\nHost: kme\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/");
    CU_ASSERT_EQUAL_FATAL(parse("GET http://h?size=256 HTTP/1.1\r\nHost: kme\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "size"), "256");
    CU_ASSERT_EQUAL_FATAL(parse("GET http://u@h:1/p HTTP/1.1\r\nHost: kme\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/p");

    /* origin-form: the path is decoded without '+'; '#' is an ordinary character */
    CU_ASSERT_EQUAL_FATAL(parse("GET /a%2Fb+c%zz%4%41%e2%82%ac%2 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/a/b+c%zz%4A\xe2\x82\xac%2");
    CU_ASSERT_EQUAL_FATAL(parse("GET /a#b?c=d#e HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/a#b");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "c"), "d#e");
    CU_ASSERT_EQUAL_FATAL(parse("GET /%25 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/%");
    CU_ASSERT_EQUAL_FATAL(parse("GET /? HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/");
    CU_ASSERT_EQUAL(g_h.nargs, 0);
}

static void test_parse_query(void)
{
    CU_ASSERT_EQUAL_FATAL(parse("GET /p?a=1&b=x+y&c=%41%2B&&d&e=&a=2&f+g=h%20i&k=v=w&"
                                "%zz=%&=z&amp=%26 HTTP/1.1\r\nHost: a\r\n\r\n"),
                          0);
    CU_ASSERT_STRING_EQUAL(g_h.path, "/p");
    CU_ASSERT_EQUAL(g_h.nargs, 11);
    CU_ASSERT_STRING_EQUAL(g_h.args[0].name, "a");
    CU_ASSERT_STRING_EQUAL(g_h.args[0].value, "1");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "a"), "1"); /* the first */
    CU_ASSERT_EQUAL(qk_http1_arg_count(&g_h, "a"), 2);
    CU_ASSERT_STRING_EQUAL(g_h.args[5].value, "2");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "b"), "x y");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "c"), "A+"); /* %2B is a plus, not a space */
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "d"), "");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "e"), "");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "f g"), "h i");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "k"), "v=w");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "%zz"), "%"); /* invalid escapes kept */
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, ""), "z");
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "amp"), "&");
    CU_ASSERT_EQUAL(qk_http1_arg_count(&g_h, "b"), 1);
    CU_ASSERT_EQUAL(qk_http1_arg_count(&g_h, "zz"), 0);
    CU_ASSERT_PTR_NULL(qk_http1_arg(&g_h, "A")); /* case-sensitive */
    CU_ASSERT_PTR_NULL(qk_http1_arg(&g_h, "zz"));
    CU_ASSERT_PTR_NULL(qk_http1_arg(NULL, "a"));
    CU_ASSERT_EQUAL(qk_http1_arg_count(&g_h, NULL), 0);

    /* QK_H1_ARGS_MAX parameters (empty pieces not counted), then one more */
    char req[1024];
    size_t n = (size_t)snprintf(req, sizeof req, "GET /q?&&");
    for (int i = 0; i < QK_H1_ARGS_MAX; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "k%d=%d&&", i, i);
    snprintf(req + n, sizeof req - n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(parse(req), 0);
    CU_ASSERT_EQUAL(g_h.nargs, QK_H1_ARGS_MAX);
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "k63"), "63");
    snprintf(req + n, sizeof req - n, "x HTTP/1.1\r\nHost: a\r\n\r\n");
    CU_ASSERT_EQUAL(parse(req), 400);
    /* repeated parameters are each counted */
    n = (size_t)snprintf(req, sizeof req, "GET /q?");
    for (int i = 0; i < QK_H1_ARGS_MAX; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "key_ID=%d&", i);
    snprintf(req + n, sizeof req - n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(parse(req), 0);
    CU_ASSERT_EQUAL(qk_http1_arg_count(&g_h, "key_ID"), QK_H1_ARGS_MAX);
    CU_ASSERT_STRING_EQUAL(qk_http1_arg(&g_h, "key_ID"), "0");
}

/* ---- parse_head: fields --------------------------------------------------------------- */

static void test_parse_field_rules(void)
{
    static const struct {
        const char *fields; /* after "GET / HTTP/1.1\r\nHost: a\r\n" */
        int status;
    } v[] = {
        {"X-A: b\r\n", 0},
        {"X-A : b\r\n", 400},             /* whitespace before the colon */
        {"X-A\t: b\r\n", 400},            /* whitespace before the colon */
        {"X-A: b\r\n c\r\n", 400},        /* obs-fold */
        {"X-A: b\r\n\tc\r\n", 400},       /* obs-fold */
        {"X-A b\r\n", 400},               /* no colon */
        {": b\r\n", 400},                 /* no name */
        {"X(A): b\r\n", 400},             /* not a token */
        {"X-A: b\rc\r\n", 400},           /* CR in the value */
        {"X-A: b\r\r\n", 400},            /* CR before the line end */
        {"X-A: b\x01\r\n", 400},          /* control */
        {"X-A: b\x7f\r\n", 400},          /* DEL */
        {"X-A: b\tc\r\n", 0},             /* HTAB inside */
        {"X-A: caf\xc3\xa9 \xff\r\n", 0}, /* obs-text */
        {"X-A:\r\n", 0},                  /* empty value */
        {"X-A:b:c\r\n", 0},               /* a colon in the value */
        {"X-A: b\r\nX-A: b\r\n", 0},      /* repeated */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", v[i].fields);
        int st = parse(req);
        if (st != v[i].status)
            fprintf(stderr, "\n  fields %zu: %d, expected %d\n", i, st, v[i].status);
        CU_ASSERT_EQUAL(st, v[i].status);
    }
    /* a NUL in a value, and whitespace before the first field */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    CU_ASSERT_EQUAL(parse_mem(nul, sizeof nul - 1), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    /* values keep inner whitespace and obs-text, lose it around */
    CU_ASSERT_EQUAL_FATAL(parse("GET / HTTP/1.1\r\nHost: a\r\nX:\t a \t b\xe9 \t\r\n\r\n"), 0);
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "x"), "a \t b\xe9");
    /* QK_H1_FIELDS_MAX fields, then one more: 431 */
    char req[4096];
    size_t n = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < QK_H1_FIELDS_MAX; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "X-%d: %d\r\n", i, i);
    snprintf(req + n, sizeof req - n, "\r\n");
    CU_ASSERT_EQUAL_FATAL(parse(req), 0);
    CU_ASSERT_EQUAL(g_h.nfields, QK_H1_FIELDS_MAX);
    CU_ASSERT_STRING_EQUAL(qk_http1_field_get(&g_h, "x-63"), "63");
    snprintf(req + n, sizeof req - n, "X-64: 64\r\n\r\n");
    CU_ASSERT_EQUAL(parse(req), 431);
}

static void test_content_length(void)
{
    static const struct {
        const char *fields;
        int status;
        uint64_t length;
    } v[] = {
        {"Content-Length: 42\r\n", 0, 42},
        {"content-length:0\r\n", 0, 0},
        {"Content-Length: 007\r\n", 0, 7},
        {"Content-Length: 5, 5\r\n", 0, 5},
        {"Content-Length: 5\r\nContent-Length: 5\r\n", 0, 5},
        {"Content-Length: 5,5\r\ncontent-length: 05\r\n", 0, 5},
        {"Content-Length: 999999999999999999\r\n", 0, 999999999999999999ULL},
        {"Content-Length: 1000000000000000000\r\n", 400, 0}, /* 19 digits */
        {"Content-Length: 5\r\nContent-Length: 6\r\n", 400, 0},
        {"Content-Length: 5, 6\r\n", 400, 0},
        {"Content-Length: 5,\r\n", 400, 0},
        {"Content-Length:\r\n", 400, 0},
        {"Content-Length: -1\r\n", 400, 0},
        {"Content-Length: +1\r\n", 400, 0},
        {"Content-Length: 1 2\r\n", 400, 0},
        {"Content-Length: 0x10\r\n", 400, 0},
        {"Content-Length: 1.0\r\n", 400, 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\nHost: a\r\n%s\r\n", v[i].fields);
        int st = parse(req);
        if (st != v[i].status)
            fprintf(stderr, "\n  length %zu: %d, expected %d\n", i, st, v[i].status);
        CU_ASSERT_EQUAL(st, v[i].status);
        if (st == 0) {
            CU_ASSERT_TRUE(g_h.has_length);
            CU_ASSERT_EQUAL(g_h.content_length, v[i].length);
            CU_ASSERT_FALSE(g_h.chunked);
        }
    }
}

static void test_transfer_encoding(void)
{
    static const struct {
        const char *head;
        int status;
    } v[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
        {"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  ChUnKeD \t\r\n\r\n", 0},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501},
        /* with Content-Length: smuggling (RFC 9112 6.3) */
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        /* in HTTP/1.0 */
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int st = parse(v[i].head);
        if (st != v[i].status)
            fprintf(stderr, "\n  coding %zu: %d, expected %d\n", i, st, v[i].status);
        CU_ASSERT_EQUAL(st, v[i].status);
        if (st == 0) {
            CU_ASSERT_TRUE(g_h.chunked);
            CU_ASSERT_FALSE(g_h.has_length);
        }
    }
}

static void test_host_rules(void)
{
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\n\r\n"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nX: y\r\n\r\n"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHOST: a\r\n\r\n"), 0);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0); /* empty: allowed */
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"), 0);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: 10.0.0.1:443\r\n\r\n"), 0);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400); /* invalid value */
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"), 400); /* userinfo */
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.1\r\nHost: h/p\r\n\r\n"), 400); /* a path */
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.0\r\n\r\n"), 0);                /* 1.0: optional */
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.0\r\nHost: a\r\n\r\n"), 0);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
}

static void test_connection_and_expect(void)
{
    static const struct {
        const char *head;
        bool keep_alive, expect;
    } v[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: Upgrade ,KEEP-ALIVE\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false, false},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", true, true},
        {"POST / HTTP/1.1\r\nHost: a\r\nexpect:  100-Continue \r\n\r\n", true, true},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", true, false},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n", true, false},
        /* ignored in HTTP/1.0 (RFC 9110 10.1.1) */
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", false, false},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        CU_ASSERT_EQUAL_FATAL(parse(v[i].head), 0);
        if (g_h.keep_alive != v[i].keep_alive || g_h.expect_continue != v[i].expect)
            fprintf(stderr, "\n  connection %zu\n", i);
        CU_ASSERT_EQUAL(g_h.keep_alive, v[i].keep_alive);
        CU_ASSERT_EQUAL(g_h.expect_continue, v[i].expect);
    }
}

/* ---- chunked -------------------------------------------------------------------------- */

/* Decode the pieces of in split at cut1 <= cut2 (three calls, each given only its new bytes,
 * stopping at the end of the body): the status, the decoded bytes and the input used. */
static int decode_split(const char *in, size_t len, size_t cut1, size_t cut2, char *out,
                        size_t *out_n, size_t *used)
{
    static char work[8192];
    CU_ASSERT_FATAL(len <= sizeof work);
    memcpy(work, in, len);
    qk_http1_chunked st;
    memset(&st, 0, sizeof st);
    size_t cuts[4] = {0, cut1, cut2, len};
    *out_n = 0;
    *used = 0;
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        size_t c = 99, o = 99, n = cuts[k + 1] - cuts[k];
        rc = qk_http1_chunked_decode(&st, work + cuts[k], n, &c, &o);
        CU_ASSERT(o <= c && c <= n);
        if (rc == 0)
            CU_ASSERT_EQUAL(c, n);
        memcpy(out + *out_n, work + cuts[k], o);
        *out_n += o;
        *used += c;
    }
    return rc;
}

static void check_chunked_all_splits(const char *body, size_t body_len, const char *want)
{
    char in[1024], out[1024];
    const char *next = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = body_len + strlen(next);
    CU_ASSERT_FATAL(len <= sizeof in);
    memcpy(in, body, body_len);
    memcpy(in + body_len, next, strlen(next));
    size_t bad = 0;
    for (size_t c1 = 0; c1 <= len; c1++)
        for (size_t c2 = c1; c2 <= len; c2++) {
            size_t on, used;
            int rc = decode_split(in, len, c1, c2, out, &on, &used);
            if (rc != 1 || used != body_len || on != strlen(want) || memcmp(out, want, on) != 0)
                bad++;
        }
    CU_ASSERT_EQUAL(bad, 0);
    /* and one byte at a time */
    qk_http1_chunked st;
    memset(&st, 0, sizeof st);
    memcpy(in, body, body_len);
    size_t on = 0, i = 0;
    int rc = 0;
    for (; i < body_len + 5 && rc == 0; i++) {
        size_t c, o;
        rc = qk_http1_chunked_decode(&st, in + i, 1, &c, &o);
        CU_ASSERT_EQUAL(c, 1);
        out[on] = in[i];
        on += o;
    }
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_EQUAL(i, body_len);
    CU_ASSERT_EQUAL(on, strlen(want));
    CU_ASSERT(memcmp(out, want, on) == 0);
    /* after the end: 1, nothing used */
    size_t c = 9, o = 9;
    CU_ASSERT_EQUAL(qk_http1_chunked_decode(&st, in, 3, &c, &o), 1);
    CU_ASSERT_EQUAL(c, 0);
    CU_ASSERT_EQUAL(o, 0);
}

static void test_chunked_split_everywhere(void)
{
    static const char crlf[] = "4;ext=1\r\nWiki\r\n5 ;a;b=\"c d\"\t\r\npedia\r\nE\r\n in\r\n\r\n"
                               "chunks.\r\n00;last\r\nTrailer: x\r\nT2: y\r\n\r\n";
    check_chunked_all_splits(crlf, sizeof crlf - 1, "Wikipedia in\r\n\r\nchunks.");
    static const char lf[] = "4\nWiki\n5;x\npedia\na\n0123456789\n0\nT: 1\n\n";
    check_chunked_all_splits(lf, sizeof lf - 1, "Wikipedia0123456789");
    static const char empty[] = "0\r\n\r\n";
    check_chunked_all_splits(empty, sizeof empty - 1, "");
    static const char hexcase[] = "000000000000000000000001\r\nx\r\nA\r\n0123456789\r\n"
                                  "b\r\nabcdefghijk\r\n0\r\n\r\n";
    check_chunked_all_splits(hexcase, sizeof hexcase - 1, "x0123456789abcdefghijk");
}

static int decode_str(const char *s, size_t *consumed)
{
    static char work[32768];
    size_t n = strlen(s), o;
    CU_ASSERT_FATAL(n <= sizeof work);
    memcpy(work, s, n);
    qk_http1_chunked st;
    memset(&st, 0, sizeof st);
    int rc = qk_http1_chunked_decode(&st, work, n, consumed, &o);
    if (rc == 400) { /* stays an error */
        size_t c, o2;
        CU_ASSERT_EQUAL(qk_http1_chunked_decode(&st, work, n, &c, &o2), 400);
    }
    return rc;
}

static void test_chunked_errors(void)
{
    size_t c;
    static const struct {
        const char *in;
        int rc;
    } v[] = {
        {"\r\n", 400},                           /* no size */
        {";x\r\n", 400},                         /* no size */
        {" 1\r\n", 400},                         /* whitespace first */
        {"g\r\n", 400},                          /* not hex */
        {"1g\r\n", 400},                         /* not hex */
        {"-1\r\n", 400},                         /* not hex */
        {"0x1\r\n", 400},                        /* not hex */
        {"1 \r\nx\r\n", 400},                    /* whitespace without extension */
        {"1 2\r\n", 400},                        /* two numbers */
        {"1\rx", 400},                           /* CR without LF */
        {"1;a\rb\r\n", 400},                     /* CR in an extension */
        {"1;a\x01\r\n", 400},                    /* control in an extension */
        {"1\r\nab\r\n", 400},                    /* data not followed by CRLF */
        {"1\r\na\rb", 400},                      /* CR without LF */
        {"8000000000000000\r\n", 400},           /* 2^63 */
        {"10000000000000000\r\n", 400},          /* 2^64 */
        {"7fffffffffffffff\r\n", 0},             /* 2^63 - 1: more needed */
        {"7FFFFFFFFFFFFFFF;x\r\nabc", 0},        /* data */
        {"1 ;x\r\na\r\n0\r\n\r\n", 1},           /* BWS before ';' */
        {"1\t; x = \"y\"\r\na\r\n0\r\n\r\n", 1}, /* BWS, quoted */
        {"0\r\nT: x\r\r\n\r\n", 400},            /* CR in a trailer line */
        {"0\r\n\rX", 400},                       /* CR alone at the end */
        {"0\r\n\r\n", 1},
        {"0\n\n", 1},
        {"0", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int rc = decode_str(v[i].in, &c);
        if (rc != v[i].rc)
            fprintf(stderr, "\n  chunked %zu: %d, expected %d\n", i, rc, v[i].rc);
        CU_ASSERT_EQUAL(rc, v[i].rc);
    }
    CU_ASSERT_EQUAL(decode_str("1\r\nab", &c), 400);
    CU_ASSERT_EQUAL(c, 4); /* where it went wrong */

    /* a size line with its extension up to 4096 bytes, then one more */
    static char in[32768];
    memset(in, 0, sizeof in);
    memcpy(in, "1;", 2);
    memset(in + 2, 'e', 4094 - 2);
    memcpy(in + 4094, "\r\na\r\n0\r\n\r\n", 11);
    CU_ASSERT_EQUAL(decode_str(in, &c), 1); /* 4095 bytes with the CR */
    memset(in, 0, sizeof in);
    memcpy(in, "1;", 2);
    memset(in + 2, 'e', 4096 - 2);
    memcpy(in + 4096, "\r\na\r\n0\r\n\r\n", 11);
    CU_ASSERT_EQUAL(decode_str(in, &c), 400);
    /* leading zeros count as the line too */
    memset(in, 0, sizeof in);
    memset(in, '0', 5000);
    CU_ASSERT_EQUAL(decode_str(in, &c), 400);
    /* a trailer field up to 4096 bytes, then one more */
    memset(in, 0, sizeof in);
    memcpy(in, "0\r\n", 3);
    memset(in + 3, 't', 4095);
    memcpy(in + 3 + 4095, "\r\n\r\n", 4);
    CU_ASSERT_EQUAL(decode_str(in, &c), 1);
    CU_ASSERT_EQUAL(c, 3 + 4095 + 4);
    memset(in, 0, sizeof in);
    memcpy(in, "0\r\n", 3);
    memset(in + 3, 't', 4097);
    memcpy(in + 3 + 4097, "\r\n\r\n", 4);
    CU_ASSERT_EQUAL(decode_str(in, &c), 400);
    /* trailers up to 16384 bytes, then more */
    memset(in, 0, sizeof in);
    size_t n = 3;
    memcpy(in, "0\r\n", 3);
    for (int i = 0; i < 4; i++) { /* 4 x (4000 + 2) */
        memset(in + n, 'u', 4000);
        memcpy(in + n + 4000, "\r\n", 2);
        n += 4002;
    }
    memcpy(in + n, "\r\n", 2);
    CU_ASSERT_EQUAL(decode_str(in, &c), 1);
    memset(in, 0, sizeof in);
    n = 3;
    memcpy(in, "0\r\n", 3);
    for (int i = 0; i < 5; i++) {
        memset(in + n, 'u', 4000);
        memcpy(in + n + 4000, "\r\n", 2);
        n += 4002;
    }
    memcpy(in + n, "\r\n", 2);
    CU_ASSERT_EQUAL(decode_str(in, &c), 400);
    /* a bad argument */
    size_t o;
    qk_http1_chunked st;
    memset(&st, 0, sizeof st);
    CU_ASSERT_EQUAL(qk_http1_chunked_decode(&st, NULL, 3, &c, &o), 400);
    CU_ASSERT_EQUAL(qk_http1_chunked_decode(NULL, in, 3, &c, &o), 400);
}

/* ---- responses ------------------------------------------------------------------------ */

static void test_write_head(void)
{
    char out[512];
    qk_http1_response r = {
        .status = 200,
        .content_type = "application/json",
        .allow = "GET, POST",
        .no_store = true,
        .retry_after = 5,
        .content_length = 1234,
        .close = true,
        .keep_alive_10 = true,
        .date = "Sun, 06 Nov 1994 08:49:37 GMT",
    };
    const char *want = "HTTP/1.1 200 OK\r\n"
                       "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 1234\r\n"
                       "Cache-Control: no-store\r\n"
                       "Allow: GET, POST\r\n"
                       "Retry-After: 5\r\n"
                       "Connection: close\r\n"
                       "\r\n";
    size_t n = qk_http1_write_head(out, sizeof out, &r);
    CU_ASSERT_EQUAL(n, strlen(want));
    CU_ASSERT(n && memcmp(out, want, n) == 0);
    /* too small by any amount: 0; exactly enough: the length */
    size_t bad = 0;
    for (size_t cap = 0; cap < strlen(want); cap++)
        if (qk_http1_write_head(out, cap, &r) != 0)
            bad++;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(qk_http1_write_head(out, strlen(want), &r), strlen(want));
    CU_ASSERT(memcmp(out, want, strlen(want)) == 0);

    /* HTTP/1.0 kept alive, no optional field */
    qk_http1_response k = {.status = 404, .keep_alive_10 = true, .allow = ""};
    n = qk_http1_write_head(out, sizeof out, &k);
    want = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
    CU_ASSERT_EQUAL(n, strlen(want));
    CU_ASSERT(n && memcmp(out, want, n) == 0);

    /* no Content-Length for 1xx, 204 and 304 */
    qk_http1_response e = {.status = 204, .content_length = 10};
    n = qk_http1_write_head(out, sizeof out, &e);
    want = "HTTP/1.1 204 No Content\r\n\r\n";
    CU_ASSERT_EQUAL(n, strlen(want));
    CU_ASSERT(n && memcmp(out, want, n) == 0);
    e.status = 304;
    n = qk_http1_write_head(out, sizeof out, &e);
    CU_ASSERT(n && strstr(out, "Content-Length") == NULL);
    e.status = 100;
    n = qk_http1_write_head(out, sizeof out, &e);
    want = "HTTP/1.1 100 Continue\r\n\r\n";
    CU_ASSERT_EQUAL(n, strlen(want));
    CU_ASSERT(n && memcmp(out, want, n) == 0);
    e.status = 205;
    n = qk_http1_write_head(out, sizeof out, &e);
    CU_ASSERT(n && strstr(out, "Content-Length: 10\r\n") != NULL);
    e.status = 599;
    n = qk_http1_write_head(out, sizeof out, &e);
    want = "HTTP/1.1 599 Unknown\r\nContent-Length: 10\r\n\r\n";
    CU_ASSERT_EQUAL(n, strlen(want));
    CU_ASSERT(n && memcmp(out, want, n) == 0);

    /* out of range statuses, header injection, bad arguments */
    e.status = 99;
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, &e), 0);
    e.status = 600;
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, &e), 0);
    qk_http1_response bad_r = {.status = 200, .content_type = "text/plain\r\nSet-Cookie: x"};
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, &bad_r), 0);
    bad_r.content_type = "text/plain\n";
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, &bad_r), 0);
    bad_r.content_type = NULL;
    bad_r.allow = "GET\r\n";
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, &bad_r), 0);
    bad_r.allow = "GET\r";
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, &bad_r), 0);
    bad_r.allow = "GET,\tPOST";
    CU_ASSERT(qk_http1_write_head(out, sizeof out, &bad_r) > 0);
    CU_ASSERT_EQUAL(qk_http1_write_head(NULL, sizeof out, &bad_r), 0);
    CU_ASSERT_EQUAL(qk_http1_write_head(out, sizeof out, NULL), 0);
    /* the largest length */
    qk_http1_response big = {.status = 200, .content_length = UINT64_MAX};
    n = qk_http1_write_head(out, sizeof out, &big);
    CU_ASSERT(n && strstr(out, "Content-Length: 18446744073709551615\r\n") != NULL);
}

static void test_reason(void)
{
    static const unsigned known[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302,
                                     303, 304, 305, 306, 307, 308, 400, 401, 402, 403, 404, 405,
                                     406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
                                     421, 422, 426, 429, 431, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *r = qk_http1_reason(known[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT(strcmp(r, "Unknown") != 0 && r[0] != '\0');
    }
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(200), "OK");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(404), "Not Found");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(413), "Content Too Large");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(414), "URI Too Long");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(422), "Unprocessable Content");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(431), "Request Header Fields Too Large");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(503), "Service Unavailable");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(505), "HTTP Version Not Supported");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(418), "Unknown");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(0), "Unknown");
    CU_ASSERT_STRING_EQUAL(qk_http1_reason(999), "Unknown");
}

static void test_date(void)
{
    char d[30];
    memset(d, 'x', sizeof d);
    qk_http1_date(784111777, d);
    CU_ASSERT_STRING_EQUAL(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    qk_http1_date(0, d);
    CU_ASSERT_STRING_EQUAL(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    qk_http1_date(951782400, d); /* a leap day */
    CU_ASSERT_STRING_EQUAL(d, "Tue, 29 Feb 2000 00:00:00 GMT");
    qk_http1_date(253402300799, d); /* the last second of year 9999 */
    CU_ASSERT_STRING_EQUAL(d, "Fri, 31 Dec 9999 23:59:59 GMT");
    qk_http1_date(253402300800, d); /* year 10000 does not fit: the epoch */
    CU_ASSERT_EQUAL(strlen(d), 29);
}

int suite_http1(void)
{
    CU_pSuite s = CU_add_suite("http1", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "head scan: complete, partial, line ends",
                     test_scan_complete_and_partial) ||
        !CU_add_test(s, "head scan: leading empty lines", test_scan_leading_empty_lines) ||
        !CU_add_test(s, "head scan: byte by byte = at once", test_scan_byte_by_byte) ||
        !CU_add_test(s, "head scan: 414 and 431", test_scan_limits) ||
        !CU_add_test(s, "parse: request and fields", test_parse_basic) ||
        !CU_add_test(s, "parse: request line statuses", test_parse_request_line_rejects) ||
        !CU_add_test(s, "parse: target forms and path decoding", test_parse_target_forms) ||
        !CU_add_test(s, "parse: query", test_parse_query) ||
        !CU_add_test(s, "parse: field rules", test_parse_field_rules) ||
        !CU_add_test(s, "parse: Content-Length", test_content_length) ||
        !CU_add_test(s, "parse: Transfer-Encoding", test_transfer_encoding) ||
        !CU_add_test(s, "parse: Host", test_host_rules) ||
        !CU_add_test(s, "parse: Connection and Expect", test_connection_and_expect) ||
        !CU_add_test(s, "chunked: split at every byte", test_chunked_split_everywhere) ||
        !CU_add_test(s, "chunked: errors and limits", test_chunked_errors) ||
        !CU_add_test(s, "write_head", test_write_head) ||
        !CU_add_test(s, "reason phrases", test_reason) || !CU_add_test(s, "IMF-fixdate", test_date))
        return -1;
    return 0;
}
