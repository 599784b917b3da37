/* bench_report.h - one run's results as text (for people) and JSON (for `qkd-bench report`
 * and scripts). Latencies in milliseconds; rates per second of the measured phase. */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "bench_opts.h"
#include "bench_run.h"

void bench_report_text(FILE *f, const bench_opts *o, const bench_result *r);
/* NULL on allocation failure. */
cJSON *bench_report_json(const bench_opts *o, const bench_result *r);
/* Write JSON text to path ("-" = stdout). 0 or -1 (message on stderr). */
int bench_write_json(const char *path, const cJSON *j);

#endif
