//! Chat sessions and their messages.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::upstream::ChatMessage;
use crate::error::Result;

/// How many earlier messages go with a question.
pub const CONTEXT_MESSAGES: i64 = 10;

/// Does this session exist and belong to the user?
pub fn owns(c: &Connection, user: &str, session: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM chat_sessions WHERE id = ?1 AND user_id = ?2",
        params![session, user],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Is the id taken by someone else's session?
pub fn taken_by_other(c: &Connection, user: &str, session: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM chat_sessions WHERE id = ?1 AND user_id <> ?2",
        params![session, user],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// The last `CONTEXT_MESSAGES` messages of the session, oldest first.
pub fn recent(c: &Connection, session: &str) -> Result<Vec<ChatMessage>> {
    let mut stmt = c.prepare_cached(
        "SELECT role, content FROM (SELECT rowid AS r, role, content FROM chat_messages
         WHERE session_id = ?1 ORDER BY rowid DESC LIMIT ?2) ORDER BY r",
    )?;
    let rows = stmt
        .query_map(params![session, CONTEXT_MESSAGES], |r| {
            Ok(ChatMessage {
                role: r.get(0)?,
                content: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Creates the session if it does not exist yet (a socket's session is born on first use).
pub fn ensure_session(tx: &Transaction<'_>, user: &str, session: &str, now: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO chat_sessions (id, user_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(id) DO NOTHING",
        params![session, user, now],
    )?;
    Ok(())
}

pub struct Saved<'a> {
    pub role: &'a str,
    pub content: &'a str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: i64,
    pub cached: bool,
    pub fallback: bool,
    pub response_ms: Option<i64>,
}

pub fn save_message(
    tx: &Transaction<'_>,
    user: &str,
    session: &str,
    m: &Saved<'_>,
    now: &str,
) -> Result<()> {
    ensure_session(tx, user, session, now)?;
    tx.execute(
        "INSERT INTO chat_messages (id, session_id, user_id, role, content, tokens_used, prompt_tokens,
             completion_tokens, cost_micros, cached, fallback, response_ms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            crate::random::uuid(),
            session,
            user,
            m.role,
            m.content,
            (m.prompt_tokens + m.completion_tokens) as i64,
            m.prompt_tokens as i64,
            m.completion_tokens as i64,
            m.cost_micros,
            m.cached,
            m.fallback,
            m.response_ms,
            now
        ],
    )?;
    tx.execute(
        "UPDATE chat_sessions SET updated_at = ?2 WHERE id = ?1",
        params![session, now],
    )?;
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    pub session_id: String,
    /// The first user message, its first 100 characters; "New conversation" when none yet.
    pub preview: String,
    pub message_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionsResponse {
    pub sessions: Vec<SessionSummary>,
    pub total: i64,
}

/// Newest activity first. `updated_at` has whole seconds, so within one second the session
/// with the latest message wins; ordering by creation there listed a session talked in a
/// moment ago below one merely opened before it.
pub fn sessions(c: &Connection, user: &str, skip: i64, limit: i64) -> Result<SessionsResponse> {
    let total: i64 = c.query_row(
        "SELECT count(*) FROM chat_sessions WHERE user_id = ?1",
        [user],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare_cached(
        "SELECT s.id, s.created_at, s.updated_at,
                (SELECT count(*) FROM chat_messages m WHERE m.session_id = s.id),
                (SELECT content FROM chat_messages m WHERE m.session_id = s.id AND m.role = 'user'
                 ORDER BY m.rowid LIMIT 1)
         FROM chat_sessions s WHERE s.user_id = ?1
         ORDER BY s.updated_at DESC,
                  (SELECT max(m.rowid) FROM chat_messages m WHERE m.session_id = s.id) DESC,
                  s.rowid DESC LIMIT ?2 OFFSET ?3",
    )?;
    let sessions = stmt
        .query_map(params![user, limit, skip], |r| {
            let first: Option<String> = r.get(4)?;
            Ok(SessionSummary {
                session_id: r.get(0)?,
                created_at: r.get(1)?,
                updated_at: r.get(2)?,
                message_count: r.get(3)?,
                preview: match first {
                    Some(t) if !t.is_empty() => t.chars().take(100).collect(),
                    _ => "New conversation".into(),
                },
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(SessionsResponse { sessions, total })
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub role: String,
    pub content: String,
    pub timestamp: String,
    pub tokens_used: i64,
    pub sources_count: i64,
    pub cached: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MessagesResponse {
    pub session_id: String,
    pub messages: Vec<MessageView>,
    pub total: i64,
    pub has_more: bool,
}

/// A page of messages: `skip` counts back from the newest; the page is oldest first.
pub fn messages(c: &Connection, session: &str, skip: i64, limit: i64) -> Result<MessagesResponse> {
    let total: i64 = c.query_row(
        "SELECT count(*) FROM chat_messages WHERE session_id = ?1",
        [session],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare_cached(
        "SELECT role, content, created_at, tokens_used, sources_count, cached FROM
           (SELECT rowid AS r, * FROM chat_messages WHERE session_id = ?1 ORDER BY rowid DESC LIMIT ?2 OFFSET ?3)
         ORDER BY r",
    )?;
    let messages = stmt
        .query_map(params![session, limit, skip], |r| {
            Ok(MessageView {
                role: r.get(0)?,
                content: r.get(1)?,
                timestamp: r.get(2)?,
                tokens_used: r.get(3)?,
                sources_count: r.get(4)?,
                cached: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = skip + (messages.len() as i64) < total;
    Ok(MessagesResponse {
        session_id: session.to_string(),
        messages,
        total,
        has_more,
    })
}

pub fn delete_session(tx: &Transaction<'_>, user: &str, session: &str) -> Result<bool> {
    Ok(tx.execute(
        "DELETE FROM chat_sessions WHERE id = ?1 AND user_id = ?2",
        params![session, user],
    )? > 0)
}
