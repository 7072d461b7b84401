//! The one implementation of [`crate::Store`] shared by both SQL backends.
//!
//! The two schemas differ only in column types, and every statement below is written in the
//! common subset of SQLite and PostgreSQL (`$n` placeholders, `ON CONFLICT ... DO UPDATE`,
//! `RETURNING`, `CASE` instead of `max`/`GREATEST`). The backends differ in how a write
//! transaction takes its lock, which each backend provides as `begin_write` (SQLite:
//! `BEGIN IMMEDIATE` behind an in-process mutex; PostgreSQL: a plain transaction whose first
//! statement row-locks the key). The macro [`impl_sql_store`] stamps the trait implementation
//! out for each backend's concrete sqlx types, so both run literally the same logic.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

macro_rules! key_select {
    ($($tail:literal),*) => {
        concat!(
            "SELECT id, name, hint, created_at, updated_at, expires_at, daily_quota, total_quota, \
             is_test, allowed_ips, allowed_referers, allowed_apis, openid, status, total_used",
            $($tail),*
        )
    };
}
pub(crate) use key_select;

pub(crate) const INSERT_KEY: &str = "INSERT INTO api_keys (key_hash, hint, name, created_at, \
     updated_at, expires_at, daily_quota, total_quota, is_test, allowed_ips, allowed_referers, \
     allowed_apis, openid, status, total_used) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0) RETURNING id";

pub(crate) const SELECT_KEY_BY_HASH: &str =
    key_select!(", key_hash FROM api_keys WHERE key_hash = $1");
pub(crate) const SELECT_KEY_BY_ID: &str = key_select!(" FROM api_keys WHERE id = $1");
pub(crate) const SELECT_KEY_AND_HASH_BY_ID: &str =
    key_select!(", key_hash FROM api_keys WHERE id = $1");
pub(crate) const LIST_KEYS: &str = key_select!(" FROM api_keys ORDER BY id");

pub(crate) const UPDATE_KEY: &str = "UPDATE api_keys SET name = $2, updated_at = $3, \
     expires_at = $4, daily_quota = $5, total_quota = $6, is_test = $7, allowed_ips = $8, \
     allowed_referers = $9, allowed_apis = $10, openid = $11, status = $12 WHERE id = $1";

pub(crate) const DELETE_KEY: &str = "DELETE FROM api_keys WHERE id = $1";
pub(crate) const DELETE_KEY_QUOTA: &str = "DELETE FROM quota_daily WHERE key_id = $1";

pub(crate) const BAN_IP: &str = "INSERT INTO banned_ips (net, lo, hi, reason, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (net) DO UPDATE SET reason = excluded.reason";
pub(crate) const UNBAN_IP: &str = "DELETE FROM banned_ips WHERE net = $1";
pub(crate) const LIST_BANNED: &str =
    "SELECT net, reason, created_at FROM banned_ips ORDER BY lo, hi";
pub(crate) const BANNED_CANDIDATES: &str = "SELECT net FROM banned_ips WHERE lo <= $1 AND hi >= $1";

pub(crate) const SET_API_STATE: &str = "INSERT INTO api_switches (api, state, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (api) DO UPDATE SET state = excluded.state, \
     updated_at = excluded.updated_at";
pub(crate) const API_STATE: &str = "SELECT state FROM api_switches WHERE api = $1";
pub(crate) const LIST_API_STATES: &str = "SELECT api, state FROM api_switches ORDER BY api";

/// Step 1 of a reservation: count the unit against the total. In PostgreSQL this row-locks the
/// key until the transaction ends, which serialises all reservations of the key across every
/// connection and replica; in SQLite the transaction already holds the database write lock.
/// It also reads the limits under that lock, so an admin's change applies at once.
pub(crate) const RESERVE_TOTAL: &str = "UPDATE api_keys SET total_used = total_used + 1 \
     WHERE id = $1 RETURNING total_used, daily_quota, total_quota, is_test";
/// Step 2: count the unit against the day.
pub(crate) const RESERVE_DAY: &str = "INSERT INTO quota_daily (key_id, day, used) \
     VALUES ($1, $2, 1) ON CONFLICT (key_id, day) DO UPDATE SET used = quota_daily.used + 1 \
     RETURNING used";
pub(crate) const RELEASE_TOTAL: &str = "UPDATE api_keys SET total_used = \
     CASE WHEN total_used > 0 THEN total_used - 1 ELSE 0 END WHERE id = $1";
pub(crate) const RELEASE_DAY: &str = "UPDATE quota_daily SET used = \
     CASE WHEN used > 0 THEN used - 1 ELSE 0 END WHERE key_id = $1 AND day = $2";
pub(crate) const RECORD_USAGE: &str = "INSERT INTO usage_daily (key_id, day, code, requests) \
     VALUES ($1, $2, $3, 1) ON CONFLICT (key_id, day, code) \
     DO UPDATE SET requests = usage_daily.requests + 1";
pub(crate) const INSERT_PENDING: &str = "INSERT INTO quota_pending (key_id, day, created_at) \
     VALUES ($1, $2, $3) RETURNING id";
pub(crate) const DELETE_PENDING: &str = "DELETE FROM quota_pending WHERE id = $1";
pub(crate) const STALE_PENDING: &str =
    "SELECT id, key_id, day FROM quota_pending WHERE created_at < $1 ORDER BY id";
pub(crate) const TOTAL_USED: &str = "SELECT total_used FROM api_keys WHERE id = $1";
pub(crate) const DAY_USED: &str = "SELECT used FROM quota_daily WHERE key_id = $1 AND day = $2";
pub(crate) const USAGE_ALL: &str = "SELECT key_id, day, code, requests FROM usage_daily \
     WHERE day >= $1 AND day <= $2 ORDER BY key_id, day, code";
pub(crate) const USAGE_KEY: &str = "SELECT key_id, day, code, requests FROM usage_daily \
     WHERE key_id = $3 AND day >= $1 AND day <= $2 ORDER BY key_id, day, code";

pub(crate) const PUT_TOKEN: &str = "INSERT INTO face_tokens (token_id, result, created_at, \
     expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (token_id) DO UPDATE SET \
     result = excluded.result, expires_at = CASE WHEN excluded.expires_at > \
     face_tokens.expires_at THEN excluded.expires_at ELSE face_tokens.expires_at END";
pub(crate) const GET_TOKEN: &str =
    "SELECT result FROM face_tokens WHERE token_id = $1 AND expires_at > $2";
pub(crate) const PURGE_TOKENS: &str = "DELETE FROM face_tokens WHERE expires_at <= $1";
pub(crate) const PURGE_QUOTA: &str = "DELETE FROM quota_daily WHERE day < $1";

/// The migrations table, common to both backends.
pub(crate) const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS facelens_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
pub(crate) const MAX_MIGRATION: &str = "SELECT MAX(version) FROM facelens_migrations";
pub(crate) const INSERT_MIGRATION: &str =
    "INSERT INTO facelens_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

/// One schema migration: applied in order, each once, in the transaction that opens the store.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) fn encode_list<T: Serialize>(v: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::invalid(format!("cannot encode list: {e}")))
}

pub(crate) fn decode_list<T: DeserializeOwned>(s: &str, what: &str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt(format!("{what}: {e}")))
}

/// Implements [`crate::Store`] for a backend struct with fields `pool` and `opts` and methods
/// `begin_write` (a write transaction plus whatever guard it needs) and `write_guard` (the
/// guard alone, for single-statement writes).
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:expr, $select_key_for_update:expr) => {
        impl $store {
            fn key_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<crate::model::ApiKey, crate::error::StoreError> {
                use crate::error::StoreError;
                use crate::sql::decode_list;
                use sqlx::Row;
                let status: String = row.try_get("status")?;
                let ips: String = row.try_get("allowed_ips")?;
                let referers: String = row.try_get("allowed_referers")?;
                let apis: String = row.try_get("allowed_apis")?;
                Ok(crate::model::ApiKey {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    hint: row.try_get("hint")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    expires_at: row.try_get("expires_at")?,
                    daily_quota: row.try_get("daily_quota")?,
                    total_quota: row.try_get("total_quota")?,
                    test: row.try_get("is_test")?,
                    allowed_ips: decode_list(&ips, "allowed_ips")?,
                    allowed_referers: decode_list(&referers, "allowed_referers")?,
                    allowed_apis: decode_list(&apis, "allowed_apis")?,
                    openid: row.try_get("openid")?,
                    status: status
                        .parse()
                        .map_err(|_| StoreError::corrupt(format!("key status {status:?}")))?,
                    total_used: row.try_get("total_used")?,
                })
            }

            /// Give one unit back to the key's total and to `day` (never below zero).
            async fn give_back(
                tx: &mut sqlx::Transaction<'static, $db>,
                key_id: i64,
                day: i64,
            ) -> Result<(), crate::error::StoreError> {
                sqlx::query(crate::sql::RELEASE_TOTAL)
                    .bind(key_id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(crate::sql::RELEASE_DAY)
                    .bind(key_id)
                    .bind(day)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Take one unit from the key's total and `day` again, without the limit checks
            /// of a reservation (the mirror of [`Self::give_back`]: the work was done and
            /// answered, so it is charged even past a limit).
            async fn take_unit(
                tx: &mut sqlx::Transaction<'static, $db>,
                key_id: i64,
                day: i64,
            ) -> Result<(), crate::error::StoreError> {
                sqlx::query(crate::sql::RESERVE_TOTAL)
                    .bind(key_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                sqlx::query(crate::sql::RESERVE_DAY)
                    .bind(key_id)
                    .bind(day)
                    .fetch_one(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Remove the pending row `id`; whether this transaction removed it (false: it was
            /// already gone, finished or reclaimed).
            async fn take_pending(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: i64,
            ) -> Result<bool, crate::error::StoreError> {
                Ok(sqlx::query(crate::sql::DELETE_PENDING)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
                    > 0)
            }

            /// Apply the migrations newer than the database's version, inside `tx`.
            async fn migrate_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                migrations: &[crate::sql::Migration],
                now: crate::model::UnixTime,
            ) -> Result<(), crate::error::StoreError> {
                use crate::error::StoreError;
                sqlx::query(crate::sql::CREATE_MIGRATIONS)
                    .execute(&mut **tx)
                    .await?;
                let current: Option<i64> = sqlx::query_scalar(crate::sql::MAX_MIGRATION)
                    .fetch_one(&mut **tx)
                    .await?;
                let current = current.unwrap_or(0);
                let known = migrations.last().map_or(0, |m| m.version);
                if current > known {
                    return Err(StoreError::SchemaTooNew {
                        found: current,
                        known,
                    });
                }
                for m in migrations.iter().filter(|m| m.version > current) {
                    let fail = |source| StoreError::Migration {
                        version: m.version,
                        name: m.name,
                        source,
                    };
                    sqlx::raw_sql(m.sql)
                        .execute(&mut **tx)
                        .await
                        .map_err(fail)?;
                    sqlx::query(crate::sql::INSERT_MIGRATION)
                        .bind(m.version)
                        .bind(m.name)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(fail)?;
                    tracing::info!(version = m.version, name = m.name, "applied migration");
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Store for $store {
            fn backend(&self) -> crate::store::Backend {
                $backend
            }

            fn options(&self) -> &crate::model::StoreOptions {
                &self.opts
            }

            async fn insert_key(
                &self,
                key_hash: [u8; 32],
                k: &crate::model::ApiKey,
            ) -> Result<i64, crate::error::StoreError> {
                use crate::sql::encode_list;
                let _guard = self.write_guard().await;
                let id: i64 = sqlx::query_scalar(crate::sql::INSERT_KEY)
                    .bind(&key_hash[..])
                    .bind(&k.hint)
                    .bind(&k.name)
                    .bind(k.created_at)
                    .bind(k.updated_at)
                    .bind(k.expires_at)
                    .bind(k.daily_quota)
                    .bind(k.total_quota)
                    .bind(k.test)
                    .bind(encode_list(&k.allowed_ips)?)
                    .bind(encode_list(&k.allowed_referers)?)
                    .bind(encode_list(&k.allowed_apis)?)
                    .bind(&k.openid)
                    .bind(k.status.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(id)
            }

            async fn key_by_hash(
                &self,
                key_hash: &[u8; 32],
            ) -> Result<Option<(crate::model::ApiKey, Vec<u8>)>, crate::error::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(crate::sql::SELECT_KEY_BY_HASH)
                    .bind(&key_hash[..])
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let stored: Vec<u8> = row.try_get("key_hash")?;
                        Ok(Some((Self::key_from_row(&row)?, stored)))
                    }
                }
            }

            async fn key_with_hash(
                &self,
                id: i64,
            ) -> Result<Option<(crate::model::ApiKey, Vec<u8>)>, crate::error::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(crate::sql::SELECT_KEY_AND_HASH_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let stored: Vec<u8> = row.try_get("key_hash")?;
                        Ok(Some((Self::key_from_row(&row)?, stored)))
                    }
                }
            }

            async fn get_key(
                &self,
                id: i64,
            ) -> Result<Option<crate::model::ApiKey>, crate::error::StoreError> {
                let row = sqlx::query(crate::sql::SELECT_KEY_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::key_from_row).transpose()
            }

            async fn list_keys(
                &self,
            ) -> Result<Vec<crate::model::ApiKey>, crate::error::StoreError> {
                let rows = sqlx::query(crate::sql::LIST_KEYS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn update_key(
                &self,
                id: i64,
                update: &crate::model::KeyUpdate,
                now: crate::model::UnixTime,
            ) -> Result<crate::model::ApiKey, crate::error::StoreError> {
                use crate::error::StoreError;
                use crate::sql::encode_list;
                let (_guard, mut tx) = self.begin_write().await?;
                let row = sqlx::query($select_key_for_update)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound(format!("key {id}")));
                };
                let mut k = Self::key_from_row(&row)?;
                k.apply(update);
                k.validate()?;
                k.updated_at = now;
                sqlx::query(crate::sql::UPDATE_KEY)
                    .bind(id)
                    .bind(&k.name)
                    .bind(k.updated_at)
                    .bind(k.expires_at)
                    .bind(k.daily_quota)
                    .bind(k.total_quota)
                    .bind(k.test)
                    .bind(encode_list(&k.allowed_ips)?)
                    .bind(encode_list(&k.allowed_referers)?)
                    .bind(encode_list(&k.allowed_apis)?)
                    .bind(&k.openid)
                    .bind(k.status.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(k)
            }

            async fn delete_key(&self, id: i64) -> Result<bool, crate::error::StoreError> {
                let (_guard, mut tx) = self.begin_write().await?;
                let n = sqlx::query(crate::sql::DELETE_KEY)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(crate::sql::DELETE_KEY_QUOTA)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn ban_ip(
                &self,
                net: facelens_core::net::IpNet,
                reason: Option<&str>,
                now: crate::model::UnixTime,
            ) -> Result<(), crate::error::StoreError> {
                let (lo, hi) = net.range16();
                let _guard = self.write_guard().await;
                sqlx::query(crate::sql::BAN_IP)
                    .bind(net.to_string())
                    .bind(&lo[..])
                    .bind(&hi[..])
                    .bind(reason)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn unban_ip(
                &self,
                net: facelens_core::net::IpNet,
            ) -> Result<bool, crate::error::StoreError> {
                let _guard = self.write_guard().await;
                let n = sqlx::query(crate::sql::UNBAN_IP)
                    .bind(net.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn list_banned_ips(
                &self,
            ) -> Result<Vec<crate::model::BannedIp>, crate::error::StoreError> {
                use crate::error::StoreError;
                use sqlx::Row;
                let rows = sqlx::query(crate::sql::LIST_BANNED)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let net: String = row.try_get("net")?;
                        Ok(crate::model::BannedIp {
                            net: net
                                .parse()
                                .map_err(|_| StoreError::corrupt(format!("banned net {net:?}")))?,
                            reason: row.try_get("reason")?,
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn banned_candidates(
                &self,
                ip: std::net::IpAddr,
            ) -> Result<Vec<facelens_core::net::IpNet>, crate::error::StoreError> {
                use crate::error::StoreError;
                let key = facelens_core::net::ip16(ip);
                let nets: Vec<String> = sqlx::query_scalar(crate::sql::BANNED_CANDIDATES)
                    .bind(&key[..])
                    .fetch_all(&self.pool)
                    .await?;
                nets.iter()
                    .map(|n| {
                        n.parse()
                            .map_err(|_| StoreError::corrupt(format!("banned net {n:?}")))
                    })
                    .collect()
            }

            async fn set_api_state(
                &self,
                api: &str,
                state: crate::model::ApiState,
                now: crate::model::UnixTime,
            ) -> Result<(), crate::error::StoreError> {
                crate::store::check_api_name(api)?;
                let _guard = self.write_guard().await;
                sqlx::query(crate::sql::SET_API_STATE)
                    .bind(api)
                    .bind(state.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn api_state(
                &self,
                api: &str,
            ) -> Result<crate::model::ApiState, crate::error::StoreError> {
                use crate::error::StoreError;
                let s: Option<String> = sqlx::query_scalar(crate::sql::API_STATE)
                    .bind(api)
                    .fetch_optional(&self.pool)
                    .await?;
                match s {
                    None => Ok(crate::model::ApiState::Normal),
                    Some(s) => s
                        .parse()
                        .map_err(|_| StoreError::corrupt(format!("API state {s:?}"))),
                }
            }

            async fn list_api_states(
                &self,
            ) -> Result<Vec<(String, crate::model::ApiState)>, crate::error::StoreError> {
                use crate::error::StoreError;
                let rows: Vec<(String, String)> = sqlx::query_as(crate::sql::LIST_API_STATES)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(api, s)| {
                        let state = s
                            .parse()
                            .map_err(|_| StoreError::corrupt(format!("API state {s:?}")))?;
                        Ok((api, state))
                    })
                    .collect()
            }

            async fn reserve(
                &self,
                key_id: i64,
                now: crate::model::UnixTime,
            ) -> Result<crate::model::Reservation, crate::error::StoreError> {
                use crate::error::StoreError;
                use crate::model::{Reservation, Ticket};
                let day = self.opts.day_of(now);
                let (_guard, mut tx) = self.begin_write().await?;
                let row: Option<(i64, Option<i64>, Option<i64>, bool)> =
                    sqlx::query_as(crate::sql::RESERVE_TOTAL)
                        .bind(key_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((total_used, daily, total, test)) = row else {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound(format!("key {key_id}")));
                };
                let limits = self.opts.effective_limits(test, daily, total);
                if let Some(hit) = limits.judge(total_used, 0) {
                    tx.rollback().await?;
                    return Ok(Reservation::Denied(hit));
                }
                let day_used: i64 = sqlx::query_scalar(crate::sql::RESERVE_DAY)
                    .bind(key_id)
                    .bind(day)
                    .fetch_one(&mut *tx)
                    .await?;
                if let Some(hit) = limits.judge(total_used, day_used) {
                    tx.rollback().await?;
                    return Ok(Reservation::Denied(hit));
                }
                let pending: i64 = sqlx::query_scalar(crate::sql::INSERT_PENDING)
                    .bind(key_id)
                    .bind(day)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Reservation::Granted(Ticket {
                    key_id,
                    day,
                    pending,
                }))
            }

            async fn release(
                &self,
                ticket: crate::model::Ticket,
            ) -> Result<(), crate::error::StoreError> {
                let (_guard, mut tx) = self.begin_write().await?;
                let still_pending = Self::take_pending(&mut tx, ticket.pending).await?;
                // A reservation already reclaimed after a crash was given back then.
                if still_pending || ticket.pending == 0 {
                    Self::give_back(&mut tx, ticket.key_id, ticket.day).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn finish(
                &self,
                ticket: crate::model::Ticket,
                now: crate::model::UnixTime,
                outcome: Option<facelens_core::ErrorCode>,
            ) -> Result<(), crate::error::StoreError> {
                // One transaction: the pending row goes, the unit is given back or kept, and
                // the outcome is recorded, together or not at all.
                let (_guard, mut tx) = self.begin_write().await?;
                let still_pending = Self::take_pending(&mut tx, ticket.pending).await?;
                let reclaimed = ticket.pending != 0 && !still_pending;
                let counts = crate::model::counts_against_quota(outcome);
                if !counts && !reclaimed {
                    Self::give_back(&mut tx, ticket.key_id, ticket.day).await?;
                } else if counts && reclaimed {
                    // It outlived the reclaim age and still counts: take the unit again.
                    Self::take_unit(&mut tx, ticket.key_id, ticket.day).await?;
                }
                sqlx::query(crate::sql::RECORD_USAGE)
                    .bind(ticket.key_id)
                    .bind(self.opts.day_of(now))
                    .bind(i64::from(crate::model::outcome_code(outcome)))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reclaim_stale(
                &self,
                older_than: crate::model::UnixTime,
            ) -> Result<u64, crate::error::StoreError> {
                let (_guard, mut tx) = self.begin_write().await?;
                let stale: Vec<(i64, i64, i64)> = sqlx::query_as(crate::sql::STALE_PENDING)
                    .bind(older_than)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut reclaimed = 0u64;
                for (id, key_id, day) in &stale {
                    // Delete first and give the unit back only if this transaction removed the
                    // row: a request finishing at the same moment may have removed it (and
                    // kept its unit) since the select.
                    if Self::take_pending(&mut tx, *id).await? {
                        Self::give_back(&mut tx, *key_id, *day).await?;
                        reclaimed += 1;
                    }
                }
                tx.commit().await?;
                Ok(reclaimed)
            }

            async fn record_usage(
                &self,
                key_id: i64,
                now: crate::model::UnixTime,
                code: u32,
            ) -> Result<(), crate::error::StoreError> {
                let day = self.opts.day_of(now);
                let _guard = self.write_guard().await;
                sqlx::query(crate::sql::RECORD_USAGE)
                    .bind(key_id)
                    .bind(day)
                    .bind(i64::from(code))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn quota_usage(
                &self,
                key_id: i64,
                now: crate::model::UnixTime,
            ) -> Result<crate::model::QuotaUsage, crate::error::StoreError> {
                use crate::error::StoreError;
                let day = self.opts.day_of(now);
                let total: Option<i64> = sqlx::query_scalar(crate::sql::TOTAL_USED)
                    .bind(key_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(total) = total else {
                    return Err(StoreError::NotFound(format!("key {key_id}")));
                };
                let today: Option<i64> = sqlx::query_scalar(crate::sql::DAY_USED)
                    .bind(key_id)
                    .bind(day)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(crate::model::QuotaUsage {
                    today: today.unwrap_or(0),
                    total,
                })
            }

            async fn usage(
                &self,
                q: crate::model::UsageQuery,
            ) -> Result<Vec<crate::model::UsageRow>, crate::error::StoreError> {
                use crate::error::StoreError;
                let rows: Vec<(i64, i64, i64, i64)> = match q.key_id {
                    None => {
                        sqlx::query_as(crate::sql::USAGE_ALL)
                            .bind(q.from_day)
                            .bind(q.to_day)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some(k) => {
                        sqlx::query_as(crate::sql::USAGE_KEY)
                            .bind(q.from_day)
                            .bind(q.to_day)
                            .bind(k)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                rows.into_iter()
                    .map(|(key_id, day, code, count)| {
                        let code = u32::try_from(code)
                            .map_err(|_| StoreError::corrupt(format!("usage code {code}")))?;
                        Ok(crate::model::UsageRow {
                            key_id,
                            day,
                            code,
                            count,
                        })
                    })
                    .collect()
            }

            async fn put_face_tokens(
                &self,
                tokens: &[(&str, &str)],
                now: crate::model::UnixTime,
                ttl_secs: i64,
            ) -> Result<(), crate::error::StoreError> {
                for (token_id, _) in tokens {
                    crate::store::check_token_id(token_id)?;
                }
                if tokens.is_empty() {
                    return Ok(());
                }
                let expires_at = now.saturating_add(ttl_secs.max(0));
                let (_guard, mut tx) = self.begin_write().await?;
                for (token_id, result_json) in tokens {
                    sqlx::query(crate::sql::PUT_TOKEN)
                        .bind(*token_id)
                        .bind(*result_json)
                        .bind(now)
                        .bind(expires_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_face_token(
                &self,
                token_id: &str,
                now: crate::model::UnixTime,
            ) -> Result<Option<String>, crate::error::StoreError> {
                Ok(sqlx::query_scalar(crate::sql::GET_TOKEN)
                    .bind(token_id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn purge_expired(
                &self,
                now: crate::model::UnixTime,
            ) -> Result<crate::model::PurgeReport, crate::error::StoreError> {
                // Keep yesterday's counters: a request that straddles midnight releases its
                // unit to the day it was taken from.
                let keep_from = self.opts.day_of(now) - 1;
                let (_guard, mut tx) = self.begin_write().await?;
                let face_tokens = sqlx::query(crate::sql::PURGE_TOKENS)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let quota_days = sqlx::query(crate::sql::PURGE_QUOTA)
                    .bind(keep_from)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(crate::model::PurgeReport {
                    face_tokens,
                    quota_days,
                })
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}
pub(crate) use impl_sql_store;
