//! `facelens detect`: analyse local image files.

use crate::Profile;
use anyhow::Result;
use clap::Args;
use facelens_core::error::FaceError;
use facelens_core::juhe::{Envelope, JuheFace, token_id};
use facelens_core::{ErrorCode, types::Analysis};
use facelens_imaging::DecodeLimits;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Args)]
pub struct DetectArgs {
    /// Image files (jpg, png, bmp).
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Return at most this many faces per image, the largest first (1..=10 like the contract;
    /// larger values are allowed here).
    #[arg(long, default_value_t = 1)]
    pub face_num: usize,
    /// One JSON object per line (the default).
    #[arg(long, conflicts_with = "pretty")]
    pub json: bool,
    /// Indented JSON.
    #[arg(long)]
    pub pretty: bool,
    /// Include the 468-point mesh of each face.
    #[arg(long)]
    pub mesh: bool,
    /// Detector profile.
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: Profile,
    /// Longest image side the fast profile detects at.
    #[arg(long, default_value_t = 640)]
    pub max_side: u32,
}

/// The CLI's output for one image: the contract's envelope plus image facts and extra fields.
pub fn image_report(
    file: &str,
    bytes: &[u8],
    outcome: Result<Analysis, FaceError>,
    include_mesh: bool,
) -> Value {
    match outcome {
        Ok(a) if a.faces.is_empty() => {
            error_report(file, &FaceError::from(ErrorCode::NoFace), Some(&a))
        }
        Ok(a) => {
            let faces: Vec<Value> = a
                .faces
                .iter()
                .map(|f| {
                    let mut v = serde_json::to_value(JuheFace::from_face(f, token_id(bytes, f)))
                        .unwrap_or(Value::Null);
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert(
                            "mesh_score".into(),
                            json!(f.mesh_score.map(|v| round(v, 4))),
                        );
                        if include_mesh {
                            obj.insert(
                                "mesh".into(),
                                json!(f.mesh.as_ref().map(|m| {
                                    m.iter().map(|p| p.map(|c| round(c, 2))).collect::<Vec<_>>()
                                })),
                            );
                        }
                    }
                    v
                })
                .collect();
            let mut v = json!({
                "reason": "success",
                "result": {"face_num": faces.len(), "face_list": faces},
                "error_code": 0,
                "file": file,
            });
            v["image"] =
                json!({"width": a.width, "height": a.height, "orientation": a.orientation});
            let t = &a.timings;
            v["timings"] = json!({
                "decode_ms": round(t.decode_ms, 2),
                "detect_ms": round(t.detect_ms, 2),
                "landmarks_ms": round(t.landmarks_ms, 2),
                "attributes_ms": round(t.attributes_ms, 2),
                "total_ms": round(t.total_ms, 2),
            });
            v
        }
        Err(e) => error_report(file, &e, None),
    }
}

/// Round an f32 in f64 so JSON shows short decimals.
fn round(v: f32, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v as f64 * m).round() / m
}

fn error_report(file: &str, e: &FaceError, a: Option<&Analysis>) -> Value {
    let mut v = serde_json::to_value(Envelope::<Value>::from(e)).unwrap_or(Value::Null);
    v["file"] = json!(file);
    v["detail"] = json!(if e.code == ErrorCode::NoFace {
        e.code.english().to_string()
    } else {
        e.detail.clone()
    });
    if let Some(a) = a {
        v["image"] = json!({"width": a.width, "height": a.height, "orientation": a.orientation});
    }
    v
}

pub fn run(backend: &str, threads: usize, args: DetectArgs) -> Result<ExitCode> {
    let (pipeline, _) = crate::load_pipeline(backend, threads)?;
    let opts = facelens_vision::Options {
        max_faces: args.face_num.max(1),
        include_mesh: args.mesh,
        detector: args.profile.config(args.max_side),
        ..facelens_vision::Options::default()
    };
    let limits = DecodeLimits::default();
    let mut failures = 0usize;
    for file in &args.images {
        let report = match std::fs::read(file) {
            Ok(bytes) => image_report(
                file,
                &bytes,
                pipeline.analyze_bytes(&bytes, &limits, &opts),
                args.mesh,
            ),
            Err(e) => {
                let mut v = json!({"file": file, "error": format!("cannot read file: {e}")});
                v["error_code"] = json!(null);
                v
            }
        };
        if report["error_code"] != json!(0) {
            failures += 1;
        }
        let text = if args.pretty {
            serde_json::to_string_pretty(&report)?
        } else {
            serde_json::to_string(&report)?
        };
        println!("{text}");
    }
    // Exit 1 when any image got an error (including "no face"), so scripts can tell.
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
