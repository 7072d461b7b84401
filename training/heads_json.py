"""The exported ONNX heads in the form the service runs: models/heads/*_trained.json.

    training/.venv/bin/python -m training.heads_json

The training commands export each head to ONNX (models/*_head.onnx) and check it against
scikit-learn. The service does not run those graphs: their inputs are several inner tensors of
other models, and the service's model interface takes one input. It reads the same numbers as
a head file of the one schema every fitted head uses (scripts/heads.py; the Rust loader in
crates/facelens-vision/src/heads): `W` and `b` from the ONNX initializers, standardisation
already folded in, and one feature name per input dimension, `<block>#<i>`. A block is a
pooled vector the head reads as is (`faceapi_pool`, `gear_pool`, `dlib_age_pool`, `mesh_geom`,
`logp_gear_race`) or a feature map pooled on a grid (`emotion_fer_add4_g3`: the map
`emotion_fer_add4` averaged over 3 x 3 regions, channel-major, as training/common.py's
`spatial_pool`); the service rebuilds each block from the model outputs that
training/expose_outputs.py exposes (crates/facelens-vision/src/attributes/trained.rs).

It also writes crates/facelens-vision/tests/data/trained_heads.expected.json: each head's ONNX
output (onnxruntime) on synthetic inputs that the Rust test regenerates with the same formula,
so the test proves that the Rust pooling, block order and head arithmetic equal the ONNX graph.
For the gender head (served from models/heads/gender.json, which race_gender writes) the fixture
holds raw model outputs and the ONNX output on the features derived from them, so the test also
covers the service's feature derivation (logits, the child term, products).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .common import MODELS, REPO, SPATIAL, session, spatial_name

sys.path.insert(0, str(REPO / "scripts"))
from heads import head, named  # noqa: E402

HEADS = REPO / "models" / "heads"
FIXTURE = REPO / "crates" / "facelens-vision" / "tests" / "data" / "trained_heads.expected.json"
VECTOR_DIMS = {"faceapi_pool": 512, "gear_pool": 192, "dlib_age_pool": 256, "mesh_geom": 1404,
               "logp_gear_race": 5}


def block_dims(name: str) -> int:
    sp = spatial_name(name)
    if sp is None:
        return VECTOR_DIMS[name]
    base, g = sp
    return SPATIAL[base][0] * g * g


def names_of(blocks: list[str]) -> list[str]:
    return [f"{b}#{i}" for b in blocks for i in range(block_dims(b))]


def weights(path: Path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    meta = {p.key: p.value for p in m.metadata_props}
    return m, init["W"].astype(np.float64), init["b"].astype(np.float64).reshape(-1), meta


def g7(a):
    """Seven significant digits: f32 holds no more, and the files stay small."""
    return [float(f"{v:.7g}") for v in np.asarray(a, np.float64).reshape(-1)]


def write(name: str, h: dict) -> None:
    path = HEADS / f"{name}.json"
    path.write_text(json.dumps(h, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes, {len(h['features'])} features)")


def write_softmax(name: str, W, b, blocks: list[str], labels: list[str], about: str) -> None:
    """A softmax head file from an exported `x @ W + b` (standardisation already folded in, so
    mean 0 and std 1)."""
    assert W.shape == (len(names_of(blocks)), len(labels)), W.shape
    d = W.shape[0]
    write(name, head("softmax", about, labels=labels, features=names_of(blocks), mean=[0.0] * d,
                     std=[1.0] * d, weights=[g7(W[:, j]) for j in range(W.shape[1])], bias=g7(b)))


def synthetic(name: str, row: int) -> np.ndarray:
    """The test inputs: element i of input `name` (its flattened raw form) in row `row` is
    sin(0.37 i + 1.3 row + len(name)) * (1 + (i mod 5)) / 60 (the Rust test uses the same)."""
    if spatial_name(name) is not None:
        c, h, w = SPATIAL[spatial_name(name)[0]]
        n = c * h * w
    else:
        n = VECTOR_DIMS[name]
    i = np.arange(n, dtype=np.float64)
    raw_name = spatial_name(name)[0] if spatial_name(name) else name
    return (np.sin(0.37 * i + 1.3 * row + len(raw_name)) * (1 + (i % 5)) / 60.0).astype(np.float32)


def onnx_outputs(model, blocks: list[str], rows: int) -> list[list[float]]:
    sess = session(model.SerializeToString())
    feeds = {}
    for b in blocks:
        sp = spatial_name(b)
        base = sp[0] if sp else b
        if base in feeds:
            continue
        data = np.stack([synthetic(b, r) for r in range(rows)])
        feeds[base] = data.reshape(rows, *SPATIAL[base]) if sp else data
    inputs = {i.name for i in sess.get_inputs()}
    out = sess.run(None, {k: v for k, v in feeds.items() if k in inputs})[0]
    return [[float(v) for v in r] for r in np.asarray(out, np.float64)]


def main() -> int:
    fixture = {"about": "ONNX outputs of models/*_head.onnx on training/heads_json.py's synthetic "
                        "inputs (onnxruntime); read by crates/facelens-vision/tests/trained_heads.rs",
               "rows": 3, "heads": {}}

    m, W, b, meta = weights(MODELS / "beauty_head.onnx")
    blocks = meta["features"].split(",")
    assert W.shape == (len(names_of(blocks)), 1), W.shape
    write("beauty_trained", head(
        "linear",
        "Beauty: SCUT-FBP5500 mean rating (1-5) from inner features of the shipped models; ridge "
        "regression, standardisation folded in; python -m training.beauty --export, then "
        "training/heads_json.py. Contract beauty = clamp(25 * (rating - 1), 0, 100). Trained on "
        "SCUT-FBP5500 (non-commercial research use only): docs/model-cards/beauty.md.",
        features=names_of(blocks), weights=g7(W[:, 0]), bias=float(f"{b[0]:.7g}")))
    fixture["heads"]["beauty_trained"] = {"blocks": blocks, "output": "rating",
                                          "expected": onnx_outputs(m, blocks, 3)}

    m, W, b, meta = weights(MODELS / "face_shape_head.onnx")
    blocks = meta["features"].split(",")
    write_softmax("face_shape_trained", W, b, blocks, meta["trained_classes"].split(","),
                  "Face shape: multinomial logistic regression over inner features of the shipped models "
                  "and the mesh geometry, in the data's five classes (the service adds oblong to oval and "
                  "never answers triangle); python -m training.face_shape --export, then "
                  "training/heads_json.py. Face Shape Dataset (niten19) dev split: "
                  "docs/model-cards/face_shape.md.")
    fixture["heads"]["face_shape_trained"] = {
        "blocks": blocks, "output": "contract probabilities [square, triangle, oval, heart, round]",
        "expected": onnx_outputs(m, blocks, 3)}

    m, W, b, meta = weights(MODELS / "race_head.onnx")
    blocks = meta["features"].split(",")
    write_softmax("race_trained", W, b, blocks, meta["classes"].split(","),
                  "Race in the contract's classes from GEAR's log race probabilities and its global max "
                  "pool; logistic regression on SCUT-FBP5500 portraits and the UTKFace dev sample, sources "
                  "weighted equally; python -m training.race_gender --export, then training/heads_json.py. "
                  "docs/model-cards/race_gender.md.")
    # The race head's ONNX input is the concatenated vector.
    sess = session(m.SerializeToString())
    x = np.stack([np.concatenate([synthetic(bk, r) for bk in blocks]) for r in range(3)])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    fixture["heads"]["race_trained"] = {"blocks": blocks, "output": "probabilities " + meta["classes"],
                                        "expected": [[float(v) for v in r] for r in out]}

    # The gender head is served from models/heads/gender.json (written by race_gender beside
    # the ONNX file); the fixture checks that head, fed by AttributeFeatures::named, against the
    # ONNX export on raw model outputs: P(male) of dlib and face-api, face-api's age in years
    # (features by scripts/heads.py's `named`, the Python twin).
    m = __import__("onnx").load(str(MODELS / "gender_head.onnx"))
    meta = {p.key: p.value for p in m.metadata_props}
    raw = [[0.9, 0.8, 30.0], [0.2, 0.6, 5.0], [0.55, 0.3, 14.0], [0.999, 0.01, 70.0], [0.7, 0.4, 9.0]]
    sess = session(m.SerializeToString())
    fields = ["dlib_male", "faceapi_male", "faceapi_age"]
    x = np.array([[named(dict(zip(fields, r)), n) for n in meta["features"].split(",")] for r in raw],
                 np.float32)
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    fixture["heads"]["gender"] = {
        "features": meta["features"].split(","), "raw": raw,
        "raw_fields": fields,
        "output": "probabilities " + meta["classes"], "expected": [[float(v) for v in r] for r in out]}

    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
