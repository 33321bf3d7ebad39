#!/usr/bin/env bash
# Build (and optionally run briefly) the tokenizer's libFuzzer targets with clang.
#   tests/tok/fuzz/build_fuzz.sh <out dir>                       build both
#   tests/tok/fuzz/build_fuzz.sh <out dir> run <target> <secs>   build, then run one for secs
# target: fuzz_tok_json | fuzz_tok_encode. Exits 77 (ctest: skipped) when clang or its
# libFuzzer runtime (Debian: clang, libclang-rt-14-dev) is missing.
# Long runs (as recorded in docs/tokenizer.md):
#   build-fuzz/fuzz_tok_encode -jobs=1 -max_total_time=1800 build-fuzz/corpus_encode tests/tok/fuzz/seeds_encode
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:?usage: build_fuzz.sh <out dir> [run <target> <secs>]}
mkdir -p "$out"
out=$(cd "$out" && pwd)  # absolute: the run below works in $out (libFuzzer's -jobs writes fuzz-N.log to the cwd)
CC=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CC" ]; then echo "SKIP: clang not found (apt-get install clang libclang-rt-14-dev)"; exit 77; fi
# the two ctest entries run this script at the same time in the same $out: every file written here is this
# process's own until an atomic rename (a target another run is executing is replaced, never rewritten in
# place: that failed with "Text file busy")
probe="$out/.probe.$$"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}' > "$probe.c"
if ! "$CC" -fsanitize=fuzzer "$probe.c" -o "$probe" 2>/dev/null; then
  rm -f "$probe" "$probe.c"
  echo "SKIP: $CC has no libFuzzer runtime (apt-get install libclang-rt-14-dev)"; exit 77
fi
rm -f "$probe" "$probe.c"
flags=(-std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/engine/tok" -I"$root/engine" $(pkg-config --cflags libcjson libpcre2-8)
       -DCHASKI_FUZZ_DEFAULT_TOKDIR="\"$root/third_party/tokenizers\"")
libs=($(pkg-config --libs libcjson libpcre2-8))
srcs=("$root"/engine/tok/tok_*.c "$root/engine/ck_error.c")
targets=(fuzz_tok_json fuzz_tok_encode)
[ "${2:-}" = run ] && targets=("${3:?target}")  # a run builds only its own target
for tgt in "${targets[@]}"; do
  if [ ! -x "$out/$tgt" ] || [ -n "$(find "$here/$tgt.c" "${srcs[@]}" "$root"/engine/tok/*.h -newer "$out/$tgt" 2>/dev/null)" ]; then
    "$CC" "${flags[@]}" "$here/$tgt.c" "${srcs[@]}" "${libs[@]}" -o "$out/$tgt.$$"
    mv -f "$out/$tgt.$$" "$out/$tgt"
  fi
done
if [ "${2:-}" = run ]; then
  tgt=${3:?target}; secs=${4:-20}
  seeds="$here/seeds_json"; [ "$tgt" = fuzz_tok_encode ] && seeds="$here/seeds_encode"
  if [ "$tgt" = fuzz_tok_encode ] && [ ! -f "$root/third_party/tokenizers/llama3/tokenizer.json" ]; then
    echo "SKIP: no third_party/tokenizers (run tools/install-deps.sh)"; exit 77
  fi
  dict=(); [ "$tgt" = fuzz_tok_json ] && dict=(-dict="$here/tokjson.dict")
  work="$out/corpus_${tgt#fuzz_tok_}_brief"; rm -rf "$work"; mkdir -p "$work"
  cd "$out"
  exec "$out/$tgt" -jobs=1 -workers=1 -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=8192 \
       "${dict[@]}" -print_final_stats=1 -artifact_prefix="$out/" "$work" "$seeds"
fi
