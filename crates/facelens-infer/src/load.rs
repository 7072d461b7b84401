//! How busy inference is: the one load signal that sizes a model run's intra-op threads and
//! lets the pipeline decide whether to run a request's models side by side.
//!
//! On a small machine two intra-op threads halve a lone request's latency, but when requests
//! overlap each run's threads compete for the same cores and throughput drops (measured with
//! the load test, docs/journal/2026-11-29-1-perf-threads-subnormals.md). So a backend asks, when a
//! run starts, whether another run is already in progress: if not, the run gets the configured
//! threads; if so, one thread. The pipeline asks the same signal at a coarser grain: whether
//! another analysis is in progress, and runs an analysis's per-face models side by side only
//! when none is.
//!
//! Why one injected value rather than a process-global counter: the answer is only right if
//! everything that shares the cores counts in the same place, and a hidden static made that
//! true by accident (and made two backends in one test process count each other). A [`Load`]
//! is created with the backend ([`crate::create_backend`] makes one, or
//! [`crate::create_backend_with_load`] takes one), every model loaded by that backend shares
//! it, and the pipeline built on those models takes it from the backend
//! ([`crate::Backend::load_signal`]), so a process that serves from one backend counts every
//! run and every analysis once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The load signal: counts of the model runs and the analyses in progress. Cheap to clone; the
/// clones share the counts.
#[derive(Debug, Clone)]
pub struct Load {
    inner: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    /// Model runs in progress (plus one per live [`NarrowRuns`]).
    runs: AtomicUsize,
    /// Analyses in progress.
    analyses: AtomicUsize,
    /// `false`: every run gets the configured threads, busy or not.
    adaptive: bool,
}

impl Default for Load {
    fn default() -> Self {
        Self::new()
    }
}

impl Load {
    /// A new signal with nothing in progress. `FACELENS_ADAPTIVE_THREADS=0` gives every run the
    /// configured threads, busy or not (for side-by-side measurements).
    pub fn new() -> Self {
        Self::with_adaptive(std::env::var("FACELENS_ADAPTIVE_THREADS").map_or(true, |v| v != "0"))
    }

    /// A new signal; `adaptive: false` never narrows a run.
    pub fn with_adaptive(adaptive: bool) -> Self {
        Self {
            inner: Arc::new(Counts {
                runs: AtomicUsize::new(0),
                analyses: AtomicUsize::new(0),
                adaptive,
            }),
        }
    }

    /// Count one model run while the guard lives (backends call this when a run starts).
    pub fn model_run(&self) -> ModelRun {
        ModelRun {
            others: self.inner.runs.fetch_add(1, Ordering::SeqCst),
            adaptive: self.inner.adaptive,
            load: self.clone(),
        }
    }

    /// While the guard lives, every model run counts as starting beside another, so each takes
    /// one intra-op thread. For a caller that itself runs several models at once on threads of
    /// its own (the pipeline's per-face stage, one model per core): left to the adaptive
    /// choice, whichever of its runs started first would take every configured thread and
    /// compete with the others for the cores.
    pub fn narrow_runs(&self) -> NarrowRuns {
        self.inner.runs.fetch_add(1, Ordering::SeqCst);
        NarrowRuns { load: self.clone() }
    }

    /// Count one analysis (one image through the pipeline) while the guard lives.
    pub fn analysis(&self) -> Analysis {
        Analysis {
            others: self.inner.analyses.fetch_add(1, Ordering::SeqCst),
            load: self.clone(),
        }
    }

    /// Whether `other` is the same signal (a clone of this one).
    pub fn same_as(&self, other: &Load) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// One model run in progress ([`Load::model_run`]).
#[derive(Debug)]
pub struct ModelRun {
    /// Runs that were already in progress when this one started.
    others: usize,
    adaptive: bool,
    load: Load,
}

impl ModelRun {
    /// Whether this run should use one intra-op thread instead of the configured count.
    pub fn narrow(&self) -> bool {
        self.others > 0 && self.adaptive
    }
}

impl Drop for ModelRun {
    fn drop(&mut self) {
        self.load.inner.runs.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every model run counts as starting beside another while this lives ([`Load::narrow_runs`]).
#[derive(Debug)]
pub struct NarrowRuns {
    load: Load,
}

impl Drop for NarrowRuns {
    fn drop(&mut self) {
        self.load.inner.runs.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One analysis in progress ([`Load::analysis`]).
#[derive(Debug)]
pub struct Analysis {
    /// Analyses that were already in progress when this one started.
    others: usize,
    load: Load,
}

impl Analysis {
    /// Whether no other analysis was in progress when this one started.
    pub fn alone(&self) -> bool {
        self.others == 0
    }
}

impl Drop for Analysis {
    fn drop(&mut self) {
        self.load.inner.analyses.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Load;
    use crate::{Model, Tensor};

    #[test]
    fn a_run_is_narrow_only_beside_another_and_only_when_adaptive() {
        let load = Load::with_adaptive(true);
        let first = load.model_run();
        assert!(!first.narrow(), "alone: the configured threads");
        let second = load.model_run();
        assert!(second.narrow(), "beside another: one thread");
        drop((first, second));
        assert!(!load.model_run().narrow(), "the counts go back down");
        {
            let _narrow = load.narrow_runs();
            assert!(
                load.model_run().narrow(),
                "under narrow_runs every run is narrow"
            );
        }
        assert!(!load.model_run().narrow());
        let fixed = Load::with_adaptive(false);
        let _a = fixed.model_run();
        assert!(!fixed.model_run().narrow(), "not adaptive: never narrow");
    }

    #[test]
    fn analyses_and_runs_are_counted_apart_and_per_signal() {
        let load = Load::with_adaptive(true);
        let a = load.analysis();
        assert!(a.alone());
        // A model run of this analysis is not "beside another" because the analysis exists.
        assert!(!load.model_run().narrow());
        let b = load.clone().analysis();
        assert!(!b.alone(), "clones share the counts");
        drop((a, b));
        assert!(load.analysis().alone());
        // Another signal counts nothing of this one's.
        let other = Load::with_adaptive(true);
        let _run = load.model_run();
        assert!(!other.model_run().narrow());
        assert!(load.same_as(&load.clone()) && !load.same_as(&other));
    }

    /// Run `model` (a RetinaFace) once alone and once while another run is in progress on
    /// `load` (held here, as a concurrent request would be), and check the two give the same
    /// outputs.
    pub fn run_alone_then_beside_another(model: &dyn Model, load: &Load) {
        let input = Tensor {
            shape: vec![1, 3, 64, 64],
            data: (0..3 * 64 * 64).map(|i| (i % 251) as f32 / 251.0).collect(),
        };
        let alone = model.run(&input).unwrap();
        let other = load.model_run();
        let beside = model.run(&input).unwrap();
        drop(other);
        assert_eq!(alone.len(), beside.len());
        for (a, b) in alone.iter().zip(&beside) {
            assert_eq!(a.shape, b.shape);
            let worst = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "thread count changed an output by {worst}");
        }
    }
}
