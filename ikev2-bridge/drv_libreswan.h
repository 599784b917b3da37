/* drv_libreswan.h - pieces of the libreswan driver (drv_libreswan.c) that are tested without
 * pluto: the PPKS secrets text, and reading whack's answers. */
#ifndef QKB_DRV_LIBRESWAN_H
#define QKB_DRV_LIBRESWAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qk_err.h"

/* The secrets text: a comment line, then per key
 *     <local_id> <remote_id> : PPKS "<id>" 0x<hex>
 * (the form libreswan 4.10 parses). Returns the length written into text (cap bytes, NUL
 * terminated), or a negative qk_status (QK_EINVAL for an unusable ID or key length, QK_ELIMIT
 * when cap is too small). */
int ls_render(const char *local_id, const char *remote_id, const char *const ids[],
              const uint8_t *const keys[], const size_t lens[], int n, char *text, size_t cap,
              qk_err *err);

/* 0 when the output of `whack --rereadsecrets` shows that pluto loaded secrets_file and did
 * not reject any of its lines; QK_EPEER otherwise (the message never quotes pluto's data). */
int ls_check_reread(const char *out, const char *secrets_file, qk_err *err);

/* True when the output of `whack --showstates` has an established IKE SA of conn (NULL or "":
 * of any connection); *count (may be NULL) receives how many. */
bool ls_states_established(const char *out, const char *conn, unsigned *count);

/* 0 when the output of `whack --name conn --initiate` (exit status status) shows an IKE SA of
 * conn established with a PPK ("PPK AUTH calculated as initiator", "initiator established IKE
 * SA") and no error or fatal line; QK_EPEER with pluto's first error line otherwise. */
int ls_check_initiate(const char *out, int status, const char *conn, qk_err *err);

#endif
