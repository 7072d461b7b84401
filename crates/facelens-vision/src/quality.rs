//! Face image quality: blur, illumination, completeness and per-region occlusion.
//!
//! No model for these ships in any registry package, so all four are **heuristics** measured on
//! an upright face crop, documented with their behaviour in docs/accuracy.md:
//!
//! * blur — variance of the Laplacian of the grey face crop at a fixed size (sharp edges give a
//!   large variance), mapped logarithmically to 0 (sharp) .. 1 (very blurred);
//! * illumination — mean luma of the face region, 0..255 like Baidu's field;
//! * completeness — the share of the face box that lies inside the image;
//! * occlusion — for each of Baidu's seven regions, the share of pixels around the region's mesh
//!   points whose colour is far from the face's own skin colour (estimated robustly from the
//!   whole face), minus the share an unoccluded face shows there (eyes and mouth are never fully
//!   skin-coloured). A hand, a mask or sunglasses over a region drive it towards 1.

use crate::heads::sigmoid;
use crate::mesh::MeshResult;
use facelens_core::types::{Occlusion, Quality};
use facelens_core::{Affine, Point, Rect};
use facelens_imaging::{Rgb, luma_f32, warp_affine};

/// Side of the crop the measures are taken on.
const CROP: u32 = 128;

/// Laplacian variance below which a face counts as fully blurred, and above which as sharp.
const BLUR_VAR_BLURRED: f32 = 8.0;
const BLUR_VAR_SHARP: f32 = 400.0;

/// Measure quality of one face.
///
/// `completeness` comes from the detector, which sees the face box before it is clipped to the
/// image.
pub fn measure(
    img: &Rgb,
    bbox: &Rect,
    completeness: f32,
    mesh: Option<&MeshResult>,
    rotation_rad: f32,
) -> Quality {
    let (w, h) = img.dimensions();
    let side = bbox.width().max(bbox.height()).max(1.0);
    let t = Affine::crop_to(bbox.center(), side, rotation_rad, CROP as f32);
    let crop = warp_affine(img, &t, CROP, CROP);
    let grey: Vec<f32> = crop.pixels().map(|p| facelens_imaging::luma(p.0)).collect();
    // Only pixels that came from inside the image count (the warp fills outside with black).
    let valid = valid_mask(&t, w, h);
    let illumination = mean_masked(&grey, &valid);
    let blur = blur_score(&grey, &valid);
    let occlusion = mesh.map(|m| occlusion(img, m, bbox)).unwrap_or_default();
    Quality {
        blur,
        illumination,
        completeness,
        occlusion,
    }
}

fn valid_mask(t: &Affine, w: u32, h: u32) -> Vec<bool> {
    let inv = match t.invert() {
        Some(i) => i,
        None => return vec![false; (CROP * CROP) as usize],
    };
    let mut m = Vec::with_capacity((CROP * CROP) as usize);
    for y in 0..CROP {
        for x in 0..CROP {
            let p = inv.apply(Point::new(x as f32 + 0.5, y as f32 + 0.5));
            m.push(p.x >= 0.0 && p.y >= 0.0 && p.x < w as f32 && p.y < h as f32);
        }
    }
    m
}

fn mean_masked(v: &[f32], mask: &[bool]) -> f32 {
    let (mut s, mut n) = (0.0f64, 0usize);
    for (x, &m) in v.iter().zip(mask) {
        if m {
            s += *x as f64;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { (s / n as f64) as f32 }
}

/// Laplacian variance mapped to 0 (sharp) .. 1 (blurred).
pub fn blur_score(grey: &[f32], valid: &[bool]) -> f32 {
    let n = CROP as usize;
    let mut vals = Vec::with_capacity(n * n);
    for y in 1..n - 1 {
        for x in 1..n - 1 {
            let i = y * n + x;
            if !(valid[i] && valid[i - 1] && valid[i + 1] && valid[i - n] && valid[i + n]) {
                continue;
            }
            vals.push(grey[i - 1] + grey[i + 1] + grey[i - n] + grey[i + n] - 4.0 * grey[i]);
        }
    }
    if vals.len() < 16 {
        return 1.0;
    }
    let mean = vals.iter().sum::<f32>() / vals.len() as f32;
    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / vals.len() as f32;
    let lo = BLUR_VAR_BLURRED.ln();
    let hi = BLUR_VAR_SHARP.ln();
    (1.0 - (var.max(1e-3).ln() - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// Mesh points that define each occlusion region (subject's left = image right).
mod regions {
    pub const LEFT_EYE: &[usize] = &[263, 362, 386, 374, 387, 373, 385, 380];
    pub const RIGHT_EYE: &[usize] = &[33, 133, 159, 145, 160, 144, 158, 153];
    pub const NOSE: &[usize] = &[1, 4, 5, 195, 197, 98, 327];
    pub const MOUTH: &[usize] = &[13, 14, 61, 291, 0, 17, 78, 308];
    pub const LEFT_CHEEK: &[usize] = &[280, 425, 411, 352, 346];
    pub const RIGHT_CHEEK: &[usize] = &[50, 205, 187, 123, 117];
    pub const CHIN: &[usize] = &[152, 175, 199, 200, 148, 377];
}

/// Share of non-skin pixels an unoccluded face shows in each region (eyes: sclera, iris, lashes;
/// mouth: lips, teeth). Occlusion is the excess over this.
/// Smallest chroma distance (in Cb/Cr units) that counts as "not skin".
const SKIN_DISTANCE_FLOOR: f32 = 8.0;

/// Luma below this fraction of the skin's median luma counts as "not skin".
const DARK_FRACTION: f32 = 0.45;

const BASELINE: [f32; 7] = [0.55, 0.55, 0.15, 0.5, 0.1, 0.1, 0.15];

fn occlusion(img: &Rgb, mesh: &MeshResult, bbox: &Rect) -> Occlusion {
    let face_w = mesh
        .p(crate::mesh::idx::CHEEK_R)
        .dist(mesh.p(crate::mesh::idx::CHEEK_L))
        .max(bbox.width() * 0.5);
    let r = (face_w * 0.06).max(1.0);
    // Skin reference: median chroma over points spread across the face.
    let skin_pts: Vec<usize> = vec![151, 9, 8, 50, 280, 205, 425, 199, 4, 101, 330, 117, 346];
    let mut crs = Vec::new();
    let mut cbs = Vec::new();
    let mut ys = Vec::new();
    for &i in &skin_pts {
        sample_disk(img, mesh.p(i), r, |cr, cb, y| {
            crs.push(cr);
            cbs.push(cb);
            ys.push(y);
        });
    }
    if crs.is_empty() {
        return Occlusion::default();
    }
    let (mcr, mcb) = (median(&mut crs.clone()), median(&mut cbs.clone()));
    // How far skin strays from its own median on this face (lighting, make-up, compression):
    // the "far from skin" threshold adapts to it, with a floor for flat, evenly lit faces.
    let mut dev: Vec<f32> = crs
        .iter()
        .zip(&cbs)
        .map(|(cr, cb)| ((cr - mcr).powi(2) + (cb - mcb).powi(2)).sqrt())
        .collect();
    let threshold = (3.0 * 1.4826 * median(&mut dev)).max(SKIN_DISTANCE_FLOOR);
    // Dark occluders (sunglasses, shadows of a hand) are often colourless: much darker than the
    // face's skin also counts as "not skin".
    let dark = DARK_FRACTION * median(&mut ys);
    let region = |pts: &[usize], k: usize| -> f32 {
        let (mut far, mut n) = (0.0f32, 0usize);
        for &i in pts {
            sample_disk(img, mesh.p(i), r, |cr, cb, y| {
                n += 1;
                // Soft membership (a logistic ramp around each threshold) keeps the share
                // continuous in the pixel values.
                let chroma = ((cr - mcr).powi(2) + (cb - mcb).powi(2)).sqrt();
                let by_colour = sigmoid((chroma - threshold) / 2.0);
                let by_darkness = sigmoid((dark - y) / 4.0);
                far += by_colour.max(by_darkness);
            });
        }
        if n == 0 {
            // The region lies outside the image: fully occluded from the camera's view.
            return 1.0;
        }
        let share = far / n as f32;
        ((share - BASELINE[k]) / (1.0 - BASELINE[k])).clamp(0.0, 1.0)
    };
    Occlusion {
        left_eye: region(regions::LEFT_EYE, 0),
        right_eye: region(regions::RIGHT_EYE, 1),
        nose: region(regions::NOSE, 2),
        mouth: region(regions::MOUTH, 3),
        left_cheek: region(regions::LEFT_CHEEK, 4),
        right_cheek: region(regions::RIGHT_CHEEK, 5),
        chin_contour: region(regions::CHIN, 6),
    }
}

/// Sample a fixed pattern of 21 points inside the disk (a 5×5 grid without its corners) with
/// bilinear interpolation, so the result moves continuously with the mesh instead of jumping
/// when a centre crosses a pixel boundary. Points outside the image are skipped.
fn sample_disk(img: &Rgb, c: Point, r: f32, mut f: impl FnMut(f32, f32, f32)) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    for gy in -2i32..=2 {
        for gx in -2i32..=2 {
            if gx.abs() == 2 && gy.abs() == 2 {
                continue;
            }
            let x = c.x + gx as f32 * r * 0.5 - 0.5;
            let y = c.y + gy as f32 * r * 0.5 - 0.5;
            if x < 0.0 || y < 0.0 || x > w - 1.0 || y > h - 1.0 {
                continue;
            }
            let p = bilinear(img, x, y);
            let (yy, cb, cr) = ycbcr(p);
            f(cr, cb, yy);
        }
    }
}

fn bilinear(img: &Rgb, x: f32, y: f32) -> [f32; 3] {
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let x1 = (x0 + 1).min(img.width() - 1);
    let y1 = (y0 + 1).min(img.height() - 1);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let mut out = [0.0f32; 3];
    for (xx, yy, wgt) in [
        (x0, y0, (1.0 - fx) * (1.0 - fy)),
        (x1, y0, fx * (1.0 - fy)),
        (x0, y1, (1.0 - fx) * fy),
        (x1, y1, fx * fy),
    ] {
        let p = img.get_pixel(xx, yy).0;
        for ch in 0..3 {
            out[ch] += wgt * p[ch] as f32;
        }
    }
    out
}

fn ycbcr(p: [f32; 3]) -> (f32, f32, f32) {
    let [r, g, b] = p;
    let y = luma_f32([r, g, b]);
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    (y, cb, cr)
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_orders_sharp_before_smooth() {
        let n = CROP as usize;
        let valid = vec![true; n * n];
        let checker: Vec<f32> = (0..n * n)
            .map(|i| {
                if (i / n + i % n).is_multiple_of(2) {
                    0.0
                } else {
                    255.0
                }
            })
            .collect();
        let flat = vec![128.0; n * n];
        assert!(blur_score(&checker, &valid) < 0.01);
        assert!(blur_score(&flat, &valid) > 0.99);
    }

    #[test]
    fn completeness_and_illumination() {
        let img = Rgb::from_pixel(100, 100, facelens_imaging::image::Rgb([100, 100, 100]));
        let q = measure(&img, &Rect::new(50.0, 10.0, 100.0, 60.0), 0.5, None, 0.0);
        assert!((q.completeness - 0.5).abs() < 1e-6);
        assert!((q.illumination - 100.0).abs() < 1.0, "{}", q.illumination);
    }
}
