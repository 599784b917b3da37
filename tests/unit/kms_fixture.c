/* kms_fixture.c - a running qk_kms for unit suites (kms_fixture.h). */
#include "kms_fixture.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_master_key(const char *path)
{
    static const char hex[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, hex, sizeof hex - 1);
    return close(fd) == 0 && n == (ssize_t)(sizeof hex - 1) ? 0 : -1;
}

int kf_open(kf_kme *f, const char *const *saes)
{
    memset(f, 0, sizeof *f);
    if (sf_dir_make(&f->dir, "kms") != 0)
        return -1;
    snprintf(f->key_path, sizeof f->key_path, "%s/master.key", f->dir.dir);
    f->cfg = calloc(1, sizeof *f->cfg);
    if (!f->cfg || write_master_key(f->key_path) != 0) {
        fprintf(stderr, "kms fixture: cannot write %s\n", f->key_path);
        kf_close(f);
        return -1;
    }
    qk_kmed_config *c = f->cfg;
    snprintf(c->node_id, sizeof c->node_id, "%s", KF_NODE);
    snprintf(c->data_dir, sizeof c->data_dir, "%s/data", f->dir.dir);
    snprintf(c->master_key_file, sizeof c->master_key_file, "%s", f->key_path);
    c->default_size_bits = 256;
    c->min_size_bits = 64;
    c->max_size_bits = 1024;
    c->max_keys_per_request = 10;
    c->max_key_count = KF_MAX_COUNT;
    c->max_sae_id_count = 2;
    c->reservation_lifetime_s = 3600;
    c->local_block_bytes = 4096;
    for (size_t i = 0; saes && saes[i] && c->nsaes < QK_CFG_MAX_SAES; i++) {
        qk_sae_cfg *s = &c->saes[c->nsaes++];
        snprintf(s->id, sizeof s->id, "%s", saes[i]);
        snprintf(s->kme, sizeof s->kme, "%s", KF_NODE);
    }
    qk_err err = {0, ""};
    if (qk_kms_open(c, NULL, &f->kms, &err) != 0) {
        fprintf(stderr, "qk_kms_open: %s\n", err.msg);
        kf_close(f);
        return -1;
    }
    return 0;
}

void kf_close(kf_kme *f)
{
    qk_kms_close(f->kms);
    f->kms = NULL;
    free(f->cfg);
    f->cfg = NULL;
    if (!f->dir.dir[0])
        return;
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[200];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s/data/store.db%s", f->dir.dir, suffix[i]);
        (void)unlink(p);
    }
    snprintf(p, sizeof p, "%s/data", f->dir.dir);
    (void)rmdir(p);
    (void)unlink(f->key_path);
    sf_dir_remove(&f->dir);
    memset(&f->dir, 0, sizeof f->dir);
}
