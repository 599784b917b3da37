/* test_sim_model.c - the key-rate model (sim/model.h) against a reference table for the GYS
 * set (asymptotic, q = 1/2, f = 1.22; computed independently of this code from the equations
 * of docs/sim-model.md, which cites the papers), the published GYS reaches, physical invariants
 * (PLOB, monotonic decay), the eavesdropper, extra loss, the rate caps, the presets and input
 * validation. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define N_KINDS 5

static qk_model_params gys(void)
{
    qk_model_params p;
    CU_ASSERT_FATAL(qk_model_preset("gys", &p) == 0);
    return p;
}

/* True when got matches the printed oracle value: within 1e-3 relative, or within half a unit
 * of the last printed digit when the table gives fewer digits than that. */
static bool oracle_ok(double got, const char *printed)
{
    double want = strtod(printed, NULL);
    const char *dot = strchr(printed, '.'), *e = strpbrk(printed, "eE");
    int decimals = 0;
    if (dot)
        decimals = (int)((e ? e : printed + strlen(printed)) - dot - 1);
    int exp10 = e ? atoi(e + 1) : 0;
    double tol = fmax(1e-3 * fabs(want), 0.5 * pow(10.0, exp10 - decimals));
    bool ok = fabs(got - want) <= tol * (1.0 + 1e-9);
    if (!ok)
        fprintf(stderr, "oracle mismatch: got %.6e, want %s\n", got, printed);
    return ok;
}

static double rate(const qk_model_params *p, double km, qk_rate_kind k, bool opt)
{
    qk_model_point pt;
    CU_ASSERT_FATAL(qk_model_eval(p, km, k, opt, &pt) == 0);
    return pt.rate_per_pulse;
}

/* The reference table: L, eta, mu_opt, R_inf(mu_opt), R_inf(0.48), R_vw(mu_opt), R_no-decoy,
 * R_1-photon, PLOB (fibre only). */
static void test_oracle_table(void)
{
    static const struct {
        double km;
        const char *eta, *mu, *inf, *inf48, *vw, *nd, *sp, *plob;
    } rows[] = {
        {0, "4.500e-2", "0.486", "2.555e-3", "2.5546e-3", "2.416e-3", "1.529e-4", "1.205e-2", NULL},
        {10, "2.775e-2", "0.483", "1.567e-3", "1.567e-3", "1.481e-3", "5.55e-5", "7.43e-3",
         "1.383"},
        {25, "1.343e-2", "0.481", "7.544e-4", "7.5439e-4", "7.124e-4", "1.03e-5", "3.59e-3",
         "0.512"},
        {50, "4.011e-3", "0.479", "2.226e-4", "2.2260e-4", "2.100e-4", "0", "1.07e-3", "0.135"},
        {75, "1.197e-3", "0.478", "6.435e-5", "6.4348e-5", "6.060e-5", "0", "3.17e-4", "0.0389"},
        {100, "3.574e-4", "0.475", "1.719e-5", "1.7184e-5", "1.607e-5", "0", "9.19e-5", "0.0115"},
        {120, "1.359e-4", "0.467", "4.819e-6", "4.815e-6", "4.401e-6", "0", "3.27e-5", "4.36e-3"},
        {140, "5.167e-5", "0.434", "2.653e-7", "2.4645e-7", "1.178e-7", "0", "1.03e-5", "1.66e-3"},
    };
    qk_model_params p = gys();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        qk_model_point pt;
        CU_ASSERT_FATAL(qk_model_eval(&p, rows[i].km, QK_RATE_DECOY_INF, true, &pt) == 0);
        CU_ASSERT(oracle_ok(pt.eta, rows[i].eta));
        CU_ASSERT(oracle_ok(pt.mu, rows[i].mu));
        CU_ASSERT(oracle_ok(pt.rate_per_pulse, rows[i].inf));
        CU_ASSERT(fabs(pt.rate_bps - pt.rate_per_pulse * 2e6) <= 1e-12 * pt.rate_bps);
        CU_ASSERT(oracle_ok(rate(&p, rows[i].km, QK_RATE_DECOY_INF, false), rows[i].inf48));
        CU_ASSERT(oracle_ok(rate(&p, rows[i].km, QK_RATE_DECOY_VW, true), rows[i].vw));
        CU_ASSERT(oracle_ok(rate(&p, rows[i].km, QK_RATE_NO_DECOY, true), rows[i].nd));
        CU_ASSERT(oracle_ok(rate(&p, rows[i].km, QK_RATE_SINGLE_PHOTON, true), rows[i].sp));
        double plob = rate(&p, rows[i].km, QK_RATE_PLOB, false);
        if (rows[i].plob) {
            CU_ASSERT(oracle_ok(plob, rows[i].plob));
        } else {
            CU_ASSERT(isinf(plob));
        }
    }
}

/* The reference table's intermediate values at mu = 0.48. */
static void test_oracle_gain_qber(void)
{
    static const struct {
        double km;
        const char *q;
        double e;
    } rows[] = {{0, "2.1370e-2", 0.0330},
                {50, "1.9250e-3", 0.0334},
                {100, "1.7326e-4", 0.0376},
                {125, "5.2920e-5", 0.0480},
                {140, "2.6500e-5", 0.0630}};
    qk_model_params p = gys();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        qk_model_point pt;
        CU_ASSERT_FATAL(qk_model_eval(&p, rows[i].km, QK_RATE_DECOY_INF, false, &pt) == 0);
        CU_ASSERT(oracle_ok(pt.gain, rows[i].q));
        CU_ASSERT(fabs(pt.qber - rows[i].e) <= 5e-5); /* printed as a percentage, 2 decimals */
        CU_ASSERT_DOUBLE_EQUAL(pt.mu, 0.48, 0.0);
        CU_ASSERT_FALSE(pt.aborted);
    }
}

static void test_max_distance_gys(void)
{
    qk_model_params p = gys();
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&p, QK_RATE_DECOY_INF, true), 142.2, 0.05);
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&p, QK_RATE_DECOY_INF, false), 142.0, 0.05);
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&p, QK_RATE_DECOY_VW, true), 141.0, 0.05);
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&p, QK_RATE_NO_DECOY, true), 40.2, 0.05);
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&p, QK_RATE_SINGLE_PHOTON, true), 171.5, 0.05);
    CU_ASSERT(isinf(qk_model_max_distance(&p, QK_RATE_PLOB, true)));
    /* The root is a real sign change. */
    double d = qk_model_max_distance(&p, QK_RATE_DECOY_INF, true);
    CU_ASSERT(rate(&p, d - 0.01, QK_RATE_DECOY_INF, true) > 0.0);
    CU_ASSERT(rate(&p, d + 0.01, QK_RATE_DECOY_INF, true) == 0.0);
    /* No key anywhere: 0. */
    p.e_d = 0.2;
    CU_ASSERT_EQUAL(qk_model_max_distance(&p, QK_RATE_DECOY_INF, true), 0.0);
}

/* The optimiser beats every fixed mu. */
static void test_mu_optimum(void)
{
    qk_model_params p = gys();
    for (double km = 0; km <= 140; km += 35) {
        double best = rate(&p, km, QK_RATE_DECOY_INF, true);
        for (double mu = 0.05; mu <= 1.2; mu += 0.01) {
            p.mu = mu;
            CU_ASSERT(rate(&p, km, QK_RATE_DECOY_INF, false) <= best * (1.0 + 1e-9));
        }
        p.mu = 0.48;
    }
    /* No decoys: the optimal mu is of order eta, far below the decoy optimum. */
    qk_model_point pt;
    CU_ASSERT_FATAL(qk_model_eval(&p, 20, QK_RATE_NO_DECOY, true, &pt) == 0);
    CU_ASSERT(pt.rate_per_pulse > 0.0 && pt.mu < 0.1);
}

static const char *const *names(void)
{
    return qk_model_preset_names();
}

static void test_plob_dominates_and_decay(void)
{
    for (const char *const *n = names(); *n; n++) {
        qk_model_params p;
        CU_ASSERT_FATAL(qk_model_preset(*n, &p) == 0);
        for (int k = 0; k < QK_RATE_PLOB; k++) {
            double prev = HUGE_VAL, prev_bps = HUGE_VAL;
            for (double km = 1; km <= 300; km += 7) {
                qk_model_point pt, bound;
                CU_ASSERT_FATAL(qk_model_eval(&p, km, (qk_rate_kind)k, true, &pt) == 0);
                CU_ASSERT_FATAL(qk_model_eval(&p, km, QK_RATE_PLOB, false, &bound) == 0);
                CU_ASSERT(pt.rate_per_pulse <= bound.rate_per_pulse);
                CU_ASSERT(pt.rate_bps <= bound.rate_bps);
                CU_ASSERT(pt.rate_per_pulse >= 0.0 && pt.rate_bps >= 0.0);
                if (prev > 0.0) {
                    CU_ASSERT(pt.rate_per_pulse < prev);
                } else {
                    CU_ASSERT(pt.rate_per_pulse == 0.0);
                }
                CU_ASSERT(pt.rate_bps <= prev_bps);
                prev = pt.rate_per_pulse;
                prev_bps = pt.rate_bps;
            }
        }
    }
}

static void test_eavesdropper(void)
{
    qk_model_params p = gys();
    qk_model_point clean, eve;
    CU_ASSERT_FATAL(qk_model_eval(&p, 30, QK_RATE_DECOY_INF, false, &clean) == 0);
    p.eve_fraction = 0.1;
    CU_ASSERT_FATAL(qk_model_eval(&p, 30, QK_RATE_DECOY_INF, false, &eve) == 0);
    /* An intercepted bit is wrong with 25 % probability, independently of the other errors. */
    double d = 0.1 * 0.25;
    CU_ASSERT_DOUBLE_EQUAL(eve.qber, clean.qber + d * (1.0 - 2.0 * clean.qber), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(eve.e1, clean.e1 + d * (1.0 - 2.0 * clean.e1), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(eve.gain, clean.gain, 1e-15);
    CU_ASSERT(eve.rate_per_pulse < clean.rate_per_pulse);
    CU_ASSERT(qk_model_max_distance(&p, QK_RATE_DECOY_INF, true) < 142.0);
    /* 40 % intercepted: QBER about 13 % > 11 %: abort, no key, at every distance. */
    p.eve_fraction = 0.4;
    for (int k = 0; k < QK_RATE_PLOB; k++) {
        CU_ASSERT_FATAL(qk_model_eval(&p, 30, (qk_rate_kind)k, true, &eve) == 0);
        CU_ASSERT(eve.qber > p.qber_abort);
        CU_ASSERT_TRUE(eve.aborted);
        CU_ASSERT_EQUAL(eve.rate_per_pulse, 0.0);
        CU_ASSERT_EQUAL(eve.rate_bps, 0.0);
        CU_ASSERT_EQUAL(qk_model_max_distance(&p, (qk_rate_kind)k, true), 0.0);
    }
    /* Just below the threshold it is not aborted; lowering the threshold aborts it. */
    p.eve_fraction = 0.3;
    CU_ASSERT_FATAL(qk_model_eval(&p, 30, QK_RATE_SINGLE_PHOTON, true, &eve) == 0);
    CU_ASSERT(eve.qber < 0.11 && !eve.aborted);
    p.qber_abort = eve.qber - 1e-3;
    CU_ASSERT_FATAL(qk_model_eval(&p, 30, QK_RATE_SINGLE_PHOTON, true, &eve) == 0);
    CU_ASSERT_TRUE(eve.aborted);
    CU_ASSERT_EQUAL(eve.rate_per_pulse, 0.0);
}

static void test_extra_loss_is_distance(void)
{
    qk_model_params p = gys(), lossy = gys();
    lossy.extra_loss_db = 4.2; /* = 20 km of 0.21 dB/km fibre */
    for (int k = 0; k < N_KINDS; k++)
        for (double km = 0; km <= 100; km += 25) {
            qk_model_point a, b;
            CU_ASSERT_FATAL(qk_model_eval(&lossy, km, (qk_rate_kind)k, true, &a) == 0);
            CU_ASSERT_FATAL(qk_model_eval(&p, km + 20.0, (qk_rate_kind)k, true, &b) == 0);
            CU_ASSERT_DOUBLE_EQUAL(a.eta, b.eta, 1e-12 * b.eta);
            CU_ASSERT_DOUBLE_EQUAL(a.rate_per_pulse, b.rate_per_pulse, 1e-9 * b.rate_per_pulse);
        }
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&lossy, QK_RATE_DECOY_INF, true),
                           qk_model_max_distance(&p, QK_RATE_DECOY_INF, true) - 20.0, 1e-4);
}

static void test_caps(void)
{
    qk_model_params p = gys();
    qk_model_point free_pt, pt;
    p.rep_rate_hz = 1e9;
    CU_ASSERT_FATAL(qk_model_eval(&p, 5, QK_RATE_DECOY_INF, true, &free_pt) == 0);
    CU_ASSERT_DOUBLE_EQUAL(free_pt.rate_bps, free_pt.rate_per_pulse * 1e9, 1e-6);
    /* Dead time: non-paralysable, the clicks never exceed 1 / tau. */
    p.dead_time_s = 100e-9;
    CU_ASSERT_FATAL(qk_model_eval(&p, 5, QK_RATE_DECOY_INF, true, &pt) == 0);
    double clicks = pt.gain * 1e9;
    CU_ASSERT_DOUBLE_EQUAL(pt.rate_bps, free_pt.rate_bps / (1.0 + clicks * 100e-9),
                           1e-9 * pt.rate_bps);
    CU_ASSERT(clicks / (1.0 + clicks * 100e-9) < 1.0 / 100e-9);
    CU_ASSERT(pt.rate_bps < 0.5 * free_pt.rate_bps);
    CU_ASSERT_EQUAL(pt.rate_per_pulse, free_pt.rate_per_pulse);
    /* Post-processing throughput. */
    p.dead_time_s = 0.0;
    p.max_pp_bps = 1e5;
    CU_ASSERT_FATAL(qk_model_eval(&p, 5, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT_EQUAL(pt.rate_bps, 1e5);
    CU_ASSERT_FATAL(qk_model_eval(&p, 130, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT(pt.rate_bps > 0.0 && pt.rate_bps < 1e5); /* below the cap: untouched */
    CU_ASSERT_DOUBLE_EQUAL(pt.rate_bps, pt.rate_per_pulse * 1e9, 1e-9 * pt.rate_bps);
}

static void test_decoy_bounds(void)
{
    qk_model_params p;
    CU_ASSERT_FATAL(qk_model_preset("lim2014", &p) == 0); /* near-vacuum decoy 2e-4 */
    for (double km = 0; km <= 150; km += 30) {
        qk_model_point inf, vw;
        p.mu = 0.6;
        CU_ASSERT_FATAL(qk_model_eval(&p, km, QK_RATE_DECOY_INF, false, &inf) == 0);
        CU_ASSERT_FATAL(qk_model_eval(&p, km, QK_RATE_DECOY_VW, false, &vw) == 0);
        CU_ASSERT(vw.y1 <= inf.y1 && vw.y1 > 0.9 * inf.y1);
        CU_ASSERT(vw.e1 >= inf.e1);
        CU_ASSERT(vw.rate_per_pulse <= inf.rate_per_pulse);
    }
    /* mu must exceed nu_weak + nu_vac for the bounds. */
    p.mu = 0.1;
    qk_model_point pt;
    CU_ASSERT_EQUAL(qk_model_eval(&p, 10, QK_RATE_DECOY_VW, false, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, 10, QK_RATE_DECOY_INF, false, &pt), 0);
}

static void test_presets(void)
{
    size_t n = 0;
    for (const char *const *name = names(); *name; name++, n++) {
        qk_model_params p;
        CU_ASSERT_FATAL(qk_model_preset(*name, &p) == 0);
        CU_ASSERT_STRING_EQUAL(p.name, *name);
        qk_model_point pt;
        CU_ASSERT(qk_model_eval(&p, 10, QK_RATE_DECOY_INF, true, &pt) == 0 && pt.rate_bps > 0);
    }
    CU_ASSERT(n >= 4);
    qk_model_params p;
    CU_ASSERT_EQUAL(qk_model_preset("nope", &p), -1);
    CU_ASSERT_EQUAL(qk_model_preset(NULL, &p), -1);
    CU_ASSERT_EQUAL(qk_model_preset("gys", NULL), -1);

    /* Anchors the presets were fitted to (docs/sim-model.md), within 2 %. */
    qk_model_point pt;
    CU_ASSERT_FATAL(qk_model_preset("toshiba-metro", &p) == 0);
    CU_ASSERT_FATAL(qk_model_eval(&p, 10, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT_DOUBLE_EQUAL(pt.rate_bps, 13.72e6, 0.02 * 13.72e6);
    CU_ASSERT_FATAL(qk_model_eval(&p, 50, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT(pt.rate_bps > 1e6); /* Toshiba CRL: > 1 Mb/s over 50 km */
    CU_ASSERT_FATAL(qk_model_preset("snspd-metro", &p) == 0);
    CU_ASSERT_FATAL(qk_model_eval(&p, 10, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT_DOUBLE_EQUAL(pt.rate_bps, 64e6, 0.02 * 64e6);
    CU_ASSERT_FATAL(qk_model_eval(&p, 102.4, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT_DOUBLE_EQUAL(pt.rate_bps, 3.0e6, 0.02 * 3.0e6);
    /* Reference values: the Lim-2014-like set reaches 191 km, R(50 km) = 1.5e-3, mu_opt 0.87. */
    CU_ASSERT_FATAL(qk_model_preset("lim2014", &p) == 0);
    CU_ASSERT_FATAL(qk_model_eval(&p, 50, QK_RATE_DECOY_INF, true, &pt) == 0);
    CU_ASSERT(oracle_ok(pt.rate_per_pulse, "1.5e-3"));
    CU_ASSERT(oracle_ok(pt.mu, "0.87"));
    CU_ASSERT_DOUBLE_EQUAL(qk_model_max_distance(&p, QK_RATE_DECOY_INF, true), 191.0, 0.5);
}

/* The kind names: one spelling (hyphens), the underscore one of older sim.conf files accepted as
 * an alias, names and parser inverse of each other. */
static void test_kind_names(void)
{
    static const char *const want[QK_RATE_KIND_COUNT] = {"decoy-inf", "decoy-vw", "no-decoy",
                                                         "single-photon", "plob"};
    for (int k = 0; k < QK_RATE_KIND_COUNT; k++) {
        qk_rate_kind got = (qk_rate_kind)-1;
        bool alias = true;
        CU_ASSERT_STRING_EQUAL(qk_rate_kind_name((qk_rate_kind)k), want[k]);
        CU_ASSERT_EQUAL(qk_rate_kind_parse(want[k], &got, &alias), 0);
        CU_ASSERT_EQUAL(got, (qk_rate_kind)k);
        CU_ASSERT_FALSE(alias);
    }
    qk_rate_kind got;
    bool alias = false;
    CU_ASSERT_EQUAL(qk_rate_kind_parse("decoy_vw", &got, &alias), 0);
    CU_ASSERT_EQUAL(got, QK_RATE_DECOY_VW);
    CU_ASSERT_TRUE(alias);
    CU_ASSERT_EQUAL(qk_rate_kind_parse("single_photon", &got, NULL), 0);
    CU_ASSERT_EQUAL(got, QK_RATE_SINGLE_PHOTON);
    CU_ASSERT_EQUAL(qk_rate_kind_parse("decoy-vw ", &got, NULL), -1);
    CU_ASSERT_EQUAL(qk_rate_kind_parse("decoy_vw-", &got, NULL), -1);
    CU_ASSERT_EQUAL(qk_rate_kind_parse("decoy-Vw", &got, NULL), -1);
    CU_ASSERT_EQUAL(qk_rate_kind_parse("", &got, NULL), -1);
    CU_ASSERT_STRING_EQUAL(qk_rate_kind_name((qk_rate_kind)QK_RATE_KIND_COUNT), "?");
}

static void test_invalid(void)
{
    qk_model_point pt;
    qk_model_params p = gys();
    CU_ASSERT_EQUAL(qk_model_eval(NULL, 10, QK_RATE_DECOY_INF, true, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, 10, QK_RATE_DECOY_INF, true, NULL), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, -1, QK_RATE_DECOY_INF, true, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, NAN, QK_RATE_DECOY_INF, true, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, INFINITY, QK_RATE_DECOY_INF, true, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, 10, (qk_rate_kind)99, true, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_eval(&p, 10, (qk_rate_kind)-1, true, &pt), -1);
    CU_ASSERT_EQUAL(qk_model_max_distance(NULL, QK_RATE_DECOY_INF, true), -1.0);
    CU_ASSERT_EQUAL(qk_model_max_distance(&p, (qk_rate_kind)7, true), -1.0);

    static const struct {
        size_t off;
        double bad;
    } cases[] = {
        {offsetof(qk_model_params, alpha_db_km), 0.0},
        {offsetof(qk_model_params, alpha_db_km), -0.2},
        {offsetof(qk_model_params, eta_bob), 0.0},
        {offsetof(qk_model_params, eta_bob), 1.5},
        {offsetof(qk_model_params, y0), -1e-6},
        {offsetof(qk_model_params, y0), 0.7},
        {offsetof(qk_model_params, e_d), -0.01},
        {offsetof(qk_model_params, e_d), 0.6},
        {offsetof(qk_model_params, f_ec), 0.9},
        {offsetof(qk_model_params, q), 0.0},
        {offsetof(qk_model_params, q), 1.1},
        {offsetof(qk_model_params, rep_rate_hz), 0.0},
        {offsetof(qk_model_params, mu), 0.0},
        {offsetof(qk_model_params, mu), -0.5},
        {offsetof(qk_model_params, nu_weak), 0.0},
        {offsetof(qk_model_params, nu_vac), -0.1},
        {offsetof(qk_model_params, nu_vac), 0.06},
        {offsetof(qk_model_params, dead_time_s), -1e-9},
        {offsetof(qk_model_params, max_pp_bps), -1.0},
        {offsetof(qk_model_params, extra_loss_db), -3},
        {offsetof(qk_model_params, eve_fraction), -0.1},
        {offsetof(qk_model_params, eve_fraction), 1.1},
        {offsetof(qk_model_params, qber_abort), 0.0},
        {offsetof(qk_model_params, qber_abort), 0.6},
        {offsetof(qk_model_params, alpha_db_km), NAN},
        {offsetof(qk_model_params, y0), INFINITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qk_model_params bad = gys();
        memcpy((char *)&bad + cases[i].off, &cases[i].bad, sizeof(double));
        for (int k = 0; k < N_KINDS; k++) {
            CU_ASSERT_EQUAL(qk_model_eval(&bad, 10, (qk_rate_kind)k, true, &pt), -1);
            CU_ASSERT_EQUAL(qk_model_max_distance(&bad, (qk_rate_kind)k, true), -1.0);
        }
    }
    /* An unterminated name is refused too. */
    memset(p.name, 'x', sizeof p.name);
    CU_ASSERT_EQUAL(qk_model_eval(&p, 10, QK_RATE_DECOY_INF, true, &pt), -1);
}

int suite_sim_model(void)
{
    CU_pSuite s = CU_add_suite("sim_model", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "oracle table (GYS)", test_oracle_table) ||
        !CU_add_test(s, "oracle gain and QBER", test_oracle_gain_qber) ||
        !CU_add_test(s, "GYS maximum distances", test_max_distance_gys) ||
        !CU_add_test(s, "mu optimum", test_mu_optimum) ||
        !CU_add_test(s, "PLOB dominates, rates decay", test_plob_dominates_and_decay) ||
        !CU_add_test(s, "intercept-resend and abort", test_eavesdropper) ||
        !CU_add_test(s, "extra loss = distance", test_extra_loss_is_distance) ||
        !CU_add_test(s, "dead-time and post-processing caps", test_caps) ||
        !CU_add_test(s, "vacuum+weak bounds", test_decoy_bounds) ||
        !CU_add_test(s, "presets", test_presets) ||
        !CU_add_test(s, "kind names", test_kind_names) ||
        !CU_add_test(s, "invalid parameters", test_invalid))
        return -1;
    return 0;
}
