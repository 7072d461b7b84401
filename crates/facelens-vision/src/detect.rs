//! Face detection: RetinaFace-MobileNet0.25 with its five landmarks, run at one or more scales.
//!
//! Why this detector: on the dev WIDER images it is within a few AP points of CenterFace while
//! being 2.6× faster in the pure-Rust runtime and carrying a clean MIT licence (CenterFace's
//! weights have none). Its anchors cover faces of roughly 10–600 px at the input scale, so the
//! pipeline chooses scales around that range:
//!
//! * the *fast* profile (the service default) runs once with the long side at most
//!   `max_side`, upscaling small images so a face that fills a thumbnail still meets the
//!   large anchors;
//! * the *accurate* profile (used for WIDER evaluation and available to callers) adds an
//!   upscaled pass that only contributes small faces and a downscaled pass that only contributes
//!   large ones; all candidates are merged by one NMS.
//!
//! A face that fills the whole frame has no context around it and is sometimes missed; the
//! retries (padded and grey canvases, then the close-up detector) are [`crate::retry`]'s.

use crate::tensor::{Channels, Norm, output_index, to_nchw};
use facelens_core::geometry::nms;
use facelens_core::{Point, Rect};
use facelens_imaging::{Rgb, resize};
use facelens_infer::{InferError, Model, Tensor};
use std::sync::Arc;

/// One detected face, in the coordinates of the image that was passed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: Rect,
    pub score: f32,
    /// Image-left eye, image-right eye, nose, left mouth corner, right mouth corner.
    pub landmarks: [Point; 5],
    /// Share of the face box, before clipping to the image, that lies inside the image.
    pub completeness: f32,
}

/// How one pass scales the image, and which face sizes it may contribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// Scale relative to the original image.
    pub scale: PassScale,
    /// Keep faces whose size `sqrt(w·h)` in original pixels is at least this.
    pub min_face: f32,
    /// ... and below this.
    pub max_face: f32,
    /// Multiplier on this pass's scores. Upscaled passes see interpolated pixels and produce
    /// more confident false positives; ranking them below native-scale detections of the same
    /// raw score keeps the precision of the large faces.
    pub score_weight: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PassScale {
    /// Fit the long side to at most `max`, upscaling so it is at least `min`.
    LongSide { min: u32, max: u32 },
    /// A fixed factor, with the resulting long side capped at `cap`.
    Factor { factor: f32, cap: u32 },
}

/// Detector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Candidates below this confidence are dropped before NMS.
    pub score_threshold: f32,
    /// IoU above which the weaker of two boxes is suppressed.
    pub nms_iou: f32,
    /// At most this many candidates per pass enter NMS (highest first).
    pub pre_nms_top_k: usize,
    /// At most this many faces are returned.
    pub max_faces: usize,
    pub passes: Vec<Pass>,
    /// Lower confidence accepted by the padded retry ([`crate::retry`]), and only for a face
    /// that fills the frame (see [`crate::retry::RETRY_MIN_FILL`]), when the retry finds
    /// nothing at `score_threshold` either. Close-ups and drawn faces without context score
    /// low; a box that covers most of an image in which nothing else was found is rarely a
    /// false alarm.
    /// Crowd photos are unaffected: the retry runs only when the normal pass found nothing.
    pub retry_score_threshold: f32,
    /// Last step of the retries ([`crate::retry`]): when RetinaFace found nothing on the image
    /// and both retry canvases, the close-up detector ([`crate::closeup`]) may give a face
    /// scoring above this that fills the frame. `None` switches the step off.
    pub closeup_threshold: Option<f32>,
}

impl DetectorConfig {
    /// One pass, long side in `[320, max_side]`.
    pub fn fast(max_side: u32) -> Self {
        Self {
            score_threshold: 0.5,
            nms_iou: 0.4,
            pre_nms_top_k: 5000,
            max_faces: 200,
            retry_score_threshold: RETRY_SCORE_THRESHOLD,
            closeup_threshold: Some(CLOSEUP_THRESHOLD),
            passes: vec![Pass {
                scale: PassScale::LongSide {
                    min: 320.min(max_side),
                    max: max_side,
                },
                min_face: 0.0,
                max_face: f32::INFINITY,
                score_weight: 1.0,
            }],
        }
    }

    /// Original scale (long side capped at 2048), plus a 2× pass for faces under 24 px (scores
    /// weighted 0.8) and a half-scale pass for faces over 300 px.
    pub fn accurate() -> Self {
        Self {
            score_threshold: 0.5,
            nms_iou: 0.4,
            pre_nms_top_k: 5000,
            max_faces: 1000,
            retry_score_threshold: RETRY_SCORE_THRESHOLD,
            closeup_threshold: Some(CLOSEUP_THRESHOLD),
            passes: vec![
                Pass {
                    scale: PassScale::Factor {
                        factor: 1.0,
                        cap: 2048,
                    },
                    min_face: 0.0,
                    max_face: f32::INFINITY,
                    score_weight: 1.0,
                },
                Pass {
                    scale: PassScale::Factor {
                        factor: 2.0,
                        cap: 2560,
                    },
                    min_face: 0.0,
                    max_face: 24.0,
                    score_weight: 0.8,
                },
                Pass {
                    scale: PassScale::Factor {
                        factor: 0.5,
                        cap: 2048,
                    },
                    min_face: 300.0,
                    max_face: f32::INFINITY,
                    score_weight: 1.0,
                },
            ],
        }
    }
}

/// Default [`DetectorConfig::retry_score_threshold`].
pub const RETRY_SCORE_THRESHOLD: f32 = 0.3;

/// Default [`DetectorConfig::closeup_threshold`] (measured with `examples/retry_probe.rs`; see
/// docs/heuristics.md, face_type).
pub const CLOSEUP_THRESHOLD: f32 = 0.75;

/// RetinaFace priors (biubug6 layout): per stride, per cell row-major, per anchor size.
const STEPS: [(u32, [f32; 2]); 3] = [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// BGR channel means subtracted by the model's training code.
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];

/// The RetinaFace detector around a loaded model.
pub struct Detector {
    model: Arc<dyn Model>,
    loc: usize,
    conf: usize,
    landmarks: usize,
}

impl Detector {
    /// RetinaFace `model`.
    pub fn new(model: Arc<dyn Model>) -> Result<Self, InferError> {
        let find = |n: &str| output_index(model.as_ref(), n);
        Ok(Self {
            loc: find("loc")?,
            conf: find("conf")?,
            landmarks: find("landmarks")?,
            model,
        })
    }

    /// Detect faces with `cfg`. Boxes are in `img` coordinates, best score first.
    pub fn detect(&self, img: &Rgb, cfg: &DetectorConfig) -> Result<Vec<Detection>, InferError> {
        let (w, h) = img.dimensions();
        let long = w.max(h) as f32;
        let mut all: Vec<Detection> = Vec::new();
        for pass in &cfg.passes {
            let s = match pass.scale {
                PassScale::LongSide { min, max } => {
                    if long > max as f32 {
                        max as f32 / long
                    } else if long < min as f32 {
                        min as f32 / long
                    } else {
                        1.0
                    }
                }
                PassScale::Factor { factor, cap } => factor.min(cap as f32 / long),
            };
            let mut dets = self.run_scaled(img, s, cfg)?;
            dets.retain(|d| {
                let size = (d.bbox.width() * d.bbox.height()).sqrt();
                size >= pass.min_face && size < pass.max_face
            });
            for d in &mut dets {
                d.score *= pass.score_weight;
            }
            all.extend(dets);
        }
        let items: Vec<(Rect, f32)> = all.iter().map(|d| (d.bbox, d.score)).collect();
        let keep = nms(&items, cfg.nms_iou);
        Ok(keep
            .into_iter()
            .take(cfg.max_faces)
            .map(|i| all[i].clone())
            .collect())
    }

    fn run_scaled(
        &self,
        img: &Rgb,
        s: f32,
        cfg: &DetectorConfig,
    ) -> Result<Vec<Detection>, InferError> {
        let (w, h) = img.dimensions();
        let nw = ((w as f32 * s).round() as u32).max(16);
        let nh = ((h as f32 * s).round() as u32).max(16);
        let resized;
        let input = if (nw, nh) == (w, h) {
            img
        } else {
            resized = resize(img, nw, nh);
            &resized
        };
        let pw = nw.div_ceil(32) * 32;
        let ph = nh.div_ceil(32) * 32;
        let norm = Norm {
            mean: MEAN_BGR,
            scale: [1.0; 3],
        };
        // Padding with 0 after mean subtraction = padding with the mean colour.
        let tensor = to_nchw(input, Channels::Bgr, norm, Some((pw, ph)), 0.0);
        let out = self.model.run(&tensor)?;
        let sx = nw as f32 / w as f32;
        let sy = nh as f32 / h as f32;
        let dets = self.decode(&out, pw, ph, cfg)?;
        Ok(dets
            .into_iter()
            .map(|mut d| {
                let unclipped = d.bbox.scale(1.0 / sx, 1.0 / sy);
                d.completeness = unclipped.inside_fraction(w as f32, h as f32);
                d.bbox = unclipped.clip(w as f32, h as f32);
                for p in &mut d.landmarks {
                    p.x /= sx;
                    p.y /= sy;
                }
                d
            })
            .collect())
    }

    fn decode(
        &self,
        out: &[Tensor],
        pw: u32,
        ph: u32,
        cfg: &DetectorConfig,
    ) -> Result<Vec<Detection>, InferError> {
        let bad = |reason: &str| InferError::Run {
            name: self.model.name().to_string(),
            reason: reason.to_string(),
        };
        let (loc, conf, lms) = match (
            out.get(self.loc),
            out.get(self.conf),
            out.get(self.landmarks),
        ) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => return Err(bad("missing outputs")),
        };
        let n = priors_count(pw, ph);
        if loc.len() != n * 4 || conf.len() != n * 2 || lms.len() != n * 10 {
            return Err(bad("output sizes do not match the prior layout"));
        }
        let mut cands: Vec<(usize, f32, [f32; 4])> = Vec::new();
        let mut idx = 0usize;
        for (step, sizes) in STEPS {
            let (gw, gh) = (pw.div_ceil(step), ph.div_ceil(step));
            for i in 0..gh {
                for j in 0..gw {
                    for size in sizes {
                        let score = conf.data[idx * 2 + 1];
                        if score > cfg.score_threshold {
                            let cx = (j as f32 + 0.5) * step as f32;
                            let cy = (i as f32 + 0.5) * step as f32;
                            cands.push((idx, score, [cx, cy, size, size]));
                        }
                        idx += 1;
                    }
                }
            }
        }
        cands.sort_by(|a, b| b.1.total_cmp(&a.1));
        cands.truncate(cfg.pre_nms_top_k);
        let mut dets = Vec::with_capacity(cands.len());
        for (k, score, [pcx, pcy, pw_, ph_]) in cands {
            let l = &loc.data[k * 4..k * 4 + 4];
            let cx = pcx + l[0] * VARIANCE[0] * pw_;
            let cy = pcy + l[1] * VARIANCE[0] * ph_;
            let bw = pw_ * (l[2] * VARIANCE[1]).exp();
            let bh = ph_ * (l[3] * VARIANCE[1]).exp();
            if !(cx.is_finite() && cy.is_finite() && bw.is_finite() && bh.is_finite()) {
                continue;
            }
            // Not clipped here: the caller clips to the image after measuring completeness.
            let bbox = Rect::new(cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0);
            let m = &lms.data[k * 10..k * 10 + 10];
            let mut landmarks = [Point::default(); 5];
            for (p, lm) in landmarks.iter_mut().enumerate() {
                *lm = Point::new(
                    pcx + m[p * 2] * VARIANCE[0] * pw_,
                    pcy + m[p * 2 + 1] * VARIANCE[0] * ph_,
                );
            }
            dets.push(Detection {
                bbox,
                score,
                landmarks,
                completeness: 1.0,
            });
        }
        let items: Vec<(Rect, f32)> = dets.iter().map(|d| (d.bbox, d.score)).collect();
        let keep = nms(&items, cfg.nms_iou);
        Ok(keep.into_iter().map(|i| dets[i].clone()).collect())
    }
}

fn priors_count(pw: u32, ph: u32) -> usize {
    STEPS
        .iter()
        .map(|(s, sizes)| (pw.div_ceil(*s) * ph.div_ceil(*s)) as usize * sizes.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_count_matches_model_output_layout() {
        // 640x480 gives 12600 priors (checked against the model's output shape).
        assert_eq!(priors_count(640, 480), 12600);
    }
}
