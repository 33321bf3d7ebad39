#!/usr/bin/env bash
# tools/device/gpu-iter.sh OUT_DIR: a short iteration run on the GPU machine (from the repository root),
# for work in progress between full gpu-e2e.sh / gpu-suite.sh runs:
#   build (Release, sm_90) the cuda targets named in TARGETS (default: the backend, the kernel checks of
#   linear, attention, sample and quant, the GPU tests and chaski-bench);
#   run each kernel check in CHECKS (default linear attention sample quant) with its bench (--json), or
#   without it for those also named in CHECK_ONLY;
#   run the GPU tests in GTESTS (default: test_cuda_vs_cpu, test_gpu_parity and any tests/gpu/test_gpu_*);
#   run chaski-bench once per line of BENCHES (arguments after the binary; an optional ENV=... prefix).
# Output: OUT_DIR/iter.log (everything), OUT_DIR/summary.txt (checks, tests, bench tables), build.log.
# Stages time out; a failing stage does not stop later ones. Budget: TIME_BUDGET seconds (default 480).
set -u
OUT=${1:?usage: gpu-iter.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
B=${BUILD_DIR:-build-iter}
LOG="$OUT/iter.log"
SUM="$OUT/summary.txt"
: >"$LOG"; : >"$SUM"
t0=$(date +%s)
BUDGET=${TIME_BUDGET:-480}
left() { echo $((BUDGET - ($(date +%s) - t0))); }
say() { echo "== $* ($(($(date +%s) - t0)) s)" | tee -a "$LOG" "$SUM"; }
TARGETS=${TARGETS:-"chaski_backend_cuda check_linear check_attention check_sample check_quant test_cuda_vs_cpu test_gpu_parity chaski-bench"}
CHECKS=${CHECKS:-"linear attention sample quant"}

# The device's copy of the repository has the working tree but the session's first commit in .git: the commit
# measured is named by the caller, as a literal in the device command: CHASKI_COMMIT=<hash> bash tools/device/...
commit=${CHASKI_COMMIT:-}
[ -n "$commit" ] || commit="$(git log -1 --format=%h) (device git: maybe the session start; set CHASKI_COMMIT)"
say "machine $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1) commit $commit"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DCHASKI_CUDA=ON \
  >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" | tee -a "$SUM"; exit 1; }
# targets that exist in this tree (a test file may be missing)
ok_t=""
for t in $TARGETS $(ls tests/gpu/test_gpu_*.c 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.c$//'); do
  case " $ok_t " in *" $t "*) ;; *) ok_t="$ok_t $t";; esac
done
say "build:$ok_t"
for t in $ok_t; do
  timeout $(( $(left) > 200 ? 200 : 60 )) cmake --build "$B" -j16 --target "$t" >>"$OUT/build.log" 2>&1 \
    || { echo "BUILD FAILED: $t" | tee -a "$SUM"; grep -E "error" "$OUT/build.log" | tail -8 | tee -a "$SUM"; }
done

for k in $CHECKS; do
  bin="$B/tests/kernels/check_$k"
  [ -x "$bin" ] || { echo "no $bin" | tee -a "$SUM"; continue; }
  [ "$(left)" -gt 60 ] || { echo "skip check_$k: time" | tee -a "$SUM"; continue; }
  say "check_$k"
  extra="--json $OUT/$k.json"
  case " ${CHECK_ONLY:-} " in *" $k "*) extra="--check-only";; esac
  timeout $(( $(left) - 30 < 150 ? $(left) - 30 : 150 )) "$bin" $extra >"$OUT/$k.txt" 2>&1
  rc=$?
  echo "check_$k rc=$rc" | tee -a "$SUM"
  grep -E "FAIL" "$OUT/$k.txt" | head -10 | tee -a "$SUM"
  grep -vE "^  check .* ok " "$OUT/$k.txt" | grep -E "GB/s|TFLOP|checks:|ceil" | cut -c1-130 >>"$SUM"
  cat "$OUT/$k.txt" >>"$LOG"
done

GTESTS=${GTESTS:-"test_cuda_vs_cpu test_gpu_parity $(ls tests/gpu/test_gpu_*.c 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.c$//' | grep -v test_gpu_parity)"}
for t in $GTESTS; do
  bin=$(find "$B/tests" -name "$t" -type f -perm -u+x | head -1)
  [ -n "$bin" ] || { echo "no $t" | tee -a "$SUM"; continue; }
  [ "$(left)" -gt 60 ] || { echo "skip $t: time" | tee -a "$SUM"; continue; }
  say "$t"
  timeout $(( $(left) - 30 < 150 ? $(left) - 30 : 150 )) "$bin" >"$OUT/$t.txt" 2>&1
  rc=$?
  echo "$t rc=$rc" | tee -a "$SUM"
  grep -E "FAIL|error|Error" "$OUT/$t.txt" | head -12 | tee -a "$SUM"
  tail -4 "$OUT/$t.txt" >>"$SUM"
  cat "$OUT/$t.txt" >>"$LOG"
done

if [ -n "${BENCHES:-}" ]; then
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    [ "$(left)" -gt 40 ] || { echo "skip bench: time" | tee -a "$SUM"; break; }
    say "bench: $line"
    envs=""; args="$line"
    while :; do  # leading NAME=value words are the environment
      w=${args%% *}
      case "$w" in *=*) envs="$envs $w"; args=${args#* };; *) break;; esac
    done
    timeout $(( $(left) - 20 < 180 ? $(left) - 20 : 180 )) env $envs "$B/tools/bench/chaski-bench" $args >"$OUT/bench.cur" 2>&1
    echo "rc=$?" >>"$OUT/bench.cur"
    grep -vE "^\s*$" "$OUT/bench.cur" | tail -24 | tee -a "$SUM" >/dev/null
    cat "$OUT/bench.cur" >>"$LOG"
  done <<<"$BENCHES"
fi
say "done"
# the device tool returns at most 8 files: everything but the summary goes into one archive
tar czf /tmp/gpu-iter-all.tgz -C "$OUT" --exclude=summary.txt . && mv /tmp/gpu-iter-all.tgz "$OUT/all.tgz"
find "$OUT" -type f ! -name all.tgz ! -name summary.txt -delete
