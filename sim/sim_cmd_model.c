/* sim_cmd_model.c - `qkd-sim model`: tabulate the key-rate model (sim/model.h) over a distance
 * range as a text table or JSON. See docs/sim-model.md. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "sim_cmds.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define MAX_POINTS   10000
#define N_KINDS      QK_RATE_KIND_COUNT

/* The numeric fields --param may set, by name. */
static const struct {
    const char *name;
    size_t off;
} PARAMS[] = {
    {"alpha_db_km", offsetof(qk_model_params, alpha_db_km)},
    {"eta_bob", offsetof(qk_model_params, eta_bob)},
    {"y0", offsetof(qk_model_params, y0)},
    {"e_d", offsetof(qk_model_params, e_d)},
    {"f_ec", offsetof(qk_model_params, f_ec)},
    {"q", offsetof(qk_model_params, q)},
    {"rep_rate_hz", offsetof(qk_model_params, rep_rate_hz)},
    {"mu", offsetof(qk_model_params, mu)},
    {"nu_weak", offsetof(qk_model_params, nu_weak)},
    {"nu_vac", offsetof(qk_model_params, nu_vac)},
    {"dead_time_s", offsetof(qk_model_params, dead_time_s)},
    {"max_pp_bps", offsetof(qk_model_params, max_pp_bps)},
    {"extra_loss_db", offsetof(qk_model_params, extra_loss_db)},
    {"eve_fraction", offsetof(qk_model_params, eve_fraction)},
    {"qber_abort", offsetof(qk_model_params, qber_abort)},
};
#define N_PARAMS (sizeof PARAMS / sizeof PARAMS[0])

typedef struct {
    qk_model_params p;
    double d_from, d_to, d_step;
    bool json, optimise, all_kinds;
    qk_rate_kind kind;
} model_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: qkd-sim model [--preset NAME] [--distance FROM:TO:STEP | --distance KM]\n"
               "                     [--kind KIND] [--mu X | --optimise] [--param NAME=VALUE]... "
               "[--json]\n"
               "Tabulate the asymptotic decoy-state BB84 key rate over fibre (qkd-sim(1)).\n"
               "  --preset NAME        parameter set (default gys): ");
    for (const char *const *n = qk_model_preset_names(); *n; n++)
        fprintf(f, "%s%s", *n, n[1] ? ", " : "\n");
    fprintf(f, "  --distance SPEC      km: FROM:TO:STEP or one distance (default 0:150:10)\n"
               "  --kind KIND          decoy-vw (default: what qkd-sim run and qkd-lab use),\n"
               "                       decoy-inf, no-decoy, single-photon, plob, all\n"
               "  --mu X               use the signal intensity X instead of optimising it\n"
               "  --optimise           search the optimal intensity (the default)\n"
               "  --param NAME=VALUE   override a parameter; NAME is one of:");
    for (size_t i = 0; i < N_PARAMS; i++)
        fprintf(f, "%s%s", i % 5 == 0 ? "\n                      " : " ", PARAMS[i].name);
    fprintf(f, "\n  --json               print JSON instead of a table\n"
               "  -h, --help           this text\n"
               "Columns: distance (km), secret bits per pulse, secret bit/s (after the dead-time\n"
               "and post-processing caps), QBER of the signal, intensity used; then the maximum\n"
               "distance with a positive rate. Exit status 0, 2 for invalid options.\n");
}

/* Parse a whole string as a finite double. */
static int parse_double(const char *s, double *out)
{
    char *end = NULL;
    if (!s || !*s)
        return -1;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_distance(const char *s, model_opts *o)
{
    char buf[128];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *c1 = strchr(buf, ':');
    if (!c1) {
        if (parse_double(buf, &o->d_from) != 0 || o->d_from < 0.0)
            return -1;
        o->d_to = o->d_from;
        o->d_step = 1.0;
        return 0;
    }
    char *c2 = strchr(c1 + 1, ':');
    if (!c2)
        return -1;
    *c1 = *c2 = '\0';
    if (parse_double(buf, &o->d_from) != 0 || parse_double(c1 + 1, &o->d_to) != 0 ||
        parse_double(c2 + 1, &o->d_step) != 0)
        return -1;
    if (o->d_from < 0.0 || o->d_to < o->d_from || !(o->d_step > 0.0) ||
        (o->d_to - o->d_from) / o->d_step >= MAX_POINTS)
        return -1;
    return 0;
}

static int set_param(const char *arg, qk_model_params *p)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return -1;
    size_t len = (size_t)(eq - arg);
    for (size_t i = 0; i < N_PARAMS; i++)
        if (strlen(PARAMS[i].name) == len && strncmp(arg, PARAMS[i].name, len) == 0) {
            double v;
            if (parse_double(eq + 1, &v) != 0)
                return -1;
            memcpy((char *)p + PARAMS[i].off, &v, sizeof v);
            return 0;
        }
    return -1;
}

static int parse_kind(const char *s, model_opts *o)
{
    o->all_kinds = strcmp(s, "all") == 0;
    if (o->all_kinds)
        return 0;
    bool alias = false;
    if (qk_rate_kind_parse(s, &o->kind, &alias) != 0)
        return -1;
    if (alias)
        fprintf(stderr, "qkd-sim model: --kind %s: deprecated spelling, use %s\n", s,
                qk_rate_kind_name(o->kind));
    return 0;
}

static int bad(const char *what, const char *arg)
{
    fprintf(stderr, "qkd-sim model: invalid %s '%s' (see qkd-sim model --help)\n", what, arg);
    return EXIT_USAGE;
}

/* Parse argv into o; returns 0, EXIT_USAGE, or -1 after --help. */
static int parse_args(int argc, char **argv, model_opts *o)
{
    enum { O_PRESET = 256, O_DISTANCE, O_KIND, O_MU, O_OPTIMISE, O_PARAM, O_JSON };
    static const struct option longopts[] = {
        {"preset", required_argument, NULL, O_PRESET},
        {"distance", required_argument, NULL, O_DISTANCE},
        {"kind", required_argument, NULL, O_KIND},
        {"mu", required_argument, NULL, O_MU},
        {"optimise", no_argument, NULL, O_OPTIMISE},
        {"optimize", no_argument, NULL, O_OPTIMISE},
        {"param", required_argument, NULL, O_PARAM},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* The preset is applied first so that --mu and --param override it in any order. */
    const char *preset = "gys";
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--preset") == 0)
            preset = argv[i + 1];
        else if (strncmp(argv[i], "--preset=", 9) == 0)
            preset = argv[i] + 9;
    if (qk_model_preset(preset, &o->p) != 0)
        return bad("preset", preset);
    o->d_from = 0.0;
    o->d_to = 150.0;
    o->d_step = 10.0;
    o->optimise = true;
    o->kind = QK_RATE_KIND_DEFAULT;
    bool have_mu = false, have_opt = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_PRESET:
            break;
        case O_DISTANCE:
            if (parse_distance(optarg, o) != 0)
                return bad("distance", optarg);
            break;
        case O_KIND:
            if (parse_kind(optarg, o) != 0)
                return bad("kind", optarg);
            break;
        case O_MU:
            if (parse_double(optarg, &o->p.mu) != 0 || !(o->p.mu > 0.0))
                return bad("mu", optarg);
            have_mu = true;
            o->optimise = false;
            break;
        case O_OPTIMISE:
            have_opt = true;
            break;
        case O_PARAM:
            if (set_param(optarg, &o->p) != 0)
                return bad("param", optarg);
            break;
        case O_JSON:
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            return bad("option", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("argument", argv[optind]);
    if (have_mu && have_opt) {
        fprintf(stderr, "qkd-sim model: --mu and --optimise exclude each other\n");
        return EXIT_USAGE;
    }
    return 0;
}

typedef struct {
    qk_rate_kind kind;
    size_t n;
    qk_model_point *pts;
    double max_km;
} curve;

static int compute(const model_opts *o, curve *cv)
{
    cv->n = (size_t)floor((o->d_to - o->d_from) / o->d_step + 1e-9) + 1;
    cv->pts = calloc(cv->n, sizeof *cv->pts);
    if (!cv->pts)
        return EXIT_RUNTIME;
    for (size_t i = 0; i < cv->n; i++)
        if (qk_model_eval(&o->p, o->d_from + (double)i * o->d_step, cv->kind, o->optimise,
                          &cv->pts[i]) != 0) {
            fprintf(stderr,
                    "qkd-sim model: invalid parameters for %s (see --help and "
                    "docs/sim-model.md)\n",
                    qk_rate_kind_name(cv->kind));
            return EXIT_USAGE;
        }
    cv->max_km = qk_model_max_distance(&o->p, cv->kind, o->optimise);
    return 0;
}

static bool has_mu(qk_rate_kind k)
{
    return k == QK_RATE_DECOY_INF || k == QK_RATE_DECOY_VW || k == QK_RATE_NO_DECOY;
}

static void print_table(const model_opts *o, const curve *cv, size_t n_curves)
{
    printf("# preset %s, %s mu\n", o->p.name, o->optimise ? "optimal" : "fixed");
    for (size_t c = 0; c < n_curves; c++) {
        const curve *v = &cv[c];
        printf("%s# %s\n%10s %12s %12s %8s %7s\n", c ? "\n" : "", qk_rate_kind_name(v->kind),
               "distance_km", "rate/pulse", "bit/s", "QBER", "mu");
        for (size_t i = 0; i < v->n; i++) {
            const qk_model_point *pt = &v->pts[i];
            char qber[16] = "-", mu[16] = "-";
            if (v->kind != QK_RATE_PLOB)
                snprintf(qber, sizeof qber, "%.2f%%", 100.0 * pt->qber);
            if (has_mu(v->kind))
                snprintf(mu, sizeof mu, "%.3f", pt->mu);
            printf("%11.2f %12.4e %12.4g %8s %7s%s\n", pt->distance_km, pt->rate_per_pulse,
                   pt->rate_bps, qber, mu, pt->aborted ? "  aborted" : "");
        }
        if (isinf(v->max_km))
            printf("max distance: unbounded\n");
        else
            printf("max distance: %.1f km\n", v->max_km);
    }
}

static cJSON *params_json(const qk_model_params *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", p->name);
    for (size_t i = 0; i < N_PARAMS; i++) {
        double v;
        memcpy(&v, (const char *)p + PARAMS[i].off, sizeof v);
        cJSON_AddNumberToObject(o, PARAMS[i].name, v);
    }
    return o;
}

static cJSON *point_json(qk_rate_kind kind, const qk_model_point *pt)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "distance_km", pt->distance_km);
    cJSON_AddNumberToObject(o, "eta", pt->eta);
    if (kind == QK_RATE_PLOB && isinf(pt->rate_per_pulse)) {
        cJSON_AddNullToObject(o, "rate_per_pulse");
        cJSON_AddNullToObject(o, "rate_bps");
    } else {
        cJSON_AddNumberToObject(o, "rate_per_pulse", pt->rate_per_pulse);
        cJSON_AddNumberToObject(o, "rate_bps", pt->rate_bps);
    }
    if (kind != QK_RATE_PLOB) {
        cJSON_AddNumberToObject(o, "gain", pt->gain);
        cJSON_AddNumberToObject(o, "qber", pt->qber);
        cJSON_AddNumberToObject(o, "y1", pt->y1);
        cJSON_AddNumberToObject(o, "e1", pt->e1);
    }
    if (has_mu(kind))
        cJSON_AddNumberToObject(o, "mu", pt->mu);
    cJSON_AddBoolToObject(o, "aborted", pt->aborted);
    return o;
}

static cJSON *curve_json(const curve *cv)
{
    cJSON *jc = cJSON_CreateObject(), *pts = cJSON_CreateArray();
    if (!jc || !pts) {
        cJSON_Delete(jc);
        cJSON_Delete(pts);
        return NULL;
    }
    cJSON_AddStringToObject(jc, "kind", qk_rate_kind_name(cv->kind));
    if (isinf(cv->max_km))
        cJSON_AddNullToObject(jc, "max_distance_km");
    else
        cJSON_AddNumberToObject(jc, "max_distance_km", cv->max_km);
    for (size_t i = 0; i < cv->n; i++)
        cJSON_AddItemToArray(pts, point_json(cv->kind, &cv->pts[i]));
    cJSON_AddItemToObject(jc, "points", pts);
    return jc;
}

static int print_json(const model_opts *o, const curve *cv, size_t n_curves)
{
    cJSON *root = cJSON_CreateObject(), *curves = cJSON_CreateArray();
    if (!root || !curves) {
        cJSON_Delete(root);
        cJSON_Delete(curves);
        return EXIT_RUNTIME;
    }
    cJSON_AddItemToObject(root, "params", params_json(&o->p));
    cJSON_AddBoolToObject(root, "optimise_mu", o->optimise);
    for (size_t c = 0; c < n_curves; c++)
        cJSON_AddItemToArray(curves, curve_json(&cv[c]));
    cJSON_AddItemToObject(root, "curves", curves);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s)
        return EXIT_RUNTIME;
    puts(s);
    cJSON_free(s);
    return 0;
}

int qk_sim_cmd_model(int argc, char **argv)
{
    model_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    curve cv[N_KINDS];
    memset(cv, 0, sizeof cv);
    size_t n_curves = o.all_kinds ? N_KINDS : 1;
    for (size_t c = 0; c < n_curves && rc == 0; c++) {
        cv[c].kind = o.all_kinds ? (qk_rate_kind)c : o.kind;
        rc = compute(&o, &cv[c]);
    }
    if (rc == 0)
        rc = o.json ? print_json(&o, cv, n_curves) : (print_table(&o, cv, n_curves), 0);
    for (size_t c = 0; c < n_curves; c++)
        free(cv[c].pts);
    return rc;
}
