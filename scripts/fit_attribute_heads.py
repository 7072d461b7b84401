#!/usr/bin/env python3
"""Fit the small attribute heads (models/heads/*.json) from `facelens eval attributes --features-out`.

Usage:
    facelens eval attributes --manifest $E/attributes/manifest.jsonl \
        --labels $E/attributes/visual_labels.jsonl --features-out /tmp/features.jsonl
    python3 scripts/fit_attribute_heads.py /tmp/features.jsonl [--write]

The heads are FITTED ON THE DEVELOPMENT DATA. Every figure printed here is a stratified 5-fold
cross-validated figure (each face is scored by a head that never saw it); with --write the final
head is refitted on all dev faces and written to models/heads/. Only numpy is needed.

Heads:
  smile.json  P(smiling) from the fused emotion log-probabilities and the mesh mouth geometry
              (width / face width, inner-lip gap / face height, corner lift). Trained on SMILEsmileD `smiling`,
              CelebA `smiling` and the visual `expression` labels (smile/laugh = smiling).
  age.json    years from the dlib expected age and GEAR's 7 age-bin probabilities, an L1 (least
              absolute deviation) linear regression on the random UTKFace sample.
  gender      (no head shipped: it did not beat dlib alone) CV accuracy of a logistic head over the
              dlib and GEAR gender logits, alone and with age interactions, on the UTKFace sample.
  race.json   (not shipped: it did not beat the fixed mapping) the contract's [yellow, white, black, arabs] from GEAR's 5 log-probabilities.
              Trained on the random UTKFace sample (asian->yellow, indian/others->arabs).
The feature order here must match crates/facelens-vision/src/attributes/mod.rs.
"""
import json
import sys

import numpy as np

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
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w, b = fit_lr((x - mu) / sd, y, len(labels), l2)
    r = lambda v: [round(float(t), 6) for t in v]
    return {
        "about": about,
        "labels": labels,
        "features": names,
        "mean": r(mu),
        "scale": r(sd),
        "weights": [r(w[:, j]) for j in range(len(labels))],
        "bias": r(b),
    }


def fit_l1(x, y, iters=60):
    # No intercept column: the GEAR bin probabilities sum to one, so they already carry it (an
    # extra constant would make the system singular).
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(iters):  # IRLS for least absolute deviation
        sw = np.sqrt(1.0 / np.maximum(np.abs(x @ w - y), 1.0))
        w = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
    return w


def source(rec):
    return rec["file"].split("/")[1]


def main():
    path = sys.argv[1]
    write = "--write" in sys.argv
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
    if write:
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
    rows = [(r["features"], r["labels"]["age"]) for r in found
            if r["file"].startswith("attributes/utkface/") and "age" in r["labels"]
            and "dlib_age" in r["features"] and "gear_age" in r["features"]]
    if rows:
        x = np.array([[f["dlib_age"]] + list(f["gear_age"]) for f, _ in rows])
        y = np.array([a for _, a in rows], dtype=np.float64)
        folds = stratified_folds(list(np.minimum(y // 10, 8).astype(int)), 5)
        err = np.zeros(len(y))
        for f in range(5):
            tr, te = folds != f, folds == f
            w = fit_l1(x[tr], y[tr])
            err[te] = np.abs(x[te] @ w - y[te])
        base = np.abs(x[:, 0] - y)
        print(f"age head, 5-fold CV MAE on UTKFace (n={len(y)}): head={err.mean():.4f} "
              f"dlib alone={base.mean():.4f}")
        for lo, hi in ((0, 13), (13, 20), (20, 40), (40, 60), (60, 200)):
            m = (y >= lo) & (y < hi)
            print(f"  ages {lo}-{hi - 1}: n={m.sum()} head={err[m].mean():.3f} dlib={base[m].mean():.3f}")
        if write:
            w = fit_l1(x, y)
            names = ["dlib_age"] + [f"gear_age_{b}" for b in
                                    ["lt20", "21_25", "26_30", "31_40", "41_50", "51_60", "gt60"]]
            h = {"about": "age head (L1 linear regression), FITTED ON THE DEV DATA (UTKFace); "
                          "scripts/fit_attribute_heads.py; 5-fold CV figures in docs/accuracy.md",
                 "features": names, "weights": [round(float(v), 6) for v in w],
                 "bias": 0.0}
            json.dump(h, open("models/heads/age.json", "w"), indent=1)
            print("wrote models/heads/age.json")

    # ---- gender: dlib + GEAR logit fusion (reported only; dlib alone is shipped)
    rows = [(r["features"], r["labels"]) for r in found
            if r["file"].startswith("attributes/utkface/") and "gender" in r["labels"]
            and "dlib_male" in r["features"] and "gear_male" in r["features"]]
    if rows:
        logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
        d = logit(np.array([f["dlib_male"] for f, _ in rows]))
        g = logit(np.array([f["gear_male"] for f, _ in rows]))
        la = np.log1p(np.array([f.get("dlib_age", 30.0) for f, _ in rows]))
        y = np.array([int(lab["gender"] == "male") for _, lab in rows])
        age = np.array([lab["age"] for _, lab in rows])
        strata = [f"{t}:{min(a // 10, 8)}" for t, a in zip(y, age)]
        kid = age <= 12
        base = (d >= 0) == y
        print(f"gender, 5-fold CV accuracy on UTKFace (n={len(y)}; dlib alone {base.mean():.4f}, "
              f"0-12 {base[kid].mean():.4f}):")
        for name, x in (("dlib+GEAR logits", np.stack([d, g], 1)),
                        ("... x log(1+dlib age)", np.stack([d, g, d * la, g * la, la], 1))):
            pred = cross_validate(x, y, 2, strata, 1e-3)
            c = (pred[:, 1] >= 0.5) == y
            print(f"  {name:24s} all={c.mean():.4f} 0-12={c[kid].mean():.4f} 13+={c[~kid].mean():.4f}")

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
        if write and "--race" in sys.argv:
            h = head_json(x, y, labels, [f"log_p_gear_{c}" for c in
                                         ["white", "black", "asian", "indian", "other"]], 1e-3,
                          "race head over GEAR, FITTED ON THE DEV DATA (UTKFace); "
                          "scripts/fit_attribute_heads.py")
            json.dump(h, open("models/heads/race.json", "w"), indent=1)
            print("wrote models/heads/race.json")


if __name__ == "__main__":
    main()
