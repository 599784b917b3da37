/* store_walbuf.c - the store's SQLite VFSes: SQLite's "unix" (and "unix-excl") VFS with the
 * writes to a WAL file gathered into one write(2) per commit (docs/adr/0002-key-store.md, "One
 * write per commit").
 *
 * SQLite appends a frame to the WAL as two writes, its 24-byte header and the page
 * (walWriteOneFrame in SQLite's wal.c), so a commit of 25 pages was 50 pwrite(2) calls, about a
 * third of the system calls of a key pair at 64 connections. Here the writes that continue the
 * previous one gather in a buffer, which goes to the file in one pwrite (up to 124 KiB, a
 * commit of 30 pages; larger ones in pieces of that size):
 * - when the commit frame is complete: its 24-byte header carries the database size after the
 *   commit, every other frame header zero there (the WAL format), so the write of the page
 *   that follows such a header writes the buffer out and returns its result: a failed write
 *   fails the COMMIT, as it did unbuffered, before SQLite makes the commit visible;
 * - before a commit becomes visible in any case: SQLite publishes a commit by writing the
 *   wal-index header twice with a memory barrier between (walIndexHdrWrite), through
 *   xShmBarrier of the main database file, and a reader accepts the header only when both
 *   copies agree (walIndexTryHdr). The database file's xShmBarrier writes out whatever its WAL
 *   still holds first, so any reader, in this process or another (sqlite3 on the data
 *   directory), that sees the commit finds its frames in the file. With the store's default
 *   lock (QS_WALBUF_VFS_EXCL over SQLite's "unix-excl", docs/adr/0002-key-store.md, "One
 *   process per store") the index is in this process's memory, and the readers are the
 *   store's connections (the checkpointer's among them);
 * - before anything else touches the WAL file: a read that overlaps the buffer, a write that
 *   does not continue it, xSync (checkpoints), xTruncate, xFileSize, xFileControl, xClose;
 * - when the buffer is full.
 * The store's group commit syncs the WAL with fdatasync on a descriptor of its own after the
 * COMMIT returns (store_db.c), by which time the commit frame's write has put the frames in the
 * file, so its durability argument is unchanged. A process killed in the middle of a commit leaves
 * what a torn write leaves: frames without a valid commit frame, which WAL recovery discards.
 *
 * Every other file (the database itself, temporary files) and every other method goes to the
 * default VFS unchanged. */
#include "store_int.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WB_CAP       (512u * 1024u) /* a commit of up to ~125 pages gathered; larger ones flush */
#define WB_PIECE     (124u * 1024u) /* one write(2): a commit of up to 30 pages of 4 KiB */
#define WB_PATH      512
#define WB_SUFFIX    "-wal"
#define WB_FRAME_HDR 24 /* a WAL frame header (WAL_FRAME_HDRSIZE in SQLite's wal.c) */

typedef struct wb_file wb_file;
struct wb_file {
    sqlite3_file base; /* pMethods: wb_methods, or NULL when the open failed */
    sqlite3_file *real;
    bool is_wal, is_db;
    char db_path[WB_PATH]; /* main database path (of the database a WAL belongs to) */
    wb_file *link;         /* database <-> its WAL (registry lock) */
    wb_file *next;         /* registry of open main databases */
    /* WAL only: bytes written by SQLite and not yet by us; [off, off + len) of the file. */
    pthread_mutex_t mu;
    bool mu_ok;
    unsigned char *buf;
    size_t len;
    sqlite3_int64 off;
    bool commit_frame; /* the last write was the header of a commit frame */
};

static sqlite3_vfs wb_vfs, wb_vfs_excl; /* over SQLite's "unix" and "unix-excl" */
static pthread_mutex_t wb_registry = PTHREAD_MUTEX_INITIALIZER;
static wb_file *wb_dbs;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int wb_register_rc = SQLITE_ERROR, wb_register_excl_rc = SQLITE_ERROR;

/* Write to the file in pieces the default VFS takes whole: its
 * write masks the length to 17 bits (seekAndWriteFd in SQLite's os_unix.c: "nBuf &= 0x1ffff",
 * since SQLite itself never writes more than a 64 KiB page at once). */
static int wb_write_pieces(wb_file *f, const unsigned char *data, size_t len, sqlite3_int64 off)
{
    int rc = SQLITE_OK;
    for (size_t done = 0; rc == SQLITE_OK && done < len; done += WB_PIECE) {
        size_t n = len - done < WB_PIECE ? len - done : WB_PIECE;
        rc = f->real->pMethods->xWrite(f->real, data + done, (int)n, off + (sqlite3_int64)done);
    }
    return rc;
}

/* A failed write keeps the buffer: the next use of the file tries again and reports it. */
static int wb_flush_locked(wb_file *f)
{
    int rc = wb_write_pieces(f, f->buf, f->len, f->off);
    if (rc == SQLITE_OK)
        f->len = 0;
    return rc;
}

static int wb_flush(wb_file *f)
{
    if (!f->buf)
        return SQLITE_OK;
    pthread_mutex_lock(&f->mu);
    int rc = wb_flush_locked(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* ---- methods of every wrapped file: forwarded ------------------------------------------ */

static int wb_read(sqlite3_file *p, void *out, int n, sqlite3_int64 off)
{
    wb_file *f = (wb_file *)p;
    if (f->is_wal && f->buf) {
        pthread_mutex_lock(&f->mu);
        int rc = SQLITE_OK;
        if (f->len && off < f->off + (sqlite3_int64)f->len && off + n > f->off)
            rc = wb_flush_locked(f); /* the read needs bytes still in the buffer */
        pthread_mutex_unlock(&f->mu);
        if (rc != SQLITE_OK)
            return rc;
    }
    return f->real->pMethods->xRead(f->real, out, n, off);
}

static int wb_write(sqlite3_file *p, const void *data, int n, sqlite3_int64 off)
{
    wb_file *f = (wb_file *)p;
    if (!f->is_wal || !f->buf || n <= 0)
        return f->real->pMethods->xWrite(f->real, data, n, off);
    pthread_mutex_lock(&f->mu);
    int rc = SQLITE_OK;
    bool continues = f->len && off == f->off + (sqlite3_int64)f->len;
    if (f->len && (!continues || f->len + (size_t)n > WB_CAP))
        rc = wb_flush_locked(f);
    if (rc == SQLITE_OK && (size_t)n > WB_CAP) {
        rc = wb_write_pieces(f, data, (size_t)n, off); /* larger than the buffer */
    } else if (rc == SQLITE_OK) {
        if (f->len == 0)
            f->off = off;
        memcpy(f->buf + f->len, data, (size_t)n);
        f->len += (size_t)n;
        if (n == WB_FRAME_HDR) {
            /* A frame header: the commit frame's carries the database size after the commit
             * (bytes 4..7, big-endian), every other frame's zero (SQLite's WAL format). */
            const unsigned char *h = data;
            f->commit_frame = (h[4] | h[5] | h[6] | h[7]) != 0;
        } else if (f->commit_frame) {
            f->commit_frame = false; /* the commit frame's page: the commit is complete */
            rc = wb_flush_locked(f);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int wb_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    wb_file *f = (wb_file *)p;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *p, int flags)
{
    wb_file *f = (wb_file *)p;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    wb_file *f = (wb_file *)p;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *p, int level)
{
    wb_file *f = (wb_file *)p;
    return f->real->pMethods->xLock(f->real, level);
}

static int wb_unlock(sqlite3_file *p, int level)
{
    wb_file *f = (wb_file *)p;
    return f->real->pMethods->xUnlock(f->real, level);
}

static int wb_check_reserved(sqlite3_file *p, int *out)
{
    wb_file *f = (wb_file *)p;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *p, int op, void *arg)
{
    wb_file *f = (wb_file *)p;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *p)
{
    wb_file *f = (wb_file *)p;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_chars(sqlite3_file *p)
{
    wb_file *f = (wb_file *)p;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wb_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **pp)
{
    wb_file *f = (wb_file *)p;
    if (f->real->pMethods->iVersion < 2)
        return SQLITE_IOERR;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int wb_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    wb_file *f = (wb_file *)p;
    if (f->real->pMethods->iVersion < 2)
        return SQLITE_IOERR;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

/* The commit point: the frames of the database's WAL reach the file before the wal-index
 * header that makes them visible (see the top of this file). */
static void wb_shm_barrier(sqlite3_file *p)
{
    wb_file *f = (wb_file *)p;
    if (f->is_db) {
        pthread_mutex_lock(&wb_registry);
        wb_file *wal = f->link;
        if (wal)
            (void)wb_flush(wal); /* an error shows at the next write, read or sync */
        pthread_mutex_unlock(&wb_registry);
    }
    if (f->real->pMethods->iVersion >= 2)
        f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *p, int del)
{
    wb_file *f = (wb_file *)p;
    if (f->real->pMethods->iVersion < 2)
        return SQLITE_OK;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **pp)
{
    wb_file *f = (wb_file *)p;
    *pp = NULL;
    if (f->real->pMethods->iVersion < 3)
        return SQLITE_OK; /* no mapping: SQLite reads instead */
    return f->real->pMethods->xFetch(f->real, off, n, pp);
}

static int wb_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
    wb_file *f = (wb_file *)p;
    if (f->real->pMethods->iVersion < 3)
        return SQLITE_OK;
    return f->real->pMethods->xUnfetch(f->real, off, ptr);
}

/* The WAL's buffer and its lock go: the file writes straight through from now on. */
static void wb_unbuffer(wb_file *f)
{
    if (f->buf) {
        sodium_memzero(f->buf, WB_CAP);
        free(f->buf);
        f->buf = NULL;
    }
    if (f->mu_ok)
        pthread_mutex_destroy(&f->mu);
    f->mu_ok = false;
}

static int wb_close(sqlite3_file *p)
{
    wb_file *f = (wb_file *)p;
    int rc = wb_flush(f);
    pthread_mutex_lock(&wb_registry);
    if (f->link)
        f->link->link = NULL;
    f->link = NULL;
    if (f->is_db) {
        for (wb_file **q = &wb_dbs; *q; q = &(*q)->next) {
            if (*q == f) {
                *q = f->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&wb_registry);
    int rc2 = f->real->pMethods->xClose(f->real);
    wb_unbuffer(f);
    return rc != SQLITE_OK ? rc : rc2;
}

static const sqlite3_io_methods wb_methods = {
    3,
    wb_close,
    wb_read,
    wb_write,
    wb_truncate,
    wb_sync,
    wb_file_size,
    wb_lock,
    wb_unlock,
    wb_check_reserved,
    wb_file_control,
    wb_sector_size,
    wb_device_chars,
    wb_shm_map,
    wb_shm_lock,
    wb_shm_barrier,
    wb_shm_unmap,
    wb_fetch,
    wb_unfetch,
};

/* ---- the VFS ---------------------------------------------------------------------------- */

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out_flags)
{
    sqlite3_vfs *real = vfs->pAppData;
    wb_file *f = (wb_file *)p;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real->xOpen(real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods)
            (void)f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return rc;
    }
    f->base.pMethods = &wb_methods;
    f->is_db = (flags & SQLITE_OPEN_MAIN_DB) && name;
    f->is_wal = (flags & SQLITE_OPEN_WAL) && name;
    size_t nlen = name ? strlen(name) : 0;
    if (f->is_wal) {
        size_t slen = sizeof WB_SUFFIX - 1;
        f->buf = malloc(WB_CAP);
        f->mu_ok = f->buf && pthread_mutex_init(&f->mu, NULL) == 0;
        if (!f->mu_ok || nlen <= slen || nlen - slen >= WB_PATH ||
            strcmp(name + nlen - slen, WB_SUFFIX) != 0) {
            wb_unbuffer(f); /* every write goes straight through */
            return SQLITE_OK;
        }
        memcpy(f->db_path, name, nlen - slen);
        pthread_mutex_lock(&wb_registry);
        for (wb_file *d = wb_dbs; d; d = d->next) {
            if (!d->link && strcmp(d->db_path, f->db_path) == 0) {
                d->link = f;
                f->link = d;
                break;
            }
        }
        pthread_mutex_unlock(&wb_registry);
        if (!f->link) /* no database to publish through (cannot happen with SQLite's WAL) */
            wb_unbuffer(f);
    } else if (f->is_db) {
        if (nlen >= WB_PATH) {
            f->is_db = false; /* its WAL will find no database and stay unbuffered */
            return SQLITE_OK;
        }
        memcpy(f->db_path, name, nlen + 1);
        pthread_mutex_lock(&wb_registry);
        f->next = wb_dbs;
        wb_dbs = f;
        pthread_mutex_unlock(&wb_registry);
    }
    return SQLITE_OK;
}

static int wb_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xDelete(real, name, sync_dir);
}

static int wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xAccess(real, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xFullPathname(real, name, n, out);
}

static void *wb_dl_open(sqlite3_vfs *vfs, const char *name)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xDlOpen(real, name);
}

static void wb_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    real->xDlError(real, n, out);
}

static void (*wb_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xDlSym(real, h, sym);
}

static void wb_dl_close(sqlite3_vfs *vfs, void *h)
{
    sqlite3_vfs *real = vfs->pAppData;
    real->xDlClose(real, h);
}

static int wb_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xRandomness(real, n, out);
}

static int wb_sleep(sqlite3_vfs *vfs, int us)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xSleep(real, us);
}

static int wb_current_time(sqlite3_vfs *vfs, double *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xCurrentTime(real, out);
}

static int wb_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    return real->xGetLastError ? real->xGetLastError(real, n, out) : 0;
}

static int wb_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    sqlite3_vfs *real = vfs->pAppData;
    if (real->iVersion >= 2 && real->xCurrentTimeInt64)
        return real->xCurrentTimeInt64(real, out);
    double d = 0;
    int rc = real->xCurrentTime(real, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

/* One wrapper over a VFS of SQLite's: SQLITE_OK, or why it is missing. */
static int wb_register_one(sqlite3_vfs *v, sqlite3_vfs *real, const char *name)
{
    if (!real)
        return SQLITE_NOTFOUND;
    memset(v, 0, sizeof *v);
    v->iVersion = 2;
    v->szOsFile = (int)sizeof(wb_file) + real->szOsFile;
    v->mxPathname = real->mxPathname;
    v->zName = name;
    v->pAppData = real;
    v->xOpen = wb_open;
    v->xDelete = wb_delete;
    v->xAccess = wb_access;
    v->xFullPathname = wb_full_pathname;
    v->xDlOpen = wb_dl_open;
    v->xDlError = wb_dl_error;
    v->xDlSym = wb_dl_sym;
    v->xDlClose = wb_dl_close;
    v->xRandomness = wb_randomness;
    v->xSleep = wb_sleep;
    v->xCurrentTime = wb_current_time;
    v->xGetLastError = wb_last_error;
    v->xCurrentTimeInt64 = wb_current_time64;
    return sqlite3_vfs_register(v, 0); /* not the default: the store asks */
}

static void wb_register(void)
{
    wb_register_rc = wb_register_one(&wb_vfs, sqlite3_vfs_find(NULL), QS_WALBUF_VFS);
    wb_register_excl_rc =
        wb_register_one(&wb_vfs_excl, sqlite3_vfs_find("unix-excl"), QS_WALBUF_VFS_EXCL);
}

int qs_walbuf_vfs(void)
{
    (void)pthread_once(&wb_once, wb_register);
    return wb_register_rc;
}

int qs_walbuf_vfs_excl(void)
{
    (void)pthread_once(&wb_once, wb_register);
    return wb_register_excl_rc;
}
