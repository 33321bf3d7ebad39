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
  sms      SMs its blocks ran on; 2/sm: how many of them ran two or more
  tail     last end - median end: the wait for the slowest blocks
  loop, sync, fin  (kernels with kt_mark points: qmv_kernel) per block, means: its own wait's return to thread 0's
           first tile done (mark 0), to the block's barrier after it (mark 1), to thread 0's exit (from mark 0 for
           blocks without mark 1). Decode attention: loop to its key loop's end (mark 0), fin from there to the exit
           (the block's merge and output; mark 1 only where splits merge), cp to thread 0's q in and rotated (mark 3),
           bar from there to the block's merge barrier (mark 4: the key loop in it)
  pro      (traces with mark 2: qmv_kernel) per block, mean: its own wait's return to thread 0 reaching the main
           loop (the activation slice, the group sums and their barriers), a part of loop
  cp, bar  (traces with marks 3 and 4: the decode kernels' block-wide activation slice, slice_in) per block, means:
           thread 0's wait's return to its own copies of the slice landed (cp), then to the block's barrier after
           every thread's (bar); both parts of pro
  sums, entry  (traces with mark 5: qmv_kernel past its group sums) per block, means: the slice's barrier (mark 4)
           to mark 5 (sums), mark 5 to the main loop (entry: no memory access between, in the default build)
Then the layers: the launch pattern's period p is found from the grid sizes, and every run of p launches with the
layer's grid sizes is folded into one layer's mean. Timer resolution is printed (the smallest nonzero step seen between records)."""
import argparse
import collections
import csv
import gzip
import statistics
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--gap", type=float, default=30.0, help="idle us that split steps (default 30)")
    ap.add_argument("--steps", type=int, default=16, help="last steps averaged (default 16)")
    ap.add_argument("--list", action="store_true", help="print every launch of the last step")
    a = ap.parse_args()
    with (gzip.open(a.trace, "rt") if a.trace.endswith(".gz") else open(a.trace)) as f:
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
        ends = sorted(r[2] for r in blk if r[2])
        sms = collections.Counter(r[5] for r in blk)
        L = dict(grid=g, start=blk[0][0], wmin=min(waits) if waits else None, end=ends[-1] if ends else blk[-1][0],
                 sms=len(sms), sm2=sum(1 for v in sms.values() if v >= 2),
                 tail=(ends[-1] - ends[len(ends) // 2]) if ends else 0)
        marked = [r for r in blk if len(r) > 7 and r[1] and r[6] and r[2]]
        if marked:
            L["loop"] = statistics.mean(r[6] - r[1] for r in marked)
            L["fin"] = statistics.mean(r[2] - (r[7] or r[6]) for r in marked)
        synced = [r for r in marked if r[7]]
        if synced:
            L["sync"] = statistics.mean(r[7] - r[6] for r in synced)
        pro = [r for r in blk if len(r) > 8 and r[1] and r[8]]
        if pro:
            L["pro"] = statistics.mean(r[8] - r[1] for r in pro)
        sl = [r for r in blk if len(r) > 10 and r[1] and r[9] and r[10]]
        if sl:
            L["cp"] = statistics.mean(r[9] - r[1] for r in sl)
            L["bar"] = statistics.mean(r[10] - r[9] for r in sl)
        sm = [r for r in blk if len(r) > 11 and r[10] and r[11]]
        if sm:
            L["sums"] = statistics.mean(r[11] - r[10] for r in sm)
        en = [r for r in blk if len(r) > 11 and r[11] and r[8]]
        if en:
            L["entry"] = statistics.mean(r[8] - r[11] for r in en)
        launches.append(L)
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
            vals["sms"].append(L["sms"])
            vals["2/sm"].append(L["sm2"])
            vals["tail"].append(L["tail"] / 1000)
            for k in ("cp", "bar", "sums", "entry", "pro", "loop", "sync", "fin"):
                if k in L:
                    vals[k].append(L[k] / 1000)
        rows.append((sel[0][p]["grid"], {k: statistics.mean(v) for k, v in vals.items()}))

    cols = ("start", "pre", "hop", "post", "span", "sms", "2/sm", "tail", "cp", "bar", "sums", "entry", "pro", "loop",
            "sync", "fin")

    def show(label, r):
        g, m = r
        f = lambda k: (f"{m[k]:6.0f}" if k in ("sms", "2/sm") else f"{m[k]:8.2f}") if k in m else \
            ("     -" if k in ("sms", "2/sm") else "       -")
        print(f"{label:>6} {g:6d} " + " ".join(f(k) for k in cols))

    hdr = f"{'pos':>6} {'grid':>6} " + " ".join(f"{k:>6}" if k in ("sms", "2/sm") else f"{k:>8}" for k in cols)
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
        m = {k: statistics.mean(L[j][1][k] for L in layers)
             for k in cols[1:] if all(k in L[j][1] for L in layers)}
        m["start"] = statistics.mean(L[j][1]["start"] - L[0][1]["start"] for L in layers)
        tot += m["span"]
        show(f"L+{j}", (layers[0][j][0], m))
    print(f"layer: {tot:.2f} us")


if __name__ == "__main__":
    main()
