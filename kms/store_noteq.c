/* store_noteq.c - the notices this open's carves made, kept in memory for the notifier.
 *
 * qk_store_carve_owned writes the request, its slaves and its runs, and the notifier read them
 * back for its notice a moment later (qk_store_notices_pending: the pending list, the slaves and
 * the runs of every request, five statements per one-key request). The carve now also hands
 * its notice to this queue, and the notifier takes it from here. The tables stay the record:
 * noticed = 0 until qk_store_notices_done, read at every open and whenever the queue cannot
 * vouch for a link (docs/adr/0003-request-records.md, "Notices from memory").
 *
 * A link is "clean" when every outgoing request of it that is DONE and not noticed is in the
 * queue, oldest first. Then the queue answers notices_pending; otherwise the tables do, and a
 * read that returns everything pending (fewer than asked) puts what it returned in the queue
 * and makes the link clean. Everything here runs under s->mu (inside a call, or in qs_end and
 * qs_group_lost). What makes a link unclean again:
 * - a request's state changed (a burn, an expiry): the queue would still hold it, and the
 *   table's pending list leaves it out (qs_noteq_reset, all links);
 * - the open group is lost (its COMMIT failed, or SQLite rolled it back): its carves are gone
 *   (qs_noteq_reset, all links);
 * - the queue is full (QS_NOTEQ_MAX notices or QS_NOTEQ_KEYS keys): that link's entries go;
 * - a copy could not be allocated: that link's entries go.
 * A carve's notice enters the queue only when its call succeeded (qs_noteq_call_end from
 * qs_end), so the queue never holds a carve that was rolled back. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

size_t qs_noteq_max = QS_NOTEQ_MAX;

struct qs_noteq_ent {
    struct qs_noteq_ent *next;
    char link[QK_STORE_ID_MAX + 1];
    qk_notice v; /* slaves and keys allocated to their counts */
};

static void ent_free(qs_noteq_ent *e)
{
    if (!e)
        return;
    qk_notice_free(&e->v, 1);
    free(e);
}

static int link_index(const qk_store *s, const char *link)
{
    for (size_t i = 0; i < s->noteq.nclean; i++)
        if (strcmp(s->noteq.clean[i], link) == 0)
            return (int)i;
    return -1;
}

bool qs_noteq_clean(const qk_store *s, const char *link)
{
    return link_index(s, link) >= 0;
}

/* Unlink and free the entry after prev (the head when prev is NULL); returns the one after it. */
static qs_noteq_ent *unlink_next(qs_noteq *q, qs_noteq_ent *prev)
{
    qs_noteq_ent *e = prev ? prev->next : q->head;
    qs_noteq_ent *next = e->next;
    if (prev)
        prev->next = next;
    else
        q->head = next;
    if (q->tail == e)
        q->tail = prev;
    q->n--;
    q->nkeys -= e->v.nkeys;
    ent_free(e);
    return next;
}

/* Drop link's entries and its clean mark: the tables answer for it again. */
static void link_drop(qk_store *s, const char *link)
{
    qs_noteq *q = &s->noteq;
    int i = link_index(s, link);
    if (i >= 0) {
        q->nclean--;
        memcpy(q->clean[i], q->clean[q->nclean], sizeof q->clean[i]);
    }
    qs_noteq_ent *prev = NULL;
    for (qs_noteq_ent *e = q->head; e;) {
        if (strcmp(e->link, link) == 0) {
            e = unlink_next(q, prev);
        } else {
            prev = e;
            e = e->next;
        }
    }
}

void qs_noteq_reset(qk_store *s)
{
    qs_noteq *q = &s->noteq;
    while (q->head) {
        qs_noteq_ent *e = q->head;
        q->head = e->next;
        ent_free(e);
    }
    q->tail = NULL;
    q->n = q->nkeys = 0;
    q->nclean = 0;
}

/* v with room for nslaves slaves and nkeys keys (the counts set, the arrays zeroed) and its
 * request, master and expiry; 0, or -1 when out of memory (v holds nothing then). */
static int notice_init(qk_notice *v, const char *request_id, const char *master,
                       uint64_t expires_at, size_t nslaves, size_t nkeys)
{
    memset(v, 0, sizeof *v);
    snprintf(v->request_id, sizeof v->request_id, "%s", request_id);
    snprintf(v->master, sizeof v->master, "%s", master);
    v->expires_at = expires_at;
    v->slaves = nslaves ? calloc(nslaves, sizeof *v->slaves) : NULL;
    v->keys = nkeys ? calloc(nkeys, sizeof *v->keys) : NULL;
    if ((nslaves && !v->slaves) || (nkeys && !v->keys)) {
        qk_notice_free(v, 1);
        return -1;
    }
    v->nslaves = nslaves;
    v->nkeys = nkeys;
    return 0;
}

/* A copy of src into dst (slaves and keys to their counts): 0, or -1 when out of memory. */
static int notice_dup(qk_notice *dst, const qk_notice *src)
{
    if (notice_init(dst, src->request_id, src->master, src->expires_at, src->nslaves, src->nkeys) !=
        0)
        return -1;
    if (src->nslaves)
        memcpy(dst->slaves, src->slaves, src->nslaves * sizeof *src->slaves);
    if (src->nkeys)
        memcpy(dst->keys, src->keys, src->nkeys * sizeof *src->keys);
    return 0;
}

/* A new entry for link, its notice to be filled (notice_init or notice_dup), or NULL. */
static qs_noteq_ent *ent_new(const char *link)
{
    qs_noteq_ent *e = calloc(1, sizeof *e);
    if (e)
        snprintf(e->link, sizeof e->link, "%s", link);
    return e;
}

/* Append e (owned) to the queue of its link, which must be clean; full: the link is dropped. */
static void append(qk_store *s, qs_noteq_ent *e)
{
    qs_noteq *q = &s->noteq;
    if (q->n >= qs_noteq_max || e->v.nkeys > QS_NOTEQ_KEYS - q->nkeys) {
        link_drop(s, e->link);
        ent_free(e);
        return;
    }
    e->next = NULL;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
    q->nkeys += e->v.nkeys;
}

void qs_noteq_stage(qk_store *s, const qk_reservation *r, const qk_key_ref *refs, size_t n)
{
    qs_noteq *q = &s->noteq;
    ent_free(q->call);
    q->call = NULL;
    if (!qs_noteq_clean(s, r->link))
        return; /* the tables answer for this link: they have the carve */
    qs_noteq_ent *e = ent_new(r->link);
    if (!e || notice_init(&e->v, r->request_id, r->master, r->expires_at, r->nslaves, n) != 0) {
        free(e);
        link_drop(s, r->link);
        return;
    }
    for (size_t i = 0; i < r->nslaves; i++)
        snprintf(e->v.slaves[i], sizeof e->v.slaves[i], "%s", r->slaves[i]);
    memcpy(e->v.keys, refs, n * sizeof *refs); /* check fields zero: the carve leaves them so */
    q->call = e;
}

void qs_noteq_call_end(qk_store *s, bool ok)
{
    qs_noteq_ent *e = s->noteq.call;
    s->noteq.call = NULL;
    if (!e)
        return;
    if (ok && qs_noteq_clean(s, e->link))
        append(s, e);
    else
        ent_free(e);
}

int qs_noteq_take(qk_store *s, const char *link, qk_notice *out, size_t cap, size_t *n, qk_err *err)
{
    size_t got = 0;
    for (const qs_noteq_ent *e = s->noteq.head; e && got < cap; e = e->next) {
        if (strcmp(e->link, link) != 0)
            continue;
        if (notice_dup(&out[got], &e->v) != 0) {
            qk_notice_free(out, got);
            return qk_err_set(err, QK_ENOMEM, "store: out of memory");
        }
        got++;
    }
    *n = got;
    return 0;
}

void qs_noteq_fill(qk_store *s, const char *link, const qk_notice *v, size_t n)
{
    if (qs_noteq_clean(s, link))
        return;
    if (s->noteq.nclean >= QS_NOTEQ_LINKS)
        return; /* more links than the queue follows: the tables keep answering for this one */
    link_drop(s, link);
    snprintf(s->noteq.clean[s->noteq.nclean++], QK_STORE_ID_MAX + 1, "%s", link);
    for (size_t i = 0; i < n && qs_noteq_clean(s, link); i++) {
        qs_noteq_ent *e = ent_new(link);
        if (!e || notice_dup(&e->v, &v[i]) != 0) {
            free(e);
            link_drop(s, link);
            return;
        }
        append(s, e);
    }
}

void qs_noteq_done(qk_store *s, const char *const *request_ids, size_t n)
{
    qs_noteq *q = &s->noteq;
    qs_noteq_ent *prev = NULL, *e = q->head;
    size_t left = n;
    /* the IDs are usually the oldest entries, in order: one pass, stopping when all are found */
    while (e && left > 0) {
        bool hit = false;
        for (size_t i = 0; i < n && !hit; i++)
            hit = request_ids[i] && strcmp(e->v.request_id, request_ids[i]) == 0;
        if (hit) {
            e = unlink_next(q, prev);
            left--;
        } else {
            prev = e;
            e = e->next;
        }
    }
}
