#!/usr/bin/env bash
# tools/device/prof-quant.sh: Nsight Compute counters of one kernel launch of a kernel check's bench (after a
# gpu-iter.sh build in build-iter): cycles, instructions, DRAM bytes, L2 requests / sectors and the warp stall
# reasons per issued instruction. Default: a quantized decode kernel on the gate_up shape of check_quant's bench.
#   KERNEL (regex, default qmv_kernel); PROG (default check_quant) and ARGS (default "--bench-only --only gate_up")
#   name another check, e.g. KERNEL=sample_kernel PROG=check_sample ARGS=--bench-only; extra environment as usual
#   (CHASKI_QMV=...). Output: $OUT/ncu_quant.txt
set -u
B=${BUILD_DIR:-build-iter}
M='regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,dram__bytes_read.sum,lts__t_sectors.sum,'
M+='lts__t_requests.sum,sm__cycles_elapsed.avg,smsp__inst_executed.sum,smsp__issue_active.avg.per_cycle_active,'
M+='smsp__warps_active.avg.per_cycle_active'
# ARGS is split into words on purpose
# shellcheck disable=SC2086
timeout 90 ncu -k "regex:${KERNEL:-qmv_kernel}" -s 3 -c 1 --metrics "$M" "$B/tests/kernels/${PROG:-check_quant}" \
  ${ARGS:---bench-only --only gate_up} >"${OUT:?}/ncu_quant.txt" 2>&1
grep -E "stalled|dram__|lts__|cycles|inst_exec|issue_active|warps_active" "$OUT/ncu_quant.txt"
