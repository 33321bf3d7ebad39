#!/usr/bin/env python3
"""tools/device/ktrace-summary.py TRACE.csv: the launches of a kernel timeline trace (kernels/cuda/ktrace.cu, a
-DCHASKI_KTRACE=1 build run with CHASKI_KTRACE=TRACE.csv), grouped and timed.

Records are one per block (start, first gdc_wait's return, thread 0's exit; %globaltimer ns). A launch's blocks all
start before any block of the launch after it (a dependent grid launches only once every block of the one before has
run griddepcontrol.launch_dependents, each decode kernel's first statement), so the records sorted by start split
into launches by their grid sizes. Steps are split where nothing ran for more than --gap us. For the steps of the
most common launch count among the last --steps, each launch position's mean over them:
  grid     blocks of the launch
  start    first block's start, us from the step's first start
  pre      first wait's return - first start: how long its blocks sat resident before the previous kernel let them go
  hop      first wait's return - previous launch's last end (negative: released before the previous one ended,
           which PDL allows only for a launch that does not wait)
  post     last end - first wait's return: the launch's own time once released
  span     last end - previous launch's last end: what the position adds to the step
Then the layers: the launch pattern's period p is found from the grid sizes, and every run of p launches with the
layer's grid sizes is folded into one layer's mean. Timer resolution is printed (the smallest nonzero step seen between records)."""
import argparse
import collections
import csv
import statistics
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--gap", type=float, default=30.0, help="idle us that split steps (default 30)")
    ap.add_argument("--steps", type=int, default=16, help="last steps averaged (default 16)")
    ap.add_argument("--list", action="store_true", help="print every launch of the last step")
    a = ap.parse_args()
    with open(a.trace) as f:
        recs = [tuple(int(v) for v in row.values()) for row in csv.DictReader(f)]
    if not recs:
        sys.exit("ktrace-summary: no records")
    recs.sort()
    starts = sorted({r[0] for r in recs})
    res = min((b - a_ for a_, b in zip(starts, starts[1:]) if b > a_), default=0)
    launches, i, skipped = [], 0, 0
    while i < len(recs):
        g = recs[i][3]
        blk = recs[i:i + g]
        if len(blk) < g or any(r[3] != g for r in blk) or len({r[4] for r in blk}) != g:
            i += 1  # a launch cut by the ring's start or end: resynchronize
            skipped += 1
            continue
        waits = [r[1] for r in blk if r[1]]
        ends = [r[2] for r in blk if r[2]]
        launches.append(dict(grid=g, start=blk[0][0], wmin=min(waits) if waits else None,
                             end=max(ends) if ends else blk[-1][0]))
        i += g
    print(f"{len(recs)} records, {len(launches)} launches, {skipped} records skipped; timer step {res} ns")
    steps, cur = [], []
    for L in launches:
        if cur and L["start"] - max(x["end"] for x in cur) > a.gap * 1000:
            steps.append(cur)
            cur = []
        cur.append(L)
    if cur:
        steps.append(cur)
    steps = steps[1:-1] if len(steps) > 2 else steps  # the first and last may be cut by the ring
    counts = collections.Counter(len(s) for s in steps[-a.steps:])
    n, _ = counts.most_common(1)[0]
    sel = [s for s in steps[-a.steps:] if len(s) == n]
    print(f"{len(steps)} whole steps; launches per step {dict(counts)}; averaging {len(sel)} steps of {n} launches")
    durs = [(s[-1]["end"] - s[0]["start"]) / 1000 for s in sel]
    print(f"step, first start to last end: median {statistics.median(durs):.1f} us, min {min(durs):.1f}")
    rows = []
    for p in range(n):
        vals = collections.defaultdict(list)
        for s in sel:
            L, P = s[p], s[p - 1] if p else None
            t0 = s[0]["start"]
            vals["start"].append((L["start"] - t0) / 1000)
            if L["wmin"] is not None:
                vals["pre"].append((L["wmin"] - L["start"]) / 1000)
                vals["post"].append((L["end"] - L["wmin"]) / 1000)
                if P:
                    vals["hop"].append((L["wmin"] - P["end"]) / 1000)
            vals["span"].append((L["end"] - (P["end"] if P else L["start"])) / 1000)
        rows.append((sel[0][p]["grid"], {k: statistics.mean(v) for k, v in vals.items()}))

    def show(label, r):
        g, m = r
        f = lambda k: f"{m[k]:8.2f}" if k in m else "       -"
        print(f"{label:>6} {g:6d} {f('start')} {f('pre')} {f('hop')} {f('post')} {f('span')}")

    hdr = f"{'pos':>6} {'grid':>6} {'start':>8} {'pre':>8} {'hop':>8} {'post':>8} {'span':>8}"
    if a.list:
        print(hdr)
        for p, r in enumerate(rows):
            show(str(p), r)
    grids = [r[0] for r in rows]
    for per in range(2, 16):  # the smallest period that holds at 90% of the positions (the head and sampling break it)
        if n > 3 * per and sum(grids[i] == grids[i + per] for i in range(n - per)) >= 0.9 * (n - per):
            break
    else:
        print("no repeating layer pattern found (--list shows the launches)")
        return
    i0 = next(i for i in range(n - per) if grids[i:i + per] == grids[i + per:i + 2 * per])
    pat, layers, i = grids[i0:i0 + per], [], i0
    while i + per <= n:
        if grids[i:i + per] == pat:
            layers.append(rows[i:i + per])
            i += per
        else:
            i += 1
    lo = i0
    print(f"layer pattern: period {per}, folded over {len(layers)} layers (first at position {lo})")
    print(hdr)
    tot = 0.0
    for j in range(per):
        m = {k: statistics.mean(L[j][1][k] for L in layers if k in L[j][1])
             for k in ("pre", "hop", "post", "span") if all(k in L[j][1] for L in layers)}
        m["start"] = statistics.mean(L[j][1]["start"] - L[0][1]["start"] for L in layers)
        tot += m["span"]
        show(f"L+{j}", (layers[0][j][0], m))
    print(f"layer: {tot:.2f} us")


if __name__ == "__main__":
    main()
