//! The model files Facelens ships, embedded with `include_bytes!` so that one binary is the whole
//! product: no download at build or run time, nothing to install next to it.
//!
//! The files live in the repository's `models/` folder next to `manifest.json`, which records for
//! each one its origin, licence and whether it is safe for commercial use; a test keeps this list,
//! the manifest and the bytes (SHA-256) in step. This crate only *holds* bytes — loading them into
//! a runtime is the inference crate's job, choosing them the pipeline's.

/// One embedded model file.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// Stable identifier used in configuration and metrics.
    pub id: &'static str,
    /// File name under `models/`.
    pub file: &'static str,
    /// SPDX-style licence of the weights as stated by their package.
    pub licence: &'static str,
    /// Whether the weights carry a clear permissive licence (MIT / Apache-2.0 / CC0).
    pub commercial_safe: bool,
    /// The ONNX bytes.
    pub bytes: &'static [u8],
}

macro_rules! model {
    ($id:literal, $file:literal, $licence:literal, $safe:literal) => {
        ModelFile {
            id: $id,
            file: $file,
            licence: $licence,
            commercial_safe: $safe,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/", $file)),
        }
    };
}

/// Every embedded model.
pub static MODELS: &[ModelFile] = &[
    model!(
        "retinaface_mnet025",
        "retinaface_mnet025_biubug6.onnx",
        "MIT",
        true
    ),
    model!("face_mesh", "mp_face_landmark.onnx", "Apache-2.0", true),
    model!(
        "blazeface_short",
        "mp_face_detection_short_range.onnx",
        "Apache-2.0",
        true
    ),
    // Attribute models (crates/facelens-vision/src/attributes).
    model!("dlib_age", "dlib_age_v1.onnx", "CC0-1.0", true),
    model!("dlib_gender", "dlib_gender_v1.onnx", "CC0-1.0", true),
    model!("emotion_human", "emotion.onnx", "MIT", true),
    model!("emotion_fer", "fer_emotion_minixception.onnx", "MIT", true),
    model!("gear", "gear.onnx", "MIT", true),
    model!("faceapi_age_gender", "faceapi_age_gender.onnx", "MIT", true),
    // int8 versions of the models dominated by dense convolutions, derived by
    // scripts/quantize_ort_int8.py; the onnxruntime backend runs them by default
    // (docs/quantization.md).
    model!("dlib_age_int8", "dlib_age_v1_int8.onnx", "CC0-1.0", true),
    model!("gear_int8", "gear_int8.onnx", "MIT", true),
    // RetinaFace with only its feature pyramid and context modules in int8 (the backbone and
    // the heads f32), derived by scripts/quantize_retinaface.py.
    model!(
        "retinaface_mnet025_int8",
        "retinaface_mnet025_int8.onnx",
        "MIT",
        true
    ),
];

/// Look a model up by id.
pub fn get(id: &str) -> Option<&'static ModelFile> {
    MODELS.iter().find(|m| m.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn manifest_matches_embedded_models() {
        let text = include_str!("../../../models/manifest.json");
        let manifest: serde_json::Value = serde_json::from_str(text).expect("manifest.json parses");
        let entries = manifest["models"].as_array().expect("models array");
        assert_eq!(
            entries.len(),
            MODELS.len(),
            "manifest and MODELS list the same files"
        );
        for m in MODELS {
            let e = entries
                .iter()
                .find(|e| e["id"] == m.id)
                .unwrap_or_else(|| panic!("{} missing from manifest.json", m.id));
            assert_eq!(e["file"], m.file);
            assert_eq!(e["licence"], m.licence);
            assert_eq!(e["commercial_safe"], m.commercial_safe);
            let digest = format!("{:x}", Sha256::digest(m.bytes));
            assert_eq!(
                e["sha256"],
                digest.as_str(),
                "{} bytes differ from the manifest",
                m.id
            );
            assert!(m.bytes.len() > 1000);
        }
    }

    #[test]
    fn trained_heads_are_listed_with_their_data_terms() {
        let text = include_str!("../../../models/manifest.json");
        let manifest: serde_json::Value = serde_json::from_str(text).expect("manifest.json parses");
        let heads = manifest["heads"].as_array().expect("heads array");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut ids: Vec<&str> = Vec::new();
        for h in heads {
            let file = h["file"].as_str().expect("file");
            assert!(root.join(file).is_file(), "{file} is not in models/");
            // Trained on data with non-commercial or unclear terms: never marked safe.
            assert_eq!(h["commercial_safe"], false, "{file}");
            assert!(h["training_data"].as_str().is_some_and(|t| !t.is_empty()));
            ids.push(h["id"].as_str().expect("id"));
        }
        ids.sort_unstable();
        assert_eq!(
            ids,
            [
                "beauty_trained",
                "face_shape_trained",
                "gender",
                "race_trained"
            ]
        );
    }
}
