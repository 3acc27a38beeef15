-- Issue 14: recurring transactions and bills.

CREATE TABLE recurring (
    id                 TEXT    NOT NULL PRIMARY KEY,
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type               TEXT    NOT NULL CHECK (type IN ('income', 'expense')),
    category           TEXT    NOT NULL,
    label              TEXT    NOT NULL,
    amount             INTEGER NOT NULL CHECK (amount > 0),          -- paise
    allocation_type_id TEXT    REFERENCES allocation_types (id),
    frequency          TEXT    NOT NULL CHECK (frequency IN ('weekly', 'every_other_week', 'monthly',
                                   'every_other_month', 'quarterly', 'half_yearly', 'yearly')),
    start_date         TEXT    NOT NULL,                               -- local date, YYYY-MM-DD
    end_date           TEXT,
    occurrences        INTEGER CHECK (occurrences IS NULL OR occurrences BETWEEN 1 AND 600),
    auto_post          INTEGER NOT NULL DEFAULT 0 CHECK (auto_post IN (0, 1)),
    remind_days_before INTEGER NOT NULL DEFAULT 2 CHECK (remind_days_before BETWEEN 0 AND 30),
    -- The earliest local date on which the ticker has something to do for this rule (post it or
    -- remind about it), NULL when nothing is left: a tick reads only the rules that are due,
    -- through the index below, instead of computing every rule's dates.
    next_action        TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    CHECK (end_date IS NULL OR occurrences IS NULL),
    CHECK (end_date IS NULL OR end_date >= start_date)
) STRICT;

CREATE INDEX idx_recurring_user ON recurring (user_id);
CREATE INDEX idx_recurring_next_action ON recurring (next_action) WHERE next_action IS NOT NULL;

-- Skipped occurrences. user_id is repeated so export and deletion need no join.
CREATE TABLE recurring_skips (
    recurring_id    TEXT NOT NULL REFERENCES recurring (id) ON DELETE CASCADE,
    occurrence_date TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (recurring_id, occurrence_date)
) STRICT;

CREATE INDEX idx_recurring_skips_user ON recurring_skips (user_id);

-- A posted occurrence is an ordinary transaction that names its rule and date. No foreign key:
-- deleting a rule keeps the transactions it posted, with their recurring_id.
ALTER TABLE transactions ADD COLUMN recurring_id TEXT;
ALTER TABLE transactions ADD COLUMN occurrence_date TEXT;

-- Each occurrence is posted at most once, whatever races: a second insert fails here.
CREATE UNIQUE INDEX idx_transactions_occurrence
    ON transactions (recurring_id, occurrence_date) WHERE recurring_id IS NOT NULL;
