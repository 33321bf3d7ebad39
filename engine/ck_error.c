#include "ck_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ck_status ck_fail(ck_error *err, ck_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void ck_error_prefix(ck_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[CK_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.200s: %.800s", prefix, old);
}

void ck_error_clear(ck_error *err)
{
    if (err) {
        err->status = CK_OK;
        err->msg[0] = '\0';
    }
}

const char *ck_status_name(ck_status status)
{
    static const char *const names[CK_E_COUNT_] = {
        [CK_OK] = "ok",
        [CK_E_INVALID_ARGUMENT] = "invalid-argument",
        [CK_E_IO] = "io",
        [CK_E_FORMAT] = "format",
        [CK_E_CONFIG] = "config",
        [CK_E_SHAPE] = "shape",
        [CK_E_MISSING] = "missing",
        [CK_E_UNSUPPORTED] = "unsupported",
        [CK_E_OUT_OF_MEMORY] = "out-of-memory",
        [CK_E_CANCELLED] = "cancelled",
        [CK_E_CONTEXT_OVERFLOW] = "context-overflow",
        [CK_E_SCRIPT] = "script",
        [CK_E_DEVICE] = "device",
        [CK_E_INTERNAL] = "internal",
    };
    if ((unsigned)status < CK_E_COUNT_ && names[status])
        return names[status];
    return "unknown";
}
