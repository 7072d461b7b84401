//! `facelens eval ...`: accuracy on labelled manifests, printed as one JSON object.

use crate::Profile;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use facelens_eval::wider::{evaluate_wider, load_wider_manifest};
use facelens_imaging::{DecodeLimits, decode};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

// Declared here rather than in main.rs so that the eval commands stay in one place.
#[path = "eval_attributes.rs"]
pub mod eval_attributes;
#[path = "eval_crops.rs"]
pub mod eval_crops;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// WIDER FACE protocol: easy / medium / hard AP at IoU 0.5.
    Detection(DetectionArgs),
    /// Face attributes on attributes/manifest.jsonl: age MAE, gender, emotion, smiling, eyes,
    /// glasses, race, cartoon (faces not found count as misses).
    Attributes(eval_attributes::AttributesArgs),
    /// Write the exact aligned crops, landmarks and mesh the pipeline computes for the largest
    /// face of each manifest image (`.npy`), for training models on the served pixels.
    Crops(eval_crops::CropsArgs),
}

#[derive(Args)]
pub struct DetectionArgs {
    /// detection/manifest.jsonl of the evaluation data.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Folder the manifest's `file` paths are relative to (default: the manifest's parent's parent).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Detector profile.
    #[arg(long, value_enum, default_value = "accurate")]
    pub profile: Profile,
    /// Longest side for the fast profile.
    #[arg(long, default_value_t = 640)]
    pub max_side: u32,
    /// Candidate score threshold (the WIDER protocol scores the whole precision-recall curve, so
    /// it is low; the service default is 0.5).
    #[arg(long, default_value_t = 0.02)]
    pub threshold: f32,
    /// Override the profile's passes: comma-separated `factor:min_face:max_face[:score_weight]`
    /// (sizes in original pixels, `inf` allowed), e.g. `1:0:inf,2:0:24:0.8`.
    #[arg(long)]
    pub passes: Option<String>,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write the predictions, one JSON line per image ({file, boxes: [[x, y, w, h, score]]}).
    #[arg(long)]
    pub preds_out: Option<PathBuf>,
}

pub fn run(engine: &crate::EngineArgs, cmd: EvalCommand) -> Result<ExitCode> {
    match cmd {
        EvalCommand::Detection(a) => detection(engine, a),
        EvalCommand::Attributes(a) => eval_attributes::run(engine, a),
        EvalCommand::Crops(a) => eval_crops::run(engine, a),
    }
}

pub(crate) fn default_root(manifest: &Path) -> PathBuf {
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn detection(engine: &crate::EngineArgs, a: DetectionArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("reading {}", a.manifest.display()))?;
    let mut gt = load_wider_manifest(&text)?;
    if let Some(n) = a.limit {
        gt.truncate(n);
    }
    if gt.is_empty() {
        bail!("the manifest lists no images");
    }
    let root = a.root.clone().unwrap_or_else(|| default_root(&a.manifest));
    let (pipeline, backend_name) = crate::load_pipeline(engine)?;
    let mut cfg = a.profile.config(a.max_side);
    cfg.score_threshold = a.threshold;
    if let Some(spec) = &a.passes {
        cfg.passes = parse_passes(spec)?;
    }
    cfg.max_faces = 1000;
    let limits = DecodeLimits {
        max_file_bytes: usize::MAX,
        ..DecodeLimits::default()
    };
    let mut preds: HashMap<String, Vec<[f64; 5]>> = HashMap::new();
    let mut out = match &a.preds_out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut per_image_ms = Vec::with_capacity(gt.len());
    let started = Instant::now();
    for g in &gt {
        let path = root.join(&g.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let t = Instant::now();
        let img =
            decode(&bytes, &limits).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let dets = pipeline.detect(&img.image, &cfg)?;
        per_image_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let boxes: Vec<[f64; 5]> = dets
            .iter()
            .map(|d| {
                let b = d.bbox;
                [
                    b.x1 as f64,
                    b.y1 as f64,
                    b.width() as f64,
                    b.height() as f64,
                    d.score as f64,
                ]
            })
            .collect();
        if let Some(w) = out.as_mut() {
            writeln!(w, "{}", json!({"file": g.file, "boxes": boxes}))?;
        }
        preds.insert(g.file.clone(), boxes);
    }
    let wall = started.elapsed().as_secs_f64();
    let report = evaluate_wider(&gt, &preds);
    per_image_ms.sort_by(|x, y| x.total_cmp(y));
    let median = per_image_ms[per_image_ms.len() / 2];
    let result = json!({
        "task": "detection",
        "protocol": "WIDER FACE, AP at IoU 0.5 per difficulty (official evaluation logic)",
        "easy": report.easy.ap,
        "medium": report.medium.ap,
        "hard": report.hard.ap,
        "faces": {"easy": report.easy.faces, "medium": report.medium.faces, "hard": report.hard.faces},
        "max_recall": {"easy": report.easy.max_recall, "medium": report.medium.max_recall, "hard": report.hard.max_recall},
        "images": gt.len(),
        "pred_boxes": report.n_pred_boxes,
        "images_per_second": gt.len() as f64 / wall,
        "median_ms_per_image": median,
        "settings": {
            "detector": "retinaface_mnet025",
            "profile": format!("{:?}", a.profile).to_lowercase(),
            "passes": format!("{:?}", cfg.passes),
            "score_threshold": cfg.score_threshold,
            "nms_iou": cfg.nms_iou,
            "backend": backend_name,
            "precision": pipeline.precision().name(),
            "threads": engine.threads,
        },
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(ExitCode::SUCCESS)
}

fn parse_passes(spec: &str) -> Result<Vec<facelens_vision::detect::Pass>> {
    use facelens_vision::detect::{Pass, PassScale};
    spec.split(',')
        .map(|p| {
            let parts: Vec<&str> = p.trim().split(':').collect();
            let (f, lo, hi, wt) = match parts.as_slice() {
                [f, lo, hi] => (*f, *lo, *hi, "1"),
                [f, lo, hi, wt] => (*f, *lo, *hi, *wt),
                _ => bail!("a pass is factor:min_face:max_face[:score_weight], got {p:?}"),
            };
            let num = |s: &str| -> Result<f32> {
                if s == "inf" {
                    Ok(f32::INFINITY)
                } else {
                    s.parse::<f32>()
                        .with_context(|| format!("bad number {s:?}"))
                }
            };
            Ok(Pass {
                scale: PassScale::Factor {
                    factor: num(f)?,
                    cap: 4096,
                },
                min_face: num(lo)?,
                max_face: num(hi)?,
                score_weight: num(wt)?,
            })
        })
        .collect()
}
