#!/usr/bin/env python3
"""Instruction mix of kernels profiled by `SOURCE=1 scripts/device_profile.sh` (ncu source pages
as CSV): executed instructions per opcode, side by side, normalized by a unit of work.

Usage: scripts/sass_mix.py UNITS A.csv [B.csv ...]
UNITS divides every count, e.g. warps x key blocks (d256 s1k prefill: 8192 warps x 16 blocks =
131072), so that the table reads "per warp and key block". Instructions executed exactly as often
as the count that accounts for the most executions (the key loop's body) are reported apart from
the rest.
"""
import collections
import csv
import sys


def load(path):
    rows = list(csv.reader(open(path)))
    header = rows[1]
    src, execd = header.index("Source"), header.index("Instructions Executed")
    counts = []
    for r in rows[2:]:
        if len(r) <= execd or not r[execd]:
            continue
        words = r[src].split()
        op = words[1] if words[0].startswith("@") else words[0]
        counts.append((op.split(".")[0], int(r[execd])))
    return counts


def main():
    units = float(sys.argv[1])
    kernels = [(p, load(p)) for p in sys.argv[2:]]
    tables = []
    for path, counts in kernels:
        per_count = collections.Counter()
        for _, n in counts:
            per_count[n] += n
        loop_count = per_count.most_common(1)[0][0]  # the count that executes the most
        loop, rest = collections.Counter(), collections.Counter()
        for op, n in counts:
            (loop if n == loop_count else rest)[op] += n
        tables.append((path, loop, rest))
    ops = sorted({op for _, a, b in tables for op in list(a) + list(b)},
                 key=lambda op: -max(a[op] + b[op] for _, a, b in tables))
    print("| opcode | " + " | ".join(f"{p} loop | rest" for p, _, _ in tables) + " |")
    print("|---|" + "---|---|" * len(tables))
    cells = [f"{sum(a.values()) / units:.1f} | {sum(b.values()) / units:.1f}" for _, a, b in tables]
    print("| all | " + " | ".join(cells) + " |")
    for op in ops:
        cells = [f"{a[op] / units:.1f} | {b[op] / units:.1f}" for _, a, b in tables]
        if max(a[op] + b[op] for _, a, b in tables) / units >= 1:
            print(f"| {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
