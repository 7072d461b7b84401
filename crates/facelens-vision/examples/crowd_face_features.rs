//! Writes the attribute features of every face the pipeline finds in the WIDER FACE dev images
//! that matches a labelled face (IoU >= 0.5), one JSON line per face in the shape of
//! `facelens eval attributes --features-out` (labels `face_type: human`). These are people in
//! crowds, far from the tight crops of the attribute manifest: the face-type head is fitted and
//! checked on them too (`scripts/fit_cartoon_head.py --extra`). A face whose labelled box has
//! an Amazon WIDER demographics annotation also gets its `perceived_gender` / `perceived_age`
//! (never seen by the gender models or heads: `scripts/fit_attribute_heads.py --wider`).
//!
//! ```sh
//! cargo run --release -p facelens-vision --example crowd_face_features -- \
//!     ../shared/evaldata /tmp/crowd_features.jsonl [rten|onnxruntime]
//! ```

use facelens_core::types::Timings;
use facelens_eval::wider::{load_wider_manifest, wider_iou};
use facelens_imaging::{DecodeLimits, decode};
use facelens_infer::BackendKind;
use facelens_vision::heuristics::cartoon;
use facelens_vision::{Models, Options, Pipeline};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(args.next().unwrap_or("../shared/evaldata".into()));
    let out_path = PathBuf::from(args.next().unwrap_or("/tmp/crowd_features.jsonl".into()));
    let kind = match args.next().unwrap_or("rten".into()).parse::<BackendKind>() {
        Ok(k) => k,
        Err(e) => return eprintln!("{e}"),
    };
    let backend = match facelens_infer::create_backend(kind, 1) {
        Ok(b) => b,
        Err(e) => return eprintln!("backend: {e}"),
    };
    let p = match Models::load_embedded(backend.as_ref()).and_then(Pipeline::new) {
        Ok(p) => p,
        Err(e) => return eprintln!("models: {e}"),
    };
    let text = match std::fs::read_to_string(data.join("detection/manifest.jsonl")) {
        Ok(t) => t,
        Err(e) => return eprintln!("manifest: {e}"),
    };
    let gts = match load_wider_manifest(&text) {
        Ok(g) => g,
        Err(e) => return eprintln!("manifest: {e}"),
    };
    // Per image, the demographics entry of each labelled box (`null` where there is none).
    let demographics: HashMap<String, Vec<serde_json::Value>> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let file = v.get("file")?.as_str()?.to_string();
            let d = v.get("demographics")?.as_array()?.clone();
            Some((file, d))
        })
        .collect();
    let mut out = match std::fs::File::create(&out_path) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => return eprintln!("{}: {e}", out_path.display()),
    };
    let opts = Options {
        max_faces: 40,
        include_mesh: true,
        ..Options::default()
    };
    let (mut faces_n, mut matched_n, mut cartoon_n) = (0usize, 0usize, 0usize);
    for gt in &gts {
        let Ok(bytes) = std::fs::read(data.join(&gt.file)) else {
            continue;
        };
        let Ok(dec) = decode(&bytes, &DecodeLimits::default()) else {
            continue;
        };
        let mut t = Timings::default();
        let Ok(faces) = p.analyze_image_with_features(&dec.image, &opts, &mut t) else {
            continue;
        };
        for (face, feats) in faces {
            faces_n += 1;
            let b = &face.bbox;
            let pred = [
                b.x1 as f64,
                b.y1 as f64,
                b.width() as f64,
                b.height() as f64,
            ];
            let best = gt
                .boxes
                .iter()
                .zip(&gt.invalid)
                .enumerate()
                .filter(|(_, (_, inv))| !**inv)
                .map(|(i, (g, _))| (i, wider_iou(&pred, g)))
                .filter(|(_, iou)| *iou >= 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let Some((best, _)) = best else {
                continue;
            };
            let demo = demographics
                .get(&gt.file)
                .and_then(|d| d.get(best))
                .filter(|d| d.is_object());
            let perceived = |key: &str| {
                demo.and_then(|d| d.get(key))
                    .and_then(|v| v.as_str())
                    .map(str::to_ascii_lowercase)
            };
            matched_n += 1;
            let Some(mesh) = face.mesh.as_deref() else {
                continue;
            };
            let called = face
                .attributes
                .face_type
                .as_ref()
                .is_some_and(|l| l.kind == "cartoon");
            cartoon_n += usize::from(called);
            let line = json!({
                "file": gt.file,
                "labels": {"face_type": "human", "source": "WIDER FACE val",
                    "perceived_gender": perceived("gender"), "perceived_age": perceived("age")},
                "found": true,
                "size": (b.width() * b.height()).sqrt(),
                "attributes": face.attributes,
                "features": feats,
                "cartoon_features": cartoon::cartoon_features(
                    &dec.image, b, mesh, face.mesh_score.unwrap_or(0.0), face.score),
            });
            if writeln!(out, "{line}").is_err() {
                return eprintln!("writing {}", out_path.display());
            }
        }
    }
    println!(
        "faces found {faces_n}, matching a labelled face {matched_n}, of which called cartoon {cartoon_n}"
    );
}
