//! Face shape (heuristic): `square`, `triangle`, `oval`, `heart` or `round`.
//!
//! No labelled face-shape data exists for us, so this is a documented deterministic rule over
//! mesh geometry, not a learned classifier. The mesh is first **frontalised**: its 3-D points are
//! expressed in the face's own frame (x along the outer eye corners, y from forehead to chin made
//! perpendicular to x, z their cross product), so yaw, pitch, roll, scale and position drop out.
//! Four ratios describe the outline, all relative to the cheekbone width:
//!
//! * `length` — forehead-top (mesh 10) to chin (152) over the cheekbone width (234–454);
//! * `jaw` — width at the jaw angles (172–397, 136–365) over the cheekbone width;
//! * `forehead` — width at the upper forehead (54–284, 103–332) over the cheekbone width;
//! * `chin` — the angle at the chin between the jaw lines towards 172 and 397 (a pointed chin
//!   has a small angle).
//!
//! Each ratio is standardised with the mean and spread measured over the development faces
//! (models/heads/shape.json, `mean`/`std`; this is the only data-derived part) and the face gets
//! the class of the nearest **prototype**, written down from the usual descriptions of the five
//! shapes (z-units: long face with balanced widths = oval; short face with soft wide chin =
//! round; short face with a wide jaw = square; wide forehead, narrow jaw, pointed chin = heart;
//! jaw wider than the forehead = triangle). The probability is a softmax over negative squared
//! distances.

use super::MESH_POINTS;
use crate::heads::{HeadError, Kind, PrototypeHead, embedded};
use facelens_core::types::{Labelled, Pose};
use std::sync::LazyLock;

/// Class names, in the order of the head's labels (models/heads/shape.json).
pub const CLASSES: [&str; 5] = ["square", "triangle", "oval", "heart", "round"];

static HEAD: LazyLock<Result<PrototypeHead, HeadError>> = LazyLock::new(|| {
    embedded::SHAPE
        .load::<PrototypeHead>()?
        .with_labels(&CLASSES)?
        .with_features(&feature_names())
});

/// The embedded calibration: a prototype head over the four ratios.
pub fn head() -> Result<&'static PrototypeHead, &'static HeadError> {
    HEAD.as_ref()
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn norm(a: [f32; 3]) -> f32 {
    dot(a, a).sqrt()
}

/// The mesh in the face's own frame: x along the outer eye corners (image left → right),
/// y forehead → chin, z away from the viewer; origin between the outer eye corners; unit = the
/// outer-corner distance. `None` for a degenerate mesh.
pub fn frontalise(mesh: &[[f32; 3]]) -> Option<Vec<[f32; 3]>> {
    if mesh.len() < MESH_POINTS {
        return None;
    }
    let x = sub(mesh[263], mesh[33]);
    let e = norm(x);
    if !(e.is_finite() && e > 1e-3) {
        return None;
    }
    let xa = [x[0] / e, x[1] / e, x[2] / e];
    let y = sub(mesh[152], mesh[10]);
    let yo = sub(
        y,
        [xa[0] * dot(y, xa), xa[1] * dot(y, xa), xa[2] * dot(y, xa)],
    );
    let yn = norm(yo);
    if !(yn.is_finite() && yn > 1e-3) {
        return None;
    }
    let ya = [yo[0] / yn, yo[1] / yn, yo[2] / yn];
    let za = cross(xa, ya);
    let o = [
        (mesh[263][0] + mesh[33][0]) * 0.5,
        (mesh[263][1] + mesh[33][1]) * 0.5,
        (mesh[263][2] + mesh[33][2]) * 0.5,
    ];
    Some(
        mesh.iter()
            .map(|p| {
                let d = sub(*p, o);
                [dot(d, xa) / e, dot(d, ya) / e, dot(d, za) / e]
            })
            .collect(),
    )
}

/// Names of the features [`shape_features`] returns.
pub fn feature_names() -> Vec<String> {
    ["length", "jaw", "forehead", "chin_angle"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The four outline ratios of a mesh (see the module docs).
pub fn shape_features(mesh: &[[f32; 3]]) -> Option<[f32; 4]> {
    let f = frontalise(mesh)?;
    let wx = |a: usize, b: usize| (f[a][0] - f[b][0]).abs();
    let cheek = wx(234, 454).max(1e-3);
    let length = (f[152][1] - f[10][1]).abs() / cheek;
    let jaw = 0.5 * (wx(172, 397) + wx(136, 365)) / cheek;
    let forehead = 0.5 * (wx(54, 284) + wx(103, 332)) / cheek;
    let v1 = [f[172][0] - f[152][0], f[172][1] - f[152][1]];
    let v2 = [f[397][0] - f[152][0], f[397][1] - f[152][1]];
    let cos =
        (v1[0] * v2[0] + v1[1] * v2[1]) / ((v1[0].hypot(v1[1]) * v2[0].hypot(v2[1])).max(1e-6));
    let chin = cos.clamp(-1.0, 1.0).acos().to_degrees();
    let out = [length, jaw, forehead, chin];
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Class probabilities from the four ratios, in [`CLASSES`] order (softmax over negative
/// squared z-distances to the prototypes).
pub fn probabilities(feat: &[f32; 4]) -> Option<[f32; 5]> {
    head().ok()?.probabilities(feat)?.try_into().ok()
}

/// Face shape from the mesh. `pose` is used only to lower the confidence for strongly turned
/// faces (the frontalisation already removes the rotation itself; the mesh's hidden side is
/// guessed by the model beyond about 45° of yaw). A degenerate mesh gives `oval` with 0.2.
pub fn face_shape(mesh: &[[f32; 3]], pose: &Pose) -> Labelled {
    let Some(p) = shape_features(mesh).and_then(|f| probabilities(&f)) else {
        return Labelled::new("oval", 0.2);
    };
    let (k, pk) =
        p.iter().enumerate().fold(
            (2usize, f32::MIN),
            |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
        );
    let turn = (pose.yaw.abs().max(pose.pitch.abs()) / 90.0).clamp(0.0, 1.0);
    Labelled::new(CLASSES[k], pk * (1.0 - 0.5 * turn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heuristics::tests_support::synthetic_mesh;

    fn transform(mesh: &[[f32; 3]], s: f32, rot_deg: f32, dx: f32) -> Vec<[f32; 3]> {
        let (sn, cs) = rot_deg.to_radians().sin_cos();
        mesh.iter()
            .map(|p| {
                [
                    s * (cs * p[0] - sn * p[1]) + dx,
                    s * (sn * p[0] + cs * p[1]) - dx,
                    s * p[2],
                ]
            })
            .collect()
    }

    #[test]
    fn features_are_invariant_to_scale_rotation_and_shift() {
        let m = synthetic_mesh(100.0, 100.0, 60.0);
        let a = shape_features(&m).expect("features");
        for (s, r, d) in [(0.5, 0.0, 0.0), (2.3, 17.0, 40.0), (1.0, -30.0, -12.0)] {
            let b = shape_features(&transform(&m, s, r, d)).expect("features");
            for i in 0..4 {
                assert!(
                    (a[i] - b[i]).abs() < 1e-3 * a[i].abs().max(1.0),
                    "{a:?} {b:?}"
                );
            }
            let p = Pose::default();
            assert_eq!(
                face_shape(&m, &p).kind,
                face_shape(&transform(&m, s, r, d), &p).kind
            );
        }
    }

    #[test]
    fn wide_jaw_short_face_is_square_and_long_narrow_chin_is_not() {
        let m = head().expect("shape.json loads");
        let point = |class: &str| -> [f32; 4] {
            let p = m.prototype_point(class).expect("a class of the head");
            p.try_into().expect("four features")
        };
        let (sq, ov) = (point("square"), point("oval"));
        let p = probabilities(&sq).expect("probs");
        assert!(
            p[0] > 0.4 && p[0] >= p.iter().copied().fold(0.0, f32::max),
            "{p:?}"
        );
        let p = probabilities(&ov).expect("probs");
        assert!(p[2] >= p.iter().copied().fold(0.0, f32::max), "{p:?}");
    }

    #[test]
    fn degenerate_mesh_is_handled() {
        assert_eq!(
            face_shape(&[[0.0; 3]; 468], &Pose::default()).probability,
            0.2
        );
    }
}
