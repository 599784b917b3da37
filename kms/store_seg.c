/* store_seg.c - block material as encrypted segments in the segments table (QK_SEG_BYTES for
 * blocks stored since schema v7, QK_SEG_BYTES_V1 before: blocks.seg_bytes):
 * write a block, read or check a byte range, zero a range (decrypt, wipe, re-encrypt under a
 * fresh nonce, or delete the row once every byte of it is used), wipe a whole block.
 * Plaintext sits only in s->scratch / s->vkey, wiped before return, and in the slots of
 * store_segcache.c (all in the store's sodium_malloc region).
 *
 * Deferred zeroing. A take (qs_range_take) hands its bytes out at once, but the zeroing of a take
 * inside one segment waits in s->zq for the transaction's COMMIT (qs_zero_flush, called by
 * qs_group_commit before every COMMIT): the one-key takes of a group transaction come from the
 * same segment one after the other, and each rewrote it (seal, a 4 KiB row, the old overflow page
 * zeroed by secure_delete) although only the last version reached the WAL. What reaches the disk
 * is the same: every COMMIT carries the zeroed segments of every take it commits. Such a take
 * reads the segment's plaintext from its slot in memory (store_segcache.c; loaded and decrypted
 * on a miss) and zeroes its bytes there, and the COMMIT seals the slot: one seal and one row
 * write per segment and group, no load or decryption per take. A call whose savepoint is undone
 * drops its entries (qs_end), a lost group all of them, and both drop the slots. A take across
 * segments (a bulk request) zeroes its end segments at once, through their rows: they are
 * rarely shared with the next take, and waiting only moved their rewrite under the store's lock
 * into the COMMIT, where the pumps cannot run beside it. */
#include "store_int.h"

#include <string.h>

typedef struct {
    uint8_t nonce[QS_NONCE_LEN];
    uint8_t ct[QK_SEG_BYTES + QS_TAG_LEN];
    size_t ctlen;
    uint32_t used;
} seg_row;

/* 1 found, 0 absent, <0 error. */
static int seg_load(qk_store *s, const char *link, uint64_t block_id, uint32_t idx, seg_row *r,
                    qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT nonce, ct, used_bytes FROM segments"
                               " WHERE link = ? AND block_id = ? AND idx = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tIi", link, qs_i64(block_id), (int)idx);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc != 1)
        return rc;
    const void *nonce = sqlite3_column_blob(st, 0);
    int nlen = sqlite3_column_bytes(st, 0);
    const void *ct = sqlite3_column_blob(st, 1);
    int clen = sqlite3_column_bytes(st, 1);
    sqlite3_int64 used = sqlite3_column_int64(st, 2);
    if (!nonce || nlen != (int)QS_NONCE_LEN || !ct || clen <= (int)QS_TAG_LEN ||
        clen > QK_SEG_BYTES + (int)QS_TAG_LEN || used < 0 || used > QK_SEG_BYTES) {
        (void)sqlite3_reset(st);
        return qk_err_set(err, QK_ESTORAGE, "store: malformed segment %u of block %llu", idx,
                          (unsigned long long)block_id);
    }
    memcpy(r->nonce, nonce, QS_NONCE_LEN);
    memcpy(r->ct, ct, (size_t)clen);
    r->ctlen = (size_t)clen;
    r->used = (uint32_t)used;
    (void)sqlite3_reset(st);
    return 1;
}

/* The segment size of a block (blocks.seg_bytes): QK_SEG_BYTES or, stored before schema v7,
 * QK_SEG_BYTES_V1; remembered for the last blocks used (s->segsz: it never changes). An unknown
 * block holds no material: QK_ENOTFOUND. */
static int seg_size(qk_store *s, const char *link, uint64_t block_id, uint32_t *sb, qk_err *err)
{
    size_t slot = (size_t)(block_id % QS_SEGSZ_CACHE);
    if (s->segsz[slot].seg_bytes && s->segsz[slot].block_id == block_id &&
        strcmp(s->segsz[slot].link, link) == 0) {
        *sb = s->segsz[slot].seg_bytes;
        return 0;
    }
    sqlite3_stmt *st =
        qs_prep(s, "SELECT seg_bytes FROM blocks WHERE link = ? AND block_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tI", link, qs_i64(block_id));
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 0)
        return qk_err_set(err, QK_ENOTFOUND, "store: block %llu on link %s unknown",
                          (unsigned long long)block_id, link);
    if (rc < 0)
        return rc;
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    (void)sqlite3_reset(st);
    if (v != QK_SEG_BYTES && v != QK_SEG_BYTES_V1)
        return qk_err_set(err, QK_ESTORAGE, "store: block %llu: segments of %lld bytes",
                          (unsigned long long)block_id, (long long)v);
    *sb = (uint32_t)v;
    if (strlen(link) < sizeof s->segsz[slot].link) {
        s->segsz[slot].block_id = block_id;
        s->segsz[slot].seg_bytes = *sb;
        snprintf(s->segsz[slot].link, sizeof s->segsz[slot].link, "%s", link);
    }
    return 0;
}

/* Decrypt a loaded segment into s->scratch; returns its plaintext length or <0. */
static int seg_decrypt(qk_store *s, const char *link, uint64_t block_id, uint32_t idx,
                       const seg_row *r, size_t *plen, qk_err *err)
{
    if (qs_seg_open(s->mk, link, block_id, idx, r->nonce, r->ct, r->ctlen, s->scratch) != 0) {
        sodium_memzero(s->scratch, QK_SEG_BYTES);
        return qk_err_set(err, QK_ESTORAGE,
                          "store: segment %u of block %llu on link %s fails authentication", idx,
                          (unsigned long long)block_id, link);
    }
    *plen = r->ctlen - QS_TAG_LEN;
    return 0;
}

int qs_seg_write_block(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                       size_t len, qk_err *err)
{
    uint8_t nonce[QS_NONCE_LEN];
    uint8_t ct[QK_SEG_BYTES + QS_TAG_LEN];
    uint32_t nseg = (uint32_t)((len + QK_SEG_BYTES - 1) / QK_SEG_BYTES);
    qs_segc_drop(s, link, block_id, 0, UINT32_MAX); /* a block ID is never reused: none held */
    for (uint32_t idx = 0; idx < nseg; idx++) {
        size_t start = (size_t)idx * QK_SEG_BYTES;
        size_t n = len - start < QK_SEG_BYTES ? len - start : QK_SEG_BYTES;
        qs_seg_seal(s->mk, link, block_id, idx, bytes + start, n, nonce, ct);
        sqlite3_stmt *st = qs_prep(s,
                                   "INSERT INTO segments(link, block_id, idx, nonce, ct,"
                                   " used_bytes) VALUES(?, ?, ?, ?, ?, 0)",
                                   err);
        if (!st)
            return QK_ESTORAGE;
        int rc = qs_bindf(s, st, err, "tIibb", link, qs_i64(block_id), (int)idx, nonce,
                          sizeof nonce, ct, n + QS_TAG_LEN);
        if (!rc)
            rc = qs_step_done(s, st, err);
        if (rc)
            return rc;
    }
    return 0;
}

typedef int (*range_fn)(void *ctx, const uint8_t *p, size_t n);

/* Feed the plaintext of [off, off+len) to fn, one segment piece at a time: one statement walks
 * the segments of the range in index order (one b-tree descent, not one query per segment), and
 * each is opened straight from the row. A missing segment means the material is gone:
 * QK_ENOTFOUND. fn must not write to the database (the walk is still open). sb: the block's
 * segment size when the caller knows it, else 0 (looked up). */
static int range_visit(qk_store *s, const char *link, uint64_t block_id, uint32_t sb, uint32_t off,
                       uint32_t len, range_fn fn, void *ctx, qk_err *err)
{
    if (len == 0)
        return 0;
    int rc = sb ? 0 : seg_size(s, link, block_id, &sb, err);
    if (rc)
        return rc;
    uint64_t end = (uint64_t)off + len;
    uint32_t first = off / sb, last = (uint32_t)((end - 1) / sb);
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT idx, nonce, ct FROM segments WHERE link = ?"
                               " AND block_id = ? AND idx BETWEEN ? AND ? ORDER BY idx",
                               err);
    if (!st)
        return QK_ESTORAGE;
    rc = qs_bindf(s, st, err, "tIii", link, qs_i64(block_id), (int)first, (int)last);
    uint32_t idx = first;
    for (; !rc && idx <= last; idx++) {
        rc = qs_step(s, st, err);
        if (rc < 0)
            break;
        if (rc == 0 || sqlite3_column_int64(st, 0) != (sqlite3_int64)idx) {
            rc = qk_err_set(err, QK_ENOTFOUND,
                            "store: material of block %llu on link %s is no longer held",
                            (unsigned long long)block_id, link);
            break;
        }
        const void *nonce = sqlite3_column_blob(st, 1);
        int nlen = sqlite3_column_bytes(st, 1);
        const void *ct = sqlite3_column_blob(st, 2);
        int clen = sqlite3_column_bytes(st, 2);
        if (!nonce || nlen != (int)QS_NONCE_LEN || !ct || clen <= (int)QS_TAG_LEN ||
            clen > (int)(sb + QS_TAG_LEN)) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: malformed segment %u of block %llu", idx,
                            (unsigned long long)block_id);
            break;
        }
        if (qs_seg_open(s->mk, link, block_id, idx, nonce, ct, (size_t)clen, s->scratch) != 0) {
            rc = qk_err_set(err, QK_ESTORAGE,
                            "store: segment %u of block %llu on link %s fails authentication", idx,
                            (unsigned long long)block_id, link);
            break;
        }
        size_t plen = (size_t)clen - QS_TAG_LEN;
        uint64_t seg_start = (uint64_t)idx * sb;
        uint64_t a = off > seg_start ? off : seg_start;
        uint64_t b = end < seg_start + plen ? end : seg_start + plen;
        if (b <= a)
            rc = qk_err_set(err, QK_ESTORAGE, "store: range outside block %llu",
                            (unsigned long long)block_id);
        else
            rc = fn(ctx, s->scratch + (a - seg_start), (size_t)(b - a));
        sodium_memzero(s->scratch, QK_SEG_BYTES);
    }
    (void)sqlite3_reset(st);
    return rc;
}

struct copy_ctx {
    uint8_t *out;
    size_t pos;
};

static int copy_fn(void *ctx, const uint8_t *p, size_t n)
{
    struct copy_ctx *c = ctx;
    memcpy(c->out + c->pos, p, n);
    c->pos += n;
    return 0;
}

/* qs_range_read with the block's segment size sb (0: looked up). */
static int range_read(qk_store *s, const char *link, uint64_t block_id, uint32_t sb, uint32_t off,
                      uint32_t len, uint8_t *out, qk_err *err)
{
    struct copy_ctx c = {out, 0};
    int rc = range_visit(s, link, block_id, sb, off, len, copy_fn, &c, err);
    if (!rc && c.pos != len)
        rc = qk_err_set(err, QK_ESTORAGE, "store: short read from block %llu",
                        (unsigned long long)block_id);
    if (rc)
        sodium_memzero(out, len);
    return rc;
}

int qs_range_read(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                  uint8_t *out, qk_err *err)
{
    return range_read(s, link, block_id, 0, off, len, out, err);
}

static int hash_fn(void *ctx, const uint8_t *p, size_t n)
{
    return crypto_generichash_update(ctx, p, n) == 0 ? 0 : QK_ESTORAGE;
}

/* The key check of [off, off+len): its keyed hash under the block's verification key. */
int qs_range_check(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                   uint8_t check[QK_CHECK_LEN], qk_err *err)
{
    uint32_t sb = 0; /* looked up once for both reads */
    int rc = seg_size(s, link, block_id, &sb, err);
    if (!rc)
        rc = range_read(s, link, block_id, sb, 0, QK_BLOCK_VKEY_LEN, s->vkey, err);
    if (rc)
        return rc;
    crypto_generichash_state h;
    qs_check_begin(&h, s->vkey, link, block_id, off, len);
    sodium_memzero(s->vkey, QK_BLOCK_VKEY_LEN);
    rc = range_visit(s, link, block_id, sb, off, len, hash_fn, &h, err);
    if (!rc && crypto_generichash_final(&h, check, QK_CHECK_LEN) != 0)
        rc = qk_err_set(err, QK_ESTORAGE, "store: hash failed");
    sodium_memzero(&h, sizeof h);
    return rc;
}

static int seg_delete(qk_store *s, const char *link, uint64_t block_id, uint32_t idx, qk_err *err)
{
    sqlite3_stmt *st =
        qs_prep(s, "DELETE FROM segments WHERE link = ? AND block_id = ? AND idx = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tIi", link, qs_i64(block_id), (int)idx);
    return rc ? rc : qs_step_done(s, st, err);
}

/* Seal plain (plen bytes, used of them used) under a fresh nonce over segment idx's row. */
static int seg_seal_write(qk_store *s, const char *link, uint64_t block_id, uint32_t idx,
                          const uint8_t *plain, size_t plen, uint32_t used, qk_err *err)
{
    uint8_t nonce[QS_NONCE_LEN];
    uint8_t ct[QK_SEG_BYTES + QS_TAG_LEN];
    qs_seg_seal(s->mk, link, block_id, idx, plain, plen, nonce, ct);
    sqlite3_stmt *st = qs_prep(s,
                               "UPDATE segments SET nonce = ?, ct = ?, used_bytes = ?"
                               " WHERE link = ? AND block_id = ? AND idx = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "bbitIi", nonce, sizeof nonce, ct, plen + QS_TAG_LEN, (int)used,
                      link, qs_i64(block_id), (int)idx);
    return rc ? rc : qs_step_done(s, st, err);
}

static int seg_rewrite(qk_store *s, const char *link, uint64_t block_id, uint32_t idx, size_t plen,
                       uint32_t used, qk_err *err)
{
    int rc = seg_seal_write(s, link, block_id, idx, s->scratch, plen, used, err);
    sodium_memzero(s->scratch, QK_SEG_BYTES);
    return rc;
}

/* Whether a take of the open transaction lies in segment idx of that block. */
static bool zq_in(const qs_zq_ent *z, const char *link, uint64_t block_id, uint32_t idx)
{
    return z->block_id == block_id && z->idx == idx && strcmp(z->link, link) == 0;
}

/* What the open transaction took from segment idx so far: 2 if [a, b) overlaps a take, else 1
 * if anything of the segment was taken, else 0. */
static int zq_seen(const qk_store *s, const char *link, uint64_t block_id, uint32_t idx, uint64_t a,
                   uint64_t b)
{
    int seen = 0;
    for (size_t i = 0; i < s->zq_n && seen < 2; i++) {
        const qs_zq_ent *z = &s->zq[i];
        if (zq_in(z, link, block_id, idx))
            seen = z->a < b && a < z->b ? 2 : 1;
    }
    return seen;
}

/* Record a take [a, b) of segment idx: zeroed already (pending false) or to be zeroed at the
 * COMMIT (pending true); false when the list is full (a pending take is then zeroed now). */
static bool zq_add(qk_store *s, const char *link, uint64_t block_id, uint32_t idx, uint64_t a,
                   uint64_t b, bool pending)
{
    if (s->zq_n >= QS_ZQ_MAX || strlen(link) >= sizeof s->zq[0].link)
        return false;
    qs_zq_ent *z = &s->zq[s->zq_n++];
    z->block_id = block_id;
    z->idx = idx;
    z->a = (uint32_t)a;
    z->b = (uint32_t)b;
    z->pending = pending;
    memcpy(z->link, link, strlen(link) + 1);
    return true;
}

/* The loaded, decrypted segment idx (plaintext plen bytes in s->scratch, r->used bytes used
 * before) with `add` more bytes zeroed: deleted once every byte is used, else resealed. */
static int seg_store(qk_store *s, const char *link, uint64_t block_id, uint32_t idx,
                     const seg_row *r, size_t plen, uint64_t add, qk_err *err)
{
    uint64_t used = r->used + add;
    if (used >= plen) {
        sodium_memzero(s->scratch, QK_SEG_BYTES);
        return seg_delete(s, link, block_id, idx, err);
    }
    return seg_rewrite(s, link, block_id, idx, plen, (uint32_t)used, err);
}

/* Fill a slot with segment idx's plaintext (0, *out set), the open transaction's pending
 * zeroings of it applied: 1 when no slot can be had, <0 an error (an absent row: the material
 * is gone). */
static int segc_fill(qk_store *s, const char *link, uint64_t block_id, uint32_t sb, uint32_t idx,
                     qs_segc_ent **out, qk_err *err)
{
    seg_row r;
    int rc = seg_load(s, link, block_id, idx, &r, err);
    if (rc == 0)
        return qk_err_set(err, QK_ENOTFOUND,
                          "store: material of block %llu on link %s is no longer held",
                          (unsigned long long)block_id, link);
    if (rc < 0)
        return rc;
    qs_segc_ent *c = qs_segc_claim(s, link, block_id, idx);
    if (!c)
        return 1;
    uint8_t *p = qs_segc_buf(s, c);
    if (qs_seg_open(s->mk, link, block_id, idx, r.nonce, r.ct, r.ctlen, p) != 0) {
        qs_segc_wipe(s, c);
        return qk_err_set(err, QK_ESTORAGE,
                          "store: segment %u of block %llu on link %s fails authentication", idx,
                          (unsigned long long)block_id, link);
    }
    c->plen = (uint32_t)(r.ctlen - QS_TAG_LEN);
    c->used = r.used;
    uint64_t seg_start = (uint64_t)idx * sb;
    rc = c->plen > sb ? QK_ESTORAGE : 0;
    for (size_t j = 0; j < s->zq_n && !rc; j++) {
        const qs_zq_ent *z = &s->zq[j];
        if (!z->pending || !zq_in(z, link, block_id, idx))
            continue;
        if (z->a < seg_start || z->b > seg_start + c->plen || z->b <= z->a) {
            rc = QK_ESTORAGE;
            break;
        }
        sodium_memzero(p + (z->a - seg_start), z->b - z->a);
        c->used += z->b - z->a;
    }
    if (rc) {
        qs_segc_wipe(s, c); /* claimed, not valid yet: a drop would skip it */
        return qk_err_set(err, QK_ESTORAGE, "store: zero range outside block %llu",
                          (unsigned long long)block_id);
    }
    c->valid = true;
    *out = c;
    return 0;
}

/* Write slot c's segment to its row: resealed, or deleted (and the slot wiped) once every byte
 * of it is used. */
static int segc_store(qk_store *s, qs_segc_ent *c, qk_err *err)
{
    if (c->used < c->plen)
        return seg_seal_write(s, c->link, c->block_id, c->idx, qs_segc_buf(s, c), c->plen, c->used,
                              err);
    int rc = seg_delete(s, c->link, c->block_id, c->idx, err);
    qs_segc_wipe(s, c);
    return rc;
}

/* A take [off, end) inside segment idx through its slot (filled on a miss): its bytes to out
 * and zeroed in the slot, the row's rewrite left to the COMMIT (zq_add: the caller made sure
 * there is room). A range taken already in the open transaction is refused. 1: no slot (the
 * caller takes through the row), 0 done, <0 error. */
static int seg_take_cached(qk_store *s, const char *link, uint64_t block_id, uint32_t sb,
                           uint32_t idx, uint64_t off, uint64_t end, uint8_t *out, qk_err *err)
{
    qs_segc_ent *c = qs_segc_find(s, link, block_id, idx);
    int rc = c ? 0 : segc_fill(s, link, block_id, sb, idx, &c, err);
    if (rc)
        return rc;
    uint64_t seg_start = (uint64_t)idx * sb;
    if (end > seg_start + c->plen)
        return qk_err_set(err, QK_ESTORAGE, "store: zero range outside block %llu",
                          (unsigned long long)block_id);
    if (zq_seen(s, link, block_id, idx, off, end) == 2)
        return qk_err_set(err, QK_ESTORAGE, "store: range of block %llu taken twice",
                          (unsigned long long)block_id);
    if (!zq_add(s, link, block_id, idx, off, end, true))
        return 1;
    uint8_t *p = qs_segc_buf(s, c) + (off - seg_start);
    memcpy(out, p, (size_t)(end - off));
    sodium_memzero(p, (size_t)(end - off));
    c->used += (uint32_t)(end - off);
    return 0;
}

/* Zero [off, off+len) inside one segment idx (decrypt, wipe, re-encrypt, or delete the row
 * once every byte of it is used). An absent row was wiped already (block burned, or used).
 * With out (qs_range_take): the piece is first copied to out (out[0] is byte off), and it must
 * be there whole and not taken before in the open transaction: an absent row, a block that
 * ends inside the range or a piece taken already is an error. A take that lies inside this
 * one segment goes through the segment's slot in memory, its zeroing left to the COMMIT, while
 * the queue has room (seg_take_cached); every other zeroing writes the row at once, and the
 * segment's slot, which no longer matches the row, is dropped. */
static int seg_zero_part(qk_store *s, const char *link, uint64_t block_id, uint32_t sb,
                         uint32_t idx, uint64_t off, uint64_t end, uint8_t *out, qk_err *err)
{
    uint64_t seg_start = (uint64_t)idx * sb;
    bool within = off >= seg_start && end <= seg_start + sb; /* a take inside this segment */
    int rc = 1;
    if (out && within && s->zq_n < QS_ZQ_MAX)
        rc = seg_take_cached(s, link, block_id, sb, idx, off, end, out, err);
    if (rc != 1)
        return rc;
    qs_segc_drop(s, link, block_id, idx, idx);
    seg_row r;
    rc = seg_load(s, link, block_id, idx, &r, err);
    if (rc == 0 && out)
        return qk_err_set(err, QK_ENOTFOUND,
                          "store: material of block %llu on link %s is no longer held",
                          (unsigned long long)block_id, link);
    if (rc <= 0)
        return rc;
    size_t plen = 0;
    if ((rc = seg_decrypt(s, link, block_id, idx, &r, &plen, err)) != 0)
        return rc;
    uint64_t a = off > seg_start ? off : seg_start;
    uint64_t b = end < seg_start + plen ? end : seg_start + plen;
    uint64_t want = end < seg_start + sb ? end : seg_start + sb;
    if (plen > sb || b <= a || (out && b != want)) {
        sodium_memzero(s->scratch, QK_SEG_BYTES);
        return qk_err_set(err, QK_ESTORAGE, "store: zero range outside block %llu",
                          (unsigned long long)block_id);
    }
    if (out && zq_seen(s, link, block_id, idx, a, b) == 2) {
        sodium_memzero(s->scratch, QK_SEG_BYTES);
        return qk_err_set(err, QK_ESTORAGE, "store: range of block %llu taken twice",
                          (unsigned long long)block_id);
    }
    if (out)
        memcpy(out + (a - off), s->scratch + (a - seg_start), (size_t)(b - a));
    sodium_memzero(s->scratch + (a - seg_start), (size_t)(b - a));
    rc = seg_store(s, link, block_id, idx, &r, plen, b - a, err);
    if (!rc && out && within)
        (void)zq_add(s, link, block_id, idx, a, b, false);
    return rc;
}

/* Zero the ranges of zq[i..] that lie in zq[i]'s segment (marking them in done) with one
 * rewrite: from the segment's slot, which holds them zeroed already, or else with one load and
 * decryption. An absent segment was wiped already (its block burned). */
static int zq_flush_segment(qk_store *s, size_t i, bool *done, qk_err *err)
{
    const qs_zq_ent *z = &s->zq[i];
    qs_segc_ent *c = qs_segc_find(s, z->link, z->block_id, z->idx);
    if (c) {
        for (size_t j = i; j < s->zq_n; j++) {
            const qs_zq_ent *y = &s->zq[j];
            if (zq_in(y, z->link, z->block_id, z->idx))
                done[j] = true;
        }
        return segc_store(s, c, err);
    }
    uint32_t sb = 0;
    seg_row r;
    int rc = seg_size(s, z->link, z->block_id, &sb, err);
    if (rc == QK_ENOTFOUND)
        rc = 0; /* the block is gone, and its segments with it */
    else if (!rc && (rc = seg_load(s, z->link, z->block_id, z->idx, &r, err)) == 1)
        rc = 2;
    size_t plen = 0;
    if (rc == 2 && (rc = seg_decrypt(s, z->link, z->block_id, z->idx, &r, &plen, err)) == 0)
        rc = 2;
    uint64_t seg_start = (uint64_t)z->idx * sb, add = 0;
    for (size_t j = i; j < s->zq_n && rc >= 0; j++) {
        const qs_zq_ent *y = &s->zq[j];
        if (done[j] || !zq_in(y, z->link, z->block_id, z->idx))
            continue;
        done[j] = true;
        if (rc != 2 || !y->pending)
            continue; /* zeroed when taken */
        if (y->a < seg_start || y->b > seg_start + plen || y->b <= y->a) {
            rc = qk_err_set(err, QK_ESTORAGE, "store: zero range outside block %llu",
                            (unsigned long long)z->block_id);
            break;
        }
        sodium_memzero(s->scratch + (y->a - seg_start), y->b - y->a);
        add += y->b - y->a;
    }
    if (rc == 2)
        return seg_store(s, z->link, z->block_id, z->idx, &r, plen, add, err);
    sodium_memzero(s->scratch, QK_SEG_BYTES);
    return rc;
}

int qs_zero_flush(qk_store *s, qk_err *err)
{
    bool done[QS_ZQ_MAX] = {false};
    int rc = 0;
    for (size_t i = 0; i < s->zq_n && !rc; i++)
        if (!done[i] && s->zq[i].pending)
            rc = zq_flush_segment(s, i, done, err);
    s->zq_n = s->zq_mark = 0;
    return rc;
}

/* Segments strictly between the first and the last segment of a range lie wholly inside it
 * (every one of them is a full segment: only a block's last segment is shorter, and it is
 * never between two others), so their bytes are all used: their rows are deleted with one
 * statement, never opened (secure_delete overwrites the freed cells), after they were read
 * into out when out is set. Only the two end segments are opened, and each once. */
static int range_zero(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                      uint8_t *out, qk_err *err)
{
    if (len == 0)
        return 0;
    uint32_t sb = 0;
    int rc = seg_size(s, link, block_id, &sb, err);
    if (rc)
        return rc;
    uint64_t end = (uint64_t)off + len;
    uint32_t first = off / sb, last = (uint32_t)((end - 1) / sb);
    rc = seg_zero_part(s, link, block_id, sb, first, off, end, out, err);
    if (!rc && last > first + 1) {
        uint64_t mid = (uint64_t)(first + 1) * sb;
        if (out)
            rc = range_read(s, link, block_id, sb, (uint32_t)mid,
                            (uint32_t)((uint64_t)(last - first - 1) * sb), out + (mid - off), err);
        qs_segc_drop(s, link, block_id, first + 1, last - 1);
        sqlite3_stmt *st = rc ? NULL
                              : qs_prep(s,
                                        "DELETE FROM segments WHERE link = ? AND block_id = ?"
                                        " AND idx > ? AND idx < ?",
                                        err);
        if (!rc)
            rc = st ? qs_bindf(s, st, err, "tIii", link, qs_i64(block_id), (int)first, (int)last)
                    : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    if (!rc && last > first)
        rc = seg_zero_part(s, link, block_id, sb, last, off, end, out, err);
    if (rc && out)
        sodium_memzero(out, len);
    return rc;
}

int qs_range_zero(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                  qk_err *err)
{
    return range_zero(s, link, block_id, off, len, NULL, err);
}

int qs_range_take(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                  uint8_t *out, qk_err *err)
{
    return range_zero(s, link, block_id, off, len, out, err);
}

int qs_block_wipe(qk_store *s, const char *link, uint64_t block_id, qk_err *err)
{
    qs_segc_drop(s, link, block_id, 0, UINT32_MAX);
    sqlite3_stmt *st = qs_prep(s, "DELETE FROM segments WHERE link = ? AND block_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "tI", link, qs_i64(block_id));
    return rc ? rc : qs_step_done(s, st, err);
}
