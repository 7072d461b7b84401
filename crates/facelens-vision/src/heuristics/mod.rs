//! Heuristics for the contract's attributes for which no model ships anywhere we could find and
//! no training set was at hand: eye status, glasses and face type (human / cartoon). (Face shape
//! and beauty were formulas here until trained heads replaced them: [`crate::attributes::trained`].)
//!
//! Every function here is a **heuristic**: hand-designed image and mesh-geometry features,
//! followed where labelled development data exists by a small logistic head whose weights were
//! **fitted on the development data** (`scripts/fit_heuristics.py`, weights in
//! `models/heads/*.json`, loaded and checked by [`crate::heads`]). docs/heuristics.md gives the
//! method, the provenance of every number and the measured figures of each.
//!
//! The functions are pure: they take what the pipeline already has for a face (the upright RGB
//! image, the 468-point mesh in image pixels, the five detector landmarks, the box, the pose) and
//! run no model. Features are computed on small patches *aligned by the mesh* and
//! contrast-normalised, so that they describe the face, not the camera, the resolution or the
//! dataset a face came from.

pub mod cartoon;
pub mod eyes;
pub mod glasses;

use facelens_core::{Affine, Point};
use facelens_imaging::{Rgb, luma_f32, warp_affine_f32};

/// Number of points of a MediaPipe face mesh.
pub const MESH_POINTS: usize = 468;

/// A single-channel float image (luma, 0..255 before normalisation).
#[derive(Debug, Clone, PartialEq)]
pub struct Grey {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Grey {
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.w + x]
    }

    /// Mean and standard deviation of the pixels in `[x0, x1) × [y0, y1)` (clamped).
    pub fn stats(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> (f32, f32) {
        let (x1, y1) = (x1.min(self.w), y1.min(self.h));
        let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0usize);
        for y in y0..y1 {
            for x in x0..x1 {
                let v = self.at(x, y) as f64;
                s += v;
                s2 += v * v;
                n += 1;
            }
        }
        if n == 0 {
            return (0.0, 0.0);
        }
        let m = s / n as f64;
        (m as f32, (s2 / n as f64 - m * m).max(0.0).sqrt() as f32)
    }

    /// Zero mean, unit standard deviation (a flat patch stays all zeros).
    pub fn normalised(&self) -> Grey {
        let (m, s) = self.stats(0, 0, self.w, self.h);
        let s = s.max(1.0);
        Grey {
            w: self.w,
            h: self.h,
            data: self.data.iter().map(|v| (v - m) / s).collect(),
        }
    }
}

/// Sample the luma of `img` through `img_to_patch` into a `w × h` patch (bilinear, anti-aliased
/// by the imaging crate when the patch shrinks the image).
pub fn grey_patch(img: &Rgb, img_to_patch: &Affine, w: usize, h: usize) -> Grey {
    let rgb = warp_affine_f32(img, img_to_patch, w as u32, h as u32);
    let data = rgb
        .chunks_exact(3)
        .map(|c| luma_f32([c[0], c[1], c[2]]))
        .collect();
    Grey { w, h, data }
}

/// An affine map from image pixels to a patch, given a frame: `origin` goes to the patch
/// point `(ox, oy)`, the unit vector `ex` to `+x` and `ey` to `+y`, and `scale` patch pixels
/// per image pixel. `ex`/`ey` need not form a right-handed pair (mirroring is allowed, so the
/// subject's two eyes can share one canonical orientation).
pub fn frame_affine(origin: Point, ex: Point, ey: Point, scale: f32, ox: f32, oy: f32) -> Affine {
    // patch = scale * [ex; ey] · (p - origin) + (ox, oy)
    let (a, b) = (scale * ex.x, scale * ex.y);
    let (d, e) = (scale * ey.x, scale * ey.y);
    Affine {
        m: [
            a,
            b,
            ox - (a * origin.x + b * origin.y),
            d,
            e,
            oy - (d * origin.x + e * origin.y),
        ],
    }
}

/// The face frame shared by the heuristics: origin between the eye centres, x along the eye
/// line (image left → image right), y perpendicular pointing to the chin, unit = the distance
/// between the eye centres. Returns `(origin, ex, ey, interocular_px)`; `None` for a degenerate
/// mesh.
pub fn face_frame(mesh: &[[f32; 3]]) -> Option<(Point, Point, Point, f32)> {
    if mesh.len() < MESH_POINTS {
        return None;
    }
    let c = |i: usize, j: usize| {
        Point::new(
            (mesh[i][0] + mesh[j][0]) * 0.5,
            (mesh[i][1] + mesh[j][1]) * 0.5,
        )
    };
    // Image-left eye (subject's right): 33/133; image-right eye: 263/362.
    let le = c(33, 133);
    let re = c(263, 362);
    let d = le.dist(re);
    if !(d.is_finite() && d > 1.0) {
        return None;
    }
    let ex = Point::new((re.x - le.x) / d, (re.y - le.y) / d);
    let ey = Point::new(-ex.y, ex.x);
    Some((le.mid(re), ex, ey, d))
}

/// Central-difference gradients (zero on the border).
pub fn gradients(p: &Grey) -> (Vec<f32>, Vec<f32>) {
    let (w, h) = (p.w, p.h);
    let mut gx = vec![0.0; w * h];
    let mut gy = vec![0.0; w * h];
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let i = y * w + x;
            gx[i] = (p.data[i + 1] - p.data[i - 1]) * 0.5;
            gy[i] = (p.data[i + w] - p.data[i - w]) * 0.5;
        }
    }
    (gx, gy)
}

/// Histogram of oriented gradients: `cols × rows` cells, `bins` unsigned orientations,
/// magnitude-weighted, the whole vector L2-normalised (so contrast does not matter).
pub fn hog(p: &Grey, cols: usize, rows: usize, bins: usize) -> Vec<f32> {
    let (gx, gy) = gradients(p);
    let mut out = vec![0.0f32; cols * rows * bins];
    let cw = p.w as f32 / cols as f32;
    let ch = p.h as f32 / rows as f32;
    for y in 0..p.h {
        for x in 0..p.w {
            let i = y * p.w + x;
            let m = (gx[i] * gx[i] + gy[i] * gy[i]).sqrt();
            if m <= 0.0 {
                continue;
            }
            // Unsigned orientation in [0, π): a gradient and its opposite are one edge.
            let mut ang = gy[i].atan2(gx[i]);
            if ang < 0.0 {
                ang += std::f32::consts::PI;
            }
            if ang >= std::f32::consts::PI {
                ang -= std::f32::consts::PI;
            }
            let b = ((ang / std::f32::consts::PI * bins as f32) as usize).min(bins - 1);
            let cx = ((x as f32 / cw) as usize).min(cols - 1);
            let cy = ((y as f32 / ch) as usize).min(rows - 1);
            out[(cy * cols + cx) * bins + b] += m;
        }
    }
    l2_normalise(&mut out);
    out
}

pub(crate) fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-6 {
        for x in v.iter_mut() {
            *x /= n;
        }
    }
}

/// 2-D point of a mesh vertex.
pub(crate) fn mp(mesh: &[[f32; 3]], i: usize) -> Point {
    Point::new(mesh[i][0], mesh[i][1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hog_is_contrast_invariant_and_sees_orientation() {
        // Vertical stripes: horizontal gradients only (orientation bin 0).
        let mk = |amp: f32| Grey {
            w: 16,
            h: 16,
            data: (0..256)
                .map(|i| if (i % 16) / 4 % 2 == 0 { 0.0 } else { amp })
                .collect(),
        };
        let a = hog(&mk(10.0), 2, 2, 4);
        let b = hog(&mk(200.0), 2, 2, 4);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
        let bin0: f32 = a.iter().step_by(4).sum();
        let rest: f32 = a.iter().sum::<f32>() - bin0;
        assert!(bin0 > 0.9 && rest < 1e-5, "{a:?}");
    }

    #[test]
    fn frame_affine_maps_origin_and_axes() {
        let t = frame_affine(
            Point::new(10.0, 20.0),
            Point::new(-1.0, 0.0),
            Point::new(0.0, 1.0),
            2.0,
            5.0,
            6.0,
        );
        let o = t.apply(Point::new(10.0, 20.0));
        assert!((o.x - 5.0).abs() < 1e-5 && (o.y - 6.0).abs() < 1e-5);
        // Mirrored: a point to the image right lands on the patch left.
        let r = t.apply(Point::new(11.0, 20.0));
        assert!((r.x - 3.0).abs() < 1e-5);
    }
}

/// Synthetic faces and meshes for the unit tests of the heuristics.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::face_frame;
    use crate::mesh::idx::FACE_OVAL;
    use facelens_imaging::Rgb;

    /// Eye and oval points: (index, x, y) in face units (eye distance 1, origin between the
    /// eyes, y down).
    const POINTS: &[(usize, f32, f32)] = &[
        (33, -0.75, 0.0),
        (133, -0.25, 0.0),
        (159, -0.5, -0.12),
        (145, -0.5, 0.12),
        (160, -0.6, -0.1),
        (144, -0.6, 0.1),
        (158, -0.4, -0.1),
        (153, -0.4, 0.1),
        (263, 0.75, 0.0),
        (362, 0.25, 0.0),
        (386, 0.5, -0.12),
        (374, 0.5, 0.12),
        (387, 0.6, -0.1),
        (373, 0.6, 0.1),
        (385, 0.4, -0.1),
        (380, 0.4, 0.1),
        (61, -0.4, 0.95),
        (291, 0.4, 0.95),
        (70, -0.8, -0.35),
        (300, 0.8, -0.35),
        (105, -0.5, -0.38),
        (334, 0.5, -0.38),
        (107, -0.2, -0.35),
        (336, 0.2, -0.35),
        (98, -0.15, 0.55),
        (327, 0.15, 0.55),
        (129, -0.18, 0.45),
        (358, 0.18, 0.45),
        (2, 0.0, 0.6),
        (1, 0.0, 0.5),
    ];

    /// Left/right swaps under a horizontal flip (eyes; the oval is handled by its order).
    const SWAP: &[(usize, usize)] = &[
        (33, 263),
        (133, 362),
        (159, 386),
        (145, 374),
        (160, 387),
        (144, 373),
        (158, 385),
        (153, 380),
        (61, 291),
        (70, 300),
        (105, 334),
        (107, 336),
        (98, 327),
        (129, 358),
    ];

    /// A frontal synthetic mesh centred (between the eyes) on `(cx, cy)` with eye distance
    /// `iod` pixels.
    pub fn synthetic_mesh(cx: f32, cy: f32, iod: f32) -> Vec<[f32; 3]> {
        let mut u = vec![[0.0f32, 0.3, 0.0]; 468];
        for (k, &i) in FACE_OVAL.iter().enumerate() {
            let th = (-90.0 + 10.0 * k as f32).to_radians();
            u[i] = [1.0 * th.cos(), 0.3 + 1.3 * th.sin(), 0.2];
        }
        for &(i, x, y) in POINTS {
            u[i] = [x, y, 0.0];
        }
        u[1][2] = -0.3;
        u.iter()
            .map(|p| [cx + p[0] * iod, cy + p[1] * iod, p[2] * iod])
            .collect()
    }

    /// The mesh of the horizontally flipped image of width `w`.
    pub fn mirror_mesh(mesh: &[[f32; 3]], w: f32) -> Vec<[f32; 3]> {
        let mut out: Vec<[f32; 3]> = mesh.iter().map(|p| [w - p[0], p[1], p[2]]).collect();
        for &(a, b) in SWAP {
            out.swap(a, b);
        }
        let n = FACE_OVAL.len();
        for k in 1..n / 2 {
            out.swap(FACE_OVAL[k], FACE_OVAL[n - k]);
        }
        out
    }

    /// Face-frame coordinates of pixel `(x, y)`.
    fn to_units(mesh: &[[f32; 3]], x: f32, y: f32) -> Option<(f32, f32)> {
        let (o, ex, ey, d) = face_frame(mesh)?;
        let (dx, dy) = (x - o.x, y - o.y);
        Some(((dx * ex.x + dy * ex.y) / d, (dx * ey.x + dy * ey.y) / d))
    }

    /// Paint a rectangle given in face units.
    pub fn paint_rect_units(img: &mut Rgb, mesh: &[[f32; 3]], r: (f32, f32, f32, f32), c: [u8; 3]) {
        let (w, h) = img.dimensions();
        for y in 0..h {
            for x in 0..w {
                if let Some((u, v)) = to_units(mesh, x as f32 + 0.5, y as f32 + 0.5)
                    && u >= r.0
                    && u <= r.2
                    && v >= r.1
                    && v <= r.3
                {
                    img.put_pixel(x, y, facelens_imaging::image::Rgb(c));
                }
            }
        }
    }

    /// A drawn face on `mesh`: skin with mild texture, brows, and each eye open (white sclera,
    /// dark iris) or closed (a dark lash line). Symmetric under a horizontal flip.
    pub fn synthetic_face(size: u32, mesh: &[[f32; 3]], right_open: bool, left_open: bool) -> Rgb {
        let mut img = Rgb::new(size, size);
        for y in 0..size {
            for x in 0..size {
                let xm = x.min(size - 1 - x);
                let n = ((xm * 7 + y * 13) % 9) as i32 - 4;
                let c = |v: i32| (v + n).clamp(0, 255) as u8;
                img.put_pixel(x, y, facelens_imaging::image::Rgb([c(190), c(150), c(130)]));
            }
        }
        for y in 0..size {
            for x in 0..size {
                let Some((u, v)) = to_units(mesh, x as f32 + 0.5, y as f32 + 0.5) else {
                    continue;
                };
                // Brows.
                if u.abs() > 0.2 && u.abs() < 0.8 && (-0.42..-0.32).contains(&v) {
                    img.put_pixel(x, y, facelens_imaging::image::Rgb([70, 50, 40]));
                }
                for (side, open) in [(-0.5f32, right_open), (0.5, left_open)] {
                    let du = (u - side) / 0.25;
                    let dv = v / 0.12;
                    if open {
                        let r2 = du * du + dv * dv;
                        if r2 <= 1.0 {
                            let iris = ((u - side) / 0.09).powi(2) + (v / 0.09).powi(2) <= 1.0;
                            let c = if iris { [40, 30, 30] } else { [235, 235, 230] };
                            img.put_pixel(x, y, facelens_imaging::image::Rgb(c));
                        }
                    } else if du.abs() <= 1.0 && v.abs() < 0.025 {
                        img.put_pixel(x, y, facelens_imaging::image::Rgb([60, 40, 40]));
                    }
                }
            }
        }
        img
    }
}
