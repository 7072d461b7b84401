//! The heads shipped in the binary: `models/heads/*.json`, embedded with `include_str!`.
//!
//! Why a list: each head is loaded lazily by the code that uses it, which falls back to a
//! documented default when its head is missing (so a build never panics on a head). That
//! fallback must never hide a broken file, so every head is named here once, and the test
//! below loads each through the accessor its code uses, with the labels and feature names
//! that code checks: a head that fails to load fails the build's tests.

use super::{HeadError, Kind};

/// One embedded head file.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// The file's stem in `models/heads/`.
    pub name: &'static str,
    pub json: &'static str,
}

impl Embedded {
    /// Load the file as a head of kind `H` ([`Kind::load`]).
    pub fn load<H: Kind>(&self) -> Result<H, HeadError> {
        H::load(self.json)
    }
}

macro_rules! embedded {
    ($($(#[$doc:meta])* $id:ident = $name:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $id: Embedded = Embedded {
                name: $name,
                json: include_str!(concat!("../../../../models/heads/", $name, ".json")),
            };
        )*
        /// Every embedded head.
        pub const ALL: &[Embedded] = &[$($id),*];
    };
}

embedded! {
    /// Age in years from the age models' outputs (`linear`; `scripts/fit_attribute_heads.py`).
    AGE = "age";
    /// SCUT-FBP5500 mean rating from inner model features (`linear`; `training/beauty.py`,
    /// `training/heads_json.py`).
    BEAUTY_TRAINED = "beauty_trained";
    /// P(cartoon) from image features only (`logistic`; `scripts/fit_cartoon_head.py`).
    CARTOON = "cartoon";
    /// P(cartoon) from image features and attribute-model outputs (`logistic`;
    /// `scripts/fit_cartoon_head.py`).
    CARTOON_FULL = "cartoon_full";
    /// P(eye open) from an eye patch (`logistic`; `scripts/fit_heuristics.py`).
    EYES = "eyes";
    /// P(male) from the gender models' logits (`softmax`; `scripts/fit_attribute_heads.py`).
    GENDER = "gender";
    /// P(eyeglasses) from a periocular patch (`logistic`; `scripts/fit_heuristics.py`).
    GLASSES = "glasses";
    /// Face shape from inner model features and the mesh (`softmax`;
    /// `training/face_shape.py`, `training/heads_json.py`).
    FACE_SHAPE_TRAINED = "face_shape_trained";
    /// Race from GEAR's race outputs and pool (`softmax`; `training/race_gender.py`,
    /// `training/heads_json.py`).
    RACE_TRAINED = "race_trained";
    /// P(smiling) from the emotion probabilities and the mouth (`softmax`;
    /// `scripts/fit_attribute_heads.py`).
    SMILE = "smile";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::combine;
    use crate::heads::Head;
    use crate::heuristics::{cartoon, eyes, glasses};

    #[test]
    fn every_embedded_head_loads_with_the_labels_and_features_its_code_reads() {
        let loaded: [(&str, Result<(), &HeadError>); 10] = [
            ("age", combine::age_head().map(drop)),
            ("beauty_trained", combine::beauty_head().map(drop)),
            ("cartoon", cartoon::head().map(drop)),
            ("cartoon_full", cartoon::full_head().map(drop)),
            ("eyes", eyes::head().map(drop)),
            ("face_shape_trained", combine::face_shape_head().map(drop)),
            ("gender", combine::gender_head().map(drop)),
            ("glasses", glasses::head().map(drop)),
            ("race_trained", combine::race_head().map(drop)),
            ("smile", combine::smile_head().map(drop)),
        ];
        for (name, r) in &loaded {
            assert!(r.is_ok(), "models/heads/{name}.json: {}", r.unwrap_err());
        }
        // Each file is checked above exactly once.
        let mut names: Vec<&str> = ALL.iter().map(|e| e.name).collect();
        names.sort_unstable();
        assert_eq!(names, loaded.map(|(n, _)| n));
        for e in ALL {
            let head = Head::from_json(e.json).expect("validated above");
            assert!(!head.kind().is_empty());
        }
    }
}
