//! The raw model outputs behind a face's attributes, and the names the heads read them by.
//!
//! Why names: the fitted heads (`models/heads/*.json`) list their inputs by name, so a head can
//! be refitted with other inputs without a code change, and a head that names an output the
//! code does not compute fails to load ([`AttributeFeatures::is_named`]). The same structure is
//! what `facelens eval attributes --features-out` dumps for fitting the heads offline, so the
//! fitting script and the service read the same numbers.

use super::emotion;
use facelens_infer::Model;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Raw model outputs and features behind the attributes of one face (for offline analysis and
/// head fitting; not part of the contract).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttributeFeatures {
    /// The five detector landmarks the crops were aligned on.
    pub landmarks: [[f32; 2]; 5],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlib_age: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlib_male: Option<f32>,
    /// GEAR `[white, black, asian, indian, other]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gear_race: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gear_male: Option<f32>,
    /// GEAR age bins, see [`super::age_gender::GEAR_AGE_BINS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gear_age: Option<Vec<f32>>,
    /// face-api's age (years), flip-averaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faceapi_age: Option<f32>,
    /// face-api's P(male), flip-averaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faceapi_male: Option<f32>,
    /// Each emotion model's probabilities (flip-averaged), in [`emotion::EMOTIONS`] order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emotion_models: Vec<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mouth: Option<emotion::Mouth>,
    /// P(smiling) behind the expression (the smile head's output, or P(happy) without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_smile: Option<f32>,
    /// The inner outputs the trained heads read ([`super::trained`]), by output name,
    /// flip-averaged like every output; kept only while a trained attribute is asked for.
    #[serde(skip)]
    pub inner: BTreeMap<String, Vec<f32>>,
}

/// Feature-name suffixes of GEAR's age bins ([`super::age_gender::GEAR_AGE_BINS`]), in output
/// order.
pub const GEAR_AGE_FEATURES: [&str; 7] =
    ["lt20", "21_25", "26_30", "31_40", "41_50", "51_60", "gt60"];

impl AttributeFeatures {
    /// A raw output by the name the heads' JSON gives it; `None` when its model did not run.
    /// Names: `dlib_age`, `faceapi_age`, `gear_age_<bin>` (`lt20`, `21_25`, `26_30`, `31_40`,
    /// `41_50`, `51_60`, `gt60`), and `logit_dlib_male` / `logit_faceapi_male` /
    /// `logit_gear_male` (`ln(p / (1 − p))`, p clamped to [1e-6, 1 − 1e-6]), `child` (a soft
    /// "under about 15" from face-api's age, [`child`]), and the product of two names, `a*b`
    /// (so a head can weigh a model differently for children: the portraits the gender head is
    /// also fitted on hold no children, so a `child*…` term is fitted by UTKFace alone).
    pub fn named(&self, name: &str) -> Option<f32> {
        let logit = |p: Option<f32>| {
            p.map(|p| {
                let p = p.clamp(1e-6, 1.0 - 1e-6);
                (p / (1.0 - p)).ln()
            })
        };
        if let Some((a, b)) = name.split_once('*') {
            return Some(self.named(a)? * self.named(b)?);
        }
        match name {
            "child" => self.faceapi_age.map(child),
            "dlib_age" => self.dlib_age,
            "faceapi_age" => self.faceapi_age,
            "logit_dlib_male" => logit(self.dlib_male),
            "logit_faceapi_male" => logit(self.faceapi_male),
            "logit_gear_male" => logit(self.gear_male),
            _ => {
                let bin = name.strip_prefix("gear_age_")?;
                let i = GEAR_AGE_FEATURES.iter().position(|b| *b == bin)?;
                self.gear_age.as_deref()?.get(i).copied()
            }
        }
    }

    /// Whether [`AttributeFeatures::named`] knows `name` (whether or not its model ran).
    pub fn is_named(name: &str) -> bool {
        let every = AttributeFeatures {
            dlib_age: Some(0.0),
            dlib_male: Some(0.5),
            gear_male: Some(0.5),
            gear_age: Some(vec![0.0; GEAR_AGE_FEATURES.len()]),
            faceapi_age: Some(0.0),
            faceapi_male: Some(0.5),
            ..AttributeFeatures::default()
        };
        every.named(name).is_some()
    }

    /// The values of `names` in order; `None` when any is missing.
    pub fn vector(&self, names: &[String]) -> Option<Vec<f32>> {
        names.iter().map(|n| self.named(n)).collect()
    }
}

/// A soft "under about 15": `1 / (1 + exp((age − 15) / 3))`, 1 for small children, 0 for
/// adults (the same transform as `training/race_gender.py`'s `child`).
pub fn child(age_years: f32) -> f32 {
    1.0 / (1.0 + ((age_years - 15.0) / 3.0).exp())
}

/// Names of the smile head's inputs, in the order of [`smile_features`].
pub fn smile_feature_names() -> Vec<String> {
    let mut n: Vec<String> = emotion::EMOTIONS
        .iter()
        .map(|e| format!("log_p_{e}"))
        .collect();
    n.extend(["mouth_width", "mouth_open", "corner_lift"].map(String::from));
    n
}

/// The smile head's input features; `None` without mouth geometry.
pub fn smile_features(p_emotion: &[f32], mouth: Option<emotion::Mouth>) -> Option<Vec<f32>> {
    let m = mouth?;
    let mut x: Vec<f32> = p_emotion.iter().map(|p| p.clamp(1e-6, 1.0).ln()).collect();
    x.extend([m.width, m.open, m.corner_lift]);
    Some(x)
}

/// GEAR's three heads for one face, by output name (graph order as a fallback).
pub(super) fn gear_features(m: &Arc<dyn Model>, outputs: &[Vec<f32>], f: &mut AttributeFeatures) {
    let get = |name, fallback| output_named(m, outputs, name, fallback).cloned();
    f.gear_race = get("race_output", 0).filter(|v| v.len() == 5);
    f.gear_male = get("gender_output", 1)
        .filter(|v| v.len() == 2)
        .map(|v| v[0] / (v[0] + v[1]).max(1e-9));
    f.gear_age = get("age_output", 2).filter(|v| v.len() == 7);
}

/// face-api's two outputs for one face, by output name (graph order as a fallback).
pub(super) fn faceapi_features(
    m: &Arc<dyn Model>,
    outputs: &[Vec<f32>],
    f: &mut AttributeFeatures,
) {
    let get = |name, fallback| output_named(m, outputs, name, fallback);
    f.faceapi_age = get("age", 0)
        .filter(|v| v.len() == 1)
        .map(|v| v[0])
        .filter(|v| v.is_finite());
    f.faceapi_male = get("gender", 1)
        .filter(|v| v.len() == 2)
        .map(|v| v[0] / (v[0] + v[1]).max(1e-9))
        .filter(|v| v.is_finite());
}

/// Keep the inner outputs of `m` the trained heads read ([`super::trained::is_inner_output`]).
pub(super) fn inner_features(m: &Arc<dyn Model>, outputs: &[Vec<f32>], f: &mut AttributeFeatures) {
    for (name, v) in m.output_names().iter().zip(outputs) {
        if super::trained::is_inner_output(name) {
            f.inner.insert(name.clone(), v.clone());
        }
    }
}

/// The output of `m` called `name` among `outputs` (in graph order), or the one at `fallback`
/// when the graph does not name it so.
fn output_named<'a>(
    m: &Arc<dyn Model>,
    outputs: &'a [Vec<f32>],
    name: &str,
    fallback: usize,
) -> Option<&'a Vec<f32>> {
    outputs.get(m.output_index(name).unwrap_or(fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_features_cover_the_raw_outputs() {
        let f = AttributeFeatures {
            dlib_age: Some(20.0),
            dlib_male: Some(0.5),
            gear_age: Some(vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
            faceapi_male: Some(1.0),
            ..AttributeFeatures::default()
        };
        assert_eq!(f.named("dlib_age"), Some(20.0));
        assert_eq!(f.named("logit_dlib_male"), Some(0.0));
        assert_eq!(f.named("gear_age_gt60"), Some(0.6));
        assert_eq!(f.named("gear_age_lt20"), Some(0.0));
        // Clamped, so a certain model gives a finite logit.
        assert!(
            f.named("logit_faceapi_male")
                .is_some_and(|v| v.is_finite() && v > 10.0)
        );
        assert_eq!(f.named("faceapi_age"), None);
        assert_eq!(f.named("gear_age_99"), None);
        assert_eq!(f.named("unknown"), None);
        // `child` needs face-api's age; products need both factors.
        assert_eq!(f.named("child"), None);
        assert_eq!(f.named("child*logit_dlib_male"), None);
        assert!(
            f.named("dlib_age*gear_age_gt60")
                .is_some_and(|v| (v - 12.0).abs() < 1e-5)
        );
        assert_eq!(f.named("dlib_age*unknown"), None);
        let kid = AttributeFeatures {
            faceapi_age: Some(4.0),
            dlib_male: Some(0.9),
            ..AttributeFeatures::default()
        };
        let c = kid.named("child").expect("child");
        assert!(c > 0.95 && c < 1.0, "{c}");
        let lm = kid.named("logit_dlib_male").expect("logit");
        assert_eq!(kid.named("child*logit_dlib_male"), Some(c * lm));
        assert!(child(40.0) < 1e-3 && (child(15.0) - 0.5).abs() < 1e-6);
        assert_eq!(f.vector(&["dlib_age".into(), "faceapi_age".into()]), None);
        assert!(AttributeFeatures::is_named("faceapi_age"));
        assert!(AttributeFeatures::is_named("logit_gear_male"));
        assert!(AttributeFeatures::is_named("gear_age_31_40"));
        assert!(!AttributeFeatures::is_named("gear_age_99"));
        assert!(!AttributeFeatures::is_named("unknown"));
        assert!(AttributeFeatures::is_named("child*logit_dlib_male"));
        assert!(!AttributeFeatures::is_named("child*unknown"));
    }

    #[test]
    fn smile_feature_names_match_the_builder() {
        let mouth = emotion::Mouth {
            open: 0.02,
            width: 0.4,
            corner_lift: 0.01,
        };
        let x = smile_features(&[1.0 / 7.0; 7], Some(mouth)).expect("features");
        assert_eq!(x.len(), smile_feature_names().len());
        assert_eq!(smile_feature_names()[0], "log_p_angry");
        assert_eq!(smile_feature_names()[7], "mouth_width");
        assert!(smile_features(&[1.0 / 7.0; 7], None).is_none());
    }
}
