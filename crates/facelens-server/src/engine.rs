//! The bounded inference queue.
//!
//! Inference is CPU-bound and must not run on the async runtime's threads, and an unbounded
//! queue turns overload into ever-growing latency and memory. So a fixed number of worker
//! threads (about one per core) take jobs from a channel of fixed capacity. A request first
//! takes a [`Slot`] (a worker or a place in the queue); when none is left it is told "busy" at
//! once (200217 / HTTP 503 + Retry-After) instead of waiting. The slot is taken when the request
//! is admitted, so busy is decided once, before any quota is reserved, and it is held until the
//! job ends — even when the client goes away, since the worker still runs it. A job that
//! panics is answered with an internal error and the worker carries on.

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

/// One place in the engine (a worker or a queue position), held from admission until its job
/// ends; dropping it unused gives the place back.
#[derive(Debug)]
#[must_use = "a slot is only useful to run a job with"]
pub struct Slot {
    taken: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A pool of workers sharing a context `C` (the vision pipeline), behind a bounded queue.
pub struct Engine<C> {
    tx: SyncSender<Job<C>>,
    /// Slots held: jobs queued or running, and requests admitted that will queue one.
    taken: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    workers: usize,
    capacity: usize,
}

impl<C: Send + Sync + 'static> Engine<C> {
    /// Start `workers` threads sharing `pipeline`, with room for `capacity` waiting jobs: at
    /// most `workers + capacity` slots are held at once.
    pub fn start(context: Arc<C>, workers: usize, capacity: usize) -> Self {
        let workers = workers.max(1);
        // Room for every slot, so a job with a slot is never refused by the channel.
        let (tx, rx) = sync_channel::<Job<C>>(workers + capacity);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
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
            taken: Arc::new(AtomicUsize::new(0)),
            queued,
            running,
            workers,
            capacity,
        }
    }

    /// A slot for one job, or `None` when every worker is busy and the queue is full.
    pub fn try_slot(&self) -> Option<Slot> {
        let limit = self.workers + self.capacity;
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            taken: Arc::clone(&self.taken),
        })
    }

    /// Queue `f` to run on a worker in `slot`'s place. The slot goes with the job and is given
    /// back when the job ends, whether or not this future is still awaited.
    pub async fn run<R, F>(&self, slot: Slot, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&C) -> R + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel();
        let job: Job<C> = Box::new(move |p: &C| {
            let out = catch_unwind(AssertUnwindSafe(|| f(p)));
            drop(slot);
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

    /// Whether a slot asked for now would be refused. The request path asks this before
    /// reading a body, so that under overload a refusal costs no upload, no parsing and no
    /// store lookup ([`Engine::try_slot`] still decides after admission).
    pub fn is_full(&self) -> bool {
        self.taken.load(Ordering::SeqCst) >= self.workers + self.capacity
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

    async fn run<R: Send + 'static>(
        e: &Engine<u32>,
        f: impl FnOnce(&u32) -> R + Send + 'static,
    ) -> Result<R, EngineError> {
        let slot = e.try_slot().expect("a free slot");
        e.run(slot, f).await
    }

    #[tokio::test]
    async fn runs_jobs_and_survives_panics() {
        let e = Engine::start(Arc::new(5_u32), 2, 4);
        assert_eq!(run(&e, |c| c * 2).await, Ok(10));
        let err = run(&e, |_| -> u32 { panic!("boom") })
            .await
            .expect_err("panicked");
        assert!(
            matches!(err, EngineError::Failed(ref m) if m.contains("boom")),
            "{err}"
        );
        assert_eq!(
            run(&e, |c| c + 1).await,
            Ok(6),
            "the worker survived the panic"
        );
        assert!(!e.is_full());
    }

    #[tokio::test]
    async fn slots_bound_the_work_and_come_back() {
        // One worker and one queue place: two slots.
        let e = Arc::new(Engine::start(Arc::new(0_u32), 1, 1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // Job 1 occupies the worker until released.
        let r = Arc::clone(&release_rx);
        let e1 = Arc::clone(&e);
        let slot1 = e.try_slot().expect("slot 1");
        let first = tokio::spawn(async move {
            e1.run(slot1, move |_| {
                let _ = r.lock().map(|rx| rx.recv());
            })
            .await
        });
        while e.running() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A request admitted now holds the queue place before its job is queued.
        let slot2 = e.try_slot().expect("slot 2");
        assert!(e.is_full());
        assert!(e.try_slot().is_none(), "no third slot");
        // Given back unused (the request failed before its job): the place is free again.
        drop(slot2);
        assert!(!e.is_full());
        let slot2 = e.try_slot().expect("slot 2 again");
        let e2 = Arc::clone(&e);
        let second = tokio::spawn(async move { e2.run(slot2, |_| 2).await });
        while e.queued() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(e.try_slot().is_none());
        release_tx.send(()).expect("release");
        assert_eq!(first.await.expect("join"), Ok(()));
        assert_eq!(second.await.expect("join"), Ok(2));
        assert_eq!(e.queued(), 0);
        // Both slots came back with their jobs.
        assert!(!e.is_full());
        let a = e.try_slot().expect("a");
        let b = e.try_slot().expect("b");
        assert!(e.try_slot().is_none());
        drop((a, b));
    }

    #[tokio::test]
    async fn a_slot_stays_taken_until_its_job_ends_even_if_the_caller_leaves() {
        let e = Arc::new(Engine::start(Arc::new(0_u32), 1, 0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let slot = e.try_slot().expect("slot");
        let e1 = Arc::clone(&e);
        let caller = tokio::spawn(async move {
            e1.run(slot, move |_| {
                let _ = release_rx.recv();
            })
            .await
        });
        while e.running() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The client went away: its future is dropped, the worker still runs the job.
        caller.abort();
        let _ = caller.await;
        assert!(e.try_slot().is_none(), "the running job keeps its slot");
        release_tx.send(()).expect("release");
        let t = std::time::Instant::now();
        while e.is_full() {
            assert!(t.elapsed() < Duration::from_secs(5), "the slot came back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
