//! The trained heads: beauty, face shape and race from inner features of models that already
//! run for other attributes.
//!
//! Why inner features: no registry package ships a beauty or face-shape model, and the models we
//! run carry most of what is needed in their inner layers (a pooled layer of face-api, dlib age
//! and GEAR; two feature maps of each emotion net; the face mesh). The training pipeline
//! (`training/`, issue 29) fits a linear head over them, and `training/heads_json.py` writes it
//! as an ordinary head file (`models/heads/*_trained.json`) with one feature name per input
//! dimension, `<block>#<i>`. Reusing backbones that run anyway makes a trained attribute nearly
//! free: one dot product per face.
//!
//! A head's feature names say which blocks it reads and in what order, so a refit with other
//! blocks needs no code change; a block this module cannot build, or a name out of sequence, is
//! a [`HeadError`] at load. The blocks are rebuilt exactly as `training/common.py` builds them
//! from the crops Facelens itself cuts (`facelens eval crops`), and the test
//! `tests/trained_heads.rs` checks the rebuilt head against the exported ONNX graph.
//!
//! | block | built from |
//! |---|---|
//! | `faceapi_pool`, `gear_pool`, `dlib_age_pool` | the model output of that name, as is (flip-averaged like every output) |
//! | `<map>_g<G>` | the map output `<map>` (C × H × W) averaged over G × G regions (rows and columns split as `numpy.array_split`), channel-major: `c · G² + region`, regions row by row |
//! | `mesh_geom` | the 468 mesh points centred, scaled to unit RMS x/y radius and rotated so points 33 → 263 are level; z centred and scaled alike |
//! | `logp_gear_race` | `ln(max(p, 1e-6))` of GEAR's five race probabilities |

use super::features::AttributeFeatures;
use crate::heads::{HeadError, Kind};
use crate::mesh::MeshResult;

/// Inner outputs that `training/expose_outputs.py` adds to the shipped models, with their
/// lengths per face: vectors, then feature maps (C, H, W).
pub const INNER_VECTORS: [(&str, usize); 3] = [
    ("faceapi_pool", 512),
    ("gear_pool", 192),
    ("dlib_age_pool", 256),
];
/// Feature maps among the inner outputs, as (name, C, H, W) of their flat per-face data.
pub const INNER_MAPS: [(&str, usize, usize, usize); 4] = [
    ("emotion_human_add1", 128, 15, 15),
    ("emotion_human_add2", 256, 8, 8),
    ("emotion_fer_add3", 64, 8, 8),
    ("emotion_fer_add4", 128, 4, 4),
];

/// Whether `name` is an inner output the trained heads may read (kept per face by
/// [`super::Attributor::combine`]).
pub fn is_inner_output(name: &str) -> bool {
    INNER_VECTORS.iter().any(|(n, _)| *n == name) || INNER_MAPS.iter().any(|m| m.0 == name)
}

const MESH_POINTS: usize = 468;

/// One block of a trained head's input.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// An inner output read as is.
    Vector(&'static str),
    /// An inner feature map pooled on a `g` × `g` grid.
    Grid {
        map: &'static str,
        c: usize,
        h: usize,
        w: usize,
        g: usize,
    },
    /// [`mesh_geometry`] of the face's mesh.
    MeshGeom,
    /// `ln(max(p, 1e-6))` of GEAR's race probabilities.
    LogpGearRace,
}

impl Source {
    /// The block called `name`, if this module can build it.
    fn named(name: &str) -> Option<Source> {
        if let Some((n, _)) = INNER_VECTORS.iter().find(|(n, _)| *n == name) {
            return Some(Source::Vector(n));
        }
        match name {
            "mesh_geom" => return Some(Source::MeshGeom),
            "logp_gear_race" => return Some(Source::LogpGearRace),
            _ => {}
        }
        let (map, g) = name.rsplit_once("_g")?;
        let g: usize = g.parse().ok()?;
        let &(map, c, h, w) = INNER_MAPS.iter().find(|m| m.0 == map)?;
        (1..=h.min(w))
            .contains(&g)
            .then_some(Source::Grid { map, c, h, w, g })
    }

    fn dims(&self) -> usize {
        match self {
            Source::Vector(n) => INNER_VECTORS
                .iter()
                .find(|(v, _)| v == n)
                .map_or(0, |(_, d)| *d),
            Source::Grid { c, g, .. } => c * g * g,
            Source::MeshGeom => MESH_POINTS * 3,
            Source::LogpGearRace => 5,
        }
    }

    /// Append this block's values for one face; `None` when its model did not run.
    fn push(
        &self,
        f: &AttributeFeatures,
        mesh_geom: Option<&[f32]>,
        out: &mut Vec<f32>,
    ) -> Option<()> {
        match self {
            Source::Vector(n) => {
                let v = f.inner.get(*n)?;
                (v.len() == self.dims()).then(|| out.extend_from_slice(v))
            }
            Source::Grid { map, c, h, w, g } => {
                let v = f.inner.get(*map)?;
                (v.len() == c * h * w).then(|| grid_pool(v, *c, *h, *w, *g, out))
            }
            Source::MeshGeom => {
                let g = mesh_geom.filter(|g| g.len() == self.dims())?;
                out.extend_from_slice(g);
                Some(())
            }
            Source::LogpGearRace => {
                let p = f.gear_race.as_deref().filter(|p| p.len() == 5)?;
                out.extend(p.iter().map(|v| v.max(1e-6).ln()));
                Some(())
            }
        }
    }
}

/// A fitted head of kind `H` with the blocks its features name.
#[derive(Debug, Clone)]
pub struct TrainedHead<H> {
    head: H,
    blocks: Vec<(String, Source)>,
}

impl<H: Kind> TrainedHead<H> {
    /// The head, if its features are whole blocks this module builds, each named
    /// `<block>#0` … `<block>#<dims − 1>` in order.
    pub fn new(head: H) -> Result<Self, HeadError> {
        let mut blocks: Vec<(String, Source)> = Vec::new();
        let mut at = 0usize;
        let names = head.features();
        while at < names.len() {
            let (block, _) = names[at]
                .split_once('#')
                .ok_or_else(|| HeadError::Features {
                    reason: format!("{:?} is not <block>#<index>", names[at]),
                })?;
            let source = Source::named(block).ok_or_else(|| HeadError::Features {
                reason: format!("{block:?} is not a block the service builds"),
            })?;
            let dims = source.dims();
            for i in 0..dims {
                let want = format!("{block}#{i}");
                if names.get(at + i) != Some(&want) {
                    return Err(HeadError::Features {
                        reason: format!(
                            "feature {} should be {want:?} (block {block} has {dims} values)",
                            at + i
                        ),
                    });
                }
            }
            if blocks.iter().any(|(b, _)| b == block) {
                return Err(HeadError::Features {
                    reason: format!("block {block} appears twice"),
                });
            }
            blocks.push((block.to_string(), source));
            at += dims;
        }
        Ok(Self { head, blocks })
    }

    pub fn head(&self) -> &H {
        &self.head
    }

    /// The blocks read, in input order.
    pub fn blocks(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().map(|(b, _)| b.as_str())
    }

    /// The head's input for one face; `None` when a block's model (or the mesh) is missing.
    pub fn input(&self, f: &AttributeFeatures, mesh: Option<&MeshResult>) -> Option<Vec<f32>> {
        let reads_mesh = self.blocks.iter().any(|(_, s)| *s == Source::MeshGeom);
        let geometry = if reads_mesh {
            mesh.and_then(|m| mesh_geometry(&m.points))
        } else {
            None
        };
        self.input_from(f, geometry.as_deref())
    }

    /// [`TrainedHead::input`] with the mesh block given as [`mesh_geometry`]'s output.
    pub fn input_from(&self, f: &AttributeFeatures, mesh_geom: Option<&[f32]>) -> Option<Vec<f32>> {
        let mut x = Vec::with_capacity(self.head.features().len());
        for (_, source) in &self.blocks {
            source.push(f, mesh_geom, &mut x)?;
        }
        (x.len() == self.head.features().len()).then_some(x)
    }
}

/// Average the flat map `v` (`c` × `h` × `w`) over a `g` × `g` grid of regions (rows and columns
/// split into `g` runs as `numpy.array_split` splits them: the first `n mod g` runs one longer),
/// appending `c · g²` values channel-major (`c · g² + region`, regions row by row).
pub fn grid_pool(v: &[f32], c: usize, h: usize, w: usize, g: usize, out: &mut Vec<f32>) {
    let runs = |n: usize| -> Vec<(usize, usize)> {
        let (base, extra) = (n / g, n % g);
        let mut start = 0;
        (0..g)
            .map(|k| {
                let len = base + usize::from(k < extra);
                let r = (start, start + len);
                start += len;
                r
            })
            .collect()
    };
    let (rows, cols) = (runs(h), runs(w));
    for ch in 0..c {
        let plane = &v[ch * h * w..(ch + 1) * h * w];
        for &(r0, r1) in &rows {
            for &(c0, c1) in &cols {
                let n = ((r1 - r0) * (c1 - c0)) as f32;
                let mut s = 0.0f32;
                for r in r0..r1 {
                    for x in &plane[r * w + c0..r * w + c1] {
                        // Each value divided first, as the pooling matrix multiplies.
                        s += x / n;
                    }
                }
                out.push(s);
            }
        }
    }
}

/// The mesh in the face's own frame (`training/common.py: mesh_geometry`): the 468 image
/// points minus their x/y mean, divided by the RMS x/y radius, rotated so the outer eye corners
/// (33 → 263) are level; z minus its mean over the same scale. `None` for a degenerate mesh.
pub fn mesh_geometry(points: &[[f32; 3]]) -> Option<Vec<f32>> {
    if points.len() != MESH_POINTS {
        return None;
    }
    let n = MESH_POINTS as f64;
    let (mut cx, mut cy, mut cz) = (0.0f64, 0.0f64, 0.0f64);
    for p in points {
        cx += f64::from(p[0]);
        cy += f64::from(p[1]);
        cz += f64::from(p[2]);
    }
    (cx, cy, cz) = (cx / n, cy / n, cz / n);
    let s = (points
        .iter()
        .map(|p| (f64::from(p[0]) - cx).powi(2) + (f64::from(p[1]) - cy).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    if !(s > 0.0 && s.is_finite()) {
        return None;
    }
    let a = (f64::from(points[263][1]) - f64::from(points[33][1]))
        .atan2(f64::from(points[263][0]) - f64::from(points[33][0]));
    let (sin, cos) = (-a).sin_cos();
    let mut out = Vec::with_capacity(MESH_POINTS * 3);
    for p in points {
        let (x, y) = (f64::from(p[0]) - cx, f64::from(p[1]) - cy);
        out.push(((cos * x - sin * y) / s) as f32);
        out.push(((sin * x + cos * y) / s) as f32);
        out.push(((f64::from(p[2]) - cz) / s) as f32);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_pool_splits_like_numpy_array_split() {
        // One channel, 5 x 5, values = column index: a 2 x 2 grid splits columns 0-2 | 3-4.
        let v: Vec<f32> = (0..25).map(|i| (i % 5) as f32).collect();
        let mut out = Vec::new();
        grid_pool(&v, 1, 5, 5, 2, &mut out);
        assert_eq!(out.len(), 4);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] - 3.5).abs() < 1e-6);
        assert!((out[2] - 1.0).abs() < 1e-6 && (out[3] - 3.5).abs() < 1e-6);
        // Grid 1 is the global average; channels come first.
        let two: Vec<f32> = (0..8).map(|i| if i < 4 { 1.0 } else { 3.0 }).collect();
        let mut out = Vec::new();
        grid_pool(&two, 2, 2, 2, 1, &mut out);
        assert_eq!(out, vec![1.0, 3.0]);
    }

    #[test]
    fn mesh_geometry_ignores_position_scale_and_roll() {
        let base: Vec<[f32; 3]> = (0..MESH_POINTS)
            .map(|i| {
                let t = i as f32 * 0.1;
                [
                    t.cos() * (1.0 + 0.3 * (i % 7) as f32),
                    t.sin(),
                    (i % 11) as f32,
                ]
            })
            .collect();
        let g0 = mesh_geometry(&base).expect("geometry");
        let (s, r) = (2.5f32, 0.4f32);
        let moved: Vec<[f32; 3]> = base
            .iter()
            .map(|p| {
                let (x, y) = (
                    p[0] * r.cos() - p[1] * r.sin(),
                    p[0] * r.sin() + p[1] * r.cos(),
                );
                [s * x + 40.0, s * y - 7.0, s * p[2] + 3.0]
            })
            .collect();
        let g1 = mesh_geometry(&moved).expect("geometry");
        let worst = g0
            .iter()
            .zip(&g1)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{worst}");
        assert!(mesh_geometry(&base[..10]).is_none());
        assert!(mesh_geometry(&vec![[1.0, 1.0, 1.0]; MESH_POINTS]).is_none());
    }

    #[test]
    fn blocks_are_parsed_from_feature_names() {
        assert_eq!(
            Source::named("emotion_fer_add4_g3"),
            Some(Source::Grid {
                map: "emotion_fer_add4",
                c: 128,
                h: 4,
                w: 4,
                g: 3
            })
        );
        assert_eq!(
            Source::named("emotion_fer_add4_g5"),
            None,
            "grid wider than the map"
        );
        assert_eq!(
            Source::named("faceapi_pool"),
            Some(Source::Vector("faceapi_pool"))
        );
        assert_eq!(Source::named("mesh_geom").map(|s| s.dims()), Some(1404));
        assert_eq!(Source::named("nothing"), None);
    }
}
