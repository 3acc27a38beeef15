//! Cost limits: a per-user daily token quota (`CHAT_DAILY_TOKEN_LIMIT`, 0 = none) and a global
//! daily cap, counted in `llm_usage_daily` per UTC day.

use rusqlite::{Connection, Transaction, params};

use super::upstream::Usage;
use crate::config::Config;
use crate::error::Result;

/// Refused: which limit, and when it resets (the next UTC midnight).
#[derive(Debug, PartialEq, Eq)]
pub struct OverQuota {
    pub scope: &'static str,
    pub resets_at: String,
}

/// The UTC day `now` falls in, as the table keys it.
fn day(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%d").to_string()
}

fn next_midnight(now: jiff::Timestamp) -> String {
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let next = day.tomorrow().unwrap_or(day);
    format!("{}T00:00:00Z", next)
}

/// Is the user, or the whole service, at its token limit for the day of `now`?
pub fn check(
    c: &Connection,
    config: &Config,
    user: &str,
    now: jiff::Timestamp,
) -> Result<Option<OverQuota>> {
    let day = day(now);
    let limit = config.chat_daily_token_limit;
    if limit > 0 {
        let used: i64 = c.query_row(
            "SELECT coalesce(sum(tokens), 0) FROM llm_usage_daily WHERE day = ?1 AND user_id = ?2",
            params![day, user],
            |r| r.get(0),
        )?;
        if used as u64 >= limit {
            return Ok(Some(OverQuota {
                scope: "user",
                resets_at: next_midnight(now),
            }));
        }
    }
    let global = config.chat_global_daily_token_limit;
    if global > 0 {
        let used: i64 = c.query_row(
            "SELECT coalesce(sum(tokens), 0) FROM llm_usage_daily WHERE day = ?1",
            [&day],
            |r| r.get(0),
        )?;
        if used as u64 >= global {
            return Ok(Some(OverQuota {
                scope: "global",
                resets_at: next_midnight(now),
            }));
        }
    }
    Ok(None)
}

/// Estimated cost in millionths of a dollar, from the configured prices per million tokens.
pub fn cost_micros(config: &Config, u: Usage) -> i64 {
    (u.prompt_tokens as f64 * config.openai_price_prompt_per_mtok
        + u.completion_tokens as f64 * config.openai_price_completion_per_mtok)
        .round() as i64
}

/// Adds one answer's tokens and cost to the user's row for the day of `now`; returns the cost.
pub fn record(
    tx: &Transaction<'_>,
    config: &Config,
    user: &str,
    u: Usage,
    now: jiff::Timestamp,
) -> Result<i64> {
    let cost = cost_micros(config, u);
    tx.execute(
        "INSERT INTO llm_usage_daily (day, user_id, tokens, cost_micros, requests) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT(day, user_id) DO UPDATE SET tokens = tokens + excluded.tokens,
             cost_micros = cost_micros + excluded.cost_micros, requests = requests + 1",
        params![day(now), user, (u.prompt_tokens + u.completion_tokens) as i64, cost],
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
