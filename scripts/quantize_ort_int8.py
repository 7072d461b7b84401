#!/usr/bin/env python3
"""Derive the static int8 (QDQ) models the onnxruntime backend runs by default: GEAR and dlib age.

    python3 scripts/quantize_ort_int8.py [--evaldata ../shared/evaldata] [--out-dir models]
                                         [--check N]

Maintainer-only: needs a venv with onnx, onnxruntime, numpy, pillow and sympy (used for
docs/quantization.md: onnx 1.23.2, onnxruntime 1.23.2, numpy 2.4, pillow 13). Writes
`gear_int8.onnx` and `dlib_age_v1_int8.onnx` and prints their sizes and SHA-256 for
models/manifest.json. Same inputs and versions give the same bytes (MinMax calibration has no
randomness).

Method (onnxruntime's `quantize_static`):
- the f32 model first goes through onnxruntime's quantization pre-processing (shape inference,
  BatchNormalization folded into Conv);
- QDQ format, weights int8 per output channel, activations uint8 per tensor with ranges
  calibrated (MinMax) on 100 UTKFace dev crops (every 15th file) prepared the way the pipeline
  feeds each model (GEAR: 198x198 RGB / 255; dlib age: the central 150 px of the 200 px crop at
  64x64, dlib's mean subtracted, / 256). The crops are an approximation of the pipeline's
  aligned chips; calibration only needs the ranges activations take on real faces.
- the final Softmax nodes stay f32, so the probabilities keep their resolution (a quantized
  Softmax rounds them to steps of 1/255: small probabilities become 0, and the heads read
  their logarithms).
- `reduce_range` on: weights use 7 bits. On x86-64 CPUs without VNNI, onnxruntime multiplies
  uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit sum of two products saturates
  for full-range weights (2 x 255 x 127 > 32767); with 7-bit weights it cannot
  (2 x 255 x 64 = 32640). Without it the answers would depend on the CPU: an earlier run on
  an AMD box agreed with f32 on race for 87 % of faces, against 98 % on an Intel VNNI box.

Only the two models dominated by dense convolutions are quantized: there int8 is ~3x faster
(docs/quantization.md); the depthwise-separable ones (RetinaFace, mesh, mini-Xceptions) gain
little and the detector's boxes are the contract's most visible output.

--check N compares f32 and int8 on N other UTKFace crops (race / gender / age-bin argmax
agreement for GEAR, expected-age difference for dlib age): the agreement table of
docs/quantization.md.
"""
import argparse
import glob
import hashlib
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

DLIB_MEAN = np.array([122.782, 117.001, 104.298], np.float32)


def gear_input(path):
    im = Image.open(path).convert("RGB").resize((198, 198), Image.BILINEAR)
    return (np.asarray(im, np.float32) / 255.0)[None]


def age_input(path):
    im = Image.open(path).convert("RGB").crop((25, 25, 175, 175)).resize((64, 64), Image.BILINEAR)
    a = (np.asarray(im, np.float32) - DLIB_MEAN) / 256.0
    return a.transpose(2, 0, 1)[None].copy()


# (file, output file, input name, input builder)
MODELS = [
    ("gear.onnx", "gear_int8.onnx", "input_1", gear_input),
    ("dlib_age_v1.onnx", "dlib_age_v1_int8.onnx", "images", age_input),
]


class Reader(CalibrationDataReader):
    def __init__(self, name, build, files):
        self.it = iter([{name: build(f)} for f in files])

    def get_next(self):
        return next(self.it, None)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def check(src, dst, name, build, files):
    a, b = session(src), session(dst)
    pairs = [(a.run(None, {name: build(f)}), b.run(None, {name: build(f)})) for f in files]
    if name == "input_1":
        outs = [o.name for o in a.get_outputs()]
        for k, out in enumerate(outs):
            agree = np.mean([np.argmax(p[0][k]) == np.argmax(p[1][k]) for p in pairs])
            print(f"  {out}: argmax agreement {agree:.3f} on {len(files)} crops")
    else:
        ages = np.arange(81, dtype=np.float32)
        d = [abs(float((p[0][0] * ages).sum() - (p[1][0] * ages).sum())) for p in pairs]
        print(f"  expected age: mean |f32 - int8| {np.mean(d):.2f} y, 95th percentile "
              f"{np.percentile(d, 95):.2f} y on {len(files)} crops")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaldata", default=os.environ.get("FACELENS_EVALDATA", "../shared/evaldata"))
    ap.add_argument("--models-dir", default=os.path.join(root, "models"))
    ap.add_argument("--out-dir", default=os.path.join(root, "models"))
    ap.add_argument("--check", type=int, default=0, metavar="N")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.evaldata, "attributes", "utkface", "*.jpg")))
    if len(files) < 1500:
        sys.exit(f"expected the 1,500 UTKFace dev crops under {args.evaldata}/attributes/utkface")
    calib = files[0::15][:100]
    others = [f for f in files[7::3] if f not in set(calib)][: args.check]
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, {len(calib)} calibration crops")
    os.makedirs(args.out_dir, exist_ok=True)
    for src_name, dst_name, name, build in MODELS:
        src = os.path.join(args.models_dir, src_name)
        dst = os.path.join(args.out_dir, dst_name)
        with tempfile.TemporaryDirectory() as tmp:
            pre = os.path.join(tmp, "pre.onnx")
            quant_pre_process(src, pre)
            quantize_static(pre, dst, Reader(name, build, calib), quant_format=QuantFormat.QDQ,
                            nodes_to_exclude=[n.name for n in onnx.load(pre).graph.node
                                              if n.op_type == "Softmax"],
                            per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        m = onnx.load(dst)
        del m.graph.value_info[:]
        m.producer_name = "facelens scripts/quantize_ort_int8.py"
        m.producer_version = f"onnxruntime {ort.__version__}"
        onnx.save(m, dst)
        print(f"{src_name} -> {dst_name}: {os.path.getsize(dst)} bytes, sha256 {sha256(dst)}")
        if others:
            check(src, dst, name, build, others)


if __name__ == "__main__":
    main()
