//! The attribute models on real development faces: a coarse sanity floor, not the evaluation
//! (`facelens eval attributes` is; docs/accuracy.md has its figures).
//!
//! 40 UTKFace crops spread over the manifest (every 37th) and 14 FER2013 "happy"/"surprise"
//! crops go through the full pipeline with the embedded models. Floors are far below the measured
//! dev figures (gender 0.92, age MAE 6, emotion 0.62) so that the test catches broken plumbing
//! (wrong channel order, wrong crop, labels swapped) rather than small accuracy changes.
//! Without the evaluation data the test prints "skipped: ..." and passes.

use facelens_core::types::Timings;
use facelens_eval::load_attribute_manifest;
use facelens_imaging::{DecodeLimits, decode};
use facelens_infer::{BackendKind, create_backend};
use facelens_vision::{Models, Options, Pipeline};

#[test]
fn attributes_are_plausible_on_dev_faces() {
    let Some(dir) =
        facelens_eval::evaldata_dir().filter(|d| d.join("attributes/manifest.jsonl").is_file())
    else {
        facelens_testkit::skip(
            "no development evaluation data (../shared/evaldata or FACELENS_EVALDATA)",
        );
        return;
    };
    let text =
        std::fs::read_to_string(dir.join("attributes/manifest.jsonl")).expect("read manifest");
    let records = load_attribute_manifest(&text, None).expect("parse manifest");
    let utk: Vec<_> = records
        .iter()
        .filter(|r| r.file.starts_with("attributes/utkface/"))
        .step_by(37)
        .take(40)
        .collect();
    let fer: Vec<_> = records
        .iter()
        .filter(|r| matches!(r.emotion.as_deref(), Some("happy" | "surprise")))
        .step_by(15)
        .take(14)
        .collect();
    let backend = create_backend(BackendKind::Rten, 2).expect("backend");
    let pipeline =
        Pipeline::new(Models::load_embedded(backend.as_ref()).expect("models")).expect("pipeline");
    let opts = Options {
        max_faces: 1,
        ..Options::default()
    };
    let analyse = |file: &str| {
        let bytes = std::fs::read(dir.join(file)).expect("read image");
        let img = decode(&bytes, &DecodeLimits::default()).expect("decode");
        let mut t = Timings::default();
        let faces = pipeline
            .analyze_image(&img.image, &opts, &mut t)
            .expect("analyse");
        faces.into_iter().next().map(|f| f.attributes)
    };

    let (mut gender_ok, mut abs_err, mut n) = (0, 0.0f32, 0);
    for r in &utk {
        let a = analyse(&r.file).expect("UTKFace crops all have a face");
        let age = a.age.expect("age computed");
        assert!((0.0..=100.0).contains(&age), "{}: age {age}", r.file);
        abs_err += (age - r.age.expect("labelled") as f32).abs();
        let g = a.gender.expect("gender computed");
        assert!((0.5..=1.0).contains(&g.probability));
        gender_ok += usize::from(Some(g.kind.as_str()) == r.gender.as_deref());
        let race = a.race.expect("race computed");
        assert!(["yellow", "white", "black", "arabs"].contains(&race.kind.as_str()));
        let e = a.expression.expect("expression computed");
        assert!(["none", "smile", "laugh"].contains(&e.kind.as_str()));
        n += 1;
    }
    let mae = abs_err / n as f32;
    println!("UTKFace sample: gender {gender_ok}/{n}, age MAE {mae:.2}");
    assert!(gender_ok * 10 >= n * 8, "gender {gender_ok}/{n}");
    assert!(mae < 9.0, "age MAE {mae}");

    let mut emo_ok = 0;
    for r in &fer {
        if let Some(a) = analyse(&r.file) {
            emo_ok += usize::from(a.emotion.map(|e| e.kind) == r.emotion);
        }
    }
    println!("FER2013 happy/surprise sample: {emo_ok}/{}", fer.len());
    assert!(emo_ok * 2 >= fer.len(), "emotion {emo_ok}/{}", fer.len());
}
