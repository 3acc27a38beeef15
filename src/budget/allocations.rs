//! A user's allocations: per allocation type and month a budget, a recorded amount (typed by the
//! user) and a spent amount (the month's linked expenses); `actual = recorded + spent`.
//! A month's summary is one indexed query joined in memory with the catalogue.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::catalog::{Catalog, Category};
use super::money::{self, Money, Percent};
use super::period::Period;
use super::rollover::{self, MonthView, RolloverMode};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) budget: Money,
    pub(crate) recorded: Money,
    pub(crate) spent: Money,
}

impl Row {
    pub(crate) fn actual(&self) -> Result<Money> {
        self.recorded
            .checked_add(self.spent)
            .ok_or_else(money::overflow)
    }
}

#[derive(Serialize, ToSchema, Clone)]
pub(crate) struct TypeLine {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) purpose: String,
    pub(crate) sort_order: i64,
    #[schema(value_type = f64)]
    pub(crate) budget_amount: Money,
    /// What `POST /allocations/actual` and `PUT /allocations/{id}` maintain.
    #[schema(value_type = f64)]
    pub(crate) recorded_amount: Money,
    /// The month's expenses linked to this type.
    #[schema(value_type = f64)]
    pub(crate) spent_amount: Money,
    /// recorded + spent
    #[schema(value_type = f64)]
    pub(crate) actual_amount: Money,
    /// budget − actual
    #[schema(value_type = f64)]
    pub(crate) difference: Money,
    /// `null` when the user has no row for this type and month.
    pub(crate) allocation_id: Option<String>,
    /// The rollover mode in force this month (`none` without a setting).
    pub(crate) rollover: RolloverMode,
    /// What the months before carry into this one (negative: overspending under `both`).
    #[schema(value_type = f64)]
    pub(crate) carry_in: Money,
    /// budget + carry_in − actual
    #[schema(value_type = f64)]
    pub(crate) available: Money,
}

#[derive(Serialize, ToSchema, Clone)]
pub(crate) struct CategoryLine {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) icon: String,
    pub(crate) icon_color: String,
    pub(crate) description: String,
    #[schema(value_type = f64)]
    pub(crate) target_percentage: Percent,
    pub(crate) sort_order: i64,
    #[schema(value_type = f64)]
    pub(crate) total_budget: Money,
    #[schema(value_type = f64)]
    pub(crate) total_actual: Money,
    #[schema(value_type = f64)]
    pub(crate) total_difference: Money,
    pub(crate) allocation_types: Vec<TypeLine>,
    #[schema(value_type = f64)]
    pub(crate) total_carry_in: Money,
    /// total_budget + total_carry_in − total_actual
    #[schema(value_type = f64)]
    pub(crate) total_available: Money,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AllocationSummaryResponse {
    pub(crate) month: u32,
    pub(crate) year: i32,
    #[schema(value_type = f64)]
    pub(crate) total_budget: Money,
    #[schema(value_type = f64)]
    pub(crate) total_actual: Money,
    #[schema(value_type = f64)]
    pub(crate) total_difference: Money,
    /// The sum of the category targets.
    #[schema(value_type = f64)]
    pub(crate) target_allocation_percentage: Percent,
    pub(crate) categories: Vec<CategoryLine>,
    #[schema(value_type = f64)]
    pub(crate) total_carry_in: Money,
    /// total_budget + total_carry_in − total_actual
    #[schema(value_type = f64)]
    pub(crate) total_available: Money,
}

fn category_line(cat: &Category, view: &MonthView) -> Result<CategoryLine> {
    let types: Vec<TypeLine> = cat
        .types
        .iter()
        .map(|t| {
            let row = view.rows.get(&t.id);
            let carry = view.carries.get(&t.id);
            let carry_in = carry.map(|c| c.carry_in).unwrap_or_default();
            let budget = row.map(|r| r.budget).unwrap_or_default();
            let recorded = row.map(|r| r.recorded).unwrap_or_default();
            let spent = row.map(|r| r.spent).unwrap_or_default();
            let actual = row.map(Row::actual).transpose()?.unwrap_or_default();
            Ok(TypeLine {
                id: t.id.clone(),
                name: t.name.clone(),
                description: t.description.clone(),
                purpose: t.purpose.clone(),
                sort_order: t.sort_order,
                budget_amount: budget,
                recorded_amount: recorded,
                spent_amount: spent,
                actual_amount: actual,
                difference: budget.checked_sub(actual).ok_or_else(money::overflow)?,
                allocation_id: row.map(|r| r.id.clone()),
                rollover: carry.map_or(RolloverMode::None, |c| c.mode),
                carry_in,
                available: available(budget, carry_in, actual)?,
            })
        })
        .collect::<Result<_>>()?;
    let (total_budget, total_actual, total_difference) =
        totals(types.iter().map(|t| (t.budget_amount, t.actual_amount)))?;
    let total_carry_in =
        Money::total(types.iter().map(|t| t.carry_in)).ok_or_else(money::overflow)?;
    Ok(CategoryLine {
        id: cat.id.clone(),
        name: cat.name.clone(),
        label: cat.label.clone(),
        icon: cat.icon.clone(),
        icon_color: cat.icon_color.clone(),
        description: cat.description.clone(),
        target_percentage: cat.target,
        sort_order: cat.sort_order,
        total_budget,
        total_actual,
        total_difference,
        allocation_types: types,
        total_carry_in,
        total_available: available(total_budget, total_carry_in, total_actual)?,
    })
}

/// budget + carry_in − actual
pub(crate) fn available(budget: Money, carry_in: Money, actual: Money) -> Result<Money> {
    budget
        .checked_add(carry_in)
        .and_then(|m| m.checked_sub(actual))
        .ok_or_else(money::overflow)
}

/// The (budget, actual) pairs summed, and budget − actual.
pub(crate) fn totals(
    pairs: impl Iterator<Item = (Money, Money)> + Clone,
) -> Result<(Money, Money, Money)> {
    let budget = Money::total(pairs.clone().map(|(b, _)| b)).ok_or_else(money::overflow)?;
    let actual = Money::total(pairs.map(|(_, a)| a)).ok_or_else(money::overflow)?;
    let difference = budget.checked_sub(actual).ok_or_else(money::overflow)?;
    Ok((budget, actual, difference))
}

pub(crate) fn summary(
    c: &Connection,
    catalog: &Catalog,
    user: &str,
    p: Period,
) -> Result<AllocationSummaryResponse> {
    let view = rollover::month_view(c, user, p)?;
    let categories: Vec<CategoryLine> = catalog
        .categories
        .iter()
        .map(|cat| category_line(cat, &view))
        .collect::<Result<_>>()?;
    let (total_budget, total_actual, total_difference) =
        totals(categories.iter().map(|c| (c.total_budget, c.total_actual)))?;
    let total_carry_in =
        Money::total(categories.iter().map(|c| c.total_carry_in)).ok_or_else(money::overflow)?;
    Ok(AllocationSummaryResponse {
        month: p.month,
        year: p.year,
        total_budget,
        total_actual,
        total_difference,
        target_allocation_percentage: catalog.target_sum(),
        categories,
        total_carry_in,
        total_available: available(total_budget, total_carry_in, total_actual)?,
    })
}

/// One category's line for a month, or `None` for an unknown category id.
pub(crate) fn one_category(
    c: &Connection,
    catalog: &Catalog,
    user: &str,
    p: Period,
    id: &str,
) -> Result<Option<CategoryLine>> {
    let Some(cat) = catalog.category(id) else {
        return Ok(None);
    };
    category_line(cat, &rollover::month_view(c, user, p)?).map(Some)
}

/// A category's (budget, actual) totals, to notice a write pushing it over budget.
pub(crate) fn category_totals(
    c: &Connection,
    user: &str,
    p: Period,
    category_id: &str,
) -> Result<(Money, Money)> {
    // Cached: every linked expense runs this twice on the group-commit thread, and compiling
    // it was 28% of that thread's time under POST load (perf, 2026-12-05).
    Ok(c.prepare_cached(
        "SELECT coalesce(sum(ua.budget_amount), 0), coalesce(sum(ua.recorded_amount + ua.spent_amount), 0)
         FROM user_allocations ua JOIN allocation_types t ON t.id = ua.allocation_type_id
         WHERE ua.user_id = ?1 AND ua.year = ?2 AND ua.month = ?3 AND t.category_id = ?4",
    )?
    .query_row(params![user, p.year, p.month, category_id], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Set,
    Add,
}

/// A change to one type's row for a month (upserting it).
pub(crate) enum Change<'a> {
    Budget(Money),
    Actual {
        amount: Money,
        mode: Mode,
        notes: Option<&'a str>,
    },
}

fn amount_overflow() -> Error {
    Error::Unprocessable {
        code: "amount_too_large",
        detail: "The resulting amount is too large".into(),
    }
}

/// Upserts the row of (user, type, month). Returns the period touched.
pub(crate) fn upsert(
    tx: &Transaction<'_>,
    catalog: &Catalog,
    user: &str,
    type_id: &str,
    p: Period,
    change: Change<'_>,
    now: &str,
) -> Result<()> {
    if !catalog.has_type(type_id) {
        return Err(Error::NotFound {
            code: "allocation_type_not_found",
            detail: format!("Allocation type with id '{type_id}' not found"),
        });
    }
    let existing: Option<(Money, Money)> = tx
        .prepare_cached(
            "SELECT budget_amount, recorded_amount FROM user_allocations
             WHERE user_id = ?1 AND year = ?2 AND month = ?3 AND allocation_type_id = ?4",
        )?
        .query_row(params![user, p.year, p.month, type_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (mut budget, mut recorded) = existing.unwrap_or_default();
    let mut new_notes: Option<&str> = None;
    match change {
        Change::Budget(b) => budget = b,
        Change::Actual {
            amount,
            mode,
            notes,
        } => {
            recorded = match mode {
                Mode::Set => amount,
                Mode::Add => recorded
                    .checked_add(amount)
                    .and_then(Money::capped)
                    .ok_or_else(amount_overflow)?,
            };
            new_notes = notes;
        }
    }
    tx.prepare_cached(
        "INSERT INTO user_allocations (id, user_id, allocation_type_id, year, month, budget_amount, recorded_amount,
                                       notes, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT(user_id, year, month, allocation_type_id) DO UPDATE SET
             budget_amount = excluded.budget_amount, recorded_amount = excluded.recorded_amount,
             notes = coalesce(excluded.notes, user_allocations.notes), updated_at = excluded.updated_at",
    )?
    .execute(params![crate::random::uuid(), user, type_id, p.year, p.month, budget, recorded, new_notes, now])?;
    Ok(())
}

/// Where an allocation row lives: its type and month. `None` if it is not this user's.
pub(crate) fn locate(
    c: &Connection,
    user: &str,
    allocation_id: &str,
) -> Result<Option<(String, Period)>> {
    Ok(c.query_row(
        "SELECT allocation_type_id, year, month FROM user_allocations WHERE id = ?1 AND user_id = ?2",
        params![allocation_id, user],
        |r| Ok((r.get(0)?, Period { year: r.get(1)?, month: r.get(2)? })),
    )
    .optional()?)
}

pub(crate) fn not_found() -> Error {
    Error::NotFound {
        code: "allocation_not_found",
        detail: "Allocation not found".into(),
    }
}

/// `PUT /allocations/{id}`: sets the given fields of one of the user's rows.
pub(crate) fn update(
    tx: &Transaction<'_>,
    user: &str,
    allocation_id: &str,
    budget: Option<Money>,
    recorded: Option<Money>,
    notes: Option<&str>,
    now: &str,
) -> Result<()> {
    let n = tx.execute(
        "UPDATE user_allocations SET budget_amount = coalesce(?3, budget_amount),
             recorded_amount = coalesce(?4, recorded_amount), notes = coalesce(?5, notes), updated_at = ?6
         WHERE id = ?1 AND user_id = ?2",
        params![allocation_id, user, budget, recorded, notes, now],
    )?;
    if n == 0 {
        return Err(not_found());
    }
    Ok(())
}

/// `DELETE /allocations/{id}`: removes what the user typed (budget, recorded amount, notes). A
/// row that still holds linked spending stays, zeroed but for `spent_amount`: that figure
/// belongs to the linked transactions, and deleting it would break their invariant (a later
/// edit of such a transaction would find no row to take its spending from).
pub(crate) fn delete(
    tx: &Transaction<'_>,
    user: &str,
    allocation_id: &str,
    now: &str,
) -> Result<()> {
    let n = tx.execute(
        "DELETE FROM user_allocations WHERE id = ?1 AND user_id = ?2 AND spent_amount = 0",
        params![allocation_id, user],
    )?;
    if n == 1 {
        return Ok(());
    }
    let kept = tx.execute(
        "UPDATE user_allocations SET budget_amount = 0, recorded_amount = 0, notes = NULL, updated_at = ?3
         WHERE id = ?1 AND user_id = ?2",
        params![allocation_id, user, now],
    )?;
    if kept == 0 {
        return Err(not_found());
    }
    Ok(())
}

#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub(crate) struct MonthTotals {
    pub(crate) month: u32,
    pub(crate) year: i32,
    #[schema(value_type = f64)]
    pub(crate) total_budget: Money,
    #[schema(value_type = f64)]
    pub(crate) total_actual: Money,
    /// budget − actual
    #[schema(value_type = f64)]
    pub(crate) difference: Money,
}

/// The `months` months ending with `newest`, newest first, empty months as zeros.
pub(crate) fn history(
    c: &Connection,
    user: &str,
    newest: Period,
    months: u32,
) -> Result<Vec<MonthTotals>> {
    let mut periods = vec![newest];
    while periods.len() < months as usize {
        let last = periods[periods.len() - 1];
        periods.push(last.prev());
    }
    let oldest = periods[periods.len() - 1];
    let key = |p: Period| i64::from(p.year) * 12 + i64::from(p.month);
    let mut stmt = c.prepare_cached(
        "SELECT year, month, sum(budget_amount), sum(recorded_amount + spent_amount)
         FROM user_allocations
         WHERE user_id = ?1 AND (year * 12 + month) BETWEEN ?2 AND ?3 GROUP BY year, month",
    )?;
    let found: HashMap<Period, (Money, Money)> = stmt
        .query_map(params![user, key(oldest), key(newest)], |r| {
            Ok((
                Period {
                    year: r.get(0)?,
                    month: r.get(1)?,
                },
                (r.get(2)?, r.get(3)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    periods
        .into_iter()
        .map(|p| {
            let (b, a) = found.get(&p).copied().unwrap_or_default();
            Ok(MonthTotals {
                month: p.month,
                year: p.year,
                total_budget: b,
                total_actual: a,
                difference: b.checked_sub(a).ok_or_else(money::overflow)?,
            })
        })
        .collect()
}

/// `actual / budget × 100` rounded half-even to 2 decimals, in basis points; 0 without a budget.
pub(crate) fn utilization(actual: Money, budget: Money) -> Percent {
    if budget <= Money::ZERO {
        return Percent(0);
    }
    // actual × 10_000 / budget = the percentage with two decimals, as basis points.
    let (actual, budget) = (i128::from(actual.minor()), i128::from(budget.minor()));
    Percent(money::div_half_even(actual * 10_000, budget) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::money::testing::Money;

    #[test]
    fn utilization_rounds_to_two_decimals() {
        assert_eq!(utilization(Money(1), Money(3)), Percent(3333));
        assert_eq!(utilization(Money(2), Money(3)), Percent(6667));
        assert_eq!(utilization(Money(150), Money(100)), Percent(15000));
        assert_eq!(utilization(Money(5), Money(0)), Percent(0));
    }
}
