/* store_fixture.c - helpers shared by the key-store unit suites. */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sf_dir_make(sf_dir *d, const char *name)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/qk-%s-XXXXXX", name);
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->path, sizeof d->path, "%s/keys.db", d->dir);
    return 0;
}

void sf_dir_remove(sf_dir *d)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", d->path, suffix[i]);
        (void)unlink(p);
    }
    (void)rmdir(d->dir);
}

void sf_master(uint8_t mk[QK_MASTER_KEY_LEN], uint8_t seed)
{
    for (size_t i = 0; i < QK_MASTER_KEY_LEN; i++)
        mk[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
}

qk_store *sf_open(const char *path, uint8_t seed)
{
    uint8_t mk[QK_MASTER_KEY_LEN];
    sf_master(mk, seed);
    qk_store *s = NULL;
    qk_err err = {0, ""};
    int rc = qk_store_open(path, mk, &s, &err);
    if (rc != 0)
        fprintf(stderr, "qk_store_open(%s): %s\n", path, err.msg);
    return rc == 0 ? s : NULL;
}

int sf_put_confirmed(qk_store *s, const char *link, uint64_t block_id, const uint8_t *bytes,
                     size_t len)
{
    qk_put_result res = QK_PUT_CONFLICT;
    qk_err err = {0, ""};
    int rc = qk_store_block_put(s, link, block_id, bytes, len, &res, &err);
    if (rc == 0 && res != QK_PUT_NEW)
        rc = QK_EEXIST;
    if (rc == 0)
        rc = qk_store_block_set_state(s, link, block_id, QK_BLOCK_CONFIRMED, &err);
    if (rc != 0)
        fprintf(stderr, "put block %llu: %s\n", (unsigned long long)block_id, err.msg);
    return rc;
}

qk_reservation sf_resv(const char *request_id, const char *link, const char *master,
                       const char **slaves, const char *slave1, const char *slave2,
                       uint64_t expires_at)
{
    slaves[0] = slave1;
    slaves[1] = slave2;
    qk_reservation r = {request_id, link, master, slaves, slave2 ? 2u : 1u, expires_at};
    return r;
}

uint8_t *sf_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
            *len = fread(buf, 1, (size_t)n, f);
        }
    }
    fclose(f);
    return buf;
}
