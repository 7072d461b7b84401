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
use facelens_eval::metrics::{
    ConfusionMatrix, accuracy, age_decade, mae_by_group, mean_absolute_error, pearson, spearman,
};
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

/// Beauty (the contract's 0–100) scored for a face that was not found or got no beauty: the
/// middle of the scale.
pub const BEAUTY_WHEN_MISSING: f64 = 50.0;

/// The contract's 0–100 beauty on the raters' 1–5 scale: `1 + 4 · beauty / 100` (the inverse
/// of the documented mapping `beauty = 25 · (rating − 1)`).
pub fn beauty_to_1_5(beauty: f64) -> f64 {
    1.0 + 4.0 * beauty / 100.0
}

/// The contract's face shapes that have labelled photos (`triangle` has none; `oblong` is not
/// a contract class and is reported apart).
pub const SCORED_FACE_SHAPES: [&str; 4] = ["heart", "oval", "round", "square"];

/// The contract's race values (a manifest race label in this vocabulary is scored directly).
const CONTRACT_RACES: [&str; 4] = ["yellow", "white", "black", "arabs"];

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

    r.insert("beauty".into(), beauty_json(outcomes));
    r.insert("face_shape".into(), face_shape_json(outcomes));
    r.insert("portraits".into(), portraits_json(outcomes));

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

/// Pearson, Spearman and MAE (1–5) of `(predicted, truth)` rating pairs.
fn rating_json(pairs: &[(f64, f64)]) -> Value {
    json!({"pearson": num(pearson(pairs)), "spearman": num(spearman(pairs)),
           "mae_1_5": num(mean_absolute_error(pairs)), "n": pairs.len()})
}

/// Beauty against the mean rating (`beauty_1_5`): overall and per race × gender group (the
/// manifest's labels, e.g. `yellow female` = SCUT-FBP5500's AF). A missing beauty counts as
/// [`BEAUTY_WHEN_MISSING`].
fn beauty_json(outcomes: &[Outcome]) -> Value {
    let rated: Vec<(&Outcome, f64, f64)> = outcomes
        .iter()
        .filter_map(|o| {
            let t = o.rec.beauty_1_5?;
            let b = o
                .attrs
                .as_ref()
                .and_then(|a| a.beauty)
                .map_or(BEAUTY_WHEN_MISSING, f64::from);
            Some((o, beauty_to_1_5(b), t))
        })
        .collect();
    if rated.is_empty() {
        return json!({"n": 0});
    }
    let pairs: Vec<(f64, f64)> = rated.iter().map(|(_, p, t)| (*p, *t)).collect();
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (o, p, t) in &rated {
        let g = format!(
            "{} {}",
            o.rec.race.as_deref().unwrap_or("?"),
            o.rec.gender.as_deref().unwrap_or("?")
        );
        groups.entry(g).or_default().push((*p, *t));
    }
    let missing = rated
        .iter()
        .filter(|(o, _, _)| o.attrs.as_ref().and_then(|a| a.beauty).is_none())
        .count();
    let mut v = rating_json(&pairs);
    v["missing"] = json!(missing);
    v["mapping"] = json!("rating = 1 + 4 * beauty / 100");
    v["by_group"] = json!(
        groups
            .iter()
            .map(|(k, p)| (k.clone(), rating_json(p)))
            .collect::<BTreeMap<_, _>>()
    );
    v
}

/// Face shape against `face_shape` labels: accuracy on the contract classes that have photos,
/// per-class recall, the full confusion matrix (`truth → predicted → count`, with `oblong`
/// rows), and what `oblong` photos are called.
fn face_shape_json(outcomes: &[Outcome]) -> Value {
    let labelled: Vec<(&str, &str)> = outcomes
        .iter()
        .filter_map(|o| {
            let t = o.rec.face_shape.as_deref()?;
            let p = o
                .attrs
                .as_ref()
                .map_or("(missing)", |a| label_of(&a.face_shape));
            Some((p, t))
        })
        .collect();
    if labelled.is_empty() {
        return json!({"n": 0});
    }
    let scored = ConfusionMatrix::with_labels(
        SCORED_FACE_SHAPES,
        labelled
            .iter()
            .filter(|(_, t)| SCORED_FACE_SHAPES.contains(t))
            .copied(),
    );
    let all = ConfusionMatrix::from_pairs(labelled.iter().copied());
    let mut matrix: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (i, t) in all.labels.iter().enumerate() {
        for (j, p) in all.labels.iter().enumerate() {
            let c = all.counts[i][j];
            if c > 0 {
                matrix.entry(t.clone()).or_default().insert(p.clone(), c);
            }
        }
    }
    json!({
        "classes": SCORED_FACE_SHAPES,
        "accuracy": num(scored.accuracy()), "n": scored.total(),
        "balanced_accuracy": num(scored.balanced_accuracy()),
        "per_class": recall_json(&scored),
        "confusion": matrix,
        "oblong_predicted_as": matrix.get("oblong").cloned().unwrap_or_default(),
    })
}

/// Race and gender on every labelled face outside UTKFace whose race label is in the contract's
/// vocabulary (the portraits of the training data: `yellow` = Asian, `white` = Caucasian), per
/// race × gender group.
fn portraits_json(outcomes: &[Outcome]) -> Value {
    let set: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| {
            !in_dir(&o.rec, "utkface")
                && o.rec
                    .race
                    .as_deref()
                    .is_some_and(|r| CONTRACT_RACES.contains(&r))
        })
        .collect();
    if set.is_empty() {
        return json!({"n": 0});
    }
    let pred = |o: &Outcome, f: fn(&Attributes) -> &Option<facelens_core::types::Labelled>| {
        o.attrs
            .as_ref()
            .map_or("(missing)".to_string(), |a| label_of(f(a)).to_string())
    };
    let mut race_pairs = Vec::new();
    let mut gender_pairs = Vec::new();
    // Per race x gender group: (race pairs, gender pairs), each (predicted, truth).
    type Pairs = Vec<(String, String)>;
    let mut groups: BTreeMap<String, (Pairs, Pairs)> = BTreeMap::new();
    for o in &set {
        let race = o.rec.race.clone().unwrap_or_default();
        let key = format!("{race} {}", o.rec.gender.as_deref().unwrap_or("?"));
        let rp = (pred(o, |a| &a.race), race);
        race_pairs.push(rp.clone());
        let g = groups.entry(key).or_default();
        g.0.push(rp);
        if let Some(t) = o.rec.gender.clone() {
            let gp = (pred(o, |a| &a.gender), t);
            gender_pairs.push(gp.clone());
            g.1.push(gp);
        }
    }
    let acc = |v: &[(String, String)]| {
        json!({"accuracy": num(accuracy(v.iter().map(|(p, t)| (p.as_str(), t.as_str())))),
               "n": v.len()})
    };
    let rcm = ConfusionMatrix::from_pairs(race_pairs.iter().map(|(p, t)| (p, t)));
    json!({
        "race": acc(&race_pairs),
        "race_per_class": recall_json(&rcm),
        "gender": acc(&gender_pairs),
        "by_group": groups.iter().map(|(k, (r, g))| {
            (k.clone(), json!({"race": acc(r), "gender": acc(g)}))
        }).collect::<BTreeMap<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use facelens_core::types::Labelled;

    #[test]
    fn beauty_face_shape_and_portraits_are_scored() {
        let mk = |file: &str, rating: f64, beauty: Option<f32>| {
            let mut r = rec(file);
            r.beauty_1_5 = Some(rating);
            r.race = Some("yellow".into());
            r.gender = Some("female".into());
            Outcome {
                rec: r,
                attrs: Some(Attributes {
                    beauty,
                    race: Some(Labelled::new("yellow", 0.9)),
                    gender: Some(Labelled::new("male", 0.6)),
                    ..Attributes::default()
                }),
            }
        };
        // beauty 25 / 50 / 75 map to 2 / 3 / 4 on the 1-5 scale; the missing one counts as 50.
        let mut outcomes = vec![
            mk("scut/a.jpg", 2.0, Some(25.0)),
            mk("scut/b.jpg", 3.5, Some(50.0)),
            mk("scut/c.jpg", 4.0, Some(75.0)),
            mk("scut/d.jpg", 3.0, None),
        ];
        let shape = |file: &str, truth: &str, pred: Option<&str>| {
            let mut r = rec(file);
            r.face_shape = Some(truth.into());
            Outcome {
                rec: r,
                attrs: Some(Attributes {
                    face_shape: pred.map(|p| Labelled::new(p, 0.5)),
                    ..Attributes::default()
                }),
            }
        };
        outcomes.push(shape("fs/1.jpg", "heart", Some("heart")));
        outcomes.push(shape("fs/2.jpg", "square", Some("round")));
        outcomes.push(shape("fs/3.jpg", "oblong", Some("oval")));
        outcomes.push(shape("fs/4.jpg", "round", None));
        let r = score(&outcomes);
        let b = &r["beauty"];
        assert_eq!(b["n"], 4);
        assert_eq!(b["missing"], 1);
        // |2-2| + |3-3.5| + |4-4| + |3-3| = 0.5 over 4
        assert_eq!(b["mae_1_5"], json!(0.125));
        // predictions (2, 3, 4, 3) against truths (2, 3.5, 4, 3): deviations (-1, 0, 1, 0) and
        // (-1.125, 0.375, 0.875, -0.125), Pearson = 2 / sqrt(2 * 2.1875) = 0.95618
        assert_eq!(b["pearson"], json!(0.9562));
        assert_eq!(b["by_group"]["yellow female"]["n"], 4);
        let f = &r["face_shape"];
        // oblong is not scored; 1 of 3 right (the missing one counts as a miss)
        assert_eq!(f["n"], 3);
        assert_eq!(f["accuracy"], json!(0.3333));
        assert_eq!(f["confusion"]["square"]["round"], 1);
        assert_eq!(f["oblong_predicted_as"]["oval"], 1);
        let p = &r["portraits"];
        assert_eq!(p["race"]["accuracy"], json!(1.0));
        assert_eq!(p["gender"]["accuracy"], json!(0.0));
        assert_eq!(p["by_group"]["yellow female"]["race"]["n"], 4);
        assert!((beauty_to_1_5(100.0) - 5.0).abs() < 1e-12);
    }

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
