//! The SQLite backend: the default, embedded, one file `facelens.db` in the data directory.
//!
//! - **WAL mode**: readers (key lookups, token reads) never wait for the writer, and a write
//!   commits with one fsync of the log (`synchronous = NORMAL`: durable against a process
//!   crash; an OS crash can lose the last few commits, never corrupt the file).
//! - **Writes**: every write transaction starts with `BEGIN IMMEDIATE`, which takes SQLite's
//!   single write lock before reading anything, so a transaction never reads a counter that
//!   another process changes before it writes (no lost update, and no `SQLITE_BUSY_SNAPSHOT`
//!   mid-transaction). Other *processes* on the same file wait on that lock through
//!   `busy_timeout`; writers of *this* process queue on an async mutex first, which is fairer
//!   and cheaper than SQLite's sleep-and-retry busy handler.
//! - Several processes may share the file on one machine (not over a network filesystem, where
//!   SQLite's locks are unreliable); for several machines use PostgreSQL.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::StoreError;
use crate::model::{StoreOptions, unix_now};
use crate::sql::{Migration, impl_sql_store, key_select};
use crate::store::Backend;

/// The database file name inside a data directory.
pub const DB_FILE: &str = "facelens.db";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "quota_pending",
        sql: include_str!("../migrations/sqlite/0002_quota_pending.sql"),
    },
];

/// A store in a SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    opts: StoreOptions,
    path: PathBuf,
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and bring its schema up to date.
    pub async fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_millis(opts.busy_timeout_ms))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            // A transaction that failed with "disk full" or an I/O error is rolled back by
            // SQLite itself; sqlx's own ROLLBACK then fails, and it keeps counting the
            // connection as inside a transaction, so every later BEGIN on it would fail for
            // the life of the process. Such a connection is closed instead of handed out
            // again (the ping first lets the rollback queued when the transaction was dropped
            // run).
            .before_acquire(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(connect)
            .await?;
        let store = SqliteStore {
            pool,
            opts,
            path,
            write_lock: Mutex::new(()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Open the store of a data directory: `<dir>/facelens.db`.
    pub async fn open_dir(dir: impl AsRef<Path>, opts: StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir.as_ref())?;
        Self::open(dir.as_ref().join(DB_FILE), opts).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(crate::sql::MAX_MIGRATION)
            .fetch_one(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.begin_write().await?;
        Self::migrate_in(&mut tx, MIGRATIONS, unix_now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_guard(&self) -> Option<MutexGuard<'_, ()>> {
        Some(self.write_lock.lock().await)
    }

    async fn begin_write(
        &self,
    ) -> Result<
        (
            Option<MutexGuard<'_, ()>>,
            sqlx::Transaction<'static, sqlx::Sqlite>,
        ),
        StoreError,
    > {
        let guard = self.write_guard().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((guard, tx))
    }
}

impl_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite,
    key_select!(" FROM api_keys WHERE id = $1")
);

/// Where a SQLite location points: `sqlite:///abs/path.db`, `sqlite://rel/path.db`,
/// `sqlite:path.db`, or a plain path. A plain path names the database file if it ends in
/// `.db`, `.sqlite` or `.sqlite3` and is not an existing directory; otherwise it is a data
/// directory holding `facelens.db`.
pub fn sqlite_path(location: &str) -> Result<PathBuf, StoreError> {
    let bad = |reason: &str| StoreError::InvalidLocation {
        location: location.to_string(),
        reason: reason.to_string(),
    };
    if let Some(rest) = location.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        // Drop URL options (`?mode=rwc`): the store sets its own.
        let rest = rest.split('?').next().unwrap_or("");
        if rest.is_empty() || rest == ":memory:" {
            return Err(bad(
                "a file path is required (an in-memory database is not shared by the pool)",
            ));
        }
        return Ok(PathBuf::from(rest));
    }
    if location.trim().is_empty() {
        return Err(bad("empty location"));
    }
    let path = PathBuf::from_str(location).map_err(|_| bad("not a path"))?;
    let is_file_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "db" | "sqlite" | "sqlite3"));
    if is_file_name && !path.is_dir() {
        Ok(path)
    } else {
        Ok(path.join(DB_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// After a disk-full or I/O error SQLite rolls a transaction back by itself and sqlx's own
    /// ROLLBACK fails; the connection must not stay in the pool believing it is inside a
    /// transaction (every later write on it failed, for the life of the process).
    #[tokio::test]
    async fn a_transaction_sqlite_ended_by_itself_does_not_poison_the_pool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let store = SqliteStore::open_dir(dir.path(), opts).await.expect("open");
        {
            let (_guard, mut tx) = store.begin_write().await.expect("begin");
            // What SQLite does on its own when a COMMIT fails for a full disk.
            sqlx::query("ROLLBACK")
                .execute(&mut *tx)
                .await
                .expect("rollback behind sqlx's back");
        }
        let token = "0123456789abcdef0123456789abcdef";
        store
            .put_face_tokens(&[(token, "{}")], 100, 10)
            .await
            .expect("writes work again");
        assert_eq!(
            store
                .get_face_token(token, 100)
                .await
                .expect("get")
                .as_deref(),
            Some("{}")
        );
    }

    #[test]
    fn locations() {
        let p = |s: &str| sqlite_path(s).expect(s);
        assert_eq!(
            p("sqlite:///var/lib/f/facelens.db"),
            PathBuf::from("/var/lib/f/facelens.db")
        );
        assert_eq!(p("sqlite://data/x.db"), PathBuf::from("data/x.db"));
        assert_eq!(p("sqlite:x.db?mode=rwc"), PathBuf::from("x.db"));
        assert_eq!(
            p("/var/lib/facelens"),
            PathBuf::from("/var/lib/facelens/facelens.db")
        );
        assert_eq!(p("data"), PathBuf::from("data/facelens.db"));
        assert_eq!(p("/tmp/custom.sqlite"), PathBuf::from("/tmp/custom.sqlite"));
        assert!(sqlite_path("sqlite::memory:").is_err());
        assert!(sqlite_path("").is_err());
    }
}
