/* store_ckpt.c - the checkpointer (docs/adr/0002-key-store.md, "Group commit" item 14): the
 * WAL is copied into the database file by a connection and a thread of their own, so that the
 * writer's connection, under the store's mutex, no longer waits for the database file's
 * fdatasync (13-18 ms on an aged lab, bench/README.md) at every ~8000 frames.
 *
 * SQLite's PASSIVE checkpoint (https://www.sqlite.org/c3ref/wal_checkpoint_v2.html) copies the
 * frames no reader needs into the database file while the writer goes on committing; only when
 * it copied every frame of the WAL does it sync the database file and let the writer restart
 * the WAL from its start (walCheckpoint and walRestartLog in SQLite's wal.c). Under load the
 * writer appends while a round copies, so a round on the checkpointer's connection alone
 * rarely catches up. Therefore:
 * - past qs_ckpt_start_frames (8000), the writer's WAL hook wakes the checkpointer, which runs a
 *   PASSIVE round on its connection, off the store's mutex, and then syncs the database file
 *   itself when the round did not catch up (SQLite only syncs it when it did), so that what
 *   it copied is on stable storage before the writer's last step;
 * - once the checkpointer is idle and at most qs_ckpt_tail_frames (512) behind, or has run two
 *   rounds on this WAL (the second copied what came during the first), the writer's hook runs
 *   the last PASSIVE checkpoint itself, under the mutex as before: it copies only what came
 *   since and syncs only those pages, and it catches up (nothing commits meanwhile), so the
 *   next transaction restarts the WAL;
 * - past qs_ckpt_force_frames (32000; the checkpointer slow or failing) the writer checkpoints
 *   whatever is left, as it did before this file.
 * Durability and crash recovery are SQLite's, unchanged: a checkpoint syncs the WAL before it
 * copies, and the WAL restarts only after a checkpoint that copied everything synced the
 * database file. The sync added here comes on top. Its failure is sticky as the WAL's is
 * (store_db.c, qs_sync_wait): the kernel may have dropped the pages, so every barrier fails
 * until the store is reopened.
 *
 * Both connections live in this process: with the store's default lock (QS_WALBUF_VFS_EXCL,
 * over SQLite's "unix-excl") the WAL index and its locks are in this process's memory, and
 * other processes are kept out by the one lock "unix-excl" takes; with `lock = shared` they
 * are the usual -shm file and fcntl(2) locks. */
#include "store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thread_name.h"

unsigned qs_ckpt_start_frames = 8000;  /* frames (32 MiB at 4 KiB): a round starts */
unsigned qs_ckpt_tail_frames = 512;    /* frames the writer's own last step copies */
unsigned qs_ckpt_force_frames = 32000; /* frames: the writer checkpoints anyway */

struct qs_ckpt {
    sqlite3 *db; /* the checkpointer's connection */
    pthread_t thread;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    bool want, busy, stop;
    int backfilled; /* frames of the current WAL copied by the last round */
    int rounds_now; /* rounds run on the current WAL (since its last restart) */
    int last_pages; /* the WAL's frames at the writer's last commit (a drop: restarted); read
                       and written by the writer's hook only, under the store's mutex */
    unsigned gen;   /* restarts seen: a round that spans one says nothing of the new WAL */
    unsigned long rounds, tails, forced; /* qs_ckpt_counts */
};

/* The writer's own PASSIVE checkpoint (mu held). */
static void ckpt_inline(sqlite3 *db, const char *name)
{
    (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static void ckpt_sync_failed(qk_store *s, int e)
{
    (void)pthread_mutex_lock(&s->smu);
    if (!s->sync_errno)
        s->sync_errno = e ? e : EIO;
    (void)pthread_cond_broadcast(&s->scond);
    (void)pthread_mutex_unlock(&s->smu);
}

static void *ckpt_main(void *arg)
{
    QK_THREAD_NAME("qk-store-ckpt");
    qk_store *s = arg;
    struct qs_ckpt *c = s->ckpt;
    (void)pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->want && !c->stop)
            (void)pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        c->want = false;
        c->busy = true;
        unsigned gen = c->gen;
        (void)pthread_mutex_unlock(&c->mu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        /* SQLite synced the file only if nothing was committed while the round copied (the
         * frame counts it returns are those the round began with, so they cannot tell). */
        if (rc == SQLITE_OK && done > 0 && qs_fdatasync(s->db_fd) != 0) {
            ckpt_sync_failed(s, errno);
            rc = SQLITE_IOERR;
        }
        (void)pthread_mutex_lock(&c->mu);
        c->busy = false;
        c->rounds++;
        if (gen == c->gen) {
            c->rounds_now++;
            if (rc == SQLITE_OK)
                c->backfilled = done;
        }
    }
    (void)pthread_mutex_unlock(&c->mu);
    return NULL;
}

void qs_ckpt_after_commit(qk_store *s, sqlite3 *db, const char *name, int pages)
{
    struct qs_ckpt *c = s->ckpt;
    unsigned n = pages > 0 ? (unsigned)pages : 0;
    if (!c) {
        if (n >= qs_ckpt_start_frames)
            ckpt_inline(db, name);
        return;
    }
    bool restarted = pages < c->last_pages; /* last_pages: the writer's alone (under s->mu) */
    c->last_pages = pages;
    if (!restarted && n < qs_ckpt_start_frames)
        return; /* most commits: nothing to decide */
    (void)pthread_mutex_lock(&c->mu);
    if (restarted) { /* nothing of the new WAL is copied yet */
        c->backfilled = 0;
        c->rounds_now = 0;
        c->gen++;
    }
    bool idle = !c->busy && !c->want;
    /* The writer's last step: when the last round left little, or after two rounds (the
     * first copies the bulk, the second what came during the first; what came during the
     * second is left, whatever the write rate, so the WAL restarts at least that often). */
    bool tail = idle && (pages - c->backfilled <= (int)qs_ckpt_tail_frames || c->rounds_now >= 2);
    bool start = n >= qs_ckpt_start_frames;
    bool force = start && !tail && n >= qs_ckpt_force_frames;
    if (start && idle && !tail) {
        c->want = true;
        (void)pthread_cond_signal(&c->cv);
    }
    if (start && tail)
        c->tails++;
    if (force)
        c->forced++;
    (void)pthread_mutex_unlock(&c->mu);
    /* SQLITE_BUSY while a round runs: the next commit tries again */
    if (start && (tail || force))
        ckpt_inline(db, name);
}

int qs_ckpt_start(qk_store *s, const char *path, const char *vfs, qk_err *err)
{
    struct qs_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return qk_err_set(err, QK_ENOMEM, "store: out of memory");
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return qk_err_set(err, QK_ENOMEM, "store: mutex init failed");
    }
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&c->mu);
        free(c);
        return qk_err_set(err, QK_ENOMEM, "store: condvar init failed");
    }
    int rc = 0;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs) !=
        SQLITE_OK)
        rc = qk_err_set(err, QK_ESTORAGE, "store: checkpointer: open: %s",
                        c->db ? sqlite3_errmsg(c->db) : "out of memory");
    if (!rc && (sqlite3_busy_timeout(c->db, (int)qs_busy_ms) != SQLITE_OK ||
                sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
                sqlite3_wal_autocheckpoint(c->db, 0) != SQLITE_OK))
        rc = qk_err_set(err, QK_ESTORAGE, "store: checkpointer: %s", sqlite3_errmsg(c->db));
    s->ckpt = c;
    if (!rc) {
        int e = pthread_create(&c->thread, NULL, ckpt_main, s);
        if (e != 0)
            rc = qk_err_set(err, QK_ESTORAGE, "store: cannot start the checkpointer: %s",
                            strerror(e));
    }
    if (rc) {
        s->ckpt = NULL;
        if (c->db)
            (void)sqlite3_close(c->db);
        (void)pthread_cond_destroy(&c->cv);
        (void)pthread_mutex_destroy(&c->mu);
        free(c);
    }
    return rc;
}

void qs_ckpt_stop(qk_store *s)
{
    struct qs_ckpt *c = s->ckpt;
    if (!c)
        return;
    (void)pthread_mutex_lock(&c->mu);
    c->stop = true;
    (void)pthread_cond_signal(&c->cv);
    (void)pthread_mutex_unlock(&c->mu);
    (void)pthread_join(c->thread, NULL);
    s->ckpt = NULL;             /* the writer checkpoints from here on (its close does) */
    (void)sqlite3_close(c->db); /* not the last connection: no checkpoint, the WAL stays */
    (void)pthread_cond_destroy(&c->cv);
    (void)pthread_mutex_destroy(&c->mu);
    free(c);
}

void qs_ckpt_counts(qk_store *s, unsigned long *rounds, unsigned long *tails, unsigned long *forced)
{
    struct qs_ckpt *c = s->ckpt;
    *rounds = *tails = *forced = 0;
    if (!c)
        return;
    (void)pthread_mutex_lock(&c->mu);
    *rounds = c->rounds;
    *tails = c->tails;
    *forced = c->forced;
    (void)pthread_mutex_unlock(&c->mu);
}
