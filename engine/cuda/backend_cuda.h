/* engine/cuda/backend_cuda.h: the cuda backend's extras beyond the op table (prefix be_cuda_),
 * for tests and the bench: counters, switches, random weights made in device memory.
 * Every function takes a backend made by be_cuda_create (be_is_cuda says so). */
#ifndef CK_BACKEND_CUDA_H
#define CK_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef struct be_cuda_counters {
    uint64_t device_allocs, device_frees; /* cudaMalloc / cudaFree */
    uint64_t host_allocs, host_frees;     /* cudaMallocHost / cudaFreeHost */
    uint64_t graph_captures, graph_replays, eager_steps;
    uint64_t meta_uploads;                /* one H2D copy per step */
    uint64_t graph_failures;              /* captures that failed (graphs are then off) */
    uint64_t logit_bytes_to_host;         /* float32 logits copied device -> host */
    uint64_t sampled_rows;                /* rows sampled on the device (step_end_rows) */
} be_cuda_counters;

int be_is_cuda(const be_backend *be);
void be_cuda_counters_get(const be_backend *be, be_cuda_counters *out);
/* Decode steps as CUDA graphs (default on; the environment's CHASKI_CUDA_GRAPHS=0 turns them off). */
void be_cuda_set_graphs(be_backend *be, int on);
/* Why a failed capture turned graphs off ("" if none did). */
const char *be_cuda_graph_error(const be_backend *be);
/* Pretend only `bytes` are free (0: the real figure) so the planner's refusal can be tested. */
void be_cuda_set_fake_free(be_backend *be, size_t bytes);
/* 0 = GPU_F16, 1 = GPU_BF16 (activations, weights and KV). */
int be_cuda_dtype(const be_backend *be);
/* The compute stream (cudaStream_t), the cuBLASLt handle (gpu_blas *) and its workspace. */
void *be_cuda_stream(const be_backend *be);
void *be_cuda_blas(const be_backend *be, void **workspace, size_t *workspace_size);
/* The device address of a buffer. */
void *be_cuda_ptr(const be_buf *b);
/* Fill a buffer with mean + std * sqrt(3) * U[-1, 1) (seeded) on the compute stream; one of up to 64k elements is
 * read back for its largest |element| (as an upload notes it), so synchronizes. */
ck_status be_cuda_fill_random(be_backend *be, be_buf *b, uint64_t seed, float mean, float std, ck_error *err);
/* Wait for the compute stream. */
ck_status be_cuda_sync(be_backend *be, ck_error *err);

#endif
