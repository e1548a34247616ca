#!/usr/bin/env python3
"""Static opcode mix of the key loop in nvdisasm output: the body of the longest backward branch
(the key loop of flashjit's kernels), per file, for comparing two commits' cubins without a GPU
(docs/DEVICE.md, "SASS without a GPU"). Counts instructions as written, masked paths included;
ncu's executed counts (scripts/sass_mix.py) are the dynamic view.
Usage: scripts/sass_loop.py A.sass [B.sass ...]"""
import collections
import re
import sys

LABEL = re.compile(r"^(\.L_x_\d+):")
BRANCH = re.compile(r"BRA `\((\.L_x_\d+)\)")
OPCODE = re.compile(r"\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)")


def loop_mix(path):
    lines = open(path).read().split("\n")
    labels = {m.group(1): i for i, l in enumerate(lines) if (m := LABEL.match(l))}
    best = None
    for i, line in enumerate(lines):
        m = BRANCH.search(line)
        if m and labels.get(m.group(1), i) < i:
            start = labels[m.group(1)]
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
    if best is None:
        return collections.Counter()
    return collections.Counter(m.group(1) for l in lines[best[0]:best[1] + 1] if (m := OPCODE.match(l)))


mixes = [(p, loop_mix(p)) for p in sys.argv[1:]]
ops = sorted({op for _, m in mixes for op in m}, key=lambda op: -max(m[op] for _, m in mixes))
print("| opcode | " + " | ".join("/".join(p.split("/")[-2:]) for p, _ in mixes) + " |")
print("|---|" + "---|" * len(mixes))
print("| all | " + " | ".join(str(sum(m.values())) for _, m in mixes) + " |")
for op in ops:
    print(f"| {op} | " + " | ".join(str(m[op]) for _, m in mixes) + " |")
