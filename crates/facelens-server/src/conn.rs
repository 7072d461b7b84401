//! The listening loop: explicit limits on connections and on how slowly a client may talk.
//!
//! `axum::serve` has no timeouts, so a client that sends its headers one byte a minute
//! (slowloris) would hold a connection, a task and a buffer for ever, and enough of them would
//! exhaust file descriptors. Here every connection is served by hyper with:
//! - a deadline for the request head (`header_timeout`), after which hyper closes the socket;
//! - a deadline for the whole body ([`DeadlineBody`], applied by a middleware), after which
//!   reading fails and the request is answered 200218 (malformed) with a reason;
//! - at most `max_connections` open at once; beyond that new sockets are closed at once, so
//!   memory stays bounded under a connection flood;
//! - graceful shutdown: on the signal the listener closes (new connections are refused),
//!   in-flight requests finish, idle keep-alive connections close, and after
//!   `shutdown_grace` whatever is left is dropped so the process always exits.

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits of the listening loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// Connections closed at once because `max_connections` were open (for /metrics).
pub static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Connections open now (for /metrics).
pub static CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// A request body that fails once its deadline has passed, however the bytes trickle in (a
/// per-read timeout would let a client send one byte just before each timeout).
pub struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl DeadlineBody {
    pub fn new(inner: Body, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: give the request body its deadline.
pub async fn body_deadline(limit: Duration, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Body::new(DeadlineBody::new(body, limit)));
    next.run(req).await
}

/// Accept connections on `listener` and serve `app` on each until `shutdown` resolves; then
/// stop accepting, let in-flight requests finish for at most `limits.shutdown_grace`, and
/// return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            CONNECTIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection refused: {} open", limits.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req)
            });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        CONNECTIONS_OPEN.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            CONNECTIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!(
            open = CONNECTIONS_OPEN.load(Ordering::Relaxed),
            "shutdown grace of {:?} over: dropping the connections left", limits.shutdown_grace
        ),
    }
    Ok(())
}
