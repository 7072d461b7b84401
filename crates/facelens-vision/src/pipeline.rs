//! The pipeline: decode → detect → keep the largest faces → mesh → pose and quality →
//! attributes.
//!
//! The library takes loaded models and does no I/O: the binary decides where models come from
//! (embedded bytes by default) and which backend runs them. The order of the stages is chosen
//! for cost: the per-face stages run only on the faces that will be returned (`max_faces`, the
//! contract's `face_num`), so a crowd photo asking for one face pays for one mesh (and one set
//! of attribute model runs).
//!
//! The per-face stage is six independent model runs (mesh, GEAR, dlib age, two emotion nets,
//! dlib gender), each small: one model's operators split across two threads gain little, two
//! models side by side gain nearly twice. So an analysis that has the pipeline to itself runs
//! them as jobs on one thread per core, each model single-threaded; beside other analyses the
//! cores are busy anyway and it runs them one after another
//! (docs/journal/2026-11-29-3-perf-per-face-jobs.md, "The change").

use crate::attributes::{
    AttributeFeatures, AttributeModels, AttributeOptions, Attributor, FaceInput, Job, JobOutput,
};
use crate::closeup::CloseUpDetector;
use crate::detect::{Detection, Detector, DetectorConfig};
use crate::heuristics;
use crate::mesh::{FaceMesh, MeshResult, head_pose};
use crate::quality;
use crate::retry::RetryChain;
use facelens_core::ErrorCode;
use facelens_core::Point;
use facelens_core::error::FaceError;
use facelens_core::types::{Analysis, Attributes, Face, Pose, Timings};
use facelens_imaging::{DecodeLimits, Rgb, decode};
use facelens_infer::{Backend, InferError, Load, Model, ModelBytes};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// The loaded models the pipeline needs.
#[derive(Clone)]
pub struct Models {
    pub detector: Arc<dyn Model>,
    /// BlazeFace short-range, the close-up fallback of the retry (see [`crate::closeup`]).
    pub closeup: Option<Arc<dyn Model>>,
    pub mesh: Arc<dyn Model>,
    /// Attribute models; any may be absent (its attributes are then omitted).
    pub attributes: AttributeModels,
    /// The weights the models with an int8 version were loaded with.
    pub precision: Precision,
    /// The load signal the models' backend counts its runs in; the pipeline counts its
    /// analyses there too ([`Load`]).
    pub load: Load,
}

/// Which weights the models that have an int8 version (GEAR, dlib age, and RetinaFace's
/// feature pyramid and context modules) run with.
///
/// Why two: onnxruntime runs these dense convolutions 2-3x as fast in int8 (with VNNI; less
/// without), at a measured cost on the dev sets (docs/quantization.md); rten runs int8 graphs
/// slower than f32, so it keeps f32. RetinaFace's depthwise backbone stays f32 (quantized, it
/// cost five AP points); the mesh and the other attribute models are always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// The published f32 weights.
    F32,
    /// The static int8 versions (`models/*_int8.onnx`).
    Int8,
}

impl Precision {
    /// `auto`: int8 on onnxruntime, f32 on rten. An explicit `int8` on rten is refused: rten has
    /// no fused int8 convolution for these graphs and would run them slower than f32.
    pub fn resolve(requested: &str, backend: &str) -> Result<Precision, String> {
        match (requested, backend) {
            ("f32", _) => Ok(Precision::F32),
            ("auto", "onnxruntime") | ("int8", "onnxruntime") => Ok(Precision::Int8),
            ("auto", _) => Ok(Precision::F32),
            ("int8", other) => Err(format!(
                "precision int8 needs the onnxruntime backend (the {other} backend runs the \
                 int8 models slower than f32); choose precision f32 or auto"
            )),
            (other, _) => Err(format!(
                "unknown precision {other:?}: expected auto, f32 or int8"
            )),
        }
    }

    /// The embedded model id for `id` at this precision.
    fn model_id(self, id: &'static str) -> &'static str {
        match (self, id) {
            (Precision::Int8, "gear") => "gear_int8",
            (Precision::Int8, "dlib_age") => "dlib_age_int8",
            (Precision::Int8, "retinaface_mnet025") => "retinaface_mnet025_int8",
            _ => id,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

impl Models {
    /// Load the models embedded in the binary with `backend`, all f32.
    pub fn load_embedded(backend: &dyn Backend) -> Result<Self, InferError> {
        Self::load_embedded_with(backend, Precision::F32)
    }

    /// Load the models embedded in the binary with `backend`, those with an int8 version at
    /// `precision`.
    pub fn load_embedded_with(
        backend: &dyn Backend,
        precision: Precision,
    ) -> Result<Self, InferError> {
        let load = |id: &'static str| {
            let file = precision.model_id(id);
            let m = facelens_models::get(file).ok_or_else(|| InferError::Load {
                name: file.to_string(),
                reason: "not embedded in this build".into(),
            })?;
            // Loaded under the stable id: metrics and errors name the model, not its weights.
            backend.load(id, ModelBytes::Static(m.bytes))
        };
        Ok(Self {
            detector: load("retinaface_mnet025")?,
            closeup: Some(load("blazeface_short")?),
            mesh: load("face_mesh")?,
            attributes: AttributeModels {
                age: Some(load("dlib_age")?),
                gender: Some(load("dlib_gender")?),
                emotion: vec![load("emotion_human")?, load("emotion_fer")?],
                gear: Some(load("gear")?),
                faceapi: Some(load("faceapi_age_gender")?),
            },
            precision,
            load: backend.load_signal().clone(),
        })
    }
}

/// Per-call options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Return at most this many faces, the largest first (the contract's `face_num`).
    pub max_faces: usize,
    pub detector: DetectorConfig,
    /// Retry on a padded canvas when no face is found (faces that fill the frame).
    pub retry_padded: bool,
    /// Include the 468 mesh points in each face.
    pub include_mesh: bool,
    /// Which attributes to compute (an attribute switched off is omitted from the output).
    pub attributes: AttributeOptions,
    /// Which faces are kept when there are more than `max_faces`, and their order.
    pub order: FaceOrder,
}

/// Which faces a request keeps, in what order: the cut to `max_faces` happens before the
/// per-face stages, so only the faces returned cost a mesh and attribute runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaceOrder {
    /// Largest box first (the contract's order).
    #[default]
    Largest,
    /// Box centre nearest the image centre first (Baidu's `face_sort_type=1`).
    NearestCentre,
}

/// Sort `dets` by `order` in a `w × h` image and keep the first `max`.
pub fn keep_faces(dets: &mut Vec<Detection>, order: FaceOrder, max: usize, w: u32, h: u32) {
    match order {
        FaceOrder::Largest => dets.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area())),
        FaceOrder::NearestCentre => {
            let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
            let dist = |d: &Detection| {
                let c = d.bbox.center();
                (c.x - cx).powi(2) + (c.y - cy).powi(2)
            };
            dets.sort_by(|a, b| dist(a).total_cmp(&dist(b)));
        }
    }
    dets.truncate(max);
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_faces: 10,
            detector: DetectorConfig::fast(640),
            retry_padded: true,
            include_mesh: false,
            attributes: AttributeOptions::default(),
            order: FaceOrder::Largest,
        }
    }
}

/// The vision pipeline.
pub struct Pipeline {
    detector: RetryChain,
    mesh: FaceMesh,
    attributor: Attributor,
    precision: Precision,
    /// Threads the per-face stage may use when one analysis has the machine to itself.
    stage_threads: usize,
    /// Analyses and model runs in progress, shared with the models' backend.
    load: Load,
}

impl Pipeline {
    pub fn new(models: Models) -> Result<Self, InferError> {
        Ok(Self {
            detector: {
                let closeup = models.closeup.map(CloseUpDetector::new).transpose()?;
                RetryChain::new(Detector::new(models.detector)?, closeup)
            },
            mesh: FaceMesh::new(models.mesh)?,
            attributor: Attributor::new(models.attributes),
            precision: models.precision,
            stage_threads: available_cores(),
            load: models.load,
        })
    }

    /// Threads the per-face stage (mesh and attribute models) may use while this is the only
    /// analysis in progress (0 = one per core, the default; 1 = always one after another).
    /// Beside another analysis it always runs on the calling thread: the cores are busy then.
    pub fn with_stage_threads(mut self, threads: usize) -> Self {
        self.stage_threads = if threads == 0 {
            available_cores()
        } else {
            threads
        };
        self
    }

    /// The weights the models with an int8 version run with.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Detection only (no per-face stages), all faces, best score first.
    pub fn detect(&self, img: &Rgb, cfg: &DetectorConfig) -> Result<Vec<Detection>, InferError> {
        self.detector.detector().detect(img, cfg)
    }

    /// Detection with the retries of [`RetryChain::detect_with_retry`] (padded, grey, close-up).
    pub fn detect_with_retry(
        &self,
        img: &Rgb,
        cfg: &DetectorConfig,
    ) -> Result<Vec<Detection>, InferError> {
        self.detector.detect_with_retry(img, cfg)
    }

    /// Analyse an upright image.
    pub fn analyze_image(
        &self,
        img: &Rgb,
        opts: &Options,
        timings: &mut Timings,
    ) -> Result<Vec<Face>, InferError> {
        Ok(self
            .analyze_image_with_features(img, opts, timings)?
            .into_iter()
            .map(|(face, _)| face)
            .collect())
    }

    /// Like [`Pipeline::analyze_image`], also returning the raw attribute-model outputs of each
    /// face (for evaluation and head fitting).
    pub fn analyze_image_with_features(
        &self,
        img: &Rgb,
        opts: &Options,
        timings: &mut Timings,
    ) -> Result<Vec<(Face, AttributeFeatures)>, InferError> {
        let analysis = self.load.analysis();
        let alone = analysis.alone();
        let t = Instant::now();
        let mut dets = if opts.retry_padded {
            self.detector.detect_with_retry(img, &opts.detector)?
        } else {
            self.detector.detector().detect(img, &opts.detector)?
        };
        timings.detect_ms = ms(t);
        keep_faces(
            &mut dets,
            opts.order,
            opts.max_faces,
            img.width(),
            img.height(),
        );
        let t = Instant::now();
        // Every attribute model runs once for all the faces (batched). The mesh and the
        // attribute models only need the detector's landmarks, so they are independent jobs:
        // when this analysis has the machine to itself they run side by side, one per core.
        let requested = &opts.attributes;
        // Empty when no asked-for attribute reads a model.
        let jobs = self.attributor.jobs(requested);
        let lms: Vec<[Point; 5]> = dets.iter().map(|d| d.landmarks).collect();
        let threads = if alone && !dets.is_empty() {
            self.stage_threads.min(jobs.len() + 1)
        } else {
            1
        };
        // Costliest first, so that the threads finish together: GEAR, dlib age, the mesh,
        // face-api, the emotion nets, dlib gender.
        let mut tasks: Vec<Task> = jobs.into_iter().map(Task::Attribute).collect();
        tasks.insert(tasks.len().min(2), Task::Mesh);
        let mut mesh_ms = 0.0;
        let mut meshes = Vec::new();
        let mut outputs = Vec::new();
        for out in run_tasks(tasks, threads, &self.load, |task| {
            let t = Instant::now();
            let out = match task {
                Task::Mesh => TaskOutput::Mesh(
                    dets.iter()
                        .map(|d| self.mesh.run(img, d))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Task::Attribute(job) => {
                    TaskOutput::Attribute(self.attributor.run_job(job, img, &lms, requested)?)
                }
            };
            Ok((out, ms(t)))
        }) {
            match out? {
                (TaskOutput::Mesh(m), took) => {
                    meshes = m;
                    mesh_ms = took;
                }
                (TaskOutput::Attribute(o), _) => outputs.push(o),
            }
        }
        timings.landmarks_ms = mesh_ms;
        let meshed: Vec<(Detection, MeshResult)> = dets.into_iter().zip(meshes).collect();
        let model_attrs = if requested.reads_models() {
            let inputs: Vec<FaceInput<'_>> = meshed
                .iter()
                .map(|(d, mesh)| FaceInput {
                    landmarks: &d.landmarks,
                    mesh: Some(mesh),
                })
                .collect();
            self.attributor.combine(&inputs, requested, outputs)
        } else {
            vec![Default::default(); meshed.len()]
        };
        let mut faces = Vec::with_capacity(meshed.len());
        for ((d, mesh), (attributes, features)) in meshed.into_iter().zip(model_attrs) {
            let det_score = d.score;
            let bbox = d.bbox;
            let mut face = self.face_from(img, d, &mesh, opts);
            face.attributes = attributes;
            heuristic_attributes(
                img,
                &bbox,
                det_score,
                &mesh,
                &features,
                &mut face,
                &opts.attributes,
            );
            faces.push((face, features));
        }
        // With the jobs side by side this includes the mesh's time (landmarks_ms) as well.
        timings.attributes_ms = ms(t) - if threads > 1 { 0.0 } else { mesh_ms };
        Ok(faces)
    }

    fn face_from(&self, img: &Rgb, d: Detection, mesh: &MeshResult, opts: &Options) -> Face {
        let pose: Pose = head_pose(mesh);
        let rotation = pose.roll;
        let quality = quality::measure(
            img,
            &d.bbox,
            d.completeness,
            Some(mesh),
            rotation.to_radians(),
        );
        Face {
            bbox: d.bbox,
            rotation,
            score: d.score,
            landmarks: d.landmarks,
            mesh: opts.include_mesh.then(|| mesh.points.clone()),
            mesh_score: Some(mesh.score),
            pose,
            quality,
            attributes: Attributes::default(),
        }
    }

    /// Decode `bytes` and analyse them.
    pub fn analyze_bytes(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        opts: &Options,
    ) -> Result<Analysis, FaceError> {
        let t0 = Instant::now();
        let decoded = decode(bytes, limits)?;
        let mut timings = Timings {
            decode_ms: ms(t0),
            ..Timings::default()
        };
        let faces = self
            .analyze_image(&decoded.image, opts, &mut timings)
            .map_err(|e| FaceError::new(ErrorCode::Internal, e.to_string()))?;
        timings.total_ms = ms(t0);
        Ok(Analysis {
            width: decoded.image.width(),
            height: decoded.image.height(),
            orientation: decoded.orientation,
            faces,
            timings,
        })
    }
}

/// The attributes no model gives (eyes, glasses, face type): measured from the image and the
/// mesh by the heuristics module, after the model-based ones.
fn heuristic_attributes(
    img: &Rgb,
    bbox: &facelens_core::geometry::Rect,
    det_score: f32,
    mesh: &MeshResult,
    models: &AttributeFeatures,
    face: &mut Face,
    on: &AttributeOptions,
) {
    let pts = &mesh.points;
    let a = &mut face.attributes;
    if on.eye_status {
        a.eye_status = Some(heuristics::eyes::eye_status(img, pts));
    }
    if on.glasses {
        a.glasses = Some(heuristics::glasses::glasses(img, pts));
    }
    if on.face_type {
        a.face_type = Some(heuristics::cartoon::face_type(
            img,
            bbox,
            pts,
            mesh.score,
            det_score,
            on.face_type_models.then_some(models),
        ));
    }
}

/// One job of the per-face stage.
enum Task {
    Mesh,
    Attribute(Job),
}

enum TaskOutput {
    Mesh(Vec<MeshResult>),
    Attribute(JobOutput),
}

/// Run `tasks` in order on up to `threads` threads (the calling one included), each thread
/// taking the next task as soon as it is free; the results come back in task order. With more
/// than one thread every model run takes one intra-op thread ([`Load::narrow_runs`]), so that
/// the jobs, not one model's operators, share the cores.
fn run_tasks<T, R>(tasks: Vec<T>, threads: usize, load: &Load, f: impl Fn(T) -> R + Sync) -> Vec<R>
where
    T: Send,
    R: Send,
{
    if threads <= 1 || tasks.len() <= 1 {
        return tasks.into_iter().map(f).collect();
    }
    let _narrow = load.narrow_runs();
    let n = tasks.len();
    let queue = Mutex::new(tasks.into_iter().enumerate());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    let work = || {
        loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((i, task)) = next else { break };
            let r = f(task);
            if let Some(slot) = results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(i)
            {
                *slot = Some(r);
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(n) {
            s.spawn(work);
        }
        work();
    });
    results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ms(t: Instant) -> f32 {
    t.elapsed().as_secs_f32() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use facelens_core::{Point, Rect};

    fn det(x: f32, y: f32, side: f32) -> Detection {
        Detection {
            bbox: Rect::new(x, y, x + side, y + side),
            score: 0.9,
            landmarks: [Point::new(x, y); 5],
            completeness: 1.0,
        }
    }

    #[test]
    fn faces_are_kept_largest_first_or_nearest_the_centre_first() {
        // 100 x 100 image: a big face in a corner, two small ones near the centre.
        let all = vec![
            det(0.0, 0.0, 40.0),
            det(45.0, 45.0, 10.0),
            det(60.0, 40.0, 12.0),
        ];
        let mut largest = all.clone();
        keep_faces(&mut largest, FaceOrder::Largest, 2, 100, 100);
        assert_eq!(largest, vec![all[0].clone(), all[2].clone()]);
        let mut central = all.clone();
        keep_faces(&mut central, FaceOrder::NearestCentre, 2, 100, 100);
        assert_eq!(central, vec![all[1].clone(), all[2].clone()]);
    }

    use super::{Models, Pipeline, Precision, run_tasks};
    use facelens_infer::{Backend, InferError, Load, Model, ModelBytes, Tensor};
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn tasks_run_once_each_and_come_back_in_order_on_any_number_of_threads() {
        for threads in [0, 1, 2, 3, 8] {
            let ran = Mutex::new(Vec::new());
            let out = run_tasks((0..7).collect(), threads, &Load::new(), |i: u32| {
                ran.lock().expect("lock").push(i);
                i * 10
            });
            assert_eq!(out, (0..7).map(|i| i * 10).collect::<Vec<_>>(), "{threads}");
            let mut ran = ran.into_inner().expect("lock");
            ran.sort_unstable();
            assert_eq!(ran, (0..7).collect::<Vec<_>>(), "{threads}");
        }
    }

    #[test]
    fn with_two_threads_two_tasks_run_side_by_side() {
        // The first task waits (bounded) until the second has started on another thread.
        let started = Mutex::new(HashSet::new());
        let seen_beside = run_tasks(vec![0, 1], 2, &Load::new(), |i: u32| {
            started.lock().expect("lock").insert(i);
            let other = 1 - i;
            for _ in 0..2000 {
                if started.lock().expect("lock").contains(&other) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        });
        assert_eq!(seen_beside, vec![true, true]);
        // One thread: strictly one after another, so the first never sees the second.
        let started = Mutex::new(HashSet::new());
        let out = run_tasks(vec![0, 1], 1, &Load::new(), |i: u32| {
            let mut s = started.lock().expect("lock");
            s.insert(i);
            s.contains(&(1 - i))
        });
        assert_eq!(out, vec![false, true]);
    }

    #[test]
    fn side_by_side_tasks_run_their_models_narrow_and_one_after_another_they_do_not() {
        let load = Load::with_adaptive(true);
        let side_by_side = run_tasks(vec![0, 1], 2, &load, |_: u32| load.model_run().narrow());
        assert_eq!(side_by_side, vec![true, true]);
        let in_turn = run_tasks(vec![0, 1], 1, &load, |_: u32| load.model_run().narrow());
        assert_eq!(in_turn, vec![false, false]);
    }

    /// A backend of stand-in models that name every output the pipeline looks up.
    struct Stub(Load);

    struct StubModel(Vec<String>);

    impl Model for StubModel {
        fn name(&self) -> &str {
            "stub"
        }
        fn output_names(&self) -> &[String] {
            &self.0
        }
        fn run(&self, _: &Tensor) -> Result<Vec<Tensor>, InferError> {
            Err(InferError::Run {
                name: "stub".into(),
                reason: "not a model".into(),
            })
        }
    }

    impl Backend for Stub {
        fn name(&self) -> &'static str {
            "stub"
        }
        fn load(&self, _: &str, _: ModelBytes) -> Result<Arc<dyn Model>, InferError> {
            let names = ["loc", "conf", "landmarks", "regressors", "classificators"];
            Ok(Arc::new(StubModel(names.map(String::from).to_vec())))
        }
        fn load_signal(&self) -> &Load {
            &self.0
        }
    }

    #[test]
    fn the_pipeline_counts_its_analyses_in_its_backends_load_signal() {
        let load = Load::with_adaptive(true);
        let models = Models::load_embedded(&Stub(load.clone())).expect("stub models");
        assert!(models.load.same_as(&load));
        let p = Pipeline::new(models).expect("pipeline");
        assert!(p.load.same_as(&load));
        // An analysis of this pipeline is one the backend's next analysis sees.
        let first = p.load.analysis();
        assert!(first.alone());
        assert!(!load.analysis().alone());
    }

    #[test]
    fn auto_precision_is_int8_on_onnxruntime_only_and_int8_on_rten_is_refused() {
        assert_eq!(
            Precision::resolve("auto", "onnxruntime"),
            Ok(Precision::Int8)
        );
        assert_eq!(Precision::resolve("auto", "rten"), Ok(Precision::F32));
        assert_eq!(Precision::resolve("f32", "onnxruntime"), Ok(Precision::F32));
        assert_eq!(
            Precision::resolve("int8", "onnxruntime"),
            Ok(Precision::Int8)
        );
        let e = Precision::resolve("int8", "rten").unwrap_err();
        assert!(e.contains("onnxruntime"), "{e}");
        assert!(Precision::resolve("fp16", "onnxruntime").is_err());
    }

    #[test]
    fn every_model_has_its_weights_embedded_at_both_precisions() {
        for p in [Precision::F32, Precision::Int8] {
            for id in [
                "retinaface_mnet025",
                "blazeface_short",
                "face_mesh",
                "dlib_age",
                "dlib_gender",
                "emotion_human",
                "emotion_fer",
                "gear",
                "faceapi_age_gender",
            ] {
                let file = p.model_id(id);
                assert!(facelens_models::get(file).is_some(), "{file} embedded");
                assert_eq!(
                    file != id,
                    p == Precision::Int8
                        && matches!(id, "gear" | "dlib_age" | "retinaface_mnet025")
                );
            }
        }
    }
}
