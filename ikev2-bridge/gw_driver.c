/* gw_driver.c - pick the gateway driver named in the configuration. */
#include "bridge_drivers.h"

int gw_driver_new(const qkb_config *cfg, gw_driver **out, qk_err *err)
{
    switch (cfg->driver) {
    case QKB_DRV_STRONGSWAN:
        return drv_strongswan_new(cfg, out, err);
    case QKB_DRV_LIBRESWAN:
        return drv_libreswan_new(cfg, out, err);
    case QKB_DRV_MACSEC:
        return drv_macsec_new(cfg, out, err);
    case QKB_DRV_WIREGUARD:
        return drv_wireguard_new(cfg, out, err);
    }
    return qk_err_set(err, QK_EINVAL, "unknown driver");
}
