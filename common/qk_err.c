/* qk_err.c - status codes and the error buffer. */
#include "qk_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int qk_err_set(qk_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int qk_err_prefix(qk_err *err, const char *fmt, ...)
{
    if (!err)
        return QK_EINVAL;
    char prefix[QK_ERR_MSG_MAX];
    char old[QK_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* An over-long result is cut at the buffer end; checking the result also tells GCC
     * that it is expected (-Wformat-truncation). */
    int n = snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    if (n < 0)
        err->msg[0] = '\0';
    return err->code;
}

void qk_err_clear(qk_err *err)
{
    if (err) {
        err->code = QK_OK;
        err->msg[0] = '\0';
    }
}

const char *qk_status_name(int code)
{
    switch (code) {
    case QK_OK:
        return "OK";
    case QK_EINVAL:
        return "EINVAL";
    case QK_ENOTFOUND:
        return "ENOTFOUND";
    case QK_EUNAUTH:
        return "EUNAUTH";
    case QK_ENOKEY:
        return "ENOKEY";
    case QK_EPEER:
        return "EPEER";
    case QK_ECOLLISION:
        return "ECOLLISION";
    case QK_EMISMATCH:
        return "EMISMATCH";
    case QK_EEXIST:
        return "EEXIST";
    case QK_ESTORAGE:
        return "ESTORAGE";
    case QK_ENOMEM:
        return "ENOMEM";
    case QK_ETIMEOUT:
        return "ETIMEOUT";
    case QK_ETLS:
        return "ETLS";
    case QK_EIO:
        return "EIO";
    case QK_ELIMIT:
        return "ELIMIT";
    case QK_EQUOTA:
        return "EQUOTA";
    case QK_EAGAIN:
        return "EAGAIN";
    default:
        return "EUNKNOWN";
    }
}
