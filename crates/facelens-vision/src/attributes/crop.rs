//! Crops for the attribute models: each model was trained on one framing of the face, and
//! feeding it that framing matters more than any other single choice.
//!
//! * dlib chip ([`dlib_chip_template`]): the dlib age/gender models were trained on
//!   `extract_image_chip(img, get_face_chip_details(shape, size, 0.2))`. dlib fits its 5-point
//!   shape (eye corners + nose base) onto its mean face shape by a least-squares similarity. Our
//!   detector gives *eye centres, nose tip and mouth corners* instead, so we place those same
//!   anatomical points of dlib's mean 68-point face shape (the eye centre is the mean of the six
//!   eye points; nose tip = point 30; mouth corners = 48 and 54) and fit onto them: a face that
//!   matches the mean shape lands on the same chip either way.
//! * Training-set framings measured on the data: GEAR was trained on UTKFace's aligned 200 × 200
//!   crops and the emotion nets on FER2013's 48 × 48 crops, so we ran our detector on the dev
//!   images of those sets and took the (Procrustes-aligned, median) landmark positions as the
//!   template ([`UTKFACE_200`], [`FER_48`]). Feeding GEAR that framing instead of an
//!   ArcFace-style square lifted its race accuracy from ~0.70 to ~0.87 on a dev sample, and the
//!   FER framing lifted emotion from 0.56 to 0.62 (docs/accuracy.md).
//! * ArcFace-style square crops ([`square_template`]): the ArcFace 112 template scaled to any
//!   size with a margin.
//!
//! Crops are interleaved RGB `f32` (0..255), so that a sub-pixel change of the landmarks gives a
//! proportionally small change of the input. [`flip_h`] mirrors a crop for test-time flip
//! averaging.

use crate::align::{ARCFACE_112, template};
use facelens_core::{Affine, Point};
use facelens_imaging::{Rgb, warp_affine_f32};

/// dlib's mean face shape (`get_face_chip_details`, 0..1 units) at the anatomical points our
/// detector reports: image-left eye centre (mean of points 36..41), image-right eye centre
/// (42..47), nose tip (30), mouth corners (48, 54).
pub const DLIB_MEAN_SHAPE_5: [Point; 5] = [
    Point::new(0.225_492, 0.215_990),
    Point::new(0.754_761, 0.215_990),
    Point::new(0.490_127, 0.515_625),
    Point::new(0.254_149, 0.780_233),
    Point::new(0.726_104, 0.780_233),
];

/// Median landmark positions of our detector on UTKFace's aligned & cropped 200 × 200 images
/// (1,500 dev crops, similarity-aligned to each other before taking the median).
pub const UTKFACE_200: [Point; 5] = [
    Point::new(61.92, 62.30),
    Point::new(134.77, 62.04),
    Point::new(98.67, 103.79),
    Point::new(66.96, 135.80),
    Point::new(131.47, 135.54),
];

/// Median landmark positions of our detector on FER2013's 48 × 48 images (652 dev crops).
pub const FER_48: [Point; 5] = [
    Point::new(15.97, 18.95),
    Point::new(31.88, 18.78),
    Point::new(23.87, 28.16),
    Point::new(17.67, 36.31),
    Point::new(30.63, 36.19),
];

/// Padding dlib's age and gender models were trained with.
pub const DLIB_PADDING: f32 = 0.2;

/// Where the five landmarks land in a dlib chip of `size` pixels with `padding` (dlib's
/// `(padding + p) / (2 padding + 1) * size`).
pub fn dlib_chip_template(size: f32, padding: f32) -> [Point; 5] {
    DLIB_MEAN_SHAPE_5.map(|p| {
        Point::new(
            (padding + p.x) / (2.0 * padding + 1.0) * size,
            (padding + p.y) / (2.0 * padding + 1.0) * size,
        )
    })
}

/// The ArcFace 112 template scaled to `size` with `padding` (fraction of the output added around
/// the face on each side; negative values zoom in).
pub fn square_template(size: f32, padding: f32) -> [Point; 5] {
    template(&ARCFACE_112, 112.0, size, padding)
}

/// `base` (made for a `from`-pixel square) scaled to `size` pixels, with `padding` as in
/// [`square_template`] (negative zooms in).
pub fn scaled_template(base: &[Point; 5], from: f32, size: f32, padding: f32) -> [Point; 5] {
    template(base, from, size, padding)
}

/// An aligned `size × size` interleaved RGB f32 crop (0..255) and its image → crop transform.
pub fn aligned_f32(
    img: &Rgb,
    landmarks: &[Point; 5],
    template: &[Point; 5],
    size: u32,
) -> Option<(Vec<f32>, Affine)> {
    let t = Affine::estimate_similarity(landmarks, template)?;
    if !t.m.iter().all(|v| v.is_finite()) {
        return None;
    }
    Some((warp_affine_f32(img, &t, size, size), t))
}

/// Mirror an interleaved RGB crop left to right.
pub fn flip_h(data: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for y in 0..h {
        for x in 0..w {
            let s = (y * w + x) * 3;
            let d = (y * w + (w - 1 - x)) * 3;
            out[d..d + 3].copy_from_slice(&data[s..s + 3]);
        }
    }
    out
}

/// Interleaved RGB crops → `N × 3 × H × W`, `(v - mean[c]) * scale`.
pub fn batch_nchw(crops: &[&[f32]], w: usize, h: usize, mean: [f32; 3], scale: f32) -> Vec<f32> {
    let plane = w * h;
    let mut out = Vec::with_capacity(crops.len() * 3 * plane);
    for crop in crops {
        for (c, m) in mean.iter().enumerate() {
            out.extend(crop.chunks_exact(3).map(|px| (px[c] - m) * scale));
        }
    }
    out
}

/// Interleaved RGB crops → `N × H × W × 3`, `v * scale`.
pub fn batch_nhwc(crops: &[&[f32]], scale: f32) -> Vec<f32> {
    crops
        .iter()
        .flat_map(|c| c.iter().map(move |v| v * scale))
        .collect()
}

/// Interleaved RGB crops → `N × H × W × 1` grey (`0.2989 R + 0.587 G + 0.114 B`, the weights the
/// emotion models' packages use: their preprocessing, deliberately not `facelens_imaging::luma`),
/// mapped by `f` (input in 0..1).
pub fn batch_grey(crops: &[&[f32]], f: impl Fn(f32) -> f32) -> Vec<f32> {
    crops
        .iter()
        .flat_map(|c| {
            c.chunks_exact(3)
                .map(|px| f((0.2989 * px[0] + 0.587 * px[1] + 0.114 * px[2]) / 255.0))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlib_template_follows_dlib_chip_formula() {
        let t = dlib_chip_template(64.0, 0.2);
        // (0.2 + 0.225492) / 1.4 * 64
        assert!((t[0].x - 19.4511).abs() < 1e-3, "{:?}", t[0]);
        // symmetric about the vertical centre line (dlib's mean shape is symmetric)
        let cx = (t[0].x + t[1].x) / 2.0;
        assert!((cx - (t[3].x + t[4].x) / 2.0).abs() < 1e-3);
        assert!((t[0].y - t[1].y).abs() < 1e-6);
        // eyes above nose above mouth, all inside the chip
        assert!(t[0].y < t[2].y && t[2].y < t[3].y && t[3].y < 64.0);
        // padding shrinks the face towards the centre
        let p = dlib_chip_template(64.0, 0.4);
        assert!(p[1].x - p[0].x < t[1].x - t[0].x);
    }

    #[test]
    fn aligned_crop_puts_landmarks_on_the_template() {
        // A face twice the template's size, shifted: the transform must map it onto the template.
        let tpl = dlib_chip_template(64.0, DLIB_PADDING);
        let lm = tpl.map(|p| Point::new(p.x * 2.0 + 30.0, p.y * 2.0 + 10.0));
        let img = Rgb::new(200, 200);
        let (data, t) = aligned_f32(&img, &lm, &tpl, 64).expect("crop");
        assert_eq!(data.len(), 64 * 64 * 3);
        for (a, b) in lm.iter().zip(tpl.iter()) {
            let q = t.apply(*a);
            assert!((q.x - b.x).abs() < 1e-3 && (q.y - b.y).abs() < 1e-3);
        }
        // degenerate landmarks give no crop
        assert!(aligned_f32(&img, &[Point::new(5.0, 5.0); 5], &tpl, 64).is_none());
    }

    #[test]
    fn flip_mirrors_and_is_an_involution() {
        let (w, h) = (3, 2);
        let data: Vec<f32> = (0..w * h * 3).map(|v| v as f32).collect();
        let f = flip_h(&data, w, h);
        // pixel (0, 0) moves to (2, 0)
        assert_eq!(&f[6..9], &data[0..3]);
        assert_eq!(flip_h(&f, w, h), data);
    }

    #[test]
    fn layouts() {
        let a = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]; // 2 x 1 pixels
        let n = batch_nchw(&[&a, &a], 2, 1, [10.0, 20.0, 30.0], 0.5);
        assert_eq!(
            n,
            vec![
                0.0, 15.0, 0.0, 15.0, 0.0, 15.0, 0.0, 15.0, 0.0, 15.0, 0.0, 15.0
            ]
        );
        let g = batch_grey(&[&[255.0, 255.0, 255.0]], |v| v);
        assert!((g[0] - 0.9999).abs() < 1e-3);
        assert_eq!(batch_nhwc(&[&a], 2.0)[5], 120.0);
    }
}
