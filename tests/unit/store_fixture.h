/* store_fixture.h - helpers shared by the key-store unit suites: temporary directories,
 * opening stores, putting confirmed blocks, and building reservations. */
#ifndef QK_STORE_FIXTURE_H
#define QK_STORE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct {
    char dir[64];
    char path[128];
} sf_dir;

/* mkdtemp under /tmp; 0 or -1. */
int sf_dir_make(sf_dir *d, const char *name);
/* Remove the database files and the directory. */
void sf_dir_remove(sf_dir *d);
/* Fixed test master keys (different from each other). */
void sf_master(uint8_t mk[QK_MASTER_KEY_LEN], uint8_t seed);
/* Open path under master key seed; NULL on failure (prints the error). sf_open opens it shared
 * (the suites read the file with connections of their own), sf_open_default with the default
 * lock, as qkd-kmed does (no other process reads it meanwhile). */
qk_store *sf_open(const char *path, uint8_t seed);
qk_store *sf_open_default(const char *path, uint8_t seed);
/* Open path under master key seed with these options (NULL: the defaults). */
qk_store *sf_open_opts(const char *path, uint8_t seed, const qk_store_opts *opts);
/* Put bytes as block_id of link and confirm it; 0 or the failing status. */
int sf_put_confirmed(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                     size_t len);
/* A reservation for one slave (or two when slave2 is non-NULL). */
qk_reservation sf_resv(const char *request_id, const char *link, const char *master,
                       const char **slaves, const char *slave1, const char *slave2,
                       uint64_t expires_at);
/* Read a whole file into a malloc'ed buffer (NULL if absent). */
uint8_t *sf_read_file(const char *path, size_t *len);

/* Recount the link's blocks and keys with COUNT(*) straight from the rows and compare them
 * with the pool_counts table, with qk_store_pool_status and (for slave) with
 * qk_store_count_reserved. 0 if all agree, -1 otherwise (prints what differs). */
int sf_counts_match(qk_store *s, const char *path, const char *link, const char *slave);
/* Turn a closed database (master key of seed) back into schema v6: blocks of QK_SEG_BYTES
 * segments are cut again into QK_SEG_BYTES_V1 segments (decrypted and resealed as the store
 * did before v7, used_bytes 0), then blocks.seg_bytes is dropped. The run counters' triggers
 * that v8 dropped are not put back (the migration to v8 drops them only if they exist, and
 * nothing writes runs between the downgrade and the next open). 0 or -1. */
int sf_downgrade_v6(const char *path, uint8_t seed);
/* Turn a closed database back into schema v5 (sf_downgrade_v6, then drop the v6 runs table
 * and its triggers; -1 if it holds a run). 0 or -1. */
int sf_downgrade_v5(const char *path, uint8_t seed);
/* Turn a closed database back into schema v4 (sf_downgrade_v5, then drop the v5 lease and
 * notice columns and their indexes), as the previous release left it. 0 or -1. */
int sf_downgrade_v4(const char *path, uint8_t seed);
/* Turn a closed database back into schema v3 (sf_downgrade_v4, then drop the v4 counters,
 * triggers and closed copies). 0 or -1. */
int sf_downgrade_v3(const char *path, uint8_t seed);
/* Sleep ms milliseconds; the CLOCK_MONOTONIC time in milliseconds. */
void sf_sleep_ms(int ms);
double sf_now_ms(void);

#endif
