/* sim_link.h - one simulated QKD link at run time: a thread that earns key bits at the model's
 * rate times the time scale, emits CSPRNG blocks, delivers each to both KMEs' device API
 * (end a, then end b; bounded timeouts and retries), pushes telemetry every interval, and
 * obeys the faults set through qk_link_set_faults(). */
#ifndef QK_SIM_LINK_H
#define QK_SIM_LINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "qk_err.h"
#include "sim_blockid.h"
#include "sim_config.h"
#include "sim_device.h"
#include "sim_fault.h"
#include "sim_sched.h"

typedef struct {
    char id[QK_SIM_ID_MAX];
    const char *state;     /* "up", "down", "aborted" */
    double qber;           /* the model's QBER (after the eavesdropper) */
    double model_rate_bps; /* secret-key rate of the model (unscaled) */
    double rate_bps;       /* delivered rate: model * time_scale, 0 when down/aborted */
    double time_scale, distance_km;
    uint64_t blocks, delivered_bits, last_block_id;
    uint64_t dropped_blocks, corrupted_blocks, failed_blocks;
    double lost_bits; /* earned but not emitted (delivery lagged) */
    qk_faults faults;
    struct {
        char url[QK_SIM_URL_MAX];
        uint64_t ok, conflicts, refused, unreachable;
        char last_error[160];
    } ends[2];
} qk_link_status;

typedef struct qk_sim_link qk_sim_link;

/* Start the link thread. ids and cfg are borrowed (must outlive the link). */
int qk_sim_link_start(const qk_sim_link_cfg *cfg, const qk_sim_config *global, qk_blockids *ids,
                      qk_sim_link **out, qk_err *err);
/* Stop and join (bounded by the delivery timeouts), free. NULL is a no-op. */
void qk_sim_link_stop(qk_sim_link *l);
const char *qk_sim_link_id(const qk_sim_link *l);
void qk_sim_link_status(qk_sim_link *l, qk_link_status *st);
/* Apply a fault by name (see sim_fault.h); takes effect at once. */
int qk_sim_link_fault(qk_sim_link *l, const char *name, const char *value, qk_err *err);
/* The link's status as a JSON object; malloc'ed, NULL on failure. */
char *qk_link_status_json(const qk_link_status *st);

#endif
