/* kernels/cuda/quant_scales.cuh: EXL2 group scales decoded on the device as the CPU reference (engine/quant's
 * quant_exl2.c) computes them, for quant_linear.cu's decode kernel and check_quant's exhaustive check. */
#ifndef CK_KERNELS_CUDA_QUANT_SCALES_CUH
#define CK_KERNELS_CUDA_QUANT_SCALES_CUH
#include <cuda_fp16.h>
#include <stdint.h>

/* code + 1 as a float (code < 2^23), from the float bits 2^23 + code + 1 less 2^23: no I2F conversion. */
__device__ __forceinline__ float exl2_code1(uint32_t code)
{
    return __uint_as_float(0x4B000001u + code) - 8388608.0f;
}

/* EXL2 scales of the 4 columns C..C+3 (one group; smax_bits: its scale maximum, fp16 bits) as chunk_params gives
 * them, bit for bit, but each of the 4 lanes t that share the columns decodes one, column C + t, and takes the
 * others by shuffle (the whole warp calls this). (code + 1) comes from exl2_code1, not an I2F conversion;
 * (code + 1)^2 (9 bits) times smax (11) is exact in float and so is the 2^-8, so the product
 * equals the CPU reference's (float)((code + 1)^2) * smax / 256 in any order. */
__device__ __forceinline__ void exl2_scales4(uint32_t zq, uint32_t smax_bits, int C, int t, float (&s)[4])
{
    const uint32_t code = (zq >> (4 * ((C & 7) + t))) & 15u;
    const float c1 = exl2_code1(code);
    const float smax = __half2float(__ushort_as_half((unsigned short)(smax_bits & 0xFFFFu))) * 0.00390625f;
    const float mine = c1 * c1 * smax;
    const int base = (int)(threadIdx.x & 28u); /* lane 4 g: the first of the 4 lanes of these columns */
#pragma unroll
    for (int i = 0; i < 4; i++)
        s[i] = __shfl_sync(0xFFFFFFFFu, mine, base | i);
}

#endif
