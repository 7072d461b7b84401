//! The error type of the storage layer.
//!
//! A [`StoreError`] is an *infrastructure* failure (the database or Redis is unreachable, a row is
//! corrupt, an admin gave a bad value). It is never a refusal of a request: refusals are
//! [`facelens_core::error::ErrorCode`]s (see [`crate::check::CheckError`]). The HTTP layer answers
//! a `StoreError` met while serving a request with 10014 (internal error).

use facelens_core::error::ErrorCode;

/// Anything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database driver failed (connection, SQL, constraint, pool timeout...).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A schema migration failed while opening the store.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// The database holds a schema newer than this build knows (a newer replica migrated it).
    #[error(
        "the database schema is at version {found}, newer than this build's {known}; upgrade facelens"
    )]
    SchemaTooNew { found: i64, known: i64 },

    /// Redis failed (rate limiter).
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),

    /// `open` was given a location it cannot use.
    #[error("invalid store location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: String },

    /// A caller (usually the admin CLI) passed a value the store refuses.
    #[error("invalid value: {0}")]
    Invalid(String),

    /// The named record does not exist.
    #[error("{0} not found")]
    NotFound(String),

    /// A row could not be decoded (hand-edited database, or a bug).
    #[error("corrupt row: {0}")]
    Corrupt(String),

    /// Creating the data directory failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// The contract code to answer when this error interrupts a request: always 10014.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        StoreError::Invalid(msg.into())
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        StoreError::Corrupt(msg.into())
    }
}

impl From<facelens_core::net::NetParseError> for StoreError {
    fn from(e: facelens_core::net::NetParseError) -> Self {
        StoreError::Invalid(e.0)
    }
}
