//! Age and gender: decoding of the dlib "Cydral" models and of GEAR's age and gender heads, and
//! how they are fused.
//!
//! dlib age: 81 softmax classes whose expected value (class weights 0.25, 1, 2, ..., 80) is the
//! age in years. dlib gender: softmax `[female, male]`. GEAR: 7 age bins (<20, 21-25, 26-30,
//! 31-40, 41-50, 51-60, >60) and `[male, female]`; its age bins are coarse and open-ended, so
//! they only serve as features (see `--features-out`), not as the reported age.

/// dlib age class weights (the package's `age_weights`): class 0 is a baby (0.25 years), class
/// `i` is `i` years.
pub fn dlib_age_weight(i: usize) -> f32 {
    if i == 0 { 0.25 } else { i as f32 }
}

/// Expected age from dlib's 81 class probabilities; `None` for the wrong length.
pub fn dlib_expected_age(probs: &[f32]) -> Option<f32> {
    if probs.len() != 81 {
        return None;
    }
    let total: f32 = probs.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    Some(
        probs
            .iter()
            .enumerate()
            .map(|(i, p)| p * dlib_age_weight(i))
            .sum::<f32>()
            / total,
    )
}

/// GEAR's age bins, as year ranges (the last is open-ended).
pub const GEAR_AGE_BINS: [&str; 7] = ["<20", "21-25", "26-30", "31-40", "41-50", "51-60", ">60"];

/// Probability of "male" → the contract's gender label and its probability.
pub fn gender_label(p_male: f32) -> (&'static str, f32) {
    if p_male >= 0.5 {
        ("male", p_male)
    } else {
        ("female", 1.0 - p_male)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_age_uses_dlib_weights() {
        let mut p = vec![0.0; 81];
        p[30] = 0.5;
        p[40] = 0.5;
        assert!((dlib_expected_age(&p).unwrap() - 35.0).abs() < 1e-4);
        let mut baby = vec![0.0; 81];
        baby[0] = 1.0;
        assert!((dlib_expected_age(&baby).unwrap() - 0.25).abs() < 1e-6);
        assert!(dlib_expected_age(&[1.0; 7]).is_none());
        assert!(dlib_expected_age(&[0.0; 81]).is_none());
    }

    #[test]
    fn gender_labels() {
        assert_eq!(gender_label(0.8), ("male", 0.8));
        let (g, p) = gender_label(0.1);
        assert_eq!(g, "female");
        assert!((p - 0.9).abs() < 1e-6);
    }
}
