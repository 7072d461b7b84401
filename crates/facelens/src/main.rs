//! The `facelens` binary: the CLI owns files, configuration and the choice of backend; the
//! libraries below it take bytes and loaded models.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use facelens_infer::BackendKind;
use facelens_vision::{DetectorConfig, Models, Pipeline, Precision};
use std::process::ExitCode;

mod admin_cmd;
mod annotate;
mod detect_cmd;
mod eval_cmd;
mod serve_cmd;

#[derive(Parser)]
#[command(
    name = "facelens",
    version,
    about = "Offline face detection and face attributes"
)]
struct Cli {
    /// Inference backend: rten (pure Rust, always available), onnxruntime, or auto.
    #[arg(long, global = true, env = "FACELENS_BACKEND", default_value = "rten")]
    backend: String,
    /// Intra-op threads per model run (0 = one per core).
    #[arg(long, global = true, env = "FACELENS_THREADS", default_value_t = 0)]
    threads: usize,
    /// Weights of GEAR, dlib age and the detector's feature pyramid: auto (int8 on
    /// onnxruntime, f32 on rten), f32, or int8
    /// (onnxruntime only). See docs/quantization.md.
    #[arg(
        long,
        global = true,
        env = "FACELENS_PRECISION",
        default_value = "auto"
    )]
    precision: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse image files and print the contract's JSON (plus geometry) per image.
    Detect(detect_cmd::DetectArgs),
    /// Run the HTTP service (the Juhe faceDetect endpoint and the native API).
    Serve(serve_cmd::ServeArgs),
    /// Manage API keys in the store.
    Keys {
        #[command(flatten)]
        store: admin_cmd::StoreArgs,
        #[command(subcommand)]
        cmd: admin_cmd::KeysCommand,
    },
    /// Ban and unban client addresses.
    Ips {
        #[command(flatten)]
        store: admin_cmd::StoreArgs,
        #[command(subcommand)]
        cmd: admin_cmd::IpsCommand,
    },
    /// Maintenance and disable switches of the APIs.
    Api {
        #[command(flatten)]
        store: admin_cmd::StoreArgs,
        #[command(subcommand)]
        cmd: admin_cmd::ApiCommand,
    },
    /// Usage per key, day and result code.
    Usage {
        #[command(flatten)]
        store: admin_cmd::StoreArgs,
        #[command(flatten)]
        args: admin_cmd::UsageArgs,
    },
    /// Evaluate accuracy on a labelled manifest.
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
}

/// Detector profile.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Profile {
    /// One pass, long side at most --max-side (the service default).
    Fast,
    /// Original scale plus 2x and 0.5x passes (small and large faces).
    Accurate,
}

impl Profile {
    pub fn config(self, max_side: u32) -> DetectorConfig {
        match self {
            Profile::Fast => DetectorConfig::fast(max_side),
            Profile::Accurate => DetectorConfig::accurate(),
        }
    }
}

/// How models run: the global options every command that analyses images shares (named apart
/// from the server's `Engine`, the worker pool these options configure).
#[derive(Debug, Clone)]
pub struct EngineArgs {
    /// rten, onnxruntime or auto.
    pub backend: String,
    /// Intra-op threads per model run (0 = one per core).
    pub threads: usize,
    /// auto, f32 or int8 (see [`Precision::resolve`]).
    pub precision: String,
}

/// Create the backend and load the embedded models at the chosen precision; returns the
/// pipeline and the backend's name.
pub fn load_pipeline(engine: &EngineArgs) -> Result<(Pipeline, &'static str)> {
    let kind: BackendKind = engine.backend.parse().map_err(anyhow::Error::msg)?;
    let backend = facelens_infer::create_backend(kind, engine.threads)
        .context("creating the inference backend")?;
    let precision = Precision::resolve(&engine.precision, backend.name())
        .map_err(|e| anyhow::anyhow!("{e} (--precision / FACELENS_PRECISION)"))?;
    let models = Models::load_embedded_with(backend.as_ref(), precision)
        .context("loading the embedded models")?;
    Ok((
        Pipeline::new(models)
            .context("building the pipeline")?
            .with_stage_threads(engine.threads),
        backend.name(),
    ))
}

/// jemalloc allocates for the whole process: Rust through this global allocator, and C and C++
/// (libonnxruntime's tensors and `operator new`) through the unprefixed `malloc` family that
/// the crate links in place of glibc's (Cargo.toml, feature `jemalloc`, on by default).
///
/// Why: with glibc's malloc, onnxruntime's backend rested anywhere between 141 and 290 MiB in
/// a 10-minute soak, by what the last runs left scattered in glibc's heaps: the arena cap and
/// the trimmer below bounded it but did not make it flat, and a fixed mmap threshold that did
/// doubled the CPU per answer; rten's resting memory climbed by 30 MiB per soak. jemalloc keeps
/// allocations of a size class together and its background thread returns freed pages to the
/// system on its decay clock ([`malloc_conf`]), so the floors stop climbing, at half
/// rten's footprint and with 8 % less CPU per onnxruntime answer (docs/reliability-results.md,
/// runs S to Z). `MALLOC_CONF` tunes it (docs/configuration.md).
#[cfg(all(feature = "jemalloc", target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options (its `malloc_conf` symbol, read before `main`; the environment's
/// `MALLOC_CONF` is read after it and wins): freed pages go back to the system within about a
/// second (`dirty_decay_ms:1000`) instead of jemalloc's default ten, and are not kept as "muzzy"
/// pages after that (`muzzy_decay_ms:0`).
///
/// Why: with the ten-second default the memory an idle server held still depended on which
/// photos it had finished in the last few seconds: in 10-minute soaks its resting RSS, read
/// after ten idle seconds each minute, sat within a few per cent but for single minutes 11 % to
/// 27 % above the rest (runs AD, AE). With one second, side by side with the default build on
/// both backends, the resting RSS stayed within 1.8 % over minutes 2 to 10, with the same
/// throughput (runs AF to AI, docs/reliability-results.md).
#[cfg(all(feature = "jemalloc", target_os = "linux", target_env = "gnu"))]
#[unsafe(export_name = "malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Whether jemalloc replaces glibc's malloc in this build (then glibc's knobs do nothing).
const JEMALLOC: bool = cfg!(all(
    feature = "jemalloc",
    target_os = "linux",
    target_env = "gnu"
));

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Still single-threaded here: parsing starts no thread.
    if cli.backend != "rten" && !JEMALLOC {
        limit_malloc_arenas();
        start_malloc_trimmer();
    }
    let engine = EngineArgs {
        backend: cli.backend,
        threads: cli.threads,
        precision: cli.precision,
    };
    let result = match cli.command {
        Command::Detect(args) => detect_cmd::run(&engine, args),
        Command::Eval(cmd) => eval_cmd::run(&engine, cmd),
        Command::Serve(args) => serve_cmd::run(&engine, args),
        Command::Keys { store, cmd } => admin_cmd::keys(store, cmd),
        Command::Ips { store, cmd } => admin_cmd::ips(store, cmd),
        Command::Api { store, cmd } => admin_cmd::api(store, cmd),
        Command::Usage { store, args } => admin_cmd::usage(store, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facelens: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Two glibc malloc arenas instead of glibc's default of up to eight per core, for the
/// onnxruntime backend of a build without jemalloc (`--no-default-features`).
///
/// Why: glibc gives threads that allocate at the same time arenas of their own, and memory
/// freed into one arena is not reused by the others nor, while fragmented, returned to the
/// system. onnxruntime's intra-op threads allocate every tensor with malloc (its own arena is
/// off by default), and a served process's resting memory crept from 255 to 385 MiB in ten
/// minutes of load; with two arenas its floors stayed at 240-277 MiB over 30 minutes with no trend,
/// at a throughput within the noise (docs/reliability-results.md, runs F, H and I). The rten
/// backend was flat without it and is left alone. An operator's own `MALLOC_ARENA_MAX` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator, and this runs at the start
        // of main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// How often the trimmer hands glibc's free memory back to the system, in milliseconds, unless
/// `FACELENS_MALLOC_TRIM_MS` says otherwise (0 turns the trimmer off).
const MALLOC_TRIM_INTERVAL_MS: u64 = 2000;

/// For the onnxruntime backend of a build without jemalloc: a thread that calls `malloc_trim(0)` every
/// [`MALLOC_TRIM_INTERVAL_MS`], so that memory freed after a run goes back to the system instead
/// of staying in the process.
///
/// Why: with its arena off, onnxruntime mallocs every run's tensors (megabytes each for the
/// detector) and frees them at the end. glibc keeps freed memory inside its heaps unless it sits
/// at the very top of one, so the resting footprint swung with what the last runs left where:
/// per-minute floors of 202-290 MiB in a 10-minute soak with the two arenas alone (run K), and
/// 141-178 MiB with this thread (run P), at the same CPU time per answer (36 vs 37-39 ms);
/// trimming every 500 ms did no better (152-197 MiB, 41 ms; run R), which points at
/// fragmentation that trimming cannot return. A fixed mmap threshold returns that memory too
/// and flattens it further (never putting large tensors in the heaps), but made every run
/// fault its tensors in anew: 2x the CPU per answer at 128 KiB (docs/journal/2026-12-07-*).
/// The rten backend allocates from Rust, was flat without it, and is left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn start_malloc_trimmer() {
    let ms = match std::env::var("FACELENS_MALLOC_TRIM_MS") {
        Ok(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
            eprintln!(
                "facelens: FACELENS_MALLOC_TRIM_MS={v:?} is not a number of milliseconds; \
                 using {MALLOC_TRIM_INTERVAL_MS}"
            );
            MALLOC_TRIM_INTERVAL_MS
        }),
        Err(_) => MALLOC_TRIM_INTERVAL_MS,
    };
    if ms == 0 {
        return;
    }
    let interval = std::time::Duration::from_millis(ms);
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                // SAFETY: malloc_trim only returns free pages of glibc's heaps to the system; it
                // takes each arena's lock itself, so it is safe beside any allocation.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("facelens: could not start the malloc trimmer: {e}");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn start_malloc_trimmer() {}
