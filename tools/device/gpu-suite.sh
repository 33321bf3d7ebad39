#!/usr/bin/env bash
# tools/device/gpu-suite.sh OUT_DIR: the GPU suite, run on the GPU machine from the repository root.
# Configures and builds build-gpu (Release, sm_90 unless CUDA_ARCH says otherwise), runs the kernel
# checks through ctest (label gpu), measures the ceilings, runs each check+bench program with --json
# and prints a compact summary table last. OUT_DIR gets four files (the device tool returns at most
# eight): summary.txt, results.json (every family's --json output, merged), suite.log (ctest, bench and
# sanitizer output, spill report), build.log. Keeps going past a failing kernel; the exit
# status is 0 only when everything passed. Budget: well under 8 minutes on an H200.
set -u
OUT=${1:?usage: gpu-suite.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ARCH=${CUDA_ARCH:-90}
BUILD=${BUILD_DIR:-build-gpu}
LOG="$OUT/suite.log"
: >"$LOG"
TMP=$(mktemp -d)
status=0
t0=$(date +%s)
say() { echo "== $* ($(($(date +%s) - t0)) s)" | tee -a "$LOG"; }

say "configure"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release \
      -DCHASKI_CUDA=ON -DCHASKI_CUDA_PTXAS_VERBOSE=ON >>"$LOG" 2>&1; then
  tail -30 "$LOG"; echo "configure FAILED"; exit 1
fi
say "build"
# the kernel targets first, so that a failure elsewhere in the project does not hide them
KT="check_embed check_norm check_rope check_swiglu check_linear check_kv_write check_attention check_sample check_quant kernel_ceilings"
if ! cmake --build "$BUILD" -j16 --target $KT >"$OUT/build.log" 2>&1; then
  grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "kernel build FAILED"; status=1
fi
grep -E "spill stores" "$OUT/build.log" | grep -v " 0 bytes spill stores" | sort | uniq -c | head -20 >>"$LOG"
cmake --build "$BUILD" -j16 >>"$OUT/build.log" 2>&1 || { echo "note: full project build failed (see build.log)" | tee -a "$LOG"; }

say "ctest -L gpu"
# -j4: one after another the label's tests take over 500 s (check_attention ~105 s, each check_quant run ~70 s; where
# their time goes was not measured); four at a time on the H200 about 200 s (docs/PERFORMANCE.md thirty-second run)
(cd "$BUILD" && timeout 300 ctest -L gpu -j4 --output-on-failure) 2>&1 | tee -a "$LOG" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

B="$BUILD/tests/kernels"
say "ceilings"
ceil=$(timeout 60 "$B/kernel_ceilings" --json "$TMP/ceilings.json" 2>&1 | tee -a "$LOG" | grep -o 'bw_gbps=[0-9.]* tflops=[0-9.]*')
BW=$(echo "$ceil" | sed -n 's/bw_gbps=\([0-9.]*\).*/\1/p'); TF=$(echo "$ceil" | sed -n 's/.*tflops=\([0-9.]*\)/\1/p')
CEIL_ARGS=()
[ -n "$BW" ] && CEIL_ARGS+=(--bw "$BW")
[ -n "$TF" ] && CEIL_ARGS+=(--tflops "$TF")
echo "ceilings: copy ${BW:-?} GB/s, bf16 matrix ${TF:-?} TFLOP/s" | tee -a "$LOG"

declare -A RC
for fam in embed norm rope swiglu linear kv_write attention sample quant; do
  if [ $(($(date +%s) - t0)) -gt 450 ]; then echo "bench $fam: skipped (time budget)" | tee -a "$LOG"; RC[$fam]=skip; status=1; continue; fi
  say "bench $fam"
  timeout 90 "$B/check_$fam" --json "$TMP/$fam.json" "${CEIL_ARGS[@]}" >"$TMP/$fam.txt" 2>&1
  RC[$fam]=$?
  [ "${RC[$fam]}" -eq 0 ] || status=1
  cat "$TMP/$fam.txt" >>"$LOG"
  grep -E "FAIL|bench|rror" "$TMP/$fam.txt" | head -60
done

# compute-sanitizer over the quick checks, if there is time and the tool is there
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$SAN" ] && [ $(($(date +%s) - t0)) -lt 400 ]; then
  for tool in memcheck racecheck; do
    for fam in norm attention sample linear quant; do
      say "compute-sanitizer $tool $fam"
      timeout 60 "$SAN" --tool "$tool" --error-exitcode 9 "$B/check_$fam" --check-only >"$TMP/san.txt" 2>&1
      r=$?; cat "$TMP/san.txt" >>"$LOG"; tail -3 "$TMP/san.txt"
      [ $r -eq 0 ] || { echo "sanitizer $tool $fam: rc $r" | tee -a "$LOG"; status=1; }
      [ $(($(date +%s) - t0)) -lt 530 ] || break 2
    done
  done
fi

say "summary"
{
  printf '%-10s %-6s %-46s %-5s %10s %10s %-8s %6s\n' family rc config dtype time_us rate unit frac
  for fam in embed norm rope swiglu linear kv_write attention sample quant; do
    f="$TMP/$fam.json"
    if [ ! -s "$f" ]; then printf '%-10s %-6s %s\n' "$fam" "${RC[$fam]:-?}" "(no json)"; continue; fi
    python3 - "$f" "$fam" "${RC[$fam]}" <<'PY' 2>/dev/null || echo "$fam: (unreadable json)"
import json, sys
d = json.load(open(sys.argv[1])); fam, rc = sys.argv[2], sys.argv[3]
checks = [r for r in d["results"] if "check" in r]
bad = [r for r in checks if r["check"] != "ok"]
print(f"{fam:<10} {rc:<6} {'checks: %d ok, %d FAIL' % (len(checks) - len(bad), len(bad)):<46}")
for r in bad:
    print(f"{'':<10} {'':<6} FAIL {r['config'][:41]:<41} {r['dtype']:<5}")
for r in d["results"]:
    if "time_us" in r:
        print(f"{'':<10} {'':<6} {r['config'][:46]:<46} {r['dtype']:<5} {r['time_us']:10.2f} {r['rate']:10.1f} {r['unit']:<8} {100*r['fraction']:5.1f}%")
PY
  done
  echo "ceilings: copy ${BW:-?} GB/s, bf16 matrix ${TF:-?} TFLOP/s; total $(($(date +%s) - t0)) s; status $status"
} | tee "$OUT/summary.txt"
python3 - "$TMP" "$OUT/results.json" <<'PY' 2>>"$LOG"
import json, os, sys
tmp, out = sys.argv[1], sys.argv[2]
merged = {}
for f in sorted(os.listdir(tmp)):
    if f.endswith(".json"):
        try:
            merged[f[:-5]] = json.load(open(os.path.join(tmp, f)))
        except Exception as e:
            merged[f[:-5]] = {"error": str(e)}
json.dump(merged, open(out, "w"), indent=1)
PY
rm -rf "$TMP"
exit $status
