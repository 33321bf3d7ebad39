/* engine/cuda/backend_cuda_sample_k.cu: the history scatter of the device sampling path
 * (backend_cuda_sample.c): the tokens appended to the sequences' device histories this step, sent
 * as (index, token) pairs in the step's one upload, land at their places in the history arena. */
#include <stdint.h>
#include <cuda_runtime_api.h>

#include "common.cuh"

static __global__ void hist_scatter_kernel(int32_t *arena, const int64_t *idx, const int32_t *tok, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) arena[idx[i]] = tok[i];
}

extern "C" int cku_hist_scatter(int32_t *arena, const int64_t *idx, const int32_t *tok, int n, cudaStream_t stream) {
    if (n <= 0) return GPU_OK;
    hist_scatter_kernel<<<(n + 255) / 256, 256, 0, stream>>>(arena, idx, tok, n);
    GPU_CHECK_LAUNCH("hist_scatter_kernel");
    return GPU_OK;
}
