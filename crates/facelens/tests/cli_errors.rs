//! Error answers of the real `facelens detect` binary on bad inputs.
//!
//! Every case is written to a temporary folder and run through the binary, which prints one JSON
//! object per image and exits 1 when every image had an error (as in all cases here). Each case
//! must get its exact `error_code`, the table's Chinese `reason` and no panic; one invocation
//! with several files must answer one line per file, in order.

use facelens_core::ErrorCode;
use image::{ImageFormat, RgbImage};
use serde_json::Value;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "facelens-cli-errors-{}-{nanos}-{tag}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("creating the temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("writing a test file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Output {
    status: Option<i32>,
    lines: Vec<Value>,
    stderr: String,
    elapsed: Duration,
}

/// Run `facelens detect FILE...`.
fn detect(files: &[&Path]) -> Output {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .arg("detect")
        .args(files)
        // Keep the backend fixed whatever the environment says.
        .env("FACELENS_BACKEND", "rten")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running the facelens binary");
    let elapsed = t.elapsed();
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect();
    Output {
        status: out.status.code(),
        lines,
        stderr,
        elapsed,
    }
}

fn assert_no_panic(o: &Output) {
    for needle in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(
            !o.stderr.contains(needle),
            "stderr mentions {needle:?}:\n{}",
            o.stderr
        );
    }
}

fn assert_error_line(line: &Value, file: &Path, code: ErrorCode) {
    assert_eq!(
        line["file"].as_str(),
        Some(file.to_str().expect("utf-8 path")),
        "line for the wrong file: {line}"
    );
    assert_eq!(
        line["error_code"].as_u64(),
        Some(code.code() as u64),
        "{}: expected {code}, got {line}",
        file.display()
    );
    assert_eq!(
        line["reason"].as_str(),
        Some(code.message()),
        "{}: reason is not the table's message: {line}",
        file.display()
    );
    assert!(
        line["result"].is_null(),
        "error answers carry no result: {line}"
    );
}

// ---- inputs ----

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A well-formed PNG header (IHDR with a correct CRC) claiming `w × h` RGB, followed by a tiny
/// IDAT and IEND: a decompression bomb as far as the header is concerned.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut v, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes (stored block).
    png_chunk(
        &mut v,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0, 0x04, 0, 0x01,
        ],
    );
    png_chunk(&mut v, b"IEND", &[]);
    v
}

/// A baseline JPEG header (SOI + SOF0) claiming `w × h`, then EOI.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

fn textured(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)).wrapping_mul(2_654_435_761);
        image::Rgb([(v >> 24) as u8, (v >> 16) as u8, (x * 4 + y) as u8])
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    img.write_to(&mut c, format).expect("encoding a test image");
    c.into_inner()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    encode(&textured(w, h), ImageFormat::Png)
}

fn truncated_jpeg() -> Vec<u8> {
    let jpg = encode(&textured(256, 256), ImageFormat::Jpeg);
    jpg[..jpg.len() / 2].to_vec()
}

fn flat_grey() -> Vec<u8> {
    encode(
        &RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128])),
        ImageFormat::Png,
    )
}

/// Just over the contract's 4 MB, starting with JPEG magic bytes.
fn over_4mb() -> Vec<u8> {
    let mut v = vec![0u8; 4 * 1024 * 1024 + 1];
    v[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    v
}

/// All cases: (file name, bytes, expected code).
fn cases() -> Vec<(&'static str, Vec<u8>, ErrorCode)> {
    vec![
        ("empty.jpg", Vec::new(), ErrorCode::MissingParameter),
        (
            "text.jpg",
            b"hello, this is a text file, not an image\n".to_vec(),
            ErrorCode::UnsupportedFormat,
        ),
        (
            "header.gif",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec(),
            ErrorCode::UnsupportedFormat,
        ),
        ("truncated.jpg", truncated_jpeg(), ErrorCode::CorruptImage),
        (
            "bomb16000.png",
            png_claiming(16000, 16000),
            ErrorCode::ImageDimensionsTooLarge,
        ),
        (
            "bomb60000.jpg",
            jpeg_claiming(60000, 60000),
            ErrorCode::ImageDimensionsTooLarge,
        ),
        ("one_px.png", png(1, 1), ErrorCode::ImageTooSmall),
        ("14x200.png", png(14, 200), ErrorCode::ImageTooSmall),
        (
            "5000x20.png",
            png(5000, 20),
            ErrorCode::ImageDimensionsTooLarge,
        ),
        ("over4mb.jpg", over_4mb(), ErrorCode::ImageTooLarge),
        ("grey64.png", flat_grey(), ErrorCode::NoFace),
    ]
}

#[test]
fn each_bad_input_gets_its_code_alone() {
    let dir = TempDir::new("alone");
    for (name, bytes, code) in cases() {
        let path = dir.write(name, &bytes);
        let o = detect(&[&path]);
        assert_no_panic(&o);
        assert_eq!(
            o.status,
            Some(1),
            "{name}: exit status (stderr: {})",
            o.stderr
        );
        assert_eq!(
            o.lines.len(),
            1,
            "{name}: one line per image: {:?}",
            o.lines
        );
        assert_error_line(&o.lines[0], &path, code);
        println!("{name}: {} in {:?}", code.code(), o.elapsed);
    }
}

#[test]
fn decompression_bomb_is_refused_fast() {
    let dir = TempDir::new("bomb");
    let grey = dir.write("grey.png", &flat_grey());
    let bomb = dir.write("bomb.png", &png_claiming(16000, 16000));
    // Baseline: the same invocation on a tiny image (model loading dominates both).
    let base = detect(&[&grey]);
    let o = detect(&[&bomb]);
    assert_no_panic(&o);
    assert_error_line(&o.lines[0], &bomb, ErrorCode::ImageDimensionsTooLarge);
    println!(
        "16000x16000 png header: {:?} (64x64 grey image: {:?})",
        o.elapsed, base.elapsed
    );
    // Decoding 16000² pixels would take seconds and ~768 MB; refusing it from the header is
    // no slower than analysing a 64x64 image.
    assert!(
        o.elapsed < base.elapsed + Duration::from_secs(2),
        "refusing the bomb took {:?} (baseline {:?})",
        o.elapsed,
        base.elapsed
    );
}

#[test]
fn several_files_answer_one_line_each_in_order() {
    let dir = TempDir::new("many");
    let cases = cases();
    let paths: Vec<PathBuf> = cases
        .iter()
        .map(|(name, bytes, _)| dir.write(name, bytes))
        .collect();
    // Reverse order too, so the order is the command line's and not e.g. the file names'.
    for reverse in [false, true] {
        let mut order: Vec<usize> = (0..cases.len()).collect();
        if reverse {
            order.reverse();
        }
        let args: Vec<&Path> = order.iter().map(|&i| paths[i].as_path()).collect();
        let o = detect(&args);
        assert_no_panic(&o);
        assert_eq!(o.status, Some(1), "stderr: {}", o.stderr);
        assert_eq!(o.lines.len(), cases.len(), "one line per file");
        for (line, &i) in o.lines.iter().zip(&order) {
            assert_error_line(line, &paths[i], cases[i].2);
        }
    }
}

#[test]
fn size_format_and_corruption_get_distinct_codes() {
    let dir = TempDir::new("distinct");
    let files = [
        dir.write("14px.png", &png(14, 200)),
        dir.write("5000px.png", &png(5000, 20)),
        dir.write("truncated.jpg", &truncated_jpeg()),
        dir.write("notes.jpg", b"not an image at all"),
    ];
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let o = detect(&args);
    assert_no_panic(&o);
    let codes: Vec<u64> = o
        .lines
        .iter()
        .map(|l| l["error_code"].as_u64().expect("numeric error_code"))
        .collect();
    assert_eq!(codes, [200206, 200207, 200205, 200204]);
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), 4, "codes must be distinct: {codes:?}");
}

#[test]
fn unreadable_file_is_reported_not_fatal() {
    let dir = TempDir::new("missing");
    let grey = dir.write("grey.png", &flat_grey());
    let missing = dir.0.join("does-not-exist.jpg");
    let o = detect(&[&missing, &grey]);
    assert_no_panic(&o);
    assert_eq!(o.status, Some(1));
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[0]["file"].as_str(), missing.to_str());
    assert!(o.lines[0]["error_code"].is_null(), "{}", o.lines[0]);
    assert!(
        o.lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot read file")),
        "{}",
        o.lines[0]
    );
    assert_error_line(&o.lines[1], &grey, ErrorCode::NoFace);
}
