#!/usr/bin/env python3
"""Score gender head files on the WIDER FACE dev faces' perceived gender: an out-of-sample check
(neither the gender models nor any head saw these crowd photos).

    cargo run --release -p facelens-vision --example crowd_face_features -- \
        ../shared/evaldata /tmp/crowd_features.jsonl
    python3 scripts/wider_gender_check.py /tmp/crowd_features.jsonl models/heads/gender.json \
        [other-gender-head.json ...]

Each head's features are computed from the example's raw model outputs by scripts/heads.py's
`named`, the Python twin of the service's `AttributeFeatures::named`: `logit_<model>_male`,
`child` (from face-api's age), `dlib_age`, `faceapi_age` and products `a*b`. Printed per head and for each model alone: accuracy on every face, on faces at least
48 px wide and on smaller ones, with a 95 % interval (Wilson) on the whole. Only numpy.
"""
import json
import math
import sys

import numpy as np

from heads import named, softmax_proba


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p, z = k / n, 1.96
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - r, c + r)


def report(name: str, ok: np.ndarray, big: np.ndarray, male: np.ndarray) -> None:
    lo, hi = wilson(int(ok.sum()), len(ok))
    rm, rf = ok[male].mean(), ok[~male].mean()
    print(f"  {name:40s} all {100 * ok.mean():.1f} % ({100 * lo:.1f}-{100 * hi:.1f}), "
          f">=48 px {100 * ok[big].mean():.1f} % ({big.sum()}), <48 px {100 * ok[~big].mean():.1f} % ({(~big).sum()}); "
          f"recall male {100 * rm:.1f} %, female {100 * rf:.1f} %, balanced {50 * (rm + rf):.1f} %")


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    heads = [(p, json.load(open(p))) for p in sys.argv[2:]]
    need = sorted({n for _, h in heads for n in h["features"]} | {"logit_dlib_male", "logit_faceapi_male"})
    rows = []
    for line in open(sys.argv[1]):
        r = json.loads(line)
        g = r.get("labels", {}).get("perceived_gender")
        if g not in ("male", "female"):
            continue
        vals = {n: named(r["features"], n) for n in need}
        if any(v is None for v in vals.values()):
            continue
        rows.append((vals, g == "male", r.get("size", 0.0)))
    if not rows:
        print("no face with a perceived gender and every feature")
        return 1
    y = np.array([m for _, m, _ in rows])
    big = np.array([s for _, _, s in rows]) >= 48
    print(f"perceived gender of the WIDER dev faces (n={len(y)}, {y.sum()} male):")
    for m in ("logit_dlib_male", "logit_faceapi_male"):
        report(m[len("logit_"):] + " alone", (np.array([v[m] for v, _, _ in rows]) >= 0) == y, big, y)
    first = None
    for path, h in heads:
        x = np.array([[v[n] for n in h["features"]] for v, _, _ in rows])
        ok = (softmax_proba(h, x)[:, h["labels"].index("male")] >= 0.5) == y
        report(path, ok, big, y)
        if first is None:
            first = ok
        else:  # the paired comparison with the first head (McNemar's discordant pairs)
            print(f"    against {sys.argv[2]}: {int((first & ~ok).sum())} faces lost, {int((~first & ok).sum())} gained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
