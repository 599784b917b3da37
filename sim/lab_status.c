/* lab_status.c - `qkd-lab down` and the pid files it reads (`qkd-lab status` is lab_show.c). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab_cmds.h"
#include "lab_proc.h"

#define STOP_TIMEOUT_MS 15000u

int qk_lab_abs_dir(const char *dir, char *out, size_t cap, qk_err *err)
{
    char buf[PATH_MAX];
    if (!realpath(dir, buf))
        return qk_err_set(err, QK_EIO, "%s: %s", dir, strerror(errno));
    if (strlen(buf) + 1 > cap || strlen(buf) > QK_LAB_PATH_MAX - 128)
        return qk_err_set(err, QK_EINVAL, "%s: path too long", dir);
    memcpy(out, buf, strlen(buf) + 1);
    return 0;
}

static pid_t read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int v = 0;
    int n = fscanf(f, "%d", &v);
    fclose(f);
    return (n == 1 && v > 1) ? (pid_t)v : 0;
}

size_t qk_lab_read_pids(const char *dir, pid_t *pids, size_t cap)
{
    size_t n = 0;
    char p[QK_LAB_PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/sim/sim.pid", dir);
    pid_t s = read_pid_file(p);
    if (s > 0 && n < cap)
        pids[n++] = s;
    snprintf(p, sizeof p, "%s/dashboard/dash.pid", dir);
    s = read_pid_file(p);
    if (s > 0 && n < cap)
        pids[n++] = s;
    DIR *d = opendir(dir);
    if (!d)
        return n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        if (e->d_name[0] == '.' || strlen(e->d_name) > 255)
            continue;
        snprintf(p, sizeof p, "%s/%s/kmed.pid", dir, e->d_name);
        pid_t k = read_pid_file(p);
        if (k > 0)
            pids[n++] = k;
    }
    closedir(d);
    return n;
}

static int dir_option(int argc, char **argv, const char *cmd, char *dir, size_t cap)
{
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *d = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'd') {
            d = optarg;
        } else {
            fprintf(ch == 'h' ? stdout : stderr,
                    "usage: qkd-lab %s --dir DIR\n"
                    "Stop every process of the lab in DIR: SIGTERM, wait up to 15 s,\n"
                    "then SIGKILL. Exit 0 when none is left.\n",
                    cmd);
            return ch == 'h' ? 0 : 2;
        }
    }
    if (!d || optind != argc) {
        fprintf(stderr, "usage: qkd-lab %s --dir DIR\n", cmd);
        return 2;
    }
    qk_err err;
    qk_err_clear(&err);
    if (qk_lab_abs_dir(d, dir, cap, &err) != 0) {
        fprintf(stderr, "qkd-lab %s: %s\n", cmd, err.msg);
        return 1;
    }
    return -1;
}

int qk_lab_cmd_down(int argc, char **argv)
{
    char dir[QK_LAB_PATH_MAX];
    int rc = dir_option(argc, argv, "down", dir, sizeof dir);
    if (rc >= 0)
        return rc;
    pid_t pids[QK_LAB_MAX_PIDS];
    size_t n = qk_lab_read_pids(dir, pids, QK_LAB_MAX_PIDS);
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        live += qk_lab_pid_alive(pids[i], dir);
    printf("[qkd-lab] stopping %zu process(es) in %s\n", live, dir);
    fflush(stdout);
    int left = qk_lab_stop(pids, n, dir, STOP_TIMEOUT_MS);
    if (left > 0) {
        fprintf(stderr, "qkd-lab down: %d process(es) still running\n", left);
        return 1;
    }
    char p[QK_LAB_PATH_MAX + 300];
    snprintf(p, sizeof p, "%s/sim/sim.pid", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/dashboard/dash.pid", dir);
    unlink(p);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) > 255)
            continue;
        snprintf(p, sizeof p, "%s/%s/kmed.pid", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    printf("[qkd-lab] stopped; the files stay in %s\n", dir);
    return 0;
}
