//! WIDER FACE detection evaluation (easy / medium / hard AP at IoU 0.5).
//!
//! This is a faithful port of the team's reference `wider_eval.py`, itself a re-implementation of
//! the widely used `widerface_evaluate/evaluation.py` (the Python port of the official WIDER FACE
//! MATLAB protocol, e.g. in biubug6/Pytorch_Retinaface). Every detector paper reports numbers from
//! that code, so we replicate its behaviour *including its quirks* instead of writing a "clean" AP:
//! a cleaner evaluator would give numbers that are not comparable with published results or with
//! the Python tooling. The port is checked against `wider_eval.py` to 1e-9 (in practice bit for
//! bit) by `tests/wider_crosscheck.rs`.
//!
//! The protocol, step by step:
//!
//! 1. **Score normalisation over the whole run** (`norm_score`): all prediction scores of all
//!    images (including images that are not in the manifest) are min-max normalised with
//!    `lo = min(1, min score)` and `hi = max(0, max score)` — the official code starts its running
//!    minimum at 1 and maximum at 0. Scores already in `0..=1` keep their order and are only
//!    stretched; scores above 1 (e.g. logits) are mapped with `lo = 1`, not their real minimum.
//!    A run whose scores give `hi <= lo` is normalised to 1.0 (the Python divides by zero there).
//! 2. **Per-image greedy matching**: predictions are sorted by normalised score (descending,
//!    stable); each one is matched to the ground-truth box with the highest IoU, using the `+1`
//!    pixel convention of `box_overlaps.pyx` on boxes converted with `x2 = x + w` (not `x + w - 1`).
//!    If that IoU is `>= 0.5` and the box is *ignored* for the difficulty (flagged `invalid`, or not
//!    in the difficulty's keep list) the prediction is removed from the proposal count; otherwise
//!    the box becomes recalled. A second hit on an already recalled box stays a false positive.
//! 3. **PR curve over 1000 thresholds** `1 - (t + 1) / 1000`, summed over images; precision is
//!    (recalled boxes) / (non-ignored proposals); recall is divided by the number of keep-list
//!    boxes of the difficulty (all images, including those without predictions).
//! 4. **VOC AP** with the precision envelope (monotone from the right), summed over the recall
//!    steps. The final sum uses NumPy's pairwise summation so the result matches bit for bit.
//!
//! Deviations from the Python, all no-ops for well-formed input: prediction rows with a non-finite
//! coordinate or score are dropped before evaluation (and counted in
//! [`WiderReport::n_pred_nonfinite`]); ground-truth label lists shorter than `boxes` are padded
//! with "not listed" / "not invalid" instead of raising (the loader rejects such lines anyway).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// Number of score thresholds of the PR curve (official value).
pub const THRESH_NUM: usize = 1000;
/// IoU threshold of the official protocol.
pub const DEFAULT_IOU_THRESH: f64 = 0.5;

/// The three official WIDER FACE difficulty settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    /// All settings in the official order.
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard];

    /// Lower-case name as used in the manifest and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }
}

/// Ground truth of one image (one line of `detection/manifest.jsonl`).
///
/// `boxes` are `[x, y, w, h]` in pixels (official WIDER order). `invalid`, `easy`, `medium` and
/// `hard` are parallel to `boxes`; [`load_wider_manifest`] guarantees equal lengths (a missing or
/// empty `invalid` list means "none invalid", as in the Python).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WiderGt {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    pub boxes: Vec<[f64; 4]>,
    pub invalid: Vec<bool>,
    pub easy: Vec<bool>,
    pub medium: Vec<bool>,
    pub hard: Vec<bool>,
}

impl WiderGt {
    /// The difficulty's list membership flags (parallel to `boxes`).
    pub fn listed(&self, d: Difficulty) -> &[bool] {
        match d {
            Difficulty::Easy => &self.easy,
            Difficulty::Medium => &self.medium,
            Difficulty::Hard => &self.hard,
        }
    }

    /// Per box: counted for difficulty `d` (in its keep list and not invalid). Always
    /// `boxes.len()` long; missing entries of the label lists count as not listed / not invalid.
    pub fn keep(&self, d: Difficulty) -> Vec<bool> {
        let listed = self.listed(d);
        (0..self.boxes.len())
            .map(|i| {
                listed.get(i).copied().unwrap_or(false)
                    && !self.invalid.get(i).copied().unwrap_or(false)
            })
            .collect()
    }

    /// Number of boxes counted for difficulty `d`.
    pub fn num_kept(&self, d: Difficulty) -> usize {
        self.keep(d).iter().filter(|&&k| k).count()
    }
}

#[derive(Deserialize)]
struct RawGtLine {
    file: String,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    boxes: Vec<[f64; 4]>,
    #[serde(default)]
    invalid: Option<Vec<bool>>,
    easy: Vec<bool>,
    medium: Vec<bool>,
    hard: Vec<bool>,
}

const MANIFEST: &str = "detection manifest";
const PREDICTIONS: &str = "predictions";

/// Parses `detection/manifest.jsonl` text (one JSON object per line, blank lines skipped).
///
/// Extra fields (`blur`, `demographics`, ...) are ignored. Fails on invalid JSON or when a
/// label list's length differs from the number of boxes.
pub fn load_wider_manifest(text: &str) -> Result<Vec<WiderGt>, EvalError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawGtLine = serde_json::from_str(line).map_err(|source| EvalError::Json {
            what: MANIFEST,
            line: line_no,
            source,
        })?;
        let n = raw.boxes.len();
        // Python: `m.get('invalid') or [False] * len(gt)` — missing, null and [] mean "none".
        let invalid = match raw.invalid {
            Some(v) if !v.is_empty() => v,
            _ => vec![false; n],
        };
        for (name, len) in [
            ("invalid", invalid.len()),
            ("easy", raw.easy.len()),
            ("medium", raw.medium.len()),
            ("hard", raw.hard.len()),
        ] {
            if len != n {
                return Err(EvalError::InvalidLine {
                    what: MANIFEST,
                    line: line_no,
                    msg: format!("{}: `{name}` has {len} entries for {n} boxes", raw.file),
                });
            }
        }
        out.push(WiderGt {
            file: raw.file,
            width: raw.width,
            height: raw.height,
            boxes: raw.boxes,
            invalid,
            easy: raw.easy,
            medium: raw.medium,
            hard: raw.hard,
        });
    }
    Ok(out)
}

/// Parses a predictions jsonl: one line per image,
/// `{"file": <manifest file>, "boxes": [[x, y, w, h, score], ...]}`.
///
/// As in `wider_eval.py`, lines that are not objects with both `file` and `boxes` are skipped and
/// a later line for the same file replaces an earlier one. Fails on invalid JSON or on a box that
/// is not an array of 5 numbers.
pub fn load_wider_predictions(text: &str) -> Result<HashMap<String, Vec<[f64; 5]>>, EvalError> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|source| EvalError::Json {
                what: PREDICTIONS,
                line: line_no,
                source,
            })?;
        let (Some(file), Some(boxes)) = (value.get("file"), value.get("boxes")) else {
            continue;
        };
        let Some(file) = file.as_str() else {
            return Err(EvalError::InvalidLine {
                what: PREDICTIONS,
                line: line_no,
                msg: "`file` is not a string".into(),
            });
        };
        let boxes: Vec<[f64; 5]> =
            serde_json::from_value(boxes.clone()).map_err(|source| EvalError::Json {
                what: PREDICTIONS,
                line: line_no,
                source,
            })?;
        out.insert(file.to_owned(), boxes);
    }
    Ok(out)
}

/// AP and recall of one difficulty setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WiderSettingResult {
    /// VOC-style average precision.
    pub ap: f64,
    /// Number of counted (keep-list, non-invalid) ground-truth boxes.
    pub faces: u64,
    /// Highest recall reached on the PR curve.
    pub max_recall: f64,
}

/// Result of [`evaluate_wider`]. Serialises with the same keys as `wider_eval.py --json`
/// (plus `n_pred_nonfinite`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WiderReport {
    pub easy: WiderSettingResult,
    pub medium: WiderSettingResult,
    pub hard: WiderSettingResult,
    /// Number of manifest entries evaluated.
    pub n_images: usize,
    /// Manifest entries that have a prediction entry (possibly empty).
    pub n_images_with_preds: usize,
    /// Prediction rows of manifest images (as given, before dropping non-finite rows).
    pub n_pred_boxes: usize,
    /// Prediction rows of manifest images dropped because a value was NaN or infinite.
    #[serde(default)]
    pub n_pred_nonfinite: usize,
}

impl WiderReport {
    /// Result of one difficulty.
    pub fn get(&self, d: Difficulty) -> &WiderSettingResult {
        match d {
            Difficulty::Easy => &self.easy,
            Difficulty::Medium => &self.medium,
            Difficulty::Hard => &self.hard,
        }
    }
}

/// Evaluates with the official IoU threshold 0.5. See the module docs for the protocol.
///
/// `preds` maps a manifest `file` to its predictions `[x, y, w, h, score]`; images without an
/// entry count as "no detections". Entries for files not in `gt` still take part in the global
/// score normalisation, exactly as in the Python.
pub fn evaluate_wider(gt: &[WiderGt], preds: &HashMap<String, Vec<[f64; 5]>>) -> WiderReport {
    evaluate_wider_with_iou(gt, preds, DEFAULT_IOU_THRESH)
}

/// [`evaluate_wider`] with a custom IoU threshold (`--iou` of `wider_eval.py`).
pub fn evaluate_wider_with_iou(
    gt: &[WiderGt],
    preds: &HashMap<String, Vec<[f64; 5]>>,
    iou_thresh: f64,
) -> WiderReport {
    let finite = |r: &[f64; 5]| r.iter().all(|v| v.is_finite());

    // 1. Global min-max normalisation with the official initialisation (lo = 1, hi = 0).
    let mut lo = 1.0_f64;
    let mut hi = 0.0_f64;
    for r in preds.values().flatten().filter(|r| finite(r)) {
        lo = lo.min(r[4]);
        hi = hi.max(r[4]);
    }
    let norm = |s: f64| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 };

    let mut n_images_with_preds = 0;
    let mut n_pred_boxes = 0;
    let mut n_pred_nonfinite = 0;
    let mut faces = [0_u64; 3];
    // pr_curve[d][t] = (non-ignored proposals, recalled boxes); integer sums are exact.
    let mut pr_curve = [[(0_u64, 0_u64); THRESH_NUM]; 3];

    for img in gt {
        let kept: Vec<Vec<bool>> = Difficulty::ALL.iter().map(|&d| img.keep(d)).collect();
        for (f, k) in faces.iter_mut().zip(&kept) {
            *f += k.iter().filter(|&&x| x).count() as u64;
        }
        let Some(rows) = preds.get(&img.file) else {
            continue;
        };
        n_images_with_preds += 1;
        n_pred_boxes += rows.len();
        let mut p: Vec<[f64; 5]> = Vec::with_capacity(rows.len());
        for r in rows {
            if finite(r) {
                let mut r = *r;
                r[4] = norm(r[4]);
                p.push(r);
            } else {
                n_pred_nonfinite += 1;
            }
        }
        if img.boxes.is_empty() || p.is_empty() {
            continue;
        }
        // Stable sort by descending score (np.argsort(-s, kind='stable')). Scores are finite.
        p.sort_by(|a, b| b[4].partial_cmp(&a[4]).unwrap_or(Ordering::Equal));
        let overlaps = bbox_overlaps(&p, &img.boxes);
        let scores: Vec<f64> = p.iter().map(|r| r[4]).collect();
        for (curve, keep) in pr_curve.iter_mut().zip(&kept) {
            let (pred_recall, proposal) = image_eval(&overlaps, keep, iou_thresh);
            img_pr_info(curve, &scores, &proposal, &pred_recall);
        }
    }

    let [easy, medium, hard] = std::array::from_fn(|d| {
        let denom = faces[d].max(1) as f64;
        let mut prec = [0.0_f64; THRESH_NUM];
        let mut rec = [0.0_f64; THRESH_NUM];
        for (t, &(props, recalled)) in pr_curve[d].iter().enumerate() {
            prec[t] = if props > 0 {
                recalled as f64 / props as f64
            } else {
                0.0
            };
            rec[t] = recalled as f64 / denom;
        }
        WiderSettingResult {
            ap: voc_ap(&rec, &prec),
            faces: faces[d],
            max_recall: rec.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    });
    WiderReport {
        easy,
        medium,
        hard,
        n_images: gt.len(),
        n_images_with_preds,
        n_pred_boxes,
        n_pred_nonfinite,
    }
}

/// Pixel-convention IoU of one prediction `[x, y, w, h, ..]` with one ground-truth `[x, y, w, h]`,
/// exactly as `bbox_overlaps` (boxes converted with `x2 = x + w`, widths `x2 - x1 + 1`).
pub fn wider_iou(pred: &[f64], gt: &[f64; 4]) -> f64 {
    let (Some(&px), Some(&py), Some(&pw), Some(&ph)) =
        (pred.first(), pred.get(1), pred.get(2), pred.get(3))
    else {
        return 0.0;
    };
    let b = [px, py, px + pw, py + ph];
    let q = [gt[0], gt[1], gt[0] + gt[2], gt[1] + gt[3]];
    let iw = b[2].min(q[2]) - b[0].max(q[0]) + 1.0;
    let ih = b[3].min(q[3]) - b[1].max(q[1]) + 1.0;
    let inter = if iw > 0.0 && ih > 0.0 { iw * ih } else { 0.0 };
    let qa = (q[2] - q[0] + 1.0) * (q[3] - q[1] + 1.0);
    let ba = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let ua = ba + qa - inter;
    if inter > 0.0 { inter / ua } else { 0.0 }
}

/// IoU matrix, `pred.len()` rows of `gt.len()` columns.
fn bbox_overlaps(pred: &[[f64; 5]], gt: &[[f64; 4]]) -> Vec<Vec<f64>> {
    pred.iter()
        .map(|p| gt.iter().map(|g| wider_iou(p, g)).collect())
        .collect()
}

/// NumPy `max` / `argmax` of a non-empty row: NaN propagates (first NaN wins), ties go to the
/// first index.
fn max_argmax(row: &[f64]) -> Option<(f64, usize)> {
    let (&first, rest) = row.split_first()?;
    let (mut best, mut idx) = (first, 0);
    if best.is_nan() {
        return Some((best, idx));
    }
    for (j, &v) in rest.iter().enumerate() {
        if v.is_nan() {
            return Some((v, j + 1));
        }
        if v > best {
            best = v;
            idx = j + 1;
        }
    }
    Some((best, idx))
}

/// Greedy matching of one image for one difficulty (`image_eval`). Returns, per prediction in
/// score order, the number of recalled boxes so far and whether it still counts as a proposal.
fn image_eval(overlaps: &[Vec<f64>], keep: &[bool], iou_thresh: f64) -> (Vec<u64>, Vec<bool>) {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Open,
        Recalled,
        Ignored,
    }
    let n_gt = overlaps.first().map_or(0, Vec::len);
    let mut state = vec![State::Open; n_gt];
    let mut recalled = 0_u64;
    let mut pred_recall = Vec::with_capacity(overlaps.len());
    let mut proposal = Vec::with_capacity(overlaps.len());
    for row in overlaps {
        let mut is_proposal = true;
        if let Some((max_overlap, idx)) = max_argmax(row)
            && max_overlap >= iou_thresh
        {
            if !keep.get(idx).copied().unwrap_or(false) {
                state[idx] = State::Ignored;
                is_proposal = false;
            } else if state[idx] == State::Open {
                state[idx] = State::Recalled;
                recalled += 1;
            }
        }
        pred_recall.push(recalled);
        proposal.push(is_proposal);
    }
    (pred_recall, proposal)
}

/// Adds one image's PR counts at the 1000 thresholds to `curve` (`img_pr_info`).
fn img_pr_info(
    curve: &mut [(u64, u64); THRESH_NUM],
    scores: &[f64],
    proposal: &[bool],
    pred_recall: &[u64],
) {
    let cum_prop: Vec<u64> = proposal
        .iter()
        .scan(0_u64, |acc, &p| {
            *acc += u64::from(p);
            Some(*acc)
        })
        .collect();
    for (t, slot) in curve.iter_mut().enumerate() {
        let thresh = 1.0 - (t + 1) as f64 / THRESH_NUM as f64;
        // Count over all scores, as the Python does (equal to the prefix length when sorted).
        let n = scores.iter().filter(|&&s| s >= thresh).count();
        if n == 0 {
            continue;
        }
        if let (Some(&c), Some(&r)) = (cum_prop.get(n - 1), pred_recall.get(n - 1)) {
            slot.0 += c;
            slot.1 += r;
        }
    }
}

/// VOC AP with the precision envelope (`voc_ap`).
fn voc_ap(rec: &[f64], prec: &[f64]) -> f64 {
    let mut mrec = Vec::with_capacity(rec.len() + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(rec);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(prec.len() + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(prec);
    mpre.push(0.0);
    for i in (1..mpre.len()).rev() {
        mpre[i - 1] = mpre[i - 1].max(mpre[i]);
    }
    let terms: Vec<f64> = (0..mrec.len().saturating_sub(1))
        .filter(|&i| mrec[i + 1] != mrec[i])
        .map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1])
        .collect();
    numpy_sum(&terms)
}

/// `np.sum` of a contiguous float64 array: the identity 0.0 plus NumPy's pairwise summation
/// (blocks of 128, 8 accumulators). Matching it makes the AP equal to the Python bit for bit.
fn numpy_sum(a: &[f64]) -> f64 {
    0.0 + pairwise_sum(a)
}

fn pairwise_sum(a: &[f64]) -> f64 {
    const PW_BLOCKSIZE: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= PW_BLOCKSIZE {
        let mut r = [0.0_f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One image with the given boxes; every box in every keep list, none invalid.
    fn img(file: &str, boxes: &[[f64; 4]]) -> WiderGt {
        let n = boxes.len();
        WiderGt {
            file: file.into(),
            boxes: boxes.to_vec(),
            invalid: vec![false; n],
            easy: vec![true; n],
            medium: vec![true; n],
            hard: vec![true; n],
            ..Default::default()
        }
    }

    fn preds(entries: &[(&str, Vec<[f64; 5]>)]) -> HashMap<String, Vec<[f64; 5]>> {
        entries
            .iter()
            .map(|(f, v)| (f.to_string(), v.clone()))
            .collect()
    }

    fn with_score(b: [f64; 4], s: f64) -> [f64; 5] {
        [b[0], b[1], b[2], b[3], s]
    }

    const A: [f64; 4] = [10.0, 10.0, 20.0, 20.0];
    const B: [f64; 4] = [100.0, 100.0, 30.0, 40.0];
    const C: [f64; 4] = [200.0, 50.0, 16.0, 16.0];

    #[test]
    fn ground_truth_as_predictions_gives_ap_one() {
        let gt = vec![img("a.jpg", &[A, B]), img("b.jpg", &[C])];
        let p = preds(&[
            ("a.jpg", vec![with_score(A, 0.9), with_score(B, 0.3)]),
            ("b.jpg", vec![with_score(C, 0.6)]),
        ]);
        let r = evaluate_wider(&gt, &p);
        for d in Difficulty::ALL {
            assert_eq!(r.get(d).ap, 1.0, "{d:?}");
            assert_eq!(r.get(d).max_recall, 1.0);
            assert_eq!(r.get(d).faces, 3);
        }
        assert_eq!(
            (r.n_images, r.n_images_with_preds, r.n_pred_boxes),
            (2, 2, 3)
        );
    }

    #[test]
    fn equal_scores_and_logit_scores_also_give_ap_one() {
        let gt = vec![img("a.jpg", &[A, B, C])];
        for scores in [[1.0, 1.0, 1.0], [7.5, 3.0, 12.0], [-4.0, -2.0, -9.0]] {
            let p = preds(&[(
                "a.jpg",
                vec![
                    with_score(A, scores[0]),
                    with_score(B, scores[1]),
                    with_score(C, scores[2]),
                ],
            )]);
            assert_eq!(evaluate_wider(&gt, &p).hard.ap, 1.0, "{scores:?}");
        }
    }

    #[test]
    fn no_predictions_gives_zero() {
        let gt = vec![img("a.jpg", &[A, B])];
        let r = evaluate_wider(&gt, &HashMap::new());
        assert_eq!(r.easy.ap, 0.0);
        assert_eq!(r.easy.max_recall, 0.0);
        assert_eq!(r.easy.faces, 2);
        assert_eq!(r.n_images_with_preds, 0);
    }

    #[test]
    fn far_false_positive_above_every_true_box_lowers_ap() {
        // Two true boxes found at scores 0.8 / 0.6 plus a far-away FP at 1.0.
        // Normalisation: lo = min(1, 0.6) = 0.6, hi = 1.0 -> FP 1.0, A 0.5, B 0.0.
        // Thresholds 0.999..0.5: only the FP passes -> precision 0, recall 0.
        // Thresholds 0.499..0.0: FP + A -> precision 1/2 at recall 1/2; at 0.0: 2/3 at recall 1.
        // Envelope: recall 0.5 -> max(1/2, 2/3) = 2/3; recall 1 -> 2/3. AP = 2/3.
        let fp = [-1000.0, -1000.0, 10.0, 10.0, 1.0];
        let gt = vec![img("a.jpg", &[A, B])];
        let p = preds(&[("a.jpg", vec![with_score(A, 0.8), fp, with_score(B, 0.6)])]);
        let r = evaluate_wider(&gt, &p);
        assert!((r.hard.ap - 2.0 / 3.0).abs() < 1e-15, "{}", r.hard.ap);
        assert_eq!(r.hard.max_recall, 1.0);

        // The same FP *below* every true box does not change AP.
        let fp_low = [-1000.0, -1000.0, 10.0, 10.0, 0.1];
        let p = preds(&[(
            "a.jpg",
            vec![with_score(A, 0.8), fp_low, with_score(B, 0.6)],
        )]);
        assert_eq!(evaluate_wider(&gt, &p).hard.ap, 1.0);
    }

    #[test]
    fn equal_scored_false_positive_per_box_gives_half_precision() {
        // Python selftest `gt_plus_one_fp_each`: every box plus an equally scored far FP.
        let fp = [-1000.0, -1000.0, 10.0, 10.0, 1.0];
        let gt = vec![img("a.jpg", &[A, B, C])];
        let p = preds(&[(
            "a.jpg",
            vec![
                with_score(A, 1.0),
                with_score(B, 1.0),
                with_score(C, 1.0),
                fp,
                fp,
                fp,
            ],
        )]);
        assert_eq!(evaluate_wider(&gt, &p).hard.ap, 0.5);
    }

    #[test]
    fn ignored_boxes_are_not_false_positives() {
        // B is invalid, C is not in the easy list: detecting them must not cost precision, and
        // they do not count as faces to recall.
        let mut g = img("a.jpg", &[A, B, C]);
        g.invalid[1] = true;
        g.easy[2] = false;
        let gt = vec![g];
        let p = preds(&[(
            "a.jpg",
            vec![with_score(B, 0.9), with_score(C, 0.8), with_score(A, 0.7)],
        )]);
        let r = evaluate_wider(&gt, &p);
        assert_eq!(r.easy.faces, 1);
        assert_eq!(r.easy.ap, 1.0);
        assert_eq!(r.hard.faces, 2); // C counts for hard, B (invalid) never does
        assert_eq!(r.hard.ap, 1.0);

        // Control: the same top-scored detection far from every box is a real FP.
        let p = preds(&[(
            "a.jpg",
            vec![
                [500.0, 500.0, 20.0, 20.0, 0.9],
                with_score(C, 0.8),
                with_score(A, 0.7),
            ],
        )]);
        assert!(evaluate_wider(&gt, &p).easy.ap < 1.0);
    }

    #[test]
    fn second_hit_on_recalled_box_is_false_positive() {
        let gt = vec![img("a.jpg", &[A])];
        let dup = [A[0] + 1.0, A[1], A[2], A[3], 0.9];
        let p = preds(&[("a.jpg", vec![with_score(A, 1.0), dup])]);
        let r = evaluate_wider(&gt, &p);
        // At thresholds where only the first passes: P=1, R=1 -> envelope 1 at recall 1.
        assert_eq!(r.hard.ap, 1.0);
        let p = preds(&[(
            "a.jpg",
            vec![with_score(A, 1.0), [A[0] + 1.0, A[1], A[2], A[3], 1.0]],
        )]);
        // Both equal: precision 1/2 at recall 1.
        assert_eq!(evaluate_wider(&gt, &p).hard.ap, 0.5);
    }

    #[test]
    fn plus_one_iou_convention() {
        // Identical boxes: IoU 1.
        assert_eq!(wider_iou(&A, &A), 1.0);
        // Boxes [0,0,10,10] -> x2 = 10; "touching" box starting at x = 10 shares the pixel column
        // x = 10 under the +1 convention: inter = 1 * 11, areas 11 * 11.
        let g = [0.0, 0.0, 10.0, 10.0];
        let iou = wider_iou(&[10.0, 0.0, 10.0, 10.0], &g);
        assert_eq!(iou, 11.0 / (121.0 + 121.0 - 11.0));
        // Without the +1 it would be 0. One pixel further there is no overlap.
        assert_eq!(wider_iou(&[11.0, 0.0, 10.0, 10.0], &g), 0.0);
        // Half-shifted box: inter 6 * 11 = 66, union 242 - 66 = 176 -> 0.375 (plain IoU: 1/3).
        assert_eq!(wider_iou(&[5.0, 0.0, 10.0, 10.0], &g), 66.0 / 176.0);
        // A tiny box: 0x0 is still a 1x1 pixel.
        assert_eq!(wider_iou(&[3.0, 3.0, 0.0, 0.0], &[3.0, 3.0, 0.0, 0.0]), 1.0);
    }

    #[test]
    fn plus_one_convention_decides_a_match() {
        // A prediction where the two conventions disagree: gt [0,0,10,10], pred shifted 3.4 in x.
        // +1: iw = 10 - 3.4 + 1 = 7.6, inter 83.6, union 158.4 -> 0.5278 (match);
        // plain: 6.6*10 / (200 - 66) = 0.4925 (no match).
        let g = [0.0, 0.0, 10.0, 10.0];
        let p = [3.4, 0.0, 10.0, 10.0, 1.0];
        assert!(wider_iou(&p, &g) >= 0.5);
        let gt = vec![img("a.jpg", &[g])];
        let r = evaluate_wider(&gt, &preds(&[("a.jpg", vec![p])]));
        assert_eq!(r.hard.ap, 1.0);
    }

    #[test]
    fn predictions_for_unknown_files_still_normalise_scores() {
        // A (0.5005) above a far FP (0.5). Alone: lo = 0.5, hi = 0.5005 -> A 1.0, FP 0.0 -> AP 1.
        // A 10.0 in a file outside the manifest makes hi = 10: A -> 5.3e-5, FP -> 0.0, both only
        // pass the last threshold (0.0) together -> precision 1/2 -> AP 0.5.
        let gt = vec![img("a.jpg", &[A])];
        let fp = [500.0, 500.0, 20.0, 20.0, 0.5];
        let base = preds(&[("a.jpg", vec![with_score(A, 0.5005), fp])]);
        let with_extra = {
            let mut p = base.clone();
            p.insert("other.jpg".into(), vec![[0.0, 0.0, 5.0, 5.0, 10.0]]);
            p
        };
        assert_eq!(evaluate_wider(&gt, &base).hard.ap, 1.0);
        let r = evaluate_wider(&gt, &with_extra);
        assert_eq!(r.hard.ap, 0.5);
        assert_eq!(r.n_images_with_preds, 1);
        assert_eq!(r.n_pred_boxes, 2);
    }

    #[test]
    fn norm_score_quirk_minimum_starts_at_one() {
        // Scores above 1: the official norm_score uses lo = 1, not the real minimum 2.0.
        // A 2.0005 -> 1.0, FP 2.0 -> 0.9995: both pass the first threshold (0.999) together ->
        // precision 1/2 everywhere -> AP 0.5. (With lo = 2.0 the FP would map to 0 and AP be 1.)
        let gt = vec![img("a.jpg", &[A])];
        let fp = [500.0, 500.0, 20.0, 20.0, 2.0];
        let r = evaluate_wider(&gt, &preds(&[("a.jpg", vec![with_score(A, 2.0005), fp])]));
        assert_eq!(r.hard.ap, 0.5);
    }

    #[test]
    fn recall_divided_by_keep_list_boxes_of_all_images() {
        // Two images, one without predictions: recall tops out at 1/2.
        let gt = vec![img("a.jpg", &[A]), img("b.jpg", &[B])];
        let r = evaluate_wider(&gt, &preds(&[("a.jpg", vec![with_score(A, 0.9)])]));
        assert_eq!(r.hard.max_recall, 0.5);
        assert_eq!(r.hard.ap, 0.5);
    }

    #[test]
    fn nonfinite_rows_are_dropped() {
        let gt = vec![img("a.jpg", &[A])];
        let p = preds(&[(
            "a.jpg",
            vec![
                with_score(A, 0.9),
                [f64::NAN, 0.0, 1.0, 1.0, 1.0],
                with_score(B, f64::INFINITY),
            ],
        )]);
        let r = evaluate_wider(&gt, &p);
        assert_eq!(r.hard.ap, 1.0);
        assert_eq!(r.n_pred_boxes, 3);
        assert_eq!(r.n_pred_nonfinite, 2);
    }

    #[test]
    fn short_label_lists_do_not_panic() {
        let g = WiderGt {
            file: "a.jpg".into(),
            boxes: vec![A, B],
            easy: vec![true],
            ..Default::default()
        };
        let r = evaluate_wider(&[g], &preds(&[("a.jpg", vec![with_score(B, 0.9)])]));
        assert_eq!(r.easy.faces, 1);
        assert_eq!(r.medium.faces, 0);
        assert_eq!(r.medium.ap, 0.0);
    }

    #[test]
    fn manifest_parsing() {
        let text = concat!(
            r#"{"file": "a.jpg", "width": 100, "height": 80, "boxes": [[1, 2, 3, 4], [5, 6, 7, 8]], "#,
            r#""invalid": [false, true], "easy": [true, false], "medium": [true, true], "hard": [true, true], "blur": [0, 1]}"#,
            "\n\n",
            r#"{"file": "b.jpg", "boxes": [], "easy": [], "medium": [], "hard": []}"#,
            "\n",
            r#"{"file": "c.jpg", "boxes": [[1, 2, 3, 4]], "invalid": [], "easy": [true], "medium": [true], "hard": [true]}"#,
        );
        let gt = load_wider_manifest(text).unwrap();
        assert_eq!(gt.len(), 3);
        assert_eq!(gt[0].boxes[1], [5.0, 6.0, 7.0, 8.0]);
        assert_eq!(gt[0].width, Some(100));
        assert_eq!(gt[0].keep(Difficulty::Easy), vec![true, false]);
        assert_eq!(gt[0].keep(Difficulty::Hard), vec![true, false]);
        assert_eq!(gt[1].boxes.len(), 0);
        assert_eq!(gt[2].invalid, vec![false]);

        let bad = r#"{"file": "a.jpg", "boxes": [[1, 2, 3, 4]], "easy": [], "medium": [true], "hard": [true]}"#;
        let err = load_wider_manifest(bad).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("easy"), "{err}");
        let err = load_wider_manifest("\n{not json").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(load_wider_manifest(r#"{"file": "a", "boxes": [[1, 2, 3]], "easy": [true], "medium": [true], "hard": [true]}"#).is_err());
    }

    #[test]
    fn predictions_parsing() {
        let text = concat!(
            r#"{"file": "a.jpg", "boxes": [[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.25]]}"#,
            "\n",
            r#"{"something": "else"}"#,
            "\n",
            r#"{"file": "b.jpg", "boxes": []}"#,
            "\n",
            r#"{"file": "a.jpg", "boxes": [[1, 2, 3, 4, 0.75]]}"#,
        );
        let p = load_wider_predictions(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p["a.jpg"], vec![[1.0, 2.0, 3.0, 4.0, 0.75]]);
        assert!(p["b.jpg"].is_empty());
        assert!(load_wider_predictions(r#"{"file": "a", "boxes": [[1, 2, 3, 4]]}"#).is_err());
        assert!(load_wider_predictions(r#"{"file": 3, "boxes": []}"#).is_err());
    }

    #[test]
    fn report_serialises_with_python_keys() {
        let r = evaluate_wider(&[img("a.jpg", &[A])], &HashMap::new());
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "easy",
            "medium",
            "hard",
            "n_images",
            "n_images_with_preds",
            "n_pred_boxes",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["easy"].get("ap").is_some() && v["easy"].get("faces").is_some());
        let back: WiderReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn pairwise_sum_matches_naive_on_exact_values() {
        let v: Vec<f64> = (0..1001).map(|i| i as f64).collect();
        assert_eq!(numpy_sum(&v), 500_500.0);
        assert_eq!(numpy_sum(&[]), 0.0);
        assert_eq!(numpy_sum(&[1.5, 2.5]), 4.0);
    }
}
