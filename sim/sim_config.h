/* sim_config.h - the configuration of `qkd-sim run` (INI, documented in docs/qkd-sim.md):
 * [sim] (control address, state file, log), [device] (the device client certificate and the
 * delivery timeouts) and one [link ID] section per simulated link. */
#ifndef QK_SIM_CONFIG_H
#define QK_SIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "model.h"
#include "qk_err.h"

#define QK_SIM_MAX_LINKS   64
#define QK_SIM_ID_MAX      65 /* link IDs: 1..64 chars [A-Za-z0-9_.~-] */
#define QK_SIM_PATH_MAX    1024
#define QK_SIM_URL_MAX     512
#define QK_SIM_MIN_BLOCK   64u /* bytes; the KME needs more than 32 */
#define QK_SIM_MAX_BLOCK   (4u * 1024u * 1024u)
#define QK_SIM_MAX_RETRIES 10u

typedef struct {
    char ca[QK_SIM_PATH_MAX], cert[QK_SIM_PATH_MAX], key[QK_SIM_PATH_MAX];
} qk_sim_creds;

typedef struct {
    char id[QK_SIM_ID_MAX];
    char url[2][QK_SIM_URL_MAX]; /* device API base URLs of end a and end b */
    qk_sim_creds creds;          /* from [device] unless the link overrides them */
    char preset[32];
    qk_model_params params; /* the preset with the overrides applied */
    double distance_km;
    qk_rate_kind kind;
    bool optimise_mu;
    double time_scale; /* delivered rate = model rate * time_scale */
    uint64_t block_bytes;
    int line; /* line of the section header (for errors) */
} qk_sim_link_cfg;

typedef struct {
    char control_host[64];
    uint16_t control_port;
    char state_file[QK_SIM_PATH_MAX]; /* "" = no persistence (time-based block IDs only) */
    char log_file[QK_SIM_PATH_MAX];
    qk_log_level log_level;
    uint64_t telemetry_ms;
    qk_sim_creds creds;
    uint64_t timeout_ms, connect_timeout_ms, retries;
    bool verify_host;
    qk_sim_link_cfg links[QK_SIM_MAX_LINKS];
    size_t nlinks;
} qk_sim_config;

/* Load and validate. Errors are "FILE:LINE: [section] key: message" (QK_EINVAL), or QK_EIO.
 * Relative file names are resolved against the config file's folder. */
int qk_sim_config_load(const char *path, qk_sim_config *cfg, qk_err *err);

#endif
