/* model_presets.c - built-in parameter sets for the key-rate model and the rate-kind names. Every
 * value's source is in docs/sim-model.md ("Presets"); fitted values say what they were fitted
 * to. */
#include <string.h>

#include "model.h"

static const qk_model_params PRESETS[] = {
    /* Gobby-Yuan-Shields, APL 84, 3762 (2004), as used by Lo-Ma-Chen 2005 and Ma et al. 2005. */
    {.name = "gys",
     .alpha_db_km = 0.21,
     .eta_bob = 0.045,
     .y0 = 1.7e-6,
     .e_d = 0.033,
     .f_ec = 1.22,
     .q = 0.5,
     .rep_rate_hz = 2e6,
     .mu = 0.48,
     .nu_weak = 0.05,
     .nu_vac = 0.0,
     .qber_abort = 0.11},
    /* Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), evaluation parameters
     * (asymptotic, no afterpulsing; Y0 = 2 p_dc; standard sifting; assumed 1 GHz clock). */
    {.name = "lim2014",
     .alpha_db_km = 0.2,
     .eta_bob = 0.10,
     .y0 = 1.2e-6,
     .e_d = 0.005,
     .f_ec = 1.16,
     .q = 0.5,
     .rep_rate_hz = 1e9,
     .mu = 0.87,
     .nu_weak = 0.1,
     .nu_vac = 2e-4,
     .qber_abort = 0.11},
    /* Toshiba-class metro link, anchored on Yuan et al., JLT 36, 3427 (2018): 13.72 Mb/s over a
     * 2 dB (10 km) channel; efficient BB84 at 1 GHz, self-differencing InGaAs APDs (500 MHz
     * maximum count rate), error correction at 55 Mb/s. eta_bob fitted to the anchor. */
    {.name = "toshiba-metro",
     .alpha_db_km = 0.2,
     .eta_bob = 0.1395,
     .y0 = 1e-6,
     .e_d = 0.02,
     .f_ec = 1.1,
     .q = 0.9,
     .rep_rate_hz = 1e9,
     .mu = 0.5,
     .nu_weak = 0.1,
     .nu_vac = 0.0,
     .dead_time_s = 2e-9,
     .max_pp_bps = 55e6,
     .qber_abort = 0.11},
    /* High-rate SNSPD link, anchored on Gruenenfelder et al., Nat. Photon. 17, 422 (2023):
     * 64 Mb/s at 10.0 km and 3.0 Mb/s at 102.4 km, 2.5 GHz clock. eta_bob fitted to the
     * 102.4 km point, the detector dead time to the 10 km point. */
    {.name = "snspd-metro",
     .alpha_db_km = 0.2,
     .eta_bob = 0.597,
     .y0 = 1e-7,
     .e_d = 0.01,
     .f_ec = 1.1,
     .q = 0.9,
     .rep_rate_hz = 2.5e9,
     .mu = 0.5,
     .nu_weak = 0.1,
     .nu_vac = 0.0,
     .dead_time_s = 3.8e-9,
     .qber_abort = 0.11},
};

#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

/* The names of PRESETS, in the same order (test_sim_model checks they match). */
static const char *const NAMES[] = {"gys", "lim2014", "toshiba-metro", "snspd-metro", NULL};

const char *const *qk_model_preset_names(void)
{
    return NAMES;
}

int qk_model_preset(const char *name, qk_model_params *p)
{
    if (!name || !p)
        return -1;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (strcmp(name, PRESETS[i].name) == 0) {
            *p = PRESETS[i];
            return 0;
        }
    return -1;
}

static const char *const KIND_NAMES[QK_RATE_KIND_COUNT] = {"decoy-inf", "decoy-vw", "no-decoy",
                                                           "single-photon", "plob"};

const char *qk_rate_kind_name(qk_rate_kind k)
{
    if ((unsigned)k < QK_RATE_KIND_COUNT)
        return KIND_NAMES[k];
    return "?";
}

int qk_rate_kind_parse(const char *s, qk_rate_kind *out, bool *alias)
{
    for (size_t i = 0; i < QK_RATE_KIND_COUNT; i++) {
        const char *n = KIND_NAMES[i];
        size_t len = strlen(n);
        if (strlen(s) != len)
            continue;
        bool exact = true, underscored = true;
        for (size_t j = 0; j < len; j++) {
            exact = exact && s[j] == n[j];
            underscored = underscored && s[j] == (n[j] == '-' ? '_' : n[j]);
        }
        if (exact || underscored) {
            *out = (qk_rate_kind)i;
            if (alias)
                *alias = !exact;
            return 0;
        }
    }
    return -1;
}
