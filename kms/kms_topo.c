/* kms_topo.c - this KME's view of the QKD network (kms_topo.h; docs/adr/0004-key-relay.md,
 * "Routing" and "How topology is learned"): the state (kms_topo_int.h: neighbours' answers,
 * reports held, hold-downs, the view), this KME's own report measured from its store and its
 * links' telemetry, the refresh thread polling each neighbour's GET /peer/v1/topology every
 * [topology] interval, routes and the JSON of the admin listener's GET /routes.
 *
 * Link-state routing as in OSPF (RFC 2328): each node reports its own links with a sequence
 * number, the newest report of a node wins (section 13.1), and reports that stop being
 * refreshed age out (section 14: here after QK_TOPO_AGE_INTERVALS intervals their links read
 * as down). */
#include "kms_topo.h"
#include "kms_topo_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_util.h"
#include "json_util.h"
#include "kms_int.h"
#include "log.h"
#include "thread_name.h"

/* ======================================================================================
 * The state (kms_topo_int.h)
 * ====================================================================================== */

typedef struct {
    qk_topo_report r;
    uint64_t got; /* monotonic ms when this seq arrived here */
} held_report;

typedef struct {
    char a[QK_ROUTE_ID_MAX + 1], b[QK_ROUTE_ID_MAX + 1]; /* a < b (strcmp) */
    uint64_t since, until;
} hold;

typedef struct {
    bool answered; /* the last poll was answered */
    bool ever;     /* some poll was answered */
    uint64_t last_ok;
} neighbour;

struct qk_topo_state {
    pthread_mutex_t mu;
    const qk_kmed_config *cfg;
    uint64_t interval, hold_down;
    uint64_t round_ms; /* how long the last round of polls took (a hung peer: its timeout) */
    uint64_t last_seq;
    neighbour *nb; /* cfg->nlinks */
    held_report held[QK_ROUTE_NODES_MAX - 1];
    size_t nheld;
    bool full_logged;
    bool view_logged; /* a view left something out: logged once, then at debug level */
    hold holds[QK_ROUTE_LINKS_MAX];
    size_t nholds;
};

int qk_topo_state_new(const qk_kmed_config *cfg, uint64_t now, qk_topo_state **out, qk_err *err)
{
    (void)now;
    *out = NULL;
    qk_topo_state *s = calloc(1, sizeof *s);
    if (!s)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    s->nb = calloc(cfg->nlinks ? cfg->nlinks : 1, sizeof *s->nb);
    if (!s->nb || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->nb);
        free(s);
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    }
    s->cfg = cfg;
    s->interval =
        cfg->topology.interval_ms ? cfg->topology.interval_ms : QK_TOPO_DEFAULT_INTERVAL_MS;
    s->hold_down =
        cfg->topology.hold_down_ms ? cfg->topology.hold_down_ms : QK_TOPO_DEFAULT_HOLD_DOWN_MS;
    *out = s;
    return 0;
}

void qk_topo_state_free(qk_topo_state *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->nb);
    free(s);
}

uint64_t qk_topo_state_interval(const qk_topo_state *s)
{
    return s->interval;
}

/* 3 intervals, or 3 rounds when a round of polls takes longer than an interval (a neighbour
 * that hangs until the [peer_client] timeout), so that the others' reports do not age meanwhile. */
static uint64_t max_age(const qk_topo_state *s)
{
    return QK_TOPO_AGE_INTERVALS * (s->round_ms > s->interval ? s->round_ms : s->interval);
}

void qk_topo_state_round(qk_topo_state *s, uint64_t ms)
{
    pthread_mutex_lock(&s->mu);
    s->round_ms = ms;
    pthread_mutex_unlock(&s->mu);
}

static bool aged(const qk_topo_state *s, uint64_t got, uint64_t now)
{
    return now > got && now - got > max_age(s);
}

static held_report *held_of(qk_topo_state *s, const char *node)
{
    for (size_t i = 0; i < s->nheld; i++)
        if (strcmp(s->held[i].r.node, node) == 0)
            return &s->held[i];
    return NULL;
}

/* Under mu: the held report that aged longest ago (NULL when none has aged). */
static held_report *oldest_aged(qk_topo_state *s, uint64_t now)
{
    held_report *o = NULL;
    for (size_t i = 0; i < s->nheld; i++)
        if (aged(s, s->held[i].got, now) && (!o || s->held[i].got < o->got))
            o = &s->held[i];
    return o;
}

bool qk_topo_state_polled(qk_topo_state *s, size_t i, const qk_topo_msg *m, uint64_t now)
{
    if (i >= s->cfg->nlinks)
        return false;
    pthread_mutex_lock(&s->mu);
    neighbour *nb = &s->nb[i];
    bool changed = nb->answered != (m != NULL);
    nb->answered = m != NULL;
    if (m) {
        nb->ever = true;
        nb->last_ok = now;
    }
    for (size_t j = 0; m && j < m->n && j < QK_ROUTE_NODES_MAX; j++) {
        const qk_topo_report *r = &m->reports[j];
        if (strcmp(r->node, s->cfg->node_id) == 0)
            continue;
        held_report *h = held_of(s, r->node);
        if (!h && s->nheld < sizeof s->held / sizeof s->held[0])
            h = &s->held[s->nheld++];
        else if (!h)
            h = oldest_aged(s, now); /* full: a node gone for longest makes room */
        if (h && strcmp(h->r.node, r->node) != 0) {
            h->r.seq = 0;
            h->got = 0;
        } else if (!h) {
            if (!s->full_logged)
                QK_WARN("topology: more than %d nodes; the report of %s is left out",
                        QK_ROUTE_NODES_MAX, r->node);
            s->full_logged = true;
            continue;
        }
        if (h->got != 0 && r->seq <= h->r.seq)
            continue; /* not newer: keep the one held (and when it arrived) */
        h->r = *r;
        h->got = now ? now : 1;
    }
    pthread_mutex_unlock(&s->mu);
    return changed;
}

void qk_topo_state_own(qk_topo_state *s, const qk_topo_own_link *own, uint64_t now, uint64_t wall,
                       qk_topo_report *out)
{
    memset(out, 0, sizeof *out);
    const qk_kmed_config *cfg = s->cfg;
    snprintf(out->node, sizeof out->node, "%s", cfg->node_id);
    pthread_mutex_lock(&s->mu);
    /* wall-clock ms: a restarted node's reports are newer than those it sent before */
    s->last_seq = wall > s->last_seq ? wall : s->last_seq + 1;
    if (s->last_seq > QK_RELAY_TIME_MAX)
        s->last_seq = QK_RELAY_TIME_MAX;
    out->seq = s->last_seq;
    for (size_t i = 0; i < cfg->nlinks && out->nlinks < QK_TOPO_REPORT_LINKS_MAX; i++) {
        const neighbour *nb = &s->nb[i];
        qk_topo_report_link *l = &out->links[out->nlinks++];
        snprintf(l->peer, sizeof l->peer, "%s", cfg->links[i].peer);
        l->up = nb->answered && !aged(s, nb->last_ok, now) && !own[i].device_down;
        l->available = own[i].available < QK_RELAY_TIME_MAX ? own[i].available : QK_RELAY_TIME_MAX;
        l->rate = own[i].rate < QK_RELAY_TIME_MAX ? own[i].rate : QK_RELAY_TIME_MAX;
    }
    pthread_mutex_unlock(&s->mu);
}

static void sorted_pair(const char *a, const char *b, const char **lo, const char **hi)
{
    bool swap = strcmp(a, b) > 0;
    *lo = swap ? b : a;
    *hi = swap ? a : b;
}

void qk_topo_state_hold_down(qk_topo_state *s, const char *a, const char *b, uint64_t now)
{
    const char *lo, *hi;
    if (!a || !b || strcmp(a, b) == 0 || strlen(a) > QK_ROUTE_ID_MAX || strlen(b) > QK_ROUTE_ID_MAX)
        return;
    sorted_pair(a, b, &lo, &hi);
    pthread_mutex_lock(&s->mu);
    hold *h = NULL;
    for (size_t i = 0; i < s->nholds && !h; i++)
        if (strcmp(s->holds[i].a, lo) == 0 && strcmp(s->holds[i].b, hi) == 0)
            h = &s->holds[i];
    if (!h && s->nholds < QK_ROUTE_LINKS_MAX)
        h = &s->holds[s->nholds++];
    if (!h) { /* full: replace the one ending first */
        h = &s->holds[0];
        for (size_t i = 1; i < s->nholds; i++)
            if (s->holds[i].until < h->until)
                h = &s->holds[i];
    }
    snprintf(h->a, sizeof h->a, "%s", lo);
    snprintf(h->b, sizeof h->b, "%s", hi);
    h->since = now;
    h->until = now + s->hold_down;
    pthread_mutex_unlock(&s->mu);
}

/* Under mu: whether hold h still holds at now (and not ended by a newer report of a or b). */
static bool hold_active(const qk_topo_state *s, const hold *h, uint64_t now)
{
    if (now >= h->until)
        return false;
    for (size_t i = 0; i < s->nheld; i++) {
        const held_report *r = &s->held[i];
        if (r->got > h->since && (strcmp(r->r.node, h->a) == 0 || strcmp(r->r.node, h->b) == 0))
            return false;
    }
    return true;
}

/* Under mu: drop the holds that ended. */
static void prune_holds(qk_topo_state *s, uint64_t now)
{
    size_t o = 0;
    for (size_t i = 0; i < s->nholds; i++)
        if (hold_active(s, &s->holds[i], now))
            s->holds[o++] = s->holds[i];
    s->nholds = o;
}

static int link_index(const qk_topology *t, const char *a, const char *b, size_t *out)
{
    for (size_t i = 0; i < t->nlinks; i++) {
        const char *x = t->nodes[t->links[i].a], *y = t->nodes[t->links[i].b];
        if ((strcmp(x, a) == 0 && strcmp(y, b) == 0) || (strcmp(x, b) == 0 && strcmp(y, a) == 0)) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

/* Under mu: what a view leaves out (more links than it holds) is logged as a warning once,
 * then at debug level: the view is built for every route, /routes and /metrics. */
#define view_warn(s, ...)                                                                          \
    do {                                                                                           \
        if ((s)->view_logged) {                                                                    \
            QK_DEBUG(__VA_ARGS__);                                                                 \
        } else {                                                                                   \
            QK_WARN(__VA_ARGS__);                                                                  \
            (s)->view_logged = true;                                                               \
        }                                                                                          \
    } while (0)

/* Under mu: the static part of the view (this KME, its links as own says, [topology]). */
static void static_view(qk_topo_state *s, const qk_topo_report *own, qk_topology *t)
{
    const qk_kmed_config *cfg = s->cfg;
    qk_err e;
    size_t ix;
    qk_topo_init(t);
    if (qk_topo_node(t, cfg->node_id, &ix, &e) != 0)
        view_warn(s, "topology: %s", e.msg);
    for (size_t i = 0; i < own->nlinks; i++) {
        const qk_topo_report_link *l = &own->links[i];
        if (qk_topo_link(t, cfg->node_id, l->peer, l->up, l->available, l->rate, &e) != 0)
            view_warn(s, "topology: link %s-%s: %s", cfg->node_id, l->peer, e.msg);
    }
    for (size_t i = 0; i < cfg->topology.nlinks; i++) {
        const char *a = cfg->topology.links[i].a, *b = cfg->topology.links[i].b;
        if (qk_topo_link(t, a, b, true, 0, 0, &e) != 0 && e.code != QK_EEXIST)
            view_warn(s, "topology: [topology] link %s %s: %s", a, b, e.msg);
    }
}

/* Under mu: own, then each held report (an aged one with every link down), into r; count. */
static size_t gather(const qk_topo_state *s, const qk_topo_report *own, uint64_t now,
                     qk_topo_report *r)
{
    size_t n = 0;
    r[n++] = *own;
    for (size_t i = 0; i < s->nheld; i++) {
        r[n] = s->held[i].r;
        if (aged(s, s->held[i].got, now))
            for (size_t j = 0; j < r[n].nlinks; j++)
                r[n].links[j].up = false;
        n++;
    }
    return n;
}

/* Under mu: how fresh the view's link li is: the newest report of either end naming the other
 * (this KME's own links: the neighbour's answer). */
static void link_info(const qk_topo_state *s, const qk_topology *t, size_t li, uint64_t now,
                      qk_topo_link_info *info)
{
    const char *a = t->nodes[t->links[li].a], *b = t->nodes[t->links[li].b];
    const char *self = s->cfg->node_id;
    bool have = false;
    uint64_t best = 0;
    for (size_t i = 0; i < s->cfg->nlinks; i++) {
        const char *p = s->cfg->links[i].peer;
        bool ours = (strcmp(a, self) == 0 && strcmp(b, p) == 0) ||
                    (strcmp(b, self) == 0 && strcmp(a, p) == 0);
        if (ours && s->nb[i].ever && (!have || s->nb[i].last_ok > best)) {
            have = true;
            best = s->nb[i].last_ok;
        }
    }
    for (size_t i = 0; i < s->nheld; i++) {
        const qk_topo_report *r = &s->held[i].r;
        const char *other = strcmp(r->node, a) == 0 ? b : strcmp(r->node, b) == 0 ? a : NULL;
        for (size_t j = 0; other && j < r->nlinks; j++)
            if (strcmp(r->links[j].peer, other) == 0 && (!have || s->held[i].got > best)) {
                have = true;
                best = s->held[i].got;
            }
    }
    info->fresh = have;
    info->age_ms = have && now > best ? now - best : 0;
}

int qk_topo_state_view(qk_topo_state *s, const qk_topo_report *own, uint64_t now, qk_topology *t,
                       qk_topo_link_info *info, qk_err *err)
{
    qk_topo_report *r = malloc(QK_ROUTE_NODES_MAX * sizeof *r);
    if (!r)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    pthread_mutex_lock(&s->mu);
    prune_holds(s, now);
    static_view(s, own, t);
    size_t n = gather(s, own, now, r);
    qk_err e;
    /* a report that does not fit (too many nodes or links) is left out, the last first */
    while (n > 0 && qk_topo_add_reports(t, r, n, &e) != 0) {
        view_warn(s, "topology: the report of %s is left out of the view: %s", r[n - 1].node,
                  e.msg);
        n--;
    }
    for (size_t i = 0; i < s->nholds; i++) {
        size_t li;
        if (link_index(t, s->holds[i].a, s->holds[i].b, &li) == 0)
            t->links[li].up = false;
    }
    for (size_t li = 0; info && li < t->nlinks; li++) {
        link_info(s, t, li, now, &info[li]);
        info[li].held_down = false;
        for (size_t i = 0; i < s->nholds; i++) {
            size_t hl;
            if (link_index(t, s->holds[i].a, s->holds[i].b, &hl) == 0 && hl == li)
                info[li].held_down = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(r);
    return 0;
}

void qk_topo_state_reports(qk_topo_state *s, const qk_topo_report *own, uint64_t now,
                           qk_topo_msg *out)
{
    out->n = 0;
    out->reports[out->n++] = *own;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nheld && out->n < QK_ROUTE_NODES_MAX; i++)
        if (!aged(s, s->held[i].got, now)) /* an aged report would look fresh to a newcomer */
            out->reports[out->n++] = s->held[i].r;
    pthread_mutex_unlock(&s->mu);
}

bool qk_topo_state_knows(qk_topo_state *s, const char *id)
{
    const qk_kmed_config *cfg = s->cfg;
    if (!id)
        return false;
    if (strcmp(id, cfg->node_id) == 0 || qk_kmed_config_link_by_peer(cfg, id))
        return true;
    for (size_t i = 0; i < cfg->topology.nlinks; i++)
        if (strcmp(cfg->topology.links[i].a, id) == 0 || strcmp(cfg->topology.links[i].b, id) == 0)
            return true;
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nheld && !found; i++) {
        const qk_topo_report *r = &s->held[i].r;
        found = strcmp(r->node, id) == 0;
        for (size_t j = 0; j < r->nlinks && !found; j++)
            found = strcmp(r->links[j].peer, id) == 0;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* ======================================================================================
 * The qk_kms side (kms_topo.h)
 * ====================================================================================== */

struct qk_kms_topo {
    qk_topo_state *st;
    pthread_mutex_t mu; /* guards stop; cv wakes the thread */
    pthread_cond_t cv;
    bool stop, running;
    pthread_t thread;
};

static uint64_t mono_ms(void)
{
    double t = qk_now_ms();
    return t > 0 ? (uint64_t)t : 0;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The key this KME could carve for relay on link l now: its granted unused lease room plus
 * the unleased room of the link's confirmed blocks (ADR 0004, "How topology is learned"). */
static uint64_t relay_room(qk_kms *k, const qk_link *l)
{
    qk_err e;
    qk_pool_status ps;
    uint64_t mine = 0, theirs = 0;
    qk_side other = l->side == QK_SIDE_LOW ? QK_SIDE_HIGH : QK_SIDE_LOW;
    if (qk_store_lease_room(k->store, l->cfg->link_id, l->side, &mine, &e) != 0 ||
        qk_store_lease_room(k->store, l->cfg->link_id, other, &theirs, &e) != 0 ||
        qk_store_pool_status(k->store, l->cfg->link_id, &ps, &e) != 0) {
        QK_WARN("topology: relay room of link %s: %s", l->cfg->link_id, e.msg);
        return 0;
    }
    uint64_t leased = mine + theirs;
    return mine + (ps.bytes_available > leased ? ps.bytes_available - leased : 0);
}

/* This KME's report now (measured from the store and the links' telemetry). */
static int own_report(qk_kms *k, qk_topo_report *out, qk_err *err)
{
    qk_topo_own_link *own = calloc(k->nlinks ? k->nlinks : 1, sizeof *own);
    if (!own)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    uint64_t now_s = qk_now_s();
    for (size_t i = 0; i < k->nlinks; i++) {
        qk_link *l = &k->links[i];
        qk_link_telemetry tm;
        qk_link_get_telemetry(l, &tm);
        bool fresh = tm.updated_at != 0 &&
                     (now_s <= tm.updated_at || now_s - tm.updated_at <= l->cfg->telemetry_stale_s);
        own[i].device_down = fresh && tm.state[0] && strcmp(tm.state, "up") != 0;
        own[i].rate = fresh && tm.rate_bps > 0 ? (uint64_t)(tm.rate_bps / 8) : 0;
        own[i].available = relay_room(k, l);
    }
    qk_topo_state_own(k->topo->st, own, mono_ms(), wall_ms(), out);
    free(own);
    return 0;
}

/* One round: ask every neighbour for its reports. */
static void poll_all(qk_kms *k, qk_topo_msg *m)
{
    for (size_t i = 0; i < k->nlinks; i++) {
        pthread_mutex_lock(&k->topo->mu);
        bool stop = k->topo->stop;
        pthread_mutex_unlock(&k->topo->mu);
        if (stop)
            return;
        qk_err e;
        qk_err_clear(&e);
        int rc = qk_peer_topology(k->links[i].client, m, &e);
        if (qk_topo_state_polled(k->topo->st, i, rc == 0 ? m : NULL, mono_ms())) {
            if (rc == 0)
                QK_INFO("topology: %s answers", k->links[i].cfg->peer);
            else
                QK_WARN("topology: %s does not answer: %s", k->links[i].cfg->peer, e.msg);
        }
    }
}

static void *refresh_main(void *arg)
{
    QK_THREAD_NAME("qk-topology");
    qk_kms *k = arg;
    struct qk_kms_topo *tp = k->topo;
    qk_topo_msg *m = malloc(sizeof *m);
    if (!m) {
        QK_ERROR("topology: out of memory: no refresh");
        return NULL;
    }
    uint64_t interval = qk_topo_state_interval(tp->st);
    for (;;) {
        uint64_t t0 = mono_ms();
        poll_all(k, m);
        qk_topo_state_round(tp->st, mono_ms() - t0);
        pthread_mutex_lock(&tp->mu);
        struct timespec dl = qk_kms_deadline_in(interval);
        while (!tp->stop && pthread_cond_timedwait(&tp->cv, &tp->mu, &dl) != ETIMEDOUT)
            ;
        bool stop = tp->stop;
        pthread_mutex_unlock(&tp->mu);
        if (stop)
            break;
    }
    free(m);
    return NULL;
}

int qk_kms_topo_start(qk_kms *k, qk_err *err)
{
    struct qk_kms_topo *tp = calloc(1, sizeof *tp);
    if (!tp)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    int rc = qk_topo_state_new(k->cfg, mono_ms(), &tp->st, err);
    if (rc != 0) {
        free(tp);
        return rc;
    }
    if (pthread_mutex_init(&tp->mu, NULL) != 0) {
        qk_topo_state_free(tp->st);
        free(tp);
        return qk_err_set(err, QK_ENOMEM, "topology: mutex init failed");
    }
    if (qk_kms_cond_init_mono(&tp->cv) != 0) {
        pthread_mutex_destroy(&tp->mu);
        qk_topo_state_free(tp->st);
        free(tp);
        return qk_err_set(err, QK_ENOMEM, "topology: condition variable init failed");
    }
    k->topo = tp;
    /* [relay] enabled = no: this KME relays for no SAE of its own, so it keeps no view of
     * the network (it still answers its neighbours' GET /peer/v1/topology). */
    if (!k->cfg->relay.enabled || k->nlinks == 0)
        return 0;
    if (pthread_create(&tp->thread, NULL, refresh_main, k) != 0) {
        qk_kms_topo_stop(k);
        return qk_err_set(err, QK_ENOMEM, "topology: cannot start the refresh thread");
    }
    tp->running = true;
    return 0;
}

void qk_kms_topo_stop(qk_kms *k)
{
    struct qk_kms_topo *tp = k ? k->topo : NULL;
    if (!tp)
        return;
    if (tp->running) {
        pthread_mutex_lock(&tp->mu);
        tp->stop = true;
        pthread_cond_broadcast(&tp->cv);
        pthread_mutex_unlock(&tp->mu);
        pthread_join(tp->thread, NULL); /* after at most one bounded peer call */
    }
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
    qk_topo_state_free(tp->st);
    free(tp);
    k->topo = NULL;
}

bool qk_kms_topo_knows(qk_kms *k, const char *kme_id)
{
    return k && k->topo && qk_topo_state_knows(k->topo->st, kme_id);
}

/* The view now, with this KME's own report measured now. */
static int view_now(qk_kms *k, qk_topology *t, qk_topo_link_info *info, qk_err *err)
{
    if (!k->topo)
        return qk_err_set(err, QK_EINVAL, "topology: not started");
    qk_topo_report *own = malloc(sizeof *own);
    if (!own)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    int rc = own_report(k, own, err);
    if (rc == 0)
        rc = qk_topo_state_view(k->topo->st, own, mono_ms(), t, info, err);
    free(own);
    return rc;
}

static size_t max_hops(const qk_kms *k)
{
    uint32_t h = k->cfg->relay.max_hops;
    return h >= 1 && h < QK_RELAY_PATH_MAX ? h : 8;
}

/* The route in view t from this KME to dst (both in t), as a qk_kms_path. */
static int route_in(qk_kms *k, const qk_topology *t, const char *dst, uint64_t need,
                    qk_kms_path *out, qk_err *err)
{
    qk_route r;
    memset(out, 0, sizeof *out);
    int rc = qk_route_find(t, k->cfg->node_id, dst, need, max_hops(k), &r, err);
    if (rc == QK_ENOTFOUND)
        return qk_err_set(err, QK_ENOTFOUND,
                          "no route from %s to %s with %llu bytes of key per hop within %zu hops",
                          k->cfg->node_id, dst, (unsigned long long)need, max_hops(k));
    if (rc != 0)
        return rc;
    out->n = r.nnodes;
    out->bottleneck = r.bottleneck;
    for (size_t i = 0; i < r.nnodes; i++)
        snprintf(out->ids[i], sizeof out->ids[i], "%s", t->nodes[r.nodes[i]]);
    return 0;
}

int qk_kms_topo_route(qk_kms *k, const char *dst, uint64_t need, qk_kms_path *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    if (!dst || strcmp(dst, k->cfg->node_id) == 0)
        return qk_err_set(err, QK_EINVAL, "route: %s is this KME", dst ? dst : "(null)");
    if (!qk_kms_topo_knows(k, dst))
        return qk_err_set(err, QK_EINVAL, "route: %s is not a KME of the network", dst);
    qk_topology *t = malloc(sizeof *t);
    if (!t)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    int rc = view_now(k, t, NULL, err);
    if (rc == 0)
        rc = route_in(k, t, dst, need, out, err);
    free(t);
    return rc;
}

void qk_kms_topo_hold_down(qk_kms *k, const char *a, const char *b)
{
    if (!k || !k->topo)
        return;
    QK_INFO("topology: link %s-%s held down after a failed relay", a ? a : "?", b ? b : "?");
    qk_topo_state_hold_down(k->topo->st, a, b, mono_ms());
}

int qk_kms_topo_reports(qk_kms *k, qk_topo_msg *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    if (!k->topo)
        return qk_err_set(err, QK_EINVAL, "topology: not started");
    qk_topo_report *own = malloc(sizeof *own);
    if (!own)
        return qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    int rc = own_report(k, own, err);
    if (rc == 0)
        qk_topo_state_reports(k->topo->st, own, mono_ms(), out);
    free(own);
    return rc;
}

int qk_kms_topo_stats(qk_kms *k, qk_kms_topo_stat *out, qk_err *err)
{
    memset(out, 0, sizeof *out);
    qk_topology *t = malloc(sizeof *t);
    qk_topo_link_info *info = malloc(QK_ROUTE_LINKS_MAX * sizeof *info);
    int rc = t && info ? view_now(k, t, info, err)
                       : qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    if (rc == 0) {
        out->nodes = t->nnodes;
        for (size_t i = 0; i < t->nlinks; i++) {
            if (info[i].held_down)
                out->links_held_down++;
            else if (t->links[i].up)
                out->links_up++;
            else
                out->links_down++;
        }
    }
    free(info);
    free(t);
    return rc;
}

/* ---- GET /routes ---------------------------------------------------------------------- */

#define ROUTES_NEED 64 /* a 256-bit key and its 32-byte MAC key per hop */

static bool put_links(cJSON *o, const qk_topology *t, const qk_topo_link_info *info)
{
    cJSON *links = cJSON_AddArrayToObject(o, "links");
    bool ok = links != NULL;
    for (size_t i = 0; ok && i < t->nlinks; i++) {
        const qk_route_link *l = &t->links[i];
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddItemToArray(links, e) &&
             cJSON_AddStringToObject(e, "a", t->nodes[l->a]) &&
             cJSON_AddStringToObject(e, "b", t->nodes[l->b]) &&
             cJSON_AddBoolToObject(e, "up", l->up) &&
             cJSON_AddNumberToObject(e, "available", (double)l->available) &&
             cJSON_AddNumberToObject(e, "rate", (double)l->rate) &&
             (info[i].fresh ? cJSON_AddNumberToObject(e, "age_ms", (double)info[i].age_ms) != NULL
                            : cJSON_AddNullToObject(e, "age_ms") != NULL) &&
             cJSON_AddBoolToObject(e, "held_down", info[i].held_down);
    }
    return ok;
}

static bool put_routes(qk_kms *k, cJSON *o, const qk_topology *t)
{
    cJSON *routes = cJSON_AddArrayToObject(o, "routes");
    bool ok = routes != NULL;
    for (size_t i = 0; ok && i < t->nnodes; i++) {
        const char *to = t->nodes[i];
        if (strcmp(to, k->cfg->node_id) == 0)
            continue;
        qk_kms_path p;
        qk_err e;
        qk_err_clear(&e);
        cJSON *r = cJSON_CreateObject();
        ok = r && cJSON_AddItemToArray(routes, r) && cJSON_AddStringToObject(r, "to", to);
        if (ok && route_in(k, t, to, ROUTES_NEED, &p, &e) != 0) {
            ok = cJSON_AddNullToObject(r, "path") && cJSON_AddStringToObject(r, "reason", e.msg);
            continue;
        }
        cJSON *path = ok ? cJSON_AddArrayToObject(r, "path") : NULL;
        ok = path != NULL;
        for (size_t j = 0; ok && j < p.n; j++) {
            cJSON *id = cJSON_CreateString(p.ids[j]);
            ok = id && cJSON_AddItemToArray(path, id);
        }
        ok = ok && cJSON_AddNumberToObject(r, "bottleneck", (double)p.bottleneck);
    }
    return ok;
}

int qk_kms_topo_json(qk_kms *k, char **json, size_t *len, qk_err *err)
{
    *json = NULL;
    *len = 0;
    qk_topology *t = malloc(sizeof *t);
    qk_topo_link_info *info = malloc(QK_ROUTE_LINKS_MAX * sizeof *info);
    int rc = t && info ? view_now(k, t, info, err)
                       : qk_err_set(err, QK_ENOMEM, "topology: out of memory");
    cJSON *o = rc == 0 ? cJSON_CreateObject() : NULL;
    char *text = NULL;
    if (o && cJSON_AddStringToObject(o, "node", k->cfg->node_id) && put_links(o, t, info) &&
        put_routes(k, o, t))
        text = qk_json_print(o);
    cJSON_Delete(o);
    free(info);
    free(t);
    if (rc == 0 && !text)
        rc = qk_err_set(err, QK_ENOMEM, "topology: cannot write the JSON");
    if (rc == 0) {
        *json = text;
        *len = strlen(text);
    }
    return rc;
}
