/* store_counts.c - the pool counters of runs, kept by the store's code and written once per
 * transaction (schema v8; docs/adr/0002-key-store.md "Pool counters").
 *
 * pool_counts holds, per (link, kind, state), how many blocks or keys are in that state. Since
 * v4 triggers kept it in the transaction that changed a row. For runs (v6) those were two
 * upserts per insert and four statements per update: at the slave, ~18 us of a key pair's
 * ~100 us of SQL (the notice's insert and the fetch's update each took twice as long with them
 * as without; bench/README.md, twelfth session). A group transaction holds tens of pairs whose
 * changes land on the same two or three counter rows.
 *
 * So since v8 the code that inserts or updates a run adds its change here (qs_count_add), per
 * (link, kind, state), and qs_count_flush writes the sums with one upsert per row, in the group
 * commit just before the COMMIT (qs_group_commit), in the same transaction as the rows they
 * count: a crash keeps both or neither, as with the triggers. A call whose savepoint is undone
 * takes its own changes back (the call's log); a lost group drops them all (nothing of it
 * reached the database). A reader in the same transaction (qk_store_pool_status) adds what is
 * not written yet (qs_count_pending). When the table or a call's log is full, a change is
 * written at once, inside the call's savepoint, as the trigger did. */
#include <string.h>

#include "store_int.h"

static int count_write(qk_store *s, const char *link, int kind, int state, int64_t n, int64_t bytes,
                       qk_err *err)
{
    sqlite3_stmt *st =
        qs_prep(s,
                "INSERT INTO pool_counts(link, kind, state, n, bytes) VALUES(?, ?, ?, ?, ?)"
                " ON CONFLICT(link, kind, state) DO UPDATE SET n = n + excluded.n,"
                " bytes = bytes + excluded.bytes",
                err);
    int rc = st ? qs_bindf(s, st, err, "tiiII", link, kind, state, n, bytes) : QK_ESTORAGE;
    return rc ? rc : qs_step_done(s, st, err);
}

static size_t slot_find(qs_counts *c, const char *link, int kind, int state)
{
    for (size_t i = 0; i < c->nslot; i++)
        if (c->slot[i].kind == kind && c->slot[i].state == state &&
            strcmp(c->slot[i].link, link) == 0)
            return i;
    if (c->nslot >= QS_COUNT_SLOTS || strlen(link) > QK_STORE_ID_MAX)
        return QS_COUNT_SLOTS;
    qs_count_slot *e = &c->slot[c->nslot];
    memset(e, 0, sizeof *e);
    memcpy(e->link, link, strlen(link) + 1);
    e->kind = kind;
    e->state = state;
    return c->nslot++;
}

int qs_count_add(qk_store *s, const char *link, int kind, int state, int64_t n, int64_t bytes,
                 qk_err *err)
{
    if (n == 0 && bytes == 0)
        return 0;
    qs_counts *c = &s->counts;
    size_t i = c->nlog < QS_COUNT_LOG ? slot_find(c, link, kind, state) : QS_COUNT_SLOTS;
    if (i >= QS_COUNT_SLOTS) /* no room: written now, undone with the call if it is */
        return count_write(s, link, kind, state, n, bytes, err);
    c->slot[i].n += n;
    c->slot[i].bytes += bytes;
    c->log[c->nlog].slot = (uint8_t)i;
    c->log[c->nlog].n = n;
    c->log[c->nlog].bytes = bytes;
    c->nlog++;
    return 0;
}

void qs_count_call_begin(qk_store *s)
{
    s->counts.nlog = 0;
}

void qs_count_call_end(qk_store *s, bool kept)
{
    qs_counts *c = &s->counts;
    for (size_t i = 0; !kept && i < c->nlog; i++) {
        c->slot[c->log[i].slot].n -= c->log[i].n;
        c->slot[c->log[i].slot].bytes -= c->log[i].bytes;
    }
    c->nlog = 0;
}

int qs_count_flush(qk_store *s, qk_err *err)
{
    qs_counts *c = &s->counts;
    int rc = 0;
    for (size_t i = 0; !rc && i < c->nslot; i++)
        if (c->slot[i].n != 0 || c->slot[i].bytes != 0)
            rc = count_write(s, c->slot[i].link, c->slot[i].kind, c->slot[i].state, c->slot[i].n,
                             c->slot[i].bytes, err);
    if (!rc)
        c->nslot = c->nlog = 0;
    return rc;
}

void qs_count_reset(qk_store *s)
{
    s->counts.nslot = s->counts.nlog = 0;
}

void qs_count_pending(const qk_store *s, const char *link, int kind, int state, int64_t *n,
                      int64_t *bytes)
{
    const qs_counts *c = &s->counts;
    *n = *bytes = 0;
    for (size_t i = 0; i < c->nslot; i++)
        if (c->slot[i].kind == kind && c->slot[i].state == state &&
            strcmp(c->slot[i].link, link) == 0) {
            *n += c->slot[i].n;
            *bytes += c->slot[i].bytes;
        }
}
