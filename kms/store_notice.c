/* store_notice.c - carving from this end's granted leases (qk_store_carve_owned: the request
 * committed and its keys delivered at once, un-noticed), and the notices that tell the peer
 * later, in batches, which ranges became which keys; the peer records them RESERVED for the
 * slaves (docs/adr/0002-key-store.md, "Leases and notices"). */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define QS_NOTICE_MAX 4096 /* notices per call (pending list, done, notice_in) */
/* Used-up tails (own room smaller than the key length, in a block where nothing is left to
 * lease) zeroed after one carve_owned call: keeps the owned-room indexes short. */
#define QS_TAIL_PASS 4

/* ---- carve_owned -------------------------------------------------------------------------- */

/* The side's block with at least len granted, uncarved bytes (LOW: [lo, min(lease_lo, hi)),
 * oldest first; HIGH: [max(lease_hi, lo), hi), newest first). 1 found ([*a, *e)), 0 none. */
typedef struct {
    uint64_t block_id, lo, hi; /* the block's cursors */
    uint64_t a, e;             /* the side's owned, uncarved room [a, e) */
} owned_room;

/* Step st (bound, selecting block_id, lo, hi, a, e) into *o, the room checked to hold at least
 * min_room bytes. 1 found, 0 none, <0 error. */
static int owned_row(qk_store *s, sqlite3_stmt *st, uint32_t min_room, owned_room *o, qk_err *err)
{
    int rc = qs_step(s, st, err);
    if (rc != 1)
        return rc;
    sqlite3_int64 v[5];
    for (int i = 0; i < 5; i++)
        v[i] = sqlite3_column_int64(st, i);
    (void)sqlite3_reset(st);
    if (v[0] < 0 || v[1] < QK_BLOCK_VKEY_LEN || v[2] < 0 || v[3] < QK_BLOCK_VKEY_LEN ||
        v[4] > (sqlite3_int64)QK_BLOCK_MAX_BYTES || v[4] - v[3] < (sqlite3_int64)min_room)
        return qk_err_set(err, QK_ESTORAGE, "store: malformed lease bounds");
    *o = (owned_room){(uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2], (uint64_t)v[3],
                      (uint64_t)v[4]};
    return 1;
}

static int owned_pick(qk_store *s, const char *link, qk_side side, uint32_t len, owned_room *o,
                      qk_err *err)
{
    static const char low_sql[] = "SELECT block_id, lo, hi, lo, MIN(lease_lo, hi) FROM blocks"
                                  " INDEXED BY blocks_low_owned WHERE link = ? AND lease_lo > lo"
                                  " AND state = ? AND MIN(lease_lo, hi) - lo >= ?"
                                  " ORDER BY block_id ASC LIMIT 1";
    static const char high_sql[] = "SELECT block_id, lo, hi, MAX(lease_hi, lo), hi FROM blocks"
                                   " INDEXED BY blocks_high_owned WHERE link = ? AND hi > lease_hi"
                                   " AND state = ? AND hi - MAX(lease_hi, lo) >= ?"
                                   " ORDER BY block_id DESC LIMIT 1";
    sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? low_sql : high_sql, err);
    int rc = st ? qs_bindf(s, st, err, "tiI", link, QK_BLOCK_CONFIRMED, (int64_t)len) : QK_ESTORAGE;
    return rc ? rc : owned_row(s, st, 0, o, err);
}

/* Carve k = min(want, room / len) keys as one contiguous run of the owned room of o (LOW from
 * the front, HIGH from the back), keys DELIVERED and the run zeroed at once. *tail (if not
 * NULL): the room left in the block is a tail, more than nothing and less than len. */
static int carve_run(qk_store *s, const qk_reservation *r, qk_side side, const owned_room *o,
                     uint32_t len, size_t seq, size_t want, qk_key_ref *refs, uint8_t *mat,
                     size_t *took, bool *tail, qk_err *err)
{
    size_t k = (size_t)((o->e - o->a) / len);
    if (k > want)
        k = want;
    *took = 0;
    if (tail) {
        uint64_t left = o->e - o->a - (uint64_t)k * len;
        *tail = left > 0 && left < len;
    }
    if (k == 0) /* owned_pick promised room for one key: never loop without progress */
        return qk_err_set(err, QK_ESTORAGE, "store: no owned room in block %llu",
                          (unsigned long long)o->block_id);
    uint64_t bid = o->block_id;
    uint64_t run = (uint64_t)k * len;
    uint64_t start = side == QK_SIDE_LOW ? o->a : o->e - run;
    int rc = qs_range_recorded(s, r->link, bid, (uint32_t)start, (uint32_t)run, err);
    if (rc == 1)
        return qk_err_set(err, QK_ESTORAGE, "store: owned room of block %llu holds used bytes",
                          (unsigned long long)bid);
    /* the row as owned_pick read it in this transaction (state CONFIRMED): counted in code */
    qs_block_row was = {.lo = o->lo, .hi = o->hi, .state = QK_BLOCK_CONFIRMED};
    if (!rc)
        rc = qs_set_cursor(s, r->link, bid, side, side == QK_SIDE_LOW ? start + run : start, &was,
                           err);
    /* read and used up at once: each segment opened and resealed (or deleted) once */
    if (!rc)
        rc = qs_range_take(s, r->link, bid, (uint32_t)start, (uint32_t)run, mat, err);
    /* one record for the run, key IDs derived from it (docs/adr/0003-request-records.md) */
    qs_run_row row; /* ~1 KiB: the bitmap is unused at the master end */
    memset(&row, 0, sizeof row);
    snprintf(row.request_id, sizeof row.request_id, "%s", r->request_id);
    snprintf(row.link, sizeof row.link, "%s", r->link);
    qs_run_new_prefix(s, row.prefix);
    row.seq = (uint32_t)seq;
    row.block_id = bid;
    row.off = (uint32_t)start;
    row.len = len;
    row.n = (uint32_t)k;
    row.state = QS_KEY_DELIVERED;
    row.n_done = (uint32_t)k;
    snprintf(row.master, sizeof row.master, "%s", r->master);
    row.expires_at = r->expires_at;
    if (!rc)
        rc = qs_run_insert(s, &row, err);
    for (size_t j = 0; !rc && j < k; j++) {
        qk_key_ref *ref = &refs[j];
        memset(ref, 0, sizeof *ref); /* no check: the block digest covered the bytes */
        qs_run_key_id(row.prefix, (uint32_t)j, ref->key_id);
        ref->block_id = bid;
        ref->offset = (uint32_t)(start + (uint64_t)j * len);
        ref->length = len;
    }
    *took = k;
    return rc;
}

int qs_owned_close(qk_store *s, const char *link, qk_side side, sqlite3_int64 b, sqlite3_int64 x,
                   sqlite3_int64 y, qk_err *err)
{
    if (!link || !link[0] || b < 0 || x < QK_BLOCK_VKEY_LEN || y <= x ||
        y > (sqlite3_int64)QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_ESTORAGE, "store: malformed lease bounds");
    int rc = qs_set_cursor(s, link, (uint64_t)b, side,
                           side == QK_SIDE_LOW ? (uint64_t)y : (uint64_t)x, NULL, err);
    return rc ? rc : qs_range_zero(s, link, (uint64_t)b, (uint32_t)x, (uint32_t)(y - x), err);
}

/* Zero and close up to QS_TAIL_PASS owned tails shorter than len in blocks where nothing is
 * left to lease (they could only serve shorter keys): the block leaves the owned-room index.
 * It runs (a SELECT that usually finds nothing: 2.7 us per key pair at 64 connections) after a
 * carve that left a tail in its block, after a sweep that closed a full pass, and every
 * QS_TAIL_EVERY carve calls, for the tails a lease grant or a longer key leaves; a tail left
 * open meanwhile only costs owned_pick a step over its index entry. */
static bool tails_due(qk_store *s, bool carved_tail)
{
    return carved_tail || s->tail_more || ++s->tail_calls >= QS_TAIL_EVERY;
}

static int close_tails(qk_store *s, const char *link, qk_side side, uint32_t len, qk_err *err)
{
    static const char low_sql[] = "SELECT block_id, lo, MIN(lease_lo, hi) FROM blocks"
                                  " INDEXED BY blocks_low_owned WHERE link = ? AND lease_lo > lo"
                                  " AND MIN(lease_lo, hi) - lo < ?"
                                  " AND lease_lo >= MIN(lease_hi, hi) LIMIT 1";
    static const char high_sql[] = "SELECT block_id, MAX(lease_hi, lo), hi FROM blocks"
                                   " INDEXED BY blocks_high_owned WHERE link = ? AND hi > lease_hi"
                                   " AND hi - MAX(lease_hi, lo) < ?"
                                   " AND lease_hi <= MAX(lease_lo, lo) LIMIT 1";
    int rc = 0, closed = 0;
    for (int pass = 0; !rc && pass < QS_TAIL_PASS; pass++) {
        sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? low_sql : high_sql, err);
        rc = st ? qs_bindf(s, st, err, "tI", link, (int64_t)len) : QK_ESTORAGE;
        if (!rc)
            rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        sqlite3_int64 b = sqlite3_column_int64(st, 0);
        sqlite3_int64 x = sqlite3_column_int64(st, 1);
        sqlite3_int64 y = sqlite3_column_int64(st, 2);
        (void)sqlite3_reset(st);
        rc = qs_owned_close(s, link, side, b, x, y, err);
        closed += rc == 0;
    }
    s->tail_calls = 0;
    s->tail_more = closed == QS_TAIL_PASS;
    return rc < 0 ? rc : 0;
}

/* What both carves start with: the checks (a failure: nothing begun, *begun false), then the
 * transaction (*begun) and the request's row, whose result is returned. */
static int carve_start(qk_store *s, const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                       qk_key_ref *refs, uint8_t *material, bool noticed, bool *begun, qk_err *err)
{
    *begun = false;
    int rc = qs_check_carve(r, side, n, len, refs, material, err);
    if (!rc)
        rc = qs_check_peer_link(r->link, side, err);
    if (!rc)
        rc = qs_begin(s, err);
    if (rc)
        return rc;
    *begun = true;
    /* A power loss that undoes this carve burns the lease room it used (store_recover.c): an
     * inline handler's reply needs its COMMIT, not its sync. */
    qs_recoverable(s);
    /* a known request ID (or tombstone) fails the primary key: QK_EEXIST */
    rc = qs_insert_request_noticed(s, r, QS_DIR_OUT, QS_REQ_DONE, noticed, true, err);
    if (rc == QK_EEXIST)
        rc = qk_err_set(err, QK_EEXIST, "store: request %s already known", r->request_id);
    return rc;
}

int qk_store_carve_owned(qk_store *s, const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                         qk_key_ref *refs, uint8_t *material, qk_err *err)
{
    bool begun;
    int rc = carve_start(s, r, side, n, len, refs, material, false, &begun, err);
    if (!begun)
        return rc;
    /* each pass takes a block's whole run; n <= QS_MAX_KEYS bounds the passes */
    bool tail = false;
    for (size_t i = 0; !rc && i < n;) {
        owned_room o = {0, 0, 0, 0, 0};
        rc = owned_pick(s, r->link, side, len, &o, err);
        if (rc == 0) {
            rc =
                qk_err_set(err, QK_ENOKEY, "store: link %s: no leased room for key %zu of %u bytes",
                           r->link, i + 1, len);
            break;
        }
        if (rc < 0)
            break;
        size_t took = 0;
        bool t = false;
        rc = carve_run(s, r, side, &o, len, i, n - i, &refs[i], material + i * (size_t)len, &took,
                       &t, err);
        tail |= t;
        i += took;
    }
    if (!rc && tails_due(s, tail))
        rc = close_tails(s, r->link, side, len, err);
    if (rc) {
        sodium_memzero(material, n * (size_t)len);
        sodium_memzero(refs, n * sizeof *refs);
    } else {
        qs_noteq_stage(s, r, refs, n); /* the notifier's copy, queued if the call is kept */
    }
    return qs_end(s, rc, rc == 0, err);
}

/* The side's block with the most granted, uncarved room (at least one byte). 1 found, 0 none. */
static int owned_largest(qk_store *s, const char *link, qk_side side, owned_room *o, qk_err *err)
{
    static const char low_sql[] = "SELECT block_id, lo, hi, lo, MIN(lease_lo, hi) FROM blocks"
                                  " INDEXED BY blocks_low_owned WHERE link = ? AND lease_lo > lo"
                                  " AND state = ? AND MIN(lease_lo, hi) > lo"
                                  " ORDER BY MIN(lease_lo, hi) - lo DESC, block_id ASC LIMIT 1";
    static const char high_sql[] = "SELECT block_id, lo, hi, MAX(lease_hi, lo), hi FROM blocks"
                                   " INDEXED BY blocks_high_owned WHERE link = ? AND hi > lease_hi"
                                   " AND state = ? AND hi > MAX(lease_hi, lo)"
                                   " ORDER BY hi - MAX(lease_hi, lo) DESC, block_id DESC LIMIT 1";
    sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? low_sql : high_sql, err);
    int rc = st ? qs_bindf(s, st, err, "ti", link, QK_BLOCK_CONFIRMED) : QK_ESTORAGE;
    return rc ? rc : owned_row(s, st, 1, o, err);
}

int qk_store_carve_owned_pieces(qk_store *s, const qk_reservation *r, qk_side side, uint32_t head,
                                uint32_t total, size_t max_pieces, qk_key_ref *refs, size_t *nrefs,
                                uint8_t *material, qk_err *err)
{
    if (!nrefs || total < 1 || total > QK_BLOCK_MAX_BYTES || max_pieces < 1 ||
        max_pieces >= QS_MAX_KEYS)
        return qk_err_set(err, QK_EINVAL, "store: carve_owned_pieces: bad lengths or pieces");
    *nrefs = 0;
    bool begun; /* noticed: the relay message carries its notice (store.h) */
    int rc = carve_start(s, r, side, 1, head, refs, material, true, &begun, err);
    if (!begun)
        return rc;
    owned_room o = {0, 0, 0, 0, 0};
    size_t took = 0, n = 0, off = 0;
    if (!rc) {
        rc = owned_pick(s, r->link, side, head, &o, err);
        if (rc == 0)
            rc = qk_err_set(err, QK_ENOKEY, "store: link %s: no leased room for %u bytes", r->link,
                            head);
    }
    if (rc == 1)
        rc = carve_run(s, r, side, &o, head, 0, 1, refs, material, &took, NULL, err);
    n = took;
    off = head;
    /* the rest in pieces: all of it from one block if one can hold it, else the largest room */
    for (uint32_t left = total; !rc && left > 0;) {
        if (n > max_pieces) {
            rc = qk_err_set(err, QK_ENOKEY, "store: link %s: %u bytes need more than %zu pieces",
                            r->link, total, max_pieces);
            break;
        }
        rc = owned_pick(s, r->link, side, left, &o, err);
        if (rc == 0)
            rc = owned_largest(s, r->link, side, &o, err);
        if (rc == 0) {
            rc = qk_err_set(err, QK_ENOKEY, "store: link %s: no leased room for %u more bytes",
                            r->link, left);
            break;
        }
        if (rc < 0)
            break;
        uint32_t piece = o.e - o.a < left ? (uint32_t)(o.e - o.a) : left;
        rc = carve_run(s, r, side, &o, piece, n, 1, &refs[n], material + off, &took, NULL, err);
        n += took;
        off += piece;
        left -= piece;
    }
    if (rc) {
        sodium_memzero(material, (size_t)head + total);
        sodium_memzero(refs, (max_pieces + 1) * sizeof *refs);
        n = 0;
    }
    *nrefs = n;
    return qs_end(s, rc, rc == 0, err);
}

void qk_notice_free(qk_notice *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].slaves);
        free(v[i].keys);
        v[i].slaves = NULL;
        v[i].keys = NULL;
        v[i].nslaves = v[i].nkeys = 0;
    }
}

/* The slaves of v's request from request_slaves, in the order given, into v->slaves. */
static int slaves_load(qk_store *s, qk_notice *v, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT slave FROM request_slaves WHERE request_id = ?"
                               " ORDER BY rowid LIMIT ?",
                               err);
    int rc = st ? qs_bindf(s, st, err, "tI", v->request_id, (int64_t)QS_MAX_SLAVES) : QK_ESTORAGE;
    while (!rc && v->nslaves < QS_MAX_SLAVES) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = 0;
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(v->slaves[v->nslaves++], QK_STORE_ID_MAX + 1, "%s", t ? (const char *)t : "");
    }
    if (st)
        (void)sqlite3_reset(st);
    return rc;
}

/* Slaves (in the order given) and keys (seq order) of a request into v. A request of one slave
 * carved from a lease since v8 has it in v already (requests.slave), and no request_slaves row. */
static int notice_load(qk_store *s, qk_notice *v, qk_err *err)
{
    if (!v->slaves && !(v->slaves = calloc(QS_MAX_SLAVES, sizeof *v->slaves)))
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    int rc = v->nslaves ? 0 : slaves_load(s, v, err);
    /* carved by carve_owned since v6: runs, and then no key rows; key rows before */
    if (!rc)
        rc = qs_run_load_refs(s, v->request_id, &v->keys, &v->nkeys, err);
    if (rc || v->nkeys > 0)
        return rc; /* none: v->keys stays NULL */
    qs_key_row *rows = NULL;
    size_t nr = 0;
    rc = qs_load_request_keys(s, v->request_id, &rows, &nr, err);
    if (!rc && nr > 0 && !(v->keys = calloc(nr, sizeof *v->keys)))
        rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
    for (size_t i = 0; !rc && i < nr; i++) {
        memcpy(v->keys[i].key_id, rows[i].key_id, sizeof v->keys[i].key_id);
        v->keys[i].block_id = rows[i].block_id;
        v->keys[i].offset = rows[i].off;
        v->keys[i].length = rows[i].len;
    }
    if (!rc)
        v->nkeys = nr;
    free(rows);
    return rc;
}

int qk_store_notices_pending(qk_store *s, const char *link, qk_notice *out, size_t cap, size_t *n,
                             qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (!n || (cap && !out))
        return qk_err_set(err, QK_EINVAL, "store: notices_pending needs out and n");
    *n = 0;
    if (cap > QS_NOTICE_MAX)
        cap = QS_NOTICE_MAX;
    if (cap == 0)
        return 0;
    memset(out, 0, cap * sizeof *out);
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    /* The peer may hear of a carve before it is synced: if a power loss undoes it here, the
     * recovery burns its lease room, and the peer's copy stays the one record of those keys
     * (docs/adr/0002-key-store.md, "Replies at commit"). */
    qs_recoverable(s);
    if (qs_noteq_clean(s, link)) { /* the carves' own copies (store_noteq.c) */
        rc = qs_noteq_take(s, link, out, cap, n, err);
        return qs_end(s, rc, false, err);
    }
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT request_id, master, expires_at, slave FROM requests"
                               " INDEXED BY requests_unnoticed WHERE link = ? AND noticed = 0"
                               " AND direction = ? AND state = ? ORDER BY created, rowid LIMIT ?",
                               err);
    rc =
        st ? qs_bindf(s, st, err, "tiiI", link, QS_DIR_OUT, QS_REQ_DONE, qs_i64(cap)) : QK_ESTORAGE;
    size_t got = 0;
    while (!rc && got < cap) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = 0;
        const unsigned char *id = sqlite3_column_text(st, 0);
        const unsigned char *m = sqlite3_column_text(st, 1);
        sqlite3_int64 exp = sqlite3_column_int64(st, 2);
        snprintf(out[got].request_id, sizeof out[got].request_id, "%s", id ? (const char *)id : "");
        snprintf(out[got].master, sizeof out[got].master, "%s", m ? (const char *)m : "");
        out[got].expires_at = exp > 0 ? (uint64_t)exp : 0;
        const unsigned char *one = sqlite3_column_text(st, 3); /* schema v8: one slave inline */
        if (one && !(out[got].slaves = calloc(QS_MAX_SLAVES, sizeof *out[got].slaves)))
            rc = qk_err_set(err, QK_ENOMEM, "store: out of memory");
        else if (one)
            snprintf(out[got].slaves[out[got].nslaves++], QK_STORE_ID_MAX + 1, "%s",
                     (const char *)one);
        got++;
    }
    if (st)
        (void)sqlite3_reset(st); /* before notice_load runs other statements */
    for (size_t i = 0; !rc && i < got; i++)
        rc = notice_load(s, &out[i], err);
    if (rc)
        qk_notice_free(out, got);
    else
        *n = got;
    if (!rc && got < cap) /* all of the link's pending notices: the queue answers from now on */
        qs_noteq_fill(s, link, out, got);
    return qs_end(s, rc, false, err);
}

int qk_store_notices_done(qk_store *s, const char *const *request_ids, size_t n, qk_err *err)
{
    if (n == 0)
        return 0;
    if (!request_ids || n > QS_NOTICE_MAX)
        return qk_err_set(err, QK_EINVAL, "store: notices_done needs 1..%d request ids",
                          QS_NOTICE_MAX);
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        rc = qs_check_id(request_ids[i], "request_id", err);
    if (rc || (rc = qs_begin(s, err)) != 0)
        return rc;
    qs_lazy(s); /* lost in a crash: the notices go again, and the peer takes them again */
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_stmt *st = qs_prep(s,
                                   "UPDATE requests SET noticed = 1 WHERE request_id = ?"
                                   " AND direction = ? AND noticed = 0",
                                   err);
        rc = st ? qs_bindf(s, st, err, "ti", request_ids[i], QS_DIR_OUT) : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    if (rc)
        qs_noteq_reset(s); /* the table still has them pending: it answers again */
    else
        qs_noteq_done(s, request_ids, n);
    return qs_end(s, rc, rc == 0, err);
}

/* ---- notice_in ---------------------------------------------------------------------------- */

/* A notice's key against local state: a known, unburned block, inside the peer's granted lease
 * (LOW peer: to <= lease_lo; HIGH peer: from >= lease_hi), not overlapping anything recorded,
 * a new key ID. Read-only. */
/* The block row of the previous key of the batch (keys come in runs from one block, and a
 * master carves its requests one after another from the same lease). A notice_in call writes
 * no block row (a notice's keys lie inside the peer's lease, past which the grant moved the
 * cursors already), so the row read for one notice holds for the rest of the call. */
typedef struct {
    bool have;
    uint64_t block_id;
    int found;
    qs_block_row b;
} block_cache;

/* Block block_id of link through c: 1 found (c->b), 0 unknown, <0 error. */
static int cached_block(qk_store *s, const char *link, uint64_t block_id, block_cache *c,
                        qk_err *err)
{
    if (!c->have || c->block_id != block_id) {
        c->have = false;
        c->found = qs_block_get(s, link, block_id, &c->b, err);
        if (c->found < 0)
            return c->found;
        c->have = true;
        c->block_id = block_id;
    }
    return c->found;
}

static int notice_key_ok(qk_store *s, const char *link, qk_side peer_side, const qk_key_ref *k,
                         block_cache *c, qk_err *err)
{
    int found = cached_block(s, link, k->block_id, c, err);
    if (found < 0)
        return found;
    const qs_block_row *b = &c->b;
    if (found == 0 || b->state == QK_BLOCK_BURNED)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s: block %llu unknown or burned",
                          k->key_id, (unsigned long long)k->block_id);
    uint64_t end = (uint64_t)k->offset + k->length;
    if (end > b->len || (peer_side == QK_SIDE_LOW ? end > b->lease_lo : k->offset < b->lease_hi))
        return qk_err_set(err, QK_EINVAL, "store: key %s: outside the peer's lease of block %llu",
                          k->key_id, (unsigned long long)k->block_id);
    return qs_ref_unused(s, link, k, err);
}

/* ---- runs at the slave end (docs/adr/0003-request-records.md) ------------------------------ */

/* The runs of a notice, when its keys are runs as carve_owned makes them: one slave, and the
 * keys in groups, each the keys 0..k-1 of one prefix (canonical version-4 IDs), one length,
 * contiguous ranges of one block. Anything else is recorded per key. */
typedef struct {
    size_t first, n; /* keys [first, first + n) of the notice */
} notice_run;

/* 1 run-shaped (runs[0..*nr) filled; runs holds v->nkeys entries), 0 not. */
static int notice_runs(const qk_notice *v, notice_run *runs, size_t *nr)
{
    *nr = 0;
    if (v->nslaves != 1)
        return 0;
    uint8_t pre[QS_RUN_PREFIX_LEN], p0[QS_RUN_PREFIX_LEN];
    for (size_t j = 0; j < v->nkeys; j++) {
        const qk_key_ref *k = &v->keys[j];
        uint32_t idx = 0;
        if (qs_run_parse_id(k->key_id, pre, &idx) != 0)
            return 0;
        if (idx == 0) { /* a new run */
            memcpy(p0, pre, sizeof p0);
            runs[(*nr)++] = (notice_run){j, 1};
            continue;
        }
        if (*nr == 0)
            return 0;
        notice_run *r = &runs[*nr - 1];
        const qk_key_ref *f = &v->keys[r->first];
        if (idx != r->n || memcmp(pre, p0, sizeof p0) != 0 || k->block_id != f->block_id ||
            k->length != f->length || (uint64_t)k->offset != f->offset + (uint64_t)idx * f->length)
            return 0;
        r->n++;
    }
    return 1;
}

/* A run of a notice against local state, as notice_key_ok per key: a known, unburned block,
 * the whole run inside the peer's granted lease, overlapping nothing recorded, an unknown
 * prefix (no run has it, no key row has an ID under it). Read-only. */
static int notice_run_ok(qk_store *s, const char *link, qk_side peer_side, const qk_notice *v,
                         const notice_run *nr, block_cache *c, qk_err *err)
{
    const qk_key_ref *k = &v->keys[nr->first];
    int rc = cached_block(s, link, k->block_id, c, err);
    if (rc < 0)
        return rc;
    const qs_block_row *b = &c->b;
    if (rc == 0 || b->state == QK_BLOCK_BURNED)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s: block %llu unknown or burned",
                          k->key_id, (unsigned long long)k->block_id);
    uint64_t len = (uint64_t)k->length * nr->n;
    uint64_t end = k->offset + len;
    if (end > b->len || (peer_side == QK_SIDE_LOW ? end > b->lease_lo : k->offset < b->lease_hi))
        return qk_err_set(err, QK_EINVAL, "store: key %s: outside the peer's lease of block %llu",
                          k->key_id, (unsigned long long)k->block_id);
    rc = qs_range_recorded(s, link, k->block_id, k->offset, (uint32_t)len, err);
    if (rc == 1)
        return qk_err_set(err, QK_ECOLLISION, "store: key %s: range of block %llu already used",
                          k->key_id, (unsigned long long)k->block_id);
    if (rc < 0)
        return rc;
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint32_t idx = 0;
    if (qs_run_parse_id(k->key_id, prefix, &idx) != 0) /* notice_runs parsed it */
        return qk_err_set(err, QK_ESTORAGE, "store: run key id %s", k->key_id);
    rc = qs_run_prefix_taken(s, prefix, err);
    if (rc == 0)
        rc = qs_run_prefix_in_keys(s, prefix, err);
    if (rc == 1)
        return qk_err_set(err, QK_EEXIST, "store: key id %s already known", k->key_id);
    return rc;
}

/* Record the runs of a validated notice RESERVED for its one slave. */
static int notice_record_runs(qk_store *s, const qk_reservation *r, const qk_notice *v,
                              const notice_run *runs, size_t nr, qk_err *err)
{
    qs_run_row *row = malloc(sizeof *row);
    if (!row)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    int rc = 0;
    for (size_t i = 0; !rc && i < nr; i++) {
        const qk_key_ref *k = &v->keys[runs[i].first];
        memset(row, 0, sizeof *row);
        uint32_t idx = 0;
        if (qs_run_parse_id(k->key_id, row->prefix, &idx) != 0) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: run key id %s", k->key_id);
            break;
        }
        snprintf(row->request_id, sizeof row->request_id, "%s", r->request_id);
        snprintf(row->link, sizeof row->link, "%s", r->link);
        snprintf(row->master, sizeof row->master, "%s", r->master);
        snprintf(row->slave, sizeof row->slave, "%s", r->slaves[0]);
        row->has_slave = true;
        row->seq = (uint32_t)runs[i].first;
        row->block_id = k->block_id;
        row->off = k->offset;
        row->len = k->length;
        row->n = (uint32_t)runs[i].n;
        row->state = QS_KEY_RESERVED;
        row->n_done = 0;
        row->expires_at = r->expires_at;
        rc = qs_run_insert(s, row, err);
        if (!rc) {
            qs_known_stage(s, row->prefix, row->n); /* key_known's, if the call is kept */
            qs_join_stage(s, row->prefix);          /* its fetch is likely soon */
        }
    }
    free(row);
    return rc;
}

/* Validate one notice (read-only). 0 new (to record), 1 known with the same keys (nothing to
 * do), <0 refused or error. */
static int notice_check(qk_store *s, const qk_reservation *r, qk_side peer_side, const qk_notice *v,
                        const notice_run *runs, size_t nruns, block_cache *c, qk_err *err)
{
    int rc = qs_check_reservation(r, err);
    if (rc)
        return rc;
    if (!v->keys || v->nkeys < 1 || v->nkeys > QS_MAX_KEYS)
        return qk_err_set(err, QK_EINVAL, "store: notice %s: key count %zu outside 1..%d",
                          r->request_id, v->nkeys, QS_MAX_KEYS);
    for (size_t i = 0; i < v->nkeys; i++)
        if ((rc = qs_check_ref(&v->keys[i], err)) != 0)
            return rc;
    int dir = 0, state = 0;
    rc = qs_request_get(s, r->request_id, &dir, &state, err);
    if (rc == 1) {
        if (state == QS_REQ_BURNED)
            return qk_err_set(err, QK_EINVAL, "store: request %s was burned", r->request_id);
        if (dir != QS_DIR_IN)
            return qk_err_set(err, QK_EEXIST, "store: request %s is an outgoing one",
                              r->request_id);
        rc = qs_same_request(s, r, v->keys, v->nkeys, err);
        return rc ? rc : 1;
    }
    if (rc < 0 || (rc = qs_check_batch_overlap(v->keys, v->nkeys, err)) != 0)
        return rc;
    if (nruns > 0) {
        for (size_t i = 0; !rc && i < nruns; i++)
            rc = notice_run_ok(s, r->link, peer_side, v, &runs[i], c, err);
        return rc;
    }
    for (size_t i = 0; !rc && i < v->nkeys; i++)
        rc = notice_key_ok(s, r->link, peer_side, &v->keys[i], c, err);
    return rc;
}

static bool fatal(int rc)
{
    return rc == QK_ESTORAGE || rc == QK_ENOMEM;
}

int qk_store_notice_in(qk_store *s, const char *link, qk_side peer_side, const qk_notice *v,
                       size_t n, int *results, qk_err *err)
{
    int rc = qs_check_peer_link(link, peer_side, err);
    if (rc)
        return rc;
    if (n == 0)
        return 0;
    if (!v || !results || n > QS_NOTICE_MAX)
        return qk_err_set(err, QK_EINVAL, "store: notice_in needs 1..%d notices and results",
                          QS_NOTICE_MAX);
    notice_run *runs = malloc(QS_MAX_KEYS * sizeof *runs);
    if (!runs)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    if ((rc = qs_begin(s, err)) != 0) {
        free(runs);
        return rc;
    }
    block_cache bc = {false, 0, 0, {0}}; /* for the whole call: it writes no block row */
    for (size_t i = 0; !rc && i < n; i++) {
        const char *sl[QS_MAX_SLAVES];
        size_t ns = v[i].nslaves <= QS_MAX_SLAVES && v[i].slaves ? v[i].nslaves : 0;
        for (size_t j = 0; j < ns; j++)
            sl[j] = v[i].slaves[j];
        qk_reservation r = {v[i].request_id, link, v[i].master, sl, v[i].nslaves, v[i].expires_at};
        if (ns != v[i].nslaves)
            r.nslaves = 0; /* refused by qs_check_reservation */
        qk_err e = {0, ""};
        size_t nruns = 0;
        if (v[i].keys && v[i].nkeys >= 1 && v[i].nkeys <= QS_MAX_KEYS &&
            notice_runs(&v[i], runs, &nruns) == 0)
            nruns = 0;
        int res = notice_check(s, &r, peer_side, &v[i], runs, nruns, &bc, &e);
        if (fatal(res)) {
            rc = res;
            if (err)
                *err = e;
            break;
        }
        if (res < 0) { /* refused: changes nothing but the audit log */
            results[i] = res;
            rc = qs_audit_insert(s, "notice_refused", link, NULL, NULL, e.msg, err);
            continue;
        }
        results[i] = 0;
        if (res == 1)
            continue; /* already reserved */
        /* validated: a failure from here on fails the whole batch. A notice recorded as runs
         * names its one slave in each run row (runs.slave), and nothing reads the request's
         * slave rows at this end (they serve key rows' copies and this end's own notices):
         * the request row alone, one insert fewer per notice. */
        qk_reservation rr = r;
        if (nruns > 0)
            rr.nslaves = 0;
        rc = qs_insert_request(s, &rr, QS_DIR_IN, QS_REQ_DONE, err);
        /* every key lies inside the peer's granted lease, past which the grant moved the
         * mirror cursor already: no cursor update per key */
        if (!rc && nruns > 0)
            rc = notice_record_runs(s, &r, &v[i], runs, nruns, err);
        for (size_t j = 0; !rc && nruns == 0 && j < v[i].nkeys; j++)
            rc = qs_reserve_key(s, &r, &v[i].keys[j], j, err);
        if (rc)
            (void)qk_err_prefix(err, "notice %s", v[i].request_id);
    }
    free(runs);
    return qs_end(s, rc, rc == 0, err);
}
