//! The optional onnxruntime backend (feature `ort`).
//!
//! onnxruntime is not linked: `libonnxruntime.so` is opened at run time from the path in
//! `ORT_DYLIB_PATH` (`scripts/fetch-onnxruntime.sh` fetches a compatible one). When it is unset,
//! missing or unusable, [`OrtBackend::new`] returns [`InferError::Unavailable`] instead of
//! panicking, so [`crate::BackendKind::Auto`] can fall back to rten.
//!
//! `ort::session::Session::run` takes `&mut self`, so one session cannot serve concurrent callers.
//! Each model therefore keeps a small pool of sessions: a run checks out an idle session, or
//! creates a new one while fewer than the cap exist, or waits for one to be returned. Sessions are
//! created lazily, so a model used from one thread holds one session; all sessions of a model share
//! one prepacked-weights container, so extra sessions cost little beyond activation memory.
//!
//! **Intra-op threads adapt to the load** ([`crate::Load`]): a session's thread count is fixed
//! when it is created, so each model has two pools when more than one thread is configured: a
//! run that starts while no other run is in progress takes a session with the configured
//! threads; a run that starts beside another takes a single-threaded one.

use crate::denormals::{self, FlushGuard};
use crate::{Backend, InferError, Load, Model, ModelBytes, Tensor};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::PrepackedWeights;
use ort::value::{TensorElementType, TensorRef, ValueType};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The environment variable naming the onnxruntime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The process-wide onnxruntime environment. ort allows only one per process (a second
/// `build()` fails even after the first is dropped), so it is created once and kept; a failed
/// attempt leaves `None` so a later call (e.g. after fixing `ORT_DYLIB_PATH`) can retry.
static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// onnxruntime, loaded dynamically, with one session pool per model.
pub struct OrtBackend {
    env: Environment,
    threads: usize,
    max_sessions: usize,
    /// Read once here so that every session of the process is configured alike.
    arena: bool,
    load: Load,
}

impl OrtBackend {
    /// Load onnxruntime from `ORT_DYLIB_PATH`. `threads` = intra-op threads of a run that has
    /// the process to itself (0 = the onnxruntime default, one per physical core); a run that
    /// starts while another is in progress uses one (module documentation). Each model pools at
    /// most one session of each kind per available CPU; see [`OrtBackend::with_max_sessions`].
    /// The backend's runs count in a [`Load`] of its own.
    pub fn new(threads: usize) -> Result<Self, InferError> {
        Self::with_load(threads, Load::new())
    }

    /// [`OrtBackend::new`], counting runs in `load`.
    pub fn with_load(threads: usize, load: Load) -> Result<Self, InferError> {
        let env = environment()?;
        let max_sessions = std::thread::available_parallelism().map_or(4, |n| n.get());
        Ok(Self {
            env,
            threads,
            max_sessions,
            arena: arena_enabled(),
            load,
        })
    }

    /// Cap the number of sessions (= concurrent runs) per model; at least 1.
    pub fn with_max_sessions(mut self, max_sessions: usize) -> Self {
        self.max_sessions = max_sessions.max(1);
        self
    }

    /// The loaded onnxruntime's build description (version, git commit, flags), for logs.
    pub fn build_info(&self) -> String {
        guard(|| Ok(ort::info().to_string())).unwrap_or_else(|e| e.to_string())
    }
}

/// Run `f`, turning a panic inside ort (it panics on some load failures) into an error.
fn guard<T>(f: impl FnOnce() -> Result<T, InferError>) -> Result<T, InferError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(InferError::Unavailable(format!(
            "onnxruntime panicked: {msg}"
        )))
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing guarded here is left half-updated by a panic, so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn environment() -> Result<Environment, InferError> {
    let mut slot = lock(&ENVIRONMENT);
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let path = std::env::var_os(DYLIB_ENV)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .ok_or_else(|| {
            InferError::Unavailable(format!(
                "{DYLIB_ENV} is not set; run scripts/fetch-onnxruntime.sh and export the line it prints"
            ))
        })?;
    if path.is_absolute() && !path.is_file() {
        return Err(InferError::Unavailable(format!(
            "{DYLIB_ENV}={} does not exist; run scripts/fetch-onnxruntime.sh",
            path.display()
        )));
    }
    let env = guard(|| {
        let builder = ort::init_from(&path).map_err(|e| {
            InferError::Unavailable(format!("cannot load onnxruntime ({DYLIB_ENV}): {e}"))
        })?;
        builder
            .with_name("facelens")
            .with_telemetry(false)
            .build()
            .map_err(|e| InferError::Unavailable(format!("cannot start onnxruntime: {e}")))
    })?;
    *slot = Some(env.clone());
    Ok(env)
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn load(&self, name: &str, bytes: ModelBytes) -> Result<Arc<dyn Model>, InferError> {
        Ok(Arc::new(self.load_model(name, bytes)?))
    }

    fn load_signal(&self) -> &Load {
        &self.load
    }
}

impl OrtBackend {
    fn load_model(&self, name: &str, bytes: ModelBytes) -> Result<OrtModel, InferError> {
        let load_err = |reason: String| InferError::Load {
            name: name.to_string(),
            reason,
        };
        let factory = Arc::new(guard(|| {
            Ok(SessionFactory {
                env: self.env.clone(),
                arena: self.arena,
                prepacked: PrepackedWeights::new(),
                bytes,
            })
        })?);
        // The first session is created now, so a bad model fails at load, not at first use.
        let first = factory.create(self.threads).map_err(load_err)?;
        let inputs = first.inputs();
        if inputs.len() != 1 {
            return Err(load_err(format!(
                "expected exactly one input, the model has {}",
                inputs.len()
            )));
        }
        match inputs[0].dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                ..
            } => {}
            other => {
                return Err(load_err(format!(
                    "input is {other:?}, expected an f32 tensor"
                )));
            }
        }
        let output_names = first
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let narrow = (self.threads != 1)
            .then(|| SessionPool::new(Arc::clone(&factory), 1, self.max_sessions, None));
        Ok(OrtModel {
            name: name.to_string(),
            output_names,
            wide: SessionPool::new(factory, self.threads, self.max_sessions, Some(first)),
            narrow,
            load: self.load.clone(),
        })
    }
}

/// Everything needed to create another session for the same model.
struct SessionFactory {
    env: Environment,
    arena: bool,
    prepacked: PrepackedWeights,
    bytes: ModelBytes,
}

impl SessionFactory {
    /// A new session with `threads` intra-op threads (0 = onnxruntime's default).
    fn create(&self, threads: usize) -> Result<Session, String> {
        let run = || -> Result<Session, String> {
            let mut builder = Session::builder(&self.env)
                .map_err(|e| e.to_string())?
                .with_prepacked_weights(&self.prepacked)
                .map_err(|e| e.to_string())?
                // Idle intra-op threads sleep instead of spinning: a request runs six small
                // models in a row and several requests share the cores, so spinning threads
                // only steal time from the ones with work.
                .with_intra_op_spinning(false)
                .map_err(|e| e.to_string())?;
            if denormals::enabled() {
                // Subnormals flushed on the intra-op pool's threads (see crate::denormals).
                builder = builder.with_flush_to_zero().map_err(|e| e.to_string())?;
            }
            if !self.arena {
                // The batch size varies with the number of faces (1 to MAX_BATCH views), and
                // onnxruntime's CPU arena and memory patterns keep the largest buffers each
                // shape ever needed, per session: 300 WIDER photos took the CLI to 1.2 GB
                // (0.54 GB without them, ~25 % slower on crowds; docs/performance.md).
                builder = builder
                    .with_memory_pattern(false)
                    .map_err(|e| e.to_string())?
                    .with_execution_providers([ort::ep::CPU::default()
                        .with_arena_allocator(false)
                        .build()])
                    .map_err(|e| e.to_string())?;
            }
            if threads > 0 {
                builder = builder
                    .with_intra_threads(threads)
                    .map_err(|e| e.to_string())?;
            }
            builder
                .commit_from_memory(self.bytes.as_slice())
                .map_err(|e| e.to_string())
        };
        catch_unwind(AssertUnwindSafe(run))
            .unwrap_or_else(|_| Err("onnxruntime panicked while creating a session".into()))
    }
}

/// `FACELENS_ORT_ARENA=1` turns onnxruntime's CPU arena and memory patterns back on: about
/// 10 % lower latency for a lone request, the same throughput at saturation, and memory that
/// grows to the largest batch ever seen, per session (off by default: bounded memory first).
fn arena_enabled() -> bool {
    std::env::var("FACELENS_ORT_ARENA").is_ok_and(|v| v == "1")
}

struct PoolState {
    idle: Vec<Session>,
    /// Sessions that exist: idle + checked out + being created.
    total: usize,
}

/// Sessions of one model with one intra-op thread count; see the module documentation.
struct SessionPool {
    factory: Arc<SessionFactory>,
    threads: usize,
    max: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

impl SessionPool {
    fn new(
        factory: Arc<SessionFactory>,
        threads: usize,
        max: usize,
        first: Option<Session>,
    ) -> Self {
        let total = usize::from(first.is_some());
        Self {
            factory,
            threads,
            max,
            state: Mutex::new(PoolState {
                idle: first.into_iter().collect(),
                total,
            }),
            returned: Condvar::new(),
        }
    }

    /// An idle session, a new one if the pool is below its cap, or else the next one returned.
    fn checkout(&self) -> Result<PooledSession<'_>, String> {
        let mut state = lock(&self.state);
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(PooledSession {
                    pool: self,
                    session: Some(session),
                });
            }
            if state.total < self.max {
                state.total += 1;
                drop(state);
                return match self.factory.create(self.threads) {
                    Ok(session) => Ok(PooledSession {
                        pool: self,
                        session: Some(session),
                    }),
                    Err(e) => {
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A session slot went away (creation failed, or a run panicked): let a waiter create one.
    fn forget_one(&self) {
        lock(&self.state).total -= 1;
        self.returned.notify_one();
    }
}

/// A checked-out session; returned to the pool on drop (dropped instead if a run panicked).
struct PooledSession<'p> {
    pool: &'p SessionPool,
    session: Option<Session>,
}

impl PooledSession<'_> {
    fn session(&mut self) -> &mut Session {
        self.session.as_mut().expect("session present until drop")
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if std::thread::panicking() {
            drop(session);
            self.pool.forget_one();
        } else {
            lock(&self.pool.state).idle.push(session);
            self.pool.returned.notify_one();
        }
    }
}

struct OrtModel {
    name: String,
    output_names: Vec<String>,
    /// Sessions with the configured intra-op threads, for a run that has the process to itself.
    wide: SessionPool,
    /// Single-threaded sessions for a run that starts while others are in progress; `None`
    /// when one thread is configured anyway.
    narrow: Option<SessionPool>,
    load: Load,
}

impl OrtModel {
    /// The pool a run takes its session from.
    fn pool_for(&self, narrow: bool) -> &SessionPool {
        match &self.narrow {
            Some(pool) if narrow => pool,
            _ => &self.wide,
        }
    }
}

impl Model for OrtModel {
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
        if input.shape.iter().product::<usize>() != input.data.len() {
            return Err(err(format!(
                "input shape {:?} does not match {} values",
                input.shape,
                input.data.len()
            )));
        }
        let value = TensorRef::from_array_view((input.shape.as_slice(), input.data.as_slice()))
            .map_err(|e| err(e.to_string()))?;
        let in_progress = self.load.model_run();
        let mut pooled = self
            .pool_for(in_progress.narrow())
            .checkout()
            .map_err(err)?;
        // onnxruntime runs part of every run on the calling thread (all of it with one intra-op
        // thread), where its own denormal setting does not reach.
        let _flush = FlushGuard::new();
        let outputs = pooled
            .session()
            .run(ort::inputs![value])
            .map_err(|e| err(e.to_string()))?;
        (0..outputs.len())
            .map(|i| {
                let (shape, data) = outputs[i]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| err(format!("output {i}: {e}")))?;
                let shape = shape
                    .iter()
                    .map(|&d| usize::try_from(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| err(format!("output {i} has a negative dimension")))?;
                Ok(Tensor {
                    shape,
                    data: data.to_vec(),
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

    fn backend() -> Option<OrtBackend> {
        match OrtBackend::new(1) {
            Ok(b) => Some(b),
            Err(e) => {
                facelens_testkit::skip(&format!("onnxruntime cannot be loaded: {e}"));
                None
            }
        }
    }

    fn counts(model: &OrtModel) -> (usize, usize) {
        let state = lock(&model.wide.state);
        (state.idle.len(), state.total)
    }

    #[test]
    fn pool_grows_to_its_cap_and_reuses_sessions() {
        let Some(backend) = backend() else { return };
        assert!(
            backend.build_info().contains("ORT"),
            "{}",
            backend.build_info()
        );
        let backend = backend.with_max_sessions(2);
        let model = backend
            .load_model(
                "retinaface",
                ModelBytes::Owned(std::fs::read(MODEL).unwrap()),
            )
            .unwrap();
        assert_eq!(counts(&model), (1, 1), "one session is created at load");

        assert!(
            model.narrow.is_none(),
            "one configured thread: no second pool"
        );

        let a = model.wide.checkout().unwrap();
        let b = model.wide.checkout().unwrap();
        assert_eq!(counts(&model), (0, 2), "a second caller gets a new session");

        // At the cap, a third caller waits until a session is returned.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let c = model.wide.checkout().unwrap();
                drop(c);
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(!waiter.is_finished(), "checkout at the cap must wait");
            drop(a);
            waiter.join().unwrap();
        });
        drop(b);
        assert_eq!(counts(&model), (2, 2), "sessions are returned, not dropped");
    }

    #[test]
    fn a_run_that_starts_beside_another_takes_a_single_threaded_session() {
        let Some(backend) = backend() else { return };
        let backend = OrtBackend {
            threads: 2,
            ..backend
        };
        let model = backend
            .load_model(
                "retinaface",
                ModelBytes::Owned(std::fs::read(MODEL).unwrap()),
            )
            .unwrap();
        let totals = |m: &OrtModel| {
            let narrow = m.narrow.as_ref().map(|p| lock(&p.state).total);
            (lock(&m.wide.state).total, narrow)
        };
        assert_eq!(
            totals(&model),
            (1, Some(0)),
            "narrow sessions are created on demand"
        );
        assert_eq!(model.pool_for(false).threads, 2);
        assert_eq!(model.pool_for(true).threads, 1);

        crate::load::tests::run_alone_then_beside_another(&model, backend.load_signal());
        assert_eq!(
            totals(&model).1,
            Some(1),
            "the second run used a narrow session"
        );
    }

    #[test]
    fn missing_library_is_unavailable() {
        // Only meaningful before any library is loaded in this process; the path check runs first.
        let slot = lock(&ENVIRONMENT);
        if slot.is_some() {
            return;
        }
        drop(slot);
        if std::env::var_os(DYLIB_ENV).is_some() {
            return; // do not touch the environment of a run that provides the library
        }
        match OrtBackend::new(1) {
            Err(InferError::Unavailable(msg)) => assert!(msg.contains(DYLIB_ENV), "{msg}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("loaded without {DYLIB_ENV}"),
        }
    }
}
