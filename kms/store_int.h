/* store_int.h - private declarations shared by the kms/store_*.c files (not a public API).
 *
 * Locking: every public call takes s->mu for its whole transaction (qs_begin .. qs_end), so
 * the helpers below run with the mutex held and may use the statement cache and the secure
 * scratch buffers freely. qs_end then waits for the WAL sync (group commit) without it. */
#ifndef QK_STORE_INT_H
#define QK_STORE_INT_H

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "qk_inline.h"
#include "store.h"

#define QS_MAX_KEYS      4096  /* keys per call (carve, reserve_in, fetch, expire batch) */
#define QS_MAX_SLAVES    64    /* slave identities per reservation */
#define QS_STMT_CACHE    96    /* prepared statements kept per store */
#define QS_GROUP_MAX     256   /* calls in one group transaction, then it commits */
#define QS_FAILED_GROUPS 16    /* failed group numbers remembered for late waiters */
#define QS_EVENT_MAX     64    /* audit event name */
#define QS_DETAIL_MAX    1024  /* audit detail */
#define QS_BUSY_MS       5000  /* SQLite busy timeout */
#define QS_TAIL_EVERY    64    /* carve_owned calls between sweeps for tails when none left one */
#define QS_SEGSZ_CACHE   16    /* blocks whose segment size is remembered */
#define QS_NOTEQ_MAX     4096  /* notices the queue holds (store_noteq.c) */
#define QS_NOTEQ_KEYS    65536 /* keys they hold in all */
#define QS_NOTEQ_LINKS   16    /* links whose notices the queue follows */
#define QS_ZQ_MAX        512   /* ranges taken in a transaction, their zeroing at its COMMIT */
#define QS_SEGC_SLOTS    4     /* segments whose plaintext one-key takes keep (store_segcache.c) */
#define QS_RUNC_SLOTS    256   /* slave-end runs kept as last written (store_runcache.c) */
#define QS_JOIN_MAX      64    /* runs a sync may wait to be fetched (store_join.c) */
#define QS_JOIN_WAIT_US  500   /* how long, from the first of them */
#define QS_NONCE_LEN     crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define QS_TAG_LEN       crypto_aead_xchacha20poly1305_ietf_ABYTES
#define QS_AD_MAX        (2 + QK_STORE_ID_MAX + 8 + 4)

/* Request directions and states (requests.direction / requests.state). */
enum { QS_DIR_OUT = 0, QS_DIR_IN = 1, QS_DIR_TOMB = 2 };
enum { QS_REQ_PENDING = 0, QS_REQ_DONE = 1, QS_REQ_BURNED = 2 };
/* requests_pending (schema v8) is partial on "state = 0", which queries spell out as a literal */
_Static_assert(QS_REQ_PENDING == 0, "requests_pending holds state 0");
/* Key states (keys.state) and per-slave copy states (key_slaves.state). */
enum {
    QS_KEY_PENDING = 0,
    QS_KEY_RESERVED = 1,
    QS_KEY_DELIVERED = 2,
    QS_KEY_BURNED = 3,
    QS_KEY_EXPIRED = 4
};
/* CLOSED: the key ended (delivered, burned, expired) before this slave fetched it; set by
 * the key_copies_close trigger (migration v4). */
enum { QS_COPY_WAITING = 0, QS_COPY_FETCHED = 1, QS_COPY_CLOSED = 2 };
/* pool_counts.kind (migration v4). */
/* pool_counts kinds. QS_COUNT_REFUSED (no migration: a new kind of row) counts the blocks
 * refused for the pool cap, state QS_REFUSED_FULL (n blocks, bytes); state QS_REFUSED_LAST has
 * n = 1 while the link's last offered new block was refused (the link is full). */
enum { QS_COUNT_BLOCKS = 0, QS_COUNT_KEYS = 1, QS_COUNT_REFUSED = 2 };
enum { QS_REFUSED_FULL = 0, QS_REFUSED_LAST = 1 };

/* Transaction control, prepared once per store (store_db.c qs_ctl). */
typedef enum {
    QS_CTL_BEGIN,
    QS_CTL_SAVEPOINT,
    QS_CTL_RELEASE,
    QS_CTL_ROLLBACK_TO,
    QS_CTL_COMMIT,
    QS_CTL_ROLLBACK,
    QS_CTL_N
} qs_ctl_op;

/* The notices of this open's carves, for the notifier (store_noteq.c; under mu). */
typedef struct qs_noteq_ent qs_noteq_ent;
typedef struct {
    qs_noteq_ent *head, *tail; /* oldest first */
    size_t n, nkeys;
    /* links whose pending notices are all in the queue ("clean") */
    char clean[QS_NOTEQ_LINKS][QK_STORE_ID_MAX + 1];
    size_t nclean;
    qs_noteq_ent *call; /* the current call's carve, queued by qs_end if the call succeeds */
} qs_noteq;

/* Changes to pool_counts not written yet, per (link, kind, state), and the current call's
 * share of them (store_counts.c; under mu). */
#define QS_COUNT_SLOTS 16
#define QS_COUNT_LOG   64
typedef struct {
    char link[QK_STORE_ID_MAX + 1];
    int kind, state;
    int64_t n, bytes;
} qs_count_slot;
typedef struct {
    qs_count_slot slot[QS_COUNT_SLOTS];
    size_t nslot;
    struct {
        uint8_t slot;
        int64_t n, bytes;
    } log[QS_COUNT_LOG];
    size_t nlog;
} qs_counts;

#define QS_RUN_PREFIX_LEN 14 /* key ID = prefix || be16(index) (store_runs.c) */

/* The fetches a kept notice call makes likely, which the syncer lets join its sync
 * (store_join.c): the current call's runs (under mu), then the runs expected (under smu). */
typedef struct {
    uint8_t stage[QS_JOIN_MAX][QS_RUN_PREFIX_LEN];
    size_t nstage;
    uint8_t want[QS_JOIN_MAX][QS_RUN_PREFIX_LEN];
    size_t nwant;
    atomic_size_t pending; /* nwant, read without smu by a fetch (0: nothing to look for) */
    struct timespec until; /* the hold's end (CLOCK_MONOTONIC) */
} qs_join;

/* The runs this open recorded from notices, for key_known (store_known.c). */
typedef struct qs_known qs_known;
/* The slave-end runs as last written or read (store_runcache.c). */
typedef struct qs_runc qs_runc;

/* A range [a, b) of segment idx (block offsets) taken in the open transaction: zeroed already,
 * or (pending) at its COMMIT (store_seg.c qs_zero_flush). */
typedef struct {
    uint64_t block_id;
    uint32_t idx, a, b;
    bool pending;
    char link[QK_STORE_ID_MAX + 1];
} qs_zq_ent;

/* A segment whose plaintext is held in memory (store_segcache.c): the row with every byte taken
 * so far zeroed, pending zeroings included; used counts those bytes. */
typedef struct {
    bool valid;
    uint64_t block_id, tick;
    uint32_t idx, plen, used;
    char link[QK_STORE_ID_MAX + 1];
} qs_segc_ent;

struct qs_stmt {
    const char *sql;
    sqlite3_stmt *st;
    bool used; /* prepared for the current call (qs_end resets it) */
};

struct qk_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* Group commit (store_db.c, docs/adr/0002-key-store.md): synchronous=NORMAL, and qs_end
     * waits, outside mu, until the WAL has been fdatasync'ed past its commit. */
    /* The group transaction (store_db.c qs_end; under mu): calls of inline handlers that allow
     * it (qk_inline.group_commit) leave their changes in one open transaction, each call in its
     * own savepoint, and the syncer commits it before it syncs: the pages many calls share
     * (counters, index leaves, the block row) go to the WAL once per group. */
    bool group_open; /* BEGIN IMMEDIATE done and not yet committed */
    bool call_lazy;  /* the current call may be lost in a crash (qs_lazy) */
    /* The current call's writes are undone safely by the power-loss recovery (qs_recoverable):
     * an inline handler's reply then waits for its COMMIT only, not for the sync. */
    bool call_recoverable;
    /* Replies may follow a COMMIT before its sync (store_recover.c): this boot's ID is known
     * and recorded, so that an open after a power loss finds it changed and recovers. */
    bool reply_at_commit;
    bool time_ordered_ids; /* qk_store_opts.time_ordered_ids: qs_run_new_prefix */
    bool recover_done;     /* qs_recover_open succeeded: a clean close may be marked */
    bool recovered;        /* this open recovered from a power loss (qk_store_recovery) */
    uint64_t recovered_blocks, recovered_bytes; /* lease room it burned */
    /* The keys table may hold rows: read at open, set by qs_insert_key before every insert and
     * never cleared while open. Every key carved since schema v6 is a run key, so while this is
     * false the probes of the key-row table (range overlaps, IDs, prefixes) are skipped: they
     * could only miss (docs/adr/0003-request-records.md, "Key rows only when needed"). */
    bool keys_any;
    /* Segment sizes of recently used blocks (seg_size in store_seg.c), direct-mapped by block
     * ID. A block's seg_bytes never changes: blocks are never deleted (their primary key is
     * never reused), and every block inserted since schema v7 gets QK_SEG_BYTES. */
    struct {
        uint64_t block_id;
        uint32_t seg_bytes; /* 0: empty */
        char link[QK_STORE_ID_MAX + 1];
    } segsz[QS_SEGSZ_CACHE];
    unsigned group_calls;     /* calls whose changes the open transaction holds */
    uint64_t group_seq;       /* the number its COMMIT gets (commit_seq + 1) */
    sqlite3_int64 op_changes; /* sqlite3_total_changes64 when the current call began */
    int wal_fd;               /* "<path>-wal", opened after WAL mode is on; -1 before */
    int db_fd;                /* the database file (the checkpointer's sync), opened with wal_fd and
                                 closed after the connection: a close drops this process's locks */
    struct qs_ckpt *ckpt;     /* the checkpointer (store_ckpt.c); NULL: the writer checkpoints */
    dev_t claim_dev;          /* the file this store has open (qs_claim in store_db.c) */
    ino_t claim_ino;
    bool claimed;
    qk_store *claim_next;
    pthread_mutex_t smu;  /* guards the fields below */
    pthread_cond_t scond; /* broadcast after every sync attempt */
    uint64_t commit_seq;  /* last commit that wrote WAL frames (assigned under mu) */
    uint64_t synced_seq;  /* every commit <= this is on stable storage */
    uint64_t lazy_seq;    /* the newest number holding a lazy call: the syncer syncs it */
    bool syncing;         /* one thread is in fdatasync */
    int sync_errno;       /* sticky: a failed sync fails every later barrier */
    /* Replies of inline handlers waiting for a sync (common/qk_inline.h): the syncer thread
     * syncs for them; whoever advances synced_seq completes the ones it covers. */
    qk_inline_waiter *waiters;
    /* Groups whose COMMIT failed or that SQLite rolled back (their numbers, the last
     * QS_FAILED_GROUPS; under smu): their calls had returned, so their waiters fail. */
    uint64_t failed[QS_FAILED_GROUPS];
    size_t nfailed;
    pthread_cond_t wcond; /* the syncer waits here for waiters (with smu) */
    qs_join join;         /* fetches a notice batch makes likely (store_join.c) */
    pthread_t syncer;
    bool syncer_on, syncer_stop, wcond_ok;
    uint8_t *secret;  /* one sodium_malloc region holding the four below */
    uint8_t *mk;      /* QK_MASTER_KEY_LEN: node master key */
    uint8_t *scratch; /* QK_SEG_BYTES: one plaintext segment, wiped after every use */
    uint8_t *vkey;    /* QK_BLOCK_VKEY_LEN: a block's verification key, wiped after use */
    uint8_t *segc_pt; /* QS_SEGC_SLOTS x QK_SEG_BYTES: the plaintext of segc's slots */
    qs_segc_ent segc[QS_SEGC_SLOTS];
    uint64_t segc_tick;
    qs_noteq noteq;
    qs_known *known;  /* NULL: none (allocation failed), key_known reads the table */
    qs_runc *runc;    /* NULL: none (allocation failed), a fetch reads its run */
    qs_counts counts; /* pool_counts changes written at the group's COMMIT */
    /* The tail sweep after a carve (store_notice.c close_tails; under mu): carve calls since
     * the last sweep, and whether that sweep closed a full pass (more may be left). */
    unsigned tail_calls;
    bool tail_more;
    /* Ranges taken in the open transaction, zeroed at its COMMIT (under mu; zq_mark: where the
     * current call's begin, dropped if its savepoint is undone). */
    qs_zq_ent zq[QS_ZQ_MAX];
    size_t zq_n, zq_mark;
    struct qs_stmt stmts[QS_STMT_CACHE];
    size_t nstmts;
    sqlite3_stmt *ctl[QS_CTL_N]; /* qs_ctl: prepared on first use */
};

/* A key row as loaded for state changes. */
typedef struct {
    char key_id[QK_KEY_ID_LEN + 1];
    char link[QK_STORE_ID_MAX + 1];
    uint64_t block_id;
    uint32_t off, len;
    int state;
    bool run; /* a key of a run (fetch only; docs/adr/0003-request-records.md) */
} qs_key_row;

/* ---- store_db.c: connection, transactions, statements, validation --------------------- */
/* Lock, and BEGIN IMMEDIATE unless the group transaction is open; a savepoint for the call. */
int qs_begin(qk_store *s, qk_err *err);
/* Release (commit) or roll back the call's savepoint; then COMMIT (the whole group with it),
 * or keep the group open for an inline handler that allows it (its reply waits for the group's
 * commit and sync instead), or ROLLBACK a transaction that changed nothing; unlock. A caller
 * that is not inline waits (unlocked) for the WAL sync past what it wrote or read. */
int qs_end(qk_store *s, int rc, bool commit, qk_err *err);
/* Between qs_begin and qs_end: this call's changes may be lost in a crash, because whoever
 * relies on them does it again after a restart (qk_store_notices_done: a notice not marked
 * noticed is sent again, and the peer takes it again). Its changes join the open group (or
 * commit) and qs_end returns without waiting for the WAL sync; the syncer syncs them soon. */
void qs_lazy(qk_store *s);
/* The current call only carves from this end's granted leases (store_notice.c), or only reads
 * such carves: if a power loss undoes them, the next open burns every lease room they could
 * have used (store_recover.c), so an inline handler's reply needs its COMMIT, not its sync, and
 * so does a read by any caller (docs/adr/0002-key-store.md, "Replies at commit"). Under mu,
 * between qs_begin and qs_end. */
void qs_recoverable(qk_store *s);

/* ---- store_seg.c: deferred zeroing ---------------------------------------------------- */
/* Zero every range taken in the open transaction (one rewrite per segment), before its COMMIT;
 * the list is empty after it, whatever the result. */
int qs_zero_flush(qk_store *s, qk_err *err);

/* ---- store_segcache.c: the plaintext of the segments one-key takes last used ----------- */
/* The slot of a segment, or NULL (marked most recently used). */
qs_segc_ent *qs_segc_find(qk_store *s, const char *link, uint64_t block_id, uint32_t idx);
/* A wiped slot for a segment (the least recently used one), not valid until the caller fills
 * its plaintext, plen and used and sets valid; NULL when the link's name does not fit. */
qs_segc_ent *qs_segc_claim(qk_store *s, const char *link, uint64_t block_id, uint32_t idx);
uint8_t *qs_segc_buf(qk_store *s, const qs_segc_ent *c);
/* Wipe slot c, valid or only claimed (a fill that failed), and mark it empty. */
void qs_segc_wipe(qk_store *s, qs_segc_ent *c);
/* Wipe the slots of segments first..last of a block (their rows change or go), or all. */
void qs_segc_drop(qk_store *s, const char *link, uint64_t block_id, uint32_t first, uint32_t last);
void qs_segc_drop_all(qk_store *s);

/* ---- store_noteq.c: the notices of this open's carves, kept for the notifier ----------- */
/* Notices the queue holds before a link falls back to the tables (QS_NOTEQ_MAX; tests lower it). */
extern size_t qs_noteq_max;
/* Whether the queue holds every pending notice of link (then it answers notices_pending). */
bool qs_noteq_clean(const qk_store *s, const char *link);
/* The current call carved n keys refs for r: its notice, queued if the call succeeds and link
 * is clean (out of memory: the link falls back to the tables). */
void qs_noteq_stage(qk_store *s, const qk_reservation *r, const qk_key_ref *refs, size_t n);
/* qs_end: queue the call's staged notice (ok: the call's savepoint was kept) or drop it. */
void qs_noteq_call_end(qk_store *s, bool ok);
/* Copies of the oldest <= cap queued notices of link into out (0 or QK_ENOMEM). */
int qs_noteq_take(qk_store *s, const char *link, qk_notice *out, size_t cap, size_t *n,
                  qk_err *err);
/* The tables returned all n pending notices v of link (fewer than asked): queue copies, and
 * the queue answers for the link from now on. */
void qs_noteq_fill(qk_store *s, const char *link, const qk_notice *v, size_t n);
/* These requests were noticed: out of the queue. */
void qs_noteq_done(qk_store *s, const char *const *request_ids, size_t n);
/* Empty the queue; every link falls back to the tables (a request's state changed, the group
 * was lost, the store closes). */
void qs_noteq_reset(qk_store *s);

/* ---- store_recover.c: replies at commit, recovery after a power loss ------------------ */
/* At open (synchronous=FULL, before the syncer starts): when the last open recorded another
 * boot and the store was not closed cleanly, a power loss (or an OS crash) may have undone
 * commits whose replies were sent: burn the uncarved room of every lease this end holds. Then
 * clear the clean mark, and with want (replies at commit asked for) record this boot and set
 * s->reply_at_commit when this boot's ID is known; else record none. */
int qs_recover_open(qk_store *s, bool want, qk_err *err);
/* At close, after the last sync (under mu, no group open): mark the store closed cleanly. */
void qs_recover_close(qk_store *s);
/* Tests: the boot ID to use instead of /proc/sys/kernel/random/boot_id ("" = unknown). */
extern const char *qs_test_boot_id;
/* Test hook: when set, called instead of fdatasync(2) on the WAL and database files (tests
 * only). qs_fdatasync: fdatasync(2), or the hook when set; every sync of the store's files. */
extern int (*qs_test_fdatasync)(int fd);
int qs_fdatasync(int fd);
/* How long the syncer lets a lazy call's group wait for a reply that needs a sync anyway, in
 * ms (QS_LAZY_WAIT_MS; tests change it). */
extern unsigned qs_lazy_wait_ms;
/* The CLOCK_MONOTONIC time us from now (the syncer's waits on wcond; store_db.c). */
struct timespec qs_deadline_us(uint64_t us);
/* SQLite's busy timeout for this process's stores, set at open (QS_BUSY_MS; tests shorten it). */
extern unsigned qs_busy_ms;
int qs_db_err(qk_store *s, qk_err *err, const char *what);
/* The store's SQLite VFS (store_walbuf.c): the default VFS with each commit's WAL frames
 * written in one pwrite(2). Registers it once; SQLITE_OK when QS_WALBUF_VFS can be opened.
 * QS_WALBUF_VFS_EXCL wraps SQLite's "unix-excl" instead (one process per store, docs/adr/
 * 0002-key-store.md item 12): SQLITE_OK from qs_walbuf_vfs_excl when it can be opened. */
#define QS_WALBUF_VFS      "qk-walbuf"
#define QS_WALBUF_VFS_EXCL "qk-walbuf-excl"
int qs_walbuf_vfs(void);
int qs_walbuf_vfs_excl(void);
/* The checkpointer (store_ckpt.c; docs/adr/0002-key-store.md item 14): a connection and a
 * thread of its own copy the WAL into the database file and sync it, off the store's mutex.
 * qs_ckpt_start: after the writer's first transaction in WAL mode (path, the VFS the writer
 * uses). qs_ckpt_after_commit: the writer's WAL hook (mu held; pages: frames in the WAL).
 * qs_ckpt_stop: before the writer's connection closes (idempotent). */
int qs_ckpt_start(qk_store *s, const char *path, const char *vfs, qk_err *err);
void qs_ckpt_after_commit(qk_store *s, sqlite3 *db, const char *name, int pages);
void qs_ckpt_stop(qk_store *s);
/* Rounds the checkpointer ran, last steps and forced checkpoints the writer ran (tests). */
void qs_ckpt_counts(qk_store *s, unsigned long *rounds, unsigned long *tails,
                    unsigned long *forced);
/* The thresholds, in WAL frames (store_ckpt.c; tests lower them): a round starts past
 * start_frames, the writer copies the last tail_frames itself, and past force_frames whatever
 * is left. */
extern unsigned qs_ckpt_start_frames, qs_ckpt_tail_frames, qs_ckpt_force_frames;
sqlite3_stmt *qs_prep(qk_store *s, const char *sql, qk_err *err);
/* Bind by format: 't' const char * (NULL binds NULL), 'I' int64_t, 'i' int,
 * 'b' const void * + size_t. Returns 0 or QK_ESTORAGE. */
int qs_bindf(qk_store *s, sqlite3_stmt *st, qk_err *err, const char *fmt, ...);
int qs_step(qk_store *s, sqlite3_stmt *st, qk_err *err);      /* 1 row, 0 done, <0 error */
int qs_step_done(qk_store *s, sqlite3_stmt *st, qk_err *err); /* expects DONE */
int qs_check_id(const char *v, const char *what, qk_err *err);
int qs_check_text(const char *v, size_t max, bool optional, const char *what, qk_err *err);
uint64_t qs_now(void);
int64_t qs_i64(uint64_t v); /* clamp to INT64_MAX for storage */
int qs_audit_insert(qk_store *s, const char *event, const char *link, const char *request_id,
                    const char *identity, const char *detail, qk_err *err);

/* ---- store_crypto.c: AEAD segments and keyed hashes (no SQL) -------------------------- */
void qs_seg_seal(const uint8_t *mk, const char *link, uint64_t block_id, uint32_t idx,
                 const uint8_t *plain, size_t n, uint8_t nonce[QS_NONCE_LEN], uint8_t *ct);
int qs_seg_open(const uint8_t *mk, const char *link, uint64_t block_id, uint32_t idx,
                const uint8_t *nonce, const uint8_t *ct, size_t ctlen, uint8_t *plain);
void qs_block_digest(const char *link, uint64_t block_id, const uint8_t *bytes, size_t len,
                     uint8_t out[QK_CHECK_LEN]);
void qs_check_begin(crypto_generichash_state *h, const uint8_t vkey[QK_BLOCK_VKEY_LEN],
                    const char *link, uint64_t block_id, uint32_t off, uint32_t len);
void qs_master_check(const uint8_t mk[QK_MASTER_KEY_LEN], uint8_t out[QK_CHECK_LEN]);

/* ---- store_seg.c: encrypted segments in the database ---------------------------------- */
int qs_seg_write_block(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                       size_t len, qk_err *err);
int qs_range_read(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                  uint8_t *out, qk_err *err);
int qs_range_check(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                   uint8_t check[QK_CHECK_LEN], qk_err *err);
int qs_range_zero(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                  qk_err *err);
/* qs_range_read, then qs_range_zero, with each segment loaded and decrypted once: the bytes
 * are handed out and used up together (a carve at the master, a fetch of a run). A take inside
 * one segment reads and zeroes the segment's plaintext in memory (store_segcache.c) and its
 * row's zeroing waits for the COMMIT (qs_zero_flush), so that the takes of one group rewrite a
 * segment once; a range taken already in the open transaction is refused. On error out is
 * wiped. */
int qs_range_take(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                  uint8_t *out, qk_err *err);
int qs_block_wipe(qk_store *s, const char *link, uint64_t block_id, qk_err *err);

/* ---- store_blocks.c ------------------------------------------------------------------- */
typedef struct {
    uint64_t len, lo, hi;
    int state;
    uint64_t lease_lo, lease_hi; /* LOW owns [QK_BLOCK_VKEY_LEN, lease_lo), HIGH [lease_hi, len) */
    bool has_ask;                /* this end asked the peer for a new bound: ask */
    uint64_t ask;
} qs_block_row;
/* 1 found, 0 not found, <0 error. */
int qs_block_get(qk_store *s, const char *link, uint64_t block_id, qs_block_row *b, qk_err *err);
int qs_block_burn(qk_store *s, const char *link, uint64_t block_id, const char *why, qk_err *err);
/* Insert a block row (nothing leased) and its encrypted segments. */
int qs_block_insert(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                    size_t len, int state, qk_err *err);
/* Delete the last segments of a block with no room left and no live key. */
int qs_block_maybe_retire(qk_store *s, const char *link, uint64_t block_id, qk_err *err);

/* ---- store_keys.c --------------------------------------------------------------------- */
int qs_check_reservation(const qk_reservation *r, qk_err *err);
int qs_insert_request(qk_store *s, const qk_reservation *r, int direction, int state, qk_err *err);
/* qs_insert_request with requests.noticed (0: an outgoing request the peer has yet to hear of)
 * and, slave_inline, a request of one slave naming it in requests.slave instead of a
 * request_slaves row (schema v8; only for requests whose keys are runs: key rows take their
 * copies from request_slaves). */
int qs_insert_request_noticed(qk_store *s, const qk_reservation *r, int direction, int state,
                              bool noticed, bool slave_inline, qk_err *err);
/* 1 found (*dir, *state set when non-NULL), 0 unknown, <0 error. */
int qs_request_get(qk_store *s, const char *request_id, int *dir, int *state, qk_err *err);
/* Arguments of carve and carve_owned (reservation, side, 1..QS_MAX_KEYS keys, length, outputs). */
int qs_check_carve(const qk_reservation *r, qk_side side, size_t n, uint32_t len,
                   const qk_key_ref *refs, const uint8_t *material, qk_err *err);
/* Zero and close this end's owned room [x, y) of block b on link (LOW: lo moves to y; HIGH:
 * hi moves to x), the bounds as a blocks row gave them: QK_ESTORAGE when they are malformed
 * or the block is gone (store_notice.c; a short tail, and the recovery after a power loss). */
int qs_owned_close(qk_store *s, const char *link, qk_side side, sqlite3_int64 b, sqlite3_int64 x,
                   sqlite3_int64 y, qk_err *err);
int qs_set_cursors(qk_store *s, const char *link, uint64_t block_id, uint64_t lo, uint64_t hi,
                   qk_err *err);
/* Move one side's cursor of a block (LOW: lo, HIGH: hi), the other left as it is (QK_ESTORAGE when
 * the block is gone). Writing only
 * that column spares SQLite the upkeep of the indexes whose condition names only the other one
 * (LOW: blocks_high_owned; HIGH: blocks_low_owned). was: the row as this transaction last read
 * it (lo, hi, state), and the change of its uncarved bytes is counted in code (store_counts.c,
 * schema v8); NULL: the statement names state so that the counters' trigger counts it. */
int qs_set_cursor(qk_store *s, const char *link, uint64_t block_id, qk_side side, uint64_t at,
                  const qs_block_row *was, qk_err *err);
/* Read columns key_id, link, block_id, off, len, state (0..5) of the current row. */
int qs_key_row_read(sqlite3_stmt *st, qs_key_row *k, qk_err *err);
/* Load the keys of a request (seq order) into a malloc'ed array (*rows, *n). */
int qs_load_request_keys(qk_store *s, const char *request_id, qs_key_row **rows, size_t *n,
                         qk_err *err);
/* Move a live key to a final state (delivered/burned/expired) and zero its range. */
int qs_key_finish(qk_store *s, const qs_key_row *k, int state, qk_err *err);
/* 1 if [off, off+len) overlaps a range recorded for the block, 0 if not, <0 error. */
int qs_range_recorded(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                      qk_err *err);
/* The range of `sql` (one row: its end, for binds link, block_id, off+len) that starts last
 * before off+len ends after off: 1 overlap, 0 none, <0 error. */
int qs_last_range_overlaps(qk_store *s, const char *sql, const char *link, uint64_t block_id,
                           uint32_t off, uint32_t len, qk_err *err);
int qs_insert_key(qk_store *s, const qk_reservation *r, const qk_key_ref *k, size_t seq, int state,
                  qk_err *err);
/* Give every slave of the key's request a waiting copy. */
int qs_key_add_copies(qk_store *s, const char *key_id, const char *request_id, qk_err *err);

/* ---- store_reserve.c: incoming keys (reserve_in, notice_in) ------------------------------ */
/* Key ID well formed, range inside the bounds of any block. */
int qs_check_ref(const qk_key_ref *k, qk_err *err);
/* Ranges of one request must not overlap each other (QK_ECOLLISION). */
int qs_check_batch_overlap(const qk_key_ref *refs, size_t n, qk_err *err);
/* The same request_id again: 0 if it carries the same keys, else QK_EEXIST. */
int qs_same_request(qk_store *s, const qk_reservation *r, const qk_key_ref *refs, size_t n,
                    qk_err *err);
/* 1 if a key with this ID is recorded, 0 if not, <0 error. */
int qs_key_exists(qk_store *s, const char *key_id, qk_err *err);
/* A peer's key is new here: its range overlaps no recorded range (else QK_ECOLLISION) and its
 * ID is unknown (else QK_EEXIST). 0 new, <0 refused or error. */
int qs_ref_unused(qk_store *s, const char *link, const qk_key_ref *k, qk_err *err);
/* Record a peer's key RESERVED for the request's slaves (key row and waiting copies). */
int qs_reserve_key(qk_store *s, const qk_reservation *r, const qk_key_ref *k, size_t seq,
                   qk_err *err);
/* qs_reserve_key, then move the mirror cursor past the key and confirm a pending block. */
int qs_record_ref(qk_store *s, const qk_reservation *r, qk_side peer_side, const qk_key_ref *k,
                  size_t seq, qk_err *err);

/* ---- store_lease.c -------------------------------------------------------------------- */
/* A peer link (not QK_LOCAL_LINK) and a valid side. */
int qs_check_peer_link(const char *link, qk_side side, qk_err *err);
/* Whether the peer (peer_side) may take [from, to) of block b: it reaches into nothing this
 * end owns or asks for (LOW peer: to <= lease_hi and <= our ask; HIGH peer: from >= lease_lo
 * and >= our ask). */
bool qs_lease_clear_of_ours(const qs_block_row *b, qk_side peer_side, uint64_t from, uint64_t to);

/* ---- store_runs.c: runs of keys (docs/adr/0003-request-records.md) ----------------------- */
#define QS_RUN_MAX_KEYS QS_MAX_KEYS /* a run is part of one request */
#define QS_RUN_MAP_LEN  (QS_RUN_MAX_KEYS / 8)
typedef struct {
    char request_id[QK_STORE_ID_MAX + 1];
    uint32_t seq; /* index in the request of the run's first key */
    uint8_t prefix[QS_RUN_PREFIX_LEN];
    char link[QK_STORE_ID_MAX + 1];
    uint64_t block_id;
    uint32_t off, len, n; /* key i: [off + i*len, off + (i+1)*len) */
    int state;            /* of the keys not done (QS_KEY_*) */
    uint32_t n_done;      /* keys DELIVERED */
    char master[QK_STORE_ID_MAX + 1];
    uint64_t expires_at;
    bool has_slave; /* slave end: one slave, fetched bitmap */
    char slave[QK_STORE_ID_MAX + 1];
    uint8_t fetched[QS_RUN_MAP_LEN]; /* bit i (byte i/8, bit i%8): key i fetched */
} qs_run_row;
/* ---- store_runcache.c: the slave-end runs as last written or read --------------------- */
void qs_runc_open(qk_store *s);
void qs_runc_close(qk_store *s);
/* A copy of the run row with this prefix into out: true, or false when none is held. */
bool qs_runc_get(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], qs_run_row *out);
/* Hold a copy of a run row as the table now has it (rows without a slave are not held). */
void qs_runc_put(qk_store *s, const qs_run_row *r);
/* Forget every run. */
void qs_runc_drop_all(qk_store *s);

/* A fresh prefix: CSPRNG bits with the version-4 and variant bits set, or with
 * s->time_ordered_ids a version-7 UUID's first 14 bytes (the millisecond, then CSPRNG bits). */
void qs_run_new_prefix(const qk_store *s, uint8_t prefix[QS_RUN_PREFIX_LEN]);
/* Bytes 10..13 of a prefix as a number: CSPRNG bits in both forms, for direct-mapped tables (the
 * first bytes of a version-7 prefix are its millisecond). */
uint32_t qs_run_prefix_hash(const uint8_t prefix[QS_RUN_PREFIX_LEN]);
/* Canonical key ID of key i of the run with this prefix. */
void qs_run_key_id(const uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t i,
                   char out[QK_KEY_ID_LEN + 1]);
/* The prefix of a key ID that can name a run key (canonical lower-case version-4 UUID text):
 * 0 and *idx set, or -1. */
int qs_run_parse_id(const char *key_id, uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t *idx);
/* Record a run (QK_EEXIST if its prefix or (request_id, seq) is taken). */
int qs_run_insert(qk_store *s, const qs_run_row *run, qk_err *err);
/* The run holding key_id: 1 found (*run, *idx set), 0 none, <0 error. */
int qs_run_find(qk_store *s, const char *key_id, qs_run_row *run, uint32_t *idx, qk_err *err);
/* 1 if [off, off+len) overlaps a run of the block, 0 if not, <0 error. */
int qs_run_recorded(qk_store *s, const char *link, uint64_t block_id, uint32_t off, uint32_t len,
                    qk_err *err);
/* 1 if a run has this prefix, 0 if not, <0 error (an index probe, no row read). */
int qs_run_prefix_taken(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], qk_err *err);
/* 1 if a key row has an ID under this prefix, 0 if not, <0 error. */
int qs_run_prefix_in_keys(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], qk_err *err);

/* The keys of a request's runs, in seq order, as key refs (check zero) in a malloc'ed array. */
int qs_run_load_refs(qk_store *s, const char *request_id, qk_key_ref **refs, size_t *n,
                     qk_err *err);
/* Slave end: keys idx .. idx+cnt-1 of a live run fetched by its slave (bits set, their bytes
 * taken into out and their range zeroed at once, qs_range_take). QK_ENOTFOUND if one of them
 * was fetched already. */
int qs_run_take(qk_store *s, qs_run_row *run, uint32_t idx, uint32_t cnt, uint8_t *out,
                qk_err *err);
/* End the live runs of a request (QS_KEY_BURNED): keys not fetched zeroed. *n += keys ended. */
int qs_runs_burn_request(qk_store *s, const char *request_id, size_t *n, qk_err *err);
/* Expire up to cap live runs with expires_at <= now. *n += keys expired. */
int qs_runs_expire(qk_store *s, uint64_t now, size_t cap, size_t *n, qk_err *err);
/* 1 if a live run lies in the block, 0 if not, <0 error. */
int qs_runs_live_in_block(qk_store *s, const char *link, uint64_t block_id, qk_err *err);
/* A burned block's live runs become BURNED (the block wipe zeroed their bytes). */
int qs_runs_burn_block(qk_store *s, const char *link, uint64_t block_id, qk_err *err);
/* Slave end: keys waiting for slave (master NULL = any), live and unexpired at now. */
int qs_runs_count_reserved(qk_store *s, const char *master, const char *slave, uint64_t now,
                           uint64_t *n, qk_err *err);

/* ---- store_counts.c: pool counters of runs, written once per transaction ---------------- */

/* Add (n, bytes) to the counter (link, kind, state): kept in memory until the group's COMMIT
 * (qs_count_flush), or written at once when there is no room. */
int qs_count_add(qk_store *s, const char *link, int kind, int state, int64_t n, int64_t bytes,
                 qk_err *err);
void qs_count_call_begin(qk_store *s);
/* The call's changes stay (kept) or are taken back (its savepoint undone). */
void qs_count_call_end(qk_store *s, bool kept);
/* Write the sums (before the COMMIT); 0 or an error (the group is then lost). */
int qs_count_flush(qk_store *s, qk_err *err);
/* Drop everything: the transaction is gone. */
void qs_count_reset(qk_store *s);
/* What is not written yet of counter (link, kind, state). */
void qs_count_pending(const qk_store *s, const char *link, int kind, int state, int64_t *n,
                      int64_t *bytes);

/* ---- store_known.c: the runs this open recorded from notices, for key_known -------------- */

/* Allocate the table (an allocation failure leaves none: the SQL read answers). */
void qs_known_open(qk_store *s);
void qs_known_close(qk_store *s);
/* A run the current call recorded (under mu), entered by qs_known_call_end if the call is kept. */
void qs_known_stage(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN], uint32_t n);
void qs_known_call_end(qk_store *s, bool kept);
/* Forget everything (under mu): the open group was lost. */
void qs_known_reset(qk_store *s);
/* Whether key_id is a key of a run in the table (without mu). */
bool qs_known_has(qk_store *s, const char *key_id);

/* ---- store_join.c: a notice's fetches join its sync -------------------------------------- */

/* How long a sync may wait for expected fetches, in microseconds (QS_JOIN_WAIT_US; tests
 * change it; 0: never). */
extern unsigned qs_join_wait_us;
/* A run the current notice call recorded (under mu); expected from qs_join_call_end on if the
 * call is kept. */
void qs_join_stage(qk_store *s, const uint8_t prefix[QS_RUN_PREFIX_LEN]);
void qs_join_call_end(qk_store *s, bool kept);
/* A fetch took a key of the run of key_id (under mu, before its call ends): no longer expected;
 * the last one signals the syncer. */
void qs_join_met(qk_store *s, const char *key_id);
/* The syncer (under smu): whether a sync should wait for expected fetches, until *until; when
 * their time is up they are forgotten and the answer is false. */
bool qs_join_hold(qk_store *s, struct timespec *until);

#endif
