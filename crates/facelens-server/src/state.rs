//! What every request shares: the configuration, the inference engine, the store and the
//! admission gate, the URL fetcher and the byte budget.
//!
//! Settings are read from the one [`Config`] (shared, never copied field by field); only what
//! must be built from it once — the engine, the gate, the fetcher, parsed networks — is held
//! beside it.

use crate::access::Caller;
use crate::budget::{ByteBudget, default_budget, memory_limit};
use crate::config::Config;
use crate::engine::Engine;
use crate::fetch::{FetchConfig, Fetcher};
use facelens_core::net::IpNet;
use facelens_imaging::DecodeLimits;
use facelens_store::{Gate, Gcra, MemoryRateLimiter, RateLimiter, RedisRateLimiter, Store};
use facelens_vision::{Attribute, Pipeline};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Shared by every request.
pub struct AppState {
    pub cfg: Arc<Config>,
    pub(crate) engine: Engine<Pipeline>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) gate: Gate,
    pub(crate) fetcher: Option<Fetcher>,
    pub(crate) budget: Arc<ByteBudget>,
    /// `trusted_proxies`, parsed.
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// `attributes_off`, parsed.
    pub(crate) attributes_off: Vec<Attribute>,
    pub(crate) backend: String,
    /// The weights the models with an int8 version (GEAR, dlib age, the detector's feature
    /// pyramid) run with ("f32" or "int8").
    pub(crate) precision: &'static str,
    ready: AtomicBool,
    started: Instant,
}

impl AppState {
    /// Build the state from a configuration, a loaded pipeline and an open store.
    pub async fn new(
        cfg: &Config,
        pipeline: Pipeline,
        backend: &str,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let cfg = Arc::new(cfg.clone());
        let limiter: Option<Arc<dyn RateLimiter>> = if cfg.ip_rate_per_second == 0 {
            None
        } else {
            let gcra = Gcra::per_second(cfg.ip_rate_per_second, cfg.ip_rate_burst)?;
            if cfg.redis_url.is_empty() {
                Some(Arc::new(MemoryRateLimiter::new(gcra)))
            } else {
                Some(Arc::new(
                    RedisRateLimiter::connect(&cfg.redis_url, gcra, "facelens").await?,
                ))
            }
        };
        let fetcher = if cfg.url_fetch {
            Some(
                Fetcher::new(FetchConfig {
                    allow: cfg.url_allow_nets(),
                    connect_timeout: Duration::from_millis(cfg.url_connect_timeout_ms),
                    total_timeout: Duration::from_millis(cfg.url_timeout_ms),
                    max_redirects: cfg.url_max_redirects,
                    max_bytes: cfg.max_image_bytes,
                    lookup: None,
                })
                .map_err(anyhow::Error::msg)?,
            )
        } else {
            None
        };
        crate::metrics::mark_start();
        let precision = pipeline.precision().name();
        let workers = cfg.effective_workers();
        let queue = cfg.effective_queue_depth();
        let engine = Engine::start(Arc::new(pipeline), workers, queue);
        let budget = ByteBudget::new(cfg.effective_bytes_in_flight());
        Ok(Self {
            engine,
            gate: Gate {
                store: Arc::clone(&store),
                limiter,
                require_key: cfg.require_key,
            },
            store,
            fetcher,
            budget,
            trusted_proxies: cfg.trusted_proxy_nets(),
            attributes_off: cfg.attributes_off_parsed().map_err(anyhow::Error::msg)?,
            backend: backend.to_string(),
            precision,
            ready: AtomicBool::new(true),
            started: Instant::now(),
            cfg,
        })
    }

    pub(crate) fn caller(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> Caller {
        Caller::from_parts(peer, headers, &self.trusted_proxies)
    }

    /// The limits images are decoded under.
    pub(crate) fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_file_bytes: self.cfg.max_image_bytes,
            ..DecodeLimits::default()
        }
    }

    /// How long a token stays valid, seconds.
    pub(crate) fn token_ttl_secs(&self) -> i64 {
        i64::try_from(self.cfg.token_ttl_secs).unwrap_or(i64::MAX)
    }

    /// `baidu_token_secret`, when configured (see baidu::token).
    pub(crate) fn baidu_token_secret(&self) -> Option<&[u8]> {
        (!self.cfg.baidu_token_secret.is_empty()).then(|| self.cfg.baidu_token_secret.as_bytes())
    }

    /// Stop answering ready (used on shutdown, so a load balancer drains this replica).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Config {
    /// `max_bytes_in_flight` after resolving 0 = derived from the machine
    /// ([`crate::budget::default_budget`]).
    pub fn effective_bytes_in_flight(&self) -> usize {
        if self.max_bytes_in_flight > 0 {
            self.max_bytes_in_flight
        } else {
            default_budget(
                self.effective_workers() + self.effective_queue_depth(),
                self.max_body_bytes,
                memory_limit(),
            )
        }
    }
}
