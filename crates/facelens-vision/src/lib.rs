//! The Facelens vision pipeline.
//!
//! Stages, each in its own module: [`detect`] (RetinaFace, multi-scale; [`retry`] retries what
//! it misses on padded and grey canvases and, last, with [`closeup`]), [`mesh`] (468-point
//! face mesh and head pose), [`quality`] (blur, illumination, completeness, occlusion),
//! [`align`] (similarity alignment for the attribute models), [`attributes`] (age, gender,
//! emotion, expression and race from learned models), [`heuristics`] (eye status, glasses,
//! face type, face shape, beauty from image and mesh measures), [`heads`] (the small fitted
//! heads both read) and [`pipeline`], which strings them together. Models arrive loaded (see
//! [`pipeline::Models`]); nothing here reads files.

pub mod align;
pub mod attributes;
pub mod closeup;
pub mod detect;
pub mod heads;
pub mod heuristics;
pub mod mesh;
pub mod pipeline;
pub mod quality;
pub mod retry;
pub mod tensor;

pub use attributes::{Attribute, AttributeOptions};
pub use detect::{Detection, Detector, DetectorConfig};
pub use pipeline::{FaceOrder, Models, Options, Pipeline, Precision};
