/* version.h - the one version string of every qkd-kms binary. Its value comes from one place,
 * the Makefile's `VERSION := x.y.z`, passed as -DQKD_VERSION="x.y.z"; `PROG --version` prints
 * it through qk_cli_version() (qk_cli.h). */
#ifndef QK_VERSION_H
#define QK_VERSION_H

#ifndef QKD_VERSION
#error "QKD_VERSION is defined by the Makefile (VERSION := x.y.z)"
#endif

#endif
