//! `facelens detect` as a batch tool, run as a user runs it: a folder with a sub-folder, real
//! photos and a broken file; every output format, `--recursive`, `--annotate`, the summary on
//! stderr and the exit codes.
//!
//! The images are the committed ones (`test-data/`, public domain and CC0, see
//! `test-data/README.md`), copied into a temporary folder: these tests run on every clone.

use facelens_imaging::image::{self, RgbImage};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// One frontal face.
const ONE_FACE: &str = "astronaut.jpg";
/// One face, grey photo.
const ONE_FACE_GREY: &str = "camera.jpg";
/// Three faces of three sizes side by side.
const THREE_FACES: &str = "astronaut_trio.jpg";
/// One face filling a small grey frame.
const SMALL_CROP: &str = "astronaut_grey64.jpg";

/// The test folder:
///
/// ```text
/// a.jpg  b.jpg  broken.jpg  notes.txt  sub/c.jpg  sub/deeper/d.jpg
/// ```
///
/// `broken.jpg` is text (200204); `notes.txt` is not an image and is never read.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn root(&self) -> &Path {
        self.dir.path()
    }
}

fn folder() -> Folder {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
    for (src, dst) in [
        (ONE_FACE, "a.jpg"),
        (ONE_FACE_GREY, "b.jpg"),
        (THREE_FACES, "sub/c.jpg"),
        (SMALL_CROP, "sub/deeper/d.jpg"),
    ] {
        std::fs::copy(facelens_testkit::test_image(src), root.join(dst))
            .expect("copying a test image");
    }
    std::fs::write(root.join("broken.jpg"), b"this is not a jpeg\n").expect("write");
    std::fs::write(root.join("notes.txt"), b"not an image").expect("write");
    Folder { dir }
}

struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn detect(args: &[&str], paths: &[&Path]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .arg("detect")
        .args(args)
        .args(paths)
        .env("FACELENS_BACKEND", "rten")
        .output()
        .expect("running the facelens binary");
    let run = Run {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

fn jsonl(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The file names of the output lines, relative to the folder.
fn files(lines: &[Value], root: &Path) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let f = l["file"].as_str().expect("file");
            Path::new(f)
                .strip_prefix(root)
                .unwrap_or_else(|_| panic!("{f} is not under {}", root.display()))
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn folder_is_read_in_sorted_order_and_recursive_descends() {
    let f = folder();
    let flat = detect(&[], &[f.root()]);
    assert_eq!(flat.status, Some(0), "{}", flat.stderr);
    let lines = jsonl(&flat);
    assert_eq!(files(&lines, f.root()), ["a.jpg", "b.jpg", "broken.jpg"]);
    assert_eq!(lines[0]["error_code"], 0, "{}", lines[0]);
    assert_eq!(lines[1]["result"]["face_num"], 1, "{}", lines[1]);
    assert_eq!(lines[2]["error_code"], 200204, "{}", lines[2]);

    let deep = detect(&["--recursive", "--face-num", "3"], &[f.root()]);
    assert_eq!(deep.status, Some(0), "{}", deep.stderr);
    let lines = jsonl(&deep);
    assert_eq!(
        files(&lines, f.root()),
        [
            "a.jpg",
            "b.jpg",
            "broken.jpg",
            "sub/c.jpg",
            "sub/deeper/d.jpg"
        ]
    );
    // The trio holds three faces: face_num 3 gives three faces.
    assert_eq!(lines[3]["result"]["face_num"], 3, "{}", lines[3]);
    // The per-image object is the one a single-file run prints (the contract plus file,
    // image and timings).
    let single = detect(&["--face-num", "3"], &[&f.root().join("sub/c.jpg")]);
    let one = jsonl(&single);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["result"], lines[3]["result"]);
    assert_eq!(one[0]["image"], lines[3]["image"]);

    // The summary: images, faces, failures by code, time and rate.
    let s = &deep.stderr;
    assert!(
        s.contains("5 images, 4 with faces, 6 faces, 1 failed"),
        "{s}"
    );
    assert!(s.contains("200204"), "{s}");
    assert!(s.contains("images/s"), "{s}");
    // Not a terminal: no bar, and plain progress lines only after ten seconds (a short run, on
    // a machine that is not busy, has none).
    let secs: f64 = s
        .lines()
        .find(|l| l.contains(" at once)"))
        .and_then(|l| l.split("; ").nth(1))
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no run time in the summary: {s}"));
    for line in s.lines().filter(|l| l.contains("/5 images")) {
        assert!(
            line.starts_with("facelens: ") && line.ends_with(" images/s"),
            "{line}"
        );
    }
    if secs < 10.0 {
        assert!(!s.contains("/5 images"), "{s}");
    }
}

#[test]
fn output_order_does_not_depend_on_parallelism() {
    let f = folder();
    let strip = |run: &Run| -> Vec<Value> {
        jsonl(run)
            .into_iter()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("timings");
                }
                v
            })
            .collect()
    };
    let one = detect(&["-r", "--jobs", "1"], &[f.root()]);
    let four = detect(&["-r", "--jobs", "4"], &[f.root()]);
    assert!(one.stderr.contains("(1 at once)"), "{}", one.stderr);
    assert!(four.stderr.contains("(4 at once)"), "{}", four.stderr);
    assert_eq!(strip(&one), strip(&four));
    // Files given one by one keep the command line's order, folders or not.
    let b = f.root().join("b.jpg");
    let a = f.root().join("a.jpg");
    let run = detect(&[], &[&b, &a]);
    let names: Vec<_> = jsonl(&run)
        .iter()
        .map(|l| l["file"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, [b.display().to_string(), a.display().to_string()]);
}

#[test]
fn csv_has_one_row_per_face_and_error_rows() {
    let f = folder();
    let run = detect(&["-r", "--face-num", "3", "--format", "csv"], &[f.root()]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let mut lines = run.stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    for col in [
        "file",
        "face_index",
        "error_code",
        "error",
        "left",
        "top",
        "width",
        "height",
        "face_probability",
        "age",
        "gender",
        "expression",
        "emotion",
        "glasses",
        "race",
        "face_shape",
        "beauty",
        "left_eye_open",
        "right_eye_open",
        "face_type",
        "yaw",
        "pitch",
        "roll",
        "blur",
        "illumination",
        "completeness",
    ] {
        assert!(header.contains(&col), "column {col} missing: {header:?}");
    }
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    // Error messages contain commas and are quoted, so split with quoting rules.
    let owned: Vec<Vec<String>> = lines.map(split_csv).collect();
    let rows: Vec<Vec<&str>> = owned
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
    }
    // 1 + 1 + 3 faces, the broken file's row, 1 face: 7 rows.
    assert_eq!(rows.len(), 7, "{}", run.stdout);
    let of = |name: &str| -> Vec<&Vec<&str>> {
        rows.iter()
            .filter(|r| r[col("file")].ends_with(name))
            .collect()
    };
    let c = of("sub/c.jpg");
    assert_eq!(
        c.iter().map(|r| r[col("face_index")]).collect::<Vec<_>>(),
        ["0", "1", "2"]
    );
    for r in &c {
        assert_eq!(r[col("error_code")], "0");
        assert!(r[col("width")].parse::<f64>().expect("width") > 5.0);
        assert!(r[col("face_probability")].parse::<f64>().expect("score") > 0.5);
    }
    let a = of("/a.jpg");
    assert_eq!(a.len(), 1);
    assert!(a[0][col("age")].parse::<u32>().is_ok(), "{:?}", a[0]);
    assert!(
        matches!(a[0][col("gender")], "male" | "female"),
        "{:?}",
        a[0]
    );
    let broken = of("broken.jpg");
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0][col("error_code")], "200204");
    assert_eq!(broken[0][col("face_index")], "");
    assert!(!broken[0][col("error")].is_empty());
}

#[test]
fn json_is_one_array() {
    let f = folder();
    let run = detect(&["--format", "json"], &[f.root()]);
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let items = v.as_array().expect("an array");
    assert_eq!(files(items, f.root()), ["a.jpg", "b.jpg", "broken.jpg"]);
}

fn load(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

#[test]
fn annotate_writes_marked_copies_under_the_same_paths() {
    let f = folder();
    let out = tempfile::tempdir().expect("tempdir");
    let run = detect(
        &["-r", "--face-num", "3", "--annotate"],
        &[out.path(), f.root()],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let lines = jsonl(&run);
    for (rel, line) in [
        ("a.jpg", &lines[0]),
        ("sub/c.jpg", &lines[3]),
        ("sub/deeper/d.jpg", &lines[4]),
    ] {
        let copy = out.path().join(rel);
        assert!(copy.is_file(), "{} missing", copy.display());
        let original = load(&f.root().join(rel));
        let marked = load(&copy);
        assert_eq!(marked.dimensions(), original.dimensions(), "{rel}");
        // Along each face box's top edge the copy differs strongly from the original (the box
        // is drawn there); JPEG re-encoding alone changes pixels by a few levels.
        for face in line["result"]["face_list"].as_array().expect("faces") {
            let loc = &face["location"];
            let num = |k: &str| loc[k].as_f64().expect("number");
            let (x0, y0, w) = (num("left"), num("top"), num("width"));
            let y = y0.round().clamp(0.0, original.height() as f64 - 1.0) as u32;
            let xs = (x0.max(0.0) as u32)..((x0 + w).min(original.width() as f64 - 1.0) as u32);
            let n = xs.len().max(1) as f64;
            let diff: f64 = xs
                .map(|x| {
                    let (p, q) = (original.get_pixel(x, y), marked.get_pixel(x, y));
                    (0..3)
                        .map(|c| (p[c] as f64 - q[c] as f64).abs())
                        .sum::<f64>()
                        / 3.0
                })
                .sum::<f64>()
                / n;
            assert!(
                diff > 25.0,
                "{rel}: box edge differs by only {diff:.1} levels"
            );
        }
        // Far from every face (a corner of the trio's grey canvas, away from any label) the copy
        // is the original up to JPEG noise.
        if rel == "sub/c.jpg" {
            let (w, h) = original.dimensions();
            let (p, q) = (
                original.get_pixel(w - 3, h - 3),
                marked.get_pixel(w - 3, h - 3),
            );
            let d: i32 = (0..3).map(|c| (p[c] as i32 - q[c] as i32).abs()).sum();
            assert!(d < 60, "corner changed by {d}");
        }
    }
    assert!(
        !out.path().join("broken.jpg").exists(),
        "no copy of an undecodable file"
    );
    assert!(!out.path().join("notes.txt").exists());
}

#[test]
fn exit_codes() {
    let f = folder();
    // Every image failed: 1.
    let broken = detect(&[], &[&f.root().join("broken.jpg")]);
    assert_eq!(broken.status, Some(1), "{}", broken.stderr);
    assert_eq!(jsonl(&broken).len(), 1);
    assert!(broken.stderr.contains("1 failed"), "{}", broken.stderr);
    // Some failed, some did not: 0 (failures are in the output and the summary).
    let mixed = detect(
        &[],
        &[&f.root().join("broken.jpg"), &f.root().join("a.jpg")],
    );
    assert_eq!(mixed.status, Some(0), "{}", mixed.stderr);
    // A folder without images: a usage error, 2, with a hint about --recursive.
    let empty = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(empty.path().join("sub")).expect("mkdir");
    std::fs::copy(f.root().join("a.jpg"), empty.path().join("sub/x.jpg")).expect("copy");
    let none = detect(&[], &[empty.path()]);
    assert_eq!(none.status, Some(2), "{}", none.stderr);
    assert!(none.stderr.contains("--recursive"), "{}", none.stderr);
    assert!(none.stdout.is_empty());
    // Unknown format: a usage error, 2.
    let bad = detect(&["--format", "xml"], &[f.root()]);
    assert_eq!(bad.status, Some(2), "{}", bad.stderr);
    // --quiet: no summary.
    let quiet = detect(&["-q"], &[&f.root().join("a.jpg")]);
    assert_eq!(quiet.status, Some(0));
    assert!(!quiet.stderr.contains("images/s"), "{}", quiet.stderr);
}

/// One CSV line split into fields (RFC 4180 quoting: `"` around a field, `""` inside it).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let cur = fields.last_mut().expect("a field");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => cur.push(c),
        }
    }
    fields
}
