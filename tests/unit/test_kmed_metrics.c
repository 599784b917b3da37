/* test_kmed_metrics.c - the daemon's request counters, latency histogram and peer error
 * counter in Prometheus text. */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(qk_metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int rc = qk_metrics_write(m, f);
    if (fclose(f) != 0 || rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static void test_counts(void)
{
    qk_metrics *m = qk_metrics_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    qk_metrics_request(m, "peer", 200, 0.5);  /* 0.0005 s: first bucket */
    qk_metrics_request(m, "peer", 200, 30.0); /* 0.03 s */
    qk_metrics_request(m, "peer", 409, 3000); /* 3 s */
    qk_metrics_request(m, "device", 201, 1.0);
    qk_metrics_peer_error(m);
    qk_metrics_peer_error(m);
    CU_ASSERT_EQUAL(qk_metrics_peer_errors(m), 2);
    char *t = render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(has_line(t, "qkd_requests_total{listener=\"peer\",status=\"200\"} 2"));
    CU_ASSERT(has_line(t, "qkd_requests_total{listener=\"peer\",status=\"409\"} 1"));
    CU_ASSERT(has_line(t, "qkd_requests_total{listener=\"device\",status=\"201\"} 1"));
    /* Buckets are cumulative. */
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_bucket{listener=\"peer\",le=\"0.001\"} 1"));
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_bucket{listener=\"peer\",le=\"0.05\"} 2"));
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_bucket{listener=\"peer\",le=\"2.5\"} 2"));
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_bucket{listener=\"peer\",le=\"5\"} 3"));
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_bucket{listener=\"peer\",le=\"+Inf\"} 3"));
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_count{listener=\"peer\"} 3"));
    CU_ASSERT(has_line(t, "qkd_peer_errors_total 2"));
    CU_ASSERT(has_line(t, "# TYPE qkd_request_duration_seconds histogram"));
    free(t);
    qk_metrics_free(m);
}

static void test_bounded(void)
{
    /* More distinct statuses than slots: folded, never unbounded, counts never lost. */
    qk_metrics *m = qk_metrics_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (int s = 100; s < 200; s++)
        qk_metrics_request(m, "admin", s, 1.0);
    char *t = render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_count{listener=\"admin\"} 100"));
    unsigned long long sum = 0;
    for (const char *p = t; (p = strstr(p, "qkd_requests_total{listener=\"admin\"")) != NULL; p++) {
        const char *sp = strchr(p, ' ');
        if (sp)
            sum += strtoull(sp + 1, NULL, 10);
    }
    CU_ASSERT_EQUAL(sum, 100);
    free(t);
    qk_metrics_free(m);
}

int suite_kmed_metrics(void)
{
    CU_pSuite s = CU_add_suite("kmed_metrics", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "counters and cumulative histogram", test_counts) ||
        !CU_add_test(s, "bounded status table", test_bounded))
        return -1;
    return 0;
}
