/* model.c - decoy-state BB84 over fibre, asymptotic GLLP: channel and detector model, gains and
 * QBERs, single-photon yield and error (exact for infinite decoys, bounded for vacuum+weak), the
 * no-decoy and single-photon rates, the PLOB bound, intercept-resend errors, abort and rate caps.
 * Equations and references: docs/sim-model.md. */
#include <math.h>
#include <string.h>

#include "model_int.h"

#define E0              0.5    /* error rate of a background (dark) count */
#define EVE_QBER        0.25   /* error rate intercept-resend adds to an intercepted bit */
#define MAX_DISTANCE_KM 1e5    /* largest distance accepted by qk_model_eval */
#define MAX_LOSS_DB     1000.0 /* largest extra loss accepted */

static bool in_range(double x, double lo, double hi)
{
    return isfinite(x) && x >= lo && x <= hi;
}

int qk_model_check(const qk_model_params *p)
{
    if (!p || memchr(p->name, '\0', sizeof p->name) == NULL)
        return -1;
    bool ok = in_range(p->alpha_db_km, 1e-3, 10.0) && p->eta_bob > 0.0 &&
              in_range(p->eta_bob, 0.0, 1.0) && in_range(p->y0, 0.0, 0.5) &&
              in_range(p->e_d, 0.0, 0.5) && in_range(p->f_ec, 1.0, 10.0) && p->q > 0.0 &&
              in_range(p->q, 0.0, 1.0) && p->rep_rate_hz > 0.0 &&
              in_range(p->rep_rate_hz, 0.0, 1e12) && p->mu > 0.0 && in_range(p->mu, 0.0, 10.0) &&
              in_range(p->nu_vac, 0.0, 1.0) && in_range(p->nu_weak, 0.0, 1.0) &&
              p->nu_weak > p->nu_vac && in_range(p->dead_time_s, 0.0, 1.0) &&
              in_range(p->max_pp_bps, 0.0, 1e12) && in_range(p->extra_loss_db, 0.0, MAX_LOSS_DB) &&
              in_range(p->eve_fraction, 0.0, 1.0) && p->qber_abort > 0.0 &&
              in_range(p->qber_abort, 0.0, 0.5);
    return ok ? 0 : -1;
}

int qk_model_check_kind(qk_rate_kind kind)
{
    return (kind >= QK_RATE_DECOY_INF && kind <= QK_RATE_PLOB) ? 0 : -1;
}

bool qk_model_kind_has_mu(qk_rate_kind kind)
{
    return kind == QK_RATE_DECOY_INF || kind == QK_RATE_DECOY_VW || kind == QK_RATE_NO_DECOY;
}

double qk_model_mu_floor(const qk_model_params *p, qk_rate_kind kind)
{
    if (kind == QK_RATE_DECOY_VW)
        return p->nu_weak + p->nu_vac + 0.01;
    return QK_MODEL_MU_MIN;
}

/* Binary entropy, clamped: 0 at x <= 0, 1 at x >= 1/2. */
static double h2(double x)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 0.5)
        return 1.0;
    return -x * log2(x) - (1.0 - x) * log2(1.0 - x);
}

/* An independent bit flip with probability d on top of error rate e. */
static double flip(double e, double d)
{
    return e + d * (1.0 - 2.0 * e);
}

/* Fibre transmittance including the extra (fault) loss. */
static double fibre_t(const qk_model_params *p, double distance_km)
{
    return pow(10.0, -(p->alpha_db_km * distance_km + p->extra_loss_db) / 10.0);
}

typedef struct {
    double eta; /* total transmittance */
    double d;   /* flip probability added by intercept-resend: eve_fraction * 25 % */
} channel;

/* Gain Q and error gain E*Q of intensity x: Q = 1 - (1 - Y0) e^(-eta x) (exact Poisson sum),
 * E Q = e0 Y0 + e_d (1 - e^(-eta x)), then the eavesdropper's flips. */
static void intensity(const qk_model_params *p, const channel *c, double x, double *q, double *eq)
{
    double click = -expm1(-c->eta * x);
    double gain = p->y0 + (1.0 - p->y0) * click;
    double err = E0 * p->y0 + p->e_d * click;
    *q = gain;
    *eq = err + c->d * (gain - 2.0 * err);
}

/* Exact single-photon yield and error: Y1 = Y0 + eta - Y0 eta, e1 = (e0 Y0 + e_d eta) / Y1. */
static void single_photon(const qk_model_params *p, const channel *c, double *y1, double *e1)
{
    *y1 = p->y0 + c->eta - p->y0 * c->eta;
    *e1 = flip((E0 * p->y0 + p->e_d * c->eta) / *y1, c->d);
}

/* Probability of two or more photons, 1 - (1 + mu) e^(-mu), without cancellation at small mu. */
static double multi_photon(double mu)
{
    if (mu >= 0.1)
        return 1.0 - (1.0 + mu) * exp(-mu);
    double term = mu * mu / 2.0, sum = 0.0;
    for (int n = 2; n < 16; n++) {
        sum += term;
        term *= mu / (n + 1);
    }
    return exp(-mu) * sum;
}

/* Vacuum + weak decoy bounds (Ma-Qi-Zhao-Lo 2005, general two-decoy form nu1 > nu2 >= 0). */
static void decoy_bounds(const qk_model_params *p, const channel *c, double mu, double q_mu,
                         double *y1l, double *e1u)
{
    double n1 = p->nu_weak, n2 = p->nu_vac, q1, eq1, q2, eq2;
    intensity(p, c, n1, &q1, &eq1);
    intensity(p, c, n2, &q2, &eq2);
    double y0l = fmax((n1 * q2 * exp(n2) - n2 * q1 * exp(n1)) / (n1 - n2), 0.0);
    double den = mu * n1 - mu * n2 - n1 * n1 + n2 * n2;
    double y =
        mu / den *
        (q1 * exp(n1) - q2 * exp(n2) - (n1 * n1 - n2 * n2) / (mu * mu) * (q_mu * exp(mu) - y0l));
    *y1l = y;
    *e1u = y > 0.0 ? (eq1 * exp(n1) - eq2 * exp(n2)) / ((n1 - n2) * y) : 0.5;
}

void qk_model_point_at(const qk_model_params *p, double distance_km, qk_rate_kind kind, double mu,
                       qk_model_point *out)
{
    memset(out, 0, sizeof *out);
    double t = fibre_t(p, distance_km);
    channel c = {t * p->eta_bob, p->eve_fraction * EVE_QBER};
    out->distance_km = distance_km;
    out->eta = c.eta;
    if (kind == QK_RATE_PLOB) {
        /* Repeaterless bound on the fibre transmissivity; -log2(1 - t) = -log1p(-t) / ln 2. */
        out->rate_per_pulse = t >= 1.0 ? HUGE_VAL : -log1p(-t) / M_LN2;
        return;
    }
    double y1, e1;
    single_photon(p, &c, &y1, &e1);
    if (kind == QK_RATE_SINGLE_PHOTON) {
        out->mu = 1.0;
        out->gain = y1;
        out->qber = e1;
        out->y1 = y1;
        out->e1 = e1;
        out->rate_per_pulse = p->q * y1 * (1.0 - p->f_ec * h2(e1) - h2(e1));
        return;
    }
    double q, eq;
    intensity(p, &c, mu, &q, &eq);
    double e = eq / q;
    double leak = q * p->f_ec * h2(e);
    out->mu = mu;
    out->gain = q;
    out->qber = e;
    if (kind == QK_RATE_NO_DECOY) {
        double delta = multi_photon(mu) / q; /* tagged fraction, upper bound */
        double untagged = delta < 1.0 ? q * (1.0 - delta) * (1.0 - h2(e / (1.0 - delta))) : 0.0;
        out->y1 = y1;
        out->e1 = e1;
        out->rate_per_pulse = p->q * (untagged - leak);
        return;
    }
    if (kind == QK_RATE_DECOY_VW) {
        decoy_bounds(p, &c, mu, q, &y1, &e1);
        y1 = fmax(y1, 0.0);
        e1 = fmin(fmax(e1, 0.0), 0.5);
    }
    out->y1 = y1;
    out->e1 = e1;
    out->rate_per_pulse = p->q * (y1 * mu * exp(-mu) * (1.0 - h2(e1)) - leak);
}

/* Secret bits per second: rate x f_rep, scaled by the non-paralysable dead-time factor
 * 1 / (1 + clicks * tau), then capped by the post-processing throughput. */
static double rate_bps(const qk_model_params *p, qk_rate_kind kind, const qk_model_point *pt)
{
    double bps = pt->rate_per_pulse * p->rep_rate_hz;
    if (kind == QK_RATE_PLOB)
        return bps;
    if (p->dead_time_s > 0.0)
        bps /= 1.0 + pt->gain * p->rep_rate_hz * p->dead_time_s;
    if (p->max_pp_bps > 0.0)
        bps = fmin(bps, p->max_pp_bps);
    return bps;
}

int qk_model_eval(const qk_model_params *p, double distance_km, qk_rate_kind kind, bool optimise_mu,
                  qk_model_point *out)
{
    if (!out || qk_model_check(p) != 0 || qk_model_check_kind(kind) != 0 ||
        !in_range(distance_km, 0.0, MAX_DISTANCE_KM))
        return -1;
    double mu = p->mu;
    if (qk_model_kind_has_mu(kind) && optimise_mu)
        mu = qk_model_best_mu(p, distance_km, kind);
    else if (kind == QK_RATE_DECOY_VW && mu <= p->nu_weak + p->nu_vac)
        return -1; /* the bounds need mu > nu_weak + nu_vac */
    qk_model_point_at(p, distance_km, kind, mu, out);
    if (!(out->rate_per_pulse > 0.0))
        out->rate_per_pulse = 0.0;
    if (kind != QK_RATE_PLOB && out->qber > p->qber_abort) {
        out->aborted = true;
        out->rate_per_pulse = 0.0;
    }
    out->rate_bps = rate_bps(p, kind, out);
    return 0;
}
