//! Feature extraction and measurement for the attribute heuristics (docs/heuristics.md).
//!
//! Runs the real pipeline (embedded models, rten backend) with the mesh on every image of the
//! attribute manifest (joined with the visual labels), computes the heuristics' feature vectors
//! and outputs, and writes one JSON line per image for the fitting scripts. It then prints the
//! dev figures of the final functions and, with `--stability N`, the stability of face shape
//! and beauty under 0.9× / 1.1× rescaling and JPEG q=75 re-encoding on N UTKFace images.
//!
//! ```text
//! cargo run --release -p facelens-vision --example heuristics_features -- \
//!     --data ../shared/evaldata --out /tmp/heur/features.jsonl \
//!     --cache /tmp/heur/faces.jsonl --stability 300
//! ```
//!
//! `--cache` keeps the pipeline's faces (box, landmarks, mesh) so that re-running after a change
//! to the heuristics only re-reads the images. Images never leave the data folder.

use facelens_core::types::{Face, Timings};
use facelens_eval::attributes::{AttributeRecord, load_attribute_manifest};
use facelens_imaging::{DecodeLimits, Rgb, decode, encode_jpeg, resize};
use facelens_infer::BackendKind;
use facelens_vision::heuristics::{cartoon, eyes, glasses};
use facelens_vision::{Models, Options, Pipeline};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;

struct Args {
    data: PathBuf,
    out: PathBuf,
    cache: Option<PathBuf>,
    stability: usize,
    limit: usize,
    anime_probe: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        data: PathBuf::from("../shared/evaldata"),
        out: PathBuf::from("/tmp/heur/features.jsonl"),
        cache: None,
        stability: 0,
        limit: usize::MAX,
        anime_probe: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--data" => a.data = v.into(),
            "--out" => a.out = v.into(),
            "--cache" => a.cache = Some(v.into()),
            "--stability" => a.stability = v.parse().unwrap_or(0),
            "--limit" => a.limit = v.parse().unwrap_or(usize::MAX),
            "--anime-probe" => a.anime_probe = v == "1",
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn opts() -> Options {
    Options {
        include_mesh: true,
        max_faces: 1,
        ..Options::default()
    }
}

fn analyse(p: &Pipeline, img: &Rgb) -> Option<Face> {
    let mut t = Timings::default();
    p.analyze_image(img, &opts(), &mut t)
        .ok()
        .and_then(|mut f| (!f.is_empty()).then(|| f.swap_remove(0)))
}

/// Everything the heuristics compute for one face.
fn face_json(img: &Rgb, face: &Face) -> Option<Value> {
    let mesh = face.mesh.as_ref()?;
    let ms = face.mesh_score.unwrap_or(0.0);
    let es = eyes::eye_status(img, mesh);
    let g = glasses::glasses(img, mesh);
    let ft = cartoon::face_type(img, &face.bbox, mesh, ms, face.score, None);
    // Face shape and beauty are trained heads now: the pipeline's own answers.
    let sh = face.attributes.face_shape.clone();
    let b = face.attributes.beauty;
    Some(json!({
        "det_score": face.score,
        "mesh_score": ms,
        "pose": face.pose,
        "blur": face.quality.blur,
        "eye_l": eyes::eye_features(img, mesh, true),
        "eye_r": eyes::eye_features(img, mesh, false),
        "glasses": glasses::glasses_features(img, mesh),
        "cartoon": cartoon::cartoon_features(img, &face.bbox, mesh, ms, face.score),
        "out": {
            "eye_status": es,
            "glasses": g,
            "face_type": ft,
            "face_shape": sh,
            "beauty": b,
        }
    }))
}

fn main() {
    let args = parse_args();
    let backend = match facelens_infer::create_backend(BackendKind::Rten, 1) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("backend: {e}");
            std::process::exit(1);
        }
    };
    let pipeline = match Models::load_embedded(backend.as_ref()).and_then(Pipeline::new) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("models: {e}");
            std::process::exit(1);
        }
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let manifest = read(&args.data.join("attributes/manifest.jsonl"));
    let visual = read(&args.data.join("attributes/visual_labels.jsonl"));
    let records = match load_attribute_manifest(&manifest, Some(&visual)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("manifest: {e}");
            std::process::exit(1);
        }
    };
    // Cached faces, by file.
    let mut cache: HashMap<String, Option<Face>> = HashMap::new();
    if let Some(c) = &args.cache
        && let Ok(f) = std::fs::File::open(c)
    {
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(file) = v["file"].as_str()
            {
                let face = serde_json::from_value::<Option<Face>>(v["face"].clone()).ok();
                cache.insert(file.to_string(), face.flatten());
            }
        }
        eprintln!("{} cached faces", cache.len());
    }
    let mut cache_out = args.cache.as_ref().and_then(|c| {
        (cache.is_empty())
            .then(|| std::fs::File::create(c).ok())
            .flatten()
    });
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut out = match std::fs::File::create(&args.out) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("{}: {e}", args.out.display());
            std::process::exit(1);
        }
    };
    let names = json!({
        "eyes": eyes::feature_names(),
        "glasses": glasses::feature_names(),
        "cartoon": cartoon::feature_names(),
    });
    let _ = std::fs::write(args.out.with_extension("names.json"), names.to_string());
    let limits = DecodeLimits::default();
    let mut rows: Vec<(AttributeRecord, Option<Value>)> = Vec::new();
    for (n, rec) in records.iter().take(args.limit).enumerate() {
        let Ok(bytes) = std::fs::read(args.data.join(&rec.file)) else {
            eprintln!("cannot read {}", rec.file);
            continue;
        };
        let Ok(dec) = decode(&bytes, &limits) else {
            eprintln!("cannot decode {}", rec.file);
            continue;
        };
        let face = match cache.get(&rec.file) {
            Some(f) => f.clone(),
            None => {
                let f = analyse(&pipeline, &dec.image);
                if let Some(w) = cache_out.as_mut() {
                    let _ = writeln!(w, "{}", json!({"file": rec.file, "face": f}));
                }
                f
            }
        };
        let fj = face.as_ref().and_then(|f| face_json(&dec.image, f));
        let line = json!({
            "file": rec.file,
            "source": rec.source,
            "age": rec.age, "gender": rec.gender, "race": rec.race,
            "eyes": rec.eyes, "glasses": rec.glasses, "face_type": rec.face_type,
            "expression": rec.expression, "emotion": rec.emotion,
            "detected": fj.is_some(),
            "f": fj,
        });
        let _ = writeln!(out, "{line}");
        rows.push((rec.clone(), fj));
        if n % 250 == 0 {
            eprintln!("{n}/{}", records.len());
        }
    }
    let _ = out.flush();
    report(&rows);
    if args.anime_probe {
        anime_probe(&pipeline, &args, &records);
    }
    if args.stability > 0 {
        stability(&pipeline, &args, &records);
    }
}

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        "n/a".into()
    } else {
        format!("{:.1}% ({a}/{b})", 100.0 * a as f64 / b as f64)
    }
}

fn report(rows: &[(AttributeRecord, Option<Value>)]) {
    let src = |r: &AttributeRecord| r.source.clone().unwrap_or_default();
    let closed = |v: &Value| {
        let l = v["out"]["eye_status"]["left_eye"].as_f64().unwrap_or(1.0);
        let r = v["out"]["eye_status"]["right_eye"].as_f64().unwrap_or(1.0);
        (l + r) * 0.5 < 0.5
    };
    // Eyes.
    let (mut cew, mut cew_n, mut vis_c, mut vis_cn, mut open_ok, mut open_n) = (0, 0, 0, 0, 0, 0);
    let mut other_closed: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (r, f) in rows {
        let s = src(r);
        let is_cew = r.file.contains("cew_closed");
        match (r.eyes.as_deref(), f) {
            (Some("closed"), Some(v)) if is_cew => {
                cew_n += 1;
                cew += closed(v) as usize;
            }
            (Some("closed"), None) if is_cew => cew_n += 1,
            (Some("closed"), Some(v)) => {
                vis_cn += 1;
                vis_c += closed(v) as usize;
            }
            (Some("closed"), None) => vis_cn += 1,
            (Some("open"), Some(v)) => {
                open_n += 1;
                open_ok += (!closed(v)) as usize;
            }
            (Some("open"), None) => open_n += 1,
            _ => {}
        }
        if !is_cew
            && r.eyes.is_none()
            && let Some(v) = f
        {
            let e = other_closed.entry(s).or_default();
            e.0 += closed(v) as usize;
            e.1 += 1;
        }
    }
    println!("== eye_status (face closed = mean of both eyes < 0.5; undetected = miss)");
    println!("CEW closed recall        {}", pct(cew, cew_n));
    println!("visual closed recall     {}", pct(vis_c, vis_cn));
    println!("visual open accuracy     {}", pct(open_ok, open_n));
    for (s, (c, n)) in &other_closed {
        println!("  called closed in {s}: {}", pct(*c, *n));
    }
    // Glasses.
    let mut conf: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (r, f) in rows {
        let Some(t) = r.glasses.as_deref() else {
            continue;
        };
        if t == "unsure" || r.source.as_deref() == Some("CelebA") {
            continue;
        }
        let p = f
            .as_ref()
            .and_then(|v| v["out"]["glasses"]["type"].as_str())
            .unwrap_or("undetected")
            .to_string();
        *conf.entry((t.to_string(), p)).or_default() += 1;
    }
    println!("== glasses (visual labels; truth -> predicted: count)");
    let (mut ok, mut n) = (0, 0);
    for ((t, p), c) in &conf {
        println!("  {t:>6} -> {p:<10} {c}");
        n += c;
        if t == p {
            ok += c;
        }
    }
    println!("glasses accuracy         {}", pct(ok, n));
    let sun_n: usize = conf
        .iter()
        .filter(|((t, _), _)| t == "sun")
        .map(|x| x.1)
        .sum();
    let sun_ok = conf
        .get(&("sun".into(), "sun".into()))
        .copied()
        .unwrap_or(0);
    println!("sunglasses recall        {}", pct(sun_ok, sun_n));
    // Face type.
    let (mut an, mut a_det, mut a_ok, mut hn, mut h_fp) = (0, 0, 0, 0, 0);
    let mut fp_by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (r, f) in rows {
        let cart = f
            .as_ref()
            .and_then(|v| v["out"]["face_type"]["type"].as_str())
            == Some("cartoon");
        match r.face_type.as_deref() {
            Some("anime") => {
                an += 1;
                a_det += f.is_some() as usize;
                a_ok += cart as usize;
            }
            Some("human") if f.is_some() => {
                hn += 1;
                h_fp += cart as usize;
                let e = fp_by.entry(src(r)).or_default();
                e.0 += cart as usize;
                e.1 += 1;
            }
            _ => {}
        }
    }
    println!("== face_type");
    println!("anime detected           {}", pct(a_det, an));
    println!("cartoon recall (all)     {}", pct(a_ok, an));
    println!("cartoon recall (detected){}", pct(a_ok, a_det));
    println!("human called cartoon     {}", pct(h_fp, hn));
    for (s, (c, n)) in &fp_by {
        println!("  {s}: {}", pct(*c, *n));
    }
    // Shape and beauty spread on the human photos.
    let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
    let mut bs = Vec::new();
    for (r, f) in rows {
        if r.face_type.as_deref() != Some("human") {
            continue;
        }
        if let Some(v) = f {
            if let Some(k) = v["out"]["face_shape"]["type"].as_str() {
                *shapes.entry(k.to_string()).or_default() += 1;
            }
            if let Some(b) = v["out"]["beauty"].as_f64() {
                bs.push(b);
            }
        }
    }
    let tot: usize = shapes.values().sum();
    println!("== face_shape distribution over detected human faces");
    for (k, c) in &shapes {
        println!("  {k:<9} {}", pct(*c, tot));
    }
    let m = bs.iter().sum::<f64>() / bs.len().max(1) as f64;
    let sd = (bs.iter().map(|b| (b - m) * (b - m)).sum::<f64>() / bs.len().max(1) as f64).sqrt();
    println!(
        "== beauty over {} human faces: mean {m:.1}, sd {sd:.1}",
        bs.len()
    );
}

/// Shape class and beauty of the same face after rescaling and re-encoding.
fn stability(p: &Pipeline, args: &Args, records: &[AttributeRecord]) {
    let limits = DecodeLimits::default();
    let picks: Vec<&AttributeRecord> = records
        .iter()
        .filter(|r| r.file.contains("/utkface/"))
        .take(args.stability)
        .collect();
    let variants = ["scale0.9", "scale1.1", "jpeg75"];
    let mut same = [0usize; 3];
    let mut within3 = [0usize; 3];
    let mut diffs: [Vec<f32>; 3] = [vec![], vec![], vec![]];
    let mut n = [0usize; 3];
    let mut other_same = [[0usize; 3]; 3]; // eyes, glasses, face type
    for r in picks {
        let Ok(bytes) = std::fs::read(args.data.join(&r.file)) else {
            continue;
        };
        let Ok(dec) = decode(&bytes, &limits) else {
            continue;
        };
        let img = dec.image;
        let Some(base) = analyse(p, &img).and_then(|f| face_json(&img, &f)) else {
            continue;
        };
        let (w, h) = img.dimensions();
        for (k, v) in variants.iter().enumerate() {
            let vimg = match *v {
                "scale0.9" => resize(&img, (w as f32 * 0.9) as u32, (h as f32 * 0.9) as u32),
                "scale1.1" => resize(&img, (w as f32 * 1.1) as u32, (h as f32 * 1.1) as u32),
                _ => match decode(&encode_jpeg(&img, 75), &limits) {
                    Ok(d) => d.image,
                    Err(_) => continue,
                },
            };
            let Some(o) = analyse(p, &vimg).and_then(|f| face_json(&vimg, &f)) else {
                continue;
            };
            n[k] += 1;
            let a = &base["out"];
            let b = &o["out"];
            same[k] += (a["face_shape"]["type"] == b["face_shape"]["type"]) as usize;
            let d = (a["beauty"].as_f64().unwrap_or(0.0) - b["beauty"].as_f64().unwrap_or(0.0))
                .abs() as f32;
            within3[k] += (d <= 3.0) as usize;
            diffs[k].push(d);
            let closed = |x: &Value| {
                (x["eye_status"]["left_eye"].as_f64().unwrap_or(1.0)
                    + x["eye_status"]["right_eye"].as_f64().unwrap_or(1.0))
                    < 1.0
            };
            other_same[k][0] += (closed(a) == closed(b)) as usize;
            other_same[k][1] += (a["glasses"]["type"] == b["glasses"]["type"]) as usize;
            other_same[k][2] += (a["face_type"]["type"] == b["face_type"]["type"]) as usize;
        }
    }
    println!("== stability (UTKFace dev images; variant vs original)");
    for k in 0..3 {
        let mut d = diffs[k].clone();
        d.sort_by(f32::total_cmp);
        let med = d.get(d.len() / 2).copied().unwrap_or(0.0);
        let p95 = d
            .get(((d.len() as f32 * 0.95) as usize).min(d.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        println!(
            "{:<9} shape same {}  beauty within 3 {}  |Δbeauty| median {med:.2} p95 {p95:.2}  eyes same {}  glasses same {}  face_type same {}",
            variants[k],
            pct(same[k], n[k]),
            pct(within3[k], n[k]),
            pct(other_same[k][0], n[k]),
            pct(other_same[k][1], n[k]),
            pct(other_same[k][2], n[k]),
        );
    }
}

/// How many anime faces the detector finds at lower score thresholds (the default is the
/// detector config's own).
fn anime_probe(p: &Pipeline, args: &Args, records: &[AttributeRecord]) {
    let limits = DecodeLimits::default();
    let base = opts();
    println!("== anime detection by detector score threshold");
    for thr in [base.detector.score_threshold, 0.3, 0.2] {
        let mut o = base.clone();
        o.detector.score_threshold = thr;
        let (mut n, mut found) = (0, 0);
        for r in records
            .iter()
            .filter(|r| r.face_type.as_deref() == Some("anime"))
        {
            let Ok(bytes) = std::fs::read(args.data.join(&r.file)) else {
                continue;
            };
            let Ok(dec) = decode(&bytes, &limits) else {
                continue;
            };
            n += 1;
            let mut t = Timings::default();
            found += p
                .analyze_image(&dec.image, &o, &mut t)
                .map(|f| !f.is_empty())
                .unwrap_or(false) as usize;
        }
        println!("  threshold {thr:.2}: {}", pct(found, n));
    }
}
