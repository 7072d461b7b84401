//! rten and onnxruntime must agree on every shipped model, and the onnxruntime backend must give
//! the same answers when one model is run from several threads at once.
//!
//! Needs `--features ort` and `ORT_DYLIB_PATH` (see scripts/fetch-onnxruntime.sh); without the
//! library each test prints "skipped: ..." and passes.
//!
//! Tolerance: an output value passes when `|rten - ort| <= 1e-4 * max(1, |rten|, |ort|)`, i.e.
//! 1e-4 absolute for values up to 1 in magnitude and 1e-4 relative above that (box regressions
//! and heat-map logits reach the tens; mesh coordinates reach ~200).
#![cfg(feature = "ort")]

use facelens_infer::{Backend, Model, ModelBytes, OrtBackend, RtenBackend, Tensor};
use std::sync::{Arc, Barrier};

const TOLERANCE: f32 = 1e-4;
const THREADS: usize = 2;

fn model_bytes(file: &str) -> ModelBytes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/").to_string() + file;
    ModelBytes::Owned(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}")))
}

/// The onnxruntime backend, or `None` (after printing why) when the library is unavailable.
fn ort_backend(test: &str) -> Option<OrtBackend> {
    if std::env::var_os("ORT_DYLIB_PATH").is_none_or(|p| p.is_empty()) {
        facelens_testkit::skip_as(
            test,
            "ORT_DYLIB_PATH is not set (see scripts/fetch-onnxruntime.sh)",
        );
        return None;
    }
    match OrtBackend::new(THREADS) {
        Ok(b) => Some(b),
        Err(e) => {
            facelens_testkit::skip_as(test, &format!("onnxruntime cannot be loaded: {e}"));
            None
        }
    }
}

/// Deterministic pseudo-random values in `[lo, hi)` (splitmix64).
fn pseudo_random(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let mut state = seed;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * unit
        })
        .collect();
    Tensor::new(shape.to_vec(), data).expect("shape matches data")
}

/// Run `file` in both backends on the same input and compare every output.
fn check_parity(test: &str, file: &str, shape: &[usize], lo: f32, hi: f32) {
    let Some(ort) = ort_backend(test) else {
        return;
    };
    let rten = RtenBackend::new(THREADS);
    let rten_model = rten
        .load(file, model_bytes(file))
        .expect("rten loads the model");
    let ort_model = ort
        .load(file, model_bytes(file))
        .expect("onnxruntime loads the model");
    assert_eq!(
        rten_model.output_names(),
        ort_model.output_names(),
        "{file}: output names/order differ"
    );

    let input = pseudo_random(shape, lo, hi, 0x5EED);
    let expected = rten_model.run(&input).expect("rten runs");
    let actual = ort_model.run(&input).expect("onnxruntime runs");
    assert_eq!(expected.len(), actual.len(), "{file}: output count differs");

    let mut failures = Vec::new();
    for ((name, e), a) in rten_model.output_names().iter().zip(&expected).zip(&actual) {
        assert_eq!(e.shape, a.shape, "{file}: output {name}: shapes differ");
        let (mut max_abs, mut max_rel, mut max_mag, mut bad) = (0f32, 0f32, 0f32, 0usize);
        for (&x, &y) in e.data.iter().zip(&a.data) {
            assert!(
                x.is_finite() && y.is_finite(),
                "{file}: output {name}: non-finite value"
            );
            let diff = (x - y).abs();
            let scale = x.abs().max(y.abs()).max(1.0);
            max_abs = max_abs.max(diff);
            max_rel = max_rel.max(diff / scale);
            max_mag = max_mag.max(x.abs());
            if diff > TOLERANCE * scale {
                bad += 1;
            }
        }
        println!(
            "{file}: {name} {:?}: max abs diff {max_abs:.3e}, max scaled diff {max_rel:.3e}, max |value| {max_mag:.3}",
            e.shape
        );
        if bad > 0 {
            failures.push(format!(
                "{name}: {bad} of {} values out of tolerance",
                e.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{file}: {failures:?}");
}

#[test]
fn parity_retinaface() {
    // Input: BGR pixels minus the per-channel mean, so roughly [-128, 128).
    check_parity(
        "parity_retinaface",
        "retinaface_mnet025_biubug6.onnx",
        &[1, 3, 480, 640],
        -128.0,
        128.0,
    );
}

#[test]
fn parity_face_mesh() {
    // Input: NHWC pixels scaled to [0, 1).
    check_parity(
        "parity_face_mesh",
        "mp_face_landmark.onnx",
        &[1, 192, 192, 3],
        0.0,
        1.0,
    );
}

#[test]
fn concurrent_runs_are_identical() {
    const CALLERS: usize = 4;
    const RUNS_EACH: usize = 3;
    let Some(ort) = ort_backend("concurrent_runs_are_identical") else {
        return;
    };
    let file = "retinaface_mnet025_biubug6.onnx";
    let model: Arc<dyn Model> = ort
        .load(file, model_bytes(file))
        .expect("onnxruntime loads the model");
    let inputs: Vec<Tensor> = (0..CALLERS as u64)
        .map(|seed| pseudo_random(&[1, 3, 480, 640], -128.0, 128.0, seed))
        .collect();
    // Reference: each input run alone, one after another.
    let expected: Vec<Vec<Tensor>> = inputs.iter().map(|i| model.run(i).expect("runs")).collect();
    assert_ne!(
        expected[0], expected[1],
        "different inputs should give different outputs"
    );

    let start = Barrier::new(CALLERS);
    std::thread::scope(|s| {
        for (input, want) in inputs.iter().zip(&expected) {
            let (model, start) = (&model, &start);
            s.spawn(move || {
                start.wait();
                for _ in 0..RUNS_EACH {
                    let got = model.run(input).expect("concurrent run");
                    assert!(
                        got == *want,
                        "a concurrent run differs from the sequential run"
                    );
                }
            });
        }
    });
}
