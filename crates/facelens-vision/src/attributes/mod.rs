//! Model-based face attributes: age, gender, emotion, expression and race.
//!
//! Why this shape:
//! * Every attribute is optional twice over: the operator can switch it off ([`AttributeOptions`],
//!   e.g. race or gender for privacy reasons) and a build can lack its model
//!   ([`AttributeModels`] fields are `Option`). Either way the field is omitted from the output,
//!   never invented.
//! * Each model gets the crop framing it was trained on (see [`crop`]): the dlib models a dlib
//!   5-point chip, the others ArcFace-style aligned squares. All crops come from the five detector
//!   landmarks with one similarity transform, so in-plane rotation is undone for free.
//! * The cheap models (dlib age/gender, the two emotion nets, a few ms each) run on the crop and
//!   its mirror image in one batch of two and average the probabilities: test-time flip
//!   averaging cancels part of the left/right bias of a single view. GEAR (~75 ms) runs once.
//! * Raw model outputs are returned beside the labels ([`AttributeFeatures`]) so that
//!   `facelens eval attributes --features-out` can dump them for fitting small heads offline.
//!
//! Eye status, glasses, face type, face shape and beauty are image/mesh heuristics that live in
//! [`crate::heuristics`]; this module only covers what needs a learned model.

pub mod age_gender;
pub mod crop;
pub mod emotion;
pub mod head;
pub mod race;

use crate::mesh::MeshResult;
use crop::{
    DLIB_PADDING, FER_48, UTKFACE_200, aligned_f32, batch_grey, batch_nchw, batch_nhwc,
    dlib_chip_template, flip_h, scaled_template,
};
use facelens_core::Point;
use facelens_core::types::{Attributes, Labelled};
use facelens_imaging::Rgb;
use facelens_infer::{InferError, Model, Tensor};
use serde::Serialize;
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

/// Which attributes to compute. Switching one off skips its model run (when nothing else needs
/// it) and omits the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeOptions {
    pub age: bool,
    pub gender: bool,
    pub emotion: bool,
    pub expression: bool,
    pub race: bool,
    pub beauty: bool,
    pub eye_status: bool,
    pub glasses: bool,
    pub face_shape: bool,
    pub face_type: bool,
    /// Average the cheap models over the crop and its mirror image.
    pub flip: bool,
    /// Let face_type run the age, gender, GEAR and emotion models for its full head even when
    /// their fields are not asked for. Off (the server does this when an operator switches a
    /// model attribute off), face_type uses its image-only head.
    pub face_type_models: bool,
}

impl AttributeOptions {
    /// Every attribute on.
    pub const ALL: AttributeOptions = AttributeOptions {
        age: true,
        gender: true,
        emotion: true,
        expression: true,
        race: true,
        beauty: true,
        eye_status: true,
        glasses: true,
        face_shape: true,
        face_type: true,
        flip: true,
        face_type_models: true,
    };
    /// Every attribute off (geometry only).
    pub const NONE: AttributeOptions = AttributeOptions {
        age: false,
        gender: false,
        emotion: false,
        expression: false,
        race: false,
        beauty: false,
        eye_status: false,
        glasses: false,
        face_shape: false,
        face_type: false,
        flip: true,
        face_type_models: true,
    };

    /// Whether any model-based attribute is on.
    pub fn any_model(&self) -> bool {
        self.age || self.gender || self.emotion || self.expression || self.race
    }

    /// The options the attribute models run with. The face-type head reads the outputs of the
    /// age, gender, GEAR and emotion models, so asking for face_type runs them all; what was
    /// not asked for is removed again by [`AttributeOptions::keep_requested`].
    pub fn for_models(&self) -> AttributeOptions {
        if self.face_type && self.face_type_models {
            AttributeOptions {
                age: true,
                gender: true,
                race: true,
                emotion: true,
                ..*self
            }
        } else {
            *self
        }
    }

    /// Drop the model-based attributes these options did not ask for.
    pub fn keep_requested(&self, a: &mut Attributes) {
        if !self.age {
            a.age = None;
        }
        if !self.gender {
            a.gender = None;
        }
        if !self.race {
            a.race = None;
        }
        if !self.emotion {
            a.emotion = None;
        }
        if !self.expression {
            a.expression = None;
        }
    }
}

impl Default for AttributeOptions {
    fn default() -> Self {
        Self::ALL
    }
}

/// Raw model outputs and features behind the attributes of one face (for offline analysis and
/// head fitting; not part of the contract).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttributeFeatures {
    /// The five detector landmarks the crops were aligned on.
    pub landmarks: [[f32; 2]; 5],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlib_age: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlib_male: Option<f32>,
    /// GEAR `[white, black, asian, indian, other]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gear_race: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gear_male: Option<f32>,
    /// GEAR age bins, see [`age_gender::GEAR_AGE_BINS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gear_age: Option<Vec<f32>>,
    /// face-api's age (years), flip-averaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faceapi_age: Option<f32>,
    /// face-api's P(male), flip-averaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faceapi_male: Option<f32>,
    /// Each emotion model's probabilities (flip-averaged), in [`emotion::EMOTIONS`] order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emotion_models: Vec<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mouth: Option<emotion::Mouth>,
    /// P(smiling) behind the expression (the smile head's output, or P(happy) without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_smile: Option<f32>,
}

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

impl AttributeFeatures {
    /// A raw output by the name the heads' JSON gives it; `None` when its model did not run.
    /// Names: `dlib_age`, `faceapi_age`, `gear_age_<bin>` (`lt20`, `21_25`, `26_30`, `31_40`,
    /// `41_50`, `51_60`, `gt60`), and `logit_dlib_male` / `logit_faceapi_male` /
    /// `logit_gear_male` (`ln(p / (1 − p))`, p clamped to [1e-6, 1 − 1e-6]).
    pub fn named(&self, name: &str) -> Option<f32> {
        let logit = |p: Option<f32>| {
            p.map(|p| {
                let p = p.clamp(1e-6, 1.0 - 1e-6);
                (p / (1.0 - p)).ln()
            })
        };
        match name {
            "dlib_age" => self.dlib_age,
            "faceapi_age" => self.faceapi_age,
            "logit_dlib_male" => logit(self.dlib_male),
            "logit_faceapi_male" => logit(self.faceapi_male),
            "logit_gear_male" => logit(self.gear_male),
            _ => {
                let bin = name.strip_prefix("gear_age_")?;
                let i = GEAR_AGE_FEATURES.iter().position(|b| *b == bin)?;
                self.gear_age.as_deref()?.get(i).copied()
            }
        }
    }

    /// The values of `names` in order; `None` when any is missing.
    pub fn vector(&self, names: &[String]) -> Option<Vec<f32>> {
        names.iter().map(|n| self.named(n)).collect()
    }
}

/// Feature-name suffixes of GEAR's age bins ([`age_gender::GEAR_AGE_BINS`]), in output order.
pub const GEAR_AGE_FEATURES: [&str; 7] =
    ["lt20", "21_25", "26_30", "31_40", "41_50", "51_60", "gt60"];

/// The smile head's input features; `None` without mouth geometry.
pub fn smile_features(p_emotion: &[f32], mouth: Option<emotion::Mouth>) -> Option<Vec<f32>> {
    let m = mouth?;
    let mut x: Vec<f32> = p_emotion.iter().map(|p| p.clamp(1e-6, 1.0).ln()).collect();
    x.extend([m.width, m.open, m.corner_lift]);
    Some(x)
}

/// Crop geometry per model (sizes are the models' input sizes).
const AGE_SIZE: u32 = 64;
const GENDER_SIZE: u32 = 32;
const EMOTION_SIZE: u32 = 64;
const GEAR_SIZE: u32 = 198;
const FACEAPI_SIZE: u32 = 112;
/// Margin of the emotion crop around the measured FER2013 framing: slightly zoomed in (0.62 vs
/// 0.57 FER accuracy at 0 on a dev sample; -0.05 and -0.12 were both 0.61).
pub const EMOTION_PADDING: f32 = -0.08;
/// Margin of the GEAR crop around the measured UTKFace framing (0 was best of -0.05 / 0 / 0.05).
pub const GEAR_PADDING: f32 = 0.0;
/// dlib chip paddings the age model is averaged over (each view also mirrored). Before face-api
/// joined the age head, five paddings (0.14 … 0.26) helped dlib alone (400-face UTKFace dev
/// sample: one view 6.27 MAE, three 6.02, five 5.95); with face-api in the head, one padding
/// gives the same head within 0.02 years (5-fold CV 4.89 against 4.88) for a fifth of the work.
pub const AGE_PADDINGS: [f32; 1] = [DLIB_PADDING];
/// dlib mean RGB.
const DLIB_MEAN: [f32; 3] = [122.782, 117.001, 104.298];

/// Runs the attribute models on one face.
#[derive(Clone, Default)]
pub struct Attributor {
    models: AttributeModels,
    rule: emotion::ExpressionRule,
    smile_head: Option<head::LogisticHead>,
    age_head: Option<head::LinearHead>,
    gender_head: Option<head::LogisticHead>,
}

impl Attributor {
    /// With the embedded smile head (falls back to P(happy) if it does not parse).
    pub fn new(models: AttributeModels) -> Self {
        Self {
            models,
            rule: emotion::ExpressionRule::default(),
            smile_head: head::LogisticHead::from_json(SMILE_HEAD_JSON),
            age_head: head::LinearHead::from_json(AGE_HEAD_JSON),
            gender_head: head::LogisticHead::from_json(GENDER_HEAD_JSON),
        }
    }

    /// Without any fitted head: P(smiling) is the emotion models' P(happy).
    pub fn without_heads(models: AttributeModels) -> Self {
        Self {
            smile_head: None,
            age_head: None,
            gender_head: None,
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

    /// The model runs `opts` needs (the models present and asked for), in the order a caller
    /// with several threads hands them out: GEAR (by far the longest) first, then dlib age (two
    /// views), face-api (two 112 × 112 views), the emotion nets and dlib gender, so that the
    /// long job starts first and the short ones fill the other threads.
    pub fn jobs(&self, opts: &AttributeOptions) -> Vec<Job> {
        let mut jobs = Vec::new();
        if (opts.race || opts.age) && self.models.gear.is_some() {
            jobs.push(Job::Gear);
        }
        if opts.age && self.models.age.is_some() {
            jobs.push(Job::Age);
        }
        if (opts.age || opts.gender) && self.models.faceapi.is_some() {
            jobs.push(Job::FaceApi);
        }
        if opts.emotion || opts.expression {
            jobs.extend((0..self.models.emotion.len()).map(Job::Emotion));
        }
        if opts.gender && self.models.gender.is_some() {
            jobs.push(Job::Gender);
        }
        jobs
    }

    /// The model runs a request for `requested` needs: [`Attributor::jobs`] of
    /// [`AttributeOptions::for_models`], less face-api when neither age nor gender was asked
    /// for. face_type switches age and gender on for its head's inputs (dlib, GEAR, the emotion
    /// nets), but that head does not read face-api, whose run would be wasted (about 4 ms a face
    /// on onnxruntime, 24 on rten).
    pub fn jobs_for(&self, requested: &AttributeOptions) -> Vec<Job> {
        let mut jobs = self.jobs(&requested.for_models());
        if !(requested.age || requested.gender) {
            jobs.retain(|j| *j != Job::FaceApi);
        }
        jobs
    }

    /// Run one job's model over the views of every face (`lms`: each face's five landmarks).
    /// Jobs share nothing, so they may run at the same time on different threads.
    pub fn run_job(
        &self,
        job: Job,
        img: &Rgb,
        lms: &[[Point; 5]],
        opts: &AttributeOptions,
    ) -> Result<JobOutput, InferError> {
        let dlib =
            |c: &[&[f32]], n: u32| batch_nchw(c, n as usize, n as usize, DLIB_MEAN, 1.0 / 256.0);
        let per_face = match job {
            Job::Gear => {
                let Some(m) = &self.models.gear else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = scaled_template(&UTKFACE_200, 200.0, GEAR_SIZE as f32, GEAR_PADDING);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    GEAR_SIZE,
                    false,
                    |c| batch_nhwc(c, 1.0 / 255.0),
                    Layout::Nhwc,
                )?
            }
            Job::Age => {
                let Some(m) = &self.models.age else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpls = AGE_PADDINGS.map(|pad| dlib_chip_template(AGE_SIZE as f32, pad));
                run_views(
                    m,
                    img,
                    lms,
                    &tpls,
                    AGE_SIZE,
                    opts.flip,
                    |c| dlib(c, AGE_SIZE),
                    Layout::Nchw,
                )?
            }
            Job::FaceApi => {
                let Some(m) = &self.models.faceapi else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = scaled_template(&UTKFACE_200, 200.0, FACEAPI_SIZE as f32, 0.0);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    FACEAPI_SIZE,
                    opts.flip,
                    |c| {
                        batch_nchw(
                            c,
                            FACEAPI_SIZE as usize,
                            FACEAPI_SIZE as usize,
                            [0.0; 3],
                            1.0,
                        )
                    },
                    Layout::Nchw,
                )?
            }
            Job::Gender => {
                let Some(m) = &self.models.gender else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = dlib_chip_template(GENDER_SIZE as f32, DLIB_PADDING);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    GENDER_SIZE,
                    opts.flip,
                    |c| dlib(c, GENDER_SIZE),
                    Layout::Nchw,
                )?
            }
            Job::Emotion(i) => {
                let Some(m) = self.models.emotion.get(i) else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = scaled_template(&FER_48, 48.0, EMOTION_SIZE as f32, EMOTION_PADDING);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    EMOTION_SIZE,
                    opts.flip,
                    |c| batch_grey(c, |g| (g - 0.5) * 2.0),
                    Layout::Grey,
                )?
            }
        };
        Ok(JobOutput { job, per_face })
    }

    /// Turn the jobs' raw outputs into each face's attributes and features. `outputs` may come
    /// in any order; they are read in a fixed one (GEAR before age, which combines both; the
    /// emotion nets in model order), so the result does not depend on which job finished first.
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
                        .smile_head
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
}

impl Attributor {
    /// The reported age: the age head over the models' outputs, or dlib's (face-api's) age when a
    /// model the head reads did not run.
    fn age(&self, f: &AttributeFeatures) -> Option<f32> {
        self.age_head
            .as_ref()
            .and_then(|h| h.predict(&f.vector(&h.features)?))
            .or(f.dlib_age)
            .or(f.faceapi_age)
            .map(|v| v.clamp(0.0, 100.0))
    }

    /// The reported P(male): the gender head over the models' logits, or dlib's (face-api's)
    /// when a model the head reads did not run.
    fn p_male(&self, f: &AttributeFeatures) -> Option<f32> {
        self.gender_head
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

/// One model run of [`Attributor::run_batch`] (all faces of the image at once). The order of
/// the variants is the order [`Attributor::combine`] reads them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    /// GEAR: race, and the age bins the age head combines with the other age models.
    Gear,
    /// face-api AgeGenderNet (and its mirror image): age and gender.
    FaceApi,
    /// dlib age over [`AGE_PADDINGS`] (and their mirror images).
    Age,
    /// dlib gender.
    Gender,
    /// The emotion net at this index of [`AttributeModels::emotion`].
    Emotion(usize),
}

/// The raw result of one [`Job`]: per face, each model output averaged over the face's views
/// (`None` when the face's landmarks give no crop).
#[derive(Debug, Clone)]
pub struct JobOutput {
    job: Job,
    per_face: Vec<Option<Vec<Vec<f32>>>>,
}

impl JobOutput {
    fn empty(job: Job, faces: usize) -> Self {
        Self {
            job,
            per_face: vec![None; faces],
        }
    }
}

/// One face handed to [`Attributor::run_batch`].
#[derive(Clone, Copy)]
pub struct FaceInput<'a> {
    /// The five detector landmarks the crops are aligned on.
    pub landmarks: &'a [Point; 5],
    /// The face mesh (for the mouth geometry of the expression), when computed.
    pub mesh: Option<&'a MeshResult>,
}

/// Most views (crops) per model run: bounds the activation memory of a crowd photo (GEAR holds
/// ~13 MB of activations per view) while keeping batches large enough to amortise a run.
pub const MAX_BATCH: usize = 16;

/// GEAR's three heads for one face, by output name (graph order as a fallback).
fn gear_features(m: &Arc<dyn Model>, outputs: &[Vec<f32>], f: &mut AttributeFeatures) {
    let get = |name, fallback| output_named(m, outputs, name, fallback).cloned();
    f.gear_race = get("race_output", 0).filter(|v| v.len() == 5);
    f.gear_male = get("gender_output", 1)
        .filter(|v| v.len() == 2)
        .map(|v| v[0] / (v[0] + v[1]).max(1e-9));
    f.gear_age = get("age_output", 2).filter(|v| v.len() == 7);
}

/// face-api's two outputs for one face, by output name (graph order as a fallback).
fn faceapi_features(m: &Arc<dyn Model>, outputs: &[Vec<f32>], f: &mut AttributeFeatures) {
    let get = |name, fallback| output_named(m, outputs, name, fallback);
    f.faceapi_age = get("age", 0)
        .filter(|v| v.len() == 1)
        .map(|v| v[0])
        .filter(|v| v.is_finite());
    f.faceapi_male = get("gender", 1)
        .filter(|v| v.len() == 2)
        .map(|v| v[0] / (v[0] + v[1]).max(1e-9))
        .filter(|v| v.is_finite());
}

/// The output of `m` called `name` among `outputs` (in graph order), or the one at `fallback`
/// when the graph does not name it so.
fn output_named<'a>(
    m: &Arc<dyn Model>,
    outputs: &'a [Vec<f32>],
    name: &str,
    fallback: usize,
) -> Option<&'a Vec<f32>> {
    outputs.get(m.output_index(name).unwrap_or(fallback))
}

#[derive(Clone, Copy)]
enum Layout {
    /// `[b, 3, n, n]`
    Nchw,
    /// `[b, n, n, 3]`
    Nhwc,
    /// `[b, n, n, 1]`
    Grey,
}

/// Crop every face once per template (view), optionally add each crop's mirror image, run the
/// views through `m` in batches of at most [`MAX_BATCH`], and average each output over a face's
/// views. Per face: every output's row mean in graph order, or `None` when its landmarks are
/// degenerate (no crop).
#[allow(clippy::too_many_arguments)]
fn run_views(
    m: &Arc<dyn Model>,
    img: &Rgb,
    faces: &[[Point; 5]],
    tpls: &[[Point; 5]],
    size: u32,
    flip: bool,
    to_tensor: impl Fn(&[&[f32]]) -> Vec<f32>,
    layout: Layout,
) -> Result<Vec<Option<Vec<Vec<f32>>>>, InferError> {
    let n = size as usize;
    // (face index, view) for every face whose every template gives a crop.
    let mut views: Vec<(usize, Vec<f32>)> = Vec::new();
    let per_face = tpls.len() * if flip { 2 } else { 1 };
    for (i, lm) in faces.iter().enumerate() {
        let mut mine = Vec::with_capacity(per_face);
        for tpl in tpls {
            let Some((crop, _)) = aligned_f32(img, lm, tpl, size) else {
                mine.clear();
                break;
            };
            if flip {
                mine.push(flip_h(&crop, n, n));
            }
            mine.push(crop);
        }
        views.extend(mine.into_iter().map(|v| (i, v)));
    }
    let mut sums: Vec<Option<Vec<Vec<f32>>>> = vec![None; faces.len()];
    if per_face == 0 {
        return Ok(sums);
    }
    for chunk in views.chunks(MAX_BATCH) {
        let crops: Vec<&[f32]> = chunk.iter().map(|(_, v)| v.as_slice()).collect();
        let b = crops.len();
        let shape = match layout {
            Layout::Nchw => vec![b, 3, n, n],
            Layout::Nhwc => vec![b, n, n, 3],
            Layout::Grey => vec![b, n, n, 1],
        };
        let outputs = m.run(&Tensor {
            shape,
            data: to_tensor(&crops),
        })?;
        for (o, t) in outputs.iter().enumerate() {
            if t.data.is_empty() || !t.data.len().is_multiple_of(b) {
                return Err(InferError::Run {
                    name: m.name().to_string(),
                    reason: format!("output {o} does not split into {b} rows"),
                });
            }
            let k = t.data.len() / b;
            for ((face, _), row) in chunk.iter().zip(t.data.chunks_exact(k)) {
                let acc = sums[*face].get_or_insert_with(|| vec![Vec::new(); outputs.len()]);
                let Some(slot) = acc.get_mut(o) else { continue };
                if slot.is_empty() {
                    *slot = vec![0.0; k];
                }
                // Divide each row before adding, as `mean_rows` does.
                for (s, v) in slot.iter_mut().zip(row) {
                    *s += v / per_face as f32;
                }
            }
        }
    }
    Ok(sums)
}

/// Mean of `rows` equal rows laid out back to back; `None` when the length does not divide.
pub fn mean_rows(data: &[f32], rows: usize) -> Option<Vec<f32>> {
    if rows == 0 || data.is_empty() || !data.len().is_multiple_of(rows) {
        return None;
    }
    let k = data.len() / rows;
    let mut out = vec![0.0f32; k];
    for row in data.chunks_exact(k) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v / rows as f32;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn face_type_runs_its_input_models_and_returns_only_what_was_asked() {
        let only_face_type = AttributeOptions {
            face_type: true,
            ..AttributeOptions::NONE
        };
        let run = only_face_type.for_models();
        assert!(run.age && run.gender && run.race && run.emotion && !run.expression);
        assert_eq!(AttributeOptions::NONE.for_models(), AttributeOptions::NONE);
        let image_only = AttributeOptions {
            face_type_models: false,
            ..only_face_type
        };
        assert_eq!(image_only.for_models(), image_only);
        let mut a = Attributes {
            age: Some(30.0),
            gender: Some(Labelled::new("male", 0.9)),
            race: Some(Labelled::new("white", 0.9)),
            emotion: Some(Labelled::new("happy", 0.9)),
            expression: Some(Labelled::new("smile", 0.9)),
            ..Attributes::default()
        };
        only_face_type.keep_requested(&mut a);
        assert_eq!(a, Attributes::default());
        let mut b = Attributes {
            age: Some(30.0),
            ..Attributes::default()
        };
        AttributeOptions::ALL.keep_requested(&mut b);
        assert_eq!(b.age, Some(30.0));
    }

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
        // Switched off: no field, no run.
        let before = g.seen.lock().expect("lock").len();
        let opts = AttributeOptions {
            gender: false,
            ..AttributeOptions::ALL
        };
        let (a, _) = att.run(&img, &face_landmarks(), None, &opts).expect("run");
        assert!(a.gender.is_none());
        assert_eq!(g.seen.lock().expect("lock").len(), before);
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
    fn face_type_alone_skips_face_api_which_its_head_does_not_read() {
        let m = || -> Arc<dyn Model> {
            Arc::new(MeanModel {
                names: vec!["out".into()],
                calls: Mutex::new(Vec::new()),
            })
        };
        let att = Attributor::new(AttributeModels {
            age: Some(m()),
            gender: Some(m()),
            emotion: vec![m(), m()],
            gear: Some(m()),
            faceapi: Some(m()),
        });
        let only_face_type = AttributeOptions {
            face_type: true,
            ..AttributeOptions::NONE
        };
        assert_eq!(
            att.jobs_for(&only_face_type),
            vec![
                Job::Gear,
                Job::Age,
                Job::Emotion(0),
                Job::Emotion(1),
                Job::Gender
            ]
        );
        let gender = AttributeOptions {
            gender: true,
            ..only_face_type
        };
        assert!(att.jobs_for(&gender).contains(&Job::FaceApi));
        assert!(att.jobs_for(&AttributeOptions::ALL).contains(&Job::FaceApi));
        assert_eq!(
            att.jobs_for(&AttributeOptions::ALL),
            att.jobs(&AttributeOptions::ALL)
        );
        assert!(att.jobs_for(&AttributeOptions::NONE).is_empty());
        // The image and mesh heuristics need no model run (the pipeline relies on this).
        let heuristics_only = AttributeOptions {
            eye_status: true,
            glasses: true,
            face_shape: true,
            beauty: true,
            ..AttributeOptions::NONE
        };
        assert!(att.jobs_for(&heuristics_only).is_empty());
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
    fn embedded_heads_parse_and_match_the_feature_builders() {
        let smile = head::LogisticHead::from_json(SMILE_HEAD_JSON).expect("smile head parses");
        let mouth = emotion::Mouth {
            open: 0.02,
            width: 0.4,
            corner_lift: 0.01,
        };
        let x = smile_features(&[1.0 / 7.0; 7], Some(mouth)).expect("features");
        assert_eq!(x.len(), smile.features.len());
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

        let age = head::LinearHead::from_json(AGE_HEAD_JSON).expect("age head parses");
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

        let gender = head::LogisticHead::from_json(GENDER_HEAD_JSON).expect("gender head parses");
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

    #[test]
    fn named_features_cover_the_raw_outputs() {
        let f = AttributeFeatures {
            dlib_age: Some(20.0),
            dlib_male: Some(0.5),
            gear_age: Some(vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
            faceapi_male: Some(1.0),
            ..AttributeFeatures::default()
        };
        assert_eq!(f.named("dlib_age"), Some(20.0));
        assert_eq!(f.named("logit_dlib_male"), Some(0.0));
        assert_eq!(f.named("gear_age_gt60"), Some(0.6));
        assert_eq!(f.named("gear_age_lt20"), Some(0.0));
        // Clamped, so a certain model gives a finite logit.
        assert!(
            f.named("logit_faceapi_male")
                .is_some_and(|v| v.is_finite() && v > 10.0)
        );
        assert_eq!(f.named("faceapi_age"), None);
        assert_eq!(f.named("gear_age_99"), None);
        assert_eq!(f.named("unknown"), None);
        assert_eq!(f.vector(&["dlib_age".into(), "faceapi_age".into()]), None);
    }

    #[test]
    fn mean_rows_checks_shape() {
        assert_eq!(mean_rows(&[1.0, 2.0, 3.0, 4.0], 2), Some(vec![2.0, 3.0]));
        assert_eq!(mean_rows(&[1.0, 2.0, 3.0], 2), None);
        assert_eq!(mean_rows(&[], 1), None);
    }
}
