/* kernels/cuda/rope_math.cuh: the rotary embedding's arithmetic, shared by rope.cu (gpu_rope, gpu_rope_kv) and the
 * decode attention that applies it itself (attention_decode.cu, gpu_attention_rope_x), so that the two give the
 * same bits. NeoX pairing (i, i + rot/2), as the CPU reference. */
#ifndef CK_KERNELS_CUDA_ROPE_MATH_CUH
#define CK_KERNELS_CUDA_ROPE_MATH_CUH

/* cos and sin of pos * inv_freq, times mscale: the product and its range reduction in double (positions up to 1e6
 * keep float precision), then the accurate sincosf (not the fast intrinsic). */
static __device__ __forceinline__ void rope_cs(int pos, float inv_freq, float mscale, float *c, float *s)
{
    const double a = (double)pos * (double)inv_freq;
    const double r = a - 6.283185307179586 * rint(a * 0.15915494309189535);
    float sv, cv;
    sincosf((float)r, &sv, &cv);
    *c = cv * mscale;
    *s = sv * mscale;
}

/* The pair (x0, x1) = (x[i], x[i + rot/2]) rotated: (x0 c - x1 s, x1 c + x0 s), each one product rounded and one
 * fused multiply-add (written out, so no compiler contracts the two forms differently). */
static __device__ __forceinline__ float rope_lo(float x0, float x1, float c, float s)
{
    return __fmaf_rn(x0, c, -__fmul_rn(x1, s));
}
static __device__ __forceinline__ float rope_hi(float x0, float x1, float c, float s)
{
    return __fmaf_rn(x1, c, __fmul_rn(x0, s));
}
#endif
