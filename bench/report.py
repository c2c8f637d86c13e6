"""Summarizes bench/results/login.tsv: medians over runs, and the ratios of
ours to each baseline from the same run."""

import statistics
import sys
from collections import defaultdict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")][1:]
med = defaultdict(list)
for size, scenario, clients, run, system, tps, p50, p99 in rows:
    med[(int(size), scenario, int(clients), system)].append((float(tps), float(p50), float(p99)))
keys = sorted({k[:3] for k in med})
systems = sorted({k[3] for k in med}, key=lambda s: {"ours": 0, "floor": 1, "writes": 2}.get(s, 3))
extra = ["writes/floor"] if "writes" in systems else []
print("| response | scenario | clients | " + " | ".join(f"{s} tps (p50/p99 ms)" for s in systems)
      + " | ours/floor | " + " | ".join(f"ours/{s}" for s in systems if s not in ("ours", "floor"))
      + "".join(f" | {e}" for e in extra) + " |")
print("|" + "---|" * (3 + len(systems) + 1 + len([s for s in systems if s not in ("ours", "floor")]) + len(extra)))
for size, scenario, clients in keys:
    cells, tps = [], {}
    for s in systems:
        runs = med.get((size, scenario, clients, s))
        if not runs:
            cells.append("-")
            continue
        t = statistics.median(r[0] for r in runs)
        tps[s] = t
        cells.append(f"{t:,.0f} ({statistics.median(r[1] for r in runs):.2f}/{statistics.median(r[2] for r in runs):.2f})")
    ratio = lambda b: f"{tps['ours'] / tps[b]:.2f}" if "ours" in tps and tps.get(b) else "-"
    writes_floor = f"{tps['writes'] / tps['floor']:.2f}" if tps.get("writes") and tps.get("floor") else "-"
    print(f"| {size / 1024:.1f} KB | {scenario} | {clients} | " + " | ".join(cells) + f" | {ratio('floor')} | "
          + " | ".join(ratio(s) for s in systems if s not in ("ours", "floor"))
          + "".join(f" | {writes_floor}" for _ in extra) + " |")
