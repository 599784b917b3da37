/* store_reserve.c - incoming reservations from the peer KME: validate every range (known,
 * unburned block; no overlap with anything recorded here or in the same request), verify each
 * check against local material (mismatch: burn those blocks, reserve nothing), then record the
 * keys RESERVED for the slaves and move the block cursors past the peer's ranges. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

int qs_check_ref(const qk_key_ref *k, qk_err *err)
{
    qk_uuid u;
    size_t idlen = strnlen(k->key_id, sizeof k->key_id);
    if (idlen != QK_KEY_ID_LEN || qk_uuid_parse(k->key_id, idlen, &u) != 0)
        return qk_err_set(err, QK_EINVAL, "store: malformed key id");
    if (k->block_id > (uint64_t)INT64_MAX)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s: unknown block", k->key_id);
    if (k->length < 1 || k->offset < QK_BLOCK_VKEY_LEN ||
        (uint64_t)k->offset + k->length > QK_BLOCK_MAX_BYTES)
        return qk_err_set(err, QK_EINVAL, "store: key %s: bad range", k->key_id);
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const qk_key_ref *x = *(const qk_key_ref *const *)a;
    const qk_key_ref *y = *(const qk_key_ref *const *)b;
    if (x->block_id != y->block_id)
        return x->block_id < y->block_id ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return 0;
}

int qs_check_batch_overlap(const qk_key_ref *refs, size_t n, qk_err *err)
{
    const qk_key_ref **v = malloc(n * sizeof *v);
    if (!v)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    for (size_t i = 0; i < n; i++)
        v[i] = &refs[i];
    qsort(v, n, sizeof *v, cmp_range);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (v[i]->block_id == v[i - 1]->block_id &&
            (uint64_t)v[i - 1]->offset + v[i - 1]->length > v[i]->offset)
            rc = qk_err_set(err, QK_ECOLLISION, "store: keys %s and %s overlap", v[i - 1]->key_id,
                            v[i]->key_id);
    free(v);
    return rc;
}

int qs_same_request(qk_store *s, const qk_reservation *r, const qk_key_ref *refs, size_t n,
                    qk_err *err)
{
    qs_key_row *rows = NULL;
    size_t nr = 0;
    int rc = qs_load_request_keys(s, r->request_id, &rows, &nr, err);
    if (rc)
        return rc;
    if (nr == 0) { /* recorded as runs (docs/adr/0003-request-records.md) */
        free(rows);
        qk_key_ref *v = NULL;
        if ((rc = qs_run_load_refs(s, r->request_id, &v, &nr, err)) != 0)
            return rc;
        bool same = nr == n;
        for (size_t i = 0; same && i < n; i++)
            same = strcmp(v[i].key_id, refs[i].key_id) == 0 && v[i].block_id == refs[i].block_id &&
                   v[i].offset == refs[i].offset && v[i].length == refs[i].length;
        free(v);
        return same ? 0
                    : qk_err_set(err, QK_EEXIST, "store: request %s known with other keys",
                                 r->request_id);
    }
    bool same = nr == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(rows[i].key_id, refs[i].key_id) == 0 &&
               rows[i].block_id == refs[i].block_id && rows[i].off == refs[i].offset &&
               rows[i].len == refs[i].length && strcmp(rows[i].link, r->link) == 0;
    free(rows);
    return same ? 0
                : qk_err_set(err, QK_EEXIST, "store: request %s known with other keys",
                             r->request_id);
}

int qs_ref_unused(qk_store *s, const char *link, const qk_key_ref *k, qk_err *err)
{
    int rc = qs_range_recorded(s, link, k->block_id, k->offset, k->length, err);
    if (rc == 1)
        return qk_err_set(err, QK_ECOLLISION, "store: key %s: range of block %llu already used",
                          k->key_id, (unsigned long long)k->block_id);
    if (rc < 0)
        return rc;
    rc = qs_key_exists(s, k->key_id, err);
    if (rc == 1)
        return qk_err_set(err, QK_EEXIST, "store: key id %s already known", k->key_id);
    return rc < 0 ? rc : 0;
}

int qs_key_exists(qk_store *s, const char *key_id, qk_err *err)
{
    /* A key of a run first (docs/adr/0003-request-records.md): every key carved since schema
     * v6 is one. An ID is never both (a run's prefix is refused when a key row uses it, and a
     * key row's ID when a run holds it), so the order changes no answer. */
    qs_run_row run;
    uint32_t idx = 0;
    int rc = qs_run_find(s, key_id, &run, &idx, err);
    if (rc != 0 || !s->keys_any)
        return rc;
    sqlite3_stmt *st = qs_prep(s, "SELECT 1 FROM keys WHERE key_id = ?", err);
    if (!st)
        return QK_ESTORAGE;
    rc = qs_bindf(s, st, err, "t", key_id);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1)
        (void)sqlite3_reset(st);
    return rc;
}

/* Validate one ref against local state. 0 ok, 1 check mismatch, <0 error. */
static int verify_ref(qk_store *s, const char *link, qk_side peer_side, const qk_key_ref *k,
                      qk_err *err)
{
    qs_block_row b;
    int rc = qs_block_get(s, link, k->block_id, &b, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || b.state == QK_BLOCK_BURNED)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s: block %llu unknown or burned",
                          k->key_id, (unsigned long long)k->block_id);
    if ((uint64_t)k->offset + k->length > b.len)
        return qk_err_set(err, QK_EINVAL, "store: key %s: range beyond block %llu", k->key_id,
                          (unsigned long long)k->block_id);
    if (!qs_lease_clear_of_ours(&b, peer_side, k->offset, (uint64_t)k->offset + k->length))
        return qk_err_set(err, QK_ECOLLISION, "store: key %s: range of block %llu leased here",
                          k->key_id, (unsigned long long)k->block_id);
    rc = qs_ref_unused(s, link, k, err);
    if (rc < 0)
        return rc;
    uint8_t check[QK_CHECK_LEN];
    rc = qs_range_check(s, link, k->block_id, k->offset, k->length, check, err);
    if (rc)
        return rc;
    return sodium_memcmp(check, k->check, QK_CHECK_LEN) == 0 ? 0 : 1;
}

static int burn_mismatched(qk_store *s, const char *link, const qk_key_ref *refs,
                           const uint8_t *bad, size_t n, qk_err *err)
{
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        if (!bad[i])
            continue;
        if (first == n)
            first = i;
        bool done = false; /* each block once */
        for (size_t j = 0; j < i && !done; j++)
            done = bad[j] && refs[j].block_id == refs[i].block_id;
        if (done)
            continue;
        int rc = qs_block_burn(s, link, refs[i].block_id, "check mismatch with peer", err);
        if (rc)
            return rc;
    }
    return qk_err_set(err, QK_EMISMATCH, "store: key %s: check mismatch, block %llu burned",
                      refs[first].key_id, (unsigned long long)refs[first].block_id);
}

int qs_reserve_key(qk_store *s, const qk_reservation *r, const qk_key_ref *k, size_t seq,
                   qk_err *err)
{
    int rc = qs_insert_key(s, r, k, seq, QS_KEY_RESERVED, err);
    return rc ? rc : qs_key_add_copies(s, k->key_id, r->request_id, err);
}

int qs_record_ref(qk_store *s, const qk_reservation *r, qk_side peer_side, const qk_key_ref *k,
                  size_t seq, qk_err *err)
{
    int rc = qs_reserve_key(s, r, k, seq, err);
    if (rc)
        return rc;
    int64_t lo = peer_side == QK_SIDE_LOW ? (int64_t)k->offset + k->length : 0;
    int64_t hi = peer_side == QK_SIDE_HIGH ? (int64_t)k->offset : INT64_MAX;
    sqlite3_stmt *st = qs_prep(s,
                               "UPDATE blocks SET lo = MAX(lo, ?), hi = MIN(hi, ?),"
                               " state = CASE WHEN state = ? THEN ? ELSE state END"
                               " WHERE link = ? AND block_id = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    rc = qs_bindf(s, st, err, "IIiitI", lo, hi, QK_BLOCK_PENDING, QK_BLOCK_CONFIRMED, r->link,
                  qs_i64(k->block_id));
    return rc ? rc : qs_step_done(s, st, err);
}

static int reserve_new(qk_store *s, const qk_reservation *r, qk_side peer_side,
                       const qk_key_ref *refs, size_t n, qk_err *err)
{
    uint8_t *bad = calloc(n, 1);
    if (!bad)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    int rc = 0;
    bool any_bad = false;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = verify_ref(s, r->link, peer_side, &refs[i], err);
        if (rc == 1) {
            bad[i] = 1;
            any_bad = true;
            rc = 0;
        }
    }
    if (!rc && any_bad)
        rc = burn_mismatched(s, r->link, refs, bad, n, err);
    free(bad);
    if (rc)
        return rc;
    rc = qs_insert_request(s, r, QS_DIR_IN, QS_REQ_DONE, err);
    for (size_t i = 0; !rc && i < n; i++)
        rc = qs_record_ref(s, r, peer_side, &refs[i], i, err);
    return rc;
}

int qk_store_reserve_in(qk_store *s, const qk_reservation *r, qk_side peer_side,
                        const qk_key_ref *refs, size_t n, qk_err *err)
{
    int rc = qs_check_reservation(r, err);
    if (rc)
        return rc;
    if (peer_side != QK_SIDE_LOW && peer_side != QK_SIDE_HIGH)
        return qk_err_set(err, QK_EINVAL, "store: bad side");
    if (!refs || n < 1 || n > QS_MAX_KEYS)
        return qk_err_set(err, QK_EINVAL, "store: key count %zu outside 1..%d", n, QS_MAX_KEYS);
    for (size_t i = 0; i < n; i++)
        if ((rc = qs_check_ref(&refs[i], err)) != 0)
            return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    sqlite3_stmt *st =
        qs_prep(s, "SELECT direction, state FROM requests WHERE request_id = ?", err);
    rc = st ? qs_bindf(s, st, err, "t", r->request_id) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        int dir = sqlite3_column_int(st, 0);
        int state = sqlite3_column_int(st, 1);
        (void)sqlite3_reset(st);
        if (state == QS_REQ_BURNED)
            rc = qk_err_set(err, QK_EINVAL, "store: request %s was burned", r->request_id);
        else if (dir != QS_DIR_IN)
            rc = qk_err_set(err, QK_EEXIST, "store: request %s is an outgoing one", r->request_id);
        else
            rc = qs_same_request(s, r, refs, n, err);
        return qs_end(s, rc, false, err);
    }
    if (rc == 0)
        rc = qs_check_batch_overlap(refs, n, err);
    if (rc == 0)
        rc = reserve_new(s, r, peer_side, refs, n, err);
    /* a check mismatch commits the burning of the blocks involved, and nothing else */
    return qs_end(s, rc, rc == 0 || rc == QK_EMISMATCH, err);
}
