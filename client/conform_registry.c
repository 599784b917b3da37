/* conform_registry.c - the check registry: selection by ID patterns and the run loop. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conform.h"

const cf_check *cf_checks(cf_api api, size_t *n)
{
    if (api == CF_API_ETSI) {
        *n = cf_etsi_n_checks;
        return cf_etsi_checks;
    }
    *n = cf_skip_n_checks;
    return cf_skip_checks;
}

bool cf_selected(const char *patterns, const char *id)
{
    if (!patterns || !*patterns)
        return true;
    const char *p = patterns;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char pat[256];
        if (len > 0 && len < sizeof pat) {
            memcpy(pat, p, len);
            pat[len] = '\0';
            if (fnmatch(pat, id, 0) == 0)
                return true;
            /* A bare prefix ("etsi.dec") selects its group. */
            size_t il = strlen(id);
            if (!strpbrk(pat, "*?[") && il > len && strncmp(id, pat, len) == 0 && id[len] == '.')
                return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int cf_run_checks(cf_ctx *ctx, const char *only, FILE *progress, cf_run *out)
{
    memset(out, 0, sizeof *out);
    size_t n;
    const cf_check *checks = cf_checks(ctx->api, &n);
    out->r = calloc(n ? n : 1, sizeof *out->r);
    if (!out->r)
        return -1;
    double t0 = now_ms();
    for (size_t i = 0; i < n; i++) {
        const cf_check *c = &checks[i];
        if (!cf_selected(only, c->id))
            continue;
        cf_result *r = &out->r[out->n++];
        r->check = c;
        r->status = CF_PASS;
        double t = now_ms();
        if (ctx->no_consume && c->consumes)
            cf_set(r, CF_SKIP, "--no-consume: this check takes keys from the server");
        else
            c->run(ctx, r);
        r->ms = now_ms() - t;
        if (r->status == CF_PASS && !r->summary[0])
            cf_set(r, CF_PASS, "ok");
        out->counts[r->status]++;
        if (progress) {
            fprintf(progress, "%-4s %s: %s\n", cf_status_name(r->status), c->id, r->summary);
            fflush(progress);
        }
    }
    out->ms = now_ms() - t0;
    return 0;
}

void cf_run_free(cf_run *run)
{
    if (!run)
        return;
    for (size_t i = 0; i < run->n; i++)
        free(run->r[i].evidence);
    free(run->r);
    memset(run, 0, sizeof *run);
}
