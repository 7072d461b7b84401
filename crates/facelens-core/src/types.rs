//! What the pipeline says about a face, in the shape the native API serialises.
//!
//! Coordinates are pixels of the *upright* image (after EXIF orientation). The five landmarks
//! follow the RetinaFace order, named from the viewer's side: the eye on the image's left,
//! the eye on the image's right, nose tip, mouth corner on the left, mouth corner on the right.
//! The contract's per-eye fields (`left_eye`, `right_eye`) are the *subject's* eyes, like Baidu:
//! the subject's left eye appears on the image's right.

use crate::geometry::{Point, Rect};
use serde::{Deserialize, Serialize};

/// Head pose in degrees. Yaw > 0: the face turns towards the image's right; pitch > 0: the
/// face looks up; roll > 0: the head tilts clockwise in the image (right eye lower).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pose {
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// Per-region occlusion, 0 (visible) .. 1 (fully occluded), Baidu's regions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Occlusion {
    pub left_eye: f32,
    pub right_eye: f32,
    pub nose: f32,
    pub mouth: f32,
    pub left_cheek: f32,
    pub right_cheek: f32,
    pub chin_contour: f32,
}

/// Image quality of the face region.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Quality {
    /// 0 (sharp) .. 1 (very blurred).
    pub blur: f32,
    /// Mean luma of the face, 0..255 (Baidu's scale).
    pub illumination: f32,
    /// 1 when the whole face box lies inside the image, else the fraction that does.
    pub completeness: f32,
    pub occlusion: Occlusion,
}

/// A label with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    #[serde(rename = "type")]
    pub kind: String,
    pub probability: f32,
}

impl Labelled {
    pub fn new(kind: impl Into<String>, probability: f32) -> Self {
        Self {
            kind: kind.into(),
            probability,
        }
    }
}

/// Eye openness per subject eye, 0 (closed) .. 1 (open).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EyeStatus {
    pub left_eye: f32,
    pub right_eye: f32,
}

/// The contract's per-face attributes. Each is optional: an operator may switch sensitive
/// attributes off, and a field is omitted rather than invented when it is not computed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beauty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_shape: Option<Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glasses: Option<Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eye_status: Option<EyeStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race: Option<Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_type: Option<Labelled>,
}

/// Everything known about one detected face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Face box in upright-image pixels.
    pub bbox: Rect,
    /// In-plane rotation of the face in degrees (the eye line's angle; clockwise positive).
    pub rotation: f32,
    /// Detector confidence, 0..1.
    pub score: f32,
    /// Five landmarks, see the module docs for their order.
    pub landmarks: [Point; 5],
    /// The 468-point face mesh (x, y in image pixels, z relative depth in pixels), when run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<Vec<[f32; 3]>>,
    /// Face-presence confidence of the mesh model, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_score: Option<f32>,
    pub pose: Pose,
    pub quality: Quality,
    #[serde(default)]
    pub attributes: Attributes,
}

/// Per-stage wall time of one analysis, in milliseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Timings {
    pub decode_ms: f32,
    pub detect_ms: f32,
    pub landmarks_ms: f32,
    pub attributes_ms: f32,
    pub total_ms: f32,
}

/// The result of analysing one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Upright image size (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation tag that was applied (1 = none).
    pub orientation: u8,
    /// Faces, largest box first.
    pub faces: Vec<Face>,
    pub timings: Timings,
}
