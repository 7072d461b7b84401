//! The default backend: rten, a pure-Rust ONNX runtime. `Model::run(&self)` is thread-safe, so
//! one loaded model serves every request; intra-op parallelism uses a rayon pool we size.

use crate::{Backend, InferError, Model, ModelBytes, Tensor};
use rten::{ModelOptions, RunOptions, ThreadPool, Value};
use rten_tensor::prelude::*;
use std::sync::Arc;

/// rten with a dedicated intra-op thread pool.
pub struct RtenBackend {
    pool: Option<Arc<ThreadPool>>,
}

impl RtenBackend {
    /// `threads` = intra-op threads per run; 0 uses rten's default (one per physical core).
    pub fn new(threads: usize) -> Self {
        let pool = (threads > 0).then(|| Arc::new(ThreadPool::with_num_threads(threads)));
        Self { pool }
    }
}

impl Backend for RtenBackend {
    fn name(&self) -> &'static str {
        "rten"
    }

    fn load(&self, name: &str, bytes: ModelBytes) -> Result<Arc<dyn Model>, InferError> {
        let mut opts = ModelOptions::with_all_ops();
        opts.prepack_weights(true);
        let loaded = match bytes {
            ModelBytes::Static(s) => opts.load_static_slice(s),
            ModelBytes::Owned(v) => opts.load(v),
        }
        .map_err(|e| InferError::Load {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let input = *loaded.input_ids().first().ok_or_else(|| InferError::Load {
            name: name.to_string(),
            reason: "model has no input".into(),
        })?;
        let outputs = loaded.output_ids().to_vec();
        let output_names = outputs
            .iter()
            .enumerate()
            .map(|(i, id)| {
                loaded
                    .node_info(*id)
                    .and_then(|n| n.name().map(str::to_string))
                    .unwrap_or_else(|| format!("output{i}"))
            })
            .collect();
        Ok(Arc::new(RtenModel {
            name: name.to_string(),
            model: loaded,
            input,
            outputs,
            output_names,
            pool: self.pool.clone(),
        }))
    }
}

struct RtenModel {
    name: String,
    model: rten::Model,
    input: rten::NodeId,
    outputs: Vec<rten::NodeId>,
    output_names: Vec<String>,
    pool: Option<Arc<ThreadPool>>,
}

impl Model for RtenModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }

    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>, InferError> {
        let err = |reason: String| InferError::Run {
            name: self.name.clone(),
            reason,
        };
        let view = rten_tensor::TensorView::from_data(&input.shape, input.data.as_slice());
        let mut opts = RunOptions::default();
        opts.thread_pool = self.pool.clone();
        let values = self
            .model
            .run(vec![(self.input, view.into())], &self.outputs, Some(opts))
            .map_err(|e| err(e.to_string()))?;
        values
            .into_iter()
            .map(|v: Value| {
                let t: rten_tensor::Tensor<f32> = v
                    .try_into()
                    .map_err(|_| err("output is not an f32 tensor".into()))?;
                let shape = t.shape().to_vec();
                Ok(Tensor {
                    shape,
                    data: t.to_vec(),
                })
            })
            .collect()
    }
}
