/* store_lease.c - leases: ranges of a block agreed with the peer ahead of demand
 * (docs/adr/0002-key-store.md, "Leases and notices"); carving from them is in store_notice.c.
 *
 * Per block row: lease_lo (LOW owns [QK_BLOCK_VKEY_LEN, lease_lo)), lease_hi (HIGH owns
 * [lease_hi, len)), lease_ask (this end's pending bound, NULL when none); lo/hi are the
 * carving cursors as before. The unleased room of a block, seen from this end, is
 * [max(lease_lo, lo), min(lease_hi, hi)). A side asks for at most half of it in the block
 * where the two sides meet (so that two asks computed from the same view never overlap), grants the
 * peer only what reaches into nothing it owns or asks for, and carves only inside its granted bound
 * (store_notice.c). Granting moves the mirror cursor past the peer's lease (lo = max(lo, to) / hi =
 * min(hi, from)), so this end's own carving (qk_store_carve as well) never reaches into it. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* Below this much unleased room a side asks for all of it rather than half (a lease smaller
 * than this is not worth a round trip); two such asks from the same view overlap and are both
 * refused, which is safe, and the next view differs. Small: with 4 KiB blocks (a slow link's
 * device blocks) a threshold of a whole block let the first end to ask take all of the only
 * block, and the other end's first request got 503 until the next block came. */
#define QS_LEASE_MIN_BYTES 256u

int qs_check_peer_link(const char *link, qk_side side, qk_err *err)
{
    int rc = qs_check_id(link, "link", err);
    if (rc)
        return rc;
    if (strcmp(link, QK_LOCAL_LINK) == 0)
        return qk_err_set(err, QK_EINVAL, "store: the local link has no leases");
    if (side != QK_SIDE_LOW && side != QK_SIDE_HIGH)
        return qk_err_set(err, QK_EINVAL, "store: bad side");
    return 0;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

bool qs_lease_clear_of_ours(const qs_block_row *b, qk_side peer_side, uint64_t from, uint64_t to)
{
    if (peer_side == QK_SIDE_LOW)
        return to <= b->lease_hi && (!b->has_ask || to <= b->ask);
    return from >= b->lease_lo && (!b->has_ask || from >= b->ask);
}

/* The range an ask of this end covers: [free start, ask) for LOW, [ask, free end) for HIGH.
 * false if it is empty (the cursors moved past it meanwhile). */
static bool ask_range(const qs_block_row *b, qk_side side, uint64_t *from, uint64_t *to)
{
    if (side == QK_SIDE_LOW) {
        *from = max64(b->lease_lo, b->lo);
        *to = b->ask;
    } else {
        *from = b->ask;
        *to = min64(b->lease_hi, b->hi);
    }
    return *from < *to && *from >= QK_BLOCK_VKEY_LEN && *to <= b->len;
}

static int set_ask(qk_store *s, const char *link, uint64_t block_id, const uint64_t *ask,
                   qk_err *err)
{
    sqlite3_stmt *st =
        qs_prep(s, "UPDATE blocks SET lease_ask = ? WHERE link = ? AND block_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = ask ? qs_bindf(s, st, err, "ItI", (int64_t)*ask, link, qs_i64(block_id))
                 : qs_bindf(s, st, err, "ttI", NULL, link, qs_i64(block_id));
    return rc ? rc : qs_step_done(s, st, err);
}

/* Fill *l from the recorded ask of block_id. 1 filled, 0 no usable ask (none, or empty:
 * then cleared), <0 error. */
static int ask_fill(qk_store *s, const char *link, qk_side side, uint64_t block_id, qk_lease *l,
                    qk_err *err)
{
    qs_block_row b;
    int rc = qs_block_get(s, link, block_id, &b, err);
    if (rc <= 0 || !b.has_ask)
        return rc < 0 ? rc : 0;
    uint64_t from = 0, to = 0;
    if (!ask_range(&b, side, &from, &to)) {
        rc = set_ask(s, link, block_id, NULL, err);
        return rc ? rc : 0;
    }
    l->block_id = block_id;
    l->from = (uint32_t)from;
    l->to = (uint32_t)to;
    return 1;
}

/* Block IDs of this end's asks on link, side order (LOW oldest first), up to cap. */
static int asks_list(qk_store *s, const char *link, qk_side side, uint64_t *ids, size_t cap,
                     size_t *n, qk_err *err)
{
    static const char asc[] = "SELECT block_id FROM blocks INDEXED BY blocks_with_ask"
                              " WHERE link = ? AND lease_ask IS NOT NULL AND state = ?"
                              " ORDER BY block_id ASC LIMIT ?";
    static const char desc[] = "SELECT block_id FROM blocks INDEXED BY blocks_with_ask"
                               " WHERE link = ? AND lease_ask IS NOT NULL AND state = ?"
                               " ORDER BY block_id DESC LIMIT ?";
    *n = 0;
    sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? asc : desc, err);
    int rc = st ? qs_bindf(s, st, err, "tiI", link, QK_BLOCK_CONFIRMED, qs_i64(cap)) : QK_ESTORAGE;
    while (!rc && *n < cap) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = 0;
        sqlite3_int64 id = sqlite3_column_int64(st, 0);
        if (id < 0)
            rc = qk_err_set(err, QK_ESTORAGE, "store: malformed block id");
        else
            ids[(*n)++] = (uint64_t)id;
    }
    if (st)
        (void)sqlite3_reset(st);
    return rc;
}

/* A new ask: the side's block with unleased room (LOW the oldest, HIGH the newest), recorded
 * as lease_ask. Where the two sides can meet - no other block with unleased room beyond it in
 * the peer's direction - at most half of that room (all of it below QS_LEASE_MIN_BYTES), so
 * that two asks computed from the same view never overlap; elsewhere up to want (the peer,
 * asking from its end, starts at a block beyond this one). 1 asked, 0 no room, <0 error. */
static int ask_new(qk_store *s, const char *link, qk_side side, uint32_t want, qk_lease *l,
                   qk_err *err)
{
    static const char asc[] = "SELECT block_id FROM blocks INDEXED BY blocks_with_room"
                              " WHERE link = ? AND state = ? AND hi > lo"
                              " AND MIN(lease_hi, hi) > MAX(lease_lo, lo)"
                              " ORDER BY block_id ASC LIMIT 2";
    static const char desc[] = "SELECT block_id FROM blocks INDEXED BY blocks_with_room"
                               " WHERE link = ? AND state = ? AND hi > lo"
                               " AND MIN(lease_hi, hi) > MAX(lease_lo, lo)"
                               " ORDER BY block_id DESC LIMIT 2";
    sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? asc : desc, err);
    int rc = st ? qs_bindf(s, st, err, "ti", link, QK_BLOCK_CONFIRMED) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc != 1)
        return rc;
    sqlite3_int64 id = sqlite3_column_int64(st, 0);
    bool meeting = (rc = qs_step(s, st, err)) == 0; /* no second block with room */
    (void)sqlite3_reset(st);
    if (rc < 0)
        return rc;
    if (id < 0)
        return qk_err_set(err, QK_ESTORAGE, "store: malformed block id");
    qs_block_row b;
    rc = qs_block_get(s, link, (uint64_t)id, &b, err);
    if (rc <= 0)
        return rc < 0 ? rc : qk_err_set(err, QK_ESTORAGE, "store: block vanished");
    uint64_t a = max64(b.lease_lo, b.lo), e = min64(b.lease_hi, b.hi);
    if (e <= a || a < QK_BLOCK_VKEY_LEN || e > b.len)
        return qk_err_set(err, QK_ESTORAGE, "store: malformed lease bounds of block %lld",
                          (long long)id);
    uint64_t room = e - a;
    uint64_t take = !meeting                     ? min64(want, room)
                    : room <= QS_LEASE_MIN_BYTES ? room
                                                 : min64(want, room / 2);
    uint64_t ask = side == QK_SIDE_LOW ? a + take : e - take;
    if ((rc = set_ask(s, link, (uint64_t)id, &ask, err)) != 0)
        return rc;
    return ask_fill(s, link, side, (uint64_t)id, l, err);
}

int qk_store_lease_ask(qk_store *s, const char *link, qk_side side, uint32_t want, qk_lease *l,
                       qk_err *err)
{
    int rc = qs_check_peer_link(link, side, err);
    if (rc)
        return rc;
    if (!l || want == 0)
        return qk_err_set(err, QK_EINVAL, "store: lease_ask needs want > 0 and an output");
    memset(l, 0, sizeof *l);
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    uint64_t id = 0;
    size_t n = 0;
    rc = asks_list(s, link, side, &id, 1, &n, err);
    if (!rc && n == 1)
        rc = ask_fill(s, link, side, id, l, err); /* the ask again (or 0: it was empty) */
    if (rc == 0)
        rc = ask_new(s, link, side, want, l, err);
    if (rc == 0)
        rc = qk_err_set(err, QK_ENOKEY, "store: link %s has no confirmed block with unleased room",
                        link);
    else if (rc == 1)
        rc = 0;
    if (rc)
        memset(l, 0, sizeof *l);
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_lease_asks(qk_store *s, const char *link, qk_side side, qk_lease *out, size_t cap,
                        size_t *n, qk_err *err)
{
    int rc = qs_check_peer_link(link, side, err);
    if (rc)
        return rc;
    if (!n || (cap && !out))
        return qk_err_set(err, QK_EINVAL, "store: lease_asks needs out and n");
    *n = 0;
    if (cap == 0)
        return 0;
    uint64_t *ids = calloc(cap, sizeof *ids);
    if (!ids)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    size_t nid = 0;
    if ((rc = qs_begin(s, err)) == 0) {
        rc = asks_list(s, link, side, ids, cap, &nid, err);
        for (size_t i = 0; !rc && i < nid; i++) {
            rc = ask_fill(s, link, side, ids[i], &out[*n], err);
            if (rc == 1)
                (*n)++;
            rc = rc < 0 ? rc : 0;
        }
        if (rc)
            *n = 0;
        rc = qs_end(s, rc, rc == 0, err); /* commits the clearing of empty asks */
    }
    free(ids);
    return rc;
}

int qk_store_lease_done(qk_store *s, const char *link, qk_side side, uint64_t block_id,
                        bool granted, qk_err *err)
{
    int rc = qs_check_peer_link(link, side, err);
    if (rc)
        return rc;
    if (block_id > (uint64_t)INT64_MAX)
        return qk_err_set(err, QK_ENOTFOUND, "store: unknown block");
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    qs_block_row b;
    rc = qs_block_get(s, link, block_id, &b, err);
    if (rc == 0)
        rc = qk_err_set(err, QK_ENOTFOUND, "store: block %llu unknown on link %s",
                        (unsigned long long)block_id, link);
    else if (rc == 1 && !b.has_ask)
        rc = 0; /* answered before (idempotent) */
    else if (rc == 1 && !granted)
        rc = set_ask(s, link, block_id, NULL, err);
    else if (rc == 1) {
        uint64_t llo = side == QK_SIDE_LOW ? max64(b.lease_lo, b.ask) : b.lease_lo;
        uint64_t lhi = side == QK_SIDE_HIGH ? min64(b.lease_hi, b.ask) : b.lease_hi;
        sqlite3_stmt *st = NULL;
        if (llo > lhi)
            rc = qk_err_set(err, QK_ESTORAGE, "store: block %llu: grant crosses the peer's lease",
                            (unsigned long long)block_id);
        else if (!(st = qs_prep(s,
                                "UPDATE blocks SET lease_lo = ?, lease_hi = ?, lease_ask = NULL"
                                " WHERE link = ? AND block_id = ?",
                                err)))
            rc = QK_ESTORAGE;
        else
            rc = qs_bindf(s, st, err, "IItI", (int64_t)llo, (int64_t)lhi, link, qs_i64(block_id));
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    return qs_end(s, rc, rc == 0, err);
}

/* Grant [from, to) to the peer: its bound, the mirror cursor, and a pending block confirmed. */
static int grant(qk_store *s, const char *link, qk_side peer_side, const qk_lease *l, qk_err *err)
{
    int64_t low_to = peer_side == QK_SIDE_LOW ? (int64_t)l->to : 0;
    int64_t high_from = peer_side == QK_SIDE_HIGH ? (int64_t)l->from : INT64_MAX;
    sqlite3_stmt *st = qs_prep(s,
                               "UPDATE blocks SET lease_lo = MAX(lease_lo, ?), lo = MAX(lo, ?),"
                               " lease_hi = MIN(lease_hi, ?), hi = MIN(hi, ?),"
                               " state = CASE WHEN state = ? THEN ? ELSE state END"
                               " WHERE link = ? AND block_id = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "IIIIiitI", low_to, low_to, high_from, high_from,
                      QK_BLOCK_PENDING, QK_BLOCK_CONFIRMED, link, qs_i64(l->block_id));
    return rc ? rc : qs_step_done(s, st, err);
}

/* lease_in inside the transaction: 0 granted, <0 refused or error. No material is read: the
 * block's bytes were compared with the peer's by digest before either end could lease from it
 * (docs/adr/0002-key-store.md, "Leases and notices"). */
static int lease_in_tx(qk_store *s, const char *link, qk_side peer_side, const qk_lease *l,
                       qk_err *err)
{
    qs_block_row b;
    int rc = qs_block_get(s, link, l->block_id, &b, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || b.state == QK_BLOCK_BURNED)
        return qk_err_set(err, QK_ENOTFOUND, "store: lease: block %llu unknown or burned",
                          (unsigned long long)l->block_id);
    if (l->to > b.len)
        return qk_err_set(err, QK_EINVAL, "store: lease: range beyond block %llu",
                          (unsigned long long)l->block_id);
    if (peer_side == QK_SIDE_LOW ? l->to <= b.lease_lo : l->from >= b.lease_hi)
        return 0; /* granted before: the same answer */
    if (!qs_lease_clear_of_ours(&b, peer_side, l->from, l->to))
        return qk_err_set(err, QK_ECOLLISION,
                          "store: lease [%u, %u) of block %llu reaches into ours", l->from, l->to,
                          (unsigned long long)l->block_id);
    rc = qs_range_recorded(s, link, l->block_id, l->from, l->to - l->from, err);
    if (rc == 1)
        return qk_err_set(err, QK_ECOLLISION, "store: lease [%u, %u) of block %llu already used",
                          l->from, l->to, (unsigned long long)l->block_id);
    if (rc < 0)
        return rc;
    return grant(s, link, peer_side, l, err);
}

int qk_store_lease_in(qk_store *s, const char *link, qk_side peer_side, const qk_lease *l,
                      qk_err *err)
{
    int rc = qs_check_peer_link(link, peer_side, err);
    if (rc)
        return rc;
    if (!l)
        return qk_err_set(err, QK_EINVAL, "store: lease_in needs a lease");
    if (l->block_id > (uint64_t)INT64_MAX)
        return qk_err_set(err, QK_ENOTFOUND, "store: lease: unknown block");
    if (l->from < QK_BLOCK_VKEY_LEN || l->to <= l->from || l->to > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "store: lease: bad range [%u, %u)", l->from, l->to);
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    rc = lease_in_tx(s, link, peer_side, l, err);
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_lease_room(qk_store *s, const char *link, qk_side side, uint64_t *bytes, qk_err *err)
{
    static const char low_sql[] = "SELECT COALESCE(SUM(MIN(lease_lo, hi) - lo), 0) FROM blocks"
                                  " INDEXED BY blocks_low_owned WHERE link = ? AND lease_lo > lo"
                                  " AND state = ? AND MIN(lease_lo, hi) > lo";
    static const char high_sql[] = "SELECT COALESCE(SUM(hi - MAX(lease_hi, lo)), 0) FROM blocks"
                                   " INDEXED BY blocks_high_owned WHERE link = ? AND hi > lease_hi"
                                   " AND state = ? AND hi > MAX(lease_hi, lo)";
    int rc = qs_check_peer_link(link, side, err);
    if (rc)
        return rc;
    if (!s || !bytes)
        return qk_err_set(err, QK_EINVAL, "store: lease_room needs a store and an output");
    *bytes = 0;
    if (pthread_mutex_lock(&s->mu) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: lock failed");
    /* one read-only statement: one snapshot without the write lock (as pool_status) */
    sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? low_sql : high_sql, err);
    rc = st ? qs_bindf(s, st, err, "ti", link, QK_BLOCK_CONFIRMED) : QK_ESTORAGE;
    if (!rc && (rc = qs_step(s, st, err)) == 1) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        *bytes = v > 0 ? (uint64_t)v : 0;
        rc = 0;
    } else if (rc == 0) {
        rc = qk_err_set(err, QK_ESTORAGE, "store: no lease sum");
    }
    if (st)
        (void)sqlite3_reset(st);
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- key_known ---------------------------------------------------------------------------- */

/* 1 unless key_id is a relayed key still PENDING at the slaves' KME (then 0); <0 error. */
static int relay_key_waiting(qk_store *s, const char *key_id, qk_err *err)
{
    if (!s->keys_any)
        return 1; /* no key rows: no relayed key either */
    sqlite3_stmt *st =
        qs_prep(s, "SELECT 1 FROM keys WHERE key_id = ? AND link = ? AND state = ?", err);
    int rc = st ? qs_bindf(s, st, err, "tti", key_id, QK_RELAY_LINK, QS_KEY_PENDING) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1)
        (void)sqlite3_reset(st);
    return rc < 0 ? rc : rc == 1 ? 0 : 1;
}

int qk_store_key_known(qk_store *s, const char *key_id, bool *known, qk_err *err)
{
    int rc = qs_check_text(key_id, QK_STORE_ID_MAX, false, "key id", err);
    if (rc)
        return rc;
    if (!s || !known)
        return qk_err_set(err, QK_EINVAL, "store: key_known needs a store and an output");
    *known = false;
    if (qs_known_has(s, key_id)) { /* a run a notice recorded (store_known.c): no lock, no SQL */
        *known = true;
        return 0;
    }
    if (pthread_mutex_lock(&s->mu) != 0)
        return qk_err_set(err, QK_ESTORAGE, "store: lock failed");
    /* one read-only statement, without the write lock; a relayed key still waiting for the
     * master KME's commit counts as not known yet: its commit wakes the fetch (ADR 0004) */
    rc = qs_key_exists(s, key_id, err);
    if (rc == 1)
        rc = relay_key_waiting(s, key_id, err);
    if (rc >= 0) {
        *known = rc == 1;
        rc = 0;
    }
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
}
