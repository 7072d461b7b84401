//! Model-based face attributes: age, gender, emotion, expression, race, beauty and face shape,
//! and the model outputs face_type's full head reads.
//!
//! Why this shape:
//! * Every attribute is optional twice over: the operator can switch it off ([`options`], e.g.
//!   race or gender for privacy reasons) and a build can lack its model ([`AttributeModels`]
//!   fields are `Option`). Either way the field is omitted from the output, never invented.
//! * A request is planned before anything runs ([`plan`]): one table says which models each
//!   attribute reads, and the model runs it needs become independent jobs, so a caller with
//!   idle cores can run them side by side (the pipeline does, [`crate::pipeline`]).
//! * Each job runs one model over every face of the image at once ([`batch`]), each face
//!   cropped in the framing the model was trained on ([`crop`]): the dlib models a dlib
//!   5-point chip, the others the measured training-set framings. The cheap models also see
//!   the mirror image, and their outputs are averaged.
//! * Combining waits for every job ([`combine`]): the fitted heads read several models' outputs
//!   by name ([`features`]), in a fixed order, so the answer does not depend on scheduling.
//!   The raw outputs are returned beside the labels ([`AttributeFeatures`]) so that
//!   `facelens eval attributes --features-out` can dump them for fitting the heads offline.
//!
//! * Beauty, face shape and race are trained heads over inner features of these same models
//!   ([`trained`]): the models run anyway, so those attributes cost a dot product per face.
//!
//! Eye status, glasses and face type are image/mesh measures with small fitted heads that live
//! in [`crate::heuristics`]; this module only covers what reads a learned model.
//!
//! To add an attribute that reads a model: a variant of [`Attribute`] (its contract name, and
//! its field in `facelens_core::types::Attributes`), a field of [`AttributeOptions`], its
//! models in [`plan::models_for`] (a new model also needs a [`ModelKind`], a [`Job`], a field
//! of [`AttributeModels`] and its crop in [`batch`]), and its answer in [`combine`].

pub mod age_gender;
pub mod batch;
pub mod combine;
pub mod crop;
pub mod emotion;
pub mod features;
pub mod options;
pub mod plan;
pub mod race;
pub mod trained;

pub use batch::{AGE_PADDINGS, EMOTION_PADDING, GEAR_PADDING, JobOutput, MAX_BATCH, mean_rows};
pub use features::{AttributeFeatures, GEAR_AGE_FEATURES, smile_feature_names, smile_features};
pub use options::{Attribute, AttributeOptions, UnknownAttribute, strip};
pub use plan::{Job, ModelKind, models_for, models_needed};

use crate::mesh::MeshResult;
use facelens_core::Point;
use facelens_core::types::Attributes;
use facelens_imaging::Rgb;
use facelens_infer::{InferError, Model};
use std::sync::Arc;

/// The loaded attribute models. Any may be absent (a build without it, or tests): the
/// attributes that need it are then omitted.
#[derive(Clone, Default)]
pub struct AttributeModels {
    /// dlib "Cydral" age, 81 classes, 64 × 64 chip.
    pub age: Option<Arc<dyn Model>>,
    /// dlib "Cydral" gender, `[female, male]`, 32 × 32 chip.
    pub gender: Option<Arc<dyn Model>>,
    /// mini-Xception FER2013 emotion nets (64 × 64 grey); their probabilities are averaged.
    pub emotion: Vec<Arc<dyn Model>>,
    /// GEAR (race, gender, age bins), 198 × 198.
    pub gear: Option<Arc<dyn Model>>,
    /// face-api AgeGenderNet (age in years, `[male, female]`), 112 × 112 in the UTKFace framing.
    pub faceapi: Option<Arc<dyn Model>>,
}

/// Runs the attribute models on the faces of an image: [`Attributor::jobs`] plans the model
/// runs, [`Attributor::run_job`] runs one, [`Attributor::combine`] turns their outputs into
/// attributes; [`Attributor::run_batch`] does all three on the calling thread.
#[derive(Clone, Default)]
pub struct Attributor {
    models: AttributeModels,
    rule: emotion::ExpressionRule,
    heads: combine::Heads,
}

/// One face handed to [`Attributor::run_batch`].
#[derive(Clone, Copy)]
pub struct FaceInput<'a> {
    /// The five detector landmarks the crops are aligned on.
    pub landmarks: &'a [Point; 5],
    /// The face mesh (for the mouth geometry of the expression), when computed.
    pub mesh: Option<&'a MeshResult>,
}

impl Attributor {
    /// With the embedded heads (an attribute whose head is missing falls back to one model's
    /// answer; P(smiling) to the emotion models' P(happy)).
    pub fn new(models: AttributeModels) -> Self {
        Self {
            models,
            rule: emotion::ExpressionRule::default(),
            heads: combine::Heads::embedded(),
        }
    }

    /// Without any fitted head: P(smiling) is the emotion models' P(happy).
    pub fn without_heads(models: AttributeModels) -> Self {
        Self {
            heads: combine::Heads::default(),
            ..Self::new(models)
        }
    }

    /// Model-based attributes of the face with these `landmarks` (and `mesh`, for the mouth).
    pub fn run(
        &self,
        img: &Rgb,
        landmarks: &[Point; 5],
        mesh: Option<&MeshResult>,
        opts: &AttributeOptions,
    ) -> Result<(Attributes, AttributeFeatures), InferError> {
        let mut all = self.run_batch(img, &[FaceInput { landmarks, mesh }], opts)?;
        Ok(all.pop().unwrap_or_default())
    }

    /// Model-based attributes of several faces of one image. Each model runs once over the
    /// views of every face (in batches of at most [`MAX_BATCH`] views), not once per face.
    /// The result has one entry per face, in order.
    ///
    /// The same as [`Attributor::jobs`], each through [`Attributor::run_job`], then
    /// [`Attributor::combine`]; a caller with idle cores runs the jobs on several threads.
    pub fn run_batch(
        &self,
        img: &Rgb,
        faces: &[FaceInput<'_>],
        opts: &AttributeOptions,
    ) -> Result<Vec<(Attributes, AttributeFeatures)>, InferError> {
        let lms: Vec<[Point; 5]> = faces.iter().map(|f| *f.landmarks).collect();
        let outputs = self
            .jobs(opts)
            .into_iter()
            .map(|job| self.run_job(job, img, &lms, opts))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.combine(faces, opts, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::crop::{DLIB_PADDING, aligned_f32, flip_h};
    use super::*;
    use facelens_infer::Tensor;
    use std::sync::Mutex;

    /// A fake model that records its input and returns a fixed row per batch item, so the
    /// batching/averaging plumbing can be tested without weights.
    struct Fake {
        names: Vec<String>,
        rows: Vec<Vec<f32>>,
        seen: Mutex<Vec<Vec<usize>>>,
    }

    impl Model for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn output_names(&self) -> &[String] {
            &self.names
        }
        fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, InferError> {
            self.seen.lock().expect("lock").push(input.shape.clone());
            let b = input.shape[0];
            let data: Vec<f32> = self.rows.iter().take(b).flatten().copied().collect();
            let k = self.rows[0].len();
            Ok(vec![Tensor {
                shape: vec![b, k],
                data,
            }])
        }
    }

    fn fake(rows: Vec<Vec<f32>>) -> Arc<Fake> {
        Arc::new(Fake {
            names: vec!["out".into()],
            rows,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn face_landmarks() -> [Point; 5] {
        crop::dlib_chip_template(100.0, 0.2).map(|p| Point::new(p.x + 20.0, p.y + 30.0))
    }

    #[test]
    fn flip_averaging_batches_two_views_and_averages_them() {
        // View 1 says male 0.9, the mirrored view male 0.5: the reported probability is 0.7.
        let g = fake(vec![vec![0.1, 0.9], vec![0.5, 0.5]]);
        let att = Attributor::new(AttributeModels {
            gender: Some(g.clone()),
            ..AttributeModels::default()
        });
        let img = Rgb::new(160, 160);
        let (a, f) = att
            .run(&img, &face_landmarks(), None, &AttributeOptions::ALL)
            .expect("run");
        assert_eq!(g.seen.lock().expect("lock")[0], vec![2, 3, 32, 32]);
        assert!((f.dlib_male.unwrap() - 0.7).abs() < 1e-6);
        let gender = a.gender.expect("gender");
        assert_eq!(gender.kind, "male");
        // Without flipping only the first view runs.
        let opts = AttributeOptions {
            flip: false,
            ..AttributeOptions::ALL
        };
        let (a, _) = att.run(&img, &face_landmarks(), None, &opts).expect("run");
        assert!((a.gender.expect("gender").probability - 0.9).abs() < 1e-6);
        // Not asked for: no field; face_type's full head still reads dlib gender.
        let before = g.seen.lock().expect("lock").len();
        let opts = AttributeOptions {
            gender: false,
            ..AttributeOptions::ALL
        };
        let (a, f) = att.run(&img, &face_landmarks(), None, &opts).expect("run");
        assert!(a.gender.is_none() && f.dlib_male.is_some());
        assert_eq!(g.seen.lock().expect("lock").len(), before + 1);
        // Switched off: no field, no run.
        let opts = AttributeOptions::ALL.without(&[Attribute::Gender]);
        let (a, f) = att.run(&img, &face_landmarks(), None, &opts).expect("run");
        assert!(a.gender.is_none() && f.dlib_male.is_none());
        assert_eq!(g.seen.lock().expect("lock").len(), before + 1);
    }

    /// A model whose answer depends on its input: per batch item `[1 - m, m]` with `m` the
    /// item's mean input value scaled to 0..1, so results can be traced back to crops.
    struct MeanModel {
        names: Vec<String>,
        calls: Mutex<Vec<usize>>,
    }

    impl Model for MeanModel {
        fn name(&self) -> &str {
            "mean"
        }
        fn output_names(&self) -> &[String] {
            &self.names
        }
        fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, InferError> {
            let b = input.shape[0];
            self.calls.lock().expect("lock").push(b);
            let per = input.data.len() / b;
            let data = input
                .data
                .chunks_exact(per)
                .flat_map(|c| {
                    let m = (c.iter().sum::<f32>() / per as f32 * 0.5 + 0.5).clamp(0.0, 1.0);
                    [1.0 - m, m]
                })
                .collect();
            Ok(vec![Tensor {
                shape: vec![b, 2],
                data,
            }])
        }
    }

    #[test]
    fn batching_faces_gives_each_face_its_own_result() {
        let g = Arc::new(MeanModel {
            names: vec!["out".into()],
            calls: Mutex::new(Vec::new()),
        });
        let att = Attributor::new(AttributeModels {
            gender: Some(g.clone()),
            ..AttributeModels::default()
        });
        // Brightness varies across the image, so every face's crop differs.
        let img = Rgb::from_fn(1200, 300, |x, y| {
            let v = ((x / 4 + y / 3) % 256) as u8;
            facelens_imaging::image::Rgb([v, v / 2, 255 - v])
        });
        let lms: Vec<[Point; 5]> = (0..11)
            .map(|i| {
                let tpl = crop::dlib_chip_template(90.0, 0.2);
                tpl.map(|p| {
                    Point::new(
                        p.x + 10.0 + 100.0 * i as f32,
                        p.y + 40.0 + (i % 3) as f32 * 50.0,
                    )
                })
            })
            .collect();
        let inputs: Vec<FaceInput<'_>> = lms
            .iter()
            .map(|l| FaceInput {
                landmarks: l,
                mesh: None,
            })
            .collect();
        let batched = att
            .run_batch(&img, &inputs, &AttributeOptions::ALL)
            .expect("batch");
        // 11 faces x 2 views = 22 views: one full batch and one of 6.
        assert_eq!(
            *g.calls.lock().expect("lock"),
            vec![MAX_BATCH, 22 - MAX_BATCH]
        );
        assert_eq!(batched.len(), 11);
        let mut distinct = Vec::new();
        for (l, (_, fb)) in lms.iter().zip(&batched) {
            let (_, single) = att
                .run(&img, l, None, &AttributeOptions::ALL)
                .expect("single");
            let (b, s) = (
                fb.dlib_male.expect("batched"),
                single.dlib_male.expect("single"),
            );
            assert!((b - s).abs() < 1e-6, "batched {b} vs alone {s}");
            distinct.push((b * 1e4).round() as i64);
        }
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() > 5,
            "faces got different crops: {distinct:?}"
        );
    }

    #[test]
    fn mirrored_face_gives_the_same_flip_averaged_input_statistics() {
        // A left/right symmetric face crop and its mirror are identical, so a model sees the
        // same two views whichever way the face was photographed.
        let img = Rgb::from_fn(160, 160, |x, _| {
            let d = (x as i32 - 80).unsigned_abs();
            facelens_imaging::image::Rgb([(d * 3) as u8, 100, 50])
        });
        let lm = [
            Point::new(60.0, 60.0),
            Point::new(100.0, 60.0),
            Point::new(80.0, 85.0),
            Point::new(65.0, 105.0),
            Point::new(95.0, 105.0),
        ];
        let tpl = crop::dlib_chip_template(32.0, DLIB_PADDING);
        let (c, _) = aligned_f32(&img, &lm, &tpl, 32).expect("crop");
        let m = flip_h(&c, 32, 32);
        let diff: f32 = c.iter().zip(&m).map(|(a, b)| (a - b).abs()).sum::<f32>() / c.len() as f32;
        assert!(diff < 2.0, "symmetric face, mean |crop - mirror| = {diff}");
    }

    #[test]
    fn emotion_models_are_averaged_and_expression_derived() {
        let happy = vec![0.0, 0.0, 0.0, 0.8, 0.0, 0.0, 0.2];
        let neutral = vec![0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.8];
        let e1 = fake(vec![happy.clone(), happy]);
        let e2 = fake(vec![neutral.clone(), neutral]);
        let att = Attributor::without_heads(AttributeModels {
            emotion: vec![e1, e2.clone()],
            ..AttributeModels::default()
        });
        let img = Rgb::new(160, 160);
        let (a, f) = att
            .run(&img, &face_landmarks(), None, &AttributeOptions::ALL)
            .expect("run");
        assert_eq!(e2.seen.lock().expect("lock")[0], vec![2, 64, 64, 1]);
        assert_eq!(f.emotion_models.len(), 2);
        // 0.5 / 0.5 tie between happy and neutral; expression threshold is 0.5 → smile.
        let expr = a.expression.expect("expression");
        assert_eq!(expr.kind, "smile");
        assert!(a.age.is_none() && a.race.is_none(), "no model, no field");
    }

    #[test]
    fn face_type_runs_its_input_models_and_returns_only_what_was_asked() {
        let rows = |k: usize| vec![vec![1.0 / k as f32; k]; 2];
        let (age, gender, gear, faceapi) =
            (fake(rows(81)), fake(rows(2)), fake(rows(5)), fake(rows(2)));
        let (e1, e2) = (fake(rows(7)), fake(rows(7)));
        let att = Attributor::new(AttributeModels {
            age: Some(age),
            gender: Some(gender),
            emotion: vec![e1, e2],
            gear: Some(gear),
            faceapi: Some(faceapi.clone()),
        });
        let img = Rgb::new(160, 160);
        let only_face_type = AttributeOptions::only(&[Attribute::FaceType]);
        let (a, f) = att
            .run(&img, &face_landmarks(), None, &only_face_type)
            .expect("run");
        // No field was asked for, but the outputs face_type's head reads are there.
        assert_eq!(a, Attributes::default());
        assert!(f.dlib_age.is_some() && f.dlib_male.is_some() && f.gear_race.is_some());
        assert_eq!(f.emotion_models.len(), 2);
        // face-api is not one of its inputs, so it did not run.
        assert!(faceapi.seen.lock().expect("lock").is_empty());
        assert!(f.faceapi_age.is_none());
        // Asking for age as well answers age, and only age.
        let with_age = AttributeOptions {
            age: true,
            ..only_face_type
        };
        let (a, _) = att
            .run(&img, &face_landmarks(), None, &with_age)
            .expect("run");
        assert!(a.age.is_some());
        let mut stripped = a;
        strip(&mut stripped, &[Attribute::Age]);
        assert_eq!(stripped, Attributes::default());
    }
}
