/* store_fetch.c - one-time delivery to slaves (all or nothing) and expiry of unclaimed keys. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#define QS_EXPIRE_RUNS 256 /* runs expired per call (each up to QS_MAX_KEYS keys) */

/* The run of the last run key this fetch looked up: a bulk fetch names the keys of one run
 * in a row, so the run is read once, not once per key. The check phase writes nothing, so the
 * row stays current until the first run is used up (valid is then cleared for good). */
typedef struct {
    qs_run_row *run;
    bool valid;
} fetch_cache;

/* Whether id names a key under the cached run's prefix. Such an ID is no key row: a run's
 * prefix is refused when a key row's ID uses it, and a key row's ID when a run holds it
 * (qs_key_exists), so the key-row probe would miss. */
static bool cache_holds(const fetch_cache *c, const char *id)
{
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint32_t idx = 0;
    return c->valid && qs_run_parse_id(id, prefix, &idx) == 0 &&
           memcmp(prefix, c->run->prefix, QS_RUN_PREFIX_LEN) == 0;
}

/* Key id of a run for caller (docs/adr/0003-request-records.md), the same answers as for a key
 * row: 1 ok (k filled), 0 no such run key, <0 refused or error. */
static int fetch_check_run(qk_store *s, const char *caller, const char *master, const char *id,
                           uint64_t now, qs_key_row *k, fetch_cache *c, qk_err *err)
{
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    uint32_t idx = 0;
    if (qs_run_parse_id(id, prefix, &idx) != 0)
        return 0;
    if (!cache_holds(c, id)) {
        c->valid = false;
        int rc = qs_run_find(s, id, c->run, &idx, err);
        if (rc != 1)
            return rc;
        c->valid = true;
    } else if (idx >= c->run->n) {
        return 0;
    }
    const qs_run_row *run = c->run;
    /* a key of a run is live while the run is and its one slave has not fetched it; a
     * master-end run (no slave) was delivered whole */
    bool live = run->state == QS_KEY_RESERVED && run->has_slave &&
                !((run->fetched[idx / 8] >> (idx % 8)) & 1u);
    snprintf(k->key_id, sizeof k->key_id, "%s", id);
    snprintf(k->link, sizeof k->link, "%s", run->link);
    k->block_id = run->block_id;
    k->off = run->off + idx * run->len;
    k->len = run->len;
    k->state = live ? QS_KEY_RESERVED : QS_KEY_DELIVERED;
    k->run = true;
    if (!live || run->expires_at <= now)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s unknown, expired or used", id);
    if (master && strcmp(run->master, master) != 0)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s unknown for this master", id);
    if (strcmp(run->slave, caller) != 0)
        return qk_err_set(err, QK_EUNAUTH, "store: key %s not reserved for %s", id, caller);
    return 1;
}

/* Look up key ids[i] for caller; fills k. 0 ok, <0 error (err names the key). */
static int fetch_check(qk_store *s, const char *caller, const char *master, const char *id,
                       uint64_t now, qs_key_row *k, fetch_cache *c, qk_err *err)
{
    size_t idlen = strnlen(id, QK_KEY_ID_LEN + 1);
    if (idlen == 0 || idlen > QK_KEY_ID_LEN)
        return qk_err_set(err, QK_ENOTFOUND, "store: key id %.*s unknown", QK_KEY_ID_LEN, id);
    /* A key of a run first: every key carved since schema v6 is one, and an ID is never both a
     * run key and a key row (cache_holds), so only an ID no run holds is looked up below. */
    int rc = fetch_check_run(s, caller, master, id, now, k, c, err);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    if (!s->keys_any)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s unknown", id);
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT k.key_id, k.link, k.block_id, k.off, k.len, k.state,"
                               " k.master, k.expires_at, (SELECT c.state FROM key_slaves c"
                               " WHERE c.key_id = k.key_id AND c.slave = ?)"
                               " FROM keys k WHERE k.key_id = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    rc = qs_bindf(s, st, err, "tt", caller, id);
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 0)
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s unknown", id);
    if (rc < 0)
        return rc;
    rc = qs_key_row_read(st, k, err);
    const unsigned char *km = sqlite3_column_text(st, 6);
    sqlite3_int64 exp = sqlite3_column_int64(st, 7);
    int copy = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 8);
    if (!rc && (k->state != QS_KEY_RESERVED || exp < 0 || (uint64_t)exp <= now))
        rc = qk_err_set(err, QK_ENOTFOUND, "store: key %s unknown, expired or used", id);
    else if (!rc && master && (!km || strcmp((const char *)km, master) != 0))
        rc = qk_err_set(err, QK_ENOTFOUND, "store: key %s unknown for this master", id);
    else if (!rc && copy < 0)
        rc = qk_err_set(err, QK_EUNAUTH, "store: key %s not reserved for %s", id, caller);
    else if (!rc && copy != QS_COPY_WAITING)
        rc = qk_err_set(err, QK_ENOTFOUND, "store: key %s already fetched", id);
    (void)sqlite3_reset(st);
    return rc;
}

/* Mark cnt consecutive keys of a run fetched, k the first, and take their bytes into out (read
 * and used up at once). The first run used up in a call may be the cached one, as the check
 * phase read it; after that the cache is spent and every run is read again (into the cache's
 * buffer), so an ID twice in one call is refused. */
static int fetch_consume_run(qk_store *s, const qs_key_row *k, uint32_t cnt, uint8_t *out,
                             fetch_cache *c, qk_err *err)
{
    uint32_t idx = 0;
    int rc;
    if (cache_holds(c, k->key_id)) { /* nothing was written since the check phase read it */
        uint8_t prefix[QS_RUN_PREFIX_LEN];
        rc = qs_run_parse_id(k->key_id, prefix, &idx) == 0 && idx < c->run->n;
    } else {
        rc = qs_run_find(s, k->key_id, c->run, &idx, err);
    }
    c->valid = false; /* from here on no longer the row the check phase read */
    if (rc == 0)
        rc = qk_err_set(err, QK_ESTORAGE, "store: run of key %s vanished", k->key_id);
    else if (rc == 1)
        rc = qs_run_take(s, c->run, idx, cnt, out, err);
    if (rc == QK_ENOTFOUND)
        rc = qk_err_set(err, QK_ENOTFOUND, "store: key %s already fetched", k->key_id);
    return rc;
}

/* Mark caller's copy fetched; zero the range once every slave has its copy. */
static int fetch_consume(qk_store *s, const char *caller, const qs_key_row *k, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s,
                               "UPDATE key_slaves SET state = ? WHERE key_id = ? AND slave = ?"
                               " AND state = ?",
                               err);
    if (!st)
        return QK_ESTORAGE;
    int rc = qs_bindf(s, st, err, "itti", QS_COPY_FETCHED, k->key_id, caller, QS_COPY_WAITING);
    if (!rc)
        rc = qs_step_done(s, st, err);
    if (rc)
        return rc;
    if (sqlite3_changes(s->db) != 1) /* the same id twice in one call */
        return qk_err_set(err, QK_ENOTFOUND, "store: key %s already fetched", k->key_id);
    st = qs_prep(s, "SELECT 1 FROM key_slaves WHERE key_id = ? AND state = ? LIMIT 1", err);
    rc = st ? qs_bindf(s, st, err, "ti", k->key_id, QS_COPY_WAITING) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        (void)sqlite3_reset(st);
        return 0; /* other slaves still to fetch */
    }
    return rc ? rc : qs_key_finish(s, k, QS_KEY_DELIVERED, err);
}

/* b follows a in the same block (and, same_run, both keys of one run: the same ID prefix, so
 * consecutive indexes). Spans stay under QK_BLOCK_MAX_BYTES: they lie in one block. */
static bool adjacent(const qs_key_row *a, const qs_key_row *b, bool same_run)
{
    if (b->block_id != a->block_id || b->off != a->off + a->len || strcmp(b->link, a->link) != 0)
        return false;
    return !same_run || (a->run && b->run && memcmp(a->key_id, b->key_id, QK_KEY_ID_LEN - 4) == 0);
}

int qk_store_fetch(qk_store *s, const char *caller, const char *master, const char *const *ids,
                   size_t n, qk_fetched_key *out, uint8_t *buf, size_t cap, qk_err *err)
{
    int rc = qs_check_id(caller, "caller", err);
    if (!rc && master)
        rc = qs_check_id(master, "master", err);
    if (rc)
        return rc;
    if (!ids || !out || !buf || n < 1 || n > QS_MAX_KEYS)
        return qk_err_set(err, QK_EINVAL, "store: fetch needs 1..%d ids, out and buf", QS_MAX_KEYS);
    for (size_t i = 0; i < n; i++)
        if (!ids[i])
            return qk_err_set(err, QK_EINVAL, "store: key id %zu missing", i);
    qs_key_row *rows = calloc(n, sizeof *rows);
    fetch_cache cache = {malloc(sizeof *cache.run), false};
    if (!rows || !cache.run) {
        free(rows);
        free(cache.run);
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    }
    if ((rc = qs_begin(s, err)) != 0) {
        free(rows);
        free(cache.run);
        return rc;
    }
    uint64_t now = qs_now();
    size_t used = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = fetch_check(s, caller, master, ids[i], now, &rows[i], &cache, err);
        if (!rc && rows[i].len > cap - used)
            rc = qk_err_set(err, QK_EINVAL, "store: buffer too small for key %s", ids[i]);
        if (rc)
            break;
        memcpy(out[i].key_id, rows[i].key_id, sizeof out[i].key_id);
        out[i].length = rows[i].len;
        out[i].material = buf + used;
        used += rows[i].len;
    }
    /* keys adjacent in a block and in the request (a bulk fetch of a run) are read, and zeroed,
     * as one range: each segment is opened and resealed once, not once per key; keys of runs
     * are read where they are used up (fetch_consume_run), each segment opened once for both */
    for (size_t i = 0, j; !rc && i < n; i = j) {
        j = i + 1;
        if (rows[i].run)
            continue;
        uint64_t span = rows[i].len;
        for (; j < n && !rows[j].run && adjacent(&rows[j - 1], &rows[j], false); j++)
            span += rows[j].len;
        rc = qs_range_read(s, rows[i].link, rows[i].block_id, rows[i].off, (uint32_t)span,
                           out[i].material, err);
    }
    for (size_t i = 0, j; !rc && i < n; i = j) {
        j = i + 1;
        if (!rows[i].run) {
            rc = fetch_consume(s, caller, &rows[i], err);
            continue;
        }
        while (j < n && adjacent(&rows[j - 1], &rows[j], true))
            j++;
        rc = fetch_consume_run(s, &rows[i], (uint32_t)(j - i), out[i].material, &cache, err);
    }
    if (rc) {
        sodium_memzero(buf, used);
        memset(out, 0, n * sizeof *out);
    }
    for (size_t i = 0; !rc && i < n; i++)
        if (rows[i].run) /* a run a notice batch expected: its sync need not wait for it */
            qs_join_met(s, rows[i].key_id);
    free(rows);
    free(cache.run);
    return qs_end(s, rc, rc == 0, err);
}

int qk_store_expire(qk_store *s, uint64_t now, size_t *n_expired, qk_err *err)
{
    if (n_expired)
        *n_expired = 0;
    qs_key_row *rows = calloc(QS_MAX_KEYS, sizeof *rows);
    if (!rows)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    int rc = qs_begin(s, err);
    if (rc) {
        free(rows);
        return rc;
    }
    size_t n = 0;
    sqlite3_stmt *st = qs_prep(s,
                               "SELECT key_id, link, block_id, off, len, state FROM keys"
                               " WHERE state IN (?, ?) AND expires_at <= ? LIMIT ?",
                               err);
    rc = st ? qs_bindf(s, st, err, "iiII", QS_KEY_PENDING, QS_KEY_RESERVED, qs_i64(now),
                       (int64_t)QS_MAX_KEYS)
            : QK_ESTORAGE;
    while (!rc && n < QS_MAX_KEYS) {
        rc = qs_step(s, st, err);
        if (rc != 1)
            break;
        rc = qs_key_row_read(st, &rows[n], err);
        if (!rc)
            n++;
    }
    if (st)
        (void)sqlite3_reset(st);
    for (size_t i = 0; !rc && i < n; i++)
        rc = qs_key_finish(s, &rows[i], QS_KEY_EXPIRED, err);
    /* runs (docs/adr/0003-request-records.md): a batch of runs, whatever their key counts */
    size_t nrun = 0;
    if (!rc)
        rc = qs_runs_expire(s, now, QS_EXPIRE_RUNS, &nrun, err);
    if (!rc && (n || nrun)) {
        st = qs_prep(s,
                     "UPDATE requests SET state = ? WHERE state IN (?, ?) AND expires_at <= ?"
                     " AND (EXISTS (SELECT 1 FROM keys k WHERE k.request_id = requests.request_id"
                     " AND k.state = ?) OR EXISTS (SELECT 1 FROM runs r"
                     " WHERE r.request_id = requests.request_id AND r.state = ?))"
                     " AND NOT EXISTS (SELECT 1 FROM keys k"
                     " WHERE k.request_id = requests.request_id AND k.state IN (?, ?))"
                     " AND NOT EXISTS (SELECT 1 FROM runs r"
                     " WHERE r.request_id = requests.request_id AND r.state = ?)",
                     err);
        rc = st ? qs_bindf(s, st, err, "iiiIiiiii", QS_REQ_BURNED, QS_REQ_PENDING, QS_REQ_DONE,
                           qs_i64(now), QS_KEY_EXPIRED, QS_KEY_EXPIRED, QS_KEY_PENDING,
                           QS_KEY_RESERVED, QS_KEY_RESERVED)
                : QK_ESTORAGE;
        if (!rc)
            rc = qs_step_done(s, st, err);
        if (!rc && sqlite3_changes(s->db) > 0)
            qs_noteq_reset(s); /* burned requests may be queued for their notices */
    }
    n += nrun;
    if (!rc && n) {
        char detail[64];
        snprintf(detail, sizeof detail, "%zu keys expired", n);
        rc = qs_audit_insert(s, "keys_expired", NULL, NULL, NULL, detail, err);
    }
    free(rows);
    rc = qs_end(s, rc, rc == 0, err);
    if (!rc && n_expired)
        *n_expired = n;
    return rc;
}
