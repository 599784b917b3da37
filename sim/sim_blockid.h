/* sim_blockid.h - block IDs that increase per link and are never reused after a restart: a
 * link starts at max(last reserved ID + 1, wall-clock milliseconds) and reserves IDs in
 * batches in a state file (lines "LINK_ID LAST_RESERVED_ID", written atomically), so a crash
 * skips at most one batch and never repeats an ID. Thread-safe. */
#ifndef QK_SIM_BLOCKID_H
#define QK_SIM_BLOCKID_H

#include <pthread.h>
#include <stdint.h>

#include "qk_err.h"
#include "sim_config.h"

#define QK_BLOCKID_BATCH 1024u
#define QK_BLOCKID_MAX   ((UINT64_C(1) << 53) - 1) /* the KMEs carry IDs as JSON numbers */

typedef struct {
    char link[QK_SIM_ID_MAX];
    uint64_t next;     /* the next ID to hand out */
    uint64_t reserved; /* IDs up to this one are recorded in the state file */
} qk_blockid_entry;

typedef struct {
    pthread_mutex_t mu;
    char path[QK_SIM_PATH_MAX]; /* "" = no state file */
    qk_blockid_entry e[QK_SIM_MAX_LINKS];
    size_t n;
} qk_blockids;

/* The first ID of a link given what the state file reserved (0 = nothing) and the time. */
uint64_t qk_blockid_start(uint64_t persisted, uint64_t now_ms);

/* Read the state file (a missing file is fine) and register the links. */
int qk_blockids_open(qk_blockids *b, const char *path, const qk_sim_config *cfg, qk_err *err);
void qk_blockids_close(qk_blockids *b);
/* Next ID of a link; 0 on error (state file not writable, ID space exhausted; err set). */
uint64_t qk_blockids_next(qk_blockids *b, const char *link, qk_err *err);

#endif
