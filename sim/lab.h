/* lab.h - the state of one lab (qkd-lab): its folder, topology, model settings, and what the
 * running processes bound. Layout inside DIR (docs/lab.md):
 *   pki/            ca.crt ca.key, server-KME.crt/.key, peer-KME.crt/.key, sae-SAE.crt/.key,
 *                   device.crt/.key (CN qkd-sim)
 *   KME/            kmed.conf master.key skip.psk data/ kmed.log kmed.out ports kmed.pid
 *   sim/            sim.conf sim.log sim.out ports state sim.pid
 *   dashboard/      dash.log dash.out ports dash.pid (qkd-dash, docs/dashboard.md)
 *   lab.json        the manifest (mode 0600: it holds the SKIP PSKs) */
#ifndef QK_LAB_H
#define QK_LAB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "lab_topology.h"

#define QK_LAB_PATH_MAX  1024
#define QK_LAB_DEVICE_CN "qkd-sim"
/* Processes of a lab: every KME, the simulator and the dashboard (qkd-dash). */
#define QK_LAB_MAX_PIDS (QK_LAB_MAX_KMES + 2)

typedef struct {
    uint16_t peer_port; /* chosen before start (the neighbours' configs name it) */
    uint16_t etsi014, skip, device, admin;
    pid_t pid;
    char skip_identity[QK_LAB_ID_MAX + 8];
    char psk_hex[65];
} qk_lab_kme_rt;

/* A link fed by an ETSI GS QKD 014 device pair instead of the simulator (qkd-lab up
 * --device-lab DIR: the KMEs of the lab in DIR with the same IDs as the link's ends). End e of
 * the link is a master/slave SAE sae[e] at the device url[e]; the end with the lower KME ID
 * pulls (kmed.conf device_pull, docs/qkd-kmed.md). */
typedef struct {
    bool on;
    char url[2][128];
    char sae[2][QK_LAB_ID_MAX];
    char cert[2][QK_LAB_PATH_MAX], key[2][QK_LAB_PATH_MAX];
} qk_lab_dev_link;

typedef struct {
    char dir[QK_LAB_PATH_MAX]; /* absolute */
    qk_lab_topology topo;
    char preset[32];
    double distance_km;
    double time_scale;
    uint64_t block_bytes;
    bool skip;             /* configure SKIP listeners */
    bool reply_at_commit;  /* every KME: [hot_path] reply_at_commit = true (--reply-at-commit) */
    bool time_ordered_ids; /* every KME: [store] key_ids = time-ordered (--key-ids) */
    qk_lab_kme_rt kme[QK_LAB_MAX_KMES];
    uint16_t sim_port;
    pid_t sim_pid;
    uint16_t dash_port; /* qkd-dash, started once lab.json exists */
    pid_t dash_pid;
    char device_lab[QK_LAB_PATH_MAX]; /* "" or the absolute folder of the device lab */
    char device_ca[QK_LAB_PATH_MAX];  /* its CA (lab.json ca_cert) */
    qk_lab_dev_link dev[QK_LAB_MAX_LINKS];
} qk_lab;

/* Links the simulator feeds (not device-fed). */
size_t qk_lab_sim_links(const qk_lab *lab);
/* --device-lab DIR: read DIR/lab.json and make every link of lab->topo device-fed by the KMEs of
 * that lab with the same IDs (each end's ETSI 014 URL and first SAE; the lab's CA). QK_EINVAL
 * naming what is missing. */
int qk_lab_device_lab_load(qk_lab *lab, const char *dir, qk_err *err);
/* The end (0 or 1) of device-fed link i that pulls: the lower KME ID (strcmp). */
int qk_lab_dev_puller(const qk_lab *lab, size_t i);

/* DIR/<printf fmt> into out (QK_LAB_PATH_MAX); returns 0 or -1 when too long. */
int qk_lab_path(const qk_lab *lab, char *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The configuration of KME number k (docs/qkd-kmed.md) / of the simulator (docs/qkd-sim.md),
 * written to f. Paths are absolute. Return 0 or -1 on a write error or a path too long. */
int qk_lab_write_kmed_conf(const qk_lab *lab, size_t k, FILE *f);
int qk_lab_write_sim_conf(const qk_lab *lab, FILE *f);

/* Link i's settings: its own from the topology, else the lab's (--preset, --distance,
 * --time-scale). */
const char *qk_lab_link_preset(const qk_lab *lab, size_t i);
double qk_lab_link_distance(const qk_lab *lab, size_t i);
double qk_lab_link_time_scale(const qk_lab *lab, size_t i);
/* The key rate link i delivers (bit/s, the model's default kind with the optimal intensity,
 * times the time scale, as qkd-sim runs it): 0, or QK_EINVAL for an unknown preset or when the
 * model yields no key there (aborted or a zero rate; the message names the preset's reach and
 * what to change). */
int qk_lab_link_rate(const qk_lab *lab, size_t i, double *bps, qk_err *err);
/* Every link yields key and fills a block of lab->block_bytes within wait_s seconds; else
 * QK_EINVAL with the link, the reason and what to change (checked before anything starts). */
int qk_lab_links_check(const qk_lab *lab, unsigned wait_s, qk_err *err);

/* The manifest DIR/lab.json as text (malloc'ed; NULL on failure). */
char *qk_lab_manifest_json(const qk_lab *lab);

#endif
