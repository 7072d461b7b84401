//! Close-up fallback detector: MediaPipe BlazeFace short-range ("selfie distance").
//!
//! Why a second detector: RetinaFace learned faces in context (crowds, bodies, backgrounds), and
//! a face that *is* the whole image — a tight crop, a drawn face cut to its outline — gives it
//! little to anchor on; the padded and grey retries ([`crate::retry`]) recover many of those,
//! not all. BlazeFace short-range was trained for exactly that framing (a face
//! filling a phone's front camera, letterboxed to 128×128) and finds drawn faces RetinaFace
//! misses. It is only asked when every RetinaFace attempt found nothing, and only a box that
//! fills the frame is kept, so crowd photos never reach it.
//!
//! Its six keypoints (both eyes, nose tip, mouth centre, both ear tragions) are turned into
//! RetinaFace's five (the mouth corners are placed on the eye line's direction through the mouth
//! centre, [`MOUTH_HALF_WIDTH`] of the eye distance to each side), and its square box is mapped
//! to RetinaFace's taller, narrower framing ([`BOX_SCALE_X`], [`BOX_SCALE_Y`], [`BOX_SHIFT_Y`]),
//! so the mesh, the aligned crops and the face-type features see the face framed as they were
//! fitted. The constants are medians over 600 human crops that both detectors find
//! (`examples/retry_probe.rs` prints them); the derived landmarks then lie a median 0.10 eye
//! distances from RetinaFace's.

use crate::detect::Detection;
use crate::heads::sigmoid;
use crate::tensor::output_index;
use facelens_core::geometry::nms;
use facelens_core::{Point, Rect};
use facelens_imaging::{Rgb, resize};
use facelens_infer::{InferError, Model, Tensor};
use std::sync::Arc;

/// The model's square input side.
const SIZE: u32 = 128;
/// Anchor layout: (stride, anchors per cell); 16×16×2 + 8×8×6 = 896 anchors.
const LAYERS: [(u32, usize); 2] = [(8, 2), (16, 6)];
const ANCHORS: usize = 896;
/// Mouth corners sit this fraction of the eye distance either side of the mouth centre
/// (RetinaFace's landmarks on the dev human crops, median).
pub const MOUTH_HALF_WIDTH: f32 = 0.43;
/// RetinaFace's box width / BlazeFace's on the same faces (median).
pub const BOX_SCALE_X: f32 = 0.90;
/// RetinaFace's box height / BlazeFace's on the same faces (median).
pub const BOX_SCALE_Y: f32 = 1.19;
/// RetinaFace's box centre minus BlazeFace's, in BlazeFace box heights (negative = up).
pub const BOX_SHIFT_Y: f32 = -0.084;

/// The close-up detector around a loaded BlazeFace short-range model.
pub struct CloseUpDetector {
    model: Arc<dyn Model>,
    regressors: usize,
    scores: usize,
}

impl CloseUpDetector {
    pub fn new(model: Arc<dyn Model>) -> Result<Self, InferError> {
        let find = |n: &str| output_index(model.as_ref(), n);
        Ok(Self {
            regressors: find("regressors")?,
            scores: find("classificators")?,
            model,
        })
    }

    /// Faces scoring above `threshold`, best first, in `img` coordinates (boxes clipped to the
    /// image, mapped to RetinaFace's framing). The image is letterboxed (black) to a square.
    pub fn detect(&self, img: &Rgb, threshold: f32) -> Result<Vec<Detection>, InferError> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        // Letterbox in the model's scale: resize so the long side is SIZE, then place centred.
        let s = SIZE as f32 / w.max(h) as f32;
        let (nw, nh) = (
            ((w as f32 * s).round() as u32).clamp(1, SIZE),
            ((h as f32 * s).round() as u32).clamp(1, SIZE),
        );
        let small = resize(img, nw, nh);
        let (px, py) = ((SIZE - nw) / 2, (SIZE - nh) / 2);
        let n = SIZE as usize;
        let mut data = vec![-1.0f32; n * n * 3];
        let raw = small.as_raw();
        for y in 0..nh as usize {
            for x in 0..nw as usize {
                let src = (y * nw as usize + x) * 3;
                let dst = ((y + py as usize) * n + x + px as usize) * 3;
                for c in 0..3 {
                    data[dst + c] = raw[src + c] as f32 / 127.5 - 1.0;
                }
            }
        }
        let bad = |reason: &str| InferError::Run {
            name: self.model.name().to_string(),
            reason: reason.to_string(),
        };
        let input = Tensor::new(vec![1, n, n, 3], data).ok_or_else(|| bad("input shape"))?;
        let out = self.model.run(&input)?;
        let (reg, cls) = match (out.get(self.regressors), out.get(self.scores)) {
            (Some(r), Some(c)) if r.len() == ANCHORS * 16 && c.len() == ANCHORS => (r, c),
            _ => return Err(bad("outputs do not match the 896-anchor layout")),
        };
        let lb = Letterbox {
            px: px as f32,
            py: py as f32,
            kx: w as f32 / nw as f32,
            ky: h as f32 / nh as f32,
        };
        let mut dets = Vec::new();
        let mut a = 0usize;
        for (stride, per) in LAYERS {
            let g = SIZE / stride;
            for gy in 0..g {
                for gx in 0..g {
                    for _ in 0..per {
                        let logit = cls.data[a].clamp(-100.0, 100.0);
                        let score = sigmoid(logit);
                        if score > threshold {
                            let (ax, ay) = (
                                (gx as f32 + 0.5) * stride as f32,
                                (gy as f32 + 0.5) * stride as f32,
                            );
                            let r = &reg.data[a * 16..a * 16 + 16];
                            if r.iter().all(|v| v.is_finite()) {
                                dets.push(to_detection(r, ax, ay, score, &lb, w, h));
                            }
                        }
                        a += 1;
                    }
                }
            }
        }
        dets.sort_by(|a, b| b.score.total_cmp(&a.score));
        let items: Vec<(Rect, f32)> = dets.iter().map(|d| (d.bbox, d.score)).collect();
        Ok(nms(&items, 0.3)
            .into_iter()
            .map(|i| dets[i].clone())
            .collect())
    }
}

/// Model coordinates (0..SIZE on the letterboxed square) to image pixels: subtract the
/// letterbox offset, then multiply by image pixels per model pixel.
struct Letterbox {
    px: f32,
    py: f32,
    kx: f32,
    ky: f32,
}

impl Letterbox {
    fn to_img(&self, x: f32, y: f32) -> Point {
        Point::new((x - self.px) * self.kx, (y - self.py) * self.ky)
    }
}

/// One anchor's regression `r` (box centre offset and size, then six keypoints, in model
/// pixels relative to the anchor centre `(ax, ay)`) as a detection in RetinaFace's framing.
fn to_detection(
    r: &[f32],
    ax: f32,
    ay: f32,
    score: f32,
    lb: &Letterbox,
    w: u32,
    h: u32,
) -> Detection {
    let c = lb.to_img(ax + r[0], ay + r[1]);
    let (bw, bh) = (r[2] * lb.kx * BOX_SCALE_X, r[3] * lb.ky * BOX_SCALE_Y);
    let cy = c.y + BOX_SHIFT_Y * r[3] * lb.ky;
    let unclipped = Rect::new(c.x - bw / 2.0, cy - bh / 2.0, c.x + bw / 2.0, cy + bh / 2.0);
    let kp = |i: usize| lb.to_img(ax + r[4 + 2 * i], ay + r[5 + 2 * i]);
    // Keypoint 0 is the subject's right eye, which is the image-left eye.
    let (el, er, nose, mouth) = (kp(0), kp(1), kp(2), kp(3));
    let (dx, dy) = (er.x - el.x, er.y - el.y);
    let landmarks = [
        el,
        er,
        nose,
        Point::new(
            mouth.x - MOUTH_HALF_WIDTH * dx,
            mouth.y - MOUTH_HALF_WIDTH * dy,
        ),
        Point::new(
            mouth.x + MOUTH_HALF_WIDTH * dx,
            mouth.y + MOUTH_HALF_WIDTH * dy,
        ),
    ];
    Detection {
        bbox: unclipped.clip(w as f32, h as f32),
        score,
        landmarks,
        completeness: unclipped.inside_fraction(w as f32, h as f32),
    }
}
