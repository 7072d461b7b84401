//! Which model runs a request needs, and in what order they are handed out.
//!
//! Why here and only here: which models an attribute reads used to be spread over several
//! layers (an option that switched other attributes on for face_type, a job list that took
//! face-api back out, string matches in the server). [`models_for`] is now the one table; the
//! job list, [`AttributeOptions::without`] and [`AttributeOptions::reads_models`] are all
//! derived from it, so adding a model or an attribute means editing one match.

use super::{AttributeOptions, Attributor, options::Attribute};

/// A kind of attribute model ([`super::AttributeModels`] holds the loaded ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelKind {
    /// GEAR: race, gender and age bins.
    Gear,
    /// dlib "Cydral" age.
    DlibAge,
    /// face-api AgeGenderNet: age and gender.
    FaceApi,
    /// The emotion nets (all of them; their probabilities are averaged).
    Emotion,
    /// dlib "Cydral" gender.
    DlibGender,
}

/// The models whose outputs `attribute` reads: its head's inputs (the age head reads dlib,
/// GEAR's bins and face-api; the gender head dlib and face-api; the expression the emotion
/// nets and the mesh). For face_type these are its full head's inputs (dlib age and gender,
/// GEAR, the emotion nets — not face-api), used only while
/// [`AttributeOptions::face_type_models`] is on; its image-only head reads none. Beauty and
/// face shape read the blocks of their trained heads ([`super::trained`]; a test checks this
/// table against the embedded heads), face shape the mesh as well. The image and mesh
/// measures (eye status, glasses) read none.
pub fn models_for(attribute: Attribute) -> &'static [ModelKind] {
    use ModelKind::*;
    match attribute {
        Attribute::Age => &[Gear, DlibAge, FaceApi],
        Attribute::Gender => &[FaceApi, DlibGender],
        Attribute::Race => &[Gear],
        Attribute::Emotion | Attribute::Expression => &[Emotion],
        Attribute::FaceType => &[Gear, DlibAge, Emotion, DlibGender],
        Attribute::Beauty => &[DlibAge, FaceApi, Emotion],
        Attribute::FaceShape => &[Gear, DlibAge, FaceApi, Emotion],
        Attribute::Glasses | Attribute::EyeStatus => &[],
    }
}

/// Every model some asked-for attribute of `opts` reads ([`models_for`]), without repeats.
pub fn models_needed(opts: &AttributeOptions) -> Vec<ModelKind> {
    let mut kinds: Vec<ModelKind> = opts
        .requested()
        .filter(|a| *a != Attribute::FaceType || opts.face_type_models)
        .flat_map(|a| models_for(a).iter().copied())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// One model run of [`Attributor::run_batch`] (all faces of the image at once). The order of
/// the variants is the order [`Attributor::combine`] reads them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    /// GEAR: race, and the age bins the age head combines with the other age models.
    Gear,
    /// face-api AgeGenderNet (and its mirror image): age and gender.
    FaceApi,
    /// dlib age over [`super::batch::AGE_PADDINGS`] (and their mirror images).
    Age,
    /// dlib gender.
    Gender,
    /// The emotion net at this index of [`super::AttributeModels::emotion`].
    Emotion(usize),
}

impl Attributor {
    /// The model `job` runs, if loaded.
    pub(super) fn model_of(&self, job: Job) -> Option<&std::sync::Arc<dyn facelens_infer::Model>> {
        let m = &self.models;
        match job {
            Job::Gear => m.gear.as_ref(),
            Job::FaceApi => m.faceapi.as_ref(),
            Job::Age => m.age.as_ref(),
            Job::Gender => m.gender.as_ref(),
            Job::Emotion(i) => m.emotion.get(i),
        }
    }

    /// The model runs `opts` needs ([`models_needed`]) among the models present, in the order
    /// a caller with several threads hands them out: GEAR (by far the longest) first, then
    /// dlib age, face-api (two 112 × 112 views), the emotion nets and dlib gender, so that the
    /// long job starts first and the short ones fill the other threads.
    pub fn jobs(&self, opts: &AttributeOptions) -> Vec<Job> {
        let needed = models_needed(opts);
        let needs = |k: ModelKind| needed.contains(&k);
        let m = &self.models;
        let mut jobs = Vec::new();
        if needs(ModelKind::Gear) && m.gear.is_some() {
            jobs.push(Job::Gear);
        }
        if needs(ModelKind::DlibAge) && m.age.is_some() {
            jobs.push(Job::Age);
        }
        if needs(ModelKind::FaceApi) && m.faceapi.is_some() {
            jobs.push(Job::FaceApi);
        }
        if needs(ModelKind::Emotion) {
            jobs.extend((0..m.emotion.len()).map(Job::Emotion));
        }
        if needs(ModelKind::DlibGender) && m.gender.is_some() {
            jobs.push(Job::Gender);
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::super::AttributeModels;
    use super::*;
    use facelens_infer::{InferError, Model, Tensor};
    use std::sync::Arc;

    struct Idle;

    impl Model for Idle {
        fn name(&self) -> &str {
            "idle"
        }
        fn output_names(&self) -> &[String] {
            &[]
        }
        fn run(&self, _: &Tensor) -> Result<Vec<Tensor>, InferError> {
            Ok(Vec::new())
        }
    }

    fn every_model() -> Attributor {
        let m = || -> Arc<dyn Model> { Arc::new(Idle) };
        Attributor::new(AttributeModels {
            age: Some(m()),
            gender: Some(m()),
            emotion: vec![m(), m()],
            gear: Some(m()),
            faceapi: Some(m()),
        })
    }

    #[test]
    fn face_type_alone_runs_its_full_heads_inputs_but_not_face_api() {
        let att = every_model();
        let only_face_type = AttributeOptions::only(&[Attribute::FaceType]);
        assert_eq!(
            att.jobs(&only_face_type),
            vec![
                Job::Gear,
                Job::Age,
                Job::Emotion(0),
                Job::Emotion(1),
                Job::Gender
            ]
        );
        // Its image-only head needs no model.
        let image_only = AttributeOptions {
            face_type_models: false,
            ..only_face_type
        };
        assert!(att.jobs(&image_only).is_empty());
        let gender = AttributeOptions {
            gender: true,
            ..only_face_type
        };
        assert!(att.jobs(&gender).contains(&Job::FaceApi));
        assert_eq!(
            att.jobs(&AttributeOptions::ALL),
            vec![
                Job::Gear,
                Job::Age,
                Job::FaceApi,
                Job::Emotion(0),
                Job::Emotion(1),
                Job::Gender
            ]
        );
        assert!(att.jobs(&AttributeOptions::NONE).is_empty());
    }

    #[test]
    fn each_attribute_runs_the_models_its_head_reads() {
        let att = every_model();
        let jobs = |a: Attribute| att.jobs(&AttributeOptions::only(&[a]));
        assert_eq!(
            jobs(Attribute::Age),
            vec![Job::Gear, Job::Age, Job::FaceApi]
        );
        assert_eq!(jobs(Attribute::Gender), vec![Job::FaceApi, Job::Gender]);
        assert_eq!(jobs(Attribute::Race), vec![Job::Gear]);
        for a in [Attribute::Emotion, Attribute::Expression] {
            assert_eq!(jobs(a), vec![Job::Emotion(0), Job::Emotion(1)]);
        }
        // The image and mesh measures need no model run (the pipeline relies on this).
        for a in [Attribute::EyeStatus, Attribute::Glasses] {
            assert!(jobs(a).is_empty(), "{a}");
        }
        assert_eq!(
            jobs(Attribute::Beauty),
            vec![Job::Age, Job::FaceApi, Job::Emotion(0), Job::Emotion(1)]
        );
        assert_eq!(
            jobs(Attribute::FaceShape),
            vec![
                Job::Gear,
                Job::Age,
                Job::FaceApi,
                Job::Emotion(0),
                Job::Emotion(1)
            ]
        );
        // A model that is not loaded is not run.
        let no_gear = Attributor::new(AttributeModels {
            gear: None,
            ..every_model().models
        });
        assert_eq!(
            no_gear.jobs(&AttributeOptions::only(&[Attribute::Age])),
            vec![Job::Age, Job::FaceApi]
        );
    }
}
