//! Service configuration: one flat table of settings with safe defaults, read from a TOML file,
//! then `FACELENS_<NAME>` environment variables, then command-line flags (each overrides the
//! one before). Flat names keep the three spellings obviously the same setting:
//! `queue_depth` in the file is `FACELENS_QUEUE_DEPTH` in the environment.
//!
//! Every limit the service enforces is a setting here, with its default in [`Config::default`]
//! and in docs/configuration.md.

use facelens_core::net::IpNet;
use facelens_vision::Attribute;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything `facelens serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: String,
    /// Folder of the embedded store (SQLite) when no `database_url` is given.
    pub data_dir: PathBuf,
    /// `postgres://...` (many replicas) or `sqlite://...`; empty = SQLite in `data_dir`.
    pub database_url: String,
    /// PostgreSQL only: keep the tables in this schema (created if missing); empty = the
    /// connection's default. Lets several deployments share one database.
    pub database_schema: String,
    /// PostgreSQL: how long a request waits for a database connection, and the statement
    /// timeout, milliseconds (then 10014 instead of a hang while the database is down).
    pub database_timeout_ms: u64,
    /// `redis://...` for rate limits shared by replicas; empty = in-process limits.
    pub redis_url: String,
    /// Refuse calls without a valid API key (10001). Off only for local experiments.
    pub require_key: bool,
    /// On first start with no key in the store, create one and print it once.
    pub create_first_key: bool,
    /// Add the legacy `resultcode` field to every contract response.
    pub legacy_resultcode: bool,
    /// Inference workers (images analysed at once); 0 = one per CPU core.
    pub workers: usize,
    /// Requests that may wait for a worker; beyond it a request gets "busy" at once.
    /// 0 = 4 per worker.
    pub queue_depth: usize,
    /// Intra-operator threads per model run; 0 = let the backend decide (one per core).
    pub inference_threads: usize,
    /// Largest request body, bytes (form, JSON and multipart alike).
    pub max_body_bytes: usize,
    /// Largest image, bytes (the contract: 4 MB), for uploads and URL downloads alike.
    pub max_image_bytes: usize,
    /// Request body bytes the server holds at once, over all requests (taken before a body is
    /// read; beyond it a request is answered "busy" and its body discarded as it arrives).
    /// 0 = derived from the machine: twice `max_body_bytes` per engine slot (workers + queue
    /// depth), at most a sixteenth of the memory (the cgroup limit in a container).
    pub max_bytes_in_flight: usize,
    /// Longest side the detector looks at for live photos (the image is not resized for the
    /// per-face stages).
    pub detector_max_side: u32,
    /// When the detector finds nothing, retry on padded and grey canvases and with the
    /// close-up detector (finds faces that fill the whole image, drawn faces especially; a
    /// faceless photo costs about 3.5x its detection then). Off: a faceless photo is answered
    /// after one detector pass.
    pub detect_retries: bool,
    /// Keep face results under their token_id so that `image_type=3` works.
    pub retain_tokens: bool,
    /// How long a token_id stays valid, seconds (default 72 h).
    pub token_ttl_secs: u64,
    /// A quota reservation never finished after this long (its server died mid-request) is
    /// given back by the periodic purge, seconds. Must exceed the longest request. A server on
    /// SQLite also gives back, at start, every reservation left by its previous run.
    pub reservation_ttl_secs: u64,
    /// How often expired tokens are purged, seconds.
    pub purge_interval_secs: u64,
    /// Allow `image_type=2` (remote URLs) at all.
    pub url_fetch: bool,
    /// Networks that URLs may point into even though they are not public (loopback, private…).
    /// Empty by default: only public addresses are fetched.
    pub url_allow: Vec<String>,
    /// TCP connect timeout for image URLs, milliseconds.
    pub url_connect_timeout_ms: u64,
    /// Whole-download timeout for image URLs, milliseconds.
    pub url_timeout_ms: u64,
    /// Redirects followed for image URLs (each one checked again).
    pub url_max_redirects: usize,
    /// Requests per second allowed from one client IP (10011 beyond); 0 = no limit.
    pub ip_rate_per_second: u32,
    /// Burst above the per-IP rate.
    pub ip_rate_burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs); empty = use the socket address.
    pub trusted_proxies: Vec<String>,
    /// Accounting day offset from UTC, seconds (daily quotas reset at local midnight).
    pub day_offset_secs: i32,
    /// Daily limit of every test key.
    pub test_daily_limit: i64,
    /// Lifetime limit of every test key.
    pub test_total_limit: i64,
    /// Attributes never computed nor returned (e.g. `["race", "beauty"]`), by the contract's
    /// field names.
    pub attributes_off: Vec<String>,
    /// Log lines as JSON objects instead of text.
    pub log_json: bool,
    /// Time a client has to send a request's head (request line and headers), milliseconds;
    /// then the connection is closed (slow clients, "slowloris").
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's whole body, milliseconds; then the request is
    /// answered 200218 (malformed) and its body is not read further.
    pub body_timeout_ms: u64,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// On SIGTERM / Ctrl-C: how long in-flight requests may take to finish, seconds.
    pub shutdown_grace_secs: u64,
    /// Origins allowed to call from a browser on another origin (CORS), e.g.
    /// `["https://app.example.com"]`, or `["*"]`; empty = no CORS headers (browsers refuse
    /// cross-origin calls).
    pub cors_allow_origins: Vec<String>,
    /// Bearer token of the admin HTTP API (`/admin/v1/...`); empty = the admin API is off.
    /// Never a public API key.
    pub admin_token: String,
    /// Secret mixed into the Baidu endpoint's access tokens (at least 16 characters, the same
    /// on every replica, kept outside the database); empty = tokens are keyed by the stored
    /// key hashes alone, so a reader of the key table could mint them (docs/baidu.md).
    /// Changing it revokes every token issued before.
    pub baidu_token_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("facelens-data"),
            database_url: String::new(),
            database_schema: String::new(),
            database_timeout_ms: 5_000,
            redis_url: String::new(),
            require_key: true,
            create_first_key: true,
            legacy_resultcode: false,
            workers: 0,
            queue_depth: 0,
            inference_threads: 0,
            max_body_bytes: 12 * 1024 * 1024,
            max_image_bytes: 4 * 1024 * 1024,
            max_bytes_in_flight: 0,
            detector_max_side: 640,
            detect_retries: true,
            retain_tokens: true,
            token_ttl_secs: 72 * 3600,
            reservation_ttl_secs: 300,
            purge_interval_secs: 600,
            url_fetch: true,
            url_allow: Vec::new(),
            url_connect_timeout_ms: 3_000,
            url_timeout_ms: 10_000,
            url_max_redirects: 3,
            ip_rate_per_second: 0,
            ip_rate_burst: 20,
            trusted_proxies: Vec::new(),
            day_offset_secs: 0,
            test_daily_limit: 100,
            test_total_limit: 1000,
            attributes_off: Vec::new(),
            log_json: false,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 1024,
            shutdown_grace_secs: 30,
            cors_allow_origins: Vec::new(),
            admin_token: String::new(),
            baidu_token_secret: String::new(),
        }
    }
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {reason}")]
    Invalid { origin: String, reason: String },
}

fn invalid(origin: impl Into<String>, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.into(),
        reason: reason.to_string(),
    }
}

impl Config {
    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut value =
            serde_json::to_value(Config::default()).map_err(|e| invalid("defaults", e))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| invalid(path.display().to_string(), e))?;
            let file_value =
                serde_json::to_value(table).map_err(|e| invalid(path.display().to_string(), e))?;
            merge(&mut value, file_value);
        }
        overlay_env(&mut value, std::env::vars())?;
        let cfg: Config = serde_json::from_value(value).map_err(|e| invalid("configuration", e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the values that serde's types do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for n in self.url_allow.iter().chain(&self.trusted_proxies) {
            n.parse::<IpNet>()
                .map_err(|e| invalid("url_allow / trusted_proxies", format!("{n:?}: {e}")))?;
        }
        self.attributes_off_parsed()
            .map_err(|e| invalid("attributes_off", e))?;
        if self.max_image_bytes == 0 || self.max_body_bytes < self.max_image_bytes {
            return Err(invalid(
                "max_body_bytes",
                "must be at least max_image_bytes (> 0)",
            ));
        }
        if self.max_bytes_in_flight != 0 && self.max_bytes_in_flight < self.max_body_bytes {
            return Err(invalid(
                "max_bytes_in_flight",
                "must be 0 (derived from the machine) or at least max_body_bytes",
            ));
        }
        if !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return Err(invalid("admin_token", "must be at least 16 characters"));
        }
        if !self.baidu_token_secret.is_empty() && self.baidu_token_secret.len() < 16 {
            return Err(invalid(
                "baidu_token_secret",
                "must be at least 16 characters",
            ));
        }
        for (name, v) in [
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("database_timeout_ms", self.database_timeout_ms),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        for o in &self.cors_allow_origins {
            let ok = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o.ends_with('/')
                    && axum::http::HeaderValue::from_str(o).is_ok());
            if !ok {
                return Err(invalid(
                    "cors_allow_origins",
                    format!("{o:?} is not \"*\" nor an origin like https://app.example.com"),
                ));
            }
        }
        if self.reservation_ttl_secs < 10 {
            return Err(invalid("reservation_ttl_secs", "must be at least 10"));
        }
        if self.token_ttl_secs == 0 {
            return Err(invalid("token_ttl_secs", "must be > 0"));
        }
        Ok(())
    }

    /// Worker threads after resolving 0 = per core.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Queue depth after resolving 0 = 4 per worker.
    pub fn effective_queue_depth(&self) -> usize {
        if self.queue_depth > 0 {
            self.queue_depth
        } else {
            4 * self.effective_workers()
        }
    }

    pub fn url_allow_nets(&self) -> Vec<IpNet> {
        self.url_allow
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }

    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }

    /// `attributes_off` as attributes (any of the contract's ten may be switched off).
    pub fn attributes_off_parsed(
        &self,
    ) -> Result<Vec<Attribute>, facelens_vision::attributes::UnknownAttribute> {
        self.attributes_off
            .iter()
            .map(|a| a.trim().parse())
            .collect()
    }

    /// The store location: `database_url`, else SQLite in `data_dir`.
    pub fn store_location(&self) -> String {
        if self.database_url.is_empty() {
            self.data_dir.display().to_string()
        } else {
            self.database_url.clone()
        }
    }
}

fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    if let (Some(b), serde_json::Value::Object(o)) = (base.as_object_mut(), over) {
        for (k, v) in o {
            b.insert(k, v);
        }
    }
}

/// Apply `FACELENS_<NAME>` variables to the settings that exist, parsed by the type of the
/// default (lists are comma-separated). Unknown `FACELENS_` variables are ignored: the CLI
/// uses a few of its own (`FACELENS_BACKEND`, `FACELENS_THREADS`, ...).
pub fn overlay_env(
    value: &mut serde_json::Value,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let Some(map) = value.as_object_mut() else {
        return Ok(());
    };
    for (name, raw) in vars {
        let Some(key) = name.strip_prefix("FACELENS_") else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        let Some(current) = map.get(&key) else {
            continue;
        };
        let parsed = match current {
            serde_json::Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => serde_json::Value::Bool(true),
                "0" | "false" | "no" | "off" => serde_json::Value::Bool(false),
                _ => return Err(invalid(name, format!("{raw:?} is not a boolean"))),
            },
            serde_json::Value::Number(_) => serde_json::from_str::<serde_json::Number>(raw.trim())
                .map(serde_json::Value::Number)
                .map_err(|_| invalid(&name, format!("{raw:?} is not a number")))?,
            serde_json::Value::Array(_) => serde_json::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| serde_json::Value::String(s.to_string()))
                    .collect(),
            ),
            _ => serde_json::Value::String(raw),
        };
        map.insert(key, parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_by_type() {
        let mut v = serde_json::to_value(Config::default()).expect("serialise");
        let vars = [
            ("FACELENS_QUEUE_DEPTH", "7"),
            ("FACELENS_REQUIRE_KEY", "off"),
            ("FACELENS_URL_ALLOW", "127.0.0.1/32, ::1"),
            ("FACELENS_LISTEN", "0.0.0.0:9000"),
            ("FACELENS_BACKEND", "rten"),
            ("OTHER_THING", "x"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        overlay_env(&mut v, vars.into_iter()).expect("overlay");
        let c: Config = serde_json::from_value(v).expect("config");
        assert_eq!(c.queue_depth, 7);
        assert!(!c.require_key);
        assert_eq!(c.url_allow, vec!["127.0.0.1/32", "::1"]);
        assert_eq!(c.listen, "0.0.0.0:9000");
        c.validate().expect("valid");
    }

    #[test]
    fn bad_env_values_are_named() {
        let mut v = serde_json::to_value(Config::default()).expect("serialise");
        let err = overlay_env(
            &mut v,
            [("FACELENS_WORKERS".to_string(), "many".to_string())].into_iter(),
        )
        .expect_err("not a number");
        assert!(err.to_string().contains("FACELENS_WORKERS"), "{err}");
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("facelens.toml");
        std::fs::write(&path, "workers = 3\nattributes_off = [\"race\"]\n").expect("write");
        let c = Config::load(Some(&path)).expect("load");
        assert_eq!(c.workers, 3);
        assert_eq!(c.attributes_off, vec!["race"]);
        std::fs::write(&path, "wrokers = 3\n").expect("write");
        let err = Config::load(Some(&path)).expect_err("unknown field");
        assert!(err.to_string().contains("wrokers"), "{err}");
    }

    #[test]
    fn invalid_values_refused() {
        let c = Config {
            url_allow: vec!["not-an-ip".into()],
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            attributes_off: vec!["shoe_size".into()],
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
