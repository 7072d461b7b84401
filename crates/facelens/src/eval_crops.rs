//! `facelens eval crops`: write the exact aligned crops (and the landmarks and mesh) that the
//! pipeline computes for the largest face of each image of a manifest, for training models
//! offline on the pixels the service will feed them.
//!
//! Each image goes through the service's detector (fast profile, padded retry) and face mesh
//! exactly as in `facelens eval attributes`; every crop is then cut by
//! [`facelens_vision::attributes::crop::aligned_f32`] from the five detector landmarks onto a
//! template of [`facelens_vision::attributes::crop`]: the same function and the same templates
//! the attribute models are served with. Crops are written unrounded (interleaved RGB `f32`,
//! 0..255) as one `.npy` array per view, `N × S × S × 3`, one row per manifest line in manifest
//! order; a row whose image has no face found (or degenerate landmarks) is all zeros and says
//! `"found": false` in `index.jsonl`. A mirror image of a crop is `crop[:, :, ::-1]`
//! ([`facelens_vision::attributes::crop::flip_h`] is that permutation).
//!
//! `--mirror` and `--scale` transform the photo *before* detection (for the stability checks:
//! the landmarks, and so the crops, move the way they would for a user's mirrored or resized
//! photo).
//!
//! Output folder: `index.jsonl` (per row: `i`, `found`, the manifest line's fields, detector
//! box, score and landmarks, mesh score, pose), `landmarks.npy` (`N × 5 × 2`, image pixels of
//! the transformed photo), `mesh.npy` (`N × 468 × 3`, image pixels, z relative depth) and one
//! `<view>.npy` per view. training/README.md says how the training code reads them.

use anyhow::{Context, Result, bail};
use clap::Args;
use facelens_core::Point;
use facelens_core::types::Timings;
use facelens_imaging::{DecodeLimits, Rgb, decode, resize};
use facelens_vision::attributes::crop::{
    DLIB_PADDING, FER_48, UTKFACE_200, aligned_f32, dlib_chip_template, scaled_template,
    square_template,
};
use facelens_vision::attributes::{AttributeOptions, EMOTION_PADDING, GEAR_PADDING};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Mesh points per face.
const MESH_POINTS: usize = 468;

#[derive(Args)]
pub struct CropsArgs {
    /// A JSONL manifest with a `file` per line (e.g. trainingdata/manifest.jsonl).
    #[arg(long)]
    pub manifest: PathBuf,
    /// Folder the manifest's `file` paths are relative to (default: the manifest's folder).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Comma-separated views: the serving ones `faceapi112` (face-api, UTKFace framing),
    /// `gear198` (GEAR), `dlib64` / `dlib32` (dlib chips, padding 0.2), `fer64` (emotion, FER
    /// framing, colour: the nets' grey is computed from it), or `utk:SIZE:PADDING` (the UTKFace
    /// framing at any size and margin) and `square:SIZE:PADDING` (ArcFace framing).
    #[arg(long, default_value = "faceapi112")]
    pub views: String,
    /// Only manifest lines whose `file` starts with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only the first N (selected) lines.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Mirror each photo left to right before detection.
    #[arg(long)]
    pub mirror: bool,
    /// Resize each photo by this factor before detection (bilinear).
    #[arg(long)]
    pub scale: Option<f32>,
    /// Longest image side the (fast, service default) detector profile works at.
    #[arg(long, default_value_t = 640)]
    pub max_side: u32,
}

/// One crop geometry: a template of five landmark positions in a `size × size` crop.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub size: u32,
    pub template: [Point; 5],
}

/// Parse one view name (see [`CropsArgs::views`]).
pub fn parse_view(spec: &str) -> Result<View> {
    let named = |size: u32, template: [Point; 5]| View {
        name: spec.to_string(),
        size,
        template,
    };
    Ok(match spec {
        // Sizes and margins as the attribute models are served (facelens-vision attributes).
        "faceapi112" => named(112, scaled_template(&UTKFACE_200, 200.0, 112.0, 0.0)),
        "gear198" => named(
            198,
            scaled_template(&UTKFACE_200, 200.0, 198.0, GEAR_PADDING),
        ),
        "dlib64" => named(64, dlib_chip_template(64.0, DLIB_PADDING)),
        "dlib32" => named(32, dlib_chip_template(32.0, DLIB_PADDING)),
        "fer64" => named(64, scaled_template(&FER_48, 48.0, 64.0, EMOTION_PADDING)),
        _ => {
            let parts: Vec<&str> = spec.split(':').collect();
            let [kind, size, pad] = parts.as_slice() else {
                bail!("unknown view {spec:?}");
            };
            let size: u32 = size
                .parse()
                .with_context(|| format!("view {spec:?}: size"))?;
            let pad: f32 = pad
                .parse()
                .with_context(|| format!("view {spec:?}: padding"))?;
            if !(8..=512).contains(&size) || !(-0.4..=1.0).contains(&pad) {
                bail!("view {spec:?}: size must be 8..=512 and padding -0.4..=1");
            }
            let template = match *kind {
                "utk" => scaled_template(&UTKFACE_200, 200.0, size as f32, pad),
                "square" => square_template(size as f32, pad),
                _ => bail!("unknown view kind {kind:?} in {spec:?}"),
            };
            View {
                name: format!("{kind}{size}_{pad}"),
                size,
                template,
            }
        }
    })
}

/// Writes a little-endian `f32` `.npy` array of a fixed shape row by row.
pub struct NpyWriter {
    w: BufWriter<File>,
    row_len: usize,
    rows_left: usize,
}

/// The `.npy` (version 1.0) header for a C-order `<f4` array of `shape`.
pub fn npy_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + length (2) + dict + '\n' is a multiple of 64.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h
}

impl NpyWriter {
    pub fn create(path: &Path, shape: &[usize]) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(f);
        w.write_all(&npy_header(shape))?;
        Ok(Self {
            w,
            row_len: shape.iter().skip(1).product(),
            rows_left: shape.first().copied().unwrap_or(0),
        })
    }

    /// Append one row (`None`: zeros).
    pub fn row(&mut self, data: Option<&[f32]>) -> Result<()> {
        if self.rows_left == 0 {
            bail!("npy: more rows than the header says");
        }
        match data {
            Some(d) if d.len() == self.row_len => {
                for v in d {
                    self.w.write_all(&v.to_le_bytes())?;
                }
            }
            Some(d) => bail!("npy: row of {} values, expected {}", d.len(), self.row_len),
            None => self.w.write_all(&vec![0u8; self.row_len * 4])?,
        }
        self.rows_left -= 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        if self.rows_left != 0 {
            bail!("npy: {} rows missing", self.rows_left);
        }
        self.w.flush()?;
        Ok(())
    }
}

/// The photo as the user would send it: mirrored and/or resized.
fn transform(img: Rgb, mirror: bool, scale: Option<f32>) -> Rgb {
    let img = if mirror {
        facelens_imaging::image::imageops::flip_horizontal(&img)
    } else {
        img
    };
    match scale {
        Some(s) if (s - 1.0).abs() > 1e-6 => {
            let w = ((img.width() as f32 * s).round() as u32).max(1);
            let h = ((img.height() as f32 * s).round() as u32).max(1);
            resize(&img, w, h)
        }
        _ => img,
    }
}

pub fn run(engine: &crate::EngineArgs, a: CropsArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("reading {}", a.manifest.display()))?;
    let mut lines: Vec<Value> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", a.manifest.display(), i + 1))?;
        let Some(file) = v.get("file").and_then(Value::as_str) else {
            bail!("{} line {}: no `file`", a.manifest.display(), i + 1);
        };
        if a.prefix.as_deref().is_none_or(|p| file.starts_with(p)) {
            lines.push(v);
        }
    }
    if let Some(n) = a.limit {
        lines.truncate(n);
    }
    if lines.is_empty() {
        bail!("the manifest selects no images");
    }
    if let Some(s) = a.scale
        && !(0.1..=4.0).contains(&s)
    {
        bail!("--scale must be within 0.1..=4");
    }
    let views: Vec<View> = a
        .views
        .split(',')
        .filter(|s| !s.is_empty())
        .map(parse_view)
        .collect::<Result<_>>()?;
    let root = a.root.clone().unwrap_or_else(|| {
        a.manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let n = lines.len();
    let mut writers: Vec<NpyWriter> = views
        .iter()
        .map(|v| {
            let s = v.size as usize;
            NpyWriter::create(&a.out.join(format!("{}.npy", v.name)), &[n, s, s, 3])
        })
        .collect::<Result<_>>()?;
    let mut lm_out = NpyWriter::create(&a.out.join("landmarks.npy"), &[n, 5, 2])?;
    let mut mesh_out = NpyWriter::create(&a.out.join("mesh.npy"), &[n, MESH_POINTS, 3])?;
    let mut index = BufWriter::new(
        File::create(a.out.join("index.jsonl"))
            .with_context(|| format!("creating {}", a.out.join("index.jsonl").display()))?,
    );

    let (pipeline, backend_name) = crate::load_pipeline(engine)?;
    let opts = facelens_vision::Options {
        max_faces: 1,
        detector: facelens_vision::DetectorConfig::fast(a.max_side),
        include_mesh: true,
        attributes: AttributeOptions::NONE,
        ..facelens_vision::Options::default()
    };
    let limits = DecodeLimits {
        max_file_bytes: usize::MAX,
        ..DecodeLimits::default()
    };
    let mut found_n = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let file = line.get("file").and_then(Value::as_str).unwrap_or_default();
        let path = root.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let img =
            decode(&bytes, &limits).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let img = transform(img.image, a.mirror, a.scale);
        let mut timings = Timings::default();
        let faces = pipeline.analyze_image(&img, &opts, &mut timings)?;
        let face = faces.into_iter().next();
        let crops: Option<Vec<Vec<f32>>> = face.as_ref().and_then(|f| {
            views
                .iter()
                .map(|v| aligned_f32(&img, &f.landmarks, &v.template, v.size).map(|(c, _)| c))
                .collect()
        });
        let mesh: Option<Vec<f32>> = face
            .as_ref()
            .and_then(|f| f.mesh.as_ref())
            .filter(|m| m.len() == MESH_POINTS)
            .map(|m| m.iter().flatten().copied().collect());
        let ok = crops.is_some() && mesh.is_some();
        for (k, w) in writers.iter_mut().enumerate() {
            w.row(if ok {
                crops.as_ref().and_then(|c| c.get(k)).map(Vec::as_slice)
            } else {
                None
            })?;
        }
        let lms: Option<Vec<f32>> = face
            .as_ref()
            .map(|f| f.landmarks.iter().flat_map(|p| [p.x, p.y]).collect());
        lm_out.row(if ok { lms.as_deref() } else { None })?;
        mesh_out.row(if ok { mesh.as_deref() } else { None })?;
        let mut rec = json!({"i": i, "found": ok, "width": img.width(), "height": img.height()});
        if let (Some(o), Some(src)) = (rec.as_object_mut(), line.as_object()) {
            for (k, v) in src {
                o.insert(k.clone(), v.clone());
            }
            if let (true, Some(f)) = (ok, face.as_ref()) {
                o.insert(
                    "bbox".into(),
                    json!([f.bbox.x1, f.bbox.y1, f.bbox.x2, f.bbox.y2]),
                );
                o.insert("score".into(), json!(f.score));
                o.insert("mesh_score".into(), json!(f.mesh_score));
                o.insert("pose".into(), json!(f.pose));
            }
        }
        writeln!(index, "{rec}")?;
        found_n += usize::from(ok);
        if (i + 1) % 500 == 0 {
            eprintln!("{} / {n} images", i + 1);
        }
    }
    for w in writers {
        w.finish()?;
    }
    lm_out.finish()?;
    mesh_out.finish()?;
    index.flush()?;
    let report = json!({
        "images": n, "found": found_n, "out": a.out.display().to_string(),
        "views": views.iter().map(|v| json!({"name": v.name, "size": v.size,
            "template": v.template.map(|p| [p.x, p.y])})).collect::<Vec<_>>(),
        "mirror": a.mirror, "scale": a.scale, "backend": backend_name,
    });
    std::fs::write(
        a.out.join("views.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_readable() {
        let h = npy_header(&[3, 112, 112, 3]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(len + 10, h.len());
        let dict = std::str::from_utf8(&h[10..]).expect("ascii");
        assert!(dict.contains("'shape': (3, 112, 112, 3)"), "{dict}");
        assert!(dict.ends_with('\n'));
        assert!(npy_header(&[7]).windows(4).any(|w| w == b"(7,)"));
    }

    #[test]
    fn serving_views_use_the_serving_templates() {
        let v = parse_view("faceapi112").expect("view");
        assert_eq!(v.size, 112);
        // The UTKFace template scaled by 112 / 200 (no margin).
        assert!(
            (v.template[0].x - 61.92 * 0.56).abs() < 1e-3,
            "{:?}",
            v.template
        );
        let d = parse_view("dlib32").expect("view");
        assert_eq!(d.template, dlib_chip_template(32.0, DLIB_PADDING));
        let c = parse_view("utk:160:0.1").expect("view");
        assert_eq!((c.name.as_str(), c.size), ("utk160_0.1", 160));
        assert!(parse_view("utk:160").is_err());
        assert!(parse_view("bogus").is_err());
        assert!(parse_view("utk:4000:0").is_err());
    }

    #[test]
    fn rows_must_match_the_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.npy");
        let mut w = NpyWriter::create(&p, &[2, 2]).expect("create");
        w.row(Some(&[1.0, 2.0])).expect("row");
        assert!(w.row(Some(&[1.0])).is_err());
        w.row(None).expect("zero row");
        assert!(w.row(None).is_err());
        w.finish().expect("finish");
        let bytes = std::fs::read(&p).expect("read");
        let body = &bytes[npy_header(&[2, 2]).len()..];
        assert_eq!(body.len(), 16);
        assert_eq!(
            f32::from_le_bytes([body[4], body[5], body[6], body[7]]),
            2.0
        );
        assert_eq!(&body[8..], &[0u8; 8]);
    }
}
