#!/usr/bin/env python3
"""Summarise the quality fields of `facelens detect` JSON lines (stdin): per occlusion region the
median, 90th percentile and share of faces above 0.5, and the blur / illumination quartiles.

Used for docs/accuracy.md, e.g.
  facelens detect $(ls DATA/attributes/utkface/*.jpg | head -300) | scripts/quality_summary.py
"""
import json
import statistics as st
import sys

regions, blur, illum, faces, errors = {}, [], [], 0, 0
for line in sys.stdin:
    d = json.loads(line)
    if d.get("error_code") != 0:
        errors += 1
        continue
    q = d["result"]["face_list"][0]["quality"]
    faces += 1
    blur.append(q["blur"])
    illum.append(q["illumination"])
    for k, v in q["occlusion"].items():
        regions.setdefault(k, []).append(v)
print(f"images with a face: {faces}, errors: {errors}")
for k, v in regions.items():
    p90 = st.quantiles(v, n=10)[-1] if len(v) > 1 else v[0]
    print(f"occlusion {k:13s} median {st.median(v):.3f}  p90 {p90:.3f}  share > 0.5: {sum(x > 0.5 for x in v) / len(v):.3f}")
if len(blur) > 1:
    print("blur quartiles", [round(x, 3) for x in st.quantiles(blur, n=4)])
    print("illumination quartiles", [round(x) for x in st.quantiles(illum, n=4)])
