-- Issue 15: the coach's tool calls and their results, kept apart from the conversation's
-- messages (they never show in /sessions/{id}/messages), for the user's export and for review.

CREATE TABLE chat_tool_calls (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT    NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    round      INTEGER NOT NULL CHECK (round BETWEEN 1 AND 3),
    call_id    TEXT    NOT NULL,    -- the id the model gave the call
    name       TEXT    NOT NULL,    -- as the model wrote it, possibly no tool of ours
    arguments  TEXT    NOT NULL,    -- the raw JSON text, unchecked
    result     TEXT    NOT NULL,    -- the JSON sent back, at most 8 KiB
    created_at TEXT    NOT NULL
) STRICT;

-- the cascade on user deletion and the export
CREATE INDEX idx_chat_tool_calls_user ON chat_tool_calls (user_id);
-- the cascade when a conversation is deleted
CREATE INDEX idx_chat_tool_calls_session ON chat_tool_calls (session_id);
