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
# The two-variant case of tools/device/ab-variants.sh: scratch/v-a (the working tree) and scratch/v-b (PATCH
# reversed), Release, sm_90, Ninja, built in parallel; AB_A=... and AB_B=... lines name each tree's binary of the
# first target. Exits non-zero if the patch does not reverse cleanly or a build fails. (Until the twenty-fourth run
# the two builds were build-a and scratch/ab-base/build-b.)
set -u
PATCH=${1:?usage: ab-build.sh PATCH [TARGETS...]}
shift
TARGETS=${*:-chaski-bench}
here=$(dirname "$0")
bash "$here/ab-variants.sh" -t "$TARGETS" a= "b=-$PATCH" >/dev/null
rc=$?
first=${TARGETS%% *}
for t in a b; do
  echo "AB_$(echo $t | tr ab AB)=$(find "scratch/v-$t/build" -name "$first" -type f 2>/dev/null | head -1)"
done
exit $rc
