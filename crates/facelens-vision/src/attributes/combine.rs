//! From the jobs' raw outputs to each face's attributes: the fitted heads' use.
//!
//! Why apart from running the models: the jobs may finish in any order and on any thread, and
//! an attribute may read several models (age reads dlib, GEAR and face-api). Combining in one
//! place, in a fixed order, once every job is done, keeps the answer independent of scheduling
//! and keeps each fallback in sight: when a model a head reads did not run, the attribute falls
//! back to one model's own answer, never to a head fed with a missing input.

use super::features::{AttributeFeatures, faceapi_features, gear_features, smile_features};
use super::{AttributeOptions, Attributor, FaceInput, Job, JobOutput};
use super::{age_gender, emotion, head, race};
use facelens_core::types::{Attributes, Labelled};

/// The smile head (`models/heads/smile.json`, fitted on dev data by
/// `scripts/fit_attribute_heads.py`): P(smiling) from the fused emotion log-probabilities and the
/// mouth geometry. Feature order: `ln p` of the seven emotions, mouth width, mouth opening,
/// corner lift.
pub const SMILE_HEAD_JSON: &str = include_str!("../../../../models/heads/smile.json");

/// The age head (`models/heads/age.json`, fitted on dev data): an L1 linear regression from the
/// age models' outputs (see its `features`) to years. It corrects each model's pull towards the
/// middle (teens read too old, seniors too young). When a model it reads did not run, the age is
/// dlib's (or face-api's without dlib).
pub const AGE_HEAD_JSON: &str = include_str!("../../../../models/heads/age.json");

/// The gender head (`models/heads/gender.json`, fitted on dev data): a logistic regression over
/// the gender models' logits (see its `features`). When a model it reads did not run, the gender
/// is dlib's (or face-api's without dlib).
pub const GENDER_HEAD_JSON: &str = include_str!("../../../../models/heads/gender.json");

/// The fitted heads the attributes read; each may be absent ([`Attributor::without_heads`]).
#[derive(Clone, Default)]
pub(super) struct Heads {
    pub smile: Option<head::LogisticHead>,
    pub age: Option<head::LinearHead>,
    pub gender: Option<head::LogisticHead>,
}

impl Heads {
    /// The embedded heads (each absent if it does not parse).
    pub fn embedded() -> Self {
        Self {
            smile: head::LogisticHead::from_json(SMILE_HEAD_JSON),
            age: head::LinearHead::from_json(AGE_HEAD_JSON),
            gender: head::LogisticHead::from_json(GENDER_HEAD_JSON),
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
                        .as_ref()
                        .zip(smile_features(&p, f.mouth))
                        .and_then(|(h, x)| h.predict(&x))
                        .and_then(|q| q.get(1).copied())
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
            .as_ref()
            .and_then(|h| h.predict(&f.vector(&h.features)?))
            .or(f.dlib_age)
            .or(f.faceapi_age)
            .map(|v| v.clamp(0.0, 100.0))
    }

    /// The reported P(male): the gender head over the models' logits, or dlib's (face-api's)
    /// when a model the head reads did not run.
    fn p_male(&self, f: &AttributeFeatures) -> Option<f32> {
        self.heads
            .gender
            .as_ref()
            .and_then(|h| {
                let p = h.predict(&f.vector(&h.features)?)?;
                let male = h.labels.iter().position(|l| l == "male")?;
                p.get(male).copied()
            })
            .or(f.dlib_male)
            .or(f.faceapi_male)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::features::smile_feature_names;

    #[test]
    fn embedded_heads_parse_and_match_the_feature_builders() {
        let heads = Heads::embedded();
        let smile = heads.smile.expect("smile head parses");
        let mouth = emotion::Mouth {
            open: 0.02,
            width: 0.4,
            corner_lift: 0.01,
        };
        assert_eq!(smile.features, smile_feature_names());
        assert_eq!(smile.labels, ["none", "smile"]);
        // A clearly happy face with a wide mouth reads as smiling, a neutral one does not.
        let mut happy = [0.01f32; 7];
        happy[emotion::HAPPY] = 0.94;
        let wide = emotion::Mouth {
            width: 0.5,
            corner_lift: 0.03,
            ..mouth
        };
        let p = smile.predict(&smile_features(&happy, Some(wide)).expect("x"));
        assert!(p.expect("p")[1] > 0.5);
        let mut neutral = [0.01f32; 7];
        neutral[6] = 0.94;
        let p = smile.predict(&smile_features(&neutral, Some(mouth)).expect("x"));
        assert!(p.expect("p")[1] < 0.5);

        let age = heads.age.expect("age head parses");
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
                    .vector(&age.features)
                    .expect("every age feature is named"),
            )
            .expect("age");
        assert!((30.0..40.0).contains(&v), "{v}");

        let gender = heads.gender.expect("gender head parses");
        assert_eq!(gender.labels, ["female", "male"]);
        // Models that agree on a clear man (woman) give the head's male (female) answer.
        for (p, male) in [(0.95, true), (0.05, false)] {
            let f = AttributeFeatures {
                dlib_male: Some(p),
                faceapi_male: Some(p),
                gear_male: Some(p),
                ..AttributeFeatures::default()
            };
            let q = gender
                .predict(
                    &f.vector(&gender.features)
                        .expect("every gender feature is named"),
                )
                .expect("p");
            assert_eq!(q[1] > 0.5, male, "{q:?}");
        }
    }
}
