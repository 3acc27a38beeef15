//! The ticker: a thread that, at start-up and every `RECURRING_TICK_SECONDS`, posts the due
//! occurrences of `auto_post` rules and sends `bill_due` reminders for the others.
//!
//! A tick reads only the rules whose `next_action` (a local date) is today or earlier, through
//! its partial index, so a tick with nothing due is one index probe whatever the number of
//! rules. For each such rule it posts the due occurrences oldest first, each in its own write
//! through `post::post` (so a crash loses at most the one in flight, and the unique index
//! keeps a post that races a confirm or a restarted tick to one), then, in one more write that
//! reads the rule again, sends the reminders and stores the rule's next `next_action`. Rule
//! writes set `next_action` to today, so a changed rule is looked at again at the next tick.
//! "Today" is the app clock's date in `APP_TIMEZONE` (tests move that clock).

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::ToSpan;
use jiff::civil::Date;
use rusqlite::Transaction;
use serde_json::json;

use super::post::{self, Place};
use super::rules::{self, Stored};
use crate::app::App;
use crate::error::{Error, Result};
use crate::notify::hub::Event;
use crate::notify::store;

/// At most this many occurrences of one rule are posted per tick: a rule whose server was
/// down for long catches up over several ticks (a month of a daily-ish rule per tick) instead
/// of holding the writer for one long stretch while every other rule waits.
pub(crate) const MAX_POSTS_PER_RULE: usize = 31;

/// How often the thread looks at whether the server is stopping, between ticks.
const POLL: Duration = Duration::from_millis(100);

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Rules whose `next_action` was due.
    pub rules: usize,
    pub posted: usize,
    pub reminded: usize,
}

/// One tick, now, by the app's clock. Public for the benchmark, which times it directly.
pub fn tick(app: &App) -> Result<Report> {
    let today = app
        .clock
        .now()
        .to_zoned(app.config.app_timezone.clone())
        .date();
    let due = app.db.read(|c| rules::due(c, today))?;
    let mut report = Report {
        rules: due.len(),
        ..Report::default()
    };
    for (user, id) in due {
        if app.is_stopping() {
            break;
        }
        // One rule's failure (a full disk, a busy database) must not stop the others; its
        // `next_action` stays due, so the next tick tries it again.
        match one_rule(app, &user, &id, today) {
            Ok((posted, reminded)) => {
                report.posted += posted;
                report.reminded += reminded;
            }
            Err(e) => log::warn!("recurring rule {id}: tick failed: {e:?}"),
        }
    }
    Ok(report)
}

/// Posts what is due of one rule, then reminds and stores its next action.
fn one_rule(app: &App, user: &str, id: &str, today: Date) -> Result<(usize, usize)> {
    let tz = &app.config.app_timezone;
    let dates = app.db.read(|c| match find(c, user, id)? {
        Some(rule) if rule.spec.auto_post => due_posts(c, user, &rule, tz, today),
        _ => Ok(Vec::new()),
    })?;
    let mut posted = 0;
    for &date in &dates {
        if app.is_stopping() {
            return Ok((posted, 0));
        }
        let now = app.clock.iso();
        let at = Place {
            catalog: &app.catalog,
            tz,
            now: &now,
        };
        let out = app.db.write(|tx| {
            // The rule as it is now: deleted, changed or no longer automatic since the read.
            let Some(rule) = find(tx, user, id)? else {
                return Ok(None);
            };
            let s = rule.spec.schedule();
            if !rule.spec.auto_post || !s.is_occurrence(date) || rules::is_skipped(tx, id, date)? {
                return Ok(None);
            }
            post::post(tx, &at, user, &rule, date, None).map(Some)
        });
        match out {
            Ok(Some(p)) => {
                posted += 1;
                after_commit(app, user, p.events);
            }
            Ok(None) => {}
            // A confirm (or another server's tick) posted it first: the index said so.
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let caught_up = dates.len() < MAX_POSTS_PER_RULE;
    let now = app.clock.iso();
    let events = app
        .db
        .write(|tx| finish(tx, user, id, today, caught_up, &now))?;
    let reminded = events.len();
    after_commit(app, user, events);
    Ok((posted, reminded))
}

fn after_commit(app: &App, user: &str, events: Vec<Event>) {
    app.views.invalidate_user(user);
    for e in events {
        app.events.publish(user, e);
    }
}

fn find(c: &rusqlite::Connection, user: &str, id: &str) -> Result<Option<Stored>> {
    match rules::load(c, user, id) {
        Ok(r) => Ok(Some(r)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The occurrences of an `auto_post` rule to post now: on or before today, on or after the
/// day the rule was created, neither posted nor skipped; oldest first, at most
/// [`MAX_POSTS_PER_RULE`].
fn due_posts(
    c: &rusqlite::Connection,
    user: &str,
    rule: &Stored,
    tz: &jiff::tz::TimeZone,
    today: Date,
) -> Result<Vec<Date>> {
    let from = rule.created_on(tz)?;
    if from > today {
        return Ok(Vec::new());
    }
    let taken = taken(c, user, &rule.id, from)?;
    Ok(rule
        .spec
        .schedule()
        .between(from, today)
        .map(|(_, d)| d)
        .filter(|d| !taken.contains(d))
        .take(MAX_POSTS_PER_RULE)
        .collect())
}

fn taken(c: &rusqlite::Connection, user: &str, id: &str, from: Date) -> Result<HashSet<Date>> {
    Ok(rules::taken_since(c, user, Some(id), from)?
        .remove(id)
        .unwrap_or_default())
}

/// The rule's reminders (`bill_due`, once per occurrence, for the occurrences from today to
/// `remind_days_before` days ahead that are neither posted nor skipped) and its next action,
/// in one write that reads the rule as it is now. `caught_up`: every due occurrence was
/// posted this tick (else the rule stays due today, and the next tick goes on).
fn finish(
    tx: &Transaction<'_>,
    user: &str,
    id: &str,
    today: Date,
    caught_up: bool,
    now: &str,
) -> Result<Vec<Event>> {
    let Some(rule) = find(tx, user, id)? else {
        return Ok(Vec::new());
    };
    let s = rule.spec.schedule();
    let taken = taken(tx, user, id, today)?;
    let mut events = Vec::new();
    let next = if rule.spec.auto_post {
        if caught_up {
            rules::next_date(&s, today, &taken)
        } else {
            Some(today)
        }
    } else {
        let lead = i64::from(rule.spec.remind_days_before);
        let horizon = today.checked_add(lead.days()).map_err(Error::internal)?;
        for date in s.between(today, horizon).map(|(_, d)| d) {
            if taken.contains(&date) {
                continue;
            }
            let payload = json!({
                "recurring_id": rule.id,
                "date": date.to_string(),
                "label": rule.spec.label,
                "amount": rule.spec.amount.to_number(),
            });
            let key = format!("bill_due:{}:{date}", rule.id);
            if let Some(n) = store::notify(tx, user, "bill_due", payload, Some(&key), now)? {
                events.push(n.event());
            }
        }
        // The first occurrence past the horizon that is still open: its reminder day.
        let after = horizon.checked_add(1.day()).map_err(Error::internal)?;
        match rules::next_date(&s, after, &taken) {
            Some(d) => Some(d.checked_sub(lead.days()).map_err(Error::internal)?),
            None => None,
        }
    };
    rules::set_next_action(tx, id, next)?;
    Ok(events)
}

/// Starts the ticker; it ticks at once, then every `RECURRING_TICK_SECONDS`, and ends when
/// the server stops (`Running::shutdown` joins it, so a post in flight commits first).
pub(crate) fn spawn(app: Arc<App>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("recurring-ticker".into())
        .spawn(move || {
            let every = app.config.recurring_tick;
            let mut next = Instant::now();
            while !app.is_stopping() {
                if Instant::now() >= next {
                    match tick(&app) {
                        Ok(r) if r.posted + r.reminded > 0 => log::info!(
                            "recurring: {} posted, {} reminders sent",
                            r.posted,
                            r.reminded
                        ),
                        Ok(_) => {}
                        Err(e) => log::warn!("recurring tick failed: {e:?}"),
                    }
                    next = Instant::now() + every;
                }
                std::thread::sleep(POLL.min(every));
            }
        })
}
