//! The five lookups. Each reads the asking user's rows only (every query is keyed by
//! `who.user`) and answers compact JSON: money as exact numbers in major units, dates as
//! local `YYYY-MM-DD` dates in `APP_TIMEZONE`.

use jiff::ToSpan;
use jiff::civil::Date;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::args::{Arg, Args, Param, Shape};
use super::{Caller, Fail};
use crate::budget::allocations;
use crate::budget::dates::{DayRange, LocalDate, MAX_SPAN_DAYS};
use crate::budget::money::Money;
use crate::budget::period::Period;
use crate::budget::transactions::{self, Kind};
use crate::recurring::rules::{self, Status};

/// `get_transactions` answers this many a page.
pub(super) const PAGE_SIZE: u32 = 25;
/// The most categories the `category` enum lists (the most used first).
pub(super) const CATEGORIES_OFFERED: u32 = 100;
/// `search` is at most this many characters.
const SEARCH_MAX: usize = 100;
/// `get_upcoming_bills` looks at most this many days ahead.
pub(super) const BILL_DAYS: i64 = 90;
/// The highest `page` (25 × 10 000 rows is more than any year of anyone's transactions).
const PAGE_MAX: i64 = 10_000;

pub(super) fn year_month() -> Vec<Param> {
    vec![
        Param::needed(
            "year",
            "The year, 2020..2100.",
            Shape::Int {
                min: 2020,
                max: 2100,
            },
        ),
        Param::needed("month", "The month, 1..12.", Shape::Int { min: 1, max: 12 }),
    ]
}

pub(super) fn date_range() -> Vec<Param> {
    vec![
        Param::needed(
            "start_date",
            "First day, YYYY-MM-DD (local date).",
            Shape::Date,
        ),
        Param::needed(
            "end_date",
            "Last day, YYYY-MM-DD, included; at most 366 days after start_date.",
            Shape::Date,
        ),
    ]
}

/// `get_transactions`' arguments; `category` lists the user's own categories.
pub(super) fn transaction_filters(categories: Vec<String>) -> Vec<Param> {
    let mut params = date_range();
    params.extend([
        Param::optional(
            "type",
            "income, expense or any (default any).",
            Shape::Choice(vec!["income".into(), "expense".into(), "any".into()]),
            Arg::Text("any".into()),
        ),
        Param::optional(
            "category",
            "Only this category of the user's transactions; null for all.",
            Shape::Choice(categories),
            Arg::Null,
        ),
        Param::optional(
            "search",
            "Only labels containing this text (case-insensitive); null for all.",
            Shape::Text { max: SEARCH_MAX },
            Arg::Null,
        ),
        Param::optional(
            "page",
            "Page number from 1 (25 a page, newest first; default 1).",
            Shape::Int {
                min: 1,
                max: PAGE_MAX,
            },
            Arg::Int(1),
        ),
    ]);
    params
}

pub(super) fn bill_days() -> Vec<Param> {
    vec![Param::needed(
        "days",
        "How many days ahead to look, 1..90.",
        Shape::Int {
            min: 1,
            max: BILL_DAYS,
        },
    )]
}

/// The user's own transaction categories, the most used first, at most `CATEGORIES_OFFERED`.
pub(super) fn categories(c: &Connection, user: &str) -> crate::error::Result<Vec<String>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT category FROM transactions WHERE user_id = ?1
         GROUP BY category ORDER BY count(*) DESC, category LIMIT {CATEGORIES_OFFERED}"
    ))?;
    let rows = stmt
        .query_map([user], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

fn period(a: &Args) -> Result<Period, Fail> {
    let (year, month) = (a.int("year")?, a.int("month")?);
    // Both were range-checked against the schema.
    i32::try_from(year)
        .ok()
        .zip(u32::try_from(month).ok())
        .and_then(|(y, m)| Period::new(y, m))
        .ok_or_else(|| Fail::internal("month out of range after the checks"))
}

/// `start_date`..`end_date` as whole local days; the cross-argument rules live here.
fn days(who: &Caller<'_>, a: &Args) -> Result<(Date, Date, DayRange), Fail> {
    let (start, end) = (a.date("start_date")?, a.date("end_date")?);
    if end < start {
        return Err(Fail::Arg("end_date: must not be before start_date".into()));
    }
    if start.duration_until(end).as_hours() / 24 > MAX_SPAN_DAYS {
        return Err(Fail::Arg(format!(
            "end_date: must be at most {MAX_SPAN_DAYS} days after start_date; ask for a shorter range"
        )));
    }
    let range = DayRange::new(who.tz, LocalDate(start), LocalDate(end))?;
    Ok((start, end, range))
}

/// A stored UTC instant as the local date it falls on.
fn local_date(who: &Caller<'_>, stored: &str) -> String {
    stored.parse::<jiff::Timestamp>().map_or_else(
        |_| stored.to_string(),
        |t| t.to_zoned(who.tz.clone()).date().to_string(),
    )
}

pub(super) fn month_summary(c: &Connection, who: &Caller<'_>, a: &Args) -> Result<Value, Fail> {
    let p = period(a)?;
    let t = transactions::totals(c, who.user, p)?;
    let s = allocations::summary(c, who.catalog, who.user, p)?;
    let categories: Vec<Value> = s
        .categories
        .iter()
        .map(|cat| {
            json!({
                "category": cat.name,
                "label": cat.label,
                "budget": cat.total_budget,
                "actual": cat.total_actual,
            })
        })
        .collect();
    Ok(json!({
        "year": p.year,
        "month": p.month,
        "total_income": t.total_income,
        "total_expense": t.total_expense,
        "balance": t.balance()?,
        "transaction_count": t.transaction_count,
        "total_budget": s.total_budget,
        "total_actual": s.total_actual,
        "categories": categories,
    }))
}

pub(super) fn allocations(c: &Connection, who: &Caller<'_>, a: &Args) -> Result<Value, Fail> {
    let p = period(a)?;
    let s = allocations::summary(c, who.catalog, who.user, p)?;
    let sum = |ms: Vec<Money>| Money::total(ms).ok_or_else(crate::budget::money::overflow);
    let mut categories = Vec::new();
    for cat in &s.categories {
        let types: Vec<Value> = cat
            .allocation_types
            .iter()
            .filter(|t| {
                [
                    t.budget_amount,
                    t.recorded_amount,
                    t.spent_amount,
                    t.carry_in,
                ]
                .iter()
                .any(|m| *m != Money::ZERO)
            })
            .map(|t| {
                json!({
                    "type": t.name,
                    "budget": t.budget_amount,
                    "recorded": t.recorded_amount,
                    "spent": t.spent_amount,
                    "actual": t.actual_amount,
                    "carry_in": t.carry_in,
                    "available": t.available,
                })
            })
            .collect();
        let t = &cat.allocation_types;
        categories.push(json!({
            "category": cat.name,
            "label": cat.label,
            "budget": cat.total_budget,
            "recorded": sum(t.iter().map(|t| t.recorded_amount).collect())?,
            "spent": sum(t.iter().map(|t| t.spent_amount).collect())?,
            "actual": cat.total_actual,
            "carry_in": cat.total_carry_in,
            "available": cat.total_available,
            "types": types,
        }));
    }
    Ok(json!({
        "year": p.year,
        "month": p.month,
        "total_budget": s.total_budget,
        "total_actual": s.total_actual,
        "total_available": s.total_available,
        "categories": categories,
    }))
}

/// `label LIKE` pattern matching `text` literally anywhere (`\` escapes `%`, `_` and itself).
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// The filter every `get_transactions` query shares: ?1 user, ?2..?3 the instants, ?4 type,
/// ?5 category, ?6 label pattern.
const FILTERED: &str = "FROM transactions
     WHERE user_id = ?1 AND transaction_date >= ?2 AND transaction_date < ?3
       AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5)
       AND (?6 IS NULL OR label LIKE ?6 ESCAPE '\\')";

pub(super) fn transactions(c: &Connection, who: &Caller<'_>, a: &Args) -> Result<Value, Fail> {
    let (start, end, range) = days(who, a)?;
    let kind = match a.text("type")? {
        Some("income") => Some(Kind::Income.as_str()),
        Some("expense") => Some(Kind::Expense.as_str()),
        _ => None,
    };
    let category = a.text("category")?;
    let search = a.text("search")?;
    let pattern = search.map(contains_pattern);
    let page = a.int("page")?;
    let bind = params![
        who.user,
        crate::clock::iso(range.start),
        crate::clock::iso(range.end),
        kind,
        category,
        pattern
    ];
    let (count, income, expense): (i64, Money, Money) = c
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(CASE WHEN type = 'income' THEN amount END), 0),
                    coalesce(sum(CASE WHEN type = 'expense' THEN amount END), 0) {FILTERED}"
        ))?
        .query_row(bind, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    // page ≤ PAGE_MAX, so the offset is small; written into the SQL as `list` does.
    let offset = (page - 1) * i64::from(PAGE_SIZE);
    let mut stmt = c.prepare_cached(&format!(
        "SELECT transaction_date, type, category, label, amount {FILTERED}
         ORDER BY transaction_date DESC, created_at DESC, id LIMIT {PAGE_SIZE} OFFSET {offset}"
    ))?;
    let items = stmt
        .query_map(bind, |r| {
            let date: String = r.get(0)?;
            let kind: String = r.get(1)?;
            let category: String = r.get(2)?;
            let label: String = r.get(3)?;
            let amount: Money = r.get(4)?;
            Ok(json!({
                "date": local_date(who, &date),
                "type": kind,
                "category": category,
                "label": label,
                "amount": amount,
            }))
        })?
        .collect::<rusqlite::Result<Vec<Value>>>()?;
    let pages = (count + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE);
    Ok(json!({
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "page": page,
        "total_pages": pages,
        "total_results": count,
        "total_income": income,
        "total_expense": expense,
        "transactions": items,
    }))
}

pub(super) fn spending_by_category(
    c: &Connection,
    who: &Caller<'_>,
    a: &Args,
) -> Result<Value, Fail> {
    let (start, end, range) = days(who, a)?;
    let mut stmt = c.prepare_cached(
        "SELECT category, sum(amount) AS total, count(*) FROM transactions
         WHERE user_id = ?1 AND type = 'expense' AND transaction_date >= ?2 AND transaction_date < ?3
         GROUP BY category ORDER BY total DESC, category",
    )?;
    let rows = stmt
        .query_map(
            params![
                who.user,
                crate::clock::iso(range.start),
                crate::clock::iso(range.end)
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Money>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total =
        Money::total(rows.iter().map(|r| r.1)).ok_or_else(crate::budget::money::overflow)?;
    let categories: Vec<Value> = rows
        .into_iter()
        .map(|(category, total, count)| {
            json!({"category": category, "total": total, "count": count})
        })
        .collect();
    Ok(json!({
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "total_expense": total,
        "categories": categories,
    }))
}

pub(super) fn upcoming_bills(c: &Connection, who: &Caller<'_>, a: &Args) -> Result<Value, Fail> {
    let days = a.int("days")?;
    let days = u32::try_from(days).map_err(|_| Fail::internal("days out of range"))?;
    let to = who
        .today
        .checked_add(i64::from(days).days())
        .map_err(Fail::internal)?;
    // The view also shows the month behind and what was posted or skipped; only what is
    // still to come counts here.
    let bills: Vec<_> = rules::upcoming(c, who.user, who.today, days)?
        .into_iter()
        .filter(|i| matches!(i.status, Status::Upcoming | Status::Due))
        .collect();
    let total = |k: Kind| {
        Money::total(bills.iter().filter(|i| i.kind == k).map(|i| i.amount))
            .ok_or_else(crate::budget::money::overflow)
    };
    let (income, expense) = (total(Kind::Income)?, total(Kind::Expense)?);
    let items: Vec<Value> = bills
        .iter()
        .map(|i| {
            json!({
                "date": i.date,
                "type": i.kind,
                "category": i.category,
                "label": i.label,
                "amount": i.amount,
                "status": i.status,
            })
        })
        .collect();
    Ok(json!({
        "from": who.today.to_string(),
        "to": to.to_string(),
        "count": items.len(),
        "total_expense": expense,
        "total_income": income,
        "bills": items,
    }))
}
