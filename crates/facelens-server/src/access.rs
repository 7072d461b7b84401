//! Who may call, and how much: the key check, the per-IP rate, and the quota reservation.
//!
//! The order is fixed and documented (docs/operations.md): per-IP rate (10011) first, so a
//! flood is turned away before it costs a store lookup; then the store's key check (API switch
//! 10020/10021, banned IP 10008, unknown / banned / pending / expired key, API not allowed,
//! source not allowed, openid); then one unit of quota is reserved (10012/10013). Refusals of
//! a known key are recorded in its usage (they never count against its quota). The
//! reservation is finished with the request's outcome, which decides whether it counts
//! (facelens_store::counts_against_quota). A request dropped half-way (client gone) releases
//! its unit from a drop guard, so nothing is ever counted without a recorded outcome.

use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_store::{
    ApiKey, IpNet, KeyCheck, LimitHit, RateDecision, RateLimiter, Reservation, Store, Ticket,
    check_key_record, unix_now,
};
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

/// An admitted request's claim on its key's quota. Finish it with the outcome; if it is
/// dropped instead, the unit is released in the background.
pub struct Admission {
    store: Arc<dyn Store>,
    ticket: Option<Ticket>,
    pub key_id: Option<i64>,
}

impl Admission {
    /// A request admitted without a key (keys not required).
    pub fn open(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            ticket: None,
            key_id: None,
        }
    }

    /// Record the outcome (`None` = success); it decides whether the unit counts. A success
    /// must be recorded before it is answered (commit before acknowledging): when recording
    /// fails, the caller answers 10014 instead, and the reservation, still pending, is given
    /// back later (`reservation_ttl_secs`), so nothing is charged for an answer never given.
    pub async fn finish(mut self, outcome: Option<ErrorCode>) -> Result<(), FaceError> {
        if let Some(ticket) = self.ticket.take()
            && let Err(e) = self.store.finish(ticket, unix_now(), outcome).await
        {
            tracing::error!("recording usage failed: {e}");
            return Err(FaceError::new(
                ErrorCode::Internal,
                format!("recording the outcome failed: {e}"),
            ));
        }
        Ok(())
    }

    /// Record an error outcome. The error answer stands whether or not recording it works: a
    /// failure is logged by [`Admission::finish`] and the pending reservation is given back
    /// later, so at worst a "no face" answer (200216, which counts) goes uncharged, in the
    /// client's favour; no error is ever charged without being recorded.
    pub async fn fail(self, code: ErrorCode) {
        let _ = self.finish(Some(code)).await;
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

/// Everything admission needs.
pub struct Gate {
    pub store: Arc<dyn Store>,
    pub limiter: Option<Arc<dyn RateLimiter>>,
    pub require_key: bool,
}

/// The detail of a quota refusal that was a daily limit (the Baidu endpoint tells daily and
/// total limits apart: codes 17 and 19).
pub const DAILY_LIMIT_DETAIL: &str = "the daily limit is used up";
/// The detail of a quota refusal that was a lifetime limit.
pub const TOTAL_LIMIT_DETAIL: &str = "the total limit is used up";

impl Gate {
    /// Admit a call to `api` or say why not.
    pub async fn admit(
        &self,
        api: &str,
        key: Option<&str>,
        openid: Option<&str>,
        caller: &Caller,
    ) -> Result<Admission, FaceError> {
        self.screen(Some(api), caller).await?;
        if !self.require_key {
            return Ok(Admission::open(Arc::clone(&self.store)));
        }
        let record = self
            .store
            .find_key(key.unwrap_or(""))
            .await
            .map_err(internal)?;
        let Some(record) = record else {
            return Err(ErrorCode::UnknownKey.into());
        };
        self.admit_key(api, record, openid, caller).await
    }

    /// What applies before any key is looked at, in this order: the per-IP rate, the API's
    /// switch (when `api` is given), banned addresses. Also used alone where no quota is
    /// involved (issuing Baidu access tokens).
    pub async fn screen(&self, api: Option<&str>, caller: &Caller) -> Result<(), FaceError> {
        if let Some(limiter) = &self.limiter {
            match limiter.check_ip(caller.ip).await {
                Ok(RateDecision::Allowed) => {}
                Ok(_) => return Err(ErrorCode::IpRateLimited.into()),
                Err(e) => return Err(FaceError::new(ErrorCode::Internal, e.to_string())),
            }
        }
        if let Some(api) = api
            && let Some(code) = self.store.api_state(api).await.map_err(internal)?.refusal()
        {
            return Err(code.into());
        }
        if self.store.is_ip_banned(caller.ip).await.map_err(internal)? {
            return Err(ErrorCode::BannedIp.into());
        }
        Ok(())
    }

    /// The rest of the store's key check for a key already found (by its secret, or by a
    /// credential derived from it), then the quota reservation. Call after [`Gate::screen`].
    pub async fn admit_key(
        &self,
        api: &str,
        record: ApiKey,
        openid: Option<&str>,
        caller: &Caller,
    ) -> Result<Admission, FaceError> {
        let now = unix_now();
        let check = KeyCheck {
            key: "",
            api,
            ip: caller.ip,
            referer: caller.referer.as_deref(),
            openid,
            now,
        };
        // Refusals of a known key are recorded in its usage.
        let refused = |e: FaceError| async move {
            if let Err(err) = self.store.record_usage(record.id, now, e.code.code()).await {
                tracing::error!("recording usage failed: {err}");
            }
            Err(e)
        };
        if let Err(code) = check_key_record(&record, &check) {
            return refused(code.into()).await;
        }
        match self.store.reserve(record.id, now).await {
            Ok(Reservation::Granted(ticket)) => Ok(Admission {
                store: Arc::clone(&self.store),
                ticket: Some(ticket),
                key_id: Some(record.id),
            }),
            Ok(Reservation::Denied(hit)) => {
                let detail = match hit {
                    LimitHit::Daily | LimitHit::TestDaily => DAILY_LIMIT_DETAIL,
                    LimitHit::Total | LimitHit::TestTotal => TOTAL_LIMIT_DETAIL,
                };
                refused(FaceError::new(hit.code(), detail)).await
            }
            Err(e) => Err(internal(e)),
        }
    }
}

fn internal(e: facelens_store::StoreError) -> FaceError {
    FaceError::new(ErrorCode::Internal, e.to_string())
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
