-- Facelens store, SQLite schema version 1. Times are Unix seconds; days are accounting days
-- (days since 1970-01-01 in the configured zone). See the crate docs for the design.

CREATE TABLE api_keys (
    -- AUTOINCREMENT: ids are never reused, so usage history of a deleted key stays unambiguous.
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash         BLOB    NOT NULL UNIQUE,      -- SHA-256 of the key; the key itself is never stored
    hint             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    daily_quota      INTEGER CHECK (daily_quota >= 0),
    total_quota      INTEGER CHECK (total_quota >= 0),
    is_test          INTEGER NOT NULL DEFAULT 0,
    allowed_ips      TEXT    NOT NULL DEFAULT '[]', -- JSON array of "addr" / "addr/prefix"
    allowed_referers TEXT    NOT NULL DEFAULT '[]', -- JSON array of patterns
    allowed_apis     TEXT    NOT NULL DEFAULT '[]', -- JSON array of API names; empty = all
    openid           TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'banned')),
    total_used       INTEGER NOT NULL DEFAULT 0     -- units reserved over the key's life
);

-- Units reserved per key and accounting day: the daily quota counter.
CREATE TABLE quota_daily (
    key_id INTEGER NOT NULL,
    day    INTEGER NOT NULL,
    used   INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
) WITHOUT ROWID;

-- Finished requests per key, day and outcome code (0 = success): the usage report.
CREATE TABLE usage_daily (
    key_id   INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    code     INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (key_id, day, code)
) WITHOUT ROWID;
CREATE INDEX usage_daily_day ON usage_daily (day);

-- Banned networks; lo/hi are the first and last address as 16 bytes (IPv4 mapped into IPv6).
CREATE TABLE banned_ips (
    net        TEXT    PRIMARY KEY,
    lo         BLOB    NOT NULL,
    hi         BLOB    NOT NULL,
    reason     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX banned_ips_lo ON banned_ips (lo);

CREATE TABLE api_switches (
    api        TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL CHECK (state IN ('normal', 'maintenance', 'disabled')),
    updated_at INTEGER NOT NULL
);

CREATE TABLE face_tokens (
    token_id   TEXT    PRIMARY KEY,
    result     TEXT    NOT NULL,                   -- the face result, JSON, as given
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX face_tokens_expires_at ON face_tokens (expires_at);
