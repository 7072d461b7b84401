//! Who is calling, and the guard an admitted request holds.
//!
//! The admission policy itself (per-IP rate, API switch, bans, the key's standing, the quota,
//! in one documented order) is [`facelens_store::Gate`], shared with the store's conformance
//! suite. This module adds what is HTTP's: the client's address behind trusted proxies
//! ([`Caller`]), and [`Admission`], which holds what an admitted request has taken — its place
//! in the inference queue and its unit of quota — and settles both: the unit is finished with
//! the request's outcome (which decides whether it counts,
//! [`facelens_store::counts_against_quota`]), the place goes back when the work ends. A request
//! dropped half-way (client gone) releases both from the guard's `Drop`, so nothing is ever
//! counted without a recorded outcome and no place leaks.

use crate::engine::Slot;
use crate::error::ApiError;
use facelens_core::ErrorCode;
use facelens_core::net::IpNet;
use facelens_store::{Store, Ticket, unix_now};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The client as the server sees it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    pub referer: Option<String>,
}

impl Caller {
    /// The client address: the socket's peer, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn from_parts(
        peer: SocketAddr,
        headers: &axum::http::HeaderMap,
        trusted: &[IpNet],
    ) -> Self {
        let mut ip = canonical(peer.ip());
        if trusted.iter().any(|n| n.contains(ip)) {
            let hops: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .map(canonical)
                .collect();
            for hop in hops.into_iter().rev() {
                ip = hop;
                if !trusted.iter().any(|n| n.contains(hop)) {
                    break;
                }
            }
        }
        let referer = headers
            .get(axum::http::header::REFERER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Self { ip, referer }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What an admitted request holds: its engine slot and its unit of quota (none when keys
/// are not required). Settle it with the outcome; dropped instead, both are given back.
pub struct Admission {
    store: Arc<dyn Store>,
    ticket: Option<Ticket>,
    slot: Option<Slot>,
}

impl Admission {
    pub(crate) fn new(store: Arc<dyn Store>, ticket: Option<Ticket>, slot: Slot) -> Self {
        Self {
            store,
            ticket,
            slot: Some(slot),
        }
    }

    /// The engine slot, for the request's one inference job (which holds it until it ends).
    pub(crate) fn take_slot(&mut self) -> Option<Slot> {
        self.slot.take()
    }

    /// Record the outcome (`None` = success); it decides whether the unit counts. A success
    /// must be recorded before it is answered (commit before acknowledging): when recording
    /// fails, the caller answers 10014 instead, and the reservation, still pending, is given
    /// back later (`reservation_ttl_secs`), so nothing is charged for an answer never given.
    pub async fn settle(mut self, outcome: Option<ErrorCode>) -> Result<(), ApiError> {
        self.slot = None;
        if let Some(ticket) = self.ticket.take()
            && let Err(e) = self.store.finish(ticket, unix_now(), outcome).await
        {
            return Err(ApiError::internal(format!(
                "recording the request's outcome failed: {e}"
            )));
        }
        Ok(())
    }

    /// Record an error outcome. The error answer stands whether or not recording it works: a
    /// failure is logged and the pending reservation is given back later, so at worst a "no
    /// face" answer (200216, which counts) goes uncharged, in the client's favour; no error is
    /// ever charged without being recorded.
    pub async fn fail(self, code: ErrorCode, request_id: &str) {
        if let Err(e) = self.settle(Some(code)).await {
            e.log(request_id);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let store = Arc::clone(&self.store);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store
                        .finish(ticket, unix_now(), Some(ErrorCode::Internal))
                        .await
                    {
                        tracing::error!("releasing an abandoned request's quota failed: {e}");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.0.0.2".parse().expect("hv"),
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(
            Caller::from_parts(peer, &h, &trusted).ip,
            "198.51.100.7".parse::<IpAddr>().expect("ip")
        );
        // Not trusted: the header is ignored.
        assert_eq!(
            Caller::from_parts(peer, &h, &[]).ip,
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
        let v6peer: SocketAddr = "[::ffff:192.0.2.1]:80".parse().expect("addr");
        assert_eq!(
            Caller::from_parts(v6peer, &HeaderMap::new(), &[]).ip,
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }
}
