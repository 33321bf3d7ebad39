#!/usr/bin/env bash
# Build (and optionally run briefly) the model loader's libFuzzer targets with clang.
#   tests/engine/fuzz/build_fuzz.sh <out dir> run <fuzz_safetensors|fuzz_config> <secs>
# Seeds: every file of tests/fixtures/malformed and the fixture models' config.json / small
# safetensors. Exits 77 (ctest: skipped) when clang or its libFuzzer runtime is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:?usage: build_fuzz.sh <out dir> run <target> <secs>}
tgt=${3:?target}; secs=${4:-20}
mkdir -p "$out"
CC=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CC" ]; then echo "SKIP: clang not found (apt-get install clang libclang-rt-14-dev)"; exit 77; fi
probe="$out/.probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}' > "$probe"
if ! "$CC" -fsanitize=fuzzer "$probe" -o "$out/.probe" 2>/dev/null; then
  echo "SKIP: $CC has no libFuzzer runtime (apt-get install libclang-rt-14-dev)"; exit 77
fi
srcs=("$root/engine/ck_error.c" "$root/engine/config_json.c" "$root/engine/rope.c" "$root/engine/safetensors.c")
"$CC" -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/engine" $(pkg-config --cflags libcjson) "$here/$tgt.c" "${srcs[@]}" $(pkg-config --libs libcjson) -lm \
  -o "$out/$tgt"
seeds="$out/seeds_$tgt"; rm -rf "$seeds"; mkdir -p "$seeds"
if [ "$tgt" = fuzz_safetensors ]; then
  find "$root/tests/fixtures/malformed" -name '*.safetensors' -size -64k -exec cp --backup=numbered {} "$seeds/" \;
else
  i=0; for f in "$root"/tests/fixtures/malformed/*/config.json "$root"/tests/fixtures/models/*/config.json; do
    cp "$f" "$seeds/c$i.json"; i=$((i + 1)); done
fi
work="$out/corpus_$tgt"; rm -rf "$work"; mkdir -p "$work"
exec "$out/$tgt" -jobs=1 -workers=1 -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
     -print_final_stats=1 -artifact_prefix="$out/" "$work" "$seeds"
