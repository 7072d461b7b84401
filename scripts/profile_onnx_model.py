#!/usr/bin/env python3
"""Where one ONNX model's time goes in onnxruntime, on one thread (a development tool).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy onnx onnxruntime==1.31.0
    /tmp/v/bin/python scripts/profile_onnx_model.py models/retinaface_mnet025_biubug6.onnx 1,3,480,640
    /tmp/v/bin/python scripts/profile_onnx_model.py models/emotion.onnx 2,64,64,1

Prints the median of 21 runs (random input) with every graph optimisation (onnxruntime's
default, which includes the blocked NCHWc layout), with the extended level only (no layout
change), and with subnormal numbers flushed to zero; then, from onnxruntime's own profiler,
the time per operator type and the slowest nodes with their shapes. The profiler's file goes
to a temporary folder and is removed.
"""
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import onnxruntime as ort

RUNS = 21


def session(path, level=None, ftz=False, profile_dir=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if level is not None:
        so.graph_optimization_level = level
    if ftz:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_dir:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "profile")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def median_ms(s, feed):
    for _ in range(3):
        s.run(None, feed)
    ts = []
    for _ in range(RUNS):
        t = time.perf_counter()
        s.run(None, feed)
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: profile_onnx_model.py MODEL.onnx SHAPE (e.g. 1,3,480,640)")
    path, shape = sys.argv[1], [int(v) for v in sys.argv[2].split(",")]
    rng = np.random.default_rng(0)
    x = (rng.random(shape, dtype=np.float32) - 0.5) * 2
    name = session(path).get_inputs()[0].name
    feed = {name: x}
    print(f"{os.path.basename(path)} {shape}, one thread, median of {RUNS}:")
    print(f"  all optimisations (default)      {median_ms(session(path), feed):7.2f} ms")
    ext = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    print(f"  extended only (no NCHWc layout)  {median_ms(session(path, ext), feed):7.2f} ms")
    print(f"  default, subnormals flushed      {median_ms(session(path, ftz=True), feed):7.2f} ms")
    with tempfile.TemporaryDirectory() as d:
        s = session(path, profile_dir=d)
        for _ in range(10):
            s.run(None, feed)
        events = json.load(open(s.end_profiling()))
    by_op, by_node, shapes = defaultdict(float), defaultdict(float), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            by_op[op] += e["dur"]
            by_node[(op, e["name"])] += e["dur"]
            shapes[(op, e["name"])] = [list(v.values())[0]
                                       for v in e["args"].get("input_type_shape", [])][:2]
    total = sum(by_op.values())
    print("time per operator type (profiler, per run):")
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {op:24s} {us / 10 / 1000:6.2f} ms  {100 * us / total:3.0f} %")
    print("slowest nodes (per run; input and weight shapes):")
    for key, us in sorted(by_node.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {us / 10 / 1000:6.2f} ms  {key[0]:10s} {shapes[key]}  {key[1][:70]}")


if __name__ == "__main__":
    main()
