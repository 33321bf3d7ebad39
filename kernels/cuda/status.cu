/* kernels/cuda/status.cu: the error-to-status boundary: one message per host thread. */
#include <stdarg.h>
#include <stdio.h>
#include "common.cuh"

static thread_local char g_msg[512];

extern "C" const char *gpu_last_error(void) { return g_msg; }

int gpu_set_error(int code, const char *file, int line, const char *fmt, ...) {
    const char *base = file;
    for (const char *p = file; *p; p++)
        if (*p == '/') base = p + 1;
    int k = snprintf(g_msg, sizeof g_msg, "%s:%d: ", base, line);
    if (k < 0 || k >= (int)sizeof g_msg) k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg + k, sizeof g_msg - (size_t)k, fmt, ap);
    va_end(ap);
    return code;
}
