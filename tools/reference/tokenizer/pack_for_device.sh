#!/usr/bin/env bash
# Pack the six reference tokenizer directories (third_party/tokenizers/*, fetched by
# tools/install-deps.sh) into third_party/devpack/tokenizers.tar.xz, small enough to
# carry to the GPU machine (gemma3's tokenizer.json alone is 33 MB; the pack ~10-15 MB).
# Deterministic member order, owners and times. On the device:
#   mkdir -p /tmp/tok && tar xJf third_party/devpack/tokenizers.tar.xz -C /tmp/tok
#   python3 tools/reference/tokenizer/make_tok_fixtures.py --tokdir /tmp/tok --out "$OUT"
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
src="$root/third_party/tokenizers"
out="$root/third_party/devpack/tokenizers.tar.xz"
names=(llama2 llama3 llama3_1 qwen3 gemma3 deepseek_v3)
for n in "${names[@]}"; do
  [ -f "$src/$n/tokenizer.json" ] || { echo "pack_for_device: $src/$n/tokenizer.json missing (run tools/install-deps.sh)" >&2; exit 1; }
done
mkdir -p "$(dirname "$out")"
files=()
for n in "${names[@]}"; do
  for f in tokenizer.json tokenizer_config.json special_tokens_map.json; do
    [ -f "$src/$n/$f" ] && files+=("$n/$f")
  done
done
tar -C "$src" --sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00:00' \
    -cf - "${files[@]}" | xz -9e -T1 > "$out.tmp"
mv "$out.tmp" "$out"
size=$(stat -c %s "$out")
echo "pack_for_device: $out: ${#files[@]} files, $((size / 1024)) KB"
if [ "$size" -gt $((20 * 1024 * 1024)) ]; then
  echo "pack_for_device: WARNING: over 20 MB" >&2
fi
