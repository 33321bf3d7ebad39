#!/bin/sh
# cmake --install into a temp prefix, then build a host with find_package(chaski) and with
# pkg-config chaski-host, and run both against the installed plugin.
set -eu
build=$1; src=$2
tmp=$(mktemp -d /tmp/chaski-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/chaski.h"
test -f "$tmp/prefix/include/chaski_host.h"
libdir=$(ls -d "$tmp"/prefix/lib* | head -1)
test -f "$libdir/libchaski-host.a"
test -f "$libdir/libchaski.so"
cmake -S "$src" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/consumer/consumer" "$libdir/libchaski.so")
[ "$out" = "chaski 1.1" ] || { echo "find_package consumer printed: $out"; exit 1; }
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists chaski-host
cc -o "$tmp/pc-consumer" "$src/main.c" $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs chaski-host)
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/pc-consumer" "$libdir/libchaski.so")
[ "$out" = "chaski 1.1" ] || { echo "pkg-config consumer printed: $out"; exit 1; }
# the C host of docs/abi.md compiles against the installed SDK, warnings as errors
doc="$src/../../../docs/abi.md"
if [ -f "$doc" ]; then
  awk '/^```c$/{keep=1; buf=""; next} /^```$/{if (keep) last=buf; keep=0} keep{buf=buf $0 "\n"} END{printf "%s", last}' \
      "$doc" > "$tmp/doc_host.c"
  cc -std=c11 -Wall -Wextra -pedantic -Werror -o "$tmp/doc_host" "$tmp/doc_host.c" \
     $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs chaski-host)
  LD_LIBRARY_PATH="$libdir" "$tmp/doc_host" "$libdir/libchaski.so" /nonexistent "x" 2>"$tmp/err" && exit 1
  grep -q nonexistent "$tmp/err" || { cat "$tmp/err"; exit 1; }
fi
echo "ok: installed SDK works with find_package and pkg-config"
