//! What other modules may know of the chat tables (`chat_sessions`, `chat_messages`,
//! `llm_usage_daily`): the operator's counts and a user's export. Only `chat/` runs SQL on them.

use rusqlite::Connection;
use serde_json::Value;

use crate::db::user_rows;
use crate::error::Result;

/// Counts over every user, for `/api/v1/stats`.
pub(crate) struct Totals {
    pub(crate) sessions: i64,
    pub(crate) sessions_today: i64,
    /// Messages per session, rounded to two places.
    pub(crate) average_length: f64,
    pub(crate) questions: i64,
    pub(crate) questions_today: i64,
    /// Milliseconds, rounded to two places.
    pub(crate) average_response_ms: f64,
    pub(crate) tokens_today: i64,
    pub(crate) cost_micros_today: i64,
    pub(crate) cost_micros_month: i64,
}

/// `day_start` is today's first instant (`YYYY-MM-DDT00:00:00Z`), `today` its date and
/// `month` its `YYYY-MM`, all UTC as the usage table keeps them.
pub(crate) fn totals(c: &Connection, day_start: &str, today: &str, month: &str) -> Result<Totals> {
    let one = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<i64> {
        c.query_row(sql, p, |r| r.get::<_, Option<i64>>(0))
            .map(|v| v.unwrap_or(0))
    };
    let avg = |sql: &str| -> rusqlite::Result<f64> {
        c.query_row(sql, [], |r| r.get::<_, Option<f64>>(0))
            .map(|v| (v.unwrap_or(0.0) * 100.0).round() / 100.0)
    };
    Ok(Totals {
        sessions: one("SELECT count(*) FROM chat_sessions", &[])?,
        sessions_today: one(
            "SELECT count(*) FROM chat_sessions WHERE created_at >= ?1",
            &[&day_start],
        )?,
        average_length: avg(
            "SELECT avg(n) FROM (SELECT count(*) AS n FROM chat_messages GROUP BY session_id)",
        )?,
        questions: one(
            "SELECT count(*) FROM chat_messages WHERE role = 'user'",
            &[],
        )?,
        questions_today: one(
            "SELECT count(*) FROM chat_messages WHERE role = 'user' AND created_at >= ?1",
            &[&day_start],
        )?,
        average_response_ms: avg("SELECT avg(response_ms) FROM chat_messages
             WHERE role = 'assistant' AND response_ms IS NOT NULL")?,
        tokens_today: one(
            "SELECT sum(tokens) FROM llm_usage_daily WHERE day = ?1",
            &[&today],
        )?,
        cost_micros_today: one(
            "SELECT sum(cost_micros) FROM llm_usage_daily WHERE day = ?1",
            &[&today],
        )?,
        cost_micros_month: one(
            "SELECT sum(cost_micros) FROM llm_usage_daily WHERE substr(day, 1, 7) = ?1",
            &[&month],
        )?,
    })
}

/// The user's rows in the chat tables, for `/users/me/export`.
pub(crate) fn export(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
    [
        "chat_sessions",
        "chat_messages",
        "chat_tool_calls",
        "llm_usage_daily",
    ]
    .into_iter()
    .map(|t| Ok((t, user_rows(c, t, "user_id", user, &[])?)))
    .collect()
}
