/* route.c - path choice over a topology (route.h): a breadth-first search from the destination
 * gives each node its hop distance over usable links; a pass in order of distance gives each
 * node the best bottleneck of its shortest paths; the path is then walked from the source,
 * taking at each step the smallest node ID that still reaches the destination with that
 * bottleneck (which yields the lexicographically smallest of the best paths). O(nodes x links). */
#include "route.h"

#include <string.h>

void qk_topo_init(qk_topology *t)
{
    memset(t, 0, sizeof *t);
}

static int find_node(const qk_topology *t, const char *id, size_t *index)
{
    for (size_t i = 0; i < t->nnodes; i++)
        if (strcmp(t->nodes[i], id) == 0) {
            *index = i;
            return 0;
        }
    return QK_ENOTFOUND;
}

static int check_id(const char *id, qk_err *err)
{
    size_t n = id ? strnlen(id, QK_ROUTE_ID_MAX + 1) : 0;
    if (n < 1 || n > QK_ROUTE_ID_MAX)
        return qk_err_set(err, QK_EINVAL, "route: a node ID must be 1..%d characters",
                          QK_ROUTE_ID_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return qk_err_set(err, QK_EINVAL, "route: control character in a node ID");
    return 0;
}

int qk_topo_node(qk_topology *t, const char *id, size_t *index, qk_err *err)
{
    if (check_id(id, err) != 0)
        return QK_EINVAL;
    if (find_node(t, id, index) == 0)
        return 0;
    if (t->nnodes >= QK_ROUTE_NODES_MAX)
        return qk_err_set(err, QK_ELIMIT, "route: more than %d nodes", QK_ROUTE_NODES_MAX);
    memcpy(t->nodes[t->nnodes], id, strlen(id) + 1);
    *index = t->nnodes++;
    return 0;
}

static int find_link(const qk_topology *t, size_t a, size_t b, size_t *index)
{
    for (size_t i = 0; i < t->nlinks; i++) {
        const qk_route_link *l = &t->links[i];
        if ((l->a == a && l->b == b) || (l->a == b && l->b == a)) {
            *index = i;
            return 0;
        }
    }
    return QK_ENOTFOUND;
}

int qk_topo_link(qk_topology *t, const char *a, const char *b, bool up, uint64_t available,
                 uint64_t rate, qk_err *err)
{
    if (check_id(a, err) != 0 || check_id(b, err) != 0)
        return QK_EINVAL;
    if (strcmp(a, b) == 0)
        return qk_err_set(err, QK_EINVAL, "route: a link joins two different nodes");
    size_t ia, ib, il;
    bool new_a = find_node(t, a, &ia) != 0, new_b = find_node(t, b, &ib) != 0;
    if (!new_a && !new_b && find_link(t, ia, ib, &il) == 0)
        return qk_err_set(err, QK_EEXIST, "route: %s and %s already have a link", a, b);
    if (t->nlinks >= QK_ROUTE_LINKS_MAX)
        return qk_err_set(err, QK_ELIMIT, "route: more than %d links", QK_ROUTE_LINKS_MAX);
    if (t->nnodes + new_a + new_b > QK_ROUTE_NODES_MAX)
        return qk_err_set(err, QK_ELIMIT, "route: more than %d nodes", QK_ROUTE_NODES_MAX);
    if (qk_topo_node(t, a, &ia, err) != 0 || qk_topo_node(t, b, &ib, err) != 0)
        return err ? err->code : QK_EINVAL; /* not reached: checked above */
    qk_route_link *l = &t->links[t->nlinks++];
    l->a = (uint16_t)ia;
    l->b = (uint16_t)ib;
    l->up = up;
    l->available = available;
    l->rate = rate;
    return 0;
}

int qk_topo_update(qk_topology *t, const char *a, const char *b, bool up, uint64_t available,
                   uint64_t rate, qk_err *err)
{
    size_t ia, ib, il;
    if (!a || !b || find_node(t, a, &ia) != 0 || find_node(t, b, &ib) != 0 ||
        find_link(t, ia, ib, &il) != 0)
        return qk_err_set(err, QK_ENOTFOUND, "route: no link between %s and %s", a ? a : "?",
                          b ? b : "?");
    t->links[il].up = up;
    t->links[il].available = available;
    t->links[il].rate = rate;
    return 0;
}

int qk_topo_add_reports(qk_topology *t, const qk_topo_report *r, size_t n, qk_err *err)
{
    /* work on a copy so that a failure leaves t as it was (the copy is ~17 KiB: static
     * storage would not be thread-safe, the heap would add a failure mode; the stack is fine) */
    qk_topology work = *t;
    bool seen[QK_ROUTE_LINKS_MAX] = {false}; /* merged at least once from a report */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < r[i].nlinks && j < QK_TOPO_REPORT_LINKS_MAX; j++) {
            const qk_topo_report_link *rl = &r[i].links[j];
            size_t a, b, il;
            int rc = qk_topo_node(&work, r[i].node, &a, err);
            if (rc == 0)
                rc = qk_topo_node(&work, rl->peer, &b, err);
            if (rc != 0)
                return rc;
            if (a == b)
                return qk_err_set(err, QK_EINVAL, "route: %s reports a link to itself", rl->peer);
            if (find_link(&work, a, b, &il) != 0) {
                rc = qk_topo_link(&work, r[i].node, rl->peer, rl->up, rl->available, rl->rate, err);
                if (rc != 0)
                    return rc;
                seen[work.nlinks - 1] = true;
                continue;
            }
            qk_route_link *l = &work.links[il];
            if (!seen[il] && il < t->nlinks) {
                /* a static link: the first report sets its state, its key and rate */
                l->up = rl->up;
                l->available = rl->available;
                l->rate = rl->rate;
            } else {
                l->up = l->up && rl->up;
                l->available = rl->available < l->available ? rl->available : l->available;
                l->rate = rl->rate < l->rate ? rl->rate : l->rate;
            }
            seen[il] = true;
        }
    *t = work;
    return 0;
}

static bool usable(const qk_route_link *l, uint64_t need)
{
    return l->up && l->available >= need;
}

#define FAR SIZE_MAX

int qk_route_find(const qk_topology *t, const char *src, const char *dst, uint64_t need,
                  size_t max_hops, qk_route *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    size_t s, d;
    if (!src || !dst || find_node(t, src, &s) != 0 || find_node(t, dst, &d) != 0)
        return qk_err_set(err, QK_EINVAL, "route: unknown source or destination");
    if (s == d)
        return qk_err_set(err, QK_EINVAL, "route: source and destination are the same node");
    if (max_hops < 1 || max_hops > QK_ROUTE_NODES_MAX - 1)
        return qk_err_set(err, QK_EINVAL, "route: max_hops must be 1..%d", QK_ROUTE_NODES_MAX - 1);

    /* 1. hop distance to d over usable links (breadth-first; queue holds each node once) */
    size_t dist[QK_ROUTE_NODES_MAX], queue[QK_ROUTE_NODES_MAX], head = 0, tail = 0;
    for (size_t i = 0; i < t->nnodes; i++)
        dist[i] = FAR;
    dist[d] = 0;
    queue[tail++] = d;
    while (head < tail) {
        size_t v = queue[head++];
        for (size_t i = 0; i < t->nlinks; i++) {
            const qk_route_link *l = &t->links[i];
            if (!usable(l, need) || (l->a != v && l->b != v))
                continue;
            size_t u = l->a == v ? l->b : l->a;
            if (dist[u] == FAR) {
                dist[u] = dist[v] + 1;
                queue[tail++] = u;
            }
        }
    }
    if (dist[s] == FAR || dist[s] > max_hops)
        return qk_err_set(err, QK_ENOTFOUND, "route: no usable path from %s to %s within %zu hops",
                          src, dst, max_hops);

    /* 2. best[v]: the largest bottleneck over v's shortest paths to d, in BFS order (every
     * node one hop nearer to d comes earlier in the queue) */
    uint64_t best[QK_ROUTE_NODES_MAX] = {0};
    best[d] = UINT64_MAX;
    for (size_t q = 1; q < tail; q++) {
        size_t v = queue[q];
        for (size_t i = 0; i < t->nlinks; i++) {
            const qk_route_link *l = &t->links[i];
            if (!usable(l, need) || (l->a != v && l->b != v))
                continue;
            size_t u = l->a == v ? l->b : l->a;
            if (dist[u] + 1 != dist[v])
                continue;
            uint64_t b = l->available < best[u] ? l->available : best[u];
            if (b > best[v])
                best[v] = b;
        }
    }

    /* 3. walk from s: the smallest next ID that keeps the bottleneck */
    uint64_t target = best[s], rate = UINT64_MAX;
    size_t v = s;
    out->nodes[out->nnodes++] = (uint16_t)s;
    while (v != d) {
        size_t pick = FAR, pick_link = 0;
        for (size_t i = 0; i < t->nlinks; i++) {
            const qk_route_link *l = &t->links[i];
            if (!usable(l, need) || (l->a != v && l->b != v))
                continue;
            size_t u = l->a == v ? l->b : l->a;
            if (dist[u] + 1 != dist[v] || l->available < target || best[u] < target)
                continue;
            if (pick == FAR || strcmp(t->nodes[u], t->nodes[pick]) < 0) {
                pick = u;
                pick_link = i;
            }
        }
        if (pick == FAR) { /* not reached: best[v] >= target promises a next node */
            memset(out, 0, sizeof *out);
            return qk_err_set(err, QK_ENOTFOUND, "route: internal: lost the path");
        }
        out->links[out->nnodes - 1] = (uint16_t)pick_link;
        if (t->links[pick_link].rate < rate)
            rate = t->links[pick_link].rate;
        out->nodes[out->nnodes++] = (uint16_t)pick;
        v = pick;
    }
    out->bottleneck = target;
    out->rate = rate;
    return 0;
}
