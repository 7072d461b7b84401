//! Facelens storage: API keys, quotas and usage, banned IPs, API switches, face tokens, and
//! per-client rate limiting.
//!
//! # Shape
//!
//! [`Store`] is one object-safe async trait with two implementations that run the *same* SQL
//! logic (`src/sql.rs` holds it once; a macro instantiates it per backend):
//!
//! - [`SqliteStore`], the default: one embedded file, `facelens.db` in the data directory, in
//!   WAL mode. No server to run; right for one machine (even several processes on it).
//! - [`PostgresStore`]: for several replicas behind a load balancer sharing one database.
//!
//! [`open`] picks the backend from a location string. Each backend has its own migrations
//! (`migrations/<backend>/NNNN_name.sql`, embedded in the binary), applied in a locked
//! transaction when the store opens. One conformance suite (`tests/conformance.rs`) runs
//! against both, so they cannot drift.
//!
//! Rate limiting is separate ([`ratelimit`]): it is hot (every request, before any database
//! work) and its state is disposable, so it lives in process memory or Redis, never in SQL.
//!
//! # Serving a request
//!
//! [`Gate`] is the admission policy the service runs for every request, in one documented
//! order ([`admission`]): the per-IP rate ([`RateLimiter::check_ip`], 10011), the API switch
//! and banned addresses, the key's standing (10001 … 10004), then one unit of quota
//! ([`Store::reserve`] → a [`Ticket`], or a [`LimitHit`] → 10012 / 10013). Refusals of a known
//! key are recorded in its usage. The caller then does the work and calls [`Store::finish`]
//! with the outcome: it records usage by code and gives the unit back unless the outcome
//! counts ([`counts_against_quota`]: success and "no face found" count; parameter, image,
//! download and internal errors do not).
//!
//! # Why a reservation makes quotas exact
//!
//! The naive "read usage, compare with quota, process, then increment" lets N concurrent
//! requests all read `quota - 1` and all pass. Instead, [`Store::reserve`] increments first
//! and judges after, inside one transaction that holds a lock covering the key's counters:
//! the `UPDATE api_keys SET total_used = total_used + 1 ... RETURNING` row-locks the key in
//! PostgreSQL (every other reservation of that key, from any connection of any replica, waits
//! and then sees the committed value), and SQLite's `BEGIN IMMEDIATE` holds the database's
//! write lock. The day counter is then bumped with an upsert in the same transaction. If either
//! counter now exceeds its limit, the transaction rolls back, so a denial leaves no trace, and
//! exactly `quota` reservations can ever commit. Limits are read under the same lock, so an
//! admin's quota change applies to the very next request.
//!
//! Reserving *before* the work (rather than counting after it) is what bounds usage: a burst
//! of slow requests cannot overshoot, because each holds its unit while it runs. Requests that
//! turn out not to count give the unit back ([`Store::release`]) — which can briefly refuse a
//! request that would have fit, the safe side of exactness.
//!
//! Usage by outcome code is a separate table (`usage_daily`, one counter per key, day and
//! code): it is the report, kept as history even when a key is deleted. The quota counters
//! (`api_keys.total_used`, `quota_daily`) are the enforcement state.
//!
//! # Why keys are stored as hashes
//!
//! See [`secret`]: keys are 128-bit random values shown once; the database holds only
//! SHA-256 of each, so a leaked database or backup grants no access, and lookups stay a single
//! indexed equality match.
//!
//! # Time
//!
//! Every call takes `now` ([`UnixTime`], seconds). Daily counters use accounting days in the
//! zone of [`StoreOptions::day_offset_secs`] (UTC by default). Face tokens expire after the
//! TTL the caller passes (the service's default is 72 h); [`Store::purge_expired`] deletes them
//! and quota counters older than yesterday.

pub mod admission;
pub mod error;
pub mod model;
pub mod net;
pub mod postgres;
pub mod ratelimit;
pub mod secret;
pub(crate) mod sql;
pub mod sqlite;
pub mod store;

use std::sync::Arc;

pub use admission::{Gate, KeyCheck, Refusal, check_key_record};
pub use error::StoreError;
pub use facelens_core::net::IpNet;
pub use model::*;
pub use postgres::PostgresStore;
pub use ratelimit::{
    Gcra, MemoryRateLimiter, RateDecision, RateLimiter, RedisRateLimiter, ip_bucket,
};
pub use secret::SecretKey;
pub use sqlite::SqliteStore;
pub use store::{Backend, Store};

/// Open the store at `location`:
/// - `postgres://...` or `postgresql://...` → [`PostgresStore`];
/// - `sqlite:///path/facelens.db`, `sqlite:path.db`, a path ending in `.db`/`.sqlite`/`.sqlite3`
///   → that SQLite file;
/// - any other path → a data directory (created if missing) holding `facelens.db`.
pub async fn open(location: &str, opts: StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let location = location.trim();
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(location, opts).await?));
    }
    if let Some((scheme, _)) = location.split_once("://")
        && scheme != "sqlite"
    {
        return Err(StoreError::InvalidLocation {
            location: postgres::redact(location),
            reason: format!("unsupported scheme {scheme:?} (use sqlite:// or postgres://)"),
        });
    }
    let path = sqlite::sqlite_path(location)?;
    Ok(Arc::new(SqliteStore::open(path, opts).await?))
}
