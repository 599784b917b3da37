/* lab_status.c - `qkd-lab status` and `qkd-lab down`, from DIR's pid files and lab.json. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "json_util.h"
#include "lab_cmds.h"
#include "lab_proc.h"

#define STOP_TIMEOUT_MS 15000u
#define MANIFEST_MAX    (1u << 20)

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
            FILE *f = ch == 'h' ? stdout : stderr;
            if (strcmp(cmd, "down") == 0)
                fprintf(f, "usage: qkd-lab down --dir DIR\n"
                           "Stop every process of the lab in DIR: SIGTERM, wait up to 15 s,\n"
                           "then SIGKILL. Exit 0 when none is left.\n");
            else
                fprintf(f, "usage: qkd-lab status --dir DIR\n"
                           "Show the lab's processes, each KME's pools and each link's state.\n"
                           "Exit 0 when every process runs, 1 otherwise.\n");
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

static cJSON *load_manifest(const char *dir)
{
    char p[QK_LAB_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/lab.json", dir);
    FILE *f = fopen(p, "r");
    if (!f) {
        fprintf(stderr, "qkd-lab status: %s: %s\n", p, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MANIFEST_MAX);
    size_t n = buf ? fread(buf, 1, MANIFEST_MAX, f) : 0;
    fclose(f);
    qk_err err;
    qk_err_clear(&err);
    cJSON *j = buf ? qk_json_parse(buf, n, MANIFEST_MAX - 1, &err) : NULL;
    if (buf) {
        memset(buf, 0, n); /* it holds the SKIP PSKs */
        free(buf);
    }
    if (!j)
        fprintf(stderr, "qkd-lab status: %s: %s\n", p, err.msg[0] ? err.msg : "unreadable");
    return j;
}

static void print_kme(const cJSON *kme, const cJSON *links, const char *dir, int *down)
{
    const char *id = qk_json_str_or(kme, "id", NULL),
               *admin = qk_json_str_or(kme, "admin_url", NULL);
    pid_t pid = (pid_t)qk_json_num_or(kme, "pid", 0);
    bool alive = qk_lab_pid_alive(pid, dir);
    *down += !alive;
    printf("%-10s pid %-7d %-8s", id ? id : "?", (int)pid, alive ? "running" : "STOPPED");
    char *metrics = NULL;
    char url[300];
    qk_err err;
    qk_err_clear(&err);
    if (alive && admin && snprintf(url, sizeof url, "%s/metrics", admin) < (int)sizeof url)
        (void)qk_lab_http_get(url, &metrics, &err);
    const cJSON *l;
    cJSON_ArrayForEach(l, links)
    {
        const char *lid = qk_json_str_or(l, "id", NULL);
        const cJSON *ends = cJSON_GetObjectItemCaseSensitive(l, "kmes"), *e;
        bool mine = false;
        cJSON_ArrayForEach(e, ends) mine |= cJSON_IsString(e) && id && !strcmp(e->valuestring, id);
        if (!mine || !lid)
            continue;
        char filter[128];
        snprintf(filter, sizeof filter, "link=\"%s\"", lid);
        double bytes = metrics ? qk_lab_metric(metrics, "qkd_pool_bytes", filter) : -1;
        double bits = bytes < 0 ? -1 : bytes * 8;
        double up = metrics ? qk_lab_metric(metrics, "qkd_link_up", filter) : -1;
        printf("  %s: pool %.0f bits, link %s", lid, bits < 0 ? 0 : bits,
               up < 0   ? "?"
               : up > 0 ? "up"
                        : "down");
    }
    printf("\n");
    free(metrics);
}

static void print_sim(const cJSON *m, const char *dir, int *down)
{
    const char *sim = qk_json_str_or(m, "sim_url", NULL);
    pid_t pid = (pid_t)qk_json_num_or(m, "sim_pid", 0);
    bool alive = qk_lab_pid_alive(pid, dir);
    *down += !alive;
    printf("%-10s pid %-7d %-8s %s\n", "qkd-sim", (int)pid, alive ? "running" : "STOPPED",
           sim ? sim : "");
    char url[300], *body = NULL;
    qk_err err;
    qk_err_clear(&err);
    if (!alive || !sim || snprintf(url, sizeof url, "%s/v1/status", sim) >= (int)sizeof url ||
        qk_lab_http_get(url, &body, &err) != 0)
        return;
    cJSON *j = qk_json_parse(body, strlen(body), MANIFEST_MAX, &err);
    const cJSON *links = j ? cJSON_GetObjectItemCaseSensitive(j, "links") : NULL, *l;
    cJSON_ArrayForEach(l, links)
    {
        printf("  link %-20s %-8s qber %.4f  rate %.1f bit/s  delivered %.0f bits\n",
               qk_json_str_or(l, "id", "?"), qk_json_str_or(l, "state", "?"),
               qk_json_num_or(l, "qber", 0), qk_json_num_or(l, "rate_bps", 0),
               qk_json_num_or(l, "delivered_bits", 0));
    }
    cJSON_Delete(j);
    free(body);
}

int qk_lab_cmd_status(int argc, char **argv)
{
    char dir[QK_LAB_PATH_MAX];
    int rc = dir_option(argc, argv, "status", dir, sizeof dir);
    if (rc >= 0)
        return rc;
    cJSON *m = load_manifest(dir);
    if (!m)
        return 1;
    if (qk_http_global_init() != 0) {
        cJSON_Delete(m);
        return 1;
    }
    int down = 0;
    printf("lab %s\n", dir);
    const cJSON *links = cJSON_GetObjectItemCaseSensitive(m, "links"), *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(m, "kmes"))
        print_kme(k, links, dir, &down);
    print_sim(m, dir, &down);
    cJSON_Delete(m);
    qk_http_global_cleanup();
    if (down)
        printf("%d process(es) not running\n", down);
    return down ? 1 : 0;
}
