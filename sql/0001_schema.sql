-- Wealth Coach AI: base schema.
--
-- Conventions (see shared/API.md):
--   * money is INTEGER minor units (paise); no REAL column ever holds money;
--   * TEXT timestamps are ISO-8601 UTC ending in 'Z'; the columns of the auth/rate-limit
--     tables marked "unix" are INTEGER seconds, because they only feed window arithmetic;
--   * every row owned by a user cascades from users(id), so DELETE FROM users is the whole
--     account deletion (rate-limit rows keyed by number or IP are not personal data of an
--     account and expire on their own);
--   * booleans are INTEGER 0/1.
-- The migration runner wraps this file in a transaction and turns foreign keys on.

-- ---------------------------------------------------------------------------------------------
-- Accounts
-- ---------------------------------------------------------------------------------------------

CREATE TABLE users (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- canonical E.164, used for lookups and uniqueness
    mobile_number   TEXT    UNIQUE,
    -- the number as typed at registration; the contract echoes this form back
    mobile_display  TEXT,
    -- NOCASE makes the UNIQUE index case-insensitive, so "A@x.com" and "a@x.com" collide
    email           TEXT    COLLATE NOCASE UNIQUE,
    email_verified  INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    password_hash   TEXT    NOT NULL,
    full_name       TEXT    NOT NULL,
    is_active       INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    -- copied into access tokens; bumping it invalidates every token issued before
    token_version   INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_seen_at    TEXT,
    CHECK (mobile_number IS NOT NULL OR email IS NOT NULL)
) STRICT;

-- /stats counts users active today / this week
CREATE INDEX idx_users_last_seen_at ON users (last_seen_at);

CREATE TABLE user_profiles (
    user_id               TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    age_range             TEXT,
    occupation            TEXT,
    income_range          TEXT,
    financial_goals       TEXT,
    investment_experience TEXT,
    -- stored as sent: both the app's low/medium/high and the web's conservative/moderate/aggressive
    risk_tolerance        TEXT,
    current_investments   TEXT,
    debt_status           TEXT,
    retirement_planning   INTEGER NOT NULL DEFAULT 0 CHECK (retirement_planning IN (0, 1)),
    interests             TEXT,
    onboarding_completed  INTEGER NOT NULL DEFAULT 0 CHECK (onboarding_completed IN (0, 1)),
    completed_at          TEXT,
    created_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

CREATE TABLE user_preferences (
    user_id     TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    use_rag     INTEGER NOT NULL DEFAULT 1 CHECK (use_rag IN (0, 1)),
    theme       TEXT    NOT NULL DEFAULT 'light' CHECK (theme IN ('light', 'dark')),
    language    TEXT    NOT NULL DEFAULT 'en',
    currency    TEXT    NOT NULL DEFAULT 'INR',
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

-- ---------------------------------------------------------------------------------------------
-- OTP and login throttling (not owned by a user: a number may not be registered yet)
-- ---------------------------------------------------------------------------------------------

-- Keyed by number so a new send-otp replaces the live code (INSERT ... ON CONFLICT DO UPDATE).
-- Wrong tries are counted per number in otp_failures, not here, so a resend cannot reset them.
CREATE TABLE otp_codes (
    mobile_number TEXT    NOT NULL PRIMARY KEY,
    code_hash     TEXT    NOT NULL,            -- hex HMAC of the code; the code itself is never stored
    created_at    INTEGER NOT NULL,            -- unix
    expires_at    INTEGER NOT NULL             -- unix
) STRICT;

-- One row per SMS actually handed to the gateway; feeds the per-number, per-IP and global caps.
CREATE TABLE otp_sends (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    mobile_number TEXT    NOT NULL,
    client_ip     TEXT    NOT NULL,
    sent_at       INTEGER NOT NULL             -- unix
) STRICT;

CREATE INDEX idx_otp_sends_number_time ON otp_sends (mobile_number, sent_at);
CREATE INDEX idx_otp_sends_ip_time     ON otp_sends (client_ip, sent_at);
-- the global SMS_DAILY_LIMIT count and the purge of old rows
CREATE INDEX idx_otp_sends_time        ON otp_sends (sent_at);

CREATE TABLE otp_failures (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    mobile_number TEXT    NOT NULL,
    failed_at     INTEGER NOT NULL             -- unix
) STRICT;

CREATE INDEX idx_otp_failures_number_time ON otp_failures (mobile_number, failed_at);

-- A successful verify-otp lets /register use the number for a short while; register consumes it.
CREATE TABLE verified_numbers (
    mobile_number TEXT    NOT NULL PRIMARY KEY,
    verified_at   INTEGER NOT NULL,            -- unix
    expires_at    INTEGER NOT NULL             -- unix
) STRICT;

-- identifier is the normalised login name (E.164 number or email), recorded whether or not such
-- a user exists, so the lockout does not reveal which accounts exist.
CREATE TABLE login_failures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    identifier  TEXT    NOT NULL,
    client_ip   TEXT    NOT NULL,
    failed_at   INTEGER NOT NULL               -- unix
) STRICT;

CREATE INDEX idx_login_failures_ident_ip_time ON login_failures (identifier, client_ip, failed_at);
CREATE INDEX idx_login_failures_ident_time    ON login_failures (identifier, failed_at);

-- ---------------------------------------------------------------------------------------------
-- Refresh tokens (stored hashed, rotated on use, revoked per family on reuse: RFC 9700)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE refresh_tokens (
    id             TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- every token descended from one login shares the family; reuse revokes the family
    family_id      TEXT    NOT NULL,
    token_hash     TEXT    NOT NULL UNIQUE,
    -- parent_id / replaced_by link the rotation chain; deliberately not foreign keys so expired
    -- rows can be purged in any order
    parent_id      TEXT,
    issued_at      INTEGER NOT NULL,           -- unix
    expires_at     INTEGER NOT NULL,           -- unix
    rotated_at     INTEGER,                    -- unix; start of the 30 s reuse grace
    replaced_by    TEXT,
    revoked_at     INTEGER,                    -- unix
    revoked_reason TEXT
) STRICT;

CREATE INDEX idx_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX idx_refresh_tokens_user   ON refresh_tokens (user_id);

-- ---------------------------------------------------------------------------------------------
-- Allocation catalogue (shared by all users; seeded by 0002_catalog.sql)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE allocation_categories (
    id                   TEXT    NOT NULL PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    label                TEXT    NOT NULL,
    icon                 TEXT    NOT NULL,
    icon_color           TEXT    NOT NULL,
    description          TEXT    NOT NULL,
    -- basis points (10.0 % = 1000) so the percentage stays an exact integer
    target_percentage_bp INTEGER NOT NULL CHECK (target_percentage_bp BETWEEN 0 AND 10000),
    sort_order           INTEGER NOT NULL
) STRICT;

CREATE TABLE allocation_types (
    id          TEXT    NOT NULL PRIMARY KEY,
    category_id TEXT    NOT NULL REFERENCES allocation_categories (id),
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    sort_order  INTEGER NOT NULL,
    UNIQUE (category_id, name)
) STRICT;

-- ---------------------------------------------------------------------------------------------
-- Budgets and transactions
-- ---------------------------------------------------------------------------------------------

-- allocation_type_id has no ON DELETE action on purpose: a catalogue row in use cannot vanish.
CREATE TABLE user_allocations (
    id                 TEXT    NOT NULL PRIMARY KEY,
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    allocation_type_id TEXT    NOT NULL REFERENCES allocation_types (id),
    year               INTEGER NOT NULL,
    month              INTEGER NOT NULL CHECK (month BETWEEN 1 AND 12),
    budget_amount      INTEGER NOT NULL DEFAULT 0 CHECK (budget_amount >= 0),
    actual_amount      INTEGER NOT NULL DEFAULT 0 CHECK (actual_amount >= 0),
    notes              TEXT,
    created_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    -- the upsert target of /allocations/budget and /allocations/actual; its leading
    -- (user_id, year, month) also serves the per-month summary and history reads
    UNIQUE (user_id, year, month, allocation_type_id)
) STRICT;

-- Running per-month totals, kept in step with transactions inside the same database
-- transaction as every write to them (the contract's invariant).
CREATE TABLE monthly_budgets (
    user_id           TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    year              INTEGER NOT NULL,
    month             INTEGER NOT NULL CHECK (month BETWEEN 1 AND 12),
    -- transaction amounts are > 0, so a negative total can only mean a bookkeeping bug
    total_income      INTEGER NOT NULL DEFAULT 0 CHECK (total_income >= 0),
    total_expense     INTEGER NOT NULL DEFAULT 0 CHECK (total_expense >= 0),
    transaction_count INTEGER NOT NULL DEFAULT 0 CHECK (transaction_count >= 0),
    updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (user_id, year, month)
) STRICT;

CREATE TABLE transactions (
    id               TEXT    NOT NULL PRIMARY KEY,
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type             TEXT    NOT NULL CHECK (type IN ('income', 'expense')),
    category         TEXT    NOT NULL,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    label            TEXT    NOT NULL,
    transaction_date TEXT    NOT NULL,          -- UTC, e.g. '2025-10-18T00:00:00Z'
    -- year/month are the date's month in APP_TIMEZONE, which can differ from the UTC date's,
    -- so they are stored rather than derived from transaction_date
    year             INTEGER NOT NULL,
    month            INTEGER NOT NULL CHECK (month BETWEEN 1 AND 12),
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

-- GET /transactions: one user's month, newest transaction_date first
CREATE INDEX idx_transactions_user_month_date
    ON transactions (user_id, year, month, transaction_date DESC);

-- Idempotency-Key replay store. response_status/response_body stay NULL while the first request
-- is still running, which is how a concurrent replay knows to wait.
CREATE TABLE idempotency_keys (
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    response_status INTEGER,
    response_body   BLOB,                       -- replayed byte for byte
    created_at      INTEGER NOT NULL,           -- unix
    PRIMARY KEY (user_id, idempotency_key)
) STRICT;

-- purge of keys older than 24 h
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);

-- ---------------------------------------------------------------------------------------------
-- Chat
-- ---------------------------------------------------------------------------------------------

CREATE TABLE chat_sessions (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

-- GET /chat/sessions: newest first
CREATE INDEX idx_chat_sessions_user_updated ON chat_sessions (user_id, updated_at DESC);
-- /stats: conversations started today
CREATE INDEX idx_chat_sessions_created ON chat_sessions (created_at);

-- user_id is repeated here (it is implied by the session) so per-user usage, export and
-- /stats need no join.
CREATE TABLE chat_messages (
    id                TEXT    NOT NULL PRIMARY KEY,
    session_id        TEXT    NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    user_id           TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role              TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content           TEXT    NOT NULL,
    tokens_used       INTEGER NOT NULL DEFAULT 0,   -- prompt_tokens + completion_tokens
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros       INTEGER NOT NULL DEFAULT 0,   -- estimated cost, millionths of a USD
    sources_count     INTEGER NOT NULL DEFAULT 0,
    cached            INTEGER NOT NULL DEFAULT 0 CHECK (cached IN (0, 1)),
    fallback          INTEGER NOT NULL DEFAULT 0 CHECK (fallback IN (0, 1)),
    response_ms       INTEGER,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) STRICT;

-- a session's history (last 10 for context, paged transcript, preview, message_count)
CREATE INDEX idx_chat_messages_session_created ON chat_messages (session_id, created_at);
CREATE INDEX idx_chat_messages_user_created    ON chat_messages (user_id, created_at);
-- /stats: queries today and their average response time, across all users
CREATE INDEX idx_chat_messages_created         ON chat_messages (created_at);

-- Per-user, per-UTC-day LLM usage for CHAT_DAILY_TOKEN_LIMIT; the leading `day` also serves the
-- global daily cap (SUM over one day).
CREATE TABLE llm_usage_daily (
    day         TEXT    NOT NULL,               -- 'YYYY-MM-DD', UTC
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tokens      INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    requests    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id)
) STRICT;

-- user_id is not the leading key column above; without this the cascade on user deletion and
-- the export would scan the whole table
CREATE INDEX idx_llm_usage_daily_user ON llm_usage_daily (user_id);
