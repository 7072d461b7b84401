//! The key check: may this request use this key for this API?
//!
//! [`check_key`] answers with the key's record or the one contract code that refuses the
//! request. The checks run in this order, and the first failure answers:
//!
//! | # | check | code |
//! |---|---|---|
//! | 1 | the API is switched to maintenance / disabled | 10020 / 10021 |
//! | 2 | the client IP is in a banned network | 10008 |
//! | 3 | the key exists (malformed keys never reach the database) | 10001 |
//! | 4 | the key is banned | 10009 |
//! | 5 | the key is pending approval | 10005 |
//! | 6 | the key has expired | 10003 |
//! | 7 | the key may call this API | 10002 |
//! | 8 | the client IP and referer are on the key's allow-lists | 10007 |
//! | 9 | the openid matches the key's (when the key has one) | 10004 |
//!
//! Why this order:
//! - Platform-wide conditions first (1, 2): they do not depend on the key, cost no key lookup,
//!   and tell the caller the truth whatever key it sent. A banned address learns nothing about
//!   which keys exist.
//! - Then the key's identity and standing (3-6), from the most to the least final: a banned
//!   key stays refused as banned even after it also expired, and a pending key is reported as
//!   pending (the owner must act) rather than expired.
//! - Then what the key may do in this request (7-9): the API, then where the request comes
//!   from, then the per-request openid, the only check that depends on a value the client
//!   supplies besides the key.
//!
//! Not here: the per-IP rate limit (10011, [`crate::ratelimit`]; the server runs it before
//! this check so a flood costs no database work) and the quota (10012 / 10013,
//! [`crate::Store::reserve`], which the server runs after validating the request's parameters,
//! so a malformed request neither uses nor reserves quota).

use std::net::IpAddr;

use facelens_core::error::ErrorCode;

use crate::error::StoreError;
use crate::model::{ApiKey, KeyStatus, UnixTime};
use crate::net::referer_allowed;
use crate::secret::ct_eq;
use crate::store::Store;

/// What the key check needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct KeyCheck<'a> {
    /// The key as the client sent it.
    pub key: &'a str,
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

/// Why a key check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The request is refused with this code.
    #[error("refused: {0}")]
    Refused(ErrorCode),
    /// The store failed; answer 10014.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckError {
    /// The contract code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            CheckError::Refused(c) => *c,
            CheckError::Store(e) => e.code(),
        }
    }
}

impl From<ErrorCode> for CheckError {
    fn from(c: ErrorCode) -> Self {
        CheckError::Refused(c)
    }
}

/// Run the key check (see the module docs for the order).
pub async fn check_key<S: Store + ?Sized>(
    store: &S,
    req: &KeyCheck<'_>,
) -> Result<ApiKey, CheckError> {
    if let Some(code) = store.api_state(req.api).await?.refusal() {
        return Err(code.into());
    }
    if store.is_ip_banned(req.ip).await? {
        return Err(ErrorCode::BannedIp.into());
    }
    let Some(key) = store.find_key(req.key).await? else {
        return Err(ErrorCode::UnknownKey.into());
    };
    check_key_record(&key, req)?;
    Ok(key)
}

/// Checks 4-9 on a key already looked up (for callers that cache key records).
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
