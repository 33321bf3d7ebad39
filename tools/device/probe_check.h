/* tools/device/probe_check.h: the one error check the single-file device probes share (pdl-hop.cu, l2pf-probe.cu, ...).
 * CK(call): a CUDA runtime call whose failure is printed and makes the enclosing int function (main) return 1. */
#ifndef CK_TOOLS_DEVICE_PROBE_CHECK_H
#define CK_TOOLS_DEVICE_PROBE_CHECK_H

#include <cstdio>
#include <cuda_runtime.h>

#define CK(x)                                                                                                    \
    do {                                                                                                         \
        cudaError_t e_ = (x);                                                                                    \
        if (e_ != cudaSuccess) {                                                                                 \
            std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                                       \
            return 1;                                                                                            \
        }                                                                                                        \
    } while (0)

#endif
