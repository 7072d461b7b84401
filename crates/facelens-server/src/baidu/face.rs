//! One face in Baidu's v3 shape, with only the fields the request's `face_field` asked for.
//!
//! Baidu answers every face with its token, box, probability and angle, and adds an attribute
//! only when `face_field` names it; clients index the answer by name, so an attribute that was
//! not asked for, or that Facelens cannot compute (`mask`, `spoofing`, `landmark150`), is left
//! out rather than filled with a guess. Values come from the same [`Face`] the Juhe endpoint
//! shapes, rounded the same way.

use facelens_core::geometry::Point;
use facelens_core::juhe::{Angle, Eyes, Label, Location, OcclusionOut, XY};
use facelens_core::types::{Face, Labelled};
use serde::Serialize;

/// What `face_field` asked for (unknown names are ignored, as documented in docs/baidu.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaceFields {
    pub age: bool,
    pub beauty: bool,
    pub expression: bool,
    pub face_shape: bool,
    pub gender: bool,
    pub glasses: bool,
    pub landmark: bool,
    pub landmark72: bool,
    pub quality: bool,
    pub eye_status: bool,
    pub emotion: bool,
    pub race: bool,
    pub face_type: bool,
}

impl FaceFields {
    /// Parse Baidu's comma-separated list. `Err` only for a value that cannot be a list of
    /// names at all (Baidu's 222017); names Facelens does not know are skipped.
    pub fn parse(list: Option<&str>) -> Result<Self, String> {
        let mut f = Self::default();
        let Some(list) = list else { return Ok(f) };
        if list.len() > 1000
            || !list
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b' '))
        {
            return Err(format!("face_field={list:?} is not a comma-separated list"));
        }
        for name in list.split(',').map(str::trim) {
            match name.to_ascii_lowercase().as_str() {
                "age" => f.age = true,
                "beauty" => f.beauty = true,
                "expression" => f.expression = true,
                "face_shape" | "faceshape" => f.face_shape = true,
                "gender" => f.gender = true,
                "glasses" => f.glasses = true,
                // Baidu returns the 4 points and the 72 points for `landmark`.
                "landmark" => {
                    f.landmark = true;
                    f.landmark72 = true;
                }
                "landmark72" => f.landmark72 = true,
                "quality" | "qualities" => f.quality = true,
                "eye_status" => f.eye_status = true,
                "emotion" => f.emotion = true,
                "race" => f.race = true,
                "face_type" | "facetype" => f.face_type = true,
                // landmark150, mask, spoofing, location, ...: not computed (see docs/baidu.md).
                _ => {}
            }
        }
        Ok(f)
    }
}

/// Baidu's `quality`.
#[derive(Debug, Clone, Serialize)]
pub struct BaiduQuality {
    pub occlusion: OcclusionOut,
    pub blur: f64,
    pub illumination: f64,
    /// 0 or 1, Baidu's scale: 1 when the whole face lies inside the image.
    pub completeness: u8,
}

/// One face of `result.face_list`, fields in Baidu's order.
#[derive(Debug, Clone, Serialize)]
pub struct BaiduFace {
    pub face_token: String,
    pub location: Location,
    pub face_probability: f64,
    pub angle: Angle,
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
    pub landmark: Option<Vec<XY>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmark72: Option<Vec<XY>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<BaiduQuality>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eye_status: Option<Eyes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_type: Option<Label>,
}

fn r2(v: f32) -> f64 {
    (f64::from(v) * 100.0).round() / 100.0
}

fn r4(v: f32) -> f64 {
    (f64::from(v) * 10_000.0).round() / 10_000.0
}

fn xy(p: Point) -> XY {
    XY {
        x: r2(p.x),
        y: r2(p.y),
    }
}

fn label(l: &Option<Labelled>, wanted: bool) -> Option<Label> {
    l.as_ref().filter(|_| wanted).map(|l| Label {
        kind: l.kind.clone(),
        probability: r4(l.probability),
    })
}

impl BaiduFace {
    pub fn from_face(face: &Face, face_token: String, want: FaceFields) -> Self {
        let a = &face.attributes;
        let q = &face.quality;
        let [eye_l, eye_r, nose, mouth_l, mouth_r] = face.landmarks;
        Self {
            face_token,
            location: Location {
                left: r2(face.bbox.x1),
                top: r2(face.bbox.y1),
                width: r2(face.bbox.width()),
                height: r2(face.bbox.height()),
                rotation: face.rotation.round() as i32,
            },
            face_probability: r4(face.score),
            angle: Angle {
                yaw: r2(face.pose.yaw),
                pitch: r2(face.pose.pitch),
                roll: r2(face.pose.roll),
            },
            age: a
                .age
                .filter(|_| want.age)
                .map(|v| v.round().max(0.0) as u32),
            beauty: a.beauty.filter(|_| want.beauty).map(r2),
            expression: label(&a.expression, want.expression),
            face_shape: label(&a.face_shape, want.face_shape),
            gender: label(&a.gender, want.gender),
            glasses: label(&a.glasses, want.glasses),
            // Baidu's four points: eye centres (image-left first), nose tip, mouth centre.
            landmark: want.landmark.then(|| {
                let mouth =
                    Point::new((mouth_l.x + mouth_r.x) * 0.5, (mouth_l.y + mouth_r.y) * 0.5);
                vec![xy(eye_l), xy(eye_r), xy(nose), xy(mouth)]
            }),
            landmark72: if want.landmark72 {
                face.mesh.as_deref().and_then(landmark72)
            } else {
                None
            },
            quality: want.quality.then(|| BaiduQuality {
                occlusion: OcclusionOut {
                    left_eye: r4(q.occlusion.left_eye),
                    right_eye: r4(q.occlusion.right_eye),
                    nose: r4(q.occlusion.nose),
                    mouth: r4(q.occlusion.mouth),
                    left_cheek: r4(q.occlusion.left_cheek),
                    right_cheek: r4(q.occlusion.right_cheek),
                    chin_contour: r4(q.occlusion.chin_contour),
                },
                blur: r4(q.blur),
                illumination: r2(q.illumination),
                completeness: u8::from(q.completeness >= 0.999),
            }),
            eye_status: a.eye_status.filter(|_| want.eye_status).map(|e| Eyes {
                left_eye: r4(e.left_eye),
                right_eye: r4(e.right_eye),
            }),
            emotion: label(&a.emotion, want.emotion),
            race: label(&a.race, want.race),
            face_type: label(&a.face_type, want.face_type),
        }
    }
}

/// One of Baidu's 72 points: a mesh vertex, or the mean of several (eye centres).
enum Src {
    At(usize),
    Mean(&'static [usize]),
}
use Src::{At, Mean};

/// Baidu's 72-point layout from the 468-point MediaPipe mesh (docs/baidu.md has the table).
/// Regions and counts are Baidu's: 0-12 face contour (image-left temple, down to the chin at
/// 6, up to the image-right temple), 13-20 image-left eye and 21 its centre, 22-29 image-left
/// eyebrow, 30-37 image-right eye and 38 its centre, 39-46 image-right eyebrow, 47-57 nose,
/// 58-71 mouth. Within a region the points run from the image-left end along the upper edge
/// to the image-right end and back along the lower edge.
const LANDMARK72: [Src; 72] = [
    // 0-12 contour
    At(234),
    At(132),
    At(58),
    At(172),
    At(150),
    At(176),
    At(152),
    At(400),
    At(379),
    At(397),
    At(288),
    At(361),
    At(454),
    // 13-21 image-left eye, centre
    At(33),
    At(160),
    At(159),
    At(158),
    At(133),
    At(153),
    At(145),
    At(144),
    Mean(&[33, 133, 159, 145]),
    // 22-29 image-left eyebrow
    At(70),
    At(63),
    At(105),
    At(66),
    At(107),
    At(65),
    At(52),
    At(53),
    // 30-38 image-right eye, centre
    At(362),
    At(385),
    At(386),
    At(387),
    At(263),
    At(373),
    At(374),
    At(380),
    Mean(&[362, 263, 386, 374]),
    // 39-46 image-right eyebrow
    At(336),
    At(296),
    At(334),
    At(293),
    At(300),
    At(283),
    At(282),
    At(295),
    // 47-57 nose: bridge top to tip, then the base from image-left to image-right
    At(168),
    At(6),
    At(197),
    At(195),
    At(5),
    At(1),
    At(98),
    At(97),
    At(2),
    At(326),
    At(327),
    // 58-69 outer lip from the image-left corner over the upper lip and back under the lower;
    // 70-71 inner lip centres (upper, lower)
    At(61),
    At(40),
    At(37),
    At(0),
    At(267),
    At(270),
    At(291),
    At(321),
    At(314),
    At(17),
    At(84),
    At(91),
    At(13),
    At(14),
];

/// The 72 points, or `None` when the mesh is not the 468-point one.
pub fn landmark72(mesh: &[[f32; 3]]) -> Option<Vec<XY>> {
    if mesh.len() < 468 {
        return None;
    }
    let at = |i: usize| Point::new(mesh[i][0], mesh[i][1]);
    Some(
        LANDMARK72
            .iter()
            .map(|s| match s {
                At(i) => xy(at(*i)),
                Mean(ix) => {
                    let n = ix.len() as f32;
                    let (sx, sy) = ix
                        .iter()
                        .fold((0.0, 0.0), |(sx, sy), i| (sx + at(*i).x, sy + at(*i).y));
                    xy(Point::new(sx / n, sy / n))
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_field_lists() {
        let f = FaceFields::parse(Some("age, gender,landmark,mask,spoofing,location")).expect("ok");
        assert!(f.age && f.gender && f.landmark && f.landmark72);
        assert!(!f.beauty && !f.quality && !f.emotion);
        assert_eq!(FaceFields::parse(None).expect("ok"), FaceFields::default());
        assert!(FaceFields::parse(Some("age;beauty")).is_err());
        assert!(FaceFields::parse(Some("{\"age\":1}")).is_err());
        let only72 = FaceFields::parse(Some("landmark72")).expect("ok");
        assert!(only72.landmark72 && !only72.landmark);
    }

    #[test]
    fn landmark72_uses_distinct_mesh_points_in_range() {
        let mut seen = std::collections::HashSet::new();
        for s in &LANDMARK72 {
            if let At(i) = s {
                assert!(*i < 468);
                assert!(seen.insert(*i), "vertex {i} used twice");
            }
        }
        // A mesh whose vertex i sits at (i, 2i): points come back from the right vertices.
        let mesh: Vec<[f32; 3]> = (0..468).map(|i| [i as f32, 2.0 * i as f32, 0.0]).collect();
        let pts = landmark72(&mesh).expect("72 points");
        assert_eq!(pts.len(), 72);
        assert_eq!(pts[6].x, 152.0, "the chin is point 6");
        assert_eq!(pts[6].y, 304.0);
        assert_eq!(pts[21].x, (33.0 + 133.0 + 159.0 + 145.0) / 4.0);
        assert!(landmark72(&mesh[..10]).is_none());
    }
}
