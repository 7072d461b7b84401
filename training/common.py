"""Shared pieces of the training commands: reading `facelens eval crops` output, the backbone
feature extractors (the shipped ONNX models with an extra output, fed exactly as the service
feeds them), cross-validation helpers and metrics, and the ONNX head export with its check.

Nothing here reads a picture file: every pixel comes from the crops Facelens itself wrote.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
SEED = 7

# ---------------------------------------------------------------------------------------------
# Crops written by `facelens eval crops`


@dataclass
class Crops:
    """One `facelens eval crops` output folder."""

    root: Path
    index: list[dict]

    @classmethod
    def open(cls, root: str | Path) -> "Crops":
        root = Path(root)
        with open(root / "index.jsonl") as f:
            index = [json.loads(line) for line in f if line.strip()]
        return cls(root, index)

    def view(self, name: str) -> np.ndarray:
        """`N × S × S × 3` float32 RGB 0..255 (memory-mapped)."""
        return np.load(self.root / f"{name}.npy", mmap_mode="r")

    def mesh(self) -> np.ndarray:
        return np.load(self.root / "mesh.npy", mmap_mode="r")

    def landmarks(self) -> np.ndarray:
        return np.load(self.root / "landmarks.npy", mmap_mode="r")

    @property
    def found(self) -> np.ndarray:
        return np.array([r["found"] for r in self.index], dtype=bool)

    def cache(self, name: str) -> Path:
        d = self.root / "features"
        d.mkdir(exist_ok=True)
        return d / f"{name}.npy"


# ---------------------------------------------------------------------------------------------
# Backbones: the shipped models with extra outputs, and the input transforms of the service
# (crates/facelens-vision/src/attributes: batch_nchw / batch_nhwc / batch_grey, DLIB_MEAN).

DLIB_MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)


def nchw(crops: np.ndarray, mean=(0.0, 0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    x = (crops.astype(np.float32) - np.asarray(mean, np.float32)) * np.float32(scale)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nhwc(crops: np.ndarray, scale: float) -> np.ndarray:
    return np.ascontiguousarray(crops.astype(np.float32) * np.float32(scale))


def grey_pm1(crops: np.ndarray) -> np.ndarray:
    """The emotion nets' input: grey (0.2989 R + 0.587 G + 0.114 B) / 255, then (g - 0.5) * 2."""
    c = crops.astype(np.float32)
    g = (np.float32(0.2989) * c[..., 0] + np.float32(0.587) * c[..., 1] + np.float32(0.114) * c[..., 2]) / np.float32(255.0)
    return np.ascontiguousarray(((g - np.float32(0.5)) * np.float32(2.0))[..., None])


@dataclass(frozen=True)
class Backbone:
    """A shipped model, the crop view it is served, its input transform, whether the service
    flip-averages it, and the inner tensors exposed as features (`pool`: global-average-pool a
    spatial map first)."""

    name: str
    file: str
    view: str
    transform: str
    flip: bool
    outputs: tuple[tuple[str, str, bool], ...]  # (feature name, tensor, pool)


BACKBONES = {
    "faceapi": Backbone(
        "faceapi", "faceapi_age_gender.onnx", "faceapi112", "faceapi", True,
        (("faceapi_pool", "flatten", False), ("faceapi_gender", "gender", False),
         ("faceapi_age", "age", False)),
    ),
    "gear": Backbone(
        "gear", "gear.onnx", "gear198", "gear", False,
        (("gear_pool", "StatefulPartitionedCall/model_1/global_max_pooling2d_1/Max_Squeeze__122:0", False),
         ("gear_race", "race_output", False), ("gear_gender", "gender_output", False),
         ("gear_age", "age_output", False)),
    ),
    "dlib_age": Backbone(
        "dlib_age", "dlib_age_v1.onnx", "dlib64", "dlib", True,
        (("dlib_age_pool", "layer_1_flatten", False),),
    ),
    "dlib_gender": Backbone(
        "dlib_gender", "dlib_gender_v1.onnx", "dlib32", "dlib", True,
        (("dlib_gender_fc", "layer_3_relu", False), ("dlib_gender_p", "probabilities", False)),
    ),
    "emotion_human": Backbone(
        "emotion_human", "emotion.onnx", "fer64", "grey", True,
        (("emotion_human_pool", "StatefulPartitionedCall/model_1/add_2/add:0", True),
         ("emotion_human_add1", "StatefulPartitionedCall/model_1/add_1/add:0", False),
         ("emotion_human_add2", "StatefulPartitionedCall/model_1/add_2/add:0", False)),
    ),
    "emotion_fer": Backbone(
        "emotion_fer", "fer_emotion_minixception.onnx", "fer64", "grey", True,
        (("emotion_fer_pool", "model_1/add_4/add:0", True),
         ("emotion_fer_add3", "model_1/add_3/add:0", False),
         ("emotion_fer_add4", "model_1/add_4/add:0", False)),
    ),
}


def to_input(transform: str, crops: np.ndarray) -> np.ndarray:
    if transform == "faceapi":
        return nchw(crops)
    if transform == "gear":
        return nhwc(crops, 1.0 / 255.0)
    if transform == "dlib":
        return nchw(crops, DLIB_MEAN, 1.0 / 256.0)
    if transform == "grey":
        return grey_pm1(crops)
    raise ValueError(transform)


def with_feature_outputs(model, outputs):
    """A copy of `model` with the named inner tensors added as graph outputs (a spatial map
    with `pool` true goes through GlobalAveragePool + Flatten first, as an NCHW map), unless the
    file already has an output of that name. The existing outputs are unchanged: the service
    keeps reading them by name."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    have = {o.name for o in g.output}
    for name, tensor, pool in outputs:
        if name in have and not pool:
            # Already a graph output (training.expose_outputs adds it to the shipped file as an
            # Identity of the same tensor): the same values, read as they are.
            continue
        src = tensor
        if pool:
            g.node.extend([
                helper.make_node("GlobalAveragePool", [tensor], [f"{name}__gap"], name=f"{name}__gap"),
                helper.make_node("Flatten", [f"{name}__gap"], [name], name=f"{name}__flatten", axis=1),
            ])
            src = name
        elif tensor != name:
            g.node.append(helper.make_node("Identity", [tensor], [name], name=f"{name}__identity"))
        g.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        del src
    return m


def session(model_bytes: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("TRAINING_THREADS", "2"))
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def backbone_session(bb: Backbone):
    import onnx

    m = with_feature_outputs(onnx.load(str(MODELS / bb.file)), bb.outputs)
    return session(m.SerializeToString())


def backbone_features(crops: Crops, bb: Backbone, batch: int = 32, rows=None) -> dict[str, np.ndarray]:
    """Features of every row (zeros where no face was found), averaged over the crop and its
    mirror when the service flip-averages this model (run_views divides each view's output by
    the number of views and adds: the mean)."""
    sess = backbone_session(bb)
    data = crops.view(bb.view)
    n = data.shape[0] if rows is None else len(rows)
    idx = np.arange(data.shape[0]) if rows is None else np.asarray(rows)
    found = crops.found
    names = [o[0] for o in bb.outputs]
    inp = sess.get_inputs()[0].name
    out: dict[str, np.ndarray] = {}
    for s in range(0, n, batch):
        sel = idx[s:s + batch]
        x = np.asarray(data[sel])
        views = [x, x[:, :, ::-1, :]] if bb.flip else [x]
        acc = None
        for v in views:
            r = sess.run(names, {inp: to_input(bb.transform, v)})
            r = [np.asarray(t, np.float32).reshape(len(sel), -1) for t in r]
            acc = r if acc is None else [a + b for a, b in zip(acc, r)]
        for name, a in zip(names, acc):
            a = a / np.float32(len(views))
            a[~found[sel]] = 0.0
            out.setdefault(name, np.zeros((n, a.shape[1]), np.float32))[s:s + len(sel)] = a
        if (s // batch) % 20 == 0:
            print(f"  {bb.name}: {s + len(sel)} / {n}", file=sys.stderr, flush=True)
    return out


# Spatially pooled inner maps: `<map>_g<G>` = the NCHW map `<map>` (C x H x W) averaged over a
# G x G grid of regions (rows and columns split as numpy.array_split does), laid out channel-
# major (`[c * G*G + region]`, regions row by row). The pooling is a fixed matrix `P`
# (H*W x G*G): features = reshape(map, [N, C, H*W]) @ P, flattened. The ONNX heads do exactly
# this, so the service feeds them the raw maps.
SPATIAL = {
    "emotion_human_add1": (128, 15, 15),
    "emotion_human_add2": (256, 8, 8),
    "emotion_fer_add3": (64, 8, 8),
    "emotion_fer_add4": (128, 4, 4),
}


def pool_matrix(h: int, w: int, g: int) -> np.ndarray:
    P = np.zeros((h * w, g * g), np.float32)
    for a, rows in enumerate(np.array_split(np.arange(h), g)):
        for b, cols in enumerate(np.array_split(np.arange(w), g)):
            for r in rows:
                for c in cols:
                    P[r * w + c, a * g + b] = 1.0 / (len(rows) * len(cols))
    return P


def spatial_pool(raw: np.ndarray, shape: tuple[int, int, int], g: int) -> np.ndarray:
    c, h, w = shape
    x = raw.reshape(len(raw), c, h * w).astype(np.float32)
    return (x @ pool_matrix(h, w, g)).reshape(len(raw), c * g * g)


def load_features(crops: Crops, names: list[str]) -> np.ndarray:
    """Cached features by name (computed on first use); concatenated in order."""
    parts = []
    for name in names:
        base, _, grid = name.rpartition("_g")
        if base in SPATIAL and grid.isdigit():
            p = crops.cache(name)
            if not p.exists():
                np.save(p, spatial_pool(load_raw(crops, base), SPATIAL[base], int(grid)))
            parts.append(np.load(p))
            continue
        p = crops.cache(name)
        if not p.exists():
            if name == "mesh_geom":
                np.save(p, mesh_geometry(np.asarray(crops.mesh())))
            else:
                bb = next(b for b in BACKBONES.values() if any(o[0] == name for o in b.outputs))
                print(f"computing {bb.name} features on {crops.root}", file=sys.stderr)
                for k, v in backbone_features(crops, bb).items():
                    np.save(crops.cache(k), v)
        parts.append(np.load(p))
    return np.concatenate(parts, axis=1)


def load_raw(crops: Crops, name: str) -> np.ndarray:
    """A raw inner map (not cached: large), computed for every row."""
    bb = next(b for b in BACKBONES.values() if any(o[0] == name for o in b.outputs))
    sub = Backbone(bb.name, bb.file, bb.view, bb.transform, bb.flip,
                   tuple(o for o in bb.outputs if o[0] == name))
    print(f"computing {name} on {crops.root}", file=sys.stderr)
    return backbone_features(crops, sub)[name]


# ---------------------------------------------------------------------------------------------
# Mesh geometry: the 468 points in the face's own frame (similarity-aligned to the mean shape
# over x, y; z scaled the same way). Yaw/pitch are not removed (frontal portraits).


def mesh_geometry(mesh: np.ndarray) -> np.ndarray:
    """`N × 468 × 3` image-pixel mesh → `N × 1404` similarity-normalised coordinates: centred on
    the mean point, scaled to unit RMS radius in x/y, rotated so the outer eye corners (33, 263)
    are level. Rows of zeros stay zeros."""
    n = mesh.shape[0]
    out = np.zeros((n, 468 * 3), np.float32)
    for i in range(n):
        p = mesh[i].astype(np.float64)
        if not np.any(p):
            continue
        c = p[:, :2].mean(axis=0)
        xy = p[:, :2] - c
        s = np.sqrt((xy ** 2).sum(axis=1).mean())
        if s <= 0:
            continue
        d = p[263, :2] - p[33, :2]
        a = np.arctan2(d[1], d[0])
        r = np.array([[np.cos(-a), -np.sin(-a)], [np.sin(-a), np.cos(-a)]])
        xy = xy @ r.T / s
        z = (p[:, 2] - p[:, 2].mean()) / s
        out[i] = np.concatenate([xy, z[:, None]], axis=1).reshape(-1)
    return out


# ---------------------------------------------------------------------------------------------
# Metrics and CV


def pearson(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else float("nan")


def spearman(a, b) -> float:
    from scipy.stats import rankdata

    return pearson(rankdata(a), rankdata(b))


def kfold_indices(n: int, k: int, seed: int = SEED, strata=None, groups=None):
    """Fold id per item: stratified by `strata` when given, keeping each `groups` value in one
    fold when given (groups are dealt to folds largest first, balancing the per-stratum counts
    of each fold)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(n, int)
    if groups is None:
        strata = np.zeros(n, int) if strata is None else np.asarray(strata)
        for s in np.unique(strata):
            idx = np.flatnonzero(strata == s)
            idx = idx[rng.permutation(len(idx))]
            fold[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
        return fold
    groups = np.asarray(groups)
    strata = np.zeros(n, int) if strata is None else np.asarray(strata)
    levels = {s: j for j, s in enumerate(np.unique(strata))}
    counts = np.zeros((k, len(levels)))
    uniq = np.unique(groups)
    uniq = uniq[rng.permutation(len(uniq))]
    sizes = {g: int((groups == g).sum()) for g in uniq}
    for g in sorted(uniq, key=lambda g: -sizes[g]):
        idx = np.flatnonzero(groups == g)
        vec = np.zeros(len(levels))
        for s in strata[idx]:
            vec[levels[s]] += 1
        # the fold where this group's strata are least represented
        cost = (counts + vec).max(axis=1) + 1e-3 * counts.sum(axis=1)
        f = int(np.argmin(cost))
        counts[f] += vec
        fold[idx] = f
    return fold


def standardize(xtr, xte):
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd[sd < 1e-6] = 1.0
    return (xtr - mu) / sd, (xte - mu) / sd, mu, sd


# ---------------------------------------------------------------------------------------------
# ONNX heads: a linear map (standardisation folded in), optionally followed by a softmax.


def linear_head_onnx(W: np.ndarray, b: np.ndarray, in_name: str, out_name: str, softmax: bool,
                     doc: str, meta: dict[str, str]):
    """`y = x @ W + b` (and `softmax(y)`), x: `N × D` float32."""
    import onnx
    from onnx import helper, numpy_helper

    W = np.asarray(W, np.float32)
    b = np.asarray(b, np.float32).reshape(-1)
    d, k = W.shape
    nodes = [
        helper.make_node("MatMul", [in_name, "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], [out_name if not softmax else "logits"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [out_name], axis=1))
    g = helper.make_graph(
        nodes, "head",
        [helper.make_tensor_value_info(in_name, onnx.TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, ["N", k])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="facelens-training")
    m.ir_version = 8
    m.doc_string = doc
    for key, v in meta.items():
        e = m.metadata_props.add()
        e.key = key
        e.value = v
    onnx.checker.check_model(m)
    return m


def check_onnx(model, x: np.ndarray, expected: np.ndarray, tol: float) -> float:
    """Run the exported model on `x` with onnxruntime and assert it reproduces `expected` (the
    training framework's output) to `tol`; returns the largest absolute difference."""
    sess = session(model.SerializeToString())
    got = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    diff = float(np.abs(got.reshape(expected.shape) - expected).max())
    print(f"ONNX check: max |onnxruntime - framework| = {diff:.3g} on {len(x)} rows (tolerance {tol})")
    assert diff <= tol, f"exported ONNX differs from the framework by {diff} > {tol}"
    return diff


def spatial_name(name: str):
    """(`map`, grid) for a spatially pooled feature name, else None."""
    base, _, grid = name.rpartition("_g")
    return (base, int(grid)) if base in SPATIAL and grid.isdigit() else None


def feature_head_onnx(names: list[str], dims: dict[str, int], W: np.ndarray, b: np.ndarray,
                      tail, outputs, doc: str, meta: dict[str, str]):
    """One ONNX head over named feature inputs: a pooled vector `name` (`N × D`) is read as is;
    a spatial feature `<map>_g<G>` reads the raw NCHW map `<map>` and pools it with the fixed
    matrix of `pool_matrix` (Reshape, MatMul, Reshape). The blocks are concatenated in `names`
    order, then `x @ W + b` (standardisation folded in) gives `score`; `tail(score)` returns the
    extra nodes and initializers that turn it into `outputs` (a list of (name, width))."""
    import onnx
    from onnx import helper, numpy_helper

    nodes, inits, inputs, blocks = [], [], [], []
    for name in names:
        sp = spatial_name(name)
        if sp is None:
            inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", dims[name]]))
            blocks.append(name)
            continue
        base, g = sp
        c, h, w = SPATIAL[base]
        inputs.append(helper.make_tensor_value_info(base, onnx.TensorProto.FLOAT, ["N", c, h, w]))
        inits += [numpy_helper.from_array(np.array([0, c, h * w], np.int64), f"{name}__s1"),
                  numpy_helper.from_array(pool_matrix(h, w, g), f"{name}__P"),
                  numpy_helper.from_array(np.array([0, c * g * g], np.int64), f"{name}__s2")]
        nodes += [helper.make_node("Reshape", [base, f"{name}__s1"], [f"{name}__flat"]),
                  helper.make_node("MatMul", [f"{name}__flat", f"{name}__P"], [f"{name}__pooled"]),
                  helper.make_node("Reshape", [f"{name}__pooled", f"{name}__s2"], [name])]
        blocks.append(name)
    nodes.append(helper.make_node("Concat", blocks, ["features"], axis=1))
    inits += [numpy_helper.from_array(np.asarray(W, np.float32), "W"),
              numpy_helper.from_array(np.asarray(b, np.float32).reshape(-1), "b")]
    nodes += [helper.make_node("MatMul", ["features", "W"], ["xw"]),
              helper.make_node("Add", ["xw", "b"], ["score"])]
    extra_nodes, extra_inits = tail("score")
    nodes += extra_nodes
    inits += extra_inits
    g = helper.make_graph(nodes, "head", inputs,
                          [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, ["N", k]) for o, k in outputs],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="facelens-training")
    m.ir_version = 8
    m.doc_string = doc
    for key, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = key, v
    onnx.checker.check_model(m)
    return m


def head_inputs(crops: Crops, names: list[str], rows) -> dict[str, np.ndarray]:
    """The ONNX head's inputs for `rows` of a crops folder, computed afresh from the crops (the
    raw maps for spatial features)."""
    feeds = {}
    for name in names:
        sp = spatial_name(name)
        if sp is None:
            feeds[name] = load_features(crops, [name])[rows].astype(np.float32)
        else:
            base, _ = sp
            bb = next(b for b in BACKBONES.values() if any(o[0] == base for o in b.outputs))
            sub = Backbone(bb.name, bb.file, bb.view, bb.transform, bb.flip,
                           tuple(o for o in bb.outputs if o[0] == base))
            feeds[base] = backbone_features(crops, sub, rows=rows)[base].reshape(len(rows), *SPATIAL[base])
    return feeds


def check_head(model, feeds: dict[str, np.ndarray], expected: np.ndarray, tol: float) -> float:
    """Run the exported head with onnxruntime on `feeds` and assert it reproduces the training
    framework's `expected` output to `tol`."""
    sess = session(model.SerializeToString())
    got = sess.run(None, feeds)[0]
    diff = float(np.abs(np.asarray(got).reshape(expected.shape) - expected).max())
    print(f"ONNX check: max |onnxruntime - framework| = {diff:.3g} on {len(expected)} rows (tolerance {tol})")
    assert diff <= tol, f"exported ONNX differs from the framework by {diff} > {tol}"
    return diff


# ---------------------------------------------------------------------------------------------
# What every trained head's command does after its fit: export, check, write; stability pairs.


def feature_dims(crops: Crops, names: list[str]) -> dict[str, int]:
    """Each named feature's width (the exported head's per-input dimension)."""
    return {n: load_features(crops, [n]).shape[1] for n in names}


def export_head(out: Path, model, crops: Crops, names: list[str], rows, expected: np.ndarray,
                tol: float, note: str = "") -> None:
    """Check an exported head against the training framework's `expected` output on `rows` of
    `crops` (inputs computed afresh, as `head_inputs` does) and write it to `out`."""
    check_head(model, head_inputs(crops, names, rows), expected, tol)
    out.write_bytes(model.SerializeToString())
    print(f"wrote {out.relative_to(REPO)} ({out.stat().st_size} bytes){note}")


def stability_pairs(crops: Crops, idx: np.ndarray, found: np.ndarray, folder: str,
                    names: list[str]) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The crops of a transformed copy of the photos (`facelens eval crops --mirror` or
    `--scale` into `folder`) matched to the rows `idx` of `crops` by file: (pairs of (position
    in idx, row in the other folder), both with a face; the other folder's features)."""
    other = Crops.open(folder)
    files = {r["file"]: r for r in other.index}
    xo = load_features(other, names).astype(np.float64)
    pairs = [(j, files[r["file"]]["i"]) for j, r in enumerate(crops.index[i] for i in idx)
             if r["file"] in files and files[r["file"]]["found"] and found[j]]
    return pairs, xo
