//! The contract's response shape (Juhe faceDetect), built from a [`Face`].
//!
//! Field names and value sets follow ../shared/spec/API.md exactly. Facelens adds Baidu's extra
//! per-face fields (`location`, `angle`, `landmark`, `quality`) beside them: Juhe clients ignore
//! unknown fields, and users get the geometry the contract leaves out. Fields whose attribute
//! is not computed (or switched off by the operator) are omitted, never invented.

use crate::error::{ErrorCode, FaceError};
use crate::geometry::Point;
use crate::types::{Face, Quality};
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
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub rotation: i32,
}

/// Baidu's `angle`.
#[derive(Debug, Clone, Serialize)]
pub struct Angle {
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// One face in the contract's shape (plus Baidu's geometry fields).
#[derive(Debug, Clone, Serialize)]
pub struct JuheFace {
    pub token_id: String,
    pub face_probability: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beauty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<crate::types::Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_shape: Option<crate::types::Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<crate::types::Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glasses: Option<crate::types::Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eye_status: Option<crate::types::EyeStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<crate::types::Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race: Option<crate::types::Labelled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_type: Option<crate::types::Labelled>,
    pub location: Location,
    pub angle: Angle,
    pub landmark: Vec<Point>,
    pub quality: Quality,
}

fn r2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

fn r4(v: f32) -> f32 {
    (v * 10_000.0).round() / 10_000.0
}

fn round_label(l: &Option<crate::types::Labelled>) -> Option<crate::types::Labelled> {
    l.as_ref()
        .map(|l| crate::types::Labelled::new(l.kind.clone(), r4(l.probability)))
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
            eye_status: a.eye_status.map(|e| crate::types::EyeStatus {
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
                .map(|p| Point::new(r2(p.x), r2(p.y)))
                .collect(),
            quality: Quality {
                blur: r4(q.blur),
                illumination: r2(q.illumination),
                completeness: r4(q.completeness),
                occlusion: crate::types::Occlusion {
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
    use crate::geometry::Rect;
    use crate::types::{Attributes, Pose};

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
        assert!((f["face_probability"].as_f64().unwrap_or(0.0) - 0.9877).abs() < 1e-6);
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
