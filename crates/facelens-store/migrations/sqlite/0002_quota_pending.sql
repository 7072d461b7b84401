-- Reservations not yet finished: one row per admitted request until its outcome is recorded.
-- A row left behind by a crash is a unit taken but never finished; `reclaim_stale` gives such
-- units back (docs/security.md, "crash and restart").
CREATE TABLE quota_pending (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id     BIGINT  NOT NULL,
    day        BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX quota_pending_created ON quota_pending (created_at);
