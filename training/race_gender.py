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

sys.path.insert(0, str(common.REPO / "scripts"))
from heads import child, head, logit, softmax_proba  # noqa: E402  (the head-file module every fitting script uses)

RACES = ["yellow", "white", "black", "arabs"]
GENDERS = ["female", "male"]
UTK_RACE = {"asian": "yellow", "white": "white", "black": "black", "indian": "arabs", "others": "arabs"}
GEAR_TO_CONTRACT = np.array([  # rows: GEAR [white, black, asian, indian, other]
    [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]], np.float64)
RACE_FEATURES = "logp_gear_race,gear_pool"
# dlib's gender reads children far worse than face-api's (UTKFace 0-12: 70 % against 80 %), and
# the portraits hold no children: `child*logit_dlib_male` lets UTKFace alone set dlib's weight
# for children, so giving the portraits a share of the fit does not move the children's answers.
GENDER_FEATURES = "logit_dlib_male,logit_faceapi_male,child*logit_dlib_male"


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
    if name == "p_gear_asian":
        return load_features(crops, ["gear_race"])[:, 2:3]
    if name == "child":
        # Soft "under about 15" from face-api's age: 1 for small children, 0 for adults.
        return child(load_features(crops, ["faceapi_age"])[:, 0:1])
    if "*" in name:
        a, b = name.split("*", 1)
        return derived(crops, a) * derived(crops, b)
    return load_features(crops, [name])


def feats(crops: Crops, names: list[str]) -> np.ndarray:
    return np.concatenate([derived(crops, n) for n in names], axis=1).astype(np.float64)


def dataset(train: Crops, utk: Crops, names: list[str]):
    """Portrait rows then UTKFace rows: x, race, gender, source, found, gear race probs, age
    (-1 where the row has none)."""
    xs, race, gender, src, found, gear, age = [], [], [], [], [], [], []
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
            age.append(r.get("age", -1))
    return (np.concatenate(xs), np.array(race), np.array(gender), np.array(src),
            np.array(found, bool), np.concatenate(gear), np.array(age))


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


UTK_AGE_GROUPS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 200))


def figures(pred, race, gender, src, what, age=None):
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
        if age is not None:  # where UTKFace's gender errors are: mostly children
            for lo, hi in UTK_AGE_GROUPS:
                key = f"utkface {lo}-{hi}" if hi < 200 else f"utkface {lo}+"
                out[key] = float(ok[utk & (age >= lo) & (age <= hi)].mean())
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


def write_gender_json(model, names, share, C, xs):
    """The served gender head, models/heads/gender.json: the heads module's `softmax` kind
    (z = (x − mean) / std, logits = W z + b), checked against scikit-learn on `xs`."""
    m, mu, sd = model
    assert list(m.classes_) == GENDERS, m.classes_
    c, b0 = m.coef_[0], float(m.intercept_[0])
    # scripts/heads.py checks the schema the service loads before anything is written.
    h = head(
        "softmax",
        "gender head (logistic regression over the dlib and face-api gender logits, dlib's "
        "weighed apart for children by face-api's age), "
        "FITTED ON THE DEV DATA: UTKFace dev sample + SCUT-FBP5500 dev portraits "
        f"(portraits' share of the fit {share}, C {C}); training/race_gender.py; "
        "repeated 5-fold CV in docs/accuracy.md and docs/model-cards/race_gender.md",
        labels=GENDERS, features=names,
        mean=[round(float(v), 6) for v in mu], std=[round(float(v), 6) for v in sd],
        weights=[[round(float(-v / 2), 6) for v in c], [round(float(v / 2), 6) for v in c]],
        bias=[round(-b0 / 2, 6), round(b0 / 2, 6)])
    diff = float(np.abs(softmax_proba(h, xs) - predict(model, xs, GENDERS)).max())
    print(f"gender.json check: max |json head - scikit-learn| = {diff:.3g} (rounded to 6 digits)")
    assert diff < 1e-4, diff
    path = common.MODELS / "heads" / "gender.json"
    path.write_text(json.dumps(h, indent=1) + "\n")
    print(f"wrote {path.relative_to(common.REPO)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", required=True)
    ap.add_argument("--utk", required=True)
    ap.add_argument("--race-features", default=RACE_FEATURES)
    ap.add_argument("--gender-features", default=GENDER_FEATURES)
    ap.add_argument("--seeds", default="7")
    ap.add_argument("--balance-sources", action="store_true",
                    help="weight rows so that the portraits and UTKFace weigh the same in each fit")
    ap.add_argument("--gender-portrait-weight", type=float,
                    help="the portraits' share of each gender fit (UTKFace has the rest); "
                         "default: 0.5 with --balance-sources, else by rows")
    ap.add_argument("--compare-utk-only", action="store_true",
                    help="also cross-validate the same gender features fitted on UTKFace "
                         "alone under the same folds (the recipe served until 2026-12-07 is "
                         "--gender-features logit_dlib_male,logit_faceapi_male "
                         "--gender-portrait-weight 0)")
    ap.add_argument("--gender-only", action="store_true",
                    help="cross-validate the gender head only (no race CV; not with --export)")
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.gender_only and a.export:
        ap.error("--export writes the race head too: drop --gender-only")
    train, utk = Crops.open(a.crops), Crops.open(a.utk)
    out = {}

    # What the service answers now (no fit): GEAR mapped; the shipped gender head.
    rn = a.race_features.split(",")
    gn = a.gender_features.split(",")
    x_r, race, gender, src, found, gear, age = dataset(train, utk, rn)
    served_race = np.array(RACES)[(gear @ GEAR_TO_CONTRACT).argmax(axis=1)].astype(object)
    served_race[~found] = "(missing)"
    out["served_race"] = figures(served_race, race, gender, src, "race")
    show("served race (GEAR mapped, no fit)", out["served_race"])
    served = json.loads((common.MODELS / "heads" / "gender.json").read_text())
    xg0, *_ = dataset(train, utk, served["features"])
    served_gender = np.array(served["labels"])[softmax_proba(served, xg0).argmax(axis=1)].astype(object)
    served_gender[~found] = "(missing)"
    out["served_gender"] = figures(served_gender, race, gender, src, "gender", age)
    show("served gender (models/heads/gender.json)", out["served_gender"])

    def source_weights(portrait_share):
        """Row weights giving the portraits `portrait_share` of the fit (None: by rows)."""
        if portrait_share is None:
            return None
        port = src == "portrait"
        return np.where(port, portrait_share / port.mean(), (1 - portrait_share) / (~port).mean())

    w = source_weights(0.5 if a.balance_sources else None)
    gshare = a.gender_portrait_weight if a.gender_portrait_weight is not None else (
        0.5 if a.balance_sources else None)
    wg = source_weights(gshare)
    strata_r = np.array([f"{s}|{r}|{g}" for s, r, g in zip(src, race, gender)])
    x_g, *_ = dataset(train, utk, gn)
    strata_g = np.array([f"{s}|{g}" for s, g in zip(src, gender)])
    for seed in [int(s) for s in a.seeds.split(",")]:
        if not a.gender_only:
            pr, Cr = cv(x_r, race, strata_r, found, RACES, seed, w)
            out.setdefault("race_cv", {})[seed] = figures(pr, race, gender, src, "race") | {"C": Cr}
            show(f"race head {rn} ({x_r.shape[1]} dims), 5-fold CV seed {seed}", out["race_cv"][seed])
        pg, Cg = cv(x_g, gender, strata_g, found, GENDERS, seed, wg)
        out.setdefault("gender_cv", {})[seed] = figures(pg, race, gender, src, "gender", age) | {"C": Cg}
        show(f"gender head {gn} ({x_g.shape[1]} dims, portraits' share {gshare}), 5-fold CV "
             f"seed {seed}", out["gender_cv"][seed])
        if a.compare_utk_only:
            pu, Cu = cv(x_g, gender, strata_g, found, GENDERS, seed, source_weights(0.0))
            out.setdefault("gender_utk_only_cv", {})[seed] = figures(pu, race, gender, src, "gender", age) | {"C": Cu}
            show(f"gender, the same features fitted on UTKFace alone, 5-fold CV seed {seed}",
                 out["gender_utk_only_cv"][seed])
    # Over the seeds (repeated CV): the mean and range of each figure.
    for key in ("race_cv", "gender_cv", "gender_utk_only_cv"):
        runs = list(out.get(key, {}).values())
        if len(runs) > 1:
            summary = {k: (float(np.mean([r[k] for r in runs])), float(min(r[k] for r in runs)),
                           float(max(r[k] for r in runs)))
                       for k in runs[0] if isinstance(runs[0][k], float)}
            out[key + "_summary"] = summary
            print(f"{key} over {len(runs)} seeds, mean (min-max): " + ", ".join(
                f"{k} {100 * m:.2f} % ({100 * lo:.2f}-{100 * hi:.2f})" for k, (m, lo, hi) in summary.items()))
    if a.export:
        first = str(a.seeds.split(",")[0])
        Cr = float(np.median(out["race_cv"][int(first)]["C"]))
        Cg = float(np.median(out["gender_cv"][int(first)]["C"]))
        data = "UTKFace dev sample (1,500) + SCUT-FBP5500 dev portraits (3,286; non-commercial research use)"
        wf = None if w is None else w[found]
        export(common.MODELS / "race_head.onnx", fit_logistic(x_r[found], race[found], Cr, wf), rn, x_r.shape[1], RACES,
               "Facelens race head: contract probabilities [yellow, white, black, arabs]",
               {"training_data": data, "C": str(Cr)}, x_r[found][:256])
        gmodel = fit_logistic(x_g[found], gender[found], Cg, None if wg is None else wg[found])
        export(common.MODELS / "gender_head.onnx", gmodel, gn, x_g.shape[1], GENDERS,
               "Facelens gender head: probabilities [female, male]",
               {"training_data": data, "C": str(Cg), "portrait_share": str(gshare)}, x_g[found][:256])
        write_gender_json(gmodel, gn, gshare, Cg, x_g[found][:256])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
