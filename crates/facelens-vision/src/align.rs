//! Face alignment: the similarity transform that maps the five detector landmarks onto a
//! canonical template. Attribute models were trained on aligned crops, so feeding them the same
//! geometry is the cheapest accuracy gain there is.

use facelens_core::{Affine, Point};
use facelens_imaging::{Rgb, warp_affine};

/// The ArcFace / InsightFace 112×112 five-point template (image-left eye first).
pub const ARCFACE_112: [Point; 5] = [
    Point::new(38.2946, 51.6963),
    Point::new(73.5318, 51.5014),
    Point::new(56.0252, 71.7366),
    Point::new(41.5493, 92.3655),
    Point::new(70.7299, 92.2041),
];

/// Scale a template made for `from` pixels to `to` pixels, adding `padding` (a fraction of the
/// output) around the face: the face is shrunk towards the centre so that context is kept.
pub fn template(base: &[Point; 5], from: f32, to: f32, padding: f32) -> [Point; 5] {
    let s = to / from / (1.0 + 2.0 * padding);
    let off = to * 0.5 - from * 0.5 * s;
    base.map(|p| Point::new(p.x * s + off, p.y * s + off))
}

/// The image → crop transform aligning `landmarks` onto `template`.
pub fn alignment(landmarks: &[Point; 5], template: &[Point; 5]) -> Option<Affine> {
    Affine::estimate_similarity(landmarks, template)
}

/// An aligned `size × size` crop.
pub fn aligned_crop(
    img: &Rgb,
    landmarks: &[Point; 5],
    template: &[Point; 5],
    size: u32,
) -> Option<(Rgb, Affine)> {
    let t = alignment(landmarks, template)?;
    Some((warp_affine(img, &t, size, size), t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_scaling_keeps_centre() {
        let t = template(&ARCFACE_112, 112.0, 224.0, 0.0);
        assert!((t[0].x - 2.0 * ARCFACE_112[0].x).abs() < 1e-3);
        let p = template(&ARCFACE_112, 112.0, 112.0, 0.25);
        // with padding the eyes move towards the centre
        assert!(p[0].x > ARCFACE_112[0].x && p[1].x < ARCFACE_112[1].x);
    }

    #[test]
    fn aligning_the_template_onto_itself_is_identity() {
        let t = alignment(&ARCFACE_112, &ARCFACE_112).expect("align");
        for (a, b) in t.m.iter().zip(Affine::IDENTITY.m.iter()) {
            assert!((a - b).abs() < 1e-4);
        }
    }
}
