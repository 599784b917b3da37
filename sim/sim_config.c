/* sim_config.c - load and check the `qkd-sim run` INI configuration. */
#include "sim_config.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ini_config.h"
#include "log.h"

/* Model parameters a [link] section may override, applied after its preset. */
typedef struct {
    const char *key;
    size_t off;
    double min, max;
} param_key;

#define P(name, lo, hi)                                                                            \
    {                                                                                              \
#name, offsetof(qk_model_params, name), lo, hi                                             \
    }
static const param_key PARAMS[] = {
    P(alpha_db_km, 0.0, 10.0),
    P(eta_bob, 1e-6, 1.0),
    P(y0, 0.0, 0.5),
    P(e_d, 0.0, 0.5),
    P(f_ec, 1.0, 10.0),
    P(q, 1e-3, 1.0),
    P(rep_rate_hz, 1.0, 1e12),
    P(mu, 1e-6, 10.0),
    P(nu_weak, 0.0, 10.0),
    P(nu_vac, 0.0, 1.0),
    P(dead_time_s, 0.0, 1.0),
    P(max_pp_bps, 0.0, 1e12),
    P(extra_loss_db, 0.0, 100.0),
    P(eve_fraction, 0.0, 1.0),
    P(qber_abort, 0.0, 0.5),
};
#undef P
#define NPARAMS (sizeof PARAMS / sizeof PARAMS[0])

typedef struct {
    double v[NPARAMS];
    bool set[NPARAMS];
    bool have_url[2], have_preset, have_distance;
    bool creds_set[3];
} link_extra;

typedef struct {
    qk_sim_config *cfg;
    char dir[QK_SIM_PATH_MAX];
    link_extra extra[QK_SIM_MAX_LINKS];
    bool device_creds_set[3];
    char last_section[128];
    const char *path;
} load_ctx;

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= QK_SIM_ID_MAX)
        return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.~-", *s))
            return false;
    return true;
}

/* Resolve a file name against the config folder. */
static int path_value(const load_ctx *c, const char *v, char *out, qk_err *err)
{
    int n;
    if (!*v)
        return qk_err_set(err, QK_EINVAL, "empty file name");
    if (v[0] == '/' || !c->dir[0])
        n = snprintf(out, QK_SIM_PATH_MAX, "%s", v);
    else
        n = snprintf(out, QK_SIM_PATH_MAX, "%s/%s", c->dir, v);
    if (n < 0 || n >= QK_SIM_PATH_MAX)
        return qk_err_set(err, QK_EINVAL, "file name too long");
    return 0;
}

static int url_value(const char *v, char *out, qk_err *err)
{
    if (strncmp(v, "https://", 8) != 0)
        return qk_err_set(err, QK_EINVAL, "must be an https:// URL (the KME's device listener)");
    if (strpbrk(v, " \t\r\n?#"))
        return qk_err_set(err, QK_EINVAL, "must not hold spaces, '?' or '#'");
    if (qk_parse_str(v, out, QK_SIM_URL_MAX, err) != 0)
        return QK_EINVAL;
    size_t n = strlen(out);
    while (n > 8 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

static int creds_key(load_ctx *c, qk_sim_creds *cr, bool *set, const char *key, const char *v,
                     qk_err *err, bool *handled)
{
    *handled = true;
    if (strcmp(key, "ca") == 0) {
        set[0] = true;
        return path_value(c, v, cr->ca, err);
    }
    if (strcmp(key, "cert") == 0) {
        set[1] = true;
        return path_value(c, v, cr->cert, err);
    }
    if (strcmp(key, "key") == 0) {
        set[2] = true;
        return path_value(c, v, cr->key, err);
    }
    *handled = false;
    return 0;
}

static int sim_key(load_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_sim_config *cfg = c->cfg;
    if (strcmp(key, "control") == 0) {
        if (qk_parse_hostport(v, cfg->control_host, sizeof cfg->control_host, &cfg->control_port,
                              err) != 0)
            return QK_EINVAL;
        if (strcmp(cfg->control_host, "127.0.0.1") != 0 && strcmp(cfg->control_host, "::1") != 0)
            return qk_err_set(err, QK_EINVAL, "the control API binds a loopback address only");
        return 0;
    }
    if (strcmp(key, "state_file") == 0)
        return path_value(c, v, cfg->state_file, err);
    if (strcmp(key, "log_file") == 0) {
        if (strcmp(v, "-") == 0)
            return qk_parse_str(v, cfg->log_file, sizeof cfg->log_file, err);
        return path_value(c, v, cfg->log_file, err);
    }
    if (strcmp(key, "log_level") == 0) {
        if (qk_log_level_parse(v, &cfg->log_level) != 0)
            return qk_err_set(err, QK_EINVAL, "debug, info, warn or error");
        return 0;
    }
    if (strcmp(key, "telemetry_interval") == 0)
        return qk_parse_duration_ms(v, 100, 60000, &cfg->telemetry_ms, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int device_key(load_ctx *c, const char *key, const char *v, qk_err *err)
{
    qk_sim_config *cfg = c->cfg;
    bool handled;
    int rc = creds_key(c, &cfg->creds, c->device_creds_set, key, v, err, &handled);
    if (handled)
        return rc;
    if (strcmp(key, "timeout") == 0)
        return qk_parse_duration_ms(v, 100, 60000, &cfg->timeout_ms, err);
    if (strcmp(key, "connect_timeout") == 0)
        return qk_parse_duration_ms(v, 100, 60000, &cfg->connect_timeout_ms, err);
    if (strcmp(key, "retries") == 0)
        return qk_parse_u64(v, 0, QK_SIM_MAX_RETRIES, &cfg->retries, err);
    if (strcmp(key, "verify_host") == 0)
        return qk_parse_bool(v, &cfg->verify_host, err);
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static qk_sim_link_cfg *find_or_add_link(load_ctx *c, const char *name, qk_err *err)
{
    qk_sim_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->nlinks; i++)
        if (strcmp(cfg->links[i].id, name) == 0)
            return &cfg->links[i];
    if (!valid_id(name)) {
        qk_err_set(err, QK_EINVAL, "link ID must be 1..64 chars [A-Za-z0-9_.~-]");
        return NULL;
    }
    if (cfg->nlinks >= QK_SIM_MAX_LINKS) {
        qk_err_set(err, QK_ELIMIT, "too many links (limit %d)", QK_SIM_MAX_LINKS);
        return NULL;
    }
    qk_sim_link_cfg *l = &cfg->links[cfg->nlinks++];
    memset(l, 0, sizeof *l);
    snprintf(l->id, sizeof l->id, "%s", name);
    snprintf(l->preset, sizeof l->preset, "gys");
    l->kind = QK_RATE_KIND_DEFAULT;
    l->optimise_mu = true;
    l->time_scale = 1.0;
    l->block_bytes = 4096;
    return l;
}

static int link_key(load_ctx *c, qk_sim_link_cfg *l, const char *key, const char *v, qk_err *err)
{
    link_extra *x = &c->extra[l - c->cfg->links];
    bool handled;
    int rc = creds_key(c, &l->creds, x->creds_set, key, v, err, &handled);
    if (handled)
        return rc;
    if (strcmp(key, "kme_a_url") == 0 || strcmp(key, "kme_b_url") == 0) {
        int e = key[4] == 'a' ? 0 : 1;
        x->have_url[e] = true;
        return url_value(v, l->url[e], err);
    }
    if (strcmp(key, "preset") == 0) {
        qk_model_params tmp;
        if (qk_model_preset(v, &tmp) != 0)
            return qk_err_set(err, QK_EINVAL, "unknown preset (see qkd-sim model --help)");
        x->have_preset = true;
        return qk_parse_str(v, l->preset, sizeof l->preset, err);
    }
    if (strcmp(key, "distance") == 0) {
        x->have_distance = true;
        return qk_parse_double(v, 0.0, 1000.0, &l->distance_km, err);
    }
    if (strcmp(key, "time_scale") == 0)
        return qk_parse_double(v, 1e-6, 1e6, &l->time_scale, err);
    if (strcmp(key, "block_bytes") == 0)
        return qk_parse_u64(v, QK_SIM_MIN_BLOCK, QK_SIM_MAX_BLOCK, &l->block_bytes, err);
    if (strcmp(key, "rate_kind") == 0) {
        bool alias = false;
        if (qk_rate_kind_parse(v, &l->kind, &alias) != 0)
            return qk_err_set(err, QK_EINVAL,
                              "decoy-vw, decoy-inf, no-decoy, single-photon or plob");
        if (alias)
            QK_WARN("%s: [link %s] rate_kind = %s: deprecated spelling, use %s", c->path, l->id, v,
                    qk_rate_kind_name(l->kind));
        return 0;
    }
    if (strcmp(key, "optimise_mu") == 0)
        return qk_parse_bool(v, &l->optimise_mu, err);
    for (size_t i = 0; i < NPARAMS; i++)
        if (strcmp(key, PARAMS[i].key) == 0) {
            x->set[i] = true;
            return qk_parse_double(v, PARAMS[i].min, PARAMS[i].max, &x->v[i], err);
        }
    return qk_err_set(err, QK_EINVAL, "unknown key");
}

static int on_key(void *user, const char *section, const char *key, const char *value, qk_err *err)
{
    load_ctx *c = user;
    char kind[32], name[QK_SIM_ID_MAX];
    if (qk_ini_section_split(section, kind, sizeof kind, name, sizeof name) != 0)
        return qk_err_set(err, QK_EINVAL, "bad section name (IDs: at most 64 chars)");
    if (strcmp(kind, "sim") == 0 && !name[0])
        return sim_key(c, key, value, err);
    if (strcmp(kind, "device") == 0 && !name[0])
        return device_key(c, key, value, err);
    if (strcmp(kind, "link") == 0) {
        qk_sim_link_cfg *l = find_or_add_link(c, name, err);
        if (!l)
            return QK_EINVAL;
        return link_key(c, l, key, value, err);
    }
    return qk_err_set(err, QK_EINVAL, "unknown section (sim, device or link ID)");
}

/* Checks after loading: required keys, credentials, the preset with its overrides. */
static int finish(load_ctx *c, const char *path, qk_err *err)
{
    qk_sim_config *cfg = c->cfg;
    if (cfg->nlinks == 0)
        return qk_err_set(err, QK_EINVAL, "%s: no [link ID] section", path);
    for (size_t i = 0; i < cfg->nlinks; i++) {
        qk_sim_link_cfg *l = &cfg->links[i];
        link_extra *x = &c->extra[i];
        if (!x->have_url[0] || !x->have_url[1])
            return qk_err_set(err, QK_EINVAL, "%s: [link %s]: kme_a_url and kme_b_url required",
                              path, l->id);
        if (!x->have_distance)
            return qk_err_set(err, QK_EINVAL, "%s: [link %s]: distance required", path, l->id);
        if (!x->creds_set[0])
            memcpy(l->creds.ca, cfg->creds.ca, sizeof l->creds.ca);
        if (!x->creds_set[1])
            memcpy(l->creds.cert, cfg->creds.cert, sizeof l->creds.cert);
        if (!x->creds_set[2])
            memcpy(l->creds.key, cfg->creds.key, sizeof l->creds.key);
        if (!l->creds.ca[0] || !l->creds.cert[0] || !l->creds.key[0])
            return qk_err_set(err, QK_EINVAL,
                              "%s: [link %s]: ca, cert and key required (in [device] or the link)",
                              path, l->id);
        if (qk_model_preset(l->preset, &l->params) != 0)
            return qk_err_set(err, QK_EINVAL, "%s: [link %s]: unknown preset %s", path, l->id,
                              l->preset);
        for (size_t k = 0; k < NPARAMS; k++)
            if (x->set[k])
                memcpy((char *)&l->params + PARAMS[k].off, &x->v[k], sizeof(double));
        qk_model_point pt;
        if (qk_model_eval(&l->params, l->distance_km, l->kind, l->optimise_mu, &pt) != 0)
            return qk_err_set(err, QK_EINVAL, "%s: [link %s]: the model rejects these parameters",
                              path, l->id);
        if (l->block_bytes * 8 > (uint64_t)1 << 40)
            return qk_err_set(err, QK_EINVAL, "%s: [link %s]: block too large", path, l->id);
    }
    return 0;
}

int qk_sim_config_load(const char *path, qk_sim_config *cfg, qk_err *err)
{
    load_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return qk_err_set(err, QK_ENOMEM, "out of memory");
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->control_host, sizeof cfg->control_host, "127.0.0.1");
    snprintf(cfg->log_file, sizeof cfg->log_file, "-");
    cfg->log_level = QK_LOG_INFO;
    cfg->telemetry_ms = 1000;
    cfg->timeout_ms = 3000;
    cfg->connect_timeout_ms = 1000;
    cfg->retries = 2;
    cfg->verify_host = true;
    c->cfg = cfg;
    c->path = path;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof c->dir) {
            free(c);
            return qk_err_set(err, QK_EINVAL, "%s: path too long", path);
        }
        memcpy(c->dir, path, n);
        c->dir[n] = '\0';
        if (n == 0)
            snprintf(c->dir, sizeof c->dir, "/");
    }
    int rc = qk_ini_load(path, on_key, c, err);
    if (rc == 0)
        rc = finish(c, path, err);
    free(c);
    return rc;
}
