#!/usr/bin/env python3
"""Compares two runs of flashjit_cuda_compile_tests (--gtest_output=json:FILE): the keys whose
cubin differs (digest), whose registers changed, and the total compile time. A template change
meant to move code only should list no key.
Usage: scripts/cubin_diff.py BEFORE.json AFTER.json"""
import json
import sys


def load(path):
    keys = {}
    for suite in json.load(open(path))["testsuites"]:
        for test in suite["testsuite"]:
            if "cubin_sha256" in test:
                name = test["name"].split("/")[-1]
                keys[name] = (test["cubin_sha256"], int(test["registers"]), int(test["compile_ms"]))
    return keys


before, after = load(sys.argv[1]), load(sys.argv[2])
changed = 0
for name in sorted(before.keys() | after.keys()):
    a, b = before.get(name), after.get(name)
    if a is None or b is None:
        print(f"{name}: only in {'after' if a is None else 'before'}")
        changed += 1
    elif a[0] != b[0]:
        print(f"{name}: cubin differs, registers {a[1]} -> {b[1]}")
        changed += 1
common = before.keys() & after.keys()
print(f"{len(common)} keys in both, {changed} differ; compile ms {sum(before[k][2] for k in common)}"
      f" -> {sum(after[k][2] for k in common)}")
sys.exit(1 if changed else 0)
