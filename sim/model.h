/* model.h - the physical key-rate model of a QKD link: decoy-state BB84 over fibre, asymptotic
 * GLLP (Lo-Ma-Chen 2005), with the comparison rates (no-decoy GLLP, ideal single photon, PLOB).
 * See docs/sim-model.md (equations, sources, reference values). Pure functions, no I/O. */
#ifndef QK_SIM_MODEL_H
#define QK_SIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char name[32];
    double alpha_db_km;   /* fibre attenuation, dB/km */
    double eta_bob;       /* Bob's detection efficiency incl. his optical loss (0..1] */
    double y0;            /* dark-count yield per pulse */
    double e_d;           /* misalignment error probability */
    double f_ec;          /* error-correction inefficiency (>= 1) */
    double q;             /* sifting factor (1/2 for BB84) */
    double rep_rate_hz;   /* pulse repetition rate */
    double mu;            /* signal mean photon number (used when not optimising) */
    double nu_weak;       /* weak decoy intensity (vacuum+weak bounds) */
    double nu_vac;        /* vacuum decoy intensity (normally 0) */
    double dead_time_s;   /* detector dead time; caps the detection rate (0 = none) */
    double max_pp_bps;    /* post-processing throughput cap on the secret key (0 = none) */
    double extra_loss_db; /* fault injection: added channel loss */
    double eve_fraction;  /* fault injection: intercept-resend fraction (0..1) */
    double qber_abort;    /* the protocol aborts (no key) above this QBER (e.g. 0.11) */
} qk_model_params;

typedef enum {
    QK_RATE_DECOY_INF = 0, /* infinite decoys: exact Y1, e1 */
    QK_RATE_DECOY_VW,      /* vacuum + weak decoy bounds */
    QK_RATE_NO_DECOY,      /* GLLP without decoys */
    QK_RATE_SINGLE_PHOTON, /* ideal single-photon source */
    QK_RATE_PLOB           /* repeaterless bound -log2(1-eta) */
} qk_rate_kind;

#define QK_RATE_KIND_COUNT 5
/* The kind `qkd-sim model` tabulates and a simulated link (sim.conf, qkd-lab) runs at when none
 * is named: vacuum + weak decoys, what a deployed decoy-state link achieves. */
#define QK_RATE_KIND_DEFAULT QK_RATE_DECOY_VW

/* One spelling everywhere (qkd-sim model --kind, sim.conf rate_kind, JSON): "decoy-inf",
 * "decoy-vw", "no-decoy", "single-photon", "plob"; "?" for an invalid kind. */
const char *qk_rate_kind_name(qk_rate_kind k);
/* Parse a kind name. The underscore spelling of earlier sim.conf files ("decoy_vw") is accepted
 * as a deprecated alias: *alias (may be NULL) is then set true. Returns 0 or -1. */
int qk_rate_kind_parse(const char *s, qk_rate_kind *out, bool *alias);

typedef struct {
    double distance_km;
    double eta;            /* total transmittance incl. Bob */
    double gain;           /* Q_mu */
    double qber;           /* E_mu (after eavesdropping) */
    double y1, e1;         /* single-photon yield and error used (bounds for VW) */
    double mu;             /* the mean photon number used (optimal when optimised) */
    double rate_per_pulse; /* secret bits per pulse (>= 0) */
    double rate_bps; /* rate_per_pulse * rep_rate, after the dead-time and post-processing caps */
    bool aborted;    /* QBER above qber_abort: no key */
} qk_model_point;

/* Names of the built-in presets, NULL-terminated ("gys", "lim2014", ...). */
const char *const *qk_model_preset_names(void);
/* Fill p from a preset; returns 0 or -1 for an unknown name. */
int qk_model_preset(const char *name, qk_model_params *p);

/* Evaluate at a distance. optimise_mu: search the mu maximising the rate (kinds with a source
 * intensity); else use p->mu. Returns 0, or -1 for invalid parameters. */
int qk_model_eval(const qk_model_params *p, double distance_km, qk_rate_kind kind, bool optimise_mu,
                  qk_model_point *out);

/* Largest distance with a positive rate (root finding), in km; 0 if none. HUGE_VAL for
 * QK_RATE_PLOB (positive at every distance); -1 for invalid parameters. */
double qk_model_max_distance(const qk_model_params *p, qk_rate_kind kind, bool optimise_mu);

#endif
