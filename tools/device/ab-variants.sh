#!/usr/bin/env bash
# tools/device/ab-variants.sh [-t "TARGETS"] NAME=SPEC ...: build several variants of the working tree side by side
# in one device call, for A/B/C/... comparisons (from the repository root, after .deps/unpack-deps.sh).
#
# SPEC is PATCH, -PATCH (the patch reversed), PATCH@FLAGS, -PATCH@FLAGS or @FLAGS; an empty SPEC (NAME=) is the tree
# as it travelled. FLAGS go to CMAKE_CUDA_FLAGS (e.g. @-DQV_XG_RX=2 for a compile-time switch). Each variant is a
# copy of the tree (without build outputs, .git, scratch and models) in scratch/v-NAME with its patch applied, built
# Release for sm_90 with Ninja in scratch/v-NAME/build; the builds share the cores. Prints NAME=DIR for each built
# variant; exits non-zero if a patch does not apply or a build fails (its log: $AB_LOGS/v-NAME.log, default scratch).
#
# Why: tools/device/ab-build.sh makes two builds (the tree and the tree with a patch reversed); a session that
# compares several forms of a kernel in one call (docs/PERFORMANCE.md, twenty-fourth run: four builds) needs more.
# Example, base against two forms:
#   git diff BASE -- kernels > scratch/change.patch
#   bash tools/device/ab-variants.sh -t "chaski-bench check_quant" base=-scratch/change.patch new= \
#       new2=@-DQV_XG_RX=2
#   scratch/v-base/build/tools/bench/chaski-bench ...; scratch/v-new/build/tools/bench/chaski-bench ...
set -u
TARGETS="chaski-bench"
if [ "${1:-}" = "-t" ]; then
  TARGETS=${2:?usage: ab-variants.sh [-t TARGETS] NAME=SPEC ...}
  shift 2
fi
[ $# -ge 1 ] || { echo "usage: ab-variants.sh [-t TARGETS] NAME=SPEC ..." >&2; exit 2; }
LOGS=${AB_LOGS:-scratch} # build logs v-NAME.log (AB_LOGS=$OUT to get them back)
mkdir -p "$LOGS" scratch
root=$(pwd)
jobs=$(nproc)
per=$((jobs / $# > 1 ? jobs / $# : 1))
names=()
flagsv=()
for arg in "$@"; do # every copy made and patched before any build starts
  name=${arg%%=*}
  spec=${arg#*=}
  case "$name" in '' | *[!A-Za-z0-9_-]*)
    echo "ab-variants: '$name' is not a variant name (letters, digits, _ and -)" >&2
    exit 2
    ;;
  esac
  patchspec=${spec%%@*}
  flags=""
  [ "$patchspec" != "$spec" ] && flags=${spec#*@}
  dir=scratch/v-$name
  rm -rf "$dir" && mkdir -p "$dir" || exit 1
  tar --exclude='./build*' --exclude='./.git' --exclude='./scratch' --exclude='./models' -cf - . | tar -xf - -C "$dir"
  [ -d third_party ] && rm -rf "$dir/third_party" && ln -s "$root/third_party" "$dir/third_party"
  if [ -n "$patchspec" ]; then
    rev=""
    p=$patchspec
    if [ "${p#-}" != "$p" ]; then
      rev="-R"
      p=${p#-}
    fi
    case "$p" in /*) ;; *) p=$root/$p ;; esac
    # -N: a patch that does not apply as asked fails instead of prompting
    if ! patch -d "$dir" $rev -N -p1 -s --dry-run <"$p" >/dev/null || ! patch -d "$dir" $rev -N -p1 -s <"$p"; then
      echo "ab-variants: $patchspec does not apply to the tree for $name" >&2
      exit 1
    fi
  fi
  names+=("$name")
  flagsv+=("$flags")
done
pids=()
for i in "${!names[@]}"; do
  (cd "scratch/v-${names[$i]}" && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCHASKI_CUDA=ON -DCMAKE_CUDA_FLAGS="${flagsv[$i]}" >/dev/null &&
    cmake --build build -j"$per" --target $TARGETS) >"$LOGS/v-${names[$i]}.log" 2>&1 &
  pids+=($!)
done
ok=1
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    echo "${names[$i]}=scratch/v-${names[$i]}"
  else
    echo "ab-variants: the build of ${names[$i]} failed ($LOGS/v-${names[$i]}.log):" >&2
    tail -n 20 "$LOGS/v-${names[$i]}.log" >&2
    ok=0
  fi
done
[ $ok = 1 ]
