#!/usr/bin/env python3
"""Prints the README's table of fuzzing runs from libFuzzer logs (logs/<name>.log):
executions, seconds, executions per second, final cov and ft. Run from fuzz/."""
import re, sys, glob, os

rows = []
for path in sorted(sys.argv[1:] or glob.glob("logs/*.log")):
    name = os.path.basename(path)[:-4]
    if name.endswith(".cmin") or name == "build":
        continue
    text = open(path, errors="replace").read()
    done = re.findall(r"^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/", text, re.M)
    secs = re.search(r"Done \d+ runs in (\d+) second", text)
    eps = re.search(r"stat::average_exec_per_sec:\s+(\d+)", text)
    if not done:
        continue
    n, cov, ft, corp = done[-1]
    rows.append((name, n, secs.group(1) if secs else "?", eps.group(1) if eps else "?", cov, ft, corp))
print("| target (log) | executions | seconds | exec/s | cov | ft | corpus after the run |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print("| `%s` | %s | %s | %s | %s | %s | %s |" % r)
