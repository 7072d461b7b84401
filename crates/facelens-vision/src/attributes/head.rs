//! Small logistic-regression heads over model outputs, fitted offline on the development data by
//! `scripts/fit_attribute_heads.py` and embedded as JSON (`models/heads/*.json`).
//!
//! Why: the upstream models answer slightly different questions than the contract asks (e.g.
//! FER2013 "happy" vs "is smiling"); a linear head over their outputs and the mesh geometry is the
//! cheapest honest fix. Heads are tiny (tens of numbers), readable, and their cross-validated
//! figures are reported in docs/accuracy.md — they were fitted on dev data, so held-out figures
//! are the ones to trust.

use serde::Deserialize;

/// A multinomial logistic head: `softmax(W · ((x - mean) / scale) + b)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogisticHead {
    /// Output labels, in output order.
    pub labels: Vec<String>,
    /// Names of the input features, in input order (documentation and a dimension check).
    pub features: Vec<String>,
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    /// `labels.len()` rows of `features.len()` weights.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

impl LogisticHead {
    /// Parse and check the dimensions; `None` if the JSON is malformed or inconsistent.
    pub fn from_json(text: &str) -> Option<Self> {
        let h: LogisticHead = serde_json::from_str(text).ok()?;
        let d = h.features.len();
        let k = h.labels.len();
        let ok = k >= 2
            && h.mean.len() == d
            && h.scale.len() == d
            && h.bias.len() == k
            && h.weights.len() == k
            && h.weights.iter().all(|w| w.len() == d)
            && h.scale.iter().all(|s| *s != 0.0 && s.is_finite());
        ok.then_some(h)
    }

    /// Class probabilities; `None` when `x` has the wrong length or is not finite.
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
                    .zip(self.mean.iter().zip(&self.scale))
                    .map(|((wi, xi), (m, s))| wi * (xi - m) / s)
                    .sum::<f32>()
            })
            .collect();
        Some(softmax(&z))
    }
}

/// A linear regression head: `w · x + b` (no standardisation; the inputs are probabilities and
/// years).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LinearHead {
    /// Names of the input features, in input order.
    pub features: Vec<String>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl LinearHead {
    /// Parse and check the dimensions; `None` if the JSON is malformed or inconsistent.
    pub fn from_json(text: &str) -> Option<Self> {
        let h: LinearHead = serde_json::from_str(text).ok()?;
        (!h.features.is_empty()
            && h.weights.len() == h.features.len()
            && h.weights.iter().all(|w| w.is_finite())
            && h.bias.is_finite())
        .then_some(h)
    }

    /// `w · x + b`; `None` when `x` has the wrong length or is not finite.
    pub fn predict(&self, x: &[f32]) -> Option<f32> {
        if x.len() != self.weights.len() || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        Some(self.bias + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
    }
}

/// Numerically stable softmax.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicts_with_standardisation() {
        let h = LogisticHead::from_json(
            r#"{"labels": ["no", "yes"], "features": ["a"], "mean": [1.0], "scale": [2.0],
                "weights": [[0.0], [2.0]], "bias": [0.0, 0.0]}"#,
        )
        .expect("valid head");
        // x = 3 → standardised 1 → logits [0, 2]
        let p = h.predict(&[3.0]).expect("p");
        assert!((p[1] - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert!(h.predict(&[1.0, 2.0]).is_none());
        assert!(h.predict(&[f32::NAN]).is_none());
    }

    #[test]
    fn linear_head() {
        let h = LinearHead::from_json(
            r#"{"features": ["a", "b"], "weights": [2.0, -1.0], "bias": 0.5}"#,
        )
        .expect("valid head");
        assert_eq!(h.predict(&[1.0, 1.0]), Some(1.5));
        assert!(h.predict(&[1.0]).is_none());
        assert!(
            LinearHead::from_json(r#"{"features": ["a"], "weights": [], "bias": 0}"#).is_none()
        );
    }

    #[test]
    fn rejects_inconsistent_heads() {
        assert!(LogisticHead::from_json("{}").is_none());
        assert!(
            LogisticHead::from_json(
                r#"{"labels": ["no", "yes"], "features": ["a"], "mean": [1.0], "scale": [0.0],
                    "weights": [[0.0], [2.0]], "bias": [0.0, 0.0]}"#
            )
            .is_none()
        );
    }
}
