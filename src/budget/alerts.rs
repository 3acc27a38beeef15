//! `budget_alert`: a write that takes a category's spending over its limit for a month tells
//! the user. Every write that can move a category's actual or budget (allocation writes, and
//! linked transaction writes) takes a `Watch` before its change and calls `check` after it,
//! inside the same database transaction; the event is published after the commit.

use rusqlite::Transaction;

use super::catalog::Catalog;
use super::money::Money;
use super::period::Period;
use crate::error::{Error, Result};
use crate::notify::hub::Event;

/// A category's (limit, actual) for a month, taken before a write.
pub(crate) struct Watch {
    category_id: String,
    category_name: String,
    period: Period,
    before: (Money, Money),
}

/// The category's limit and actual spending for a month: the limit is the budget plus what
/// rollover carries into its types (`rollover.rs`).
fn limit_and_actual(
    tx: &Transaction<'_>,
    user: &str,
    category_id: &str,
    p: Period,
) -> Result<(Money, Money)> {
    let (budget, actual) = super::allocations::category_totals(tx, user, p, category_id)?;
    let carry_in = super::rollover::category_carry_in(tx, user, category_id, p)?;
    let limit = budget
        .checked_add(carry_in)
        .ok_or_else(super::money::overflow)?;
    Ok((limit, actual))
}

/// Takes the figures of the category that `type_id` belongs to, before a write in month `p`.
pub(crate) fn watch(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    user: &str,
    type_id: &str,
    p: Period,
) -> Result<Watch> {
    let category = catalog
        .category_of_type(type_id)
        .ok_or_else(|| Error::NotFound {
            code: "allocation_type_not_found",
            detail: format!("Allocation type with id '{type_id}' not found"),
        })?;
    Ok(Watch {
        before: limit_and_actual(tx, user, &category.id, p)?,
        category_id: category.id.clone(),
        category_name: category.name.clone(),
        period: p,
    })
}

/// After the write: the alert to publish once committed, if the category went from within its
/// limit to over it and had not already done so this month (the alert is stored in the
/// user's inbox, and the event carries its id).
pub(crate) fn check(
    tx: &Transaction<'_>,
    user: &str,
    w: Watch,
    now: &str,
) -> Result<Option<Event>> {
    let (limit0, actual0) = w.before;
    let (limit1, actual1) = limit_and_actual(tx, user, &w.category_id, w.period)?;
    if !(actual0 <= limit0 && actual1 > limit1) {
        return Ok(None);
    }
    // Kept in the inbox, and at most once per category and month: a category that dips back
    // under its limit and crosses it again in the same month does not alert twice.
    let payload = serde_json::json!({
        "category": w.category_name,
        "month": w.period.month,
        "year": w.period.year,
        "budget": limit1.to_number(),
        "actual": actual1.to_number(),
    });
    let key = format!(
        "budget_alert:{}:{}-{:02}",
        w.category_id, w.period.year, w.period.month
    );
    let stored = crate::notify::store::notify(tx, user, "budget_alert", payload, Some(&key), now)?;
    Ok(stored.map(|s| s.event()))
}
