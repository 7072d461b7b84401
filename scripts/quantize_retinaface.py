#!/usr/bin/env python3
"""int8 RetinaFace: the shipped `models/retinaface_mnet025_int8.onnx`, and the earlier probes.

    python3 scripts/quantize_retinaface.py models/retinaface_mnet025_int8.onnx --only /fpn/,/ssh
    python3 scripts/quantize_retinaface.py OUT.onnx [--keep-heads-f32] [--evaldata ../shared/evaldata]

The shipped file quantizes only the 20 convolutions of the feature pyramid and the SSH context
modules (`--only /fpn/,/ssh`), 70 % of the detector's arithmetic, all dense 3 x 3 or 1 x 1; the
MobileNet backbone and the heads stay f32. Quantizing everything (no `--only`) lost five AP
points on the dev WIDER photos, the FPN and SSH alone 0.1-0.3 (docs/quantization.md).

Maintainer-only, same venv as scripts/quantize_ort_int8.py. Writes a static int8 (QDQ)
RetinaFace: the model converted to opset 13 first (its own opset has no per-channel
DequantizeLinear), onnxruntime's pre-processing, per-channel 7-bit weights, uint8 activations
calibrated MinMax on every third dev WIDER photo at the service's 640 px long side (BGR minus
the training means, padded to a multiple of 32, as crates/facelens-vision/src/detect.rs feeds
it), the final Softmax f32; `--keep-heads-f32` also keeps the class, box and landmark heads'
convolutions f32. AP: `facelens --backend onnxruntime --precision f32|int8 eval detection
--manifest ../shared/evaldata/detection/manifest.jsonl --profile fast`. Same inputs and versions
give the same bytes (MinMax calibration has no randomness).
"""
import argparse
import glob
import os
import tempfile

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime import __version__ as ort_version
from PIL import Image

MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)


def detector_input(path, long_side=640):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    k = long_side / max(w, h)
    nw, nh = max(16, round(w * k)), max(16, round(h * k))
    a = np.asarray(im.resize((nw, nh), Image.BILINEAR), np.float32)[:, :, ::-1] - MEAN_BGR
    pw, ph = -(-nw // 32) * 32, -(-nh // 32) * 32
    out = np.zeros((ph, pw, 3), np.float32)
    out[:nh, :nw] = a
    return out.transpose(2, 0, 1)[None].copy()


class Reader(CalibrationDataReader):
    def __init__(self, name, files):
        self.it = iter([{name: detector_input(f)} for f in files])

    def get_next(self):
        return next(self.it, None)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--keep-heads-f32", action="store_true")
    ap.add_argument("--only", help="quantize only the convolutions whose node names start with "
                    "one of these comma-separated prefixes, e.g. /fpn/,/ssh1/")
    ap.add_argument("--evaldata", default=os.environ.get("FACELENS_EVALDATA", "../shared/evaldata"))
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.evaldata, "detection", "wider_face_val", "images",
                                          "**", "*.jpg"), recursive=True))
    calib = files[0::3]
    src = os.path.join(root, "models", "retinaface_mnet025_biubug6.onnx")
    name = onnx.load(src).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        up = os.path.join(tmp, "up.onnx")
        onnx.save(version_converter.convert_version(onnx.load(src), 13), up)
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(up, pre)
        nodes = onnx.load(pre).graph.node
        exclude = [n.name for n in nodes if n.op_type == "Softmax"]
        if args.keep_heads_f32:
            exclude += [n.name for n in nodes if n.op_type == "Conv" and "_head" in n.name]
        only = None
        if args.only:
            prefixes = tuple(args.only.split(","))
            only = [n.name for n in nodes if n.op_type == "Conv" and n.name.startswith(prefixes)]
            exclude = [n.name for n in nodes if n.name not in only]
        quantize_static(pre, args.out, Reader(name, calib), quant_format=QuantFormat.QDQ,
                        nodes_to_quantize=only, nodes_to_exclude=exclude, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    m = onnx.load(args.out)
    del m.graph.value_info[:]
    m.producer_name = "facelens scripts/quantize_retinaface.py"
    m.producer_version = f"onnxruntime {ort_version}"
    onnx.save(m, args.out)
    print(f"{args.out}: {os.path.getsize(args.out)} bytes, {len(calib)} calibration photos, "
          f"{len(exclude)} nodes kept f32"
          + (f", {len(only)} convolutions quantized" if only is not None else ""))


if __name__ == "__main__":
    main()
