//! Admission: may this request use this key for this API, and is there quota left?
//!
//! [`Gate`] is the policy every request of the service goes through (the HTTP server wraps it
//! in a guard that settles the quota unit with the outcome); the conformance suite tests this
//! same code against every backend, so what is tested is what serves. The checks run in this
//! order, and the first failure answers:
//!
//! | # | check | code |
//! |---|---|---|
//! | 0 | the per-IP rate (when a limiter is configured) | 10011 |
//! | 1 | the API is switched to maintenance / disabled | 10020 / 10021 |
//! | 2 | the client IP is in a banned network | 10008 |
//! | 3 | the key exists (malformed keys never reach the database) | 10001 |
//! | 4 | the key is banned | 10009 |
//! | 5 | the key is pending approval | 10005 |
//! | 6 | the key has expired | 10003 |
//! | 7 | the key may call this API | 10002 |
//! | 8 | the client IP and referer are on the key's allow-lists | 10007 |
//! | 9 | the openid matches the key's (when the key has one) | 10004 |
//! | 10 | one unit of quota can be reserved (daily, then total; test keys have their own limits) | 10012 / 10013 |
//!
//! Why this order:
//! - The rate first: a flood is turned away before it costs a database lookup.
//! - Platform-wide conditions next (1, 2): they do not depend on the key, cost no key lookup,
//!   and tell the caller the truth whatever key it sent. A banned address learns nothing about
//!   which keys exist.
//! - Then the key's identity and standing (3-6), from the most to the least final: a banned
//!   key stays refused as banned even after it also expired, and a pending key is reported as
//!   pending (the owner must act) rather than expired.
//! - Then what the key may do in this request (7-9): the API, then where the request comes
//!   from, then the per-request openid, the only check that depends on a value the client
//!   supplies besides the key.
//! - The quota last, so that a refused request never holds a unit. Refusals of a known key
//!   (4-10) are recorded in its usage; they never count against its quota.

use std::net::IpAddr;
use std::sync::Arc;

use facelens_core::error::ErrorCode;

use crate::error::StoreError;
use crate::model::{ApiKey, KeyStatus, LimitHit, Reservation, Ticket, UnixTime};
use crate::net::referer_allowed;
use crate::ratelimit::{RateDecision, RateLimiter};
use crate::secret::ct_eq;
use crate::store::Store;

/// What the key check needs to know about a request (the key itself is looked up first).
#[derive(Debug, Clone, Copy)]
pub struct KeyCheck<'a> {
    /// The API called, e.g. `faceDetect`.
    pub api: &'a str,
    /// The client address (after the server has resolved trusted proxies).
    pub ip: IpAddr,
    /// The `Referer` header, if any.
    pub referer: Option<&'a str>,
    /// The `openid` field, if any.
    pub openid: Option<&'a str>,
    pub now: UnixTime,
}

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Refused with this code (10001 … 10021, except the quota's).
    #[error("refused: {0}")]
    Refused(ErrorCode),
    /// The key's quota, or a test key's limit, is used up: which one.
    #[error("refused: the {0:?} limit is used up")]
    Limit(LimitHit),
    /// The store or the rate limiter failed: answer 10014.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    /// The contract code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Refused(c) => *c,
            Refusal::Limit(hit) => hit.code(),
            Refusal::Store(e) => e.code(),
        }
    }
}

impl From<ErrorCode> for Refusal {
    fn from(c: ErrorCode) -> Self {
        Refusal::Refused(c)
    }
}

/// The admission policy: per-IP rate, API switches, bans, the key's standing and the quota.
#[derive(Clone)]
pub struct Gate {
    pub store: Arc<dyn Store>,
    /// `None`: no per-IP rate limit.
    pub limiter: Option<Arc<dyn RateLimiter>>,
    /// `false` (local experiments only): every request is admitted without a key or quota.
    pub require_key: bool,
}

impl Gate {
    /// The whole check for a request presenting `key` (absent = empty): checks 0-10. The
    /// ticket is `None` when keys are not required; otherwise the caller must finish or
    /// release it.
    pub async fn admit(
        &self,
        key: Option<&str>,
        req: &KeyCheck<'_>,
    ) -> Result<Option<Ticket>, Refusal> {
        self.screen(Some(req.api), req.ip).await?;
        if !self.require_key {
            return Ok(None);
        }
        let record = self.find(key.unwrap_or("")).await?;
        self.admit_key(&record, req).await.map(Some)
    }

    /// Checks 0-2, which do not look at any key, for `api` when given. Also used alone where
    /// no quota is involved (issuing the Baidu endpoint's access tokens).
    pub async fn screen(&self, api: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
        if let Some(limiter) = &self.limiter
            && let RateDecision::Limited { .. } = limiter.check_ip(ip).await?
        {
            return Err(ErrorCode::IpRateLimited.into());
        }
        if let Some(api) = api
            && let Some(code) = self.store.api_state(api).await?.refusal()
        {
            return Err(code.into());
        }
        if self.store.is_ip_banned(ip).await? {
            return Err(ErrorCode::BannedIp.into());
        }
        Ok(())
    }

    /// Check 3: the key's record (malformed keys never reach the database).
    pub async fn find(&self, key: &str) -> Result<ApiKey, Refusal> {
        self.store
            .find_key(key)
            .await?
            .ok_or(Refusal::Refused(ErrorCode::UnknownKey))
    }

    /// Checks 4-10 on a key already found (by its secret, or by a credential derived from
    /// it); call after [`Gate::screen`]. Refusals are recorded in the key's usage.
    pub async fn admit_key(&self, key: &ApiKey, req: &KeyCheck<'_>) -> Result<Ticket, Refusal> {
        let refusal = match check_key_record(key, req) {
            Err(code) => Refusal::Refused(code),
            Ok(()) => match self.store.reserve(key.id, req.now).await? {
                Reservation::Granted(ticket) => return Ok(ticket),
                Reservation::Denied(hit) => Refusal::Limit(hit),
            },
        };
        if let Err(e) = self
            .store
            .record_usage(key.id, req.now, refusal.code().code())
            .await
        {
            tracing::error!("recording a refusal in the usage failed: {e}");
        }
        Err(refusal)
    }
}

/// Checks 4-9 on a key's record: its standing and what it may do in this request.
pub fn check_key_record(key: &ApiKey, req: &KeyCheck<'_>) -> Result<(), ErrorCode> {
    match key.status {
        KeyStatus::Banned => return Err(ErrorCode::BannedKey),
        KeyStatus::Pending => return Err(ErrorCode::KeyPending),
        KeyStatus::Active => {}
    }
    if key.is_expired(req.now) {
        return Err(ErrorCode::KeyExpired);
    }
    if !key.allows_api(req.api) {
        return Err(ErrorCode::KeyNotAllowed);
    }
    if !key.allowed_ips.is_empty() && !key.allowed_ips.iter().any(|n| n.contains(req.ip)) {
        return Err(ErrorCode::SourceNotAllowed);
    }
    if !referer_allowed(&key.allowed_referers, req.referer) {
        return Err(ErrorCode::SourceNotAllowed);
    }
    if let Some(expected) = &key.openid {
        let given = req.openid.map(str::trim).unwrap_or("");
        if !ct_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(ErrorCode::WrongOpenid);
        }
    }
    Ok(())
}
