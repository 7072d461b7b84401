//! The PostgreSQL backend, for several replicas sharing one database.
//!
//! - **Quota exactness across replicas** comes from the row lock that the first statement of a
//!   reservation (`UPDATE api_keys ... WHERE id = $1`) takes on the key's row. Under READ
//!   COMMITTED, a concurrent reservation of the same key waits for that lock and then re-reads
//!   the row as committed, and every later statement of the transaction takes a fresh
//!   snapshot, so it also sees the day counter as the previous holder left it. Reservations of
//!   one key are thus serialised, whichever connection or replica they come from; reservations
//!   of different keys do not contend.
//! - **Migrations** run in one transaction that first takes a transaction-scoped advisory lock,
//!   so replicas starting together apply each migration exactly once (the others wait, then
//!   find nothing to do). PostgreSQL DDL is transactional: a failed migration leaves nothing.
//! - **Schemas**: [`StoreOptions::pg_schema`] puts the tables in their own schema (created on
//!   open) through the connection's `search_path`, so several deployments or test runs can
//!   share a database.
//! - TLS is not compiled in (the `sslmode` must allow plain connections): the service and its
//!   database are expected to talk over a private network or a local socket.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::StoreError;
use crate::model::{StoreOptions, unix_now};
use crate::sql::{Migration, impl_sql_store, key_select};
use crate::store::Backend;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "quota_pending",
        sql: include_str!("../migrations/postgres/0002_quota_pending.sql"),
    },
];

/// Key of the advisory lock that serialises migrations (any fixed number; "FACELENS").
const MIGRATION_LOCK: i64 = 0x4641_4345_4c45_4e53;

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    opts: StoreOptions,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.opts.pg_schema)
            .finish_non_exhaustive()
    }
}

/// Whether `s` may be used as a schema name: lowercase ASCII letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (so it needs no quoting anywhere).
pub fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user@host:port/db`) and bring the schema up to date.
    pub async fn connect(url: &str, opts: StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidLocation {
            location: redact(url),
            reason: e.to_string(),
        })?;
        Self::connect_with(connect, opts).await
    }

    /// Connect with explicit connection options.
    pub async fn connect_with(
        mut connect: PgConnectOptions,
        opts: StoreOptions,
    ) -> Result<Self, StoreError> {
        if let Some(schema) = &opts.pg_schema {
            if !valid_schema_name(schema) {
                return Err(StoreError::invalid(format!(
                    "schema name {schema:?}: use lowercase letters, digits and _"
                )));
            }
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let timeout = std::time::Duration::from_millis(opts.op_timeout_ms.max(1));
        connect = connect.options([("statement_timeout", opts.op_timeout_ms.max(1).to_string())]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(timeout)
            .connect_with(connect)
            .await?;
        let store = PostgresStore { pool, opts };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool (for tools that need raw access).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(crate::sql::MAX_MIGRATION)
            .fetch_one(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        if let Some(schema) = &self.opts.pg_schema {
            // Validated by connect_with: plain lowercase identifier, no quoting needed.
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
        Self::migrate_in(&mut tx, MIGRATIONS, unix_now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// No in-process write lock: PostgreSQL's row locks do the work.
    async fn write_guard(&self) -> Option<()> {
        None
    }

    async fn begin_write(
        &self,
    ) -> Result<(Option<()>, sqlx::Transaction<'static, sqlx::Postgres>), StoreError> {
        Ok((None, self.pool.begin().await?))
    }
}

impl_sql_store!(
    PostgresStore,
    sqlx::Postgres,
    Backend::Postgres,
    key_select!(" FROM api_keys WHERE id = $1 FOR UPDATE")
);

/// A URL with its password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    // scheme://user:password@host -> scheme://user:***@host
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            return format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            );
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("facelens"));
        assert!(valid_schema_name("t_123_abc"));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("Abc"));
        assert!(!valid_schema_name("a-b"));
        assert!(!valid_schema_name("a;drop"));
        assert!(!valid_schema_name(""));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?x=a:b@c"), "postgres://h/db?x=a:b@c");
    }
}
