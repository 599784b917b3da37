/* model_int.h - internals shared by the model modules (model.c, model_search.c). Not part of the
 * public API in model.h. */
#ifndef QK_SIM_MODEL_INT_H
#define QK_SIM_MODEL_INT_H

#include "model.h"

/* Bounds of the mean-photon-number search (model_search.c). */
#define QK_MODEL_MU_MIN 1e-5
#define QK_MODEL_MU_MAX 1.5

/* 0 when every field of p is finite and in range, -1 otherwise (model.c). */
int qk_model_check(const qk_model_params *p);
/* 0 when kind is one of the qk_rate_kind values. */
int qk_model_check_kind(qk_rate_kind kind);
/* true for the kinds whose rate depends on the signal intensity mu. */
bool qk_model_kind_has_mu(qk_rate_kind kind);
/* Smallest mu the search may use for kind (the vacuum+weak bounds need mu > nu_weak + nu_vac). */
double qk_model_mu_floor(const qk_model_params *p, qk_rate_kind kind);

/* Fill out at distance_km and intensity mu (p already checked): channel, gain, QBER, Y1, e1 and
 * rate_per_pulse before clamping, abort and caps (it may be negative). */
void qk_model_point_at(const qk_model_params *p, double distance_km, qk_rate_kind kind, double mu,
                       qk_model_point *out);

/* The mu in [qk_model_mu_floor, QK_MODEL_MU_MAX] maximising the unclamped rate; p->mu (clamped
 * to that interval) when no mu gives a positive rate (model_search.c). */
double qk_model_best_mu(const qk_model_params *p, double distance_km, qk_rate_kind kind);

#endif
