/* Helpers shared by the engine tests. */
#ifndef CK_TEST_UTIL_H
#define CK_TEST_UTIL_H

#include <math.h>
#include <stddef.h>

/* ||a - b|| / ||b|| in double. */
static inline double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

#endif
