/* sim_fault.c - parse and apply link faults. */
#include "sim_fault.h"

#include <stdio.h>
#include <string.h>

#include "ini_config.h"

void qk_faults_clear(qk_faults *f)
{
    memset(f, 0, sizeof *f);
    f->drop = QK_END_NONE;
    f->corrupt = QK_END_NONE;
}

const char *qk_end_name(qk_end e)
{
    return e == QK_END_A ? "a" : e == QK_END_B ? "b" : "none";
}

static int parse_end(const char *v, qk_end *out, qk_err *err)
{
    if (v && strcmp(v, "a") == 0)
        *out = QK_END_A;
    else if (v && strcmp(v, "b") == 0)
        *out = QK_END_B;
    else if (v && strcmp(v, "none") == 0)
        *out = QK_END_NONE;
    else
        return qk_err_set(err, QK_EINVAL, "expected a, b or none");
    return 0;
}

static int parse_num(const char *name, const char *value, double max, double *out, qk_err *err)
{
    if (!value || !*value)
        return qk_err_set(err, QK_EINVAL, "%s needs a value", name);
    return qk_parse_double(value, 0.0, max, out, err);
}

int qk_fault_apply(qk_faults *f, const char *name, const char *value, qk_err *err)
{
    qk_faults n = *f;
    int rc = 0;
    bool wants_value = true;
    if (!name)
        return qk_err_set(err, QK_EINVAL, "no fault named");
    if (strcmp(name, "down") == 0) {
        n.down = true;
        wants_value = false;
    } else if (strcmp(name, "up") == 0) {
        n.down = false;
        wants_value = false;
    } else if (strcmp(name, "clear") == 0) {
        qk_faults_clear(&n);
        wants_value = false;
    } else if (strcmp(name, "eve") == 0) {
        rc = parse_num(name, value, 1.0, &n.eve_fraction, err);
    } else if (strcmp(name, "loss") == 0) {
        rc = parse_num(name, value, QK_FAULT_MAX_LOSS_DB, &n.loss_db, err);
    } else if (strcmp(name, "delay") == 0) {
        rc = parse_num(name, value, QK_FAULT_MAX_DELAY_MS, &n.delay_ms, err);
    } else if (strcmp(name, "drop") == 0) {
        rc = parse_end(value, &n.drop, err);
    } else if (strcmp(name, "corrupt") == 0) {
        rc = parse_end(value, &n.corrupt, err);
    } else {
        return qk_err_set(err, QK_EINVAL,
                          "unknown fault %.32s (down, up, eve, loss, drop, corrupt, delay, clear)",
                          name);
    }
    if (rc != 0)
        return qk_err_prefix(err, "%s", name);
    if (!wants_value && value && *value)
        return qk_err_set(err, QK_EINVAL, "%s takes no value", name);
    *f = n;
    return 0;
}

int qk_faults_json(const qk_faults *f, char *buf, size_t cap)
{
    int n =
        snprintf(buf, cap,
                 "{\"down\":%s,\"eve\":%.6g,\"loss_db\":%.6g,\"drop\":\"%s\",\"corrupt\":\"%s\","
                 "\"delay_ms\":%.6g}",
                 f->down ? "true" : "false", f->eve_fraction, f->loss_db, qk_end_name(f->drop),
                 qk_end_name(f->corrupt), f->delay_ms);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}
