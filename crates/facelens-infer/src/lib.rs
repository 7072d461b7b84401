//! Inference backends behind one small trait.
//!
//! Why a trait: the pure-Rust runtime (rten) builds anywhere with no system library and no
//! download, which is what a `cargo build` on a fresh machine needs; onnxruntime is ~3x faster
//! on the same models but is a native library the user must provide. The vision pipeline only
//! ever sees [`Model`], so both run the same code and a test checks they agree.
//!
//! The interface is deliberately minimal — one `f32` input tensor in, every output out in graph
//! order, with names — because every face model we ship has exactly that shape. Models are
//! shared across threads (`&self`); a backend that needs exclusive sessions pools them itself.

use std::sync::Arc;

pub mod denormals;
mod load;
pub use load::{Analysis, Load, ModelRun, NarrowRuns};
mod rten_backend;
pub use rten_backend::RtenBackend;

#[cfg(feature = "ort")]
mod ort_backend;
#[cfg(feature = "ort")]
pub use ort_backend::OrtBackend;

/// A dense `f32` tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor; `None` if `data` does not match `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then_some(Self { shape, data })
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Errors from loading or running a model. These are never caused by request content alone
/// (inputs are built by the pipeline), so callers map them to an internal error.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("cannot load model {name}: {reason}")]
    Load { name: String, reason: String },
    #[error("model {name} failed: {reason}")]
    Run { name: String, reason: String },
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// Bytes of a serialized ONNX model.
#[derive(Debug, Clone)]
pub enum ModelBytes {
    /// Embedded in the binary (no copy needed).
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl ModelBytes {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ModelBytes::Static(s) => s,
            ModelBytes::Owned(v) => v,
        }
    }
}

/// A loaded model that can be run concurrently from many threads.
pub trait Model: Send + Sync {
    /// The model's name (for errors and metrics).
    fn name(&self) -> &str;
    /// Output names, in the order [`Model::run`] returns them.
    fn output_names(&self) -> &[String];
    /// Run on one input tensor; returns every output in graph order.
    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, InferError>;

    /// Index of the output called `name`.
    fn output_index(&self, name: &str) -> Option<usize> {
        self.output_names().iter().position(|n| n == name)
    }
}

/// A runtime that turns ONNX bytes into runnable models.
pub trait Backend: Send + Sync {
    /// Short name: `rten` or `onnxruntime`.
    fn name(&self) -> &'static str;
    /// Load a model.
    fn load(&self, name: &str, bytes: ModelBytes) -> Result<Arc<dyn Model>, InferError>;
    /// The load signal every model of this backend counts its runs in ([`Load`]); whoever
    /// runs several of its models at once (the pipeline) counts in the same one.
    fn load_signal(&self) -> &Load;
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// Pure Rust; always available.
    #[default]
    Rten,
    /// onnxruntime via a dynamically loaded library (feature `ort`).
    Onnxruntime,
    /// onnxruntime when the library can be loaded, else rten.
    Auto,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rten" => Ok(BackendKind::Rten),
            "ort" | "onnxruntime" => Ok(BackendKind::Onnxruntime),
            "auto" => Ok(BackendKind::Auto),
            other => Err(format!(
                "unknown backend {other:?} (expected rten, onnxruntime or auto)"
            )),
        }
    }
}

/// Create a backend with a load signal of its own. `threads` is the number of intra-op threads
/// per model run that has the backend to itself (0 = one per core). With
/// [`BackendKind::Auto`] a missing onnxruntime library falls back to rten.
pub fn create_backend(kind: BackendKind, threads: usize) -> Result<Arc<dyn Backend>, InferError> {
    create_backend_with_load(kind, threads, Load::new())
}

/// [`create_backend`] counting its runs in `load` (shared with whatever else should count
/// there).
pub fn create_backend_with_load(
    kind: BackendKind,
    threads: usize,
    load: Load,
) -> Result<Arc<dyn Backend>, InferError> {
    match kind {
        BackendKind::Rten => Ok(Arc::new(RtenBackend::with_load(threads, load))),
        BackendKind::Onnxruntime => ort_or_err(threads, load),
        BackendKind::Auto => match ort_or_err(threads, load.clone()) {
            Ok(b) => Ok(b),
            Err(_) => Ok(Arc::new(RtenBackend::with_load(threads, load))),
        },
    }
}

#[cfg(feature = "ort")]
fn ort_or_err(threads: usize, load: Load) -> Result<Arc<dyn Backend>, InferError> {
    Ok(Arc::new(OrtBackend::with_load(threads, load)?))
}

#[cfg(not(feature = "ort"))]
fn ort_or_err(_threads: usize, _load: Load) -> Result<Arc<dyn Backend>, InferError> {
    Err(InferError::Unavailable(
        "this build has no onnxruntime support (rebuild with --features ort)".into(),
    ))
}
