//! The running server: the listener, the periodic purge of expired tokens and abandoned
//! quota reservations, and graceful shutdown (the listening loop itself is [`crate::conn`]).

use crate::config::Config;
use crate::router::router;
use crate::state::AppState;
use facelens_store::{StoreOptions, unix_now};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
                let ttl = i64::try_from(purge_state.cfg.reservation_ttl_secs).unwrap_or(i64::MAX);
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
