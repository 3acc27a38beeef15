//! Cost limits: a per-user daily token quota (`CHAT_DAILY_TOKEN_LIMIT`, 0 = none) and a global
//! daily cap, counted in `llm_usage_daily` per UTC day.

use rusqlite::{Connection, Transaction, params};

use super::upstream::Usage;
use crate::config::Config;
use crate::error::Result;

/// Refused: which limit, and when it resets (the next UTC midnight).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OverQuota {
    pub(crate) scope: &'static str,
    pub(crate) resets_at: String,
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
pub(crate) fn check(
    c: &Connection,
    config: &Config,
    user: &str,
    now: jiff::Timestamp,
) -> Result<Option<OverQuota>> {
    let day = day(now);
    let limit = config.chat.daily_token_limit;
    if limit > 0 {
        let used: i64 = c
            .prepare_cached(
                "SELECT coalesce(sum(tokens), 0) FROM llm_usage_daily \
                 WHERE day = ?1 AND user_id = ?2",
            )?
            .query_row(params![day, user], |r| r.get(0))?;
        if used as u64 >= limit {
            return Ok(Some(OverQuota {
                scope: "user",
                resets_at: next_midnight(now),
            }));
        }
    }
    let global = config.chat.global_daily_token_limit;
    if global > 0 {
        let used: i64 = c
            .prepare_cached("SELECT coalesce(sum(tokens), 0) FROM llm_usage_daily WHERE day = ?1")?
            .query_row([&day], |r| r.get(0))?;
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
pub(crate) fn cost_micros(config: &Config, u: Usage) -> i64 {
    (u.prompt_tokens as f64 * config.llm.price_prompt_per_mtok
        + u.completion_tokens as f64 * config.llm.price_completion_per_mtok)
        .round() as i64
}

/// Adds one answer's tokens and cost to the user's row for the day of `now`; returns the cost.
pub(crate) fn record(
    tx: &Transaction<'_>,
    config: &Config,
    user: &str,
    u: Usage,
    now: jiff::Timestamp,
) -> Result<i64> {
    let cost = cost_micros(config, u);
    record_cost(tx, user, u, cost, now)?;
    Ok(cost)
}

/// [`record`] with the cost already worked out (for a job that cannot borrow the config).
pub(crate) fn record_cost(
    tx: &Transaction<'_>,
    user: &str,
    u: Usage,
    cost: i64,
    now: jiff::Timestamp,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO llm_usage_daily (day, user_id, tokens, cost_micros, requests) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT(day, user_id) DO UPDATE SET tokens = tokens + excluded.tokens,
             cost_micros = cost_micros + excluded.cost_micros, requests = requests + 1",
    )?
    .execute(params![day(now), user, (u.prompt_tokens + u.completion_tokens) as i64, cost])?;
    Ok(())
}

/// When the upstream reports no usage: about four characters per token.
pub(crate) fn estimate(prompt_chars: usize, answer_chars: usize) -> Usage {
    Usage {
        prompt_tokens: prompt_chars.div_ceil(4) as u64,
        completion_tokens: answer_chars.div_ceil(4) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::testing::{at, memory, user, write};

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).expect("config")
    }

    fn tokens(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        }
    }

    #[test]
    fn a_user_is_refused_at_the_daily_limit_until_the_next_utc_day() {
        let mut c = memory();
        let cfg = config(&[("CHAT_DAILY_TOKEN_LIMIT", "100")]);
        let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
        let late = at("2025-10-18T23:59:59Z");
        write(&mut c, |tx| record(tx, &cfg, &asha, tokens(60, 39), late)).expect("record");
        assert_eq!(check(&c, &cfg, &asha, late).expect("check"), None);
        write(&mut c, |tx| record(tx, &cfg, &asha, tokens(0, 1), late)).expect("record");
        assert_eq!(
            check(&c, &cfg, &asha, late).expect("check"),
            Some(OverQuota {
                scope: "user",
                resets_at: "2025-10-19T00:00:00Z".into(),
            })
        );
        assert_eq!(check(&c, &cfg, &ravi, late).expect("check"), None);
        let next_day = at("2025-10-19T00:00:00Z");
        assert_eq!(check(&c, &cfg, &asha, next_day).expect("check"), None);
    }

    #[test]
    fn the_global_cap_counts_every_user() {
        let mut c = memory();
        let cfg = config(&[
            ("CHAT_DAILY_TOKEN_LIMIT", "0"),
            ("CHAT_GLOBAL_DAILY_TOKEN_LIMIT", "150"),
        ]);
        let (asha, ravi) = (user(&c, "asha@example.com"), user(&c, "ravi@example.com"));
        let noon = at("2025-10-18T12:00:00Z");
        write(&mut c, |tx| record(tx, &cfg, &asha, tokens(100, 0), noon)).expect("record");
        assert_eq!(check(&c, &cfg, &ravi, noon).expect("check"), None);
        write(&mut c, |tx| record(tx, &cfg, &ravi, tokens(25, 25), noon)).expect("record");
        let global = Some(OverQuota {
            scope: "global",
            resets_at: "2025-10-19T00:00:00Z".into(),
        });
        assert_eq!(check(&c, &cfg, &ravi, noon).expect("check"), global);
        let newcomer = user(&c, "new@example.com");
        assert_eq!(check(&c, &cfg, &newcomer, noon).expect("check"), global);
    }

    #[test]
    fn zero_means_no_limit() {
        let mut c = memory();
        let cfg = config(&[
            ("CHAT_DAILY_TOKEN_LIMIT", "0"),
            ("CHAT_GLOBAL_DAILY_TOKEN_LIMIT", "0"),
        ]);
        let asha = user(&c, "asha@example.com");
        let now = at("2025-10-18T12:00:00Z");
        write(&mut c, |tx| {
            record(tx, &cfg, &asha, tokens(5_000_000, 0), now)
        })
        .expect("record");
        assert_eq!(check(&c, &cfg, &asha, now).expect("check"), None);
    }

    #[test]
    fn usage_adds_up_in_one_row_per_user_and_day_with_its_cost() {
        let mut c = memory();
        let cfg = config(&[
            ("OPENAI_PRICE_PROMPT_PER_MTOK", "2.5"),
            ("OPENAI_PRICE_COMPLETION_PER_MTOK", "10"),
        ]);
        let asha = user(&c, "asha@example.com");
        let now = at("2025-10-18T12:00:00Z");
        // 1000 × 2.5 + 500 × 10 millionths of a dollar.
        assert_eq!(cost_micros(&cfg, tokens(1000, 500)), 7_500);
        let cost = write(&mut c, |tx| record(tx, &cfg, &asha, tokens(1000, 500), now));
        assert_eq!(cost.expect("record"), 7_500);
        write(&mut c, |tx| record(tx, &cfg, &asha, tokens(10, 0), now)).expect("record");
        let row: (String, i64, i64, i64) = c
            .query_row(
                "SELECT day, tokens, cost_micros, requests FROM llm_usage_daily WHERE user_id = ?1",
                [&asha],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("one row");
        assert_eq!(row, ("2025-10-18".to_string(), 1510, 7_525, 2));
    }
}
