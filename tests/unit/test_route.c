/* test_route.c - path choice (kms/route.h): a chain, a ring with a down link (routed around), a
 * star, a 7-node mesh, an unreachable destination, the bottleneck rule and its ties, links
 * short of the key a relay needs, max_hops, and the bounds of a topology. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "route.h"

#define BIG 1000000

/* The route as "A>B>C" (empty on failure). */
static int route_str(const qk_topology *t, const char *src, const char *dst, uint64_t need,
                     size_t max_hops, char *out, size_t cap, qk_route *r)
{
    qk_err err;
    qk_route local;
    if (!r)
        r = &local;
    out[0] = '\0';
    int rc = qk_route_find(t, src, dst, need, max_hops, r, &err);
    if (rc != 0)
        return rc;
    size_t used = 0;
    for (size_t i = 0; i < r->nnodes; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? ">" : "", t->nodes[r->nodes[i]]);
        if (w < 0 || (size_t)w >= cap - used)
            return -100;
        used += (size_t)w;
    }
    /* the links join the nodes as listed */
    for (size_t i = 0; i + 1 < r->nnodes; i++) {
        const qk_route_link *l = &t->links[r->links[i]];
        CU_ASSERT((l->a == r->nodes[i] && l->b == r->nodes[i + 1]) ||
                  (l->b == r->nodes[i] && l->a == r->nodes[i + 1]));
    }
    return 0;
}

static void link_(qk_topology *t, const char *a, const char *b, bool up, uint64_t avail)
{
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_link(t, a, b, up, avail, avail / 10, &err), 0);
}

static void test_chain(void)
{
    qk_topology t;
    qk_topo_init(&t);
    link_(&t, "KME_A", "KME_B", true, 5000);
    link_(&t, "KME_B", "KME_C", true, 3000);
    link_(&t, "KME_C", "KME_D", true, 4000);
    link_(&t, "KME_D", "KME_E", true, 9000);
    char s[256];
    qk_route r;
    CU_ASSERT_EQUAL(route_str(&t, "KME_A", "KME_E", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "KME_A>KME_B>KME_C>KME_D>KME_E");
    CU_ASSERT_EQUAL(r.bottleneck, 3000);
    CU_ASSERT_EQUAL(r.rate, 300);
    /* the other way round, and a neighbour */
    CU_ASSERT_EQUAL(route_str(&t, "KME_E", "KME_A", 64, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "KME_E>KME_D>KME_C>KME_B>KME_A");
    CU_ASSERT_EQUAL(route_str(&t, "KME_C", "KME_D", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "KME_C>KME_D");
    CU_ASSERT_EQUAL(r.bottleneck, 4000);
    /* four hops do not fit max_hops 3 */
    CU_ASSERT_EQUAL(route_str(&t, "KME_A", "KME_E", 64, 3, s, sizeof s, NULL), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(route_str(&t, "KME_A", "KME_E", 64, 4, s, sizeof s, NULL), 0);
    /* one link short of key for this relay (need above its 3000 bytes): no path */
    CU_ASSERT_EQUAL(route_str(&t, "KME_A", "KME_E", 3001, 15, s, sizeof s, NULL), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(route_str(&t, "KME_A", "KME_E", 3000, 15, s, sizeof s, NULL), 0);
}

static void test_ring_down_link(void)
{
    /* A-B-C-D-E-F-A; the short way from A to C is through B */
    qk_topology t;
    qk_topo_init(&t);
    const char *n[] = {"A", "B", "C", "D", "E", "F"};
    for (int i = 0; i < 6; i++)
        link_(&t, n[i], n[(i + 1) % 6], true, BIG);
    char s[64];
    CU_ASSERT_EQUAL(route_str(&t, "A", "C", 64, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>B>C");
    /* B-C goes down: around the other way */
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_update(&t, "C", "B", false, BIG, 0, &err), 0);
    CU_ASSERT_EQUAL(route_str(&t, "A", "C", 64, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>F>E>D>C");
    /* and a second link down cuts the ring: C unreachable from A */
    CU_ASSERT_EQUAL_FATAL(qk_topo_update(&t, "E", "D", false, BIG, 0, &err), 0);
    CU_ASSERT_EQUAL(route_str(&t, "A", "C", 64, 15, s, sizeof s, NULL), QK_ENOTFOUND);
    CU_ASSERT_STRING_EQUAL(s, "");
    /* back up: the short way again */
    CU_ASSERT_EQUAL_FATAL(qk_topo_update(&t, "B", "C", true, BIG, 0, &err), 0);
    CU_ASSERT_EQUAL(route_str(&t, "A", "C", 64, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>B>C");
    /* an update of a link that does not exist */
    CU_ASSERT_EQUAL(qk_topo_update(&t, "A", "C", true, 1, 1, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(qk_topo_update(&t, "A", "Z", true, 1, 1, &err), QK_ENOTFOUND);
}

static void test_star(void)
{
    qk_topology t;
    qk_topo_init(&t);
    const char *leaves[] = {"L1", "L2", "L3", "L4", "L5"};
    for (int i = 0; i < 5; i++)
        link_(&t, "HUB", leaves[i], true, 1000 * (uint64_t)(i + 1));
    char s[64];
    qk_route r;
    CU_ASSERT_EQUAL(route_str(&t, "L1", "L5", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "L1>HUB>L5");
    CU_ASSERT_EQUAL(r.bottleneck, 1000);
    CU_ASSERT_EQUAL(route_str(&t, "HUB", "L3", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "HUB>L3");
    /* a leaf whose link is down is unreachable from every other leaf */
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_update(&t, "HUB", "L2", false, 2000, 0, &err), 0);
    CU_ASSERT_EQUAL(route_str(&t, "L4", "L2", 64, 15, s, sizeof s, NULL), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(route_str(&t, "L4", "L3", 64, 15, s, sizeof s, NULL), 0);
}

/* A 7-node mesh:
 *     A --- B --- C
 *     |  \  |     |
 *     D --- E --- F
 *            \   /
 *              G
 * A-B 500, B-C 800, A-D 900, A-E 300, B-E 700, D-E 600, C-F 400, E-F 1000, E-G 200, F-G 900 */
static void mesh(qk_topology *t)
{
    qk_topo_init(t);
    link_(t, "A", "B", true, 500);
    link_(t, "B", "C", true, 800);
    link_(t, "A", "D", true, 900);
    link_(t, "A", "E", true, 300);
    link_(t, "B", "E", true, 700);
    link_(t, "D", "E", true, 600);
    link_(t, "C", "F", true, 400);
    link_(t, "E", "F", true, 1000);
    link_(t, "E", "G", true, 200);
    link_(t, "F", "G", true, 900);
}

static void test_mesh(void)
{
    qk_topology t;
    mesh(&t);
    char s[64];
    qk_route r;
    /* A to F: two hops via E only (A-E-F, bottleneck 300); three-hop paths are longer */
    CU_ASSERT_EQUAL(route_str(&t, "A", "F", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>E>F");
    CU_ASSERT_EQUAL(r.bottleneck, 300);
    /* A to G: two hops via E (bottleneck min(300, 200) = 200) */
    CU_ASSERT_EQUAL(route_str(&t, "A", "G", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>E>G");
    /* a relay needing 301 bytes: A-E is short, so three hops: A-B-E-F? A-D-E-F? both are
     * three hops; bottlenecks 500 (A-B) vs 600 (D-E): through D */
    CU_ASSERT_EQUAL(route_str(&t, "A", "F", 301, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>D>E>F");
    CU_ASSERT_EQUAL(r.bottleneck, 600);
    /* E-F down: A to F in three hops: A-B-C-F (min 400) or A-E-G-F (min 200): through B */
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_update(&t, "E", "F", false, 1000, 0, &err), 0);
    CU_ASSERT_EQUAL(route_str(&t, "A", "F", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>B>C>F");
    CU_ASSERT_EQUAL(r.bottleneck, 400);
    /* D to C: D-A-B-C (500) or D-E-B-C (600): through E */
    CU_ASSERT_EQUAL(route_str(&t, "D", "C", 64, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "D>E>B>C");
    CU_ASSERT_EQUAL(r.bottleneck, 600);
}

static void test_bottleneck_and_ties(void)
{
    /* two 2-hop paths S-X-T and S-Y-T: the one whose smallest link holds more key wins, even
     * when its other link holds less than the other path's best link */
    qk_topology t;
    qk_topo_init(&t);
    link_(&t, "S", "X", true, 10000);
    link_(&t, "X", "T", true, 100);
    link_(&t, "S", "Y", true, 200);
    link_(&t, "Y", "T", true, 200);
    char s[64];
    qk_route r;
    CU_ASSERT_EQUAL(route_str(&t, "S", "T", 1, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "S>Y>T");
    CU_ASSERT_EQUAL(r.bottleneck, 200);
    /* hop count comes first: a direct link with little key beats two full hops */
    link_(&t, "S", "T", true, 50);
    CU_ASSERT_EQUAL(route_str(&t, "S", "T", 1, 15, s, sizeof s, &r), 0);
    CU_ASSERT_STRING_EQUAL(s, "S>T");
    CU_ASSERT_EQUAL(r.bottleneck, 50);
    /* ... unless it is short of the relay's need */
    CU_ASSERT_EQUAL(route_str(&t, "S", "T", 51, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "S>Y>T");

    /* ties: equal hops and bottleneck: the smallest ID sequence, whatever the insertion order */
    const char *orders[2][2] = {{"M2", "M1"}, {"M1", "M2"}};
    for (int o = 0; o < 2; o++) {
        qk_topology u;
        qk_topo_init(&u);
        for (int i = 0; i < 2; i++) {
            link_(&u, "T", orders[o][i], true, 700);
            link_(&u, orders[o][i], "S", true, 700);
        }
        CU_ASSERT_EQUAL(route_str(&u, "S", "T", 1, 15, s, sizeof s, NULL), 0);
        CU_ASSERT_STRING_EQUAL(s, "S>M1>T");
    }
    /* a tie deeper in the path: S-A-{P,Q}-T, with S-B-... worse; smallest second node, then
     * smallest third */
    qk_topology w;
    qk_topo_init(&w);
    link_(&w, "S", "B", true, 800);
    link_(&w, "B", "P", true, 800);
    link_(&w, "S", "A", true, 800);
    link_(&w, "A", "Q", true, 800);
    link_(&w, "A", "P", true, 800);
    link_(&w, "Q", "T", true, 800);
    link_(&w, "P", "T", true, 800);
    CU_ASSERT_EQUAL(route_str(&w, "S", "T", 1, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "S>A>P>T");
    /* the lexicographic tie-break never trades away bottleneck: S-A-P drops to 100 */
    CU_ASSERT_EQUAL_FATAL(qk_topo_update(&w, "A", "P", true, 100, 0, NULL), 0);
    CU_ASSERT_EQUAL(route_str(&w, "S", "T", 1, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "S>A>Q>T");
}

/* The same network entered in other orders (links and their ends) gives the same routes. */
static void test_order_independent(void)
{
    static const struct {
        const char *a, *b;
        uint64_t avail;
    } l[] = {{"A", "B", 500},
             {"B", "C", 800},
             {"A", "D", 900},
             {"A", "E", 300},
             {"B", "E", 700},
             {"D", "E", 600},
             {"C", "F", 400},
             {"E", "F", 1000},
             {"E", "G", 200},
             {"F", "G", 900},
             /* D to G: a tie between H and I */
             {"D", "I", 500},
             {"I", "G", 500},
             {"D", "H", 500},
             {"H", "G", 500}};
    const size_t n = sizeof l / sizeof l[0];
    const char *pairs[][2] = {{"A", "F"}, {"G", "A"}, {"D", "C"}, {"C", "G"},
                              {"B", "D"}, {"D", "G"}, {"G", "D"}};
    char want[7][64], got[64];
    for (unsigned perm = 0; perm < 8; perm++) {
        qk_topology t;
        qk_topo_init(&t);
        for (size_t k = 0; k < n; k++) {
            /* perm 0: as listed; others: a rotation, reversed when odd, ends swapped when 4+ */
            size_t i = (perm & 1) ? n - 1 - (k + perm) % n : (k + perm) % n;
            if (perm & 4)
                link_(&t, l[i].b, l[i].a, true, l[i].avail);
            else
                link_(&t, l[i].a, l[i].b, true, l[i].avail);
        }
        for (size_t p = 0; p < 7; p++) {
            CU_ASSERT_EQUAL_FATAL(
                route_str(&t, pairs[p][0], pairs[p][1], 64, 15, perm ? got : want[p], 64, NULL), 0);
            if (perm)
                CU_ASSERT_STRING_EQUAL(got, want[p]);
        }
    }
    CU_ASSERT_STRING_EQUAL(want[0], "A>E>F");
    CU_ASSERT_STRING_EQUAL(want[3], "C>F>G");
    CU_ASSERT_STRING_EQUAL(want[5], "D>H>G");
    CU_ASSERT_STRING_EQUAL(want[6], "G>H>D");
}

static void test_reports(void)
{
    /* static config: A-B and B-C (up, no key known yet); reports from B and C */
    static qk_topology t;
    qk_topo_init(&t);
    link_(&t, "A", "B", true, 0);
    link_(&t, "B", "C", true, 0);
    static qk_topo_report r[3];
    memset(r, 0, sizeof r);
    snprintf(r[0].node, sizeof r[0].node, "B");
    r[0].nlinks = 3;
    const char *bp[] = {"A", "C", "D"};
    const uint64_t bav[] = {5000, 7000, 9000};
    for (int i = 0; i < 3; i++) {
        snprintf(r[0].links[i].peer, sizeof r[0].links[i].peer, "%s", bp[i]);
        r[0].links[i].up = true;
        r[0].links[i].available = bav[i];
        r[0].links[i].rate = bav[i] / 10;
    }
    snprintf(r[1].node, sizeof r[1].node, "C");
    r[1].nlinks = 2;
    snprintf(r[1].links[0].peer, sizeof r[1].links[0].peer, "B");
    r[1].links[0].up = true;
    r[1].links[0].available = 6000; /* C sees less on B-C than B does */
    r[1].links[0].rate = 900;
    snprintf(r[1].links[1].peer, sizeof r[1].links[1].peer, "D");
    r[1].links[1].up = false; /* C-D down as C sees it */
    r[1].links[1].available = 8000;
    snprintf(r[2].node, sizeof r[2].node, "D");
    r[2].nlinks = 1;
    snprintf(r[2].links[0].peer, sizeof r[2].links[0].peer, "C");
    r[2].links[0].up = true;
    r[2].links[0].available = 100;
    qk_err err;
    CU_ASSERT_EQUAL_FATAL(qk_topo_add_reports(&t, r, 3, &err), 0);
    CU_ASSERT_EQUAL(t.nnodes, 4);
    CU_ASSERT_EQUAL(t.nlinks, 4); /* A-B, B-C, B-D, C-D */
    char s[64];
    qk_route rt;
    /* the static A-B took B's report; B-C the smaller of the two ends */
    CU_ASSERT_EQUAL(route_str(&t, "A", "C", 1, 15, s, sizeof s, &rt), 0);
    CU_ASSERT_STRING_EQUAL(s, "A>B>C");
    CU_ASSERT_EQUAL(rt.bottleneck, 5000);
    CU_ASSERT_EQUAL(route_str(&t, "C", "B", 1, 15, s, sizeof s, &rt), 0);
    CU_ASSERT_EQUAL(rt.bottleneck, 6000);
    CU_ASSERT_EQUAL(rt.rate, 700);
    /* C-D is down because one end says so: C reaches D through B */
    CU_ASSERT_EQUAL(route_str(&t, "C", "D", 1, 15, s, sizeof s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "C>B>D");
    /* a report with a link to itself changes nothing */
    static qk_topology before;
    before = t;
    snprintf(r[2].links[0].peer, sizeof r[2].links[0].peer, "D");
    CU_ASSERT_EQUAL(qk_topo_add_reports(&t, &r[2], 1, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(memcmp(&t, &before, sizeof t), 0);
    /* nor one that would overflow the node table half way */
    static qk_topo_report big[3];
    memset(big, 0, sizeof big);
    for (int i = 0; i < 3; i++) {
        snprintf(big[i].node, sizeof big[i].node, "R%d", i);
        big[i].nlinks = QK_TOPO_REPORT_LINKS_MAX;
        for (int j = 0; j < QK_TOPO_REPORT_LINKS_MAX; j++)
            snprintf(big[i].links[j].peer, sizeof big[i].links[j].peer, "P%d_%d", i, j);
    }
    CU_ASSERT_EQUAL(qk_topo_add_reports(&t, big, 3, &err), QK_ELIMIT);
    CU_ASSERT_EQUAL(memcmp(&t, &before, sizeof t), 0);
}

static void test_unreachable_and_refusals(void)
{
    qk_topology t;
    qk_topo_init(&t);
    link_(&t, "A", "B", true, 100);
    link_(&t, "C", "D", true, 100); /* another island */
    char s[64];
    qk_err err;
    CU_ASSERT_EQUAL(route_str(&t, "A", "D", 1, 15, s, sizeof s, NULL), QK_ENOTFOUND);
    qk_route r;
    memset(&r, 0xab, sizeof r);
    CU_ASSERT_EQUAL(qk_route_find(&t, "A", "C", 1, 15, &r, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(r.nnodes, 0);
    CU_ASSERT(strstr(err.msg, "no usable path") != NULL);
    /* unknown node, same node, max_hops out of range */
    CU_ASSERT_EQUAL(qk_route_find(&t, "A", "Z", 1, 15, &r, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_route_find(&t, "A", "A", 1, 15, &r, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_route_find(&t, "A", "B", 1, 0, &r, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_route_find(&t, "A", "B", 1, QK_ROUTE_NODES_MAX, &r, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_route_find(&t, "A", "B", 1, QK_ROUTE_NODES_MAX - 1, &r, &err), 0);
    /* a link to itself, twice the same pair (either order), bad IDs */
    CU_ASSERT_EQUAL(qk_topo_link(&t, "A", "A", true, 1, 1, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_topo_link(&t, "B", "A", true, 1, 1, &err), QK_EEXIST);
    CU_ASSERT_EQUAL(qk_topo_link(&t, "", "A", true, 1, 1, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_topo_link(&t, "A", "X\n", true, 1, 1, &err), QK_EINVAL);
    char id[QK_ROUTE_ID_MAX + 2];
    memset(id, 'k', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    CU_ASSERT_EQUAL(qk_topo_link(&t, "A", id, true, 1, 1, &err), QK_EINVAL);
    id[QK_ROUTE_ID_MAX] = '\0';
    CU_ASSERT_EQUAL(qk_topo_link(&t, "A", id, true, 1, 1, &err), 0);
}

static void test_bounds(void)
{
    /* 64 nodes in a chain (63 links): the 65th node is refused, the ends route in 63 hops */
    static qk_topology t;
    qk_topo_init(&t);
    char a[16], b[16];
    qk_err err;
    for (int i = 0; i + 1 < QK_ROUTE_NODES_MAX; i++) {
        snprintf(a, sizeof a, "N%02d", i);
        snprintf(b, sizeof b, "N%02d", i + 1);
        CU_ASSERT_EQUAL_FATAL(qk_topo_link(&t, a, b, true, 10, 1, &err), 0);
    }
    CU_ASSERT_EQUAL(t.nnodes, QK_ROUTE_NODES_MAX);
    CU_ASSERT_EQUAL(qk_topo_link(&t, "N00", "EXTRA", true, 1, 1, &err), QK_ELIMIT);
    CU_ASSERT_EQUAL(t.nlinks, QK_ROUTE_NODES_MAX - 1); /* nothing half-added */
    qk_route r;
    CU_ASSERT_EQUAL(qk_route_find(&t, "N00", "N63", 1, QK_ROUTE_NODES_MAX - 1, &r, &err), 0);
    CU_ASSERT_EQUAL(r.nnodes, QK_ROUTE_NODES_MAX);
    CU_ASSERT_EQUAL(qk_route_find(&t, "N00", "N63", 1, 62, &r, &err), QK_ENOTFOUND);
    /* fill up to 256 links among the same 64 nodes: the 257th is refused */
    for (int i = 0; t.nlinks < QK_ROUTE_LINKS_MAX && i < QK_ROUTE_NODES_MAX; i++)
        for (int j = i + 2; t.nlinks < QK_ROUTE_LINKS_MAX && j < QK_ROUTE_NODES_MAX; j++) {
            snprintf(a, sizeof a, "N%02d", i);
            snprintf(b, sizeof b, "N%02d", j);
            CU_ASSERT_EQUAL_FATAL(qk_topo_link(&t, a, b, true, 10, 1, &err), 0);
        }
    CU_ASSERT_EQUAL(t.nlinks, QK_ROUTE_LINKS_MAX);
    CU_ASSERT_EQUAL(qk_topo_link(&t, "N62", "N20", true, 1, 1, &err), QK_ELIMIT);
    CU_ASSERT_EQUAL(qk_route_find(&t, "N00", "N63", 1, 63, &r, &err), 0);
}

int suite_route(void)
{
    CU_pSuite s = CU_add_suite("route", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "chain", test_chain) ||
        !CU_add_test(s, "ring with a down link", test_ring_down_link) ||
        !CU_add_test(s, "star", test_star) || !CU_add_test(s, "7-node mesh", test_mesh) ||
        !CU_add_test(s, "bottleneck rule and ties", test_bottleneck_and_ties) ||
        !CU_add_test(s, "same routes whatever the input order", test_order_independent) ||
        !CU_add_test(s, "topology from reports", test_reports) ||
        !CU_add_test(s, "unreachable and refusals", test_unreachable_and_refusals) ||
        !CU_add_test(s, "bounds", test_bounds))
        return -1;
    return 0;
}
