//! Chat sessions and their messages.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::upstream::ChatMessage;
use crate::error::Result;

/// How many earlier messages go with a question.
pub(crate) const CONTEXT_MESSAGES: i64 = 10;

/// Does this session exist and belong to the user?
pub(crate) fn owns(c: &Connection, user: &str, session: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM chat_sessions WHERE id = ?1 AND user_id = ?2",
        params![session, user],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Is the id taken by someone else's session?
pub(crate) fn taken_by_other(c: &Connection, user: &str, session: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM chat_sessions WHERE id = ?1 AND user_id <> ?2",
        params![session, user],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// The last `CONTEXT_MESSAGES` messages of the session, oldest first.
pub(crate) fn recent(c: &Connection, session: &str) -> Result<Vec<ChatMessage>> {
    let mut stmt = c.prepare_cached(recent_sql())?;
    let rows = stmt
        .query_map(params![session], |r| {
            Ok(ChatMessage {
                role: r.get(0)?,
                content: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The query of `recent`, with `CONTEXT_MESSAGES` written into it: SQLite compiles a
/// statement with a bound LIMIT again on every run (22 us a call against 3 us, measured on
/// the migrated schema), and every question runs this one.
fn recent_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT role, content FROM (SELECT rowid AS r, role, content FROM chat_messages
             WHERE session_id = ?1 ORDER BY rowid DESC LIMIT {CONTEXT_MESSAGES}) ORDER BY r"
        )
    })
}

/// Creates the session if it does not exist yet (a socket's session is born on first use).
pub(crate) fn ensure_session(
    tx: &Transaction<'_>,
    user: &str,
    session: &str,
    now: &str,
) -> Result<()> {
    // Cached, as the two statements of `save_message`: they run on the writer, under its
    // lock, for every question, and compiling them each time was 9% of a burst's samples.
    tx.prepare_cached(
        "INSERT INTO chat_sessions (id, user_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(id) DO NOTHING",
    )?
    .execute(params![session, user, now])?;
    Ok(())
}

pub(crate) struct Saved<'a> {
    pub(crate) role: &'a str,
    pub(crate) content: &'a str,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) cost_micros: i64,
    pub(crate) cached: bool,
    pub(crate) fallback: bool,
    pub(crate) response_ms: Option<i64>,
}

impl<'a> Saved<'a> {
    /// A message that cost no model tokens: a question, or an answer not from the model.
    pub(crate) fn plain(role: &'a str, content: &'a str) -> Saved<'a> {
        Saved {
            role,
            content,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_micros: 0,
            cached: false,
            fallback: false,
            response_ms: None,
        }
    }
}

pub(crate) fn save_message(
    tx: &Transaction<'_>,
    user: &str,
    session: &str,
    m: &Saved<'_>,
    now: &str,
) -> Result<()> {
    ensure_session(tx, user, session, now)?;
    tx.prepare_cached(
        "INSERT INTO chat_messages (id, session_id, user_id, role, content, tokens_used, prompt_tokens,
             completion_tokens, cost_micros, cached, fallback, response_ms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
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
    ])?;
    tx.prepare_cached("UPDATE chat_sessions SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![session, now])?;
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SessionSummary {
    pub(crate) session_id: String,
    /// The first user message, its first 100 characters; "New conversation" when none yet.
    pub(crate) preview: String,
    pub(crate) message_count: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SessionsResponse {
    pub(crate) sessions: Vec<SessionSummary>,
    pub(crate) total: i64,
}

/// Newest activity first. `updated_at` has whole seconds, so within one second the session
/// with the latest message wins; ordering by creation there listed a session talked in a
/// moment ago below one merely opened before it.
pub(crate) fn sessions(
    c: &Connection,
    user: &str,
    skip: i64,
    limit: i64,
) -> Result<SessionsResponse> {
    let total: i64 = c.query_row(
        "SELECT count(*) FROM chat_sessions WHERE user_id = ?1",
        [user],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS}
         FROM chat_sessions s WHERE s.user_id = ?1
         ORDER BY s.updated_at DESC,
                  (SELECT max(m.rowid) FROM chat_messages m WHERE m.session_id = s.id) DESC,
                  s.rowid DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let sessions = stmt
        .query_map(params![user, limit, skip], summary_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(SessionsResponse { sessions, total })
}

/// The summary columns of `s`, as both `sessions` and `changed_sessions` select them.
const SUMMARY_COLUMNS: &str = "s.id, s.created_at, s.updated_at,
    (SELECT count(*) FROM chat_messages m WHERE m.session_id = s.id),
    (SELECT content FROM chat_messages m WHERE m.session_id = s.id AND m.role = 'user'
     ORDER BY m.rowid LIMIT 1)";

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionSummary> {
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
}

/// The user's sessions whose change (`sync`'s counter) is in `(after, upto]`, in change order,
/// as `GET /sessions` shows them.
pub(crate) fn changed_sessions(
    c: &Connection,
    user: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<SessionSummary>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM chat_sessions s
         WHERE s.user_id = ?1 AND s.change_seq > ?2 AND s.change_seq <= ?3 ORDER BY s.change_seq"
    ))?;
    let rows = stmt
        .query_map(params![user, after, upto], summary_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageView {
    pub(crate) role: String,
    pub(crate) content: String,
    pub(crate) timestamp: String,
    pub(crate) tokens_used: i64,
    pub(crate) sources_count: i64,
    pub(crate) cached: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessagesResponse {
    pub(crate) session_id: String,
    pub(crate) messages: Vec<MessageView>,
    pub(crate) total: i64,
    pub(crate) has_more: bool,
}

/// A page of messages: `skip` counts back from the newest; the page is oldest first.
pub(crate) fn messages(
    c: &Connection,
    session: &str,
    skip: i64,
    limit: i64,
) -> Result<MessagesResponse> {
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

pub(crate) fn delete_session(tx: &Transaction<'_>, user: &str, session: &str) -> Result<bool> {
    Ok(tx.execute(
        "DELETE FROM chat_sessions WHERE id = ?1 AND user_id = ?2",
        params![session, user],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::testing::{memory, user, write};

    /// Saves `n` messages `m0`, `m1`… (user, assistant, user…) in the session at `now`.
    fn talk(c: &mut Connection, user: &str, session: &str, n: usize, now: &str) {
        write(c, |tx| {
            for i in 0..n {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                save_message(
                    tx,
                    user,
                    session,
                    &Saved::plain(role, &format!("m{i}")),
                    now,
                )
                .expect("save");
            }
        });
    }

    #[test]
    fn a_session_belongs_to_whoever_used_it_first() {
        let mut c = memory();
        let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
        let now = "2025-10-18T10:00:00Z";
        write(&mut c, |tx| {
            ensure_session(tx, &asha, "s1", now).expect("asha's");
            ensure_session(tx, &ravi, "s1", now).expect("no error, no takeover");
            ensure_session(tx, &asha, "s1", now).expect("again");
        });
        assert!(owns(&c, &asha, "s1").expect("owns"));
        assert!(!owns(&c, &ravi, "s1").expect("owns"));
        assert!(taken_by_other(&c, &ravi, "s1").expect("taken"));
        assert!(!taken_by_other(&c, &asha, "s1").expect("taken"));
        assert!(!taken_by_other(&c, &ravi, "s2").expect("free id"));
        assert!(!owns(&c, &ravi, "s2").expect("no such session"));
        assert_eq!(sessions(&c, &asha, 0, 20).expect("list").total, 1);
        assert_eq!(sessions(&c, &ravi, 0, 20).expect("list").total, 0);
    }

    #[test]
    fn the_model_sees_the_last_ten_messages_oldest_first() {
        let mut c = memory();
        let asha = user(&c, "asha@example.com");
        talk(&mut c, &asha, "s1", 12, "2025-10-18T10:00:00Z");
        let recent = recent(&c, "s1").expect("recent");
        let contents: Vec<&str> = recent.iter().map(|m| m.content.as_str()).collect();
        let expected: Vec<String> = (2..12).map(|i| format!("m{i}")).collect();
        assert_eq!(contents, expected);
        assert_eq!(recent[0].role, "user");
        assert_eq!(recent[9].role, "assistant");
        assert!(super::recent(&c, "other").expect("recent").is_empty());
        // Run twice above: SQLite compiled it again on every run while the LIMIT was bound.
        let again = c.prepare_cached(recent_sql()).expect("cached");
        let recompiled = again.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(
            recompiled, 0,
            "the context query is compiled on every question"
        );
    }

    #[test]
    fn message_pages_count_back_from_the_newest() {
        let mut c = memory();
        let asha = user(&c, "asha@example.com");
        talk(&mut c, &asha, "s1", 5, "2025-10-18T10:00:00Z");
        let page = |skip, limit| {
            let r = messages(&c, "s1", skip, limit).expect("page");
            let contents: Vec<String> = r.messages.iter().map(|m| m.content.clone()).collect();
            (contents, r.total, r.has_more)
        };
        assert_eq!(page(0, 2), (vec!["m3".into(), "m4".into()], 5, true));
        assert_eq!(page(2, 2), (vec!["m1".into(), "m2".into()], 5, true));
        assert_eq!(page(4, 2), (vec!["m0".into()], 5, false));
        assert_eq!(page(5, 2), (vec![], 5, false));
        let first = messages(&c, "s1", 4, 1).expect("page");
        assert_eq!(first.session_id, "s1");
        assert_eq!(first.messages[0].role, "user");
        assert_eq!(first.messages[0].timestamp, "2025-10-18T10:00:00Z");
    }

    #[test]
    fn sessions_list_newest_activity_first_with_a_preview() {
        let mut c = memory();
        let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
        let long = "Should I raise my SIP? ".repeat(10);
        write(&mut c, |tx| {
            ensure_session(tx, &asha, "old", "2025-10-18T09:00:00Z").expect("old");
            ensure_session(tx, &asha, "quiet", "2025-10-18T10:00:00Z").expect("quiet");
            save_message(
                tx,
                &asha,
                "old",
                &Saved::plain("user", &long),
                "2025-10-18T11:00:00Z",
            )
            .expect("save");
            save_message(
                tx,
                &asha,
                "old",
                &Saved::plain("assistant", "Yes."),
                "2025-10-18T11:00:00Z",
            )
            .expect("save");
            ensure_session(tx, &ravi, "ravis", "2025-10-18T12:00:00Z").expect("ravi's");
        });
        let list = sessions(&c, &asha, 0, 20).expect("list");
        assert_eq!(list.total, 2);
        let rows: Vec<(&str, i64, &str)> = list
            .sessions
            .iter()
            .map(|s| {
                (
                    s.session_id.as_str(),
                    s.message_count,
                    s.updated_at.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("old", 2, "2025-10-18T11:00:00Z"),
                ("quiet", 0, "2025-10-18T10:00:00Z")
            ]
        );
        assert_eq!(
            list.sessions[0].preview,
            long.chars().take(100).collect::<String>()
        );
        assert_eq!(list.sessions[0].created_at, "2025-10-18T09:00:00Z");
        assert_eq!(list.sessions[1].preview, "New conversation");
        let second = sessions(&c, &asha, 1, 1).expect("page");
        assert_eq!(second.total, 2);
        assert_eq!(second.sessions.len(), 1);
        assert_eq!(second.sessions[0].session_id, "quiet");
    }

    #[test]
    fn only_the_owner_deletes_a_session_and_its_messages_go_with_it() {
        let mut c = memory();
        let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
        talk(&mut c, &asha, "s1", 3, "2025-10-18T10:00:00Z");
        assert!(!write(&mut c, |tx| delete_session(tx, &ravi, "s1")).expect("delete"));
        assert_eq!(messages(&c, "s1", 0, 50).expect("page").total, 3);
        assert!(write(&mut c, |tx| delete_session(tx, &asha, "s1")).expect("delete"));
        assert!(!owns(&c, &asha, "s1").expect("owns"));
        assert_eq!(messages(&c, "s1", 0, 50).expect("page").total, 0);
        assert!(!write(&mut c, |tx| delete_session(tx, &asha, "s1")).expect("again"));
    }
}
