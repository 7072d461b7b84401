//! The records the store keeps, and the small value types around them.

use std::fmt;
use std::str::FromStr;

use facelens_core::error::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::net::validate_referer_pattern;
use facelens_core::net::IpNet;

/// Seconds since the Unix epoch. Every store call takes `now` explicitly so that tests (and a
/// server that wants one clock per request) control time.
pub type UnixTime = i64;

/// A usage day: days since 1970-01-01 in the store's accounting time zone
/// (see [`StoreOptions::day_offset_secs`]).
pub type Day = i64;

/// The current time as [`UnixTime`].
pub fn unix_now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The accounting day of `now` for a zone `offset_secs` east of UTC.
pub fn day_of(now: UnixTime, offset_secs: i32) -> Day {
    now.saturating_add(i64::from(offset_secs))
        .div_euclid(86_400)
}

/// `YYYY-MM-DD` of a [`Day`] (proleptic Gregorian calendar).
pub fn day_to_date(day: Day) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Settings of the store that are policy rather than data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The accounting time zone, seconds east of UTC: daily quotas reset and usage days turn at
    /// local midnight of this zone. Default 0 (UTC); a Juhe-compatible deployment in China
    /// would use `8 * 3600`.
    pub day_offset_secs: i32,
    /// Daily limit of every test key (a test key's own daily quota can only lower it).
    /// `None` = test keys have no extra daily limit.
    pub test_daily_limit: Option<i64>,
    /// Lifetime limit of every test key. `None` = no extra lifetime limit.
    pub test_total_limit: Option<i64>,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long a SQLite writer waits for another process's write lock (milliseconds).
    pub busy_timeout_ms: u64,
    /// PostgreSQL only: keep the tables in this schema (created if missing) instead of the
    /// connection's default. Lets several deployments or test runs share one database.
    pub pg_schema: Option<String>,
    /// PostgreSQL only: how long a request waits for a pooled connection, and the server-side
    /// `statement_timeout`, milliseconds. Bounds how long a request can hang when the database
    /// is down or stuck: it then fails (10014) instead of waiting.
    pub op_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            day_offset_secs: 0,
            test_daily_limit: Some(100),
            test_total_limit: Some(1000),
            max_connections: 8,
            busy_timeout_ms: 30_000,
            pg_schema: None,
            op_timeout_ms: 5_000,
        }
    }
}

impl StoreOptions {
    /// The accounting day of `now`.
    pub fn day_of(&self, now: UnixTime) -> Day {
        day_of(now, self.day_offset_secs)
    }

    /// The limits that apply to a key, test limits folded in.
    pub fn effective_limits(&self, test: bool, daily: Option<i64>, total: Option<i64>) -> Limits {
        fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
        if test {
            Limits {
                daily: min_opt(daily, self.test_daily_limit),
                total: min_opt(total, self.test_total_limit),
                test: true,
            }
        } else {
            Limits {
                daily,
                total,
                test: false,
            }
        }
    }
}

/// Effective quota limits of one key (see [`StoreOptions::effective_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub daily: Option<i64>,
    pub total: Option<i64>,
    pub test: bool,
}

impl Limits {
    /// Decide a reservation given the counters *after* counting this request in.
    pub fn judge(&self, total_used: i64, day_used: i64) -> Option<LimitHit> {
        if self.total.is_some_and(|t| total_used > t) {
            return Some(if self.test {
                LimitHit::TestTotal
            } else {
                LimitHit::Total
            });
        }
        if self.daily.is_some_and(|d| day_used > d) {
            return Some(if self.test {
                LimitHit::TestDaily
            } else {
                LimitHit::Daily
            });
        }
        None
    }
}

/// Lifecycle state of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Created but not approved: refused with 10005.
    Pending,
    /// Usable.
    Active,
    /// Refused with 10009.
    Banned,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Pending => "pending",
            KeyStatus::Active => "active",
            KeyStatus::Banned => "banned",
        }
    }
}

impl FromStr for KeyStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(KeyStatus::Pending),
            "active" => Ok(KeyStatus::Active),
            "banned" => Ok(KeyStatus::Banned),
            _ => Err(StoreError::invalid(format!(
                "key status must be pending, active or banned, not {s:?}"
            ))),
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The switch of one API (e.g. `faceDetect`). An API without a row is `Normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiState {
    #[default]
    Normal,
    /// Refused with 10020 (接口维护).
    Maintenance,
    /// Refused with 10021 (接口停用).
    Disabled,
}

impl ApiState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiState::Normal => "normal",
            ApiState::Maintenance => "maintenance",
            ApiState::Disabled => "disabled",
        }
    }

    /// The refusal this state causes, if any.
    pub fn refusal(self) -> Option<ErrorCode> {
        match self {
            ApiState::Normal => None,
            ApiState::Maintenance => Some(ErrorCode::Maintenance),
            ApiState::Disabled => Some(ErrorCode::ApiDisabled),
        }
    }
}

impl FromStr for ApiState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(ApiState::Normal),
            "maintenance" => Ok(ApiState::Maintenance),
            "disabled" => Ok(ApiState::Disabled),
            _ => Err(StoreError::invalid(format!(
                "API state must be normal, maintenance or disabled, not {s:?}"
            ))),
        }
    }
}

impl fmt::Display for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored API key (everything but the secret, of which only a hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// First 4 hex digits of the key, to tell keys apart in listings.
    pub hint: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    /// The key is refused with 10003 from this instant on.
    pub expires_at: Option<UnixTime>,
    /// Requests per accounting day; `None` = unlimited.
    pub daily_quota: Option<i64>,
    /// Requests over the key's life; `None` = unlimited.
    pub total_quota: Option<i64>,
    /// A test key: also bound by the store's test limits, and answered 10013 when any limit
    /// is hit.
    pub test: bool,
    /// Source addresses allowed to use the key; empty = any.
    pub allowed_ips: Vec<IpNet>,
    /// Referer patterns allowed (see [`crate::net::validate_referer_pattern`]); empty = any.
    pub allowed_referers: Vec<String>,
    /// API names the key may call (e.g. `faceDetect`); empty = all.
    pub allowed_apis: Vec<String>,
    /// If set, every request must carry this openid (10004 otherwise).
    pub openid: Option<String>,
    pub status: KeyStatus,
    /// Requests counted against the total quota so far.
    pub total_used: i64,
}

impl ApiKey {
    /// Whether the key may call `api`.
    pub fn allows_api(&self, api: &str) -> bool {
        self.allowed_apis.is_empty() || self.allowed_apis.iter().any(|a| a == api)
    }

    /// Whether the key is expired at `now`.
    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    pub(crate) fn apply(&mut self, u: &KeyUpdate) {
        if let Some(v) = &u.name {
            self.name.clone_from(v);
        }
        if let Some(v) = u.expires_at {
            self.expires_at = v;
        }
        if let Some(v) = u.daily_quota {
            self.daily_quota = v;
        }
        if let Some(v) = u.total_quota {
            self.total_quota = v;
        }
        if let Some(v) = u.test {
            self.test = v;
        }
        if let Some(v) = &u.allowed_ips {
            self.allowed_ips.clone_from(v);
        }
        if let Some(v) = &u.allowed_referers {
            self.allowed_referers.clone_from(v);
        }
        if let Some(v) = &u.allowed_apis {
            self.allowed_apis.clone_from(v);
        }
        if let Some(v) = &u.openid {
            self.openid.clone_from(v);
        }
        if let Some(v) = u.status {
            self.status = v;
        }
    }

    /// Check and normalise the editable fields (called before every write).
    pub(crate) fn validate(&mut self) -> Result<(), StoreError> {
        if self.name.len() > 200 {
            return Err(StoreError::invalid("key name longer than 200 bytes"));
        }
        for (what, q) in [("daily", self.daily_quota), ("total", self.total_quota)] {
            if q.is_some_and(|q| q < 0) {
                return Err(StoreError::invalid(format!(
                    "{what} quota must not be negative"
                )));
            }
        }
        self.allowed_referers = self
            .allowed_referers
            .iter()
            .map(|p| validate_referer_pattern(p))
            .collect::<Result<_, _>>()?;
        for api in &mut self.allowed_apis {
            *api = api.trim().to_string();
            if api.is_empty() {
                return Err(StoreError::invalid("empty API name in allowed APIs"));
            }
        }
        self.openid = self
            .openid
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from);
        Ok(())
    }
}

/// What the admin gives to create a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub name: String,
    pub expires_at: Option<UnixTime>,
    pub daily_quota: Option<i64>,
    pub total_quota: Option<i64>,
    pub test: bool,
    pub allowed_ips: Vec<IpNet>,
    pub allowed_referers: Vec<String>,
    pub allowed_apis: Vec<String>,
    pub openid: Option<String>,
    pub status: KeyStatus,
}

impl Default for NewKey {
    fn default() -> Self {
        Self {
            name: String::new(),
            expires_at: None,
            daily_quota: None,
            total_quota: None,
            test: false,
            allowed_ips: Vec::new(),
            allowed_referers: Vec::new(),
            allowed_apis: Vec::new(),
            openid: None,
            status: KeyStatus::Active,
        }
    }
}

impl NewKey {
    pub(crate) fn into_key(self, id: i64, hint: String, now: UnixTime) -> ApiKey {
        ApiKey {
            id,
            name: self.name,
            hint,
            created_at: now,
            updated_at: now,
            expires_at: self.expires_at,
            daily_quota: self.daily_quota,
            total_quota: self.total_quota,
            test: self.test,
            allowed_ips: self.allowed_ips,
            allowed_referers: self.allowed_referers,
            allowed_apis: self.allowed_apis,
            openid: self.openid,
            status: self.status,
            total_used: 0,
        }
    }
}

/// A change to a key: `None` leaves a field as it is; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub expires_at: Option<Option<UnixTime>>,
    pub daily_quota: Option<Option<i64>>,
    pub total_quota: Option<Option<i64>>,
    pub test: Option<bool>,
    pub allowed_ips: Option<Vec<IpNet>>,
    pub allowed_referers: Option<Vec<String>>,
    pub allowed_apis: Option<Vec<String>>,
    pub openid: Option<Option<String>>,
    pub status: Option<KeyStatus>,
}

/// A created key: the record and the secret, which is never shown again.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: crate::secret::SecretKey,
}

/// A banned network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BannedIp {
    pub net: IpNet,
    pub reason: Option<String>,
    pub created_at: UnixTime,
}

/// Which limit refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitHit {
    /// The key's daily quota (10012).
    Daily,
    /// The key's total quota (10012).
    Total,
    /// A test key's daily limit (10013).
    TestDaily,
    /// A test key's total limit (10013).
    TestTotal,
}

impl LimitHit {
    /// The contract code to answer with.
    pub fn code(self) -> ErrorCode {
        match self {
            LimitHit::Daily | LimitHit::Total => ErrorCode::QuotaExceeded,
            LimitHit::TestDaily | LimitHit::TestTotal => ErrorCode::TestKeyLimit,
        }
    }
}

/// Proof of one reserved unit of quota. Pass it to [`crate::Store::finish`] (or
/// [`crate::Store::release`]) exactly once; it is not `Clone` so it cannot be released twice.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be finished or released"]
pub struct Ticket {
    pub key_id: i64,
    /// The accounting day the unit was taken from (a request that straddles midnight gives
    /// the unit back to the day it was taken from).
    pub day: Day,
    /// The reservation's row in `quota_pending` (0 = none): finishing deletes it; a row a
    /// crash left behind is given back by [`crate::Store::reclaim_stale`].
    pub pending: i64,
}

/// The answer of [`crate::Store::reserve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    Granted(Ticket),
    Denied(LimitHit),
}

/// Counters of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaUsage {
    /// Units reserved today (accounting day of `now`).
    pub today: i64,
    /// Units reserved over the key's life.
    pub total: i64,
}

/// One line of the usage report: so many requests of `key_id` on `day` ended with `code`
/// (0 = success).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub key_id: i64,
    pub day: Day,
    pub code: u32,
    pub count: i64,
}

impl UsageRow {
    /// The day as `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        day_to_date(self.day)
    }
}

/// Which usage rows to report: `key_id` (`None` = every key), days `from_day..=to_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub key_id: Option<i64>,
    pub from_day: Day,
    pub to_day: Day,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Expired face tokens.
    pub face_tokens: u64,
    /// Daily quota counters older than yesterday (usage by code is history and is kept).
    pub quota_days: u64,
}

/// Whether a finished request counts against its key's quota.
///
/// The rule: a request counts when the service did the work it is paid for, i.e. it ran face
/// detection on an image. So a success counts, and so does "no face found" (200216): the
/// detector ran, the answer is simply empty. A request refused for its key (100xx), for its
/// parameters or image (200201..200215: missing or invalid fields, undecodable or oversized
/// image, URL download refused or failed, unknown token), or that failed on our side (10014,
/// 200217 busy) does not count.
pub fn counts_against_quota(outcome: Option<ErrorCode>) -> bool {
    matches!(outcome, None | Some(ErrorCode::NoFace))
}

/// The numeric usage code of an outcome (0 = success).
pub fn outcome_code(outcome: Option<ErrorCode>) -> u32 {
    outcome.map_or(0, ErrorCode::code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_of(0, 0), 0);
        assert_eq!(day_of(86_399, 0), 0);
        assert_eq!(day_of(86_400, 0), 1);
        assert_eq!(day_of(-1, 0), -1);
        // 16:00 UTC is the next day in UTC+8.
        assert_eq!(day_of(16 * 3600, 8 * 3600), 1);
        assert_eq!(day_to_date(0), "1970-01-01");
        assert_eq!(day_to_date(-1), "1969-12-31");
        assert_eq!(day_to_date(day_of(1_709_164_800, 0)), "2024-02-29");
        assert_eq!(day_to_date(day_of(1_798_761_600, 0)), "2027-01-01");
    }

    #[test]
    fn limits() {
        let o = StoreOptions {
            test_daily_limit: Some(10),
            test_total_limit: None,
            ..StoreOptions::default()
        };
        let l = o.effective_limits(false, Some(5), None);
        assert_eq!(l.judge(100, 5), None);
        assert_eq!(l.judge(100, 6), Some(LimitHit::Daily));
        let l = o.effective_limits(false, Some(5), Some(7));
        assert_eq!(l.judge(8, 1), Some(LimitHit::Total));
        let l = o.effective_limits(true, None, None);
        assert_eq!(l.daily, Some(10));
        assert_eq!(l.judge(11, 11), Some(LimitHit::TestDaily));
        let l = o.effective_limits(true, Some(3), Some(4));
        assert_eq!(l.judge(4, 4), Some(LimitHit::TestDaily));
        assert_eq!(l.judge(5, 1), Some(LimitHit::TestTotal));
        assert_eq!(LimitHit::TestTotal.code(), ErrorCode::TestKeyLimit);
        assert_eq!(LimitHit::Daily.code(), ErrorCode::QuotaExceeded);
    }

    #[test]
    fn what_counts() {
        assert!(counts_against_quota(None));
        assert!(counts_against_quota(Some(ErrorCode::NoFace)));
        for c in [
            ErrorCode::MissingParameter,
            ErrorCode::InvalidBase64,
            ErrorCode::UrlDownloadFailed,
            ErrorCode::InvalidToken,
            ErrorCode::Internal,
            ErrorCode::Busy,
            ErrorCode::QuotaExceeded,
        ] {
            assert!(!counts_against_quota(Some(c)), "{c}");
        }
        assert_eq!(outcome_code(None), 0);
        assert_eq!(outcome_code(Some(ErrorCode::NoFace)), 200216);
    }

    #[test]
    fn parse_states() {
        for s in [KeyStatus::Pending, KeyStatus::Active, KeyStatus::Banned] {
            assert_eq!(s.as_str().parse::<KeyStatus>().ok(), Some(s));
        }
        for s in [ApiState::Normal, ApiState::Maintenance, ApiState::Disabled] {
            assert_eq!(s.as_str().parse::<ApiState>().ok(), Some(s));
        }
        assert!("x".parse::<ApiState>().is_err());
        assert_eq!(ApiState::Disabled.refusal(), Some(ErrorCode::ApiDisabled));
    }
}
