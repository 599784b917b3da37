/* store_runcache.c - the slave end's runs as last written or read
 * (docs/adr/0003-request-records.md, "Runs in memory"): QS_RUNC_SLOTS slots, direct-mapped by the
 * run's prefix, each a copy of a run row that has a slave (the runs a fetch can serve). A notice
 * that records a run, a read by prefix and every write of a run through run_update put the row here
 * (write-through), so that a fetch finds its run without reading the table. Anything else that
 * writes runs (burning a block's runs), every undone call that changed a row, a storage error and
 * a lost group drop the slots: the rows went back to what they were, and the copies did not. The
 * store's write of a run also checks that the row still holds the state and count the copy held
 * (run_update), so a copy that was wrong could only fail a call, never deliver a key twice. Under
 * mu. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

struct qs_runc {
    bool valid[QS_RUNC_SLOTS];
    qs_run_row row[QS_RUNC_SLOTS];
};

void qs_runc_open(qk_store *s)
{
    s->runc = calloc(1, sizeof *s->runc); /* NULL: none, every fetch reads the table */
}

void qs_runc_close(qk_store *s)
{
    free(s->runc);
    s->runc = NULL;
}

/* The slot of a prefix: by its random bytes (qs_run_prefix_hash). */
static size_t slot_of(const uint8_t prefix[QS_RUN_PREFIX_LEN])
{
    return qs_run_prefix_hash(prefix) % QS_RUNC_SLOTS;
}

bool qs_runc_get(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], qs_run_row *out)
{
    if (!s->runc)
        return false;
    size_t i = slot_of(prefix);
    if (!s->runc->valid[i] || memcmp(s->runc->row[i].prefix, prefix, QS_RUN_PREFIX_LEN) != 0)
        return false;
    *out = s->runc->row[i];
    return true;
}

void qs_runc_put(qk_store *s, const qs_run_row *r)
{
    if (!s->runc || !r->has_slave || r->n < 1 || r->n > QS_RUN_MAX_KEYS)
        return;
    size_t i = slot_of(r->prefix);
    s->runc->row[i] = *r;
    s->runc->valid[i] = true;
}

void qs_runc_drop_all(qk_store *s)
{
    if (s->runc)
        memset(s->runc->valid, 0, sizeof s->runc->valid);
}
