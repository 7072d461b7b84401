//! Golden end-to-end outputs of `facelens detect`.
//!
//! Two sets of images:
//!
//! * the images committed in `test-data/` at the repository root (public domain and CC0, see
//!   `test-data/README.md`): `golden_outputs_on_committed_images` runs on every clone;
//! * development images from the evaluation data (../shared/evaldata, or `FACELENS_EVALDATA`),
//!   never copied into the repository: `golden_outputs_on_dev_images` skips, saying so
//!   (`facelens_testkit::skip`), when the data is absent.
//!
//! Only the expected outputs are in `crates/facelens/test-data/<name>.expected.json`. Besides the
//! comparison, each output is checked for plausibility independently of the expected files (face
//! count, token_id shape, order by area, boxes against the WIDER labels or the known layout).
//!
//! Tolerances: boxes 2 px, landmarks 3 px, pose (and the box rotation) 3 degrees, scores 0.02,
//! quality 0.05 (illumination, on a 0..255 scale, 2), attribute probabilities and eye openness
//! 0.05, age and beauty 2, token_id and every other field (attribute labels included) exact.
//!
//! Bless (rewrite the expected files from the current output instead of comparing; check the
//! diff before committing it):
//!
//! ```sh
//! FACELENS_UPDATE_GOLDEN=1 cargo test -p facelens --test golden
//! ```
//!
//! It rewrites the committed-image files always and the dev-image files when the evaluation data
//! is present (docs/testing.md).

use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One golden case.
struct Case {
    /// Name of the expected file, `test-data/<name>.expected.json`.
    name: &'static str,
    /// Image path, relative to the evaluation data folder (dev cases) or to the repository root
    /// (committed cases, `test-data/...`).
    image: &'static str,
    face_num: usize,
}

/// A committed image and what it holds, known from how it was made (test-data/make_images.py).
struct Committed {
    case: Case,
    /// Faces the output must hold.
    faces: usize,
    /// The x ranges (pixels) of the panels holding one face each, left to right, or empty.
    panels: &'static [(f64, f64)],
}

const COMMITTED: &[Committed] = &[
    // One clear frontal face (NASA portrait of Eileen Collins).
    Committed {
        case: Case {
            name: "astronaut",
            image: "test-data/astronaut.jpg",
            face_num: 10,
        },
        faces: 1,
        panels: &[],
    },
    // The face with some background, 200x200, like a UTKFace crop.
    Committed {
        case: Case {
            name: "astronaut_crop200",
            image: "test-data/astronaut_crop200.jpg",
            face_num: 10,
        },
        faces: 1,
        panels: &[],
    },
    // The same face cut out, grey, 64x64: the face fills the frame (retry chain).
    Committed {
        case: Case {
            name: "astronaut_grey64",
            image: "test-data/astronaut_grey64.jpg",
            face_num: 10,
        },
        faces: 1,
        panels: &[],
    },
    // The portrait at 380, 270 and 190 px side by side: three faces, largest first.
    Committed {
        case: Case {
            name: "astronaut_trio",
            image: "test-data/astronaut_trio.jpg",
            face_num: 10,
        },
        faces: 3,
        panels: &[(10.0, 390.0), (400.0, 670.0), (680.0, 870.0)],
    },
    // A greyscale photo of a man behind a camera.
    Committed {
        case: Case {
            name: "camera",
            image: "test-data/camera.jpg",
            face_num: 10,
        },
        faces: 1,
        panels: &[],
    },
    // A cup of coffee: no face (an error answer, exit status 1).
    Committed {
        case: Case {
            name: "coffee_no_face",
            image: "test-data/coffee.jpg",
            face_num: 10,
        },
        faces: 0,
        panels: &[],
    },
];

const DEV_CASES: &[Case] = &[
    // Three children in a classroom (WIDER: 3 boxes). Two cartoon faces on a poster behind them
    // are detected too (scores ~0.55, much smaller), so ask for the three largest.
    Case {
        name: "group_parade_0_429",
        image: "detection/wider_face_val/images/0--Parade/0_Parade_Parade_0_429.jpg",
        face_num: 3,
    },
    // A crowd: 22 WIDER boxes, 19 detections, the 10 largest all with scores > 0.98.
    Case {
        name: "crowd_demonstration_2_618",
        image: "detection/wider_face_val/images/2--Demonstration/2_Demonstration_Protesters_2_618.jpg",
        face_num: 10,
    },
    // UTKFace 200x200 aligned crops (the face fills the frame).
    Case {
        name: "crop200_24_1_2",
        image: "attributes/utkface/24_1_2_20170116173507147.jpg.chip.jpg",
        face_num: 10,
    },
    Case {
        name: "crop200_37_1_1",
        image: "attributes/utkface/37_1_1_20170112220140249.jpg.chip.jpg",
        face_num: 10,
    },
    // FER2013: a 48x48 greyscale crop.
    Case {
        name: "grey48_happy_11555220",
        image: "attributes/fer2013/happy/PublicTest_11555220.jpg",
        face_num: 10,
    },
];

fn evaldata_dir() -> Option<PathBuf> {
    facelens_eval::evaldata_dir().filter(|d| d.join("detection/manifest.jsonl").is_file())
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-data")
        .join(format!("{name}.expected.json"))
}

fn updating() -> bool {
    std::env::var_os("FACELENS_UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Run `facelens detect --face-num N FILE`; the exit status and the one output line.
fn run_detect(file: &Path, face_num: usize) -> (Option<i32>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .args(["detect", "--face-num", &face_num.to_string()])
        .arg(file)
        .env("FACELENS_BACKEND", "rten")
        .output()
        .expect("running the facelens binary");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{}: {stderr}", file.display());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}: {stdout}\n{stderr}", file.display());
    let v = serde_json::from_str(lines[0]).expect("output line is JSON");
    (out.status.code(), v)
}

/// Round every float to 4 decimals (the CLI prints f32 values widened to f64, e.g.
/// 136.6300048828125) so the expected files read well; far inside every tolerance.
fn tidy(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            json!((x * 10_000.0).round() / 10_000.0)
        }
        Value::Array(a) => Value::Array(a.iter().map(tidy).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), tidy(v))).collect()),
        other => other.clone(),
    }
}

/// The output without what depends on where and how fast it ran.
fn comparable(output: &Value) -> Value {
    let mut v = output.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("file");
        o.remove("timings");
    }
    tidy(&v)
}

/// Tolerance for a numeric field, from its path (`None` = exact).
fn tolerance(path: &[String]) -> Option<f64> {
    let key = path.last().map(String::as_str).unwrap_or("");
    let under = |k: &str| path.iter().any(|p| p == k);
    if under("quality") {
        return Some(if key == "illumination" { 2.0 } else { 0.05 });
    }
    if under("landmark") {
        return Some(3.0);
    }
    if under("angle") {
        return Some(3.0);
    }
    if under("location") {
        return Some(if key == "rotation" { 3.0 } else { 2.0 });
    }
    match key {
        "face_probability" | "mesh_score" => Some(0.02),
        // Attributes: model probabilities move with sub-pixel landmark changes; labels stay exact.
        "probability" => Some(0.05),
        "age" | "beauty" => Some(2.0),
        "left_eye" | "right_eye" if under("eye_status") => Some(0.05),
        _ => None,
    }
}

/// Compare `actual` against `expected`, collecting every difference.
fn compare(path: &mut Vec<String>, expected: &Value, actual: &Value, diffs: &mut Vec<String>) {
    let here = |path: &Vec<String>| path.join(".");
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                path.push(k.clone());
                match a.get(k) {
                    Some(av) => compare(path, ev, av, diffs),
                    None => diffs.push(format!("{}: missing (expected {ev})", here(path))),
                }
                path.pop();
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                diffs.push(format!(
                    "{}.{k}: new field {} (update the golden file if intended)",
                    here(path),
                    a[k]
                ));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                diffs.push(format!(
                    "{}: {} items, expected {}",
                    here(path),
                    a.len(),
                    e.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                path.push(i.to_string());
                compare(path, ev, av, diffs);
                path.pop();
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let ok = match tolerance(path) {
                Some(tol) => (e - a).abs() <= tol,
                None => e == a,
            };
            if !ok {
                diffs.push(format!(
                    "{}: {a}, expected {e} (tolerance {:?})",
                    here(path),
                    tolerance(path)
                ));
            }
        }
        (e, a) => {
            if e != a {
                diffs.push(format!("{}: {a}, expected {e}", here(path)));
            }
        }
    }
}

fn faces(output: &Value) -> &[Value] {
    output["result"]["face_list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `[x, y, w, h]` of a face's `location`.
fn face_box(face: &Value) -> [f64; 4] {
    let l = &face["location"];
    ["left", "top", "width", "height"].map(|k| l[k].as_f64().unwrap_or(f64::NAN))
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// The WIDER ground-truth boxes (`invalid` ones left out) of `image`, from the manifest.
fn ground_truth(dir: &Path, image: &str) -> Option<Vec<[f64; 4]>> {
    let manifest = std::fs::read_to_string(dir.join("detection/manifest.jsonl")).ok()?;
    manifest.lines().find_map(|l| {
        let r: Value = serde_json::from_str(l).ok()?;
        if r["file"].as_str()? != image {
            return None;
        }
        let invalid = r["invalid"].as_array().cloned().unwrap_or_default();
        let boxes = r["boxes"].as_array()?;
        Some(
            boxes
                .iter()
                .enumerate()
                .filter(|(i, _)| invalid.get(*i).and_then(Value::as_bool) != Some(true))
                .map(|(_, b)| {
                    let b = b.as_array().expect("box is an array");
                    [0, 1, 2, 3].map(|k| b[k].as_f64().expect("numeric box"))
                })
                .collect(),
        )
    })
}

/// Plausibility against the dataset's own labels, independent of the expected files.
fn check_plausible(dir: &Path, case: &Case, output: &Value) {
    let faces = faces(output);
    check_faces(case.name, faces);
    if case.image.starts_with("detection/") {
        let gt = ground_truth(dir, case.image).expect("the image is in the manifest");
        // Every returned face is a labelled face.
        for (i, f) in faces.iter().enumerate() {
            let b = face_box(f);
            let best = gt.iter().map(|g| iou(b, *g)).fold(0.0, f64::max);
            assert!(
                best > 0.5,
                "{}: face {i} {b:?} matches no ground-truth box (best IoU {best:.2})",
                case.name
            );
        }
        // When all labelled faces fit in face_num, each of them is found, by a distinct face.
        if gt.len() <= case.face_num {
            assert_eq!(faces.len(), gt.len(), "{}: face count", case.name);
            let mut used = vec![false; faces.len()];
            for g in &gt {
                let (j, best) = faces
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !used[*j])
                    .map(|(j, f)| (j, iou(face_box(f), *g)))
                    .fold(
                        (usize::MAX, 0.0),
                        |acc, x| if x.1 > acc.1 { x } else { acc },
                    );
                assert!(
                    best > 0.5,
                    "{}: ground-truth box {g:?} not found (best IoU {best:.2})",
                    case.name
                );
                used[j] = true;
            }
        }
    } else {
        // The crops hold exactly one face, and it covers most of the crop.
        assert_eq!(faces.len(), 1, "{}: one face in a face crop", case.name);
        let (w, h) = (
            output["image"]["width"].as_f64().unwrap_or(0.0),
            output["image"]["height"].as_f64().unwrap_or(0.0),
        );
        let b = face_box(&faces[0]);
        assert!(
            b[2] * b[3] > 0.3 * w * h,
            "{}: face {b:?} is small for a {w}x{h} crop",
            case.name
        );
    }
}

/// Plausibility of a committed image's output, from how the image was made.
fn check_committed(c: &Committed, status: Option<i32>, output: &Value) {
    let name = c.case.name;
    if c.faces == 0 {
        // No face: the contract's error, and exit status 1 (every image failed).
        assert_eq!(status, Some(1), "{name}: exit status; output {output}");
        assert_ne!(output["error_code"], 0, "{name}: {output}");
        assert!(faces(output).is_empty(), "{name}: {output}");
        return;
    }
    assert_eq!(status, Some(0), "{name}: exit status; output {output}");
    assert_eq!(output["error_code"], 0, "{name}: {output}");
    let found = faces(output);
    assert_eq!(found.len(), c.faces, "{name}: face count; output {output}");
    check_faces(name, found);
    // One face per panel: the largest face in the largest (left) panel, and so on.
    for (i, (face, (x0, x1))) in found.iter().zip(c.panels).enumerate() {
        let b = face_box(face);
        assert!(
            b[0] >= *x0 && b[0] + b[2] <= *x1,
            "{name}: face {i} {b:?} is not inside its panel {x0}..{x1}"
        );
    }
    if c.panels.is_empty() {
        // One face, and it is a face-sized part of the image, not the whole frame or a speck.
        let (w, h) = (
            output["image"]["width"].as_f64().unwrap_or(0.0),
            output["image"]["height"].as_f64().unwrap_or(0.0),
        );
        let b = face_box(&found[0]);
        let share = b[2] * b[3] / (w * h);
        assert!(
            (0.01..=1.0).contains(&share),
            "{name}: face {b:?} covers {share:.3} of a {w}x{h} image"
        );
    }
}

/// Token shape, score range and order by area, for any output's faces.
fn check_faces(name: &str, faces: &[Value]) {
    for f in faces {
        let token = f["token_id"].as_str().unwrap_or("");
        assert!(
            token.len() == 32 && token.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{name}: bad token_id {token:?}"
        );
        let p = f["face_probability"].as_f64().unwrap_or(0.0);
        assert!((0.5..=1.0).contains(&p), "{name}: face_probability {p}");
    }
    let areas: Vec<f64> = faces
        .iter()
        .map(|f| face_box(f)[2] * face_box(f)[3])
        .collect();
    assert!(
        areas.windows(2).all(|w| w[0] >= w[1]),
        "{name}: faces are not largest first: {areas:?}"
    );
}

/// Compare one case's output with its expected file (or rewrite the file when blessing); a
/// description of the differences, if any.
fn compare_with_golden(case: &Case, output: &Value, update: bool) -> Option<String> {
    let actual = comparable(output);
    let golden = golden_path(case.name);
    if update {
        let doc = json!({
            "image": case.image,
            "args": ["detect", "--face-num", case.face_num.to_string()],
            "output": actual,
        });
        std::fs::create_dir_all(golden.parent().expect("test-data folder"))
            .expect("creating test-data");
        let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
        std::fs::write(&golden, text).expect("writing the golden file");
        println!("updated golden file {}", golden.display());
        return None;
    }
    let text = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with FACELENS_UPDATE_GOLDEN=1",
            golden.display()
        )
    });
    let doc: Value = serde_json::from_str(&text).expect("golden file is JSON");
    assert_eq!(
        doc["image"], case.image,
        "{}: golden file is for another image",
        case.name
    );
    let expected = &doc["output"];
    let mut diffs = Vec::new();
    // Face count first: a different count makes every later index meaningless.
    if faces(expected).len() != faces(&actual).len() {
        diffs.push(format!(
            "face count {}, expected {}",
            faces(&actual).len(),
            faces(expected).len()
        ));
    } else {
        compare(&mut Vec::new(), expected, &actual, &mut diffs);
    }
    if diffs.is_empty() {
        println!("{}: {} faces match", case.name, faces(&actual).len());
        None
    } else {
        Some(format!(
            "{} ({}):\n  {}",
            case.name,
            case.image,
            diffs.join("\n  ")
        ))
    }
}

fn report(failures: &[String], update: bool) {
    if update {
        println!("golden files rewritten; review the diff before committing");
    }
    assert!(
        failures.is_empty(),
        "outputs differ from the golden files (rerun with FACELENS_UPDATE_GOLDEN=1 if the change \
         is intended, docs/testing.md):\n{}",
        failures.join("\n")
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn golden_outputs_on_committed_images() {
    let update = updating();
    let mut failures = Vec::new();
    for c in COMMITTED {
        let file = repo_root().join(c.case.image);
        assert!(
            file.is_file(),
            "{} is missing (test-data/README.md)",
            file.display()
        );
        let (status, output) = run_detect(&file, c.case.face_num);
        check_committed(c, status, &output);
        failures.extend(compare_with_golden(&c.case, &output, update));
    }
    report(&failures, update);
}

#[test]
fn golden_outputs_on_dev_images() {
    let Some(dir) = evaldata_dir() else {
        facelens_testkit::skip(
            "no development evaluation data (../shared/evaldata or FACELENS_EVALDATA)",
        );
        return;
    };
    let update = updating();
    let mut failures = Vec::new();
    for case in DEV_CASES {
        let file = dir.join(case.image);
        let (status, output) = run_detect(&file, case.face_num);
        assert_eq!(
            status,
            Some(0),
            "{}: exit status; output {output}",
            case.name
        );
        assert_eq!(output["error_code"], 0, "{}: {output}", case.name);
        check_plausible(&dir, case, &output);
        failures.extend(compare_with_golden(case, &output, update));
    }
    report(&failures, update);
}

#[test]
fn tolerances_are_applied_by_field() {
    // The comparison itself: within tolerance passes, beyond it fails, unknown numbers are exact.
    let expected = json!({"error_code": 0, "result": {"face_num": 1, "face_list": [{
        "token_id": "ab", "face_probability": 0.99,
        "location": {"left": 10.0, "top": 20.0, "width": 30.0, "height": 40.0, "rotation": 5},
        "angle": {"yaw": 1.0, "pitch": 2.0, "roll": 3.0},
        "landmark": [{"x": 1.0, "y": 2.0}],
        "quality": {"blur": 0.5, "illumination": 100.0, "occlusion": {"nose": 0.1}},
    }]}});
    let diffs_for = |edit: &dyn Fn(&mut Map<String, Value>)| {
        let mut a = expected.clone();
        let face = a["result"]["face_list"][0]
            .as_object_mut()
            .expect("face object");
        edit(face);
        let mut d = Vec::new();
        compare(&mut Vec::new(), &expected, &a, &mut d);
        d
    };
    assert!(diffs_for(&|_| {}).is_empty());
    assert!(diffs_for(&|f| f["location"]["left"] = json!(11.9)).is_empty());
    assert_eq!(diffs_for(&|f| f["location"]["left"] = json!(12.1)).len(), 1);
    assert!(diffs_for(&|f| f["landmark"][0]["y"] = json!(4.9)).is_empty());
    assert_eq!(diffs_for(&|f| f["landmark"][0]["y"] = json!(5.1)).len(), 1);
    assert!(diffs_for(&|f| f["angle"]["yaw"] = json!(3.9)).is_empty());
    assert_eq!(diffs_for(&|f| f["angle"]["yaw"] = json!(4.1)).len(), 1);
    assert!(diffs_for(&|f| f["face_probability"] = json!(0.975)).is_empty());
    assert_eq!(diffs_for(&|f| f["face_probability"] = json!(0.96)).len(), 1);
    assert!(diffs_for(&|f| f["quality"]["illumination"] = json!(101.9)).is_empty());
    assert_eq!(diffs_for(&|f| f["quality"]["blur"] = json!(0.56)).len(), 1);
    assert_eq!(
        diffs_for(&|f| f["quality"]["occlusion"]["nose"] = json!(0.2)).len(),
        1
    );
    assert_eq!(diffs_for(&|f| f["token_id"] = json!("ac")).len(), 1);
    assert_eq!(
        diffs_for(&|f| {
            f.insert("age".into(), json!(30));
        })
        .len(),
        1
    );
}
