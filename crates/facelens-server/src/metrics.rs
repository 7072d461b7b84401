//! Prometheus metrics at `/metrics`.

use crate::server::AppState;
use axum::Router;
use std::sync::Arc;

/// The metrics route.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
