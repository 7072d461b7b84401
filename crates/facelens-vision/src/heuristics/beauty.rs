//! Beauty (heuristic), 0..100.
//!
//! There is no labelled attractiveness data for us (SCUT-FBP5500 and the like are not
//! available), so this is **not** a learned score and makes no claim to agree with human
//! ratings. It is a deterministic, documented formula over properties the literature on facial
//! attractiveness names most consistently, each measured so that it does not depend on image
//! size, position or compression:
//!
//! * **symmetry** — after frontalising the mesh (see [`super::shape::frontalise`]), the mean
//!   distance between each left point and the mirror image of its right partner, and of the
//!   midline points from the midline, in eye-distance units (lower is better);
//! * **proportions** — deviations from the textbook "ideal" proportions: the three vertical
//!   thirds (forehead-top→brows, brows→nose base, nose base→chin) equal; the distance between
//!   the eye centres about 0.46 of the face width; mouth width about 1.5 nose widths
//!   (lower is better);
//! * **skin smoothness** — the fine residual (pixel minus its 3×3 mean) on two cheek patches and
//!   the forehead, sampled at a fixed 16 px per eye distance, relative to the skin luma (lower is
//!   smoother); sampling at a fixed low resolution makes it stable under rescaling and JPEG;
//! * **image quality** — the pipeline's blur score (a blurred face cannot look its best).
//!
//! Each term is standardised with the mean and spread over the development faces and combined
//! with hand-set weights (models/heads/beauty.json: symmetry 0.35, proportions 0.25,
//! smoothness 0.3, blur 0.1); the score is `60 + 12 · (−weighted z-sum / its spread)`,
//! clamped to 0..100, so that dev faces spread over roughly 35..85.

use super::shape::frontalise;
use super::{Grey, face_frame, frame_affine, grey_patch};
use crate::heads::{HeadError, Kind, ZScoreHead, embedded};
use facelens_core::types::Quality;
use facelens_imaging::Rgb;
use std::sync::LazyLock;

/// Left/right mesh point pairs (image left first) used for symmetry.
const PAIRS: [(usize, usize); 26] = [
    (33, 263),
    (133, 362),
    (159, 386),
    (145, 374),
    (61, 291),
    (234, 454),
    (172, 397),
    (58, 288),
    (54, 284),
    (103, 332),
    (70, 300),
    (105, 334),
    (107, 336),
    (98, 327),
    (148, 377),
    (176, 400),
    (136, 365),
    (150, 379),
    (93, 323),
    (132, 361),
    (127, 356),
    (162, 389),
    (21, 251),
    (67, 297),
    (109, 338),
    (129, 358),
];
/// Midline points.
const MIDLINE: [usize; 14] = [10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 0, 17, 152];

static HEAD: LazyLock<Result<ZScoreHead, HeadError>> = LazyLock::new(|| {
    embedded::BEAUTY
        .load::<ZScoreHead>()?
        .with_features(&feature_names())
});

/// The embedded calibration: a z-score head over the four terms.
pub fn head() -> Result<&'static ZScoreHead, &'static HeadError> {
    HEAD.as_ref()
}

/// Names of the terms [`beauty_features`] returns.
pub fn feature_names() -> Vec<String> {
    ["asymmetry", "proportion_error", "skin_roughness", "blur"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Symmetry error of a mesh in outer-eye-corner units.
pub fn asymmetry(mesh: &[[f32; 3]]) -> Option<f32> {
    let f = frontalise(mesh)?;
    let mut s = 0.0f32;
    for &(a, b) in &PAIRS {
        // Mirror b across x = 0 and compare with a (x, y only).
        s += ((f[a][0] + f[b][0]).powi(2) + (f[a][1] - f[b][1]).powi(2)).sqrt();
    }
    let mut m = 0.0f32;
    for &i in &MIDLINE {
        m += f[i][0].abs();
    }
    Some((s / PAIRS.len() as f32 + m / MIDLINE.len() as f32) * 0.5)
}

/// Sum of absolute deviations from the textbook proportions.
pub fn proportion_error(mesh: &[[f32; 3]]) -> Option<f32> {
    let f = frontalise(mesh)?;
    let y = |i: usize| f[i][1];
    let x = |i: usize| f[i][0];
    let brow = 0.5 * (y(105) + y(334));
    let (t1, t2, t3) = (brow - y(10), y(2) - brow, y(152) - y(2));
    let tot = (t1 + t2 + t3).abs().max(1e-3);
    let thirds = [
        (t1 / tot - 1.0 / 3.0).abs(),
        (t2 / tot - 1.0 / 3.0).abs(),
        (t3 / tot - 1.0 / 3.0).abs(),
    ];
    let face_w = (x(454) - x(234)).abs().max(1e-3);
    let eye_c = |a: usize, b: usize| 0.5 * (x(a) + x(b));
    let iod = (eye_c(263, 362) - eye_c(33, 133)).abs();
    let eyes = (iod / face_w - 0.46).abs();
    let mouth = (x(291) - x(61)).abs();
    let nose = (x(327) - x(98)).abs().max(1e-3);
    let mn = (mouth / nose / 1.5 - 1.0).abs() * 0.3;
    let e = thirds.iter().sum::<f32>() + eyes + mn;
    e.is_finite().then_some(e)
}

/// Fine residual of the skin (two cheeks and the forehead) relative to its luma.
pub fn skin_roughness(img: &Rgb, mesh: &[[f32; 3]]) -> Option<f32> {
    let (origin, ex, ey, d) = face_frame(mesh)?;
    // 16 px per eye distance; patch covers x ∈ [-1, 1], y ∈ [-0.9, 1.1].
    const U: f32 = 16.0;
    let t = frame_affine(origin, ex, ey, U / d, U, 0.9 * U);
    let p: Grey = grey_patch(img, &t, 32, 32);
    let rough = |x0: f32, y0: f32, x1: f32, y1: f32| {
        let px = |v: f32| ((v + 1.0) * U).round().clamp(1.0, 31.0) as usize;
        let py = |v: f32| ((v + 0.9) * U).round().clamp(1.0, 31.0) as usize;
        let (a, b, c, e) = (px(x0), py(y0), px(x1), py(y1));
        let (mut r, mut l, mut n) = (0.0f32, 0.0f32, 0.0f32);
        for yy in b..e {
            for xx in a..c {
                let mut s = 0.0;
                for dy in 0..3 {
                    for dx in 0..3 {
                        s += p.at(xx + dx - 1, yy + dy - 1);
                    }
                }
                r += (p.at(xx, yy) - s / 9.0).abs();
                l += p.at(xx, yy);
                n += 1.0;
            }
        }
        if n < 1.0 {
            0.0
        } else {
            r / n / (l / n).max(10.0) * 100.0
        }
    };
    let v = [
        rough(-0.75, 0.45, -0.3, 0.85),
        rough(0.3, 0.45, 0.75, 0.85),
        rough(-0.4, -0.85, 0.4, -0.6),
    ];
    let mut s = v;
    s.sort_by(f32::total_cmp);
    // Median of the three: a lock of hair or a shadow on one patch does not decide.
    Some(s[1])
}

/// The four terms for one face.
pub fn beauty_features(img: &Rgb, mesh: &[[f32; 3]], quality: &Quality) -> Option<[f32; 4]> {
    Some([
        asymmetry(mesh)?,
        proportion_error(mesh)?,
        skin_roughness(img, mesh)?,
        quality.blur,
    ])
}

/// Score from the four terms, clamped to 0..100 (50 without the head).
pub fn score(feat: &[f32; 4]) -> f32 {
    head()
        .ok()
        .and_then(|h| h.score(feat))
        .map_or(50.0, |s| s.clamp(0.0, 100.0))
}

/// Beauty for one face, 0..100 (a heuristic; see the module docs). `quality` is the pipeline's
/// quality for the face (its blur is one term). A degenerate mesh gives 50.
pub fn beauty(img: &Rgb, mesh: &[[f32; 3]], quality: &Quality) -> f32 {
    beauty_features(img, mesh, quality)
        .map(|f| score(&f))
        .unwrap_or(50.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::tests_support::synthetic_mesh;

    #[test]
    fn symmetric_mesh_scores_higher_than_a_distorted_one() {
        let m = synthetic_mesh(100.0, 100.0, 60.0);
        let a = asymmetry(&m).expect("asym");
        let mut d = m.clone();
        for &(l, _) in &PAIRS {
            d[l][1] += 6.0;
        }
        let b = asymmetry(&d).expect("asym");
        assert!(b > a + 0.02, "{a} {b}");
        let f1 = [a, 0.1, 2.0, 0.1];
        let f2 = [b, 0.1, 2.0, 0.1];
        assert!(score(&f1) > score(&f2));
    }

    #[test]
    fn score_is_bounded() {
        assert!((0.0..=100.0).contains(&score(&[100.0, 100.0, 100.0, 1.0])));
        assert!((0.0..=100.0).contains(&score(&[0.0, 0.0, 0.0, 0.0])));
    }
}
