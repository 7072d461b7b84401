//! The default backend: rten, a pure-Rust ONNX runtime. `Model::run(&self)` is thread-safe, so
//! one loaded model serves every request; intra-op parallelism uses a rayon pool we size.
//!
//! Intra-op threads adapt to the load ([`crate::Load`]): a run that starts while another is in
//! progress runs on a single-threaded pool of its own (taken from a small stack of them, one
//! per run at once) instead of sharing the configured pool, where concurrent runs split every
//! operator into tasks that the other runs' threads then steal.
//!
//! Every pool's threads flush subnormal floats to zero ([`crate::denormals`]).

use crate::denormals::{self, FlushGuard};
use crate::{Backend, InferError, Load, Model, ModelBytes, Tensor};
use rten::{ModelOptions, RunOptions, ThreadPool, Value};
use rten_tensor::prelude::*;
use std::sync::{Arc, Mutex, Once, PoisonError};

/// rten with a dedicated intra-op thread pool.
pub struct RtenBackend {
    pool: Option<Arc<ThreadPool>>,
    /// Single-threaded pools for runs that start beside others; `None` when one thread is
    /// configured anyway.
    narrow: Option<Arc<NarrowPools>>,
    load: Load,
}

impl RtenBackend {
    /// `threads` = intra-op threads of a run that has the backend to itself; 0 uses rten's
    /// default (one per physical core). A run that starts beside another uses one thread.
    /// The backend's runs count in a [`Load`] of its own.
    pub fn new(threads: usize) -> Self {
        Self::with_load(threads, Load::new())
    }

    /// [`RtenBackend::new`], counting runs in `load`.
    pub fn with_load(threads: usize, load: Load) -> Self {
        let pool = (threads > 0).then(|| Arc::new(flushing_pool(threads)));
        if threads == 0 {
            // rten's own global pool runs these models (and nothing else of ours).
            static GLOBAL: Once = Once::new();
            GLOBAL.call_once(|| flush_in(rten::thread_pool()));
        }
        let narrow = (threads != 1).then(|| Arc::new(NarrowPools::default()));
        Self { pool, narrow, load }
    }
}

/// A pool of `threads` threads that flush subnormals.
fn flushing_pool(threads: usize) -> ThreadPool {
    let pool = ThreadPool::with_num_threads(threads);
    flush_in(&pool);
    pool
}

/// Flush subnormals on every thread of `pool` from now on. When rten could not create the pool,
/// its runs happen on the caller's thread, which the [`FlushGuard`] of each run covers.
fn flush_in(pool: &ThreadPool) {
    pool.run(|| {
        if rayon_core::current_thread_index().is_some() {
            rayon_core::broadcast(|_| denormals::set_for_this_thread());
        }
    });
}

/// Idle single-threaded pools; one is created when a run needs one and none is idle, so there
/// are at most as many as runs ever in progress at once (the service's workers bound that).
#[derive(Default)]
struct NarrowPools {
    idle: Mutex<Vec<Arc<ThreadPool>>>,
}

impl NarrowPools {
    fn checkout(&self) -> Arc<ThreadPool> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.unwrap_or_else(|| Arc::new(flushing_pool(1)))
    }

    fn give_back(&self, pool: Arc<ThreadPool>) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pool);
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
            narrow: self.narrow.clone(),
            load: self.load.clone(),
        }))
    }

    fn load_signal(&self) -> &Load {
        &self.load
    }
}

struct RtenModel {
    name: String,
    model: rten::Model,
    input: rten::NodeId,
    outputs: Vec<rten::NodeId>,
    output_names: Vec<String>,
    pool: Option<Arc<ThreadPool>>,
    narrow: Option<Arc<NarrowPools>>,
    load: Load,
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
        let in_progress = self.load.model_run();
        let narrow = match &self.narrow {
            Some(pools) if in_progress.narrow() => Some((pools, pools.checkout())),
            _ => None,
        };
        let mut opts = RunOptions::default();
        opts.thread_pool = match &narrow {
            Some((_, pool)) => Some(Arc::clone(pool)),
            None => self.pool.clone(),
        };
        let flush = FlushGuard::new();
        let result = self
            .model
            .run(vec![(self.input, view.into())], &self.outputs, Some(opts));
        drop(flush);
        if let Some((pools, pool)) = narrow {
            pools.give_back(pool);
        }
        drop(in_progress);
        let values = result.map_err(|e| err(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/retinaface_mnet025_biubug6.onnx"
    );

    #[test]
    fn every_thread_of_a_model_pool_flushes_subnormals() {
        if !denormals::enabled() || !cfg!(target_arch = "x86_64") {
            return;
        }
        for pool in [flushing_pool(2), flushing_pool(1)] {
            let flags = pool.run(|| rayon_core::broadcast(|_| denormals::flushing()));
            assert!(!flags.is_empty());
            assert!(flags.iter().all(|&f| f), "{flags:?}");
        }
        let global = rten::thread_pool().run(|| rayon_core::broadcast(|_| denormals::flushing()));
        let _ = RtenBackend::new(0);
        let after = rten::thread_pool().run(|| rayon_core::broadcast(|_| denormals::flushing()));
        assert!(
            after.iter().all(|&f| f),
            "before {global:?}, after {after:?}"
        );
    }

    #[test]
    fn a_run_that_starts_beside_another_uses_a_single_threaded_pool() {
        let backend = RtenBackend::new(2);
        let narrow = backend
            .narrow
            .clone()
            .expect("two threads: narrow pools exist");
        assert!(RtenBackend::new(1).narrow.is_none());
        let model = backend
            .load(
                "retinaface",
                ModelBytes::Owned(std::fs::read(MODEL).unwrap()),
            )
            .unwrap();
        crate::load::tests::run_alone_then_beside_another(model.as_ref(), backend.load_signal());
        let idle = narrow.idle.lock().unwrap().len();
        assert_eq!(
            idle, 1,
            "the second run took a narrow pool and gave it back"
        );
    }
}
