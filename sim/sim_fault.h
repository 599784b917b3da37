/* sim_fault.h - the faults a running link can be given (pure logic, shared by the control API
 * and the `qkd-sim fault` CLI): down/up, eavesdropper fraction, extra loss, dropped or
 * corrupted delivery to one end, delivery delay, clear. */
#ifndef QK_SIM_FAULT_H
#define QK_SIM_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "qk_err.h"

#define QK_FAULT_MAX_DELAY_MS 60000.0
#define QK_FAULT_MAX_LOSS_DB  100.0

typedef enum { QK_END_NONE = -1, QK_END_A = 0, QK_END_B = 1 } qk_end;

typedef struct {
    bool down;
    double eve_fraction; /* 0..1 intercept-resend */
    double loss_db;      /* extra channel loss */
    qk_end drop;         /* blocks not sent to this end */
    qk_end corrupt;      /* this end gets other bytes under the same block ID */
    double delay_ms;     /* wait before each delivery */
} qk_faults;

void qk_faults_clear(qk_faults *f);
/* Apply one fault: name is down, up, eve, loss, drop, corrupt, delay or clear; value is the
 * argument (NULL for down, up, clear; a|b|none for drop/corrupt; a number otherwise). */
int qk_fault_apply(qk_faults *f, const char *name, const char *value, qk_err *err);
const char *qk_end_name(qk_end e); /* "a", "b", "none" */
/* {"down":..,"eve":..,"loss_db":..,"drop":..,"corrupt":..,"delay_ms":..}; length or -1. */
int qk_faults_json(const qk_faults *f, char *buf, size_t cap);

#endif
