#!/bin/sh
# The plugin exports exactly one dynamic symbol, chaski_plugin_entry, and links no Lua dynamically
# unless the build had to fall back (CHASKI_LUA_SHARED_OK=1).
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $NF}')
if [ "$syms" != "chaski_plugin_entry" ]; then
  echo "libchaski.so exports:"; echo "$syms"; echo "expected exactly: chaski_plugin_entry"; exit 1
fi
if [ "${2:-0}" != "1" ] && ldd "$lib" | grep -qi lua; then
  echo "libchaski.so links Lua dynamically:"; ldd "$lib"; exit 1
fi
echo "ok: one exported symbol"
