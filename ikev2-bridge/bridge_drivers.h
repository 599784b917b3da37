/* bridge_drivers.h - constructors of the gateway drivers (gw_driver.h) and helpers for the
 * files they own. */
#ifndef QKB_BRIDGE_DRIVERS_H
#define QKB_BRIDGE_DRIVERS_H

#include "bridge_config.h"
#include "gw_driver.h"

int drv_strongswan_new(const qkb_config *cfg, gw_driver **out, qk_err *err);
int drv_libreswan_new(const qkb_config *cfg, gw_driver **out, qk_err *err);
int drv_macsec_new(const qkb_config *cfg, gw_driver **out, qk_err *err);
int drv_wireguard_new(const qkb_config *cfg, gw_driver **out, qk_err *err);
/* The driver named in cfg->driver. */
int gw_driver_new(const qkb_config *cfg, gw_driver **out, qk_err *err);

/* Write a file that holds keys: a temporary file created 0600 in the same directory, written,
 * fsync'ed and renamed over path; the previous content of path is overwritten with zeros and
 * fsync'ed first (wiped on rotation). Returns 0 or QK_EIO/QK_ESTORAGE. */
int secret_file_replace(const char *path, const char *data, size_t len, qk_err *err);
/* Overwrite a file with zeros, fsync, unlink. Missing file: 0. */
int secret_file_wipe(const char *path, qk_err *err);

/* Run argv (no shell) with stdin fed from in (may be NULL), stdout+stderr captured into out
 * (NUL-terminated, truncated to cap), bounded by timeout_ms (then killed). Returns the exit
 * status (0..255), or a negative qk_status. */
int run_cmd(char *const argv[], const char *in, size_t in_len, char *out, size_t cap,
            int timeout_ms, qk_err *err);

#endif
