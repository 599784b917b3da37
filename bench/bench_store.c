/* bench_store.c - `qkd-bench store`: key pairs against two key stores in one process (no
 * HTTP, no TLS), so that the store's share of a key pair can be told apart from the HTTP path.
 * Store A is the low side of the link (it carves from its leases, as KME_A does for its
 * SAEs), store B the high side (it grants the leases, applies the notices and serves the
 * slave): the store calls of the KME's remote path (docs/adr/0002-key-store.md, "Leases and
 * notices"). */
#include "bench_store.h"
#include "bench_clock.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench_hist.h"
#include "bench_opts.h"
#include "bench_report.h"
#include "store.h"

#define BS_LINK        "KME_A~KME_B"      /* KME_A < KME_B: A is the low side */
#define BS_MASTER      "saeA"             /* the SAE asking KME A for keys */
#define BS_SLAVE       "saeB"             /* the SAE fetching them at KME B */
#define BS_BLOCK_BYTES QK_BLOCK_MAX_BYTES /* the bench lab's --block-bytes */
#define BS_MAX_THREADS 256
#define BS_LIFETIME_S  3600
#define BS_MAX_SHOWN   3      /* error messages printed per operation */
#define BS_LEASE_BYTES 262144 /* [hot_path] lease_bytes' default */
#define BS_LEASES      3      /* leases per carve that finds no room (as qk_kms_reserve) */
#define BS_MAX_BATCH   1024   /* [hot_path] notice_batch's range */

enum { BS_LEASE, BS_CARVE, BS_NOTICE_IN, BS_NOTICES_DONE, BS_FETCH, BS_NOPS };
static const char *const op_names[BS_NOPS] = {"lease", "carve_owned", "notice_in", "notices_done",
                                              "fetch"};

typedef struct {
    const char *dir;
    bool force;
    uint64_t count;
    unsigned size_bits, number, threads, batch;
    const char *json_out;
} bs_opts;

typedef struct {
    bench_hist hist[BS_NOPS]; /* successful calls only */
    uint64_t failed[BS_NOPS]; /* calls that returned an error */
    uint64_t mismatches;      /* pairs whose two ends differ */
    uint64_t pairs_ok;
    uint64_t notices; /* notices applied at B (notice_in and notices_done take batches) */
} bs_stats;

typedef struct {
    const bs_opts *o;
    qk_store *a, *b;
    uint64_t expires_at;
    atomic_uint_fast64_t claimed, done, errors;
    atomic_uint shown[BS_NOPS + 1]; /* messages printed per operation (+ mismatches) */
    atomic_uint running;
    pthread_mutex_t lease_mu; /* one lease exchange at a time (as the KME's per link) */
} bs_shared;

/* One worker: up to batch pairs carved, then noticed together, then fetched one by one. */
typedef struct {
    bs_shared *sh;
    unsigned index;
    bs_stats *st;
    qk_key_ref *refs;        /* batch x number: pair j's keys at refs + j * number */
    qk_notice *notices;      /* batch: the notices of the carved pairs (pointing into refs) */
    char (*request_ids)[64]; /* batch */
    const char **done_ids;   /* batch: the noticed request IDs */
    uint64_t *seqs;          /* batch: each carved pair's sequence number */
    int *results;            /* batch: notice_in's answer per notice */
    char slaves[1][QK_STORE_ID_MAX + 1];
    const char **ids;
    qk_fetched_key *fk;
    uint8_t *mat_a, *mat_b; /* sodium_malloc: the key bytes at A (batch pairs) and at B (one) */
} bs_worker;

typedef struct {
    bs_stats total;
    double setup_s, wall_s, user_s, sys_s;
    uint64_t blocks;
} bs_result;

/* ---- options ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qkd-bench store --dir DIR [--force] [--count N] [--size BITS] [--number K]\n"
            "         [--batch B] [--threads T] [--json FILE]\n"
            "Key pairs against two fresh key stores DIR/a.db (KME A) and DIR/b.db (KME B) in\n"
            "this process, no HTTP, as the KME's remote path: carve_owned at A (inside A's\n"
            "lease; lease_ask at A, lease_in at B, lease_done at A when it runs out), notice_in\n"
            "at B and notices_done at A (B notices at a time), fetch at B.\n"
            "  --dir DIR      where the stores go (created if missing); required\n"
            "  --force        replace DIR/a.db and DIR/b.db if they exist (refused otherwise)\n"
            "  --count N      key pairs (default 5000)\n"
            "  --size BITS    key size, a multiple of 8 up to %d (default 256)\n"
            "  --number K     keys per request, 1..%d (default 1)\n"
            "  --batch B      notices per notice_in call, 1..%d (default 1)\n"
            "  --threads T    threads running pairs at once on the same stores, 1..%d (default "
            "1)\n"
            "  --json FILE    also write the report as JSON (\"-\" = stdout)\n"
            "Exit status: 0 ok, 1 failure (setup, any failed or mismatching pair), 2 usage.\n",
            BENCH_MAX_BITS, BENCH_MAX_NUMBER, BS_MAX_BATCH, BS_MAX_THREADS);
}

static int parse_uint(const char *name, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    uint64_t v = 0;
    if (bench_parse_u64(name, s, lo, hi, &v) != 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_one(int c, bs_opts *o)
{
    switch (c) {
    case 'd':
        o->dir = optarg;
        return 0;
    case 'f':
        o->force = true;
        return 0;
    case 'N':
        return bench_parse_u64("count", optarg, 1, UINT64_C(1) << 32, &o->count);
    case 'z':
        if (parse_uint("size", optarg, 8, BENCH_MAX_BITS, &o->size_bits) != 0)
            return -1;
        if (o->size_bits % 8 == 0)
            return 0;
        fprintf(stderr, "qkd-bench: --size: a multiple of 8\n");
        return -1;
    case 'n':
        return parse_uint("number", optarg, 1, BENCH_MAX_NUMBER, &o->number);
    case 't':
        return parse_uint("threads", optarg, 1, BS_MAX_THREADS, &o->threads);
    case 'b':
        return parse_uint("batch", optarg, 1, BS_MAX_BATCH, &o->batch);
    case 'j':
        o->json_out = optarg;
        return 0;
    default:
        return -1;
    }
}

/* 0, 1 for --help (printed), -1 on a usage error (message printed). */
static int parse_opts(int argc, char **argv, bs_opts *o)
{
    *o = (bs_opts){.count = 5000, .size_bits = 256, .number = 1, .threads = 1, .batch = 1};
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},    {"force", no_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'N'},  {"size", required_argument, NULL, 'z'},
        {"number", required_argument, NULL, 'n'}, {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},  {"json", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (parse_one(c, o) != 0)
            return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "qkd-bench: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (!o->dir) {
        fprintf(stderr, "qkd-bench: --dir DIR is required\n");
        return -1;
    }
    return 0;
}

/* ---- files and stores -------------------------------------------------------------------- */

static int db_path(char *buf, size_t cap, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(buf, cap, "%s/%s%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "qkd-bench: %s: path too long\n", dir);
        return -1;
    }
    return 0;
}

/* DIR/name and its SQLite companions must not exist, or are removed with --force. */
static int clear_db(const bs_opts *o, const char *name)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        if (db_path(p, sizeof p, o->dir, name, suffix[i]) != 0)
            return -1;
        if (access(p, F_OK) != 0)
            continue;
        if (!o->force) {
            fprintf(stderr, "qkd-bench: %s exists (--force replaces it)\n", p);
            return -1;
        }
        if (unlink(p) != 0) {
            fprintf(stderr, "qkd-bench: cannot remove %s: %s\n", p, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int prepare_dir(const bs_opts *o)
{
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "qkd-bench: cannot create %s: %s\n", o->dir, strerror(errno));
        return -1;
    }
    return clear_db(o, "a.db") == 0 && clear_db(o, "b.db") == 0 ? 0 : -1;
}

/* A fresh store under its own random master key (wiped once the store holds its copy). */
static qk_store *open_store(const char *dir, const char *name)
{
    char p[PATH_MAX];
    if (db_path(p, sizeof p, dir, name, "") != 0)
        return NULL;
    uint8_t mk[QK_MASTER_KEY_LEN];
    randombytes_buf(mk, sizeof mk);
    qk_store *s = NULL;
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_store_open(p, mk, &s, &err);
    sodium_memzero(mk, sizeof mk);
    if (rc != 0) {
        fprintf(stderr, "qkd-bench: cannot open store %s: %s\n", p, err.msg);
        return NULL;
    }
    return s;
}

/* Put one block into a store and confirm it, as the device feed and the sync do. */
static int put_confirmed(qk_store *s, const char *name, uint64_t id, const uint8_t *bytes,
                         size_t len)
{
    qk_put_result res = QK_PUT_CONFLICT;
    qk_err err;
    qk_err_clear(&err);
    int rc = qk_store_block_put(s, BS_LINK, id, bytes, len, &res, &err);
    if (rc == 0 && res != QK_PUT_NEW)
        rc = qk_err_set(&err, QK_EEXIST, "block already present");
    if (rc == 0)
        rc = qk_store_block_set_state(s, BS_LINK, id, QK_BLOCK_CONFIRMED, &err);
    if (rc != 0)
        fprintf(stderr, "qkd-bench: store %s: block %" PRIu64 ": %s\n", name, id, err.msg);
    return rc;
}

/* Enough identical confirmed blocks in both stores for every key of the run, and one more: A's
 * leases take only half of the unleased room of the block where the two sides meet (the last
 * one with room), so the last block is never used whole. */
static int fill_blocks(qk_store *a, qk_store *b, const bs_opts *o, uint64_t *nblocks)
{
    uint64_t len = o->size_bits / 8;
    uint64_t per_block = (BS_BLOCK_BYTES - QK_BLOCK_VKEY_LEN) / len;
    uint64_t keys = o->count * o->number;
    *nblocks = (keys + per_block - 1) / per_block + 1;
    uint8_t *blk = sodium_malloc(BS_BLOCK_BYTES);
    if (!blk) {
        fprintf(stderr, "qkd-bench: out of secure memory\n");
        return -1;
    }
    int rc = 0;
    for (uint64_t id = 1; id <= *nblocks && rc == 0; id++) {
        randombytes_buf(blk, BS_BLOCK_BYTES);
        rc = put_confirmed(a, "a", id, blk, BS_BLOCK_BYTES);
        if (rc == 0)
            rc = put_confirmed(b, "b", id, blk, BS_BLOCK_BYTES);
    }
    sodium_free(blk); /* wipes */
    return rc == 0 ? 0 : -1;
}

/* ---- one key pair ------------------------------------------------------------------------ */

static void show_error(bs_worker *w, unsigned kind, uint64_t seq, const char *what)
{
    if (atomic_fetch_add(&w->sh->shown[kind], 1) < BS_MAX_SHOWN)
        fprintf(stderr, "qkd-bench: pair %" PRIu64 ": %s: %s\n", seq,
                kind < BS_NOPS ? op_names[kind] : "verify", what);
}

/* Record a store call that started at t0: its latency if it succeeded, a failure otherwise. */
static int account(bs_worker *w, unsigned op, uint64_t t0, int rc, const qk_err *err, uint64_t seq)
{
    if (rc == 0) {
        bench_hist_record(&w->st->hist[op], (bench_now_ns() - t0 + 500) / 1000);
        return 0;
    }
    w->st->failed[op]++;
    char msg[QK_ERR_MSG_MAX + 32];
    snprintf(msg, sizeof msg, "%s (%s)", err->msg, qk_status_name(rc));
    show_error(w, op, seq, msg);
    return -1;
}

/* Throw away what a failed pair left behind at one end (not measured). */
static void burn(bs_worker *w, qk_store *s, const char *request_id, uint64_t seq)
{
    qk_err err;
    qk_err_clear(&err);
    if (qk_store_burn(s, request_id, &err) != 0)
        show_error(w, BS_NOPS, seq, err.msg);
}

/* Pair j's keys fetched at B (w->fk, w->mat_b): the same IDs, lengths and bytes as carved at
 * A (constant-time compare). */
static int verify(bs_worker *w, size_t j, size_t n, uint32_t len, uint64_t seq)
{
    const qk_key_ref *refs = w->refs + j * n;
    const uint8_t *mat_a = w->mat_a + j * n * len;
    for (size_t i = 0; i < n; i++) {
        const qk_fetched_key *k = &w->fk[i];
        if (strcmp(k->key_id, refs[i].key_id) != 0 || k->length != len || !k->material ||
            sodium_memcmp(k->material, mat_a + i * len, len) != 0) {
            w->st->mismatches++;
            show_error(w, BS_NOPS, seq, "the two stores returned different keys");
            return -1;
        }
    }
    return 0;
}

/* A's lease ran out: ask (A), grant (B), record the answer (A), as the KME's lease exchange
 * does over POST /peer/v1/lease. One operation `lease`. 0 granted; else the error. */
static int lease(bs_worker *w, uint64_t seq)
{
    bs_shared *sh = w->sh;
    qk_err err;
    qk_err_clear(&err);
    pthread_mutex_lock(&sh->lease_mu);
    uint64_t t0 = bench_now_ns();
    qk_lease l;
    int rc = qk_store_lease_ask(sh->a, BS_LINK, QK_SIDE_LOW, BS_LEASE_BYTES, &l, &err);
    int grc = rc == 0 ? qk_store_lease_in(sh->b, BS_LINK, QK_SIDE_LOW, &l, &err) : rc;
    if (rc == 0 && grc != QK_EMISMATCH && grc != QK_ENOTFOUND)
        rc = qk_store_lease_done(sh->a, BS_LINK, QK_SIDE_LOW, l.block_id, grc == 0, &err);
    if (rc == 0)
        rc = grc;
    pthread_mutex_unlock(&sh->lease_mu);
    return account(w, BS_LEASE, t0, rc, &err, seq);
}

/* carve_owned at A for pair j of the batch (leasing first when A's granted room ran out);
 * its notice filled. 0, or -1 (nothing recorded). */
static int carve(bs_worker *w, size_t j, uint64_t seq)
{
    bs_shared *sh = w->sh;
    size_t n = sh->o->number;
    uint32_t len = sh->o->size_bits / 8;
    snprintf(w->request_ids[j], sizeof w->request_ids[j], "bench-%u-%" PRIu64, w->index, seq);
    const char *slaves[1] = {BS_SLAVE};
    qk_reservation r = {
        .request_id = w->request_ids[j],
        .link = BS_LINK,
        .master = BS_MASTER,
        .slaves = slaves,
        .nslaves = 1,
        .expires_at = sh->expires_at,
    };
    qk_key_ref *refs = w->refs + j * n;
    qk_err err;
    qk_err_clear(&err);
    int rc = QK_ENOKEY;
    uint64_t t0 = 0;
    for (int a = 0; a <= BS_LEASES && rc == QK_ENOKEY; a++) {
        if (a > 0 && lease(w, seq) != 0)
            return -1;
        t0 = bench_now_ns();
        rc = qk_store_carve_owned(sh->a, &r, QK_SIDE_LOW, n, len, refs, w->mat_a + j * n * len,
                                  &err);
    }
    if (account(w, BS_CARVE, t0, rc, &err, seq) != 0)
        return -1;
    qk_notice *v = &w->notices[j];
    memset(v, 0, sizeof *v);
    snprintf(v->request_id, sizeof v->request_id, "%s", r.request_id);
    snprintf(v->master, sizeof v->master, "%s", BS_MASTER);
    v->slaves = w->slaves;
    v->nslaves = 1;
    v->expires_at = sh->expires_at;
    v->keys = refs;
    v->nkeys = n;
    return 0;
}

/* The batch's nb carved pairs: notice_in at B (one call), notices_done at A (one call), then
 * each pair fetched at B and verified. Returns the pairs that failed. */
static uint64_t notice_and_fetch(bs_worker *w, size_t nb)
{
    bs_shared *sh = w->sh;
    size_t n = sh->o->number;
    uint32_t len = sh->o->size_bits / 8;
    qk_err err;
    qk_err_clear(&err);
    uint64_t t0 = bench_now_ns();
    int rc = qk_store_notice_in(sh->b, BS_LINK, QK_SIDE_LOW, w->notices, nb, w->results, &err);
    if (account(w, BS_NOTICE_IN, t0, rc, &err, w->seqs[0]) != 0)
        return nb; /* left un-noticed at A (a KME would send them again) */
    w->st->notices += nb;
    for (size_t j = 0; j < nb; j++)
        w->done_ids[j] = w->request_ids[j];
    t0 = bench_now_ns();
    rc = qk_store_notices_done(sh->a, w->done_ids, nb, &err);
    if (account(w, BS_NOTICES_DONE, t0, rc, &err, w->seqs[0]) != 0)
        return nb;
    uint64_t failed = 0;
    for (size_t j = 0; j < nb; j++) {
        if (w->results[j] != 0) {
            w->st->failed[BS_NOTICE_IN]++;
            show_error(w, BS_NOTICE_IN, w->seqs[j], qk_status_name(w->results[j]));
            burn(w, sh->a, w->request_ids[j], w->seqs[j]);
            failed++;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            w->ids[i] = w->refs[j * n + i].key_id;
        t0 = bench_now_ns();
        rc = qk_store_fetch(sh->b, BS_SLAVE, BS_MASTER, w->ids, n, w->fk, w->mat_b, n * len, &err);
        if (account(w, BS_FETCH, t0, rc, &err, w->seqs[j]) != 0 ||
            verify(w, j, n, len, w->seqs[j]) != 0) {
            burn(w, sh->b, w->request_ids[j], w->seqs[j]);
            failed++;
        } else {
            w->st->pairs_ok++;
        }
        sodium_memzero(w->mat_b, n * len);
    }
    return failed;
}

/* ---- threads ----------------------------------------------------------------------------- */

static void worker_free(bs_worker *w)
{
    sodium_free(w->mat_a);
    sodium_free(w->mat_b);
    free(w->refs);
    free(w->notices);
    free(w->request_ids);
    free(w->done_ids);
    free(w->seqs);
    free(w->results);
    free(w->ids);
    free(w->fk);
    free(w->st);
}

static int worker_init(bs_worker *w, bs_shared *sh, unsigned index)
{
    size_t n = sh->o->number, nb = sh->o->batch, bytes = n * (sh->o->size_bits / 8);
    *w = (bs_worker){.sh = sh, .index = index};
    snprintf(w->slaves[0], sizeof w->slaves[0], "%s", BS_SLAVE);
    w->st = calloc(1, sizeof *w->st);
    w->refs = calloc(nb * n, sizeof *w->refs);
    w->notices = calloc(nb, sizeof *w->notices);
    w->request_ids = calloc(nb, sizeof *w->request_ids);
    w->done_ids = calloc(nb, sizeof *w->done_ids);
    w->seqs = calloc(nb, sizeof *w->seqs);
    w->results = calloc(nb, sizeof *w->results);
    w->ids = calloc(n, sizeof *w->ids);
    w->fk = calloc(n, sizeof *w->fk);
    w->mat_a = sodium_malloc(nb * bytes);
    w->mat_b = sodium_malloc(bytes);
    if (!w->st || !w->refs || !w->notices || !w->request_ids || !w->done_ids || !w->seqs ||
        !w->results || !w->ids || !w->fk || !w->mat_a || !w->mat_b) {
        fprintf(stderr, "qkd-bench: out of memory\n");
        worker_free(w);
        return -1;
    }
    return 0;
}

/* Claim up to batch pairs, carve them, notice them together, fetch them. */
static void *worker_main(void *arg)
{
    bs_worker *w = arg;
    bs_shared *sh = w->sh;
    size_t bytes = (size_t)sh->o->batch * sh->o->number * (sh->o->size_bits / 8);
    for (bool more = true; more;) {
        size_t nb = 0;
        uint64_t carve_failed = 0;
        while (nb < sh->o->batch) {
            uint64_t seq = atomic_fetch_add(&sh->claimed, 1);
            if (seq >= sh->o->count) {
                more = false;
                break;
            }
            w->seqs[nb] = seq;
            if (carve(w, nb, seq) == 0)
                nb++;
            else
                carve_failed++;
        }
        uint64_t failed = carve_failed + (nb > 0 ? notice_and_fetch(w, nb) : 0);
        sodium_memzero(w->mat_a, bytes);
        atomic_fetch_add(&sh->errors, failed);
        atomic_fetch_add(&sh->done, nb + carve_failed);
    }
    atomic_fetch_sub(&sh->running, 1);
    return NULL;
}

/* Until every worker has stopped: one progress line per second on stderr. */
static void progress(bs_shared *sh, double start)
{
    double last_t = start;
    uint64_t last = 0;
    while (atomic_load(&sh->running) > 0) {
        bench_nap_ms(20);
        double t = bench_now_s();
        if (t - last_t < 1.0)
            continue;
        uint64_t done = atomic_load(&sh->done);
        fprintf(stderr,
                "[qkd-bench] store %.1f s: %.0f pairs/s, %" PRIu64 " of %" PRIu64 " pairs, %" PRIu64
                " errors\n",
                t - start, (double)(done - last) / (t - last_t), done, sh->o->count,
                (uint64_t)atomic_load(&sh->errors));
        last_t = t;
        last = done;
    }
}

static double cpu_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static int rusage_now(struct rusage *ru)
{
    if (getrusage(RUSAGE_SELF, ru) == 0)
        return 0;
    fprintf(stderr, "qkd-bench: getrusage: %s\n", strerror(errno));
    return -1;
}

/* Start the workers, wait for them, merge their stats; wall and CPU time of the pairs. */
static int run_threads(bs_shared *sh, bs_worker *w, bs_result *res)
{
    unsigned n = sh->o->threads, started = 0;
    pthread_t th[BS_MAX_THREADS];
    struct rusage r0, r1;
    if (rusage_now(&r0) != 0)
        return -1;
    double t0 = bench_now_s();
    atomic_store(&sh->running, n);
    for (; started < n; started++)
        if (pthread_create(&th[started], NULL, worker_main, &w[started]) != 0)
            break;
    if (started < n) {
        fprintf(stderr, "qkd-bench: cannot start thread %u\n", started);
        atomic_store(&sh->claimed, sh->o->count); /* the others stop after their pair */
        atomic_fetch_sub(&sh->running, n - started);
    }
    progress(sh, t0);
    int rc = started == n ? 0 : -1;
    for (unsigned i = 0; i < started; i++)
        if (pthread_join(th[i], NULL) != 0)
            rc = -1;
    res->wall_s = bench_now_s() - t0;
    if (rusage_now(&r1) != 0)
        return -1;
    res->user_s = cpu_s(&r1.ru_utime) - cpu_s(&r0.ru_utime);
    res->sys_s = cpu_s(&r1.ru_stime) - cpu_s(&r0.ru_stime);
    return rc;
}

static void merge(bs_stats *into, const bs_stats *from)
{
    for (unsigned op = 0; op < BS_NOPS; op++) {
        bench_hist_merge(&into->hist[op], &from->hist[op]);
        into->failed[op] += from->failed[op];
    }
    into->mismatches += from->mismatches;
    into->pairs_ok += from->pairs_ok;
    into->notices += from->notices;
}

static int run_workers(bs_shared *sh, bs_result *res)
{
    unsigned n = sh->o->threads, ready = 0;
    bs_worker *w = calloc(n, sizeof *w);
    if (!w) {
        fprintf(stderr, "qkd-bench: out of memory\n");
        return -1;
    }
    while (ready < n && worker_init(&w[ready], sh, ready) == 0)
        ready++;
    int rc = ready == n ? run_threads(sh, w, res) : -1;
    for (unsigned i = 0; i < ready; i++) {
        if (rc == 0)
            merge(&res->total, w[i].st);
        worker_free(&w[i]);
    }
    free(w);
    return rc;
}

/* ---- report ------------------------------------------------------------------------------ */

static uint64_t total_failed(const bs_stats *s)
{
    uint64_t n = s->mismatches;
    for (unsigned op = 0; op < BS_NOPS; op++)
        n += s->failed[op];
    return n;
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

/* Mean microseconds per notice of a call that takes a batch of them (notice_in, notices_done). */
static double per_notice_us(const bs_stats *s, unsigned op)
{
    const bench_hist *h = &s->hist[op];
    return s->notices ? bench_hist_mean(h) * (double)h->count / (double)s->notices : 0.0;
}

/* CPU microseconds (user + system, whole process) per successful pair. */
static double cpu_us_per_pair(const bs_result *r)
{
    uint64_t p = r->total.pairs_ok;
    return p ? (r->user_s + r->sys_s) * 1e6 / (double)p : 0.0;
}

static void print_text(FILE *f, const bs_opts *o, const bs_result *r)
{
    const bs_stats *s = &r->total;
    fprintf(f,
            "qkd-bench store: %s, %u thread(s), %u-bit keys, %u key(s) per request, %u notice(s) "
            "per batch\n"
            "setup: %" PRIu64 " block(s) of %u bytes in each store, %.2f s\n"
            "pairs: %" PRIu64 " ok of %" PRIu64 ", %.1f s, %.1f pairs/s, %.1f keys/s\n"
            "errors: %" PRIu64 " (mismatches %" PRIu64 ")\n"
            "CPU per pair: %.1f us (user %.1f s, sys %.1f s for the run)\n",
            o->dir, o->threads, o->size_bits, o->number, o->batch, r->blocks, BS_BLOCK_BYTES,
            r->setup_s, s->pairs_ok, o->count, r->wall_s, per_s(s->pairs_ok, r->wall_s),
            per_s(s->pairs_ok * o->number, r->wall_s), total_failed(s), s->mismatches,
            cpu_us_per_pair(r), r->user_s, r->sys_s);
    fprintf(f, "%-12s %8s %6s %9s %9s %9s %9s %9s\n", "operation", "count", "errors", "ops/s",
            "mean(us)", "p50(us)", "p99(us)", "max(us)");
    for (unsigned op = 0; op < BS_NOPS; op++) {
        const bench_hist *h = &s->hist[op];
        fprintf(f, "%-12s %8" PRIu64 " %6" PRIu64 " %9.1f %9.1f %9.1f %9.1f %9" PRIu64 "\n",
                op_names[op], h->count, s->failed[op], per_s(h->count, r->wall_s),
                bench_hist_mean(h), bench_hist_quantile(h, 0.50), bench_hist_quantile(h, 0.99),
                h->max_us);
    }
    fprintf(f, "per notice: notice_in %.1f us, notices_done %.1f us (%" PRIu64 " notices)\n",
            per_notice_us(s, BS_NOTICE_IN), per_notice_us(s, BS_NOTICES_DONE), s->notices);
}

static cJSON *op_json(const bs_stats *s, unsigned op, double wall_s)
{
    const bench_hist *h = &s->hist[op];
    cJSON *j = cJSON_CreateObject();
    if (j && cJSON_AddNumberToObject(j, "count", (double)h->count) &&
        cJSON_AddNumberToObject(j, "errors", (double)s->failed[op]) &&
        cJSON_AddNumberToObject(j, "ops_per_s", per_s(h->count, wall_s)) &&
        cJSON_AddNumberToObject(j, "mean_us", bench_hist_mean(h)) &&
        cJSON_AddNumberToObject(j, "p50_us", bench_hist_quantile(h, 0.50)) &&
        cJSON_AddNumberToObject(j, "p99_us", bench_hist_quantile(h, 0.99)) &&
        cJSON_AddNumberToObject(j, "max_us", (double)h->max_us))
        return j;
    cJSON_Delete(j);
    return NULL;
}

static cJSON *run_json(const bs_opts *o, const bs_result *r)
{
    const bs_stats *s = &r->total;
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "command", "store") ||
        !cJSON_AddStringToObject(j, "dir", o->dir) ||
        !cJSON_AddNumberToObject(j, "threads", o->threads) ||
        !cJSON_AddNumberToObject(j, "size_bits", o->size_bits) ||
        !cJSON_AddNumberToObject(j, "number", o->number) ||
        !cJSON_AddNumberToObject(j, "batch", o->batch) ||
        !cJSON_AddNumberToObject(j, "notices", (double)s->notices) ||
        !cJSON_AddNumberToObject(j, "notice_in_us_per_notice", per_notice_us(s, BS_NOTICE_IN)) ||
        !cJSON_AddNumberToObject(j, "notices_done_us_per_notice",
                                 per_notice_us(s, BS_NOTICES_DONE)) ||
        !cJSON_AddNumberToObject(j, "count", (double)o->count) ||
        !cJSON_AddNumberToObject(j, "block_bytes", BS_BLOCK_BYTES) ||
        !cJSON_AddNumberToObject(j, "blocks", (double)r->blocks) ||
        !cJSON_AddNumberToObject(j, "setup_s", r->setup_s) ||
        !cJSON_AddNumberToObject(j, "wall_s", r->wall_s) ||
        !cJSON_AddNumberToObject(j, "pairs_ok", (double)s->pairs_ok) ||
        !cJSON_AddNumberToObject(j, "pairs_per_s", per_s(s->pairs_ok, r->wall_s)) ||
        !cJSON_AddNumberToObject(j, "keys_per_s", per_s(s->pairs_ok * o->number, r->wall_s)) ||
        !cJSON_AddNumberToObject(j, "errors", (double)total_failed(s)) ||
        !cJSON_AddNumberToObject(j, "mismatches", (double)s->mismatches) ||
        !cJSON_AddNumberToObject(j, "cpu_user_s", r->user_s) ||
        !cJSON_AddNumberToObject(j, "cpu_sys_s", r->sys_s) ||
        !cJSON_AddNumberToObject(j, "cpu_us_per_pair", cpu_us_per_pair(r))) {
        cJSON_Delete(j);
        return NULL;
    }
    cJSON *ops = cJSON_AddObjectToObject(j, "operations");
    for (unsigned op = 0; ops && op < BS_NOPS; op++) {
        cJSON *oj = op_json(s, op, r->wall_s);
        if (!oj || !cJSON_AddItemToObject(ops, op_names[op], oj)) {
            cJSON_Delete(oj);
            ops = NULL;
        }
    }
    if (!ops) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static int write_reports(const bs_opts *o, const bs_result *r)
{
    print_text(stdout, o, r);
    int rc = fflush(stdout) == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "qkd-bench: cannot write the report: %s\n", strerror(errno));
    if (!o->json_out)
        return rc;
    cJSON *j = run_json(o, r);
    if (!j)
        fprintf(stderr, "qkd-bench: out of memory\n");
    if (!j || bench_write_json(o->json_out, j) != 0)
        rc = -1;
    cJSON_Delete(j);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------- */

static int setup(const bs_opts *o, bs_shared *sh, bs_result *res)
{
    double t0 = bench_now_s();
    if (prepare_dir(o) != 0)
        return -1;
    sh->a = open_store(o->dir, "a.db");
    sh->b = sh->a ? open_store(o->dir, "b.db") : NULL;
    if (!sh->b)
        return -1;
    fprintf(stderr, "[qkd-bench] store: filling both stores for %" PRIu64 " pairs\n", o->count);
    if (fill_blocks(sh->a, sh->b, o, &res->blocks) != 0)
        return -1;
    res->setup_s = bench_now_s() - t0;
    return 0;
}

int bench_store_main(int argc, char **argv)
{
    bs_opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc != 0) {
        if (prc < 0)
            usage(stderr);
        return prc < 0 ? 2 : 0;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "qkd-bench: libsodium initialisation failed\n");
        return 1;
    }
    bs_shared sh = {.o = &o, .expires_at = (uint64_t)time(NULL) + BS_LIFETIME_S};
    bs_result *res = calloc(1, sizeof *res); /* five histograms: keep them off the stack */
    int rc = 1;
    if (pthread_mutex_init(&sh.lease_mu, NULL) != 0) {
        fprintf(stderr, "qkd-bench: mutex init failed\n");
        free(res);
        return 1;
    }
    if (!res)
        fprintf(stderr, "qkd-bench: out of memory\n");
    else if (setup(&o, &sh, res) == 0 && run_workers(&sh, res) == 0 && write_reports(&o, res) == 0)
        rc = total_failed(&res->total) == 0 && res->total.pairs_ok == o.count ? 0 : 1;
    if (sh.b)
        qk_store_close(sh.b);
    if (sh.a)
        qk_store_close(sh.a);
    pthread_mutex_destroy(&sh.lease_mu);
    free(res);
    return rc;
}
