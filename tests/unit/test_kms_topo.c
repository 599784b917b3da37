/* test_kms_topo.c - this KME's view of the network (kms/kms_topo.h, kms/kms_topo_int.h;
 * docs/adr/0004-key-relay.md "How topology is learned"): the static view from [link] and
 * [topology], neighbours' reports (the newest seq wins), ageing after 3 intervals, hold-down
 * (ended by its time or by a newer report), routing around a down link, the reports answered to
 * neighbours, the JSON of GET /routes, and on a linked pair of real KMEs the refresh thread:
 * the link comes up with the key of the pool, and goes down once the peer stops answering. */
#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kms_fixture.h"
#include "kms_int.h"
#include "kms_topo.h"
#include "kms_topo_int.h"

#define IV 1000u /* [topology] interval of the state tests (ms) */
#define HD 2000u /* hold_down (less than 3 intervals: the reports stay fresh) */

/* A configuration of node KME_A with links to peers[] and [topology] links "X Y" pairs. */
static qk_kmed_config *cfg_of(const char *const *peers, const char *const *topo)
{
    qk_kmed_config *c = calloc(1, sizeof *c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    snprintf(c->node_id, sizeof c->node_id, "KME_A");
    for (size_t i = 0; peers && peers[i]; i++)
        snprintf(c->links[c->nlinks++].peer, sizeof c->links[0].peer, "%s", peers[i]);
    for (size_t i = 0; topo && topo[i]; i += 2) {
        snprintf(c->topology.links[c->topology.nlinks].a, QK_CFG_ID_MAX + 1, "%s", topo[i]);
        snprintf(c->topology.links[c->topology.nlinks].b, QK_CFG_ID_MAX + 1, "%s", topo[i + 1]);
        c->topology.nlinks++;
    }
    c->topology.interval_ms = IV;
    c->topology.hold_down_ms = HD;
    c->relay.max_hops = 8;
    return c;
}

/* A report of node with links "PEER:up:available" ... (NULL-terminated). */
static void report(qk_topo_report *r, const char *node, uint64_t seq, const char *const *links)
{
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "%s", node);
    r->seq = seq;
    for (size_t i = 0; links && links[i]; i++) {
        qk_topo_report_link *l = &r->links[r->nlinks++];
        char peer[64];
        int up = 0;
        unsigned long long avail = 0;
        CU_ASSERT_FATAL(sscanf(links[i], "%63[^:]:%d:%llu", peer, &up, &avail) == 3);
        snprintf(l->peer, sizeof l->peer, "%s", peer);
        l->up = up != 0;
        l->available = avail;
        l->rate = avail / 10;
    }
}

/* The answer of a neighbour holding reports r[n]. */
static qk_topo_msg *msg_of(const qk_topo_report *r, size_t n)
{
    qk_topo_msg *m = calloc(1, sizeof *m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (size_t i = 0; i < n; i++)
        m->reports[m->n++] = r[i];
    return m;
}

/* The state's own report: every link with `avail` bytes. */
static void own_of(qk_topo_state *s, size_t nlinks, uint64_t avail, uint64_t now,
                   qk_topo_report *out)
{
    qk_topo_own_link own[8];
    memset(own, 0, sizeof own);
    for (size_t i = 0; i < nlinks && i < 8; i++)
        own[i].available = avail;
    qk_topo_state_own(s, own, now, 1000000 + now, out);
}

/* The link a-b of t: "up/available" ("none" when t has no such link). */
static const char *link_str(const qk_topology *t, const char *a, const char *b, char *buf,
                            size_t cap)
{
    snprintf(buf, cap, "none");
    for (size_t i = 0; i < t->nlinks; i++) {
        const char *x = t->nodes[t->links[i].a], *y = t->nodes[t->links[i].b];
        if ((strcmp(x, a) == 0 && strcmp(y, b) == 0) || (strcmp(x, b) == 0 && strcmp(y, a) == 0))
            snprintf(buf, cap, "%s/%llu", t->links[i].up ? "up" : "down",
                     (unsigned long long)t->links[i].available);
    }
    return buf;
}

/* The route from KME_A to dst in s's view at now ("A>B>C"; "" when none). */
static const char *route_str(qk_topo_state *s, size_t nlinks, uint64_t avail, uint64_t now,
                             const char *dst, uint64_t need, char *buf, size_t cap)
{
    static qk_topology t;
    qk_topo_report own;
    qk_err err;
    qk_route r;
    buf[0] = '\0';
    own_of(s, nlinks, avail, now, &own);
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_view(s, &own, now, &t, NULL, &err), 0);
    if (qk_route_find(&t, "KME_A", dst, need, 8, &r, &err) != 0)
        return buf;
    size_t used = 0;
    for (size_t i = 0; i < r.nnodes && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ">" : "",
                                 t.nodes[r.nodes[i]] + 4); /* drop "KME_" */
    return buf;
}

static qk_topology *view_at(qk_topo_state *s, size_t nlinks, uint64_t avail, uint64_t now,
                            qk_topo_link_info *info)
{
    static qk_topology t;
    qk_topo_report own;
    qk_err err;
    own_of(s, nlinks, avail, now, &own);
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_view(s, &own, now, &t, info, &err), 0);
    return &t;
}

/* ---- the static view ---------------------------------------------------------------------- */

static void test_static_view(void)
{
    static const char *const peers[] = {"KME_B", "KME_C", NULL};
    static const char *const topo[] = {"KME_B", "KME_D", "KME_C", "KME_D", NULL};
    qk_kmed_config *c = cfg_of(peers, topo);
    qk_topo_state *s;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_new(c, 1, &s, &err), 0);
    char b1[64];
    /* before any answer: this KME's links are down, [topology] links up with no key */
    qk_topology *t = view_at(s, 2, 4096, 10, NULL);
    CU_ASSERT_EQUAL(t->nnodes, 4);
    CU_ASSERT_EQUAL(t->nlinks, 4);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_A", "KME_B", b1, sizeof b1), "down/4096");
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "up/0");
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_D", "KME_C", b1, sizeof b1), "up/0");
    /* B answers (no reports of others): A-B up with this KME's measure */
    qk_topo_report rb;
    static const char *const lb[] = {"KME_A:1:9000", NULL};
    report(&rb, "KME_B", 1, lb);
    qk_topo_msg *m = msg_of(&rb, 1);
    CU_ASSERT_TRUE(qk_topo_state_polled(s, 0, m, 20));
    CU_ASSERT_FALSE(qk_topo_state_polled(s, 1, NULL, 20)); /* C never answered: no change */
    t = view_at(s, 2, 4096, 30, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_A", "KME_B", b1, sizeof b1), "up/4096");
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_A", "KME_C", b1, sizeof b1), "down/4096");
    /* the route to D needs key on B-D: none before a report says so, any with need 0 */
    char r[64];
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 4096, 30, "KME_D", 64, r, sizeof r), "");
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 4096, 30, "KME_D", 0, r, sizeof r), "A>B>D");
    /* knows: itself, its peers, [topology] nodes; not others */
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "KME_A"));
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "KME_C"));
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "KME_D"));
    CU_ASSERT_FALSE(qk_topo_state_knows(s, "KME_E"));
    /* the own report: one link per [link], up as answered, seq increasing */
    qk_topo_report o1, o2;
    own_of(s, 2, 77, 40, &o1);
    own_of(s, 2, 77, 40, &o2); /* same wall clock: still newer */
    CU_ASSERT_STRING_EQUAL(o1.node, "KME_A");
    CU_ASSERT_EQUAL(o1.nlinks, 2);
    CU_ASSERT_TRUE(o1.links[0].up);
    CU_ASSERT_FALSE(o1.links[1].up);
    CU_ASSERT_EQUAL(o1.links[0].available, 77);
    CU_ASSERT_TRUE(o2.seq > o1.seq);
    /* a device saying down makes the link down in the own report */
    qk_topo_own_link own[2] = {{.available = 5, .device_down = true}, {.available = 5}};
    qk_topo_state_own(s, own, 40, 0, &o1);
    CU_ASSERT_FALSE(o1.links[0].up);
    free(m);
    qk_topo_state_free(s);
    free(c);
}

/* ---- reports: the newest per node wins ------------------------------------------------------ */

static void test_reports_newest_wins(void)
{
    static const char *const peers[] = {"KME_B", "KME_C", NULL};
    static const char *const topo[] = {"KME_B", "KME_D", "KME_C", "KME_D", NULL};
    qk_kmed_config *c = cfg_of(peers, topo);
    qk_topo_state *s;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_new(c, 1, &s, &err), 0);
    char b1[64], r[64];
    qk_topo_report rep[2];
    static const char *const lb[] = {"KME_A:1:9000", "KME_D:1:3000", NULL};
    static const char *const lc[] = {"KME_A:1:9000", "KME_D:1:2000", NULL};
    static const char *const ld5[] = {"KME_B:1:1000", "KME_C:1:500", NULL};
    static const char *const ld4[] = {"KME_B:0:1000", "KME_C:1:9999", NULL};
    static const char *const ld6[] = {"KME_B:1:100", "KME_C:1:800", NULL};
    /* B's answer holds B's report and D's, seq 5 */
    report(&rep[0], "KME_B", 10, lb);
    report(&rep[1], "KME_D", 5, ld5);
    qk_topo_msg *m = msg_of(rep, 2);
    qk_topo_state_polled(s, 0, m, 100);
    free(m);
    report(&rep[0], "KME_C", 10, lc);
    report(&rep[1], "KME_D", 4, ld4); /* older: ignored */
    m = msg_of(rep, 2);
    qk_topo_state_polled(s, 1, m, 110);
    free(m);
    qk_topology *t = view_at(s, 2, 50000, 120, NULL);
    /* both ends merged: the smaller key */
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "up/1000");
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_C", "KME_D", b1, sizeof b1), "up/500");
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, 120, "KME_D", 64, r, sizeof r), "A>B>D");
    /* seq 6 replaces it: now C-D is the fuller path */
    report(&rep[0], "KME_D", 6, ld6);
    m = msg_of(rep, 1);
    qk_topo_state_polled(s, 0, m, 130);
    free(m);
    t = view_at(s, 2, 50000, 140, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "up/100");
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_C", "KME_D", b1, sizeof b1), "up/800");
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, 140, "KME_D", 64, r, sizeof r), "A>C>D");
    /* a report of this node itself is not held; a node named only in reports is known */
    static const char *const lx[] = {"KME_E:1:10", NULL};
    report(&rep[0], "KME_A", 99, lx);
    report(&rep[1], "KME_F", 1, lx);
    m = msg_of(rep, 2);
    qk_topo_state_polled(s, 0, m, 150);
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "KME_F"));
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "KME_E")); /* F's peer */
    qk_topo_report own;
    own_of(s, 2, 1, 150, &own);
    qk_topo_state_reports(s, &own, 150, m);
    CU_ASSERT_EQUAL(m->n, 5); /* own, B, C, D, F: not the KME_A report B sent */
    CU_ASSERT_STRING_EQUAL(m->reports[0].node, "KME_A");
    CU_ASSERT_EQUAL(m->reports[0].seq, own.seq);
    for (size_t i = 1; i < m->n; i++)
        CU_ASSERT_STRING_NOT_EQUAL(m->reports[i].node, "KME_A");
    CU_ASSERT_EQUAL(qk_topo_msg_check(m, &err), 0);
    free(m);
    qk_topo_state_free(s);
    free(c);
}

/* ---- ageing -----------------------------------------------------------------------------------
 */

static void test_ageing(void)
{
    static const char *const peers[] = {"KME_B", NULL};
    static const char *const topo[] = {"KME_B", "KME_D", NULL};
    qk_kmed_config *c = cfg_of(peers, topo);
    qk_topo_state *s;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_new(c, 1, &s, &err), 0);
    char b1[64];
    qk_topo_report rep[2];
    static const char *const lb[] = {"KME_A:1:9000", "KME_D:1:3000", NULL};
    static const char *const ld[] = {"KME_B:1:3000", NULL};
    report(&rep[0], "KME_B", 1, lb);
    report(&rep[1], "KME_D", 1, ld);
    qk_topo_msg *m = msg_of(rep, 2);
    uint64_t t0 = 1000;
    qk_topo_state_polled(s, 0, m, t0);
    /* B stops answering at once; D's report is not refreshed */
    CU_ASSERT_TRUE(qk_topo_state_polled(s, 0, NULL, t0 + IV));
    qk_topology *t = view_at(s, 1, 4096, t0 + 3 * IV, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "up/3000");
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_A", "KME_B", b1, sizeof b1), "down/4096");
    /* 3 intervals old: still counts; one ms more: its links are down, and it is not passed on */
    t = view_at(s, 1, 4096, t0 + 3 * IV + 1, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "down/3000");
    qk_topo_report own;
    own_of(s, 1, 1, t0 + 3 * IV + 1, &own);
    qk_topo_state_reports(s, &own, t0 + 3 * IV + 1, m);
    CU_ASSERT_EQUAL(m->n, 1);
    /* an answered neighbour ages too: its link reads down 3 intervals after its last answer */
    report(&rep[0], "KME_B", 2, lb);
    report(&rep[1], "KME_D", 2, ld);
    qk_topo_msg *m2 = msg_of(rep, 2);
    qk_topo_state_polled(s, 0, m2, t0 + 10 * IV);
    own_of(s, 1, 1, t0 + 10 * IV, &own);
    CU_ASSERT_TRUE(own.links[0].up);
    own_of(s, 1, 1, t0 + 13 * IV + 1, &own);
    CU_ASSERT_FALSE(own.links[0].up);
    t = view_at(s, 1, 4096, t0 + 10 * IV + 5, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "up/3000");
    /* a round of polls longer than an interval (a hung neighbour): reports age after 3 rounds */
    qk_topo_state_round(s, 2 * IV);
    t = view_at(s, 1, 4096, t0 + 10 * IV + 3 * IV + 1, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "up/3000");
    own_of(s, 1, 1, t0 + 13 * IV + 1, &own);
    CU_ASSERT_TRUE(own.links[0].up);
    t = view_at(s, 1, 4096, t0 + 10 * IV + 6 * IV + 1, NULL);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_D", b1, sizeof b1), "down/3000");
    free(m2);
    free(m);
    qk_topo_state_free(s);
    free(c);
}

/* ---- hold-down and routing around a down link -------------------------------------------------
 */

/* A ring A-B-C-D-A seen from A, every link up with key. */
static qk_topo_state *ring(qk_kmed_config **c, uint64_t now)
{
    static const char *const peers[] = {"KME_B", "KME_D", NULL};
    static const char *const topo[] = {"KME_B", "KME_C", "KME_C", "KME_D", NULL};
    *c = cfg_of(peers, topo);
    qk_topo_state *s;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_new(*c, now, &s, &err), 0);
    static const char *const lb[] = {"KME_A:1:9000", "KME_C:1:8000", NULL};
    static const char *const ld[] = {"KME_A:1:9000", "KME_C:1:7000", NULL};
    qk_topo_report rep;
    report(&rep, "KME_B", 1, lb);
    qk_topo_msg *m = msg_of(&rep, 1);
    qk_topo_state_polled(s, 0, m, now);
    report(&m->reports[0], "KME_D", 1, ld);
    qk_topo_state_polled(s, 1, m, now);
    free(m);
    return s;
}

static void test_hold_down(void)
{
    qk_kmed_config *c;
    uint64_t t0 = 500;
    qk_topo_state *s = ring(&c, t0);
    char r[64], b1[64];
    qk_topo_link_info info[QK_ROUTE_LINKS_MAX];
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0, "KME_C", 64, r, sizeof r), "A>B>C");
    /* a relay failed on B-C: held down, the route goes the other way round */
    qk_topo_state_hold_down(s, "KME_C", "KME_B", t0 + 10);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 20, "KME_C", 64, r, sizeof r), "A>D>C");
    qk_topology *t = view_at(s, 2, 50000, t0 + 20, info);
    CU_ASSERT_STRING_EQUAL(link_str(t, "KME_B", "KME_C", b1, sizeof b1), "down/8000");
    size_t held = 0;
    for (size_t i = 0; i < t->nlinks; i++)
        held += info[i].held_down;
    CU_ASSERT_EQUAL(held, 1);
    /* the end of hold_down brings it back */
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 10 + HD - 1, "KME_C", 64, r, sizeof r),
                           "A>D>C");
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 10 + HD, "KME_C", 64, r, sizeof r), "A>B>C");
    /* so does the next report of one of its ends; an older seq is no report */
    qk_topo_state_hold_down(s, "KME_B", "KME_C", t0 + 2500);
    static const char *const lb[] = {"KME_A:1:9000", "KME_C:1:8000", NULL};
    qk_topo_report rep;
    report(&rep, "KME_B", 1, lb);
    qk_topo_msg *m = msg_of(&rep, 1);
    qk_topo_state_polled(s, 0, m, t0 + 2600);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 2600, "KME_C", 64, r, sizeof r), "A>D>C");
    m->reports[0].seq = 2;
    qk_topo_state_polled(s, 0, m, t0 + 2700);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 2700, "KME_C", 64, r, sizeof r), "A>B>C");
    /* a hold-down on this KME's own link: B is reached through D and C */
    qk_topo_state_hold_down(s, "KME_A", "KME_B", t0 + 2800);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 2801, "KME_B", 64, r, sizeof r), "A>D>C>B");
    free(m);
    qk_topo_state_free(s);
    free(c);
}

static void test_route_around_down_link(void)
{
    qk_kmed_config *c;
    uint64_t t0 = 500;
    qk_topo_state *s = ring(&c, t0);
    char r[64];
    /* C reports C-B down (B still says up): the merged link is down */
    static const char *const lc[] = {"KME_B:0:8000", "KME_D:1:7000", NULL};
    qk_topo_report rep;
    report(&rep, "KME_C", 1, lc);
    qk_topo_msg *m = msg_of(&rep, 1);
    qk_topo_state_polled(s, 1, m, t0 + 10);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 10, "KME_C", 64, r, sizeof r), "A>D>C");
    /* and with too little key on D-C for the relay, no route at all */
    static const char *const lc2[] = {"KME_B:0:8000", "KME_D:1:63", NULL};
    report(&m->reports[0], "KME_C", 2, lc2);
    qk_topo_state_polled(s, 1, m, t0 + 20);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 20, "KME_C", 64, r, sizeof r), "");
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 20, "KME_C", 63, r, sizeof r), "A>D>C");
    /* C-B back up */
    static const char *const lc3[] = {"KME_B:1:8000", "KME_D:1:63", NULL};
    report(&m->reports[0], "KME_C", 3, lc3);
    qk_topo_state_polled(s, 1, m, t0 + 30);
    CU_ASSERT_STRING_EQUAL(route_str(s, 2, 50000, t0 + 30, "KME_C", 64, r, sizeof r), "A>B>C");
    free(m);
    qk_topo_state_free(s);
    free(c);
}

/* ---- bounds: 63 other nodes held; past them a new node takes the place of an aged one -------- */

static void test_bounds(void)
{
    static const char *const peers[] = {"KME_B", NULL};
    qk_kmed_config *c = cfg_of(peers, NULL);
    qk_topo_state *s;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_state_new(c, 1, &s, &err), 0);
    qk_topo_msg *m = calloc(1, sizeof *m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    static const char *const lb[] = {"KME_A:1:10", NULL};
    report(&m->reports[m->n++], "KME_B", 1, lb);
    for (int i = 0; m->n < QK_ROUTE_NODES_MAX; i++) {
        char node[16];
        snprintf(node, sizeof node, "N%02d", i);
        static const char *const ln[] = {"KME_B:1:10", NULL};
        report(&m->reports[m->n++], node, 1, ln);
    }
    qk_topo_state_polled(s, 0, m, 1000); /* B and 63 others: one more than fits */
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "N61"));
    CU_ASSERT_FALSE(qk_topo_state_knows(s, "N62"));
    /* a newcomer while all are fresh: left out */
    static const char *const lx[] = {"KME_B:1:10", NULL};
    report(&m->reports[0], "NEW", 1, lx);
    m->n = 1;
    qk_topo_state_polled(s, 0, m, 2000);
    CU_ASSERT_FALSE(qk_topo_state_knows(s, "NEW"));
    /* once the others aged, it takes the place of the one that aged first */
    report(&m->reports[1], "KME_B", 2, lb);
    m->n = 2;
    qk_topo_state_polled(s, 0, m, 1000 + 3 * IV + 1);
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "NEW"));
    CU_ASSERT_TRUE(qk_topo_state_knows(s, "KME_B"));
    qk_topology *t = view_at(s, 1, 10, 1000 + 3 * IV + 1, NULL);
    CU_ASSERT_EQUAL(t->nnodes, QK_ROUTE_NODES_MAX);
    free(m);
    qk_topo_state_free(s);
    free(c);
}

/* ---- on a qk_kms: GET /routes JSON, and the refresh thread on a real pair ----------------------
 */

static const cJSON *member(const cJSON *o, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    CU_ASSERT_PTR_NOT_NULL(m);
    return m;
}

/* The JSON of k, parsed (CUnit fatal on failure). */
static cJSON *routes_json(qk_kms *k)
{
    char *json = NULL;
    size_t len = 0;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_kms_topo_json(k, &json, &len, &err), 0);
    CU_ASSERT_EQUAL(strlen(json), len);
    cJSON *o = cJSON_ParseWithLength(json, len);
    free(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    return o;
}

/* The link a-b of the JSON (NULL when absent). */
static const cJSON *json_link(const cJSON *o, const char *a, const char *b)
{
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(o, "links"))
    {
        const char *x = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "a"));
        const char *y = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "b"));
        if (x && y &&
            ((strcmp(x, a) == 0 && strcmp(y, b) == 0) || (strcmp(x, b) == 0 && strcmp(y, a) == 0)))
            return l;
    }
    return NULL;
}

static void test_json_shape(void)
{
    kf_kme f;
    CU_ASSERT_FATAL(kf_open(&f, NULL) == 0);
    /* the view reads the configuration as it is: a [topology] of two other KMEs */
    snprintf(f.cfg->topology.links[0].a, QK_CFG_ID_MAX + 1, "KME_B");
    snprintf(f.cfg->topology.links[0].b, QK_CFG_ID_MAX + 1, "KME_C");
    f.cfg->topology.nlinks = 1;
    cJSON *o = routes_json(f.kms);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(member(o, "node")), KF_NODE);
    const cJSON *links = member(o, "links");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(links), 1);
    const cJSON *l = json_link(o, "KME_B", "KME_C");
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_TRUE(cJSON_IsTrue(member(l, "up")));
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(member(l, "available")), 0);
    CU_ASSERT_EQUAL(cJSON_GetNumberValue(member(l, "rate")), 0);
    CU_ASSERT_TRUE(cJSON_IsNull(member(l, "age_ms")));
    CU_ASSERT_TRUE(cJSON_IsFalse(member(l, "held_down")));
    const cJSON *routes = member(o, "routes");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(routes), 2); /* to B and to C, not to itself */
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        CU_ASSERT_PTR_NOT_NULL(cJSON_GetStringValue(member(r, "to")));
        CU_ASSERT_TRUE(cJSON_IsNull(member(r, "path")));
        const char *why = cJSON_GetStringValue(member(r, "reason"));
        CU_ASSERT_PTR_NOT_NULL(why);
        CU_ASSERT_PTR_NOT_NULL(why ? strstr(why, "no route from " KF_NODE) : NULL);
    }
    cJSON_Delete(o);
    /* route: this KME and unknown KMEs are refused; a known one without a path is not found */
    qk_kms_path p;
    qk_err err;
    CU_ASSERT_EQUAL(qk_kms_topo_route(f.kms, KF_NODE, 64, &p, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_kms_topo_route(f.kms, "KME_Z", 64, &p, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_kms_topo_route(f.kms, "KME_C", 64, &p, &err), QK_ENOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no route from KME_A to KME_C with 64 bytes"));
    CU_ASSERT_TRUE(qk_kms_topo_knows(f.kms, "KME_C"));
    CU_ASSERT_FALSE(qk_kms_topo_knows(f.kms, "KME_Z"));
    qk_kms_topo_stat st;
    CU_ASSERT_EQUAL(qk_kms_topo_stats(f.kms, &st, &err), 0);
    CU_ASSERT_EQUAL(st.nodes, 3);
    CU_ASSERT_EQUAL(st.links_up, 1);
    CU_ASSERT_EQUAL(st.links_down + st.links_held_down, 0);
    kf_close(&f);
}

/* Wait (at most 10 s) until a's JSON shows its link to b up (want) with key (want: > 0). */
static bool wait_link(kf_pair *p, bool want, double *avail, double *age)
{
    for (int i = 0; i < 200; i++) {
        cJSON *o = routes_json(p->a.kms);
        const cJSON *l = json_link(o, KF_NODE, KF_PEER);
        bool up = l && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "up"));
        *avail = l ? cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(l, "available")) : -1;
        *age = l ? cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(l, "age_ms")) : -1;
        cJSON_Delete(o);
        if (up == want)
            return true;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

enum { PAIR_BLOCK = QK_BLOCK_VKEY_LEN + 16384 };

static void test_pair_refresh(void)
{
    static kf_pair p;
    static uint8_t blk[PAIR_BLOCK];
    CU_ASSERT_FATAL(kf_pair_open(&p, NULL, NULL) == 0);
    randombytes_buf(blk, sizeof blk);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(p.a.kms), KF_LINK, 1, blk, sizeof blk) == 0);
    CU_ASSERT_FATAL(sf_put_confirmed(qk_kms_store(p.b.kms), KF_LINK, 1, blk, sizeof blk) == 0);
    sodium_memzero(blk, sizeof blk);
    /* b answers a's GET /peer/v1/topology with its report */
    qk_topo_msg *m = calloc(1, sizeof *m);
    qk_err err;
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(qk_peer_topology(qk_kms_link_at(p.a.kms, 0)->client, m, &err), 0);
    CU_ASSERT_EQUAL(m->n, 1);
    CU_ASSERT_STRING_EQUAL(m->reports[0].node, KF_PEER);
    CU_ASSERT_EQUAL(m->reports[0].nlinks, 1);
    CU_ASSERT_STRING_EQUAL(m->reports[0].links[0].peer, KF_NODE);
    CU_ASSERT_EQUAL(m->reports[0].links[0].available, 16384); /* nothing leased yet */
    CU_ASSERT_FALSE(m->reports[0].links[0].up); /* b's thread does not run: it never polled */
    free(m);
    /* the refresh threads (the fixture's configuration has [relay] off: turn it on); a link is
     * up when both ends say so, so b polls a too */
    kf_kme *ends[] = {&p.a, &p.b};
    /* both stopped before either starts: a refresh thread started first would poll the other
     * end while its topology state is freed and replaced under its peer listener (the daemon
     * stops its listeners before the topology) */
    for (size_t i = 0; i < 2; i++) {
        ends[i]->cfg->relay.enabled = true;
        ends[i]->cfg->topology.interval_ms = 100;
        qk_kms_topo_stop(ends[i]->kms);
    }
    for (size_t i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(qk_kms_topo_start(ends[i]->kms, &err), 0);
    double avail = 0, age = 0;
    CU_ASSERT_TRUE(wait_link(&p, true, &avail, &age));
    /* up with the relay room of the pool: b's report (16384) and a's own measure (16384) */
    CU_ASSERT_EQUAL(avail, 16384);
    CU_ASSERT_TRUE(age >= 0 && age < 1000);
    qk_kms_path path;
    CU_ASSERT_EQUAL(qk_kms_topo_route(p.a.kms, KF_PEER, 64, &path, &err), 0);
    CU_ASSERT_EQUAL(path.n, 2);
    CU_ASSERT_EQUAL(path.bottleneck, 16384);
    /* b stops answering: down within 3 intervals (and a few polls) */
    kf_pair_b_down(&p);
    CU_ASSERT_TRUE(wait_link(&p, false, &avail, &age));
    CU_ASSERT_EQUAL(qk_kms_topo_route(p.a.kms, KF_PEER, 64, &path, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(kf_pair_b_up(&p), 0);
    CU_ASSERT_TRUE(wait_link(&p, true, &avail, &age));
    kf_pair_close(&p);
}

int suite_kms_topo(void)
{
    CU_pSuite s = CU_add_suite("kms_topo", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "static view from [link] and [topology]", test_static_view) ||
        !CU_add_test(s, "reports: the newest seq wins", test_reports_newest_wins) ||
        !CU_add_test(s, "ageing after 3 intervals", test_ageing) ||
        !CU_add_test(s, "hold-down: its time or the next report", test_hold_down) ||
        !CU_add_test(s, "route around a down link", test_route_around_down_link) ||
        !CU_add_test(s, "bounds: 64 nodes, aged ones make room", test_bounds) ||
        !CU_add_test(s, "GET /routes JSON shape", test_json_shape) ||
        !CU_add_test(s, "refresh on a linked pair", test_pair_refresh))
        return -1;
    return 0;
}
