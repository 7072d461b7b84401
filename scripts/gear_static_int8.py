#!/usr/bin/env python3
"""Static (QDQ) int8 quantization of GEAR for onnxruntime: its speed and how far its outputs move.

    python3 scripts/gear_static_int8.py [--evaldata ../shared/evaldata] [--out /tmp/gear_int8]

Needs a venv with onnx, onnxruntime, numpy, pillow and sympy. Calibrates onnxruntime's
quantize_static (QDQ, per-channel int8 weights, uint8 activations, MinMax) on 100 UTKFace dev
crops resized to GEAR's 198 x 198 (every 10th file), times the f32 and int8 models single-threaded
(30 runs after 3 warm-ups, median) and compares them on 300 other UTKFace crops (every 10th,
offset 5): how often the race argmax agrees, and the median L1 distance of the age-bin
probabilities. The int8 file goes to --out (a temporary folder), never into the repository.
docs/quantization.md has the result. Kept as the record of that measurement (full-range
weights, quantized Softmax); the int8 GEAR the onnxruntime backend ships is made by
scripts/quantize_ort_int8.py.
"""
import argparse
import glob
import os
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("--evaldata", default=os.environ.get("FACELENS_EVALDATA", "../shared/evaldata"))
ap.add_argument("--out", default="/tmp/gear_int8")
a = ap.parse_args()
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
f32_path = os.path.join(root, "models", "gear.onnx")
os.makedirs(a.out, exist_ok=True)
files = sorted(glob.glob(os.path.join(a.evaldata, "attributes", "utkface", "*.jpg")))
if not files:
    raise SystemExit("no UTKFace crops under --evaldata")


def load(f):
    im = Image.open(f).convert("RGB").resize((198, 198), Image.BILINEAR)
    return (np.asarray(im, dtype=np.float32) / 255.0)[None]


calib = [load(f) for f in files[0::10][:100]]


class Reader(CalibrationDataReader):
    def __init__(self):
        self.it = iter([{"input_1": c} for c in calib])

    def get_next(self):
        return next(self.it, None)


pre = os.path.join(a.out, "gear_pre.onnx")
int8_path = os.path.join(a.out, "gear_int8.onnx")
quant_pre_process(f32_path, pre)
quantize_static(pre, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
f32 = ort.InferenceSession(f32_path, so, providers=["CPUExecutionProvider"])
int8 = ort.InferenceSession(int8_path, so, providers=["CPUExecutionProvider"])
for name, s in [("f32", f32), ("int8", int8)]:
    for _ in range(3):
        s.run(None, {"input_1": calib[0]})
    ts = []
    for _ in range(30):
        t = time.perf_counter()
        s.run(None, {"input_1": calib[0]})
        ts.append(time.perf_counter() - t)
    print(f"{name}: median {np.median(ts) * 1000:.1f} ms per 198x198 face, 1 thread")
test = [load(f) for f in files[5::10][:300]]
agree, dage = 0, []
for x in test:
    o32 = f32.run(None, {"input_1": x})
    o8 = int8.run(None, {"input_1": x})
    agree += int(np.argmax(o32[0]) == np.argmax(o8[0]))
    dage.append(np.abs(o32[2] - o8[2]).sum())
print(f"race argmax agreement {agree / len(test):.3f} on {len(test)} crops; "
      f"age-bin probabilities median L1 distance {np.median(dage):.3f}")
