/* ck_error.h: the engine's status codes and error record.
 *
 * Every engine function that can fail returns a ck_status and, when it fails,
 * fills a caller-owned ck_error with a message that says what failed, where,
 * and what was expected ("model.safetensors: tensor 'x': shape [4, 8] ...").
 * The engine never calls exit() or abort(): a plugin that aborts kills its host.
 */
#ifndef CK_ERROR_H
#define CK_ERROR_H

#include <stddef.h>

typedef enum ck_status {
    CK_OK = 0,
    CK_E_INVALID_ARGUMENT = 1, /* a caller passed something the contract forbids */
    CK_E_IO,                   /* a file could not be opened, read or mapped */
    CK_E_FORMAT,               /* a file's bytes break its format's rules */
    CK_E_CONFIG,               /* config.json (or a sibling file) is wrong or inconsistent */
    CK_E_SHAPE,                /* a tensor's shape or dtype disagrees with the config */
    CK_E_MISSING,              /* a required tensor, field or file is absent */
    CK_E_UNSUPPORTED,          /* valid input that this build does not handle */
    CK_E_OUT_OF_MEMORY,        /* an allocation failed or the memory plan does not fit */
    CK_E_CANCELLED,            /* the caller asked to stop */
    CK_E_CONTEXT_OVERFLOW,     /* a request is longer than the context allows */
    CK_E_SCRIPT,               /* a Lua script failed or returned a bad value */
    CK_E_DEVICE,               /* a GPU call failed */
    CK_E_INTERNAL,             /* a broken invariant inside the engine */
    CK_E_COUNT_
} ck_status;

#define CK_ERROR_MSG_MAX 1024

typedef struct ck_error {
    ck_status status;
    char msg[CK_ERROR_MSG_MAX];
} ck_error;

/* Fill err (if not NULL) with status and a printf-style message; returns status,
 * so callers can write `return ck_fail(err, CK_E_FORMAT, "...", ...);`. */
ck_status ck_fail(ck_error *err, ck_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefix err->msg with "<prefix>: " (used to add context on the way up). */
void ck_error_prefix(ck_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void ck_error_clear(ck_error *err);

/* A stable lower-case name for a status ("format", "shape", ...). */
const char *ck_status_name(ck_status status);

#endif
