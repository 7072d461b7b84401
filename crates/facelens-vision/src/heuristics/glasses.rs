//! Glasses (heuristic): `none`, `common` (clear eyeglasses) or `sun` (sunglasses).
//!
//! Everything is measured on one grey patch of the upper face aligned by the mesh's eye centres
//! (the eye line horizontal, one unit = the distance between the eye centres; 20 px per unit),
//! so the numbers do not depend on the image's resolution, the face's size or its roll.
//!
//! * **Sunglasses** are a physical property that needs no learning: dark lenses make the area
//!   around the eyes much darker than the same face's cheeks and forehead, and remove the bright
//!   parts a bare eye always has (sclera, lit lid skin). The rule is: mean luma of the lens area
//!   below [`SUN_DARK_RATIO`] of the skin reference (median of the two cheeks and the forehead)
//!   *and* its 90th percentile below [`SUN_BRIGHT`] of it. The thresholds sit at the edge of the
//!   1,713 dev faces *without* sunglasses (lowest 90th-percentile ratio there: 0.85; no face
//!   there meets both conditions); the six dev sunglasses faces were only used to check the
//!   rule, not to place it.
//! * **Eyeglasses** are frame edges: a horizontal bar across the nose bridge between the eyes,
//!   rims above and below each eye, temple arms running out to the sides. Orientation histograms
//!   (6×4 cells) over the periocular patch, plus gradient energy in those frame regions
//!   relative to the cheek's own texture, go through a logistic head fitted on the development
//!   data (models/heads/glasses.json).

use super::{Grey, face_frame, frame_affine, gradients, grey_patch, hog};
use crate::heads::{HeadError, Kind, LogisticHead, embedded};
use facelens_core::types::Labelled;
use facelens_imaging::Rgb;
use std::sync::LazyLock;

/// Patch: x ∈ [-1.2, 1.2], y ∈ [-0.9, 0.9] face units at 20 px per unit.
pub const PX_PER_UNIT: f32 = 20.0;
pub const PATCH_W: usize = 48;
pub const PATCH_H: usize = 36;

/// Eye region darker than this share of the skin reference → candidate sunglasses.
pub const SUN_DARK_RATIO: f32 = 0.6;
/// Lens-area 90th percentile below this share of the skin → no bright sclera or lit skin.
pub const SUN_BRIGHT: f32 = 0.85;

/// A rectangle in face units → patch pixel ranges.
fn region(x0: f32, y0: f32, x1: f32, y1: f32) -> (usize, usize, usize, usize) {
    let px = |x: f32| ((x + 1.2) * PX_PER_UNIT).round().clamp(0.0, PATCH_W as f32) as usize;
    let py = |y: f32| ((y + 0.9) * PX_PER_UNIT).round().clamp(0.0, PATCH_H as f32) as usize;
    (px(x0), py(y0), px(x1), py(y1))
}

/// The raw (not normalised) grey periocular patch.
pub fn periocular_patch(img: &Rgb, mesh: &[[f32; 3]]) -> Option<Grey> {
    let (origin, ex, ey, d) = face_frame(mesh)?;
    let t = frame_affine(
        origin,
        ex,
        ey,
        PX_PER_UNIT / d,
        1.2 * PX_PER_UNIT,
        0.9 * PX_PER_UNIT,
    );
    Some(grey_patch(img, &t, PATCH_W, PATCH_H))
}

/// Luma statistics behind the sunglasses rule, relative to the skin reference (median of the
/// two cheeks and the forehead): `(lens mean, lens 90th percentile)` over the area a lens covers
/// around each eye. An open bare eye has bright sclera and lit skin around it (high 90th
/// percentile); a dark lens has neither.
pub fn sun_measures(p: &Grey) -> (f32, f32) {
    let collect = |rs: &[(f32, f32, f32, f32)]| {
        let mut v = Vec::new();
        for &(x0, y0, x1, y1) in rs {
            let (a, b, c, d) = region(x0, y0, x1, y1);
            for y in b..d {
                for x in a..c {
                    v.push(p.at(x, y));
                }
            }
        }
        v
    };
    let mean = |v: &[f32]| v.iter().sum::<f32>() / (v.len().max(1) as f32);
    let mut lens = collect(&[(-0.8, -0.2, -0.2, 0.35), (0.2, -0.2, 0.8, 0.35)]);
    lens.sort_by(f32::total_cmp);
    let p90 = lens
        .get((lens.len() as f32 * 0.9) as usize)
        .copied()
        .unwrap_or(0.0);
    let cheek_l = mean(&collect(&[(-0.8, 0.6, -0.3, 0.9)]));
    let cheek_r = mean(&collect(&[(0.3, 0.6, 0.8, 0.9)]));
    let fore = mean(&collect(&[(-0.5, -0.9, 0.5, -0.7)]));
    let mut refs = [cheek_l, cheek_r, fore];
    refs.sort_by(f32::total_cmp);
    let skin = refs[1].max(1.0);
    (mean(&lens) / skin, p90 / skin)
}

/// Names of the features [`glasses_features`] returns, in order.
pub fn feature_names() -> Vec<String> {
    let mut v = Vec::new();
    for c in 0..24 {
        for b in 0..6 {
            v.push(format!("hog_c{c}_b{b}"));
        }
    }
    for r in [
        "bridge_gy",
        "bridge_gx",
        "brow_rim_gy",
        "lower_rim_gy",
        "temple_gy",
        "outer_rim_gx",
        "bridge_peak",
        "lower_rim_peak",
        "upper_rim_peak",
        "outer_rim_peak",
    ] {
        v.push(r.into());
    }
    v.push("eye_dark_ratio".into());
    v.push("eye_bright_ratio".into());
    v
}

/// The feature vector; `None` when the mesh is degenerate.
pub fn glasses_features(img: &Rgb, mesh: &[[f32; 3]]) -> Option<Vec<f32>> {
    let raw = periocular_patch(img, mesh)?;
    Some(patch_features(&raw))
}

/// Features of a raw periocular patch (exposed for tests).
pub fn patch_features(raw: &Grey) -> Vec<f32> {
    let p = raw.normalised();
    let mut f = hog(&p, 6, 4, 6);
    let (gx, gy) = gradients(&p);
    let energy = |g: &[f32], rs: &[(f32, f32, f32, f32)]| {
        let (mut s, mut n) = (0.0f32, 0.0f32);
        for &(x0, y0, x1, y1) in rs {
            let (a, b, c, d) = region(x0, y0, x1, y1);
            for y in b..d {
                for x in a..c {
                    s += g[y * PATCH_W + x].abs();
                    n += 1.0;
                }
            }
        }
        s / n.max(1.0)
    };
    // Cheek texture as the reference: frames add edges, skin does not.
    let cheek = energy(&gx, &[(-0.8, 0.6, -0.3, 0.9), (0.3, 0.6, 0.8, 0.9)])
        + energy(&gy, &[(-0.8, 0.6, -0.3, 0.9), (0.3, 0.6, 0.8, 0.9)])
        + 0.05;
    f.push(energy(&gy, &[(-0.15, -0.3, 0.15, 0.1)]) / cheek);
    f.push(energy(&gx, &[(-0.15, -0.3, 0.15, 0.1)]) / cheek);
    f.push(energy(&gy, &[(-0.8, -0.45, -0.2, -0.25), (0.2, -0.45, 0.8, -0.25)]) / cheek);
    f.push(energy(&gy, &[(-0.8, 0.25, -0.2, 0.5), (0.2, 0.25, 0.8, 0.5)]) / cheek);
    f.push(energy(&gy, &[(-1.2, -0.25, -0.95, 0.1), (0.95, -0.25, 1.2, 0.1)]) / cheek);
    f.push(energy(&gx, &[(-1.0, -0.3, -0.8, 0.35), (0.8, -0.3, 1.0, 0.35)]) / cheek);
    // Peaks: a thin frame line is one strong row (or column) of gradient, which a mean over a
    // region dilutes. Strongest row of |gy| (column of |gx|) relative to the cheek texture.
    let row_peak = |g: &[f32], xr: &[(f32, f32)], y0: f32, y1: f32| {
        let (_, b, _, d) = region(0.0, y0, 0.0, y1);
        let mut best = 0.0f32;
        for y in b..d {
            let (mut s, mut n) = (0.0f32, 0.0f32);
            for &(x0, x1) in xr {
                let (a, _, c, _) = region(x0, 0.0, x1, 0.0);
                for x in a..c {
                    s += g[y * PATCH_W + x].abs();
                    n += 1.0;
                }
            }
            best = best.max(s / n.max(1.0));
        }
        best
    };
    f.push(row_peak(&gy, &[(-0.12, 0.12)], -0.45, 0.2) / cheek);
    f.push(row_peak(&gy, &[(-0.7, -0.3), (0.3, 0.7)], 0.15, 0.55) / cheek);
    f.push(row_peak(&gy, &[(-0.7, -0.3), (0.3, 0.7)], -0.55, -0.15) / cheek);
    let (a, b, c, d) = region(0.7, -0.3, 1.15, 0.35);
    let (a2, _, c2, _) = region(-1.15, -0.3, -0.7, 0.35);
    let mut col_best = 0.0f32;
    for (lo, hi) in [(a, c), (a2, c2)] {
        for x in lo..hi {
            let s: f32 = (b..d).map(|y| gx[y * PATCH_W + x].abs()).sum();
            col_best = col_best.max(s / (d - b).max(1) as f32);
        }
    }
    f.push(col_best / cheek);
    let (dark, bright) = sun_measures(raw);
    f.push(dark);
    f.push(bright);
    f
}

static HEAD: LazyLock<Result<LogisticHead, HeadError>> = LazyLock::new(|| {
    embedded::GLASSES
        .load::<LogisticHead>()?
        .with_labels(&["none", "common"])?
        .with_features(&feature_names())
});

/// The fitted eyeglasses head: P(common) (`none` / `common` by its threshold).
pub fn head() -> Result<&'static LogisticHead, &'static HeadError> {
    HEAD.as_ref()
}

/// Whether the sunglasses rule fires, with a confidence 0.5..1 growing with the margin.
pub fn sun_rule(dark_ratio: f32, bright: f32) -> Option<f32> {
    if dark_ratio < SUN_DARK_RATIO && bright < SUN_BRIGHT {
        let margin = ((SUN_DARK_RATIO - dark_ratio) / SUN_DARK_RATIO)
            .min((SUN_BRIGHT - bright) / SUN_BRIGHT)
            .clamp(0.0, 1.0);
        Some(0.5 + 0.5 * margin.sqrt())
    } else {
        None
    }
}

/// Classify from a feature vector (as [`glasses_features`] returns it).
pub fn classify(f: &[f32]) -> Labelled {
    let n = f.len();
    if n >= 2
        && let Some(p) = sun_rule(f[n - 2], f[n - 1])
    {
        return Labelled::new("sun", p);
    }
    head()
        .ok()
        .and_then(|h| h.classify(f))
        .unwrap_or_else(|| Labelled::new("none", 0.5))
}

/// Glasses for one face: `none` / `common` / `sun` with a probability.
///
/// `mesh`: the 468 mesh points in image pixels; `img`: the upright image. A degenerate mesh
/// gives `none` with probability 0.5 (unknown).
pub fn glasses(img: &Rgb, mesh: &[[f32; 3]]) -> Labelled {
    match glasses_features(img, mesh) {
        Some(f) => classify(&f),
        None => Labelled::new("none", 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::tests_support::{paint_rect_units, synthetic_face, synthetic_mesh};

    #[test]
    fn the_features_are_the_ones_the_head_reads() {
        let mesh = synthetic_mesh(100.0, 100.0, 60.0);
        let img = synthetic_face(200, &mesh, true, true);
        let f = glasses_features(&img, &mesh).expect("features");
        assert_eq!(f.len(), feature_names().len());
        assert!(head().expect("glasses.json loads").classify(&f).is_some());
    }

    #[test]
    fn dark_flat_band_over_the_eyes_is_sun() {
        let mesh = synthetic_mesh(100.0, 100.0, 60.0);
        let mut img = synthetic_face(200, &mesh, true, true);
        // Two dark, flat lenses over the eyes.
        paint_rect_units(&mut img, &mesh, (-0.9, -0.3, -0.12, 0.3), [25, 25, 30]);
        paint_rect_units(&mut img, &mesh, (0.12, -0.3, 0.9, 0.3), [25, 25, 30]);
        let g = glasses(&img, &mesh);
        assert_eq!(g.kind, "sun", "{g:?}");
        // Bare eyes are not sunglasses.
        let bare = synthetic_face(200, &mesh, true, true);
        assert_ne!(glasses(&bare, &mesh).kind, "sun");
    }

    #[test]
    fn sun_rule_needs_both_dark_mean_and_no_bright_parts() {
        assert!(sun_rule(0.3, 0.4).is_some());
        assert!(sun_rule(0.3, 0.9).is_none());
        assert!(sun_rule(0.9, 0.4).is_none());
    }
}
