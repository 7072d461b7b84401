//! The whole pipeline on arbitrary bytes: `facelens_imaging::decode` with the default limits,
//! then `Pipeline::analyze_image` with the default options (fast detector, padded retry, every
//! attribute) on the embedded models with the rten backend (one thread), loaded once.
//!
//! Never panics, never fails inside the pipeline on a decoded image; every face has a finite
//! box inside the image and every number in its documented range (facelens-core's types).
#![no_main]

use facelens_core::types::{Face, Labelled, Timings};
use facelens_imaging::{DecodeLimits, decode};
use facelens_vision::{Models, Options, Pipeline};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let backend = facelens_infer::create_backend(facelens_infer::BackendKind::Rten, 1)
            .expect("rten backend");
        let models = Models::load_embedded(backend.as_ref()).expect("embedded models");
        Pipeline::new(models).expect("pipeline")
    })
}

const EPS: f32 = 1e-3;

fn unit(what: &str, v: f32) {
    assert!(v.is_finite() && (-EPS..=1.0 + EPS).contains(&v), "{what} = {v}, not in 0..1");
}

fn within(what: &str, v: f32, lo: f32, hi: f32) {
    assert!(v.is_finite() && (lo - EPS..=hi + EPS).contains(&v), "{what} = {v}, not in {lo}..{hi}");
}

fn label(what: &str, l: &Option<Labelled>) {
    if let Some(l) = l {
        assert!(!l.kind.is_empty(), "{what}: empty label");
        unit(what, l.probability);
    }
}

fn check_face(f: &Face, w: f32, h: f32) {
    let b = &f.bbox;
    assert!(
        [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite()),
        "non-finite box {b:?}"
    );
    assert!(
        -EPS <= b.x1 && b.x1 <= b.x2 && b.x2 <= w + EPS && -EPS <= b.y1 && b.y1 <= b.y2 && b.y2 <= h + EPS,
        "box {b:?} not inside the {w}x{h} image"
    );
    unit("score", f.score);
    within("rotation", f.rotation, -180.0, 180.0);
    for p in &f.landmarks {
        assert!(p.x.is_finite() && p.y.is_finite(), "non-finite landmark {p:?}");
    }
    if let Some(s) = f.mesh_score {
        unit("mesh_score", s);
    }
    within("yaw", f.pose.yaw, -90.0, 90.0);
    // Pitch carries a fixed calibration offset; ±180 is the hard bound.
    within("pitch", f.pose.pitch, -180.0, 180.0);
    within("roll", f.pose.roll, -180.0, 180.0);
    let q = &f.quality;
    unit("blur", q.blur);
    within("illumination", q.illumination, 0.0, 255.0);
    unit("completeness", q.completeness);
    let o = &q.occlusion;
    for (n, v) in [
        ("occlusion.left_eye", o.left_eye),
        ("occlusion.right_eye", o.right_eye),
        ("occlusion.nose", o.nose),
        ("occlusion.mouth", o.mouth),
        ("occlusion.left_cheek", o.left_cheek),
        ("occlusion.right_cheek", o.right_cheek),
        ("occlusion.chin_contour", o.chin_contour),
    ] {
        unit(n, v);
    }
    let a = &f.attributes;
    if let Some(age) = a.age {
        within("age", age, 0.0, 120.0);
    }
    if let Some(beauty) = a.beauty {
        within("beauty", beauty, 0.0, 100.0);
    }
    if let Some(e) = a.eye_status {
        unit("eye_status.left_eye", e.left_eye);
        unit("eye_status.right_eye", e.right_eye);
    }
    label("expression", &a.expression);
    label("face_shape", &a.face_shape);
    label("gender", &a.gender);
    label("glasses", &a.glasses);
    label("emotion", &a.emotion);
    label("race", &a.race);
    label("face_type", &a.face_type);
}

fuzz_target!(|data: &[u8]| {
    let p = pipeline();
    let Ok(decoded) = decode(data, &DecodeLimits::default()) else {
        return;
    };
    let img = &decoded.image;
    let opts = Options::default();
    let mut timings = Timings::default();
    let faces = p
        .analyze_image(img, &opts, &mut timings)
        .unwrap_or_else(|e| panic!("the pipeline failed on a decoded {}x{} image: {e}", img.width(), img.height()));
    assert!(faces.len() <= opts.max_faces, "{} faces > max_faces", faces.len());
    for f in &faces {
        check_face(f, img.width() as f32, img.height() as f32);
    }
});
