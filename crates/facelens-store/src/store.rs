//! The [`Store`] interface that both backends implement.

use std::net::IpAddr;

use async_trait::async_trait;
use facelens_core::error::ErrorCode;

use crate::error::StoreError;
use crate::model::*;
use crate::secret::{SecretKey, ct_eq, hash_key, key_hint, normalize_key};
use facelens_core::net::IpNet;

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Persistent state of the service: keys, bans, API switches, quota and usage counters, face
/// tokens. Object safe (`Arc<dyn Store>`), so the server picks the backend at run time.
///
/// All times are [`UnixTime`] passed by the caller.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend in use.
    fn backend(&self) -> Backend;

    /// The options the store was opened with.
    fn options(&self) -> &StoreOptions;

    /// The accounting day of `now` (see [`StoreOptions::day_offset_secs`]).
    fn day_of(&self, now: UnixTime) -> Day {
        self.options().day_of(now)
    }

    // ---- keys ----

    /// Insert a validated key record whose secret hash is `key_hash`; returns the new id
    /// (low level: `draft.id` and `draft.total_used` are ignored; use [`Store::create_key`]).
    async fn insert_key(&self, key_hash: [u8; 32], draft: &ApiKey) -> Result<i64, StoreError>;

    /// Create a key with a fresh random secret. The secret is in the answer and nowhere else.
    async fn create_key(&self, new: NewKey, now: UnixTime) -> Result<CreatedKey, StoreError> {
        let secret = SecretKey::generate()?;
        let hash = hash_key(secret.expose());
        let mut key = new.into_key(0, key_hint(secret.expose()), now);
        key.validate()?;
        key.id = self.insert_key(hash, &key).await?;
        Ok(CreatedKey { key, secret })
    }

    /// The key with this hash, and its stored hash (low level; use [`Store::find_key`]).
    async fn key_by_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError>;

    /// The key a client presented, or `None` if no such key exists. Malformed input (not 32 hex
    /// digits) is `None` without touching the database.
    async fn find_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some(normalized) = normalize_key(presented) else {
            return Ok(None);
        };
        let hash = hash_key(&normalized);
        Ok(match self.key_by_hash(&hash).await? {
            Some((key, stored)) if ct_eq(&stored, &hash) => Some(key),
            _ => None,
        })
    }

    /// A key by id with its stored secret hash. For credentials derived from a key (the
    /// Baidu-compatible access tokens are MACed with this hash), so that every replica can check
    /// them and deleting the key revokes them; never shown to anyone.
    async fn key_with_hash(&self, id: i64) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError>;

    /// A key by id.
    async fn get_key(&self, id: i64) -> Result<Option<ApiKey>, StoreError>;

    /// All keys, by id.
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Change a key; [`StoreError::NotFound`] if there is none with this id.
    async fn update_key(
        &self,
        id: i64,
        update: &KeyUpdate,
        now: UnixTime,
    ) -> Result<ApiKey, StoreError>;

    /// Ban a key (10009 from now on).
    async fn ban_key(&self, id: i64, now: UnixTime) -> Result<ApiKey, StoreError> {
        let u = KeyUpdate {
            status: Some(KeyStatus::Banned),
            ..KeyUpdate::default()
        };
        self.update_key(id, &u, now).await
    }

    /// Lift a ban (or approve a pending key): the key becomes active.
    async fn unban_key(&self, id: i64, now: UnixTime) -> Result<ApiKey, StoreError> {
        let u = KeyUpdate {
            status: Some(KeyStatus::Active),
            ..KeyUpdate::default()
        };
        self.update_key(id, &u, now).await
    }

    /// Delete a key and its quota counters; its usage history stays (ids are never reused).
    /// `false` if there was no such key.
    async fn delete_key(&self, id: i64) -> Result<bool, StoreError>;

    // ---- banned IPs ----

    /// Ban an address or network (idempotent; a second ban updates the reason).
    async fn ban_ip(
        &self,
        net: IpNet,
        reason: Option<&str>,
        now: UnixTime,
    ) -> Result<(), StoreError>;

    /// Lift a ban of exactly this network; `false` if it was not banned.
    async fn unban_ip(&self, net: IpNet) -> Result<bool, StoreError>;

    /// Every banned network.
    async fn list_banned_ips(&self) -> Result<Vec<BannedIp>, StoreError>;

    /// Networks whose 16-byte range holds `ip` (low level; use [`Store::is_ip_banned`]).
    async fn banned_candidates(&self, ip: IpAddr) -> Result<Vec<IpNet>, StoreError>;

    /// Whether `ip` is in a banned network.
    async fn is_ip_banned(&self, ip: IpAddr) -> Result<bool, StoreError> {
        Ok(self
            .banned_candidates(ip)
            .await?
            .iter()
            .any(|n| n.contains(ip)))
    }

    // ---- API switches ----

    /// Set the state of an API.
    async fn set_api_state(
        &self,
        api: &str,
        state: ApiState,
        now: UnixTime,
    ) -> Result<(), StoreError>;

    /// The state of an API (`Normal` if never set).
    async fn api_state(&self, api: &str) -> Result<ApiState, StoreError>;

    /// Every API with a state set.
    async fn list_api_states(&self) -> Result<Vec<(String, ApiState)>, StoreError>;

    // ---- quota and usage ----

    /// Atomically take one unit of the key's quota: exact under any concurrency, across
    /// processes sharing the database (see the crate docs). A denial changes nothing.
    /// [`StoreError::NotFound`] if the key is gone.
    async fn reserve(&self, key_id: i64, now: UnixTime) -> Result<Reservation, StoreError>;

    /// Give a reserved unit back (the request turned out not to count).
    async fn release(&self, ticket: Ticket) -> Result<(), StoreError>;

    /// Add one to the usage of `key_id` on the day of `now` for `code` (0 = success).
    async fn record_usage(&self, key_id: i64, now: UnixTime, code: u32) -> Result<(), StoreError>;

    /// Close a reserved request: record its outcome and give the unit back unless the outcome
    /// counts (see [`counts_against_quota`]).
    async fn finish(
        &self,
        ticket: Ticket,
        now: UnixTime,
        outcome: Option<ErrorCode>,
    ) -> Result<(), StoreError> {
        let key_id = ticket.key_id;
        if !counts_against_quota(outcome) {
            self.release(ticket).await?;
        }
        self.record_usage(key_id, now, outcome_code(outcome)).await
    }

    /// Give back the units of reservations made before `older_than` and never finished (the
    /// process that made them died); returns how many. Safe while other processes serve, as
    /// long as `older_than` is earlier than the start of any request still running.
    async fn reclaim_stale(&self, older_than: UnixTime) -> Result<u64, StoreError>;

    /// A key's quota counters at `now`.
    async fn quota_usage(&self, key_id: i64, now: UnixTime) -> Result<QuotaUsage, StoreError>;

    /// Usage rows, ordered by key, day, code.
    async fn usage(&self, query: UsageQuery) -> Result<Vec<UsageRow>, StoreError>;

    /// Usage of the last `days` accounting days up to and including today.
    async fn usage_last_days(
        &self,
        key_id: Option<i64>,
        days: u32,
        now: UnixTime,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let to_day = self.day_of(now);
        let from_day = to_day - i64::from(days.max(1)) + 1;
        self.usage(UsageQuery {
            key_id,
            from_day,
            to_day,
        })
        .await
    }

    // ---- face tokens ----

    /// Store each face result under its token for `ttl_secs`, all in one transaction (the
    /// faces of one request are kept together or not at all). Idempotent: putting a token
    /// again keeps one row and extends its expiry (never shortens it). Every token id is
    /// checked before anything is written.
    async fn put_face_tokens(
        &self,
        tokens: &[(&str, &str)],
        now: UnixTime,
        ttl_secs: i64,
    ) -> Result<(), StoreError>;

    /// The stored result of `token_id`, if present and not expired at `now`.
    async fn get_face_token(
        &self,
        token_id: &str,
        now: UnixTime,
    ) -> Result<Option<String>, StoreError>;

    /// Delete expired face tokens and stale quota counters.
    async fn purge_expired(&self, now: UnixTime) -> Result<PurgeReport, StoreError>;

    /// Close the connection pool.
    async fn close(&self);
}

pub(crate) fn check_token_id(token_id: &str) -> Result<(), StoreError> {
    if token_id.is_empty() || token_id.len() > 128 {
        return Err(StoreError::invalid("token_id must be 1..=128 bytes"));
    }
    Ok(())
}

pub(crate) fn check_api_name(api: &str) -> Result<(), StoreError> {
    if api.trim().is_empty() || api.len() > 100 {
        return Err(StoreError::invalid("API name must be 1..=100 bytes"));
    }
    Ok(())
}
