//! The per-face stage gives the same faces whether its jobs run one after another or side by
//! side on two threads (`Pipeline::with_stage_threads`): the jobs share nothing and their
//! outputs are combined in a fixed order. Runs on the default backend (rten) with the embedded
//! models, on dev photos when the evaluation data is present and on a drawn face and a plain
//! image always.
//!
//! The two runs differ in one way: side by side each model run is single-threaded, one after
//! another it has the configured two threads; a backend may sum in a different order then, so
//! scores and probabilities are compared within 1e-4, labels exactly.

use facelens_core::types::Face;
use facelens_imaging::{DecodeLimits, Rgb, decode};
use facelens_infer::{BackendKind, create_backend};
use facelens_vision::{Models, Options, Pipeline};
use std::path::PathBuf;

mod common;
use common::synthetic_face;

fn evaldata_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FACELENS_EVALDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/evaldata")
        });
    dir.is_dir().then_some(dir)
}

fn images() -> Vec<(String, Rgb)> {
    let mut out = Vec::new();
    if let Some(dir) = evaldata_dir() {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir.join("detection/wider_face_val/images"))
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
                .map(|e| e.path())
                .collect();
        files.sort();
        for f in files.iter().step_by(40).take(6) {
            let bytes = std::fs::read(f).expect("read a dev photo");
            let img = decode(&bytes, &DecodeLimits::default())
                .expect("decode")
                .image;
            out.push((f.display().to_string(), img));
        }
    }
    // The committed photos (every clone has them): one face, and three faces side by side.
    for name in ["astronaut.jpg", "astronaut_trio.jpg"] {
        let bytes = facelens_testkit::test_image_bytes(name);
        let img = decode(&bytes, &DecodeLimits::default())
            .expect("decode")
            .image;
        out.push((name.to_string(), img));
    }
    // A drawing of a face (always present, so the jobs run side by side even without the dev
    // data) and a plain image (no face, so the stage has nothing to run).
    out.push(("synthetic face".into(), synthetic_face(320, 256)));
    out.push((
        "plain".into(),
        Rgb::from_pixel(320, 240, facelens_imaging::image::Rgb([180, 180, 180])),
    ));
    out
}

fn close(what: &str, a: f32, b: f32) {
    assert!(
        (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0),
        "{what}: {a} vs {b}"
    );
}

fn same_face(at: &str, a: &Face, b: &Face) {
    close(&format!("{at} score"), a.score, b.score);
    for (x, y) in [
        (a.bbox.x1, b.bbox.x1),
        (a.bbox.y1, b.bbox.y1),
        (a.bbox.x2, b.bbox.x2),
        (a.bbox.y2, b.bbox.y2),
    ] {
        close(&format!("{at} box"), x, y);
    }
    let (p, q) = (&a.attributes, &b.attributes);
    match (p.age, q.age) {
        (Some(x), Some(y)) => close(&format!("{at} age"), x, y),
        (x, y) => assert_eq!(x.is_some(), y.is_some(), "{at} age present"),
    }
    for (name, x, y) in [
        ("gender", &p.gender, &q.gender),
        ("race", &p.race, &q.race),
        ("emotion", &p.emotion, &q.emotion),
        ("expression", &p.expression, &q.expression),
        ("glasses", &p.glasses, &q.glasses),
        ("face_type", &p.face_type, &q.face_type),
        ("face_shape", &p.face_shape, &q.face_shape),
    ] {
        match (x, y) {
            (Some(x), Some(y)) => {
                assert_eq!(x.kind, y.kind, "{at} {name}");
                close(&format!("{at} {name}"), x.probability, y.probability);
            }
            _ => assert_eq!(x.is_some(), y.is_some(), "{at} {name} present"),
        }
    }
    match (p.beauty, q.beauty) {
        (Some(x), Some(y)) => close(&format!("{at} beauty"), x, y),
        (x, y) => assert_eq!(x.is_some(), y.is_some(), "{at} beauty present"),
    }
}

#[test]
fn side_by_side_jobs_give_the_same_faces_as_one_after_another() {
    let backend = create_backend(BackendKind::Rten, 2).expect("rten backend");
    let models = Models::load_embedded(backend.as_ref()).expect("embedded models");
    let serial = Pipeline::new(models.clone())
        .expect("pipeline")
        .with_stage_threads(1);
    let parallel = Pipeline::new(models)
        .expect("pipeline")
        .with_stage_threads(2);
    let opts = Options {
        max_faces: 3,
        ..Options::default()
    };
    let mut faces_seen = 0;
    for (name, img) in images() {
        let a = serial
            .analyze_image(&img, &opts, &mut Default::default())
            .expect("serial");
        let b = parallel
            .analyze_image(&img, &opts, &mut Default::default())
            .expect("parallel");
        assert_eq!(a.len(), b.len(), "{name}: faces");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            same_face(&format!("{name} face {i}"), x, y);
            assert!(x.attributes.age.is_some() && x.attributes.gender.is_some());
        }
        faces_seen += a.len();
    }
    let synthetic = serial
        .analyze_image(&synthetic_face(320, 256), &opts, &mut Default::default())
        .expect("synthetic");
    assert_eq!(synthetic.len(), 1, "the drawing is found as one face");
    // The committed photos hold 1 + 3 faces, the drawing 1.
    assert!(
        faces_seen >= 5,
        "only {faces_seen} faces on the committed photos and the drawing"
    );
    if evaldata_dir().is_some() {
        assert!(
            faces_seen >= 7,
            "only {faces_seen} faces on the dev photos and the drawing"
        );
    }
}

/// face_type alone runs only the models its head reads (not face-api, see
/// `attributes::plan::models_for`) and gives the face type it gives beside every other attribute.
#[test]
fn face_type_alone_gives_the_face_type_of_a_full_request() {
    let backend = create_backend(BackendKind::Rten, 2).expect("rten backend");
    let models = Models::load_embedded(backend.as_ref()).expect("embedded models");
    let p = Pipeline::new(models)
        .expect("pipeline")
        .with_stage_threads(1);
    let all = Options {
        max_faces: 2,
        ..Options::default()
    };
    let only = Options {
        attributes: facelens_vision::attributes::AttributeOptions {
            face_type: true,
            ..facelens_vision::attributes::AttributeOptions::NONE
        },
        ..all.clone()
    };
    let mut compared = 0;
    for (name, img) in images().into_iter().take(3) {
        let a = p
            .analyze_image(&img, &all, &mut Default::default())
            .expect("all attributes");
        let b = p
            .analyze_image(&img, &only, &mut Default::default())
            .expect("face_type only");
        assert_eq!(a.len(), b.len(), "{name}: faces");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let (Some(x), Some(y)) = (&x.attributes.face_type, &y.attributes.face_type) else {
                panic!("{name} face {i}: face_type missing");
            };
            assert_eq!(x.kind, y.kind, "{name} face {i}");
            close(
                &format!("{name} face {i} face_type"),
                x.probability,
                y.probability,
            );
            assert!(b[i].attributes.age.is_none() && b[i].attributes.gender.is_none());
            compared += 1;
        }
    }
    assert!(compared >= 1, "no face compared");
}
