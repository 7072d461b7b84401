//! The try-it web page at `/` and the API reference at `/docs`, embedded in the binary.
//!
//! The product is one offline binary, so the pages are plain HTML, CSS and JavaScript compiled
//! in with `include_str!` — no framework, no build step, nothing fetched from elsewhere. The
//! API reference is rendered in the browser from `/openapi.json`, so it can never disagree
//! with the handlers. Every page and asset carries a strict Content-Security-Policy (scripts
//! and styles only from this server, no inline code): the page shows untrusted API output and
//! a key typed by the user, and nothing else may run beside it.

use crate::state::AppState;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("../web/index.html");
const DOCS_HTML: &str = include_str!("../web/docs.html");
const APP_JS: &str = include_str!("../web/app.js");
const DOCS_JS: &str = include_str!("../web/docs.js");
const STYLE_CSS: &str = include_str!("../web/style.css");
const FAVICON_SVG: &str = include_str!("../web/favicon.svg");

/// Scripts, styles, fonts and API calls only from this origin. Images may also be `blob:`
/// (the picked file) and remote http(s) (the preview of an image given by URL, which the
/// browser loads itself; the server fetches its own copy under the SSRF rules).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data: http: https:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    // The assets change with the binary; revalidating is cheap on a local service.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Routes of the embedded pages.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { page(HTML, INDEX_HTML) }))
        .route("/docs", get(|| async { page(HTML, DOCS_HTML) }))
        .route("/assets/app.js", get(|| async { page(JS, APP_JS) }))
        .route("/assets/docs.js", get(|| async { page(JS, DOCS_JS) }))
        .route("/assets/style.css", get(|| async { page(CSS, STYLE_CSS) }))
        .route(
            "/assets/favicon.svg",
            get(|| async { page(SVG, FAVICON_SVG) }),
        )
}
