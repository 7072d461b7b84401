//! Cross-check of the Rust WIDER evaluator against the reference `wider_eval.py` on the real
//! development manifest (300 WIDER FACE val images).
//!
//! The evaluation data is never committed: it is looked up in `$FACELENS_EVALDATA`, else in
//! `shared/evaldata` next to the workspace; without it the tests print
//! "skipped: evaldata not found" and pass.

use std::collections::HashMap;
use std::path::PathBuf;

use facelens_eval::{
    Difficulty, SplitMix64, WiderGt, WiderReport, evaluate_wider, load_wider_manifest,
    load_wider_predictions,
};

fn evaldata_dir() -> Option<PathBuf> {
    facelens_eval::evaldata_dir().filter(|d| d.join("detection/manifest.jsonl").is_file())
}

fn load_manifest() -> Option<Vec<WiderGt>> {
    let Some(dir) = evaldata_dir() else {
        facelens_testkit::skip(
            "no development evaluation data (../shared/evaldata or FACELENS_EVALDATA)",
        );
        return None;
    };
    let text = std::fs::read_to_string(dir.join("detection/manifest.jsonl")).unwrap();
    Some(load_wider_manifest(&text).unwrap())
}

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    /// Scores floor(50u)/50 in [0, 1): many ties.
    A,
    /// Scores 2 + 3u (all > 1, norm_score quirk) + a score-9.0 prediction outside the manifest.
    B,
}

impl Scenario {
    fn seed(self) -> u64 {
        match self {
            Scenario::A => 20_240_601,
            Scenario::B => 777,
        }
    }
    fn score(self, u: f64) -> f64 {
        match self {
            Scenario::A => (u * 50.0).floor() / 50.0,
            Scenario::B => 2.0 + 3.0 * u,
        }
    }
}

/// Rust twin of `generate()` in `tests/wider_crosscheck.py`: same PRNG draws, same float
/// operations in the same order, hence bit-identical predictions.
fn generate(gt: &[WiderGt], scenario: Scenario) -> HashMap<String, Vec<[f64; 5]>> {
    let mut rng = SplitMix64::new(scenario.seed());
    let mut out = HashMap::new();
    for m in gt {
        let w_img = f64::from(m.width.unwrap());
        let h_img = f64::from(m.height.unwrap());
        let r = rng.next_f64();
        if r < 0.05 {
            continue;
        }
        let mut boxes = Vec::new();
        if r >= 0.08 {
            for &[x, y, w, h] in &m.boxes {
                if rng.next_f64() < 0.25 {
                    continue;
                }
                let jx = (rng.next_f64() - 0.5) * 0.4 * w;
                let jy = (rng.next_f64() - 0.5) * 0.4 * h;
                let sw = 1.0 + (rng.next_f64() - 0.5) * 0.4;
                let sh = 1.0 + (rng.next_f64() - 0.5) * 0.4;
                let s = scenario.score(rng.next_f64());
                let p = [x + jx, y + jy, w * sw, h * sh, s];
                boxes.push(p);
                if rng.next_f64() < 0.1 {
                    boxes.push([p[0] + 1.0, p[1] + 1.0, p[2], p[3], s * 0.5]);
                }
            }
            let nfp = (rng.next_f64() * 4.0).floor() as usize;
            for _ in 0..nfp {
                let fw = 8.0 + rng.next_f64() * 60.0;
                let fh = fw * (0.8 + rng.next_f64() * 0.6);
                let fx = rng.next_f64() * (w_img - fw);
                let fy = rng.next_f64() * (h_img - fh);
                let s = scenario.score(rng.next_f64() * 0.7);
                boxes.push([fx, fy, fw, fh, s]);
            }
        }
        out.insert(m.file.clone(), boxes);
    }
    if scenario == Scenario::B {
        out.insert(
            "extra/not_in_manifest.jpg".into(),
            vec![[0.0, 0.0, 10.0, 10.0, 9.0]],
        );
    }
    out
}

/// (ap, faces, max_recall) for easy / medium / hard, plus (n_images, n_images_with_preds,
/// n_pred_boxes).
type Expected = ([(f64, u64, f64); 3], (usize, usize, usize));

// Expected values come from the reference Python evaluator `wider_eval.py` (numpy 2.4.6),
// run on the dev manifest with the predictions of `tests/wider_crosscheck.py`. To regenerate,
// run the commands in that script's docstring and copy `ap`, `faces`, `max_recall` and the
// `n_*` counts from /tmp/wider_expected_{a,b}.json (printed with full `repr` precision).
const EXPECTED_A: Expected = (
    [
        (0.32236758032366974, 625, 0.6048),
        (0.4390916070457328, 1282, 0.6279251170046802),
        (0.533166563807179, 2982, 0.6401743796109993),
    ],
    (300, 284, 2840),
);
const EXPECTED_B: Expected = (
    [
        (0.38183208990898465, 625, 0.6384),
        (0.49566631450582793, 1282, 0.6630265210608425),
        (0.5785435673097195, 2982, 0.6666666666666666),
    ],
    (300, 288, 2906),
);

// `gt_plus_one_fp_each` of `wider_eval.py --selftest` (every gt box with score 1.0 plus one
// equally scored far-away false positive per box), full precision via
// `wider_eval.evaluate(...)[setting]['ap']` from Python.
const EXPECTED_GT_PLUS_FP: [f64; 3] =
    [0.16170763260025872, 0.28350287483414416, 0.4792671166827387];

const TOL: f64 = 1e-9;

fn check(report: &WiderReport, expected: &Expected, label: &str) {
    for (d, &(ap, faces, max_recall)) in Difficulty::ALL.iter().zip(&expected.0) {
        let got = report.get(*d);
        println!(
            "{label} {}: rust ap {:.17} python {:.17} (diff {:.1e})",
            d.name(),
            got.ap,
            ap,
            (got.ap - ap).abs()
        );
        assert!(
            (got.ap - ap).abs() < TOL,
            "{label} {d:?} ap {} vs {ap}",
            got.ap
        );
        assert!(
            (got.max_recall - max_recall).abs() < TOL,
            "{label} {d:?} max_recall"
        );
        assert_eq!(got.faces, faces, "{label} {d:?} faces");
    }
    assert_eq!(
        (
            report.n_images,
            report.n_images_with_preds,
            report.n_pred_boxes
        ),
        expected.1,
        "{label} counts"
    );
    assert_eq!(report.n_pred_nonfinite, 0);
}

#[test]
fn manifest_matches_readme_counts() {
    let Some(gt) = load_manifest() else { return };
    assert_eq!(gt.len(), 300);
    assert_eq!(gt.iter().map(|g| g.boxes.len()).sum::<usize>(), 3240);
    let invalid: usize = gt
        .iter()
        .map(|g| g.invalid.iter().filter(|&&b| b).count())
        .sum();
    assert_eq!(invalid, 13);
}

#[test]
fn scenario_a_matches_python() {
    let Some(gt) = load_manifest() else { return };
    let report = evaluate_wider(&gt, &generate(&gt, Scenario::A));
    check(&report, &EXPECTED_A, "A");
}

#[test]
fn scenario_b_matches_python() {
    let Some(gt) = load_manifest() else { return };
    let report = evaluate_wider(&gt, &generate(&gt, Scenario::B));
    check(&report, &EXPECTED_B, "B");
}

#[test]
fn generated_predictions_survive_jsonl_round_trip() {
    // The Python evaluator reads the predictions from jsonl; make sure the loader + evaluator
    // give the same numbers from the serialised form.
    let Some(gt) = load_manifest() else { return };
    let preds = generate(&gt, Scenario::A);
    let mut files: Vec<&String> = preds.keys().collect();
    files.sort();
    let text: String = files
        .iter()
        .map(|f| serde_json::json!({"file": f, "boxes": preds[*f]}).to_string() + "\n")
        .collect();
    let loaded = load_wider_predictions(&text).unwrap();
    assert_eq!(loaded.len(), preds.len());
    // Bit-exact float round trip (needs serde_json's `float_roundtrip`).
    let differing = preds
        .iter()
        .filter(|(f, rows)| loaded.get(*f) != Some(rows))
        .count();
    assert_eq!(
        differing, 0,
        "images whose predictions changed in the jsonl round trip"
    );
    check(&evaluate_wider(&gt, &loaded), &EXPECTED_A, "A(jsonl)");
}

#[test]
fn selftest_cases_match_python() {
    let Some(gt) = load_manifest() else { return };
    let gt_preds: HashMap<String, Vec<[f64; 5]>> = gt
        .iter()
        .map(|g| {
            let rows = g
                .boxes
                .iter()
                .map(|b| [b[0], b[1], b[2], b[3], 1.0])
                .collect();
            (g.file.clone(), rows)
        })
        .collect();
    let r = evaluate_wider(&gt, &gt_preds);
    for d in Difficulty::ALL {
        assert_eq!(r.get(d).ap, 1.0, "gt as preds {d:?}");
    }

    let mut rng = SplitMix64::new(5);
    let random_scores: HashMap<String, Vec<[f64; 5]>> = gt_preds
        .iter()
        .map(|(f, rows)| {
            let rows = rows
                .iter()
                .map(|r| [r[0], r[1], r[2], r[3], rng.next_f64()])
                .collect();
            (f.clone(), rows)
        })
        .collect();
    let r = evaluate_wider(&gt, &random_scores);
    for d in Difficulty::ALL {
        assert!(
            (r.get(d).ap - 1.0).abs() < 1e-12,
            "gt random scores {d:?}: {}",
            r.get(d).ap
        );
    }

    let with_fp: HashMap<String, Vec<[f64; 5]>> = gt_preds
        .iter()
        .map(|(f, rows)| {
            let mut rows = rows.clone();
            let n = rows.len();
            rows.extend(std::iter::repeat_n([-1000.0, -1000.0, 10.0, 10.0, 1.0], n));
            (f.clone(), rows)
        })
        .collect();
    let r = evaluate_wider(&gt, &with_fp);
    for (d, &ap) in Difficulty::ALL.iter().zip(&EXPECTED_GT_PLUS_FP) {
        assert!(
            (r.get(*d).ap - ap).abs() < TOL,
            "gt+fp {d:?}: {} vs {ap}",
            r.get(*d).ap
        );
    }

    let r = evaluate_wider(&gt, &HashMap::new());
    for d in Difficulty::ALL {
        assert_eq!(r.get(d).ap, 0.0);
    }
}
