/* test_store.c - the key store on one KME: schema and reopen, master-key check, carving
 * arithmetic (low/high ends, no spanning, vkey never carved, ENOKEY records nothing), block
 * put/duplicate/conflict, the pool cap, out-of-order blocks, encryption at rest, one-time delivery
 * (unicast, multicast, auth, all-or-nothing), expiry, burn/tombstones, zeroization (whole
 * segments deleted; a delivered range wiped inside a segment that still holds other keys,
 * checked by decrypting the segment), counts, bad input. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qk_inline.h"
#include "store.h"
#include "store_fixture.h"
#include "store_int.h" /* qs_seg_open: read a segment as the store does */

#define LINK       "KME_A~KME_B"
#define FAR_FUTURE 4000000000ull

static sf_dir D;
static qk_store *S;

static void fresh(void)
{
    CU_ASSERT_FATAL(sf_dir_make(&D, "store") == 0);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
}

static void done(void)
{
    qk_store_close(S);
    S = NULL;
    sf_dir_remove(&D);
}

/* n confirmed blocks of len bytes with ids first..first+n-1; bytes[] receives them. */
static void put_blocks(uint8_t *bytes, size_t n, size_t len, uint64_t first)
{
    randombytes_buf(bytes, n * len);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, first + i, bytes + i * len, len) == 0);
}

static int carve(const char *req, qk_side side, size_t n, uint32_t len, qk_key_ref *refs,
                 uint8_t *mat)
{
    const char *sl[2];
    qk_reservation r = sf_resv(req, LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
    qk_err err = {0, ""};
    return qk_store_carve(S, &r, side, n, len, refs, mat, &err);
}

static uint64_t avail(const char *link)
{
    qk_pool_status st;
    qk_err err = {0, ""};
    CU_ASSERT_FATAL(qk_store_pool_status(S, link, &st, &err) == 0);
    return st.bytes_available;
}

/* ---- schema --------------------------------------------------------------------------- */

static void test_schema_and_reopen(void)
{
    fresh();
    CU_ASSERT_EQUAL(qk_store_schema_version(S), 8);
    uint8_t b[200];
    put_blocks(b, 1, sizeof b, 7);
    qk_key_ref ref;
    uint8_t mat[40];
    CU_ASSERT_EQUAL(carve("r1", QK_SIDE_LOW, 1, 40, &ref, mat), 0);
    qk_store_close(S);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    CU_ASSERT_EQUAL(qk_store_schema_version(S), 8);
    uint8_t dg[QK_CHECK_LEN];
    qk_block_state st = QK_BLOCK_PENDING;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 7, dg, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_CONFIRMED);
    int rs = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(S, "r1", &rs, &err), 0);
    CU_ASSERT_EQUAL(rs, 0);
    CU_ASSERT_EQUAL(avail(LINK), sizeof b - QK_BLOCK_VKEY_LEN - 40);
    /* the carve cursor survived: the next key follows the first */
    CU_ASSERT_EQUAL(carve("r2", QK_SIDE_LOW, 1, 40, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.offset, QK_BLOCK_VKEY_LEN + 40);
    CU_ASSERT_EQUAL(memcmp(mat, b + ref.offset, 40), 0);
    done();
}

static void test_wrong_master_key(void)
{
    fresh();
    uint8_t b[100];
    put_blocks(b, 1, sizeof b, 1);
    qk_store_close(S);
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, 2);
    qk_err err = {0, ""};
    S = NULL;
    CU_ASSERT_EQUAL(qk_store_open(D.path, mk, &S, &err), QK_EMISMATCH);
    CU_ASSERT_PTR_NULL(S);
    S = sf_open(D.path, 1); /* the right key still opens it */
    CU_ASSERT_PTR_NOT_NULL_FATAL(S);
    done();
}

/* Another process (the sqlite3 shell, executed afresh: a forked copy of this one would share
 * SQLite's view of this process's locks) reads the blocks: their count, -SQLITE_BUSY when it
 * finds the file locked, -1 on anything else. */
static int other_reader_blocks(const char *path)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        (void)dup2(fds[1], 1);
        (void)dup2(fds[1], 2);
        (void)close(fds[0]);
        (void)close(fds[1]);
        execlp("sqlite3", "sqlite3", "-readonly", path, "SELECT count(*) FROM blocks",
               (char *)NULL);
        _exit(127);
    }
    (void)close(fds[1]);
    char out[512];
    size_t n = 0;
    ssize_t r;
    while (pid > 0 && n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    (void)close(fds[0]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    if (n > 0 && out[0] >= '0' && out[0] <= '9')
        return atoi(out);
    return strstr(out, "locked") ? -SQLITE_BUSY : -1;
}

/* One process per store (qk_store_opts.shared_lock false, the default): the open store holds
 * its lock until closed, so a second open of the same file fails, naming the store in use, and
 * another connection cannot read it; the WAL index is in memory (no -shm file). A store opened
 * shared lets another connection read, and still keeps an exclusive opener out. */
static void test_one_process_per_store(void)
{
    unsigned saved = qs_busy_ms;
    qs_busy_ms = 100; /* the refused opens below wait this long */
    CU_ASSERT_FATAL(sf_dir_make(&D, "excl") == 0);
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, 1);
    qk_err err = {0, ""};
    S = NULL;
    CU_ASSERT_FATAL(qk_store_open(D.path, mk, &S, &err) == 0);
    uint8_t b[100];
    put_blocks(b, 1, sizeof b, 1);
    qk_store *second = NULL;
    CU_ASSERT_EQUAL(qk_store_open(D.path, mk, &second, &err), QK_ESTORAGE);
    CU_ASSERT_PTR_NULL(second);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "in use"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, D.path));
    CU_ASSERT_EQUAL(other_reader_blocks(D.path), -SQLITE_BUSY);
    char shm[sizeof D.path + 8];
    snprintf(shm, sizeof shm, "%s-shm", D.path);
    FILE *f = fopen(shm, "r");
    CU_ASSERT_PTR_NULL(f);
    if (f)
        fclose(f);
    qk_store_close(S);
    /* shared: readable by others, and an exclusive opener is still refused */
    qk_store_opts shared = {.shared_lock = true};
    S = NULL;
    CU_ASSERT_FATAL(qk_store_open_with(D.path, mk, &shared, &S, &err) == 0);
    CU_ASSERT_EQUAL(other_reader_blocks(D.path), 1);
    CU_ASSERT_EQUAL(qk_store_open(D.path, mk, &second, &err), QK_ESTORAGE);
    CU_ASSERT_PTR_NULL(second);
    qk_store_close(S);
    /* closed: opens again, exclusive, with its block */
    S = NULL;
    CU_ASSERT_FATAL(qk_store_open(D.path, mk, &S, &err) == 0);
    qk_store_close(S);
    CU_ASSERT_EQUAL(other_reader_blocks(D.path), 1);
    S = NULL;
    qs_busy_ms = saved;
    sf_dir_remove(&D);
}

/* ---- carving -------------------------------------------------------------------------- */

static void test_carve_low_high(void)
{
    fresh();
    enum { L = 132 };
    uint8_t b[3 * L];
    put_blocks(b, 3, L, 1);
    qk_key_ref ref;
    uint8_t mat[40];
    CU_ASSERT_EQUAL(carve("lo1", QK_SIDE_LOW, 1, 40, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 1);
    CU_ASSERT_EQUAL(ref.offset, QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL(ref.length, 40);
    CU_ASSERT_EQUAL(memcmp(mat, b + QK_BLOCK_VKEY_LEN, 40), 0);
    CU_ASSERT_EQUAL(strlen(ref.key_id), QK_KEY_ID_LEN);

    CU_ASSERT_EQUAL(carve("hi1", QK_SIDE_HIGH, 1, 40, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 3);
    CU_ASSERT_EQUAL(ref.offset, L - 40);
    CU_ASSERT_EQUAL(memcmp(mat, b + 2 * L + L - 40, 40), 0);

    /* LOW continues at the front of block 1, HIGH at the back of block 3 */
    CU_ASSERT_EQUAL(carve("lo2", QK_SIDE_LOW, 1, 40, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 1);
    CU_ASSERT_EQUAL(ref.offset, QK_BLOCK_VKEY_LEN + 40);
    CU_ASSERT_EQUAL(carve("hi2", QK_SIDE_HIGH, 1, 40, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 3);
    CU_ASSERT_EQUAL(ref.offset, L - 80);
    /* block 1 has 20 bytes left: the next 40-byte LOW key comes from block 2 */
    CU_ASSERT_EQUAL(carve("lo3", QK_SIDE_LOW, 1, 40, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 2);
    CU_ASSERT_EQUAL(ref.offset, QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL(memcmp(mat, b + L + QK_BLOCK_VKEY_LEN, 40), 0);
    done();
}

static void test_carve_meet_in_last_block(void)
{
    fresh();
    enum { L = 132 };
    uint8_t b[L];
    put_blocks(b, 1, L, 1);
    qk_key_ref refs[2];
    uint8_t mat[60];
    CU_ASSERT_EQUAL(carve("lo", QK_SIDE_LOW, 2, 30, refs, mat), 0);
    CU_ASSERT_EQUAL(refs[0].offset, 32);
    CU_ASSERT_EQUAL(refs[1].offset, 62);
    CU_ASSERT_EQUAL(memcmp(mat, b + 32, 60), 0);
    CU_ASSERT_EQUAL(carve("hi", QK_SIDE_HIGH, 1, 30, refs, mat), 0);
    CU_ASSERT_EQUAL(refs[0].offset, 102);
    CU_ASSERT_EQUAL(memcmp(mat, b + 102, 30), 0);
    CU_ASSERT_EQUAL(avail(LINK), 10);
    CU_ASSERT_EQUAL(carve("lo2", QK_SIDE_LOW, 1, 11, refs, mat), QK_ENOKEY);
    CU_ASSERT_EQUAL(carve("hi2", QK_SIDE_HIGH, 1, 10, refs, mat), 0);
    CU_ASSERT_EQUAL(refs[0].offset, 92);
    CU_ASSERT_EQUAL(avail(LINK), 0);
    CU_ASSERT_EQUAL(carve("lo3", QK_SIDE_LOW, 1, 1, refs, mat), QK_ENOKEY);
    done();
}

static void test_enokey_records_nothing(void)
{
    fresh();
    uint8_t b[132];
    put_blocks(b, 1, sizeof b, 1);
    qk_key_ref refs[2];
    uint8_t mat[120];
    memset(mat, 0xAA, sizeof mat);
    CU_ASSERT_EQUAL(carve("big", QK_SIDE_LOW, 2, 60, refs, mat), QK_ENOKEY);
    for (size_t i = 0; i < sizeof mat; i++)
        CU_ASSERT_EQUAL_FATAL(mat[i], 0); /* the first key read out was wiped */
    int st = 0;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_request_state(S, "big", &st, &err), QK_ENOTFOUND);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.bytes_available, 100);
    CU_ASSERT_EQUAL(ps.keys_pending, 0);
    /* the same request id still works afterwards */
    CU_ASSERT_EQUAL(carve("big", QK_SIDE_LOW, 1, 60, refs, mat), 0);
    CU_ASSERT_EQUAL(refs[0].offset, 32);
    /* a known request id is refused */
    CU_ASSERT_EQUAL(carve("big", QK_SIDE_LOW, 1, 10, refs, mat), QK_EEXIST);
    done();
}

static void test_keys_never_span_blocks(void)
{
    fresh();
    enum { L = 82 }; /* 50 carvable bytes per block */
    uint8_t b[2 * L];
    put_blocks(b, 2, L, 1);
    qk_key_ref refs[2];
    uint8_t mat[80];
    CU_ASSERT_EQUAL(carve("a", QK_SIDE_LOW, 2, 40, refs, mat), 0);
    CU_ASSERT_EQUAL(refs[0].block_id, 1);
    CU_ASSERT_EQUAL(refs[1].block_id, 2);
    CU_ASSERT_EQUAL(refs[1].offset, 32);
    CU_ASSERT_EQUAL(memcmp(mat + 40, b + L + 32, 40), 0);
    CU_ASSERT_EQUAL(avail(LINK), 20);
    CU_ASSERT_EQUAL(carve("b", QK_SIDE_LOW, 1, 20, refs, mat), QK_ENOKEY); /* 10 + 10 */
    CU_ASSERT_EQUAL(carve("c", QK_SIDE_HIGH, 1, 20, refs, mat), QK_ENOKEY);
    done();
}

static void test_vkey_never_carved(void)
{
    fresh();
    uint8_t b[132];
    put_blocks(b, 1, sizeof b, 1);
    qk_key_ref ref;
    uint8_t mat[101];
    CU_ASSERT_EQUAL(carve("x", QK_SIDE_HIGH, 1, 101, &ref, mat), QK_ENOKEY);
    CU_ASSERT_EQUAL(carve("y", QK_SIDE_HIGH, 1, 100, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.offset, QK_BLOCK_VKEY_LEN);
    CU_ASSERT_EQUAL(memcmp(mat, b + QK_BLOCK_VKEY_LEN, 100), 0);
    done();
}

static void test_pending_blocks_not_carved(void)
{
    fresh();
    uint8_t b[100];
    randombytes_buf(b, sizeof b);
    qk_put_result res;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 1, b, sizeof b, &res, &err), 0);
    qk_key_ref ref;
    uint8_t mat[8];
    CU_ASSERT_EQUAL(carve("p", QK_SIDE_LOW, 1, 8, &ref, mat), QK_ENOKEY);
    CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, 1, QK_BLOCK_CONFIRMED, &err), 0);
    CU_ASSERT_EQUAL(carve("p", QK_SIDE_LOW, 1, 8, &ref, mat), 0);
    done();
}

/* ---- blocks ----------------------------------------------------------------------------- */

static void test_block_put_duplicate_conflict(void)
{
    fresh();
    uint8_t b[256], c[256];
    randombytes_buf(b, sizeof b);
    memcpy(c, b, sizeof c);
    c[200] ^= 1;
    qk_put_result res = QK_PUT_CONFLICT;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 9, b, sizeof b, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_NEW);
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 9, b, sizeof b, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_DUPLICATE);
    uint8_t d1[QK_CHECK_LEN], d2[QK_CHECK_LEN];
    qk_block_state st;
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 9, d1, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_PENDING);
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 9, c, sizeof c, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_CONFLICT);
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 9, d2, &st, &err), 0);
    CU_ASSERT_EQUAL(st, QK_BLOCK_BURNED);
    CU_ASSERT_EQUAL(memcmp(d1, d2, sizeof d1), 0);
    CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, 9, QK_BLOCK_CONFIRMED, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, 9, QK_BLOCK_BURNED, &err), 0);
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 10, d2, &st, &err), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, 10, QK_BLOCK_CONFIRMED, &err), QK_ENOTFOUND);
    /* the same bytes under another block id or link give another digest */
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 11, b, sizeof b, &res, &err), 0);
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 11, d2, &st, &err), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(d1, d2, sizeof d1), 0);
    /* length limits */
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 12, b, QK_BLOCK_VKEY_LEN, &res, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 12, b, QK_BLOCK_MAX_BYTES + 1, &res, &err),
                    QK_EINVAL);
    done();
}

static qk_pool_status pool(const char *link)
{
    qk_pool_status st;
    qk_err err = {0, ""};
    CU_ASSERT_FATAL(qk_store_pool_status(S, link, &st, &err) == 0);
    return st;
}

/* The pool cap: a new block past max_pool_bytes (uncarved bytes of pending and confirmed
 * blocks) is refused, stored nowhere, counted, and the link reads full until a block is stored
 * again; duplicates and conflicts are answered as without the cap; taking keys makes room; the
 * cap is per link; the count survives a reopen. */
static void test_pool_cap(void)
{
    fresh();
    enum { LEN = QK_BLOCK_VKEY_LEN + 1024, CAP = 3 * 1024 };
    static uint8_t b[6][LEN];
    randombytes_buf(b, sizeof b);
    qk_put_result res = QK_PUT_CONFLICT;
    qk_err err = {0, ""};
    for (uint64_t id = 1; id <= 3; id++) {
        CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, id, b[id], LEN, CAP, &res, &err), 0);
        CU_ASSERT_EQUAL(res, QK_PUT_NEW);
    }
    qk_pool_status st = pool(LINK);
    CU_ASSERT_EQUAL(st.bytes_held, CAP);
    CU_ASSERT_FALSE(st.full);
    CU_ASSERT_EQUAL(st.blocks_refused_full, 0);
    /* Full: refused, nothing stored, counted. */
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 4, b[4], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_FULL);
    uint8_t d[QK_CHECK_LEN];
    qk_block_state bs;
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 4, d, &bs, &err), QK_ENOTFOUND);
    st = pool(LINK);
    CU_ASSERT_TRUE(st.full);
    CU_ASSERT_EQUAL(st.blocks_refused_full, 1);
    CU_ASSERT_EQUAL(st.bytes_refused_full, LEN);
    CU_ASSERT_EQUAL(st.blocks_pending, 3);
    CU_ASSERT_EQUAL(st.bytes_held, CAP);
    /* A smaller block that fits is taken (the cap is on bytes, not blocks). */
    CU_ASSERT_EQUAL(
        qk_store_block_put_capped(S, LINK, 4, b[4], QK_BLOCK_VKEY_LEN + 1, CAP + 1, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_NEW);
    CU_ASSERT_FALSE(pool(LINK).full);
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 5, b[5], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_FULL);
    /* While full: a duplicate is a duplicate, a conflict burns (and frees room). */
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 2, b[2], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_DUPLICATE);
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 3, b[5], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_CONFLICT);
    st = pool(LINK);
    CU_ASSERT_EQUAL(st.bytes_held, 2 * 1024 + 1);
    CU_ASSERT_EQUAL(st.blocks_refused_full, 2);
    CU_ASSERT_TRUE(st.full); /* until a new block is stored */
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 5, b[5], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_FULL); /* 2049 + 1024 > 3072 */
    /* Taking keys makes room: 512 bytes carved from confirmed block 1. */
    CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, 1, QK_BLOCK_CONFIRMED, &err), 0);
    qk_key_ref ref;
    uint8_t mat[512];
    CU_ASSERT_EQUAL_FATAL(carve("cap", QK_SIDE_LOW, 1, sizeof mat, &ref, mat), 0);
    CU_ASSERT_EQUAL(pool(LINK).bytes_held, 2 * 1024 + 1 - 512);
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 5, b[5], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_NEW);
    st = pool(LINK);
    CU_ASSERT_FALSE(st.full);
    CU_ASSERT_EQUAL(st.blocks_refused_full, 3);
    CU_ASSERT_EQUAL(st.bytes_held, 3 * 1024 + 1 - 512);
    /* Per link: another link's pool is its own; 0 = no cap. */
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, "KME_A~KME_C", 1, b[0], LEN, CAP, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_NEW);
    CU_ASSERT_EQUAL(pool("KME_A~KME_C").blocks_refused_full, 0);
    CU_ASSERT_EQUAL(qk_store_block_put_capped(S, LINK, 6, b[0], LEN, 0, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_NEW);
    CU_ASSERT_EQUAL(sf_counts_match(S, D.path, LINK, NULL), 0);
    /* The count is kept in the database. */
    qk_store_close(S);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    CU_ASSERT_EQUAL(pool(LINK).blocks_refused_full, 3);
    done();
}

static void test_out_of_order_blocks(void)
{
    fresh();
    uint8_t b[3][100];
    randombytes_buf(b, sizeof b);
    static const uint64_t order[3] = {5, 3, 4};
    qk_put_result res;
    qk_err err = {0, ""};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, order[i], b[i], 100, &res, &err), 0);
    uint64_t ids[8];
    size_t n = 0;
    CU_ASSERT_EQUAL(qk_store_blocks_in_state(S, LINK, QK_BLOCK_PENDING, 0, ids, 8, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT(ids[0] == 3 && ids[1] == 4 && ids[2] == 5);
    CU_ASSERT_EQUAL(qk_store_blocks_in_state(S, LINK, QK_BLOCK_PENDING, 0, ids, 2, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 2);
    /* received before 1970-01-01T00:00:01: none */
    CU_ASSERT_EQUAL(qk_store_blocks_in_state(S, LINK, QK_BLOCK_PENDING, 1, ids, 8, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, order[i], QK_BLOCK_CONFIRMED, &err), 0);
    CU_ASSERT_EQUAL(qk_store_blocks_in_state(S, LINK, QK_BLOCK_CONFIRMED, 0, ids, 8, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 3);
    qk_key_ref ref;
    uint8_t mat[10];
    CU_ASSERT_EQUAL(carve("l", QK_SIDE_LOW, 1, 10, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 3);
    CU_ASSERT_EQUAL(memcmp(mat, b[1] + 32, 10), 0);
    CU_ASSERT_EQUAL(carve("h", QK_SIDE_HIGH, 1, 10, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 5);
    CU_ASSERT_EQUAL(memcmp(mat, b[0] + 90, 10), 0);
    done();
}

/* ---- encryption at rest ------------------------------------------------------------------ */

/* 1 if some aligned 16-byte chunk of secret[0..n) occurs in hay. */
static int leaks(const uint8_t *hay, size_t hlen, const uint8_t *secret, size_t n)
{
    for (size_t i = 0; i + 16 <= n; i += 16)
        if (memmem(hay, hlen, secret + i, 16))
            return 1;
    return 0;
}

static void test_encryption_at_rest(void)
{
    fresh();
    enum { L = 8192, NK = 16, KL = 256 };
    uint8_t *b = malloc(L);
    uint8_t *mat = malloc(NK * KL);
    uint8_t *got = malloc(NK * KL);
    CU_ASSERT_FATAL(b && mat && got);
    put_blocks(b, 1, L, 1);
    qk_key_ref refs[NK];
    const char *sl[2];
    qk_reservation r = sf_resv("enc", QK_LOCAL_LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_local_refill(S, L, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(S, &r, QK_SIDE_LOW, NK, KL, refs, mat, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(S, "enc", true, &err), 0);
    const char *ids[NK / 2];
    qk_fetched_key out[NK / 2];
    for (int i = 0; i < NK / 2; i++)
        ids[i] = refs[i].key_id;
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeA", ids, NK / 2, out, got, NK * KL, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat, NK / 2 * KL), 0);
    /* also carve from the device block (not yet delivered) */
    CU_ASSERT_EQUAL(carve("enc2", QK_SIDE_LOW, 4, KL, refs, got), 0);
    /* a recognisable marker that IS stored in clear proves the scan reads live data */
    static const char marker[] = "audit-marker-0123456789abcdef";
    CU_ASSERT_EQUAL(qk_store_audit(S, "test", LINK, NULL, NULL, marker, &err), 0);

    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", D.path);
    size_t dl = 0, wl = 0;
    uint8_t *db = sf_read_file(D.path, &dl);
    uint8_t *wf = sf_read_file(wal, &wl);
    CU_ASSERT_FATAL(db != NULL);
    CU_ASSERT(wf != NULL && wl > 0);
    CU_ASSERT(memmem(db, dl, marker, 16) != NULL || (wf && memmem(wf, wl, marker, 16) != NULL));
    CU_ASSERT_EQUAL(leaks(db, dl, b, L), 0);
    CU_ASSERT_EQUAL(leaks(db, dl, mat, NK * KL), 0);
    if (wf) {
        CU_ASSERT_EQUAL(leaks(wf, wl, b, L), 0);
        CU_ASSERT_EQUAL(leaks(wf, wl, mat, NK * KL), 0);
    }
    free(db);
    free(wf);
    free(b);
    free(mat);
    free(got);
    done();
}

/* ---- delivery --------------------------------------------------------------------------- */

/* Carve n local keys of len for master saeA and the given slaves, committed for them. */
static void local_keys(const char *req, const char *s1, const char *s2, size_t n, uint32_t len,
                       uint64_t exp, qk_key_ref *refs, uint8_t *mat)
{
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qk_store_local_refill(S, 1024, &err), 0);
    const char *sl[2];
    qk_reservation r = sf_resv(req, QK_LOCAL_LINK, "saeA", sl, s1, s2, exp);
    CU_ASSERT_EQUAL_FATAL(qk_store_carve(S, &r, QK_SIDE_LOW, n, len, refs, mat, &err), 0);
    CU_ASSERT_EQUAL_FATAL(qk_store_commit(S, req, true, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(S, req, true, &err), 0); /* idempotent */
}

static void test_fetch_once(void)
{
    fresh();
    qk_key_ref refs[2];
    uint8_t mat[64], got[64];
    local_keys("r", "saeB", NULL, 2, 32, FAR_FUTURE, refs, mat);
    const char *ids[2] = {refs[1].key_id, refs[0].key_id};
    qk_fetched_key out[2];
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeA", ids, 2, out, got, sizeof got, &err), 0);
    CU_ASSERT_STRING_EQUAL(out[0].key_id, refs[1].key_id);
    CU_ASSERT_EQUAL(out[0].length, 32);
    CU_ASSERT_EQUAL(memcmp(out[0].material, mat + 32, 32), 0); /* order of ids */
    CU_ASSERT_EQUAL(memcmp(out[1].material, mat, 32), 0);
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", NULL, ids, 1, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    CU_ASSERT(strstr(err.msg, refs[1].key_id) != NULL);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(S, QK_LOCAL_LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, 2);
    CU_ASSERT_EQUAL(ps.keys_reserved, 0);
    done();
}

static void test_fetch_multicast(void)
{
    fresh();
    qk_key_ref ref;
    uint8_t mat[32], g1[32], g2[32];
    local_keys("m", "s1", "s2", 1, 32, FAR_FUTURE, &ref, mat);
    const char *ids[1] = {ref.key_id};
    qk_fetched_key out[1];
    qk_err err = {0, ""};
    uint64_t n = 0;
    CU_ASSERT_EQUAL(qk_store_count_reserved(S, "saeA", "s2", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(qk_store_fetch(S, "s1", "saeA", ids, 1, out, g1, sizeof g1, &err), 0);
    CU_ASSERT_EQUAL(qk_store_fetch(S, "s1", "saeA", ids, 1, out, g1, sizeof g1, &err),
                    QK_ENOTFOUND);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(S, QK_LOCAL_LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_reserved, 1); /* s2 has not fetched yet */
    CU_ASSERT_EQUAL(qk_store_fetch(S, "s2", "saeA", ids, 1, out, g2, sizeof g2, &err), 0);
    CU_ASSERT_EQUAL(memcmp(g1, mat, 32), 0);
    CU_ASSERT_EQUAL(memcmp(g2, mat, 32), 0);
    CU_ASSERT_EQUAL(qk_store_pool_status(S, QK_LOCAL_LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, 1);
    CU_ASSERT_EQUAL(qk_store_fetch(S, "s2", "saeA", ids, 1, out, g2, sizeof g2, &err),
                    QK_ENOTFOUND);
    done();
}

static void test_fetch_auth_and_all_or_nothing(void)
{
    fresh();
    qk_key_ref refs[2];
    uint8_t mat[64], got[64];
    local_keys("a", "saeB", NULL, 2, 32, FAR_FUTURE, refs, mat);
    qk_fetched_key out[2];
    qk_err err = {0, ""};
    const char *one[1] = {refs[0].key_id};
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeX", NULL, one, 1, out, got, sizeof got, &err),
                    QK_EUNAUTH);
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeZ", one, 1, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    const char *bad[2] = {refs[0].key_id, "00000000-0000-4000-8000-000000000000"};
    memset(got, 0x55, sizeof got);
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeA", bad, 2, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    CU_ASSERT(strstr(err.msg, bad[1]) != NULL);
    CU_ASSERT_EQUAL(memcmp(got, mat, 32) == 0, 0); /* no material left in the buffer */
    const char *dup[2] = {refs[0].key_id, refs[0].key_id};
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeA", dup, 2, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    const char *both[2] = {refs[0].key_id, refs[1].key_id};
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeA", both, 2, out, got, 63, &err), QK_EINVAL);
    uint64_t n = 0;
    CU_ASSERT_EQUAL(qk_store_count_reserved(S, NULL, "saeB", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 2); /* nothing was consumed */
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", "saeA", both, 2, out, got, sizeof got, &err), 0);
    CU_ASSERT_EQUAL(memcmp(got, mat, 64), 0);
    CU_ASSERT_EQUAL(qk_store_count_reserved(S, NULL, "saeB", &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    done();
}

static void test_expiry(void)
{
    fresh();
    uint64_t now = (uint64_t)time(NULL);
    qk_key_ref ref;
    uint8_t mat[32], got[32];
    local_keys("e", "saeB", NULL, 1, 32, now + 100, &ref, mat);
    size_t n = 9;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_expire(S, now + 50, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(qk_store_expire(S, now + 100, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    const char *ids[1] = {ref.key_id};
    qk_fetched_key out[1];
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", NULL, ids, 1, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(S, QK_LOCAL_LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_expired, 1);
    CU_ASSERT_EQUAL(ps.keys_reserved, 0);
    int st = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(S, "e", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 2);
    /* an already-past lifetime is refused at fetch even before expire runs */
    local_keys("e2", "saeB", NULL, 1, 32, now - 1, &ref, mat);
    ids[0] = ref.key_id;
    CU_ASSERT_EQUAL(qk_store_fetch(S, "saeB", NULL, ids, 1, out, got, sizeof got, &err),
                    QK_ENOTFOUND);
    done();
}

/* ---- requests: pending list, burn, tombstones ------------------------------------------- */

static void test_burn_and_pending(void)
{
    fresh();
    uint8_t b[200];
    put_blocks(b, 1, sizeof b, 1);
    qk_key_ref ref;
    uint8_t mat[16];
    CU_ASSERT_EQUAL(carve("p1", QK_SIDE_LOW, 1, 16, &ref, mat), 0);
    CU_ASSERT_EQUAL(carve("p2", QK_SIDE_LOW, 1, 16, &ref, mat), 0);
    char ids[4][QK_STORE_ID_MAX + 1];
    size_t n = 0;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_pending_requests(S, ids, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(qk_store_burn(S, "p1", &err), 0);
    CU_ASSERT_EQUAL(qk_store_burn(S, "p1", &err), 0); /* idempotent */
    int st = -1;
    CU_ASSERT_EQUAL(qk_store_request_state(S, "p1", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT_EQUAL(qk_store_commit(S, "p1", false, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_commit(S, "p2", false, &err), 0);
    CU_ASSERT_EQUAL(qk_store_request_state(S, "p2", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 1);
    CU_ASSERT_EQUAL(qk_store_pending_requests(S, ids, 4, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_burned, 1);
    CU_ASSERT_EQUAL(ps.keys_delivered, 1);
    /* burned ranges are never carved again */
    CU_ASSERT_EQUAL(carve("p3", QK_SIDE_LOW, 1, 16, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.offset, 32 + 32);
    /* unknown request: tombstone, and the id can no longer be used */
    CU_ASSERT_EQUAL(qk_store_burn(S, "ghost", &err), 0);
    CU_ASSERT_EQUAL(qk_store_request_state(S, "ghost", &st, &err), 0);
    CU_ASSERT_EQUAL(st, 2);
    CU_ASSERT_EQUAL(carve("ghost", QK_SIDE_LOW, 1, 16, &ref, mat), QK_EEXIST);
    CU_ASSERT_EQUAL(qk_store_commit(S, "nobody", false, &err), QK_ENOTFOUND);
    done();
}

static void test_block_burn_burns_keys(void)
{
    fresh();
    uint8_t b[200];
    put_blocks(b, 1, sizeof b, 1);
    qk_key_ref ref;
    uint8_t mat[16];
    CU_ASSERT_EQUAL(carve("k", QK_SIDE_LOW, 1, 16, &ref, mat), 0);
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_block_set_state(S, LINK, 1, QK_BLOCK_BURNED, &err), 0);
    qk_pool_status ps;
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_burned, 1);
    CU_ASSERT_EQUAL(ps.blocks_burned, 1);
    CU_ASSERT_EQUAL(ps.bytes_available, 0);
    CU_ASSERT_EQUAL(carve("k2", QK_SIDE_LOW, 1, 16, &ref, mat), QK_ENOKEY);
    done();
}

/* ---- zeroization and threads ------------------------------------------------------------ */

/* Number of segment rows of a block, read through a separate connection (-1 on error). */
static int count_segments(uint64_t block_id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(D.path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM segments WHERE block_id = ?", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_bind_int64(st, 1, (sqlite3_int64)block_id) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_zeroization_deletes_segments(void)
{
    fresh();
    enum { L = 2 * QK_SEG_BYTES }; /* two segments */
    uint8_t *b = malloc(L);
    uint8_t *mat = malloc(L);
    CU_ASSERT_FATAL(b && mat);
    put_blocks(b, 1, L, 1);
    CU_ASSERT_EQUAL(count_segments(1), 2);
    qk_key_ref refs[2];
    qk_err err = {0, ""};
    /* a HIGH key covering segment 1 exactly: delivered, its segment row goes */
    CU_ASSERT_EQUAL_FATAL(carve("k1", QK_SIDE_HIGH, 1, QK_SEG_BYTES, refs, mat), 0);
    CU_ASSERT_EQUAL(count_segments(1), 2); /* pending: material still held */
    CU_ASSERT_EQUAL(qk_store_commit(S, "k1", false, &err), 0);
    CU_ASSERT_EQUAL(count_segments(1), 1);
    /* the rest of segment 0 in two keys; the block is used up, segment 0 (vkey) goes too */
    uint32_t half = (QK_SEG_BYTES - QK_BLOCK_VKEY_LEN) / 2;
    CU_ASSERT_EQUAL_FATAL(carve("k2", QK_SIDE_LOW, 2, half, refs, mat), 0);
    CU_ASSERT_EQUAL(memcmp(mat, b + QK_BLOCK_VKEY_LEN, 2 * half), 0);
    CU_ASSERT_EQUAL(qk_store_burn(S, "k2", &err), 0);
    CU_ASSERT_EQUAL(count_segments(1), 0);
    uint8_t dg[QK_CHECK_LEN];
    qk_block_state st;
    CU_ASSERT_EQUAL(qk_store_block_digest(S, LINK, 1, dg, &st, &err), 0); /* metadata kept */
    CU_ASSERT_EQUAL(st, QK_BLOCK_CONFIRMED);
    qk_put_result res;
    CU_ASSERT_EQUAL(qk_store_block_put(S, LINK, 1, b, L, &res, &err), 0);
    CU_ASSERT_EQUAL(res, QK_PUT_DUPLICATE); /* the id is never reused */
    free(b);
    free(mat);
    done();
}

/* The plaintext of segment idx of a block (plen bytes), decrypted with the store's own AEAD
 * (qs_seg_open) under the test master key from a row read through a separate connection.
 * 0, or -1 when the row is absent or does not authenticate. */
static int read_segment(uint64_t block_id, uint32_t idx, uint8_t *plain, size_t *plen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, 1);
    if (sqlite3_open_v2(D.path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db,
                           "SELECT nonce, ct FROM segments WHERE link = ? AND block_id = ?"
                           " AND idx = ?",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, LINK, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int64(st, 2, (sqlite3_int64)block_id) == SQLITE_OK &&
        sqlite3_bind_int(st, 3, (int)idx) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *nonce = sqlite3_column_blob(st, 0);
        const uint8_t *ct = sqlite3_column_blob(st, 1);
        size_t clen = (size_t)sqlite3_column_bytes(st, 1);
        if (nonce && ct && sqlite3_column_bytes(st, 0) == (int)QS_NONCE_LEN && clen >= QS_TAG_LEN &&
            qs_seg_open(mk, LINK, block_id, idx, nonce, ct, clen, plain) == 0) {
            *plen = clen - QS_TAG_LEN;
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    sodium_memzero(mk, sizeof mk);
    return rc;
}

/* Whether plain[a, b) is all zero (want_zero) or equal to ref[a, b). */
static bool range_is(const uint8_t *plain, const uint8_t *ref, size_t a, size_t b, bool want_zero)
{
    for (size_t i = a; i < b; i++)
        if (plain[i] != (want_zero ? 0 : ref[i]))
            return false;
    return true;
}

/* Segment idx of a block (bytes b from the block's start) holds zeros in [a, c) of its
 * segment-relative bytes and the block's bytes everywhere else (plain: one segment's room). */
static void zeroed_only(uint64_t block, uint32_t idx, const uint8_t *b, uint8_t *plain, size_t a,
                        size_t c)
{
    size_t plen = 0;
    const uint8_t *ref = b + (size_t)idx * QK_SEG_BYTES;
    CU_ASSERT_EQUAL_FATAL(read_segment(block, idx, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, ref, 0, a, false));
    CU_ASSERT_TRUE(range_is(plain, ref, a, c, true));
    CU_ASSERT_TRUE(range_is(plain, ref, c, plen, false));
}

/* A key delivered from a segment that still holds other keys: the segment stays, re-encrypted,
 * with the delivered range zeroed and every other byte (verification key, keys still pending
 * or reserved, uncarved material) intact - for delivery by commit (slaves at the peer) and
 * by the last slave's fetch, including a key that spans two segments. */
static void test_partial_segment_wipe(void)
{
    fresh();
    /* K4 starts in segment 0 and ends 200 bytes into segment 1 */
    enum { L = 2 * QK_SEG_BYTES, K1 = 100, K2 = 100, K3 = 200 };
    enum { K4 = QK_SEG_BYTES + 200 - (QK_BLOCK_VKEY_LEN + K1 + K2) };
    uint8_t *b = malloc(L);
    uint8_t *mat = malloc(L);
    uint8_t *plain = malloc(QK_SEG_BYTES);
    CU_ASSERT_FATAL(b && mat && plain);
    randombytes_buf(b, L);
    for (size_t i = QK_BLOCK_VKEY_LEN; i < L; i++)
        b[i] |= 1; /* no key byte is zero by chance: a zero range can only be a wipe */
    CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 1, b, L) == 0);
    qk_err err = {0, ""};
    qk_key_ref ref, ref2, ref3;
    const uint32_t o1 = QK_BLOCK_VKEY_LEN, o2 = o1 + K1, o4 = o2 + K2, o3 = L - K3;
    CU_ASSERT_EQUAL_FATAL(carve("k1", QK_SIDE_LOW, 1, K1, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.offset, o1);
    CU_ASSERT_EQUAL_FATAL(carve("k2", QK_SIDE_LOW, 1, K2, &ref2, mat), 0);
    CU_ASSERT_EQUAL(ref2.offset, o2);
    CU_ASSERT_EQUAL_FATAL(carve("k3", QK_SIDE_HIGH, 1, K3, &ref3, mat), 0);
    CU_ASSERT_EQUAL(ref3.offset, o3);
    CU_ASSERT_EQUAL_FATAL(carve("k4", QK_SIDE_LOW, 1, K4, &ref, mat), 0); /* spans 0 and 1 */
    CU_ASSERT_EQUAL(ref.offset, o4);
    CU_ASSERT_EQUAL(memcmp(mat, b + o4, K4), 0);

    /* k1 delivered by the commit: segment 0 keeps k2 and k4, so it is rewritten, not deleted */
    CU_ASSERT_EQUAL(qk_store_commit(S, "k1", false, &err), 0);
    CU_ASSERT_EQUAL(count_segments(1), 2);
    size_t plen = 0;
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 0, plain, &plen), 0);
    CU_ASSERT_EQUAL_FATAL(plen, QK_SEG_BYTES);
    CU_ASSERT_TRUE(range_is(plain, b, 0, o1, false)); /* verification key */
    CU_ASSERT_TRUE(range_is(plain, b, o1, o2, true)); /* k1: wiped */
    CU_ASSERT_TRUE(range_is(plain, b, o2, QK_SEG_BYTES, false));
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 1, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + QK_SEG_BYTES, 0, QK_SEG_BYTES, false));

    /* k4 reserved for saeB here, then fetched by it: its range in both segments is wiped */
    CU_ASSERT_EQUAL(qk_store_commit(S, "k4", true, &err), 0);
    const char *ids[1] = {ref.key_id};
    qk_fetched_key out[1];
    CU_ASSERT_EQUAL_FATAL(qk_store_fetch(S, "saeB", "saeA", ids, 1, out, mat, K4, &err), 0);
    CU_ASSERT_EQUAL(memcmp(mat, b + o4, K4), 0);
    CU_ASSERT_EQUAL(count_segments(1), 2);
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 0, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b, 0, o1, false));
    CU_ASSERT_TRUE(range_is(plain, b, o1, o2, true));
    CU_ASSERT_TRUE(range_is(plain, b, o2, o4, false)); /* k2, still pending */
    CU_ASSERT_TRUE(range_is(plain, b, o4, QK_SEG_BYTES, true));
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 1, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + QK_SEG_BYTES, 0, o4 + K4 - QK_SEG_BYTES, true));
    CU_ASSERT_TRUE(range_is(plain, b + QK_SEG_BYTES, o4 + K4 - QK_SEG_BYTES, QK_SEG_BYTES, false));
    /* what was left is served whole from the rewritten segments */
    CU_ASSERT_EQUAL(qk_store_commit(S, "k2", true, &err), 0);
    CU_ASSERT_EQUAL(qk_store_commit(S, "k3", true, &err), 0);
    const char *rest[2] = {ref2.key_id, ref3.key_id};
    qk_fetched_key out2[2];
    CU_ASSERT_EQUAL_FATAL(qk_store_fetch(S, "saeB", "saeA", rest, 2, out2, mat, K2 + K3, &err), 0);
    CU_ASSERT_EQUAL(memcmp(mat, b + o2, K2), 0);
    CU_ASSERT_EQUAL(memcmp(mat + K2, b + o3, K3), 0);
    sodium_memzero(mat, L);
    sodium_memzero(plain, QK_SEG_BYTES);
    sodium_memzero(b, L);
    free(b);
    free(mat);
    free(plain);
    done();
}

/* One integer from the closed-or-open database through a separate connection (-1 on error). */
static long long query_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(D.path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Schema v7: new blocks are cut into QK_SEG_BYTES segments, blocks stored before keep their
 * QK_SEG_BYTES_V1 segments and are read, carved and zeroed by them after the migration; a
 * segment size the store does not know is refused, never guessed. */
static void test_segment_sizes_v7(void)
{
    fresh();
    enum { V1 = QK_SEG_BYTES_V1, L = 3 * QK_SEG_BYTES, K = 3 * V1 - QK_BLOCK_VKEY_LEN + 8 };
    uint8_t *b = malloc(2 * L);
    uint8_t *mat = malloc(L);
    uint8_t *plain = malloc(QK_SEG_BYTES);
    CU_ASSERT_FATAL(b && mat && plain);
    put_blocks(b, 1, L, 1);
    CU_ASSERT_EQUAL(count_segments(1), 3);
    qk_store_close(S);
    CU_ASSERT_FATAL(sf_downgrade_v6(D.path, 1) == 0); /* as v6 stored it: 1 KiB segments */
    CU_ASSERT_EQUAL(count_segments(1), L / V1);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    CU_ASSERT_EQUAL(qk_store_schema_version(S), 8);
    CU_ASSERT_EQUAL(query_int("SELECT seg_bytes FROM blocks WHERE block_id = 1"), V1);
    put_blocks(b + L, 1, L, 2);
    CU_ASSERT_EQUAL(query_int("SELECT seg_bytes FROM blocks WHERE block_id = 2"), QK_SEG_BYTES);
    CU_ASSERT_EQUAL(count_segments(2), 3);
    /* a key over four old segments [32, 32 + K): the bytes, then zeroed by the commit */
    qk_key_ref ref;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(carve("k1", QK_SIDE_LOW, 1, K, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.block_id, 1);
    CU_ASSERT_EQUAL(memcmp(mat, b + QK_BLOCK_VKEY_LEN, K), 0);
    CU_ASSERT_EQUAL(qk_store_commit(S, "k1", false, &err), 0);
    CU_ASSERT_EQUAL(count_segments(1), L / V1 - 2); /* 1 and 2 dropped, 0 and 3 resealed */
    size_t plen = 0;
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 0, plain, &plen), 0);
    CU_ASSERT_EQUAL(plen, V1);
    CU_ASSERT_TRUE(range_is(plain, b, 0, QK_BLOCK_VKEY_LEN, false));
    CU_ASSERT_TRUE(range_is(plain, b, QK_BLOCK_VKEY_LEN, V1, true));
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 3, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + 3 * V1, 0, 8, true));
    CU_ASSERT_TRUE(range_is(plain, b + 3 * V1, 8, V1, false));
    /* the next key comes from old segment 3 and 4 */
    CU_ASSERT_EQUAL_FATAL(carve("k2", QK_SIDE_LOW, 1, V1, &ref, mat), 0);
    CU_ASSERT_EQUAL(ref.offset, QK_BLOCK_VKEY_LEN + K);
    CU_ASSERT_EQUAL(memcmp(mat, b + ref.offset, V1), 0);
    /* a segment size the store never wrote (read at the next open: a running store remembers
     * the sizes it read, since a block's size never changes) */
    CU_ASSERT_EQUAL(query_int("UPDATE blocks SET seg_bytes = 2048 WHERE block_id = 1"), 0);
    CU_ASSERT_EQUAL(carve("k3", QK_SIDE_LOW, 1, 16, &ref, mat), 0); /* the size it read */
    qk_store_close(S);
    S = sf_open(D.path, 1);
    CU_ASSERT_FATAL(S != NULL);
    CU_ASSERT_EQUAL(carve("k4", QK_SIDE_LOW, 1, 16, &ref, mat), QK_ESTORAGE);
    sodium_memzero(b, 2 * L);
    sodium_memzero(mat, L);
    free(b);
    free(mat);
    free(plain);
    done();
}

/* Overwrite the ciphertext of segment idx of a block with zeros (a separate connection). */
static int corrupt_segment(uint64_t block_id, uint32_t idx)
{
    sqlite3 *db = NULL;
    int rc = -1;
    char sql[160];
    snprintf(sql, sizeof sql,
             "UPDATE segments SET ct = CAST(zeroblob(length(ct)) AS BLOB) WHERE block_id = %llu"
             " AND idx = %u",
             (unsigned long long)block_id, idx);
    if (sqlite3_open(D.path, &db) == SQLITE_OK &&
        sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK && sqlite3_changes(db) == 1)
        rc = 0;
    sqlite3_close(db);
    return rc;
}

/* After zeroing [off, 3 segments + off) of block 1 (bytes b): segment 0 kept before off and
 * zero from it, segment 3 zero before off and kept from it. */
static void ends_zeroed(const uint8_t *b, uint8_t *plain, size_t off)
{
    enum { SB = QK_SEG_BYTES };
    size_t plen = 0;
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 0, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b, 0, off, false));
    CU_ASSERT_TRUE(range_is(plain, b, off, SB, true));
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 3, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + 3 * SB, 0, off, true));
    CU_ASSERT_TRUE(range_is(plain, b + 3 * SB, off, SB, false));
}

/* The start of a range test: a fresh store holding block 1 of l random bytes, none of them
 * zero (a zero byte can only be a wipe), their copy in *b, an out buffer of l bytes and one
 * segment's plaintext buffer (range_test_end frees them). */
static void range_test_begin(size_t l, uint8_t **b, uint8_t **out, uint8_t **plain)
{
    fresh();
    *b = malloc(l);
    *out = malloc(l);
    *plain = malloc(QK_SEG_BYTES);
    CU_ASSERT_FATAL(*b && *out && *plain);
    randombytes_buf(*b, l);
    for (size_t i = 0; i < l; i++)
        (*b)[i] |= 1;
    CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 1, *b, l) == 0);
}

/* The end of a range test: its three buffers wiped and freed (block bytes b and out of l
 * bytes, one segment's plaintext), the store closed and removed. */
static void range_test_end(uint8_t *b, uint8_t *out, uint8_t *plain, size_t l)
{
    sodium_memzero(out, l);
    sodium_memzero(plain, QK_SEG_BYTES);
    sodium_memzero(b, l);
    free(out);
    free(b);
    free(plain);
    done();
}

/* Zeroing a range that covers whole segments: the segments strictly inside it are deleted
 * without being opened (a corrupted one is no obstacle), only the two end segments are
 * decrypted, zeroed in the range and resealed; bytes outside the range stay, and a read that
 * crosses the deleted segments finds the material gone. */
static void test_range_zero_whole_segments(void)
{
    fresh();
    enum { SB = QK_SEG_BYTES, L = 5 * SB, OFF = SB / 2, LEN = 3 * SB };
    uint8_t *b = malloc(L);
    uint8_t *plain = malloc(SB);
    CU_ASSERT_FATAL(b && plain);
    randombytes_buf(b, L);
    for (size_t i = 0; i < L; i++)
        b[i] |= 1; /* a zero byte can only be a wipe */
    CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 1, b, L) == 0);
    CU_ASSERT_EQUAL(count_segments(1), 5);
    CU_ASSERT_EQUAL_FATAL(corrupt_segment(1, 2), 0); /* interior: must not be opened */
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    int rc = qs_range_zero(S, LINK, 1, OFF, LEN, &err);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(count_segments(1), 3); /* 1 and 2 deleted; 0, 3 and 4 kept */
    size_t plen = 0;
    CU_ASSERT_EQUAL(read_segment(1, 1, plain, &plen), -1);
    CU_ASSERT_EQUAL(read_segment(1, 2, plain, &plen), -1);
    ends_zeroed(b, plain, OFF);
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 4, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + 4 * SB, 0, SB, false));
    /* reads: across the hole the material is gone; the rest is read whole */
    uint8_t *out = malloc(L);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    rc = qs_range_read(S, LINK, 1, 0, 2 * SB, out, &err); /* segment 1 absent, none after */
    CU_ASSERT_EQUAL(rc, QK_ENOTFOUND);
    rc = qs_range_read(S, LINK, 1, 0, L, out, &err); /* segment 3 follows segment 0 */
    CU_ASSERT_EQUAL(rc, QK_ENOTFOUND);
    rc = qs_range_read(S, LINK, 1, OFF + LEN, 2 * SB - OFF, out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(out, b + OFF + LEN, 2 * SB - OFF), 0);
    CU_ASSERT_EQUAL(qs_end(S, 0, false, &err), 0);
    range_test_end(b, out, plain, L);
}

/* Taking a range (qs_range_take: read and zero at once) hands out exactly the bytes a read
 * would, from within a segment and across whole segments, and leaves the store as a zero of
 * that range does; a range the store no longer holds whole (used already, or past the block's
 * end) fails with out wiped and takes nothing. */
static void test_range_take(void)
{
    enum { SB = QK_SEG_BYTES, L = 5 * SB + SB / 2, OFF = SB / 2, LEN = 3 * SB };
    uint8_t *b, *out, *plain;
    range_test_begin(L, &b, &out, &plain);
    CU_ASSERT_EQUAL(count_segments(1), 6);
    qk_err err = {0, ""};
    /* inside one segment (the last one, shorter): 100 bytes */
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    int rc = qs_range_take(S, LINK, 1, 5 * SB + 10, 100, out, &err);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 5 * SB + 10, 100), 0);
    size_t plen = 0;
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 5, plain, &plen), 0);
    CU_ASSERT_EQUAL(plen, SB / 2);
    CU_ASSERT_TRUE(range_is(plain, b + 5 * SB, 0, 10, false));
    CU_ASSERT_TRUE(range_is(plain, b + 5 * SB, 10, 110, true));
    CU_ASSERT_TRUE(range_is(plain, b + 5 * SB, 110, SB / 2, false));
    /* across whole segments: two end segments resealed, the two between deleted */
    memset(out, 0, L);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    rc = qs_range_take(S, LINK, 1, OFF, LEN, out, &err);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(out, b + OFF, LEN), 0);
    CU_ASSERT_EQUAL(count_segments(1), 4); /* 1 and 2 deleted */
    ends_zeroed(b, plain, OFF);
    /* a segment used up (deleted), past the block's end: refused, out wiped, nothing taken
     * (which bytes of a live segment are used is the callers' record: qs_range_recorded) */
    const struct {
        uint32_t off, len;
    } bad[] = {{SB, 16}, {2 * SB - 8, 16}, {4 * SB, 2 * SB}, {5 * SB + SB / 2 - 4, 8}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(out, 0xee, L);
        CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
        rc = qs_range_take(S, LINK, 1, bad[i].off, bad[i].len, out, &err);
        CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), rc);
        CU_ASSERT(rc != 0);
        uint8_t acc = 0;
        for (uint32_t j = 0; j < bad[i].len; j++)
            acc |= out[j];
        CU_ASSERT_EQUAL(acc, 0);
    }
    CU_ASSERT_EQUAL(count_segments(1), 4);
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 4, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + 4 * SB, 0, SB, false));
    range_test_end(b, out, plain, L);
}

/* Takes in one transaction: the bytes out at once, the zeroing of every take inside one segment
 * at the COMMIT with one rewrite per segment (two changes where there were as many as takes),
 * a segment whose every byte was taken deleted; a range taken twice in the transaction refused; a
 * call undone inside a group transaction takes its deferred zeroing with it; more takes than the
 * queue holds zeroed at once, all zero after the COMMIT; a take across segments zeroed at once. */
static void test_take_zeroing_deferred(void)
{
    enum { SB = QK_SEG_BYTES, L = 3 * SB, K = 32, MANY = QS_ZQ_MAX + 88 };
    uint8_t *b, *out, *plain;
    range_test_begin(L, &b, &out, &plain);
    qk_err err = {0, ""};
    /* ten keys of segment 0, the two halves of segment 1: nothing is written before the
     * COMMIT, which rewrites one and deletes the other */
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    sqlite3_int64 before = sqlite3_total_changes64(S->db);
    int rc = 0;
    for (uint32_t i = 0; i < 10 && !rc; i++)
        rc = qs_range_take(S, LINK, 1, 64 + i * K, K, out + i * K, &err);
    if (!rc)
        rc = qs_range_take(S, LINK, 1, SB, SB / 2, out + 10 * K, &err);
    if (!rc)
        rc = qs_range_take(S, LINK, 1, SB + SB / 2, SB / 2, out + 10 * K + SB / 2, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(sqlite3_total_changes64(S->db) - before, 0);
    /* the same bytes again, in the same transaction: refused */
    uint8_t again[K];
    CU_ASSERT_EQUAL(qs_range_take(S, LINK, 1, 64 + 3 * K + 8, K, again, &err), QK_ESTORAGE);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(sqlite3_total_changes64(S->db) - before, 2); /* a rewrite, a delete */
    CU_ASSERT_EQUAL(memcmp(out, b + 64, 10 * K), 0);
    CU_ASSERT_EQUAL(memcmp(out + 10 * K, b + SB, SB), 0);
    CU_ASSERT_EQUAL(count_segments(1), 2);
    size_t plen = 0;
    zeroed_only(1, 0, b, plain, 64, 64 + 10 * K);
    /* inline calls sharing a group transaction, the middle one undone: its take is not zeroed
     * by the group's COMMIT (made here by a call that is not inline), the others' are */
    qk_inline ic;
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    for (uint32_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
        CU_ASSERT_EQUAL(qs_range_take(S, LINK, 1, 2 * SB + i * K, K, out, &err), 0);
        rc = i == 1 ? QK_EINVAL : 0;
        CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), rc);
    }
    qk_inline_end();
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    CU_ASSERT_EQUAL(qs_end(S, 0, true, &err), 0);
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 2, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, 0, K, true));
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, K, 2 * K, false));
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, 2 * K, 3 * K, true));
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, 3 * K, SB, false));
    /* more one-byte takes than the queue holds: the rest zeroed at once, all zero after */
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    rc = 0;
    for (uint32_t i = 0; i < MANY && !rc; i++)
        rc = qs_range_take(S, LINK, 1, 2 * SB + 3 * K + i, 1, out + i, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 2 * SB + 3 * K, MANY), 0);
    CU_ASSERT_EQUAL_FATAL(read_segment(1, 2, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, K, 2 * K, false));
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, 2 * K, 3 * K + MANY, true));
    CU_ASSERT_TRUE(range_is(plain, b + 2 * SB, 3 * K + MANY, SB, false));
    /* a take across two segments (a bulk request) zeroes its end segments at once */
    CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 2, b, L) == 0);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    before = sqlite3_total_changes64(S->db);
    CU_ASSERT_EQUAL(qs_range_take(S, LINK, 2, SB - K, 2 * K, out, &err), 0);
    CU_ASSERT_EQUAL(sqlite3_total_changes64(S->db) - before, 2);
    CU_ASSERT_EQUAL(qs_end(S, 0, true, &err), 0);
    CU_ASSERT_EQUAL(sqlite3_total_changes64(S->db) - before, 2);
    range_test_end(b, out, plain, L);
}

/* One take in its own call (and transaction, unless an inline group is open): the store's
 * answer, its bytes in out. */
static int take1(uint64_t block, uint32_t off, uint32_t len, uint8_t *out)
{
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    int rc = qs_range_take(S, LINK, block, off, len, out, &err);
    return qs_end(S, rc, rc == 0, &err);
}

/* The segments in memory (store_segcache.c) hand out what the rows hold and nothing else: a
 * take served from a slot filled by an earlier transaction; a call undone inside a group, a
 * call whose transaction SQLite rolled back, a group lost at its COMMIT, a burn of part of a
 * held segment, a block wiped
 * and segments deleted whole while held: the next take sees the rows, not the slot; a slot
 * evicted while its segment has zeroings pending, and filled again, counts and zeroes them. */
static void test_take_segment_cache(void)
{
    enum { SB = QK_SEG_BYTES, L = 6 * SB, K = 32 };
    uint8_t *b, *out, *plain;
    range_test_begin(L, &b, &out, &plain);
    qk_err err = {0, ""};
    size_t plen = 0;
    /* two transactions, the second served from the slot the first filled */
    CU_ASSERT_EQUAL(take1(1, 64, K, out), 0);
    CU_ASSERT_EQUAL(take1(1, 64 + K, K, out + K), 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 64, 2 * K), 0);
    zeroed_only(1, 0, b, plain, 64, 64 + 2 * K);
    /* a call undone inside a group: the same bytes, taken again, are the block's */
    qk_inline ic;
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    CU_ASSERT_EQUAL(take1(1, 128, K, out), 0);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    CU_ASSERT_EQUAL(qs_range_take(S, LINK, 1, 160, K, out + K, &err), 0);
    CU_ASSERT_EQUAL(qs_end(S, QK_EINVAL, false, &err), QK_EINVAL);
    memset(out + K, 0, K);
    CU_ASSERT_EQUAL(take1(1, 160, K, out + K), 0);
    qk_inline_end();
    CU_ASSERT_EQUAL(take1(1, 192, K, out + 2 * K), 0); /* not inline: commits the group */
    CU_ASSERT_EQUAL(memcmp(out, b + 128, 3 * K), 0);
    /* a call whose transaction SQLite rolls back after its take */
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(S->db,
                                       "CREATE TEMP TABLE boom(x);"
                                       "CREATE TEMP TRIGGER boom_t BEFORE INSERT ON boom"
                                       " BEGIN SELECT RAISE(ROLLBACK, 'lost'); END;",
                                       NULL, NULL, NULL),
                          SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    CU_ASSERT_EQUAL(qs_range_take(S, LINK, 1, 224, K, out, &err), 0);
    CU_ASSERT_NOT_EQUAL(sqlite3_exec(S->db, "INSERT INTO boom VALUES(1)", NULL, NULL, NULL),
                        SQLITE_OK);
    CU_ASSERT_NOT_EQUAL(qs_end(S, 0, true, &err), 0);
    memset(out, 0, K);
    CU_ASSERT_EQUAL(take1(1, 224, K, out), 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 224, K), 0);
    /* a group lost at its COMMIT (its zeroing cannot be written) after a take */
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(S->db,
                                       "CREATE TEMP TRIGGER seg_t BEFORE UPDATE ON segments"
                                       " BEGIN SELECT RAISE(ABORT, 'no'); END;",
                                       NULL, NULL, NULL),
                          SQLITE_OK);
    qk_inline_begin(&ic, 0);
    ic.group_commit = true;
    CU_ASSERT_EQUAL(take1(1, 3 * SB + 64, K, out), 0);
    qk_inline_end();
    CU_ASSERT_EQUAL(take1(1, 3 * SB + 64 + K, K, out), QK_ESTORAGE);
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(S->db, "DROP TRIGGER seg_t", NULL, NULL, NULL), SQLITE_OK);
    memset(out, 0, K);
    CU_ASSERT_EQUAL(take1(1, 3 * SB + 64, K, out), 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 3 * SB + 64, K), 0);
    /* a burn of part of a held segment between two takes: all three ranges zero after */
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    int rc = qs_range_take(S, LINK, 1, 256, K, out, &err);
    if (!rc)
        rc = qs_range_zero(S, LINK, 1, 256 + K, K, &err);
    if (!rc)
        rc = qs_range_take(S, LINK, 1, 256 + 2 * K, K, out + K, &err);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 256, K), 0);
    CU_ASSERT_EQUAL(memcmp(out + K, b + 256 + 2 * K, K), 0);
    zeroed_only(1, 0, b, plain, 64, 256 + 3 * K);
    /* segments deleted whole by a burn across them, one of them held: gone */
    CU_ASSERT_EQUAL(take1(1, 2 * SB + 64, K, out), 0);
    CU_ASSERT_EQUAL(memcmp(out, b + 2 * SB + 64, K), 0);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    rc = qs_range_zero(S, LINK, 1, SB + 8, 2 * SB, &err); /* segment 2 lies inside */
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(take1(1, 2 * SB + 64 + K, K, out), QK_ENOTFOUND);
    /* a wiped block, one of its segments held: gone */
    CU_ASSERT_EQUAL(take1(1, 4 * SB + 64, K, out), 0);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    rc = qs_block_wipe(S, LINK, 1, &err);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(take1(1, 4 * SB + 64 + K, K, out), QK_ENOTFOUND);
    CU_ASSERT_EQUAL(count_segments(1), 0);
    /* a fill that fails after decrypting (a pending zeroing outside the segment's plaintext,
     * put in the queue by hand): the slot it claimed is wiped, like every other one here */
    CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 3, b, SB + SB / 2) == 0);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    qs_zq_ent *z = &S->zq[S->zq_n++];
    *z = (qs_zq_ent){
        .block_id = 3, .idx = 1, .a = SB + SB / 2 - 8, .b = SB + SB / 2 + 8, .pending = true};
    snprintf(z->link, sizeof z->link, "%s", LINK);
    CU_ASSERT_EQUAL(qs_range_take(S, LINK, 3, SB + 64, K, out, &err), QK_ESTORAGE);
    CU_ASSERT_EQUAL(qs_end(S, QK_ESTORAGE, false, &err), QK_ESTORAGE);
    uint8_t held = 0;
    for (size_t i = 0; i < (size_t)QS_SEGC_SLOTS * QK_SEG_BYTES; i++)
        held |= S->segc_pt[i];
    CU_ASSERT_EQUAL(held, 0);
    /* eviction: segment 0 used up in two halves and segment 1 in two keys, with takes from
     * more segments than there are slots in between, in one transaction */
    CU_ASSERT_FATAL(sf_put_confirmed(S, LINK, 2, b, L) == 0);
    CU_ASSERT_EQUAL_FATAL(qs_begin(S, &err), 0);
    rc = qs_range_take(S, LINK, 2, 0, SB / 2, out, &err);
    if (!rc)
        rc = qs_range_take(S, LINK, 2, SB, K, out + SB, &err);
    for (uint32_t i = 0; i < QS_SEGC_SLOTS && !rc; i++)
        rc = qs_range_take(S, LINK, 2, (2 + i) * SB, K, out + 2 * SB, &err);
    if (!rc)
        rc = qs_range_take(S, LINK, 2, SB / 2, SB / 2, out + SB / 2, &err);
    if (!rc)
        rc = qs_range_take(S, LINK, 2, SB + K, K, out + SB + K, &err);
    CU_ASSERT_EQUAL(qs_end(S, rc, rc == 0, &err), 0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(out, b, SB), 0);
    CU_ASSERT_EQUAL(memcmp(out + SB, b + SB, 2 * K), 0);
    CU_ASSERT_EQUAL(count_segments(2), 5); /* segment 0 used up: deleted */
    CU_ASSERT_EQUAL_FATAL(read_segment(2, 1, plain, &plen), 0);
    CU_ASSERT_TRUE(range_is(plain, b + SB, 0, 2 * K, true));
    CU_ASSERT_TRUE(range_is(plain, b + SB, 2 * K, SB, false));
    range_test_end(b, out, plain, L);
}

enum { TH = 4, ROUNDS = 25, TK = 2, TL = 16 };
static qk_key_ref th_refs[TH][ROUNDS * TK];
static int th_fail[TH];

static void *th_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < ROUNDS; i++) {
        char req[32];
        snprintf(req, sizeof req, "t%d-%d", id, i);
        const char *sl[2];
        qk_reservation r = sf_resv(req, LINK, "saeA", sl, "saeB", NULL, FAR_FUTURE);
        uint8_t mat[TK * TL];
        qk_err err = {0, ""};
        if (qk_store_carve(S, &r, id % 2 ? QK_SIDE_HIGH : QK_SIDE_LOW, TK, TL, &th_refs[id][i * TK],
                           mat, &err) != 0 ||
            qk_store_commit(S, req, false, &err) != 0)
            th_fail[id]++;
    }
    return NULL;
}

static int cmp_ref(const void *a, const void *b)
{
    const qk_key_ref *x = a, *y = b;
    if (x->block_id != y->block_id)
        return x->block_id < y->block_id ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void test_threads_never_share_ranges(void)
{
    fresh();
    enum { L = 32 + 1000 };
    static uint8_t b[4 * L];
    put_blocks(b, 4, L, 1);
    pthread_t th[TH];
    for (int i = 0; i < TH; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, th_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < TH; i++)
        CU_ASSERT(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < TH; i++)
        CU_ASSERT_EQUAL(th_fail[i], 0);
    qk_key_ref *all = &th_refs[0][0];
    size_t n = TH * ROUNDS * TK;
    qsort(all, n, sizeof *all, cmp_ref);
    for (size_t i = 1; i < n; i++)
        if (all[i].block_id == all[i - 1].block_id)
            CU_ASSERT_FATAL(all[i - 1].offset + all[i - 1].length <= all[i].offset);
    qk_pool_status ps;
    qk_err err = {0, ""};
    CU_ASSERT_EQUAL(qk_store_pool_status(S, LINK, &ps, &err), 0);
    CU_ASSERT_EQUAL(ps.keys_delivered, n);
    CU_ASSERT_EQUAL(ps.bytes_available, 4 * 1000 - n * TL);
    done();
}

static void test_bad_input(void)
{
    fresh();
    char longid[QK_STORE_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    qk_err err = {0, ""};
    qk_put_result res;
    uint8_t b[64] = {0};
    CU_ASSERT_EQUAL(qk_store_block_put(S, longid, 1, b, sizeof b, &res, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_block_put(S, "", 1, b, sizeof b, &res, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_block_put(S, "a\nb", 1, b, sizeof b, &res, &err), QK_EINVAL);
    qk_key_ref ref;
    uint8_t mat[8];
    CU_ASSERT_EQUAL(carve(longid, QK_SIDE_LOW, 1, 8, &ref, mat), QK_EINVAL);
    CU_ASSERT_EQUAL(carve("r", QK_SIDE_LOW, 4097, 8, &ref, mat), QK_EINVAL);
    CU_ASSERT_EQUAL(carve("r", QK_SIDE_LOW, 0, 8, &ref, mat), QK_EINVAL);
    CU_ASSERT_EQUAL(carve("r", QK_SIDE_LOW, 1, 0, &ref, mat), QK_EINVAL);
    const char *sl[2] = {"dup", "dup"};
    qk_reservation r = {"r", LINK, "m", sl, 2, FAR_FUTURE};
    CU_ASSERT_EQUAL(qk_store_carve(S, &r, QK_SIDE_LOW, 1, 8, &ref, mat, &err), QK_EINVAL);
    r.nslaves = 0;
    CU_ASSERT_EQUAL(qk_store_carve(S, &r, QK_SIDE_LOW, 1, 8, &ref, mat, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_audit(S, "", NULL, NULL, NULL, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_audit(S, "ok", NULL, NULL, longid, NULL, &err), QK_EINVAL);
    CU_ASSERT_EQUAL(qk_store_audit(S, "ok", LINK, "r", "id", "detail", &err), 0);
    const char *ids[1] = {longid};
    qk_fetched_key out[1];
    CU_ASSERT_EQUAL(qk_store_fetch(S, "c", NULL, ids, 1, out, mat, sizeof mat, &err), QK_ENOTFOUND);
    done();
}

int suite_store(void)
{
    CU_pSuite s = CU_add_suite("store", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        void (*fn)(void);
    } t[] = {
        {"schema version and reopen", test_schema_and_reopen},
        {"wrong master key refused", test_wrong_master_key},
        {"one process per store: exclusive unless shared", test_one_process_per_store},
        {"carve low from oldest, high from newest", test_carve_low_high},
        {"low and high meet in the last block", test_carve_meet_in_last_block},
        {"ENOKEY records nothing", test_enokey_records_nothing},
        {"keys never span blocks", test_keys_never_span_blocks},
        {"verification key never carved", test_vkey_never_carved},
        {"pending blocks are not carved", test_pending_blocks_not_carved},
        {"block put duplicate and conflict", test_block_put_duplicate_conflict},
        {"pool cap refuses, counts, frees with use", test_pool_cap},
        {"out-of-order block ids", test_out_of_order_blocks},
        {"encryption at rest (db and wal)", test_encryption_at_rest},
        {"fetch once", test_fetch_once},
        {"multicast fetch per slave", test_fetch_multicast},
        {"fetch auth and all-or-nothing", test_fetch_auth_and_all_or_nothing},
        {"expiry burns", test_expiry},
        {"burn, tombstones, pending list", test_burn_and_pending},
        {"burning a block burns its keys", test_block_burn_burns_keys},
        {"zeroization deletes used segments", test_zeroization_deletes_segments},
        {"zeroing a range drops whole segments unopened", test_range_zero_whole_segments},
        {"taking a range: the bytes of a read, the store of a zero", test_range_take},
        {"takes: zeroed at the COMMIT, once per segment", test_take_zeroing_deferred},
        {"takes from segments in memory see the rows", test_take_segment_cache},
        {"segment sizes: 4 KiB new, 1 KiB kept (v7)", test_segment_sizes_v7},
        {"delivery wipes its range inside a partly used segment", test_partial_segment_wipe},
        {"threads never share ranges", test_threads_never_share_ranges},
        {"bad input", test_bad_input},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!CU_add_test(s, t[i].name, t[i].fn))
            return -1;
    return 0;
}
