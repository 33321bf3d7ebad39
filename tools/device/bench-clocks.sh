#!/usr/bin/env bash
# tools/device/bench-clocks.sh ARGS...: chaski-bench ARGS (from BUILD_DIR, default build-iter as gpu-iter.sh and
# prof-step.sh build it) with nvidia-smi logging the SM and memory clocks, power draw, temperature and the active
# clock throttle reasons every 20 ms beside it, on the GPU machine from the repository root. Each bench output line is printed with the wall time it appeared at, so
# a slow row or step (--step-times) can be set against the log. Output: $OUT/clocks.csv (nvidia-smi's CSV), then a
# count of each distinct (SM clock, memory clock, throttle reasons) state over the run.
#
# Why: the 70B's batch-1 row at depth 512 ran its first step at 11.6 ms and the rest at about 14 ms in session 32
# (docs/PERFORMANCE.md thirty-second run, section 5), with the same graph replayed in every step; this shows whether
# the clocks or the power limit moved with it.
# Example: bash tools/device/bench-clocks.sh --shape llama3-70b --quant exl2-4.0 --ctx 32768 --quick --depths 0,512 \
#            --no-pp --batches 1 --step-times
set -u
BN=${BUILD_DIR:-build-iter}/tools/bench/chaski-bench
[ -x "$BN" ] || { echo "bench-clocks: no $BN (build chaski-bench first)" >&2; exit 2; }
: "${OUT:?bench-clocks: OUT (the output folder) is not set}"
# drivers from 535 name the throttle reasons clocks_event_reasons; older ones clocks_throttle_reasons
reasons=clocks_event_reasons.active
nvidia-smi --query-gpu=$reasons --format=csv,noheader >/dev/null 2>&1 || reasons=clocks_throttle_reasons.active
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,$reasons \
  --format=csv -lms 20 >"$OUT/clocks.csv" 2>&1 &
smi=$!
trap 'kill $smi 2>/dev/null' EXIT
sleep 1 # the log's first samples before the bench starts
"$BN" "$@" 2>&1 | while IFS= read -r line; do printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$line"; done
rc=${PIPESTATUS[0]}
sleep 0.2
kill $smi 2>/dev/null
wait $smi 2>/dev/null
echo "== states over the run (count, SM clock, memory clock, throttle reasons)"
awk -F', ' 'NR > 1 && NF >= 6 {print $2 " | " $3 " | " $6}' "$OUT/clocks.csv" | sort | uniq -c | sort -rn | head -12
exit "$rc"
