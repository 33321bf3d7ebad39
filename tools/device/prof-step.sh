#!/usr/bin/env bash
# tools/device/prof-step.sh: the duration of every kernel of chaski-bench's first decode steps (Nsight Compute,
# one metric, kernels serialized: no overlap between neighbours, so a step's sum bounds its graph replay from above),
# after a build of chaski-bench in build-iter. ARGS: chaski-bench's arguments (default: the 8B gptq4-g128 FP16 shape
# at batch 1; --no-pp is added, so the first kernels are the decode steps'); COUNT kernels (default 500);
# TIMEOUT seconds (default 90). Output: $OUT/step-NAME.csv (NAME from TAG, default "step"), Nsight's raw CSV.
set -u
B=${BUILD_DIR:-build-iter}
ARGS=${ARGS:---backend cuda:f16 --shape llama3-8b --quant gptq4-g128 --quick --depths 0 --batches 1}
timeout "${TIMEOUT:-90}" ncu --clock-control none -c "${COUNT:-500}" --csv --page raw \
  --metrics gpu__time_duration.sum,launch__grid_size "$B/tools/bench/chaski-bench" $ARGS --no-pp \
  >"${OUT:?}/${TAG:-step}.csv" 2>/dev/null
echo "prof-step ${TAG:-step}: rc=$? $(grep -c '^"' "$OUT/${TAG:-step}.csv") rows"
