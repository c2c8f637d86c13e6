"""Latency percentiles of pgbench --log files within a time window.

usage: latency.py START_EPOCH END_EPOCH LOGFILE...
prints: n p50_ms p99_ms max_ms
"""
import sys

start, end = float(sys.argv[1]), float(sys.argv[2])
lat = []
for path in sys.argv[3:]:
    with open(path) as f:
        for line in f:
            parts = line.split()
            # client transaction latency_us script epoch_s epoch_us (a
            # line cut short when pgbench was stopped is skipped)
            if len(parts) < 6:
                continue
            done = int(parts[4]) + int(parts[5]) / 1e6
            began = done - int(parts[2]) / 1e6
            if began <= end and done >= start:
                lat.append(int(parts[2]) / 1000.0)
lat.sort()
if not lat:
    print("0 - - -")
else:
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{len(lat)} {pick(0.5):.2f} {pick(0.99):.2f} {lat[-1]:.2f}")
