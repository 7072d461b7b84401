//! `facelens eval attributes`: attribute accuracy on the labelled face crops of
//! `attributes/manifest.jsonl` (joined with `visual_labels.jsonl`), printed as one JSON object.
//!
//! Every image goes through the full service pipeline (detect with the padded retry → mesh →
//! attributes) with the service defaults, and the largest face is scored. An image where no face
//! is found, or where an attribute is absent, counts as a miss (a wrong answer) for every label
//! it has — it is never dropped, so the figures are what a client would get. The one exception
//! is age, which is a number: a missing age is scored as a guess of [`AGE_WHEN_MISSING`] years.
//!
//! The headline sets follow the data README: age/gender/race on the random UTKFace sample
//! (`attributes/utkface/`; `utkface_extra/` was *selected* for glasses and laughs, so it only
//! enters the per-class glasses/expression/eye figures), emotion on FER2013, smiling on
//! SMILEsmileD (+ CelebA and the visual labels, reported separately), closed eyes on CEW.

use anyhow::{Context, Result, bail};
use clap::Args;
use facelens_core::types::{Attributes, Timings};
use facelens_eval::attributes::{AttributeRecord, UNSURE, load_attribute_manifest};
use facelens_eval::metrics::{ConfusionMatrix, accuracy, age_decade, mae_by_group};
use facelens_imaging::{DecodeLimits, decode};
use facelens_vision::attributes::AttributeFeatures;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Age (years) scored for a face that was not found or got no age.
pub const AGE_WHEN_MISSING: f64 = 30.0;

#[derive(Args)]
pub struct AttributesArgs {
    /// attributes/manifest.jsonl of the evaluation data.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Folder the manifest's `file` paths are relative to (default: the manifest's parent's parent).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// attributes/visual_labels.jsonl (glasses / eyes / expression by visual review).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write one JSON line per image: file, labels, found, attributes and raw model features.
    #[arg(long)]
    pub features_out: Option<PathBuf>,
    /// Longest image side the (fast, service default) detector profile works at.
    #[arg(long, default_value_t = 640)]
    pub max_side: u32,
    /// Lowest detector score the padded retry accepts for a face that fills the frame (default:
    /// the library's; 0.5 switches the low-confidence retry off).
    #[arg(long)]
    pub retry_threshold: Option<f32>,
}

/// What the pipeline said about one image.
struct Outcome {
    rec: AttributeRecord,
    attrs: Option<Attributes>,
}

pub fn run(engine: &crate::EngineArgs, a: AttributesArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("reading {}", a.manifest.display()))?;
    let visual = match &a.labels {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let mut records = load_attribute_manifest(&text, visual.as_deref())?;
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    if records.is_empty() {
        bail!("the manifest lists no images");
    }
    let root = a
        .root
        .clone()
        .unwrap_or_else(|| super::default_root(&a.manifest));
    let (pipeline, backend_name) = crate::load_pipeline(engine)?;
    let mut opts = facelens_vision::Options {
        max_faces: 1,
        detector: facelens_vision::DetectorConfig::fast(a.max_side),
        // The face-type head's features need the mesh; only the features file wants them.
        include_mesh: a.features_out.is_some(),
        ..facelens_vision::Options::default()
    };
    if let Some(t) = a.retry_threshold {
        opts.detector.retry_score_threshold = t;
    }
    let limits = DecodeLimits {
        max_file_bytes: usize::MAX,
        ..DecodeLimits::default()
    };
    let mut out = match &a.features_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let mut outcomes = Vec::with_capacity(records.len());
    let mut attr_ms = Vec::with_capacity(records.len());
    let started = Instant::now();
    for rec in records {
        let path = root.join(&rec.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let img =
            decode(&bytes, &limits).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut timings = Timings::default();
        let faces = pipeline.analyze_image_with_features(&img.image, &opts, &mut timings)?;
        let first = faces.into_iter().next();
        if first.is_some() {
            attr_ms.push(timings.attributes_ms as f64);
        }
        if let Some(w) = out.as_mut() {
            let mut labels = serde_json::to_value(&rec)?;
            if let Some(o) = labels.as_object_mut() {
                for k in ["file", "origin", "celeba_attributes"] {
                    o.remove(k);
                }
            }
            let line = match &first {
                Some((face, feats)) => json!({
                    "file": rec.file, "labels": labels, "found": true,
                    "bbox": [face.bbox.x1, face.bbox.y1, face.bbox.x2, face.bbox.y2],
                    "pose": face.pose, "attributes": face.attributes,
                    "features": feats,
                    "cartoon_features": face.mesh.as_deref().map(|mesh| {
                        facelens_vision::heuristics::cartoon::cartoon_features(
                            &img.image, &face.bbox, mesh,
                            face.mesh_score.unwrap_or(0.0), face.score)
                    }),
                }),
                None => json!({"file": rec.file, "labels": labels, "found": false,
                    "features": AttributeFeatures::default()}),
            };
            writeln!(w, "{line}")?;
        }
        outcomes.push(Outcome {
            rec,
            attrs: first.map(|(f, _)| f.attributes),
        });
    }
    if let Some(w) = out.as_mut() {
        w.flush()?;
    }
    let wall = started.elapsed().as_secs_f64();
    attr_ms.sort_by(|x, y| x.total_cmp(y));
    let mut report = score(&outcomes);
    report["settings"] = json!({
        "backend": backend_name,
        "precision": pipeline.precision().name(),
        "threads": engine.threads,
        "detector_profile": "fast",
        "max_side": a.max_side,
        "retry_score_threshold": opts.detector.retry_score_threshold,
        "images": outcomes.len(),
        "images_per_second": outcomes.len() as f64 / wall,
        "median_attributes_ms_per_face": attr_ms.get(attr_ms.len() / 2),
        "age_when_missing": AGE_WHEN_MISSING,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

fn in_dir(rec: &AttributeRecord, dir: &str) -> bool {
    rec.file.starts_with(&format!("attributes/{dir}/"))
}

fn label_of(l: &Option<facelens_core::types::Labelled>) -> &str {
    l.as_ref().map_or("(missing)", |l| l.kind.as_str())
}

/// Coarse age group for the model cards.
pub fn age_group(age: u32) -> &'static str {
    match age {
        0..=12 => "0-12",
        13..=19 => "13-19",
        20..=39 => "20-39",
        40..=59 => "40-59",
        _ => "60+",
    }
}

/// Closed / open from the contract's per-eye openness (0 closed .. 1 open).
fn eyes_label(a: &Attributes) -> &'static str {
    match a.eye_status {
        Some(e) if (e.left_eye + e.right_eye) / 2.0 < 0.5 => "closed",
        Some(_) => "open",
        None => "(missing)",
    }
}

fn is_smiling(a: &Attributes) -> Option<bool> {
    a.expression.as_ref().map(|e| e.kind != "none")
}

fn num(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!((x * 10_000.0).round() / 10_000.0))
}

fn recall_json(cm: &ConfusionMatrix) -> Value {
    let m: BTreeMap<String, Value> = cm
        .per_class_recall()
        .into_iter()
        .filter(|(_, c)| c.support > 0)
        .map(|(k, c)| (k, json!({"recall": num(c.recall), "n": c.support})))
        .collect();
    json!(m)
}

/// Binary accuracy over `(predicted, truth)` with a count.
fn acc_json(pairs: Vec<(Option<bool>, bool)>) -> Value {
    let n = pairs.len();
    json!({"accuracy": num(accuracy(pairs.into_iter().map(|(p, t)| (p, Some(t))))), "n": n})
}

/// Score every attribute; absent predictions count as misses.
fn score(outcomes: &[Outcome]) -> Value {
    static NONE: Attributes = Attributes {
        age: None,
        beauty: None,
        expression: None,
        face_shape: None,
        gender: None,
        glasses: None,
        eye_status: None,
        emotion: None,
        race: None,
        face_type: None,
    };
    fn attrs(o: &Outcome) -> &Attributes {
        o.attrs.as_ref().unwrap_or(&NONE)
    }
    let mut r = serde_json::Map::new();

    // Faces not found, per source folder.
    let mut no_face: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.attrs.is_none()) {
        let dir = o.rec.file.split('/').nth(1).unwrap_or("?").to_string();
        *no_face.entry(dir).or_default() += 1;
    }
    r.insert(
        "no_face".into(),
        json!({"total": no_face.values().sum::<usize>(), "by_source": no_face}),
    );

    // Age on the random UTKFace sample.
    let utk: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| in_dir(&o.rec, "utkface"))
        .collect();
    let age_samples: Vec<(&Outcome, f64, f64)> = utk
        .iter()
        .filter_map(|o| {
            let t = o.rec.age? as f64;
            Some((*o, attrs(o).age.map_or(AGE_WHEN_MISSING, f64::from), t))
        })
        .collect();
    let by_decade = mae_by_group(
        age_samples
            .iter()
            .map(|(o, p, t)| (age_decade(o.rec.age.unwrap_or(0)), *p, *t)),
    );
    let mut decades: Vec<(u32, Value)> = by_decade
        .groups
        .iter()
        .map(|(k, g)| {
            let lo = k
                .split('-')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (lo, json!({"group": k, "mae": num(Some(g.mae)), "n": g.n}))
        })
        .collect();
    decades.sort_by_key(|(lo, _)| *lo);
    let by_gender = mae_by_group(
        age_samples
            .iter()
            .map(|(o, p, t)| (o.rec.gender.clone().unwrap_or_else(|| "?".into()), *p, *t)),
    );
    let by_group = mae_by_group(
        age_samples
            .iter()
            .map(|(o, p, t)| (age_group(o.rec.age.unwrap_or(0)), *p, *t)),
    );
    let group_json = |rep: &facelens_eval::MaeReport| -> Value {
        json!(
            rep.groups
                .iter()
                .map(|(k, g)| (k.clone(), json!({"mae": num(Some(g.mae)), "n": g.n})))
                .collect::<BTreeMap<_, _>>()
        )
    };
    let mean_signed = if age_samples.is_empty() {
        None
    } else {
        Some(age_samples.iter().map(|(_, p, t)| p - t).sum::<f64>() / age_samples.len() as f64)
    };
    r.insert(
        "age".into(),
        json!({
            "set": "UTKFace (attributes/utkface/)",
            "mae": num(by_decade.mae), "n": by_decade.n,
            "mean_signed_error": num(mean_signed),
            "missing": utk.iter().filter(|o| attrs(o).age.is_none()).count(),
            "by_decade": decades.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "by_age_group": group_json(&by_group),
            "by_gender": group_json(&by_gender),
        }),
    );

    // Gender: UTKFace (headline) and CelebA.
    let gender_pairs = |set: &[&Outcome]| -> Vec<(String, String, u32)> {
        set.iter()
            .filter_map(|o| {
                let t = o.rec.gender.clone()?;
                Some((
                    label_of(&attrs(o).gender).to_string(),
                    t,
                    o.rec.age.unwrap_or(0),
                ))
            })
            .collect()
    };
    let gp = gender_pairs(&utk);
    let gacc = |it: &mut dyn Iterator<Item = &(String, String, u32)>| -> Value {
        let v: Vec<(&str, &str)> = it.map(|(p, t, _)| (p.as_str(), t.as_str())).collect();
        json!({"accuracy": num(accuracy(v.iter().copied())), "n": v.len()})
    };
    let mut by_true_gender = serde_json::Map::new();
    for g in ["female", "male"] {
        by_true_gender.insert(g.into(), gacc(&mut gp.iter().filter(|x| x.1 == g)));
    }
    let mut by_age = serde_json::Map::new();
    for grp in ["0-12", "13-19", "20-39", "40-59", "60+"] {
        by_age.insert(
            grp.into(),
            gacc(&mut gp.iter().filter(|x| age_group(x.2) == grp)),
        );
    }
    let celeba: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| in_dir(&o.rec, "celeba"))
        .collect();
    let cp = gender_pairs(&celeba);
    r.insert(
        "gender".into(),
        json!({
            "set": "UTKFace (attributes/utkface/)",
            "accuracy": num(accuracy(gp.iter().map(|(p, t, _)| (p.as_str(), t.as_str())))),
            "n": gp.len(),
            "by_gender": by_true_gender,
            "by_age_group": by_age,
            "celeba": gacc(&mut cp.iter()),
        }),
    );

    // Emotion on FER2013.
    let fer: Vec<(&str, &str)> = outcomes
        .iter()
        .filter_map(|o| Some((label_of(&attrs(o).emotion), o.rec.emotion.as_deref()?)))
        .collect();
    let cm = ConfusionMatrix::from_pairs(fer.iter().copied());
    r.insert(
        "emotion".into(),
        json!({"set": "FER2013 PublicTest", "accuracy": num(cm.accuracy()), "n": fer.len(),
               "balanced_accuracy": num(cm.balanced_accuracy()), "per_class": recall_json(&cm)}),
    );

    // Smiling: SMILEsmileD (headline), CelebA, and the visual expression labels.
    let smile_set = |dir: &str| -> Vec<(Option<bool>, bool)> {
        outcomes
            .iter()
            .filter(|o| in_dir(&o.rec, dir))
            .filter_map(|o| Some((is_smiling(attrs(o)), o.rec.smiling?)))
            .collect()
    };
    let visual_expr: Vec<(&Outcome, &str)> = outcomes
        .iter()
        .filter_map(|o| {
            let e = o.rec.expression.as_deref()?;
            (o.rec.visual_review && e != UNSURE).then_some((o, e))
        })
        .collect();
    let visual_smile: Vec<(Option<bool>, bool)> = visual_expr
        .iter()
        .map(|(o, e)| (is_smiling(attrs(o)), *e != "none"))
        .collect();
    let smilesmiled = smile_set("smilesmiled");
    let mut combined = smilesmiled.clone();
    combined.extend(visual_smile.iter().copied());
    let ecm = ConfusionMatrix::from_pairs(
        visual_expr
            .iter()
            .map(|(o, e)| (label_of(&attrs(o).expression), *e)),
    );
    r.insert(
        "smiling".into(),
        json!({
            "set": "SMILEsmileD",
            "accuracy": acc_json(smilesmiled)["accuracy"], "n": smile_set("smilesmiled").len(),
            "celeba": acc_json(smile_set("celeba")),
            "visual_labels": acc_json(visual_smile),
            "smilesmiled_plus_visual": acc_json(combined),
        }),
    );
    r.insert(
        "expression".into(),
        json!({"set": "visual labels (UTKFace + utkface_extra), 3 classes",
               "accuracy": num(ecm.accuracy()), "n": ecm.total(), "per_class": recall_json(&ecm)}),
    );

    // Eyes: closed (CEW + visual), open (visual).
    let eyes: Vec<(&str, &str)> = outcomes
        .iter()
        .filter_map(|o| {
            let t = o.rec.eyes.as_deref()?;
            matches!(t, "open" | "closed").then(|| (eyes_label(attrs(o)), t))
        })
        .collect();
    let eye_cm = ConfusionMatrix::from_pairs(eyes.iter().copied());
    r.insert(
        "eyes".into(),
        json!({"set": "CEW closed + visual labels",
               "closed_recall": num(eye_cm.recall("closed")),
               "closed_n": eyes.iter().filter(|x| x.1 == "closed").count(),
               "open_accuracy": num(eye_cm.recall("open")),
               "open_n": eyes.iter().filter(|x| x.1 == "open").count()}),
    );

    // Glasses (visual labels + CelebA).
    let glasses: Vec<(&str, &str)> = outcomes
        .iter()
        .filter_map(|o| {
            let t = o.rec.glasses.as_deref()?;
            (t != UNSURE).then(|| (label_of(&attrs(o).glasses), t))
        })
        .collect();
    let gcm = ConfusionMatrix::from_pairs(glasses.iter().copied());
    r.insert(
        "glasses".into(),
        json!({"set": "visual labels + CelebA", "accuracy": num(gcm.accuracy()), "n": gcm.total(),
               "sun_recall": num(gcm.recall("sun")), "common_recall": num(gcm.recall("common")),
               "per_class": recall_json(&gcm)}),
    );

    // Race on UTKFace white / black / asian (asian = the contract's yellow).
    let race: Vec<(&str, &str)> = utk
        .iter()
        .filter_map(|o| {
            let t = match o.rec.race.as_deref()? {
                "white" => "white",
                "black" => "black",
                "asian" => "yellow",
                _ => return None,
            };
            Some((label_of(&attrs(o).race), t))
        })
        .collect();
    let rcm = ConfusionMatrix::from_pairs(race.iter().copied());
    let others: Vec<(&str, &str)> = utk
        .iter()
        .filter_map(|o| {
            let t = o.rec.race.as_deref()?;
            matches!(t, "indian" | "others").then(|| (label_of(&attrs(o).race), t))
        })
        .collect();
    let mut other_preds: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (p, t) in &others {
        *other_preds
            .entry(t.to_string())
            .or_default()
            .entry(p.to_string())
            .or_default() += 1;
    }
    r.insert(
        "race".into(),
        json!({"set": "UTKFace white/black/asian (asian scored as yellow)",
               "accuracy": num(rcm.accuracy()), "n": rcm.total(), "per_class": recall_json(&rcm),
               "indian_others_predicted_as": other_preds}),
    );

    // Cartoon.
    let anime: Vec<bool> = outcomes
        .iter()
        .filter(|o| o.rec.face_type.as_deref() == Some("anime"))
        .map(|o| label_of(&attrs(o).face_type) == "cartoon")
        .collect();
    let human: Vec<bool> = outcomes
        .iter()
        .filter(|o| o.rec.face_type.as_deref() == Some("human") && o.attrs.is_some())
        .map(|o| label_of(&attrs(o).face_type) == "cartoon")
        .collect();
    let frac = |v: &[bool]| {
        (!v.is_empty()).then(|| v.iter().filter(|x| **x).count() as f64 / v.len() as f64)
    };
    r.insert(
        "face_type".into(),
        json!({"cartoon_recall": num(frac(&anime)), "anime_n": anime.len(),
               "human_called_cartoon": num(frac(&human)), "human_n_found": human.len()}),
    );
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facelens_core::types::Labelled;

    fn rec(file: &str) -> AttributeRecord {
        AttributeRecord {
            file: file.into(),
            ..AttributeRecord::default()
        }
    }

    #[test]
    fn misses_count_against_every_label() {
        let mut a = rec("attributes/utkface/x.jpg");
        a.age = Some(40);
        a.gender = Some("male".into());
        a.race = Some("asian".into());
        let mut b = a.clone();
        b.file = "attributes/utkface/y.jpg".into();
        let found = Attributes {
            age: Some(38.0),
            gender: Some(Labelled::new("male", 0.9)),
            race: Some(Labelled::new("yellow", 0.8)),
            ..Attributes::default()
        };
        let outcomes = vec![
            Outcome {
                rec: a,
                attrs: Some(found),
            },
            Outcome {
                rec: b,
                attrs: None,
            },
        ];
        let r = score(&outcomes);
        assert_eq!(r["no_face"]["total"], 1);
        assert_eq!(r["gender"]["accuracy"], json!(0.5));
        assert_eq!(r["race"]["accuracy"], json!(0.5));
        // |38 - 40| and |30 - 40| → 6
        assert_eq!(r["age"]["mae"], json!(6.0));
        assert_eq!(r["age"]["missing"], 1);
    }

    #[test]
    fn age_groups() {
        assert_eq!(age_group(5), "0-12");
        assert_eq!(age_group(19), "13-19");
        assert_eq!(age_group(60), "60+");
    }
}
