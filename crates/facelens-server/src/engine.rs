//! The bounded inference queue.
//!
//! Inference is CPU-bound and must not run on the async runtime's threads, and an unbounded
//! queue turns overload into ever-growing latency and memory. So a fixed number of worker
//! threads (about one per core) take jobs from a channel of fixed capacity; when it is full a
//! request is told "busy" at once (200217 / HTTP 503 + Retry-After) instead of waiting. A job
//! that panics is answered with an internal error and the worker carries on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;

type Job<C> = Box<dyn FnOnce(&C) + Send>;

/// Why a job did not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// The queue is full: answer "busy".
    #[error("the inference queue is full")]
    Busy,
    /// The job panicked or the workers are gone.
    #[error("inference failed: {0}")]
    Failed(String),
}

/// A pool of workers sharing a context `C` (the vision pipeline), behind a bounded queue.
pub struct Engine<C> {
    tx: SyncSender<Job<C>>,
    queued: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    workers: usize,
    capacity: usize,
}

impl<C: Send + Sync + 'static> Engine<C> {
    /// Start `workers` threads sharing `pipeline`, with room for `capacity` waiting jobs.
    pub fn start(context: Arc<C>, workers: usize, capacity: usize) -> Self {
        let (tx, rx) = sync_channel::<Job<C>>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let workers = workers.max(1);
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let context = Arc::clone(&context);
            let queued = Arc::clone(&queued);
            let running = Arc::clone(&running);
            let spawned = std::thread::Builder::new()
                .name(format!("facelens-infer-{i}"))
                .spawn(move || worker(&rx, &*context, &queued, &running));
            if let Err(e) = spawned {
                tracing::error!("could not start inference worker {i}: {e}");
            }
        }
        Self {
            tx,
            queued,
            running,
            workers,
            capacity,
        }
    }

    /// Queue `f` to run on a worker; `Busy` at once when the queue is full.
    pub async fn run<R, F>(&self, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&C) -> R + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel();
        let job: Job<C> = Box::new(move |p: &C| {
            let out = catch_unwind(AssertUnwindSafe(|| f(p)));
            // The requester may have gone away (client disconnected): nothing to do then.
            let _ = done_tx.send(out.map_err(|panic| panic_message(&panic)));
        });
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                return Err(EngineError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                return Err(EngineError::Failed("the inference workers stopped".into()));
            }
        }
        match done_rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(EngineError::Failed(format!("panic: {msg}"))),
            Err(_) => Err(EngineError::Failed("the job was dropped".into())),
        }
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether a job queued now would be refused: every queue slot is taken. Handlers ask this
    /// before reading a request body, so that under overload a refusal costs no upload, no
    /// parsing and no store lookup (the queue itself still decides at `run`).
    pub fn is_full(&self) -> bool {
        self.queued() >= self.capacity
    }
}

fn worker<C>(
    rx: &Mutex<Receiver<Job<C>>>,
    context: &C,
    queued: &AtomicUsize,
    running: &AtomicUsize,
) {
    loop {
        // Hold the lock only while taking a job, not while running it.
        let job = {
            let guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
            guard.recv()
        };
        let Ok(job) = job else { return };
        queued.fetch_sub(1, Ordering::SeqCst);
        running.fetch_add(1, Ordering::SeqCst);
        job(context);
        running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_and_survives_panics() {
        let e = Engine::start(Arc::new(5_u32), 2, 4);
        assert_eq!(e.run(|c| c * 2).await, Ok(10));
        let err = e
            .run(|_| -> u32 { panic!("boom") })
            .await
            .expect_err("panicked");
        assert!(
            matches!(err, EngineError::Failed(ref m) if m.contains("boom")),
            "{err}"
        );
        assert_eq!(
            e.run(|c| c + 1).await,
            Ok(6),
            "the worker survived the panic"
        );
    }

    #[tokio::test]
    async fn full_queue_is_busy_at_once() {
        let e = Arc::new(Engine::start(Arc::new(()), 1, 1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // Job 1 occupies the worker until released.
        let r = Arc::clone(&release_rx);
        let e1 = Arc::clone(&e);
        let first = tokio::spawn(async move {
            e1.run(move |_| {
                let _ = r.lock().map(|rx| rx.recv());
            })
            .await
        });
        while e.running() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Job 2 fills the one queue slot.
        let e2 = Arc::clone(&e);
        let second = tokio::spawn(async move { e2.run(|_| 2).await });
        while e.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Job 3 finds the queue full.
        let t = std::time::Instant::now();
        assert_eq!(e.run(|_| 3).await, Err(EngineError::Busy));
        assert!(t.elapsed() < Duration::from_secs(1), "busy is immediate");
        release_tx.send(()).expect("release");
        assert_eq!(first.await.expect("join"), Ok(()));
        assert_eq!(second.await.expect("join"), Ok(2));
        assert_eq!(e.queued(), 0);
    }
}
