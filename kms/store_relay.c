/* store_relay.c - the end-to-end keys of a relayed request at the slaves' KME
 * (docs/adr/0004-key-relay.md, "A relayed request, end to end"): stored PENDING in a block of
 * QK_RELAY_LINK of their own (encrypted at rest like any block), RESERVED for the slaves when
 * the master KME's commit arrives, burned by qk_store_burn or expired by qk_store_expire. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* The request is known: 0 when it is this relay request again (same key IDs in order), else
 * QK_EEXIST. */
static int same_relay(qk_store *s, const qk_reservation *r, size_t n,
                      const char (*ids)[QK_KEY_ID_LEN + 1], int dir, qk_err *err)
{
    if (dir != QS_DIR_IN)
        return qk_err_set(err, QK_EEXIST, "store: request %s already known", r->request_id);
    qs_key_row *rows = NULL;
    size_t nr = 0;
    int rc = qs_load_request_keys(s, r->request_id, &rows, &nr, err);
    if (!rc && (nr != n || strcmp(rows[0].link, QK_RELAY_LINK) != 0))
        rc = qk_err_set(err, QK_EEXIST, "store: request %s known with other keys", r->request_id);
    for (size_t i = 0; !rc && i < n; i++)
        if (strcmp(rows[i].key_id, ids[i]) != 0)
            rc = qk_err_set(err, QK_EEXIST, "store: request %s known with other keys",
                            r->request_id);
    free(rows);
    return rc;
}

static int relay_args(const qk_reservation *r, size_t n, const char (*ids)[QK_KEY_ID_LEN + 1],
                      const uint32_t *lens, const uint8_t *material, size_t *total, qk_err *err)
{
    int rc = qs_check_reservation(r, err);
    if (rc)
        return rc;
    if (n < 1 || n > QS_MAX_KEYS || !ids || !lens || !material)
        return qk_err_set(err, QK_EINVAL, "store: relay_put needs 1..%d keys", QS_MAX_KEYS);
    *total = QK_BLOCK_VKEY_LEN;
    for (size_t i = 0; i < n; i++) {
        if (qs_check_text(ids[i], QK_KEY_ID_LEN, false, "key id", err) != 0)
            return QK_EINVAL;
        if (lens[i] < 1 || lens[i] > QK_BLOCK_MAX_BYTES)
            return qk_err_set(err, QK_EINVAL, "store: bad length of key %zu", i + 1);
        *total += lens[i];
        if (*total > QK_BLOCK_MAX_BYTES)
            return qk_err_set(err, QK_EINVAL, "store: relayed keys exceed one block");
    }
    return 0;
}

/* The next block ID of QK_RELAY_LINK. */
static int next_block(qk_store *s, uint64_t *bid, qk_err *err)
{
    sqlite3_stmt *q =
        qs_prep(s, "SELECT COALESCE(MAX(block_id), 0) FROM blocks WHERE link = ?", err);
    int rc = q ? qs_bindf(s, q, err, "t", QK_RELAY_LINK) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, q, err);
    if (rc != 1)
        return rc < 0 ? rc : qk_err_set(err, QK_ESTORAGE, "store: no max block id");
    sqlite3_int64 last = sqlite3_column_int64(q, 0);
    (void)sqlite3_reset(q);
    if (last < 0 || last == INT64_MAX)
        return qk_err_set(err, QK_ESTORAGE, "store: relay block ids exhausted");
    *bid = (uint64_t)last + 1;
    return 0;
}

/* Insert the block (a fresh verification key, then the keys' bytes), nothing carvable. */
static int put_block(qk_store *s, uint64_t bid, const uint8_t *material, size_t total, qk_err *err)
{
    uint8_t *bytes = sodium_malloc(total);
    if (!bytes)
        return qk_err_set(err, QK_ENOMEM, "store: secure allocation of %zu bytes failed", total);
    randombytes_buf(bytes, QK_BLOCK_VKEY_LEN);
    memcpy(bytes + QK_BLOCK_VKEY_LEN, material, total - QK_BLOCK_VKEY_LEN);
    int rc = qs_block_insert(s, QK_RELAY_LINK, bid, bytes, total, QK_BLOCK_CONFIRMED, err);
    sodium_free(bytes);
    return rc ? rc : qs_set_cursors(s, QK_RELAY_LINK, bid, total, total, err);
}

int qk_store_relay_put(qk_store *s, const qk_reservation *r, size_t n,
                       const char (*ids)[QK_KEY_ID_LEN + 1], const uint32_t *lens,
                       const uint8_t *material, qk_err *err)
{
    qk_reservation rr = *r;
    rr.link = QK_RELAY_LINK;
    size_t total = 0;
    int rc = relay_args(&rr, n, ids, lens, material, &total, err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    int dir = 0;
    rc = qs_request_get(s, rr.request_id, &dir, NULL, err);
    if (rc == 1) {
        rc = same_relay(s, &rr, n, ids, dir, err);
        return qs_end(s, rc, false, err);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        rc = qs_key_exists(s, ids[i], err);
        if (rc == 1)
            rc = qk_err_set(err, QK_EEXIST, "store: key %s already known", ids[i]);
    }
    uint64_t bid = 0;
    if (!rc)
        rc = next_block(s, &bid, err);
    if (!rc)
        rc = put_block(s, bid, material, total, err);
    if (!rc)
        rc = qs_insert_request(s, &rr, QS_DIR_IN, QS_REQ_PENDING, err);
    uint32_t off = QK_BLOCK_VKEY_LEN;
    for (size_t i = 0; !rc && i < n; i++) {
        qk_key_ref k;
        memset(&k, 0, sizeof k);
        memcpy(k.key_id, ids[i], QK_KEY_ID_LEN + 1);
        k.block_id = bid;
        k.offset = off;
        k.length = lens[i];
        off += lens[i];
        rc = qs_insert_key(s, &rr, &k, i, QS_KEY_PENDING, err);
        if (!rc)
            rc = qs_key_add_copies(s, k.key_id, rr.request_id, err);
    }
    if (!rc)
        rc = qs_audit_insert(s, "relay_stored", QK_RELAY_LINK, rr.request_id, rr.master, NULL, err);
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_relay_commit(qk_store *s, const char *request_id, qk_err *err)
{
    int rc = qs_check_id(request_id, "request_id", err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    int dir = 0, state = 0;
    rc = qs_request_get(s, request_id, &dir, &state, err);
    if (rc == 0)
        rc = qk_err_set(err, QK_ENOTFOUND, "store: request %s unknown", request_id);
    else if (rc == 1 && (dir != QS_DIR_IN || state == QS_REQ_BURNED))
        rc = qk_err_set(err, QK_EINVAL, "store: request %s is not a pending relay", request_id);
    else if (rc == 1 && state == QS_REQ_DONE)
        return qs_end(s, 0, false, err); /* committed already */
    else if (rc == 1)
        rc = 0;
    sqlite3_stmt *st = NULL;
    if (!rc) {
        st = qs_prep(s, "UPDATE keys SET state = ? WHERE request_id = ? AND state = ?", err);
        rc = st ? qs_bindf(s, st, err, "iti", QS_KEY_RESERVED, request_id, QS_KEY_PENDING)
                : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    if (!rc && sqlite3_changes(s->db) == 0) /* every key expired meanwhile */
        rc = qk_err_set(err, QK_EINVAL, "store: request %s has no pending key", request_id);
    if (!rc) {
        st = qs_prep(s, "UPDATE requests SET state = ? WHERE request_id = ?", err);
        rc = st ? qs_bindf(s, st, err, "it", QS_REQ_DONE, request_id) : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
    }
    if (!rc)
        rc = qs_audit_insert(s, "relay_committed", QK_RELAY_LINK, request_id, NULL, NULL, err);
    return qs_end(s, rc, rc == 0, err);
}

/* ---- the master KME's record of a relayed request ------------------------------------------ */

int qk_store_relay_begin(qk_store *s, const char *request_id, const char *master,
                         uint64_t expires_at, const char *path, qk_err *err)
{
    const char *slaves[1] = {master};
    qk_reservation r = {request_id, QK_RELAY_LINK, master, slaves, 1, expires_at};
    int rc = qs_check_reservation(&r, err);
    if (!rc)
        rc = qs_check_text(path, QS_DETAIL_MAX, false, "path", err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    rc = qs_insert_request(s, &r, QS_DIR_OUT, QS_REQ_PENDING, err);
    if (rc == QK_EEXIST)
        rc = qk_err_set(err, QK_EEXIST, "store: request %s already known", request_id);
    if (!rc)
        rc = qs_audit_insert(s, "relay_started", QK_RELAY_LINK, request_id, master, path, err);
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_relay_decide(qk_store *s, const char *const *request_ids, size_t n, qk_err *err)
{
    if (!request_ids || n < 1 || n > QS_MAX_SLAVES + 1)
        return qk_err_set(err, QK_EINVAL, "store: relay_decide needs 1..%d requests",
                          QS_MAX_SLAVES + 1);
    for (size_t i = 0; i < n; i++)
        if (qs_check_id(request_ids[i], "request_id", err) != 0)
            return QK_EINVAL;
    int rc = qs_begin(s, err);
    if (rc)
        return rc;
    for (size_t i = 0; !rc && i < n; i++) {
        int dir = 0, state = 0;
        rc = qs_request_get(s, request_ids[i], &dir, &state, err);
        if (rc == 0)
            rc = qk_err_set(err, QK_ENOTFOUND, "store: request %s unknown", request_ids[i]);
        else if (rc == 1 && (dir != QS_DIR_OUT || state != QS_REQ_PENDING))
            rc = qk_err_set(err, QK_EINVAL, "store: request %s is not an undecided relay",
                            request_ids[i]);
        else if (rc == 1)
            rc = 0;
        sqlite3_stmt *st = NULL;
        if (!rc) {
            /* noticed 0: the slaves' KME has yet to hear of the commit (qk_store_relay_acked) */
            st = qs_prep(s, "UPDATE requests SET state = ?, noticed = 0 WHERE request_id = ?", err);
            rc = st ? qs_bindf(s, st, err, "it", QS_REQ_DONE, request_ids[i]) : QK_ESTORAGE;
        }
        if (!rc)
            rc = qs_step_done(s, st, err);
        if (!rc)
            rc = qs_audit_insert(s, "relay_committed", QK_RELAY_LINK, request_ids[i], NULL, NULL,
                                 err);
    }
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_relay_acked(qk_store *s, const char *request_id, qk_err *err)
{
    int rc = qs_check_id(request_id, "request_id", err);
    if (rc)
        return rc;
    if ((rc = qs_begin(s, err)) != 0)
        return rc;
    sqlite3_stmt *st = qs_prep(s,
                               "UPDATE requests SET noticed = 1 WHERE request_id = ? AND link = ?"
                               " AND direction = ? AND noticed = 0",
                               err);
    rc = st ? qs_bindf(s, st, err, "tti", request_id, QK_RELAY_LINK, QS_DIR_OUT) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step_done(s, st, err);
    return qs_end(s, rc, rc == 0, err);
}

/* The path text of the request's "relay_started" event (audit rows from its creation on). */
static int started_path(qk_store *s, const char *request_id, uint64_t created, char *path,
                        size_t cap, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT detail FROM audit WHERE ts >= ? AND event = 'relay_started'"
                               " AND request_id = ? ORDER BY id DESC LIMIT 1",
                               err);
    int rc = st ? qs_bindf(s, st, err, "It", qs_i64(created), request_id) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    path[0] = '\0';
    if (rc == 1) {
        const unsigned char *d = sqlite3_column_text(st, 0);
        snprintf(path, cap, "%s", d ? (const char *)d : "");
        (void)sqlite3_reset(st);
        rc = 0;
    }
    return rc;
}

/* The relay requests of the master KME in a state, with their paths: committed and not
 * acknowledged (unacked, keys not expired at now), or undecided. */
static int relay_list(qk_store *s, bool unacked, uint64_t now, qk_relay_unacked *out, size_t cap,
                      size_t *n, qk_err *err)
{
    if (!n || (cap && !out))
        return qk_err_set(err, QK_EINVAL, "store: relay list needs out and n");
    *n = 0;
    int rc = qs_begin(s, err);
    if (rc)
        return rc;
    static const char unacked_sql[] = "SELECT request_id, created FROM requests INDEXED BY"
                                      " requests_unnoticed WHERE link = ? AND noticed = 0 AND"
                                      " direction = ? AND state = ? AND expires_at > ?"
                                      " ORDER BY created LIMIT ?";
    static const char undecided_sql[] = "SELECT request_id, created FROM requests INDEXED BY"
                                        " requests_pending WHERE link = ? AND direction = ?"
                                        " AND state = 0 AND expires_at > ?"
                                        " ORDER BY created LIMIT ?";
    sqlite3_stmt *st = qs_prep(s, unacked ? unacked_sql : undecided_sql, err);
    if (!st)
        rc = QK_ESTORAGE;
    else if (unacked)
        rc = qs_bindf(s, st, err, "tiiII", QK_RELAY_LINK, QS_DIR_OUT, QS_REQ_DONE, qs_i64(now),
                      qs_i64(cap));
    else /* PENDING: state 0 in the statement (requests_pending) */
        rc = qs_bindf(s, st, err, "tiII", QK_RELAY_LINK, QS_DIR_OUT, (int64_t)0, qs_i64(cap));
    uint64_t created[64];
    size_t want = cap < 64 ? cap : 64;
    while (!rc && *n < want) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        const unsigned char *id = sqlite3_column_text(st, 0);
        snprintf(out[*n].request_id, sizeof out[*n].request_id, "%s", id ? (const char *)id : "");
        sqlite3_int64 c = sqlite3_column_int64(st, 1);
        created[*n] = c > 0 ? (uint64_t)c : 0;
        (*n)++;
        rc = 0;
    }
    if (st)
        (void)sqlite3_reset(st);
    for (size_t i = 0; !rc && i < *n; i++)
        rc = started_path(s, out[i].request_id, created[i], out[i].path, sizeof out[i].path, err);
    if (rc)
        *n = 0;
    return qs_end(s, rc, false, err);
}

int qk_store_relay_unacked(qk_store *s, uint64_t now, qk_relay_unacked *out, size_t cap, size_t *n,
                           qk_err *err)
{
    return relay_list(s, true, now, out, cap, n, err);
}

int qk_store_relay_undecided(qk_store *s, qk_relay_unacked *out, size_t cap, size_t *n, qk_err *err)
{
    return relay_list(s, false, 0, out, cap, n, err);
}
