#!/usr/bin/env python3
"""Per-model speed, single thread: rten f32 vs rten int8 vs onnxruntime f32 (and int8), same run.

rten is timed with the facelens-infer `inspect` example (21 runs on a constant input, median);
onnxruntime in-process with the same input, intra_op 1. The backends alternate within each round
so that load from other processes affects all of them alike; the result is the median over rounds
of the per-round medians (ms per model run, at the batch the pipeline uses).

usage: scripts/bench_quant.py --inspect target/release/examples/inspect --int8-dir DIR [--rounds 5]
       [--only ID,ID] [--json OUT]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

# model id -> (file, input shape the pipeline uses per face / per image)
MODELS = {
    "retinaface_mnet025": ("retinaface_mnet025_biubug6.onnx", (1, 3, 480, 640)),
    "face_mesh": ("mp_face_landmark.onnx", (1, 192, 192, 3)),
    "dlib_age": ("dlib_age_v1.onnx", (10, 3, 64, 64)),
    "dlib_gender": ("dlib_gender_v1.onnx", (2, 3, 32, 32)),
    "emotion_human": ("emotion.onnx", (2, 64, 64, 1)),
    "emotion_fer": ("fer_emotion_minixception.onnx", (2, 64, 64, 1)),
    "gear": ("gear.onnx", (1, 198, 198, 3)),
}
RUNS = 21


def rten_ms(inspect: str, path: str, shape) -> float:
    out = subprocess.run(
        [inspect, path, ",".join(map(str, shape)), "1"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"median ([0-9.]+) ms", out)
    if not m:
        raise RuntimeError(out)
    return float(m.group(1))


def ort_session(path: str):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_ms(sess, shape) -> float:
    name = sess.get_inputs()[0].name
    x = np.full(shape, 0.5, dtype=np.float32)
    sess.run(None, {name: x})
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--inspect", required=True)
    ap.add_argument("--models-dir", default=os.path.join(root, "models"))
    ap.add_argument("--int8-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--json")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    ids = [i for i in MODELS if not only or i in only]

    res = {i: {k: [] for k in ("rten_f32", "rten_int8", "ort_f32", "ort_int8")} for i in ids}
    sessions = {}
    for i in ids:
        f, _ = MODELS[i]
        f32 = os.path.join(args.models_dir, f)
        i8 = os.path.join(args.int8_dir, f.removesuffix(".onnx") + ".int8.onnx")
        sessions[i] = (f32, i8, ort_session(f32), ort_session(i8))
    for r in range(args.rounds):
        for i in ids:
            shape = MODELS[i][1]
            f32, i8, s32, s8 = sessions[i]
            res[i]["rten_f32"].append(rten_ms(args.inspect, f32, shape))
            res[i]["rten_int8"].append(rten_ms(args.inspect, i8, shape))
            res[i]["ort_f32"].append(ort_ms(s32, shape))
            res[i]["ort_int8"].append(ort_ms(s8, shape))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print(f"onnxruntime {ort.__version__}; ms per run, single thread, median of {args.rounds} rounds x {RUNS} runs")
    print("| model | input | rten f32 | rten int8 | int8/f32 | ort f32 | ort int8 |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for i in ids:
        med = {k: statistics.median(v) for k, v in res[i].items()}
        summary[i] = {"shape": MODELS[i][1], "median_ms": med, "rounds": res[i]}
        print(
            f"| {i} | {'x'.join(map(str, MODELS[i][1]))} | {med['rten_f32']:.2f} | {med['rten_int8']:.2f} "
            f"| {med['rten_int8'] / med['rten_f32']:.2f} | {med['ort_f32']:.2f} | {med['ort_int8']:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
