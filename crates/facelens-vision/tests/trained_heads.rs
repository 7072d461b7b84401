//! The trained heads as the service runs them (head files, blocks rebuilt in Rust, grid pooling;
//! the gender head's derived features) equal the ONNX graphs the training pipeline exported and
//! checked against scikit-learn.
//!
//! `training/heads_json.py` ran each `models/*_head.onnx` with onnxruntime on synthetic inputs
//! and wrote the outputs to `tests/data/trained_heads.expected.json`; this test regenerates the
//! same inputs (the formula below), feeds them through the service's path and compares. It needs
//! no data outside the repository.

use facelens_vision::attributes::AttributeFeatures;
use facelens_vision::attributes::combine::{
    beauty_head, face_shape_head, face_shape_to_contract, gender_head, race_head,
};
use facelens_vision::attributes::trained::{INNER_MAPS, INNER_VECTORS};
use facelens_vision::heads::Kind;
use serde_json::Value;

/// `sin(0.37 i + 1.3 row + len(name)) · (1 + i mod 5) / 60`, as training/heads_json.py.
fn synthetic(name: &str, n: usize, row: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = 0.37 * i as f64 + 1.3 * row as f64 + name.len() as f64;
            (x.sin() * (1.0 + (i % 5) as f64) / 60.0) as f32
        })
        .collect()
}

/// Every raw input the heads may read, for one synthetic row.
fn features(row: usize) -> (AttributeFeatures, Vec<f32>) {
    let mut f = AttributeFeatures::default();
    for (name, n) in INNER_VECTORS {
        f.inner.insert(name.to_string(), synthetic(name, n, row));
    }
    for (name, c, h, w) in INNER_MAPS {
        f.inner
            .insert(name.to_string(), synthetic(name, c * h * w, row));
    }
    // The ONNX race head read ln p directly: p = e^(its input).
    f.gear_race = Some(
        synthetic("logp_gear_race", 5, row)
            .iter()
            .map(|v| v.exp())
            .collect(),
    );
    (f, synthetic("mesh_geom", 1404, row))
}

fn expected() -> Value {
    let text = include_str!("data/trained_heads.expected.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

fn rows(v: &Value, head: &str) -> Vec<Vec<f32>> {
    matrix(&v["heads"][head]["expected"])
}

fn matrix(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

fn blocks(v: &Value, head: &str) -> Vec<String> {
    v["heads"][head]["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b.as_str().expect("name").to_string())
        .collect()
}

#[test]
fn beauty_head_equals_its_onnx_export() {
    let v = expected();
    let h = beauty_head().expect("beauty head loads");
    assert_eq!(h.blocks().collect::<Vec<_>>(), blocks(&v, "beauty_trained"));
    for (row, want) in rows(&v, "beauty_trained").iter().enumerate() {
        let (f, geom) = features(row);
        let x = h.input_from(&f, Some(&geom)).expect("every block present");
        let got = h.head().predict(&x).expect("rating");
        assert!(
            (got - want[0]).abs() < 1e-3 * want[0].abs().max(1.0),
            "row {row}: {got} vs ONNX {}",
            want[0]
        );
    }
}

#[test]
fn face_shape_head_equals_its_onnx_export() {
    let v = expected();
    let h = face_shape_head().expect("face-shape head loads");
    assert_eq!(
        h.blocks().collect::<Vec<_>>(),
        blocks(&v, "face_shape_trained")
    );
    for (row, want) in rows(&v, "face_shape_trained").iter().enumerate() {
        let (f, geom) = features(row);
        let x = h.input_from(&f, Some(&geom)).expect("every block present");
        let p = face_shape_to_contract(&h.head().predict(&x).expect("probabilities"))
            .expect("five classes");
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "row {row}: {p:?} vs ONNX {want:?}");
        }
        assert_eq!(p[1], 0.0, "triangle is never answered");
        // Without the mesh there is no face shape.
        assert!(h.input_from(&f, None).is_none());
    }
}

#[test]
fn race_head_equals_its_onnx_export() {
    let v = expected();
    let h = race_head().expect("race head loads");
    assert_eq!(h.blocks().collect::<Vec<_>>(), blocks(&v, "race_trained"));
    for (row, want) in rows(&v, "race_trained").iter().enumerate() {
        let (f, _) = features(row);
        let x = h.input_from(&f, None).expect("every block present");
        let p = h.head().predict(&x).expect("probabilities");
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "row {row}: {p:?} vs ONNX {want:?}");
        }
        // A missing block (GEAR's pool) gives no input, never a guess.
        let mut partial = f.clone();
        partial.inner.remove("gear_pool");
        assert!(h.input_from(&partial, None).is_none());
    }
}

#[test]
fn gender_head_equals_its_onnx_export() {
    // models/heads/gender.json fed by AttributeFeatures::named (logits, the child term, the
    // product) against models/gender_head.onnx on the same raw model outputs.
    let v = expected();
    let h = gender_head().expect("gender head loads");
    let names: Vec<String> = v["heads"]["gender"]["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect();
    assert_eq!(h.features(), names.as_slice());
    let raw = matrix(&v["heads"]["gender"]["raw"]);
    let want = rows(&v, "gender");
    assert_eq!(raw.len(), want.len());
    assert!(raw.len() >= 3);
    for (row, (r, want)) in raw.iter().zip(&want).enumerate() {
        let f = AttributeFeatures {
            dlib_male: Some(r[0]),
            faceapi_male: Some(r[1]),
            faceapi_age: Some(r[2]),
            ..AttributeFeatures::default()
        };
        let x = f.vector(h.features()).expect("every gender feature");
        let p = h.predict(&x).expect("probabilities");
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "row {row}: {p:?} vs ONNX {want:?}");
        }
    }
}
