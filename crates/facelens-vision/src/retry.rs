//! The detector retry chain: what happens when RetinaFace finds nothing.
//!
//! Why a module of its own: the chain uses two detectors (RetinaFace, [`crate::detect`], and
//! the close-up BlazeFace, [`crate::closeup`]) and the canvases both are retried on. Kept in
//! either detector's module, each would import the other; here the two stay independent
//! detectors and the chain, which is policy (which step runs when, which weak box is good
//! enough), reads in one place. The steps and their measured effect are in
//! [`RetryChain::detect_with_retry`] and docs/heuristics.md (face_type).

use crate::closeup::CloseUpDetector;
use crate::detect::{Detection, Detector, DetectorConfig};
use facelens_core::Rect;
use facelens_imaging::{Rgb, luma, resize};
use facelens_infer::InferError;

/// A low-confidence retry detection (see [`DetectorConfig::retry_score_threshold`]) is kept only
/// when its box, clipped to the image, spans at least this fraction of the image's width or
/// height (the longer of the two ratios).
pub const RETRY_MIN_FILL: f32 = 0.5;

/// The retries run on the image scaled down to at most this long side.
pub const RETRY_MAX_SIDE: u32 = 640;

/// Padding of the first retry's canvas, as a fraction of the image's long side.
pub const RETRY_PAD: f32 = 0.4;
/// Padding of the grey retry's canvas (wider: measured to find more drawn faces than 0.4 for
/// fewer false ones, `examples/retry_probe.rs`).
pub const GREY_RETRY_PAD: f32 = 1.0;

/// RetinaFace with its retries: padded, grey, and last the close-up detector.
pub struct RetryChain {
    detector: Detector,
    closeup: Option<CloseUpDetector>,
}

impl RetryChain {
    /// The chain over `detector`, with the close-up step when `closeup` is given.
    pub fn new(detector: Detector, closeup: Option<CloseUpDetector>) -> Self {
        Self { detector, closeup }
    }

    /// The RetinaFace detector itself (no retries).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Detect; when nothing is found, retry in steps, each only when the previous found nothing:
    ///
    /// 1. the image centred on a canvas padded by [`RETRY_PAD`] of its long side (a face that
    ///    fills the frame has no context and is often missed otherwise), accepting a face that
    ///    fills the frame ([`RETRY_MIN_FILL`]) down to `cfg.retry_score_threshold`;
    /// 2. the same in grey on a wider canvas ([`GREY_RETRY_PAD`]): saturated hair and flat colour
    ///    fills (drawn faces) throw the detector off, their luminance does not;
    /// 3. the close-up detector ([`RetryChain::closeup`]).
    ///
    /// The steps work on the image scaled down to [`RETRY_MAX_SIDE`] (the canvases of a large
    /// photo would otherwise cost hundreds of megabytes); boxes come back in `img` coordinates.
    ///
    /// On the dev data the steps find 264, then 279, then 284 of the 300 anime crops that the
    /// normal pass misses 55 of, for a "face" on 59, 62, 63 of 1,636 faceless patches of crowd
    /// photos; see docs/heuristics.md (face_type) and `examples/retry_probe.rs`.
    pub fn detect_with_retry(
        &self,
        img: &Rgb,
        cfg: &DetectorConfig,
    ) -> Result<Vec<Detection>, InferError> {
        let dets = self.detector.detect(img, cfg)?;
        if !dets.is_empty() {
            return Ok(dets);
        }
        // The retries look for a face that fills the frame, which needs no more than
        // RETRY_MAX_SIDE pixels; working on the full image would make the padded canvases of a
        // 4096 px photo hundreds of megabytes.
        let (w, h) = img.dimensions();
        let long = w.max(h);
        if long <= RETRY_MAX_SIDE {
            return self.retries(img, cfg);
        }
        let k = RETRY_MAX_SIDE as f32 / long as f32;
        let (sw, sh) = (
            ((w as f32 * k).round() as u32).max(1),
            ((h as f32 * k).round() as u32).max(1),
        );
        let mut dets = self.retries(&resize(img, sw, sh), cfg)?;
        let (sx, sy) = (w as f32 / sw as f32, h as f32 / sh as f32);
        for d in &mut dets {
            d.bbox = d.bbox.scale(sx, sy).clip(w as f32, h as f32);
            for p in &mut d.landmarks {
                p.x *= sx;
                p.y *= sy;
            }
        }
        Ok(dets)
    }

    /// The retry steps of [`RetryChain::detect_with_retry`] on an image of at most
    /// [`RETRY_MAX_SIDE`] pixels.
    fn retries(&self, img: &Rgb, cfg: &DetectorConfig) -> Result<Vec<Detection>, InferError> {
        let (w, h) = img.dimensions();
        let pad = (w.max(h) as f32 * RETRY_PAD).round() as u32;
        let found = self.retry_on(&pad_canvas(img, pad), pad, (w, h), cfg)?;
        if !found.is_empty() {
            return Ok(found);
        }
        let pad = (w.max(h) as f32 * GREY_RETRY_PAD).round() as u32;
        let found = self.retry_on(&pad_canvas(&grey(img), pad), pad, (w, h), cfg)?;
        if !found.is_empty() {
            return Ok(found);
        }
        self.closeup(img, cfg)
    }

    /// The close-up fallback: the best frame-filling face of the close-up detector scoring above
    /// `cfg.closeup_threshold`, on the image as is, else on the canvas padded by [`RETRY_PAD`]
    /// (nothing when the detector or the threshold is absent).
    pub fn closeup(&self, img: &Rgb, cfg: &DetectorConfig) -> Result<Vec<Detection>, InferError> {
        let (Some(det), Some(thr)) = (&self.closeup, cfg.closeup_threshold) else {
            return Ok(Vec::new());
        };
        let (w, h) = img.dimensions();
        for pad_frac in [0.0, RETRY_PAD] {
            let pad = (w.max(h) as f32 * pad_frac).round() as u32;
            let mut dets = if pad == 0 {
                det.detect(img, thr)?
            } else {
                det.detect(&pad_canvas(img, pad), thr)?
            };
            unpad(&mut dets, pad, (w, h));
            if let Some(d) = dets
                .into_iter()
                .find(|d| fills_frame(&d.bbox, w as f32, h as f32))
            {
                return Ok(vec![d]);
            }
        }
        Ok(Vec::new())
    }

    /// One retry: detect on `canvas` (the image centred `pad` pixels in) at the low threshold,
    /// map back to image coordinates and keep per [`keep_retry`].
    fn retry_on(
        &self,
        canvas: &Rgb,
        pad: u32,
        (w, h): (u32, u32),
        cfg: &DetectorConfig,
    ) -> Result<Vec<Detection>, InferError> {
        let low = cfg.retry_score_threshold.min(cfg.score_threshold);
        let retry_cfg = DetectorConfig {
            score_threshold: low,
            ..cfg.clone()
        };
        let mut dets = self.detector.detect(canvas, &retry_cfg)?;
        unpad(&mut dets, pad, (w, h));
        Ok(keep_retry(dets, cfg.score_threshold, w as f32, h as f32))
    }
}

/// Detections on a canvas holding the `w × h` image `pad` pixels in, moved to image coordinates.
/// Boxes leaving the image were clipped to the canvas, not to the image: they are measured and
/// clipped again.
fn unpad(dets: &mut [Detection], pad: u32, (w, h): (u32, u32)) {
    let off = pad as f32;
    for d in dets {
        let b = d.bbox.translate(-off, -off);
        d.completeness = d.completeness.min(b.inside_fraction(w as f32, h as f32));
        d.bbox = b.clip(w as f32, h as f32);
        for p in &mut d.landmarks {
            p.x -= off;
            p.y -= off;
        }
    }
}

/// The retry's detections as the normal threshold would keep them; only when there are none,
/// the low-confidence ones that fill the frame (so a weak large box never displaces a confident
/// face, and small weak boxes are never accepted).
fn keep_retry(mut dets: Vec<Detection>, threshold: f32, w: f32, h: f32) -> Vec<Detection> {
    if dets.iter().any(|d| d.score > threshold) {
        dets.retain(|d| d.score > threshold);
    } else {
        dets.retain(|d| fills_frame(&d.bbox, w, h));
    }
    dets
}

/// Whether `b` (in image coordinates, clipped) spans at least [`RETRY_MIN_FILL`] of the image's
/// width or height.
pub fn fills_frame(b: &Rect, w: f32, h: f32) -> bool {
    w > 0.0 && h > 0.0 && (b.width() / w).max(b.height() / h) >= RETRY_MIN_FILL
}

/// `img` in grey (BT.601 luma in all three channels).
pub fn grey(img: &Rgb) -> Rgb {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let v = luma(p.0).round().clamp(0.0, 255.0) as u8;
        p.0 = [v; 3];
    }
    out
}

/// `img` centred on a canvas `pad` pixels larger on every side, filled with the image's mean
/// colour (a neutral background that does not look like an edge).
pub fn pad_canvas(img: &Rgb, pad: u32) -> Rgb {
    let (w, h) = img.dimensions();
    let mut sum = [0u64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            sum[c] += p[c] as u64;
        }
    }
    let n = (w as u64 * h as u64).max(1);
    let fill =
        facelens_imaging::image::Rgb([(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]);
    let mut canvas = Rgb::from_pixel(w + 2 * pad, h + 2 * pad, fill);
    facelens_imaging::image::imageops::replace(&mut canvas, img, pad as i64, pad as i64);
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;
    use facelens_core::Point;

    fn det(score: f32, bbox: Rect) -> Detection {
        Detection {
            bbox,
            score,
            landmarks: [Point::default(); 5],
            completeness: 1.0,
        }
    }

    #[test]
    fn retry_keeps_weak_faces_only_when_they_fill_the_frame_and_nothing_confident_exists() {
        let big = Rect::new(5.0, 5.0, 60.0, 62.0);
        let small = Rect::new(5.0, 5.0, 20.0, 20.0);
        // A confident face: weak ones are dropped, even a large one.
        let kept = keep_retry(vec![det(0.35, big), det(0.9, small)], 0.5, 64.0, 64.0);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].score, 0.9);
        // Nothing confident: the weak face that fills the frame is kept, the small one is not.
        let kept = keep_retry(vec![det(0.35, big), det(0.4, small)], 0.5, 64.0, 64.0);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].bbox, big);
        assert!(keep_retry(vec![det(0.4, small)], 0.5, 64.0, 64.0).is_empty());
        // The defaults enable it for both profiles.
        assert!(DetectorConfig::fast(640).retry_score_threshold < 0.5);
        assert!(DetectorConfig::accurate().retry_score_threshold < 0.5);
    }

    #[test]
    fn unpad_moves_boxes_back_and_measures_what_left_the_image() {
        let mut d = vec![det(0.9, Rect::new(5.0, 10.0, 30.0, 30.0))];
        d[0].landmarks[0] = Point::new(15.0, 20.0);
        unpad(&mut d, 10, (40, 40));
        // The box's left part (x 5..10 on the canvas) lay outside the image.
        assert_eq!(d[0].bbox, Rect::new(0.0, 0.0, 20.0, 20.0));
        assert!(
            (d[0].completeness - 0.8).abs() < 1e-6,
            "{}",
            d[0].completeness
        );
        assert_eq!(d[0].landmarks[0], Point::new(5.0, 10.0));
    }

    #[test]
    fn grey_keeps_luminance_and_drops_colour() {
        let mut img = Rgb::from_pixel(2, 1, facelens_imaging::image::Rgb([255, 0, 0]));
        img.put_pixel(1, 0, facelens_imaging::image::Rgb([10, 200, 30]));
        let g = grey(&img);
        assert_eq!(g.get_pixel(0, 0).0, [76; 3]); // 0.299 * 255
        assert_eq!(g.get_pixel(1, 0).0, [124; 3]); // 3 + 117.4 + 3.4
    }

    #[test]
    fn pad_canvas_places_image_in_the_centre() {
        let img = Rgb::from_pixel(10, 20, facelens_imaging::image::Rgb([200, 10, 10]));
        let c = pad_canvas(&img, 5);
        assert_eq!(c.dimensions(), (20, 30));
        assert_eq!(c.get_pixel(5, 5).0, [200, 10, 10]);
        assert_eq!(c.get_pixel(0, 0).0, [200, 10, 10]); // mean colour of a flat image
    }
}
