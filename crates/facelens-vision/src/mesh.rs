//! The 468-point face mesh (MediaPipe face landmark model) and the head pose read from it.
//!
//! The mesh model expects an upright face in the middle of a 192×192 crop with about 25 % margin
//! on each side. We build that crop from the detector's box and eye landmarks with one
//! similarity transform, so rotated faces arrive upright and the mesh comes back in image
//! coordinates through the inverse transform. Everything geometric downstream (pose, eyes,
//! mouth, face shape, occlusion regions) is read from the mesh rather than from the five
//! detector landmarks, because the mesh is denser and far more stable.

use crate::detect::Detection;
use crate::heads::sigmoid;
use facelens_core::types::Pose;
use facelens_core::{Affine, Point};
use facelens_imaging::{Rgb, warp_affine_f32};
use facelens_infer::{InferError, Model, Tensor};
use std::sync::Arc;

/// Side of the model's square input.
pub const MESH_INPUT: u32 = 192;
/// Crop side relative to the detector box's longer side.
pub const MESH_CROP_SCALE: f32 = 1.6;

/// Well-known mesh indices (MediaPipe canonical topology).
pub mod idx {
    /// Forehead top centre.
    pub const FOREHEAD: usize = 10;
    /// Chin bottom centre.
    pub const CHIN: usize = 152;
    pub const NOSE_TIP: usize = 1;
    /// Subject's right eye (image left): outer and inner corners, upper and lower lid.
    pub const R_EYE_OUTER: usize = 33;
    pub const R_EYE_INNER: usize = 133;
    pub const R_EYE_TOP: usize = 159;
    pub const R_EYE_BOTTOM: usize = 145;
    /// Subject's left eye (image right).
    pub const L_EYE_OUTER: usize = 263;
    pub const L_EYE_INNER: usize = 362;
    pub const L_EYE_TOP: usize = 386;
    pub const L_EYE_BOTTOM: usize = 374;
    pub const MOUTH_LEFT: usize = 61;
    pub const MOUTH_RIGHT: usize = 291;
    pub const LIP_TOP_INNER: usize = 13;
    pub const LIP_BOTTOM_INNER: usize = 14;
    /// Cheek extremes (face width).
    pub const CHEEK_R: usize = 234;
    pub const CHEEK_L: usize = 454;
    /// The face silhouette, clockwise from the forehead.
    pub const FACE_OVAL: [usize; 36] = [
        10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
        152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
    ];
}

/// A mesh in image coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshResult {
    /// 468 points: x, y in image pixels; z relative depth in image pixels (smaller = closer).
    pub points: Vec<[f32; 3]>,
    /// Face-presence probability from the model's flag output.
    pub score: f32,
    /// The image → crop transform that was used.
    pub crop: Affine,
}

impl MeshResult {
    pub fn p(&self, i: usize) -> Point {
        let q = self.points[i];
        Point::new(q[0], q[1])
    }

    pub fn p3(&self, i: usize) -> [f32; 3] {
        self.points[i]
    }
}

/// The face mesh model.
pub struct FaceMesh {
    model: Arc<dyn Model>,
    points: usize,
    flag: usize,
}

/// Pitch that the raw mesh geometry reports for frontal faces (the forehead→chin line of a real
/// face is not perpendicular to the face normal); subtracted so that a frontal face reads about 0.
/// Measured as the median raw pitch over 300 aligned, mostly frontal UTKFace dev crops (-7.7°);
/// see docs/accuracy.md.
pub const PITCH_OFFSET_DEG: f32 = -7.5;

impl FaceMesh {
    pub fn new(model: Arc<dyn Model>) -> Result<Self, InferError> {
        let names = model.output_names();
        // The landmark output has 1404 values; the flag output 1. Find them by name, falling
        // back to graph order.
        let points = model.output_index("conv2d_21").unwrap_or(0);
        let flag = model
            .output_index("conv2d_31")
            .unwrap_or(1.min(names.len().saturating_sub(1)));
        Ok(Self {
            model,
            points,
            flag,
        })
    }

    /// The image → crop transform for a detection.
    pub fn crop_for(det: &Detection) -> Affine {
        let [le, re, ..] = det.landmarks;
        let angle = (re.y - le.y).atan2(re.x - le.x);
        let side = MESH_CROP_SCALE * det.bbox.width().max(det.bbox.height());
        Affine::crop_to(det.bbox.center(), side, angle, MESH_INPUT as f32)
    }

    /// Run the mesh for one detection.
    pub fn run(&self, img: &Rgb, det: &Detection) -> Result<MeshResult, InferError> {
        let crop = Self::crop_for(det);
        self.run_crop(img, crop)
    }

    /// Run the mesh on the crop given by `crop` (image → crop transform).
    pub fn run_crop(&self, img: &Rgb, crop: Affine) -> Result<MeshResult, InferError> {
        let mut data = warp_affine_f32(img, &crop, MESH_INPUT, MESH_INPUT);
        for v in &mut data {
            *v /= 255.0;
        }
        let n = MESH_INPUT as usize;
        let input = Tensor {
            shape: vec![1, n, n, 3],
            data,
        };
        let out = self.model.run(&input)?;
        let bad = |r: &str| InferError::Run {
            name: self.model.name().to_string(),
            reason: r.to_string(),
        };
        let pts = out
            .get(self.points)
            .ok_or_else(|| bad("missing landmark output"))?;
        if pts.len() != 468 * 3 {
            return Err(bad("landmark output is not 468x3"));
        }
        let flag = out
            .get(self.flag)
            .and_then(|t| t.data.first().copied())
            .ok_or_else(|| bad("missing face flag output"))?;
        let inv = crop.invert().ok_or_else(|| bad("degenerate crop"))?;
        let zscale = 1.0 / crop.scale().max(1e-6);
        let points = pts
            .data
            .chunks_exact(3)
            .map(|c| {
                let p = inv.apply(Point::new(c[0], c[1]));
                [p.x, p.y, c[2] * zscale]
            })
            .collect();
        Ok(MeshResult {
            points,
            score: sigmoid(flag),
            crop,
        })
    }
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt().max(1e-9);
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Head pose from the mesh: a face frame built from the eye corners (x axis) and the
/// forehead→chin line (y axis); its normal gives yaw and pitch, the eye line gives roll.
pub fn head_pose(mesh: &MeshResult) -> Pose {
    let xa = normalize(sub(mesh.p3(idx::L_EYE_OUTER), mesh.p3(idx::R_EYE_OUTER)));
    let ya = normalize(sub(mesh.p3(idx::CHIN), mesh.p3(idx::FOREHEAD)));
    // x right, y down: x × y points away from the viewer for a frontal face.
    let za = normalize(cross(xa, ya));
    let deg = 180.0 / std::f32::consts::PI;
    let yaw = -za[0].clamp(-1.0, 1.0).asin() * deg;
    let pitch = za[1].clamp(-1.0, 1.0).asin() * deg - PITCH_OFFSET_DEG;
    let roll = xa[1].atan2(xa[0]) * deg;
    Pose { yaw, pitch, roll }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic_mesh(yaw_deg: f32, pitch_deg: f32, roll_deg: f32) -> MeshResult {
        // A minimal "face": the points used by head_pose on a frontal template, rotated.
        let mut pts = vec![[0.0f32; 3]; 468];
        pts[idx::R_EYE_OUTER] = [-30.0, 0.0, 0.0];
        pts[idx::L_EYE_OUTER] = [30.0, 0.0, 0.0];
        pts[idx::FOREHEAD] = [0.0, -40.0, 0.0];
        pts[idx::CHIN] = [0.0, 60.0, 0.0];
        let (y, p, r) = (
            yaw_deg.to_radians(),
            pitch_deg.to_radians(),
            roll_deg.to_radians(),
        );
        for q in pts.iter_mut() {
            // pitch about x: looking up moves the chin towards the viewer (z smaller)
            let [x0, y0, z0] = *q;
            let (y1, z1) = (y0 * p.cos() + z0 * p.sin(), -y0 * p.sin() + z0 * p.cos());
            // yaw about y: turning towards the image's right moves the left side back
            let (x2, z2) = (x0 * y.cos() - z1 * y.sin(), x0 * y.sin() + z1 * y.cos());
            // roll in the image plane, clockwise positive with y down
            let (x3, y3) = (x2 * r.cos() - y1 * r.sin(), x2 * r.sin() + y1 * r.cos());
            *q = [x3, y3, z2];
        }
        MeshResult {
            points: pts,
            score: 1.0,
            crop: Affine::IDENTITY,
        }
    }

    #[test]
    fn pose_signs_and_magnitudes() {
        let p = head_pose(&synthetic_mesh(0.0, 0.0, 0.0));
        assert!(
            p.yaw.abs() < 1e-3 && (p.pitch + PITCH_OFFSET_DEG).abs() < 1e-3 && p.roll.abs() < 1e-3,
            "{p:?}"
        );
        let p = head_pose(&synthetic_mesh(0.0, 0.0, 20.0));
        assert!((p.roll - 20.0).abs() < 0.5, "{p:?}");
        let p = head_pose(&synthetic_mesh(30.0, 0.0, 0.0));
        assert!(
            (p.yaw - 30.0).abs() < 0.5 && (p.pitch + PITCH_OFFSET_DEG).abs() < 0.5,
            "{p:?}"
        );
        let p = head_pose(&synthetic_mesh(0.0, 25.0, 0.0));
        assert!(
            (p.pitch + PITCH_OFFSET_DEG - 25.0).abs() < 0.5 && p.yaw.abs() < 0.5,
            "{p:?}"
        );
    }
}
