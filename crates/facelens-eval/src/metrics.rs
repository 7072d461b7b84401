//! Attribute metrics: MAE (with per-group breakdown), accuracy, confusion matrix and per-class
//! recall over string labels, binary ROC AUC and stratified k-fold splitting.
//!
//! Why these and why this way:
//! * Per-group MAE / per-class recall — an overall number hides exactly the failures we care
//!   about (e.g. age error on children or seniors, recall of rare classes such as sunglasses), so
//!   every aggregate comes with its breakdown and support counts.
//! * Labels are plain strings, not enums: the manifests carry several label vocabularies
//!   (`unsure` included) and the metrics should not need to change when one is added. Callers
//!   decide which labels to score (the README asks to drop `unsure` items first).
//! * ROC AUC uses the Mann–Whitney U statistic with average ranks for ties, computed in exact
//!   integer arithmetic until the final division, so it equals the trapezoidal ROC area (and
//!   scikit-learn's `roc_auc_score`) including ties between positives and negatives.
//! * Fold splitting takes a seed and uses [`SplitMix64`], so a split can be reproduced exactly
//!   from the seed alone.
//!
//! Undefined results (empty input, no positives...) are `None` / [`EvalError::Undefined`], never
//! NaN, so they cannot silently poison an average.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::rng::SplitMix64;

/// Mean absolute error over `(predicted, truth)` pairs; `None` when empty.
/// Non-finite values propagate (the result is then NaN or infinite).
pub fn mean_absolute_error(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let sum: f64 = pairs.iter().map(|(p, t)| (p - t).abs()).sum();
    Some(sum / pairs.len() as f64)
}

/// MAE of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMae {
    /// Number of samples in the group.
    pub n: usize,
    pub mae: f64,
}

/// MAE overall and per group (groups sorted by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaeReport {
    /// Total number of samples.
    pub n: usize,
    /// Overall MAE; `None` when there are no samples.
    pub mae: Option<f64>,
    pub groups: BTreeMap<String, GroupMae>,
}

/// MAE with a per-group breakdown from `(group, predicted, truth)` samples, e.g. grouped by
/// [`age_decade`] of the true age, or by gender.
pub fn mae_by_group<G, I>(samples: I) -> MaeReport
where
    G: Into<String>,
    I: IntoIterator<Item = (G, f64, f64)>,
{
    let mut sums: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let (mut n, mut total) = (0_usize, 0.0_f64);
    for (g, p, t) in samples {
        let e = (p - t).abs();
        let slot = sums.entry(g.into()).or_insert((0, 0.0));
        slot.0 += 1;
        slot.1 += e;
        n += 1;
        total += e;
    }
    MaeReport {
        n,
        mae: (n > 0).then(|| total / n as f64),
        groups: sums
            .into_iter()
            .map(|(g, (k, s))| {
                (
                    g,
                    GroupMae {
                        n: k,
                        mae: s / k as f64,
                    },
                )
            })
            .collect(),
    }
}

/// Decade bucket of an age in years: `0-9`, `10-19`, ..., `110-119`. The names are not
/// zero-padded, so their string order is not numeric (`100-109` sorts before `20-29`); sort by
/// the leading number when presenting a [`MaeReport`].
pub fn age_decade(age: u32) -> String {
    let lo = age / 10 * 10;
    format!("{lo}-{}", lo + 9)
}

/// Fraction of `(predicted, truth)` pairs that are equal; `None` when empty.
pub fn accuracy<T, I>(pairs: I) -> Option<f64>
where
    T: PartialEq,
    I: IntoIterator<Item = (T, T)>,
{
    let (mut n, mut ok) = (0_usize, 0_usize);
    for (p, t) in pairs {
        n += 1;
        ok += usize::from(p == t);
    }
    (n > 0).then(|| ok as f64 / n as f64)
}

/// Confusion matrix over string labels. `counts[i][j]` = number of samples whose **true** label
/// is `labels[i]` and whose **predicted** label is `labels[j]`. `labels` is the sorted union of
/// all true and predicted labels (plus any given up front).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

/// Recall of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRecall {
    /// Samples whose true label is this class.
    pub support: u64,
    /// Of those, predicted as this class.
    pub correct: u64,
    /// `correct / support`; `None` for a label that only occurs as a prediction.
    pub recall: Option<f64>,
}

impl ConfusionMatrix {
    /// Builds the matrix from `(predicted, truth)` pairs.
    pub fn from_pairs<P, T, I>(pairs: I) -> Self
    where
        P: AsRef<str>,
        T: AsRef<str>,
        I: IntoIterator<Item = (P, T)>,
    {
        Self::with_labels(std::iter::empty::<&str>(), pairs)
    }

    /// Like [`ConfusionMatrix::from_pairs`] but always includes `labels` (e.g. classes that may
    /// not occur in this sample), so matrices of different runs line up.
    pub fn with_labels<L, P, T, I>(labels: impl IntoIterator<Item = L>, pairs: I) -> Self
    where
        L: AsRef<str>,
        P: AsRef<str>,
        T: AsRef<str>,
        I: IntoIterator<Item = (P, T)>,
    {
        let pairs: Vec<(P, T)> = pairs.into_iter().collect();
        let mut set: BTreeSet<String> = labels.into_iter().map(|l| l.as_ref().to_owned()).collect();
        for (p, t) in &pairs {
            set.insert(p.as_ref().to_owned());
            set.insert(t.as_ref().to_owned());
        }
        let labels: Vec<String> = set.into_iter().collect();
        let mut counts = vec![vec![0_u64; labels.len()]; labels.len()];
        for (p, t) in &pairs {
            // Both are in `labels` by construction.
            if let (Ok(i), Ok(j)) = (
                labels.binary_search_by(|l| l.as_str().cmp(t.as_ref())),
                labels.binary_search_by(|l| l.as_str().cmp(p.as_ref())),
            ) {
                counts[i][j] += 1;
            }
        }
        Self { labels, counts }
    }

    fn index(&self, label: &str) -> Option<usize> {
        self.labels.binary_search_by(|l| l.as_str().cmp(label)).ok()
    }

    /// Number of samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Samples with true label `truth` predicted as `pred` (0 for unknown labels).
    pub fn count(&self, truth: &str, pred: &str) -> u64 {
        match (self.index(truth), self.index(pred)) {
            (Some(i), Some(j)) => self.counts[i][j],
            _ => 0,
        }
    }

    /// Overall accuracy (trace / total); `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        let diag: u64 = (0..self.labels.len()).map(|i| self.counts[i][i]).sum();
        (total > 0).then(|| diag as f64 / total as f64)
    }

    /// Recall of one class; `None` when the class has no true samples (or is unknown).
    pub fn recall(&self, label: &str) -> Option<f64> {
        let i = self.index(label)?;
        let support: u64 = self.counts[i].iter().sum();
        (support > 0).then(|| self.counts[i][i] as f64 / support as f64)
    }

    /// Precision of one class; `None` when the class is never predicted (or is unknown).
    pub fn precision(&self, label: &str) -> Option<f64> {
        let j = self.index(label)?;
        let predicted: u64 = self.counts.iter().map(|row| row[j]).sum();
        (predicted > 0).then(|| self.counts[j][j] as f64 / predicted as f64)
    }

    /// Recall with support for every label.
    pub fn per_class_recall(&self) -> BTreeMap<String, ClassRecall> {
        self.labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let support: u64 = self.counts[i].iter().sum();
                let correct = self.counts[i][i];
                let recall = (support > 0).then(|| correct as f64 / support as f64);
                (
                    l.clone(),
                    ClassRecall {
                        support,
                        correct,
                        recall,
                    },
                )
            })
            .collect()
    }

    /// Mean recall over the classes that have true samples (balanced accuracy); `None` when empty.
    pub fn balanced_accuracy(&self) -> Option<f64> {
        let recalls: Vec<f64> = self
            .per_class_recall()
            .values()
            .filter_map(|c| c.recall)
            .collect();
        (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64)
    }
}

/// Per-class recall from `(predicted, truth)` pairs (shorthand for the confusion matrix's).
pub fn per_class_recall<P, T, I>(pairs: I) -> BTreeMap<String, ClassRecall>
where
    P: AsRef<str>,
    T: AsRef<str>,
    I: IntoIterator<Item = (P, T)>,
{
    ConfusionMatrix::from_pairs(pairs).per_class_recall()
}

/// Binary ROC AUC from `(score, is_positive)` samples via the Mann–Whitney U statistic; tied
/// scores get the average rank (a tie between a positive and a negative counts 1/2).
///
/// Errors: [`EvalError::Undefined`] without positives or without negatives,
/// [`EvalError::InvalidArgument`] for a NaN or infinite score.
pub fn roc_auc(samples: &[(f64, bool)]) -> Result<f64, EvalError> {
    if samples.iter().any(|(s, _)| !s.is_finite()) {
        return Err(EvalError::InvalidArgument(
            "ROC AUC: scores must be finite".into(),
        ));
    }
    let n_pos = samples.iter().filter(|(_, p)| *p).count() as u128;
    let n_neg = samples.len() as u128 - n_pos;
    if n_pos == 0 {
        return Err(EvalError::Undefined("ROC AUC without positive samples"));
    }
    if n_neg == 0 {
        return Err(EvalError::Undefined("ROC AUC without negative samples"));
    }
    let mut sorted: Vec<(f64, bool)> = samples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Twice the rank sum of the positives, with 1-based average ranks: a tie group occupying
    // 0-based positions i..j has average rank (i + 1 + j) / 2.
    let mut rank_sum_x2: u128 = 0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        // `==` so that -0.0 and 0.0 tie, as they should.
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let pos_in_group = sorted[i..j].iter().filter(|(_, p)| *p).count() as u128;
        rank_sum_x2 += pos_in_group * (i as u128 + 1 + j as u128);
        i = j;
    }
    // U = R - n_pos (n_pos + 1) / 2  ->  2U = 2R - n_pos (n_pos + 1).
    let u_x2 = rank_sum_x2 - n_pos * (n_pos + 1);
    Ok(u_x2 as f64 / (2 * n_pos * n_neg) as f64)
}

/// Pearson's correlation of `(predicted, truth)` pairs; `None` with fewer than two pairs, when
/// either side is constant, or when a value is not finite.
pub fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 || pairs.iter().any(|(p, t)| !p.is_finite() || !t.is_finite()) {
        return None;
    }
    let n = pairs.len() as f64;
    let (mp, mt) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (p, t)| (a + p / n, b + t / n));
    let (mut spt, mut spp, mut stt) = (0.0, 0.0, 0.0);
    for (p, t) in pairs {
        let (dp, dt) = (p - mp, t - mt);
        spt += dp * dt;
        spp += dp * dp;
        stt += dt * dt;
    }
    let d = (spp * stt).sqrt();
    (d > 0.0).then(|| (spt / d).clamp(-1.0, 1.0))
}

/// 1-based ranks with ties given their average rank (as `scipy.stats.rankdata`); values must be
/// finite.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && values[order[j]] == values[order[i]] {
            j += 1;
        }
        // positions i..j (0-based) share the rank (i + 1 + j) / 2
        let r = (i + 1 + j) as f64 / 2.0;
        for &k in &order[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Spearman's rank correlation of `(predicted, truth)` pairs: Pearson's on average ranks (ties
/// handled as `scipy.stats.spearmanr`); `None` as for [`pearson`].
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.iter().any(|(p, t)| !p.is_finite() || !t.is_finite()) {
        return None;
    }
    let p: Vec<f64> = pairs.iter().map(|x| x.0).collect();
    let t: Vec<f64> = pairs.iter().map(|x| x.1).collect();
    let ranked: Vec<(f64, f64)> = average_ranks(&p)
        .into_iter()
        .zip(average_ranks(&t))
        .collect();
    pearson(&ranked)
}

/// One fold of a k-fold split: indices into the labels slice, both sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Stratified k-fold split with a fixed seed.
///
/// Indices are grouped by label (labels in sorted order), each group is shuffled with
/// [`SplitMix64`] seeded by `seed`, and the concatenated groups are dealt round-robin to the
/// folds. Hence every index is in exactly one test fold, each class's count differs by at most
/// one between folds, and so do the fold sizes. Same labels + same seed = same split.
///
/// Errors: `k < 2` or `k > labels.len()`.
pub fn stratified_k_fold<L: Ord>(
    labels: &[L],
    k: usize,
    seed: u64,
) -> Result<Vec<Fold>, EvalError> {
    if k < 2 || k > labels.len() {
        return Err(EvalError::InvalidArgument(format!(
            "stratified k-fold needs 2 <= k <= number of samples ({}), got k = {k}",
            labels.len()
        )));
    }
    let mut groups: BTreeMap<&L, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        groups.entry(l).or_default().push(i);
    }
    let mut rng = SplitMix64::new(seed);
    let mut fold_of = vec![0_usize; labels.len()];
    let mut pos = 0_usize;
    for members in groups.values_mut() {
        rng.shuffle(members);
        for &idx in members.iter() {
            fold_of[idx] = pos % k;
            pos += 1;
        }
    }
    Ok((0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..labels.len()).partition(|&i| fold_of[i] == f);
            Fold { train, test }
        })
        .collect())
}

#[cfg(test)]
mod tests {

    #[test]
    fn pearson_on_hand_computed_values() {
        // p = [1, 2, 3], t = [1, 3, 2]: deviations (-1, 0, 1) and (-1, 1, 0), sum of products 1,
        // sums of squares 2 and 2 -> r = 1 / 2.
        let r = pearson(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)]).expect("defined");
        assert!((r - 0.5).abs() < 1e-12, "{r}");
        // a positive linear map is exactly 1, a negative one exactly -1
        let up: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3.0 * i as f64 + 1.0)).collect();
        assert!((pearson(&up).expect("defined") - 1.0).abs() < 1e-12);
        let down: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, -2.0 * i as f64)).collect();
        assert!((pearson(&down).expect("defined") + 1.0).abs() < 1e-12);
        // undefined: one pair, a constant side, NaN
        assert_eq!(pearson(&[(1.0, 2.0)]), None);
        assert_eq!(pearson(&[(1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(pearson(&[(1.0, 2.0), (f64::NAN, 3.0)]), None);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            vec![1.5, 3.0, 1.5, 4.0]
        );
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
    }

    #[test]
    fn spearman_on_hand_computed_values() {
        // Monotone but not linear: Spearman 1, Pearson below 1.
        let pairs: Vec<(f64, f64)> = (1..6).map(|i| (i as f64, (i as f64).powi(3))).collect();
        assert!((spearman(&pairs).expect("defined") - 1.0).abs() < 1e-12);
        assert!(pearson(&pairs).expect("defined") < 0.99);
        // p = [1, 2, 3, 4], t = [1, 3, 2, 4]: ranks equal values; d^2 = 0 + 1 + 1 + 0 = 2,
        // rho = 1 - 6 * 2 / (4 * 15) = 0.8.
        let r = spearman(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (4.0, 4.0)]).expect("defined");
        assert!((r - 0.8).abs() < 1e-12, "{r}");
        // with a tie in the truth: t ranks [1.5, 1.5, 3] against p ranks [1, 2, 3]:
        // deviations (-1, 0, 1) and (-0.5, -0.5, 1) -> 1.5 / sqrt(2 * 1.5) = 0.866...
        let r = spearman(&[(1.0, 5.0), (2.0, 5.0), (3.0, 9.0)]).expect("defined");
        assert!((r - 1.5 / 3f64.sqrt()).abs() < 1e-12, "{r}");
    }
    use super::*;

    #[test]
    fn mae_basic_and_empty() {
        assert_eq!(mean_absolute_error(&[]), None);
        assert_eq!(mean_absolute_error(&[(1.0, 3.0), (5.0, 4.0)]), Some(1.5));
    }

    #[test]
    fn mae_grouped() {
        let r = mae_by_group([
            (age_decade(23), 25.0, 23.0),
            (age_decade(27), 20.0, 27.0),
            (age_decade(5), 5.0, 5.0),
        ]);
        assert_eq!(r.n, 3);
        assert_eq!(r.mae, Some(3.0));
        assert_eq!(r.groups["20-29"], GroupMae { n: 2, mae: 4.5 });
        assert_eq!(r.groups["0-9"], GroupMae { n: 1, mae: 0.0 });
        let empty = mae_by_group(Vec::<(&str, f64, f64)>::new());
        assert_eq!((empty.n, empty.mae, empty.groups.len()), (0, None, 0));
        let by_gender = mae_by_group([("male", 30.0, 31.0), ("female", 40.0, 37.0)]);
        assert_eq!(by_gender.groups["female"].mae, 3.0);
    }

    #[test]
    fn decades() {
        assert_eq!(age_decade(0), "0-9");
        assert_eq!(age_decade(9), "0-9");
        assert_eq!(age_decade(10), "10-19");
        assert_eq!(age_decade(116), "110-119");
    }

    #[test]
    fn accuracy_basic() {
        assert_eq!(accuracy(Vec::<(&str, &str)>::new()), None);
        assert_eq!(
            accuracy([("a", "a"), ("b", "a"), ("b", "b"), ("c", "b")]),
            Some(0.5)
        );
        assert_eq!(accuracy([(true, true), (false, true)]), Some(0.5));
    }

    #[test]
    fn confusion_matrix_and_recall() {
        // (pred, truth)
        let pairs = [
            ("happy", "happy"),
            ("happy", "happy"),
            ("neutral", "happy"),
            ("sad", "sad"),
            ("happy", "sad"),
            ("fear", "sad"),
            ("fear", "sad"),
        ];
        let cm = ConfusionMatrix::from_pairs(pairs);
        assert_eq!(cm.labels, vec!["fear", "happy", "neutral", "sad"]);
        assert_eq!(cm.total(), 7);
        assert_eq!(cm.count("happy", "neutral"), 1);
        assert_eq!(cm.count("sad", "fear"), 2);
        assert_eq!(cm.count("sad", "nonexistent"), 0);
        assert_eq!(cm.accuracy(), Some(3.0 / 7.0));
        assert_eq!(cm.recall("happy"), Some(2.0 / 3.0));
        assert_eq!(cm.recall("sad"), Some(0.25));
        assert_eq!(cm.recall("fear"), None); // never a true label
        assert_eq!(cm.precision("happy"), Some(2.0 / 3.0));
        assert_eq!(cm.precision("fear"), Some(0.0));
        let pcr = cm.per_class_recall();
        assert_eq!(
            pcr["sad"],
            ClassRecall {
                support: 4,
                correct: 1,
                recall: Some(0.25)
            }
        );
        assert_eq!(pcr["fear"].support, 0);
        assert_eq!(cm.balanced_accuracy(), Some((2.0 / 3.0 + 0.25) / 2.0));
        assert_eq!(per_class_recall(pairs), pcr);
        // Rows sum to support, columns to predictions.
        assert_eq!(cm.counts[3].iter().sum::<u64>(), 4);

        let fixed = ConfusionMatrix::with_labels(["surprise"], [("a", "a")]);
        assert_eq!(fixed.labels, vec!["a", "surprise"]);
        assert_eq!(fixed.recall("surprise"), None);
        assert_eq!(
            ConfusionMatrix::from_pairs(Vec::<(&str, &str)>::new()).accuracy(),
            None
        );
    }

    #[test]
    fn auc_perfect_inverse_and_ties() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(roc_auc(&perfect).unwrap(), 1.0);
        let inverse = [(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        assert_eq!(roc_auc(&inverse).unwrap(), 0.0);
        // All tied -> 0.5.
        let tied = [(0.5, false), (0.5, true), (0.5, true), (0.5, false)];
        assert_eq!(roc_auc(&tied).unwrap(), 0.5);
        // Classic example: scores [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1] -> 0.75
        // (scikit-learn's roc_auc_score docs).
        let sk = [(0.1, false), (0.4, false), (0.35, true), (0.8, true)];
        assert_eq!(roc_auc(&sk).unwrap(), 0.75);
        // One positive/negative tie among 2x2 pairs: pairs (p, n): 1 + 1 + 0.5 + 1 = 3.5 / 4.
        let one_tie = [(0.3, false), (0.5, false), (0.5, true), (0.9, true)];
        assert_eq!(roc_auc(&one_tie).unwrap(), 0.875);
        // -0.0 and 0.0 tie.
        assert_eq!(roc_auc(&[(-0.0, false), (0.0, true)]).unwrap(), 0.5);
    }

    #[test]
    fn auc_matches_brute_force_pair_count() {
        let mut rng = SplitMix64::new(99);
        let samples: Vec<(f64, bool)> = (0..300)
            .map(|_| {
                let pos = rng.next_f64() < 0.3;
                // Coarse scores to create many ties; positives shifted up.
                let s = ((rng.next_f64() * 10.0).floor() + if pos { 2.0 } else { 0.0 }) / 12.0;
                (s, pos)
            })
            .collect();
        let (mut num, mut den) = (0.0, 0.0);
        for &(sp, p) in &samples {
            for &(sn, n) in &samples {
                if p && !n {
                    den += 1.0;
                    num += if sp > sn {
                        1.0
                    } else if sp == sn {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&samples).unwrap() - num / den).abs() < 1e-12);
    }

    #[test]
    fn auc_undefined_cases() {
        assert!(matches!(roc_auc(&[]), Err(EvalError::Undefined(_))));
        assert!(matches!(
            roc_auc(&[(0.1, true)]),
            Err(EvalError::Undefined(_))
        ));
        assert!(matches!(
            roc_auc(&[(0.1, false)]),
            Err(EvalError::Undefined(_))
        ));
        assert!(matches!(
            roc_auc(&[(f64::NAN, false), (0.2, true)]),
            Err(EvalError::InvalidArgument(_))
        ));
    }

    #[test]
    fn stratified_folds_partition_and_balance() {
        let mut labels = Vec::new();
        labels.extend(std::iter::repeat_n("a", 23));
        labels.extend(std::iter::repeat_n("b", 7));
        labels.extend(std::iter::repeat_n("c", 11));
        let k = 5;
        let folds = stratified_k_fold(&labels, k, 1234).unwrap();
        assert_eq!(folds.len(), k);
        let mut seen = vec![0; labels.len()];
        let mut sizes = Vec::new();
        for f in &folds {
            assert_eq!(f.train.len() + f.test.len(), labels.len());
            assert!(f.test.windows(2).all(|w| w[0] < w[1]));
            assert!(f.train.windows(2).all(|w| w[0] < w[1]));
            for &i in &f.test {
                seen[i] += 1;
                assert!(!f.train.contains(&i));
            }
            sizes.push(f.test.len());
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "each index in exactly one test fold"
        );
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        for class in ["a", "b", "c"] {
            let per: Vec<usize> = folds
                .iter()
                .map(|f| f.test.iter().filter(|&&i| labels[i] == class).count())
                .collect();
            assert!(
                per.iter().max().unwrap() - per.iter().min().unwrap() <= 1,
                "{class}: {per:?}"
            );
        }
        // Deterministic for a seed, different for another.
        assert_eq!(folds, stratified_k_fold(&labels, k, 1234).unwrap());
        assert_ne!(folds, stratified_k_fold(&labels, k, 4321).unwrap());
    }

    #[test]
    fn stratified_folds_reject_bad_k() {
        assert!(stratified_k_fold(&[1, 2, 3], 1, 0).is_err());
        assert!(stratified_k_fold(&[1, 2, 3], 4, 0).is_err());
        assert!(stratified_k_fold::<u8>(&[], 2, 0).is_err());
        assert_eq!(stratified_k_fold(&[1, 2, 3], 3, 0).unwrap().len(), 3);
    }
}
