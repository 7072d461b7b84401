"""Beauty: a regression from the inner features of the shipped models to SCUT-FBP5500's mean
rating (1-5), 5-fold cross-validated, exported as an ONNX head.

    python -m training.beauty --crops /tmp/crops/train [--features faceapi_pool,gear_pool,...]
        [--model ridge|mlp] [--export] [--stability /tmp/crops/scut_mirror ...]

The crops folder is `facelens eval crops` output over trainingdata/manifest.jsonl (every
image; the SCUT-FBP5500 rows are picked by their `beauty_1_5` label). Folds are stratified by
the four SCUT groups (AF, AM, CF, CM), seed 7. A portrait where no face was found is scored at
the training mean (a miss, never dropped). The contract's 0-100 is `25 * (rating - 1)`, clamped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import common
from .common import Crops, SEED, kfold_indices, load_features, pearson, spearman

DEFAULT_FEATURES = ("faceapi_pool,dlib_age_pool,emotion_fer_add4_g3,emotion_fer_add3_g2,"
                    "emotion_human_add1_g2,emotion_human_add2_g3")
CARD = common.REPO / "docs" / "model-cards" / "beauty.md"
OUT = common.MODELS / "beauty_head.onnx"


def to_contract(rating: np.ndarray) -> np.ndarray:
    return np.clip(25.0 * (np.asarray(rating, np.float64) - 1.0), 0.0, 100.0)


def rows_of(crops: Crops):
    rows = [r for r in crops.index if "beauty_1_5" in r]
    idx = np.array([r["i"] for r in rows])
    y = np.array([r["beauty_1_5"] for r in rows], np.float64)
    grp = np.array([Path(r["file"]).name[:2] for r in rows])
    found = np.array([r["found"] for r in rows], bool)
    return idx, y, grp, found


class Model:
    """Ridge (alpha by generalised cross-validation inside the training data) or a one-hidden-
    layer MLP over standardised features; both become `x @ W + b` (+ ReLU layer) in ONNX."""

    def __init__(self, kind: str, alphas=None, hidden: int = 64):
        self.kind = kind
        self.alphas = alphas if alphas is not None else np.logspace(-1, 5, 25)
        self.hidden = hidden

    def fit(self, x, y):
        self.mu = x.mean(axis=0)
        self.sd = x.std(axis=0)
        self.sd[self.sd < 1e-6] = 1.0
        z = (x - self.mu) / self.sd
        if self.kind == "ridge":
            from sklearn.linear_model import RidgeCV

            self.m = RidgeCV(alphas=self.alphas).fit(z, y)
            self.alpha = float(self.m.alpha_)
        else:
            from sklearn.neural_network import MLPRegressor

            self.m = MLPRegressor(hidden_layer_sizes=(self.hidden,), alpha=1.0, max_iter=400,
                                  early_stopping=True, random_state=SEED).fit(z, y)
            self.alpha = 1.0
        return self

    def predict(self, x):
        return self.m.predict((x - self.mu) / self.sd)

    def onnx(self, names, dims, meta):
        """The head over the named feature inputs (spatial maps pooled inside), output `rating`."""
        from onnx import helper

        if self.kind != "ridge":
            raise SystemExit("export is implemented for the ridge head")
        W = (self.m.coef_ / self.sd)[:, None]
        b = np.array([self.m.intercept_ - float((self.m.coef_ * self.mu / self.sd).sum())])
        return common.feature_head_onnx(
            names, dims, W, b, lambda s: ([helper.make_node("Identity", [s], ["rating"])], []),
            [("rating", 1)], "Facelens beauty head: SCUT-FBP5500 mean rating (1-5) from backbone features", meta)


def cross_validate(x, y, grp, found, kind, k=5, seed=SEED):
    fold = kfold_indices(len(y), k, seed, strata=grp)
    pred = np.zeros(len(y))
    alphas = []
    for f in range(k):
        tr = (fold != f) & found
        te = fold == f
        m = Model(kind).fit(x[tr], y[tr])
        alphas.append(m.alpha)
        pred[te] = np.where(found[te], m.predict(x[te]), y[tr].mean())
    return fold, pred, alphas


def report(y, pred, grp, fold) -> dict:
    out = {
        "pearson": pearson(pred, y), "spearman": spearman(pred, y),
        "mae_1_5": float(np.abs(pred - y).mean()), "n": int(len(y)),
        "by_group": {g: {"pearson": pearson(pred[grp == g], y[grp == g]),
                         "mae_1_5": float(np.abs(pred[grp == g] - y[grp == g]).mean()),
                         "n": int((grp == g).sum())} for g in sorted(set(grp))},
        "by_fold": [pearson(pred[fold == f], y[fold == f]) for f in sorted(set(fold))],
    }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", required=True)
    ap.add_argument("--features", default=DEFAULT_FEATURES)
    ap.add_argument("--model", default="ridge", choices=["ridge", "mlp"])
    ap.add_argument("--seeds", default="7", help="comma-separated fold seeds (the first is the headline)")
    ap.add_argument("--export", action="store_true", help="fit on all rows, write models/beauty_head.onnx")
    ap.add_argument("--stability", nargs="*", default=[],
                    help="crops folders of transformed photos (--mirror / --scale) to compare with")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)

    crops = Crops.open(a.crops)
    names = a.features.split(",")
    idx, y, grp, found = rows_of(crops)
    x = load_features(crops, names)[idx].astype(np.float64)
    print(f"{len(y)} rated portraits, {int((~found).sum())} without a face; features {names} -> {x.shape[1]} dims")
    seeds = [int(s) for s in a.seeds.split(",")]
    results = {}
    for seed in seeds:
        fold, pred, alphas = cross_validate(x, y, grp, found, a.model, seed=seed)
        rep = report(y, pred, grp, fold)
        rep["alphas"] = alphas
        results[seed] = rep
        print(f"seed {seed}: 5-fold CV Pearson {rep['pearson']:.4f}  Spearman {rep['spearman']:.4f}  "
              f"MAE {rep['mae_1_5']:.4f}  folds " + " ".join(f"{v:.3f}" for v in rep["by_fold"]))
        print("   by group: " + "  ".join(f"{g} {v['pearson']:.3f} (n {v['n']})" for g, v in rep["by_group"].items())
              + f"   alphas {[round(v, 1) for v in alphas]}")
    out = {"features": names, "dims": int(x.shape[1]), "model": a.model, "cv": results}

    if a.export or a.stability:
        m = Model(a.model).fit(x[found], y[found])
        out["alpha"] = m.alpha
        if a.export:
            meta = {"features": ",".join(names), "dims": str(x.shape[1]),
                    "output": "rating: SCUT-FBP5500 mean rating, 1-5; contract beauty = clamp(25 * (rating - 1), 0, 100)",
                    "training_data": "SCUT-FBP5500 v2 (dev split, 3,286 portraits): non-commercial research use only",
                    "cv_pearson": f"{results[seeds[0]]['pearson']:.4f}"}
            onx = m.onnx(names, common.feature_dims(crops, names), meta)
            common.export_head(OUT, onx, crops, names, idx[found][:64],
                               m.predict(x[found][:64]).reshape(-1, 1), 1e-3, f", alpha {m.alpha:.1f}")
        base = to_contract(m.predict(x))
        for folder in a.stability:
            pairs, xo = common.stability_pairs(crops, idx, found, folder, names)
            d = np.abs(to_contract(m.predict(xo[[p[1] for p in pairs]])) - base[[p[0] for p in pairs]])
            s = {"n": len(pairs), "median_abs_change": float(np.median(d)),
                 "p90_abs_change": float(np.percentile(d, 90)), "share_within_3": float((d <= 3).mean())}
            out.setdefault("stability", {})[Path(folder).name] = s
            print(f"stability vs {folder}: median |change| {s['median_abs_change']:.2f} points (0-100), "
                  f"90th pct {s['p90_abs_change']:.2f}, within 3 points {100 * s['share_within_3']:.1f} % (n {s['n']})")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
