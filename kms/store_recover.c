/* store_recover.c - replies at commit, and the recovery after a power loss that makes them safe
 * (docs/adr/0002-key-store.md, "Replies at commit").
 *
 * A carve from this end's granted leases (qk_store_carve_owned) is answered once its group is
 * committed, before the WAL is synced. A COMMIT that returned has written its frames into the
 * kernel's page cache, so a crash of the process (kill -9, abort) loses nothing: the next open
 * reads them back. A power loss or an OS crash may lose them, and with them the cursor moves of
 * carves whose keys were already handed out. The store cannot see that loss directly, but it
 * can see that the machine rebooted: the boot ID (/proc/sys/kernel/random/boot_id, random per
 * boot) differs from the one recorded at the last open, and the store was not closed cleanly.
 * Then every uncarved byte of every lease this end holds is zeroed and the cursor moved to the
 * lease's bound: the leases themselves were synced before they were used (lease asks and
 * answers do not reply at commit), so no byte a lost carve handed out can be handed out again. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QS_BOOT_ID_LEN 36         /* the kernel's boot_id: a UUID in text form */
#define QS_BURN_PASSES (1u << 24) /* more blocks than a store ever holds per side */

const char *qs_test_boot_id = NULL;

/* This boot's ID into out ("" when unknown). */
static void boot_id(char out[QS_BOOT_ID_LEN + 1])
{
    out[0] = '\0';
    if (qs_test_boot_id) {
        snprintf(out, QS_BOOT_ID_LEN + 1, "%s", qs_test_boot_id);
        return;
    }
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[QS_BOOT_ID_LEN + 2];
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    (void)close(fd);
    if (n < QS_BOOT_ID_LEN)
        return;
    for (size_t i = 0; i < QS_BOOT_ID_LEN; i++) /* hex digits and dashes only */
        if (!((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f') ||
              buf[i] == '-'))
            return;
    memcpy(out, buf, QS_BOOT_ID_LEN);
    out[QS_BOOT_ID_LEN] = '\0';
}

/* meta row name as text into out (""/0 when absent). 1 present, 0 absent, <0 error. */
static int meta_get(qk_store *s, const char *name, char *out, size_t cap, qk_err *err)
{
    out[0] = '\0';
    sqlite3_stmt *st = qs_prep(s, "SELECT value FROM meta WHERE name = ?", err);
    int rc = st ? qs_bindf(s, st, err, "t", name) : QK_ESTORAGE;
    if (!rc)
        rc = qs_step(s, st, err);
    if (rc == 1) {
        const void *v = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (n >= cap)
            n = cap - 1;
        if (v)
            memcpy(out, v, n);
        out[n] = '\0';
    }
    if (st)
        (void)sqlite3_reset(st);
    return rc;
}

static int meta_put(qk_store *s, const char *name, const char *value, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s, "INSERT OR REPLACE INTO meta(name, value) VALUES(?, ?)", err);
    int rc = st ? qs_bindf(s, st, err, "tb", name, value, strlen(value)) : QK_ESTORAGE;
    return rc ? rc : qs_step_done(s, st, err);
}

static int meta_del(qk_store *s, const char *name, qk_err *err)
{
    sqlite3_stmt *st = qs_prep(s, "DELETE FROM meta WHERE name = ?", err);
    int rc = st ? qs_bindf(s, st, err, "t", name) : QK_ESTORAGE;
    return rc ? rc : qs_step_done(s, st, err);
}

/* Zero and close the uncarved room of every lease this end holds on one side (LOW: [lo,
 * min(lease_lo, hi)), moving lo; HIGH: [max(lease_hi, lo), hi), moving hi). Each pass takes
 * one block out of the owned-room set (its room becomes empty), so the loop ends; a pass that
 * did not (a cursor that did not move) would repeat its block, and the bound stops that. */
static int burn_owned(qk_store *s, qk_side side, uint64_t *blocks, uint64_t *bytes, qk_err *err)
{
    static const char low_sql[] = "SELECT link, block_id, lo, MIN(lease_lo, hi) FROM blocks"
                                  " WHERE lease_lo > lo AND MIN(lease_lo, hi) > lo AND state = ?"
                                  " LIMIT 1";
    static const char high_sql[] = "SELECT link, block_id, MAX(lease_hi, lo), hi FROM blocks"
                                   " WHERE hi > lease_hi AND hi > MAX(lease_hi, lo) AND state = ?"
                                   " LIMIT 1";
    for (uint32_t pass = 0;; pass++) {
        if (pass == QS_BURN_PASSES)
            return qk_err_set(err, QK_ESTORAGE, "store: lease room left after %u blocks", pass);
        sqlite3_stmt *st = qs_prep(s, side == QK_SIDE_LOW ? low_sql : high_sql, err);
        int rc = st ? qs_bindf(s, st, err, "i", QK_BLOCK_CONFIRMED) : QK_ESTORAGE;
        if (!rc)
            rc = qs_step(s, st, err);
        if (rc <= 0)
            return rc;
        char link[QK_STORE_ID_MAX + 1];
        const unsigned char *lt = sqlite3_column_text(st, 0);
        snprintf(link, sizeof link, "%s", lt ? (const char *)lt : "");
        sqlite3_int64 b = sqlite3_column_int64(st, 1);
        sqlite3_int64 x = sqlite3_column_int64(st, 2);
        sqlite3_int64 y = sqlite3_column_int64(st, 3);
        (void)sqlite3_reset(st);
        rc = qs_owned_close(s, link, side, b, x, y, err);
        char detail[128];
        snprintf(detail, sizeof detail, "block %lld [%lld, %lld): power loss since the last open",
                 (long long)b, (long long)x, (long long)y);
        if (!rc)
            rc = qs_audit_insert(s, "power_loss_burn", link, NULL, NULL, detail, err);
        if (rc)
            return rc;
        (*blocks)++;
        *bytes += (uint64_t)(y - x);
    }
}

int qs_recover_open(qk_store *s, bool want, qk_err *err)
{
    char now[QS_BOOT_ID_LEN + 1], last[QS_BOOT_ID_LEN + 1], clean[8];
    boot_id(now);
    bool on = want && now[0];
    int rc = qs_begin(s, err);
    if (rc)
        return rc;
    int have_last = meta_get(s, "boot_id", last, sizeof last, err);
    int have_clean = have_last < 0 ? 0 : meta_get(s, "clean", clean, sizeof clean, err);
    rc = have_last < 0 ? have_last : have_clean < 0 ? have_clean : 0;
    /* No boot recorded: the last open never replied at commit (an earlier version, or an
     * unknown boot), so everything it answered was synced first. */
    s->recovered = !rc && have_last == 1 && have_clean != 1 && (!now[0] || strcmp(now, last) != 0);
    if (s->recovered) {
        rc = burn_owned(s, QK_SIDE_LOW, &s->recovered_blocks, &s->recovered_bytes, err);
        if (!rc)
            rc = burn_owned(s, QK_SIDE_HIGH, &s->recovered_blocks, &s->recovered_bytes, err);
    }
    if (!rc)
        rc = meta_del(s, "clean", err);
    if (!rc) /* a boot is recorded only while replies at commit are on */
        rc = on ? meta_put(s, "boot_id", now, err) : meta_del(s, "boot_id", err);
    rc = qs_end(s, rc, rc == 0, err); /* synchronous=FULL: on stable storage when it returns */
    if (rc)
        return qk_err_prefix(err, "power-loss recovery");
    s->reply_at_commit = on;
    s->recover_done = true;
    return 0;
}

void qs_recover_close(qk_store *s)
{
    /* Every group is committed and synced by now: mark that (qs_end syncs it, as for any call
     * that is not inline). Not after a failed sync: what it failed to sync is not clean. A
     * lost mark only makes the next open after a reboot burn lease room it could have kept. */
    (void)pthread_mutex_lock(&s->smu);
    bool failed = s->sync_errno != 0;
    (void)pthread_mutex_unlock(&s->smu);
    qk_err e;
    if (failed || !s->recover_done || qs_begin(s, &e) != 0)
        return;
    int rc = meta_put(s, "clean", "1", &e);
    (void)qs_end(s, rc, rc == 0, &e);
}

int qk_store_recovery(qk_store *s, uint64_t *blocks, uint64_t *bytes)
{
    if (!s)
        return QK_EINVAL;
    if (blocks)
        *blocks = s->recovered_blocks;
    if (bytes)
        *bytes = s->recovered_bytes;
    return s->recovered ? 1 : 0;
}

bool qk_store_replies_at_commit(const qk_store *s)
{
    return s && s->reply_at_commit;
}
