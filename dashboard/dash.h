/* dash.h - qkd-dash, the live lab dashboard (docs/dashboard.md): what it knows of a lab (from
 * DIR/lab.json), the state it gathers every poll from the KMEs' admin /metrics and the
 * simulator's control API, bounded history and events, and the JSON it serves. */
#ifndef QK_DASH_H
#define QK_DASH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_client.h"
#include "qk_err.h"

#define DASH_MAX_KMES      16 /* docs/lab.md: up to 16 KMEs and 32 links */
#define DASH_MAX_LINKS     32
#define DASH_ID_MAX        65
#define DASH_URL_MAX       128
#define DASH_HIST          300 /* samples kept per series: 5 minutes at one poll a second */
#define DASH_MAX_EVENTS    200
#define DASH_MAX_LISTENERS 8
#define DASH_MAX_ERRS      24
#define DASH_MAX_MODEL_PTS 201

typedef struct {
    char name[32];
    double total; /* qkd_requests_total summed over statuses */
    double rate;  /* per second, between the last two polls */
} dash_api;

typedef struct {
    char listener[32];
    int status; /* HTTP status >= 400 */
    double total;
} dash_errs;

typedef struct {
    char id[DASH_ID_MAX];
    char admin_url[DASH_URL_MAX];
    bool reachable;
    dash_api api[DASH_MAX_LISTENERS];
    size_t napi;
    dash_errs errs[DASH_MAX_ERRS];
    size_t nerrs;
    double peer_errors;
    float req_rate[DASH_HIST]; /* requests/s, every API, ring indexed like dash_state.t */
} dash_kme;

typedef struct {
    char id[DASH_ID_MAX];
    int end[2]; /* KME indices */
    char preset[32];
    double distance_km, time_scale;
    /* from the simulator */
    char state[16]; /* up, down, aborted, corrupting; "down" when the simulator is unreachable */
    bool sim_ok;
    double qber, rate_bps, model_rate_bps, delivered_bits, delivered_rate_bps;
    bool f_down;
    double f_eve, f_loss_db, f_delay_ms;
    char f_corrupt[8], f_drop[8];
    /* from the KMEs at either end */
    double pool_bits[2]; /* -1 unknown */
    double burned[2];    /* qkd_blocks{state="burned"} */
    int kme_link_up[2];  /* qkd_link_up: 1, 0, -1 unknown */
    float h_pool[2][DASH_HIST], h_rate[DASH_HIST], h_qber[DASH_HIST];
    double h_bits[DASH_HIST]; /* delivered_bits, for the rate over a window */
} dash_link;

typedef struct {
    uint64_t seq;
    double t_ms;   /* epoch ms */
    char kind[16]; /* fault, state, burned, peer-error, control */
    char subject[DASH_ID_MAX];
    char text[160];
} dash_event;

typedef struct {
    char preset[32];
    size_t n;
    float d_km[DASH_MAX_MODEL_PTS], rate_bps[DASH_MAX_MODEL_PTS], qber[DASH_MAX_MODEL_PTS];
    double max_distance_km;
} dash_model;

typedef struct {
    pthread_mutex_t mu;
    char lab_dir[1024];
    char sim_url[DASH_URL_MAX];
    bool sim_reachable;
    dash_kme kmes[DASH_MAX_KMES];
    size_t nkmes;
    dash_link links[DASH_MAX_LINKS];
    size_t nlinks;
    dash_model models[DASH_MAX_LINKS];
    size_t nmodels;
    /* history: one sample per poll, ring of DASH_HIST */
    double t[DASH_HIST]; /* epoch ms */
    uint64_t nsamples;   /* samples taken so far; the newest is at (nsamples-1) % DASH_HIST */
    double last_poll_ms; /* monotonic */
    dash_event events[DASH_MAX_EVENTS];
    uint64_t nevents;
    unsigned poll_ms;
} dash_state;

/* Fill st from DIR/lab.json (client/ reads the manifest; preset, distance and time scale of each
 * link are read here). Returns 0 or a qk_status with err set. */
int dash_state_load(dash_state *st, const char *lab_dir, qk_err *err);
/* The model curve of each preset of the lab, from `qkd-sim model --json` (the simulator next
 * to this binary). A preset whose curve cannot be had is logged and left without one. */
void dash_state_load_models(dash_state *st, const char *qkd_sim);

/* One poll: every KME's /metrics and the simulator's /v1/status (clients[i] for KME i,
 * clients[nkmes] for the simulator), then a history sample and the events it implies. */
void dash_poll_once(dash_state *st, qk_http_client *const *clients);
/* Append an event (takes st->mu). */
void dash_event_add(dash_state *st, const char *kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The JSON documents (malloc'ed, NULL when out of memory); each takes st->mu. */
char *dash_state_json(dash_state *st);
char *dash_history_json(dash_state *st, double since_ms);
char *dash_models_json(dash_state *st);

/* Prometheus text: sum of the samples of `name` whose labels contain every "k=\"v\"" of the
 * NULL-terminated list (NULL: all samples); -1 when none. Exposed for the tests. */
double dash_prom_sum(const char *text, const char *name, const char *const *labels);
/* Call fn for every sample of `name`: its label text (between the braces, "" when none) and
 * value. Lines are bounded by the text itself; malformed lines are skipped. */
void dash_prom_each(const char *text, const char *name,
                    void (*fn)(void *cls, const char *labels, size_t len, double v), void *cls);
/* The value of label key in a label text into out; 0 or -1 when absent/too long. */
int dash_prom_label(const char *labels, size_t len, const char *key, char *out, size_t cap);

/* Embedded files of dashboard/www/ (generated at build time by dashboard/embed.sh). */
typedef struct {
    const char *path; /* "/index.html" */
    const unsigned char *data;
    size_t len;
} dash_asset;
extern const dash_asset dash_assets[];
extern const size_t dash_nassets;

#endif
