/* model_search.c - numerical searches on the key-rate model: the optimal mean photon number
 * (log-spaced grid, then golden-section refinement, bounded iterations) and the maximum distance
 * (bracket by doubling, then bisection, bounded iterations). */
#include <math.h>

#include "model_int.h"

#define MU_GRID       160  /* log-spaced grid points over the mu interval */
#define GOLDEN_ITERS  80   /* golden-section steps on the bracketing grid cell */
#define DIST_START_KM 50.0 /* first upper bracket of the maximum distance */
#define DIST_MAX_KM   1e5  /* the search never goes beyond this */
#define BISECT_ITERS  64
#define BISECT_TOL_KM 1e-6

static double rate_log_mu(const qk_model_params *p, double distance_km, qk_rate_kind kind,
                          double log_mu)
{
    qk_model_point pt;
    qk_model_point_at(p, distance_km, kind, exp(log_mu), &pt);
    return pt.rate_per_pulse;
}

double qk_model_best_mu(const qk_model_params *p, double distance_km, qk_rate_kind kind)
{
    double lo = log(qk_model_mu_floor(p, kind)), hi = log(QK_MODEL_MU_MAX);
    double step = (hi - lo) / (MU_GRID - 1);
    int best = 0;
    double best_rate = -HUGE_VAL;
    for (int i = 0; i < MU_GRID; i++) {
        double r = rate_log_mu(p, distance_km, kind, lo + step * i);
        if (r > best_rate) {
            best_rate = r;
            best = i;
        }
    }
    /* Golden section on the grid cells either side of the best point (R(mu) is unimodal there). */
    double a = lo + step * (best > 0 ? best - 1 : 0);
    double b = lo + step * (best < MU_GRID - 1 ? best + 1 : MU_GRID - 1);
    const double g = (sqrt(5.0) - 1.0) / 2.0;
    double c = b - g * (b - a), d = a + g * (b - a);
    double fc = rate_log_mu(p, distance_km, kind, c), fd = rate_log_mu(p, distance_km, kind, d);
    for (int i = 0; i < GOLDEN_ITERS && b - a > 1e-12; i++) {
        if (fc > fd) {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = rate_log_mu(p, distance_km, kind, c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = rate_log_mu(p, distance_km, kind, d);
        }
    }
    double x = (a + b) / 2.0;
    /* Never return worse than the best grid point (flat or non-unimodal corner cases). */
    if (rate_log_mu(p, distance_km, kind, x) < best_rate)
        x = lo + step * best;
    /* No intensity gives key: report the configured one rather than the least-bad corner. */
    if (!(best_rate > 0.0))
        return fmin(fmax(p->mu, exp(lo)), QK_MODEL_MU_MAX);
    return exp(x);
}

static bool positive(const qk_model_params *p, double distance_km, qk_rate_kind kind,
                     bool optimise_mu)
{
    qk_model_point pt;
    return qk_model_eval(p, distance_km, kind, optimise_mu, &pt) == 0 && pt.rate_per_pulse > 0.0;
}

double qk_model_max_distance(const qk_model_params *p, qk_rate_kind kind, bool optimise_mu)
{
    if (qk_model_check(p) != 0 || qk_model_check_kind(kind) != 0)
        return -1.0;
    if (kind == QK_RATE_PLOB)
        return HUGE_VAL;
    qk_model_point pt;
    if (qk_model_eval(p, 0.0, kind, optimise_mu, &pt) != 0)
        return -1.0;
    if (!(pt.rate_per_pulse > 0.0))
        return 0.0;
    double lo = 0.0, hi = DIST_START_KM;
    while (positive(p, hi, kind, optimise_mu)) {
        lo = hi;
        if (hi >= DIST_MAX_KM)
            return DIST_MAX_KM;
        hi = fmin(hi * 2.0, DIST_MAX_KM);
    }
    for (int i = 0; i < BISECT_ITERS && hi - lo > BISECT_TOL_KM; i++) {
        double mid = (lo + hi) / 2.0;
        if (positive(p, mid, kind, optimise_mu))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}
