//! Race: GEAR's five UTKFace classes mapped onto the contract's four.
//!
//! GEAR outputs `[white, black, asian, indian, other]` (UTKFace's labels; "other" there means
//! Hispanic, Latino and Middle Eastern). The contract (Baidu's taxonomy) has `yellow`, `white`,
//! `black` and `arabs`. The mapping: asian → yellow, white → white, black → black, and
//! indian + other → arabs. The last one is the questionable part: neither South Asian nor
//! Latino people are "Arab", but among the contract's four values "arabs" is the one Baidu uses
//! for the Middle-East / South-Asia range, and folding both into it keeps the probabilities
//! summing to one instead of inventing a split. Documented in docs/accuracy.md.

/// GEAR's race labels, in output order.
pub const GEAR_RACES: [&str; 5] = ["white", "black", "asian", "indian", "other"];

/// The contract's race labels.
pub const CONTRACT_RACES: [&str; 4] = ["yellow", "white", "black", "arabs"];

/// GEAR probabilities `[white, black, asian, indian, other]` → the contract's
/// `[yellow, white, black, arabs]` (renormalised).
pub fn to_contract(gear: &[f32]) -> Option<[f32; 4]> {
    if gear.len() != 5 {
        return None;
    }
    let mapped = [gear[2], gear[0], gear[1], gear[3] + gear[4]];
    let total: f32 = mapped.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    Some(mapped.map(|p| p / total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_folds_indian_and_other_into_arabs() {
        let p = to_contract(&[0.1, 0.2, 0.3, 0.15, 0.25]).unwrap();
        assert!((p[0] - 0.3).abs() < 1e-6); // yellow = asian
        assert!((p[1] - 0.1).abs() < 1e-6); // white
        assert!((p[2] - 0.2).abs() < 1e-6); // black
        assert!((p[3] - 0.4).abs() < 1e-6); // arabs = indian + other
        assert!(to_contract(&[1.0; 4]).is_none());
        assert_eq!(CONTRACT_RACES[0], "yellow");
    }
}
