//! From the jobs' raw outputs to each face's attributes: the fitted heads' use.
//!
//! Why apart from running the models: the jobs may finish in any order and on any thread, and
//! an attribute may read several models (age reads dlib, GEAR and face-api). Combining in one
//! place, in a fixed order, once every job is done, keeps the answer independent of scheduling
//! and keeps each fallback in sight: when a model a head reads did not run, the attribute falls
//! back to one model's own answer, never to a head fed with a missing input.

use super::features::{
    AttributeFeatures, faceapi_features, gear_features, inner_features, smile_feature_names,
    smile_features,
};
use super::trained::TrainedHead;
use super::{AttributeOptions, Attributor, FaceInput, Job, JobOutput};
use super::{age_gender, emotion, race};
use crate::heads::{HeadError, Kind, LinearRegressionHead, SoftmaxHead, embedded};
use crate::mesh::MeshResult;
use facelens_core::types::{Attributes, Labelled};
use std::sync::LazyLock;

static SMILE: LazyLock<Result<SoftmaxHead, HeadError>> = LazyLock::new(|| {
    embedded::SMILE
        .load::<SoftmaxHead>()?
        .with_labels(&["none", "smile"])?
        .with_features(&smile_feature_names())
});
static AGE: LazyLock<Result<LinearRegressionHead, HeadError>> = LazyLock::new(|| {
    embedded::AGE
        .load::<LinearRegressionHead>()?
        .with_features_known(AttributeFeatures::is_named)
});
static GENDER: LazyLock<Result<SoftmaxHead, HeadError>> = LazyLock::new(|| {
    embedded::GENDER
        .load::<SoftmaxHead>()?
        .with_labels(&["female", "male"])?
        .with_features_known(AttributeFeatures::is_named)
});

static BEAUTY: LazyLock<Result<TrainedHead<LinearRegressionHead>, HeadError>> =
    LazyLock::new(|| TrainedHead::new(embedded::BEAUTY_TRAINED.load::<LinearRegressionHead>()?));
static FACE_SHAPE: LazyLock<Result<TrainedHead<SoftmaxHead>, HeadError>> = LazyLock::new(|| {
    TrainedHead::new(
        embedded::FACE_SHAPE_TRAINED
            .load::<SoftmaxHead>()?
            .with_labels(&FACE_SHAPE_TRAINED_CLASSES)?,
    )
});
static RACE: LazyLock<Result<TrainedHead<SoftmaxHead>, HeadError>> = LazyLock::new(|| {
    TrainedHead::new(
        embedded::RACE_TRAINED
            .load::<SoftmaxHead>()?
            .with_labels(&race::CONTRACT_RACES)?,
    )
});

/// The classes the face-shape head was trained on (the data's labels).
pub const FACE_SHAPE_TRAINED_CLASSES: [&str; 5] = ["heart", "oblong", "oval", "round", "square"];
/// The contract's face shapes.
pub const FACE_SHAPES: [&str; 5] = ["square", "triangle", "oval", "heart", "round"];

/// The beauty head (`models/heads/beauty_trained.json`, `training/beauty.py`): SCUT-FBP5500's
/// mean rating (1–5) from inner features of face-api, dlib age and the emotion nets.
pub fn beauty_head() -> Result<&'static TrainedHead<LinearRegressionHead>, &'static HeadError> {
    BEAUTY.as_ref()
}

/// The face-shape head (`models/heads/face_shape_trained.json`, `training/face_shape.py`):
/// probabilities of [`FACE_SHAPE_TRAINED_CLASSES`] from inner features and the mesh.
pub fn face_shape_head() -> Result<&'static TrainedHead<SoftmaxHead>, &'static HeadError> {
    FACE_SHAPE.as_ref()
}

/// The race head (`models/heads/race_trained.json`, `training/race_gender.py`): the contract's
/// races from GEAR's race probabilities and its global max pool.
pub fn race_head() -> Result<&'static TrainedHead<SoftmaxHead>, &'static HeadError> {
    RACE.as_ref()
}

/// The contract's beauty (0–100) from a predicted mean rating (1–5): `25 · (rating − 1)`,
/// clamped. Linear, so the order and correlation of the ratings are kept and a caller can read
/// the score back as a rating (`1 + beauty / 25`).
pub fn beauty_from_rating(rating: f32) -> f32 {
    (25.0 * (rating - 1.0)).clamp(0.0, 100.0)
}

/// Trained-class probabilities ([`FACE_SHAPE_TRAINED_CLASSES`]) → the contract's
/// ([`FACE_SHAPES`]): oblong is added to oval (an oblong face is a long oval, the contract's
/// nearest class); triangle has no training photo and gets 0.
pub fn face_shape_to_contract(p: &[f32]) -> Option<[f32; 5]> {
    let [heart, oblong, oval, round, square] = <[f32; 5]>::try_from(p).ok()?;
    Some([square, 0.0, oval + oblong, heart, round])
}

/// The smile head (`models/heads/smile.json`, fitted on dev data by
/// `scripts/fit_attribute_heads.py`): P(smiling) from the fused emotion log-probabilities and the
/// mouth geometry ([`smile_features`]).
pub fn smile_head() -> Result<&'static SoftmaxHead, &'static HeadError> {
    SMILE.as_ref()
}

/// The age head (`models/heads/age.json`, fitted on dev data): an L1 linear regression from the
/// age models' outputs (named in its `features`) to years. It corrects each model's pull towards
/// the middle (teens read too old, seniors too young). When a model it reads did not run, the
/// age is dlib's (or face-api's without dlib).
pub fn age_head() -> Result<&'static LinearRegressionHead, &'static HeadError> {
    AGE.as_ref()
}

/// The gender head (`models/heads/gender.json`, fitted on dev data): a logistic regression over
/// the gender models' logits and dlib's logit times a child weight from face-api's age (named in
/// its `features`; docs/model-cards/race_gender.md says why). When a model it reads did not
/// run, the gender is dlib's (or face-api's without dlib).
pub fn gender_head() -> Result<&'static SoftmaxHead, &'static HeadError> {
    GENDER.as_ref()
}

/// The fitted heads the attributes read; each may be absent ([`Attributor::without_heads`], or
/// a head that did not load, which the test of [`embedded`] rules out for the shipped ones).
#[derive(Clone, Default)]
pub(super) struct Heads {
    pub smile: Option<&'static SoftmaxHead>,
    pub age: Option<&'static LinearRegressionHead>,
    pub gender: Option<&'static SoftmaxHead>,
    pub beauty: Option<&'static TrainedHead<LinearRegressionHead>>,
    pub face_shape: Option<&'static TrainedHead<SoftmaxHead>>,
    pub race: Option<&'static TrainedHead<SoftmaxHead>>,
}

impl Heads {
    /// The embedded heads.
    pub fn embedded() -> Self {
        Self {
            smile: smile_head().ok(),
            age: age_head().ok(),
            gender: gender_head().ok(),
            beauty: beauty_head().ok(),
            face_shape: face_shape_head().ok(),
            race: race_head().ok(),
        }
    }
}

impl Attributor {
    /// Turn the jobs' raw outputs into each face's attributes and features. `outputs` may come
    /// in any order; they are read in a fixed one (GEAR before age, which combines both; the
    /// emotion nets in model order), so the result does not depend on which job finished first.
    /// Only the attributes `opts` asks for are filled in; the features hold every output that
    /// ran.
    pub fn combine(
        &self,
        faces: &[FaceInput<'_>],
        opts: &AttributeOptions,
        mut outputs: Vec<JobOutput>,
    ) -> Vec<(Attributes, AttributeFeatures)> {
        let mut out: Vec<(Attributes, AttributeFeatures)> = faces
            .iter()
            .map(|f| {
                (
                    Attributes::default(),
                    AttributeFeatures {
                        landmarks: f.landmarks.map(|p| [p.x, p.y]),
                        ..AttributeFeatures::default()
                    },
                )
            })
            .collect();
        if faces.is_empty() {
            return out;
        }
        outputs.sort_by_key(|o| o.job);
        let mut emotion_ran = false;
        let trained = opts.beauty || opts.face_shape || opts.race;
        for JobOutput { job, per_face } in outputs {
            if trained && let Some(m) = self.model_of(job) {
                for ((_, f), outputs) in out.iter_mut().zip(&per_face) {
                    if let Some(outputs) = outputs {
                        inner_features(m, outputs, f);
                    }
                }
            }
            match job {
                Job::Gear => {
                    let Some(m) = &self.models.gear else { continue };
                    for ((_, f), outputs) in out.iter_mut().zip(per_face) {
                        if let Some(outputs) = outputs {
                            gear_features(m, &outputs, f);
                        }
                    }
                }
                Job::FaceApi => {
                    let Some(m) = &self.models.faceapi else {
                        continue;
                    };
                    for ((_, f), outputs) in out.iter_mut().zip(per_face) {
                        if let Some(outputs) = outputs {
                            faceapi_features(m, &outputs, f);
                        }
                    }
                }
                Job::Age => {
                    for ((_, f), outputs) in out.iter_mut().zip(per_face) {
                        if let Some(p) = outputs.and_then(|o| o.into_iter().next()) {
                            f.dlib_age = age_gender::dlib_expected_age(&p);
                        }
                    }
                }
                Job::Gender => {
                    for ((_, f), outputs) in out.iter_mut().zip(per_face) {
                        if let Some(p) = outputs.and_then(|o| o.into_iter().next())
                            && p.len() == 2
                        {
                            f.dlib_male = Some(p[1] / (p[0] + p[1]).max(1e-9));
                        }
                    }
                }
                Job::Emotion(_) => {
                    emotion_ran = true;
                    for ((_, f), outputs) in out.iter_mut().zip(per_face) {
                        if let Some(p) = outputs.and_then(|o| o.into_iter().next())
                            && p.len() == emotion::EMOTIONS.len()
                        {
                            f.emotion_models.push(p);
                        }
                    }
                }
            }
        }
        for ((a, f), face) in out.iter_mut().zip(faces) {
            if opts.age {
                a.age = self.age(f);
            }
            if opts.race {
                a.race = self.race(f);
            }
            if opts.beauty {
                a.beauty = self.beauty(f);
            }
            if opts.face_shape {
                a.face_shape = self.face_shape(f, face.mesh);
            }
            // The maps are large (up to 115 kB a face): only the heads above read them.
            f.inner.clear();
            if opts.gender {
                a.gender = self.p_male(f).map(|p| {
                    let (g, prob) = age_gender::gender_label(p);
                    Labelled::new(g, prob)
                });
            }
        }
        if emotion_ran {
            for ((a, f), face) in out.iter_mut().zip(faces) {
                f.mouth = face.mesh.and_then(emotion::mouth);
                let Some(p) = emotion::average(&f.emotion_models) else {
                    continue;
                };
                if opts.emotion
                    && let Some((i, prob)) = emotion::argmax(&p)
                {
                    a.emotion = Some(Labelled::new(emotion::EMOTIONS[i], prob));
                }
                if opts.expression {
                    let p_smile = self
                        .heads
                        .smile
                        .zip(smile_features(&p, f.mouth))
                        .and_then(|(h, x)| h.probability_of(&x, "smile"))
                        .unwrap_or(p[emotion::HAPPY]);
                    f.p_smile = Some(p_smile);
                    let (e, prob) = emotion::expression(p_smile, f.mouth, &self.rule);
                    a.expression = Some(Labelled::new(e, prob));
                }
            }
        }
        out
    }

    /// The reported age: the age head over the models' outputs, or dlib's (face-api's) age when a
    /// model the head reads did not run.
    fn age(&self, f: &AttributeFeatures) -> Option<f32> {
        self.heads
            .age
            .and_then(|h| h.predict(&f.vector(h.features())?))
            .or(f.dlib_age)
            .or(f.faceapi_age)
            .map(|v| v.clamp(0.0, 100.0))
    }

    /// Beauty from the trained head; `None` when a model it reads did not run (no heuristic
    /// stands in: a score that says nothing about the face is worse than none).
    fn beauty(&self, f: &AttributeFeatures) -> Option<f32> {
        let h = self.heads.beauty?;
        let rating = h.head().predict(&h.input(f, None)?)?;
        Some(beauty_from_rating(rating))
    }

    /// Face shape from the trained head (needs the mesh); `None` when an input is missing.
    fn face_shape(&self, f: &AttributeFeatures, mesh: Option<&MeshResult>) -> Option<Labelled> {
        let h = self.heads.face_shape?;
        let p = face_shape_to_contract(&h.head().predict(&h.input(f, mesh)?)?)?;
        let (i, prob) = emotion::argmax(&p)?;
        Some(Labelled::new(FACE_SHAPES[i], prob))
    }

    /// Race from the trained head, or GEAR's classes mapped onto the contract's when the head
    /// cannot run (e.g. a GEAR file without the exposed pool); `None` without GEAR.
    fn race(&self, f: &AttributeFeatures) -> Option<Labelled> {
        let p = self
            .heads
            .race
            .and_then(|h| h.head().predict(&h.input(f, None)?))
            .or_else(|| Some(race::to_contract(f.gear_race.as_deref()?)?.to_vec()))?;
        let (i, prob) = emotion::argmax(&p)?;
        Some(Labelled::new(race::CONTRACT_RACES[i], prob))
    }

    /// The reported P(male): the gender head over the models' logits, or dlib's (face-api's)
    /// when a model the head reads did not run.
    fn p_male(&self, f: &AttributeFeatures) -> Option<f32> {
        self.heads
            .gender
            .and_then(|h| h.probability_of(&f.vector(h.features())?, "male"))
            .or(f.dlib_male)
            .or(f.faceapi_male)
    }
}

#[cfg(test)]
mod tests {
    use super::super::options::Attribute;
    use super::super::plan::{ModelKind, models_for};
    use super::*;

    #[test]
    fn the_models_each_trained_head_reads_are_planned_for_its_attribute() {
        let model_of = |block: &str| match block {
            "faceapi_pool" => Some(ModelKind::FaceApi),
            "gear_pool" | "logp_gear_race" => Some(ModelKind::Gear),
            "dlib_age_pool" => Some(ModelKind::DlibAge),
            "mesh_geom" => None,
            b if b.starts_with("emotion_") => Some(ModelKind::Emotion),
            b => panic!("block {b} has no model in this test"),
        };
        let beauty = beauty_head().expect("beauty");
        let shape = face_shape_head().expect("face shape");
        let race = race_head().expect("race");
        for (attr, blocks) in [
            (Attribute::Beauty, beauty.blocks().collect::<Vec<_>>()),
            (Attribute::FaceShape, shape.blocks().collect()),
            (Attribute::Race, race.blocks().collect()),
        ] {
            let planned = models_for(attr);
            for b in &blocks {
                if let Some(m) = model_of(b) {
                    assert!(
                        planned.contains(&m),
                        "{attr} reads {b} ({m:?}): not planned"
                    );
                }
            }
            // And nothing is planned that the head does not read.
            for m in planned {
                assert!(
                    blocks.iter().any(|b| model_of(b) == Some(*m)),
                    "{attr} plans {m:?} but its head reads none of it"
                );
            }
        }
    }

    #[test]
    fn beauty_and_face_shape_map_onto_the_contract() {
        assert_eq!(beauty_from_rating(1.0), 0.0);
        assert_eq!(beauty_from_rating(3.0), 50.0);
        assert_eq!(beauty_from_rating(5.0), 100.0);
        assert_eq!(beauty_from_rating(5.6), 100.0);
        assert_eq!(beauty_from_rating(0.2), 0.0);
        // [heart, oblong, oval, round, square] -> [square, triangle, oval, heart, round]
        let p = face_shape_to_contract(&[0.1, 0.2, 0.3, 0.15, 0.25]).expect("five");
        assert_eq!(p, [0.25, 0.0, 0.5, 0.1, 0.15]);
        assert!(face_shape_to_contract(&[0.5, 0.5]).is_none());
    }

    #[test]
    fn the_embedded_heads_answer_plausibly() {
        let smile = smile_head().expect("smile head loads");
        let mouth = emotion::Mouth {
            open: 0.02,
            width: 0.4,
            corner_lift: 0.01,
        };
        // A clearly happy face with a wide mouth reads as smiling, a neutral one does not.
        let mut happy = [0.01f32; 7];
        happy[emotion::HAPPY] = 0.94;
        let wide = emotion::Mouth {
            width: 0.5,
            corner_lift: 0.03,
            ..mouth
        };
        let p = smile.probability_of(&smile_features(&happy, Some(wide)).expect("x"), "smile");
        assert!(p.expect("p") > 0.5);
        let mut neutral = [0.01f32; 7];
        neutral[6] = 0.94;
        let p = smile.probability_of(&smile_features(&neutral, Some(mouth)).expect("x"), "smile");
        assert!(p.expect("p") < 0.5);

        let age = age_head().expect("age head loads");
        // A 35-year-old by every model stays in the thirties.
        let thirties = AttributeFeatures {
            dlib_age: Some(35.0),
            faceapi_age: Some(35.0),
            gear_age: Some(vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
            ..AttributeFeatures::default()
        };
        let v = age
            .predict(
                &thirties
                    .vector(age.features())
                    .expect("every age feature is named"),
            )
            .expect("age");
        assert!((30.0..40.0).contains(&v), "{v}");

        let gender = gender_head().expect("gender head loads");
        // Models that agree on a clear man (woman) give the head's male (female) answer, for
        // an adult and for a child.
        for (p, male, age) in [
            (0.95, true, 35.0),
            (0.05, false, 35.0),
            (0.95, true, 6.0),
            (0.05, false, 6.0),
        ] {
            let f = AttributeFeatures {
                dlib_male: Some(p),
                faceapi_male: Some(p),
                gear_male: Some(p),
                faceapi_age: Some(age),
                ..AttributeFeatures::default()
            };
            let q = gender
                .probability_of(
                    &f.vector(gender.features())
                        .expect("every gender feature is named"),
                    "male",
                )
                .expect("p");
            assert_eq!(q > 0.5, male, "{q:?}");
        }
    }
}
