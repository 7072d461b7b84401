//! `facelens serve`: the HTTP service.
//!
//! Reads the configuration (file, then FACELENS_* variables, then these flags), opens the store
//! (SQLite in the data dir by default), loads the embedded models, creates a first key when the
//! store has none, prints where it listens, and serves until SIGINT / SIGTERM, then finishes
//! the requests in flight.

use anyhow::{Context, Result};
use clap::Args;
use facelens_server::{AppState, Config, Server, store_options};
use facelens_store::{NewKey, unix_now};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "FACELENS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 = any free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Folder of the embedded store.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// postgres://... for a shared store (many replicas).
    #[arg(long)]
    pub database_url: Option<String>,
    /// redis://... for rate limits shared by replicas.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Inference workers (0 = one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker before "busy".
    #[arg(long)]
    pub queue_depth: Option<usize>,
    /// Accept calls without a key (local experiments only).
    #[arg(long)]
    pub no_key: bool,
    /// Print the settings this would run with (file, environment and flags applied; the
    /// database password and the admin token masked) as one JSON object, and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(engine: &crate::EngineArgs, args: ServeArgs) -> Result<ExitCode> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(v) = args.listen {
        cfg.listen = v;
    }
    if let Some(v) = args.data_dir {
        cfg.data_dir = v;
    }
    if let Some(v) = args.database_url {
        cfg.database_url = v;
    }
    if let Some(v) = args.redis_url {
        cfg.redis_url = v;
    }
    if let Some(v) = args.workers {
        cfg.workers = v;
    }
    if let Some(v) = args.queue_depth {
        cfg.queue_depth = v;
    }
    if args.no_key {
        cfg.require_key = false;
    }
    cfg.validate()?;
    if args.print_config {
        println!("{}", printable_config(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(cfg.log_json);
    let mut engine = engine.clone();
    if engine.threads == 0 {
        engine.threads = cfg.inference_threads;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, engine))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(cfg: Config, engine: crate::EngineArgs) -> Result<()> {
    let store = facelens_store::open(&cfg.store_location(), store_options(&cfg))
        .await
        .with_context(|| format!("opening the store at {}", redact(&cfg.store_location())))?;
    if cfg.require_key && cfg.create_first_key && store.list_keys().await?.is_empty() {
        let created = store
            .create_key(
                NewKey {
                    name: "first key (created by facelens serve)".into(),
                    ..NewKey::default()
                },
                unix_now(),
            )
            .await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "facelens: created the first API key (shown once, keep it): {}",
            created.secret.expose()
        )?;
        writeln!(out, "facelens: {}", key_store_line(&cfg))?;
        out.flush()?;
    }
    let (pipeline, backend_name) = crate::load_pipeline(&engine)?;
    let precision = pipeline.precision().name();
    let state = Arc::new(AppState::new(&cfg, pipeline, backend_name, store).await?);
    let server = Server::bind(&cfg, Arc::clone(&state)).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "facelens: listening on http://{} (backend {backend_name}, {precision}, {} workers, queue {}, store {})",
            server.addr,
            cfg.effective_workers(),
            cfg.effective_queue_depth(),
            redact(&cfg.store_location()),
        )?;
        out.flush()?;
    }
    server
        .serve(
            Duration::from_secs(cfg.purge_interval_secs),
            shutdown_signal(),
        )
        .await
}

/// Where the key store lives, said once at the first start: the SQLite file (keys are stored
/// as hashes, but usage and face tokens are in it too, so the folder must not be published or
/// committed), or the database a URL points at (password masked).
fn key_store_line(cfg: &Config) -> String {
    let location = cfg.store_location();
    if !cfg.database_url.is_empty() {
        return format!(
            "keys, quotas, usage and face tokens are stored in the database {}",
            redact(&location)
        );
    }
    let file =
        facelens_store::sqlite::sqlite_path(&location).unwrap_or_else(|_| PathBuf::from(&location));
    let shown = match std::path::absolute(&file) {
        Ok(abs) if abs != file => format!("{} ({})", file.display(), abs.display()),
        _ => file.display().to_string(),
    };
    format!(
        "keys, quotas, usage and face tokens are stored in {shown}, a SQLite file: keep that \
         folder private and out of version control"
    )
}

/// The settings as pretty JSON with the secrets masked: what `--print-config` shows, so a
/// deployment can be checked (scripts/validate-deploy.sh reads the setting names from it).
fn printable_config(cfg: &Config) -> Result<String> {
    let mut v = serde_json::to_value(cfg).context("serialising the configuration")?;
    v["database_url"] = serde_json::json!(redact(&cfg.database_url));
    if !cfg.admin_token.is_empty() {
        v["admin_token"] = serde_json::json!("***");
    }
    if !cfg.baidu_token_secret.is_empty() {
        v["baidu_token_secret"] = serde_json::json!("***");
    }
    Ok(serde_json::to_string_pretty(&v)?)
}

/// A store location without its password.
fn redact(location: &str) -> String {
    match (location.find("://"), location.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &location[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &location[..s + 3], &location[at..]),
                None => location.to_string(),
            }
        }
        _ => location.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FACELENS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_start_says_where_the_key_store_is() {
        let cfg = facelens_server::Config::default();
        let line = super::key_store_line(&cfg);
        let file = std::path::Path::new("facelens-data").join("facelens.db");
        assert!(
            line.contains(&format!("stored in {} (", file.display())),
            "{line}"
        );
        let abs = std::path::absolute(&file).unwrap();
        assert!(line.contains(&abs.display().to_string()), "{line}");
        assert!(line.contains("out of version control"), "{line}");

        let cfg = facelens_server::Config {
            database_url: "postgres://u:secret@db/x".into(),
            ..Default::default()
        };
        let line = super::key_store_line(&cfg);
        assert!(
            line.ends_with("the database postgres://u:***@db/x"),
            "{line}"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(super::redact("facelens-data"), "facelens-data");
    }

    #[test]
    fn printed_config_masks_secrets_and_names_every_setting() {
        let cfg = facelens_server::Config {
            database_url: "postgres://u:secret@db/x".into(),
            admin_token: "0123456789abcdef0123".into(),
            baidu_token_secret: "token-secret-fedcba9876".into(),
            ..Default::default()
        };
        let text = super::printable_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !text.contains("secret@")
                && !text.contains("0123456789abcdef")
                && !text.contains("fedcba9876"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["database_url"], "postgres://u:***@db/x");
        assert_eq!(v["workers"], 0);
        assert!(v.get("queue_depth").is_some() && v.get("redis_url").is_some());
    }
}
