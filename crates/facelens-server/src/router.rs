//! The routes, and the middleware every request passes: a request id, the access log and
//! metrics, the body deadline and CORS.
//!
//! Handlers know nothing of this module: the detection routes are [`crate::request::handle`]
//! instantiated per protocol, and everything they share is in [`crate::state`].

use crate::baidu::Baidu;
use crate::juhe::Juhe;
use crate::native::Native;
use crate::request::{AnsweredCode, RequestId, handle};
use crate::state::AppState;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    let admin = if state.cfg.admin_token.is_empty() {
        Router::new()
    } else {
        crate::admin::routes(state.cfg.admin_token.clone())
    };
    let body_timeout = Duration::from_millis(state.cfg.body_timeout_ms);
    let cors = cors_layer(&state.cfg.cors_allow_origins);
    let app = Router::new()
        .merge(admin)
        .merge(crate::web::routes())
        .merge(crate::metrics::routes())
        .route(
            "/faceDetect/index",
            get(handle::<Juhe>).post(handle::<Juhe>),
        )
        .route("/v1/detect", post(handle::<Native>))
        .route("/rest/2.0/face/v3/detect", post(handle::<Baidu>))
        .route(
            "/oauth/2.0/token",
            get(crate::baidu::oauth::oauth_token).post(crate::baidu::oauth::oauth_token),
        )
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
    let ready = st.is_ready() && store_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "backend": st.backend,
        "precision": st.precision,
        "workers": st.engine.workers(),
        "queue_capacity": st.engine.capacity(),
        "queued": st.engine.queued(),
        "running": st.engine.running(),
        "bytes_in_flight": st.budget.used(),
        "bytes_in_flight_limit": st.budget.limit(),
        "uptime_s": st.uptime().as_secs(),
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
