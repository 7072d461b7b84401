//! The contract's response shape (Juhe faceDetect), built from a [`Face`].
//!
//! Field names and value sets follow ../shared/spec/API.md exactly. Facelens adds Baidu's extra
//! per-face fields (`location`, `angle`, `landmark`, `quality`) beside them: Juhe clients ignore
//! unknown fields, and users get the geometry the contract leaves out. Fields whose attribute
//! is not computed (or switched off by the operator) are omitted, never invented.

use crate::error::{ErrorCode, FaceError};
use crate::types::Face;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// `{"reason", "result", "error_code"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<T: Serialize> {
    pub reason: String,
    pub result: Option<T>,
    pub error_code: u32,
    /// The legacy `resultcode`, only when the operator enables it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resultcode: Option<String>,
}

impl<T: Serialize> Envelope<T> {
    pub fn success(result: T) -> Self {
        Self {
            reason: "success".into(),
            result: Some(result),
            error_code: 0,
            resultcode: None,
        }
    }

    pub fn error(code: ErrorCode) -> Self {
        Self {
            reason: code.message().into(),
            result: None,
            error_code: code.code(),
            resultcode: None,
        }
    }

    /// Add the legacy `resultcode` ("200" on success, the legacy number on system errors).
    pub fn with_legacy(mut self) -> Self {
        self.resultcode = Some(
            match ErrorCode::from_code(self.error_code).and_then(|c| c.legacy()) {
                Some(l) => l.to_string(),
                None if self.error_code == 0 => "200".into(),
                None => self.error_code.to_string(),
            },
        );
        self
    }
}

impl<T: Serialize> From<&FaceError> for Envelope<T> {
    fn from(e: &FaceError) -> Self {
        Envelope::error(e.code)
    }
}

/// `result` of a successful call.
#[derive(Debug, Clone, Serialize)]
pub struct DetectResult {
    pub face_num: usize,
    pub face_list: Vec<JuheFace>,
}

/// Baidu's `location`.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub rotation: i32,
}

/// Baidu's `angle`.
#[derive(Debug, Clone, Serialize)]
pub struct Angle {
    pub yaw: f64,
    pub pitch: f64,
    pub roll: f64,
}

/// A label with its probability, rounded for the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Label {
    #[serde(rename = "type")]
    pub kind: String,
    pub probability: f64,
}

/// Per-eye openness, rounded for the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Eyes {
    pub left_eye: f64,
    pub right_eye: f64,
}

/// A landmark, rounded for the wire.
#[derive(Debug, Clone, Serialize)]
pub struct XY {
    pub x: f64,
    pub y: f64,
}

/// Baidu's `quality.occlusion`.
#[derive(Debug, Clone, Serialize)]
pub struct OcclusionOut {
    pub left_eye: f64,
    pub right_eye: f64,
    pub nose: f64,
    pub mouth: f64,
    pub left_cheek: f64,
    pub right_cheek: f64,
    pub chin_contour: f64,
}

/// Baidu's `quality`.
#[derive(Debug, Clone, Serialize)]
pub struct QualityOut {
    pub blur: f64,
    pub illumination: f64,
    pub completeness: f64,
    pub occlusion: OcclusionOut,
}

/// One face in the contract's shape (plus Baidu's geometry fields).
#[derive(Debug, Clone, Serialize)]
pub struct JuheFace {
    pub token_id: String,
    pub face_probability: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beauty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_shape: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glasses: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eye_status: Option<Eyes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_type: Option<Label>,
    pub location: Location,
    pub angle: Angle,
    pub landmark: Vec<XY>,
    pub quality: QualityOut,
}

/// Round in f64 so the JSON shows `136.63`, not the widened f32 `136.6300048828125`.
fn r2(v: f32) -> f64 {
    (v as f64 * 100.0).round() / 100.0
}

fn r4(v: f32) -> f64 {
    (v as f64 * 10_000.0).round() / 10_000.0
}

fn round_label(l: &Option<crate::types::Labelled>) -> Option<Label> {
    l.as_ref().map(|l| Label {
        kind: l.kind.clone(),
        probability: r4(l.probability),
    })
}

impl JuheFace {
    pub fn from_face(face: &Face, token_id: String) -> Self {
        let a = &face.attributes;
        let q = &face.quality;
        Self {
            token_id,
            face_probability: r4(face.score),
            age: a.age.map(|v| v.round().max(0.0) as u32),
            beauty: a.beauty.map(r2),
            expression: round_label(&a.expression),
            face_shape: round_label(&a.face_shape),
            gender: round_label(&a.gender),
            glasses: round_label(&a.glasses),
            eye_status: a.eye_status.map(|e| Eyes {
                left_eye: r4(e.left_eye),
                right_eye: r4(e.right_eye),
            }),
            emotion: round_label(&a.emotion),
            race: round_label(&a.race),
            face_type: round_label(&a.face_type),
            location: Location {
                left: r2(face.bbox.x1),
                top: r2(face.bbox.y1),
                width: r2(face.bbox.width()),
                height: r2(face.bbox.height()),
                rotation: face.rotation.round() as i32,
            },
            angle: Angle {
                yaw: r2(face.pose.yaw),
                pitch: r2(face.pose.pitch),
                roll: r2(face.pose.roll),
            },
            landmark: face
                .landmarks
                .iter()
                .map(|p| XY {
                    x: r2(p.x),
                    y: r2(p.y),
                })
                .collect(),
            quality: QualityOut {
                blur: r4(q.blur),
                illumination: r2(q.illumination),
                completeness: r4(q.completeness),
                occlusion: OcclusionOut {
                    left_eye: r4(q.occlusion.left_eye),
                    right_eye: r4(q.occlusion.right_eye),
                    nose: r4(q.occlusion.nose),
                    mouth: r4(q.occlusion.mouth),
                    left_cheek: r4(q.occlusion.left_cheek),
                    right_cheek: r4(q.occlusion.right_cheek),
                    chin_contour: r4(q.occlusion.chin_contour),
                },
            },
        }
    }
}

/// Content-addressed token for one face of one image: the same face in the same image always
/// gets the same token (as upstream does), different images or faces practically never collide.
/// 32 lowercase hex characters, like the contract's sample.
pub fn token_id(image_bytes: &[u8], face: &Face) -> String {
    let mut h = Sha256::new();
    h.update(b"facelens-token-v1");
    h.update(Sha256::digest(image_bytes));
    // Whole-pixel box: stable across backends whose floats differ in the last bits.
    for v in [face.bbox.x1, face.bbox.y1, face.bbox.x2, face.bbox.y2] {
        h.update((v.round() as i64).to_le_bytes());
    }
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Point, Rect};
    use crate::types::{Attributes, Pose, Quality};

    fn face(x: f32) -> Face {
        Face {
            bbox: Rect::new(x, 10.0, x + 50.0, 70.0),
            rotation: 3.4,
            score: 0.987_654,
            landmarks: [Point::new(1.0, 2.0); 5],
            mesh: None,
            mesh_score: None,
            pose: Pose::default(),
            quality: Quality::default(),
            attributes: Attributes::default(),
        }
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a = token_id(b"img", &face(10.0));
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(a, token_id(b"img", &face(10.2)));
        assert_ne!(a, token_id(b"img", &face(20.0)));
        assert_ne!(a, token_id(b"img2", &face(10.0)));
    }

    #[test]
    fn envelope_shapes() {
        let ok = serde_json::to_value(Envelope::success(DetectResult {
            face_num: 1,
            face_list: vec![JuheFace::from_face(&face(0.0), "t".into())],
        }))
        .expect("json");
        assert_eq!(ok["error_code"], 0);
        assert_eq!(ok["reason"], "success");
        assert_eq!(ok["result"]["face_num"], 1);
        let f = &ok["result"]["face_list"][0];
        assert_eq!(f["face_probability"], serde_json::json!(0.9877));
        assert!(
            serde_json::to_string(&ok)
                .expect("text")
                .contains("\"face_probability\":0.9877,")
        );
        assert_eq!(f["location"]["rotation"], 3);
        assert!(f.get("age").is_none(), "uncomputed attributes are omitted");
        let err =
            serde_json::to_value(Envelope::<DetectResult>::error(ErrorCode::NoFace).with_legacy())
                .expect("json");
        assert_eq!(err["error_code"], 200216);
        assert!(err["result"].is_null());
        assert_eq!(err["reason"], "图片中没有检测到人脸");
        let sys = serde_json::to_value(
            Envelope::<DetectResult>::error(ErrorCode::UnknownKey).with_legacy(),
        )
        .expect("json");
        assert_eq!(sys["resultcode"], "101");
    }
}
