-- Issue 16: sync for offline clients. The change tracking lives in the database, as triggers,
-- so every write path advances a user's counter by construction: the routes, the recurring
-- ticker, group-committed writes, the command line, cascades.
--
-- One counter value per row change (not one per commit). A page of /sync ends after a whole
-- row, so it can never split a counter value; and with one writer, the values are handed out
-- in commit order: a reader's snapshot holds every value up to the counter it sees, never a
-- hole that a later commit fills. So "everything above my cursor" is exactly what changed
-- since it. A row changed twice keeps only its newest value, which is the state to send.
--
-- The stamping UPDATE inside a trigger changes change_seq, and every UPDATE trigger here runs
-- only WHEN NEW.change_seq IS OLD.change_seq, so stamping never fires a trigger again, whatever
-- recursive_triggers says (it is off). "Touching" a row (SET change_seq = change_seq) is how one
-- table marks a row of another as changed: a posted transaction or a skip changes the rule's
-- next_date.
--
-- Account deletion cascades to these tables and fires their DELETE triggers after the users row
-- is gone: every trigger that could write for a user checks that the user still exists, so a
-- deleted account leaves no counter and no tombstone behind (both also cascade from users).

CREATE TABLE sync_counters (
    user_id       TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- the last change_seq handed out to this user
    seq           INTEGER NOT NULL DEFAULT 0,
    -- the newest change_seq among this user's swept tombstones: a cursor below it may have
    -- missed a deletion (410 cursor_expired)
    expired_below INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE sync_tombstones (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    change_seq INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('transactions', 'allocations', 'recurring', 'chat_sessions')),
    row_id     TEXT    NOT NULL,
    deleted_at TEXT    NOT NULL,                -- UTC, kept 90 days
    PRIMARY KEY (user_id, change_seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX idx_sync_tombstones_deleted ON sync_tombstones (deleted_at);

-- One row: the epoch that cursors carry. `wealthcoach restore` writes a new one, so a cursor
-- from before a restore is refused (410 cursor_reset) instead of silently skipping.
CREATE TABLE sync_meta (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL
) STRICT;

INSERT INTO sync_meta (id, epoch) VALUES (1, lower(hex(randomblob(8))));

ALTER TABLE transactions ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
-- grows with every change of the row (If-Match)
ALTER TABLE transactions ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE user_allocations ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recurring ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_sessions ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_profiles ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_preferences ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;

-- Rows that exist already get distinct values per user, as if written one by one.
CREATE TEMP TABLE sync_backfill AS
SELECT kind, id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY kind, id) AS seq
FROM (
    SELECT 'transactions' AS kind, id, user_id FROM transactions
    UNION ALL SELECT 'allocations', id, user_id FROM user_allocations
    UNION ALL SELECT 'recurring', id, user_id FROM recurring
    UNION ALL SELECT 'chat_sessions', id, user_id FROM chat_sessions
    UNION ALL SELECT 'notifications', CAST(id AS TEXT), user_id FROM notifications
    UNION ALL SELECT 'profile', user_id, user_id FROM user_profiles
    UNION ALL SELECT 'preferences', user_id, user_id FROM user_preferences
);

UPDATE transactions SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'transactions' AND b.id = transactions.id;
UPDATE user_allocations SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'allocations' AND b.id = user_allocations.id;
UPDATE recurring SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'recurring' AND b.id = recurring.id;
UPDATE chat_sessions SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'chat_sessions' AND b.id = chat_sessions.id;
UPDATE notifications SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'notifications' AND b.id = CAST(notifications.id AS TEXT);
UPDATE user_profiles SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'profile' AND b.id = user_profiles.user_id;
UPDATE user_preferences SET change_seq = b.seq FROM temp.sync_backfill b
    WHERE b.kind = 'preferences' AND b.id = user_preferences.user_id;

INSERT INTO sync_counters (user_id, seq)
    SELECT user_id, max(seq) FROM temp.sync_backfill GROUP BY user_id;

DROP TABLE temp.sync_backfill;

-- /sync reads each kind by (user, change_seq).
CREATE INDEX idx_transactions_user_change ON transactions (user_id, change_seq);
CREATE INDEX idx_user_allocations_user_change ON user_allocations (user_id, change_seq);
CREATE INDEX idx_recurring_user_change ON recurring (user_id, change_seq);
CREATE INDEX idx_chat_sessions_user_change ON chat_sessions (user_id, change_seq);
CREATE INDEX idx_notifications_user_change ON notifications (user_id, change_seq);

-- ---------------------------------------------------------------------------------------------
-- Triggers. Each one: advance the user's counter, then stamp the row (or write a tombstone).
-- ---------------------------------------------------------------------------------------------

-- transactions
CREATE TRIGGER sync_transactions_insert AFTER INSERT ON transactions
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE transactions SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

-- Only a change of what the transaction says counts (an empty PATCH rewrites the row as it
-- was, and its version must stay).
CREATE TRIGGER sync_transactions_update AFTER UPDATE ON transactions
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
    AND (NEW.type IS NOT OLD.type OR NEW.category IS NOT OLD.category OR NEW.amount IS NOT OLD.amount
         OR NEW.label IS NOT OLD.label OR NEW.transaction_date IS NOT OLD.transaction_date
         OR NEW.year IS NOT OLD.year OR NEW.month IS NOT OLD.month
         OR NEW.allocation_type_id IS NOT OLD.allocation_type_id
         OR NEW.recurring_id IS NOT OLD.recurring_id OR NEW.occurrence_date IS NOT OLD.occurrence_date)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE transactions SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id),
                            version = version + 1
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_transactions_delete AFTER DELETE ON transactions
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO sync_tombstones (user_id, change_seq, kind, row_id, deleted_at)
        VALUES (OLD.user_id, (SELECT seq FROM sync_counters WHERE user_id = OLD.user_id),
                'transactions', OLD.id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
END;

-- A posted occurrence (or its removal) moves its rule's next_date: touch the rule.
CREATE TRIGGER sync_posted_insert AFTER INSERT ON transactions
WHEN NEW.recurring_id IS NOT NULL
BEGIN
    UPDATE recurring SET change_seq = change_seq WHERE id = NEW.recurring_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER sync_posted_update AFTER UPDATE OF recurring_id, occurrence_date ON transactions
WHEN NEW.recurring_id IS NOT OLD.recurring_id OR NEW.occurrence_date IS NOT OLD.occurrence_date
BEGIN
    UPDATE recurring SET change_seq = change_seq
        WHERE id IN (OLD.recurring_id, NEW.recurring_id) AND user_id = NEW.user_id;
END;

CREATE TRIGGER sync_posted_delete AFTER DELETE ON transactions
WHEN OLD.recurring_id IS NOT NULL AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    UPDATE recurring SET change_seq = change_seq WHERE id = OLD.recurring_id AND user_id = OLD.user_id;
END;

-- user_allocations (kind "allocations")
CREATE TRIGGER sync_allocations_insert AFTER INSERT ON user_allocations
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE user_allocations SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_allocations_update AFTER UPDATE ON user_allocations
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE user_allocations SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_allocations_delete AFTER DELETE ON user_allocations
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO sync_tombstones (user_id, change_seq, kind, row_id, deleted_at)
        VALUES (OLD.user_id, (SELECT seq FROM sync_counters WHERE user_id = OLD.user_id),
                'allocations', OLD.id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
END;

-- recurring
CREATE TRIGGER sync_recurring_insert AFTER INSERT ON recurring
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE recurring SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_recurring_update AFTER UPDATE ON recurring
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE recurring SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_recurring_delete AFTER DELETE ON recurring
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO sync_tombstones (user_id, change_seq, kind, row_id, deleted_at)
        VALUES (OLD.user_id, (SELECT seq FROM sync_counters WHERE user_id = OLD.user_id),
                'recurring', OLD.id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
END;

-- A skip (or its removal) moves the rule's next_date.
CREATE TRIGGER sync_skips_insert AFTER INSERT ON recurring_skips
BEGIN
    UPDATE recurring SET change_seq = change_seq WHERE id = NEW.recurring_id;
END;

CREATE TRIGGER sync_skips_delete AFTER DELETE ON recurring_skips
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    UPDATE recurring SET change_seq = change_seq WHERE id = OLD.recurring_id;
END;

-- chat_sessions (a new message updates the session's updated_at, which stamps it)
CREATE TRIGGER sync_chat_sessions_insert AFTER INSERT ON chat_sessions
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE chat_sessions SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_chat_sessions_update AFTER UPDATE ON chat_sessions
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE chat_sessions SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_chat_sessions_delete AFTER DELETE ON chat_sessions
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    INSERT INTO sync_tombstones (user_id, change_seq, kind, row_id, deleted_at)
        VALUES (OLD.user_id, (SELECT seq FROM sync_counters WHERE user_id = OLD.user_id),
                'chat_sessions', OLD.id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
END;

-- A message added to a session changes its preview and message_count.
CREATE TRIGGER sync_chat_messages_insert AFTER INSERT ON chat_messages
BEGIN
    UPDATE chat_sessions SET change_seq = change_seq WHERE id = NEW.session_id;
END;

-- notifications: no tombstones (the contract lists no deletions for them; the 90-day sweep
-- removes them on the server only)
CREATE TRIGGER sync_notifications_insert AFTER INSERT ON notifications
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE notifications SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

CREATE TRIGGER sync_notifications_update AFTER UPDATE ON notifications
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE notifications SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE id = NEW.id;
END;

-- the onboarding profile and the preferences: one row per user
CREATE TRIGGER sync_profile_insert AFTER INSERT ON user_profiles
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE user_profiles SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER sync_profile_update AFTER UPDATE ON user_profiles
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE user_profiles SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER sync_preferences_insert AFTER INSERT ON user_preferences
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE user_preferences SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER sync_preferences_update AFTER UPDATE ON user_preferences
WHEN NEW.change_seq IS OLD.change_seq AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
    UPDATE user_preferences SET change_seq = (SELECT seq FROM sync_counters WHERE user_id = NEW.user_id)
        WHERE user_id = NEW.user_id;
END;

-- Rollover settings change /allocations but are no kind of /sync: they advance the counter
-- only, so ETags change and a pull's cursor moves past them.
CREATE TRIGGER sync_rollover_insert AFTER INSERT ON allocation_rollover
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
END;

CREATE TRIGGER sync_rollover_update AFTER UPDATE ON allocation_rollover
WHEN EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
END;

CREATE TRIGGER sync_rollover_delete AFTER DELETE ON allocation_rollover
WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO sync_counters (user_id, seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1;
END;
