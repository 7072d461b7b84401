//! Face type (heuristic): `human` (a photograph of a person) or `cartoon` (drawn / anime).
//!
//! A photograph of skin is never flat: sensor noise, pores, soft shading and JPEG all leave
//! small gradients everywhere, and colours vary continuously. A drawing is made of flat fills
//! separated by hard ink edges, with few distinct colours, often saturated, and (for anime)
//! eyes far larger than a human face allows. So the face box is resampled to 64×64 (the size
//! of the smallest inputs) and described by:
//!
//! * flatness: the share of pixels with (almost) no gradient, and the ratio of strong-edge to
//!   median gradient (hard edges between flat fills);
//! * the fine residual (pixel minus its 3×3 mean) relative to the contrast — noise and texture;
//! * colour: distinct colours after quantisation, mean and high saturation;
//! * geometry from the mesh: the lid opening and the eye width relative to the eye distance, the
//!   mesh's face-presence score and the detector's score;
//! * how much of the image the face fills ([`ln_face_fill`]): a face cut small out of a crowd
//!   photo is blurred and interpolated into the same flatness as a drawing.
//!
//! A logistic head over these (models/heads/cartoon.json) was fitted on the development data
//! (Anime Face Dataset vs every human photo of the attribute manifest and the WIDER crowd
//! faces), with its threshold set so that at most 0.5 % of all human faces, and 1 % of any
//! source's, are called cartoon in cross-validation.
//!
//! The attribute models were trained on photographs only, and a drawn face pushes them off
//! their usual outputs: GEAR's age bins and race, dlib's age and gender and the emotion nets
//! answer in ways no photo does. So when those models ran (the pipeline runs them whenever
//! face_type is asked for), a second head (models/heads/cartoon_full.json) reads their log
//! probabilities beside the image features; in cross-validation it finds 98 % of the detected
//! drawn faces where the image-only head finds 88 %, at the same human budget (docs/heuristics.md).
//! Both heads also read the squares and pairwise products of the image features
//! ([`quadratic_features`]).
//! Both heads count the faces of crowd photos (WIDER) as human examples: fitted on tight crops
//! alone, small blurred faces looked "flat" and a fifth of them were called cartoon. The
//! image-only head remains the answer when a model output is missing or switched off.

use super::{Grey, eyes, face_frame};
use crate::attributes::AttributeFeatures;
use crate::attributes::age_gender::GEAR_AGE_BINS;
use crate::attributes::emotion::EMOTIONS;
use crate::attributes::race::GEAR_RACES;
use crate::heads::{HeadError, Kind, LogisticHead, embedded};
use facelens_core::types::Labelled;
use facelens_core::{Affine, Rect};
use facelens_imaging::{Rgb, luma_f32, warp_affine_f32};
use std::sync::LazyLock;

/// Side of the resampled face crop.
pub const CROP: usize = 64;

/// Names of the features [`cartoon_features`] returns, in order.
pub fn feature_names() -> Vec<String> {
    [
        "flat_frac",
        "edge_p95_over_median",
        "residual_over_std",
        "colours",
        "sat_mean",
        "sat_high_frac",
        "eye_opening",
        "eye_width_over_iod",
        "mesh_score",
        "det_score",
        "ln_face_fill",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Names of the quadratic image terms both heads read last: the square of every image feature,
/// then the product of every pair (`a*b` for `a` before `b` in [`feature_names`]).
pub fn quadratic_feature_names() -> Vec<String> {
    let n = feature_names();
    let mut q: Vec<String> = n.iter().map(|a| format!("{a}^2")).collect();
    for (i, a) in n.iter().enumerate() {
        q.extend(n[i + 1..].iter().map(|b| format!("{a}*{b}")));
    }
    q
}

/// The quadratic terms of image features `x`, in the order of [`quadratic_feature_names`].
///
/// Why: the cues of a drawing combine. Flat fills are common in small blurred photo faces
/// too, but flat *and* saturated *and* a face filling its frame is not; a logistic head over
/// the features alone cannot express "and". With these terms the cross-validated recall of the
/// image-only head rose from 67 % to 83 % of the dev anime faces, and of the full head from
/// 90.7 % to 92.7 %, at the same budget of humans called cartoon (docs/heuristics.md).
pub fn quadratic_features(x: &[f32]) -> Vec<f32> {
    let mut q: Vec<f32> = x.iter().map(|a| a * a).collect();
    for (i, a) in x.iter().enumerate() {
        q.extend(x[i + 1..].iter().map(|b| a * b));
    }
    q
}

/// How many emotion models the full head reads (the two shipped mini-Xception weight sets).
const EMOTION_MODELS: usize = 2;

/// Names of the model-output features the full head reads after [`feature_names`], in order.
pub fn model_feature_names() -> Vec<String> {
    let mut n: Vec<String> = ["dlib_age", "ln_dlib_age", "dlib_male"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    n.extend(GEAR_RACES.iter().map(|r| format!("ln_gear_{r}")));
    n.push("gear_male".into());
    n.extend(GEAR_AGE_BINS.iter().map(|b| format!("ln_gear_age_{b}")));
    for m in 0..EMOTION_MODELS {
        n.extend(EMOTIONS.iter().map(|e| format!("ln_emotion{m}_{e}")));
    }
    n
}

/// The model-output features of one face, or `None` when one of the models did not run.
pub fn model_features(f: &AttributeFeatures) -> Option<Vec<f32>> {
    let ln = |p: f32| p.clamp(1e-6, 1.0).ln();
    let age = f.dlib_age?;
    let race = f
        .gear_race
        .as_deref()
        .filter(|r| r.len() == GEAR_RACES.len())?;
    let bins = f
        .gear_age
        .as_deref()
        .filter(|b| b.len() == GEAR_AGE_BINS.len())?;
    if f.emotion_models.len() != EMOTION_MODELS
        || f.emotion_models.iter().any(|m| m.len() != EMOTIONS.len())
    {
        return None;
    }
    let mut x = vec![age, age.max(1.0).ln(), f.dlib_male?];
    x.extend(race.iter().map(|&p| ln(p)));
    x.push(f.gear_male?);
    x.extend(bins.iter().map(|&p| ln(p)));
    for m in &f.emotion_models {
        x.extend(m.iter().map(|&p| ln(p)));
    }
    Some(x)
}

/// The feature vector. `bbox`: the detector's box; `mesh`: 468 points in image pixels;
/// `mesh_score`: the mesh's face-presence probability; `det_score`: the detector's score.
pub fn cartoon_features(
    img: &Rgb,
    bbox: &Rect,
    mesh: &[[f32; 3]],
    mesh_score: f32,
    det_score: f32,
) -> Vec<f32> {
    let side = bbox.width().max(bbox.height()).max(1.0);
    let t = Affine::crop_to(bbox.center(), side, 0.0, CROP as f32);
    let rgb = warp_affine_f32(img, &t, CROP as u32, CROP as u32);
    let mut f = image_features(&rgb);
    let (opening, width) = if face_frame(mesh).is_some() {
        let o = 0.5 * (eyes::mesh_opening(mesh, true) + eyes::mesh_opening(mesh, false));
        let iod = face_frame(mesh).map(|x| x.3).unwrap_or(1.0);
        let w = 0.5
            * (super::mp(mesh, 33).dist(super::mp(mesh, 133))
                + super::mp(mesh, 263).dist(super::mp(mesh, 362)));
        (o, w / iod.max(1e-3))
    } else {
        (0.3, 0.45)
    };
    f.push(opening);
    f.push(width);
    f.push(mesh_score);
    f.push(det_score);
    let (w, h) = img.dimensions();
    f.push(ln_face_fill(bbox, w, h));
    f
}

/// How much of its image the face fills: `ln(sqrt(box w · h) / shorter image side)`, the ratio
/// clamped to `[0.001, 1]` (a face box can be larger than the shorter side of its image).
///
/// A face that is a small part of a larger photo (a person in a crowd, at a party, in the
/// street) is resampled up to 64×64 from few pixels, and blur and interpolation make it look
/// as flat as a drawing. The head needs to know how much context surrounds the face to weigh
/// the flatness features: with this feature it tells the crowd faces of the WIDER photos from
/// drawn faces without raising its threshold for every face (docs/heuristics.md). The
/// logarithm spreads the small faces (1-30 % of the side) that the feature is for.
pub fn ln_face_fill(bbox: &Rect, img_w: u32, img_h: u32) -> f32 {
    let short = img_w.min(img_h).max(1) as f32;
    let size = (bbox.width().max(1.0) * bbox.height().max(1.0)).sqrt();
    (size / short).clamp(1e-3, 1.0).ln()
}

/// The image part of the features, from an interleaved RGB `CROP × CROP` float crop.
pub fn image_features(rgb: &[f32]) -> Vec<f32> {
    let n = CROP;
    let grey = Grey {
        w: n,
        h: n,
        data: rgb
            .chunks_exact(3)
            .map(|c| luma_f32([c[0], c[1], c[2]]))
            .collect(),
    };
    // Gradient magnitude: the largest per-channel central difference.
    let mut mags = Vec::with_capacity(n * n);
    for y in 1..n - 1 {
        for x in 1..n - 1 {
            let mut m = 0.0f32;
            for c in 0..3 {
                let v = |xx: usize, yy: usize| rgb[(yy * n + xx) * 3 + c];
                let gx = (v(x + 1, y) - v(x - 1, y)) * 0.5;
                let gy = (v(x, y + 1) - v(x, y - 1)) * 0.5;
                m = m.max((gx * gx + gy * gy).sqrt());
            }
            mags.push(m);
        }
    }
    let flat = mags.iter().filter(|&&m| m < 1.5).count() as f32 / mags.len() as f32;
    let mut sorted = mags.clone();
    sorted.sort_by(f32::total_cmp);
    let q = |p: f32| sorted[((sorted.len() - 1) as f32 * p) as usize];
    let edge_ratio = q(0.95) / (q(0.5) + 1.0);
    let (_, sd) = grey.stats(0, 0, n, n);
    let mut res = 0.0f32;
    for y in 1..n - 1 {
        for x in 1..n - 1 {
            let mut s = 0.0;
            for dy in 0..3 {
                for dx in 0..3 {
                    s += grey.at(x + dx - 1, y + dy - 1);
                }
            }
            res += (grey.at(x, y) - s / 9.0).abs();
        }
    }
    let residual = res / ((n - 2) * (n - 2)) as f32 / (sd + 1.0);
    let mut seen = vec![false; 1 << 15];
    let mut colours = 0usize;
    let (mut sat_sum, mut sat_high) = (0.0f32, 0usize);
    for c in rgb.chunks_exact(3) {
        let q = |v: f32| (v.clamp(0.0, 255.0) as usize) >> 3;
        let key = (q(c[0]) << 10) | (q(c[1]) << 5) | q(c[2]);
        if !seen[key] {
            seen[key] = true;
            colours += 1;
        }
        let mx = c[0].max(c[1]).max(c[2]);
        let mn = c[0].min(c[1]).min(c[2]);
        let s = if mx > 1.0 { (mx - mn) / mx } else { 0.0 };
        sat_sum += s;
        if s > 0.5 && mx > 40.0 {
            sat_high += 1;
        }
    }
    let px = (n * n) as f32;
    vec![
        flat,
        edge_ratio,
        residual,
        colours as f32 / px,
        sat_sum / px,
        sat_high as f32 / px,
    ]
}

/// The classes of both heads: `[negative, positive]`, the heads give P(cartoon).
pub const LABELS: [&str; 2] = ["human", "cartoon"];

static HEAD: LazyLock<Result<LogisticHead, HeadError>> = LazyLock::new(|| {
    let mut names = feature_names();
    names.extend(quadratic_feature_names());
    embedded::CARTOON
        .load::<LogisticHead>()?
        .with_labels(&LABELS)?
        .with_features(&names)
});
static FULL_HEAD: LazyLock<Result<LogisticHead, HeadError>> = LazyLock::new(|| {
    let mut names = feature_names();
    names.extend(model_feature_names());
    names.extend(quadratic_feature_names());
    embedded::CARTOON_FULL
        .load::<LogisticHead>()?
        .with_labels(&LABELS)?
        .with_features(&names)
});

/// The fitted image-only head.
pub fn head() -> Result<&'static LogisticHead, &'static HeadError> {
    HEAD.as_ref()
}

/// The fitted head over the image and model-output features.
pub fn full_head() -> Result<&'static LogisticHead, &'static HeadError> {
    FULL_HEAD.as_ref()
}

/// Classify with the image-only head: `f` is the image features followed by their
/// [`quadratic_features`].
pub fn classify(f: &[f32]) -> Labelled {
    classify_with(head().ok(), f)
}

fn classify_with(head: Option<&LogisticHead>, f: &[f32]) -> Labelled {
    head.and_then(|h| h.classify(f))
        .unwrap_or_else(|| Labelled::new("human", 0.5))
}

/// Face type for one face: `human` or `cartoon`, with a probability. `models`: the face's
/// attribute-model outputs; the full head is used when they are all there, the image-only
/// head otherwise.
pub fn face_type(
    img: &Rgb,
    bbox: &Rect,
    mesh: &[[f32; 3]],
    mesh_score: f32,
    det_score: f32,
    models: Option<&AttributeFeatures>,
) -> Labelled {
    let mut x = cartoon_features(img, bbox, mesh, mesh_score, det_score);
    let quadratic = quadratic_features(&x);
    // Both heads read the image features first and their quadratic terms last; the full head
    // reads the model outputs in between.
    let chosen = match (models.and_then(model_features), full_head()) {
        (Some(m), Ok(h)) => {
            x.extend(m);
            Some(h)
        }
        _ => head().ok(),
    };
    x.extend(quadratic);
    classify_with(chosen, &x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_features_are_the_ones_the_heads_read() {
        let mesh = crate::heuristics::tests_support::synthetic_mesh(100.0, 100.0, 60.0);
        let img = crate::heuristics::tests_support::synthetic_face(200, &mesh, true, true);
        let bbox = Rect::new(30.0, 40.0, 170.0, 190.0);
        let x = cartoon_features(&img, &bbox, &mesh, 0.9, 0.9);
        assert_eq!(x.len(), feature_names().len());
        let mut image_only = x.clone();
        image_only.extend(quadratic_features(&x));
        let h = head().expect("cartoon.json loads");
        assert!(h.classify(&image_only).is_some());
        let f = AttributeFeatures {
            dlib_age: Some(30.0),
            dlib_male: Some(0.5),
            gear_race: Some(vec![0.2; 5]),
            gear_male: Some(0.5),
            gear_age: Some(vec![1.0 / 7.0; 7]),
            emotion_models: vec![vec![1.0 / 7.0; 7]; 2],
            ..AttributeFeatures::default()
        };
        let mut full = x.clone();
        full.extend(model_features(&f).expect("model features"));
        full.extend(quadratic_features(&x));
        assert!(
            full_head()
                .expect("cartoon_full.json loads")
                .classify(&full)
                .is_some()
        );
        // face_type picks the full head when every model output is there, and the answers are
        // those of the heads.
        let with_models = face_type(&img, &bbox, &mesh, 0.9, 0.9, Some(&f));
        assert_eq!(
            Some(with_models),
            full_head().ok().and_then(|h| h.classify(&full))
        );
        let image = face_type(&img, &bbox, &mesh, 0.9, 0.9, None);
        assert_eq!(Some(image), h.classify(&image_only));
    }

    #[test]
    fn quadratic_terms_are_the_squares_then_the_pairwise_products() {
        let q = quadratic_features(&[1.0, 2.0, 3.0]);
        assert_eq!(q, vec![1.0, 4.0, 9.0, 2.0, 3.0, 6.0]);
        let n = feature_names().len();
        assert_eq!(quadratic_feature_names().len(), n + n * (n - 1) / 2);
        assert_eq!(
            quadratic_features(&vec![1.0; n]).len(),
            quadratic_feature_names().len()
        );
        assert_eq!(
            quadratic_feature_names()[n],
            "flat_frac*edge_p95_over_median"
        );
    }

    #[test]
    fn model_features_need_every_model() {
        let f = AttributeFeatures {
            dlib_age: Some(20.0),
            dlib_male: Some(0.3),
            gear_race: Some(vec![0.2; 5]),
            gear_male: Some(0.4),
            gear_age: Some(vec![1.0 / 7.0; 7]),
            emotion_models: vec![vec![1.0 / 7.0; 7]; 2],
            ..AttributeFeatures::default()
        };
        let x = model_features(&f).expect("all models ran");
        assert_eq!(x.len(), model_feature_names().len());
        assert!(x.iter().all(|v| v.is_finite()));
        // A zero probability is clamped, not -inf.
        let zero = AttributeFeatures {
            gear_race: Some(vec![0.0; 5]),
            ..f.clone()
        };
        assert!(model_features(&zero).is_some_and(|x| x.iter().all(|v| v.is_finite())));
        let no_emotion = AttributeFeatures {
            emotion_models: vec![vec![1.0 / 7.0; 7]],
            ..f.clone()
        };
        assert!(model_features(&no_emotion).is_none());
        let no_gear = AttributeFeatures {
            gear_race: None,
            ..f
        };
        assert!(model_features(&no_gear).is_none());
    }

    #[test]
    fn flat_fills_look_drawn_and_noise_looks_photographic() {
        // Flat fills with one hard edge.
        let mut flat = vec![0.0f32; CROP * CROP * 3];
        for (i, c) in flat.chunks_exact_mut(3).enumerate() {
            let x = i % CROP;
            let v = if x < 32 {
                [250.0, 220.0, 200.0]
            } else {
                [40.0, 60.0, 200.0]
            };
            c.copy_from_slice(&v);
        }
        // Skin-like colour with deterministic pseudo-noise.
        let mut noisy = vec![0.0f32; CROP * CROP * 3];
        let mut s = 12345u32;
        for c in noisy.chunks_exact_mut(3) {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let nz = ((s >> 16) % 13) as f32 - 6.0;
            c.copy_from_slice(&[180.0 + nz, 140.0 + nz, 120.0 + nz]);
        }
        let a = image_features(&flat);
        let b = image_features(&noisy);
        assert!(a[0] > 0.9 && b[0] < 0.2, "flat share {a:?} {b:?}");
        assert!(a[3] < b[3], "fewer colours in the drawing");
    }

    #[test]
    fn face_fill_is_the_face_size_over_the_short_side_capped_at_the_frame() {
        let crowd = Rect::new(100.0, 100.0, 140.0, 150.0);
        let expect = ((40.0f32 * 50.0).sqrt() / 768.0).ln();
        assert!((ln_face_fill(&crowd, 1024, 768) - expect).abs() < 1e-5);
        // A box larger than the frame (a padded retry) counts as filling it.
        let big = Rect::new(-20.0, -20.0, 90.0, 90.0);
        assert_eq!(ln_face_fill(&big, 64, 64), 0.0);
        // Degenerate input stays finite.
        let empty = Rect::new(5.0, 5.0, 5.0, 5.0);
        assert!(ln_face_fill(&empty, 0, 0).is_finite());
    }
}
