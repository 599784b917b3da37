/* store_segcache.c - the plaintext of the segments one-key takes last used
 * (docs/adr/0002-key-store.md, "Segments in memory"): QS_SEGC_SLOTS slots, least recently used
 * first out, in the store's sodium_malloc region (locked, guarded, left out of core dumps). A slot
 * holds a segment's plaintext with every byte taken so far zeroed: the database row with the open
 * transaction's pending zeroings (s->zq) applied, and `used` counts both. store_seg.c keeps it so:
 * a take zeroes its bytes here and queues the row's rewrite for the COMMIT, which seals the slot
 * instead of loading and decrypting the row again; any other write to a cached row drops the
 * slot first; an undone call that took or wrote, a storage error or a lost group drops them all
 * (qs_segc_drop_all), since the rows went back to what they were and the slots did not. Under mu.
 */
#include "store_int.h"

#include <string.h>

uint8_t *qs_segc_buf(qk_store *s, const qs_segc_ent *c)
{
    return s->segc_pt + (size_t)(c - s->segc) * QK_SEG_BYTES;
}

void qs_segc_wipe(qk_store *s, qs_segc_ent *c)
{
    sodium_memzero(qs_segc_buf(s, c), QK_SEG_BYTES);
    c->valid = false;
}

qs_segc_ent *qs_segc_find(qk_store *s, const char *link, uint64_t block_id, uint32_t idx)
{
    if (!s->segc_pt)
        return NULL;
    for (size_t i = 0; i < QS_SEGC_SLOTS; i++) {
        qs_segc_ent *c = &s->segc[i];
        if (c->valid && c->block_id == block_id && c->idx == idx && strcmp(c->link, link) == 0) {
            c->tick = ++s->segc_tick;
            return c;
        }
    }
    return NULL;
}

qs_segc_ent *qs_segc_claim(qk_store *s, const char *link, uint64_t block_id, uint32_t idx)
{
    size_t n = strlen(link);
    if (!s->segc_pt || n >= sizeof s->segc[0].link)
        return NULL;
    qs_segc_ent *c = &s->segc[0];
    for (size_t i = 0; i < QS_SEGC_SLOTS && c->valid; i++)
        if (!s->segc[i].valid || s->segc[i].tick < c->tick)
            c = &s->segc[i];
    qs_segc_wipe(s, c);
    memcpy(c->link, link, n + 1);
    c->block_id = block_id;
    c->idx = idx;
    c->plen = c->used = 0;
    c->tick = ++s->segc_tick;
    return c; /* not valid until the caller has filled it */
}

void qs_segc_drop(qk_store *s, const char *link, uint64_t block_id, uint32_t first, uint32_t last)
{
    for (size_t i = 0; s->segc_pt && i < QS_SEGC_SLOTS; i++) {
        qs_segc_ent *c = &s->segc[i];
        if (c->valid && c->block_id == block_id && c->idx >= first && c->idx <= last &&
            strcmp(c->link, link) == 0)
            qs_segc_wipe(s, c);
    }
}

void qs_segc_drop_all(qk_store *s)
{
    for (size_t i = 0; s->segc_pt && i < QS_SEGC_SLOTS; i++)
        if (s->segc[i].valid)
            qs_segc_wipe(s, &s->segc[i]);
}
