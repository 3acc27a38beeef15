-- Issue 13: budgets that follow spending, rollover, and a notifications inbox.

-- What the user types as "actual" keeps its figures under its new name; linked expenses add up
-- separately in spent_amount, and the API's actual_amount is their sum.
ALTER TABLE user_allocations RENAME COLUMN actual_amount TO recorded_amount;
ALTER TABLE user_allocations ADD COLUMN spent_amount INTEGER NOT NULL DEFAULT 0 CHECK (spent_amount >= 0);

-- An expense may be linked to an allocation type. No ON DELETE action: a catalogue row in use
-- cannot vanish (as for user_allocations).
ALTER TABLE transactions ADD COLUMN allocation_type_id TEXT REFERENCES allocation_types (id);

-- GET /transactions?allocation_type_id=, and recomputing one type's spent_amount for a month.
CREATE INDEX idx_transactions_user_type_month
    ON transactions (user_id, allocation_type_id, year, month)
    WHERE allocation_type_id IS NOT NULL;

-- Rollover settings: one per (user, type, first month). A setting rules from its month until a
-- later setting of the same type; the primary key serves that "latest at or before" lookup.
CREATE TABLE allocation_rollover (
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    allocation_type_id TEXT    NOT NULL REFERENCES allocation_types (id),
    year               INTEGER NOT NULL CHECK (year BETWEEN 2020 AND 2100),
    month              INTEGER NOT NULL CHECK (month BETWEEN 1 AND 12),
    mode               TEXT    NOT NULL CHECK (mode IN ('none', 'surplus', 'both')),
    cap                INTEGER CHECK (cap IS NULL OR cap >= 0),   -- paise; NULL = no cap
    updated_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    CHECK (mode <> 'none' OR cap IS NULL),
    PRIMARY KEY (user_id, allocation_type_id, year, month)
) STRICT;

-- The inbox. The integer id is the paging cursor (`after`), so it only grows (AUTOINCREMENT never
-- reuses a deleted id). dedupe_key makes "at most once" (a budget_alert per category and month, a
-- bill_due per occurrence) a constraint rather than a race.
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       TEXT    NOT NULL,
    payload    TEXT    NOT NULL,               -- JSON object
    dedupe_key TEXT,
    created_at TEXT    NOT NULL,               -- UTC, '2026-12-04T19:08:17Z'
    read_at    TEXT,
    UNIQUE (user_id, dedupe_key)
) STRICT;

-- GET /notifications pages by (user_id, id); the unread count and "mark all" use the partial index.
CREATE INDEX idx_notifications_user_id ON notifications (user_id, id);
CREATE INDEX idx_notifications_user_unread ON notifications (user_id) WHERE read_at IS NULL;
-- the daily 90-day sweep
CREATE INDEX idx_notifications_created ON notifications (created_at);
