"""Race and gender: check the served answers on the SCUT-FBP5500 portraits and refit logistic
heads over the shipped models' outputs and inner features on the portraits *and* the UTKFace
dev crops together, so the portraits cannot be bought with a UTKFace regression.

    python -m training.race_gender --crops /tmp/crops/train --utk /tmp/crops/utk
        [--race-features ...] [--gender-features ...] [--export]

`--utk` is `facelens eval crops` over evaldata/attributes/manifest.jsonl with
`--root <evaldata> --prefix attributes/utkface/` (the 1,500-face random UTKFace sample of
docs/accuracy.md). Labels: portraits `yellow`/`white` (Asian/Caucasian); UTKFace asian ->
yellow, white, black, indian + others -> arabs (the served mapping of GEAR's classes). Folds:
5, stratified by source x label (x gender for race), seed 7. Every image counts; a face not found
is a miss. The UTKFace race figure is scored as docs/accuracy.md does: on the white, black and
asian faces, against the contract label.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import common
from .common import Crops, SEED, kfold_indices, load_features

RACES = ["yellow", "white", "black", "arabs"]
GENDERS = ["female", "male"]
UTK_RACE = {"asian": "yellow", "white": "white", "black": "black", "indian": "arabs", "others": "arabs"}
GEAR_TO_CONTRACT = np.array([  # rows: GEAR [white, black, asian, indian, other]
    [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]], np.float64)
RACE_FEATURES = "logp_gear_race,gear_pool"
GENDER_FEATURES = "logit_dlib_male,logit_faceapi_male"


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def derived(crops: Crops, name: str) -> np.ndarray:
    """Named features: backbone outputs by their cache name, or these derived ones (the same
    transforms as AttributeFeatures::named in facelens-vision)."""
    if name == "logp_gear_race":
        return np.log(np.clip(load_features(crops, ["gear_race"]), 1e-6, 1.0))
    if name == "logit_dlib_male":
        return logit(load_features(crops, ["dlib_gender_p"])[:, 1:2])
    if name == "logit_faceapi_male":
        return logit(load_features(crops, ["faceapi_gender"])[:, 0:1])
    if name == "logit_gear_male":
        return logit(load_features(crops, ["gear_gender"])[:, 0:1])
    return load_features(crops, [name])


def feats(crops: Crops, names: list[str]) -> np.ndarray:
    return np.concatenate([derived(crops, n) for n in names], axis=1).astype(np.float64)


def dataset(train: Crops, utk: Crops, names: list[str]):
    """Portrait rows then UTKFace rows: x, race, gender, source, found, gear race probs."""
    xs, race, gender, src, found, gear = [], [], [], [], [], []
    for crops, is_utk in ((train, False), (utk, True)):
        rows = [r for r in crops.index if "race" in r and "gender" in r]
        idx = np.array([r["i"] for r in rows])
        xs.append(feats(crops, names)[idx])
        gear.append(load_features(crops, ["gear_race"])[idx])
        for r in rows:
            race.append(UTK_RACE.get(r["race"], r["race"]) if is_utk else r["race"])
            gender.append(r["gender"])
            src.append(("utk_" + r["race"]) if is_utk else "portrait")
            found.append(r["found"])
    return (np.concatenate(xs), np.array(race), np.array(gender), np.array(src),
            np.array(found, bool), np.concatenate(gear))


WEIGHTS = None  # per-row sample weights (set by --balance-sources)


def fit_logistic(x, y, C, w=None):
    from sklearn.linear_model import LogisticRegression

    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-6] = 1.0
    m = LogisticRegression(C=C, max_iter=3000).fit((x - mu) / sd, y, sample_weight=w)
    return m, mu, sd


def predict(model, x, labels):
    m, mu, sd = model
    p = m.predict_proba((x - mu) / sd)
    full = np.zeros((len(x), len(labels)))
    for j, c in enumerate(m.classes_):
        full[:, labels.index(c)] = p[:, j]
    return full


def choose_C(x, y, strata, Cs=(0.01, 0.1, 1.0, 10.0)):
    """C by 3-fold CV inside the training rows."""
    inner = kfold_indices(len(y), 3, SEED + 1, strata=strata)
    best = None
    for C in Cs:
        acc = np.mean([(fit_logistic(x[inner != f], y[inner != f], C)[0]
                        .predict((x[inner == f] - x[inner != f].mean(0)) / np.where(x[inner != f].std(0) < 1e-6, 1, x[inner != f].std(0))) == y[inner == f]).mean()
                       for f in range(3)])
        if best is None or acc > best[0]:
            best = (acc, C)
    return best[1]


def cv(x, y, strata, found, labels, seed=SEED, w=None):
    fold = kfold_indices(len(y), 5, seed, strata=strata)
    pred = np.empty(len(y), dtype=object)
    Cs = []
    for f in range(5):
        tr = (fold != f) & found
        te = fold == f
        C = choose_C(x[tr], y[tr], strata[tr])
        Cs.append(C)
        p = predict(fit_logistic(x[tr], y[tr], C, None if w is None else w[tr]), x[te], labels)
        lab = np.array(labels)[p.argmax(axis=1)].astype(object)
        lab[~found[te]] = "(missing)"
        pred[te] = lab
    return pred, Cs


def figures(pred, race, gender, src, what):
    truth = race if what == "race" else gender
    ok = pred == truth
    port = src == "portrait"
    utk = np.char.startswith(src.astype(str), "utk_")
    out = {"portraits": float(ok[port].mean()), "portraits_n": int(port.sum())}
    for r in ("yellow", "white"):
        for g in GENDERS:
            sel = port & (race == r) & (gender == g)
            out[f"portraits {r} {g}"] = float(ok[sel].mean())
    if what == "race":
        sel = np.isin(src, ["utk_white", "utk_black", "utk_asian"])
        out["utkface_white_black_asian"] = float(ok[sel].mean())
        out["utkface_n"] = int(sel.sum())
        for r in ("yellow", "white", "black"):
            out[f"utkface recall {r}"] = float(ok[sel & (race == r)].mean())
    else:
        out["utkface"] = float(ok[utk].mean())
        out["utkface_n"] = int(utk.sum())
    return out


def show(name, f):
    print(f"{name}: " + ", ".join(f"{k} {100 * v:.2f} %" if isinstance(v, float) else f"{k} {v}" for k, v in f.items()))


def export(path, model, names, dims, labels, doc, meta, xs):
    m, mu, sd = model
    coef = m.coef_
    icpt = m.intercept_
    if len(m.classes_) == 2:  # sklearn's binary form: one row for classes_[1]
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
    W = np.zeros((dims, len(labels)))
    b = np.full(len(labels), -30.0)  # a class the head never saw (e.g. a race absent from training)
    for j, c in enumerate(m.classes_):
        W[:, labels.index(c)] = coef[j] / sd
        b[labels.index(c)] = icpt[j] - (coef[j] * mu / sd).sum()
    onx = common.linear_head_onnx(W, b, "features", "probabilities", True, doc,
                                  {"features": ",".join(names), "dims": str(dims), "classes": ",".join(labels), **meta})
    common.check_onnx(onx, xs, predict(model, xs, labels), 1e-5)
    path.write_bytes(onx.SerializeToString())
    print(f"wrote {path.relative_to(common.REPO)} ({path.stat().st_size} bytes)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", required=True)
    ap.add_argument("--utk", required=True)
    ap.add_argument("--race-features", default=RACE_FEATURES)
    ap.add_argument("--gender-features", default=GENDER_FEATURES)
    ap.add_argument("--seeds", default="7")
    ap.add_argument("--balance-sources", action="store_true",
                    help="weight rows so that the portraits and UTKFace weigh the same in each fit")
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    train, utk = Crops.open(a.crops), Crops.open(a.utk)
    out = {}

    # What the service answers now (no fit): GEAR mapped; the shipped gender head.
    rn = a.race_features.split(",")
    gn = a.gender_features.split(",")
    x_r, race, gender, src, found, gear = dataset(train, utk, rn)
    served_race = np.array(RACES)[(gear @ GEAR_TO_CONTRACT).argmax(axis=1)].astype(object)
    served_race[~found] = "(missing)"
    out["served_race"] = figures(served_race, race, gender, src, "race")
    show("served race (GEAR mapped, no fit)", out["served_race"])
    head = json.loads((common.MODELS / "heads" / "gender.json").read_text())
    xg0, *_ = dataset(train, utk, head["features"])
    z = (xg0 - np.array(head["mean"])) / np.array(head["scale"])
    logits = z @ np.array(head["weights"]).T + np.array(head["bias"])
    served_gender = np.array(head["labels"])[logits.argmax(axis=1)].astype(object)
    served_gender[~found] = "(missing)"
    out["served_gender"] = figures(served_gender, race, gender, src, "gender")
    show("served gender (models/heads/gender.json)", out["served_gender"])

    w = None
    if a.balance_sources:
        port = src == "portrait"
        w = np.where(port, 0.5 / port.mean(), 0.5 / (~port).mean())
    strata_r = np.array([f"{s}|{r}|{g}" for s, r, g in zip(src, race, gender)])
    x_g, *_ = dataset(train, utk, gn)
    strata_g = np.array([f"{s}|{g}" for s, g in zip(src, gender)])
    for seed in [int(s) for s in a.seeds.split(",")]:
        pr, Cr = cv(x_r, race, strata_r, found, RACES, seed, w)
        out.setdefault("race_cv", {})[seed] = figures(pr, race, gender, src, "race") | {"C": Cr}
        show(f"race head {rn} ({x_r.shape[1]} dims), 5-fold CV seed {seed}", out["race_cv"][seed])
        pg, Cg = cv(x_g, gender, strata_g, found, GENDERS, seed, w)
        out.setdefault("gender_cv", {})[seed] = figures(pg, race, gender, src, "gender") | {"C": Cg}
        show(f"gender head {gn} ({x_g.shape[1]} dims), 5-fold CV seed {seed}", out["gender_cv"][seed])
    if a.export:
        first = str(a.seeds.split(",")[0])
        Cr = float(np.median(out["race_cv"][int(first)]["C"]))
        Cg = float(np.median(out["gender_cv"][int(first)]["C"]))
        data = "UTKFace dev sample (1,500) + SCUT-FBP5500 dev portraits (3,286; non-commercial research use)"
        wf = None if w is None else w[found]
        export(common.MODELS / "race_head.onnx", fit_logistic(x_r[found], race[found], Cr, wf), rn, x_r.shape[1], RACES,
               "Facelens race head: contract probabilities [yellow, white, black, arabs]",
               {"training_data": data, "C": str(Cr)}, x_r[found][:256])
        export(common.MODELS / "gender_head.onnx", fit_logistic(x_g[found], gender[found], Cg, wf), gn, x_g.shape[1], GENDERS,
               "Facelens gender head: probabilities [female, male]",
               {"training_data": data, "C": str(Cg)}, x_g[found][:256])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
