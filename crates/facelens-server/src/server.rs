//! State, routes, middleware and the listening loop.

use crate::access::{Caller, Gate};
use crate::config::Config;
use crate::engine::Engine;
use crate::fetch::{FetchConfig, Fetcher};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use facelens_imaging::DecodeLimits;
use facelens_store::{
    Gcra, IpNet, MemoryRateLimiter, RateLimiter, RedisRateLimiter, Store, StoreOptions, unix_now,
};
use facelens_vision::Pipeline;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared by every request.
pub struct AppState {
    pub(crate) engine: Engine<Pipeline>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) gate: Gate,
    pub(crate) fetcher: Option<Fetcher>,
    pub(crate) decode_limits: DecodeLimits,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) retain_tokens: bool,
    pub(crate) token_ttl_secs: i64,
    pub(crate) attributes_off: Vec<String>,
    pub(crate) legacy_resultcode: bool,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_image_bytes: usize,
    pub(crate) detector_max_side: u32,
    pub(crate) detect_retries: bool,
    pub(crate) backend: String,
    /// The weights the models with an int8 version (GEAR, dlib age, the detector's feature
    /// pyramid) run with ("f32" or "int8").
    pub(crate) precision: &'static str,
    pub(crate) admin_token: Option<String>,
    /// `baidu_token_secret`, when configured (see baidu::token).
    pub(crate) baidu_token_secret: Option<Vec<u8>>,
    pub(crate) body_timeout: Duration,
    pub(crate) reservation_ttl_secs: u64,
    pub(crate) cors_allow_origins: Vec<String>,
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
        let engine = Engine::start(
            Arc::new(pipeline),
            cfg.effective_workers(),
            cfg.effective_queue_depth(),
        );
        Ok(Self {
            engine,
            gate: Gate {
                store: Arc::clone(&store),
                limiter,
                require_key: cfg.require_key,
            },
            store,
            fetcher,
            decode_limits: DecodeLimits {
                max_file_bytes: cfg.max_image_bytes,
                ..DecodeLimits::default()
            },
            trusted_proxies: cfg.trusted_proxy_nets(),
            retain_tokens: cfg.retain_tokens,
            token_ttl_secs: i64::try_from(cfg.token_ttl_secs).unwrap_or(i64::MAX),
            attributes_off: cfg.attributes_off.clone(),
            legacy_resultcode: cfg.legacy_resultcode,
            max_body_bytes: cfg.max_body_bytes,
            max_image_bytes: cfg.max_image_bytes,
            detector_max_side: cfg.detector_max_side,
            detect_retries: cfg.detect_retries,
            backend: backend.to_string(),
            precision,
            admin_token: (!cfg.admin_token.is_empty()).then(|| cfg.admin_token.clone()),
            baidu_token_secret: (!cfg.baidu_token_secret.is_empty())
                .then(|| cfg.baidu_token_secret.as_bytes().to_vec()),
            body_timeout: Duration::from_millis(cfg.body_timeout_ms),
            reservation_ttl_secs: cfg.reservation_ttl_secs,
            cors_allow_origins: cfg.cors_allow_origins.clone(),
            ready: AtomicBool::new(true),
            started: Instant::now(),
        })
    }

    pub(crate) fn caller(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> Caller {
        Caller::from_parts(peer, headers, &self.trusted_proxies)
    }

    /// Stop answering ready (used on shutdown, so a load balancer drains this replica).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// The request id of the current request (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The error code a handler answered with (a response extension, for the access log).
#[derive(Debug, Clone, Copy)]
pub struct AnsweredCode(pub u32);

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    let admin = match &state.admin_token {
        Some(token) => crate::admin::routes(token.clone()),
        None => Router::new(),
    };
    let body_timeout = state.body_timeout;
    let cors = cors_layer(&state.cors_allow_origins);
    let app = Router::new()
        .merge(admin)
        .merge(crate::web::routes())
        .merge(crate::baidu::routes())
        .merge(crate::metrics::routes())
        .route(
            "/faceDetect/index",
            get(crate::juhe_api::face_detect).post(crate::juhe_api::face_detect),
        )
        .route("/v1/detect", post(crate::native::detect))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .fallback(not_found)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            crate::conn::body_deadline(body_timeout, req, next)
        }))
        .layer(middleware::from_fn(request_id));
    let app = match cors {
        Some(c) => app.layer(c),
        None => app,
    };
    app.with_state(state)
}

/// CORS only for the configured origins; none configured = no CORS headers at all, so a
/// page on another origin cannot read answers (nor make a preflighted call).
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                axum::http::header::CONTENT_TYPE,
                axum::http::header::AUTHORIZATION,
                axum::http::HeaderName::from_static("x-api-key"),
                axum::http::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                axum::http::HeaderName::from_static("x-request-id"),
                axum::http::HeaderName::from_static("x-facelens-detail"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

async fn not_found(req: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"code": 404, "slug": "not_found",
            "message": format!("no route for {} {}", req.method(), req.uri().path())}})),
    )
        .into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let store_ok = tokio::time::timeout(
        Duration::from_secs(2),
        st.store.api_state(crate::API_FACE_DETECT),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let ready = st.ready.load(Ordering::SeqCst) && store_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "backend": st.backend,
        "precision": st.precision,
        "workers": st.engine.workers(),
        "queue_capacity": st.engine.capacity(),
        "queued": st.engine.queued(),
        "running": st.engine.running(),
        "uptime_s": st.started.elapsed().as_secs(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    let mut r = [0u8; 6];
    let _ = getrandom::fill(&mut r);
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}{:04x}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        n & 0xffff
    )
}

/// Give every request an id (the client's `X-Request-Id` when it is sane), return it in the
/// response header, and write one access-log line per request. The line never holds image
/// data or keys: method, path, status, code, time, id.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(new_request_id, str::to_string);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let endpoint = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(crate::metrics::UNMATCHED, |m| m.as_str())
        .to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let t = Instant::now();
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let code = resp.extensions().get::<AnsweredCode>().map(|c| c.0);
    crate::metrics::record_request(
        &endpoint,
        method.as_str(),
        resp.status().as_u16(),
        code,
        t.elapsed(),
    );
    tracing::info!(
        request_id = %id,
        %method,
        path = %path,
        peer = %peer,
        status = resp.status().as_u16(),
        error_code = code,
        ms = format!("{:.1}", t.elapsed().as_secs_f64() * 1e3),
        "request"
    );
    resp
}

/// A running server.
pub struct Server {
    pub state: Arc<AppState>,
    pub addr: SocketAddr,
    listener: tokio::net::TcpListener,
    limits: crate::conn::ConnLimits,
}

impl Server {
    /// Bind the listener (so the caller can print the real address before serving).
    pub async fn bind(cfg: &Config, state: Arc<AppState>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            state,
            addr,
            listener,
            limits: crate::conn::ConnLimits {
                header_timeout: Duration::from_millis(cfg.header_timeout_ms),
                body_timeout: Duration::from_millis(cfg.body_timeout_ms),
                max_connections: cfg.max_connections,
                shutdown_grace: Duration::from_secs(cfg.shutdown_grace_secs),
            },
        })
    }

    /// Serve until `shutdown` resolves, then stop accepting, finish in-flight requests and
    /// return.
    pub async fn serve(
        self,
        purge_interval: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let purge_state = Arc::clone(&self.state);
        // A SQLite store belongs to this process: every reservation still pending was left by
        // a previous run that died, so give them all back now. A shared PostgreSQL store has
        // other replicas' live requests in it: only reservations older than the TTL go.
        // (Nothing of this process is reserved yet: connections are not served before this.)
        if purge_state.store.backend() == facelens_store::Backend::Sqlite {
            reclaim(&purge_state, i64::MAX).await;
        }
        let purger = tokio::spawn(async move {
            let mut tick = tokio::time::interval(purge_interval.max(Duration::from_secs(1)));
            loop {
                tick.tick().await;
                match purge_state.store.purge_expired(unix_now()).await {
                    Ok(r) if r.face_tokens > 0 => {
                        tracing::info!(face_tokens = r.face_tokens, "purged expired tokens");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("purging expired tokens failed: {e}"),
                }
                let ttl = i64::try_from(purge_state.reservation_ttl_secs).unwrap_or(i64::MAX);
                reclaim(&purge_state, unix_now().saturating_sub(ttl)).await;
            }
        });
        let state = Arc::clone(&self.state);
        let app = router(Arc::clone(&self.state));
        let result = crate::conn::serve(self.listener, app, self.limits, async move {
            shutdown.await;
            state.set_ready(false);
            tracing::info!("shutting down: refusing new connections, finishing in-flight requests");
        })
        .await;
        purger.abort();
        result.map_err(anyhow::Error::from)
    }
}

/// Give back the quota of reservations made before `older_than` and never finished.
async fn reclaim(state: &AppState, older_than: i64) {
    match state.store.reclaim_stale(older_than).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            reservations = n,
            "gave back the quota of requests whose server stopped before finishing them"
        ),
        Err(e) => tracing::warn!("reclaiming abandoned reservations failed: {e}"),
    }
}

/// Store options from the configuration.
pub fn store_options(cfg: &Config) -> StoreOptions {
    StoreOptions {
        day_offset_secs: cfg.day_offset_secs,
        test_daily_limit: Some(cfg.test_daily_limit),
        test_total_limit: Some(cfg.test_total_limit),
        pg_schema: (!cfg.database_schema.is_empty()).then(|| cfg.database_schema.clone()),
        op_timeout_ms: cfg.database_timeout_ms,
        ..StoreOptions::default()
    }
}
