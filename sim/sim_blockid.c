/* sim_blockid.c - per-link block IDs persisted in batches. */
#include "sim_blockid.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_util.h"

uint64_t qk_blockid_start(uint64_t persisted, uint64_t now_ms)
{
    uint64_t a = persisted + 1;
    return a > now_ms ? a : now_ms;
}

static int save(qk_blockids *b, qk_err *err)
{
    if (!b->path[0])
        return 0;
    char tmp[QK_SIM_PATH_MAX + 8];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", b->path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return qk_err_set(err, QK_EINVAL, "state file name too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return qk_err_set(err, QK_EIO, "%s: %s", tmp, strerror(errno));
    int bad = 0;
    for (size_t i = 0; i < b->n; i++)
        bad |= fprintf(f, "%s %" PRIu64 "\n", b->e[i].link, b->e[i].reserved) < 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return qk_err_set(err, QK_EIO, "%s: write failed", tmp);
    }
    if (rename(tmp, b->path) != 0) {
        int e = errno;
        unlink(tmp);
        return qk_err_set(err, QK_EIO, "%s: %s", b->path, strerror(e));
    }
    return 0;
}

/* Parse the state file into entries of the configured links (others are dropped at the next
 * save). */
static int load(qk_blockids *b, const qk_sim_config *cfg, qk_err *err)
{
    uint64_t now = (uint64_t)qk_now_s() * 1000u;
    for (size_t i = 0; i < cfg->nlinks; i++) {
        snprintf(b->e[i].link, sizeof b->e[i].link, "%s", cfg->links[i].id);
        b->e[i].next = 0;
    }
    b->n = cfg->nlinks;
    if (b->path[0]) {
        FILE *f = fopen(b->path, "r");
        if (!f && errno != ENOENT)
            return qk_err_set(err, QK_EIO, "%s: %s", b->path, strerror(errno));
        char line[256];
        unsigned lineno = 0;
        while (f && fgets(line, sizeof line, f)) {
            lineno++;
            char id[QK_SIM_ID_MAX + 1];
            uint64_t v;
            if (lineno > 4096 || sscanf(line, "%65s %" SCNu64, id, &v) != 2 || v > QK_BLOCKID_MAX) {
                fclose(f);
                return qk_err_set(err, QK_EINVAL, "%s:%u: expected \"LINK_ID LAST_ID\"", b->path,
                                  lineno);
            }
            for (size_t i = 0; i < b->n; i++)
                if (strcmp(b->e[i].link, id) == 0 && v > b->e[i].next)
                    b->e[i].next = v;
        }
        if (f)
            fclose(f);
    }
    for (size_t i = 0; i < b->n; i++) {
        b->e[i].next = qk_blockid_start(b->e[i].next, now);
        b->e[i].reserved = b->e[i].next - 1;
    }
    return 0;
}

int qk_blockids_open(qk_blockids *b, const char *path, const qk_sim_config *cfg, qk_err *err)
{
    memset(b, 0, sizeof *b);
    if (path && snprintf(b->path, sizeof b->path, "%s", path) >= (int)sizeof b->path)
        return qk_err_set(err, QK_EINVAL, "state file name too long");
    int rc = load(b, cfg, err);
    if (rc != 0)
        return rc;
    if (pthread_mutex_init(&b->mu, NULL) != 0)
        return qk_err_set(err, QK_ENOMEM, "mutex");
    return 0;
}

void qk_blockids_close(qk_blockids *b)
{
    pthread_mutex_destroy(&b->mu);
}

uint64_t qk_blockids_next(qk_blockids *b, const char *link, qk_err *err)
{
    uint64_t id = 0;
    if (pthread_mutex_lock(&b->mu) != 0) {
        qk_err_set(err, QK_EIO, "mutex");
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        qk_blockid_entry *e = &b->e[i];
        if (strcmp(e->link, link) != 0)
            continue;
        if (e->next > QK_BLOCKID_MAX) {
            qk_err_set(err, QK_ELIMIT, "block ID space exhausted");
            break;
        }
        if (e->next > e->reserved) {
            uint64_t old = e->reserved;
            e->reserved = e->next + QK_BLOCKID_BATCH - 1;
            if (e->reserved > QK_BLOCKID_MAX)
                e->reserved = QK_BLOCKID_MAX;
            if (save(b, err) != 0) {
                e->reserved = old;
                break;
            }
        }
        id = e->next++;
        break;
    }
    if (id == 0 && !err->code)
        qk_err_set(err, QK_ENOTFOUND, "unknown link %s", link);
    pthread_mutex_unlock(&b->mu);
    return id;
}
