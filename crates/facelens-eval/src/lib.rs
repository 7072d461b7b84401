//! Offline evaluation for Facelens: metrics and evaluation-manifest parsing.
//!
//! This crate is deliberately pure: no models, no image decoding, no file system access in the
//! library itself (loaders take the manifest *text*). That keeps every number it produces
//! reproducible from the manifests and the predictions alone, and lets the metrics be unit-tested
//! on tiny synthetic inputs without the (non-redistributable) evaluation data.
//!
//! * [`wider`] — WIDER FACE easy/medium/hard AP, a faithful port of the widely used
//!   `widerface_evaluate` logic (via our reference `wider_eval.py`). The official quirks are
//!   replicated on purpose: published detector numbers are computed with them, so a "cleaner"
//!   evaluator would produce numbers that cannot be compared with the literature or with the
//!   Python tooling the team already uses.
//! * [`metrics`] — attribute metrics: MAE with per-group breakdown, accuracy, confusion matrix and
//!   per-class recall over string labels, binary ROC AUC (Mann–Whitney) and stratified k-fold
//!   splitting.
//! * [`attributes`] — parser for the attribute manifest joined with the visually reviewed labels.
//! * [`rng`] — a tiny deterministic PRNG (SplitMix64) so splits are reproducible from a seed
//!   without an external RNG crate.
//!
//! The evaluation data itself must never be committed to the repository; tests that need it look
//! for it outside the workspace (see the crate's `tests/` directory) and skip when it is absent.

pub mod attributes;
pub mod error;
pub mod metrics;
pub mod rng;
pub mod wider;

pub use attributes::{AttributeRecord, UNSURE, load_attribute_manifest};
pub use error::EvalError;
pub use metrics::{
    ClassRecall, ConfusionMatrix, Fold, GroupMae, MaeReport, accuracy, age_decade, mae_by_group,
    mean_absolute_error, pearson, per_class_recall, roc_auc, spearman, stratified_k_fold,
};
pub use rng::SplitMix64;
pub use wider::{
    Difficulty, WiderGt, WiderReport, WiderSettingResult, evaluate_wider, evaluate_wider_with_iou,
    load_wider_manifest, load_wider_predictions,
};

/// Where the development evaluation data lives for tests and local runs: `FACELENS_EVALDATA`, or
/// `../shared/evaldata` beside the repository (as on the project's machines and in CI). `None`
/// when neither holds the data; tests then print "skipped" instead of failing, because the data
/// is never committed and a user's clone does not have it.
pub fn evaldata_dir() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("FACELENS_EVALDATA") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/evaldata"
        )),
    };
    (dir.join("detection/manifest.jsonl").is_file()
        || dir.join("attributes/manifest.jsonl").is_file())
    .then_some(dir)
}
