/* http_util.h - the clocks of the HTTP layers (request latencies, timestamps). */
#ifndef QK_HTTP_UTIL_H
#define QK_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"

/* Monotonic milliseconds. */
double qk_now_ms(void);
/* Wall-clock seconds since the epoch. */
uint64_t qk_now_s(void);

#endif
