/* qk_err.h - status codes and the error buffer shared by every module. */
#ifndef QK_ERR_H
#define QK_ERR_H

#include <stddef.h>

/* Status codes. 0 is success; every failing call returns one of the negative values
 * and, where it takes a qk_err *, fills in a human-readable message. */
typedef enum {
    QK_OK = 0,
    QK_EINVAL = -1,     /* bad input (maps to HTTP 400) */
    QK_ENOTFOUND = -2,  /* unknown key / block / request */
    QK_EUNAUTH = -3,    /* caller not allowed (HTTP 401) */
    QK_ENOKEY = -4,     /* pool cannot satisfy the request (HTTP 503) */
    QK_EPEER = -5,      /* peer KME unavailable or refused (HTTP 503) */
    QK_ECOLLISION = -6, /* carved range overlaps one already used */
    QK_EMISMATCH = -7,  /* material check failed: the two ends hold different bytes */
    QK_EEXIST = -8,     /* already exists (with different content) */
    QK_ESTORAGE = -9,   /* database / file error (HTTP 500) */
    QK_ENOMEM = -10,    /* allocation failed */
    QK_ETIMEOUT = -11,  /* a bounded wait ran out */
    QK_ETLS = -12,      /* TLS handshake / certificate / PSK failure */
    QK_EIO = -13,       /* network or OS error */
    QK_ELIMIT = -14,    /* a configured limit was hit (too many, too large) */
    QK_EQUOTA = -15,    /* a per-SAE-pair quota (max_key_count) would be exceeded (HTTP 503) */
    QK_EAGAIN = -16,    /* would block on an inline handler (qk_inline.h): the request runs again
                           on a worker; never reaches a client */
} qk_status;

#define QK_ERR_MSG_MAX 512

typedef struct {
    int code;                 /* a qk_status */
    char msg[QK_ERR_MSG_MAX]; /* NUL-terminated; never contains key material */
} qk_err;

/* Set err (if non-NULL) to code + printf-style message; returns code so callers can
 * `return qk_err_set(err, QK_EINVAL, "...")`. */
int qk_err_set(qk_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "<prefix>: <old message>" (keeps the code). Returns err->code. */
int qk_err_prefix(qk_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void qk_err_clear(qk_err *err);

/* Short constant name of a status code, e.g. "EINVAL". */
const char *qk_status_name(int code);

#endif
