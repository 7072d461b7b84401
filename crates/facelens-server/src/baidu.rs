//! Baidu Face Detect v3 compatibility: `/rest/2.0/face/v3/detect` and `/oauth/2.0/token`.

use crate::server::AppState;
use axum::Router;
use std::sync::Arc;

/// Routes of the Baidu-compatible API.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
