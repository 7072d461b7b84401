//! The try-it web page at `/` and the API reference at `/docs`, embedded in the binary.

use crate::server::AppState;
use axum::Router;
use std::sync::Arc;

/// Routes of the embedded pages.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
