#!/usr/bin/env bash
# tools/device/ab-build.sh PATCH [TARGETS...]: build the working tree and the same tree with PATCH reversed, side
# by side, for an A/B comparison in one device call (from the repository root, after .deps/unpack-deps.sh).
#
# Why a patch: the device's copy of the repository carries the working tree, but its .git is the session's first
# commit, so `git archive HEAD` there builds that commit, not the one before the change under test (docs/
# PERFORMANCE.md, thirteenth run). Make the patch on this side and let it travel with the tree, e.g.
#   git diff BASE HEAD -- kernels engine tests > scratch/change.patch     (BASE: the commit to compare with)
# and on the device:  bash tools/device/ab-build.sh scratch/change.patch chaski-bench check_quant
#
# Result: build-a (the working tree) and scratch/ab-base/build-b (PATCH reversed), Release, sm_90, Ninja, built
# in parallel; AB_A=... and AB_B=... lines name each tree's binary of the first target. Exits non-zero if the
# patch does not reverse cleanly or a build fails.
set -u
PATCH=${1:?usage: ab-build.sh PATCH [TARGETS...]}
shift
TARGETS=${*:-chaski-bench}
CFG=${AB_CFG:-"-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DCHASKI_CUDA=ON"}
BASE=scratch/ab-base
LOGS=${AB_LOGS:-scratch} # build logs ab-a.log, ab-b.log (AB_LOGS=$OUT to get them back)
mkdir -p "$LOGS"
rm -rf "$BASE" && mkdir -p "$BASE" || exit 1
# the tree as it travelled, without build outputs, git metadata or the copy itself
tar --exclude='./build*' --exclude='./.git' --exclude='./scratch' --exclude='./models' -cf - . | tar -xf - -C "$BASE"
[ -d third_party ] && rm -rf "$BASE/third_party" && ln -s "$(pwd)/third_party" "$BASE/third_party"
if ! patch -d "$BASE" -R -p1 -s --dry-run <"$PATCH"; then
  echo "ab-build: $PATCH does not reverse cleanly on the working tree" >&2
  exit 1
fi
patch -d "$BASE" -R -p1 -s <"$PATCH" || exit 1
jobs=$(nproc)
(cmake -S . -B build-a $CFG >/dev/null && cmake --build build-a -j$((jobs / 2 + 1)) --target $TARGETS) >"$LOGS/ab-a.log" 2>&1 &
pa=$!
(cd "$BASE" && cmake -S . -B build-b $CFG >/dev/null && cmake --build build-b -j$((jobs / 2)) --target $TARGETS) \
  >"$LOGS/ab-b.log" 2>&1 &
pb=$!
wait $pa
ra=$?
wait $pb
rb=$?
ok=1
first=${TARGETS%% *}
for t in a b; do
  d=build-a rc=$ra
  [ $t = b ] && d=$BASE/build-b rc=$rb
  bin=$(find "$d" -name "$first" -type f 2>/dev/null | head -1)
  if [ $rc != 0 ] || [ -z "$bin" ]; then
    echo "ab-build: the build in $d failed (rc $rc; $LOGS/ab-$t.log):" >&2
    tail -n 20 "$LOGS/ab-$t.log" >&2
    ok=0
  fi
  echo "AB_$(echo $t | tr ab AB)=$bin"
done
[ $ok = 1 ]
