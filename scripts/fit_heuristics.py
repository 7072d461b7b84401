#!/usr/bin/env python3
"""Fit the heuristics' small heads on development features (numpy only).

Input: the JSONL written by
    cargo run --release -p facelens-vision --example heuristics_features -- \
        --data ../shared/evaldata --out /tmp/heur/features.jsonl --cache /tmp/heur/faces.jsonl
Output: models/heads/{eyes,glasses}.json (cartoon: scripts/fit_cartoon_head.py) and 5-fold cross-validated figures
on stdout (docs/heuristics.md quotes them). All weights are FITTED ON THE DEV DATA; the held-out
split was not used.

    python3 scripts/fit_heuristics.py /tmp/heur/features.jsonl models/heads
"""
import json
import sys

import numpy as np

from heads import head

SEED = 20240611
K = 5


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def standardise(X):
    mu = X.mean(0)
    sd = X.std(0)
    sd[sd < 1e-9] = 1.0
    return mu, sd


def fit_logistic(X, y, l2=1.0, w_pos=1.0, w_neg=1.0, iters=60):
    """L2-regularised logistic regression by Newton's method on standardised features.
    Returns (mu, sd, w, b)."""
    mu, sd = standardise(X)
    Z = (X - mu) / sd
    n, d = Z.shape
    A = np.hstack([Z, np.ones((n, 1))])
    sw = np.where(y > 0.5, w_pos, w_neg)
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-A @ theta))
        g = A.T @ (sw * (p - y)) + reg * theta
        H = (A * (sw * p * (1 - p))[:, None]).T @ A + np.diag(reg) + 1e-6 * np.eye(d + 1)
        step = np.linalg.solve(H, g)
        theta -= step
        if np.abs(step).max() < 1e-7:
            break
    return mu, sd, theta[:-1], theta[-1]


def predict(model, X):
    mu, sd, w, b = model
    return 1 / (1 + np.exp(-(((X - mu) / sd) @ w + b)))


def folds(groups, labels, k=K, seed=SEED):
    """Stratified k-fold over groups (a group = one face; all its samples in one fold)."""
    rng = np.random.default_rng(seed)
    fold_of = {}
    for lab in sorted(set(labels)):
        gs = sorted({g for g, l in zip(groups, labels) if l == lab})
        rng.shuffle(gs)
        for i, g in enumerate(gs):
            fold_of.setdefault(g, i % k)
    return np.array([fold_of[g] for g in groups])


def cv_predict(X, y, fold, **kw):
    out = np.zeros(len(y))
    for f in range(K):
        tr, te = fold != f, fold == f
        out[te] = predict(fit_logistic(X[tr], y[tr], **kw), X[te])
    return out


def head_json(labels, names, model, threshold=0.5, note=""):
    """A logistic head file (scripts/heads.py): P(labels[1]) from the standardised features."""
    mu, sd, w, b = model
    return head("logistic", note, labels=labels, features=names,
                mean=[round(float(v), 6) for v in mu],
                std=[round(float(v), 6) for v in sd],
                weights=[round(float(v), 6) for v in w],
                bias=round(float(b), 6),
                threshold=round(float(threshold), 6))


def pct(a, b):
    return f"{100.0 * a / b:.1f}% ({a}/{b})" if b else "n/a"


def age_group(a):
    if a is None:
        return "?"
    return "0-17" if a < 18 else "18-39" if a < 40 else "40-59" if a < 60 else "60+"


# ----------------------------------------------------------------------------------------- eyes
def fit_eyes(rows, outdir, names):
    X, y, g, meta = [], [], [], []
    for i, r in enumerate(rows):
        f = r.get("f")
        if not f or f.get("eye_l") is None or f.get("eye_r") is None:
            continue
        e = r.get("eyes")
        if e not in ("open", "closed"):
            continue
        lab = 1.0 if e == "open" else 0.0
        for side in ("eye_l", "eye_r"):
            X.append(f[side])
            y.append(lab)
            g.append(i)
            meta.append(r)
    X, y, g = np.array(X, float), np.array(y), np.array(g)
    fold = folds(list(g), list(y))
    npos, nneg = (y == 1).sum(), (y == 0).sum()
    kw = dict(l2=10.0, w_pos=1.0, w_neg=npos / nneg)
    p = cv_predict(X, y, fold, **kw)
    # Face level: mean of the two eyes' probabilities.
    faces = {}
    for gi, pi, yi, m in zip(g, p, y, meta):
        faces.setdefault(gi, [yi, [], m])[1].append(pi)
    print("== eyes: 5-fold CV (face closed = mean open-probability of both eyes < 0.5)")
    for thr in (0.5,):
        cew = [(np.mean(v[1]) < thr) for v in faces.values() if v[0] == 0 and "cew" in v[2]["file"]]
        vis = [(np.mean(v[1]) < thr) for v in faces.values() if v[0] == 0 and "cew" not in v[2]["file"]]
        op = [(np.mean(v[1]) >= thr) for v in faces.values() if v[0] == 1]
        print(f" thr {thr}: CEW closed recall {pct(sum(cew), len(cew))}; UTK closed recall "
              f"{pct(sum(vis), len(vis))}; open accuracy {pct(sum(op), len(op))}")
        by = {}
        for v in faces.values():
            if v[0] == 1:
                m = v[2]
                for key in (f"gender={m.get('gender')}", f"age={age_group(m.get('age'))}"):
                    a = by.setdefault(key, [0, 0])
                    a[0] += np.mean(v[1]) >= thr
                    a[1] += 1
        print("  open accuracy by group: " + "; ".join(f"{k} {pct(int(a), b)}" for k, (a, b) in sorted(by.items())))
    model = fit_logistic(X, y, **kw)
    # Sanity: faces from sets not used for fitting (mostly open eyes).
    print("  full-fit head on faces without eye labels (share called closed):")
    bysrc = {}
    for r in rows:
        f = r.get("f")
        if r.get("eyes") is not None or not f or f.get("eye_l") is None:
            continue
        pr = predict(model, np.array([f["eye_l"], f["eye_r"]], float)).mean()
        a = bysrc.setdefault(r["source"], [0, 0])
        a[0] += pr < 0.5
        a[1] += 1
    for s, (a, b) in sorted(bysrc.items()):
        print(f"    {s}: {pct(int(a), b)}")
    json.dump(head_json(["closed", "open"], names, model, 0.5,
                        "Eye open-probability head (heuristic). Logistic regression fitted on DEV data: "
                        "closed = CEW ClosedFace + visual-label closed UTKFace eyes, open = visual-label open "
                        "UTKFace eyes; scripts/fit_heuristics.py."),
              open(f"{outdir}/eyes.json", "w"), indent=1)


# -------------------------------------------------------------------------------------- glasses
def fit_glasses(rows, outdir, names):
    X, y, meta = [], [], []
    for r in rows:
        f = r.get("f")
        if not f or f.get("glasses") is None or r.get("source", "").startswith("CelebA"):
            continue
        if r.get("glasses") in ("none", "common"):
            X.append(f["glasses"])
            y.append(1.0 if r["glasses"] == "common" else 0.0)
            meta.append(r)
    X, y = np.array(X, float), np.array(y)
    fold = folds(list(range(len(y))), list(y))
    kw = dict(l2=30.0)
    p = cv_predict(X, y, fold, **kw)
    pred = p >= 0.5
    print("== glasses (none vs common): 5-fold CV")
    print(f"  accuracy {pct(int((pred == (y == 1)).sum()), len(y))}; common recall "
          f"{pct(int((pred & (y == 1)).sum()), int((y == 1).sum()))}; none recall "
          f"{pct(int((~pred & (y == 0)).sum()), int((y == 0).sum()))}")
    by = {}
    for pi, yi, m in zip(pred, y, meta):
        for key in (f"gender={m.get('gender')}", f"age={age_group(m.get('age'))}"):
            a = by.setdefault(key, [0, 0])
            a[0] += pi == (yi == 1)
            a[1] += 1
    print("  accuracy by group: " + "; ".join(f"{k} {pct(int(a), b)}" for k, (a, b) in sorted(by.items())))
    model = fit_logistic(X, y, **kw)
    json.dump(head_json(["none", "common"], names, model, 0.5,
                        "Eyeglasses head (heuristic). Logistic regression fitted on DEV data: UTKFace "
                        "visual labels none vs common; scripts/fit_heuristics.py. Sunglasses are a fixed "
                        "rule in glasses.rs, not fitted."),
              open(f"{outdir}/glasses.json", "w"), indent=1)
    return p, meta


# -------------------------------------------------------------------------------------- cartoon
# Both face-type heads (cartoon.json, image features only, and cartoon_full.json, image features
# and attribute-model outputs) are fitted by scripts/fit_cartoon_head.py, which also takes the
# WIDER FACE crowd faces as human examples.


# Face shape and beauty were formula heuristics calibrated here until issue 29 replaced them by
# trained heads (training/face_shape.py, training/beauty.py; models/heads/*_trained.json).


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/heur/features.jsonl"
    outdir = sys.argv[2] if len(sys.argv) > 2 else "models/heads"
    only = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None
    rows = load(path)
    names = json.load(open(path[: -len(".jsonl")] + ".names.json"))
    if not only or "eyes" in only:
        fit_eyes(rows, outdir, names["eyes"])
    if not only or "glasses" in only:
        fit_glasses(rows, outdir, names["glasses"])


if __name__ == "__main__":
    main()
