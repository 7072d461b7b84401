"""Expose the inner tensors the trained heads read as extra graph outputs of the shipped models.

    training/.venv/bin/python -m training.expose_outputs [--check]

The beauty, face-shape and race heads (models/heads/*_trained.json) read inner features of
models the service already runs for other attributes (a pooled layer of face-api, dlib age and
GEAR, two feature maps of each emotion net). onnxruntime only returns graph outputs, so each
such tensor gets an `Identity` node whose output, named as the feature (`faceapi_pool`, ...), is
appended to the graph's outputs. Nothing else changes: the existing outputs keep their names,
order and values, so code that reads them by name or by position is unaffected. The int8
versions get the same outputs (their float tensors of the same names).

Idempotent: an output that is already there is left alone. `--check` only reports (exit 1 when
an output is missing). After a change, models/manifest.json's `bytes` and `sha256` are updated
for the files written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from .common import MODELS

# (file, [(feature name, inner tensor)]): the tensors of training/common.py BACKBONES that the
# trained heads read, unpooled (the service pools the maps itself, as the heads' blocks say).
EXPOSED = {
    "faceapi_age_gender.onnx": [("faceapi_pool", "flatten")],
    "gear.onnx": [("gear_pool", "StatefulPartitionedCall/model_1/global_max_pooling2d_1/Max_Squeeze__122:0")],
    "gear_int8.onnx": [("gear_pool", "StatefulPartitionedCall/model_1/global_max_pooling2d_1/Max_Squeeze__122:0")],
    "dlib_age_v1.onnx": [("dlib_age_pool", "layer_1_flatten")],
    "dlib_age_v1_int8.onnx": [("dlib_age_pool", "layer_1_flatten")],
    "emotion.onnx": [("emotion_human_add1", "StatefulPartitionedCall/model_1/add_1/add:0"),
                     ("emotion_human_add2", "StatefulPartitionedCall/model_1/add_2/add:0")],
    "fer_emotion_minixception.onnx": [("emotion_fer_add3", "model_1/add_3/add:0"),
                                      ("emotion_fer_add4", "model_1/add_4/add:0")],
}


def expose(model, pairs) -> list[str]:
    import onnx
    from onnx import helper

    g = model.graph
    # The exposed outputs' types (rank, element type) as shape inference finds them; every
    # dimension is left symbolic, as a graph output of any batch size.
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    have = {o.name for o in g.output}
    produced = {o for n in g.node for o in n.output}
    added = []
    for name, tensor in pairs:
        if name in have:
            continue
        if tensor not in produced:
            raise SystemExit(f"{tensor!r} is not a tensor of this graph")
        g.node.append(helper.make_node("Identity", [tensor], [name], name=f"{name}__expose"))
        t = types.get(tensor)
        if t is None or not t.tensor_type.HasField("shape"):
            raise SystemExit(f"shape inference gives no rank for {tensor!r}")
        rank = len(t.tensor_type.shape.dim)
        dims = ["N"] + [f"{name}_d{i}" for i in range(1, rank)]
        g.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
        added.append(name)
    return added


def main(argv=None) -> int:
    import onnx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="report only; exit 1 if an output is missing")
    a = ap.parse_args(argv)
    manifest_path = MODELS / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    missing = 0
    for file, pairs in EXPOSED.items():
        path = MODELS / file
        m = onnx.load(str(path))
        have = {o.name for o in m.graph.output}
        todo = [p for p in pairs if p[0] not in have]
        if not todo:
            print(f"{file}: has {[p[0] for p in pairs]}")
            continue
        if a.check:
            print(f"{file}: missing {[p[0] for p in todo]}")
            missing += 1
            continue
        added = expose(m, todo)
        onnx.checker.check_model(m)
        data = m.SerializeToString()
        path.write_bytes(data)
        for entry in manifest["models"]:
            if entry["file"] == file:
                entry["bytes"] = len(data)
                entry["sha256"] = hashlib.sha256(data).hexdigest()
                note = "; inner outputs " + ", ".join(p[0] for p in pairs) + " exposed by training/expose_outputs.py"
                if "expose_outputs" not in entry["origin"]:
                    entry["origin"] += note
        print(f"{file}: added {added}")
    if not a.check:
        manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
