//! How busy the process's inference is, for backends that size a run's intra-op threads by it.
//!
//! On a small machine two intra-op threads halve a lone request's latency, but when requests
//! overlap each run's threads compete for the same cores and throughput drops (measured with
//! the load test, docs/journal/2026-11-29-1-perf-threads-subnormals.md). So a backend asks, when a
//! run starts, whether another run is already in progress anywhere in the process: if not, the
//! run gets the configured threads; if so, one thread. The count covers every model of every
//! backend, because they all share the same cores.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Model runs in progress in this process.
static RUNS_IN_PROGRESS: AtomicUsize = AtomicUsize::new(0);

/// Counts one run in progress while it lives.
pub(crate) struct RunInProgress {
    /// Runs that were already in progress when this one started.
    pub others: usize,
}

impl RunInProgress {
    pub fn start() -> Self {
        Self {
            others: RUNS_IN_PROGRESS.fetch_add(1, Ordering::SeqCst),
        }
    }

    /// Whether this run should use one intra-op thread instead of the configured count.
    pub fn narrow(&self) -> bool {
        self.others > 0 && adaptive()
    }
}

impl Drop for RunInProgress {
    fn drop(&mut self) {
        RUNS_IN_PROGRESS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// While it lives, every model run in the process counts as starting beside another, so each
/// takes one intra-op thread. For a caller that itself runs several models at once on threads
/// of its own (the pipeline's per-face stage, one model per core): left to the adaptive choice,
/// whichever of its runs started first would take every configured thread and compete with the
/// others for the cores. Get one with [`crate::narrow_runs`].
pub struct NarrowRuns(());

impl NarrowRuns {
    pub(crate) fn new() -> Self {
        RUNS_IN_PROGRESS.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for NarrowRuns {
    fn drop(&mut self) {
        RUNS_IN_PROGRESS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `FACELENS_ADAPTIVE_THREADS=0` gives every run the configured threads, busy or not (for
/// side-by-side measurements); read once.
fn adaptive() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("FACELENS_ADAPTIVE_THREADS").map_or(true, |v| v != "0"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::RunInProgress;
    use crate::{Model, Tensor};

    /// Run `model` (a RetinaFace) once alone and once while another run is in progress (held
    /// here, as a concurrent request would be), and check the two give the same outputs.
    pub fn run_alone_then_beside_another(model: &dyn Model) {
        let input = Tensor {
            shape: vec![1, 3, 64, 64],
            data: (0..3 * 64 * 64).map(|i| (i % 251) as f32 / 251.0).collect(),
        };
        let alone = model.run(&input).unwrap();
        let other = RunInProgress::start();
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
