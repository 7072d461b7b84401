//! From the jobs' raw outputs to each face's attributes: the fitted heads' use.
//!
//! Why apart from running the models: the jobs may finish in any order and on any thread, and
//! an attribute may read several models (age reads dlib, GEAR and face-api). Combining in one
//! place, in a fixed order, once every job is done, keeps the answer independent of scheduling
//! and keeps each fallback in sight: when a model a head reads did not run, the attribute falls
//! back to one model's own answer, never to a head fed with a missing input.

use super::features::{
    AttributeFeatures, faceapi_features, gear_features, smile_feature_names, smile_features,
};
use super::{AttributeOptions, Attributor, FaceInput, Job, JobOutput};
use super::{age_gender, emotion, race};
use crate::heads::{HeadError, Kind, LinearRegressionHead, SoftmaxHead, embedded};
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
/// the gender models' logits (named in its `features`). When a model it reads did not run, the
/// gender is dlib's (or face-api's without dlib).
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
}

impl Heads {
    /// The embedded heads.
    pub fn embedded() -> Self {
        Self {
            smile: smile_head().ok(),
            age: age_head().ok(),
            gender: gender_head().ok(),
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
        for JobOutput { job, per_face } in outputs {
            match job {
                Job::Gear => {
                    let Some(m) = &self.models.gear else { continue };
                    for ((_, f), outputs) in out.iter_mut().zip(per_face) {
                        if let Some(outputs) = outputs {
                            gear_features(m, &outputs, f);
                        }
                    }
                    if opts.race {
                        for (a, f) in &mut out {
                            if let Some(p) = f.gear_race.as_deref().and_then(race::to_contract)
                                && let Some((i, prob)) = emotion::argmax(&p)
                            {
                                a.race = Some(Labelled::new(race::CONTRACT_RACES[i], prob));
                            }
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
        for (a, f) in &mut out {
            if opts.age {
                a.age = self.age(f);
            }
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
    use super::*;

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
        // Models that agree on a clear man (woman) give the head's male (female) answer.
        for (p, male) in [(0.95, true), (0.05, false)] {
            let f = AttributeFeatures {
                dlib_male: Some(p),
                faceapi_male: Some(p),
                gear_male: Some(p),
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
