/* bench_cmd_run.c - `qkd-bench run`: options, target, run, reports. */
#include "bench_cmd.h"

#include <stdio.h>

#include "bench_opts.h"
#include "bench_report.h"
#include "bench_run.h"
#include "bench_target.h"
#include "http_client.h"
#include "secbuf.h"

int bench_cmd_run(int argc, char **argv)
{
    bench_opts o;
    if (bench_opts_parse(argc, argv, &o) != 0) {
        bench_opts_usage(stderr);
        return 2;
    }
    if (qk_secure_init() != 0 || qk_http_global_init() != 0) {
        fprintf(stderr, "qkd-bench: initialisation failed\n");
        return 1;
    }
    bench_target t;
    if (bench_target_load(&t, o.lab_dir, o.kme_a, o.kme_b, o.baseline_url) != 0) {
        qk_http_global_cleanup();
        return 1;
    }
    int rc = 1;
    bench_result *r = bench_result_new();
    if (!r) {
        fprintf(stderr, "qkd-bench: out of memory\n");
    } else if (bench_run(&t, &o, r) == 0) {
        bench_report_text(stdout, &o, r);
        rc = fflush(stdout) == 0 ? 0 : 1;
        if (o.json_out) {
            cJSON *j = bench_report_json(&o, r);
            if (!j || bench_write_json(o.json_out, j) != 0)
                rc = 1;
            cJSON_Delete(j);
        }
    }
    bench_result_free(r);
    bench_target_free(&t);
    qk_http_global_cleanup();
    return rc;
}
