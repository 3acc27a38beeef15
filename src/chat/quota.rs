//! Cost limits: a per-user daily token quota (`CHAT_DAILY_TOKEN_LIMIT`, 0 = none) and a global
//! daily cap, counted in `llm_usage_daily` per UTC day.

use rusqlite::{Connection, Transaction, params};

use super::upstream::Usage;
use crate::app::App;
use crate::error::Result;

/// Refused: which limit, and when it resets (the next UTC midnight).
#[derive(Debug, PartialEq, Eq)]
pub struct OverQuota {
    pub scope: &'static str,
    pub resets_at: String,
}

pub fn today(app: &App) -> String {
    app.clock.now().strftime("%Y-%m-%d").to_string()
}

fn next_midnight(app: &App) -> String {
    let now = app.clock.now();
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let next = day.tomorrow().unwrap_or(day);
    format!("{}T00:00:00Z", next)
}

pub fn check(app: &App, c: &Connection, user: &str) -> Result<Option<OverQuota>> {
    let day = today(app);
    let limit = app.config.chat.daily_token_limit;
    if limit > 0 {
        let used: i64 = c.query_row(
            "SELECT coalesce(sum(tokens), 0) FROM llm_usage_daily WHERE day = ?1 AND user_id = ?2",
            params![day, user],
            |r| r.get(0),
        )?;
        if used as u64 >= limit {
            return Ok(Some(OverQuota {
                scope: "user",
                resets_at: next_midnight(app),
            }));
        }
    }
    let global = app.config.chat.global_daily_token_limit;
    if global > 0 {
        let used: i64 = c.query_row(
            "SELECT coalesce(sum(tokens), 0) FROM llm_usage_daily WHERE day = ?1",
            [&day],
            |r| r.get(0),
        )?;
        if used as u64 >= global {
            return Ok(Some(OverQuota {
                scope: "global",
                resets_at: next_midnight(app),
            }));
        }
    }
    Ok(None)
}

/// Estimated cost in millionths of a dollar, from the configured prices per million tokens.
pub fn cost_micros(app: &App, u: Usage) -> i64 {
    let c = &app.config;
    (u.prompt_tokens as f64 * c.llm.price_prompt_per_mtok
        + u.completion_tokens as f64 * c.llm.price_completion_per_mtok)
        .round() as i64
}

pub fn record(app: &App, tx: &Transaction<'_>, user: &str, u: Usage) -> Result<i64> {
    let cost = cost_micros(app, u);
    tx.execute(
        "INSERT INTO llm_usage_daily (day, user_id, tokens, cost_micros, requests) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT(day, user_id) DO UPDATE SET tokens = tokens + excluded.tokens,
             cost_micros = cost_micros + excluded.cost_micros, requests = requests + 1",
        params![today(app), user, (u.prompt_tokens + u.completion_tokens) as i64, cost],
    )?;
    Ok(cost)
}

/// When the upstream reports no usage: about four characters per token.
pub fn estimate(prompt_chars: usize, answer_chars: usize) -> Usage {
    Usage {
        prompt_tokens: prompt_chars.div_ceil(4) as u64,
        completion_tokens: answer_chars.div_ceil(4) as u64,
    }
}
