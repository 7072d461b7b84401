#!/usr/bin/env python3
"""Derive int8 versions of the embedded models (models/*.onnx) with onnxruntime.quantization.

Method: dynamic quantization (weights int8 per output channel, activations uint8 per tensor,
quantized at run time by DynamicQuantizeLinear), which turns Conv / MatMul into ConvInteger /
MatMulInteger — the integer ops rten 0.27 runs (it fuses ConvInteger + Cast + Mul into
ConvIntegerToFloat). Static QDQ quantization is not offered: rten has no QDQ fusion, so a
QuantizeLinear -> DequantizeLinear -> Conv graph would run the float Conv plus two extra ops.

`reduce_range` (7-bit weights) is on by default: on x86-64 without AVX512-VNNI rten's int8 GEMM
uses VPMADDUBSW, whose 16-bit pair sums saturate on full-range values (rten's own advice).

The models are first run through onnxruntime's quantization pre-processing (shape inference and
graph optimisation, which folds BatchNormalization into Conv) so that every Conv is quantized with
its final weights.

Reproducible: same inputs + same onnx/onnxruntime versions give the same bytes. Used for
docs/quantization.md: onnx 1.23.2, onnxruntime 1.32.0, numpy 2.x (pip in a venv).

usage: scripts/quantize_models.py [--models-dir models] [--out-dir DIR] [--only ID,ID]
                                  [--exclude ID:NODE,...] [--full-range] [--per-tensor]
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

import onnx
import onnxruntime
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

# Nodes left in float per model id, because quantizing them cost accuracy (see
# docs/quantization.md). Empty = every Conv / MatMul is quantized.
DEFAULT_EXCLUDE: dict[str, list[str]] = {}


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def quantize_one(src: str, dst: str, exclude: list[str], per_channel: bool, reduce_range: bool):
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        # ONNX shape inference only (symbolic shape inference needs sympy and adds nothing here).
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_dynamic(
            pre,
            dst,
            op_types_to_quantize=["Conv", "MatMul"],
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
        )
    # Drop value_info (rten does not need it; keeps the files small and deterministic).
    m = onnx.load(dst)
    del m.graph.value_info[:]
    m.producer_name = "facelens scripts/quantize_models.py"
    m.producer_version = f"onnxruntime {onnxruntime.__version__}"
    onnx.save(m, dst)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--models-dir", default=os.path.join(root, "models"))
    ap.add_argument("--out-dir", default=os.path.join(tempfile.gettempdir(), "facelens-int8"))
    ap.add_argument("--only", default="", help="comma-separated model ids (default: all)")
    ap.add_argument("--exclude", default="", help="extra ID:NODE_NAME pairs to keep in float")
    ap.add_argument("--full-range", action="store_true", help="8-bit weights (reduce_range off)")
    ap.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    args = ap.parse_args()

    with open(os.path.join(args.models_dir, "manifest.json")) as f:
        manifest = json.load(f)
    only = {s for s in args.only.split(",") if s}
    exclude = {k: list(v) for k, v in DEFAULT_EXCLUDE.items()}
    for pair in filter(None, args.exclude.split(",")):
        mid, node = pair.split(":", 1)
        exclude.setdefault(mid, []).append(node)

    os.makedirs(args.out_dir, exist_ok=True)
    print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
    for m in manifest["models"]:
        if only and m["id"] not in only:
            continue
        src = os.path.join(args.models_dir, m["file"])
        if sha256(src) != m["sha256"]:
            print(f"{m['id']}: {src} does not match the manifest's sha256 (already replaced?)", file=sys.stderr)
            return 1
        dst = os.path.join(args.out_dir, m["file"].removesuffix(".onnx") + ".int8.onnx")
        print(f"{m['id']}: {m['file']} -> {dst}")
        quantize_one(src, dst, exclude.get(m["id"], []), not args.per_tensor, not args.full_range)
        print(f"  {os.path.getsize(src)} -> {os.path.getsize(dst)} bytes, sha256 {sha256(dst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
