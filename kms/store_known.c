/* store_known.c - the runs this open recorded from the peer's notices, so that key_known can
 * answer "the notice is here" without the store's lock or a SQL read.
 *
 * A slave's dec_keys (or SKIP key-by-ID) first asks qk_store_key_known whether the notice of
 * its first key has arrived (kms.c: if not, it waits for the next batch instead of running a
 * fetch that could only fail). About half the time it has, and the answer took the store's
 * mutex (handed between the pumps and the syncer) and a read of `runs` by its prefix. This is a
 * direct-mapped table of the prefixes (and key counts) of the runs notice_in recorded, keyed by
 * the prefix's random bytes (qs_run_prefix_hash), a newer run taking an older one's slot. A hit
 * answers "known"; a miss asks the table as before.
 *
 * It never answers "known" for a run the table would not show: a notice_in call stages its runs
 * and qs_end enters them only when the call's savepoint is kept, that is when the open
 * transaction shows them to key_known's SQL read too; a lost group (its COMMIT failed, or SQLite
 * rolled it back) empties the table. Runs are never deleted (a used, expired or burned run's
 * keys stay known: the fetch then answers them), and every open starts empty. No key bytes:
 * prefixes and counts only. */
#include <string.h>

#include "store_int.h"

#define KNOWN_SLOTS 8192 /* a power of two: ~128 KiB */
#define KNOWN_STAGE 64   /* runs one call enters; more are left to the table */

typedef struct {
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint16_t n; /* keys in the run; 0: empty slot */
} known_slot;

struct qs_known {
    pthread_mutex_t mu; /* the slots; taken without the store's mu (key_known) and under it */
    known_slot slot[KNOWN_SLOTS];
    known_slot stage[KNOWN_STAGE]; /* the current call's runs (under the store's mu) */
    size_t nstage;
};

static size_t slot_of(const uint8_t prefix[QS_RUN_PREFIX_LEN])
{
    return qs_run_prefix_hash(prefix) & (KNOWN_SLOTS - 1);
}

void qs_known_open(qk_store *s)
{
    qs_known *k = calloc(1, sizeof *k);
    if (k && pthread_mutex_init(&k->mu, NULL) != 0) {
        free(k);
        k = NULL;
    }
    s->known = k; /* NULL: no table, the SQL read answers every time */
}

void qs_known_close(qk_store *s)
{
    if (!s->known)
        return;
    (void)pthread_mutex_destroy(&s->known->mu);
    free(s->known);
    s->known = NULL;
}

void qs_known_stage(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t n)
{
    qs_known *k = s->known;
    if (!k || n < 1 || n > UINT16_MAX || k->nstage >= KNOWN_STAGE)
        return;
    memcpy(k->stage[k->nstage].prefix, prefix, QS_RUN_PREFIX_LEN);
    k->stage[k->nstage].n = (uint16_t)n;
    k->nstage++;
}

void qs_known_call_end(qk_store *s, bool kept)
{
    qs_known *k = s->known;
    if (!k || k->nstage == 0)
        return;
    if (kept) {
        (void)pthread_mutex_lock(&k->mu);
        for (size_t i = 0; i < k->nstage; i++)
            k->slot[slot_of(k->stage[i].prefix)] = k->stage[i];
        (void)pthread_mutex_unlock(&k->mu);
    }
    k->nstage = 0;
}

void qs_known_reset(qk_store *s)
{
    qs_known *k = s->known;
    if (!k)
        return;
    k->nstage = 0;
    (void)pthread_mutex_lock(&k->mu);
    memset(k->slot, 0, sizeof k->slot);
    (void)pthread_mutex_unlock(&k->mu);
}

bool qs_known_has(qk_store *s, const char *key_id)
{
    qs_known *k = s->known;
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint32_t idx = 0;
    if (!k || qs_run_parse_id(key_id, prefix, &idx) != 0)
        return false;
    (void)pthread_mutex_lock(&k->mu);
    const known_slot *e = &k->slot[slot_of(prefix)];
    bool hit = e->n > 0 && idx < e->n && memcmp(e->prefix, prefix, QS_RUN_PREFIX_LEN) == 0;
    (void)pthread_mutex_unlock(&k->mu);
    return hit;
}
