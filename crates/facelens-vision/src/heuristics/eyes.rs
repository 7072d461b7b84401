//! Eye status (heuristic): open (1) .. closed (0) per subject eye.
//!
//! Why not the mesh alone: the MediaPipe face mesh was trained mostly on open eyes and keeps its
//! lids apart on closed eyes (its eye aspect ratio catches about one closed face in ten), so
//! the decision is made from the *image* of each eye instead. Each eye is cut out as a small
//! grey patch aligned by the mesh's eye corners (outer corner left, inner corner right for
//! both eyes — the subject's left eye is mirrored — so one head serves both), contrast-normalised,
//! and described by:
//!
//! * a histogram of oriented gradients (4×2 cells, 6 orientations): an open eye shows the round
//!   iris and the lid arcs (gradients in all directions), a closed eye one horizontal lash line
//!   (vertical gradients only);
//! * the vertical intensity profile through the eye centre and the horizontal profile through
//!   the lid line: the dark iris/pupil between bright sclera exists only when the eye is open;
//! * the darkest 3×3 spot in the centre (the pupil), the ratio of horizontal to vertical
//!   gradient energy, and the mesh's own lid opening (a weak but free cue).
//!
//! A logistic head over these features (models/heads/eyes.json) was fitted on the development
//! data (closed: CEW; open: UTKFace visual labels); see docs/heuristics.md for the figures and
//! the checks against learning dataset differences instead of eye state.

use super::{Grey, frame_affine, gradients, grey_patch, hog, mp};
use crate::heads::{HeadError, Kind, LogisticHead, embedded};
use facelens_core::Point;
use facelens_core::types::EyeStatus;
use facelens_imaging::Rgb;
use std::sync::LazyLock;

/// Patch size (pixels): 1.5 eye widths wide, 1 eye width high. Deliberately coarse (8 px per
/// eye width): the smallest dev faces (48 px FER crops) have eyes about that size, and sampling
/// every face at the same low resolution keeps the head from learning "sharp = open".
pub const PATCH_W: usize = 12;
pub const PATCH_H: usize = 8;

/// Mesh indices of one eye: outer corner, inner corner, then three upper/lower lid pairs.
struct EyeIdx {
    outer: usize,
    inner: usize,
    lids: [(usize, usize); 3],
}

/// Subject's right eye (image left).
const RIGHT: EyeIdx = EyeIdx {
    outer: 33,
    inner: 133,
    lids: [(159, 145), (160, 144), (158, 153)],
};
/// Subject's left eye (image right).
const LEFT: EyeIdx = EyeIdx {
    outer: 263,
    inner: 362,
    lids: [(386, 374), (387, 373), (385, 380)],
};

/// Names of the features [`eye_features`] returns, in order.
pub fn feature_names() -> Vec<String> {
    let mut v = Vec::new();
    for c in 0..8 {
        for b in 0..6 {
            v.push(format!("hog_c{c}_b{b}"));
        }
    }
    for r in 0..8 {
        v.push(format!("vprof_{r}"));
    }
    for c in 0..6 {
        v.push(format!("hprof_{c}"));
    }
    v.push("mesh_opening".into());
    v.push("gx_gy_ratio".into());
    v.push("dark_spot".into());
    v
}

/// The aligned, contrast-normalised patch of one eye (`subject_left`: the subject's left eye,
/// on the image's right; it is mirrored so that its outer corner is on the patch's left).
pub fn eye_patch(img: &Rgb, mesh: &[[f32; 3]], subject_left: bool) -> Option<Grey> {
    if mesh.len() < super::MESH_POINTS {
        return None;
    }
    let e = if subject_left { &LEFT } else { &RIGHT };
    let (o, i) = (mp(mesh, e.outer), mp(mesh, e.inner));
    let d = o.dist(i);
    if !(d.is_finite() && d > 1.0) {
        return None;
    }
    let ex = Point::new((i.x - o.x) / d, (i.y - o.y) / d);
    // y points to the chin: the perpendicular that agrees with forehead → chin.
    let down = Point::new(mesh[152][0] - mesh[10][0], mesh[152][1] - mesh[10][1]);
    let mut ey = Point::new(-ex.y, ex.x);
    if ey.x * down.x + ey.y * down.y < 0.0 {
        ey = Point::new(-ey.x, -ey.y);
    }
    let scale = PATCH_H as f32 / d;
    let t = frame_affine(
        o.mid(i),
        ex,
        ey,
        scale,
        PATCH_W as f32 * 0.5,
        PATCH_H as f32 * 0.5,
    );
    Some(grey_patch(img, &t, PATCH_W, PATCH_H).normalised())
}

/// The mesh's lid opening: mean lid distance over the corner distance.
pub fn mesh_opening(mesh: &[[f32; 3]], subject_left: bool) -> f32 {
    let e = if subject_left { &LEFT } else { &RIGHT };
    let w = mp(mesh, e.outer).dist(mp(mesh, e.inner)).max(1e-3);
    let h: f32 = e
        .lids
        .iter()
        .map(|&(a, b)| mp(mesh, a).dist(mp(mesh, b)))
        .sum::<f32>()
        / 3.0;
    h / w
}

/// The feature vector of one eye; `None` when the mesh is degenerate.
pub fn eye_features(img: &Rgb, mesh: &[[f32; 3]], subject_left: bool) -> Option<Vec<f32>> {
    let p = eye_patch(img, mesh, subject_left)?;
    Some(patch_features(&p, mesh_opening(mesh, subject_left)))
}

/// Features of an aligned, normalised eye patch (exposed for tests).
pub fn patch_features(p: &Grey, opening: f32) -> Vec<f32> {
    let mut f = hog(p, 4, 2, 6);
    // Vertical profile through the central half, one value per row.
    for r in 0..8 {
        let (m, _) = p.stats(3, r, 9, r + 1);
        f.push(m);
    }
    // Horizontal profile along the lid line, 6 bands of 2 columns.
    for c in 0..6 {
        let (m, _) = p.stats(c * 2, 2, c * 2 + 2, 6);
        f.push(m);
    }
    f.push(opening);
    let (gx, gy) = gradients(p);
    let (mut sx, mut sy) = (0.0f32, 0.0f32);
    for y in 1..7 {
        for x in 2..10 {
            let i = y * p.w + x;
            sx += gx[i].abs();
            sy += gy[i].abs();
        }
    }
    f.push(sx / (sy + 1e-3));
    let mut dark = f32::MAX;
    for y in 2..5 {
        for x in 3..8 {
            let (m, _) = p.stats(x, y, x + 2, y + 2);
            dark = dark.min(m);
        }
    }
    f.push(dark);
    f
}

static HEAD: LazyLock<Result<LogisticHead, HeadError>> = LazyLock::new(|| {
    embedded::EYES
        .load::<LogisticHead>()?
        .with_labels(&["closed", "open"])?
        .with_features(&feature_names())
});

/// The fitted head, or why the embedded file did not load (a test rules that out).
pub fn head() -> Result<&'static LogisticHead, &'static HeadError> {
    HEAD.as_ref()
}

/// Probability that one eye is open, 0..1.
pub fn eye_open_probability(img: &Rgb, mesh: &[[f32; 3]], subject_left: bool) -> Option<f32> {
    let f = eye_features(img, mesh, subject_left)?;
    head().ok()?.probability(&f)
}

/// Eye status per subject eye, 0 (closed) .. 1 (open). Falls back to "open" (1.0) when the mesh
/// is degenerate — the common case, and the contract's default.
///
/// `mesh`: the 468 mesh points in image pixels; `img`: the upright image they refer to.
pub fn eye_status(img: &Rgb, mesh: &[[f32; 3]]) -> EyeStatus {
    let l = eye_open_probability(img, mesh, true).unwrap_or(1.0);
    let r = eye_open_probability(img, mesh, false).unwrap_or(1.0);
    EyeStatus {
        left_eye: l,
        right_eye: r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::tests_support::{synthetic_face, synthetic_mesh};

    #[test]
    fn the_features_are_the_ones_the_head_reads() {
        let mesh = synthetic_mesh(100.0, 100.0, 60.0);
        let img = synthetic_face(200, &mesh, true, false);
        let f = eye_features(&img, &mesh, true).expect("features");
        assert_eq!(f.len(), feature_names().len());
        assert!(head().expect("eyes.json loads").probability(&f).is_some());
    }

    #[test]
    fn mirrored_face_gives_mirrored_status() {
        let mesh = synthetic_mesh(100.0, 100.0, 60.0);
        // Subject's right eye (image left) open, subject's left closed.
        let img = synthetic_face(200, &mesh, true, false);
        let s = eye_status(&img, &mesh);
        let flipped = image_flip(&img);
        let fmesh = crate::heuristics::tests_support::mirror_mesh(&mesh, 200.0);
        let t = eye_status(&flipped, &fmesh);
        // Equal up to resampling on the mirrored pixel grid.
        assert!((s.left_eye - t.right_eye).abs() < 0.1, "{s:?} {t:?}");
        assert!((s.right_eye - t.left_eye).abs() < 0.1, "{s:?} {t:?}");
        assert!(t.left_eye > t.right_eye, "{t:?}");
        // The drawn open eye reads more open than the drawn closed one.
        assert!(s.right_eye > s.left_eye, "{s:?}");
    }

    fn image_flip(img: &Rgb) -> Rgb {
        facelens_imaging::image::imageops::flip_horizontal(img)
    }

    #[test]
    fn degenerate_mesh_defaults_to_open() {
        let img = Rgb::new(10, 10);
        let s = eye_status(&img, &[[0.0; 3]; 10]);
        assert_eq!((s.left_eye, s.right_eye), (1.0, 1.0));
    }
}
