//! One page of `/sync`: every synced row whose change is above the cursor, oldest change
//! first, cut after `limit` rows, all read in one snapshot.
//!
//! Each row change has its own counter value (see `sql/0010_sync.sql`), so a page that ends
//! after its `limit`-th row ends on a whole counter value, and the next page starts right
//! after it. The last page's cursor is the user's counter itself (read in the same
//! snapshot), which also covers changes that stamp no row (rollover settings).

use std::collections::HashSet;

use jiff::civil::Date;
use rusqlite::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use crate::budget::money::Money;
use crate::budget::transactions::{self, TransactionResponse};
use crate::chat::history::{self, SessionSummary};
use crate::error::{Error, Result};
use crate::notify::store::{self, Stored};
use crate::profile::onboarding::{self, Profile};
use crate::profile::preferences::{self, Preferences};
use crate::recurring::rules::{self, RuleResponse};

/// Rows of one kind: the changed ones as the other routes show them, and the deleted ids.
#[derive(Serialize, ToSchema)]
pub(crate) struct Kind<T> {
    pub(crate) upserted: Vec<T>,
    pub(crate) deleted: Vec<String>,
}

impl<T> Default for Kind<T> {
    fn default() -> Self {
        Kind {
            upserted: Vec::new(),
            deleted: Vec::new(),
        }
    }
}

/// Notifications are never deleted by the user (the 90-day sweep is the server's own).
#[derive(Serialize, ToSchema)]
pub(crate) struct Upserted<T> {
    pub(crate) upserted: Vec<T>,
}

impl<T> Default for Upserted<T> {
    fn default() -> Self {
        Upserted {
            upserted: Vec::new(),
        }
    }
}

/// One allocation row of one month, as `/sync` sends it.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub(crate) struct AllocationRow {
    #[schema(format = "uuid")]
    pub(crate) allocation_id: String,
    pub(crate) allocation_type_id: String,
    pub(crate) month: u32,
    pub(crate) year: i32,
    #[schema(value_type = f64)]
    pub(crate) budget_amount: Money,
    #[schema(value_type = f64)]
    pub(crate) recorded_amount: Money,
    #[schema(value_type = f64)]
    pub(crate) spent_amount: Money,
    /// recorded_amount + spent_amount
    #[schema(value_type = f64)]
    pub(crate) actual_amount: Money,
    pub(crate) notes: Option<String>,
}

#[derive(Serialize, ToSchema, Default)]
pub(crate) struct Changes {
    #[schema(value_type = Object)]
    pub(crate) transactions: Kind<TransactionResponse>,
    #[schema(value_type = Object)]
    pub(crate) allocations: Kind<AllocationRow>,
    #[schema(value_type = Object)]
    pub(crate) recurring: Kind<RuleResponse>,
    #[schema(value_type = Object)]
    pub(crate) chat_sessions: Kind<SessionSummary>,
    #[schema(value_type = Object)]
    pub(crate) notifications: Upserted<Stored>,
    /// The onboarding profile when it changed (or, without a cursor, exists); else null.
    #[schema(value_type = Option<Object>)]
    pub(crate) profile: Option<Profile>,
    /// The preferences when they changed (or, without a cursor, were ever saved); else null.
    #[schema(value_type = Option<Object>)]
    pub(crate) preferences: Option<Preferences>,
}

/// A page: the changes and the counter value its cursor stands for.
pub(crate) struct Page {
    pub(crate) upto: i64,
    /// The user's counter in the page's snapshot (`upto` unless `has_more`).
    pub(crate) counter: i64,
    pub(crate) has_more: bool,
    pub(crate) changes: Changes,
}

/// What the client asked for: changes after `after` (None: everything), at most `limit` rows.
pub(crate) struct Ask {
    pub(crate) after: Option<i64>,
    pub(crate) limit: u32,
    /// Today's local date (recurring rules' `next_date`).
    pub(crate) today: Date,
}

fn expired() -> Error {
    Error::Gone {
        code: "cursor_expired",
        detail: format!(
            "The cursor is older than the {} days that deletions are kept; sync again without one",
            super::TOMBSTONE_DAYS
        ),
    }
}

/// The page, in one read transaction. A cursor ahead of the counter is 410 `cursor_reset`;
/// one below a swept tombstone is 410 `cursor_expired`.
pub(crate) fn page(c: &Connection, user: &str, ask: &Ask) -> Result<Page> {
    let snapshot = c.unchecked_transaction()?;
    let (counter, expired_below) = super::counter(&snapshot, user)?;
    let after = ask.after.unwrap_or(0);
    if after > counter {
        return Err(super::cursor::reset());
    }
    if ask.after.is_some() && after < expired_below {
        return Err(expired());
    }
    if ask.after == Some(counter) {
        // Up to date, the common poll: nothing above the cursor, so no table is read.
        snapshot.finish()?;
        return Ok(Page {
            upto: counter,
            counter,
            has_more: false,
            changes: Changes::default(),
        });
    }
    let (upto, has_more) = bound(
        &snapshot,
        user,
        after,
        ask.after.is_some(),
        ask.limit,
        counter,
    )?;
    let changes = changes(&snapshot, user, after, upto, ask)?;
    snapshot.finish()?;
    Ok(Page {
        upto,
        counter,
        has_more,
        changes,
    })
}

/// Where the page ends: the `limit`-th change above `after` when more follow, else the counter.
fn bound(
    c: &Connection,
    user: &str,
    after: i64,
    with_deleted: bool,
    limit: u32,
    counter: i64,
) -> Result<(i64, bool)> {
    let mut stmt = c.prepare_cached(
        "SELECT change_seq FROM (
             SELECT change_seq FROM transactions WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM user_allocations WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM recurring WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM chat_sessions WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM notifications WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM user_profiles WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM user_preferences WHERE user_id = ?1 AND change_seq > ?2
             UNION ALL SELECT change_seq FROM sync_tombstones
                 WHERE ?3 AND user_id = ?1 AND change_seq > ?2)
         ORDER BY change_seq LIMIT 2 OFFSET ?4",
    )?;
    let seqs = stmt
        .query_map(params![user, after, with_deleted, limit - 1], |r| {
            r.get::<_, i64>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(match seqs.as_slice() {
        [last, _next] => (*last, true),
        _ => (counter, false),
    })
}

fn changes(c: &Connection, user: &str, after: i64, upto: i64, ask: &Ask) -> Result<Changes> {
    let mut out = Changes {
        transactions: Kind {
            upserted: changed_transactions(c, user, after, upto)?,
            deleted: Vec::new(),
        },
        allocations: Kind {
            upserted: changed_allocations(c, user, after, upto)?,
            deleted: Vec::new(),
        },
        recurring: Kind {
            upserted: changed_rules(c, user, after, upto, ask.today)?,
            deleted: Vec::new(),
        },
        chat_sessions: Kind {
            upserted: history::changed_sessions(c, user, after, upto)?,
            deleted: Vec::new(),
        },
        notifications: Upserted {
            upserted: store::changed(c, user, after, upto)?,
        },
        profile: None,
        preferences: None,
    };
    let (profile, prefs): (Option<i64>, Option<i64>) = c
        .prepare_cached(
            "SELECT (SELECT change_seq FROM user_profiles WHERE user_id = ?1),
                    (SELECT change_seq FROM user_preferences WHERE user_id = ?1)",
        )?
        .query_row([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let within = |s: Option<i64>| s.is_some_and(|s| s > after && s <= upto);
    if within(profile) {
        out.profile = onboarding::load(c, user)?;
    }
    if within(prefs) {
        out.preferences = Some(preferences::load(c, user)?);
    }
    if ask.after.is_some() {
        let mut stmt = c.prepare_cached(
            "SELECT kind, row_id FROM sync_tombstones
             WHERE user_id = ?1 AND change_seq > ?2 AND change_seq <= ?3 ORDER BY change_seq",
        )?;
        let rows = stmt.query_map(params![user, after, upto], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (kind, id) = row?;
            match kind.as_str() {
                "transactions" => out.transactions.deleted.push(id),
                "allocations" => out.allocations.deleted.push(id),
                "recurring" => out.recurring.deleted.push(id),
                _ => out.chat_sessions.deleted.push(id),
            }
        }
    }
    Ok(out)
}

fn changed_transactions(
    c: &Connection,
    user: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<TransactionResponse>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {} FROM transactions
         WHERE user_id = ?1 AND change_seq > ?2 AND change_seq <= ?3 ORDER BY change_seq",
        transactions::COLUMNS
    ))?;
    let rows = stmt
        .query_map(params![user, after, upto], transactions::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn changed_allocations(
    c: &Connection,
    user: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<AllocationRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, allocation_type_id, month, year, budget_amount, recorded_amount, spent_amount,
                notes
         FROM user_allocations
         WHERE user_id = ?1 AND change_seq > ?2 AND change_seq <= ?3 ORDER BY change_seq",
    )?;
    let rows = stmt
        .query_map(params![user, after, upto], |r| {
            let recorded: Money = r.get(5)?;
            let spent: Money = r.get(6)?;
            Ok(AllocationRow {
                allocation_id: r.get(0)?,
                allocation_type_id: r.get(1)?,
                month: r.get(2)?,
                year: r.get(3)?,
                budget_amount: r.get(4)?,
                recorded_amount: recorded,
                spent_amount: spent,
                actual_amount: recorded.checked_add(spent).unwrap_or(recorded),
                notes: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The changed rules, each exactly as `GET /recurring` shows it (with today's `next_date`).
fn changed_rules(
    c: &Connection,
    user: &str,
    after: i64,
    upto: i64,
    today: Date,
) -> Result<Vec<RuleResponse>> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM recurring
         WHERE user_id = ?1 AND change_seq > ?2 AND change_seq <= ?3 ORDER BY change_seq",
    )?;
    let ids = stmt
        .query_map(params![user, after, upto], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<_>>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(rules::list(c, user, today)?
        .into_iter()
        .filter(|r| ids.contains(&r.id))
        .collect())
}
