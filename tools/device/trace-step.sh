#!/usr/bin/env bash
# tools/device/trace-step.sh OUT_DIR [BATCHES]: the kernel timeline trace of the 8B's decode step, GPTQ 4-bit FP16
# and EXL2 4.0 BF16, at each batch in BATCHES (default "1"), from the repository root on the GPU machine (after
# .deps/unpack-deps.sh).
#
# Builds chaski-bench with -DCHASKI_KTRACE=1 (tools/device/ab-variants.sh, variant kt: scratch/v-kt), runs one
# `chaski-bench --quick --depths 0 --no-pp --batches N --batch-depth 0` per format and batch with CHASKI_KTRACE set,
# and prints tools/device/ktrace-summary.py's table of each. OUT_DIR gets kt-FMT-bN.csv.gz, its .log and the
# build's log (v-kt.log).
#
# Why: each session that traced the step (docs/PERFORMANCE.md, thirty-third to thirty-ninth runs) wrote these
# commands out by hand, in a device call where every minute counts. Tracing costs about 6% of the step; the figures
# of a trace are for its shape, not for PERFORMANCE.md's tables of speed.
set -u
OUT=${1:?usage: trace-step.sh OUT_DIR [BATCHES]}
BATCHES=${2:-1}
mkdir -p "$OUT"
t0=$(date +%s)
AB_LOGS=$OUT bash tools/device/ab-variants.sh -t chaski-bench kt=@-DCHASKI_KTRACE=1 >"$OUT/ab.log" 2>&1 || {
  cat "$OUT/ab.log"
  exit 1
}
echo "trace build: $(($(date +%s) - t0)) s"
KB=scratch/v-kt/build/tools/bench/chaski-bench
rc=0
for fmt in gptq exl2; do
  case $fmt in
  gptq) q=(--quant gptq4-g128 --backend cuda:f16) ;;
  exl2) q=(--quant exl2-4.0) ;;
  esac
  for b in $BATCHES; do
    csv=$OUT/kt-$fmt-b$b.csv
    if ! CHASKI_KTRACE=$csv CHASKI_KTRACE_LOG2=17 $KB --shape llama3-8b --quick --depths 0 --no-pp --batches "$b" \
      --batch-depth 0 "${q[@]}" >"$OUT/kt-$fmt-b$b.log" 2>&1; then
      echo "== $fmt batch $b: chaski-bench failed ($OUT/kt-$fmt-b$b.log)"
      rc=1
      continue
    fi
    echo "== trace $fmt batch $b"
    python3 tools/device/ktrace-summary.py "$csv" | tail -n 12 || rc=1
    gzip -f "$csv"
  done
done
exit $rc
