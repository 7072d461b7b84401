//! Fitted heads: the small models, fitted offline on the development data, that turn features
//! (model outputs, image and mesh measures) into the contract's answers.
//!
//! Why one module: the upstream models answer slightly different questions than the contract
//! asks (FER2013 "happy" is not "is smiling"; no model we ship says "cartoon"), and the cheapest
//! honest fix is a head of tens of numbers over their outputs. Every head is a JSON file in
//! `models/heads/`, written by a script under `scripts/` (through `scripts/heads.py`) and
//! embedded with `include_str!` ([`embedded`]). One file format and one loader mean one place
//! that checks the numbers before any of them is used: a file whose lengths disagree, that holds
//! a NaN or a zero spread, or whose class names are not the ones the code reads is a
//! [`HeadError`] at load, and the unit test of [`embedded`] turns that into a failed build, not
//! a silent fallback at run time. After loading, nothing is indexed blindly: the predict
//! functions check the input's length and answer `None` rather than panic.
//!
//! The file is tagged by `kind`; each kind is one formula, named for what it computes
//! (`zᵢ = (xᵢ − meanᵢ) / stdᵢ`):
//!
//! | `kind` | type | computes |
//! |---|---|---|
//! | `logistic` | [`LogisticHead`] | `P(labels[1]) = sigmoid(bias + Σ wᵢ zᵢ)`, cut at `threshold` |
//! | `softmax` | [`SoftmaxHead`] | `softmax(biasⱼ + Σ wⱼᵢ zᵢ)` over `labels` |
//! | `linear` | [`LinearRegressionHead`] | `bias + Σ wᵢ xᵢ` (a regression, e.g. years) |
//! | `prototypes` | [`PrototypeHead`] | `softmax(−‖z − prototypeⱼ‖² / temperature)` |
//! | `z_score` | [`ZScoreHead`] | `centre − scale · (Σ wᵢ zᵢ) / spread` (a calibrated score) |
//!
//! Every file also carries `about` (what it is, what it was fitted on, by which script) and
//! `features` (the input names, in order; the code checks them against its feature builder).
//!
//! To add a fitted head of an existing kind: have the fitting script write it with
//! `scripts/heads.py`, add an [`embedded::Embedded`] constant (and its entry in
//! [`embedded::ALL`]), load it where it is used with [`Kind::load`] and check its labels and
//! features ([`Kind::with_labels`], [`Kind::with_features`]) against the code that builds its
//! input, and expose the result as a `Result<&'static …, &'static HeadError>` so the test in
//! [`embedded`] can check it. To add a new kind: a struct with its numbers, a `validate`
//! method that checks every length and value the formula relies on, a variant of [`Head`]
//! (serde picks it by `kind`), a [`Kind`] impl, and the same kind in `scripts/heads.py`.

pub mod embedded;

use facelens_core::types::Labelled;
use serde::Deserialize;
use std::fmt;

/// Smallest standard deviation (spread) a head may divide by. Fitting scripts add 1e-6 or
/// replace a zero spread by 1, so a smaller value means a broken file.
pub const MIN_STD: f32 = 1e-6;

/// The logistic function, `1 / (1 + e^−x)`: the link of [`LogisticHead`], and the one every
/// model output that is a logit (the mesh's face flag, BlazeFace's scores) goes through.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Numerically stable softmax (the largest value is subtracted before exponentiating).
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Why a head did not load.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadError {
    /// Not JSON, an unknown `kind`, a missing or unknown field.
    Parse(String),
    /// The file is a head of another kind than the code reads.
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    /// A list whose length does not match the features or labels.
    Length {
        field: &'static str,
        expected: usize,
        found: usize,
    },
    /// A number that is NaN or infinite.
    NotFinite { field: &'static str },
    /// A number outside the range the formula needs (a spread below [`MIN_STD`], a threshold
    /// outside 0..1, ...).
    OutOfRange { field: &'static str, value: f32 },
    /// Missing, empty or repeated feature or class names.
    Names { field: &'static str, reason: String },
    /// Class names other than the ones the code reads.
    Labels {
        expected: Vec<String>,
        found: Vec<String>,
    },
    /// Feature names other than the ones the code builds.
    Features { reason: String },
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Parse(e) => write!(f, "not a head file: {e}"),
            HeadError::WrongKind { expected, found } => {
                write!(f, "a {found} head where a {expected} head is expected")
            }
            HeadError::Length {
                field,
                expected,
                found,
            } => write!(f, "{field} has {found} values, expected {expected}"),
            HeadError::NotFinite { field } => write!(f, "{field} holds a non-finite number"),
            HeadError::OutOfRange { field, value } => {
                write!(f, "{field} = {value} is out of range")
            }
            HeadError::Names { field, reason } => write!(f, "{field}: {reason}"),
            HeadError::Labels { expected, found } => {
                write!(f, "labels {found:?}, expected {expected:?}")
            }
            HeadError::Features { reason } => write!(f, "features: {reason}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Any head, as its file's `kind` says.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Head {
    Logistic(LogisticHead),
    Softmax(SoftmaxHead),
    Linear(LinearRegressionHead),
    Prototypes(PrototypeHead),
    ZScore(ZScoreHead),
}

impl Head {
    /// Parse a head file and check every number the formula of its kind relies on.
    pub fn from_json(text: &str) -> Result<Head, HeadError> {
        let head: Head = serde_json::from_str(text).map_err(|e| HeadError::Parse(e.to_string()))?;
        match &head {
            Head::Logistic(h) => h.validate()?,
            Head::Softmax(h) => h.validate()?,
            Head::Linear(h) => h.validate()?,
            Head::Prototypes(h) => h.validate()?,
            Head::ZScore(h) => h.validate()?,
        }
        Ok(head)
    }

    /// The file's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Head::Logistic(_) => LogisticHead::KIND,
            Head::Softmax(_) => SoftmaxHead::KIND,
            Head::Linear(_) => LinearRegressionHead::KIND,
            Head::Prototypes(_) => PrototypeHead::KIND,
            Head::ZScore(_) => ZScoreHead::KIND,
        }
    }
}

/// One kind of head: how to get it out of a [`Head`] and what every kind has in common.
pub trait Kind: Sized {
    /// The `kind` tag of its files.
    const KIND: &'static str;
    /// This kind's head, or [`HeadError::WrongKind`].
    fn from_head(head: Head) -> Result<Self, HeadError>;
    /// Input names, in input order.
    fn features(&self) -> &[String];
    /// Output class names, in output order (empty for a head that outputs a number).
    fn labels(&self) -> &[String];

    /// Parse, validate and check the kind: the one loader every head goes through.
    fn load(text: &str) -> Result<Self, HeadError> {
        Self::from_head(Head::from_json(text)?)
    }

    /// The head, if its class names are exactly `expected` (in order).
    fn with_labels(self, expected: &[&str]) -> Result<Self, HeadError> {
        if self
            .labels()
            .iter()
            .map(String::as_str)
            .eq(expected.iter().copied())
        {
            Ok(self)
        } else {
            Err(HeadError::Labels {
                expected: expected.iter().map(|s| s.to_string()).collect(),
                found: self.labels().to_vec(),
            })
        }
    }

    /// The head, if its feature names are exactly `expected` (the code's feature builder).
    fn with_features(self, expected: &[String]) -> Result<Self, HeadError> {
        if self.features() == expected {
            return Ok(self);
        }
        let at = self
            .features()
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(self.features().len().min(expected.len()));
        Err(HeadError::Features {
            reason: format!(
                "{} names where the code builds {}; first difference at {at}: {:?} vs {:?}",
                self.features().len(),
                expected.len(),
                self.features().get(at),
                expected.get(at)
            ),
        })
    }

    /// The head, if the code can compute every one of its features (`known` says which names
    /// it can; for heads that read features by name).
    fn with_features_known(self, known: impl Fn(&str) -> bool) -> Result<Self, HeadError> {
        match self.features().iter().find(|n| !known(n)) {
            Some(n) => Err(HeadError::Features {
                reason: format!("{n:?} is not a feature the code computes"),
            }),
            None => Ok(self),
        }
    }
}

macro_rules! kind {
    ($ty:ident, $variant:ident, $tag:literal) => {
        kind!($ty, $variant, $tag, |_h: &$ty| &[]);
    };
    ($ty:ident, $variant:ident, $tag:literal, labels) => {
        kind!($ty, $variant, $tag, |h: &$ty| &h.labels);
    };
    ($ty:ident, $variant:ident, $tag:literal, $labels:expr) => {
        impl Kind for $ty {
            const KIND: &'static str = $tag;
            fn from_head(head: Head) -> Result<Self, HeadError> {
                match head {
                    Head::$variant(h) => Ok(h),
                    other => Err(HeadError::WrongKind {
                        expected: $tag,
                        found: other.kind(),
                    }),
                }
            }
            fn features(&self) -> &[String] {
                &self.features
            }
            fn labels(&self) -> &[String] {
                let labels: fn(&$ty) -> &[String] = $labels;
                labels(self)
            }
        }
    };
}

kind!(LogisticHead, Logistic, "logistic", labels);
kind!(SoftmaxHead, Softmax, "softmax", labels);
kind!(LinearRegressionHead, Linear, "linear");
kind!(PrototypeHead, Prototypes, "prototypes", labels);
kind!(ZScoreHead, ZScore, "z_score");

/// A binary logistic regression over standardised features:
/// `P(labels[1]) = sigmoid(bias + Σ wᵢ (xᵢ − meanᵢ) / stdᵢ)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticHead {
    about: String,
    /// `[negative, positive]`: the head outputs the probability of the second.
    labels: Vec<String>,
    features: Vec<String>,
    mean: Vec<f32>,
    std: Vec<f32>,
    weights: Vec<f32>,
    bias: f32,
    /// Decision threshold on `P(labels[1])`.
    threshold: f32,
}

impl LogisticHead {
    fn validate(&self) -> Result<(), HeadError> {
        names("labels", &self.labels)?;
        exact_len("labels", 2, self.labels.len())?;
        let d = features(&self.features)?;
        numbers("mean", &self.mean, d)?;
        spreads("std", &self.std, d)?;
        numbers("weights", &self.weights, d)?;
        finite("bias", self.bias)?;
        in_range("threshold", self.threshold, 0.0, 1.0)
    }

    /// The logit of `P(labels[1])`; `None` when `x` has the wrong length. A non-finite input
    /// counts as its feature's mean (it then adds nothing).
    pub fn logit(&self, x: &[f32]) -> Option<f32> {
        if x.len() != self.weights.len() {
            return None;
        }
        let mut z = self.bias;
        for (i, &xi) in x.iter().enumerate() {
            let v = if xi.is_finite() { xi } else { self.mean[i] };
            z += self.weights[i] * (v - self.mean[i]) / self.std[i];
        }
        Some(z)
    }

    /// `P(labels[1])`; `None` when `x` has the wrong length.
    pub fn probability(&self, x: &[f32]) -> Option<f32> {
        self.logit(x).map(sigmoid)
    }

    /// `labels[1]` with its probability when it reaches the threshold, else `labels[0]` with
    /// one minus it; `None` when `x` has the wrong length.
    pub fn classify(&self, x: &[f32]) -> Option<Labelled> {
        let p = self.probability(x)?;
        Some(if p >= self.threshold {
            Labelled::new(&self.labels[1], p)
        } else {
            Labelled::new(&self.labels[0], 1.0 - p)
        })
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }
}

/// A multinomial logistic regression over standardised features:
/// `softmax(biasⱼ + Σ wⱼᵢ (xᵢ − meanᵢ) / stdᵢ)` over `labels`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftmaxHead {
    about: String,
    /// Output labels, in output order.
    labels: Vec<String>,
    features: Vec<String>,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// `labels.len()` rows of `features.len()` weights.
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

impl SoftmaxHead {
    fn validate(&self) -> Result<(), HeadError> {
        names("labels", &self.labels)?;
        let k = self.labels.len();
        if k < 2 {
            return Err(HeadError::Names {
                field: "labels",
                reason: "a softmax needs at least two classes".into(),
            });
        }
        let d = features(&self.features)?;
        numbers("mean", &self.mean, d)?;
        spreads("std", &self.std, d)?;
        exact_len("weights", k, self.weights.len())?;
        for w in &self.weights {
            numbers("weights", w, d)?;
        }
        numbers("bias", &self.bias, k)
    }

    /// Class probabilities in label order; `None` when `x` has the wrong length or is not
    /// finite.
    pub fn predict(&self, x: &[f32]) -> Option<Vec<f32>> {
        if x.len() != self.features.len() || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        let z: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| {
                b + w
                    .iter()
                    .zip(x)
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|((wi, xi), (m, s))| wi * (xi - m) / s)
                    .sum::<f32>()
            })
            .collect();
        Some(softmax(&z))
    }

    /// The probability of class `label`; `None` when `x` does not fit or the head has no such
    /// class.
    pub fn probability_of(&self, x: &[f32], label: &str) -> Option<f32> {
        let i = self.labels.iter().position(|l| l == label)?;
        self.predict(x)?.get(i).copied()
    }
}

/// A linear regression: `bias + Σ wᵢ xᵢ` (no standardisation; for inputs on a common scale,
/// such as probabilities and years).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearRegressionHead {
    about: String,
    features: Vec<String>,
    weights: Vec<f32>,
    bias: f32,
}

impl LinearRegressionHead {
    fn validate(&self) -> Result<(), HeadError> {
        let d = features(&self.features)?;
        numbers("weights", &self.weights, d)?;
        finite("bias", self.bias)
    }

    /// `bias + Σ wᵢ xᵢ`; `None` when `x` has the wrong length or is not finite.
    pub fn predict(&self, x: &[f32]) -> Option<f32> {
        if x.len() != self.weights.len() || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        Some(self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
    }
}

/// Nearest prototype, softly: the features are standardised (`zᵢ = (xᵢ − meanᵢ) / stdᵢ`) and
/// class `j` gets `softmax(−‖z − prototypeⱼ‖² / temperature)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrototypeHead {
    about: String,
    /// Class names, in the order of `prototypes`.
    labels: Vec<String>,
    features: Vec<String>,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// One point per class, in z-units.
    prototypes: Vec<Vec<f32>>,
    temperature: f32,
}

/// Smallest softmax temperature of a [`PrototypeHead`].
pub const MIN_TEMPERATURE: f32 = 1e-3;

impl PrototypeHead {
    fn validate(&self) -> Result<(), HeadError> {
        names("labels", &self.labels)?;
        let d = features(&self.features)?;
        numbers("mean", &self.mean, d)?;
        spreads("std", &self.std, d)?;
        exact_len("prototypes", self.labels.len(), self.prototypes.len())?;
        for p in &self.prototypes {
            numbers("prototypes", p, d)?;
        }
        in_range("temperature", self.temperature, MIN_TEMPERATURE, f32::MAX)
    }

    /// Class probabilities in label order; `None` when `x` has the wrong length or is not
    /// finite.
    pub fn probabilities(&self, x: &[f32]) -> Option<Vec<f32>> {
        if x.len() != self.features.len() || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        let z = self.standardise(x);
        let logits: Vec<f32> = self
            .prototypes
            .iter()
            .map(|p| {
                let d2: f32 = z.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
                -d2 / self.temperature
            })
            .collect();
        Some(softmax(&logits))
    }

    /// `(x − mean) / std`, element by element.
    pub fn standardise(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    /// The feature values at class `label`'s prototype (for tests and documentation).
    pub fn prototype_point(&self, label: &str) -> Option<Vec<f32>> {
        let i = self.labels.iter().position(|l| l == label)?;
        let p = self.prototypes.get(i)?;
        Some(
            p.iter()
                .zip(self.mean.iter().zip(&self.std))
                .map(|(z, (m, s))| m + s * z)
                .collect(),
        )
    }
}

/// A calibrated score from standardised terms: `centre − scale · (Σ wᵢ zᵢ) / spread` with
/// `zᵢ = (xᵢ − meanᵢ) / stdᵢ`. `spread` is the standard deviation of the weighted sum over the
/// data the head was calibrated on, so `scale` is the score's standard deviation there.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZScoreHead {
    about: String,
    features: Vec<String>,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// Weight of each standardised term (positive = the term lowers the score).
    weights: Vec<f32>,
    spread: f32,
    centre: f32,
    scale: f32,
}

/// Smallest `spread` of a [`ZScoreHead`].
pub const MIN_SPREAD: f32 = 1e-3;

impl ZScoreHead {
    fn validate(&self) -> Result<(), HeadError> {
        let d = features(&self.features)?;
        numbers("mean", &self.mean, d)?;
        spreads("std", &self.std, d)?;
        numbers("weights", &self.weights, d)?;
        in_range("spread", self.spread, MIN_SPREAD, f32::MAX)?;
        finite("centre", self.centre)?;
        finite("scale", self.scale)
    }

    /// The score; `None` when `x` has the wrong length.
    pub fn score(&self, x: &[f32]) -> Option<f32> {
        if x.len() != self.weights.len() {
            return None;
        }
        let mut z = 0.0;
        for (i, v) in x.iter().enumerate() {
            z += self.weights[i] * (v - self.mean[i]) / self.std[i];
        }
        Some(self.centre - self.scale * z / self.spread)
    }
}

fn finite(field: &'static str, v: f32) -> Result<(), HeadError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(HeadError::NotFinite { field })
    }
}

fn in_range(field: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), HeadError> {
    finite(field, v)?;
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(HeadError::OutOfRange { field, value: v })
    }
}

fn exact_len(field: &'static str, expected: usize, found: usize) -> Result<(), HeadError> {
    if expected == found {
        Ok(())
    } else {
        Err(HeadError::Length {
            field,
            expected,
            found,
        })
    }
}

/// `d` finite numbers.
fn numbers(field: &'static str, v: &[f32], d: usize) -> Result<(), HeadError> {
    exact_len(field, d, v.len())?;
    v.iter().try_for_each(|x| finite(field, *x))
}

/// `d` finite spreads of at least [`MIN_STD`].
fn spreads(field: &'static str, v: &[f32], d: usize) -> Result<(), HeadError> {
    exact_len(field, d, v.len())?;
    v.iter()
        .try_for_each(|x| in_range(field, *x, MIN_STD, f32::MAX))
}

/// Non-empty, distinct names.
fn names(field: &'static str, v: &[String]) -> Result<(), HeadError> {
    let bad = |reason: String| Err(HeadError::Names { field, reason });
    if v.is_empty() {
        return bad("none given".into());
    }
    if let Some(n) = v.iter().find(|n| n.trim().is_empty()) {
        return bad(format!("empty name {n:?}"));
    }
    for (i, n) in v.iter().enumerate() {
        if v[..i].contains(n) {
            return bad(format!("{n:?} appears twice"));
        }
    }
    Ok(())
}

/// The features' names are valid; their count.
fn features(v: &[String]) -> Result<usize, HeadError> {
    names("features", v)?;
    Ok(v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logistic(extra: &str) -> String {
        format!(
            r#"{{"kind": "logistic", "about": "t", "labels": ["no", "yes"], "features": ["a", "b"],
                "mean": [1, 0], "std": [2, 1], "weights": [2, -1], "bias": 0.5,
                "threshold": 0.5{extra}}}"#
        )
    }

    #[test]
    fn logistic_head_scores_standardised_features_and_names_its_class() {
        let h = LogisticHead::load(&logistic("")).expect("valid head");
        // (3 - 1) / 2 * 2 + (1 - 0) / 1 * -1 + 0.5
        assert!((h.logit(&[3.0, 1.0]).expect("z") - 1.5).abs() < 1e-6);
        assert!((h.probability(&[3.0, 1.0]).expect("p") - sigmoid(1.5)).abs() < 1e-6);
        assert_eq!(h.classify(&[3.0, 1.0]).expect("class").kind, "yes");
        let no = h.classify(&[-5.0, 3.0]).expect("class");
        assert_eq!(no.kind, "no");
        assert!(no.probability > 0.5);
        // A missing (non-finite) input adds nothing; a wrong length is no answer, not a panic.
        assert_eq!(h.logit(&[f32::NAN, 0.0]), Some(0.5));
        assert_eq!(h.logit(&[1.0]), None);
        assert!(h.clone().with_labels(&["no", "yes"]).is_ok());
        assert!(matches!(
            h.clone().with_labels(&["yes", "no"]),
            Err(HeadError::Labels { .. })
        ));
        assert!(h.clone().with_features(&["a".into(), "b".into()]).is_ok());
        assert!(matches!(
            h.with_features(&["a".into(), "c".into()]),
            Err(HeadError::Features { .. })
        ));
    }

    #[test]
    fn softmax_head_predicts_with_standardisation() {
        let h = SoftmaxHead::load(
            r#"{"kind": "softmax", "about": "t", "labels": ["no", "yes"], "features": ["a"],
                "mean": [1.0], "std": [2.0], "weights": [[0.0], [2.0]], "bias": [0.0, 0.0]}"#,
        )
        .expect("valid head");
        // x = 3 → standardised 1 → logits [0, 2]
        let p = h.predict(&[3.0]).expect("p");
        assert!((p[1] - sigmoid(2.0)).abs() < 1e-6);
        assert_eq!(h.probability_of(&[3.0], "yes"), Some(p[1]));
        assert_eq!(h.probability_of(&[3.0], "maybe"), None);
        assert!(h.predict(&[1.0, 2.0]).is_none());
        assert!(h.predict(&[f32::NAN]).is_none());
    }

    #[test]
    fn linear_regression_head() {
        let h = LinearRegressionHead::load(
            r#"{"kind": "linear", "about": "t", "features": ["a", "b"],
                "weights": [2.0, -1.0], "bias": 0.5}"#,
        )
        .expect("valid head");
        assert_eq!(h.predict(&[1.0, 1.0]), Some(1.5));
        assert!(h.predict(&[1.0]).is_none());
        assert!(h.labels().is_empty());
    }

    #[test]
    fn prototype_head_prefers_the_nearest_prototype() {
        let h = PrototypeHead::load(
            r#"{"kind": "prototypes", "about": "t", "labels": ["low", "high"], "features": ["a"],
                "mean": [10.0], "std": [2.0], "prototypes": [[-1.0], [1.0]], "temperature": 1.0}"#,
        )
        .expect("valid head");
        let p = h.probabilities(&[12.0]).expect("p");
        assert!(p[1] > p[0] && (p[0] + p[1] - 1.0).abs() < 1e-6, "{p:?}");
        assert_eq!(h.prototype_point("low"), Some(vec![8.0]));
        assert!(h.probabilities(&[f32::INFINITY]).is_none());
    }

    #[test]
    fn z_score_head() {
        let h = ZScoreHead::load(
            r#"{"kind": "z_score", "about": "t", "features": ["a", "b"], "mean": [0, 0],
                "std": [1, 2], "weights": [1, 1], "spread": 2.0, "centre": 50, "scale": 10}"#,
        )
        .expect("valid head");
        // z-sum = 2 + 1 = 3 → 50 - 10 * 3 / 2
        assert_eq!(h.score(&[2.0, 2.0]), Some(35.0));
        assert_eq!(h.score(&[2.0]), None);
    }

    #[test]
    fn broken_files_are_typed_errors() {
        let err = |text: &str| LogisticHead::load(text).expect_err(text);
        assert!(matches!(err("{}"), HeadError::Parse(_)));
        assert!(matches!(
            err(r#"{"kind": "tree", "about": "t"}"#),
            HeadError::Parse(_)
        ));
        // A field the kind does not have (a typo) is refused, not ignored.
        assert!(matches!(
            err(&logistic(r#", "scale": [1]"#)),
            HeadError::Parse(_)
        ));
        let bad = |from: &str, to: &str| err(&logistic("").replace(from, to));
        assert!(matches!(
            bad(r#""std": [2, 1]"#, r#""std": [2, 0]"#),
            HeadError::OutOfRange { field: "std", .. }
        ));
        assert!(matches!(
            bad(r#""weights": [2, -1]"#, r#""weights": [2]"#),
            HeadError::Length {
                field: "weights",
                expected: 2,
                found: 1
            }
        ));
        assert!(matches!(
            bad(r#""threshold": 0.5"#, r#""threshold": 1.5"#),
            HeadError::OutOfRange {
                field: "threshold",
                ..
            }
        ));
        assert!(matches!(
            bad(r#""features": ["a", "b"]"#, r#""features": ["a", "a"]"#),
            HeadError::Names {
                field: "features",
                ..
            }
        ));
        assert!(matches!(
            bad(r#""labels": ["no", "yes"]"#, r#""labels": ["yes"]"#),
            HeadError::Length {
                field: "labels",
                ..
            }
        ));
        // JSON has no NaN, but an overflowing literal parses to infinity.
        assert!(matches!(
            bad(r#""bias": 0.5"#, r#""bias": 1e999"#),
            HeadError::Parse(_) | HeadError::NotFinite { field: "bias" }
        ));
        assert!(matches!(
            bad(r#""mean": [1, 0]"#, r#""mean": [1, 1e39]"#),
            HeadError::NotFinite { field: "mean" } | HeadError::Parse(_)
        ));
        // The right file read as the wrong kind.
        assert_eq!(
            SoftmaxHead::load(&logistic("")).expect_err("kind"),
            HeadError::WrongKind {
                expected: "softmax",
                found: "logistic"
            }
        );
        let e = PrototypeHead::load(
            r#"{"kind": "prototypes", "about": "t", "labels": ["a", "b"], "features": ["x"],
                "mean": [0], "std": [1], "prototypes": [[0]], "temperature": 1}"#,
        )
        .expect_err("one prototype for two classes");
        assert!(e.to_string().contains("prototypes"), "{e}");
    }

    #[test]
    fn sigmoid_and_softmax() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(40.0) > 0.999 && sigmoid(-40.0) < 0.001);
        let p = softmax(&[1000.0, 1000.0]);
        assert_eq!(p, vec![0.5, 0.5]);
    }
}
