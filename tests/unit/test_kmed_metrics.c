/* test_kmed_metrics.c - the daemon's request counters, latency histogram and peer error
 * counter in Prometheus text; the admin /metrics of a KME with a link (pools, keys, link
 * telemetry fresh and stale) and the simulator's /metrics, each also checked against the
 * naming rules promtool applies (HELP and TYPE before the samples, _total exactly on counters,
 * base units). */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "http_util.h"
#include "kms_fixture.h"
#include "metrics.h"
#include "sim_control.h"

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
    qk_metrics_peer_failure(m, QK_PEER_FAIL_STORAGE);
    qk_metrics_peer_failure(m, QK_PEER_FAIL_STORAGE);
    qk_metrics_peer_failure(m, QK_PEER_FAIL_LIMIT);
    qk_metrics_peer_failure(m, QK_PEER_FAIL_COUNT); /* out of range: not counted */
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
    /* peer failures by the peer's reason (issue 17), every reason present */
    CU_ASSERT(has_line(t, "qkd_peer_failures_total{reason=\"unreachable\"} 0"));
    CU_ASSERT(has_line(t, "qkd_peer_failures_total{reason=\"storage\"} 2"));
    CU_ASSERT(has_line(t, "qkd_peer_failures_total{reason=\"limit\"} 1"));
    CU_ASSERT(has_line(t, "qkd_peer_failures_total{reason=\"mismatch\"} 0"));
    CU_ASSERT(has_line(t, "qkd_peer_failures_total{reason=\"refused\"} 0"));
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

static void test_name_copied(void)
{
    /* A listener that stops frees its name while the others still count requests (qkd-kmed's
     * shutdown): the counters keep their own copy. Under ASan a borrowed name is a
     * use-after-free here; without ASan the scribbled name shows in the rendering. */
    qk_metrics *m = qk_metrics_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char *name = strdup("device");
    CU_ASSERT_PTR_NOT_NULL_FATAL(name);
    qk_metrics_request(m, name, 201, 1.0);
    memset(name, 'x', strlen(name));
    free(name);
    qk_metrics_request(m, "etsi014", 200, 1.0);
    qk_metrics_request(m, "device", 201, 1.0);
    char *t = render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_count{listener=\"device\"} 2"));
    CU_ASSERT(has_line(t, "qkd_request_duration_seconds_count{listener=\"etsi014\"} 1"));
    free(t);
    qk_metrics_free(m);
}

/* The rules of `promtool check metrics` (Prometheus client_golang promlint) that our families
 * can break: every sample belongs to a family declared by HELP then TYPE; counters and only
 * counters end in _total; histogram samples end in _bucket/_sum/_count; no non-base unit
 * (bits, milliseconds, ...) in a name. Returns the number of violations (printed when show). */
static int lint(const char *text, bool show)
{
    static const char *const bad_units[] = {"_bits",  "_milliseconds", "_microseconds", "_minutes",
                                            "_hours", "_kilobytes",    "_ms_",          "_km_"};
    char fam[128] = "", type[16] = "", help_for[128] = "";
    int bad = 0;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[512];
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        if (sscanf(line, "# HELP %127s", help_for) == 1)
            continue;
        if (sscanf(line, "# TYPE %127s %15s", fam, type) == 2) {
            if (strcmp(fam, help_for) != 0) {
                if (show)
                    printf("\n  lint: TYPE %s without HELP", fam);
                bad++;
            }
            size_t fl = strlen(fam);
            bool total = fl > 6 && strcmp(fam + fl - 6, "_total") == 0;
            if (total != (strcmp(type, "counter") == 0)) {
                if (show)
                    printf("\n  lint: %s is a %s", fam, type);
                bad++;
            }
            char padded[140];
            snprintf(padded, sizeof padded, "%s_", fam);
            for (size_t i = 0; i < sizeof bad_units / sizeof bad_units[0]; i++)
                if (strstr(padded, bad_units[i])) {
                    if (show)
                        printf("\n  lint: %s has a non-base unit", fam);
                    bad++;
                }
            continue;
        }
        if (!line[0] || line[0] == '#')
            continue;
        size_t n = strcspn(line, "{ ");
        size_t fl = strlen(fam);
        bool ok = fam[0] && n >= fl && strncmp(line, fam, fl) == 0 &&
                  (n == fl ||
                   (strcmp(type, "histogram") == 0 && (!strncmp(line + fl, "_bucket", n - fl) ||
                                                       !strncmp(line + fl, "_sum", n - fl) ||
                                                       !strncmp(line + fl, "_count", n - fl))));
        if (!ok) {
            if (show)
                printf("\n  lint: sample outside its family: %s", line);
            bad++;
        }
    }
    return bad;
}

/* Relay counters (docs/adr/0004-key-relay.md): every result present, bytes per link, one count
 * per path up to QK_METRICS_ROUTES_MAX distinct paths and the rest as "other". */
static void test_relay(void)
{
    qk_metrics *m = qk_metrics_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    qk_metrics_relay_request(m, QK_RELAY_RES_COMMITTED);
    qk_metrics_relay_request(m, QK_RELAY_RES_COMMITTED);
    qk_metrics_relay_request(m, QK_RELAY_RES_NO_ROUTE);
    qk_metrics_relay_request(m, QK_RELAY_RES_COUNT); /* out of range: not counted */
    qk_metrics_relay_bytes(m, "AB", 64);
    qk_metrics_relay_bytes(m, "AB", 96);
    qk_metrics_relay_bytes(m, "BC", 64);
    for (int i = 0; i < QK_METRICS_ROUTES_MAX + 5; i++) {
        char path[32];
        snprintf(path, sizeof path, "KME_A>KME_%d", i);
        qk_metrics_relay_route(m, path);
    }
    qk_metrics_relay_route(m, "KME_A>KME_0");
    char *t = render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(has_line(t, "qkd_relay_requests_total{result=\"committed\"} 2"));
    CU_ASSERT(has_line(t, "qkd_relay_requests_total{result=\"no_route\"} 1"));
    CU_ASSERT(has_line(t, "qkd_relay_requests_total{result=\"refused\"} 0"));
    CU_ASSERT(has_line(t, "qkd_relay_requests_total{result=\"unreachable\"} 0"));
    CU_ASSERT(has_line(t, "qkd_relay_requests_total{result=\"expired\"} 0"));
    CU_ASSERT(has_line(t, "qkd_relay_requests_total{result=\"error\"} 0"));
    CU_ASSERT(has_line(t, "qkd_relay_bytes_total{link=\"AB\"} 160"));
    CU_ASSERT(has_line(t, "qkd_relay_bytes_total{link=\"BC\"} 64"));
    CU_ASSERT(has_line(t, "qkd_relay_route_total{path=\"KME_A>KME_0\"} 2"));
    CU_ASSERT(has_line(t, "qkd_relay_route_total{path=\"other\"} 5"));
    size_t paths = 0;
    for (const char *p = t; (p = strstr(p, "qkd_relay_route_total{")) != NULL; p++)
        paths++;
    CU_ASSERT_EQUAL(paths, QK_METRICS_ROUTES_MAX + 1);
    CU_ASSERT_EQUAL(lint(t, true), 0);
    free(t);
    qk_metrics_free(m);
}

static void test_link_view(void)
{
    qk_link_telemetry t;
    memset(&t, 0, sizeof t);
    qk_admin_link_view v;
    qk_admin_link_view_of(&t, 1000, QK_CFG_DEFAULT_TELEMETRY_STALE_S, &v); /* never reported */
    CU_ASSERT(!v.reported && v.stale && !v.up);
    strcpy(t.state, "up");
    t.qber = 0.03;
    t.rate_bps = 2500;
    t.delivered_bits = 8 * 4096 + 7;
    t.updated_at = 1000 - QK_CFG_DEFAULT_TELEMETRY_STALE_S; /* at the bound: still fresh */
    qk_admin_link_view_of(&t, 1000, QK_CFG_DEFAULT_TELEMETRY_STALE_S, &v);
    CU_ASSERT(v.reported && !v.stale && v.up);
    CU_ASSERT_DOUBLE_EQUAL(v.rate_bps, 2500, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v.age_s, QK_CFG_DEFAULT_TELEMETRY_STALE_S, 1e-9);
    CU_ASSERT_EQUAL(v.delivered_bytes, 4096);
    qk_admin_link_view_of(&t, 1001, QK_CFG_DEFAULT_TELEMETRY_STALE_S,
                          &v); /* one second past it: stale, down, no rate */
    CU_ASSERT(v.stale && !v.up);
    CU_ASSERT_DOUBLE_EQUAL(v.rate_bps, 0, 1e-9);
    CU_ASSERT_EQUAL(v.delivered_bytes, 4096); /* a counter keeps its value */
    qk_admin_link_view_of(&t, 10, QK_CFG_DEFAULT_TELEMETRY_STALE_S,
                          &v); /* the clock went back: not stale */
    CU_ASSERT(!v.stale && v.up);
    CU_ASSERT_DOUBLE_EQUAL(v.age_s, 0, 1e-9);
    strcpy(t.state, "aborted");
    qk_admin_link_view_of(&t, 1000, QK_CFG_DEFAULT_TELEMETRY_STALE_S, &v);
    CU_ASSERT(!v.stale && !v.up);
    /* A link's own telemetry_stale: 10 s old is fresh under 30 s, stale under the default. */
    strcpy(t.state, "up");
    t.updated_at = 990;
    qk_admin_link_view_of(&t, 1000, 30, &v);
    CU_ASSERT(!v.stale && v.up);
    qk_admin_link_view_of(&t, 1000, QK_CFG_DEFAULT_TELEMETRY_STALE_S, &v);
    CU_ASSERT(v.stale && !v.up);
}

static void test_admin_metrics(void)
{
    kf_pair p;
    CU_ASSERT_FATAL(kf_pair_open(&p, NULL, NULL) == 0);
    qk_link *l = qk_kms_link_by_id(p.a.kms, KF_LINK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    uint8_t block[512];
    memset(block, 0x5a, sizeof block);
    kf_put_pending(qk_kms_store(p.a.kms), 1, block, sizeof block);
    qk_link_telemetry t;
    memset(&t, 0, sizeof t);
    strcpy(t.state, "up");
    t.qber = 0.025;
    t.rate_bps = 1234.5;
    t.delivered_bits = 80000;
    t.updated_at = qk_now_s();
    qk_link_set_telemetry(l, &t);
    size_t len = 0;
    char *m = qk_admin_render_metrics(p.a.kms, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(len, strlen(m));
    CU_ASSERT_EQUAL(lint(m, true), 0);
    CU_ASSERT(has_line(m, "qkd_blocks{link=\"" KF_LINK "\",state=\"pending\"} 1"));
    CU_ASSERT(has_line(m, "qkd_pool_bytes{link=\"local\"} 0"));
    CU_ASSERT(has_line(m, "qkd_keys{link=\"" KF_LINK "\",state=\"delivered\"} 0"));
    CU_ASSERT(has_line(m, "qkd_link_up{link=\"" KF_LINK "\"} 1"));
    CU_ASSERT(has_line(m, "qkd_link_telemetry_stale{link=\"" KF_LINK "\"} 0"));
    CU_ASSERT(has_line(m, "qkd_link_qber{link=\"" KF_LINK "\"} 0.025"));
    CU_ASSERT(has_line(m, "qkd_link_rate_bps{link=\"" KF_LINK "\"} 1234.5"));
    CU_ASSERT(has_line(m, "qkd_link_delivered_bytes_total{link=\"" KF_LINK "\"} 10000"));
    CU_ASSERT(has_line(m, "# TYPE qkd_requests_total counter")); /* the fixture has no counters */
    free(m);
    /* The device stopped reporting: down, stale, rate 0, no QBER; the counter stays. */
    t.updated_at = qk_now_s() - QK_CFG_DEFAULT_TELEMETRY_STALE_S - 2;
    qk_link_set_telemetry(l, &t);
    m = qk_admin_render_metrics(p.a.kms, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(lint(m, true), 0);
    CU_ASSERT(has_line(m, "qkd_link_up{link=\"" KF_LINK "\"} 0"));
    CU_ASSERT(has_line(m, "qkd_link_telemetry_stale{link=\"" KF_LINK "\"} 1"));
    CU_ASSERT(has_line(m, "qkd_link_rate_bps{link=\"" KF_LINK "\"} 0"));
    CU_ASSERT(has_line(m, "qkd_link_delivered_bytes_total{link=\"" KF_LINK "\"} 10000"));
    CU_ASSERT_PTR_NULL(strstr(m, "qkd_link_qber{"));
    free(m);
    /* The peer never reported: its link reads down and stale, with no age or rate. */
    m = qk_admin_render_metrics(p.b.kms, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(lint(m, true), 0);
    CU_ASSERT(has_line(m, "qkd_link_up{link=\"" KF_LINK "\"} 0"));
    CU_ASSERT(has_line(m, "qkd_link_telemetry_stale{link=\"" KF_LINK "\"} 1"));
    CU_ASSERT_PTR_NULL(strstr(m, "qkd_link_telemetry_age_seconds{"));
    free(m);
    kf_pair_close(&p);
}

static void test_sim_metrics(void)
{
    qk_link_status st[2];
    memset(st, 0, sizeof st);
    strcpy(st[0].id, "A~B");
    st[0].state = "up";
    st[0].qber = 0.033;
    st[0].rate_bps = 28497.6;
    st[0].distance_km = 25;
    st[0].blocks = 10;
    st[0].dropped_blocks = 1;
    st[0].corrupted_blocks = 2;
    st[0].delivered_bits = 7 * 4096 * 8;
    st[0].ends[1].unreachable = 3;
    st[0].faults.drop = QK_END_NONE;
    st[0].faults.corrupt = QK_END_B;
    st[0].faults.delay_ms = 250;
    strcpy(st[1].id, "B~C");
    st[1].state = "aborted";
    st[1].faults.drop = QK_END_A;
    st[1].faults.corrupt = QK_END_NONE;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(qk_sim_metrics_write(st, 2, f), 0);
    CU_ASSERT_EQUAL(fclose(f), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_EQUAL(lint(buf, true), 0);
    CU_ASSERT(has_line(buf, "qkd_sim_link_up{link=\"A~B\"} 1"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_up{link=\"B~C\"} 0"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_state{link=\"B~C\",state=\"aborted\"} 1"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_state{link=\"B~C\",state=\"up\"} 0"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_distance_meters{link=\"A~B\"} 25000"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_blocks_total{link=\"A~B\",result=\"delivered\"} 7"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_blocks_total{link=\"A~B\",result=\"corrupted\"} 2"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_delivered_bytes_total{link=\"A~B\"} 28672"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_deliveries_total{link=\"A~B\",end=\"b\","
                            "result=\"unreachable\"} 3"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_fault_corrupt{link=\"A~B\",end=\"b\"} 1"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_fault_corrupt{link=\"A~B\",end=\"a\"} 0"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_fault_drop{link=\"B~C\",end=\"a\"} 1"));
    CU_ASSERT(has_line(buf, "qkd_sim_link_fault_delay_seconds{link=\"A~B\"} 0.25"));
    free(buf);
}

static void test_lint_catches(void)
{
    /* The checker itself: each rule it enforces, broken once. */
    CU_ASSERT_EQUAL(lint("# HELP a_total x\n# TYPE a_total gauge\na_total 1\n", false), 1);
    CU_ASSERT_EQUAL(lint("# HELP a x\n# TYPE a counter\na 1\n", false), 1);
    CU_ASSERT_EQUAL(lint("# HELP a_bits x\n# TYPE a_bits gauge\na_bits 1\n", false), 1);
    CU_ASSERT_EQUAL(lint("# TYPE a gauge\na 1\n", false), 1);
    CU_ASSERT_EQUAL(lint("# HELP a x\n# TYPE a gauge\nb 1\n", false), 1);
    CU_ASSERT_EQUAL(lint("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
                         "h_count 1\n",
                         false),
                    0);
}

int suite_kmed_metrics(void)
{
    CU_pSuite s = CU_add_suite("kmed_metrics", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "counters and cumulative histogram", test_counts) ||
        !CU_add_test(s, "bounded status table", test_bounded) ||
        !CU_add_test(s, "relay counters, bounded paths", test_relay) ||
        !CU_add_test(s, "a stopped listener's name is not borrowed", test_name_copied) ||
        !CU_add_test(s, "link telemetry: fresh, stale, never", test_link_view) ||
        !CU_add_test(s, "admin /metrics of a linked KME", test_admin_metrics) ||
        !CU_add_test(s, "simulator /metrics", test_sim_metrics) ||
        !CU_add_test(s, "the naming checker", test_lint_catches))
        return -1;
    return 0;
}
