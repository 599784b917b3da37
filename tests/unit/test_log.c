/* test_log.c - logfmt lines, escaping, request lines, level filter, reopen, threads, held
 * lines. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char dir[64];
static char path[128];

static int setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qk-log-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/test.log", dir);
    return 0;
}

static int teardown(void)
{
    qk_log_close();
    qk_log_set_level(QK_LOG_INFO);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define MAX_LINES 1024

typedef struct {
    char *text; /* whole file, lines split in place */
    char *line[MAX_LINES];
    int n;
} lines;

/* Read file p and split it into lines; every line must end in '\n'. */
static int read_lines(const char *p, lines *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    size_t cap = 1 << 20;
    out->text = calloc(1, cap + 1);
    size_t len = out->text ? fread(out->text, 1, cap, f) : 0;
    fclose(f);
    if (!out->text)
        return -1;
    char *s = out->text;
    while (s < out->text + len && out->n < MAX_LINES) {
        char *nl = memchr(s, '\n', (size_t)(out->text + len - s));
        if (!nl)
            return -1; /* partial line */
        *nl = '\0';
        out->line[out->n++] = s;
        s = nl + 1;
    }
    return 0;
}

static void free_lines(lines *l)
{
    free(l->text);
}

/* ts=YYYY-MM-DDTHH:MM:SS.mmmZ followed by a space. */
static int ts_ok(const char *l)
{
    const char *pat = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; pat[i]; i++) {
        if (pat[i] == 'd' ? (l[i] < '0' || l[i] > '9') : l[i] != pat[i])
            return 0;
    }
    return 1;
}

static void test_basic_lines_and_levels(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "test-prog"), 0);
    CU_ASSERT_EQUAL(qk_log_get_level(), QK_LOG_INFO);
    QK_INFO("hello %d", 42);
    QK_DEBUG("hidden debug");
    QK_ERROR("boom");
    qk_log_set_level(QK_LOG_ERROR);
    CU_ASSERT_EQUAL(qk_log_get_level(), QK_LOG_ERROR);
    QK_WARN("hidden warn");
    QK_ERROR("still shown");
    qk_log_set_level(QK_LOG_DEBUG);
    QK_DEBUG("debug now shown");
    qk_log_set_level(QK_LOG_INFO);

    lines l;
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 4);
    if (l.n == 4) {
        CU_ASSERT(ts_ok(l.line[0]));
        CU_ASSERT_STRING_EQUAL(l.line[0] + 28, "level=info prog=test-prog msg=\"hello 42\"");
        CU_ASSERT_STRING_EQUAL(l.line[1] + 28, "level=error prog=test-prog msg=\"boom\"");
        CU_ASSERT_STRING_EQUAL(l.line[2] + 28, "level=error prog=test-prog msg=\"still shown\"");
        CU_ASSERT_STRING_EQUAL(l.line[3] + 28,
                               "level=debug prog=test-prog msg=\"debug now shown\"");
    }
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
}

static void test_level_parse(void)
{
    qk_log_level lv = QK_LOG_ERROR;
    CU_ASSERT_EQUAL(qk_log_level_parse("debug", &lv), 0);
    CU_ASSERT_EQUAL(lv, QK_LOG_DEBUG);
    CU_ASSERT_EQUAL(qk_log_level_parse("WARN", &lv), 0);
    CU_ASSERT_EQUAL(lv, QK_LOG_WARN);
    CU_ASSERT_EQUAL(qk_log_level_parse("error", &lv), 0);
    CU_ASSERT_EQUAL(lv, QK_LOG_ERROR);
    CU_ASSERT_EQUAL(qk_log_level_parse("info", &lv), 0);
    CU_ASSERT_EQUAL(lv, QK_LOG_INFO);
    CU_ASSERT_EQUAL(qk_log_level_parse("loud", &lv), -1);
    CU_ASSERT_EQUAL(qk_log_level_parse("", &lv), -1);
}

static void test_escaping(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_DEBUG, "p"), 0);
    QK_WARN("say \"hi\"\nnext\\line\ttab\x01 end");
    lines l;
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 1); /* the newline in the message did not split the line */
    if (l.n == 1)
        CU_ASSERT_STRING_EQUAL(l.line[0] + 28,
                               "level=warn prog=p msg=\"say \\\"hi\\\"\\nnext\\\\line\\ttab\\x01 "
                               "end\"");
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
}

static void test_request_line(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "kmed"), 0);
    qk_request_log r = {.listener = "etsi014",
                        .method = "POST",
                        .path = "/api/v1/keys/SAE B/enc_keys",
                        .identity = "SAE_A",
                        .status = 200,
                        .latency_ms = 1.25,
                        .key_ids = "a,b",
                        .detail = NULL};
    qk_log_request(&r);
    qk_request_log r2 = {.method = "GET", .path = "/x", .status = 400, .detail = "bad \"n\""};
    qk_log_request(&r2);
    qk_log_set_level(QK_LOG_WARN); /* request lines are info: filtered */
    qk_log_request(&r);
    qk_log_set_level(QK_LOG_INFO);
    lines l;
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 2);
    if (l.n == 2) {
        CU_ASSERT(ts_ok(l.line[0]));
        CU_ASSERT_STRING_EQUAL(l.line[0] + 28,
                               "level=info prog=kmed event=request listener=etsi014 method=POST "
                               "path=\"/api/v1/keys/SAE B/enc_keys\" id=SAE_A status=200 "
                               "ms=1.250 keys=a,b");
        CU_ASSERT_STRING_EQUAL(l.line[1] + 28,
                               "level=info prog=kmed event=request method=GET path=/x status=400 "
                               "ms=0.000 detail=\"bad \\\"n\\\"\"");
    }
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
}

/* A request line stays inside its bound however long a bare value is (the end of it is cut,
 * the line still ends in a newline), and an empty value is quoted. */
static void test_request_line_bound(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "kmed"), 0);
    static char ids[20000];
    memset(ids, 'k', sizeof ids - 1);
    ids[sizeof ids - 1] = '\0';
    qk_request_log r = {.method = "GET", .path = "", .status = 200, .key_ids = ids};
    qk_log_request(&r);
    r.key_ids = "a";
    qk_log_request(&r);
    lines l;
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 2);
    if (l.n == 2) {
        CU_ASSERT_EQUAL(strlen(l.line[0]), 12288 - 1); /* LOG_LINE_MAX, less the newline */
        CU_ASSERT_PTR_NOT_NULL(strstr(l.line[0], " path=\"\" status=200 ms=0.000 keys=kkkk"));
        CU_ASSERT_EQUAL(l.line[0][12288 - 2], 'k');
        CU_ASSERT_STRING_EQUAL(l.line[1] + 28, "level=info prog=kmed event=request method=GET "
                                               "path=\"\" status=200 ms=0.000 keys=a");
    }
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
}

static void test_reopen_after_rename(void)
{
    char rotated[160];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "p"), 0);
    QK_INFO("before");
    CU_ASSERT_EQUAL_FATAL(rename(path, rotated), 0);
    QK_INFO("still old file");
    CU_ASSERT_EQUAL(qk_log_reopen(), 0);
    QK_INFO("after");
    lines l;
    CU_ASSERT_EQUAL_FATAL(read_lines(rotated, &l), 0);
    CU_ASSERT_EQUAL(l.n, 2);
    if (l.n == 2)
        CU_ASSERT_PTR_NOT_NULL(strstr(l.line[1], "msg=\"still old file\""));
    free_lines(&l);
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 1);
    if (l.n == 1)
        CU_ASSERT_PTR_NOT_NULL(strstr(l.line[0], "msg=\"after\""));
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(unlink(rotated), 0);
    /* opening a path in a missing directory fails */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir.log", dir);
    CU_ASSERT_EQUAL(qk_log_open(bad, QK_LOG_INFO, "p"), -1);
}

#define N_THREADS    4
#define N_PER_THREAD 200

static void *writer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < N_PER_THREAD; i++)
        QK_INFO("thread %ld line %d with some padding to make the line longer", id, i);
    return NULL;
}

static void test_threads(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "p"), 0);
    pthread_t t[N_THREADS];
    int started = 0;
    for (long i = 0; i < N_THREADS; i++)
        if (pthread_create(&t[i], NULL, writer, (void *)i) == 0)
            started++;
    CU_ASSERT_EQUAL(started, N_THREADS);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    lines l;
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, started * N_PER_THREAD);
    int good = 0;
    for (int i = 0; i < l.n; i++) {
        long id;
        int n;
        const char *m = strstr(l.line[i], "msg=\"thread ");
        if (ts_ok(l.line[i]) && m && sscanf(m, "msg=\"thread %ld line %d", &id, &n) == 2 &&
            strstr(m, "longer\"") && strstr(m, "longer\"")[7] == '\0')
            good++;
    }
    CU_ASSERT_EQUAL(good, l.n);
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
}

static void *direct_line(void *arg)
{
    qk_log(QK_LOG_INFO, "%s", (const char *)arg);
    return NULL;
}

/* A held line stays in the stream until the holder flushes (or a thread that does not hold
 * writes: its flush carries the held line out first, so the order holds); holding off flushes. */
static void test_hold_and_flush(void)
{
    CU_ASSERT_EQUAL_FATAL(qk_log_open(path, QK_LOG_INFO, "p"), 0);
    lines l;
    qk_log_hold(true);
    qk_log(QK_LOG_INFO, "held one");
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 0); /* not written yet */
    free_lines(&l);
    qk_log_flush();
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 1);
    free_lines(&l);
    qk_log(QK_LOG_INFO, "held two");
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, direct_line, "direct") == 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 3);
    if (l.n == 3) {
        CU_ASSERT_PTR_NOT_NULL(strstr(l.line[1], "msg=\"held two\""));
        CU_ASSERT_PTR_NOT_NULL(strstr(l.line[2], "msg=\"direct\""));
    }
    free_lines(&l);
    qk_log(QK_LOG_INFO, "held three");
    qk_log_hold(false); /* flushes */
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 4);
    free_lines(&l);
    qk_log(QK_LOG_INFO, "direct again"); /* not holding: written at once */
    CU_ASSERT_EQUAL_FATAL(read_lines(path, &l), 0);
    CU_ASSERT_EQUAL(l.n, 5);
    free_lines(&l);
    qk_log_close();
    CU_ASSERT_EQUAL(unlink(path), 0);
}

int suite_log(void)
{
    CU_pSuite s = CU_add_suite("log", setup, teardown);
    if (!s)
        return -1;
    if (!CU_add_test(s, "lines and levels", test_basic_lines_and_levels) ||
        !CU_add_test(s, "level parse", test_level_parse) ||
        !CU_add_test(s, "escaping", test_escaping) ||
        !CU_add_test(s, "request line", test_request_line) ||
        !CU_add_test(s, "request line bound", test_request_line_bound) ||
        !CU_add_test(s, "reopen after rename", test_reopen_after_rename) ||
        !CU_add_test(s, "threads", test_threads) ||
        !CU_add_test(s, "hold and flush", test_hold_and_flush))
        return -1;
    return 0;
}
