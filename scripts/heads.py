"""Write a fitted head (models/heads/*.json) in the schema the service loads.

The Rust side (crates/facelens-vision/src/heads/mod.rs) reads every head through one loader: a
JSON object tagged by "kind", with "about" (what it is, what it was fitted on, by which script)
and "features" (input names, in order), and the numbers of its kind:

    logistic    labels [negative, positive], features, mean, std, weights, bias, threshold
                P(labels[1]) = sigmoid(bias + sum w_i (x_i - mean_i) / std_i)
    softmax     labels, features, mean, std, weights (one row per label), bias (one per label)
                softmax_j(bias_j + sum w_ji (x_i - mean_i) / std_i)
    linear      features, weights, bias                       bias + sum w_i x_i
    prototypes  labels, features, mean, std, prototypes (one per label), temperature
                softmax_j(-|z - prototype_j|^2 / temperature), z_i = (x_i - mean_i) / std_i
    z_score     features, mean, std, weights, spread, centre, scale
                centre - scale * (sum w_i z_i) / spread

The loader refuses a file with a missing or extra field, a length that does not match the
features or labels, a non-finite number or a spread (std) below 1e-6; this module checks the
same before writing, so a fitting script fails instead of writing a head the service rejects.
Numbers are written as given (round them in the script if wanted).

    from heads import write_head
    write_head("models/heads/eyes.json", "logistic", about, labels=["closed", "open"], ...)
"""
import json
import math

KINDS = {
    "logistic": ("labels", "features", "mean", "std", "weights", "bias", "threshold"),
    "softmax": ("labels", "features", "mean", "std", "weights", "bias"),
    "linear": ("features", "weights", "bias"),
    "prototypes": ("labels", "features", "mean", "std", "prototypes", "temperature"),
    "z_score": ("features", "mean", "std", "weights", "spread", "centre", "scale"),
}
MIN_STD = 1e-6


def _plain(v):
    """numpy scalars and arrays to Python floats and lists; strings stay."""
    if isinstance(v, str):
        return v
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return float(v)


def _check(kind, h):
    d = len(h["features"])
    k = len(h.get("labels", ()))

    def vec(name, n):
        v = h[name]
        assert len(v) == n, f"{name}: {len(v)} values, expected {n}"
        assert all(math.isfinite(x) for x in v), f"{name}: non-finite value"

    assert d > 0 and len(set(h["features"])) == d, "features: empty or repeated names"
    if "labels" in h:
        assert k >= 2 and len(set(h["labels"])) == k, "labels: fewer than two or repeated"
    if kind == "logistic":
        assert k == 2, "a logistic head has two labels [negative, positive]"
    if "mean" in h:
        vec("mean", d)
        vec("std", d)
        assert min(h["std"]) >= MIN_STD, "std: a spread below 1e-6"
    if kind in ("logistic", "linear", "z_score"):
        vec("weights", d)
    if kind == "softmax":
        assert len(h["weights"]) == k, "weights: one row per label"
        for row in h["weights"]:
            assert len(row) == d and all(math.isfinite(x) for x in row), "weights row"
        vec("bias", k)
    if kind == "prototypes":
        assert len(h["prototypes"]) == k, "prototypes: one per label"
        for p in h["prototypes"]:
            assert len(p) == d and all(math.isfinite(x) for x in p), "prototype"
        assert h["temperature"] >= 1e-3
    if kind == "logistic":
        assert 0.0 <= h["threshold"] <= 1.0, "threshold outside 0..1"
    if kind == "z_score":
        assert h["spread"] >= 1e-3, "spread below 1e-3"


def head(kind, about, **fields):
    """The head as a dict, keys in the schema's order; raises on a malformed head."""
    want = KINDS[kind]
    assert set(fields) == set(want), f"{kind} needs {sorted(want)}, got {sorted(fields)}"
    h = {"kind": kind, "about": about}
    for name in want:
        h[name] = _plain(fields[name])
    _check(kind, h)
    return h


def write_head(path, kind, about, **fields):
    """Check and write one head file."""
    h = head(kind, about, **fields)
    with open(path, "w") as f:
        json.dump(h, f, indent=1)
    print(f"wrote {path}")
    return h


# ---------------------------------------------------------------------------------------------
# Reading heads back (numpy, imported where used): the Python twin of the service's feature
# names (AttributeFeatures::named in crates/facelens-vision/src/attributes/features.rs) and of
# the softmax kind, for the scripts that fit or score the heads. Scalars or arrays alike.


def logit(p):
    """ln(p / (1 - p)), p clamped to [1e-6, 1 - 1e-6]."""
    import numpy as np

    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def child(age_years):
    """A soft "under about 15" from face-api's age: 1 / (1 + exp((age - 15) / 3))."""
    import numpy as np

    return 1.0 / (1.0 + np.exp((np.asarray(age_years, np.float64) - 15.0) / 3.0))


RAW_OUTPUTS = ("dlib_male", "faceapi_male", "gear_male", "dlib_age", "faceapi_age")


def named(raw, name):
    """The head feature `name` from the raw model outputs `raw` (a mapping with the keys of
    RAW_OUTPUTS: P(male) of each model, ages in years), as the service computes it:
    `logit_<output>`, `child`, `dlib_age`, `faceapi_age` and products `a*b`. None when an
    output it needs is missing; ValueError for a name the service does not know either."""
    if "*" in name:
        a, b = name.split("*", 1)
        x, y = named(raw, a), named(raw, b)
        return None if x is None or y is None else x * y
    if name.startswith("logit_") and name[len("logit_"):] in ("dlib_male", "faceapi_male", "gear_male"):
        p = raw.get(name[len("logit_"):])
        return None if p is None else logit(p)
    if name == "child":
        age = raw.get("faceapi_age")
        return None if age is None else child(age)
    if name in ("dlib_age", "faceapi_age"):
        return raw.get(name)
    raise ValueError(f"feature {name!r}: not one of the service's named features handled here")


def softmax_proba(h, x):
    """Class probabilities of a `softmax` head `h` (a head dict) on rows `x`, in label order, as
    the service computes them: softmax(W (x - mean) / std + b)."""
    import numpy as np

    z = (np.asarray(x, np.float64) - np.array(h["mean"])) / np.array(h["std"])
    logits = z @ np.array(h["weights"]).T + np.array(h["bias"])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)
