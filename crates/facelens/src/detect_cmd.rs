//! `facelens detect`: analyse local images and folders of images in one run.
//!
//! Batch runs are the point: folders expand to their images, images are analysed on several
//! worker threads, and the results come out in input order whatever order they finish in (a
//! small reorder buffer; workers claim the next image from a counter so it stays small and the
//! output streams). One bad file is one error record, never the end of the run.
//!
//! Threads: the workers share one inference backend, whose intra-op pool (rten: one thread per
//! physical core by default) does the model arithmetic; the workers themselves mostly decode,
//! crop and wait on that pool. So `--jobs` (images at once) times the pool size does not
//! multiply into oversubscription, and overlapping one image's decoding and pre/post-processing
//! with another's inference keeps the cores busy. A one-thread pool (`--threads 1`) would
//! serialise every worker's inference onto that thread. Timings: docs/cli.md.

use crate::Profile;
use crate::annotate;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use facelens_core::error::FaceError;
use facelens_core::juhe::{Envelope, JuheFace, token_id};
use facelens_core::{ErrorCode, types::Analysis};
use facelens_imaging::{DecodeLimits, decode};
use facelens_vision::{Options, Pipeline};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Image file extensions a folder expands to (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp"];

/// Output format of `facelens detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per image and line (the contract's envelope plus `file`, `image`,
    /// `timings`).
    Jsonl,
    /// One JSON array of those objects.
    Json,
    /// One row per face (an image without faces, or that failed, gets one row with its error).
    Csv,
}

#[derive(Args)]
pub struct DetectArgs {
    /// Image files (jpg, png, bmp) and folders (their jpg, jpeg, png and bmp files, sorted).
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Descend into the sub-folders of folders given.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Same as --format jsonl (kept for older scripts).
    #[arg(long, conflicts_with_all = ["pretty", "format"])]
    pub json: bool,
    /// Indented JSON (with jsonl: one indented object per image, as before --format existed).
    #[arg(long)]
    pub pretty: bool,
    /// Write a copy of each analysed image into this folder (same relative path; bmp as png)
    /// with the boxes, the five landmarks and a label per face drawn.
    #[arg(long, value_name = "OUT_DIR")]
    pub annotate: Option<PathBuf>,
    /// Images analysed at once (0 = one per CPU core).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// No progress and no summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Return at most this many faces per image, the largest first (1..=10 like the contract;
    /// larger values are allowed here).
    #[arg(long, default_value_t = 1)]
    pub face_num: usize,
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

/// One image to analyse.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Where to read it.
    pub path: PathBuf,
    /// How it is named in the output: the argument as given, or the folder argument joined
    /// with the path found under it.
    pub name: String,
    /// Its path relative to the folder argument (the file name for a file argument): where
    /// its annotated copy goes under OUT_DIR.
    pub rel: PathBuf,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expand the arguments: files stay as given (even missing ones, reported per image later);
/// folders become their image files, sorted by relative path, descending only with
/// `recursive` (and never through symbolic links to folders, so links cannot loop).
pub fn expand_inputs(args: &[String], recursive: bool) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        if !path.is_dir() {
            let rel = path
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("image"));
            out.push(Input {
                path,
                name: arg.clone(),
                rel,
            });
            continue;
        }
        let mut found = Vec::new();
        walk(&path, Path::new(""), recursive, &mut found)
            .with_context(|| format!("reading the folder {arg}"))?;
        found.sort();
        for rel in found {
            out.push(Input {
                path: path.join(&rel),
                name: path.join(&rel).display().to_string(),
                rel,
            });
        }
    }
    Ok(out)
}

fn walk(root: &Path, rel: &Path, recursive: bool, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let child = rel.join(entry.file_name());
        if kind.is_dir() {
            if recursive {
                walk(root, &child, recursive, found)?;
            }
        } else if is_image(&child) && root.join(&child).is_file() {
            found.push(child);
        }
    }
    Ok(())
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

/// The outcome of one image, as the printing thread needs it.
struct Done {
    report: Value,
    faces: usize,
    /// The failure's name for the summary (`200216 no face`, `unreadable`); None on success.
    failure: Option<String>,
    /// An annotated copy that could not be written.
    annotate_error: Option<String>,
}

/// Everything a worker needs, shared by reference.
struct Job<'a> {
    pipeline: &'a Pipeline,
    opts: Options,
    limits: DecodeLimits,
    include_mesh: bool,
    annotate: Option<&'a Path>,
}

impl Job<'_> {
    fn analyse(&self, input: &Input) -> Done {
        let bytes = match std::fs::read(&input.path) {
            Ok(b) => b,
            Err(e) => {
                let mut v = json!({"file": input.name, "error": format!("cannot read file: {e}")});
                v["error_code"] = json!(null);
                return Done {
                    report: v,
                    faces: 0,
                    failure: Some("unreadable".into()),
                    annotate_error: None,
                };
            }
        };
        // Decoded here rather than by Pipeline::analyze_bytes so the annotated copy reuses it.
        let t0 = Instant::now();
        let (outcome, image) = match decode(&bytes, &self.limits) {
            Err(e) => (Err(e), None),
            Ok(decoded) => {
                let mut timings = facelens_core::types::Timings {
                    decode_ms: t0.elapsed().as_secs_f32() * 1000.0,
                    ..Default::default()
                };
                let faces = self
                    .pipeline
                    .analyze_image(&decoded.image, &self.opts, &mut timings)
                    .map_err(|e| FaceError::new(ErrorCode::Internal, e.to_string()));
                timings.total_ms = t0.elapsed().as_secs_f32() * 1000.0;
                let outcome = faces.map(|faces| Analysis {
                    width: decoded.image.width(),
                    height: decoded.image.height(),
                    orientation: decoded.orientation,
                    faces,
                    timings,
                });
                (outcome, Some(decoded.image))
            }
        };
        let mut annotate_error = None;
        if let (Some(dir), Some(mut img), Ok(a)) = (self.annotate, image, outcome.as_ref()) {
            annotate::draw_faces(&mut img, &a.faces);
            let out = annotate::output_path(dir, &input.rel);
            annotate_error = annotate::save(&img, &out).err();
        }
        let faces = outcome.as_ref().map_or(0, |a| a.faces.len());
        let failure = match &outcome {
            Ok(a) if !a.faces.is_empty() => None,
            Ok(_) => Some(failure_name(ErrorCode::NoFace)),
            Err(e) => Some(failure_name(e.code)),
        };
        Done {
            report: image_report(&input.name, &bytes, outcome, self.include_mesh),
            faces,
            failure,
            annotate_error,
        }
    }
}

fn failure_name(code: ErrorCode) -> String {
    format!("{} {}", code.code(), code.english())
}

/// Writes reports to stdout in the chosen format.
struct Printer<W: Write> {
    out: W,
    format: Format,
    pretty: bool,
    written: usize,
}

/// The CSV columns, one row per face.
pub const CSV_HEADER: &[&str] = &[
    "file",
    "face_index",
    "error_code",
    "error",
    "left",
    "top",
    "width",
    "height",
    "rotation",
    "face_probability",
    "age",
    "gender",
    "gender_probability",
    "expression",
    "expression_probability",
    "emotion",
    "emotion_probability",
    "glasses",
    "glasses_probability",
    "race",
    "race_probability",
    "face_shape",
    "face_shape_probability",
    "beauty",
    "left_eye_open",
    "right_eye_open",
    "face_type",
    "face_type_probability",
    "yaw",
    "pitch",
    "roll",
    "blur",
    "illumination",
    "completeness",
    "occlusion_left_eye",
    "occlusion_right_eye",
    "occlusion_nose",
    "occlusion_mouth",
    "occlusion_left_cheek",
    "occlusion_right_cheek",
    "occlusion_chin_contour",
];

/// A CSV field, quoted when it holds a separator, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A JSON scalar as CSV text (null and absent = empty).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The CSV rows of one report: one per face, or one carrying the error.
pub fn csv_rows(report: &Value) -> Vec<Vec<String>> {
    let file = cell(&report["file"]);
    let faces = report["result"]["face_list"]
        .as_array()
        .filter(|f| !f.is_empty());
    let Some(faces) = faces else {
        let error = [&report["detail"], &report["error"], &report["reason"]]
            .into_iter()
            .map(cell)
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        let mut row = vec![file, String::new(), cell(&report["error_code"]), error];
        row.resize(CSV_HEADER.len(), String::new());
        return vec![row];
    };
    faces
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let label = |name: &str| [cell(&f[name]["type"]), cell(&f[name]["probability"])];
            let loc = &f["location"];
            let q = &f["quality"];
            let occ = &q["occlusion"];
            let mut row = vec![
                file.clone(),
                i.to_string(),
                cell(&report["error_code"]),
                String::new(),
                cell(&loc["left"]),
                cell(&loc["top"]),
                cell(&loc["width"]),
                cell(&loc["height"]),
                cell(&loc["rotation"]),
                cell(&f["face_probability"]),
                cell(&f["age"]),
            ];
            for name in [
                "gender",
                "expression",
                "emotion",
                "glasses",
                "race",
                "face_shape",
            ] {
                row.extend(label(name));
            }
            row.push(cell(&f["beauty"]));
            row.push(cell(&f["eye_status"]["left_eye"]));
            row.push(cell(&f["eye_status"]["right_eye"]));
            row.extend(label("face_type"));
            for k in ["yaw", "pitch", "roll"] {
                row.push(cell(&f["angle"][k]));
            }
            for k in ["blur", "illumination", "completeness"] {
                row.push(cell(&q[k]));
            }
            for k in [
                "left_eye",
                "right_eye",
                "nose",
                "mouth",
                "left_cheek",
                "right_cheek",
                "chin_contour",
            ] {
                row.push(cell(&occ[k]));
            }
            row
        })
        .collect()
}

impl<W: Write> Printer<W> {
    fn begin(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Json => write!(self.out, "["),
            Format::Csv => writeln!(self.out, "{}", CSV_HEADER.join(",")),
            Format::Jsonl => Ok(()),
        }
    }

    fn report(&mut self, report: &Value) -> std::io::Result<()> {
        let json = |v: &Value| {
            if self.pretty {
                serde_json::to_string_pretty(v)
            } else {
                serde_json::to_string(v)
            }
            .map_err(std::io::Error::other)
        };
        match self.format {
            Format::Jsonl => writeln!(self.out, "{}", json(report)?)?,
            Format::Json => {
                let sep = if self.written == 0 { "\n" } else { ",\n" };
                write!(self.out, "{sep}{}", json(report)?)?;
            }
            Format::Csv => {
                for row in csv_rows(report) {
                    let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
                    writeln!(self.out, "{}", fields.join(","))?;
                }
            }
        }
        self.written += 1;
        // Flushed per image so a pipe sees results as they come.
        self.out.flush()
    }

    fn end(&mut self) -> std::io::Result<()> {
        if self.format == Format::Json {
            writeln!(self.out, "\n]")?;
        }
        self.out.flush()
    }
}

/// Progress on stderr: a bar on a terminal; otherwise, for long runs only, a plain line every
/// ten seconds (so logs of unattended runs show that it moves, and short runs stay quiet).
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { total: usize, last: Instant },
    Off,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Self {
        if quiet {
            Progress::Off
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} images, {per_sec}, eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                total,
                last: Instant::now(),
            }
        }
    }

    fn tick(&mut self, done: usize, started: Instant) {
        match self {
            Progress::Bar(bar) => bar.set_position(done as u64),
            Progress::Lines { total, last } => {
                if last.elapsed() >= Duration::from_secs(10) {
                    *last = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "facelens: {done}/{total} images, {:.1} images/s",
                        done as f64 / secs.max(1e-9)
                    );
                }
            }
            Progress::Off => {}
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Images analysed at once: `jobs`, 0 = one per core; never more than there are images.
pub fn effective_jobs(jobs: usize, images: usize) -> usize {
    let jobs = if jobs > 0 {
        jobs
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    jobs.min(images).max(1)
}

/// Exit status: 0 when at least one image was analysed with a face; 1 when every image failed
/// (no face, unreadable, refused); usage errors exit 2 before anything runs.
pub fn run(engine: &crate::EngineArgs, args: DetectArgs) -> Result<ExitCode> {
    let inputs = expand_inputs(&args.inputs, args.recursive)?;
    if inputs.is_empty() {
        bail!(
            "no images (jpg, jpeg, png, bmp) found in {}{}",
            args.inputs.join(", "),
            if args.recursive {
                ""
            } else {
                " (sub-folders are read with --recursive)"
            }
        );
    }
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the annotation folder {}", dir.display()))?;
    }
    let format = if args.json {
        Format::Jsonl
    } else {
        args.format
    };
    let (pipeline, _) = crate::load_pipeline(engine)?;
    let job = Job {
        pipeline: &pipeline,
        opts: Options {
            max_faces: args.face_num.max(1),
            include_mesh: args.mesh,
            detector: args.profile.config(args.max_side),
            ..Options::default()
        },
        limits: DecodeLimits::default(),
        include_mesh: args.mesh,
        annotate: args.annotate.as_deref(),
    };
    let jobs = effective_jobs(args.jobs, inputs.len());
    let started = Instant::now();
    let mut printer = Printer {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        format,
        pretty: args.pretty,
        written: 0,
    };
    let mut progress = Progress::new(inputs.len(), args.quiet);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut ok_images = 0usize;
    let mut faces = 0usize;
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut annotate_errors = 0usize;
    let mut write_error: Option<std::io::Error> = None;

    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Done)>();
        for w in 0..jobs {
            let tx = tx.clone();
            let (job, inputs, next, stop) = (&job, &inputs, &next, &stop);
            let spawned = std::thread::Builder::new()
                .name(format!("detect-{w}"))
                .spawn_scoped(s, move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(input) = inputs.get(i) else { break };
                        if tx.send((i, job.analyse(input))).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = spawned {
                // Fewer workers than asked is still a run; none at all is caught below.
                eprintln!("facelens: could not start worker {w}: {e}");
            }
        }
        drop(tx);
        if let Err(e) = printer.begin() {
            write_error = Some(e);
            stop.store(true, Ordering::Relaxed);
        }
        let mut pending: BTreeMap<usize, Done> = BTreeMap::new();
        let mut next_out = 0usize;
        for (i, done) in rx {
            pending.insert(i, done);
            while let Some(done) = pending.remove(&next_out) {
                next_out += 1;
                faces += done.faces;
                match done.failure {
                    None => ok_images += 1,
                    Some(name) => *failures.entry(name).or_default() += 1,
                }
                if let Some(e) = done.annotate_error {
                    annotate_errors += 1;
                    progress_println(&progress, &format!("facelens: annotation: {e}"));
                }
                if write_error.is_none()
                    && let Err(e) = printer.report(&done.report)
                {
                    write_error = Some(e);
                    stop.store(true, Ordering::Relaxed);
                }
                progress.tick(next_out, started);
            }
        }
    });
    progress.finish();
    if let Some(e) = write_error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`| head`): not an error of ours.
            return Ok(ExitCode::SUCCESS);
        }
        return Err(e).context("writing the results");
    }
    printer.end().context("writing the results")?;
    drop(printer);
    let processed = ok_images + failures.values().sum::<usize>();
    if processed < inputs.len() {
        bail!(
            "only {processed} of {} images were analysed (no worker thread could start)",
            inputs.len()
        );
    }
    if !args.quiet {
        eprintln!(
            "{}",
            summary(
                processed,
                ok_images,
                faces,
                &failures,
                annotate_errors,
                started.elapsed(),
                jobs
            )
        );
    }
    Ok(if ok_images > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn progress_println(progress: &Progress, line: &str) {
    match progress {
        Progress::Bar(bar) => bar.println(line),
        _ => eprintln!("{line}"),
    }
}

/// The closing lines on stderr.
fn summary(
    images: usize,
    ok: usize,
    faces: usize,
    failures: &BTreeMap<String, usize>,
    annotate_errors: usize,
    elapsed: Duration,
    jobs: usize,
) -> String {
    let secs = elapsed.as_secs_f64();
    let failed: usize = failures.values().sum();
    let mut s = format!(
        "facelens: {images} images, {ok} with faces, {faces} faces, {failed} failed; {secs:.1} s, {:.1} images/s ({jobs} at once)",
        images as f64 / secs.max(1e-9)
    );
    if !failures.is_empty() {
        let by: Vec<String> = failures.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        s.push_str(&format!("\nfacelens: failures: {}", by.join(", ")));
    }
    if annotate_errors > 0 {
        s.push_str(&format!(
            "\nfacelens: {annotate_errors} annotated copies could not be written"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("a.jpg"), "a.jpg");
        assert_eq!(csv_field("a,b.jpg"), "\"a,b.jpg\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn csv_rows_of_an_error_and_of_faces() {
        let err =
            json!({"file": "x.jpg", "error_code": 200216, "reason": "r", "detail": "no face"});
        let rows = csv_rows(&err);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), CSV_HEADER.len());
        assert_eq!(&rows[0][..4], ["x.jpg", "", "200216", "no face"]);
        let ok = json!({"file": "y.jpg", "error_code": 0, "result": {"face_list": [
            {"face_probability": 0.99, "age": 30, "gender": {"type": "male", "probability": 0.9},
             "location": {"left": 1.5, "top": 2, "width": 3, "height": 4, "rotation": 0},
             "angle": {"yaw": 1, "pitch": 2, "roll": 3}, "quality": {"blur": 0.1}},
            {"face_probability": 0.5, "location": {}, "angle": {}, "quality": {}}
        ]}});
        let rows = csv_rows(&ok);
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert_eq!(r.len(), CSV_HEADER.len());
        }
        let col = |name: &str| {
            CSV_HEADER
                .iter()
                .position(|h| *h == name)
                .unwrap_or(usize::MAX)
        };
        assert_eq!(rows[0][col("left")], "1.5");
        assert_eq!(rows[0][col("gender")], "male");
        assert_eq!(rows[0][col("gender_probability")], "0.9");
        assert_eq!(rows[0][col("roll")], "3");
        assert_eq!(rows[0][col("blur")], "0.1");
        assert_eq!(rows[1][col("face_index")], "1");
        assert_eq!(rows[1][col("age")], "");
    }

    #[test]
    fn folders_expand_sorted_and_recursive_only_when_asked() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = dir.path();
        for p in [
            "b.jpg",
            "a.PNG",
            "notes.txt",
            "sub/c.bmp",
            "sub/deeper/d.jpeg",
        ] {
            let path = root.join(p);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
            }
            std::fs::write(&path, b"x").unwrap_or_else(|e| panic!("write: {e}"));
        }
        let arg = root.display().to_string();
        let flat = expand_inputs(std::slice::from_ref(&arg), false)
            .unwrap_or_else(|e| panic!("expand: {e}"));
        let rel: Vec<_> = flat.iter().map(|i| i.rel.clone()).collect();
        assert_eq!(rel, [PathBuf::from("a.PNG"), PathBuf::from("b.jpg")]);
        let deep = expand_inputs(&[arg, "missing.jpg".into()], true)
            .unwrap_or_else(|e| panic!("expand: {e}"));
        let rel: Vec<_> = deep.iter().map(|i| i.rel.clone()).collect();
        assert_eq!(
            rel,
            [
                PathBuf::from("a.PNG"),
                PathBuf::from("b.jpg"),
                PathBuf::from("sub/c.bmp"),
                PathBuf::from("sub/deeper/d.jpeg"),
                PathBuf::from("missing.jpg"),
            ]
        );
        assert_eq!(deep[4].name, "missing.jpg");
        assert_eq!(deep[2].path, root.join("sub/c.bmp"));
    }

    #[test]
    fn jobs_are_bounded_by_the_images() {
        assert_eq!(effective_jobs(4, 2), 2);
        assert_eq!(effective_jobs(1, 100), 1);
        assert!(effective_jobs(0, 100) >= 1);
        assert_eq!(effective_jobs(0, 0), 1);
    }
}
