/* tests/kernels/ceilings.cu: the device's two ceilings, measured: copy bandwidth (a 1 GiB
 * device-to-device cudaMemcpy, bytes read + written, median of 20) and dense BF16 matrix rate (an
 * 8192^3 cuBLASLt GEMM through gpu_linear, median of 20). Prints "bw_gbps=X tflops=Y" and, with
 * --json PATH, writes them; the other benches take them through --bw / --tflops. */
#include "kt.h"

int main(int argc, char **argv) {
    kt_ctx c;
    kt_init(c, "ceilings", argc, argv);
    c.bw = kt_measure_bw();
    c.tflops = kt_measure_tflops();
    printf("bw_gbps=%.1f tflops=%.1f\n", c.bw, c.tflops);
    return kt_finish(c);
}
