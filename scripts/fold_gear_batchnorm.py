#!/usr/bin/env python3
"""Fold GEAR's batch normalisations into the layer after them.

    python3 scripts/fold_gear_batchnorm.py IN.onnx OUT.onnx [--check N] [--evaldata DIR]

GEAR (Human's TFJS model, converted by tf2onnx) normalises *after* each ReLU:
Conv -> Relu -> Mul(s) -> Add(b) -> MaxPool -> next Conv (no padding), and after the last block
MaxPool -> GlobalMaxPool -> Squeeze -> three MatMul + bias heads. A normalisation after the
activation cannot be folded into the convolution before it, so every run streams the largest
activations (64 x 194 x 194) through two more element-wise passes; in the int8 model they become
QLinearMul and QLinearAdd, 18 % of its time in onnxruntime
(docs/journal/2026-11-29-6-perf-avx2-int8-fpn.md).

They can be folded into the layer *after*: with every scale s > 0 (checked; the script refuses
otherwise), max(s*x + b) = s*max(x) + b, so the per-channel affine commutes with both max-pools,
and a convolution without padding, or a matrix product, of (s*y + b) is the same layer with its
input-channel weights scaled by s and b pushed into its bias. The result is the same function;
only floating-point rounding differs (--check prints how much).

--check N runs both files in onnxruntime on N UTKFace dev crops (GEAR's input: 198 x 198 RGB
/ 255) and prints the largest output difference. Maintainer-only: numpy, onnx, onnxruntime and
pillow in a venv.
"""
import argparse
import glob
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def fold(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}

    def arr(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def set_arr(name, value):
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def only(name):
        c = consumers.get(name, [])
        if len(c) != 1:
            raise SystemExit(f"{name}: expected one consumer, found {len(c)}")
        return c[0]

    removed = []
    folded = 0
    for mul in [n for n in g.node if n.op_type == "Mul"]:
        src = producer.get(mul.input[0])
        scale = arr(mul.input[1])
        if src is None or src.op_type != "Relu" or scale is None or scale.ndim != 4:
            continue
        add = only(mul.output[0])
        shift = arr(add.input[1]) if add.op_type == "Add" else None
        if shift is None or shift.shape != scale.shape:
            continue
        s, b = scale.reshape(-1).astype(np.float64), shift.reshape(-1).astype(np.float64)
        if not np.all(s > 0):
            raise SystemExit(f"{mul.name}: a scale is not positive; cannot move it past MaxPool")
        # Skip over the max-pools the affine commutes with.
        pools = []
        nxt = only(add.output[0])
        while nxt.op_type in ("MaxPool", "GlobalMaxPool", "Squeeze"):
            pools.append(nxt)
            if len(consumers.get(nxt.output[0], [])) != 1:
                break
            nxt = only(nxt.output[0])
        if nxt.op_type == "Conv":
            for a in nxt.attribute:
                if a.name == "pads" and any(a.ints):
                    raise SystemExit(f"{nxt.name}: padded; zeros would not be shifted by b")
                if a.name == "group" and a.i != 1:
                    raise SystemExit(f"{nxt.name}: grouped convolution")
            w = arr(nxt.input[1]).astype(np.float64)  # [out, in, kh, kw]
            bias = arr(nxt.input[2]).astype(np.float64)
            set_arr(nxt.input[2], bias + np.einsum("oikl,i->o", w, b))
            set_arr(nxt.input[1], w * s[None, :, None, None])
            heads = 1
        else:
            # The three heads read the squeezed vector with MatMul, then add their bias.
            heads = 0
            for mm in consumers[pools[-1].output[0]]:
                if mm.op_type != "MatMul":
                    raise SystemExit(f"{mm.name}: expected MatMul after the last pool")
                w = arr(mm.input[1]).astype(np.float64)  # [in, out]
                bias_add = only(mm.output[0])
                bias = arr(bias_add.input[1])
                if bias_add.op_type != "Add" or bias is None:
                    raise SystemExit(f"{mm.name}: expected a bias Add after it")
                set_arr(bias_add.input[1], bias.astype(np.float64) + b @ w)
                set_arr(mm.input[1], w * s[:, None])
                heads += 1
        # The first pool now reads the ReLU directly.
        first = pools[0] if pools else nxt
        for k, i in enumerate(first.input):
            if i == add.output[0]:
                first.input[k] = src.output[0]
        removed += [mul, add]
        folded += heads
    for n in removed:
        g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for i in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(i)
    return len(removed) // 2, folded


def check(a_path, b_path, files):
    import onnxruntime as ort
    from PIL import Image

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    a = ort.InferenceSession(a_path, so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(b_path, so, providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    worst = {o.name: 0.0 for o in a.get_outputs()}
    for f in files:
        im = Image.open(f).convert("RGB").resize((198, 198), Image.BILINEAR)
        x = (np.asarray(im, np.float32) / 255.0)[None]
        for meta, ya, yb in zip(a.get_outputs(), a.run(None, {name: x}), b.run(None, {name: x})):
            worst[meta.name] = max(worst[meta.name], float(np.abs(ya - yb).max()))
    for k, v in worst.items():
        print(f"  {k}: largest |difference| {v:.2e} over {len(files)} crops")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--check", type=int, default=0, metavar="N")
    ap.add_argument("--evaldata", default=os.environ.get("FACELENS_EVALDATA", "../shared/evaldata"))
    args = ap.parse_args()
    model = onnx.load(args.src)
    before = len(model.graph.node)
    pairs, targets = fold(model)
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    print(f"{args.src}: {pairs} Mul/Add pairs folded into {targets} following layers, "
          f"{before} -> {len(model.graph.node)} nodes -> {args.out}")
    if args.check:
        files = sorted(glob.glob(os.path.join(args.evaldata, "attributes", "utkface", "*.jpg")))
        check(args.src, args.out, files[3::7][: args.check])
    return 0


if __name__ == "__main__":
    sys.exit(main())
