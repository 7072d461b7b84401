#!/usr/bin/env python3
"""Agreement of raw model outputs between two `facelens eval attributes --features-out` files
(e.g. f32 vs int8 models), over the images found in both.

usage: scripts/compare_features.py A.jsonl B.jsonl
"""

import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return {d["file"]: d for d in map(json.loads, f) if d.get("found")}


def argmax(v):
    return max(range(len(v)), key=v.__getitem__)


def main() -> int:
    a, b = load(sys.argv[1]), load(sys.argv[2])
    common = [k for k in a if k in b]
    print(f"images found in both: {len(common)} (A {len(a)}, B {len(b)})")
    scalar = ["dlib_age", "dlib_male", "gear_male", "p_smile"]
    vector = ["gear_race", "gear_age"]
    for key in scalar:
        d = [
            abs(a[k]["features"][key] - b[k]["features"][key])
            for k in common
            if a[k]["features"].get(key) is not None and b[k]["features"].get(key) is not None
        ]
        if d:
            print(f"{key}: mean |diff| {statistics.mean(d):.4f}, p95 {sorted(d)[int(0.95 * len(d))]:.4f}, max {max(d):.4f} (n={len(d)})")
    for key in vector:
        same, dmax = 0, []
        for k in common:
            va, vb = a[k]["features"].get(key), b[k]["features"].get(key)
            if va is None or vb is None:
                continue
            same += argmax(va) == argmax(vb)
            dmax.append(max(abs(x - y) for x, y in zip(va, vb)))
        if dmax:
            print(f"{key}: top-1 agreement {same / len(dmax):.4f}, mean max |dp| {statistics.mean(dmax):.4f} (n={len(dmax)})")
    age = [abs(a[k]["attributes"]["age"] - b[k]["attributes"]["age"]) for k in common if "age" in a[k]["attributes"] and "age" in b[k]["attributes"]]
    if age:
        print(f"final age: mean |diff| {statistics.mean(age):.3f} years, max {max(age):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
