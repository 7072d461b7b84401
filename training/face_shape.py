"""Face shape: a multinomial logistic regression from backbone features and the mesh geometry
to the Face Shape Dataset's labels, cross-validated with folds grouped by person, exported as
an ONNX head whose output is already in the contract's classes.

    python -m training.face_shape --crops /tmp/crops/train [--features ...] [--oblong oval|class|drop]
        [--export] [--stability /tmp/crops/train_mirror]

Classes. The contract has square, triangle, oval, heart, round. The data has heart, oblong,
oval, round, square. `--oblong class` (the default) trains oblong as its own class and the
exported head adds its probability to oval's (an oblong face is a long oval: the contract's
nearest class); `oval` relabels oblong photos as oval before training; `drop` leaves them out.
`triangle` has no photos: the head gives it probability 0 and never returns it (docs/model-cards/
face_shape.md says why a rule was not added). The CV accuracy is on the photos of the four
contract classes with labels (heart, oval, round, square); oblong photos are reported apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import common
from .common import Crops, SEED, kfold_indices, load_features

# The shipped head's inputs (models/face_shape_head.onnx's `features`), so that the command of
# docs/accuracy.md reproduces it: the emotion nets' grid-pooled maps, then face-api, GEAR and
# dlib age pools and the mesh geometry (the last four alone: 57.7 % grouped CV).
DEFAULT_FEATURES = ("emotion_fer_add4_g3,emotion_fer_add3_g2,emotion_human_add1_g2,"
                    "emotion_human_add2_g3,faceapi_pool,gear_pool,dlib_age_pool,mesh_geom")
CONTRACT = ["square", "triangle", "oval", "heart", "round"]
SCORED = ["heart", "oval", "round", "square"]
OUT = common.MODELS / "face_shape_head.onnx"


def rows_of(crops: Crops, oblong: str):
    rows = [r for r in crops.index if "face_shape" in r]
    if oblong == "drop":
        rows = [r for r in rows if r["face_shape"] != "oblong"]
    idx = np.array([r["i"] for r in rows])
    truth = np.array([r["face_shape"] for r in rows])
    train_label = np.array(["oval" if (t == "oblong" and oblong == "oval") else t for t in truth])
    groups = np.array([r["group"] for r in rows])
    found = np.array([r["found"] for r in rows], bool)
    return idx, truth, train_label, groups, found


class Model:
    def __init__(self, C: float | None = None, pca: int = 0):
        self.C = C
        self.pca = pca

    def fit(self, x, y, groups=None):
        from sklearn.linear_model import LogisticRegression

        self.mu = x.mean(axis=0)
        self.sd = x.std(axis=0)
        self.sd[self.sd < 1e-6] = 1.0
        z = (x - self.mu) / self.sd
        C = self.C
        if C is None:
            # C by grouped 3-fold CV inside the training data (never on the test fold).
            inner = kfold_indices(len(y), 3, SEED + 1, strata=y, groups=groups)
            best = None
            for c in [0.0003, 0.001, 0.003, 0.01, 0.03]:
                acc = []
                for f in range(3):
                    m = LogisticRegression(C=c, max_iter=2000).fit(z[inner != f], y[inner != f])
                    acc.append((m.predict(z[inner == f]) == y[inner == f]).mean())
                if best is None or np.mean(acc) > best[0]:
                    best = (np.mean(acc), c)
            C = best[1]
        self.C_used = C
        self.m = LogisticRegression(C=C, max_iter=3000).fit(z, y)
        self.classes = list(self.m.classes_)
        return self

    def proba(self, x):
        return self.m.predict_proba((x - self.mu) / self.sd)

    def contract_matrix(self):
        """`classes -> contract classes` summing matrix (oblong -> oval; triangle gets none)."""
        M = np.zeros((len(self.classes), len(CONTRACT)))
        for i, c in enumerate(self.classes):
            M[i, CONTRACT.index("oval" if c == "oblong" else c)] = 1.0
        return M

    def onnx(self, names, dims, meta):
        """features -> standardise -> logits -> softmax -> contract classes (MatMul by the
        summing matrix); output `probabilities` in CONTRACT order."""
        from onnx import helper, numpy_helper

        W = (self.m.coef_ / self.sd).T
        b = self.m.intercept_ - (self.m.coef_ * self.mu / self.sd).sum(axis=1)
        M = self.contract_matrix().astype(np.float32)

        def tail(score):
            return ([helper.make_node("Softmax", [score], ["p_classes"], axis=1),
                     helper.make_node("MatMul", ["p_classes", "to_contract"], ["probabilities"])],
                    [numpy_helper.from_array(M, "to_contract")])

        return common.feature_head_onnx(
            names, dims, W, b, tail, [("probabilities", len(CONTRACT))],
            "Facelens face-shape head: contract probabilities [" + ", ".join(CONTRACT) + "]", meta)


def to_contract_labels(model: Model, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pc = p @ model.contract_matrix()
    return np.array(CONTRACT)[pc.argmax(axis=1)], pc


def ece(p_top: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-class probability."""
    e = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (p_top > lo) & (p_top <= hi)
        if sel.any():
            e += sel.mean() * abs(p_top[sel].mean() - correct[sel].mean())
    return float(e)


def cross_validate(x, truth, label, groups, found, k=5, seed=SEED, C=None):
    fold = kfold_indices(len(label), k, seed, strata=label, groups=groups)
    pred = np.empty(len(label), dtype=object)
    pc_all = np.zeros((len(label), len(CONTRACT)))
    Cs = []
    for f in range(k):
        tr = (fold != f) & found
        te = fold == f
        m = Model(C).fit(x[tr], label[tr], groups[tr])
        Cs.append(m.C_used)
        lab, pc = to_contract_labels(m, m.proba(x[te]))
        lab[~found[te]] = "(missing)"
        pred[te] = lab
        pc_all[te] = pc
    return fold, pred, pc_all, Cs


def report(truth, pred, pc, fold) -> dict:
    sc = np.isin(truth, SCORED)
    correct = pred == truth
    conf = {t: {p: int(((truth == t) & (pred == p)).sum()) for p in CONTRACT + ["(missing)"]
                if ((truth == t) & (pred == p)).any()} for t in sorted(set(truth))}
    ptop = pc.max(axis=1)
    # calibration on the scored photos: top-class probability against being right
    truth_idx = np.array([CONTRACT.index(t) if t in CONTRACT else -1 for t in truth])
    nll = -np.log(np.clip(pc[sc, truth_idx[sc]], 1e-9, 1)).mean()
    return {
        "accuracy": float(correct[sc].mean()), "n": int(sc.sum()),
        "per_class": {c: {"recall": float(correct[truth == c].mean()), "n": int((truth == c).sum())} for c in SCORED},
        "by_fold": [float(correct[sc & (fold == f)].mean()) for f in sorted(set(fold))],
        "confusion": conf,
        "ece_top": ece(ptop[sc], correct[sc]),
        "mean_top_probability": float(ptop[sc].mean()),
        "log_loss": float(nll),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", required=True)
    ap.add_argument("--features", default=DEFAULT_FEATURES)
    ap.add_argument("--oblong", default="class", choices=["class", "oval", "drop"])
    ap.add_argument("--C", type=float, default=None, help="fixed inverse regularisation (default: inner grouped CV)")
    ap.add_argument("--seeds", default="7")
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--stability", nargs="*", default=[])
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    crops = Crops.open(a.crops)
    names = a.features.split(",")
    idx, truth, label, groups, found = rows_of(crops, a.oblong)
    x = load_features(crops, names)[idx].astype(np.float64)
    print(f"{len(truth)} photos ({len(set(groups))} groups), {int((~found).sum())} without a face; "
          f"features {names} -> {x.shape[1]} dims; oblong: {a.oblong}")
    results = {}
    seeds = [int(s) for s in a.seeds.split(",")]
    for seed in seeds:
        fold, pred, pc, Cs = cross_validate(x, truth, label, groups, found, seed=seed, C=a.C)
        rep = report(truth, pred, pc, fold)
        rep["C"] = Cs
        results[seed] = rep
        print(f"seed {seed}: grouped 5-fold CV accuracy on heart/oval/round/square {100 * rep['accuracy']:.1f} % "
              f"(n {rep['n']}); per class " + " ".join(f"{c} {100 * v['recall']:.1f}" for c, v in rep["per_class"].items())
              + f"; folds " + " ".join(f"{100 * v:.1f}" for v in rep["by_fold"])
              + f"; ECE {rep['ece_top']:.3f}, mean top p {rep['mean_top_probability']:.3f}; C {Cs}")
        print("   confusion (truth -> predicted): " + json.dumps(rep["confusion"]))
    out = {"features": names, "dims": int(x.shape[1]), "oblong": a.oblong, "cv": results}
    if a.export or a.stability:
        C = float(np.median(results[seeds[0]]["C"])) if a.C is None else a.C
        m = Model(C).fit(x[found], label[found])
        out["C"] = C
        if a.export:
            meta = {"features": ",".join(names), "dims": str(x.shape[1]),
                    "classes": ",".join(CONTRACT), "trained_classes": ",".join(m.classes),
                    "oblong": "probability added to oval", "triangle": "no training photos: probability 0",
                    "training_data": "Face Shape Dataset (niten19), dev split; see docs/model-cards/face_shape.md",
                    "cv_accuracy_4_classes": f"{results[seeds[0]]['accuracy']:.4f}"}
            onx = m.onnx(names, common.feature_dims(crops, names), meta)
            common.export_head(OUT, onx, crops, names, idx[found][:64],
                               m.proba(x[found][:64]) @ m.contract_matrix(), 1e-4, f", C {C}")
        base, _ = to_contract_labels(m, m.proba(x))
        for folder in a.stability:
            pairs, xo = common.stability_pairs(crops, idx, found, folder, names)
            lab, _ = to_contract_labels(m, m.proba(xo[[p[1] for p in pairs]]))
            same = float((lab == base[[p[0] for p in pairs]]).mean())
            out.setdefault("stability", {})[Path(folder).name] = {"n": len(pairs), "same_class": same}
            print(f"stability vs {folder}: same class {100 * same:.1f} % (n {len(pairs)})")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
