#!/usr/bin/env python3
"""Fit the small attribute heads (models/heads/*.json) from `facelens eval attributes --features-out`.

Usage:
    facelens eval attributes --manifest $E/attributes/manifest.jsonl \
        --labels $E/attributes/visual_labels.jsonl --features-out /tmp/features.jsonl
    python3 scripts/fit_attribute_heads.py /tmp/features.jsonl [--write[=smile,age,gender,race]]
        [--wider /tmp/crowd_features.jsonl]

The heads are FITTED ON THE DEVELOPMENT DATA. Every figure printed here is a stratified 5-fold
cross-validated figure (each face is scored by a head that never saw it); with --write the final
heads (or only those listed) are refitted on all dev faces and written to models/heads/. Only
numpy is needed.

--wider: the faces of the WIDER FACE dev photos written by the crowd_face_features example, with
the perceived gender of the Amazon WIDER demographics annotation. Neither the heads nor (as far as
their authors say) any of the models were trained on them, so the gender figures printed for them
are an out-of-sample check of the UTKFace-fitted head.

Heads:
  smile.json  P(smiling) from the fused emotion log-probabilities and the mesh mouth geometry
              (width / face width, inner-lip gap / face height, corner lift). Trained on SMILEsmileD `smiling`,
              CelebA `smiling` and the visual `expression` labels (smile/laugh = smiling).
  age.json    years from the dlib expected age, GEAR's 7 age-bin probabilities and face-api's age,
              an L1 (least absolute deviation) linear regression on the random UTKFace sample.
  gender.json P(male) from the dlib and face-api gender logits, a logistic regression on the
              random UTKFace sample (other combinations, with GEAR and age interactions, printed).
              Since 2026-12-07 the served gender.json is written by training/race_gender.py
              (UTKFace and the SCUT-FBP5500 portraits); --write=gender here puts back this one.
  race.json   (not shipped, --write=race: it did not beat the fixed mapping) the contract's [yellow, white, black, arabs] from GEAR's 5 log-probabilities.
              Trained on the random UTKFace sample (asian->yellow, indian/others->arabs).
The feature names here must be ones crates/facelens-vision/src/attributes/features.rs computes
(the service refuses a head that names another); the files are written through scripts/heads.py.
"""
import json
import sys

import numpy as np

from heads import head

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SEED = 7


def smile_features(f):
    em = f.get("emotion_models") or []
    mouth = f.get("mouth")
    if not em or mouth is None:
        return None
    p = np.mean(np.array(em, dtype=np.float64), axis=0)
    p = p / p.sum()
    return list(np.log(np.clip(p, 1e-6, 1.0))) + [mouth["width"], mouth["open"],
                                                   mouth["corner_lift"]]


def smile_names():
    return [f"log_p_{e}" for e in EMOTIONS] + ["mouth_width", "mouth_open", "corner_lift"]


def race_features(f):
    g = f.get("gear_race")
    if g is None:
        return None
    return list(np.log(np.clip(np.array(g, dtype=np.float64), 1e-6, 1.0)))


def fit_lr(x, y, k, l2=1e-3, iters=3000, lr=0.5):
    n, d = x.shape
    w = np.zeros((d, k))
    b = np.zeros(k)
    yy = np.eye(k)[y]
    for _ in range(iters):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - yy) / n
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return w, b


def predict(x, w, b):
    z = x @ w + b
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def stratified_folds(strata, k, seed=SEED):
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(strata), dtype=int)
    pos = 0
    for s in sorted(set(strata)):
        idx = [i for i, v in enumerate(strata) if v == s]
        rng.shuffle(idx)
        for i in idx:
            folds[i] = pos % k
            pos += 1
    return folds


def cross_validate(x, y, k_classes, strata, l2):
    folds = stratified_folds(strata, 5)
    pred = np.zeros((len(y), k_classes))
    for f in range(5):
        tr, te = folds != f, folds == f
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        w, b = fit_lr((x[tr] - mu) / sd, y[tr], k_classes, l2)
        pred[te] = predict((x[te] - mu) / sd, w, b)
    return pred


def head_json(x, y, labels, names, l2, about):
    """A softmax head file (scripts/heads.py) fitted on standardised features."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w, b = fit_lr((x - mu) / sd, y, len(labels), l2)
    r = lambda v: [round(float(t), 6) for t in v]
    return head("softmax", about, labels=labels, features=names, mean=r(mu), std=r(sd),
                weights=[r(w[:, j]) for j in range(len(labels))], bias=r(b))


def fit_l1(x, y, iters=60):
    # No intercept column: the GEAR bin probabilities sum to one, so they already carry it (an
    # extra constant would make the system singular).
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(iters):  # IRLS for least absolute deviation
        sw = np.sqrt(1.0 / np.maximum(np.abs(x @ w - y), 1.0))
        w = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
    return w


def wider_gender(path, head, logit):
    """Perceived gender of the WIDER dev faces: the models alone and `head` (fitted on all of
    UTKFace, so every WIDER face is out of its sample)."""
    rows = []
    for line in open(path):
        r = json.loads(line)
        g = r["labels"].get("perceived_gender")
        f = r["features"]
        if g in ("male", "female") and all(k in f for k in ("dlib_male", "faceapi_male", "gear_male")):
            rows.append((f, int(g == "male"), r.get("size", 0.0)))
    if not rows:
        print("wider: no face with a perceived gender")
        return
    y = np.array([t for _, t, _ in rows])
    size = np.array([s for _, _, s in rows])
    col = lambda k: logit(np.array([f[k] for f, _, _ in rows]))
    x = np.stack([col(k[len("logit_"):]) for k in head["features"]], 1)
    z = ((x - np.array(head["mean"])) / np.array(head["std"])) @ np.array(head["weights"]).T \
        + np.array(head["bias"])
    male = z[:, 1] > z[:, 0]
    big = size >= 48
    print(f"gender on the WIDER dev faces with a perceived gender (n={len(y)}; faces >= 48 px: {big.sum()}):")
    for name, c in (("dlib alone", (col("dlib_male") >= 0) == y),
                    ("face-api alone", (col("faceapi_male") >= 0) == y),
                    ("GEAR alone", (col("gear_male") >= 0) == y),
                    ("shipped head", male == y)):
        print(f"  {name:16s} all={c.mean():.4f} >=48px={c[big].mean():.4f} <48px={c[~big].mean():.4f}")


def source(rec):
    return rec["file"].split("/")[1]


def main():
    path = sys.argv[1]
    write_arg = next((a for a in sys.argv if a.startswith("--write")), None)
    writes = (set() if write_arg is None else {"smile", "age", "gender"} if write_arg == "--write"
              else set(write_arg.split("=", 1)[1].split(",")))
    wider = sys.argv[sys.argv.index("--wider") + 1] if "--wider" in sys.argv else None
    recs, bad = [], 0
    for line in open(path):
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1  # a truncated last line of a run still in progress
    if bad:
        print(f"skipped {bad} unparsable line(s)")
    found = [r for r in recs if r.get("found")]

    # ---- smile
    rows = []
    for r in found:
        lab = r["labels"]
        if "smiling" in lab:
            t = bool(lab["smiling"])
        elif lab.get("expression") in ("none", "smile", "laugh"):
            t = lab["expression"] != "none"
        else:
            continue
        x = smile_features(r["features"])
        if x is not None:
            rows.append((x, int(t), source(r)))
    x = np.array([v[0] for v in rows])
    y = np.array([v[1] for v in rows])
    src = [v[2] for v in rows]
    strata = [f"{s}:{t}" for s, t in zip(src, y)]
    l2 = 1e-3
    pred = cross_validate(x, y, 2, strata, l2)
    rule = np.exp(x[:, 3]) >= 0.5
    print("smile head, 5-fold CV accuracy (rule = P(happy) >= 0.5):")
    for s in sorted(set(src)):
        m = np.array([v == s for v in src])
        print(f"  {s:12s} n={m.sum():4d} head={((pred[m, 1] >= 0.5) == y[m]).mean():.4f} "
              f"rule={(rule[m] == y[m]).mean():.4f}")
    print(f"  all          n={len(y):4d} head={((pred[:, 1] >= 0.5) == y).mean():.4f} "
          f"rule={(rule == y).mean():.4f}")
    if "smile" in writes:
        h = head_json(x, y, ["none", "smile"], smile_names(), l2,
                      "P(smiling) head, FITTED ON THE DEV DATA (SMILEsmileD, CelebA, visual labels); "
                      "scripts/fit_attribute_heads.py; 5-fold CV figures in docs/accuracy.md")
        json.dump(h, open("models/heads/smile.json", "w"), indent=1)
        print("wrote models/heads/smile.json")

    # laugh threshold on mouth opening, among visually labelled smiles/laughs
    sl = [(r["features"]["mouth"]["open"], r["labels"]["expression"] == "laugh")
          for r in found if r["labels"].get("expression") in ("smile", "laugh")
          and r["features"].get("mouth")]
    if sl:
        o = np.array([v[0] for v in sl])
        t = np.array([v[1] for v in sl])
        print("laugh vs smile by mouth opening (visual labels): threshold, laugh recall, smile recall")
        for th in (0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10):
            print(f"  {th:.2f} {(o[t] >= th).mean():.3f} {(o[~t] < th).mean():.3f}")

    # ---- age
    gear_bins = [f"gear_age_{b}" for b in ["lt20", "21_25", "26_30", "31_40", "41_50", "51_60", "gt60"]]
    rows = [(r["features"], r["labels"]["age"]) for r in found
            if r["file"].startswith("attributes/utkface/") and "age" in r["labels"]
            and "dlib_age" in r["features"] and "gear_age" in r["features"]
            and "faceapi_age" in r["features"]]
    if rows:
        y = np.array([a for _, a in rows], dtype=np.float64)
        folds = stratified_folds(list(np.minimum(y // 10, 8).astype(int)), 5)
        base = np.abs(np.array([f["dlib_age"] for f, _ in rows]) - y)
        fa = np.abs(np.array([f["faceapi_age"] for f, _ in rows]) - y)
        print(f"age, 5-fold CV MAE on UTKFace (n={len(y)}): dlib alone={base.mean():.4f} "
              f"face-api alone={fa.mean():.4f}")
        variants = {
            "dlib+GEAR": lambda f: [f["dlib_age"]] + list(f["gear_age"]),
            "dlib+GEAR+face-api": lambda f: [f["dlib_age"]] + list(f["gear_age"]) + [f["faceapi_age"]],
        }
        for name, feat in variants.items():
            x = np.array([feat(f) for f, _ in rows])
            err = np.zeros(len(y))
            for f in range(5):
                tr, te = folds != f, folds == f
                w = fit_l1(x[tr], y[tr])
                err[te] = np.abs(x[te] @ w - y[te])
            print(f"  head {name:20s} all={err.mean():.4f} " + " ".join(
                f"{lo}-{hi - 1}:{err[(y >= lo) & (y < hi)].mean():.2f}"
                for lo, hi in ((0, 13), (13, 20), (20, 40), (40, 60), (60, 200))))
        print("  alone dlib / face-api by age group: " + " ".join(
            f"{lo}-{hi - 1}:{base[(y >= lo) & (y < hi)].mean():.2f}/{fa[(y >= lo) & (y < hi)].mean():.2f}"
            for lo, hi in ((0, 13), (13, 20), (20, 40), (40, 60), (60, 200))))
        if "age" in writes:
            x = np.array([variants["dlib+GEAR+face-api"](f) for f, _ in rows])
            w = fit_l1(x, y)
            h = head("linear", "age head (L1 linear regression), FITTED ON THE DEV DATA (UTKFace); "
                               "scripts/fit_attribute_heads.py; 5-fold CV figures in docs/accuracy.md",
                     features=["dlib_age"] + gear_bins + ["faceapi_age"],
                     weights=[round(float(v), 6) for v in w],
                     bias=0.0)
            json.dump(h, open("models/heads/age.json", "w"), indent=1)
            print("wrote models/heads/age.json")

    # ---- gender: logistic fusion of the models' logits
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
    gender_inputs = {
        "dlib+face-api": ["dlib_male", "faceapi_male"],
        "dlib+GEAR": ["dlib_male", "gear_male"],
        "dlib+face-api+GEAR": ["dlib_male", "faceapi_male", "gear_male"],
    }
    rows = [(r["features"], r["labels"]) for r in found
            if r["file"].startswith("attributes/utkface/") and "gender" in r["labels"]
            and all(k in r["features"] for k in ("dlib_male", "gear_male", "faceapi_male"))]
    if rows:
        col = lambda k: logit(np.array([f[k] for f, _ in rows]))
        y = np.array([int(lab["gender"] == "male") for _, lab in rows])
        age = np.array([lab["age"] for _, lab in rows])
        strata = [f"{t}:{min(a // 10, 8)}" for t, a in zip(y, age)]
        kid = age <= 12
        print(f"gender, 5-fold CV accuracy on UTKFace (n={len(y)}):")
        for k in ("dlib_male", "faceapi_male", "gear_male"):
            c = (col(k) >= 0) == y
            print(f"  {k + ' alone':24s} all={c.mean():.4f} 0-12={c[kid].mean():.4f} 13+={c[~kid].mean():.4f}")
        for name, keys in gender_inputs.items():
            x = np.stack([col(k) for k in keys], 1)
            pred = cross_validate(x, y, 2, strata, 1e-3)
            c = (pred[:, 1] >= 0.5) == y
            print(f"  head {name:19s} all={c.mean():.4f} 0-12={c[kid].mean():.4f} 13+={c[~kid].mean():.4f}")
        x = np.stack([col(k) for k in gender_inputs["dlib+face-api"]], 1)
        h = head_json(x, y, ["female", "male"], ["logit_dlib_male", "logit_faceapi_male"], 1e-3,
                      "gender head (logistic regression over the dlib and face-api gender logits), "
                      "FITTED ON THE DEV DATA (UTKFace); scripts/fit_attribute_heads.py; 5-fold CV "
                      "and WIDER out-of-sample figures in docs/accuracy.md")
        if "gender" in writes:
            json.dump(h, open("models/heads/gender.json", "w"), indent=1)
            print("wrote models/heads/gender.json")
        if wider:
            wider_gender(wider, h, logit)

    # ---- race
    labels = ["yellow", "white", "black", "arabs"]
    to = {"asian": 0, "white": 1, "black": 2, "indian": 3, "others": 3}
    rows = []
    for r in found:
        lab = r["labels"]
        if not r["file"].startswith("attributes/utkface/") or lab.get("race") not in to:
            continue
        xr = race_features(r["features"])
        if xr is not None:
            rows.append((xr, to[lab["race"]]))
    if rows:
        x = np.array([v[0] for v in rows])
        y = np.array([v[1] for v in rows])
        pred = cross_validate(x, y, 4, list(y), 1e-3)
        g = np.exp(x)
        mapped = np.stack([g[:, 2], g[:, 0], g[:, 1], g[:, 3] + g[:, 4]], 1)
        m = y < 3
        print("race, 5-fold CV accuracy on white/black/asian (n=%d):" % m.sum())
        print(f"  head={(pred[m].argmax(1) == y[m]).mean():.4f} mapping={(mapped[m].argmax(1) == y[m]).mean():.4f}")
        if "race" in writes:
            h = head_json(x, y, labels, [f"log_p_gear_{c}" for c in
                                         ["white", "black", "asian", "indian", "other"]], 1e-3,
                          "race head over GEAR, FITTED ON THE DEV DATA (UTKFace); "
                          "scripts/fit_attribute_heads.py")
            json.dump(h, open("models/heads/race.json", "w"), indent=1)
            print("wrote models/heads/race.json")


if __name__ == "__main__":
    main()
