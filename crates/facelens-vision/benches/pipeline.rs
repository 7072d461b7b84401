//! Per-stage benchmarks: decode, detection, mesh, each attribute model, the whole pipeline.
//!
//! Run with `cargo bench -p facelens-vision` (pure-Rust rten backend) or, for onnxruntime,
//! `ORT_DYLIB_PATH=... FACELENS_BENCH_BACKEND=onnxruntime cargo bench -p facelens-vision --features ort`
//! (`scripts/bench.sh` runs both one after the other). Inference threads come from
//! `FACELENS_BENCH_THREADS` (default 0 = one per core; it also bounds the per-face jobs run side
//! by side, so 1 times the whole pipeline on one thread); the weights of the int8-capable models from
//! `FACELENS_PRECISION` (default auto: int8 on onnxruntime, f32 on rten, as the binary).
//!
//! Inputs are real dev photos from `../shared/evaldata` (or `FACELENS_EVALDATA`), never committed:
//! a one-face WIDER photo cropped to 4:3 and resized to 640×480, 1920×1080 (16:9 crop) and
//! 4096×3072, re-encoded as JPEG quality 90, and a WIDER photo with ten faces; and a faceless
//! synthetic picture (smooth waves plus noise, as JPEG at the same sizes) that times the full
//! "nothing found" retry chain (padded canvases, grey canvas, close-up detector). Upscaled photos
//! carry less fine detail than a real 12-megapixel photo, so their JPEG decode is a little
//! cheaper than a camera file's. Without the data the benchmarks print why and do nothing.

use divan::{Bencher, black_box};
use facelens_imaging::{DecodeLimits, Rgb, decode, encode_jpeg};
use facelens_infer::{BackendKind, create_backend};
use facelens_vision::attributes::Attributor;
use facelens_vision::attributes::{Attribute, AttributeOptions};
use facelens_vision::detect::{Detection, DetectorConfig};
use facelens_vision::mesh::FaceMesh;
use facelens_vision::pipeline::{Models, Options, Pipeline, Precision};
use std::path::PathBuf;
use std::sync::LazyLock;

fn main() {
    if FIXTURE.is_none() {
        eprintln!("benchmarks skipped: evaluation data not found (set FACELENS_EVALDATA)");
        return;
    }
    divan::main();
}

const ONE_FACE: &str =
    "detection/wider_face_val/images/13--Interview/13_Interview_Interview_On_Location_13_426.jpg";
const TEN_FACES: &str = "detection/wider_face_val/images/19--Couple/19_Couple_Couple_19_836.jpg";
const SIZES: [&str; 3] = ["640x480", "1920x1080", "4096x3072"];

struct Fixture {
    pipeline: Pipeline,
    models: Models,
    /// JPEG bytes per size in `SIZES`.
    jpegs: Vec<Vec<u8>>,
    /// Decoded 640×480 image and its largest detection.
    img: Rgb,
    det: Detection,
    ten: Vec<u8>,
    /// Faceless JPEG bytes per size in `SIZES`.
    faceless: Vec<Vec<u8>>,
}

/// A deterministic faceless picture: two crossed waves of colour plus pseudo-random noise in
/// 4×4 blocks (what it shows does not matter: the retries cost the same on any image with no
/// face; block noise keeps the 4096×3072 JPEG under the default 4 MiB upload limit).
fn faceless(w: u32, h: u32) -> Rgb {
    Rgb::from_fn(w, h, |x, y| {
        let mut seed =
            (x / 4).wrapping_mul(0x9e37_79b9) ^ (y / 4).wrapping_mul(0x85eb_ca6b) ^ 0x2545_f491;
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let base = [
            0.5 + 0.4 * (fx * 9.0 + fy * 2.0).sin(),
            0.5 + 0.4 * (fy * 7.0 - fx * 3.0).cos(),
            0.5 + 0.3 * ((fx + fy) * 5.0).sin(),
        ];
        let noise = (seed % 41) as f32 / 255.0 - 0.08;
        image::Rgb(base.map(|b| ((b + noise).clamp(0.0, 1.0) * 255.0) as u8))
    })
}

fn evaldata() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FACELENS_EVALDATA") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/evaldata");
    root.is_dir().then_some(root)
}

/// Centre-crop to the aspect `w:h`, then resize to `w × h`.
fn crop_resize(img: &Rgb, w: u32, h: u32) -> Rgb {
    let (iw, ih) = img.dimensions();
    let (cw, ch) = if iw * h > ih * w {
        (ih * w / h, ih)
    } else {
        (iw, iw * h / w)
    };
    let cropped = image::imageops::crop_imm(img, (iw - cw) / 2, (ih - ch) / 2, cw, ch).to_image();
    image::imageops::resize(&cropped, w, h, image::imageops::FilterType::Lanczos3)
}

static FIXTURE: LazyLock<Option<Fixture>> = LazyLock::new(|| {
    let root = evaldata()?;
    let kind: BackendKind = std::env::var("FACELENS_BENCH_BACKEND")
        .unwrap_or_else(|_| "rten".into())
        .parse()
        .ok()?;
    let threads = std::env::var("FACELENS_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let backend = create_backend(kind, threads).ok()?;
    let precision = std::env::var("FACELENS_PRECISION").unwrap_or_else(|_| "auto".into());
    let precision = match Precision::resolve(&precision, backend.name()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    eprintln!(
        "backend: {}, threads: {threads}, precision: {}",
        backend.name(),
        precision.name()
    );
    let models = Models::load_embedded_with(backend.as_ref(), precision).ok()?;
    // The per-face jobs run side by side on as many threads as the models may use.
    let pipeline = Pipeline::new(models.clone())
        .ok()?
        .with_stage_threads(threads);
    let limits = DecodeLimits::default();
    let src = decode(&std::fs::read(root.join(ONE_FACE)).ok()?, &limits)
        .ok()?
        .image;
    let jpegs: Vec<Vec<u8>> = SIZES
        .iter()
        .map(|s| {
            let (w, h) = s.split_once('x').unwrap_or(("640", "480"));
            let (w, h) = (w.parse().unwrap_or(640), h.parse().unwrap_or(480));
            encode_jpeg(&crop_resize(&src, w, h), 90)
        })
        .collect();
    let img = decode(&jpegs[0], &limits).ok()?.image;
    let mut dets = pipeline.detect(&img, &DetectorConfig::fast(640)).ok()?;
    dets.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
    let det = dets.into_iter().next()?;
    let ten = std::fs::read(root.join(TEN_FACES)).ok()?;
    let faceless: Vec<Vec<u8>> = SIZES
        .iter()
        .map(|s| {
            let (w, h) = s.split_once('x').unwrap_or(("640", "480"));
            encode_jpeg(
                &faceless(w.parse().unwrap_or(640), h.parse().unwrap_or(480)),
                90,
            )
        })
        .collect();
    for (size, jpeg) in SIZES.iter().zip(&faceless) {
        if jpeg.len() > limits.max_file_bytes {
            eprintln!(
                "the faceless {size} JPEG is {} bytes, over the {}-byte upload limit (pipeline_no_face will stop on it)",
                jpeg.len(),
                limits.max_file_bytes
            );
        }
    }
    let small = decode(&faceless[0], &limits).ok()?.image;
    let found = pipeline
        .detect_with_retry(&small, &DetectorConfig::fast(640))
        .ok()?;
    if !found.is_empty() {
        eprintln!(
            "the faceless picture has {} \"faces\": its benchmark times no retry",
            found.len()
        );
    }
    Some(Fixture {
        pipeline,
        models,
        jpegs,
        img,
        det,
        ten,
        faceless,
    })
});

fn fx() -> &'static Fixture {
    match FIXTURE.as_ref() {
        Some(f) => f,
        None => unreachable!("main() returns before benchmarks when the fixture is missing"),
    }
}

fn size_index(size: &str) -> usize {
    SIZES.iter().position(|s| *s == size).unwrap_or(0)
}

#[divan::bench(args = SIZES)]
fn decode_jpeg(bencher: Bencher, size: &str) {
    let bytes = &fx().jpegs[size_index(size)];
    let limits = DecodeLimits::default();
    bencher.bench(|| decode(black_box(bytes), &limits).map(|d| d.image.width()));
}

#[divan::bench]
fn detect_640x480(bencher: Bencher) {
    let f = fx();
    let cfg = DetectorConfig::fast(640);
    bencher.bench(|| f.pipeline.detect(black_box(&f.img), &cfg).map(|d| d.len()));
}

#[divan::bench]
fn mesh_one_face(bencher: Bencher) {
    let f = fx();
    let mesh = match FaceMesh::new(f.models.mesh.clone()) {
        Ok(m) => m,
        Err(e) => panic!("mesh model: {e}"),
    };
    bencher.bench(|| mesh.run(black_box(&f.img), &f.det).map(|m| m.score));
}

/// One attribute (plus what it needs) on one face, cropping included.
#[divan::bench(args = ["age", "gender", "emotion", "race"])]
fn attribute(bencher: Bencher, which: &str) {
    let f = fx();
    let attributor = Attributor::new(f.models.attributes.clone());
    let opts = match which.parse::<Attribute>() {
        Ok(a) => AttributeOptions::only(&[a]),
        Err(e) => panic!("{e}"),
    };
    bencher.bench(|| {
        attributor
            .run(black_box(&f.img), &f.det.landmarks, None, &opts)
            .map(|(a, _)| a.age)
    });
}

fn run_pipeline(bytes: &[u8], max_faces: usize, attributes: AttributeOptions) -> usize {
    let opts = Options {
        max_faces,
        attributes,
        ..Options::default()
    };
    match fx()
        .pipeline
        .analyze_bytes(black_box(bytes), &DecodeLimits::default(), &opts)
    {
        Ok(a) => a.faces.len(),
        Err(e) => panic!("pipeline: {e}"),
    }
}

/// Decode + detect + mesh + every attribute, one face, from JPEG bytes.
#[divan::bench(args = SIZES)]
fn pipeline_one_face(bencher: Bencher, size: &str) {
    let bytes = &fx().jpegs[size_index(size)];
    bencher.bench(|| run_pipeline(bytes, 1, AttributeOptions::ALL));
}

/// The same without attributes (geometry, pose and quality only).
#[divan::bench]
fn pipeline_one_face_geometry_only(bencher: Bencher) {
    let bytes = &fx().jpegs[0];
    bencher.bench(|| run_pipeline(bytes, 1, AttributeOptions::NONE));
}

/// Ten faces, every attribute on each.
#[divan::bench(sample_count = 10)]
fn pipeline_ten_faces(bencher: Bencher) {
    let bytes = &fx().ten;
    bencher.bench(|| run_pipeline(bytes, 10, AttributeOptions::ALL));
}

/// A photo with no face: the normal pass, then every retry step (they run only when nothing is
/// found, on the image scaled to at most 640 px).
#[divan::bench(args = SIZES)]
fn pipeline_no_face(bencher: Bencher, size: &str) {
    let bytes = &fx().faceless[size_index(size)];
    bencher.bench(|| run_pipeline(bytes, 1, AttributeOptions::ALL));
}

/// The same 640×480 faceless photo with the retries switched off (`Options::retry_padded`):
/// the difference is what the retry chain costs.
#[divan::bench]
fn pipeline_no_face_without_retries(bencher: Bencher) {
    let bytes = &fx().faceless[0];
    let opts = Options {
        max_faces: 1,
        retry_padded: false,
        ..Options::default()
    };
    bencher.bench(|| {
        fx().pipeline
            .analyze_bytes(black_box(bytes), &DecodeLimits::default(), &opts)
            .map(|a| a.faces.len())
    });
}
