#!/usr/bin/env python3
"""Probe: does a logistic head on the attribute models' inner features read gender better than
dlib's own gender output? (Issue: gender >= 93 % on UTKFace; children 0-12 are the gap.)

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy pillow onnx onnxruntime
    /tmp/venv/bin/python scripts/probe_gender_embeddings.py ../shared/evaldata ../shared/models

A development experiment, not part of the service: it changes nothing and prints 5-fold
cross-validated accuracies (overall, 0-12, 13-19, 20+) on the 1,500 UTKFace dev crops.

The UTKFace crops are dlib chips with padding 0.25, so the probe takes their central 1.4/1.5
(about a padding-0.2 chip) for the dlib models, mirrored and averaged, and the crop
[0, .1, .9, .9] of the image for GEAR. This approximates the pipeline's own alignment (the eval
command gives the shipped figure); the comparison that matters is between rows of one run.
Inner features: dlib age's 256-d pooled trunk, dlib gender's 4,096-d conv features and 16-d
hidden layer, GEAR's two 128-d dense layers (before its race and gender outputs).
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_heuristics import cv_predict, folds  # noqa: E402

DLIB_MEAN = np.array([122.782, 117.001, 104.298], np.float32)
L2 = 30.0


def session(path, extra_outputs):
    m = onnx.load(path)
    for n in extra_outputs:
        m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def main():
    data, models = sys.argv[1], sys.argv[2]
    age = session(f"{models}/dlib_age_v1.onnx", ["layer_1_flatten"])
    gen = session(f"{models}/dlib_gender_v1.onnx", ["layer_1_flatten", "layer_4_flatten"])
    g = onnx.load(f"{models}/gear.onnx")
    dense = sorted(o for n in g.graph.node for o in n.output
                   if "dense_2/Relu_Relu" in o or "dense_3/Relu_Relu" in o)
    gear = session(f"{models}/gear.onnx", dense)
    gear_in = gear.get_inputs()[0].name
    gear_out = [o.name for o in gear.get_outputs()]
    items = [json.loads(line) for line in open(f"{data}/attributes/manifest.jsonl")]
    items = [i for i in items if i["file"].startswith("attributes/utkface/")]
    feats = {k: [] for k in ["dlib_p", "gear_p", "age256", "gender4096", "gender16",
                             "gear_dense2", "gear_dense3"]}
    y, ages = [], []
    for it in items:
        im = Image.open(f"{data}/{it['file']}").convert("RGB")
        w, h = im.size
        c = w * 1.4 / 1.5
        o = (w - c) / 2
        chip = im.crop((o, o, o + c, o + c))

        def views(side):
            a = (np.asarray(chip.resize((side, side), Image.BILINEAR), np.float32) - DLIB_MEAN) / 256
            return np.stack([a, a[:, ::-1]]).transpose(0, 3, 1, 2).copy()

        pa = age.run(None, {"images": views(64)})
        pg = gen.run(None, {"images": views(32)})
        feats["age256"].append(pa[1].mean(0))
        feats["gender16"].append(pg[1].mean(0))
        feats["gender4096"].append(pg[2].mean(0))
        feats["dlib_p"].append(np.log(pg[0].mean(0) + 1e-6))
        gi = np.asarray(im.crop((0.1 * w, 0, 0.9 * w, 0.9 * h)).resize((198, 198), Image.BILINEAR),
                        np.float32) / 255
        out = dict(zip(gear_out, gear.run(None, {gear_in: gi[None]})))
        feats["gear_dense2"].append(out[dense[0]][0])
        feats["gear_dense3"].append(out[dense[1]][0])
        feats["gear_p"].append(np.log(out["gender_output"][0] + 1e-6))
        y.append(1.0 if it["gender"] == "male" else 0.0)
        ages.append(it["age"])
    y, ages = np.array(y), np.array(ages)
    X = {k: np.array(v, dtype=np.float64) for k, v in feats.items()}
    fold = folds(list(range(len(y))), list(y))

    def report(name, male):
        pred = male.astype(float)
        parts = [f"all {np.mean(pred == y):.3f}"]
        for lab, m in [("0-12", ages <= 12), ("13-19", (ages > 12) & (ages < 20)), ("20+", ages >= 20)]:
            parts.append(f"{lab} {np.mean(pred[m] == y[m]):.3f} (n={int(m.sum())})")
        print(f"{name:<34} " + "  ".join(parts))

    def cv(name, Z):
        report(f"{name} (LR, 5-fold CV)", cv_predict(Z, y, fold, l2=L2) > 0.5)

    report("dlib gender output", X["dlib_p"][:, 1] > X["dlib_p"][:, 0])
    report("GEAR gender output", X["gear_p"][:, 0] > X["gear_p"][:, 1])
    for k in ["age256", "gender4096", "gear_dense2", "gear_dense3"]:
        cv(k, X[k])
    cv("dlib + GEAR outputs", np.hstack([X["dlib_p"], X["gear_p"]]))
    cv("all inner features + outputs", np.hstack([X[k] for k in
       ["age256", "gender16", "gear_dense2", "gear_dense3", "dlib_p", "gear_p"]]))


if __name__ == "__main__":
    main()
